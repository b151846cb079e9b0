//! The parallel fold: a snapshot's blocks and the segments' blocks decode on
//! every core, and each worker reduces its contiguous run of events to one
//! change per object, so the final merge touches each object a few times
//! instead of once per event.
//!
//! The reduction keeps `State::apply`'s semantics exactly (it is checked
//! against it by the model tests): a deletion removes the object only when
//! the uids agree, so a run of events that starts with deletions depends on
//! the base; [`Delta::DeleteIf`] carries that dependency to the merge.

use std::collections::{BTreeMap, HashMap};

use rewind_format::state::TypeKey;
use rewind_format::{
    EventKind, EventRecord, Limits, ObjectKey, ResourceType, SegmentReader, SnapshotReader, State,
    StateObject,
};

use super::{PitError, Result};

/// Where a fold stops: after `seq`, or before the first event observed
/// after `time_ms`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Until {
    /// Last sequence number to apply.
    pub seq: Option<u64>,
    /// Stop at the first event observed after this time (Unix ms).
    pub time_ms: Option<i64>,
}

impl Until {
    /// This stop point, ending after `seq`.
    #[must_use]
    pub fn with_seq(mut self, seq: u64) -> Self {
        self.seq = Some(seq);
        self
    }

    fn stops_at(&self, e: &EventRecord) -> bool {
        self.seq.is_some_and(|s| e.seq > s) || self.time_ms.is_some_and(|t| e.observed_at_ms > t)
    }
}

/// One segment to fold: its plain bytes, and the first seq to take from it
/// (earlier events are in the base or in an overlapping earlier segment).
#[derive(Debug, Clone, Copy)]
pub struct SegmentInput<'a> {
    /// Store key, for error messages.
    pub name: &'a str,
    /// Decrypted bytes.
    pub plain: &'a [u8],
    /// Events below this seq are skipped.
    pub from_seq: u64,
}

/// What a run of events did to one object, independently of the base.
#[derive(Debug)]
enum Delta {
    /// The object holds this value.
    Put(StateObject),
    /// The object is gone.
    Gone,
    /// Only deletions so far: the base object goes if its uid is one of
    /// these, or if any deletion (or the object) had no uid.
    DeleteIf { any: bool, uids: Vec<String> },
}

/// A worker's reduction of its run of events.
#[derive(Debug, Default)]
struct Reduced {
    objects: HashMap<ObjectKey, Delta>,
    /// Latest rtype per type, and the latest list_rv set by an event.
    types: HashMap<TypeKey, (ResourceType, Option<String>)>,
    /// Seq and time of the last event taken.
    last: Option<(u64, i64)>,
    /// Events taken.
    events: u64,
    /// The worker met an event past the stop point.
    stopped: bool,
}

impl Reduced {
    fn push(&mut self, e: EventRecord) {
        self.last = Some((e.seq, e.observed_at_ms));
        self.events += 1;
        let list_rv = match &e.kind {
            EventKind::Applied | EventKind::Deleted => Some(e.resource_version.clone()),
            EventKind::ResyncEnd { list_rv } => Some(list_rv.clone()),
            EventKind::DeletedInferred { .. } | EventKind::ResyncBegin { .. } => None,
        };
        let tk = (e.rtype.group.clone(), e.rtype.resource.clone());
        match self.types.get_mut(&tk) {
            Some(t) => {
                if t.0 != e.rtype {
                    t.0.clone_from(&e.rtype);
                }
                if list_rv.is_some() {
                    t.1 = list_rv;
                }
            }
            None => {
                self.types.insert(tk, (e.rtype.clone(), list_rv));
            }
        }
        let deleting = match e.kind {
            EventKind::Applied => false,
            EventKind::Deleted | EventKind::DeletedInferred { .. } => true,
            EventKind::ResyncBegin { .. } | EventKind::ResyncEnd { .. } => return,
        };
        let key = ObjectKey {
            group: e.rtype.group,
            resource: e.rtype.resource,
            namespace: e.namespace,
            name: e.name,
        };
        if !deleting {
            let obj = StateObject {
                uid: e.uid,
                resource_version: e.resource_version,
                object: e.object,
            };
            self.objects.insert(key, Delta::Put(obj));
            return;
        }
        let uid = e.uid;
        match self.objects.get_mut(&key) {
            Some(d @ Delta::Put(_)) => {
                if let Delta::Put(o) = d
                    && (o.uid == uid || o.uid.is_empty() || uid.is_empty())
                {
                    *d = Delta::Gone;
                }
            }
            Some(Delta::Gone) => {}
            Some(Delta::DeleteIf { any, uids }) => {
                if uid.is_empty() {
                    *any = true;
                } else if !uids.contains(&uid) {
                    uids.push(uid);
                }
            }
            None => {
                let d = if uid.is_empty() {
                    Delta::DeleteIf {
                        any: true,
                        uids: Vec::new(),
                    }
                } else {
                    Delta::DeleteIf {
                        any: false,
                        uids: vec![uid],
                    }
                };
                self.objects.insert(key, d);
            }
        }
    }

