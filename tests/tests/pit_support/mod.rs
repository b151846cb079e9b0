//! Shared by the `pit_*` and `verify_*` tests: a replayable event list, a
//! plain BTreeMap model folded from it, and a store built from it with the
//! format crate's writers and the store layer (what rewindd ships).
#![allow(
    dead_code,
    reason = "shared by several test binaries, each using part of it"
)]

use std::collections::BTreeMap;
use std::path::Path;

use rewind_format::crypto::Recipient;
use rewind_format::{EventKind, EventRecord, ResourceType, State, WriteOptions};
use rewind_history::store::{SegmentMeta, SnapshotMeta, Store, StoreConfig};
use rewind_tests::fixtures::Rng;
use serde_json::json;

pub const CLUSTER: &str = "pit-test";
pub const T0: i64 = 1_790_000_000_000;

pub fn types() -> Vec<ResourceType> {
    let t = |g: &str, v: &str, r: &str, k: &str, ns: bool| ResourceType {
        group: g.into(),
        version: v.into(),
        resource: r.into(),
        kind: k.into(),
        namespaced: ns,
    };
    vec![
        t("", "v1", "configmaps", "ConfigMap", true),
        t("", "v1", "namespaces", "Namespace", false),
        t("management.cattle.io", "v3", "clusters", "Cluster", false),
        t("fleet.cattle.io", "v1alpha1", "bundles", "Bundle", true),
    ]
}

pub const MANAGERS: &[&str] = &["kubectl", "rancher", "fleet-agent", "helm"];

/// The JSON an API server would return, with managedFields whose newest
/// entry is `manager`.
pub fn object(
    t: &ResourceType,
    ns: Option<&str>,
    name: &str,
    uid: &str,
    rv: u64,
    manager: &str,
    n: u64,
) -> Vec<u8> {
    let mut meta = json!({
        "name": name, "uid": uid, "resourceVersion": rv.to_string(),
        "managedFields": [
            {"manager": "old-manager", "operation": "Update", "time": "2026-01-01T00:00:00Z"},
            {"manager": manager, "operation": "Apply", "time": format!("2026-02-01T00:00:{:02}Z", n % 60)},
        ],
        "labels": {"gen": (n % 7).to_string()},
    });
    if let Some(ns) = ns {
        meta["namespace"] = json!(ns);
    }
    let api_version = if t.group.is_empty() {
        t.version.clone()
    } else {
        format!("{}/{}", t.group, t.version)
    };
    serde_json::to_vec(&json!({
        "apiVersion": api_version, "kind": t.kind, "metadata": meta,
        "spec": {"n": n, "payload": "x".repeat(usize::try_from(n % 50).unwrap())},
    }))
    .unwrap()
}

/// A replayable history: `n` events from seq 1, times non-decreasing, over a
/// small key space so objects are updated, deleted (with the right, a stale
/// or no uid), recreated with new uids, and relisted.
pub fn events(seed: u64, n: u64) -> Vec<EventRecord> {
    let mut rng = Rng::new(seed);
    let types = types();
    let mut uids: BTreeMap<(usize, Option<String>, String), String> = BTreeMap::new();
    let mut time = T0;
    let mut out = Vec::new();
    for seq in 1..=n {
        time += i64::try_from(rng.below(3)).unwrap() * 500;
        let ti = usize::try_from(rng.below(types.len() as u64)).unwrap();
        let t = &types[ti];
        let ns = t.namespaced.then(|| format!("ns-{}", rng.below(3)));
        let name = format!("obj-{}", rng.below(12));
        let key = (ti, ns.clone(), name.clone());
        let roll = rng.below(100);
        let cur_uid = uids.get(&key).cloned();
        let (kind, uid) = match roll {
            0..=64 => {
                let uid = match &cur_uid {
                    Some(u) if rng.below(10) > 0 => u.clone(),
                    _ => rng.uuid(),
                };
                uids.insert(key.clone(), uid.clone());
                (EventKind::Applied, uid)
            }
            65..=76 => (EventKind::Deleted, cur_uid.clone().unwrap_or_default()),
            77..=81 => (EventKind::Deleted, rng.uuid()), // stale: about an older object
            82..=84 => (EventKind::Deleted, String::new()),
            85..=91 => (
                EventKind::DeletedInferred {
                    list_rv: seq.to_string(),
                },
                cur_uid.clone().unwrap_or_default(),
            ),
            92..=95 => (
                EventKind::ResyncBegin {
                    list_rv: Some(seq.to_string()),
                },
                String::new(),
            ),
            _ => (
                EventKind::ResyncEnd {
                    list_rv: format!("list-{seq}"),
                },
                String::new(),
            ),
        };
        let marker = matches!(
            kind,
            EventKind::ResyncBegin { .. } | EventKind::ResyncEnd { .. }
        );
        let manager = MANAGERS[usize::try_from(rng.below(MANAGERS.len() as u64)).unwrap()];
        out.push(EventRecord {
            seq,
            observed_at_ms: time,
            cluster_id: CLUSTER.into(),
            rtype: t.clone(),
            namespace: if marker { None } else { ns.clone() },
            name: if marker { String::new() } else { name.clone() },
            uid: uid.clone(),
            resource_version: if marker {
                String::new()
            } else {
                seq.to_string()
            },
            kind,
            object: if marker {
                Vec::new()
            } else {
                object(t, ns.as_deref(), &name, &uid, seq, manager, seq)
            },
        });
    }
    out
}

