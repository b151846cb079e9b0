//! Committing a batch without a cross-tree transaction, and finishing or
//! dropping a commit that a crash interrupted.
//!
//! A commit is three sled writes, in this order, then one flush that
//! ends with `fdatasync` ([`Journal::flush`], see [`super::durable`]):
//! 1. `log`: the batch's event blocks (one insert, or one `apply_batch`);
//! 2. `state`: the object changes plus the [`CommitRecord`] under
//!    [`COMMIT_KEY`], as one `apply_batch` (sled recovers a batch whole or
//!    not at all). **This write is the commit point.**
//! 3. `meta`: the type records and `next_seq`, as one `apply_batch`.
//!
//! sled recovers its log as a prefix: after a crash, a later write is
//! present only if every earlier one is. So [`Journal::recover`] sees one of:
//! - no trace of the batch: nothing to do;
//! - its log block only: the batch never reached its commit point and was
//!   never acknowledged, so the block is removed;
//! - log and state, not meta: the commit record carries the meta writes,
//!   and they are applied again (they are whole values: idempotent).
//!
//! A sled transaction across the three trees gives the same guarantee at
//! about half the throughput (`docs/BENCHMARKS.md`, "Design
//! measurements").

use tracing::{info, warn};

use super::keys::{decode_seq, seq_key};
use super::{Error, Journal, PreparedBatch, Result, meta};

/// Key of the commit record in the `state` tree. Object keys start with a
/// type key, a Rust string: UTF-8 never contains the byte 0xFF, so no object
/// key starts with it and object iteration stops before [`RESERVED`].
pub(crate) const COMMIT_KEY: &[u8] = b"\xffcommit";

/// First byte of the `state` tree's own keys.
pub(crate) const RESERVED: u8 = 0xff;

/// Version byte of a stored commit record.
const COMMIT_VERSION: u8 = 1;

/// Largest commit record encoded or decoded, bytes. A record holds one
/// batch's type records (a few hundred bytes per type touched); the limit
/// bounds what a corrupt length prefix can make the decoder allocate.
pub(crate) const COMMIT_RECORD_LIMIT: usize = 16 << 20;

/// bincode's standard configuration, bounded by [`COMMIT_RECORD_LIMIT`].
fn commit_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<COMMIT_RECORD_LIMIT>()
}

/// Tree writes of a batch: `(key, Some(value))` sets, `(key, None)` removes.
pub type Ops = Vec<(Vec<u8>, Option<Vec<u8>>)>;

/// What the `state` tree remembers of the last commit: its seq range, and
/// the `meta` writes to apply again if a crash came before they landed.
///
/// Layout (do not reorder; a change needs a new `COMMIT_VERSION`):
/// `COMMIT_VERSION: u8`, then bincode (standard) of
/// `(first_seq: u64, next_seq: u64, meta_ops: Vec<(Vec<u8>, Option<Vec<u8>>)>)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CommitRecord {
    /// Seq of the batch's first record.
    pub first_seq: u64,
    /// One past its last record.
    pub next_seq: u64,
    /// The batch's `meta` writes, without `next_seq`.
    pub meta_ops: Ops,
}

fn encode_commit(batch: &PreparedBatch) -> Result<Vec<u8>> {
    let mut out = vec![COMMIT_VERSION];
    let value = (batch.first_seq, batch.next_seq, batch.meta_ops.as_slice());
    bincode::encode_into_std_write(value, &mut out, commit_config())
        .map_err(|e| Error::Corrupt(format!("cannot encode commit record: {e}")))?;
    if out.len() > COMMIT_RECORD_LIMIT {
        return Err(Error::CommitRecordTooLarge {
            len: out.len(),
            limit: COMMIT_RECORD_LIMIT,
        });
    }
    Ok(out)
}

fn decode_commit(v: &[u8]) -> Result<CommitRecord> {
    if v.len() > COMMIT_RECORD_LIMIT {
        return Err(Error::CommitRecordTooLarge {
            len: v.len(),
            limit: COMMIT_RECORD_LIMIT,
        });
    }
    let Some((&version, rest)) = v.split_first() else {
        return Err(Error::Corrupt("empty commit record".into()));
    };
    if version != COMMIT_VERSION {
        return Err(Error::Corrupt(format!(
            "commit record version {version}, this release reads {COMMIT_VERSION}"
        )));
    }
    let ((first_seq, next_seq, meta_ops), used): ((u64, u64, Ops), usize) =
        bincode::decode_from_slice(rest, commit_config()).map_err(|e| match e {
            bincode::error::DecodeError::LimitExceeded => Error::CommitRecordTooLarge {
                len: v.len(),
                limit: COMMIT_RECORD_LIMIT,
            },
            e => Error::Corrupt(format!("commit record: {e}")),
        })?;
    if used != rest.len() || next_seq < first_seq {
        return Err(Error::Corrupt("malformed commit record".into()));
    }
    Ok(CommitRecord {
        first_seq,
        next_seq,
        meta_ops,
    })
}

