//! Counters and gauges the compactor keeps for `/metrics` and `status`.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

/// Lock-free figures, written by the compactor, read by the metrics endpoint.
#[derive(Debug, Default)]
pub struct CompactStats {
    /// Segments sealed since start.
    pub segments_sealed: AtomicU64,
    /// Segments stored since start.
    pub segments_shipped: AtomicU64,
    /// Snapshots made since start.
    pub snapshots: AtomicU64,
    /// Failed store operations (after retries) since start.
    pub store_errors: AtomicU64,
    /// Every event up to this seq is sealed.
    pub sealed_upto: AtomicU64,
    /// Every segment up to this seq is stored.
    pub shipped_upto: AtomicU64,
    /// Time of the last snapshot's seq, Unix ms (0: none yet).
    pub last_snapshot_time_ms: AtomicI64,
    /// Plain size of the last snapshot in bytes.
    pub last_snapshot_bytes: AtomicU64,
    /// Objects in the last snapshot.
    pub last_snapshot_objects: AtomicU64,
    /// How long the last snapshot took to fold, ms.
    pub last_snapshot_duration_ms: AtomicU64,
    /// Bytes kept locally (journal plus unstored files).
    pub local_bytes: AtomicU64,
    /// The journal's size on disk.
    pub journal_bytes: AtomicU64,
    /// The disk budget in force (a reload may change it).
    pub disk_budget_bytes: AtomicU64,
    /// Whether `local_bytes` passed the disk budget.
    pub over_budget: AtomicBool,
    /// The journal has dropped every event below this seq.
    pub trimmed_below: AtomicU64,
    /// Whether the last attempt to reach the store failed.
    pub store_down: AtomicBool,
}

impl CompactStats {
    /// Reads a counter.
    #[must_use]
    pub fn get(v: &AtomicU64) -> u64 {
        v.load(Ordering::Relaxed)
    }
}
