//! Shipping: unstored segments, then unstored snapshots, go to the store,
//! each encrypted to the configured age recipients first. Once stored, the
//! local files no longer needed are removed and the journal is trimmed
//! ([`Trimmer`]); after every attempt the disk budget is recomputed
//! ([`DiskAccount`]).
//!
//! Files go into the lineage `progress.json` names, each segment naming
//! the previous one's digest. A lineage that starts fresh ships a snapshot
//! first: its segments wait until one is folded, so the lineage never
//! depends on another history's state.
//!
//! Nothing is written unless the recorder's [`Leadership`] allows it (the
//! holder of the leader Lease, before its renew deadline; always without a
//! Lease), checked before every write; and nothing once another recorder
//! started a lineage forked from this one's (a takeover, or a second
//! recorder on the same prefix), which the shipper looks for in the
//! store's lineage records before each round: what it would write then is
//! a fork, so it stops with an error naming the other lineage and its
//! creator.
//!
//! On a store with compare-and-swap, the shipper also swaps the place's
//! head (`rewind_history::store::head`) before every file once the fence
//! is on ([`Shipper::enable_fence`]): the head names this recorder's
//! lineage (and, for people, its epoch), and once the writer of a child
//! lineage (a standby that took over, a second recorder) has swapped it,
//! this one's next swap fails and it writes nothing more
//! ([`CompactError::Fenced`]), whatever its own clock says about its
//! Lease. Files a deposed writer had in flight when the head changed land
//! beyond the child's fork point, where restore never reads them through
//! the child.
//!
//! A store that is down only delays shipping: files wait locally, the
//! journal keeps its events, and the disk budget warns.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use rewind_format::{Limits, SegmentReader};
use rewind_history::store::head::{self, HEAD_VERSION};
use rewind_history::store::{
    Chain, Head, HeadVersion, SegmentEntry, SegmentMeta, SnapshotEntry, SnapshotMeta, Store, Swap,
};

use super::disk::DiskAccount;
use super::error::{CompactError, Result};
use super::ledger::Ledger;
use super::local::{LocalSnapshot, segment_key};
use super::settings::LiveSettings;
use super::stats::CompactStats;
use super::trim::Trimmer;
use crate::leader::{Leadership, Role};

/// Moves local files into the store.
#[derive(Debug)]
pub struct Shipper {
    /// Where files go.
    store: Store,
    /// What to ship, and where `shipped_upto` and store ids are recorded.
    ledger: Arc<Ledger>,
    /// Encryption recipients.
    settings: LiveSettings,
    /// Shipping figures.
    stats: Arc<CompactStats>,
    /// Trims the journal after a ship.
    trimmer: Arc<Trimmer>,
    /// Recomputes local bytes after a ship.
    disk: Arc<DiskAccount>,
    /// Serialises ships (the shipper task and `snapshot --wait`).
    lock: tokio::sync::Mutex<()>,
    /// What the store already held of this lineage when the shipper
    /// started, read on the first ship: a crash between storing a file and
    /// saving the progress leaves a file the next start must not store a
    /// second time (encrypted, it would differ and claim the same seqs).
    found: tokio::sync::Mutex<Option<Found>>,
    /// Leadership: without the Lease nothing is written.
    leadership: std::sync::RwLock<Leadership>,
    /// The head fence, on a store with compare-and-swap.
    fence: std::sync::Mutex<Fence>,
}

/// The head fence's state.
#[derive(Debug, Default, Clone)]
struct Fence {
    /// Whether the head is swapped before every write.
    on: bool,
    /// This writer's epoch.
    epoch: u64,
    /// This writer's identity.
    holder: String,
    /// The head's version after this writer's last swap.
    held: Option<HeadVersion>,
    /// Set once the head named a writer this one may not replace: that
    /// never changes back (the head only passes to children), so later
    /// writes are refused without asking the store again.
    refused: Option<super::error::Fenced>,
}

/// Files of the shipper's lineage found in the store at start.
#[derive(Debug, Default)]
struct Found {
    /// Segments by `(first_seq, last_seq)`.
    segments: std::collections::HashMap<(u64, u64), SegmentEntry>,
    /// Snapshots by `(seq, label)`.
    snapshots: std::collections::HashMap<(u64, Option<String>), SnapshotEntry>,
}

