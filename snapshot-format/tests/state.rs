//! The fold helper against a model, and the compaction property:
//! snapshot(prefix) + suffix events == fold(all events).
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss,
    reason = "fixtures are small"
)]

mod common;

use std::collections::BTreeMap;

use common::*;
use proptest::prelude::*;
use rewind_format::state::State;
use rewind_format::{EventKind, EventRecord, Limits, SnapshotReader, WriteOptions};

/// Events over a tiny key space so that updates, deletes and recreations collide.
fn arb_history() -> impl Strategy<Value = Vec<EventRecord>> {
    proptest::collection::vec((0usize..4, 0u8..3, 0u8..4, 0u8..6, 0u8..2), 1..120).prop_map(|v| {
        let ts = types();
        v.into_iter()
            .enumerate()
            .map(|(i, (t, ns, name, op, generation))| {
                let rt = ts[t].clone();
                let namespace = rt.namespaced.then(|| format!("ns{ns}"));
                let name = format!("n{name}");
                let seq = i as u64 + 1;
                let kind = match op {
                    0..=2 => EventKind::Applied,
                    3 => EventKind::Deleted,
                    4 => EventKind::DeletedInferred {
                        list_rv: format!("{seq}"),
                    },
                    _ => EventKind::ResyncEnd {
                        list_rv: format!("{seq}"),
                    },
                };
                EventRecord {
                    seq,
                    observed_at_ms: seq as i64 * 1000,
                    cluster_id: "local".into(),
                    object: object_json(&rt.kind, namespace.as_deref(), &name, seq),
                    uid: format!("{name}-gen{generation}"),
                    rtype: rt,
                    namespace,
                    name,
                    resource_version: format!("{seq}"),
                    kind,
                }
            })
            .collect()
    })
}

/// The model: a plain map from (resource, ns, name) to (uid, object).
/// (resource, namespace, name) -> (uid, object).
type Model = BTreeMap<(String, Option<String>, String), (String, Vec<u8>)>;

fn model(events: &[EventRecord]) -> Model {
    let mut m = BTreeMap::new();
    for e in events {
        let k = (
            e.rtype.resource.clone(),
            e.namespace.clone(),
            e.name.clone(),
        );
        match e.kind {
            EventKind::Applied => {
                m.insert(k, (e.uid.clone(), e.object.clone()));
            }
            EventKind::Deleted | EventKind::DeletedInferred { .. }
                if m.get(&k).is_some_and(|(uid, _)| *uid == e.uid) =>
            {
                m.remove(&k);
            }
            _ => {}
        }
    }
    m
}

fn as_model(s: &State) -> Model {
    s.objects
        .iter()
        .map(|(k, o)| {
            (
                (k.resource.clone(), k.namespace.clone(), k.name.clone()),
                (o.uid.clone(), o.object.clone()),
            )
        })
        .collect()
}

proptest! {
    #[test]
    fn fold_matches_model(events in arb_history()) {
        let mut s = State::new("local");
        s.apply_all(&events, None);
        prop_assert_eq!(as_model(&s), model(&events));
        prop_assert_eq!(s.seq, events.last().unwrap().seq);
        // Replaying is idempotent: old events are skipped.
        let before = s.clone();
        s.apply_all(&events, None);
        prop_assert_eq!(s, before);
    }

    #[test]
    fn snapshot_of_prefix_plus_suffix_equals_full_fold(events in arb_history(), split in 0usize..120) {
        let split = split.min(events.len());
        let mut prefix = State::new("local");
        prefix.apply_all(&events[..split], None);
        let opts = WriteOptions { block_bytes: 300, ..WriteOptions::default() };
        let bytes = prefix.write_snapshot(Vec::new(), &opts).unwrap();
        let mut r = SnapshotReader::open(&bytes, None, Limits::default()).unwrap();
        let mut resumed = State::from_snapshot(&mut r).unwrap();
        prop_assert_eq!(&resumed, &prefix);
        // Overlapping events (already in the snapshot) are skipped.
        resumed.apply_all(&events, None);
        let mut full = State::new("local");
        full.apply_all(&events, None);
        prop_assert_eq!(resumed, full);
    }
}

#[test]
fn point_in_time_stops_at_until_seq() {
    let events = sample_events(50);
    let mut s = State::new("local");
    s.apply_all(&events, Some(20));
    assert_eq!(s.seq, 20);
    assert_eq!(as_model(&s), model(&events[..20]));
}
