//! Property tests: everything written reads back identical.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss,
    reason = "fixtures are small"
)]

mod common;

use common::*;
use proptest::prelude::*;
use rewind_format::segment::SegmentReader;
use rewind_format::snapshot::{SnapshotHeader, SnapshotObject, TypeEntry};
use rewind_format::{
    Limits, SnapshotReader, WriteOptions, decode_block, decode_record, encode_block, encode_record,
    encode_segment,
};

proptest! {
    #[test]
    fn record_round_trip(r in arb_record()) {
        let bytes = encode_record(&r).unwrap();
        prop_assert_eq!(decode_record(&bytes).unwrap(), r);
    }

    #[test]
    fn event_block_round_trip(run in arb_run(40), level in 1i32..6) {
        let bytes = encode_block(&run, level).unwrap();
        prop_assert_eq!(decode_block(&bytes, &Limits::default()).unwrap(), run);
    }

    #[test]
    fn segment_round_trip(run in arb_run(60), block_bytes in 64usize..4096) {
        let opts = WriteOptions { level: 3, block_bytes, dictionary: None };
        let bytes = encode_segment("c1", &run, &opts).unwrap();
        let mut r = SegmentReader::open(&bytes, Some("seg"), Limits::default()).unwrap();
        let h = r.header().clone();
        prop_assert_eq!(h.first_seq, run[0].seq);
        prop_assert_eq!(h.last_seq, run.last().unwrap().seq);
        prop_assert_eq!(h.event_count, run.len() as u64);
        prop_assert_eq!(h.min_time_ms, run.iter().map(|e| e.observed_at_ms).min().unwrap());
        prop_assert_eq!(h.max_time_ms, run.iter().map(|e| e.observed_at_ms).max().unwrap());
        prop_assert_eq!(&r.read_all().unwrap(), &run);
        let streamed: Vec<_> = r.iter().collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(&streamed, &run);
        // Seeking from any seq gives exactly the suffix.
        let mid = run[run.len() / 2].seq;
        let expect: Vec<_> = run.iter().filter(|e| e.seq >= mid).cloned().collect();
        prop_assert_eq!(r.events_from_seq(mid).unwrap(), expect);
    }

    #[test]
    fn snapshot_round_trip(
        objs in proptest::collection::btree_map(
            (0usize..3, proptest::option::of("[a-c]{1,2}"), "[a-z0-9]{1,6}"),
            ("[a-f0-9]{0,8}", "[0-9]{1,6}", proptest::collection::vec(any::<u8>(), 0..200)),
            0..80,
        ),
        block_bytes in 32usize..2048,
    ) {
        // Type 0 cluster-scoped, 1 namespaced, 2 cluster-scoped CRDs.
        let ts = [
            rtype("", "namespaces", "Namespace", false),
            rtype("", "pods", "Pod", true),
            rtype("apiextensions.k8s.io", "customresourcedefinitions", "CustomResourceDefinition", false),
        ];
        let header = SnapshotHeader {
            cluster_id: "c1".into(),
            seq: 7,
            time_ms: -5,
            types: ts.iter().map(|t| TypeEntry { rtype: t.clone(), list_rv: "9".into() }).collect(),
            crd_type: None,
        };
        let mut per_type: Vec<Vec<SnapshotObject>> = vec![Vec::new(); 3];
        for ((t, ns, name), (uid, rv, object)) in objs {
            let namespace = if ts[t].namespaced { Some(ns.unwrap_or_else(|| "x".into())) } else { None };
            per_type[t].push(SnapshotObject { namespace, name, uid, resource_version: rv, object });
        }
        for v in &mut per_type {
            v.sort_by(|a, b| a.key().cmp(&b.key()));
            v.dedup_by(|a, b| a.key() == b.key());
        }
        let opts = WriteOptions { level: 3, block_bytes, dictionary: None };
        let bytes = write_snapshot(&header, &per_type, &opts);
        let mut r = SnapshotReader::open(&bytes, None, Limits::default()).unwrap();
        prop_assert_eq!(r.header().crd_type, Some(2));
        for (t, objs) in per_type.iter().enumerate() {
            prop_assert_eq!(&r.read_type(t).unwrap(), objs);
            prop_assert_eq!(r.index().object_counts[t], objs.len() as u64);
            for o in objs {
                let got = r.get(t, o.namespace.as_deref(), &o.name).unwrap();
                prop_assert_eq!(got.as_ref(), Some(o));
            }
            prop_assert_eq!(r.get(t, Some("zz"), "missing").unwrap(), None);
        }
        for ns in ["a", "b", "x", "zz"] {
            let expect: Vec<_> = per_type[1].iter().filter(|o| o.namespace.as_deref() == Some(ns)).cloned().collect();
            prop_assert_eq!(r.read_namespace(1, Some(ns)).unwrap(), expect);
        }
        prop_assert_eq!(&r.crds().unwrap(), &per_type[2]);
        let all: Vec<_> = r.iter().collect::<Result<_, _>>().unwrap();
        let expect: Vec<_> = per_type.iter().enumerate().flat_map(|(t, v)| v.iter().map(move |o| (t, o.clone()))).collect();
        prop_assert_eq!(all, expect);
    }
}