impl Shipper {
    /// A shipper into `store`.
    #[must_use]
    pub fn new(
        store: Store,
        ledger: Arc<Ledger>,
        settings: LiveSettings,
        stats: Arc<CompactStats>,
        trimmer: Arc<Trimmer>,
        disk: Arc<DiskAccount>,
    ) -> Self {
        Self {
            store,
            ledger,
            settings,
            stats,
            trimmer,
            disk,
            lock: tokio::sync::Mutex::new(()),
            found: tokio::sync::Mutex::new(None),
            leadership: std::sync::RwLock::new(Leadership::unconfigured()),
            fence: std::sync::Mutex::new(Fence::default()),
        }
    }

    fn fence_state(&self) -> std::sync::MutexGuard<'_, Fence> {
        match self.fence.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Swaps the store's head before every write from now on, as the
    /// writer `holder` at `epoch` (only on a store whose probe found
    /// compare-and-swap).
    pub fn enable_fence(&self, epoch: u64, holder: String) {
        *self.fence_state() = Fence {
            on: true,
            epoch,
            holder,
            held: None,
            refused: None,
        };
    }

    /// Stops swapping the head (tests: the control without a fence).
    #[cfg(test)]
    pub(crate) fn disable_fence(&self) {
        *self.fence_state() = Fence::default();
    }

    /// The leadership gate, then the head fence: what is checked before
    /// every write to the store (files, and the deletions of a prune).
    pub async fn before_write(&self) -> Result<()> {
        self.may_write()?;
        self.swap_head().await
    }

    /// Swaps the head to name this recorder's lineage and epoch. From the
    /// version this recorder last wrote, one conditional write; otherwise
    /// (the first swap, or another writer's since) the head is read and
    /// replaced only if [`head::may_replace`] allows it.
    async fn swap_head(&self) -> Result<()> {
        let fence = self.fence_state().clone();
        let Some(ours) = self.ledger.progress().lineage else {
            return Ok(());
        };
        if !fence.on {
            return Ok(());
        }
        if let Some(refused) = fence.refused {
            return Err(CompactError::Fenced(Box::new(refused)));
        }
        let next = Head {
            version: HEAD_VERSION,
            lineage: ours.clone(),
            epoch: fence.epoch,
            holder: fence.holder.clone(),
            updated_at_ms: rewind_history::clock::now_ms(),
        };
        if let Some(held) = &fence.held
            && let Swap::Swapped(v) = self.store.swap_head(Some(held), &next).await?
        {
            self.fence_state().held = Some(v);
            return Ok(());
        }
        self.fence_state().held = None;
        let current = self.store.read_head().await?;
        let expected = match current {
            None => None,
            Some((head, version)) => {
                let parent = self
                    .store
                    .list_lineages()
                    .await?
                    .into_iter()
                    .find(|l| l.id == ours)
                    .and_then(|l| l.parent)
                    .map(|p| p.lineage);
                if let Err(why) = head::may_replace(&head, &ours, parent.as_deref()) {
                    let fenced = super::error::Fenced {
                        ours,
                        epoch: fence.epoch,
                        head_lineage: head.lineage,
                        head_epoch: head.epoch,
                        head_holder: head.holder,
                        reason: format!("it may not be replaced: {why}"),
                    };
                    self.fence_state().refused = Some(fenced.clone());
                    let err = CompactError::Fenced(Box::new(fenced));
                    tracing::error!(error = %err, "fenced off the store by its head");
                    return Err(err);
                }
                Some(version)
            }
        };
        match self.store.swap_head(expected.as_ref(), &next).await? {
            Swap::Swapped(v) => {
                tracing::debug!(lineage = %next.lineage, epoch = next.epoch, "store head swapped");
                self.fence_state().held = Some(v);
                Ok(())
            }
            Swap::Lost => Err(CompactError::HeadMoved),
        }
    }

    /// Ships only while `leadership` allows it (checked before every
    /// write to the store).
    pub fn set_leadership(&self, leadership: Leadership) {
        match self.leadership.write() {
            Ok(mut l) => *l = leadership,
            Err(poisoned) => *poisoned.into_inner() = leadership,
        }
    }

