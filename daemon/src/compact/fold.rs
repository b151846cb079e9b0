//! Folding: previous snapshot + events up to seq S -> snapshot at S.
//!
//! Purely through `rewind-format`, never through the journal, so it runs
//! on a blocking thread while ingestion goes on.
//!
//! Memory is bounded, and the work stays linear, by spilling: events are
//! folded into a sorted in-memory [`Delta`] (one operation per key); when
//! it passes its budget it is [`Delta::spill`]ed as a *run*, a segment file
//! of its operations in key order (compressed, synthetic seqs), and starts
//! empty again. [`fold`] then merges, type by type and key by key, the
//! previous snapshot (decoded one block at a time), every run (one block
//! at a time each) and what is left in memory, in that order, and streams
//! the result to the snapshot writer. Each object is thus encoded at most
//! once into a run and once into the snapshot, however many spills.
//!
//! A key's operation is a [`KeyOp`], the transition `rewind-format` defines
//! for every fold: events compose onto it with [`KeyOp::apply`], and a run
//! stores it as the events it is the composition of (see [`Delta::spill`]),
//! so reading a run back is applying those events. The result is
//! [`rewind_format::State::apply`]'s; a test checks the two agree, with and
//! without spills.

use std::collections::BTreeMap;

use rewind_format::snapshot::{
    SnapshotHeader, SnapshotObject, SnapshotReader, SnapshotWriter, TypeEntry,
};
use rewind_format::state::{ObjectKey, TypeKey};
use rewind_format::transition::note_type;
use rewind_format::{
    Change, Effect, EventKind, EventRecord, KeyOp, Limits, SegmentReader, SegmentWriter,
    WriteOptions,
};

use super::error::Result;

/// What happens to one key, relative to the previous snapshot.
type Op = KeyOp<SnapshotObject>;

/// Events since the previous snapshot, folded into per-key operations.
#[derive(Debug, Default)]
pub struct Delta {
    /// Seq of the previous snapshot; older events are skipped.
    base_seq: u64,
    /// Last applied seq.
    seq: u64,
    /// Its observation time.
    time_ms: i64,
    /// Every type with its latest resourceVersion.
    types: BTreeMap<TypeKey, TypeEntry>,
    /// Per-key operations, in snapshot order; none is [`KeyOp::keep`].
    ops: BTreeMap<ObjectKey, Op>,
    /// Events applied.
    events: u64,
    /// Memory held in `ops`, objects plus keys and bookkeeping (an upper
    /// bound: replaced objects are not subtracted), to bound the fold.
    bytes: u64,
}

/// Bytes an operation holds beyond its object: the key and the object's
/// strings (each string twice: in the key and in the object) plus
/// allocation headers and the map's node share, as measured against RSS
/// (`docs/BENCHMARKS.md`, "Design measurements"): without it a delta of
/// small objects would use about twice its budget.
const OP_OVERHEAD: u64 = 320;

fn op_bytes(e: &EventRecord) -> u64 {
    let strings = e.rtype.group.len()
        + e.rtype.resource.len()
        + 2 * (e.namespace.as_ref().map_or(0, String::len) + e.name.len())
        + e.uid.len()
        + e.resource_version.len();
    u64::try_from(e.object.len() + strings)
        .unwrap_or(u64::MAX)
        .saturating_add(OP_OVERHEAD)
}

impl Delta {
    /// A delta on top of a snapshot with `header` (or of nothing).
    #[must_use]
    pub fn new(header: Option<&SnapshotHeader>) -> Self {
        let mut d = Self::default();
        if let Some(h) = header {
            d.base_seq = h.seq;
            d.seq = h.seq;
            d.time_ms = h.time_ms;
            for t in &h.types {
                d.types
                    .insert((t.rtype.group.clone(), t.rtype.resource.clone()), t.clone());
            }
        }
        d
    }

    /// Events applied so far.
    #[must_use]
    pub fn events(&self) -> u64 {
        self.events
    }

