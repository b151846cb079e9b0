//! Point-in-time reconstruction: fold events onto a sorted state.
//!
//! Both the daemon (a new snapshot = previous snapshot + segments) and the
//! restore tool (state at a point = snapshot + events up to it) do the same
//! fold, so it lives here, next to the formats it reads and writes.

use std::collections::BTreeMap;
use std::io::Write;

use crate::error::Result;
use crate::event::{EventKind, EventRecord, ResourceType};
use crate::options::WriteOptions;
use crate::snapshot::{ObjectRef, SnapshotHeader, SnapshotReader, SnapshotWriter, TypeEntry};

/// Identifies a type regardless of version: (group, resource).
pub type TypeKey = (String, String);

/// Identifies an object: type, namespace, name. Orders like a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    /// API group.
    pub group: String,
    /// Plural resource.
    pub resource: String,
    /// Namespace, `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
}

impl ObjectKey {
    /// `resource.group`, or `resource` for the core group: the object's type
    /// regardless of version, as [`ResourceType::group_resource`] names it.
    #[must_use]
    pub fn group_resource(&self) -> String {
        crate::event::group_resource(&self.group, &self.resource)
    }
}

/// One object in a [`State`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateObject {
    /// uid.
    pub uid: String,
    /// resourceVersion.
    pub resource_version: String,
    /// JSON bytes.
    pub object: Vec<u8>,
}

/// The state of a cluster after some prefix of its events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    /// Source cluster.
    pub cluster_id: String,
    /// Last applied sequence number (0 before any event).
    pub seq: u64,
    /// Observation time of the last applied event.
    pub time_ms: i64,
    /// Every known type with the latest resourceVersion seen for it.
    pub types: BTreeMap<TypeKey, TypeEntry>,
    /// Every live object.
    pub objects: BTreeMap<ObjectKey, StateObject>,
}

fn type_key(t: &ResourceType) -> TypeKey {
    (t.group.clone(), t.resource.clone())
}

impl State {
    /// An empty state of `cluster_id`.
    #[must_use]
    pub fn new(cluster_id: impl Into<String>) -> Self {
        Self {
            cluster_id: cluster_id.into(),
            ..Self::default()
        }
    }

    /// Loads a snapshot in full.
    pub fn from_snapshot(r: &mut SnapshotReader<'_>) -> Result<Self> {
        let h = r.header().clone();
        let mut state = Self {
            cluster_id: h.cluster_id.clone(),
            seq: h.seq,
            time_ms: h.time_ms,
            types: h
                .types
                .iter()
                .map(|t| (type_key(&t.rtype), t.clone()))
                .collect(),
            objects: BTreeMap::new(),
        };
        for item in r.iter() {
            let (t, o) = item?;
            let Some(entry) = h.types.get(t) else {
                continue;
            };
            state.objects.insert(
                ObjectKey {
                    group: entry.rtype.group.clone(),
                    resource: entry.rtype.resource.clone(),
                    namespace: o.namespace,
                    name: o.name,
                },
                StateObject {
                    uid: o.uid,
                    resource_version: o.resource_version,
                    object: o.object,
                },
            );
        }
        Ok(state)
    }

    /// Applies one event. Events at or before [`State::seq`] are skipped
    /// (returns `false`), so overlapping segments fold idempotently.
    ///
    /// - `Applied` inserts or replaces the object;
    /// - `Deleted` and `DeletedInferred` remove it, unless the stored object
    ///   has another uid (it was recreated: the delete is about the old one);
    /// - `ResyncEnd` records the list's resourceVersion; `ResyncBegin` only
    ///   registers the type.
    pub fn apply(&mut self, e: &EventRecord) -> bool {
        if e.seq <= self.seq {
            return false;
        }
        self.seq = e.seq;
        self.time_ms = e.observed_at_ms;
        let tk = type_key(&e.rtype);
        let entry = self.types.entry(tk).or_insert_with(|| TypeEntry {
            rtype: e.rtype.clone(),
            list_rv: String::new(),
        });
        entry.rtype.clone_from(&e.rtype);
        let key = || ObjectKey {
            group: e.rtype.group.clone(),
            resource: e.rtype.resource.clone(),
            namespace: e.namespace.clone(),
            name: e.name.clone(),
        };
        match &e.kind {
            EventKind::Applied => {
                entry.list_rv.clone_from(&e.resource_version);
                self.objects.insert(
                    key(),
                    StateObject {
                        uid: e.uid.clone(),
                        resource_version: e.resource_version.clone(),
                        object: e.object.clone(),
                    },
                );
            }
            EventKind::Deleted | EventKind::DeletedInferred { .. } => {
                if let EventKind::Deleted = e.kind {
                    entry.list_rv.clone_from(&e.resource_version);
                }
                let k = key();
                if self
                    .objects
                    .get(&k)
                    .is_some_and(|o| o.uid == e.uid || o.uid.is_empty() || e.uid.is_empty())
                {
                    self.objects.remove(&k);
                }
            }
            EventKind::ResyncBegin { .. } => {}
            EventKind::ResyncEnd { list_rv } => entry.list_rv.clone_from(list_rv),
        }
        true
    }

    /// Applies events in order; stops after `until_seq` when given.
    pub fn apply_all<'e>(
        &mut self,
        events: impl IntoIterator<Item = &'e EventRecord>,
        until_seq: Option<u64>,
    ) {
        for e in events {
            if until_seq.is_some_and(|u| e.seq > u) {
                break;
            }
            self.apply(e);
        }
    }

    /// Writes this state as a snapshot.
    pub fn write_snapshot<W: Write>(&self, sink: W, opts: &WriteOptions) -> Result<W> {
        let types: Vec<TypeEntry> = self.types.values().cloned().collect();
        let header = SnapshotHeader {
            cluster_id: self.cluster_id.clone(),
            seq: self.seq,
            time_ms: self.time_ms,
            types,
            crd_type: None,
        };
        let mut w = SnapshotWriter::new(sink, header, opts)?;
        let mut t = 0usize;
        let mut keys = self.types.keys();
        let mut current = keys.next();
        for (k, o) in &self.objects {
            while current.is_some_and(|c| {
                (c.0.as_str(), c.1.as_str()) < (k.group.as_str(), k.resource.as_str())
            }) {
                current = keys.next();
                t += 1;
            }
            w.push_ref(
                t,
                ObjectRef {
                    namespace: k.namespace.as_deref(),
                    name: &k.name,
                    uid: &o.uid,
                    resource_version: &o.resource_version,
                    object: &o.object,
                },
            )?;
        }
        w.finish()
    }
}
