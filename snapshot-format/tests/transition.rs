//! The per-key transition against the one-by-one fold (`State::apply`):
//! composing the ops of consecutive chunks is associative, and a base plus
//! the chunks' ops (built forwards with `apply` or newest first with
//! `apply_before`, applied chunk by chunk or composed first) holds exactly
//! the objects of the base plus the events applied one by one. The logs have
//! uid-less and stale deletions, inferred deletions, recreations under a new
//! uid and relist markers.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test code: a panic is a failed test, fixtures are small"
)]

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use rewind_format::state::{ObjectKey, State, StateObject};
use rewind_format::transition::note_type;
use rewind_format::{Effect, EventKind, EventRecord, KeyOp, ResourceType};

fn rtype(i: u8) -> ResourceType {
    ResourceType {
        group: if i == 0 { String::new() } else { "g.io".into() },
        version: "v1".into(),
        resource: format!("r{i}"),
        kind: "K".into(),
        namespaced: i == 0,
    }
}

/// A raw event: (type, name, kind roll, uid choice).
type Raw = (u8, u8, u8, u8);

fn events(raw: &[Raw]) -> Vec<EventRecord> {
    raw.iter()
        .zip(1u64..)
        .map(|(&(t, n, k, u), seq)| {
            let rt = rtype(t % 2);
            let kind = match k % 10 {
                0..=4 => EventKind::Applied,
                5 | 6 => EventKind::Deleted,
                7 => EventKind::DeletedInferred {
                    list_rv: format!("l{seq}"),
                },
                8 => EventKind::ResyncBegin { list_rv: None },
                _ => EventKind::ResyncEnd {
                    list_rv: format!("e{seq}"),
                },
            };
            let marker = kind.is_marker();
            EventRecord {
                seq,
                observed_at_ms: i64::try_from(seq).unwrap(),
                cluster_id: "c".into(),
                namespace: (rt.namespaced && !marker).then(|| "ns".into()),
                rtype: rt,
                name: if marker {
                    String::new()
                } else {
                    format!("n{}", n % 3)
                },
                uid: match u % 4 {
                    _ if marker => String::new(),
                    0 => String::new(),
                    x => format!("u{x}"),
                },
                resource_version: seq.to_string(),
                kind,
                object: format!("{{\"seq\":{seq}}}").into_bytes(),
            }
        })
        .collect()
}

fn key(e: &EventRecord) -> ObjectKey {
    ObjectKey {
        group: e.rtype.group.clone(),
        resource: e.rtype.resource.clone(),
        namespace: e.namespace.clone(),
        name: e.name.clone(),
    }
}

fn object(e: &EventRecord) -> StateObject {
    StateObject {
        uid: e.uid.clone(),
        resource_version: e.resource_version.clone(),
        object: e.object.clone(),
    }
}

type Ops = BTreeMap<ObjectKey, KeyOp<StateObject>>;

/// A chunk's ops, composing each event onto the ops so far.
fn forward(chunk: &[EventRecord]) -> Ops {
    let mut ops = Ops::new();
    for e in chunk {
        let change = Effect::of(e).change;
        if change != rewind_format::Change::Keep {
            ops.entry(key(e)).or_default().apply(change, || object(e));
        }
    }
    ops
}

/// A chunk's ops, newest event first, composing each under the ops so far.
fn backward(chunk: &[EventRecord]) -> Ops {
    let mut ops = Ops::new();
    for e in chunk.iter().rev() {
        let change = Effect::of(e).change;
        if change != rewind_format::Change::Keep {
            ops.entry(key(e))
                .or_default()
                .apply_before(change, || object(e));
        }
    }
    ops
}

/// Applies a chunk's ops and its type changes to `state`, as the parallel
/// fold applies a reduced run.
fn apply_ops(state: &mut State, chunk: &[EventRecord], ops: Ops) {
    for e in chunk {
        note_type(&mut state.types, &e.rtype, Effect::of(e).list_rv);
    }
    for (k, op) in ops {
        op.resolve_in(&mut state.objects, k);
    }
    if let Some(last) = chunk.last() {
        state.seq = last.seq;
        state.time_ms = last.observed_at_ms;
    }
}

fn op_of(ops: &Ops, k: &ObjectKey) -> KeyOp<StateObject> {
    ops.get(k).cloned().unwrap_or_default()
}

/// Every base a key can have: none, or an object under each uid.
fn bases() -> Vec<Option<StateObject>> {
    let mut out = vec![None];
    for uid in ["", "u1", "u2", "u3"] {
        out.push(Some(StateObject {
            uid: uid.into(),
            resource_version: "0".into(),
            object: b"{}".to_vec(),
        }));
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn chunk_ops_compose_like_the_one_by_one_fold(
        raw in proptest::collection::vec((0u8..2, 0u8..3, any::<u8>(), any::<u8>()), 1..80),
        base_frac in 0usize..100,
        cuts in proptest::collection::vec(0usize..100, 2..5),
    ) {
        let evs = events(&raw);
        let nbase = evs.len() * base_frac / 100;
        let (base_evs, rest) = evs.split_at(nbase);
        let mut base = State::new("c");
        base.apply_all(base_evs, None);
        let mut bounds: Vec<usize> = cuts.iter().map(|c| rest.len() * c / 100).collect();
        bounds.extend([0, rest.len()]);
        bounds.sort_unstable();
        let chunks: Vec<&[EventRecord]> =
            bounds.windows(2).map(|w| &rest[w[0]..w[1]]).collect();

        let mut model = base.clone();
        model.apply_all(rest, None);

        // Chunk by chunk, each chunk's ops built forwards or newest first.
        for build in [forward, backward] {
            let mut got = base.clone();
            for c in &chunks {
                apply_ops(&mut got, c, build(c));
            }
            prop_assert_eq!(&got, &model);
        }

        // Every chunk's op composed first, then resolved on the base.
        let fwd: Vec<Ops> = chunks.iter().map(|c| forward(c)).collect();
        let bwd: Vec<Ops> = chunks.iter().map(|c| backward(c)).collect();
        let keys: BTreeSet<ObjectKey> = fwd.iter().flat_map(|o| o.keys().cloned()).collect();
        for k in &keys {
            let composed = fwd
                .iter()
                .fold(KeyOp::keep(), |acc, ops| acc.compose(op_of(ops, k)));
            let at_base = base.objects.get(k).cloned();
            prop_assert_eq!(composed.resolve(at_base), model.objects.get(k).cloned());

            // Forward and newest-first ops of a chunk agree on every base.
            for (f, b) in fwd.iter().zip(&bwd) {
                let (f, b) = (op_of(f, k), op_of(b, k));
                for base in bases() {
                    prop_assert_eq!(f.clone().resolve(base.clone()), b.clone().resolve(base));
                }
            }

            // Associative, with keep as the identity.
            let (a, b, c) = (op_of(&fwd[0], k), op_of(&fwd[1], k), op_of(&fwd[2], k));
            let left = a.clone().compose(b.clone()).compose(c.clone());
            let right = a.clone().compose(b.compose(c));
            prop_assert_eq!(&left, &right);
            prop_assert_eq!(KeyOp::keep().compose(a.clone()), a.clone());
            prop_assert_eq!(a.clone().compose(KeyOp::keep()), a);
        }
    }
}
