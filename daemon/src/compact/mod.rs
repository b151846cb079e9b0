//! Sealing, snapshots and shipping: turns the journal into files in a store.
//!
//! - **Sealing**: every `seal_interval` (default 10 s), or once about
//!   `seal_bytes` of events are pending, the events after the last sealed
//!   seq are read from the journal ([`EventLog`]) and written as one
//!   `rewind-format` segment into the local directory ([`local`]).
//! - **Snapshots**: on the cron-like [`schedule`], when
//!   `snapshot_after_events` events were sealed since the last snapshot, or
//!   on demand, the previous local snapshot and the local segments up to the
//!   last sealed seq S are [`fold`]ed into a snapshot at S on a blocking
//!   thread. It never touches the journal, so ingestion never waits for it:
//!   the cut is consistent because segments are immutable runs of durable
//!   events, and each type's resourceVersion is carried by the fold.
//! - **Shipping**: a separate task stores unshipped segments, then
//!   snapshots, encrypting each to the configured age recipients first. A
//!   store that is down only delays shipping: files wait locally, the
//!   journal keeps its events, and the disk budget warns at 80 % and turns
//!   `/readyz` red at 100 %.
//! - **Trimming**: the journal may drop events once sealed, stored and
//!   older than `local_window` ([`EventLog::trim_below`]).

pub mod config;
pub mod error;
pub mod fold;
pub mod local;
pub mod log;
pub mod prune;
pub mod schedule;
pub mod stats;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use rewind_format::{Limits, SegmentReader, SegmentWriter, SnapshotReader, WriteOptions};
use rewind_history::now_ms;
use rewind_history::store::{SegmentMeta, SnapshotMeta, Store};

pub use config::{CompactConfig, Settings};
pub use error::{CompactError, Result};
pub use log::EventLog;
pub use stats::CompactStats;

use local::{LocalFiles, LocalSnapshot, Progress, segment_key};

/// Object JSON read from the journal per lock hold while sealing a segment.
const SEAL_READ_BYTES: u64 = 1 << 20;

/// What an on-demand snapshot request gets back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    /// Store id once stored, else the local key.
    pub id: String,
    /// Consistent at this seq.
    pub seq: u64,
    /// Time of that seq, Unix ms.
    pub time_ms: i64,
    /// Size in bytes (as stored: encrypted when encryption is on).
    pub size: u64,
    /// Objects in it.
    pub objects: u64,
    /// Its label.
    pub label: Option<String>,
    /// Whether it is in the store yet.
    pub stored: bool,
}

/// The compactor: shared by the seal/snapshot loop, the shipper and the
/// admin API.
pub struct Compactor {
    /// The journal's event log.
    log: Arc<dyn EventLog>,
    /// `<data_dir>/compact`.
    files: LocalFiles,
    /// Where files go.
    store: Store,
    /// Validated settings; swapped whole by a configuration reload (SIGHUP).
    settings: std::sync::RwLock<Arc<Settings>>,
    /// What is sealed, shipped and snapshotted; saved after each change.
    progress: Mutex<Progress>,
    /// Serialises shipping (the shipper task and `snapshot --wait`).
    ship_lock: tokio::sync::Mutex<()>,
    /// Serialises sealing and folding.
    work_lock: Mutex<()>,
    /// Figures for metrics.
    pub stats: Arc<CompactStats>,
    /// Average bytes per event, to estimate pending bytes without reading.
    avg_event_bytes: std::sync::atomic::AtomicU64,
    /// When the last segment was sealed.
    last_seal: Mutex<Instant>,
}

impl Compactor {
    /// Opens the local directory `dir` and the store.
    pub async fn open(
        log: Arc<dyn EventLog>,
        dir: &std::path::Path,
        settings: Settings,
    ) -> Result<Arc<Self>> {
        let files = LocalFiles::open(dir)?;
        let progress = files.load_progress()?;
        files.remove_strays(&progress)?;
        let store = Store::open_with(&settings.store, settings.store_retry).await?;
        let stats = Arc::new(CompactStats::default());
        stats
            .sealed_upto
            .store(progress.sealed_upto, Ordering::Relaxed);
        stats
            .shipped_upto
            .store(progress.shipped_upto, Ordering::Relaxed);
        if let Some(b) = progress.base() {
            stats
                .last_snapshot_time_ms
                .store(b.time_ms, Ordering::Relaxed);
            stats.last_snapshot_bytes.store(b.size, Ordering::Relaxed);
            stats
                .last_snapshot_objects
                .store(b.objects, Ordering::Relaxed);
        }
        Ok(Arc::new(Self {
            log,
            files,
            store,
            settings: std::sync::RwLock::new(Arc::new(settings)),
            progress: Mutex::new(progress),
            ship_lock: tokio::sync::Mutex::new(()),
            work_lock: Mutex::new(()),
            stats,
            avg_event_bytes: std::sync::atomic::AtomicU64::new(2048),
            last_seal: Mutex::new(Instant::now()),
        }))
    }