    /// Whether this recorder may write to the store now; the error names
    /// why not.
    pub fn may_write(&self) -> Result<()> {
        let l = match self.leadership.read() {
            Ok(l) => l.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        if l.may_ship() {
            return Ok(());
        }
        Err(CompactError::NotLeader {
            role: match l.role() {
                Role::Leader => "past its renew deadline",
                other => other.as_str(),
            },
            lease: l.status().lease.unwrap_or_default(),
        })
    }

    /// Refuses to ship once another recorder started a lineage forked from
    /// this one's: it took over (or was started without a Lease on the
    /// same prefix), and what this recorder would write now is a fork.
    async fn check_not_taken_over(&self) -> Result<()> {
        let Some(ours) = self.ledger.progress().lineage else {
            return Ok(());
        };
        let lineages = self.store.list_lineages().await?;
        if let Some(child) = lineages
            .iter()
            .find(|l| l.parent.as_ref().is_some_and(|p| p.lineage == ours))
        {
            let err = CompactError::TakenOver(Box::new(super::error::TakenOver {
                ours,
                child: child.id.clone(),
                fork_seq: child.parent.as_ref().map_or(0, |p| p.fork_seq),
                host: child.created_by.host.clone(),
                data_dir: child.created_by.data_dir.clone(),
                when: jiff::Timestamp::from_millisecond(child.created_at_ms)
                    .map_or_else(|_| format!("ms:{}", child.created_at_ms), |t| t.to_string()),
            }));
            tracing::error!(error = %err, "another recorder forked this recorder's lineage");
            return Err(err);
        }
        Ok(())
    }

    /// The store files go to.
    #[must_use]
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Stores every unstored segment, then every unstored snapshot, then
    /// removes local files no longer needed and trims the journal. Stops at
    /// the first store failure (the next call resumes there).
    pub async fn ship(&self) -> Result<()> {
        let _guard = self.lock.lock().await;
        let result = self.ship_pending().await;
        match &result {
            Err(
                e @ (CompactError::NotLeader { .. }
                | CompactError::TakenOver(_)
                | CompactError::Fenced(_)
                | CompactError::HeadMoved),
            ) => {
                tracing::debug!(error = %e, "not shipping; files wait locally");
            }
            Err(e) => {
                self.stats.store_down.store(true, Ordering::Relaxed);
                self.stats.store_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "store unavailable; files wait locally");
            }
            Ok(()) => self.stats.store_down.store(false, Ordering::Relaxed),
        }
        self.disk.account();
        result
    }

    fn encrypt(&self, plain: Bytes) -> Result<(Bytes, bool)> {
        let settings = self.settings.get();
        if settings.recipients.is_empty() {
            return Ok((plain, false));
        }
        let enc = rewind_format::crypto::encrypt(&plain, &settings.recipients)?;
        Ok((Bytes::from(enc), true))
    }

    /// Reads, once, what the store holds of this lineage.
    async fn found(&self) -> Result<()> {
        let mut found = self.found.lock().await;
        if found.is_some() {
            return Ok(());
        }
        let lineage = self.ledger.progress().lineage;
        let mut f = Found::default();
        if lineage.is_some() {
            for s in self.store.list_segments().await? {
                if s.lineage == lineage {
                    f.segments.insert((s.first_seq, s.last_seq), s);
                }
            }
            for s in self.store.list_snapshots().await? {
                if s.lineage == lineage {
                    f.snapshots.insert((s.seq, s.label.clone()), s);
                }
            }
        }
        *found = Some(f);
        Ok(())
    }

    /// A segment of this lineage the store already holds for the range,
    /// linked as this one would be.
    async fn stored_segment(
        &self,
        range: (u64, u64),
        prev: Option<&String>,
    ) -> Option<SegmentEntry> {
        let found = self.found.lock().await;
        found
            .as_ref()
            .and_then(|f| f.segments.get(&range))
            .filter(|e| e.prev_sha256.as_ref() == prev)
            .cloned()
    }

