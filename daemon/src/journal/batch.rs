//! Building one group commit: records get consecutive seqs, state changes are
//! staged in an overlay so later events of the same batch see earlier ones,
//! and the result is a [`PreparedBatch`] that [`Journal::commit`] applies
//! atomically. A prepared batch stays valid until it is committed, because
//! the journal has a single writer: on a write error it is retried as is.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use rewind_format::{EventBlockEncoder, EventRecord, ResourceType};
use sled::IVec;

use super::keys::{ObjectKey, encode_key, encode_object_key, object_key, type_key, type_prefix};
use super::meta::{self, TypeRecord};
use super::state::{self, ObjectCodec, StateEntry, StateHead, StoredObject};
use super::{Error, Journal, Result};

/// What a record does to the current state.
#[derive(Debug, Clone)]
pub enum StateChange {
    /// The record's object becomes the current version of its key.
    Put(StoredObject),
    /// The record's key leaves the state.
    Remove,
    /// Markers: no state change.
    None,
}

/// A batch being built against a journal.
pub struct BatchBuilder<'j> {
    journal: &'j Journal,
    first_seq: u64,
    records: Vec<EventRecord>,
    /// Staged `state` writes, values already encoded as sled will store
    /// them (`None` removes): `finish` and the commit hand them to sled
    /// without another copy.
    overlay: BTreeMap<Vec<u8>, Option<IVec>>,
    types: BTreeMap<String, Option<TypeRecord>>,
    /// Objects recorded so far, for [`PreparedBatch::touched`]; only kept
    /// when an observer asked for them ([`BatchBuilder::track_touched`]):
    /// four strings per record otherwise built for nothing.
    touched: Option<Vec<(ObjectKey, String)>>,
    /// Objects recorded per type key, for the status board.
    counts: Vec<(Arc<str>, u64)>,
    /// The last record's type and its key: a batch is mostly one type, and
    /// formatting the key per record was a measurable cost.
    last_type: Option<(ResourceType, Arc<str>)>,
    /// Reused buffer for encoding state values.
    scratch: Vec<u8>,
}

/// A batch ready to commit.
#[derive(Debug, Clone, Default)]
pub struct PreparedBatch {
    /// Seq of the first record.
    pub first_seq: u64,
    /// One past the last record's seq.
    pub next_seq: u64,
    /// The encoded event blocks with the seq of each one's first record,
    /// in order; empty when the batch has no records. A batch is split into
    /// blocks of about [`super::JournalOptions::block_bytes`].
    pub blocks: Vec<(u64, Vec<u8>)>,
    /// `state` tree writes (`None` removes), values as sled stores them.
    pub state_ops: Vec<(Vec<u8>, Option<IVec>)>,
    /// `meta` tree writes (`None` removes).
    pub meta_ops: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    /// Objects the batch recorded, with their resourceVersions, in order:
    /// lets observers (latency measurements, tests) see what became durable.
    /// Empty unless the builder was asked to track them
    /// ([`BatchBuilder::track_touched`]).
    pub touched: Vec<(ObjectKey, String)>,
    /// Number of objects recorded (markers excluded) per type key.
    pub type_counts: Vec<(String, u64)>,
}

impl PreparedBatch {
    /// Number of records.
    #[must_use]
    pub fn len(&self) -> u64 {
        self.next_seq.saturating_sub(self.first_seq)
    }

    /// Whether the batch writes nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty() && self.state_ops.is_empty() && self.meta_ops.is_empty()
    }
}

/// The state key of a record.
#[must_use]
pub fn record_key(rec: &EventRecord) -> ObjectKey {
    object_key(&rec.rtype, rec.namespace.as_deref(), &rec.name)
}

impl<'j> BatchBuilder<'j> {
    pub(crate) fn new(journal: &'j Journal) -> Self {
        Self {
            journal,
            first_seq: journal.next_seq(),
            records: Vec::new(),
            overlay: BTreeMap::new(),
            types: BTreeMap::new(),
            touched: None,
            counts: Vec::new(),
            last_type: None,
            scratch: Vec::new(),
        }
    }

    /// Keeps [`PreparedBatch::touched`] (for observers of commits).
    #[must_use]
    pub fn track_touched(mut self, on: bool) -> Self {
        self.touched = on.then(Vec::new);
        self
    }

