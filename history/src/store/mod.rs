//! Stores: where sealed segments and snapshots live, shared by `rewindd`
//! (which writes) and `rewind` (which reads without the daemon).
//!
//! Two kinds: a local directory (the default) and S3-compatible object
//! storage. Both hold the same layout ([`layout`], `docs/STORE.md`):
//! immutable data objects named by content hash, and a small JSON catalog
//! entry per object, written only after its data object is complete.
//! Readers list the catalog only, so a half-written upload is never visible;
//! [`Store::collect_garbage`] removes data objects that never got an entry.
//!
//! Many clusters can share one store, each in its own place
//! (`clusters/<cluster-key>/`, or the flat layout at the root: [`fleet`]);
//! [`Store::within`] is the store rooted at a place.
//!
//! Every lineage (one unbroken recorded history, [`lineage`]) has a record
//! written once; entries name their lineage. A name is written once: a
//! second write of the same name with different content is
//! [`StoreError::Conflict`], never an overwrite.
//!
//! On a store with compare-and-swap, a place's [`head`] names the lineage
//! shipping into it and its writer's epoch; writers swap it before every
//! file, which fences a deposed one ([`Store::swap_head`]).
//!
//! Every operation retries transient failures with exponential backoff and
//! jitter ([`retry`]) and fails with a typed [`StoreError`].
//!
//! ```no_run
//! # async fn demo() -> rewind_history::store::Result<()> {
//! use rewind_history::store::{Store, StoreConfig};
//! let store = Store::open(&StoreConfig::Local { path: "/var/lib/rewind/store".into() }).await?;
//! for snap in store.list_snapshots().await? {
//!     println!("{} seq={} objects={}", snap.short_id(), snap.seq, snap.objects);
//! }
//! # Ok(()) }
//! ```

pub mod config;
pub mod error;
pub mod fleet;
pub mod head;
pub mod layout;
pub mod lineage;
pub mod local;
pub mod retention;
pub mod retry;
pub mod s3;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use crate::clock::now_ms;

pub use config::{Credentials, RetryPolicy, S3Config, StoreConfig};
pub use error::{Result, StoreError};
pub use head::{Head, HeadVersion, Swap};
pub use layout::{Chain, SegmentEntry, SegmentMeta, SnapshotEntry, SnapshotMeta};
pub use lineage::{CreatedBy, ForkPoint, LineageRecord};
pub use retention::{RetentionPlan, RetentionPolicy};

/// The conditional writes a store honours ([`Store::probe_conditional_writes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConditionalWrites {
    /// A create-only write of an existing name fails (`If-None-Match: *`
    /// on S3, a hard link on a local directory).
    pub create_only: bool,
    /// A write conditional on the stored version (`If-Match`) fails for
    /// another version and for a missing name: a compare-and-swap.
    pub compare_and_swap: bool,
}

impl std::fmt::Display for ConditionalWrites {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let yes = |b: bool| if b { "honoured" } else { "not honoured" };
        write!(
            f,
            "create-only writes {}, compare-and-swap (If-Match) {}",
            yes(self.create_only),
            yes(self.compare_and_swap)
        )
    }
}

/// An object as listed by a backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Key relative to the store root.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// Last modification, Unix milliseconds.
    pub modified_ms: i64,
}

#[derive(Debug, Clone)]
enum Backend {
    Local(local::LocalDir),
    S3(s3::S3),
}

/// A handle on a store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    /// Where the objects are.
    backend: Backend,
    /// How failed operations are retried.
    retry: RetryPolicy,
    /// Transient failures retried so far (all clones share it).
    retries: Arc<AtomicU64>,
}

/// What [`Store::collect_garbage`] found (and removed, unless a dry run).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GarbageReport {
    /// Data objects without a catalog entry, old enough to be abandoned.
    pub orphans: Vec<ObjectInfo>,
    /// Whether they were deleted.
    pub deleted: bool,
}

impl Store {
    /// Opens a store with the default retry policy.
    pub async fn open(cfg: &StoreConfig) -> Result<Self> {
        Self::open_with(cfg, RetryPolicy::default()).await
    }

