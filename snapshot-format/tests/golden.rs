//! Golden files of format version 1: every later release must read them to
//! the same content. The expected content is built by the frozen functions
//! below; **do not change them, and never regenerate the files of a released
//! version**: add `golden/v2/` for a new version instead.
//!
//! The files were written once with `REWIND_BLESS_GOLDEN=1 cargo test -p
//! rewind-format --test golden`. The identity in `golden/v1/test-identity.txt`
//! is a throwaway key for these tests only.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss,
    reason = "fixtures are small"
)]

mod common;

use std::path::PathBuf;

use common::golden::{bless, golden, manifest_check};
use rewind_format::crypto::{self, Identity};
use rewind_format::segment::SegmentReader;
use rewind_format::snapshot::{SnapshotHeader, SnapshotObject, TypeEntry};
use rewind_format::{
    EventKind, EventRecord, Limits, ResourceType, SnapshotReader, SnapshotWriter, WriteOptions,
    decode_block, encode_block, encode_segment,
};

/// This version's directory under `tests/golden`.
const V: &str = "v1";

fn dir() -> PathBuf {
    common::golden::root().join(V)
}

/// Frozen: the events in `events.block`, `segment.rwf` and `segment-dict.rwf`.
fn golden_events() -> Vec<EventRecord> {
    let types = [
        ResourceType::new("", "v1", "namespaces", "Namespace", false),
        ResourceType::new("", "v1", "secrets", "Secret", true),
        ResourceType::new("management.cattle.io", "v3", "clusters", "Cluster", false),
    ];
    (0u64..48)
        .map(|i| {
            let t = types[(i % 3) as usize].clone();
            let namespace = t.namespaced.then(|| format!("cattle-{}", i % 4));
            let name = format!("obj-{:02}", i % 9);
            let kind = match i % 8 {
                3 => EventKind::Deleted,
                5 => EventKind::DeletedInferred { list_rv: format!("{}", 900 + i) },
                6 => EventKind::ResyncBegin { list_rv: (i % 16 == 6).then(|| "77".to_owned()) },
                7 => EventKind::ResyncEnd { list_rv: format!("{}", 1000 + i) },
                _ => EventKind::Applied,
            };
            let object = if kind.is_marker() {
                Vec::new()
            } else {
                format!(
                    "{{\"apiVersion\":\"v1\",\"kind\":\"{}\",\"metadata\":{{\"name\":\"{name}\",\"uid\":\"u-{i}\",\"resourceVersion\":\"{}\"}},\"data\":{{\"n\":{i}}}}}",
                    t.kind,
                    500 + i
                )
                .into_bytes()
            };
            EventRecord {
                seq: 1000 + i * 2,
                observed_at_ms: 1_750_000_000_000 + (i as i64) * 1500 - if i == 10 { 9000 } else { 0 },
                cluster_id: "golden".into(),
                rtype: t,
                namespace,
                name,
                uid: format!("u-{i}"),
                resource_version: format!("{}", 500 + i),
                kind,
                object,
            }
        })
        .collect()
}

/// Frozen: the content of `snapshot.rwf` and `snapshot-encrypted.rwf`.
fn golden_snapshot() -> (SnapshotHeader, Vec<Vec<SnapshotObject>>) {
    let types = [
        ResourceType::new("", "v1", "namespaces", "Namespace", false),
        ResourceType::new("", "v1", "secrets", "Secret", true),
        ResourceType::new(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            false,
        ),
        ResourceType::new("management.cattle.io", "v3", "clusters", "Cluster", false),
        ResourceType::new("management.cattle.io", "v3", "nodes", "Node", true),
    ];
    let header = SnapshotHeader {
        cluster_id: "golden".into(),
        seq: 123_456,
        time_ms: 1_750_000_999_000,
        types: types
            .iter()
            .enumerate()
            .map(|(i, t)| TypeEntry {
                rtype: t.clone(),
                list_rv: if i == 4 {
                    String::new()
                } else {
                    format!("{}", 7000 + i)
                },
            })
            .collect(),
        crd_type: Some(2),
    };
    let counts = [5usize, 17, 3, 4, 0];
    let objects = types
        .iter()
        .zip(counts)
        .map(|(t, n)| {
            let mut v: Vec<SnapshotObject> = (0..n)
                .map(|i| {
                    let namespace = t.namespaced.then(|| format!("ns-{}", i % 3));
                    let name = format!("{}-{i:03}", t.kind.to_lowercase());
                    SnapshotObject {
                        object: format!(
                            "{{\"apiVersion\":\"{}\",\"kind\":\"{}\",\"metadata\":{{\"name\":\"{name}\"}},\"spec\":{{\"i\":{i},\"pad\":\"{}\"}}}}",
                            t.version, t.kind, "x".repeat(i * 7)
                        )
                        .into_bytes(),
                        namespace,
                        uid: format!("uid-{}-{i}", t.resource),
                        resource_version: format!("{}", 100 + i),
                        name,
                    }
                })
                .collect();
            v.sort_by(|a, b| a.key().cmp(&b.key()));
            v
        })
        .collect();
    (header, objects)
}

