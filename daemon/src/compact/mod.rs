//! Sealing, snapshots and shipping: turns the journal into files in a store.
//!
//! One job per part, each in its own module and holding its own lock where
//! it needs one:
//! - [`Sealer`] ([`seal`]): every `seal_interval` (default 10 s), or once
//!   about `seal_bytes` of events are pending, the durable events after the
//!   last sealed seq are read from the journal ([`EventLog`]) and written as
//!   one `rewind-format` segment into the local directory.
//! - [`Snapshotter`] ([`snapshot`]): on the cron-like [`schedule`], when
//!   `snapshot_after_events` events were sealed since the last snapshot, or
//!   on demand, the previous local snapshot and the local segments up to the
//!   last sealed seq are [`fold`]ed into a snapshot on a blocking thread,
//!   never touching the journal.
//! - [`Shipper`] ([`ship`]): a separate task stores unshipped segments, then
//!   snapshots, encrypting each to the configured age recipients first, and
//!   removes the local files no longer needed.
//! - [`Trimmer`] ([`trim`]): after each ship, the journal drops events once
//!   sealed, stored and older than `local_window`.
//! - [`DiskAccount`] ([`disk`]): local bytes against the disk budget, which
//!   warns at 80 % and turns `/readyz` red at 100 %.
//!
//! Each job's lock is its own: the sealer's keeps two seals from writing
//! the same segment, the snapshotter's two folds from writing the same
//! snapshot, the shipper's two ships from storing the same file.
//!
//! They share the [`Ledger`] ([`ledger`]: the local directory, [`local`],
//! and `progress.json`, what is sealed, shipped and snapshotted), the
//! [`LiveSettings`] ([`settings`]) a reload swaps, and the
//! [`CompactStats`] ([`stats`]) shown by `/metrics`. [`Compactor`] opens
//! them together; [`run`] drives them as tasks and takes on-demand
//! requests. [`prune`] applies the retention policy to the store;
//! [`config`] and [`error`] hold the settings and the errors of all of
//! them.

pub mod config;
pub mod disk;
pub mod error;
pub mod fold;
pub mod ledger;
pub mod local;
pub mod log;
pub mod prune;
pub mod run;
pub mod schedule;
pub mod seal;
pub mod settings;
pub mod ship;
pub mod snapshot;
pub mod stats;
pub mod trim;

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use rewind_history::store::Store;
use rewind_history::store::layout::RecordedResourceSet;

pub use config::{CompactConfig, Settings};
pub use disk::DiskAccount;
pub use error::{CompactError, Result};
pub use ledger::Ledger;
pub use log::EventLog;
pub use run::{Command, CompactorHandle, spawn};
pub use seal::Sealer;
pub use settings::LiveSettings;
pub use ship::Shipper;
pub use snapshot::Snapshotter;
pub use stats::CompactStats;
pub use trim::Trimmer;

use local::LocalSnapshot;

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

/// The compactor's parts, opened together over one local directory and one
/// store; shared by the seal/snapshot loop, the shipper task and the admin
/// API.
#[derive(Debug)]
pub struct Compactor {
    /// Settings in force, shared with every part.
    settings: LiveSettings,
    /// Local files and progress, shared with every part.
    ledger: Arc<Ledger>,
    /// Journal events into local segments.
    sealer: Sealer,
    /// Local segments into local snapshots.
    snapshotter: Snapshotter,
    /// Local files into the store.
    shipper: Shipper,
    /// Stored events out of the journal (run by the shipper after a ship).
    trimmer: Arc<Trimmer>,
    /// Figures for metrics.
    pub stats: Arc<CompactStats>,
}