    /// About how many bytes the delta holds (objects, keys, overhead).
    #[must_use]
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Last applied seq.
    #[must_use]
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Writes the per-key operations as a run (a segment file in key order,
    /// see the module doc) and empties them; seq, time and types stay.
    ///
    /// Each operation is written as events it is the composition of: `Put`
    /// as an `Applied`, `Remove` as a `Deleted` without a uid (which matches
    /// every object), `RemoveIf` as one `Deleted` per uid.
    pub fn spill(&mut self, cluster_id: &str, opts: &WriteOptions) -> Result<Vec<u8>> {
        let mut w = SegmentWriter::new(cluster_id, opts.clone())?;
        let mut seq = 0u64;
        for (k, op) in std::mem::take(&mut self.ops) {
            let Some(t) = self.types.get(&(k.group.clone(), k.resource.clone())) else {
                continue;
            };
            let mut push = |kind: EventKind, uid: String, rv: String, object: Vec<u8>| {
                seq += 1;
                w.push(&EventRecord {
                    seq,
                    observed_at_ms: self.time_ms,
                    cluster_id: cluster_id.to_owned(),
                    rtype: t.rtype.clone(),
                    namespace: k.namespace.clone(),
                    name: k.name.clone(),
                    uid,
                    resource_version: rv,
                    kind,
                    object,
                })
            };
            match op {
                KeyOp::Put(o) => push(EventKind::Applied, o.uid, o.resource_version, o.object)?,
                KeyOp::Remove => {
                    push(EventKind::Deleted, String::new(), String::new(), Vec::new())?;
                }
                KeyOp::RemoveIf(uids) => {
                    for uid in uids {
                        push(EventKind::Deleted, uid, String::new(), Vec::new())?;
                    }
                }
            }
        }
        self.bytes = 0;
        Ok(w.finish()?)
    }

    /// Applies one event; events at or before the current seq are skipped.
    pub fn apply(&mut self, e: &EventRecord) {
        if e.seq <= self.seq {
            return;
        }
        self.seq = e.seq;
        self.time_ms = e.observed_at_ms;
        self.events += 1;
        let effect = Effect::of(e);
        note_type(&mut self.types, &e.rtype, effect.list_rv);
        if effect.change == Change::Keep {
            return;
        }
        if let Change::Put(_) = effect.change {
            self.bytes = self.bytes.saturating_add(op_bytes(e));
        }
        let key = ObjectKey {
            group: e.rtype.group.clone(),
            resource: e.rtype.resource.clone(),
            namespace: e.namespace.clone(),
            name: e.name.clone(),
        };
        self.ops
            .entry(key)
            .or_default()
            .apply(effect.change, || SnapshotObject {
                namespace: e.namespace.clone(),
                name: e.name.clone(),
                uid: e.uid.clone(),
                resource_version: e.resource_version.clone(),
                object: e.object.clone(),
            });
    }
}

/// A snapshot produced by [`fold`].
#[derive(Debug, Clone)]
pub struct Folded {
    /// Consistent at this seq.
    pub seq: u64,
    /// Time of that seq.
    pub time_ms: i64,
    /// Objects written.
    pub objects: u64,
}

/// The previous snapshot's objects of one type, decoded one block at a
/// time: a type of a large snapshot is never held whole.
struct BaseStream<'r, 'a> {
    /// The previous snapshot, if any.
    reader: Option<&'r mut SnapshotReader<'a>>,
    /// Blocks of the type not read yet.
    blocks: std::vec::IntoIter<usize>,
    /// Objects of the current block not emitted yet.
    current: std::iter::Peekable<std::vec::IntoIter<SnapshotObject>>,
}

impl<'r, 'a> BaseStream<'r, 'a> {
    fn new(reader: Option<&'r mut SnapshotReader<'a>>, group: &str, resource: &str) -> Self {
        let blocks: Vec<usize> = reader
            .as_ref()
            .and_then(|rd| {
                let t = u32::try_from(rd.type_index(group, resource)?).ok()?;
                Some(
                    rd.index()
                        .blocks
                        .iter()
                        .enumerate()
                        .filter(|(_, b)| b.type_index == t)
                        .map(|(i, _)| i)
                        .collect(),
                )
            })
            .unwrap_or_default();
        Self {
            reader,
            blocks: blocks.into_iter(),
            current: Vec::new().into_iter().peekable(),
        }
    }

    fn peek(&mut self) -> Result<Option<&SnapshotObject>> {
        while self.current.peek().is_none() {
            let (Some(i), Some(rd)) = (self.blocks.next(), self.reader.as_mut()) else {
                return Ok(None);
            };
            self.current = rd.read_block(i)?.into_iter().peekable();
        }
        Ok(self.current.peek())
    }

    fn next(&mut self) -> Option<SnapshotObject> {
        self.current.next()
    }
}

/// One spilled run, read one block at a time.
struct RunStream<'a> {
    /// The run file.
    reader: SegmentReader<'a>,
    /// Next block to read.
    next_block: usize,
    /// Events of the current block not consumed yet.
    current: std::iter::Peekable<std::vec::IntoIter<EventRecord>>,
}

impl<'a> RunStream<'a> {
    fn open(bytes: &'a [u8]) -> Result<Self> {
        Ok(Self {
            reader: SegmentReader::open(bytes, Some("fold run"), Limits::default())?,
            next_block: 0,
            current: Vec::new().into_iter().peekable(),
        })
    }

    /// The next event if it belongs to type `(g, r)`.
    fn peek(&mut self, g: &str, r: &str) -> Result<Option<&EventRecord>> {
        while self.current.peek().is_none() {
            if self.next_block >= self.reader.blocks().len() {
                return Ok(None);
            }
            self.current = self
                .reader
                .read_block(self.next_block)?
                .into_iter()
                .peekable();
            self.next_block += 1;
        }
        Ok(self
            .current
            .peek()
            .filter(|e| e.rtype.group == g && e.rtype.resource == r))
    }
}

type Key = (Option<String>, String);

fn owned_key(ns: Option<&str>, name: &str) -> Key {
    (ns.map(str::to_owned), name.to_owned())
}

/// Whether the key `(ns, name)` sorts before `key`, in [`Key`]'s order.
fn key_lt(ns: Option<&str>, name: &str, key: &Key) -> bool {
    (ns, name) < (key.0.as_deref(), key.1.as_str())
}

