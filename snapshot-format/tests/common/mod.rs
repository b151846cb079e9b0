//! Shared fixtures and proptest strategies for rewind-format's tests.
#![allow(dead_code)] // each test binary uses a different subset

pub mod golden;

use proptest::prelude::*;
use rewind_format::snapshot::{SnapshotHeader, SnapshotObject, TypeEntry};
use rewind_format::{
    EventKind, EventRecord, ResourceType, SnapshotWriter, WriteOptions, encode_segment,
};

pub fn rtype(group: &str, resource: &str, kind: &str, namespaced: bool) -> ResourceType {
    ResourceType {
        group: group.into(),
        version: if group.is_empty() {
            "v1".into()
        } else {
            "v3".into()
        },
        resource: resource.into(),
        kind: kind.into(),
        namespaced,
    }
}

/// Four types in (group, resource) order, one of them the CRD type.
pub fn types() -> Vec<ResourceType> {
    vec![
        rtype("", "namespaces", "Namespace", false),
        rtype("", "secrets", "Secret", true),
        rtype(
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            false,
        ),
        rtype("management.cattle.io", "clusters", "Cluster", false),
    ]
}

pub fn object_json(kind: &str, ns: Option<&str>, name: &str, rv: u64) -> Vec<u8> {
    let ns = ns
        .map(|n| format!(",\"namespace\":\"{n}\""))
        .unwrap_or_default();
    format!(
        "{{\"apiVersion\":\"v1\",\"kind\":\"{kind}\",\"metadata\":{{\"name\":\"{name}\"{ns},\"uid\":\"uid-{name}\",\"resourceVersion\":\"{rv}\",\"labels\":{{\"app\":\"rewind\"}}}},\"spec\":{{\"replicas\":{rv}}}}}"
    )
    .into_bytes()
}

/// A deterministic event stream of `n` events touching the fixture types.
pub fn sample_events(n: u64) -> Vec<EventRecord> {
    let ts = types();
    (1..=n)
        .map(|seq| {
            let t = ts[(seq % ts.len() as u64) as usize].clone();
            let ns = t.namespaced.then(|| format!("ns-{}", seq % 3));
            let name = format!("obj-{}", seq % 7);
            let kind = match seq % 11 {
                5 => EventKind::Deleted,
                7 => EventKind::DeletedInferred {
                    list_rv: format!("{}", seq * 10),
                },
                9 => EventKind::ResyncBegin { list_rv: None },
                10 => EventKind::ResyncEnd {
                    list_rv: format!("{}", seq * 10),
                },
                _ => EventKind::Applied,
            };
            let marker = kind.is_marker();
            EventRecord {
                seq,
                observed_at_ms: 1_700_000_000_000 + (seq as i64) * 250,
                cluster_id: "local".into(),
                namespace: if marker { None } else { ns.clone() },
                name: if marker { String::new() } else { name.clone() },
                uid: if marker {
                    String::new()
                } else {
                    format!("uid-{name}")
                },
                resource_version: if marker {
                    String::new()
                } else {
                    format!("{}", seq * 10)
                },
                object: if marker {
                    Vec::new()
                } else {
                    object_json(&t.kind, ns.as_deref(), &name, seq * 10)
                },
                rtype: t,
                kind,
            }
        })
        .collect()
}

