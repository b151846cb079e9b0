//! Golden files of snapshot format version 2: every later release must read
//! them to the same content. The expected content is built by the frozen
//! functions below; **do not change them, and never regenerate the files**:
//! add `golden/v3/` for a new version instead.
//!
//! Version 2 changed only snapshot records (segments and event blocks are
//! still version 1, whose golden files are in `golden/v1/`). The objects
//! cover every case of the record rule: values left to the JSON, values the
//! JSON disagrees with or lacks (name, namespace, uid, resourceVersion),
//! empty values, escaped JSON strings, and JSON the rule refuses (duplicate
//! keys, a number, invalid JSON).
//!
//! The files were written once with `REWIND_BLESS_GOLDEN=1 cargo test -p
//! rewind-format --test golden_v2`. The encrypted file uses the throwaway
//! identity of `golden/v1/test-identity.txt`.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss,
    reason = "fixtures are small"
)]

mod common;

use common::golden::{golden, manifest_check, test_identity};
use rewind_format::crypto;
use rewind_format::snapshot::{SnapshotHeader, SnapshotObject, TypeEntry};
use rewind_format::{Limits, ResourceType, SnapshotReader, SnapshotWriter, WriteOptions};

/// This version's directory under `tests/golden`.
const V: &str = "v2";

/// How a record stores (namespace, name, uid, resourceVersion): `true` =
/// left to the JSON. A cluster-scoped object's namespace is always None.
type Elided = (bool, bool, bool, bool);

/// Frozen: the odd objects (namespace `odd`), each with how version 2 stores
/// its values. (name, uid, resourceVersion, JSON, elided)
fn odd_secrets() -> Vec<(&'static str, &'static str, &'static str, String, Elided)> {
    vec![
        (
            "disagrees",
            "uid-a",
            "11",
            r#"{"kind":"Secret","metadata":{"name":"disagrees","uid":"uid-other","resourceVersion":"11"}}"#.into(),
            (false, true, false, true),
        ),
        (
            "empty-values",
            "",
            "",
            r#"{"kind":"Secret","metadata":{"name":"empty-values"}}"#.into(),
            (false, true, false, false),
        ),
        (
            "empty-in-json",
            "",
            "",
            r#"{"kind":"Secret","metadata":{"name":"empty-in-json","uid":"","resourceVersion":""}}"#.into(),
            (false, true, true, true),
        ),
        (
            "escaped",
            "uid-é-\"q\"-😀",
            "12",
            r#"{"kind":"Secret","metadata":{"name":"esc\u0061ped","namespace":"o\u0064d","uid":"uid-\u00e9-\"q\"-\ud83d\ude00","resourceVersion":"1\u0032"}}"#.into(),
            (true, true, true, true),
        ),
        (
            "duplicate-metadata",
            "uid-d",
            "13",
            r#"{"metadata":{"name":"duplicate-metadata","namespace":"odd","uid":"uid-d","resourceVersion":"13"},"metadata":{}}"#.into(),
            (false, false, false, false),
        ),
        (
            "duplicate-uid",
            "uid-e",
            "14",
            r#"{"metadata":{"name":"duplicate-uid","namespace":"odd","uid":"uid-e","uid":"uid-e","resourceVersion":"14"}}"#.into(),
            (true, true, false, true),
        ),
        (
            "number-rv",
            "uid-f",
            "15",
            r#"{"metadata":{"uid":"uid-f","resourceVersion":15}}"#.into(),
            (false, false, true, false),
        ),
        (
            "not-json",
            "uid-g",
            "16",
            r#"{"metadata":{"name":"not-json","namespace":"odd","uid":"uid-g","resourceVersion":"16"}"#.into(),
            (false, false, false, false),
        ),
        (
            "nested-only",
            "uid-h",
            "17",
            r#"{"spec":{"metadata":{"namespace":"odd","uid":"uid-h","resourceVersion":"17"}},"metadata":{"name":"nested-only"}}"#.into(),
            (false, true, false, false),
        ),
        (
            "name-differs",
            "uid-i",
            "18",
            r#"{"metadata":{"name":"other-name","namespace":"odd","uid":"uid-i","resourceVersion":"18"}}"#.into(),
            (true, false, true, true),
        ),
        (
            "namespace-differs",
            "uid-j",
            "19",
            r#"{"metadata":{"name":"namespace-differs","namespace":"elsewhere","uid":"uid-j","resourceVersion":"19"}}"#.into(),
            (false, true, true, true),
        ),
    ]
}

