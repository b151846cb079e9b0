//! Building one group commit: records get consecutive seqs, state changes are
//! staged in an overlay so later events of the same batch see earlier ones,
//! and the result is a [`PreparedBatch`] that [`Journal::commit`] applies
//! atomically. A prepared batch stays valid until it is committed, because
//! the journal has a single writer: on a write error it is retried as is.

use std::collections::{BTreeMap, BTreeSet};

use rewind_format::{EventBlockEncoder, EventRecord, ResourceType};

use super::keys::{ObjectKey, type_key, type_prefix};
use super::meta::{self, TypeRecord};
use super::state::{self, StateEntry, StateHead, StoredObject};
use super::{Journal, Result};

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
    /// Staged `state` writes, values already encoded (`None` removes):
    /// `finish` hands them over as they are.
    overlay: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    types: BTreeMap<String, Option<TypeRecord>>,
    /// Objects recorded so far, for [`PreparedBatch::touched`].
    touched: Vec<(ObjectKey, String)>,
    /// The last record's type and its key: a batch is mostly one type, and
    /// formatting the key per record was a measurable cost.
    last_type: Option<(ResourceType, String)>,
}

/// A batch ready to commit.
#[derive(Debug, Clone, Default)]
pub struct PreparedBatch {
    /// Seq of the first record.
    pub first_seq: u64,
    /// One past the last record's seq.
    pub next_seq: u64,
    /// The encoded event block, `None` when the batch has no records.
    pub block: Option<Vec<u8>>,
    /// `state` tree writes (`None` removes).
    pub state_ops: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    /// `meta` tree writes (`None` removes).
    pub meta_ops: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    /// Objects the batch recorded, with their resourceVersions, in order:
    /// lets observers (latency measurements, tests) see what became durable.
    pub touched: Vec<(ObjectKey, String)>,
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
        self.block.is_none() && self.state_ops.is_empty() && self.meta_ops.is_empty()
    }
}

/// The state key of a record.
#[must_use]
pub fn record_key(rec: &EventRecord) -> ObjectKey {
    ObjectKey {
        type_key: type_key(&rec.rtype),
        namespace: rec.namespace.clone().unwrap_or_default(),
        name: rec.name.clone(),
    }
}

impl<'j> BatchBuilder<'j> {
    pub(crate) fn new(journal: &'j Journal) -> Self {
        Self {
            journal,
            first_seq: journal.next_seq(),
            records: Vec::new(),
            overlay: BTreeMap::new(),
            types: BTreeMap::new(),
            touched: Vec::new(),
            last_type: None,
        }
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
        let k = key.encode();
        match self.overlay.get(&k) {
            Some(Some(v)) => Ok(Some(StateEntry::decode(&k, v)?)),
            Some(None) => Ok(None),
            None => self.journal.get_encoded(&k),
        }
    }

    /// [`BatchBuilder::get`] without the object: what deduplication needs,
    /// at a fraction of the cost.
    pub fn head(&self, key: &ObjectKey) -> Result<Option<StateHead>> {
        let k = key.encode();
        match self.overlay.get(&k) {
            Some(Some(v)) => Ok(Some(StateHead::decode(&k, v)?)),
            Some(None) => Ok(None),
            None => self.journal.head_encoded(&k),
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

    /// Stages `rec` (its `seq` is assigned here) with its state change, and
    /// updates its type's record. Returns the assigned seq.
    pub fn record(&mut self, mut rec: EventRecord, change: StateChange) -> Result<u64> {
        let seq = self.next_seq();
        rec.seq = seq;
        let tk = match &self.last_type {
            Some((rtype, tk)) if *rtype == rec.rtype => tk.clone(),
            _ => {
                let tk = type_key(&rec.rtype);
                self.last_type = Some((rec.rtype.clone(), tk.clone()));
                tk
            }
        };
        let observed = rec.observed_at_ms;
        let marker = rec.kind.is_marker();
        let rv = rec.resource_version.clone();
        let list_rv = match &rec.kind {
            rewind_format::EventKind::ResyncEnd { list_rv } => Some(list_rv.clone()),
            _ => None,
        };
        let key = ObjectKey {
            type_key: tk.clone(),
            namespace: rec.namespace.clone().unwrap_or_default(),
            name: rec.name.clone(),
        };
        match change {
            StateChange::Put(object) => {
                let v = state::encode_value(&rec.uid, &rec.resource_version, seq, &object)?;
                self.overlay.insert(key.encode(), Some(v));
            }
            StateChange::Remove => {
                self.overlay.insert(key.encode(), None);
            }
            StateChange::None => {}
        }
        if !marker {
            self.touched.push((key, rv.clone()));
        }
        let tr = self.type_record_mut(&tk, &rec.rtype)?;
        if tr.rtype != rec.rtype {
            // Its served version changed (rare): remember the newest.
            tr.rtype = rec.rtype.clone();
        }
        tr.events = tr.events.saturating_add(1);
        tr.last_event_ms = observed;
        if !marker && !rv.is_empty() {
            tr.last_rv = rv;
        }
        if let Some(l) = list_rv {
            tr.list_rv = Some(l);
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

    /// Encodes the staged records as one block and returns the batch.
    pub fn finish(self, encoder: &mut EventBlockEncoder) -> Result<PreparedBatch> {
        let block = if self.records.is_empty() {
            None
        } else {
            Some(encoder.encode(&self.records)?)
        };
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
            block,
            state_ops,
            meta_ops,
            touched: self.touched,
        })
    }
}