fn small() -> WriteOptions {
    WriteOptions {
        level: 3,
        block_bytes: 400,
        dictionary: None,
    }
}

fn golden_snapshot_bytes() -> Vec<u8> {
    let (h, objs) = golden_snapshot();
    let mut w = SnapshotWriter::new(Vec::new(), h, &small()).unwrap();
    for (t, v) in objs.iter().enumerate() {
        for o in v {
            w.push(t, o).unwrap();
        }
    }
    w.finish().unwrap()
}

fn identity() -> Identity {
    let path = dir().join("test-identity.txt");
    if bless() && !path.exists() {
        use age::secrecy::ExposeSecret;
        let id = Identity::generate();
        let text = format!(
            "# TEST ONLY: throwaway key for rewind-format's golden files. Never use it for data.\n# public key: {}\n{}\n",
            id.to_public(),
            id.to_string().expose_secret()
        );
        std::fs::write(&path, text).unwrap();
    }
    crypto::parse_identity(&std::fs::read_to_string(dir().join("test-identity.txt")).unwrap())
        .unwrap()
}

#[test]
fn v1_event_block() {
    let bytes = golden(V, "events.block", || {
        encode_block(&golden_events(), 3).unwrap()
    });
    assert_eq!(
        decode_block(&bytes, &Limits::default()).unwrap(),
        golden_events()
    );
    assert_eq!(&bytes[..4], &[2, 1, 0, 0], "events block, zstd codec");
}

#[test]
fn v1_segment() {
    let bytes = golden(V, "segment.rwf", || {
        encode_segment("golden", &golden_events(), &small()).unwrap()
    });
    manifest_check(V, "segment.rwf", &bytes);
    let mut r = SegmentReader::open(&bytes, Some("segment.rwf"), Limits::default()).unwrap();
    let h = r.header().clone();
    assert_eq!((h.first_seq, h.last_seq, h.event_count), (1000, 1094, 48));
    assert_eq!(h.min_time_ms, 1_750_000_000_000);
    assert!(r.blocks().len() > 3);
    assert_eq!(r.read_all().unwrap(), golden_events());
}

#[test]
fn v1_segment_with_dictionary() {
    let bytes = golden(V, "segment-dict.rwf", || {
        let samples: Vec<Vec<u8>> = golden_events()
            .iter()
            .map(|e| rewind_format::encode_record(e).unwrap())
            .collect();
        let dict = rewind_format::codec::train_dictionary(&samples, 2048).unwrap();
        let opts = WriteOptions {
            dictionary: Some(dict),
            ..small()
        };
        encode_segment("golden", &golden_events(), &opts).unwrap()
    });
    manifest_check(V, "segment-dict.rwf", &bytes);
    let mut r = SegmentReader::open(&bytes, None, Limits::default()).unwrap();
    assert_eq!(r.read_all().unwrap(), golden_events());
}

#[test]
fn v1_snapshot() {
    let bytes = golden(V, "snapshot.rwf", golden_snapshot_bytes);
    manifest_check(V, "snapshot.rwf", &bytes);
    let (h, objs) = golden_snapshot();
    let mut r = SnapshotReader::open(&bytes, Some("snapshot.rwf"), Limits::default()).unwrap();
    assert_eq!(r.header(), &h);
    for (t, v) in objs.iter().enumerate() {
        assert_eq!(&r.read_type(t).unwrap(), v);
    }
    assert_eq!(r.crds().unwrap(), objs[2]);
    assert_eq!(
        r.get(1, Some("ns-1"), "secret-004").unwrap().unwrap().uid,
        "uid-secrets-4"
    );
}

#[test]
fn v1_encrypted_snapshot() {
    let bytes = golden(V, "snapshot-encrypted.rwf", || {
        crypto::encrypt(&golden_snapshot_bytes(), &[identity().to_public()]).unwrap()
    });
    manifest_check(V, "snapshot-encrypted.rwf", &bytes);
    assert!(crypto::is_encrypted(&bytes).unwrap());
    let plain = crypto::open(&bytes, &[identity()], &Limits::default()).unwrap();
    let (h, objs) = golden_snapshot();
    let mut r = SnapshotReader::open(&plain, None, Limits::default()).unwrap();
    assert_eq!(r.header(), &h);
    let all: Vec<_> = r.iter().map(|x| x.unwrap().1).collect();
    assert_eq!(all, objs.concat());
}
