//! Point-in-time reconstruction: fold events onto a sorted state.
//!
//! [`State`] is the state at one point, loaded from a snapshot, written as
//! one, and advanced one event at a time with [`State::apply`]. What an
//! event does is defined in [`crate::transition`], which the daemon's
//! snapshot fold and the restore side's parallel fold share, so every way
//! of folding the same events gives the same state.

use std::collections::BTreeMap;
use std::io::Write;

use crate::error::Result;
use crate::event::{EventRecord, ResourceType};
use crate::options::WriteOptions;
use crate::snapshot::{ObjectRef, SnapshotHeader, SnapshotReader, SnapshotWriter, TypeEntry};
use crate::transition::{Change, Effect, note_type};

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
    /// What the event does is [`Effect::of`]'s (see [`crate::transition`]):
    /// - `Applied` inserts or replaces the object;
    /// - `Deleted` and `DeletedInferred` remove it, unless the stored object
    ///   has another uid (it was recreated: the delete is about the old one);
    /// - `Applied`, `Deleted` and `ResyncEnd` record the type's list
    ///   resourceVersion; the others only register the type.
    pub fn apply(&mut self, e: &EventRecord) -> bool {
        if e.seq <= self.seq {
            return false;
        }
        self.seq = e.seq;
        self.time_ms = e.observed_at_ms;
        let effect = Effect::of(e);
        note_type(&mut self.types, &e.rtype, effect.list_rv);
        if effect.change == Change::Keep {
            return true;
        }
        let key = ObjectKey {
            group: e.rtype.group.clone(),
            resource: e.rtype.resource.clone(),
            namespace: e.namespace.clone(),
            name: e.name.clone(),
        };
        effect
            .change
            .resolve_in(&mut self.objects, key, || StateObject {
                uid: e.uid.clone(),
                resource_version: e.resource_version.clone(),
                object: e.object.clone(),
            });
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