    /// Records staged so far.
    #[must_use]
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether nothing is staged.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.records.is_empty() && self.types.is_empty()
    }

    /// The seq the next staged record will get.
    #[must_use]
    pub fn next_seq(&self) -> u64 {
        self.first_seq.saturating_add(self.records.len() as u64)
    }

    /// Current state of `key`, including this batch's staged changes.
    pub fn get(&self, key: &ObjectKey) -> Result<Option<StateEntry>> {
        self.get_encoded(&encode_object_key(key))
    }

    /// [`BatchBuilder::get`] by encoded key.
    pub(crate) fn get_encoded(&self, k: &[u8]) -> Result<Option<StateEntry>> {
        match self.overlay.get(k) {
            Some(Some(v)) => self.staged_entry(StateEntry::decode(k, v)?).map(Some),
            Some(None) => Ok(None),
            None => self.journal.get_encoded(k),
        }
    }

    /// A value staged by this batch, with its object: one left in the log
    /// is the JSON of a record of this batch, not written yet.
    fn staged_entry(&self, mut e: StateEntry) -> Result<StateEntry> {
        if e.object.codec != ObjectCodec::InLog {
            return Ok(e);
        }
        let rec = e
            .seq
            .checked_sub(self.first_seq)
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| self.records.get(i))
            .filter(|r| r.seq == e.seq)
            .ok_or_else(|| {
                Error::Corrupt(format!(
                    "staged entry {:?} points at event {}, not in this batch",
                    e.key, e.seq
                ))
            })?;
        e.object = StoredObject {
            raw_len: e.object.raw_len,
            codec: ObjectCodec::Raw,
            bytes: rec.object.clone(),
        };
        Ok(e)
    }

    /// [`BatchBuilder::get`] without the object: what deduplication needs,
    /// at a fraction of the cost.
    pub fn head(&self, key: &ObjectKey) -> Result<Option<StateHead>> {
        self.head_encoded(&encode_object_key(key))
    }

    /// [`BatchBuilder::head`] by encoded key.
    pub(crate) fn head_encoded(&self, k: &[u8]) -> Result<Option<StateHead>> {
        match self.overlay.get(k) {
            Some(Some(v)) => Ok(Some(StateHead::decode(k, v)?)),
            Some(None) => Ok(None),
            None => self.journal.head_encoded(k),
        }
    }

    /// State keys of one type, including this batch's staged changes.
    pub fn keys_of_type(&self, type_key: &str) -> Result<BTreeSet<Vec<u8>>> {
        let mut out = BTreeSet::new();
        for k in self.journal.keys_of_type(type_key) {
            out.insert(k?);
        }
        let prefix = type_prefix(type_key);
        for (k, v) in self.overlay.range(prefix.clone()..) {
            if !k.starts_with(&prefix) {
                break;
            }
            if v.is_some() {
                out.insert(k.clone());
            } else {
                out.remove(k);
            }
        }
        Ok(out)
    }

    /// The state keys of one type (this batch's staged changes included)
    /// for which `keep` returns true, in key order. A relist keeps only the
    /// keys it did not deliver, usually none: unlike
    /// [`BatchBuilder::keys_of_type`], this never holds every key of the
    /// type in memory.
    pub fn keys_of_type_where(
        &self,
        type_key: &str,
        mut keep: impl FnMut(&[u8]) -> bool,
    ) -> Result<Vec<Vec<u8>>> {
        let prefix = type_prefix(type_key);
        let mut out = Vec::new();
        for k in self.journal.keys_of_type_ivec(type_key) {
            let k = k?;
            // Keys this batch stages are taken from the overlay below.
            if !self.overlay.contains_key(k.as_ref()) && keep(k.as_ref()) {
                out.push(k.to_vec());
            }
        }
        for (k, v) in self.overlay.range(prefix.clone()..) {
            if !k.starts_with(&prefix) {
                break;
            }
            if v.is_some() && keep(k.as_slice()) {
                out.push(k.clone());
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// Whether the state, with this batch's staged changes, holds no object
    /// of the type. Reads at most the type's first live key.
    pub fn type_is_empty(&self, type_key: &str) -> Result<bool> {
        let prefix = type_prefix(type_key);
        for (k, v) in self.overlay.range(prefix.clone()..) {
            if !k.starts_with(&prefix) {
                break;
            }
            if v.is_some() {
                return Ok(false);
            }
        }
        for k in self.journal.keys_of_type_ivec(type_key) {
            let k = k?;
            // A key this batch removes does not count.
            if !matches!(self.overlay.get(k.as_ref()), Some(None)) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Stages `rec` (its `seq` is assigned here) with its state change, and
    /// updates its type's record. Returns the assigned seq.
    pub fn record(&mut self, rec: EventRecord, change: StateChange) -> Result<u64> {
        self.record_keyed(rec, None, None, change)
    }

    /// [`BatchBuilder::record`] with the record's state key already encoded
    /// and, when known, whether the key is in the state before this record
    /// (the ingestor has both from deduplication); `None` looks it up. It
    /// keeps the type's object count ([`TypeRecord::objects`]).
    pub(crate) fn record_keyed(
        &mut self,
        mut rec: EventRecord,
        key: Option<Vec<u8>>,
        existed: Option<bool>,
        change: StateChange,
    ) -> Result<u64> {
        let seq = self.next_seq();
        rec.seq = seq;
        let tk = match &self.last_type {
            Some((rtype, tk)) if *rtype == rec.rtype => Arc::clone(tk),
            _ => {
                let tk: Arc<str> = type_key(&rec.rtype).into();
                self.last_type = Some((rec.rtype.clone(), Arc::clone(&tk)));
                tk
            }
        };
        let marker = rec.kind.is_marker();
        let namespace = rec.namespace.as_deref().unwrap_or_default();
        let key = match change {
            StateChange::None => None,
            StateChange::Put(_) | StateChange::Remove => {
                Some(key.unwrap_or_else(|| encode_key(&tk, namespace, &rec.name)))
            }
        };
        let existed = match (&key, existed) {
            (Some(k), None) => self.head_encoded(k)?.is_some(),
            (_, e) => e.unwrap_or(false),
        };
        let delta: i64 = match &change {
            StateChange::Put(_) if !existed => 1,
            StateChange::Remove if existed => -1,
            _ => 0,
        };
        match change {
            StateChange::Put(object) => {
                let k = key.unwrap_or_default();
                state::encode_value_into(
                    &rec.uid,
                    &rec.resource_version,
                    seq,
                    &object,
                    &mut self.scratch,
                )?;
                self.overlay
                    .insert(k, Some(IVec::from(self.scratch.as_slice())));
            }
            StateChange::Remove => {
                self.overlay.insert(key.unwrap_or_default(), None);
            }
            StateChange::None => {}
        }
        if !marker {
            if let Some(touched) = &mut self.touched {
                let k = object_key(&rec.rtype, Some(namespace), &rec.name);
                touched.push((k, rec.resource_version.clone()));
            }
            match self.counts.iter_mut().find(|(t, _)| **t == *tk) {
                Some((_, n)) => *n = n.saturating_add(1),
                None => self.counts.push((Arc::clone(&tk), 1)),
            }
        }
        let tr = self.type_record_mut(&tk, &rec.rtype)?;
        if tr.rtype != rec.rtype {
            // Its served version changed (rare): remember the newest.
            tr.rtype = rec.rtype.clone();
        }
        tr.events = tr.events.saturating_add(1);
        if delta != 0 {
            tr.objects = tr.objects.map(|n| n.saturating_add_signed(delta));
        }
        tr.last_event_ms = rec.observed_at_ms;
        if !marker && !rec.resource_version.is_empty() && tr.last_rv != rec.resource_version {
            tr.last_rv.clone_from(&rec.resource_version);
        }
        if let rewind_format::EventKind::ResyncEnd { list_rv } = &rec.kind {
            tr.list_rv = Some(list_rv.clone());
        }
        self.records.push(rec);
        Ok(seq)
    }

    /// The type's record as it will be after this batch.
    pub fn type_record(&mut self, rtype: &ResourceType) -> Result<&mut TypeRecord> {
        let tk = type_key(rtype);
        self.type_record_mut(&tk, rtype)
    }

    fn type_record_mut(&mut self, tk: &str, rtype: &ResourceType) -> Result<&mut TypeRecord> {
        if !matches!(self.types.get(tk), Some(Some(_))) {
            let loaded = self
                .journal
                .type_record(tk)?
                .unwrap_or_else(|| TypeRecord::new(rtype.clone()));
            self.types.insert(tk.to_owned(), Some(loaded));
        }
        match self.types.get_mut(tk) {
            Some(Some(r)) => Ok(r),
            _ => Err(super::Error::Corrupt(format!("type record {tk} vanished"))),
        }
    }

    /// Removes a type's record (its CRD is gone and its objects are recorded
    /// as deleted).
    pub fn forget_type(&mut self, type_key: &str) {
        self.types.insert(type_key.to_owned(), None);
    }

    /// Encodes the staged records as blocks of about
    /// [`super::JournalOptions::block_bytes`] and returns the batch.
    pub fn finish(self, encoder: &mut EventBlockEncoder) -> Result<PreparedBatch> {
        let max_stored = self.journal.options().block_bytes.max(1);
        let mut blocks = Vec::new();
        // Records are taken by their raw size, at the compression ratio
        // seen so far in this batch (2 to start), less a margin; a block
        // that still comes out too large is split again.
        let mut ratio_x100: usize = 200;
        let mut rest = self.records.as_slice();
        while !rest.is_empty() {
            let raw_target = max_stored.saturating_mul(ratio_x100) / 100 * 9 / 10;
            let n = records_within(rest, raw_target);
            let Some((head, tail)) = rest.split_at_checked(n) else {
                break;
            };
            let raw: usize = head.iter().map(record_bytes).sum();
            let stored = encode_bounded(encoder, head, max_stored, &mut blocks)?;
            ratio_x100 = (raw.saturating_mul(100) / stored.max(1)).clamp(100, 2000);
            rest = tail;
        }
        let state_ops = self.overlay.into_iter().collect();
        let mut meta_ops = Vec::with_capacity(self.types.len());
        for (tk, r) in self.types {
            let v = match r {
                Some(r) => Some(meta::encode_type_record(&r)?),
                None => None,
            };
            meta_ops.push((meta::type_record_key(&tk), v));
        }
        let next_seq = self.first_seq.saturating_add(self.records.len() as u64);
        Ok(PreparedBatch {
            first_seq: self.first_seq,
            next_seq,
            blocks,
            state_ops,
            meta_ops,
            touched: self.touched.unwrap_or_default(),
            type_counts: self
                .counts
                .into_iter()
                .map(|(t, n)| (t.to_string(), n))
                .collect(),
        })
    }
}

/// Bytes a record adds to a block's payload, about: its object plus its
/// names and fields.
fn record_bytes(r: &EventRecord) -> usize {
    r.object.len()
        + r.cluster_id.len()
        + r.name.len()
        + r.namespace.as_ref().map_or(0, String::len)
        + r.uid.len()
        + r.resource_version.len()
        + r.rtype.group.len()
        + r.rtype.version.len()
        + r.rtype.resource.len()
        + r.rtype.kind.len()
        + 32
}

/// How many leading records of `records` go into one block: as many as fit
/// in `limit` bytes, at least one.
fn records_within(records: &[EventRecord], limit: usize) -> usize {
    let mut bytes = 0usize;
    let mut n = 0;
    for r in records {
        bytes = bytes.saturating_add(record_bytes(r));
        if n > 0 && bytes > limit {
            break;
        }
        n += 1;
    }
    n.max(1)
}

/// Encodes `records` as one block, or, if that comes out larger than
/// `max_stored` bytes, as two halves recursively (a single record always
/// makes one block). Returns the bytes stored.
fn encode_bounded(
    encoder: &mut EventBlockEncoder,
    records: &[EventRecord],
    max_stored: usize,
    out: &mut Vec<(u64, Vec<u8>)>,
) -> Result<usize> {
    let Some(first) = records.first() else {
        return Ok(0);
    };
    let block = encoder.encode(records)?;
    if block.len() <= max_stored || records.len() == 1 {
        let n = block.len();
        out.push((first.seq, block));
        return Ok(n);
    }
    let Some((a, b)) = records.split_at_checked(records.len() / 2) else {
        return Ok(0);
    };
    Ok(encode_bounded(encoder, a, max_stored, out)?
        .saturating_add(encode_bounded(encoder, b, max_stored, out)?))
}
