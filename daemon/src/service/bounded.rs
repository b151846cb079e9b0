//! A standby's bounded journal: a standby records but ships nothing, so
//! the compactor's rule (sealed, stored, older than `local_window`) never
//! lets its journal go. [`StandbyKeeper`] bounds it by the same window with
//! the compactor's own parts, over `<data_dir>/standby`
//! ([`standby_dir`]), in the journal's own numbers:
//!
//! 1. the events observed before `now - local_window` are sealed into
//!    local segments ([`crate::compact::Sealer`]) and folded into a local
//!    base snapshot ([`crate::compact::Snapshotter`]); the first base is
//!    cut only at a point where the state was whole (a list completed and
//!    none in the middle of one, [`super::lineage::last_whole_before`]),
//!    so every later base is whole too;
//! 2. the base then stands for those events ("shipped" in the ledger: the
//!    snapshot holds them), and the compactor's [`crate::compact::Trimmer`]
//!    drops them from the journal, copying the objects still current
//!    into the journal's state first (the journal's `trim_below`);
//! 3. the segments folded into the base and the older bases are removed.
//!
//! Why nothing a takeover needs is lost: a takeover cuts the child
//! lineage's first snapshot at the standby's last whole point at or
//! before the parent's newest stored event ([`super::lineage::cut_point`]).
//! The leader stores its events every `seal_interval`, so that event is
//! recent, and the cut is at or after the base whenever the base is older
//! than it: the child's first snapshot is the base folded forward with
//! the events after it, which the window kept. A leader that stored
//! nothing for longer than the window makes the cut the base itself, and
//! the points between the parent's last event and the base are refused
//! (named as a gap), never answered with a wrong state.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rewind_history::now_ms;

use crate::compact::config::Settings;
use crate::compact::local::LocalSnapshot;
use crate::compact::{
    CompactError, CompactStats, EventLog, Ledger, LiveSettings, Sealer, Snapshotter, Trimmer,
};

/// Events read per journal read while looking for the window's edge.
const SCAN_BYTES: u64 = 1 << 20;

/// Where a standby keeps its base snapshot: `<data_dir>/standby`.
#[must_use]
pub fn standby_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("standby")
}

/// The newest base snapshot a standby folded in `dir`: its seq (in the
/// journal's numbers), time, and the bytes of its plain file. `None` when
/// there is none (or no such directory).
pub fn base_in(dir: &Path) -> Result<Option<(LocalSnapshot, bytes::Bytes)>, CompactError> {
    if !dir.join("progress.json").exists() {
        return Ok(None);
    }
    let ledger = Ledger::open(dir, Arc::new(CompactStats::default()))?;
    let Some(base) = ledger.progress().base().cloned() else {
        return Ok(None);
    };
    let bytes = ledger.files().get(&base.key())?;
    Ok(Some((base, bytes)))
}

/// Bounds a standby's journal by the local window (see the module doc).
pub struct StandbyKeeper {
    /// The journal.
    log: Arc<dyn EventLog>,
    /// `<data_dir>/standby`: segments, base snapshots, progress.
    ledger: Arc<Ledger>,
    /// The local window, seal and fold settings.
    settings: LiveSettings,
    /// Sealing of the events older than the window.
    sealer: Sealer,
    /// Folding them into the base.
    snapshotter: Snapshotter,
    /// Dropping them from the journal.
    trimmer: Trimmer,
}

impl std::fmt::Debug for StandbyKeeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StandbyKeeper").finish_non_exhaustive()
    }
}

impl StandbyKeeper {
    /// Opens `dir` over the journal `log` (journal numbers, never shifted:
    /// a standby's journal has no lineage yet). `durable` is the writer's
    /// durable position.
    pub fn open(
        log: Arc<dyn EventLog>,
        durable: tokio::sync::watch::Receiver<u64>,
        dir: &Path,
        settings: Settings,
    ) -> Result<Self, CompactError> {
        let stats = Arc::new(CompactStats::default());
        let ledger = Arc::new(Ledger::open(dir, Arc::clone(&stats))?);
        let settings = LiveSettings::new(settings);
        let sealer = Sealer::new(
            Arc::clone(&log),
            Some(durable),
            Arc::clone(&ledger),
            settings.clone(),
            Arc::clone(&stats),
        );
        let snapshotter =
            Snapshotter::new(Arc::clone(&ledger), settings.clone(), Arc::clone(&stats));
        let trimmer = Trimmer::new(
            Arc::clone(&log),
            Arc::clone(&ledger),
            settings.clone(),
            stats,
        );
        Ok(Self {
            log,
            ledger,
            settings,
            sealer,
            snapshotter,
            trimmer,
        })
    }