fn sled_batch(ops: &Ops) -> sled::Batch {
    let mut b = sled::Batch::default();
    for (k, v) in ops {
        match v {
            Some(v) => b.insert(k.as_slice(), v.as_slice()),
            None => b.remove(k.as_slice()),
        }
    }
    b
}

/// [`sled_batch`] of state writes, whose values are sled's already: only
/// reference counts change, the values are not copied again.
fn state_batch(ops: &[(Vec<u8>, Option<sled::IVec>)]) -> sled::Batch {
    let mut b = sled::Batch::default();
    for (k, v) in ops {
        match v {
            Some(v) => b.insert(k.as_slice(), v.clone()),
            None => b.remove(k.as_slice()),
        }
    }
    b
}

/// How far a test lets a commit get before it "crashes".
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TornAt {
    /// Only the log block was written.
    AfterLog,
    /// The log block and the state batch (the commit point) were written.
    AfterState,
}

impl Journal {
    /// Applies a prepared batch and makes it durable. Only after this
    /// returns `Ok` is the batch acknowledged.
    ///
    /// On error nothing is acknowledged and the journal refuses further
    /// commits ([`Error::NeedsReopen`]): sled refuses writes after an I/O
    /// error anyway, and reopening runs [`Journal::recover`], which settles
    /// a half-written batch. The caller keeps its observations and prepares
    /// them again against the reopened journal. A batch that turns out to be
    /// committed already (the journal's `next_seq` is past it) is accepted
    /// as done.
    pub fn commit(&mut self, batch: &PreparedBatch) -> Result<()> {
        if self.needs_reopen {
            return Err(Error::NeedsReopen);
        }
        if batch.is_empty() {
            return Ok(());
        }
        if batch.next_seq > batch.first_seq && self.next_seq == batch.next_seq {
            // Committed before an error hid the success from us. (A batch
            // without records only rewrites meta: applying it twice is safe.)
            return Ok(());
        }
        if self.next_seq != batch.first_seq {
            return Err(Error::OutOfOrder {
                batch: batch.first_seq,
                journal: self.next_seq,
            });
        }
        // Cleared only once the whole sequence is durable.
        self.needs_reopen = true;
        self.write_log(batch)?;
        self.write_state(batch)?;
        self.write_meta(&batch.meta_ops, batch.next_seq)?;
        self.flush()?;
        self.needs_reopen = false;
        self.next_seq = batch.next_seq;
        Ok(())
    }

    /// Writes part of a commit and flushes it, as a crash between two of
    /// its writes would leave it. The journal must be reopened after this.
    #[cfg(test)]
    pub(crate) fn commit_torn(&mut self, batch: &PreparedBatch, at: TornAt) -> Result<()> {
        self.needs_reopen = true;
        self.write_log(batch)?;
        if at == TornAt::AfterState {
            self.write_state(batch)?;
        }
        self.db.flush()?;
        Ok(())
    }

    fn write_log(&self, batch: &PreparedBatch) -> Result<()> {
        match batch.blocks.as_slice() {
            [] => {}
            [(seq, block)] => {
                self.log.insert(seq_key(*seq), block.as_slice())?;
            }
            blocks => {
                let mut b = sled::Batch::default();
                for (seq, block) in blocks {
                    b.insert(seq_key(*seq).as_slice(), block.as_slice());
                }
                self.log.apply_batch(b)?;
            }
        }
        Ok(())
    }

    fn write_state(&self, batch: &PreparedBatch) -> Result<()> {
        let mut b = state_batch(&batch.state_ops);
        b.insert(COMMIT_KEY, encode_commit(batch)?);
        self.state.apply_batch(b)?;
        Ok(())
    }

    fn write_meta(&self, meta_ops: &Ops, next_seq: u64) -> Result<()> {
        let mut b = sled_batch(meta_ops);
        b.insert(meta::NEXT_SEQ, &next_seq.to_be_bytes());
        self.meta.apply_batch(b)?;
        Ok(())
    }