    /// The store files go to.
    #[must_use]
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The settings in force (a reload may replace them at any time; take
    /// one copy per operation).
    #[must_use]
    pub fn settings(&self) -> Arc<Settings> {
        match self.settings.read() {
            Ok(s) => Arc::clone(&s),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Replaces the settings (configuration reload). The store itself is not
    /// reopened: `settings.store` is ignored here, a changed store needs a
    /// restart (its catalog and `shipped_upto` belong to the old one).
    pub fn set_settings(&self, mut settings: Settings) {
        let old = self.settings();
        settings.store = old.store.clone();
        settings.store_retry = old.store_retry;
        match self.settings.write() {
            Ok(mut s) => *s = Arc::new(settings),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(settings),
        }
    }

    /// A copy of the current progress.
    #[must_use]
    pub fn progress(&self) -> Progress {
        self.progress.lock().map(|p| p.clone()).unwrap_or_default()
    }

    fn update(&self, f: impl FnOnce(&mut Progress)) -> Result<()> {
        let mut p = self
            .progress
            .lock()
            .map_err(|_| CompactError::Task("progress lock poisoned".into()))?;
        let mut next = p.clone();
        f(&mut next);
        self.files.save_progress(&next)?;
        *p = next;
        self.stats
            .sealed_upto
            .store(p.sealed_upto, Ordering::Relaxed);
        self.stats
            .shipped_upto
            .store(p.shipped_upto, Ordering::Relaxed);
        Ok(())
    }

    /// Whether sealing is due: the interval passed with events pending, or
    /// about `seal_bytes` are pending.
    #[must_use]
    pub fn seal_due(&self) -> bool {
        let pending = self
            .log
            .next_seq()
            .saturating_sub(1)
            .saturating_sub(self.progress().sealed_upto);
        if pending == 0 {
            return false;
        }
        let elapsed = self
            .last_seal
            .lock()
            .map(|t| t.elapsed())
            .unwrap_or_default();
        let settings = self.settings();
        elapsed >= settings.seal_interval
            || pending.saturating_mul(self.avg_event_bytes.load(Ordering::Relaxed))
                >= settings.seal_bytes
    }

    /// Seals every durable event not yet sealed, in segments of about
    /// `seal_bytes`. Blocking: call from a blocking thread. Returns the
    /// number of segments written.
    pub fn seal_all(&self) -> Result<u64> {
        let _guard = self
            .work_lock
            .lock()
            .map_err(|_| CompactError::Task("work lock poisoned".into()))?;
        let settings = self.settings();
        let target = self.log.next_seq().saturating_sub(1);
        let mut written = 0;
        loop {
            let from = self.progress().sealed_upto + 1;
            if from > target {
                break;
            }
            // Events stream from the journal into the segment writer a
            // little at a time: holding a whole segment's decoded events
            // (16 MiB of JSON by default) was the largest transient while a
            // busy plane was first synced, and each read holds the
            // committer's lock, so short reads also keep commits prompt.
            let mut writer: Option<SegmentWriter> = None;
            let (mut first_seq, mut last_seq, mut bytes, mut count) = (0, 0, 0u64, 0u64);
            let mut next = from;
            while next <= target && bytes < settings.seal_bytes {
                let want = SEAL_READ_BYTES.min(settings.seal_bytes.saturating_sub(bytes));
                let events = self
                    .log
                    .read_from(next, want)
                    .map_err(CompactError::Journal)?;
                let mut progressed = false;
                for e in events.iter().take_while(|e| e.seq <= target) {
                    let w = match &mut writer {
                        Some(w) => w,
                        None => {
                            if e.seq != from {
                                return Err(CompactError::Journal(format!(
                                    "journal has no event {from} (first available {}): was it trimmed?",
                                    e.seq
                                )));
                            }
                            first_seq = e.seq;
                            writer.insert(SegmentWriter::new(
                                e.cluster_id.clone(),
                                self.write_options(settings.segment_zstd_level),
                            )?)
                        }
                    };
                    w.push(e)?;
                    bytes = bytes.saturating_add(u64::try_from(e.object.len()).unwrap_or(0));
                    count += 1;
                    last_seq = e.seq;
                    next = e.seq.saturating_add(1);
                    progressed = true;
                }
                if !progressed {
                    break;
                }
            }
            let Some(writer) = writer else {
                break;
            };
            let count = count.max(1);
            self.avg_event_bytes
                .store((bytes / count).max(64), Ordering::Relaxed);
            let file = writer.finish()?;
            self.files.put(&segment_key(first_seq, last_seq), &file)?;
            self.update(|p| p.sealed_upto = last_seq)?;
            self.stats.segments_sealed.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(
                first_seq,
                last_seq,
                events = count,
                size = file.len(),
                "segment sealed"
            );
            written += 1;
        }
        if let Ok(mut t) = self.last_seal.lock() {
            *t = Instant::now();
        }
        Ok(written)
    }

    fn write_options(&self, level: i32) -> WriteOptions {
        WriteOptions {
            level,
            ..WriteOptions::default()
        }
    }

    /// Events sealed since the newest local snapshot.
    #[must_use]
    pub fn events_since_snapshot(&self) -> u64 {
        let p = self.progress();
        p.sealed_upto.saturating_sub(p.base().map_or(0, |b| b.seq))
    }

    /// Seals what is pending and folds a snapshot at the last sealed seq.
    /// Blocking. An unlabelled request when nothing changed since the last
    /// snapshot returns that snapshot.
    pub fn snapshot(&self, label: Option<String>) -> Result<LocalSnapshot> {
        self.seal_all()?;
        let _guard = self
            .work_lock
            .lock()
            .map_err(|_| CompactError::Task("work lock poisoned".into()))?;
        let started = Instant::now();
        let settings = self.settings();
        let p = self.progress();
        let base = p.base().cloned();
        if label.is_none()
            && let Some(b) = &base
            && b.seq == p.sealed_upto
        {
            return Ok(b.clone());
        }
        let base_bytes = base
            .as_ref()
            .map(|b| self.files.get(&b.key()))
            .transpose()?;
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
        for (first, last, _) in self.files.segments()? {
            if last <= delta.seq() || first > p.sealed_upto {
                continue;
            }
            let bytes = self.files.get(&segment_key(first, last))?;
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
        self.files.put_with(&key, |w| {
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
        self.update(|p| {
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

    fn encrypt(&self, plain: Bytes) -> Result<(Bytes, bool)> {
        let settings = self.settings();
        if settings.recipients.is_empty() {
            return Ok((plain, false));
        }
        let enc = rewind_format::crypto::encrypt(&plain, &settings.recipients)?;
        Ok((Bytes::from(enc), true))
    }

    /// Stores every unstored segment, then every unstored snapshot, then
    /// removes local files no longer needed and trims the journal. Stops at
    /// the first store failure (the next call resumes there).
    pub async fn ship(&self) -> Result<()> {
        let _guard = self.ship_lock.lock().await;
        let result = self.ship_inner().await;
        self.stats
            .store_down
            .store(result.is_err(), Ordering::Relaxed);
        if let Err(e) = &result {
            self.stats.store_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e, "store unavailable; files wait locally");
        }
        self.account();
        result
    }

    async fn ship_inner(&self) -> Result<()> {
        let segments = self.files.segments()?;
        for (first, last, _) in segments {
            let p = self.progress();
            if last <= p.shipped_upto || last > p.sealed_upto {
                continue;
            }
            let key = segment_key(first, last);
            let plain = self.files.get(&key)?;
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
            };
            self.store.put_segment(meta, data).await?;
            self.update(|p| {
                p.shipped_upto = last;
                p.untrimmed.push((last, header.max_time_ms));
            })?;
            self.stats.segments_shipped.fetch_add(1, Ordering::Relaxed);
        }
        let unstored: Vec<LocalSnapshot> = self
            .progress()
            .snapshots
            .into_iter()
            .filter(|s| s.stored_id.is_none())
            .collect();
        for snap in unstored {
            let plain = self.files.get(&snap.key())?;
            let (data, encrypted) = self.encrypt(plain)?;
            let meta = SnapshotMeta {
                seq: snap.seq,
                time_ms: snap.time_ms,
                objects: snap.objects,
                label: snap.label.clone(),
                encrypted,
            };
            let entry = self.store.put_snapshot(meta, data).await?;
            let key = snap.key();
            self.update(|p| {
                for s in &mut p.snapshots {
                    if s.key() == key {
                        s.stored_id = Some(entry.id.clone());
                    }
                }
            })?;
        }
        self.cleanup()?;
        self.trim_journal()?;
        Ok(())
    }

    /// Drops from the journal the events that are sealed, stored and older
    /// than the local window (the rule: all three, not only age).
    /// Runs on every ship, so a segment stored while young is trimmed once
    /// it ages past the window.
    pub fn trim_journal(&self) -> Result<u64> {
        let cutoff = now_ms().saturating_sub(self.settings().local_window_ms);
        let Some(below) = self.progress().trim_bound(cutoff) else {
            return Ok(0);
        };
        match self.log.trim_below(below) {
            Ok(n) => {
                if n > 0 {
                    tracing::info!(below, events = n, "journal trimmed");
                }
                self.update(|p| p.untrimmed.retain(|&(last, _)| last >= below))?;
                self.stats.trimmed_below.store(below, Ordering::Relaxed);
                Ok(n)
            }
            Err(e) => {
                // Trimming is only housekeeping: the next ship retries.
                tracing::warn!(below, error = %e, "could not trim the journal");
                Ok(0)
            }
        }
    }

    /// Removes stored segments folded into the base snapshot, and stored
    /// snapshots other than the base.
    fn cleanup(&self) -> Result<()> {
        let p = self.progress();
        let Some(base) = p.base().cloned() else {
            return Ok(());
        };
        for (first, last, _) in self.files.segments()? {
            if last <= p.shipped_upto && last <= base.seq {
                self.files.delete(&segment_key(first, last))?;
            }
        }
        let drop: Vec<String> = p
            .snapshots
            .iter()
            .filter(|s| s.stored_id.is_some() && s.key() != base.key())
            .map(LocalSnapshot::key)
            .collect();
        if !drop.is_empty() {
            self.update(|p| p.snapshots.retain(|s| !drop.contains(&s.key())))?;
            for k in drop {
                self.files.delete(&k)?;
            }
        }
        Ok(())
    }

    /// Recomputes local bytes against the disk budget, warning loudly.
    pub fn account(&self) {
        let journal = self.log.size_on_disk();
        let files = self.files.bytes().unwrap_or(0);
        let used = journal.saturating_add(files);
        self.stats.journal_bytes.store(journal, Ordering::Relaxed);
        self.stats.local_bytes.store(used, Ordering::Relaxed);
        let budget = self.settings().disk_budget_bytes;
        self.stats
            .disk_budget_bytes
            .store(budget, Ordering::Relaxed);
        let over = used >= budget;
        let was_over = self.stats.over_budget.swap(over, Ordering::Relaxed);
        if over {
            if !was_over {
                tracing::error!(
                    used,
                    budget,
                    journal,
                    files,
                    "disk budget reached: the store is not taking data; recording continues but local disk will fill; fix the store or raise compact.disk_budget_bytes"
                );
            }
        } else if used.saturating_mul(10) >= budget.saturating_mul(8) {
            tracing::warn!(
                used,
                budget,
                "local data is above 80% of the disk budget; is the store reachable?"
            );
        }
    }

    /// Info for an admin reply.
    #[must_use]
    pub fn info(&self, snap: &LocalSnapshot) -> SnapshotInfo {
        let stored = self
            .progress()
            .snapshots
            .iter()
            .find(|s| s.key() == snap.key())
            .and_then(|s| s.stored_id.clone());
        SnapshotInfo {
            id: stored.clone().unwrap_or_else(|| snap.key()),
            seq: snap.seq,
            time_ms: snap.time_ms,
            size: snap.size,
            objects: snap.objects,
            label: snap.label.clone(),
            stored: stored.is_some(),
        }
    }
}

pub mod run;
pub use run::{Command, CompactorHandle, spawn};

/// Uncompressed bytes of one block of a spilled run. The final merge holds
/// one decoded block of every run at once, and a first snapshot of 96k
/// objects spills 10 runs: at the default 1 MiB that was 9 MB of the fold's
/// peak (heaptrack). Smaller blocks compress a little worse, and runs are
/// kept in memory compressed, so this trades some run bytes for far fewer
/// decoded ones.
const RUN_BLOCK_BYTES: usize = 64 << 10;

/// How spilled runs are written: zstd's fastest level, small blocks.
fn run_write_options() -> WriteOptions {
    WriteOptions {
        level: 1,
        block_bytes: RUN_BLOCK_BYTES,
        ..WriteOptions::default()
    }
}

#[cfg(test)]
mod tests;