/// Frozen: the content of `snapshot.rwf` and `snapshot-encrypted.rwf`, with
/// the expected storage of every object's values, parallel to the objects.
fn golden_snapshot() -> (SnapshotHeader, Vec<Vec<(SnapshotObject, Elided)>>) {
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
    ];
    let header = SnapshotHeader {
        cluster_id: "golden-v2".into(),
        seq: 654_321,
        time_ms: 1_790_000_999_000,
        types: types
            .iter()
            .enumerate()
            .map(|(i, t)| TypeEntry {
                rtype: t.clone(),
                list_rv: format!("{}", 9000 + i),
            })
            .collect(),
        crd_type: Some(2),
    };
    let counts = [6usize, 12, 2, 0];
    let mut objects: Vec<Vec<(SnapshotObject, Elided)>> = types
        .iter()
        .zip(counts)
        .map(|(t, n)| {
            (0..n)
                .map(|i| {
                    let namespace = t.namespaced.then(|| format!("ns-{}", i % 3));
                    let name = format!("{}-{i:03}", t.kind.to_lowercase());
                    let uid = format!("0b6c{i:04x}-{}-4d5e", t.resource.len());
                    let rv = format!("{}", 300 + i * 7);
                    let ns_field = namespace
                        .as_ref()
                        .map(|n| format!(r#","namespace":"{n}""#))
                        .unwrap_or_default();
                    let object = format!(
                        r#"{{"apiVersion":"{}","kind":"{}","metadata":{{"name":"{name}"{ns_field},"uid":"{uid}","resourceVersion":"{rv}","labels":{{"i":"{i}"}}}},"spec":{{"pad":"{}"}}}}"#,
                        t.version,
                        t.kind,
                        "y".repeat(i * 11)
                    );
                    let o = SnapshotObject {
                        namespace,
                        name,
                        uid,
                        resource_version: rv,
                        object: object.into_bytes(),
                    };
                    (o, (true, true, true, true))
                })
                .collect()
        })
        .collect();
    for (name, uid, rv, json, elided) in odd_secrets() {
        objects[1].push((
            SnapshotObject {
                namespace: Some("odd".into()),
                name: name.into(),
                uid: uid.into(),
                resource_version: rv.into(),
                object: json.into_bytes(),
            },
            elided,
        ));
    }
    for v in &mut objects {
        v.sort_by(|a, b| a.0.key().cmp(&b.0.key()));
    }
    (header, objects)
}

fn objects_only(objs: &[Vec<(SnapshotObject, Elided)>]) -> Vec<Vec<SnapshotObject>> {
    objs.iter()
        .map(|v| v.iter().map(|(o, _)| o.clone()).collect())
        .collect()
}

fn small() -> WriteOptions {
    WriteOptions {
        level: 3,
        block_bytes: 600,
        dictionary: None,
    }
}

fn golden_snapshot_bytes() -> Vec<u8> {
    let (h, objs) = golden_snapshot();
    let mut w = SnapshotWriter::with_version(Vec::new(), h, &small(), 2).unwrap();
    for (t, v) in objs.iter().enumerate() {
        for (o, _) in v {
            w.push(t, o).unwrap();
        }
    }
    w.finish().unwrap()
}

/// The records of every object block, decoded as `docs/FORMAT.md` section
/// 8.2 describes version 2, without the crate's record code: block framing
/// (section 3.3), zstd, then bincode `(Option<String>, Option<String>,
/// Option<String>, Option<String>, Vec<u8>)` records.
type RawRecord = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Vec<u8>,
);

fn raw_records(bytes: &[u8], r: &SnapshotReader<'_>) -> Vec<Vec<RawRecord>> {
    let mut per_type = vec![Vec::new(); r.header().types.len()];
    for b in &r.index().blocks {
        let block = &bytes[b.offset as usize..(b.offset + b.len) as usize];
        assert_eq!(block[0], 3, "object block");
        let stored = u32::from_le_bytes(block[8..12].try_into().unwrap()) as usize;
        let raw_len = u32::from_le_bytes(block[12..16].try_into().unwrap()) as usize;
        let payload = &block[20..20 + stored];
        let plain = match block[1] {
            0 => payload.to_vec(),
            1 => zstd::bulk::decompress(payload, raw_len).unwrap(),
            c => panic!("codec {c}"),
        };
        let mut rest = &plain[..];
        for _ in 0..b.count {
            let (rec, used): (RawRecord, usize) =
                bincode::decode_from_slice(rest, rewind_format::codec::BINCODE).unwrap();
            rest = &rest[used..];
            per_type[b.type_index as usize].push(rec);
        }
        assert!(rest.is_empty());
    }
    per_type
}

