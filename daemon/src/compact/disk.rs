//! Disk accounting: the bytes kept locally (the journal plus unstored
//! segments and snapshots) against `disk_budget_bytes`. A store that is
//! down makes them grow; the budget warns at 80 % and, at 100 %, turns
//! `/readyz` red through [`CompactStats::over_budget`].

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::ledger::Ledger;
use super::log::EventLog;
use super::settings::LiveSettings;
use super::stats::CompactStats;

/// Measures local data against the disk budget.
pub struct DiskAccount {
    /// The journal, for its size.
    log: Arc<dyn EventLog>,
    /// The local files.
    ledger: Arc<Ledger>,
    /// The budget.
    settings: LiveSettings,
    /// Where the figures are shown.
    stats: Arc<CompactStats>,
}

impl std::fmt::Debug for DiskAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskAccount").finish_non_exhaustive()
    }
}

impl DiskAccount {
    /// An account of `log`'s and `ledger`'s bytes.
    #[must_use]
    pub fn new(
        log: Arc<dyn EventLog>,
        ledger: Arc<Ledger>,
        settings: LiveSettings,
        stats: Arc<CompactStats>,
    ) -> Self {
        Self {
            log,
            ledger,
            settings,
            stats,
        }
    }

    /// Recomputes local bytes against the disk budget, warning loudly.
    pub fn account(&self) {
        let journal = self.log.size_on_disk();
        let files = self.ledger.files().bytes().unwrap_or(0);
        let used = journal.saturating_add(files);
        self.stats.journal_bytes.store(journal, Ordering::Relaxed);
        self.stats.local_bytes.store(used, Ordering::Relaxed);
        let budget = self.settings.get().disk_budget_bytes;
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
}
