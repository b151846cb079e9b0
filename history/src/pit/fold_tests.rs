//! The parallel, newest-first fold against the format crate's one-by-one
//! fold (`State::apply`), on random logs with stale and uid-less deletions,
//! inferred deletions, relist markers, times that go backwards, overlapping
//! segments, and 1 to 4 workers.

use proptest::prelude::*;
use rewind_format::{EventKind, EventRecord, Limits, ResourceType, State, WriteOptions};

use super::fold::{SegmentInput, Until, fold_segments_on};

fn rtype(i: u8) -> ResourceType {
    ResourceType {
        group: if i == 0 { String::new() } else { "g.io".into() },
        version: format!("v{i}"),
        resource: format!("r{}", i % 2),
        kind: "K".into(),
        namespaced: i.is_multiple_of(2),
    }
}

/// A raw event: (type, name, kind roll, uid choice, time step).
type Raw = (u8, u8, u8, u8, i8);

fn events(raw: &[Raw]) -> Vec<EventRecord> {
    let mut time = 1_000i64;
    raw.iter()
        .enumerate()
        .map(|(i, &(t, n, k, u, dt))| {
            time += i64::from(dt);
            let seq = 1 + 2 * i as u64;
            let rt = rtype(t % 3);
            let uid = match u % 4 {
                0 => String::new(),
                x => format!("u{x}"),
            };
            let kind = match k % 10 {
                0..=4 => EventKind::Applied,
                5 | 6 => EventKind::Deleted,
                7 => EventKind::DeletedInferred {
                    list_rv: format!("l{seq}"),
                },
                8 => EventKind::ResyncBegin {
                    list_rv: (u % 2 == 0).then(|| format!("b{seq}")),
                },
                _ => EventKind::ResyncEnd {
                    list_rv: format!("e{seq}"),
                },
            };
            let marker = kind.is_marker();
            EventRecord {
                seq,
                observed_at_ms: time,
                cluster_id: "c".into(),
                namespace: (rt.namespaced && !marker).then(|| "ns".into()),
                rtype: rt,
                name: if marker {
                    String::new()
                } else {
                    format!("n{}", n % 4)
                },
                uid: if marker { String::new() } else { uid },
                resource_version: if marker {
                    String::new()
                } else {
                    seq.to_string()
                },
                kind,
                object: if marker {
                    Vec::new()
                } else {
                    format!("{{\"seq\":{seq}}}").into_bytes()
                },
            }
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn equals_the_one_by_one_fold(
        raw in proptest::collection::vec((0u8..3, 0u8..4, any::<u8>(), any::<u8>(), -3i8..6), 1..120),
        base_frac in 0usize..100,
        cuts in proptest::collection::vec(0usize..100, 0..3),
        overlap in 0usize..4,
        until_seq in proptest::option::of(0u64..260),
        until_time in proptest::option::of(990i64..1700),
        threads in 1usize..5,
    ) {
        let evs = events(&raw);
        let nbase = evs.len() * base_frac / 100;
        let (base_evs, rest) = evs.split_at(nbase);
        let mut base = State::new("c");
        base.apply_all(base_evs, None);
        prop_assume!(!rest.is_empty());
        // Segments: cut points in the rest; each later segment may start a
        // few events early (an overlap the chain trims with from_seq).
        let mut bounds: Vec<usize> = cuts.iter().map(|c| rest.len() * c / 100).collect();
        bounds.extend([0, rest.len()]);
        bounds.sort_unstable();
        bounds.dedup();
        let opts = WriteOptions { level: 1, block_bytes: 150, dictionary: None };
        let mut files = Vec::new();
        for w in bounds.windows(2) {
            let (a, b) = (w[0], w[1]);
            let start = if a == 0 { 0 } else { a.saturating_sub(overlap) };
            let from = rest[a].seq;
            let bytes = rewind_format::encode_segment("c", &rest[start..b], &opts).unwrap();
            files.push((format!("seg{a}"), bytes, from));
        }
        let inputs: Vec<SegmentInput<'_>> = files
            .iter()
            .map(|(n, b, from)| SegmentInput { name: n, plain: b, from_seq: *from })
            .collect();
        let until = Until { seq: until_seq, time_ms: until_time };

        let mut expect = base.clone();
        let mut applied = 0u64;
        for e in rest {
            if until.seq.is_some_and(|s| e.seq > s) || until.time_ms.is_some_and(|t| e.observed_at_ms > t) {
                break;
            }
            expect.apply(e);
            applied += 1;
        }
        let mut got = base.clone();
        let n = fold_segments_on(&mut got, &inputs, until, Limits::default(), threads).unwrap();
        prop_assert_eq!(n, applied);
        prop_assert_eq!(got, expect);
    }
}
