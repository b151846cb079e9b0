//! Settings of sealing, snapshots, shipping and retention: the `[compact]`
//! section of `rewindd.toml` as written ([`CompactConfig`], one section of
//! [`crate::config::FileConfig`]; `deploy/rewindd.toml` explains every
//! option) and the validated [`Settings`] the compactor runs with.

use serde::{Deserialize, Serialize};

use rewind_history::store::retention::parse_duration_ms;
use rewind_history::store::{RetentionPolicy, StoreConfig};

use super::error::{CompactError, Result};
use super::schedule::Schedule;

/// The `[compact]` section, with its defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompactConfig {
    /// Seal pending events into a segment at least this often (`10s`).
    pub seal_interval: String,
    /// ... or as soon as about this many bytes of events are pending.
    pub seal_bytes: u64,
    /// Cron-like schedule of full snapshots (UTC, 5 fields), e.g.
    /// `"0 */6 * * *"`; empty disables scheduled snapshots.
    pub snapshot_schedule: String,
    /// Take a snapshot once this many events were sealed since the last one;
    /// 0 disables the threshold.
    pub snapshot_after_events: u64,
    /// Budget for data kept locally because the store has not taken it yet
    /// (unshipped segments and snapshots plus the journal), in bytes.
    pub disk_budget_bytes: u64,
    /// The journal keeps events this long after they are stored (`24h`),
    /// so `rewindd status` and quick restores need no store.
    pub local_window: String,
    /// zstd level of snapshots (written once per snapshot; smaller is
    /// worth the CPU).
    pub zstd_level: i32,
    /// zstd level of segments (written every few seconds while recording;
    /// speed matters more).
    pub segment_zstd_level: i32,
    /// Bytes a snapshot fold holds in memory (objects plus their keys)
    /// before it spills them as a sorted run; bounds memory on a first
    /// snapshot of a large journal. Below the default the runs' decoded
    /// blocks grow as fast as the budget shrinks, so the peak does not
    /// fall (`docs/BENCHMARKS.md`, "Design measurements").
    pub fold_memory_bytes: u64,
}

impl Default for CompactConfig {
    fn default() -> Self {
        Self {
            seal_interval: "10s".into(),
            seal_bytes: 16 << 20,
            snapshot_schedule: "0 * * * *".into(),
            snapshot_after_events: 1_000_000,
            disk_budget_bytes: 10 << 30,
            local_window: "24h".into(),
            zstd_level: 9,
            segment_zstd_level: 3,
            fold_memory_bytes: 12 << 20,
        }
    }
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Seal interval.
    pub seal_interval: std::time::Duration,
    /// Seal size trigger.
    pub seal_bytes: u64,
    /// Snapshot schedule, if any.
    pub schedule: Option<Schedule>,
    /// Snapshot event threshold (0 = off).
    pub snapshot_after_events: u64,
    /// Disk budget.
    pub disk_budget_bytes: u64,
    /// Journal local window in ms.
    pub local_window_ms: i64,
    /// zstd level of snapshots.
    pub zstd_level: i32,
    /// zstd level of segments.
    pub segment_zstd_level: i32,
    /// Fold memory bound.
    pub fold_memory_bytes: u64,
    /// age X25519 recipients (from `[encryption]`); when set, every file
    /// is encrypted to them before it leaves memory.
    pub recipients: Vec<rewind_format::crypto::Recipient>,
    /// Where files go.
    pub store: StoreConfig,
    /// What to keep there.
    pub retention: RetentionPolicy,
    /// How store operations are retried.
    pub store_retry: rewind_history::store::RetryPolicy,
}

impl CompactConfig {
    /// Checks and parses every setting, naming the first wrong one. The
    /// result has no recipients: they are `[encryption]`'s, which
    /// [`crate::config`] validates and sets.
    pub fn validate(&self, store: StoreConfig, retention: RetentionPolicy) -> Result<Settings> {
        let ms = |setting: &'static str, v: &str| {
            parse_duration_ms(v).filter(|&ms| ms >= 0).ok_or_else(|| {
                cfg(
                    setting,
                    format!("`{v}` is not a duration like 10s, 5m, 24h"),
                )
            })
        };
        let seal_ms = ms("compact.seal_interval", &self.seal_interval)?;
        if seal_ms < 100 {
            return Err(cfg("compact.seal_interval", "must be at least 100ms"));
        }
        let schedule = if self.snapshot_schedule.trim().is_empty() {
            None
        } else {
            Some(
                Schedule::parse(&self.snapshot_schedule)
                    .map_err(|e| cfg("compact.snapshot_schedule", e))?,
            )
        };
        if self.seal_bytes < 4096 {
            return Err(cfg("compact.seal_bytes", "must be at least 4096"));
        }
        if !(1..=22).contains(&self.zstd_level) {
            return Err(cfg("compact.zstd_level", "must be 1..=22"));
        }
        if !(1..=22).contains(&self.segment_zstd_level) {
            return Err(cfg("compact.segment_zstd_level", "must be 1..=22"));
        }
        store.validate().map_err(|e| cfg("store", e.to_string()))?;
        Ok(Settings {
            seal_interval: std::time::Duration::from_millis(u64::try_from(seal_ms).unwrap_or(0)),
            seal_bytes: self.seal_bytes,
            schedule,
            snapshot_after_events: self.snapshot_after_events,
            disk_budget_bytes: self.disk_budget_bytes,
            local_window_ms: ms("compact.local_window", &self.local_window)?,
            zstd_level: self.zstd_level,
            segment_zstd_level: self.segment_zstd_level,
            fold_memory_bytes: self.fold_memory_bytes,
            recipients: Vec::new(),
            store,
            retention,
            store_retry: rewind_history::store::RetryPolicy::default(),
        })
    }
}

fn cfg(setting: &'static str, reason: impl Into<String>) -> CompactError {
    CompactError::Config {
        setting,
        reason: reason.into(),
    }
}
