//! Snapshotting: the previous local snapshot and the local segments up to
//! the last sealed seq S are [`fold`]ed into a snapshot at S,
//! written straight into the local directory.
//!
//! It never touches the journal, so ingestion never waits for it: the cut
//! is consistent because segments are immutable runs of durable events, and
//! each type's resourceVersion is carried by the fold. Sealing what is
//! pending first is the caller's part ([`super::Compactor::snapshot`]).
//! A seal may run while a fold does: the fold reads only the segments up to
//! the `sealed_upto` it started from, and a sealed segment never changes.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use rewind_format::{Limits, SegmentReader, SnapshotReader, WriteOptions};

use super::error::{CompactError, Result};
use super::fold;
use super::ledger::Ledger;
use super::local::{self, LocalSnapshot, segment_key};
use super::settings::LiveSettings;
use super::stats::CompactStats;

/// Uncompressed bytes of one block of a spilled run. The final merge holds
/// one decoded block of every run at once, and a first snapshot of 96k
/// objects spills 10 runs: at the default 1 MiB block that is 9 MB of the
/// fold's peak (heaptrack). Smaller blocks compress a little worse, and runs
/// are kept in memory compressed, so this trades some run bytes for far
/// fewer decoded ones.
const RUN_BLOCK_BYTES: usize = 64 << 10;

/// How spilled runs are written: zstd's fastest level, small blocks.
fn run_write_options() -> WriteOptions {
    WriteOptions {
        level: 1,
        block_bytes: RUN_BLOCK_BYTES,
        ..WriteOptions::default()
    }
}

/// Folds local snapshots from local segments.
#[derive(Debug)]
pub struct Snapshotter {
    /// The segments it reads, the snapshots it writes and records.
    ledger: Arc<Ledger>,
    /// Snapshot compression and the fold's memory budget.
    settings: LiveSettings,
    /// Snapshot figures.
    stats: Arc<CompactStats>,
    /// Serialises folds: two would write and record the same snapshot.
    lock: Mutex<()>,
}

impl Snapshotter {
    /// A snapshotter over `ledger`'s files.
    #[must_use]
    pub fn new(ledger: Arc<Ledger>, settings: LiveSettings, stats: Arc<CompactStats>) -> Self {
        Self {
            ledger,
            settings,
            stats,
            lock: Mutex::new(()),
        }
    }

    /// Events sealed since the newest local snapshot.
    #[must_use]
    pub fn events_since_snapshot(&self) -> u64 {
        let p = self.ledger.progress();
        p.sealed_upto.saturating_sub(p.base().map_or(0, |b| b.seq))
    }

    /// Folds a snapshot at the last sealed seq. Blocking. An unlabelled
    /// request when nothing was sealed since the last snapshot returns that
    /// snapshot.
    pub fn snapshot(&self, label: Option<String>) -> Result<LocalSnapshot> {
        let _guard = self
            .lock
            .lock()
            .map_err(|_| CompactError::Task("fold lock poisoned".into()))?;
        let started = Instant::now();
        let settings = self.settings.get();
        let files = self.ledger.files();
        let p = self.ledger.progress();
        let base = p.base().cloned();
        if label.is_none()
            && let Some(b) = &base
            && b.seq == p.sealed_upto
        {
            return Ok(b.clone());
        }
        let base_bytes = base.as_ref().map(|b| files.get(&b.key())).transpose()?;
        let header = match &base_bytes {
            Some(bytes) => Some(
                SnapshotReader::open(bytes, Some("local base snapshot"), Limits::default())?
                    .header()
                    .clone(),
            ),
            None => None,
        };
        let mut delta = fold::Delta::new(header.as_ref());
        let base: Option<Bytes> = base_bytes;
        let mut runs: Vec<Vec<u8>> = Vec::new();
        let mut cluster = header
            .as_ref()
            .map(|h| h.cluster_id.clone())
            .unwrap_or_default();
        for (first, last, _) in files.segments()? {
            if last <= delta.seq() || first > p.sealed_upto {
                continue;
            }
            let bytes = files.get(&segment_key(first, last))?;
            let mut reader =
                SegmentReader::open(&bytes, Some(&segment_key(first, last)), Limits::default())?;
            if cluster.is_empty() {
                cluster.clone_from(&reader.header().cluster_id);
            }
            // Block by block: a segment's events are never all decoded at once.
            for i in 0..reader.blocks().len() {
                for e in reader.read_block(i)? {
                    if e.seq <= p.sealed_upto {
                        delta.apply(&e);
                    }
                }
                // Bound memory: past the budget, spill the delta as a
                // sorted run (fast level); the final fold merges them.
                if delta.bytes() > settings.fold_memory_bytes {
                    runs.push(delta.spill(&cluster, &run_write_options())?);
                }
            }
        }
        let events = delta.events();
        if delta.seq() != p.sealed_upto {
            return Err(CompactError::Journal(format!(
                "local segments end at seq {}, sealed up to {}",
                delta.seq(),
                p.sealed_upto
            )));
        }
        // Straight into the local file: the finished snapshot is never held
        // in memory.
        let key = local::snapshot_key(delta.seq(), label.as_deref());
        let mut folded = None;
        files.put_with(&key, |w| {
            let (f, counted) = fold::fold(
                base.as_deref(),
                &runs,
                &delta,
                &cluster,
                &WriteOptions::snapshot(settings.zstd_level),
                local::Counting::new(w),
            )?;
            folded = Some((f, counted.count()));
            Ok(counted.into_inner())
        })?;
        let (folded, size) =
            folded.ok_or_else(|| CompactError::Task("the fold wrote nothing".into()))?;
        let snap = LocalSnapshot {
            seq: folded.seq,
            time_ms: folded.time_ms,
            objects: folded.objects,
            size,
            label,
            stored_id: None,
        };
        self.ledger.update(|p| {
            p.snapshots.retain(|s| s.key() != snap.key());
            p.snapshots.push(snap.clone());
        })?;
        let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.stats.snapshots.fetch_add(1, Ordering::Relaxed);
        self.stats
            .last_snapshot_time_ms
            .store(snap.time_ms, Ordering::Relaxed);
        self.stats
            .last_snapshot_bytes
            .store(snap.size, Ordering::Relaxed);
        self.stats
            .last_snapshot_objects
            .store(snap.objects, Ordering::Relaxed);
        self.stats
            .last_snapshot_duration_ms
            .store(ms, Ordering::Relaxed);
        tracing::info!(
            seq = snap.seq,
            objects = snap.objects,
            size = snap.size,
            duration_ms = ms,
            events,
            spilled_runs = runs.len(),
            "snapshot folded"
        );
        Ok(snap)
    }
}
