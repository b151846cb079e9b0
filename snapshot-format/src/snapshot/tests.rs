//! A forged version-2 file whose record leaves a value to JSON that lacks it.

use super::record::encode_raw_for_tests;
use super::{SnapshotBlockInfo, SnapshotHeader, SnapshotIndex, SnapshotReader, TypeEntry};
use crate::codec::{Limits, encode_into};
use crate::container::ContainerWriter;
use crate::error::ErrorKind;
use crate::event::ResourceType;
use crate::frame::BlockType;
use crate::header::FileKind;

fn forged(version: u16, uid: Option<&str>, json: &str) -> Vec<u8> {
    let header = SnapshotHeader {
        cluster_id: "c".into(),
        seq: 1,
        time_ms: 0,
        types: vec![TypeEntry {
            rtype: ResourceType {
                group: String::new(),
                version: "v1".into(),
                resource: "secrets".into(),
                kind: "Secret".into(),
                namespaced: true,
            },
            list_rv: String::new(),
        }],
        crd_type: None,
    };
    let mut hbytes = Vec::new();
    encode_into(&header, &mut hbytes, "test").unwrap();
    let mut w =
        ContainerWriter::new(Vec::new(), FileKind::Snapshot, version, &hbytes, 3, None).unwrap();
    let mut payload = Vec::new();
    encode_raw_for_tests(
        Some("ns"),
        Some("a"),
        uid,
        Some("7"),
        json.as_bytes(),
        &mut payload,
    );
    let pos = w.write_data(BlockType::Objects, 1, &payload).unwrap();
    let index = SnapshotIndex {
        blocks: vec![SnapshotBlockInfo {
            offset: pos.offset,
            len: pos.len,
            type_index: 0,
            count: 1,
            first_namespace: Some("ns".into()),
            first_name: "a".into(),
            last_namespace: Some("ns".into()),
            last_name: "a".into(),
        }],
        object_counts: vec![1],
    };
    let mut ibytes = Vec::new();
    encode_into(&index, &mut ibytes, "test").unwrap();
    w.finish(&ibytes).unwrap()
}

#[test]
fn a_left_out_value_missing_from_the_json_names_file_block_and_object() {
    let bytes = forged(2, None, r#"{"metadata":{"name":"a"}}"#);
    let mut r = SnapshotReader::open(&bytes, Some("snapshot-forged"), Limits::default()).unwrap();
    let err = r.read_block(0).unwrap_err();
    assert_eq!(err.file.as_deref(), Some("snapshot-forged"));
    assert_eq!(err.block, Some(1), "header is block 0");
    assert!(
        matches!(&err.kind, ErrorKind::ElidedValueMissing { object, field: "uid" } if object == "ns/a"),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "snapshot-forged block 1: object ns/a: uid is left to the JSON, which has no single metadata.uid string"
    );
    // Every access path reports it; none panics or returns the object.
    assert!(r.get(0, Some("ns"), "a").is_err());
    assert!(r.iter().any(|x| x.is_err()));
    assert!(r.verify().is_err());
    assert!(crate::verify::verify_file(&bytes, None, &[], &Limits::default()).is_err());
}

#[test]
fn the_same_record_reads_when_the_json_holds_the_value() {
    let bytes = forged(2, None, r#"{"metadata":{"name":"a","uid":"u-9"}}"#);
    let mut r = SnapshotReader::open(&bytes, None, Limits::default()).unwrap();
    let o = r.get(0, Some("ns"), "a").unwrap().unwrap();
    assert_eq!((o.uid.as_str(), o.resource_version.as_str()), ("u-9", "7"));
}

#[test]
fn version_1_records_are_not_read_as_version_2() {
    // A version-2 record in a file that says version 1: the Option tags make
    // it fail to decode or mismatch the index, never silently succeed as v2.
    let bytes = forged(1, Some("u"), r#"{"metadata":{"uid":"u"}}"#);
    let mut r = SnapshotReader::open(&bytes, None, Limits::default()).unwrap();
    assert_eq!(r.version(), 1);
    let got = r.read_block(0);
    assert!(
        got.as_ref().map_or(true, |objs| objs[0].uid != "u"),
        "{got:?}"
    );
}
