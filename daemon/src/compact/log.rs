//! The seam between the compactor and the journal.
//!
//! The compactor only reads the event log (in seq order, from a given seq)
//! and asks it to drop blocks it no longer needs. Keeping this a trait lets
//! the journal's owner decide how the journal is shared between the
//! committer and the compactor, and lets tests drive the compactor with a
//! real [`Journal`] directly.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use rewind_format::EventRecord;

use crate::journal::Journal;

/// What the compactor needs from the journal. Implementations must be
/// cheap to call from a blocking thread and must never hold up the
/// committer for longer than one read.
pub trait EventLog: Send + Sync + 'static {
    /// One past the seq of the last durable event.
    fn next_seq(&self) -> u64;

    /// Durable events with `seq >= from`, in order, stopping once about
    /// `max_bytes` of object JSON were read (at least one block).
    fn read_from(&self, from: u64, max_bytes: u64) -> Result<Vec<EventRecord>, String>;

    /// Drops log blocks whose events all have `seq < below`; returns how
    /// many events were dropped. An implementation that cannot drop yet
    /// returns `Ok(0)`.
    fn trim_below(&self, below: u64) -> Result<u64, String>;

    /// Bytes the journal occupies on disk.
    fn size_on_disk(&self) -> u64;
}

/// The journal shared behind a mutex with its committer: each call holds
/// the lock for one bounded read.
impl EventLog for Mutex<Journal> {
    fn next_seq(&self) -> u64 {
        self.lock().map_or(0, |j| j.next_seq())
    }

    fn read_from(&self, from: u64, max_bytes: u64) -> Result<Vec<EventRecord>, String> {
        let journal = self.lock().map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        let mut bytes = 0u64;
        for block in journal.blocks_from(from) {
            let (_, records) = block.map_err(|e| e.to_string())?;
            for r in records {
                if r.seq >= from {
                    bytes += u64::try_from(r.object.len()).unwrap_or(u64::MAX);
                    out.push(r);
                }
            }
            if bytes >= max_bytes {
                break;
            }
        }
        Ok(out)
    }

    fn trim_below(&self, _below: u64) -> Result<u64, String> {
        // The journal has no "delete log blocks below seq" yet (its trees
        // are private to `journal`); until it does, sealed events stay in
        // the journal. See the report of issue 5.
        Ok(0)
    }

    fn size_on_disk(&self) -> u64 {
        self.lock()
            .ok()
            .and_then(|j| j.size_on_disk().ok())
            .unwrap_or(0)
    }
}

/// A read-and-trim view of a running journal's `log` tree, shared with the
/// writer thread through sled's own concurrency (sled trees are safe to
/// read and write from several threads; each read sees whole committed
/// blocks, since a block is one insert).
///
/// Built from [`Journal::log_handle`]. The view keeps the sled database
/// open; the daemon therefore never hands one out directly but through a
/// [`JournalSlot`], which the writer empties before it reopens the journal.
pub struct JournalView {
    /// The database, for its size.
    db: sled::Db,
    /// The `log` tree: one event block per group commit, keyed by first seq.
    log: sled::Tree,
    /// The `meta` tree, for `next_seq` (committed with each batch).
    meta: Option<sled::Tree>,
    /// The `state` tree, whose values may point into blocks being trimmed.
    state: Option<sled::Tree>,
}

impl std::fmt::Debug for JournalView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JournalView").finish_non_exhaustive()
    }
}

impl JournalView {
    /// A view of `journal`'s log.
    #[must_use]
    pub fn new(journal: &Journal) -> Self {
        let (db, log) = journal.log_handle();
        let meta = db.open_tree("meta").ok();
        let state = db.open_tree("state").ok();
        Self {
            db,
            log,
            meta,
            state,
        }
    }
}

impl EventLog for JournalView {
    fn next_seq(&self) -> u64 {
        // `next_seq` is written in the same transaction as each block.
        if let Some(Ok(Some(v))) = self
            .meta
            .as_ref()
            .map(|m| m.get(crate::journal::meta::NEXT_SEQ))
            && let Ok(bytes) = <[u8; 8]>::try_from(v.as_ref())
        {
            return u64::from_be_bytes(bytes);
        }
        // Fallback: one past the last record of the last block.
        let Some(Ok((_, v))) = self.log.iter().next_back() else {
            return 1;
        };
        rewind_format::decode_block(&v, &rewind_format::Limits::default())
            .ok()
            .and_then(|r| r.last().map(|e| e.seq + 1))
            .unwrap_or(1)
    }

    fn read_from(&self, from: u64, max_bytes: u64) -> Result<Vec<EventRecord>, String> {
        use crate::journal::keys::{decode_seq, seq_key};
        let start = self
            .log
            .range(..=seq_key(from))
            .keys()
            .next_back()
            .and_then(std::result::Result::ok)
            .and_then(|k| decode_seq(&k))
            .unwrap_or(from);
        // One zstd context for every block (a group commit is many small
        // blocks).
        let mut decoder = rewind_format::EventBlockDecoder::new(rewind_format::Limits::default())
            .map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        let mut bytes = 0u64;
        for kv in self.log.range(seq_key(start)..) {
            let (_, v) = kv.map_err(|e| e.to_string())?;
            let records = decoder.decode(&v).map_err(|e| e.to_string())?;
            for r in records {
                if r.seq >= from {
                    bytes += u64::try_from(r.object.len()).unwrap_or(u64::MAX);
                    out.push(r);
                }
            }
            if bytes >= max_bytes {
                break;
            }
        }
        Ok(out)
    }

