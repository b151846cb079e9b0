//! Objects the `state` tree leaves in the log (state codec 2,
//! [`ObjectCodec::InLog`]): reading them, and copying them into their state
//! values before the compactor trims their blocks.
//!
//! The rule that keeps every state value readable: a value that points at
//! event `seq` is only ever written after the block holding `seq` (a commit
//! writes the log before the state, and sled recovers a prefix), and a block
//! leaves the log only after every value pointing into it was rewritten to
//! hold its object ([`inline_objects_of_blocks`], then a flush, then the
//! removal). A reader that finds the block gone re-reads the value, which by
//! then holds the object.

use rewind_format::{EventBlockDecoder, EventKind, EventRecord, Limits};
use tracing::debug;

use super::keys::{ObjectKey, decode_seq, encode_key, seq_key, type_key};
use super::state::{self, ObjectCodec, ObjectCompressor, StateEntry, StoredObject};
use super::{Error, Result};

/// How often a reader re-reads a value whose block was trimmed under it.
/// Once is enough (the trim rewrote the value first); more only guards
/// against a value that keeps moving.
const REREADS: usize = 3;

/// Reads objects from log blocks, keeping the last decoded block: entries in
/// key order were mostly recorded in key order too (a LIST returns objects
/// sorted), so neighbours share blocks.
#[derive(Default)]
pub(crate) struct LogObjects {
    decoder: Option<EventBlockDecoder>,
    /// First seq of the cached block, and its records.
    cached: Option<(u64, Vec<EventRecord>)>,
}

impl LogObjects {
    /// The JSON of event `seq`, recorded for `key`; `None` when no block of
    /// the log holds `seq` any more.
    fn object(
        &mut self,
        log: &sled::Tree,
        key: &ObjectKey,
        seq: u64,
        raw_len: u32,
    ) -> Result<Option<Vec<u8>>> {
        let hit = matches!(&self.cached, Some((first, records))
            if *first <= seq && seq - first < records.len() as u64);
        if !hit {
            let Some(kv) = log.range(..=seq_key(seq)).next_back() else {
                return Ok(None);
            };
            let (k, v) = kv?;
            let first =
                decode_seq(&k).ok_or_else(|| Error::Corrupt(format!("bad log key {k:?}")))?;
            let decoder = match &mut self.decoder {
                Some(d) => d,
                None => self
                    .decoder
                    .insert(EventBlockDecoder::new(Limits::default())?),
            };
            self.cached = Some((first, decoder.decode(&v)?));
        }
        let Some((first, records)) = &self.cached else {
            return Ok(None);
        };
        let Some(rec) = seq
            .checked_sub(*first)
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| records.get(i))
            .filter(|r| r.seq == seq)
        else {
            // The block found starts before `seq` but ends earlier: the
            // block that held `seq` is gone.
            return Ok(None);
        };
        check_record(rec, key, raw_len)?;
        Ok(Some(rec.object.clone()))
    }
}

/// Whether `rec` is what a state value for `key` of `raw_len` bytes points
/// at: anything else means the journal is corrupt.
fn check_record(rec: &EventRecord, key: &ObjectKey, raw_len: u32) -> Result<()> {
    let same_key = rec.rtype.group == key.group
        && rec.rtype.resource == key.resource
        && rec.namespace.as_deref().unwrap_or_default()
            == key.namespace.as_deref().unwrap_or_default()
        && rec.name == key.name;
    let applied = matches!(rec.kind, EventKind::Applied);
    let len_ok = u32::try_from(rec.object.len()).ok() == Some(raw_len);
    if same_key && applied && len_ok {
        Ok(())
    } else {
        Err(Error::Corrupt(format!(
            "state entry {key:?} points at event {}, which is {:?} of {}/{}/{} with {} bytes \
             (expected an applied event of {raw_len} bytes)",
            rec.seq,
            rec.kind,
            type_key(&rec.rtype),
            rec.namespace.as_deref().unwrap_or_default(),
            rec.name,
            rec.object.len()
        )))
    }
}

/// `e` with its object, read from the log when the value left it there.
/// `None` when the entry disappeared while it was being read.
pub(crate) fn resolve(
    state: &sled::Tree,
    log: &sled::Tree,
    objects: &mut LogObjects,
    k: &[u8],
    mut e: StateEntry,
) -> Result<Option<StateEntry>> {
    for _ in 0..REREADS {
        if e.object.codec != ObjectCodec::InLog {
            return Ok(Some(e));
        }
        if let Some(json) = objects.object(log, &e.key, e.seq, e.object.raw_len)? {
            e.object = StoredObject {
                raw_len: e.object.raw_len,
                codec: ObjectCodec::Raw,
                bytes: json,
            };
            return Ok(Some(e));
        }
        // Trimmed under us: the value was rewritten before the block went.
        match state.get(k)? {
            Some(v) => e = StateEntry::decode(k, &v)?,
            None => return Ok(None),
        }
    }
    Err(Error::Corrupt(format!(
        "state entry {:?} points at event {}, which no log block holds",
        e.key, e.seq
    )))
}

/// Rewrites every state value that points into the blocks starting at
/// `firsts` to hold its object (compressed by `compressor`), so that those
/// blocks can leave the log. Returns how many values were rewritten. The
/// caller must flush before it removes the blocks.
///
/// Runs beside the journal's writer: each value is replaced only if it is
/// still the one read (compare-and-swap), since a newer event of the object
/// replaces it with a pointer to its own, newer, block.
pub(crate) fn inline_objects_of_blocks(
    state: &sled::Tree,
    log: &sled::Tree,
    firsts: &[u64],
    compressor: &mut ObjectCompressor,
) -> Result<u64> {
    let mut decoder = EventBlockDecoder::new(Limits::default())?;
    let mut rewritten = 0u64;
    let mut value = Vec::new();
    for first in firsts {
        let Some(block) = log.get(seq_key(*first))? else {
            continue;
        };
        for rec in decoder.decode(&block)? {
            if !matches!(rec.kind, EventKind::Applied) {
                continue;
            }
            let k = encode_key(
                &type_key(&rec.rtype),
                rec.namespace.as_deref().unwrap_or_default(),
                &rec.name,
            );
            let Some(old) = state.get(&k)? else {
                continue;
            };
            let e = StateEntry::decode(&k, &old)?;
            if e.object.codec != ObjectCodec::InLog || e.seq != rec.seq {
                continue;
            }
            check_record(&rec, &e.key, e.object.raw_len)?;
            let object = compressor.compress(&rec.object)?;
            state::encode_value_into(&e.uid, &e.resource_version, e.seq, &object, &mut value)?;
            match state.compare_and_swap(&k, Some(&old), Some(value.as_slice()))? {
                Ok(()) => rewritten += 1,
                // The writer recorded a newer event of the object meanwhile:
                // its value points at a newer block, not this one.
                Err(_) => {
                    debug!(key = ?e.key, seq = rec.seq, "state entry changed while its object was being copied; left as is")
                }
            }
        }
    }
    Ok(rewritten)
}