    async fn ship_pending(&self) -> Result<()> {
        self.may_write()?;
        self.check_not_taken_over().await?;
        self.found().await?;
        let files = self.ledger.files();
        if self.ledger.progress().snapshot_first {
            if !self.ship_snapshots().await? {
                tracing::debug!("new lineage: segments wait for its first snapshot");
                return Ok(());
            }
            self.ledger.update(|p| p.snapshot_first = false)?;
        }
        let segments = files.segments()?;
        for (first, last, _) in segments {
            let p = self.ledger.progress();
            if last <= p.shipped_upto || last > p.sealed_upto {
                continue;
            }
            if let Some(entry) = self
                .stored_segment((first, last), p.prev_sha256.as_ref())
                .await
            {
                tracing::info!(id = %entry.id, "segment already stored before a restart; not stored again");
                self.ledger.update(|p| {
                    p.shipped_upto = last;
                    p.untrimmed.push((last, entry.last_time_ms));
                    p.prev_sha256 = Some(entry.sha256.clone());
                })?;
                continue;
            }
            let key = segment_key(first, last);
            let plain = files.get(&key)?;
            let header = SegmentReader::open(&plain, Some(&key), Limits::default())?
                .header()
                .clone();
            let (data, encrypted) = self.encrypt(plain)?;
            let meta = SegmentMeta {
                first_seq: header.first_seq,
                last_seq: header.last_seq,
                first_time_ms: header.min_time_ms,
                last_time_ms: header.max_time_ms,
                events: header.event_count,
                encrypted,
                resource_set: p.set_at(header.first_seq).cloned(),
            };
            let chain = Chain {
                lineage: p.lineage.clone(),
                prev_sha256: p.prev_sha256.clone(),
            };
            self.before_write().await?;
            let entry = self.store.put_segment_in(meta, data, chain).await?;
            self.ledger.update(|p| {
                p.shipped_upto = last;
                p.untrimmed.push((last, header.max_time_ms));
                if p.lineage.is_some() {
                    p.prev_sha256 = Some(entry.sha256.clone());
                }
            })?;
            self.stats.segments_shipped.fetch_add(1, Ordering::Relaxed);
        }
        self.ship_snapshots().await?;
        self.remove_stored()?;
        self.trimmer.trim()?;
        Ok(())
    }

    /// Stores every unstored local snapshot; returns whether any was.
    async fn ship_snapshots(&self) -> Result<bool> {
        let files = self.ledger.files();
        let progress = self.ledger.progress();
        let unstored: Vec<LocalSnapshot> = progress
            .snapshots
            .into_iter()
            .filter(|s| s.stored_id.is_none())
            .collect();
        let any = !unstored.is_empty();
        for snap in unstored {
            let before = self
                .found
                .lock()
                .await
                .as_ref()
                .and_then(|f| f.snapshots.get(&(snap.seq, snap.label.clone())).cloned());
            if let Some(entry) = before {
                tracing::info!(id = %entry.id, "snapshot already stored before a restart; not stored again");
                let key = snap.key();
                self.ledger.update(|p| {
                    for s in &mut p.snapshots {
                        if s.key() == key {
                            s.stored_id = Some(entry.id.clone());
                        }
                    }
                })?;
                continue;
            }
            let resource_set = self.ledger.progress().set_at(snap.seq).cloned();
            let plain = files.get(&snap.key())?;
            let (data, encrypted) = self.encrypt(plain)?;
            let meta = SnapshotMeta {
                seq: snap.seq,
                time_ms: snap.time_ms,
                objects: snap.objects,
                label: snap.label.clone(),
                encrypted,
                resource_set,
            };
            let chain = Chain {
                lineage: progress.lineage.clone(),
                prev_sha256: None,
            };
            self.before_write().await?;
            let entry = self.store.put_snapshot_in(meta, data, chain).await?;
            let key = snap.key();
            self.ledger.update(|p| {
                for s in &mut p.snapshots {
                    if s.key() == key {
                        s.stored_id = Some(entry.id.clone());
                    }
                }
            })?;
        }
        Ok(any)
    }

    /// Removes stored segments folded into the base snapshot, and stored
    /// snapshots other than the base.
    fn remove_stored(&self) -> Result<()> {
        let files = self.ledger.files();
        let p = self.ledger.progress();
        let Some(base) = p.base().cloned() else {
            return Ok(());
        };
        for (first, last, _) in files.segments()? {
            if last <= p.shipped_upto && last <= base.seq {
                files.delete(&segment_key(first, last))?;
            }
        }
        let drop: Vec<String> = p
            .snapshots
            .iter()
            .filter(|s| s.stored_id.is_some() && s.key() != base.key())
            .map(LocalSnapshot::key)
            .collect();
        if !drop.is_empty() {
            self.ledger
                .update(|p| p.snapshots.retain(|s| !drop.contains(&s.key())))?;
            for k in drop {
                files.delete(&k)?;
            }
        }
        Ok(())
    }
}