    /// Applies this reduction to `state`, as `State::apply` would have
    /// applied the events one by one.
    fn apply_to(self, state: &mut State) {
        for (tk, (rtype, list_rv)) in self.types {
            let entry = state
                .types
                .entry(tk)
                .or_insert_with(|| rewind_format::TypeEntry {
                    rtype: rtype.clone(),
                    list_rv: String::new(),
                });
            entry.rtype = rtype;
            if let Some(rv) = list_rv {
                entry.list_rv = rv;
            }
        }
        for (k, d) in self.objects {
            match d {
                Delta::Put(o) => {
                    state.objects.insert(k, o);
                }
                Delta::Gone => {
                    state.objects.remove(&k);
                }
                Delta::DeleteIf { any, uids } => {
                    if state
                        .objects
                        .get(&k)
                        .is_some_and(|o| any || o.uid.is_empty() || uids.contains(&o.uid))
                    {
                        state.objects.remove(&k);
                    }
                }
            }
        }
        if let Some((seq, time)) = self.last {
            state.seq = seq;
            state.time_ms = time;
        }
    }
}

/// Number of workers: the machine's parallelism.
fn workers() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// Splits `weights` into at most `n` contiguous ranges of similar weight.
fn split(weights: &[u64], n: usize) -> Vec<std::ops::Range<usize>> {
    let total: u64 = weights.iter().sum();
    let n = n.max(1);
    let target = total.div_ceil(u64::try_from(n).unwrap_or(1)).max(1);
    let mut out = Vec::new();
    let (mut start, mut acc) = (0, 0u64);
    for (i, w) in weights.iter().enumerate() {
        acc += w;
        if acc >= target && out.len() + 1 < n {
            out.push(start..i + 1);
            start = i + 1;
            acc = 0;
        }
    }
    if start < weights.len() {
        out.push(start..weights.len());
    }
    out
}

fn join<T>(h: std::thread::ScopedJoinHandle<'_, Result<T>>) -> Result<T> {
    h.join().map_err(|_| PitError::Worker)?
}

/// Decodes a whole snapshot (plain bytes) into a state, its blocks spread
/// over every core.
pub fn decode_snapshot(plain: &[u8], name: &str, limits: Limits) -> Result<State> {
    let fmt = |source| PitError::Format {
        file: name.to_owned(),
        source,
    };
    let reader = SnapshotReader::open(plain, Some(name), limits).map_err(fmt)?;
    let header = reader.header().clone();
    let weights: Vec<u64> = reader
        .index()
        .blocks
        .iter()
        .map(|b| u64::from(b.count))
        .collect();
    let ranges = split(&weights, workers());
    let parts = std::thread::scope(|s| {
        let handles: Vec<_> = ranges
            .into_iter()
            .map(|range| {
                let header = &header;
                s.spawn(move || -> Result<Vec<(ObjectKey, StateObject)>> {
                    let mut r = SnapshotReader::open(plain, Some(name), limits).map_err(fmt)?;
                    let mut out = Vec::new();
                    for i in range {
                        let t = r
                            .index()
                            .blocks
                            .get(i)
                            .and_then(|b| usize::try_from(b.type_index).ok())
                            .and_then(|t| header.types.get(t))
                            .map(|t| (t.rtype.group.clone(), t.rtype.resource.clone()));
                        let objects = r.read_block(i).map_err(fmt)?;
                        let Some((group, resource)) = t else {
                            continue;
                        };
                        out.extend(objects.into_iter().map(|o| {
                            (
                                ObjectKey {
                                    group: group.clone(),
                                    resource: resource.clone(),
                                    namespace: o.namespace,
                                    name: o.name,
                                },
                                StateObject {
                                    uid: o.uid,
                                    resource_version: o.resource_version,
                                    object: o.object,
                                },
                            )
                        }));
                    }
                    Ok(out)
                })
            })
            .collect();
        handles.into_iter().map(join).collect::<Result<Vec<_>>>()
    })?;
    // Blocks are in key order and the parts are contiguous runs of them, so
    // the concatenation is sorted and the map is built in one pass.
    let objects: BTreeMap<ObjectKey, StateObject> = parts.into_iter().flatten().collect();
    Ok(State {
        cluster_id: header.cluster_id.clone(),
        seq: header.seq,
        time_ms: header.time_ms,
        types: header
            .types
            .iter()
            .map(|t| ((t.rtype.group.clone(), t.rtype.resource.clone()), t.clone()))
            .collect(),
        objects,
    })
}