    /// Opens a store. A local root is created (0700); an S3 client is built
    /// but not contacted, so a store that is down does not stop a daemon
    /// from starting.
    pub async fn open_with(cfg: &StoreConfig, retry: RetryPolicy) -> Result<Self> {
        cfg.validate()?;
        let backend = match cfg {
            StoreConfig::Local { path } => {
                let path = path.clone();
                Backend::Local(blocking(move || local::LocalDir::open(&path)).await?)
            }
            StoreConfig::S3(s3cfg) => Backend::S3(s3::S3::open(s3cfg)?),
        };
        Ok(Self {
            backend,
            retry,
            retries: Arc::new(AtomicU64::new(0)),
        })
    }

    /// The store rooted at `sub` (a relative key prefix without a trailing
    /// `/`, such as one cluster's place `clusters/<key>`, see [`fleet`])
    /// below this one: the same client, retry policy and counters.
    pub fn within(&self, sub: &str) -> Result<Self> {
        let backend = match &self.backend {
            Backend::Local(dir) => Backend::Local(dir.within(sub)?),
            Backend::S3(s3) => Backend::S3(s3.within(sub)),
        };
        Ok(Self {
            backend,
            retry: self.retry,
            retries: Arc::clone(&self.retries),
        })
    }

    /// Transient failures retried so far by this store and its clones.
    #[must_use]
    pub fn retried(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// Multipart uploads completed (S3 objects at least
    /// [`s3::MULTIPART_THRESHOLD`] bytes); always 0 for a local directory.
    #[must_use]
    pub fn multipart_uploads(&self) -> u64 {
        match &self.backend {
            Backend::Local(_) => 0,
            Backend::S3(s3) => s3.multipart_uploads(),
        }
    }

    /// A short description for logs: `local:/path` or `s3`.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self.backend {
            Backend::Local(_) => "local",
            Backend::S3(_) => "s3",
        }
    }

    /// Finds which conditional writes the store honours by trying them on
    /// probe objects (`probes/<random>`, removed afterwards). A local
    /// directory has create-only writes (a hard link fails on an existing
    /// name) and compare-and-swap under a directory lock (for writers on
    /// one host; not over a network filesystem whose `flock` is local).
    pub async fn probe_conditional_writes(&self) -> Result<ConditionalWrites> {
        let token = lineage::new_id()?;
        match &self.backend {
            Backend::Local(dir) => {
                let key = format!("probes/{token}");
                let (d, k) = (dir.clone(), key.clone());
                blocking(move || {
                    let first = d.put_new(&k, b"probe")?;
                    let second = d.put_new(&k, b"probe")?;
                    d.delete(&k)?;
                    let v1 = d.swap(&k, None, b"one")?;
                    let again = d.swap(&k, None, b"two")?;
                    let stale = d.swap(&k, Some("not-a-version"), b"three")?;
                    let next = match &v1 {
                        Some(v) => d.swap(&k, Some(v), b"four")?,
                        None => None,
                    };
                    d.delete(&k)?;
                    Ok(ConditionalWrites {
                        create_only: first && !second,
                        compare_and_swap: v1.is_some()
                            && again.is_none()
                            && stale.is_none()
                            && next.is_some(),
                    })
                })
                .await
            }
            Backend::S3(s3) => s3.probe_conditional(&token).await,
        }
    }

    /// Stores a snapshot file outside any lineage: data object first, then
    /// its catalog entry.
    pub async fn put_snapshot(&self, meta: SnapshotMeta, data: Bytes) -> Result<SnapshotEntry> {
        self.put_snapshot_in(meta, data, Chain::default()).await
    }

    /// Stores a snapshot file of `chain`'s lineage: data object first, then
    /// its catalog entry, each written once ([`StoreError::Conflict`] if
    /// the name holds something else).
    pub async fn put_snapshot_in(
        &self,
        meta: SnapshotMeta,
        data: Bytes,
        chain: Chain,
    ) -> Result<SnapshotEntry> {
        let sha256 = hash(data.clone()).await?;
        let entry = SnapshotEntry {
            version: layout::CATALOG_VERSION,
            id: layout::snapshot_id(meta.seq, &sha256),
            seq: meta.seq,
            time_ms: meta.time_ms,
            objects: meta.objects,
            size: u64::try_from(data.len()).unwrap_or(u64::MAX),
            sha256,
            label: meta.label,
            encrypted: meta.encrypted,
            stored_at_ms: now_ms(),
            resource_set: meta.resource_set,
            lineage: chain.lineage,
        };
        self.put_data_once(&entry.data_key(), data, &entry.sha256)
            .await?;
        // A labelled snapshot of the same state (plain files are the same
        // bytes) only adds its label to the entry.
        let existing = self
            .put_entry_once(
                &entry.catalog_key(),
                &entry,
                layout::parse_snapshot_entry,
                |e| {
                    e.stored_at_ms = 0;
                    e.label = None;
                },
            )
            .await?;
        if existing.is_some_and(|e| e.label.is_none() && entry.label.is_some()) {
            self.put_object(&entry.catalog_key(), json(&entry)?).await?;
        }
        tracing::info!(id = %entry.id, size = entry.size, objects = entry.objects, "snapshot stored");
        Ok(entry)
    }

    /// Stores a segment file outside any lineage: data object first, then
    /// its catalog entry.
    pub async fn put_segment(&self, meta: SegmentMeta, data: Bytes) -> Result<SegmentEntry> {
        self.put_segment_in(meta, data, Chain::default()).await
    }

    /// Stores a segment file of `chain`'s lineage, naming the previous
    /// segment's digest: data object first, then its catalog entry, each
    /// written once ([`StoreError::Conflict`] if the name holds something
    /// else).
    pub async fn put_segment_in(
        &self,
        meta: SegmentMeta,
        data: Bytes,
        chain: Chain,
    ) -> Result<SegmentEntry> {
        let sha256 = hash(data.clone()).await?;
        let entry = SegmentEntry {
            version: layout::CATALOG_VERSION,
            id: layout::segment_id(meta.first_seq, meta.last_seq, &sha256),
            first_seq: meta.first_seq,
            last_seq: meta.last_seq,
            first_time_ms: meta.first_time_ms,
            last_time_ms: meta.last_time_ms,
            events: meta.events,
            size: u64::try_from(data.len()).unwrap_or(u64::MAX),
            sha256,
            encrypted: meta.encrypted,
            stored_at_ms: now_ms(),
            resource_set: meta.resource_set,
            lineage: chain.lineage,
            prev_sha256: chain.prev_sha256,
        };
        self.put_data_once(&entry.data_key(), data, &entry.sha256)
            .await?;
        self.put_entry_once(
            &entry.catalog_key(),
            &entry,
            layout::parse_segment_entry,
            |e| {
                e.stored_at_ms = 0;
            },
        )
        .await?;
        tracing::debug!(id = %entry.id, size = entry.size, events = entry.events, "segment stored");
        Ok(entry)
    }

    /// Writes a data object named by its content unless it is there: an
    /// object of the same size and hash is the same file (a retried
    /// upload), and is kept; anything else under the name is a conflict.
    async fn put_data_once(&self, key: &str, data: Bytes, sha256: &str) -> Result<()> {
        if self.size_of(key).await?.is_none() {
            return self.put_object(key, data).await;
        }
        let existing = self.get_object(key).await?;
        let (a, b) = (existing.len(), data.len());
        let actual = hash(existing).await?;
        if a != b || actual != sha256 {
            return Err(StoreError::Conflict {
                key: key.to_owned(),
                reason: format!(
                    "{a} bytes with sha256 {actual}, writing {b} bytes with sha256 {sha256}"
                ),
            });
        }
        tracing::debug!(key, "data object already stored; kept");
        Ok(())
    }

    /// Writes a catalog entry unless an equal one is there (all fields but
    /// those `normalise` clears, the store time at least); a different
    /// entry under the name is a conflict. Returns the entry that was
    /// already there, if one was.
    async fn put_entry_once<T>(
        &self,
        key: &str,
        entry: &T,
        parse: impl Fn(&str, &[u8]) -> Result<T>,
        normalise: impl Fn(&mut T),
    ) -> Result<Option<T>>
    where
        T: serde::Serialize + Clone + PartialEq + std::fmt::Debug,
    {
        if self.size_of(key).await?.is_none() {
            return self.put_object(key, json(entry)?).await.map(|()| None);
        }
        let bytes = self.get_object(key).await?;
        let existing = parse(key, &bytes)?;
        let (mut theirs, mut ours) = (existing.clone(), entry.clone());
        normalise(&mut theirs);
        normalise(&mut ours);
        if theirs != ours {
            return Err(StoreError::Conflict {
                key: key.to_owned(),
                reason: format!("stored {theirs:?}, writing {ours:?}"),
            });
        }
        tracing::debug!(key, "catalog entry already stored; kept");
        Ok(Some(existing))
    }

    /// Writes a lineage record once. The same record again is kept; a
    /// different record under its id is a conflict.
    pub async fn put_lineage(&self, record: &LineageRecord) -> Result<()> {
        let key = record.key();
        let data = json(record)?;
        let created = match &self.backend {
            Backend::Local(dir) => {
                let (dir, k, d) = (dir.clone(), key.clone(), data.clone());
                blocking(move || dir.put_new(&k, &d)).await?
            }
            Backend::S3(s3) => s3.put_new(&key, data).await?,
        };
        if !created {
            let stored = lineage::parse_lineage(&key, &self.get_object(&key).await?)?;
            if &stored != record {
                return Err(StoreError::Conflict {
                    key,
                    reason: format!("stored {stored:?}, writing {record:?}"),
                });
            }
        }
        tracing::info!(lineage = %record.id, parent = ?record.parent, cluster_uid = %record.cluster_uid, first_seq = record.first_seq, "lineage record stored");
        Ok(())
    }

    /// Every lineage record, by creation time. Malformed records are
    /// logged and skipped.
    pub async fn list_lineages(&self) -> Result<Vec<LineageRecord>> {
        let mut out = self
            .read_entries(lineage::LINEAGES, lineage::parse_lineage)
            .await?;
        out.sort_by(|a, b| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)));
        Ok(out)
    }

    /// The place's head and its version, or `None` when there is none.
    pub async fn read_head(&self) -> Result<Option<(Head, HeadVersion)>> {
        let read = retry::with_retry(&self.retry, "get", &self.retries, || async move {
            match &self.backend {
                Backend::Local(dir) => {
                    let dir = dir.clone();
                    blocking(move || dir.get_versioned(head::HEAD)).await
                }
                Backend::S3(s3) => s3
                    .get_versioned(head::HEAD)
                    .await
                    .map(|o| o.map(|(b, v)| (b.to_vec(), v))),
            }
        })
        .await?;
        match read {
            None => Ok(None),
            Some((bytes, version)) => Ok(Some((
                head::parse_head(head::HEAD, &bytes)?,
                HeadVersion(version),
            ))),
        }
    }

    /// Replaces the place's head with `head` if it is still at `expected`
    /// (`None`: if there is none), atomically: of two writers swapping
    /// from one version, one gets [`Swap::Swapped`] and the other
    /// [`Swap::Lost`]. Only for a store whose
    /// [`Store::probe_conditional_writes`] found compare-and-swap; on
    /// another the condition may be ignored.
    pub async fn swap_head(&self, expected: Option<&HeadVersion>, head: &Head) -> Result<Swap> {
        let data = json(head)?;
        let expected = expected.map(|v| v.0.clone());
        let swapped = retry::with_retry(&self.retry, "swap", &self.retries, || {
            let (data, expected) = (data.clone(), expected.clone());
            async move {
                match &self.backend {
                    Backend::Local(dir) => {
                        let dir = dir.clone();
                        blocking(move || dir.swap(head::HEAD, expected.as_deref(), &data)).await
                    }
                    Backend::S3(s3) => s3.swap(head::HEAD, expected.as_deref(), data).await,
                }
            }
        })
        .await?;
        Ok(swapped.map_or(Swap::Lost, |v| Swap::Swapped(HeadVersion(v))))
    }

    /// Low level: the size of the object at `key`, or `None` when there is
    /// none, with retries.
    pub async fn size_of(&self, key: &str) -> Result<Option<u64>> {
        retry::with_retry(&self.retry, "head", &self.retries, || async move {
            match &self.backend {
                Backend::Local(dir) => {
                    let (dir, key) = (dir.clone(), key.to_owned());
                    blocking(move || dir.size(&key)).await
                }
                Backend::S3(s3) => s3.size(key).await,
            }
        })
        .await
    }

    /// Every snapshot in the catalog, oldest first. Malformed entries are
    /// logged and skipped: one bad entry must not hide the others.
    pub async fn list_snapshots(&self) -> Result<Vec<SnapshotEntry>> {
        let mut out = self
            .read_entries(layout::CATALOG_SNAPSHOTS, layout::parse_snapshot_entry)
            .await?;
        out.sort_by(|a, b| (a.seq, &a.id).cmp(&(b.seq, &b.id)));
        Ok(out)
    }

    /// Every segment in the catalog, by first seq.
    pub async fn list_segments(&self) -> Result<Vec<SegmentEntry>> {
        let mut out = self
            .read_entries(layout::CATALOG_SEGMENTS, layout::parse_segment_entry)
            .await?;
        out.sort_by(|a, b| (a.first_seq, &a.id).cmp(&(b.first_seq, &b.id)));
        Ok(out)
    }

    /// Reads and parses every catalog entry under `prefix`. An entry larger
    /// than [`layout::MAX_CATALOG_ENTRY_BYTES`] (by its listed size or by
    /// what was read) or one that does not parse is logged and skipped; one
    /// deleted between list and read (a concurrent prune) is skipped too.
    async fn read_entries<T>(
        &self,
        prefix: &str,
        parse: impl Fn(&str, &[u8]) -> Result<T>,
    ) -> Result<Vec<T>> {
        let mut out = Vec::new();
        for info in self.list(prefix).await? {
            if info.size > layout::MAX_CATALOG_ENTRY_BYTES {
                tracing::warn!(key = %info.key, size = info.size, limit = layout::MAX_CATALOG_ENTRY_BYTES, "skipping catalog entry: too large");
                continue;
            }
            let bytes = match self.get_object(&info.key).await {
                Ok(b) => b,
                Err(StoreError::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            };
            match parse(&info.key, &bytes) {
                Ok(entry) => out.push(entry),
                Err(e) => tracing::warn!(key = %info.key, error = %e, "skipping catalog entry"),
            }
        }
        Ok(out)
    }

    /// Reads a snapshot's file and checks its size and hash.
    pub async fn get_snapshot(&self, entry: &SnapshotEntry) -> Result<Bytes> {
        self.get_verified(&entry.data_key(), entry.size, &entry.sha256)
            .await
    }

    /// Reads a segment's file and checks its size and hash.
    pub async fn get_segment(&self, entry: &SegmentEntry) -> Result<Bytes> {
        self.get_verified(&entry.data_key(), entry.size, &entry.sha256)
            .await
    }

    /// Removes a snapshot: catalog entry first, so it is never listed
    /// without its data.
    pub async fn delete_snapshot(&self, entry: &SnapshotEntry) -> Result<()> {
        self.delete_object(&entry.catalog_key()).await?;
        self.delete_object(&entry.data_key()).await
    }

    /// Removes a segment: catalog entry first.
    pub async fn delete_segment(&self, entry: &SegmentEntry) -> Result<()> {
        self.delete_object(&entry.catalog_key()).await?;
        self.delete_object(&entry.data_key()).await
    }

    /// Finds data objects that have no catalog entry, and (local stores)
    /// temporary files of interrupted writes, last written more than
    /// `grace_ms` before `now_ms` (younger ones may be uploads in flight),
    /// and deletes them unless `dry_run`.
    pub async fn collect_garbage(
        &self,
        now_ms: i64,
        grace_ms: i64,
        dry_run: bool,
    ) -> Result<GarbageReport> {
        let mut listed = std::collections::BTreeSet::new();
        for info in self.list("catalog/").await? {
            if let Some(data) = layout::data_key_of_catalog(&info.key) {
                listed.insert(data);
            }
        }
        let mut orphans = Vec::new();
        for prefix in [layout::SNAPSHOTS, layout::SEGMENTS] {
            for info in self.list(prefix).await? {
                if !listed.contains(&info.key) && now_ms.saturating_sub(info.modified_ms) > grace_ms
                {
                    orphans.push(info);
                }
            }
        }
        if let Backend::Local(dir) = &self.backend {
            // Temporary files of writes a crash interrupted; a young one may
            // be a write in flight.
            let dir = dir.clone();
            for info in blocking(move || dir.temp_files()).await? {
                if now_ms.saturating_sub(info.modified_ms) > grace_ms {
                    orphans.push(info);
                }
            }
        }
        if !dry_run {
            for o in &orphans {
                self.delete_object(&o.key).await?;
                tracing::info!(key = %o.key, size = o.size, "removed orphaned data object");
            }
        }
        Ok(GarbageReport {
            orphans,
            deleted: !dry_run,
        })
    }

    async fn get_verified(&self, key: &str, size: u64, sha256: &str) -> Result<Bytes> {
        let data = self.get_object(key).await?;
        let got = u64::try_from(data.len()).unwrap_or(u64::MAX);
        if got != size {
            return Err(StoreError::Mismatch {
                key: key.to_owned(),
                reason: format!("size {got}, catalog says {size}"),
            });
        }
        let actual = hash(data.clone()).await?;
        if actual != sha256 {
            return Err(StoreError::Mismatch {
                key: key.to_owned(),
                reason: format!("sha256 {actual}, catalog says {sha256}"),
            });
        }
        Ok(data)
    }

    /// Low level: writes one object, with retries.
    pub async fn put_object(&self, key: &str, data: Bytes) -> Result<()> {
        retry::with_retry(&self.retry, "put", &self.retries, || {
            let data = data.clone();
            async move {
                match &self.backend {
                    Backend::Local(dir) => {
                        let (dir, key) = (dir.clone(), key.to_owned());
                        blocking(move || dir.put(&key, &data)).await
                    }
                    Backend::S3(s3) => s3.put(key, data).await,
                }
            }
        })
        .await
    }

    /// Low level: reads one object, with retries.
    pub async fn get_object(&self, key: &str) -> Result<Bytes> {
        retry::with_retry(&self.retry, "get", &self.retries, || async move {
            match &self.backend {
                Backend::Local(dir) => {
                    let (dir, key) = (dir.clone(), key.to_owned());
                    blocking(move || dir.get(&key)).await.map(Bytes::from)
                }
                Backend::S3(s3) => s3.get(key).await,
            }
        })
        .await
    }

    /// Low level: deletes one object (missing is fine), with retries.
    pub async fn delete_object(&self, key: &str) -> Result<()> {
        retry::with_retry(&self.retry, "delete", &self.retries, || async move {
            match &self.backend {
                Backend::Local(dir) => {
                    let (dir, key) = (dir.clone(), key.to_owned());
                    blocking(move || dir.delete(&key)).await
                }
                Backend::S3(s3) => s3.delete(key).await,
            }
        })
        .await
    }

    /// Low level: the names of the directories directly below `prefix`
    /// (ending in `/`, or empty for the root), with retries.
    pub async fn list_dirs(&self, prefix: &str) -> Result<Vec<String>> {
        retry::with_retry(&self.retry, "list", &self.retries, || async move {
            match &self.backend {
                Backend::Local(dir) => {
                    let (dir, prefix) = (dir.clone(), prefix.to_owned());
                    blocking(move || dir.list_dirs(&prefix)).await
                }
                Backend::S3(s3) => s3.list_dirs(prefix).await,
            }
        })
        .await
    }

    /// Low level: lists objects under `prefix` (ending in `/`), with retries.
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        retry::with_retry(&self.retry, "list", &self.retries, || async move {
            match &self.backend {
                Backend::Local(dir) => {
                    let (dir, prefix) = (dir.clone(), prefix.to_owned());
                    blocking(move || dir.list(&prefix)).await
                }
                Backend::S3(s3) => s3.list(prefix).await,
            }
        })
        .await
    }
}

