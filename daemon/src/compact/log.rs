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

impl<T: EventLog + ?Sized> EventLog for std::sync::Arc<T> {
    fn next_seq(&self) -> u64 {
        (**self).next_seq()
    }

    fn read_from(&self, from: u64, max_bytes: u64) -> journal::Result<Vec<EventRecord>> {
        (**self).read_from(from, max_bytes)
    }

    fn trim_below(&self, below: u64) -> journal::Result<u64> {
        (**self).trim_below(below)
    }

    fn size_on_disk(&self) -> u64 {
        (**self).size_on_disk()
    }
}

/// A log whose sequence numbers are the inner log's plus `offset`: the
/// compactor sees the lineage's numbers, the journal keeps its own.
pub struct Shifted<L> {
    inner: L,
    offset: u64,
}

impl<L: EventLog> Shifted<L> {
    /// `inner`'s events, each seq plus `offset`.
    pub fn new(inner: L, offset: u64) -> Self {
        Self { inner, offset }
    }
}

impl<L: EventLog> EventLog for Shifted<L> {
    fn next_seq(&self) -> u64 {
        self.inner.next_seq().saturating_add(self.offset)
    }

    fn read_from(&self, from: u64, max_bytes: u64) -> journal::Result<Vec<EventRecord>> {
        let inner_from = from.saturating_sub(self.offset).max(1);
        let mut events = self.inner.read_from(inner_from, max_bytes)?;
        for e in &mut events {
            e.seq = e.seq.saturating_add(self.offset);
        }
        Ok(events)
    }

    fn trim_below(&self, below: u64) -> journal::Result<u64> {
        self.inner.trim_below(below.saturating_sub(self.offset))
    }

    fn size_on_disk(&self) -> u64 {
        self.inner.size_on_disk()
    }
}

/// The writer's durable position (one past the last durable journal seq)
/// in the lineage's numbers: `offset` added, followed until the writer's
/// sender is dropped.
#[must_use]
pub fn shift_durable(
    mut durable: tokio::sync::watch::Receiver<u64>,
    offset: u64,
) -> tokio::sync::watch::Receiver<u64> {
    if offset == 0 {
        return durable;
    }
    let first = durable.borrow_and_update().saturating_add(offset);
    let (tx, rx) = tokio::sync::watch::channel(first);
    tokio::spawn(async move {
        while durable.changed().await.is_ok() {
            let v = durable.borrow_and_update().saturating_add(offset);
            if tx.send(v).is_err() {
                return;
            }
        }
    });
    rx
}
