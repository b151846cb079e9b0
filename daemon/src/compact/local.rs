//! The compactor's local directory, `<data_dir>/compact/`:
//!
//! ```text
//! progress.json                      what is sealed, shipped and snapshotted
//! segments/<first:020>-<last:020>.seg  sealed segments, plain
//! snapshots/<seq:020>.snap            local snapshots, plain
//! ```
//!
//! Files are plain even when the store is encrypted: the daemon holds no
//! private key, so it folds the next snapshot from these. They are no more
//! exposed than the journal itself (0600 files in a 0700 directory). A
//! segment is removed once shipped and folded into a local snapshot; a
//! snapshot once shipped and superseded. Every write is atomic (temp file,
//! fsync, rename, directory fsync), and `progress.json` is written after
//! the files it names, so a crash leaves at worst an unnamed file that the
//! next start removes.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use rewind_history::store::layout::RecordedResourceSet;
use rewind_history::store::local::LocalDir;

use super::error::{CompactError, Result};

/// Version of `progress.json`.
const PROGRESS_VERSION: u32 = 1;

/// A snapshot made locally.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalSnapshot {
    /// Consistent at this seq.
    pub seq: u64,
    /// Time of that seq.
    pub time_ms: i64,
    /// Objects in it.
    pub objects: u64,
    /// Plain size in bytes.
    pub size: u64,
    /// Label of an on-demand snapshot.
    pub label: Option<String>,
    /// Store id once shipped.
    pub stored_id: Option<String>,
}

impl LocalSnapshot {
    /// Key of its local file.
    #[must_use]
    pub fn key(&self) -> String {
        snapshot_key(self.seq, self.label.as_deref())
    }
}

/// Local key of a snapshot.
#[must_use]
pub fn snapshot_key(seq: u64, label: Option<&str>) -> String {
    // A labelled and a scheduled snapshot may share a seq.
    match label {
        Some(_) => format!("snapshots/{seq:020}-labelled.snap"),
        None => format!("snapshots/{seq:020}.snap"),
    }
}

/// Local key of a segment.
#[must_use]
pub fn segment_key(first: u64, last: u64) -> String {
    format!("segments/{first:020}-{last:020}.seg")
}

/// Parses a local segment key back into its range.
#[must_use]
pub fn parse_segment_key(key: &str) -> Option<(u64, u64)> {
    let stem = key.strip_prefix("segments/")?.strip_suffix(".seg")?;
    let (a, b) = stem.split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// What `progress.json` records.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// File version.
    pub version: u32,
    /// Every event with `seq <= sealed_upto` is in a local or stored segment.
    pub sealed_upto: u64,
    /// Every segment with `last <= shipped_upto` is in the store.
    pub shipped_upto: u64,
    /// Local snapshots, oldest first; the last one is the fold base.
    pub snapshots: Vec<LocalSnapshot>,
    /// Stored segments whose events may still be in the journal, as
    /// `(last_seq, newest event time in ms)`: the journal drops them once
    /// they are older than the local window, however long after storing
    /// that is. Absent in files from before it existed.
    #[serde(default)]
    pub untrimmed: Vec<(u64, i64)>,
    /// The store lineage the files are shipped in; `None`: entries without
    /// one (a compactor run outside the service).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lineage: Option<String>,
    /// SHA-256 of the last segment stored in the lineage, which the next
    /// one names; `None` right after the lineage's start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev_sha256: Option<String>,
    /// Set when a lineage starts fresh: its first stored file must be a
    /// snapshot, so segments wait until one is folded.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub snapshot_first: bool,
    /// The resource sets recorded under, oldest first: each in force from
    /// its `from_seq` until the next one's. Kept while an unstored file may
    /// need it (see [`Progress::forget_sets_before`]).
    #[serde(default)]
    pub resource_sets: Vec<SetInForce>,
}

/// A resource set and the first seq recorded under it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetInForce {
    /// The first seq recorded under `set`.
    pub from_seq: u64,
    /// The set, as the configuration names it.
    pub set: RecordedResourceSet,
}

impl Progress {
    /// The journal may drop events below the returned seq: they are sealed,
    /// stored, and were all observed before `cutoff_ms`.
    #[must_use]
    pub fn trim_bound(&self, cutoff_ms: i64) -> Option<u64> {
        // Segments are stored in seq order, so a prefix of old ones is the
        // only part that may go; a young segment stops the walk.
        let mut bound = None;
        for &(last, newest) in &self.untrimmed {
            if newest >= cutoff_ms || last > self.shipped_upto {
                break;
            }
            bound = Some(last + 1);
        }
        bound
    }

    /// The resource set in force at `seq`: the newest one recorded from
    /// `seq` or before. `None` before the first one (files sealed by a
    /// build that did not record sets).
    #[must_use]
    pub fn set_at(&self, seq: u64) -> Option<&RecordedResourceSet> {
        self.resource_sets
            .iter()
            .rev()
            .find(|s| s.from_seq <= seq)
            .map(|s| &s.set)
    }

    /// Records `set` as in force from `from_seq`, unless it already is.
    /// Returns whether it was added.
    pub fn set_from(&mut self, from_seq: u64, set: RecordedResourceSet) -> bool {
        if self.resource_sets.last().is_some_and(|s| s.set == set) {
            return false;
        }
        // A change with no event under the previous set replaces it.
        self.resource_sets.retain(|s| s.from_seq < from_seq);
        self.resource_sets.push(SetInForce { from_seq, set });
        true
    }

