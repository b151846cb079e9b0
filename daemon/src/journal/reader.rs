//! Reading the event log of a running journal: [`LogReader`], the handle the
//! journal gives other tasks (the compactor) to read sealed ranges, drop
//! blocks they no longer need and see the journal's size, while the writer
//! keeps committing.
//!
//! A reader needs no lock shared with the writer: sled trees are safe to
//! read and write from several threads, and each read sees whole committed
//! blocks (a block is one insert). What it must respect is sled's directory
//! lock, which sled keeps while any handle on the database lives. So a
//! reader can be emptied and refilled, and the writer, the only party that
//! opens the journal, does this around a reopen after an I/O error:
//! 1. [`LogReader::detach`] before dropping the failed journal: it waits for
//!    a read in progress to finish, then drops every sled handle the reader
//!    holds. From then on reads and trims fail with [`Error::Detached`]
//!    (callers retry later) and [`LogReader::next_seq`] and
//!    [`LogReader::size_on_disk`] return the last figures seen.
//! 2. Reopen the journal.
//! 3. [`LogReader::attach`] with the reopened journal.
//!
//! Every clone of a reader shares one slot, and no sled handle ever leaves
//! it, so once `detach` returns no reader holds the database open.
//!
//! Events are read by range one way only, for the journal itself
//! ([`Journal::read_from`], [`Journal::blocks_from`]) as for a reader.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use rewind_format::{EventBlockDecoder, EventRecord, Limits};

use super::keys::{decode_seq, seq_key};
use super::state::{ObjectCompressor, STATE_ZSTD_LEVEL};
use super::{Error, Journal, Result, meta, resolve};

/// The sled handles of one open journal that reading and trimming need.
struct Trees {
    /// The database, for its size and for flushes.
    db: sled::Db,
    /// Event blocks, keyed by the seq of their first record.
    log: sled::Tree,
    /// The current state, whose values may point into blocks being trimmed.
    state: sled::Tree,
    /// `next_seq`, written with each commit.
    meta: sled::Tree,
}

impl Trees {
    /// One past the last record written: `next_seq` in `meta`, else (a
    /// journal that never committed) one past the last block's last record.
    fn next_seq(&self) -> u64 {
        if let Ok(Some(v)) = self.meta.get(meta::NEXT_SEQ)
            && let Ok(n) = meta::decode_u64(&v)
        {
            return n;
        }
        let Some(Ok((_, v))) = self.log.iter().next_back() else {
            return 1;
        };
        rewind_format::decode_block(&v, &Limits::default())
            .ok()
            .and_then(|r| r.last().map(|e| e.seq.saturating_add(1)))
            .unwrap_or(1)
    }

    /// Drops the blocks whose records all have `seq < below`, after copying
    /// into the state the objects whose values point into them; returns
    /// how many events went.
    fn trim_below(&self, below: u64) -> Result<u64> {
        // A block may go when the next block starts at or below `below`:
        // then every record in it is older.
        let keys: Vec<u64> = self
            .log
            .range(..=seq_key(below))
            .keys()
            .filter_map(|k| k.ok().and_then(|k| decode_seq(&k)))
            .collect();
        let drop = keys.split_last().map_or(&[][..], |(_, rest)| rest);
        if drop.is_empty() {
            return Ok(0);
        }
        // State values may point at these blocks' events: they get their
        // objects first, durably, and only then do the blocks go.
        let mut compressor = ObjectCompressor::new(STATE_ZSTD_LEVEL)?;
        let inlined =
            resolve::inline_objects_of_blocks(&self.state, &self.log, drop, &mut compressor)?;
        if inlined > 0 {
            self.db.flush()?;
            tracing::debug!(
                objects = inlined,
                blocks = drop.len(),
                "copied objects into the state before trimming their blocks"
            );
        }
        let mut dropped = 0u64;
        for pair in keys.windows(2) {
            let [first, next] = pair else { continue };
            self.log.remove(seq_key(*first))?;
            dropped += next - first;
        }
        if dropped > 0 {
            self.db.flush()?;
        }
        Ok(dropped)
    }
}

/// A read-and-trim handle on a running journal's event log (see the module
/// doc for how the writer detaches it around a reopen). Cheap to clone;
/// clones share one slot.
#[derive(Clone, Default)]
pub struct LogReader {
    /// The journal's trees; `None` while the writer reopens the journal.
    trees: Arc<RwLock<Option<Trees>>>,
    /// Last `next_seq` seen, served while detached.
    next_seq: Arc<AtomicU64>,
    /// Last size on disk seen, served while detached.
    size: Arc<AtomicU64>,
}

impl std::fmt::Debug for LogReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogReader")
            .field("attached", &self.is_attached())
            .finish_non_exhaustive()
    }
}