impl Compactor {
    /// Opens the local directory `dir` and the store. `durable`, when
    /// given, is the writer's durable position: sealing never goes past it.
    pub async fn open(
        log: Arc<dyn EventLog>,
        durable: Option<watch::Receiver<u64>>,
        dir: &Path,
        settings: Settings,
    ) -> Result<Arc<Self>> {
        let stats = Arc::new(CompactStats::default());
        let ledger = Arc::new(Ledger::open(dir, Arc::clone(&stats))?);
        let store = Store::open_with(&settings.store, settings.store_retry).await?;
        let settings = LiveSettings::new(settings);
        let part = || (Arc::clone(&ledger), settings.clone(), Arc::clone(&stats));
        let sealer = {
            let (ledger, settings, stats) = part();
            Sealer::new(Arc::clone(&log), durable, ledger, settings, stats)
        };
        let snapshotter = {
            let (ledger, settings, stats) = part();
            Snapshotter::new(ledger, settings, stats)
        };
        let trimmer = {
            let (ledger, settings, stats) = part();
            Arc::new(Trimmer::new(Arc::clone(&log), ledger, settings, stats))
        };
        let disk = {
            let (ledger, settings, stats) = part();
            Arc::new(DiskAccount::new(log, ledger, settings, stats))
        };
        let shipper = {
            let (ledger, settings, stats) = part();
            Shipper::new(store, ledger, settings, stats, Arc::clone(&trimmer), disk)
        };
        Ok(Arc::new(Self {
            settings,
            ledger,
            sealer,
            snapshotter,
            shipper,
            trimmer,
            stats,
        }))
    }

    /// The settings in force (a reload may replace them at any time; take
    /// one copy per operation).
    #[must_use]
    pub fn settings(&self) -> Arc<Settings> {
        self.settings.get()
    }

    /// Replaces the settings (configuration reload). The store itself is not
    /// reopened: `settings.store` is ignored here, a changed store needs a
    /// restart (its catalog and `shipped_upto` belong to the old one).
    pub fn set_settings(&self, settings: Settings) {
        self.settings.replace(settings);
    }

    /// Records `set` as the resource set in force from now on, for the
    /// catalog entries of the files that follow. Seals every durable event
    /// first, so no segment holds events recorded under two sets. Blocking:
    /// call from a blocking thread, before the watchers switch to `set`.
    pub fn record_set(&self, set: RecordedResourceSet) -> Result<()> {
        if let Err(e) = self.sealer.seal_all() {
            // The change is still recorded; the pending events may be
            // labelled with the new set.
            tracing::warn!(error = %e, "sealing before a resource set change failed");
        }
        let mut added = None;
        self.ledger.update(|p| {
            let from = p.sealed_upto + 1;
            if p.set_from(from, set) {
                added = Some(from);
            }
            let oldest_unstored = p
                .snapshots
                .iter()
                .filter(|s| s.stored_id.is_none())
                .map(|s| s.seq)
                .min()
                .unwrap_or(u64::MAX);
            p.forget_sets_before(oldest_unstored.min(p.shipped_upto + 1));
        })?;
        if let Some(from_seq) = added {
            tracing::info!(from_seq, "resource set recorded for the files that follow");
        }
        Ok(())
    }

    /// The local files and progress.
    #[must_use]
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Sealing.
    #[must_use]
    pub fn sealer(&self) -> &Sealer {
        &self.sealer
    }

    /// Snapshotting.
    #[must_use]
    pub fn snapshotter(&self) -> &Snapshotter {
        &self.snapshotter
    }

    /// Shipping (and, after each ship, trimming and disk accounting).
    #[must_use]
    pub fn shipper(&self) -> &Shipper {
        &self.shipper
    }

    /// Trimming.
    #[must_use]
    pub fn trimmer(&self) -> &Trimmer {
        &self.trimmer
    }

    /// Seals what is pending and folds a snapshot at the last sealed seq.
    /// Blocking. An unlabelled request when nothing changed since the last
    /// snapshot returns that snapshot.
    pub fn snapshot(&self, label: Option<String>) -> Result<LocalSnapshot> {
        self.sealer.seal_all()?;
        self.snapshotter.snapshot(label)
    }

    /// Info for an admin reply.
    #[must_use]
    pub fn info(&self, snap: &LocalSnapshot) -> SnapshotInfo {
        let stored = self
            .ledger
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

#[cfg(test)]
mod tests;