/// JSON for an object whose `metadata` holds `value` as given by `mode`:
/// 0 the same string, 1 another string, 2 nothing, 3 a number.
fn meta_value(
    meta: &mut serde_json::Map<String, serde_json::Value>,
    key: &str,
    value: &str,
    mode: u8,
) {
    match mode {
        0 => meta.insert(key.into(), value.into()),
        1 => meta.insert(key.into(), format!("{value}~").into()),
        2 => None,
        _ => meta.insert(key.into(), 5.into()),
    };
}

proptest! {
    #[test]
    fn snapshot_v2_round_trip_with_values_in_the_json(
        objs in proptest::collection::btree_map(
            (0usize..2, proptest::option::of("[a-c]{1,2}"), "[a-z0-9]{1,6}"),
            ("\\PC{0,6}", "[0-9]{0,4}", 0u8..4, 0u8..4, any::<bool>(), 0u8..4, 0u8..4),
            0..60,
        ),
        block_bytes in 32usize..2048,
    ) {
        let ts = [rtype("", "namespaces", "Namespace", false), rtype("", "pods", "Pod", true)];
        let header = SnapshotHeader {
            cluster_id: "c1".into(),
            seq: 7,
            time_ms: 0,
            types: ts.iter().map(|t| TypeEntry { rtype: t.clone(), list_rv: "9".into() }).collect(),
            crd_type: None,
        };
        let mut per_type: Vec<Vec<SnapshotObject>> = vec![Vec::new(); 2];
        for ((t, ns, name), (uid, rv, uid_mode, rv_mode, pretty, name_mode, ns_mode)) in objs {
            let namespace = if ts[t].namespaced { Some(ns.unwrap_or_else(|| "x".into())) } else { None };
            let mut meta = serde_json::Map::new();
            meta_value(&mut meta, "name", &name, name_mode);
            if let Some(ns) = &namespace {
                meta_value(&mut meta, "namespace", ns, ns_mode);
            } else if ns_mode == 0 {
                // A cluster-scoped object whose JSON claims a namespace.
                meta.insert("namespace".into(), "stray".into());
            }
            meta_value(&mut meta, "uid", &uid, uid_mode);
            meta_value(&mut meta, "resourceVersion", &rv, rv_mode);
            let v = serde_json::json!({"kind": "X", "spec": {"metadata": {"uid": "nested"}}, "metadata": meta});
            let object = if pretty { serde_json::to_vec_pretty(&v) } else { serde_json::to_vec(&v) }.unwrap();
            per_type[t].push(SnapshotObject { namespace, name, uid, resource_version: rv, object });
        }
        for v in &mut per_type {
            v.sort_by(|a, b| a.key().cmp(&b.key()));
            v.dedup_by(|a, b| a.key() == b.key());
        }
        let opts = WriteOptions { level: 3, block_bytes, dictionary: None };
        for version in [1, 2, 3] {
            let bytes = write_snapshot_version(&header, &per_type, &opts, version);
            let mut r = SnapshotReader::open(&bytes, None, Limits::default()).unwrap();
            prop_assert_eq!(r.version(), version);
            for (t, objs) in per_type.iter().enumerate() {
                prop_assert_eq!(&r.read_type(t).unwrap(), objs);
                for o in objs {
                    let got = r.get(t, o.namespace.as_deref(), &o.name).unwrap();
                    prop_assert_eq!(got.as_ref(), Some(o));
                }
            }
            let all: Vec<_> = r.iter().collect::<Result<_, _>>().unwrap();
            prop_assert_eq!(all.len(), per_type[0].len() + per_type[1].len());
        }
    }
}

#[test]
fn every_version_reads_back_the_same_and_each_is_smaller() {
    let (header, objects) = sample_snapshot(200);
    let v1 = write_snapshot_version(&header, &objects, &small_blocks(), 1);
    let v2 = write_snapshot_version(&header, &objects, &small_blocks(), 2);
    let v3 = write_snapshot_version(&header, &objects, &WriteOptions::default(), 3);
    let v2_big = write_snapshot_version(&header, &objects, &WriteOptions::default(), 2);
    assert!(v2.len() < v1.len(), "v2 {} vs v1 {}", v2.len(), v1.len());
    assert!(
        v3.len() < v2_big.len(),
        "v3 {} vs v2 {}",
        v3.len(),
        v2_big.len()
    );
    let read = |bytes: &[u8]| -> Vec<_> {
        let mut r = SnapshotReader::open(bytes, None, Limits::default()).unwrap();
        r.iter().collect::<Result<_, _>>().unwrap()
    };
    let a = read(&v1);
    assert_eq!(a, read(&v2));
    assert_eq!(a, read(&v3));
    assert_eq!(a.len(), 800);
    // The writer refuses versions it does not know.
    for v in [0, 4] {
        assert!(
            rewind_format::SnapshotWriter::with_version(
                Vec::new(),
                header.clone(),
                &small_blocks(),
                v
            )
            .is_err()
        );
    }
}