impl LogReader {
    /// A reader attached to `journal`.
    #[must_use]
    pub fn new(journal: &Journal) -> Self {
        let reader = Self::default();
        reader.attach(journal);
        reader
    }

    /// Points the reader (and every clone) at `journal`: after a reopen.
    pub fn attach(&self, journal: &Journal) {
        let trees = Trees {
            db: journal.db.clone(),
            log: journal.log.clone(),
            state: journal.state.clone(),
            meta: journal.meta.clone(),
        };
        self.next_seq.store(trees.next_seq(), Ordering::Relaxed);
        match self.trees.write() {
            Ok(mut t) => *t = Some(trees),
            Err(poisoned) => *poisoned.into_inner() = Some(trees),
        }
    }

    /// Drops the reader's sled handles, waiting for a read in progress.
    /// Once this returns the journal can be closed and reopened.
    pub fn detach(&self) {
        let old = match self.trees.write() {
            Ok(mut t) => t.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        drop(old);
    }

    /// Whether the reader holds the journal's trees.
    #[must_use]
    pub fn is_attached(&self) -> bool {
        self.trees.read().map(|t| t.is_some()).unwrap_or(false)
    }

    /// Runs `f` on the trees; `None` while detached.
    fn with<T>(&self, f: impl FnOnce(&Trees) -> T) -> Option<T> {
        let guard = self.trees.read().ok()?;
        guard.as_ref().map(f)
    }

    /// One past the seq of the last event written. The journal writes it
    /// just before its fsync: a commit in progress may count here before it
    /// is durable (the writer publishes the durable seq itself). While
    /// detached, the last value seen.
    #[must_use]
    pub fn next_seq(&self) -> u64 {
        match self.with(Trees::next_seq) {
            Some(n) => {
                self.next_seq.store(n, Ordering::Relaxed);
                n
            }
            None => self.next_seq.load(Ordering::Relaxed),
        }
    }

    /// Events with `seq >= from`, in order, stopping after the block that
    /// brings the object JSON read to about `max_bytes` (at least one
    /// block). While detached, [`Error::Detached`].
    pub fn read_from(&self, from: u64, max_bytes: u64) -> Result<Vec<EventRecord>> {
        self.with(|t| read_from(&t.log, from, max_bytes))
            .unwrap_or(Err(Error::Detached))
    }

    /// Drops the log blocks whose events all have `seq < below`; returns
    /// how many events were dropped. The objects that state values left in
    /// those blocks are copied into the values first, durably. While
    /// detached, [`Error::Detached`].
    pub fn trim_below(&self, below: u64) -> Result<u64> {
        self.with(|t| t.trim_below(below))
            .unwrap_or(Err(Error::Detached))
    }

    /// Bytes the journal occupies on disk (0 if sled cannot tell); while
    /// detached, the last value seen.
    #[must_use]
    pub fn size_on_disk(&self) -> u64 {
        match self.with(|t| t.db.size_on_disk().unwrap_or(0)) {
            Some(n) => {
                self.size.store(n, Ordering::Relaxed);
                n
            }
            None => self.size.load(Ordering::Relaxed),
        }
    }
}

/// Event blocks of `log`, starting with the block that holds `seq` (or the
/// first block after it). Each item is `(first_seq, records)`.
pub(crate) fn blocks_from(
    log: &sled::Tree,
    seq: u64,
) -> impl Iterator<Item = Result<(u64, Vec<EventRecord>)>> + '_ {
    let start = log
        .range(..=seq_key(seq))
        .keys()
        .next_back()
        .and_then(|r| r.ok())
        .and_then(|k| decode_seq(&k))
        .unwrap_or(seq);
    // One decoder for every block: a group commit is many small blocks,
    // and a zstd context per block cost more than the decoding.
    let mut decoder = EventBlockDecoder::new(Limits::default());
    log.range(seq_key(start)..).map(move |r| {
        let (k, v) = r?;
        let first = decode_seq(&k).ok_or_else(|| Error::Corrupt(format!("bad log key {k:?}")))?;
        let d = decoder
            .as_mut()
            .map_err(|e| Error::Corrupt(format!("cannot start a block decoder: {e}")))?;
        let records = d.decode(&v)?;
        Ok((first, records))
    })
}

/// Records of `log` with `seq >= from`, in order, stopping after the block
/// that brings the object JSON read to `max_bytes` (so at least one block).
pub(crate) fn read_from(log: &sled::Tree, from: u64, max_bytes: u64) -> Result<Vec<EventRecord>> {
    let mut out = Vec::new();
    let mut bytes = 0u64;
    for block in blocks_from(log, from) {
        let (_, records) = block?;
        for r in records {
            if r.seq >= from {
                bytes = bytes.saturating_add(u64::try_from(r.object.len()).unwrap_or(u64::MAX));
                out.push(r);
            }
        }
        if bytes >= max_bytes {
            break;
        }
    }
    Ok(out)
}
