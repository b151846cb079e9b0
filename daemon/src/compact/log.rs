//! The seam between the compactor and the journal: [`EventLog`], what the
//! compactor needs from the event log.
//!
//! The compactor reads events in seq order from a given seq, asks the log
//! to drop blocks it no longer needs, and watches the journal's size. The
//! running daemon gives it the journal's own [`LogReader`]; tests give it a
//! journal they drive directly, or one that counts the reads.

use rewind_format::EventRecord;

use crate::journal::{self, LogReader};

/// What the compactor needs from the journal. Implementations must be
/// cheap to call from a blocking thread and must never hold up the
/// committer for longer than one read.
pub trait EventLog: Send + Sync + 'static {
    /// One past the seq of the last event written (the durable bound is
    /// separate: see [`super::Sealer`]).
    fn next_seq(&self) -> u64;

    /// Events with `seq >= from`, in order, stopping once about
    /// `max_bytes` of object JSON were read (at least one block).
    fn read_from(&self, from: u64, max_bytes: u64) -> journal::Result<Vec<EventRecord>>;

    /// Drops log blocks whose events all have `seq < below`; returns how
    /// many events were dropped. An implementation that cannot drop yet
    /// returns `Ok(0)`.
    fn trim_below(&self, below: u64) -> journal::Result<u64>;

    /// Bytes the journal occupies on disk.
    fn size_on_disk(&self) -> u64;
}

impl EventLog for LogReader {
    fn next_seq(&self) -> u64 {
        LogReader::next_seq(self)
    }

    fn read_from(&self, from: u64, max_bytes: u64) -> journal::Result<Vec<EventRecord>> {
        LogReader::read_from(self, from, max_bytes)
    }

    fn trim_below(&self, below: u64) -> journal::Result<u64> {
        LogReader::trim_below(self, below)
    }

    fn size_on_disk(&self) -> u64 {
        LogReader::size_on_disk(self)
    }
}