/// Folds `segments` (in chain order) onto `state`, up to `until`, decoding
/// their blocks on every core. Returns the number of events applied.
pub fn fold_segments(
    state: &mut State,
    segments: &[SegmentInput<'_>],
    until: Until,
    limits: Limits,
) -> Result<u64> {
    // Units of work: (segment, block), in log order, weighted by events.
    let mut units = Vec::new();
    for (si, seg) in segments.iter().enumerate() {
        let r = SegmentReader::open(seg.plain, Some(seg.name), limits).map_err(|source| {
            PitError::Format {
                file: seg.name.to_owned(),
                source,
            }
        })?;
        for (bi, b) in r.blocks().iter().enumerate() {
            if b.last_seq < seg.from_seq.max(state.seq.saturating_add(1)) {
                continue;
            }
            if until.seq.is_some_and(|s| b.first_seq > s) {
                break;
            }
            units.push((si, bi, u64::from(b.count)));
        }
    }
    let weights: Vec<u64> = units.iter().map(|u| u.2).collect();
    let ranges = split(&weights, workers());
    let base_seq = state.seq;
    let reduced = std::thread::scope(|s| {
        let handles: Vec<_> = ranges
            .into_iter()
            .map(|range| {
                let units = units.get(range).unwrap_or_default();
                s.spawn(move || reduce(segments, units, base_seq, until, limits))
            })
            .collect();
        handles.into_iter().map(join).collect::<Result<Vec<_>>>()
    })?;
    let mut applied = 0;
    for r in reduced {
        let stopped = r.stopped;
        applied += r.events;
        r.apply_to(state);
        if stopped {
            break;
        }
    }
    Ok(applied)
}

/// One worker: decodes its blocks in order and reduces their events.
fn reduce(
    segments: &[SegmentInput<'_>],
    units: &[(usize, usize, u64)],
    base_seq: u64,
    until: Until,
    limits: Limits,
) -> Result<Reduced> {
    let mut out = Reduced::default();
    let mut open: Option<(usize, SegmentReader<'_>)> = None;
    for &(si, bi, _) in units {
        let Some(seg) = segments.get(si) else {
            continue;
        };
        let fmt = |source| PitError::Format {
            file: seg.name.to_owned(),
            source,
        };
        if open.as_ref().is_none_or(|(i, _)| *i != si) {
            open = Some((
                si,
                SegmentReader::open(seg.plain, Some(seg.name), limits).map_err(fmt)?,
            ));
        }
        let Some((_, r)) = open.as_mut() else {
            continue;
        };
        let from = seg.from_seq.max(base_seq.saturating_add(1));
        for e in r.read_block(bi).map_err(fmt)? {
            if e.seq < from {
                continue;
            }
            if until.stops_at(&e) {
                out.stopped = true;
                return Ok(out);
            }
            out.push(e);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_contiguous_and_covers_everything() {
        for n in 1..5 {
            let w = [5, 1, 1, 1, 9, 2, 2, 0, 3];
            let r = split(&w, n);
            assert!(r.len() <= n);
            let flat: Vec<usize> = r.iter().flat_map(Clone::clone).collect();
            assert_eq!(flat, (0..w.len()).collect::<Vec<_>>());
        }
        assert!(split(&[], 2).is_empty());
    }
}