/// The operation of one event of a run (see [`Delta::spill`]), taking its
/// object without a copy.
fn run_op(e: EventRecord) -> Op {
    match Effect::of(&e).change {
        Change::Put(_) => KeyOp::Put(SnapshotObject {
            namespace: e.namespace,
            name: e.name,
            uid: e.uid,
            resource_version: e.resource_version,
            object: e.object,
        }),
        Change::Delete(uid) => KeyOp::deletion(uid),
        Change::Keep => KeyOp::keep(),
    }
}

/// Writes the snapshot of `base` (a plain snapshot file, if any), then the
/// spilled `runs` in order, then `delta`, into `sink`, and returns the
/// sink. Memory: the delta, one block of the base and of each run, and the
/// writer's current block.
pub fn fold<W: std::io::Write>(
    base: Option<&[u8]>,
    runs: &[Vec<u8>],
    delta: &Delta,
    cluster_id: &str,
    opts: &WriteOptions,
    sink: W,
) -> Result<(Folded, W)> {
    let mut reader = base
        .map(|b| SnapshotReader::open(b, Some("local base snapshot"), Limits::default()))
        .transpose()?;
    let mut runs = runs
        .iter()
        .map(|r| RunStream::open(r))
        .collect::<Result<Vec<_>>>()?;
    let cluster_id = reader
        .as_ref()
        .map_or(cluster_id.to_owned(), |r| r.header().cluster_id.clone());
    let header = SnapshotHeader {
        cluster_id,
        seq: delta.seq,
        time_ms: delta.time_ms,
        types: delta.types.values().cloned().collect(),
        crd_type: None,
    };
    let types = header.types.clone();
    let mut w = SnapshotWriter::new(sink, header, opts)?;
    let mut objects = 0u64;
    for (ti, t) in types.iter().enumerate() {
        let (g, r) = (&t.rtype.group, &t.rtype.resource);
        let mut base_it = BaseStream::new(reader.as_mut(), g, r);
        let lo = ObjectKey {
            group: g.clone(),
            resource: r.clone(),
            namespace: None,
            name: String::new(),
        };
        let mut ops = delta
            .ops
            .range(lo..)
            .take_while(|(k, _)| &k.group == g && &k.resource == r)
            .peekable();
        loop {
            // The smallest key any layer holds next.
            let mut next: Option<Key> = base_it
                .peek()?
                .map(|b| owned_key(b.namespace.as_deref(), &b.name));
            // Compared borrowed; only a smaller key is copied (a fold of
            // many runs would otherwise copy every run's head per object).
            for run in &mut runs {
                if let Some(e) = run.peek(g, r)?
                    && next
                        .as_ref()
                        .is_none_or(|n| key_lt(e.namespace.as_deref(), &e.name, n))
                {
                    next = Some(owned_key(e.namespace.as_deref(), &e.name));
                }
            }
            if let Some((k, _)) = ops.peek()
                && next
                    .as_ref()
                    .is_none_or(|n| key_lt(k.namespace.as_deref(), &k.name, n))
            {
                next = Some(owned_key(k.namespace.as_deref(), &k.name));
            }
            let Some(key) = next else { break };
            let is_key = |ns: Option<&str>, name: &str| ns == key.0.as_deref() && name == key.1;
            // Oldest layer first: base, runs in order, then memory.
            let mut cur = match base_it.peek()? {
                Some(b) if is_key(b.namespace.as_deref(), &b.name) => base_it.next(),
                _ => None,
            };
            for run in &mut runs {
                let mut op = KeyOp::keep();
                while run
                    .peek(g, r)?
                    .is_some_and(|e| is_key(e.namespace.as_deref(), &e.name))
                {
                    if let Some(e) = run.current.next() {
                        op = op.compose(run_op(e));
                    }
                }
                cur = op.resolve(cur);
            }
            // The newest layer; its objects are pushed by reference.
            let newest = match ops.peek() {
                Some((k, _)) if is_key(k.namespace.as_deref(), &k.name) => {
                    ops.next().map(|(_, op)| op)
                }
                _ => None,
            };
            let out = match newest {
                Some(op) => op.resolve_ref(cur.as_ref()),
                None => cur.as_ref(),
            };
            if let Some(o) = out {
                w.push(ti, o)?;
                objects += 1;
            }
        }
    }
    let sink = w.finish()?;
    Ok((
        Folded {
            seq: delta.seq,
            time_ms: delta.time_ms,
            objects,
        },
        sink,
    ))
}

#[cfg(test)]
mod tests {
    use super::{Key, key_lt, owned_key};
    use proptest::prelude::*;

    fn key() -> impl Strategy<Value = Key> {
        (proptest::option::of("[a-c]{0,2}"), "[a-c]{0,2}")
    }

    proptest! {
        /// The borrowed comparison the merge uses is the owned key's order.
        #[test]
        fn key_lt_is_the_owned_keys_order(a in key(), b in key()) {
            prop_assert_eq!(key_lt(a.0.as_deref(), &a.1, &b), owned_key(a.0.as_deref(), &a.1) < b);
        }
    }
}
