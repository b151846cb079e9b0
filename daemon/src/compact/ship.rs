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
//! A store that is down only delays shipping: files wait locally, the
//! journal keeps its events, and the disk budget warns.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use rewind_format::{Limits, SegmentReader};
use rewind_history::store::{Chain, SegmentEntry, SegmentMeta, SnapshotEntry, SnapshotMeta, Store};

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
            Err(e @ (CompactError::NotLeader { .. } | CompactError::TakenOver(_))) => {
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
            self.may_write()?;
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
            self.may_write()?;
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
