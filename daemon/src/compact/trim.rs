//! Trimming: the journal drops the events that are sealed, stored and older
//! than `local_window`, all three, not age alone. It runs after every ship,
//! so a segment stored while young is trimmed once it ages past the window.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use rewind_history::now_ms;

use super::error::Result;
use super::ledger::Ledger;
use super::log::EventLog;
use super::settings::LiveSettings;
use super::stats::CompactStats;

/// Drops from the journal what the store holds and the window no longer
/// needs.
pub struct Trimmer {
    /// The journal's event log.
    log: Arc<dyn EventLog>,
    /// Which stored segments may still be in the journal.
    ledger: Arc<Ledger>,
    /// The local window.
    settings: LiveSettings,
    /// Where `trimmed_below` is shown.
    stats: Arc<CompactStats>,
}

impl std::fmt::Debug for Trimmer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trimmer").finish_non_exhaustive()
    }
}

impl Trimmer {
    /// A trimmer of `log`.
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

    /// Drops from the journal the events that are sealed, stored and older
    /// than the local window; returns how many went. A journal that refuses
    /// is only logged: trimming is housekeeping, the next ship retries.
    pub fn trim(&self) -> Result<u64> {
        let cutoff = now_ms().saturating_sub(self.settings.get().local_window_ms);
        let Some(below) = self.ledger.progress().trim_bound(cutoff) else {
            return Ok(0);
        };
        match self.log.trim_below(below) {
            Ok(n) => {
                if n > 0 {
                    tracing::info!(below, events = n, "journal trimmed");
                }
                self.ledger
                    .update(|p| p.untrimmed.retain(|&(last, _)| last >= below))?;
                self.stats.trimmed_below.store(below, Ordering::Relaxed);
                Ok(n)
            }
            Err(e) => {
                tracing::warn!(below, error = %e, "could not trim the journal");
                Ok(0)
            }
        }
    }
}