/// A deterministic snapshot's header and sorted objects per type.
pub fn sample_snapshot(per_type: usize) -> (SnapshotHeader, Vec<Vec<SnapshotObject>>) {
    let ts = types();
    let header = SnapshotHeader {
        cluster_id: "local".into(),
        seq: 4242,
        time_ms: 1_700_000_123_456,
        types: ts
            .iter()
            .enumerate()
            .map(|(i, t)| TypeEntry {
                rtype: t.clone(),
                list_rv: format!("{}", 1000 + i),
            })
            .collect(),
        crd_type: Some(2),
    };
    let objects = ts
        .iter()
        .map(|t| {
            let mut v: Vec<SnapshotObject> = (0..per_type)
                .map(|i| {
                    let ns = t.namespaced.then(|| format!("ns-{}", i % 4));
                    let name = format!("{}-{i:05}", t.resource);
                    SnapshotObject {
                        object: object_json(&t.kind, ns.as_deref(), &name, i as u64),
                        namespace: ns,
                        uid: format!("uid-{name}"),
                        resource_version: format!("{i}"),
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

pub fn write_snapshot(
    header: &SnapshotHeader,
    objects: &[Vec<SnapshotObject>],
    opts: &WriteOptions,
) -> Vec<u8> {
    write_snapshot_version(
        header,
        objects,
        opts,
        rewind_format::header::SNAPSHOT_VERSION,
    )
}

/// Like [`write_snapshot`], in snapshot format `version`.
pub fn write_snapshot_version(
    header: &SnapshotHeader,
    objects: &[Vec<SnapshotObject>],
    opts: &WriteOptions,
    version: u16,
) -> Vec<u8> {
    let mut w = SnapshotWriter::with_version(Vec::new(), header.clone(), opts, version).unwrap();
    for (t, objs) in objects.iter().enumerate() {
        for o in objs {
            w.push(t, o).unwrap();
        }
    }
    w.finish().unwrap()
}

/// Small blocks so that small fixtures still have many blocks.
pub fn small_blocks() -> WriteOptions {
    WriteOptions {
        level: 3,
        block_bytes: 512,
        dictionary: None,
    }
}

pub fn sample_segment() -> Vec<u8> {
    encode_segment("local", &sample_events(60), &small_blocks()).unwrap()
}

// ---- proptest strategies ----

pub fn arb_rtype() -> impl Strategy<Value = ResourceType> {
    (
        "[a-z.]{0,12}",
        "v[0-9]",
        "[a-z]{1,10}",
        "[A-Z][a-z]{0,8}",
        any::<bool>(),
    )
        .prop_map(
            |(group, version, resource, kind, namespaced)| ResourceType {
                group,
                version,
                resource,
                kind,
                namespaced,
            },
        )
}

pub fn arb_kind() -> impl Strategy<Value = EventKind> {
    prop_oneof![
        Just(EventKind::Applied),
        Just(EventKind::Deleted),
        "[0-9]{1,8}".prop_map(|list_rv| EventKind::DeletedInferred { list_rv }),
        proptest::option::of("[0-9]{1,8}").prop_map(|list_rv| EventKind::ResyncBegin { list_rv }),
        "[0-9]{1,8}".prop_map(|list_rv| EventKind::ResyncEnd { list_rv }),
    ]
}

pub fn arb_record() -> impl Strategy<Value = EventRecord> {
    (
        any::<u64>(),
        any::<i64>(),
        "[a-z0-9-]{0,10}",
        arb_rtype(),
        proptest::option::of("[a-z0-9-]{1,12}"),
        "\\PC{0,20}",
        "[a-f0-9-]{0,36}",
        "[0-9]{0,10}",
        arb_kind(),
        proptest::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(
            |(
                seq,
                observed_at_ms,
                cluster_id,
                rtype,
                namespace,
                name,
                uid,
                resource_version,
                kind,
                object,
            )| {
                EventRecord {
                    seq,
                    observed_at_ms,
                    cluster_id,
                    rtype,
                    namespace,
                    name,
                    uid,
                    resource_version,
                    kind,
                    object,
                }
            },
        )
}

/// Records of one cluster with strictly increasing seq.
pub fn arb_run(max: usize) -> impl Strategy<Value = Vec<EventRecord>> {
    (
        1u64..1000,
        proptest::collection::vec((1u64..5, arb_record()), 1..max),
    )
        .prop_map(|(start, v)| {
            let mut seq = start;
            v.into_iter()
                .map(|(gap, mut r)| {
                    seq += gap;
                    r.seq = seq;
                    r.cluster_id = "c1".into();
                    r
                })
                .collect()
        })
}