    /// Settles a commit that a crash interrupted (see the module doc) and
    /// returns the journal's `next_seq`.
    pub(crate) fn recover(&mut self) -> Result<u64> {
        let meta_next = match self.meta.get(meta::NEXT_SEQ)? {
            Some(v) => Some(meta::decode_u64(&v)?),
            None => None,
        };
        let next = match self.state.get(COMMIT_KEY)? {
            // A new journal, or one written by layout 1 (one transaction per
            // commit, no commit record): meta is authoritative.
            None => meta_next.unwrap_or(1),
            Some(v) => {
                let c = decode_commit(&v)?;
                if meta_next.is_some_and(|m| m > c.next_seq) {
                    return Err(Error::Corrupt(format!(
                        "meta is at seq {meta_next:?}, past the last commit's {}",
                        c.next_seq
                    )));
                }
                if c.next_seq > c.first_seq && self.log.get(seq_key(c.first_seq))?.is_none() {
                    // sled recovered the commit point without the block
                    // written before it: its prefix guarantee failed.
                    return Err(Error::Corrupt(format!(
                        "the block of the last commit (seq {}) is missing",
                        c.first_seq
                    )));
                }
                if meta_next != Some(c.next_seq) {
                    self.write_meta(&c.meta_ops, c.next_seq)?;
                    self.flush()?;
                    info!(
                        next_seq = c.next_seq,
                        "finished the meta writes of a commit interrupted by a crash"
                    );
                }
                c.next_seq
            }
        };
        // Blocks at or past `next` never reached their commit point.
        let mut stray = Vec::new();
        for k in self.log.range(seq_key(next)..).keys() {
            stray.push(k?);
        }
        if !stray.is_empty() {
            for k in &stray {
                self.log.remove(k)?;
            }
            self.flush()?;
            warn!(
                blocks = stray.len(),
                first_seq = stray.first().and_then(|k| decode_seq(k)),
                "dropped event blocks of a commit interrupted by a crash (never acknowledged)"
            );
        }
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_record_round_trips_and_rejects_garbage() {
        let batch = PreparedBatch {
            first_seq: 3,
            next_seq: 9,
            meta_ops: vec![
                (b"type/x".to_vec(), Some(b"{}".to_vec())),
                (b"type/y".to_vec(), None),
            ],
            ..PreparedBatch::default()
        };
        let v = encode_commit(&batch).unwrap();
        let c = decode_commit(&v).unwrap();
        assert_eq!(c.first_seq, 3);
        assert_eq!(c.next_seq, 9);
        assert_eq!(c.meta_ops, batch.meta_ops);
        assert!(decode_commit(&[]).is_err());
        assert!(decode_commit(&[2, 0]).is_err());
        let mut trailing = v.clone();
        trailing.push(0);
        assert!(decode_commit(&trailing).is_err());
        for cut in 1..v.len() {
            assert!(decode_commit(&v[..cut]).is_err());
        }
    }

    #[test]
    fn an_oversized_or_lying_commit_record_is_refused_by_name() {
        // A length prefix claiming 2^60 meta ops: without a limit the
        // decoder would try to allocate for them.
        let mut lying = vec![COMMIT_VERSION, 1, 2];
        bincode::encode_into_std_write(1u64 << 60, &mut lying, bincode::config::standard())
            .unwrap();
        lying.extend_from_slice(&[0; 32]);
        match decode_commit(&lying) {
            Err(Error::CommitRecordTooLarge { limit, .. }) => {
                assert_eq!(limit, COMMIT_RECORD_LIMIT);
            }
            other => panic!("expected CommitRecordTooLarge, got {other:?}"),
        }
        // One meta op whose value claims more bytes than the limit.
        let mut big_value = vec![COMMIT_VERSION, 1, 2, 1, 1, b'k', 1];
        let claim = u64::try_from(COMMIT_RECORD_LIMIT).unwrap() + 1;
        bincode::encode_into_std_write(claim, &mut big_value, bincode::config::standard()).unwrap();
        assert!(matches!(
            decode_commit(&big_value),
            Err(Error::CommitRecordTooLarge { .. })
        ));
        // A stored value longer than the limit is refused before decoding.
        let huge = vec![COMMIT_VERSION; COMMIT_RECORD_LIMIT + 1];
        let err = decode_commit(&huge).unwrap_err();
        assert!(err.to_string().contains("commit record"), "{err}");
        assert!(matches!(err, Error::CommitRecordTooLarge { .. }));
        // Nor is one that large ever written.
        let batch = PreparedBatch {
            first_seq: 1,
            next_seq: 2,
            meta_ops: vec![(b"k".to_vec(), Some(vec![0; COMMIT_RECORD_LIMIT]))],
            ..PreparedBatch::default()
        };
        assert!(encode_commit(&batch).is_err());
    }

    #[test]
    fn no_object_key_sorts_into_the_reserved_range() {
        assert_eq!(COMMIT_KEY.first(), Some(&RESERVED));
        let k = super::super::keys::encode_key("\u{10ffff}", "\u{ff}", "n");
        assert!(k.first() < Some(&RESERVED));
    }
}
