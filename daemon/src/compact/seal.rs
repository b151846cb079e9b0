//! Sealing: the durable events after the last sealed seq become one
//! `rewind-format` segment in the local directory, every `seal_interval`
//! or once about `seal_bytes` of events are pending.
//!
//! Only durable events are sealed: the writer publishes one past the last
//! fsynced event on a `watch` channel, and the [`Sealer`] never goes past
//! it. The journal's own `next_seq` is written just before the fsync, so an
//! event counted there could still be lost by a crash, and its seq reused.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rewind_format::{SegmentWriter, WriteOptions};
use tokio::sync::watch;

use super::error::{CompactError, Result};
use super::ledger::Ledger;
use super::local::segment_key;
use super::log::EventLog;
use super::settings::LiveSettings;
use super::stats::CompactStats;

/// Object JSON read from the journal per read while sealing a segment.
pub const SEAL_READ_BYTES: u64 = 1 << 20;

/// Turns durable journal events into local segments.
pub struct Sealer {
    /// The journal's event log.
    log: Arc<dyn EventLog>,
    /// One past the last durable event, as the writer publishes it; `None`
    /// when the log holds only durable events (a journal nobody writes to
    /// concurrently, as in tests).
    durable: Option<watch::Receiver<u64>>,
    /// Where segments and `sealed_upto` go.
    ledger: Arc<Ledger>,
    /// Seal interval, size and segment compression.
    settings: LiveSettings,
    /// Segments sealed.
    stats: Arc<CompactStats>,
    /// Serialises seals: two would write the same segment.
    lock: Mutex<()>,
    /// Average bytes per event, to estimate pending bytes without reading.
    avg_event_bytes: AtomicU64,
    /// When the last seal ran.
    last_seal: Mutex<Instant>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("bounded", &self.durable.is_some())
            .finish_non_exhaustive()
    }
}

impl Sealer {
    /// A sealer of `log`'s events, bounded by `durable` when given.
    #[must_use]
    pub fn new(
        log: Arc<dyn EventLog>,
        durable: Option<watch::Receiver<u64>>,
        ledger: Arc<Ledger>,
        settings: LiveSettings,
        stats: Arc<CompactStats>,
    ) -> Self {
        Self {
            log,
            durable,
            ledger,
            settings,
            stats,
            lock: Mutex::new(()),
            avg_event_bytes: AtomicU64::new(2048),
            last_seal: Mutex::new(Instant::now()),
        }
    }

    /// One past the last event that may be sealed: written to the log and,
    /// when bounded, reported durable by the writer.
    #[must_use]
    pub fn durable_next_seq(&self) -> u64 {
        let written = self.log.next_seq();
        match &self.durable {
            Some(durable) => written.min(*durable.borrow()),
            None => written,
        }
    }

    /// Whether sealing is due: the interval passed with events pending, or
    /// about `seal_bytes` are pending.
    #[must_use]
    pub fn seal_due(&self) -> bool {
        let pending = self
            .durable_next_seq()
            .saturating_sub(1)
            .saturating_sub(self.ledger.progress().sealed_upto);
        if pending == 0 {
            return false;
        }
        let elapsed = self
            .last_seal
            .lock()
            .map(|t| t.elapsed())
            .unwrap_or_default();
        let settings = self.settings.get();
        elapsed >= settings.seal_interval
            || pending.saturating_mul(self.avg_event_bytes.load(Ordering::Relaxed))
                >= settings.seal_bytes
    }

    /// Seals every durable event not yet sealed, in segments of about
    /// `seal_bytes`. Blocking: call from a blocking thread. Returns the
    /// number of segments written.
    pub fn seal_all(&self) -> Result<u64> {
        self.seal_through(u64::MAX)
    }

    /// [`Sealer::seal_all`], but no event past `last`: the last segment
    /// ends at `last` when the durable events reach it (a snapshot at
    /// exactly that seq may follow).
    pub fn seal_through(&self, last: u64) -> Result<u64> {
        let _guard = self
            .lock
            .lock()
            .map_err(|_| CompactError::Task("seal lock poisoned".into()))?;
        let settings = self.settings.get();
        let target = self.durable_next_seq().saturating_sub(1).min(last);
        let mut written = 0;
        loop {
            let from = self.ledger.progress().sealed_upto + 1;
            if from > target {
                break;
            }
            // Events stream from the journal into the segment writer a
            // little at a time: a whole segment's decoded events (16 MiB of
            // JSON by default) would be the largest transient while a busy
            // plane is first synced, and short reads keep the journal free
            // for its writer.
            let mut writer: Option<SegmentWriter> = None;
            let (mut first_seq, mut last_seq, mut bytes, mut count) = (0, 0, 0u64, 0u64);
            let mut next = from;
            while next <= target && bytes < settings.seal_bytes {
                let want = SEAL_READ_BYTES.min(settings.seal_bytes.saturating_sub(bytes));
                let events = self
                    .log
                    .read_from(next, want)
                    .map_err(|e| CompactError::Journal(e.to_string()))?;
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
                                WriteOptions {
                                    level: settings.segment_zstd_level,
                                    ..WriteOptions::default()
                                },
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
            self.ledger
                .files()
                .put(&segment_key(first_seq, last_seq), &file)?;
            self.ledger.update(|p| p.sealed_upto = last_seq)?;
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
}