    /// Whether the progress in the directory belongs to another journal
    /// (it claims events the journal never wrote: the journal was replaced
    /// while the directory stayed).
    #[must_use]
    pub fn is_stale(&self) -> bool {
        self.ledger.progress().sealed_upto >= self.log.next_seq()
    }

    /// One round: seals and folds the events older than the window into
    /// the base, trims them from the journal, removes the files the base
    /// replaced. Returns the events trimmed. Blocking.
    pub fn keep(&self) -> Result<u64, CompactError> {
        let cutoff = now_ms().saturating_sub(self.settings.get().local_window_ms);
        let p = self.ledger.progress();
        // Nothing unsealed is older than the window: no scan this round.
        let oldest = self
            .log
            .read_from(p.sealed_upto.saturating_add(1), 1)
            .map_err(|e| CompactError::Journal(e.to_string()))?;
        if oldest.first().is_none_or(|e| e.observed_at_ms >= cutoff) {
            return Ok(0);
        }
        let upto = if p.base().is_none() {
            // The first base only where the state was whole.
            super::lineage::last_whole_before(&*self.log, cutoff)
                .map_err(|e| CompactError::Journal(e.to_string()))?
        } else {
            self.last_before(p.sealed_upto.saturating_add(1), cutoff)?
        };
        let Some(upto) = upto.filter(|&s| s > p.sealed_upto) else {
            return Ok(0);
        };
        self.sealer.seal_through(upto)?;
        let sealed = self.ledger.progress().sealed_upto;
        if sealed <= p.sealed_upto {
            return Ok(0);
        }
        let base = self.snapshotter.snapshot(None)?;
        // The base holds every sealed event: the journal may drop them once
        // they are older than the window (the trimmer checks both).
        self.ledger.update(|p| {
            p.shipped_upto = base.seq;
            p.untrimmed = vec![(base.seq, base.time_ms)];
        })?;
        let trimmed = self.trimmer.trim()?;
        self.remove_folded(&base)?;
        tracing::debug!(
            base_seq = base.seq,
            base_time_ms = base.time_ms,
            trimmed,
            "standby journal bounded by the local window"
        );
        Ok(trimmed)
    }

    /// The seq of the last event from `from` on observed before `cutoff`,
    /// `None` when the first one is not.
    fn last_before(&self, from: u64, cutoff: i64) -> Result<Option<u64>, CompactError> {
        let mut last = None;
        let mut next = from;
        loop {
            let events = self
                .log
                .read_from(next, SCAN_BYTES)
                .map_err(|e| CompactError::Journal(e.to_string()))?;
            let Some(end) = events.last().map(|e| e.seq) else {
                return Ok(last);
            };
            for e in &events {
                if e.observed_at_ms >= cutoff {
                    return Ok(last);
                }
                last = Some(e.seq);
            }
            next = end.saturating_add(1);
        }
    }

    /// Removes the segments folded into `base` and every older base.
    fn remove_folded(&self, base: &LocalSnapshot) -> Result<(), CompactError> {
        let files = self.ledger.files();
        for (first, last, _) in files.segments()? {
            if last <= base.seq {
                files.delete(&crate::compact::local::segment_key(first, last))?;
            }
        }
        let old: Vec<String> = self
            .ledger
            .progress()
            .snapshots
            .iter()
            .filter(|s| s.key() != base.key())
            .map(LocalSnapshot::key)
            .collect();
        if !old.is_empty() {
            self.ledger
                .update(|p| p.snapshots.retain(|s| !old.contains(&s.key())))?;
            for k in old {
                files.delete(&k)?;
            }
        }
        Ok(())
    }
}