fn json<T: serde::Serialize>(value: &T) -> Result<Bytes> {
    serde_json::to_vec_pretty(value)
        .map(Bytes::from)
        .map_err(|e| StoreError::Catalog {
            key: String::new(),
            reason: e.to_string(),
        })
}

async fn hash(data: Bytes) -> Result<String> {
    blocking(move || Ok(layout::sha256_hex(&data))).await
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::io("blocking task", "", std::io::Error::other(e.to_string())))?
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A crash between a local write's create and its rename leaves a
    /// `.tmp-*` file that no listing shows; garbage collection removes it
    /// once it is older than the grace period, and never a young one.
    #[tokio::test]
    async fn garbage_collection_removes_stale_temp_files_of_a_local_store() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("store");
        let store = Store::open(&StoreConfig::Local { path: root.clone() })
            .await
            .unwrap();
        store
            .put_object("catalog/snapshots/kept.json", Bytes::from_static(b"{}"))
            .await
            .unwrap();
        let torn = root.join("snapshots/.tmp-4242-7");
        std::fs::create_dir_all(torn.parent().unwrap()).unwrap();
        std::fs::write(&torn, b"torn upload").unwrap();
        let now = now_ms();

        let young = store.collect_garbage(now, 3_600_000, false).await.unwrap();
        assert!(young.orphans.is_empty(), "{young:?}");
        assert!(torn.exists());

        let dry = store
            .collect_garbage(now + 7_200_000, 3_600_000, true)
            .await
            .unwrap();
        assert_eq!(dry.orphans.len(), 1, "{dry:?}");
        assert_eq!(dry.orphans[0].key, "snapshots/.tmp-4242-7");
        assert!(torn.exists(), "a dry run deletes nothing");

        let old = store
            .collect_garbage(now + 7_200_000, 3_600_000, false)
            .await
            .unwrap();
        assert_eq!(old.orphans.len(), 1);
        assert!(!torn.exists());
        assert!(root.join("catalog/snapshots/kept.json").exists());
    }

    /// A name is written once: the same file again (a retried upload) is
    /// kept, anything else under the name is a conflict naming the key; a
    /// lineage record is created once.
    #[tokio::test]
    async fn a_name_written_twice_with_different_content_is_a_conflict() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(&StoreConfig::Local {
            path: tmp.path().join("store"),
        })
        .await
        .unwrap();
        let meta = SegmentMeta {
            first_seq: 1,
            last_seq: 3,
            first_time_ms: 1,
            last_time_ms: 3,
            events: 3,
            encrypted: false,
            resource_set: None,
        };
        let chain = Chain {
            lineage: Some("aa".repeat(16)),
            prev_sha256: None,
        };
        let data = Bytes::from_static(b"segment bytes");
        let first = store
            .put_segment_in(meta.clone(), data.clone(), chain.clone())
            .await
            .unwrap();
        store
            .put_segment_in(meta.clone(), data.clone(), chain.clone())
            .await
            .unwrap();
        let other = Chain {
            lineage: Some("bb".repeat(16)),
            prev_sha256: None,
        };
        let err = store
            .put_segment_in(meta.clone(), data.clone(), other)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::Conflict { key, .. } if *key == first.catalog_key()),
            "{err}"
        );
        // A data object whose bytes are not what its name says.
        store
            .put_object(&first.data_key(), Bytes::from_static(b"something else"))
            .await
            .unwrap();
        let err = store.put_segment_in(meta, data, chain).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::Conflict { key, .. } if *key == first.data_key()),
            "{err}"
        );
        assert!(
            err.to_string().contains("two recorders or two histories"),
            "{err}"
        );

        let rec = LineageRecord {
            version: lineage::LINEAGE_VERSION,
            id: lineage::new_id().unwrap(),
            parent: None,
            cluster_uid: "uid".into(),
            created_by: CreatedBy::default(),
            created_at_ms: 1,
            first_seq: 1,
        };
        store.put_lineage(&rec).await.unwrap();
        store.put_lineage(&rec).await.unwrap();
        let mut changed = rec.clone();
        changed.cluster_uid = "other".into();
        assert!(matches!(
            store.put_lineage(&changed).await,
            Err(StoreError::Conflict { .. })
        ));
        assert_eq!(store.list_lineages().await.unwrap(), vec![rec]);
    }

    /// A catalog entry is a few hundred bytes; a huge object under a
    /// catalog key (a crafted or corrupted store) is skipped unread, and
    /// the real entries beside it are still listed.
    #[tokio::test]
    async fn an_oversized_catalog_entry_is_skipped_and_the_others_listed() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("store");
        let store = Store::open(&StoreConfig::Local { path: root.clone() })
            .await
            .unwrap();
        let meta = SnapshotMeta {
            seq: 7,
            time_ms: 1,
            objects: 1,
            label: None,
            encrypted: false,
            resource_set: None,
        };
        let good = store
            .put_snapshot(meta, Bytes::from_static(b"snapshot bytes"))
            .await
            .unwrap();
        let huge = vec![b' '; usize::try_from(layout::MAX_CATALOG_ENTRY_BYTES).unwrap() + 1];
        let key = format!(
            "{}{}.json",
            layout::CATALOG_SNAPSHOTS,
            layout::snapshot_id(9, "00ff")
        );
        store.put_object(&key, Bytes::from(huge)).await.unwrap();
        let listed = store.list_snapshots().await.unwrap();
        assert_eq!(listed, vec![good]);
        let err = layout::parse_snapshot_entry(&key, &vec![b' '; 70_000]).unwrap_err();
        assert!(
            err.to_string()
                .contains("more than a catalog entry may hold"),
            "{err}"
        );
    }
}