#[test]
fn dictionary_round_trip_and_small_blocks_shrink() {
    let events = sample_events(400);
    let samples: Vec<Vec<u8>> = events.iter().map(|e| encode_record(e).unwrap()).collect();
    let dict = rewind_format::codec::train_dictionary(&samples, 4096).unwrap();
    let plain = WriteOptions {
        level: 3,
        block_bytes: 256,
        dictionary: None,
    };
    let with_dict = WriteOptions {
        dictionary: Some(dict),
        ..plain.clone()
    };
    let a = encode_segment("local", &events, &plain).unwrap();
    let b = encode_segment("local", &events, &with_dict).unwrap();
    let mut rb = SegmentReader::open(&b, None, Limits::default()).unwrap();
    assert_eq!(rb.read_all().unwrap(), events);
    // The dictionary is stored once in the file; tiny blocks still gain from it.
    assert!(
        b.len() < a.len(),
        "dictionary {} vs plain {}",
        b.len(),
        a.len()
    );
}

#[test]
fn snapshot_writer_rejects_unsorted_and_misscoped() {
    let (header, objects) = sample_snapshot(3);
    let opts = WriteOptions::default();
    let mut w = rewind_format::SnapshotWriter::new(Vec::new(), header.clone(), &opts).unwrap();
    w.push(1, &objects[1][1]).unwrap();
    assert!(
        w.push(1, &objects[1][0]).is_err(),
        "out-of-order object accepted"
    );
    assert!(
        w.push(0, &objects[0][0]).is_err(),
        "type going backwards accepted"
    );
    assert!(
        w.push(3, &objects[1][2]).is_err(),
        "namespaced object in a cluster-scoped type"
    );
    let mut bad = header;
    bad.types.swap(0, 1);
    assert!(rewind_format::SnapshotWriter::new(Vec::new(), bad, &opts).is_err());
}

#[test]
fn segment_rejects_foreign_cluster_and_disorder() {
    let mut events = sample_events(5);
    let mut w = rewind_format::SegmentWriter::new("local", WriteOptions::default()).unwrap();
    w.push(&events[1]).unwrap();
    assert!(w.push(&events[0]).is_err());
    events[2].cluster_id = "other".into();
    assert!(w.push(&events[2]).is_err());
    let empty = rewind_format::SegmentWriter::new("local", WriteOptions::default()).unwrap();
    assert!(empty.finish().is_err());
}

#[test]
fn time_seek_starts_at_first_block_reaching_the_time() {
    let bytes = sample_segment();
    let r = SegmentReader::open(&bytes, None, Limits::default()).unwrap();
    assert!(r.blocks().len() > 5);
    let target = r.blocks()[3].min_time_ms;
    let i = r.block_for_time(target);
    assert_eq!(i, 3);
    assert!(r.blocks()[..i].iter().all(|b| b.max_time_ms < target));
}

#[test]
fn push_ref_writes_the_same_bytes_as_push() {
    let (header, objects) = sample_snapshot(20);
    let opts = small_blocks();
    let a = write_snapshot(&header, &objects, &opts);
    let mut w = rewind_format::SnapshotWriter::new(Vec::new(), header, &opts).unwrap();
    for (t, objs) in objects.iter().enumerate() {
        for o in objs {
            let r = rewind_format::ObjectRef {
                namespace: o.namespace.as_deref(),
                name: &o.name,
                uid: &o.uid,
                resource_version: &o.resource_version,
                object: &o.object,
            };
            w.push_ref(t, r).unwrap();
        }
    }
    assert_eq!(w.finish().unwrap(), a);
}

#[test]
fn journal_blocks_with_a_dictionary() {
    use rewind_format::{EventBlockDecoder, EventBlockEncoder};
    let events = sample_events(300);
    let samples: Vec<Vec<u8>> = events[..200]
        .iter()
        .map(|e| encode_record(e).unwrap())
        .collect();
    let dict = rewind_format::codec::train_dictionary(&samples, 4096).unwrap();
    let mut enc = EventBlockEncoder::with_dictionary(3, &dict).unwrap();
    let mut plain = EventBlockEncoder::new(3).unwrap();
    let mut dec = EventBlockDecoder::with_dictionary(Limits::default(), &dict).unwrap();
    let (mut with, mut without) = (0, 0);
    for chunk in events[200..].chunks(2) {
        let b = enc.encode(chunk).unwrap();
        with += b.len();
        without += plain.encode(chunk).unwrap().len();
        assert_eq!(dec.decode(&b).unwrap(), chunk);
        // Without the dictionary the block cannot be read, and says why.
        assert!(decode_block(&b, &Limits::default()).is_err());
    }
    assert!(with < without, "dictionary {with} vs plain {without}");
    // A different dictionary is rejected by zstd rather than producing garbage.
    let other = rewind_format::codec::train_dictionary(&samples[..100], 2048).unwrap();
    let mut wrong = EventBlockDecoder::with_dictionary(Limits::default(), &other).unwrap();
    let b = enc.encode(&events[200..204]).unwrap();
    assert!(wrong.decode(&b).is_err());
}
