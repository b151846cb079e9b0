//! The journal: a sled database holding the event log, the current state and
//! per-type metadata. This module doc is its specification.
//!
//! # Trees
//! - `log`: event blocks. Key: the big-endian seq of the block's first
//!   record. Value: one `rewind_format` event block (zstd, CRC-checked)
//!   holding records with consecutive seqs. A group commit writes its
//!   records as blocks of at most about [`JournalOptions::block_bytes`]
//!   (a journal may also hold one block per commit). Readers take any
//!   split, since blocks are found by key range, so the block size is not
//!   part of the layout version.
//!   Blocks of many events instead of one entry per event are what make
//!   ingestion fast; bounded blocks keep sled from storing them as
//!   unsynced blob files (see [`DEFAULT_BLOCK_BYTES`]).
//! - `state`: the latest recorded version of every live object, keyed by
//!   type/namespace/name (see [`keys`]), valued by [`StateEntry`]. Used for
//!   deduplication, relist diffs and snapshots. A value usually holds only
//!   the object's uid, resourceVersion and seq: the object itself is the
//!   JSON of that event in `log`, until the compactor trims its block and
//!   copies it into the value first (see [`state`] and [`resolve`]). Keys
//!   starting with 0xFF are the journal's own: the commit record (see
//!   [`commit`]).
//! - `meta`: `next_seq`, the layout version, and a [`TypeRecord`] per type.
//!
//! # Write order
//! A group commit writes the log block, then the state changes together
//! with a commit record (one sled batch: the commit point), then the meta
//! changes, then fsyncs; [`commit`] details it and why no cross-tree
//! transaction is needed.
//!
//! # Invariants (must hold after any crash, once [`Journal::open`] returned)
//! - A batch is in the journal whole or not at all: its block, its state
//!   changes and its meta changes. Opening finishes the meta writes of a
//!   batch that reached its commit point and drops the block of one that
//!   did not.
//! - Records in the log have strictly increasing, gap-free seqs; `next_seq`
//!   in `meta` is one past the last record of the last block.
//! - The state equals the replay of the log (applied/deleted records).
//! - A batch counts as acknowledged only after [`Journal::commit`] returned,
//!   which flushes sled and then `fdatasync`s the files sled wrote (see
//!   [`durable`]: sled's own flush does not reach the disk) before
//!   returning.
//!
//! # Layout versions
//! `meta/format` is `4`. Older layouts are read as they are and marked 4 on
//! open, since their trees are special cases of layout 4:
//! - layout 3 never left an object in the log (state codec 2); layout 4
//!   writes codec 2 for most objects and reads every value of layout 3;
//! - layout 2 wrote every state value in state layout 1 (the object always
//!   one zstd frame); layout 3 writes state layout 2 (a codec byte: raw or
//!   zstd, see [`state`]) and reads both, so a relabelled journal holds a
//!   mix until its objects change;
//! - layout 1 was layout 2 with one sled transaction per commit and no
//!   commit record.
//!
//! A release that reads only layouts 1 to 3 refuses a layout-4 journal with
//! a clear error instead of failing on its state values one by one (and one
//! that reads only 1 and 2 refuses layout 3).
//!
//! # Reading while the writer runs
//! Other tasks of the daemon read the log of the running journal through a
//! [`LogReader`] ([`Journal::log_reader`], see [`reader`]), which the writer
//! detaches while it reopens the journal. Processes other than the daemon
//! may open a [`Journal`] only when no daemon holds it: sled takes an
//! exclusive lock on the directory.

pub mod batch;
pub mod commit;
pub(crate) mod durable;
pub mod keys;
pub mod meta;
pub mod reader;
pub(crate) mod resolve;
pub mod state;

use std::path::{Path, PathBuf};

use rewind_format::EventRecord;

pub use batch::{BatchBuilder, PreparedBatch};
pub use commit::Ops;
pub use keys::{ObjectKey, type_key};
pub use meta::TypeRecord;
pub use reader::LogReader;
pub use state::{ObjectCodec, ObjectCompressor, StateEntry, StateHead, StoredObject};