    /// Drops the sets no file from `seq` on can need: every one older than
    /// the set in force at `seq`.
    pub fn forget_sets_before(&mut self, seq: u64) {
        let keep_from = self
            .resource_sets
            .iter()
            .rposition(|s| s.from_seq <= seq)
            .unwrap_or(0);
        self.resource_sets.drain(..keep_from);
    }

    /// The newest local snapshot, the base of the next fold.
    #[must_use]
    pub fn base(&self) -> Option<&LocalSnapshot> {
        self.snapshots
            .iter()
            .rev()
            .find(|s| s.label.is_none())
            .or(self.snapshots.last())
    }
}

/// The local directory.
#[derive(Debug, Clone)]
pub struct LocalFiles {
    /// 0700 root, atomic 0600 writes.
    dir: LocalDir,
    /// Its path, for messages.
    root: PathBuf,
}

impl LocalFiles {
    /// Opens (creates) `root`.
    pub fn open(root: &Path) -> Result<Self> {
        Ok(Self {
            dir: LocalDir::open(root)?,
            root: root.to_owned(),
        })
    }

    /// Reads `progress.json`; a fresh directory starts at zero.
    pub fn load_progress(&self) -> Result<Progress> {
        match self.dir.get("progress.json") {
            Ok(bytes) => {
                let p: Progress =
                    serde_json::from_slice(&bytes).map_err(|e| CompactError::Progress {
                        path: self.root.join("progress.json"),
                        reason: e.to_string(),
                    })?;
                if p.version != PROGRESS_VERSION {
                    return Err(CompactError::Progress {
                        path: self.root.join("progress.json"),
                        reason: format!("unsupported version {}", p.version),
                    });
                }
                Ok(p)
            }
            Err(rewind_history::store::StoreError::NotFound { .. }) => Ok(Progress {
                version: PROGRESS_VERSION,
                ..Progress::default()
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Writes `progress.json` atomically.
    pub fn save_progress(&self, p: &Progress) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(p).map_err(|e| CompactError::Progress {
            path: self.root.join("progress.json"),
            reason: e.to_string(),
        })?;
        Ok(self.dir.put("progress.json", &bytes)?)
    }

    /// Writes a file atomically.
    pub fn put(&self, key: &str, bytes: &[u8]) -> Result<()> {
        Ok(self.dir.put(key, bytes)?)
    }

    /// Writes a file atomically from a stream (see [`LocalDir::put_with`]).
    pub fn put_with(
        &self,
        key: &str,
        write: impl FnOnce(
            std::io::BufWriter<std::fs::File>,
        ) -> Result<std::io::BufWriter<std::fs::File>>,
    ) -> Result<()> {
        self.dir.put_with(key, write)
    }

    /// Reads a file.
    pub fn get(&self, key: &str) -> Result<Bytes> {
        Ok(Bytes::from(self.dir.get(key)?))
    }

    /// Removes a file (missing is fine).
    pub fn delete(&self, key: &str) -> Result<()> {
        Ok(self.dir.delete(key)?)
    }

    /// Local segments `(first, last, size)`, by first seq.
    pub fn segments(&self) -> Result<Vec<(u64, u64, u64)>> {
        let mut out: Vec<_> = self
            .dir
            .list("segments/")?
            .into_iter()
            .filter_map(|o| parse_segment_key(&o.key).map(|(a, b)| (a, b, o.size)))
            .collect();
        out.sort_unstable();
        Ok(out)
    }

    /// Bytes of every local file (segments and snapshots).
    pub fn bytes(&self) -> Result<u64> {
        let mut total = 0u64;
        for prefix in ["segments/", "snapshots/"] {
            total += self.dir.list(prefix)?.iter().map(|o| o.size).sum::<u64>();
        }
        Ok(total)
    }

    /// Removes files `progress` does not account for: a crash between
    /// writing a file and recording it.
    pub fn remove_strays(&self, p: &Progress) -> Result<()> {
        for (first, last, _) in self.segments()? {
            if last > p.sealed_upto || first > p.sealed_upto {
                tracing::warn!(
                    first,
                    last,
                    "removing a segment sealed before a crash but never recorded"
                );
                self.delete(&segment_key(first, last))?;
            }
        }
        let known: std::collections::BTreeSet<String> =
            p.snapshots.iter().map(LocalSnapshot::key).collect();
        for o in self.dir.list("snapshots/")? {
            if !known.contains(&o.key) {
                self.delete(&o.key)?;
            }
        }
        Ok(())
    }
}

/// A writer that counts the bytes through it (the size of a streamed file).
#[derive(Debug)]
pub struct Counting<W> {
    /// Where the bytes go.
    inner: W,
    /// Bytes written so far.
    count: u64,
}

impl<W> Counting<W> {
    /// Counts what goes to `inner`.
    pub fn new(inner: W) -> Self {
        Self { inner, count: 0 }
    }

    /// Bytes written so far.
    #[must_use]
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The inner writer.
    pub fn into_inner(self) -> W {
        self.inner
    }
}

impl<W: std::io::Write> std::io::Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += u64::try_from(n).unwrap_or(u64::MAX);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