/// The model's key: (group, resource, namespace, name).
pub type Key = (String, String, Option<String>, String);
/// The model's value: (uid, resourceVersion, JSON).
pub type Val = (String, String, Vec<u8>);

/// The plain model: the live objects after the events accepted by `keep`,
/// in order, stopping at the first one refused.
pub fn model(events: &[EventRecord], keep: impl Fn(&EventRecord) -> bool) -> BTreeMap<Key, Val> {
    let mut m = BTreeMap::new();
    for e in events {
        if !keep(e) {
            break;
        }
        let k = (
            e.rtype.group.clone(),
            e.rtype.resource.clone(),
            e.namespace.clone(),
            e.name.clone(),
        );
        match e.kind {
            EventKind::Applied => {
                m.insert(
                    k,
                    (e.uid.clone(), e.resource_version.clone(), e.object.clone()),
                );
            }
            EventKind::Deleted | EventKind::DeletedInferred { .. } => {
                let same = m
                    .get(&k)
                    .is_some_and(|(u, _, _): &Val| u == &e.uid || u.is_empty() || e.uid.is_empty());
                if same {
                    m.remove(&k);
                }
            }
            EventKind::ResyncBegin { .. } | EventKind::ResyncEnd { .. } => {}
        }
    }
    m
}

/// A folded state as the model's map.
pub fn as_model(s: &State) -> BTreeMap<Key, Val> {
    s.objects
        .iter()
        .map(|(k, o)| {
            (
                (
                    k.group.clone(),
                    k.resource.clone(),
                    k.namespace.clone(),
                    k.name.clone(),
                ),
                (o.uid.clone(), o.resource_version.clone(), o.object.clone()),
            )
        })
        .collect()
}

/// How to cut the history into files.
pub struct Layout {
    /// Segments as (first_seq, last_seq), inclusive.
    pub segments: Vec<(u64, u64)>,
    /// Snapshots after these seqs.
    pub snapshots: Vec<u64>,
    /// Encrypt every file to this recipient.
    pub recipient: Option<Recipient>,
}

/// Random segment cuts over `1..=n`, each starting right after the
/// previous one (a store whose segments overlap is refused).
pub fn random_segments(seed: u64, n: u64) -> Vec<(u64, u64)> {
    let mut rng = Rng::new(seed ^ 0x5e9);
    let mut out = Vec::new();
    let mut next = 1;
    while next <= n {
        let first = next;
        let last = (first + rng.between(1, 250)).min(n).max(next);
        out.push((first, last));
        next = last + 1;
    }
    out
}

pub fn small_blocks() -> WriteOptions {
    // Small blocks, so files have many and the workers split them.
    WriteOptions {
        level: 1,
        block_bytes: 4096,
        ..WriteOptions::default()
    }
}

/// Writes the history into a local store at `dir`, like rewindd ships it:
/// segments (sealed runs of events) and snapshots (the fold up to a seq).
pub async fn build_store(dir: &Path, events: &[EventRecord], layout: &Layout) -> Store {
    let store = Store::open(&StoreConfig::Local {
        path: dir.to_owned(),
    })
    .await
    .unwrap();
    let seal = |bytes: Vec<u8>| match &layout.recipient {
        Some(r) => rewind_format::crypto::encrypt(&bytes, std::slice::from_ref(r)).unwrap(),
        None => bytes,
    };
    for &(first, last) in &layout.segments {
        let evs: Vec<EventRecord> = events
            .iter()
            .filter(|e| (first..=last).contains(&e.seq))
            .cloned()
            .collect();
        let bytes = rewind_format::encode_segment(CLUSTER, &evs, &small_blocks()).unwrap();
        let meta = SegmentMeta {
            first_seq: first,
            last_seq: last,
            first_time_ms: evs.first().unwrap().observed_at_ms,
            last_time_ms: evs.last().unwrap().observed_at_ms,
            events: evs.len() as u64,
            encrypted: layout.recipient.is_some(),
            resource_set: None,
        };
        store.put_segment(meta, seal(bytes).into()).await.unwrap();
    }
    for (i, &at) in layout.snapshots.iter().enumerate() {
        let mut s = State::new(CLUSTER);
        s.apply_all(events, Some(at));
        let bytes = s.write_snapshot(Vec::new(), &small_blocks()).unwrap();
        let meta = SnapshotMeta {
            seq: s.seq,
            time_ms: s.time_ms,
            objects: s.objects.len() as u64,
            label: (i == 0).then(|| "first".to_owned()),
            encrypted: layout.recipient.is_some(),
            resource_set: None,
        };
        store.put_snapshot(meta, seal(bytes).into()).await.unwrap();
    }
    store
}

/// Flips one bit of a file.
pub fn flip_bit(path: &Path, offset: usize) {
    let mut b = std::fs::read(path).unwrap();
    b[offset] ^= 0x10;
    std::fs::write(path, b).unwrap();
}