/// Errors of the journal.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// sled failed: an I/O error (a full disk shows up here) or a bug.
    #[error("journal storage error: {0}")]
    Storage(#[from] sled::Error),
    /// Stored bytes do not decode.
    #[error("corrupt journal: {0}")]
    Corrupt(String),
    /// The stored commit record claims more bytes than a commit record may
    /// hold: it is corrupt (see [`commit`]).
    #[error("corrupt journal: the commit record needs {len} bytes or more, the limit is {limit}")]
    CommitRecordTooLarge {
        /// Bytes stored or claimed.
        len: usize,
        /// [`commit::COMMIT_RECORD_LIMIT`].
        limit: usize,
    },
    /// An event block failed its checks.
    #[error("corrupt event block: {0}")]
    Block(#[from] rewind_format::FormatError),
    /// The journal was written by another layout version.
    #[error("journal layout {found:?} is not supported (this release reads 1 to 4)")]
    UnsupportedLayout {
        /// Layout version found in `meta`.
        found: String,
    },
    /// A batch was prepared against another journal position.
    #[error("batch starts at seq {batch} but the journal is at {journal}")]
    OutOfOrder {
        /// First seq of the batch.
        batch: u64,
        /// The journal's next seq.
        journal: u64,
    },
    /// An earlier commit failed part way; reopen the journal (which settles
    /// the half-written batch) before committing again.
    #[error("an earlier journal write failed; the journal must be reopened")]
    NeedsReopen,
    /// The journal's volume has too little free space for the next batch.
    /// Checked before writing, so that sled never fails half way through a
    /// write for lack of space (it then refuses every later write).
    #[error("no space left on the journal volume: {free} bytes free, {need} needed")]
    NoSpace {
        /// Bytes available to the daemon.
        free: u64,
        /// Bytes the next batch needs, reserve included.
        need: u64,
    },
    /// An object too large to record.
    #[error("object of {0} bytes is too large to record")]
    TooLarge(usize),
    /// A file sled wrote could not be made durable (see [`durable`]).
    #[error("cannot make the journal durable: {what} {}: {source}", path.display())]
    Sync {
        /// The operation that failed (`fdatasync`, `fsync`, `open`, `list`).
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A [`LogReader`] was used while the writer reopens the journal; the
    /// caller retries later.
    #[error("the journal is being reopened; retry later")]
    Detached,
}

/// Result alias of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How to open the journal.
#[derive(Debug, Clone)]
pub struct JournalOptions {
    /// sled page cache in bytes. Small on purpose: the daemon must not keep
    /// the recorded objects in memory.
    pub cache_capacity: u64,
    /// zstd level of event blocks. Low levels keep up with tens of
    /// thousands of events per second on one core. Objects copied into
    /// state values use [`state::STATE_ZSTD_LEVEL`].
    pub zstd_level: i32,
    /// Largest event block as stored (compressed), bytes: a group commit
    /// is stored as as many blocks as it needs (see
    /// [`DEFAULT_BLOCK_BYTES`]). An event larger than this gets a block of
    /// its own.
    pub block_bytes: usize,
}

/// Default of [`JournalOptions::block_bytes`].
///
/// sled 0.34 writes any log entry larger than a quarter of its 512 KiB
/// segments as a "blob", a file of its own, which it never syncs (the
/// journal does, one `fdatasync` per file: see [`durable`]) and which
/// its page cache counts as a few bytes. One block per group commit (about
/// 1 MB per 1,000 events) would make every commit such a file, and sled
/// keeps a tree leaf in memory whole: a leaf holds up to 17 blocks, and
/// rewrites itself as one entry every 10 changes. Blocks of at most 7 KiB keep even
/// a full leaf of the `log` tree under 128 KiB: in sled's log and inside
/// its cache accounting.
pub const DEFAULT_BLOCK_BYTES: usize = 7 << 10;

/// Default of [`JournalOptions::cache_capacity`], MiB. sled's cache holds
/// about this much heap at most once the daemon settles, and about 1.3
/// times as much while a large plane is first synced. A larger cache lets
/// the first sync of 100,000 objects pass the 150 MB memory target; a
/// smaller one costs dedup reads on the write path (figures:
/// `docs/BENCHMARKS.md`, "Design measurements"; docs/MANUAL.md "Journal
/// and memory").
pub const DEFAULT_CACHE_CAPACITY_MB: u64 = 48;

impl Default for JournalOptions {
    fn default() -> Self {
        Self {
            cache_capacity: DEFAULT_CACHE_CAPACITY_MB << 20,
            zstd_level: 1,
            block_bytes: DEFAULT_BLOCK_BYTES,
        }
    }
}

/// An open journal. One writer per directory (sled locks it).
pub struct Journal {
    dir: PathBuf,
    db: sled::Db,
    log: sled::Tree,
    state: sled::Tree,
    meta: sled::Tree,
    next_seq: u64,
    options: JournalOptions,
    /// Set while a commit is under way and left set if it fails: the trees
    /// may hold part of a batch until [`Journal::recover`] runs on reopen.
    needs_reopen: bool,
    /// Handles on the files sled writes, to make them durable after its
    /// flush (see [`durable`]).
    files: durable::Files,
}

impl Journal {
    /// Opens or creates the journal in `dir`.
    pub fn open(dir: &Path, options: &JournalOptions) -> Result<Self> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(options.cache_capacity)
            // We flush ourselves at the end of each group commit; sled's
            // timer would only add fsyncs.
            .flush_every_ms(None)
            .mode(sled::Mode::HighThroughput)
            .open()?;
        let log = db.open_tree("log")?;
        let state = db.open_tree("state")?;
        let meta = db.open_tree("meta")?;
        let format = meta.get(meta::FORMAT)?;
        match format.as_deref() {
            Some(meta::FORMAT_VERSION) => {}
            None
            | Some(meta::FORMAT_VERSION_1 | meta::FORMAT_VERSION_2 | meta::FORMAT_VERSION_3) => {
                meta.insert(meta::FORMAT, meta::FORMAT_VERSION)?;
                db.flush()?;
            }
            Some(v) => {
                return Err(Error::UnsupportedLayout {
                    found: String::from_utf8_lossy(v).into_owned(),
                });
            }
        }
        let files = durable::Files::open(dir)?;
        let mut journal = Self {
            dir: dir.to_path_buf(),
            db,
            log,
            state,
            meta,
            next_seq: 1,
            options: options.clone(),
            needs_reopen: false,
            files,
        };
        journal.next_seq = journal.recover()?;
        Ok(journal)
    }

    /// [`Journal::open`] for tests that reopen a journal they just dropped:
    /// sled's flusher thread can hold the directory lock for a moment after
    /// the last handle goes (CI saw `WouldBlock` once). The daemon's own
    /// reopen retries the same way (`writer::Writer::reopen`).
    #[cfg(test)]
    #[allow(clippy::unwrap_used)]
    pub(crate) fn open_after_drop(dir: &Path, options: &JournalOptions) -> Self {
        for _ in 0..500 {
            match Self::open(dir, options) {
                Ok(j) => return j,
                Err(Error::Storage(sled::Error::Io(e)))
                    if e.kind() == std::io::ErrorKind::Other =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(e) => panic!("reopening {}: {e}", dir.display()),
            }
        }
        Self::open(dir, options).unwrap()
    }

    /// Directory of the journal.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Options the journal was opened with.
    #[must_use]
    pub fn options(&self) -> &JournalOptions {
        &self.options
    }

    /// The seq the next recorded event will get (seqs start at 1).
    #[must_use]
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Starts a batch at the journal's current position.
    #[must_use]
    pub fn batch(&self) -> BatchBuilder<'_> {
        BatchBuilder::new(self)
    }

    /// The current state of one object.
    pub fn get(&self, key: &ObjectKey) -> Result<Option<StateEntry>> {
        self.get_encoded(&keys::encode_object_key(key))
    }

    /// [`Journal::get`] by encoded key.
    pub(crate) fn get_encoded(&self, k: &[u8]) -> Result<Option<StateEntry>> {
        match self.state.get(k)? {
            Some(v) => resolve::resolve(
                &self.state,
                &self.log,
                &mut resolve::LogObjects::default(),
                k,
                StateEntry::decode(k, &v)?,
            ),
            None => Ok(None),
        }
    }

    /// How the `state` tree holds `key`'s object, as stored (unresolved).
    #[cfg(test)]
    pub(crate) fn stored_codec(&self, key: &ObjectKey) -> Option<ObjectCodec> {
        let k = keys::encode_object_key(key);
        let v = self.state.get(&k).ok()??;
        StateEntry::decode(&k, &v).ok().map(|e| e.object.codec)
    }

    /// [`Journal::get_encoded`] without the object (see [`StateHead`]).
    pub(crate) fn head_encoded(&self, k: &[u8]) -> Result<Option<StateHead>> {
        match self.state.get(k)? {
            Some(v) => Ok(Some(StateHead::decode(k, &v)?)),
            None => Ok(None),
        }
    }

    /// All objects of one type in the current state, in key order.
    pub fn state_of_type(&self, type_key: &str) -> impl Iterator<Item = Result<StateEntry>> + '_ {
        self.entries(self.state.scan_prefix(keys::type_prefix(type_key)))
    }

    /// The whole current state, in key order.
    pub fn state(&self) -> impl Iterator<Item = Result<StateEntry>> + '_ {
        self.entries(self.state.range(..[commit::RESERVED]))
    }

    /// State entries of `iter`, with their objects (read from the log where
    /// the value left them there).
    fn entries(&self, iter: sled::Iter) -> impl Iterator<Item = Result<StateEntry>> + '_ {
        let mut objects = resolve::LogObjects::default();
        iter.filter_map(move |r| {
            let entry = r.map_err(Error::from).and_then(|(k, v)| {
                let e = StateEntry::decode(&k, &v)?;
                resolve::resolve(&self.state, &self.log, &mut objects, &k, e)
            });
            // `None`: removed while it was read.
            entry.transpose()
        })
    }

    /// Keys of one type in the current state (no values decoded).
    pub(crate) fn keys_of_type(
        &self,
        type_key: &str,
    ) -> impl Iterator<Item = Result<Vec<u8>>> + '_ {
        self.state
            .scan_prefix(keys::type_prefix(type_key))
            .keys()
            .map(|r| r.map(|k| k.to_vec()).map_err(Error::from))
    }

    /// [`Journal::keys_of_type`] as sled returns them (no copy).
    pub(crate) fn keys_of_type_ivec(
        &self,
        type_key: &str,
    ) -> impl Iterator<Item = Result<sled::IVec>> + '_ {
        self.state
            .scan_prefix(keys::type_prefix(type_key))
            .keys()
            .map(|r| r.map_err(Error::from))
    }

    /// Event blocks, starting with the block that holds `seq` (or the first
    /// block after it). Each item is `(first_seq, records)`.
    pub fn blocks_from(
        &self,
        seq: u64,
    ) -> impl Iterator<Item = Result<(u64, Vec<EventRecord>)>> + '_ {
        reader::blocks_from(&self.log, seq)
    }

    /// Records with `seq >= from`, in order, stopping after the block that
    /// brings the object JSON read to about `max_bytes` (at least one
    /// block): what [`LogReader::read_from`] returns.
    pub fn read_from(&self, from: u64, max_bytes: u64) -> Result<Vec<EventRecord>> {
        reader::read_from(&self.log, from, max_bytes)
    }

    /// Every record with `seq >= from`, in order.
    pub fn records_from(&self, from: u64) -> impl Iterator<Item = Result<EventRecord>> + '_ {
        self.blocks_from(from).flat_map(move |r| match r {
            Ok((_, records)) => records
                .into_iter()
                .filter(|rec| rec.seq >= from)
                .map(Ok)
                .collect::<Vec<_>>(),
            Err(e) => vec![Err(e)],
        })
    }

    /// The record of one type, if the journal has seen it.
    pub fn type_record(&self, type_key: &str) -> Result<Option<TypeRecord>> {
        match self.meta.get(meta::type_record_key(type_key))? {
            Some(v) => Ok(Some(meta::decode_type_record(&v)?)),
            None => Ok(None),
        }
    }

    /// The store lineage this journal records, if it was given one.
    pub fn lineage(&self) -> Result<Option<String>> {
        match self.meta.get(meta::LINEAGE)? {
            Some(v) => String::from_utf8(v.to_vec())
                .map(Some)
                .map_err(|_| Error::Corrupt("lineage id is not UTF-8".into())),
            None => Ok(None),
        }
    }

    /// Whether the journal never recorded anything: no event, no type.
    pub fn is_new(&self) -> Result<bool> {
        Ok(self.next_seq == 1 && self.log.is_empty() && self.type_records()?.is_empty())
    }

    /// Records that this journal continues lineage `id` (a journal from
    /// before lineages adopting one).
    pub fn set_lineage(&mut self, id: &str) -> Result<()> {
        self.meta.insert(meta::LINEAGE, id.as_bytes())?;
        self.db.flush()?;
        Ok(())
    }

    /// What the journal's lineage adds to its sequence numbers: its event
    /// `seq` is the lineage's `seq + offset` (0 unless a standby's journal
    /// became a lineage, [`Journal::take_lineage_at`]).
    pub fn seq_offset(&self) -> Result<u64> {
        match self.meta.get(meta::SEQ_OFFSET)? {
            Some(v) => {
                keys::decode_seq(&v).ok_or_else(|| Error::Corrupt("seq_offset is not a u64".into()))
            }
            None => Ok(0),
        }
    }

    /// Makes a journal that recorded without a lineage (a standby's) the
    /// journal of lineage `id`, whose seq `s` is this journal's
    /// `s - offset`: the standby's events keep their numbers here and get
    /// the lineage's in the files sealed from them.
    pub fn take_lineage_at(&mut self, id: &str, offset: u64) -> Result<()> {
        if let Some(l) = self.lineage()? {
            return Err(Error::Corrupt(format!(
                "cannot make this journal lineage {id}'s: it already records lineage {l}"
            )));
        }
        let mut batch = sled::Batch::default();
        batch.insert(meta::LINEAGE, id.as_bytes());
        batch.insert(meta::SEQ_OFFSET, &offset.to_be_bytes());
        self.meta.apply_batch(batch)?;
        self.db.flush()?;
        Ok(())
    }

    /// Starts a new journal as lineage `id` whose first event gets
    /// `first_seq`: a child lineage never reuses its parent's sequence
    /// numbers. Only a journal that recorded nothing can be given a base.
    pub fn begin_lineage(&mut self, id: &str, first_seq: u64) -> Result<()> {
        if !self.is_new()? {
            return Err(Error::Corrupt(format!(
                "cannot start lineage {id} at seq {first_seq}: the journal already holds events up to seq {}",
                self.next_seq.saturating_sub(1)
            )));
        }
        let first_seq = first_seq.max(1);
        let mut batch = sled::Batch::default();
        batch.insert(meta::NEXT_SEQ, &first_seq.to_be_bytes());
        batch.insert(meta::LINEAGE, id.as_bytes());
        self.meta.apply_batch(batch)?;
        self.db.flush()?;
        self.next_seq = first_seq;
        Ok(())
    }

    /// All type records.
    pub fn type_records(&self) -> Result<Vec<TypeRecord>> {
        self.meta
            .scan_prefix(meta::TYPE_PREFIX)
            .values()
            .map(|v| meta::decode_type_record(&v?))
            .collect()
    }

    /// Bytes the journal occupies on disk.
    pub fn size_on_disk(&self) -> Result<u64> {
        Ok(self.db.size_on_disk()?)
    }

    /// A reader of this journal's log for other tasks, which keeps working
    /// while the writer commits (see [`reader`]).
    #[must_use]
    pub fn log_reader(&self) -> LogReader {
        LogReader::new(self)
    }

    /// Flushes everything to disk and makes it durable: sled's flush,
    /// then `fdatasync` of its files (see [`durable`]).
    pub fn flush(&mut self) -> Result<()> {
        self.files.sync_new_blobs()?;
        self.db.flush()?;
        self.files.sync_after_flush()
    }
}

#[cfg(test)]
mod tests;