    fn trim_below(&self, below: u64) -> Result<u64, String> {
        use crate::journal::keys::{decode_seq, seq_key};
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
        let Some(state) = &self.state else {
            return Ok(0);
        };
        let mut compressor =
            crate::journal::ObjectCompressor::new(crate::journal::state::STATE_ZSTD_LEVEL)
                .map_err(|e| e.to_string())?;
        let inlined = crate::journal::resolve::inline_objects_of_blocks(
            state,
            &self.log,
            drop,
            &mut compressor,
        )
        .map_err(|e| e.to_string())?;
        if inlined > 0 {
            self.db.flush().map_err(|e| e.to_string())?;
            tracing::debug!(
                objects = inlined,
                blocks = drop.len(),
                "copied objects into the state before trimming their blocks"
            );
        }
        let mut dropped = 0u64;
        for pair in keys.windows(2) {
            let [first, next] = pair else { continue };
            self.log
                .remove(seq_key(*first))
                .map_err(|e| e.to_string())?;
            dropped += next - first;
        }
        if dropped > 0 {
            self.db.flush().map_err(|e| e.to_string())?;
        }
        Ok(dropped)
    }

    fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }
}

/// The compactor's handle on the running journal, which the journal writer
/// can take away and give back: sled keeps its directory lock while any
/// handle lives, so a writer that reopens the journal after an I/O error
/// must first make every other holder let go.
///
/// Protocol for the writer (the only party that opens the journal):
/// 1. [`JournalSlot::detach`] before dropping the failed journal: it waits
///    for a read in progress to finish, then drops the slot's handle. From
///    then on the compactor's reads fail with a "reopening" error (sealing
///    retries on its next tick) and `next_seq`/`size_on_disk` return the
///    last known figures.
/// 2. Reopen the journal.
/// 3. [`JournalSlot::attach`] with the new journal.
///
/// No clone of the inner [`JournalView`] ever leaves the slot, so after
/// `detach` returns this slot holds no sled handle.
#[derive(Clone, Default)]
pub struct JournalSlot {
    /// The current view; `None` while the writer reopens the journal.
    view: Arc<RwLock<Option<JournalView>>>,
    /// Last `next_seq` seen, served while detached.
    next_seq: Arc<AtomicU64>,
    /// Last size on disk seen, served while detached.
    size: Arc<AtomicU64>,
    /// The writer's status board: its `next_seq` moves only after a batch
    /// is fsynced, while the journal's own `next_seq` record is written
    /// just before the fsync. Sealing must never take an event a crash
    /// could still lose (its seq would be reused after recovery).
    durable: Option<crate::status::Board>,
}

impl std::fmt::Debug for JournalSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JournalSlot")
            .field("attached", &self.is_attached())
            .field("bounded", &self.durable.is_some())
            .finish_non_exhaustive()
    }
}

/// The error a read gets while the journal is detached.
const DETACHED: &str = "the journal is being reopened; retry later";

impl JournalSlot {
    /// A slot attached to `journal`.
    #[must_use]
    pub fn new(journal: &Journal) -> Self {
        let slot = Self::default();
        slot.attach(journal);
        slot
    }

    /// Bounds `next_seq` by the durable seq the writer reports on `board`
    /// (set it before cloning the slot).
    #[must_use]
    pub fn bounded_by(mut self, board: crate::status::Board) -> Self {
        self.durable = Some(board);
        self
    }

    /// Gives the slot a view of `journal` (after a reopen).
    pub fn attach(&self, journal: &Journal) {
        let view = JournalView::new(journal);
        self.next_seq.store(view.next_seq(), Ordering::Relaxed);
        match self.view.write() {
            Ok(mut v) => *v = Some(view),
            Err(poisoned) => *poisoned.into_inner() = Some(view),
        }
    }

    /// Drops the slot's sled handle, waiting for a read in progress. After
    /// this returns the journal can be closed and reopened.
    pub fn detach(&self) {
        let old = match self.view.write() {
            Ok(mut v) => v.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        drop(old);
    }

    /// Whether the slot holds a view.
    #[must_use]
    pub fn is_attached(&self) -> bool {
        self.view.read().map(|v| v.is_some()).unwrap_or(false)
    }

    fn with<T>(&self, f: impl FnOnce(&JournalView) -> T) -> Option<T> {
        let guard = self.view.read().ok()?;
        guard.as_ref().map(f)
    }
}

impl EventLog for JournalSlot {
    fn next_seq(&self) -> u64 {
        let written = match self.with(JournalView::next_seq) {
            Some(n) => {
                self.next_seq.store(n, Ordering::Relaxed);
                n
            }
            None => self.next_seq.load(Ordering::Relaxed),
        };
        match &self.durable {
            // The board starts at the journal's next_seq on open and moves
            // after each fsync.
            Some(board) => written.min(board.snapshot().journal.next_seq),
            None => written,
        }
    }

    fn read_from(&self, from: u64, max_bytes: u64) -> Result<Vec<EventRecord>, String> {
        self.with(|v| v.read_from(from, max_bytes))
            .unwrap_or_else(|| Err(DETACHED.into()))
    }

    fn trim_below(&self, below: u64) -> Result<u64, String> {
        self.with(|v| v.trim_below(below))
            .unwrap_or_else(|| Err(DETACHED.into()))
    }

    fn size_on_disk(&self) -> u64 {
        match self.with(JournalView::size_on_disk) {
            Some(n) => {
                self.size.store(n, Ordering::Relaxed);
                n
            }
            None => self.size.load(Ordering::Relaxed),
        }
    }
}