fn check_content(bytes: &[u8], name: Option<&str>) {
    let (h, objs) = golden_snapshot();
    let expected = objects_only(&objs);
    let mut r = SnapshotReader::open(bytes, name, Limits::default()).unwrap();
    assert_eq!(r.version(), 2);
    assert_eq!(r.header(), &h);
    for (t, v) in expected.iter().enumerate() {
        assert_eq!(&r.read_type(t).unwrap(), v);
    }
    assert_eq!(r.crds().unwrap(), expected[2]);
    let all: Vec<_> = r.iter().map(|x| x.unwrap().1).collect();
    assert_eq!(all, expected.concat());
    let esc = r.get(1, Some("odd"), "escaped").unwrap().unwrap();
    assert_eq!(
        (esc.uid.as_str(), esc.resource_version.as_str()),
        ("uid-é-\"q\"-😀", "12")
    );
    assert_eq!(r.verify().unwrap(), expected.concat().len() as u64);
}

#[test]
fn v2_snapshot() {
    let bytes = golden(V, "snapshot.rwf", golden_snapshot_bytes);
    manifest_check(V, "snapshot.rwf", &bytes);
    assert_eq!(&bytes[8..11], &[2, 0, 2], "version 2, kind snapshot");
    check_content(&bytes, Some("snapshot.rwf"));
}

#[test]
fn v2_records_leave_out_exactly_the_values_the_json_holds() {
    let bytes = golden(V, "snapshot.rwf", golden_snapshot_bytes);
    let r = SnapshotReader::open(&bytes, None, Limits::default()).unwrap();
    let (_, objs) = golden_snapshot();
    let raw = raw_records(&bytes, &r);
    let mut left_out = 0;
    for (t, v) in objs.iter().enumerate() {
        assert_eq!(raw[t].len(), v.len());
        for ((o, (ns_elided, name_elided, uid_elided, rv_elided)), rec) in v.iter().zip(&raw[t]) {
            let expect = |elided: bool, value: &str| (!elided).then(|| value.to_owned());
            let ns = o.namespace.as_deref().and_then(|ns| expect(*ns_elided, ns));
            assert_eq!(rec.0, ns, "{} namespace", o.name);
            assert_eq!(rec.1, expect(*name_elided, &o.name), "{} name", o.name);
            assert_eq!(rec.2, expect(*uid_elided, &o.uid), "{} uid", o.name);
            assert_eq!(
                rec.3,
                expect(*rv_elided, &o.resource_version),
                "{} resourceVersion",
                o.name
            );
            assert_eq!(rec.4, o.object);
            left_out += [ns_elided, name_elided, uid_elided, rv_elided]
                .iter()
                .filter(|e| ***e)
                .count();
        }
    }
    assert!(left_out > 30, "the file must exercise the fill-in");
}

#[test]
fn v2_encrypted_snapshot() {
    let bytes = golden(V, "snapshot-encrypted.rwf", || {
        crypto::encrypt(&golden_snapshot_bytes(), &[test_identity().to_public()]).unwrap()
    });
    manifest_check(V, "snapshot-encrypted.rwf", &bytes);
    assert!(crypto::is_encrypted(&bytes).unwrap());
    assert_eq!(
        &bytes[8..11],
        &[2, 0, 2],
        "outer preamble: version 2, snapshot"
    );
    let plain = crypto::open(&bytes, &[test_identity()], &Limits::default()).unwrap();
    check_content(&plain, None);
}

#[test]
fn the_writer_still_makes_the_same_records() {
    // The same records as the golden file (the compressed bytes may differ
    // with another zstd): eliding differently within version 2 would break
    // "equal states give equal bytes" (FORMAT.md section 10).
    let golden_bytes = golden(V, "snapshot.rwf", golden_snapshot_bytes);
    let fresh = golden_snapshot_bytes();
    let a = SnapshotReader::open(&golden_bytes, None, Limits::default()).unwrap();
    let b = SnapshotReader::open(&fresh, None, Limits::default()).unwrap();
    assert_eq!(raw_records(&golden_bytes, &a), raw_records(&fresh, &b));
}
