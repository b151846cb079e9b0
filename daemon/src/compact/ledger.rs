//! The compactor's record of its own work: the local files under
//! `<data_dir>/compact` ([`local`](super::local)) and `progress.json`, which
//! says what is sealed, shipped, snapshotted and still in the journal.
//!
//! Every job reads and advances the progress here, and only here: one lock
//! around the copy in memory, and every change is saved before it counts
//! (see [`Ledger::update`]).

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use super::error::{CompactError, Result};
use super::local::{LocalFiles, Progress};
use super::stats::CompactStats;

/// The local files and the progress that names them.
#[derive(Debug)]
pub struct Ledger {
    /// `<data_dir>/compact`.
    files: LocalFiles,
    /// What is sealed, shipped and snapshotted; saved after each change.
    progress: Mutex<Progress>,
    /// Where `sealed_upto` and `shipped_upto` are shown.
    stats: Arc<CompactStats>,
}

impl Ledger {
    /// Opens (creates) the local directory `dir`, reads its progress and
    /// removes the files a crash left unrecorded. Shows the recorded
    /// figures on `stats`.
    pub fn open(dir: &Path, stats: Arc<CompactStats>) -> Result<Self> {
        let files = LocalFiles::open(dir)?;
        let progress = files.load_progress()?;
        files.remove_strays(&progress)?;
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
        Ok(Self {
            files,
            progress: Mutex::new(progress),
            stats,
        })
    }

    /// The local directory.
    #[must_use]
    pub fn files(&self) -> &LocalFiles {
        &self.files
    }

    /// A copy of the current progress.
    #[must_use]
    pub fn progress(&self) -> Progress {
        self.progress.lock().map(|p| p.clone()).unwrap_or_default()
    }

    /// Changes the progress with `f` and saves it; the change counts only
    /// once `progress.json` is written.
    pub fn update(&self, f: impl FnOnce(&mut Progress)) -> Result<()> {
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
}
