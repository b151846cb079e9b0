//! Turning what the watchers observed into journal records.
//!
//! The watchers send [`Observation`]s; the journal writer feeds each batch of
//! them through [`Ingestor::apply`], which decides what to record:
//!
//! - **Dedup**: an object whose `(uid, resourceVersion)` equals the current
//!   state is not recorded again (relists re-deliver unchanged objects, and
//!   every restart relists).
//! - **uid**: a key whose uid changed was deleted and recreated while we were
//!   not watching: we record `DeletedInferred` for the old uid, then `Applied`.
//! - **Relists**: at `ResyncEnd` every state key the relist did not deliver
//!   is recorded as `DeletedInferred { list_rv }` (see [`relist`]).
//! - **Selection**: an object enters the record when the resource set selects
//!   it; once recorded, it stays recorded until it is deleted, even if it
//!   stops matching, so that leaving a selector never looks like a delete.
//!   A whole type leaving the set is different: its objects are recorded
//!   as deleted with [`OUT_OF_SCOPE`] ([`Observation::OutOfScope`]).
//! - **Ignore rules** (see [`ignore`]).

pub mod ignore;
pub mod relist;

use std::collections::HashMap;
use std::sync::Arc;

use rewind_format::{EventKind, EventRecord, ResourceType};
use tracing::warn;

use crate::journal::batch::StateChange;
use crate::journal::keys::encode_key;
use crate::journal::{BatchBuilder, ObjectCompressor, StateEntry, type_key};

pub use ignore::IgnoreRule;
pub use relist::RelistTracker;

/// An object as a watcher saw it, already serialized.
#[derive(Debug, Clone)]
pub struct ObservedObject {
    /// Namespace, empty for cluster-scoped objects.
    pub namespace: String,
    /// Name (never empty: nameless objects are dropped by the watcher).
    pub name: String,
    /// uid, empty if the API did not send one.
    pub uid: String,
    /// resourceVersion, empty if the API did not send one.
    pub resource_version: String,
    /// The object's JSON.
    pub json: Vec<u8>,
    /// Whether the type's resource set selects this object.
    pub selected: bool,
    /// When the watcher received it, Unix ms.
    pub observed_at_ms: i64,
}

/// What a watcher or the discovery loop reports to the journal writer.
#[derive(Debug, Clone)]
pub enum Observation {
    /// An object was added or modified; `relist` when it came from a LIST.
    Applied {
        /// Its type.
        rtype: Arc<ResourceType>,
        /// The object.
        object: ObservedObject,
        /// Whether it is part of a relist.
        relist: bool,
    },
    /// The watch reported the object deleted.
    Deleted {
        /// Its type.
        rtype: Arc<ResourceType>,
        /// The object's last state.
        object: ObservedObject,
    },
    /// A relist of the type starts.
    ResyncBegin {
        /// The type.
        rtype: Arc<ResourceType>,
        /// When it was observed, Unix ms.
        at_ms: i64,
    },
    /// A relist of the type is complete, as of `list_rv` or later.
    ResyncEnd {
        /// The type.
        rtype: Arc<ResourceType>,
        /// An upper bound of the list's resourceVersion.
        list_rv: String,
        /// When it was observed, Unix ms.
        at_ms: i64,
    },
    /// The type is no longer served (its CRD was deleted): every object of it
    /// still in the state is deleted, as of `list_rv` or earlier.
    TypeGone {
        /// The type.
        rtype: Arc<ResourceType>,
        /// A resourceVersion at which the type was seen gone.
        list_rv: String,
        /// When it was observed, Unix ms.
        at_ms: i64,
    },
    /// The type left the resource set (a configuration reload, or a start
    /// with a set that no longer covers a type the journal holds): every
    /// object of it still in the state is recorded as deleted, with
    /// [`OUT_OF_SCOPE`] in place of a list resourceVersion, so later states
    /// no longer hold objects nobody watches.
    OutOfScope {
        /// The type.
        rtype: Arc<ResourceType>,
        /// When the set changed, Unix ms.
        at_ms: i64,
    },
}

/// The `list_rv` of the `DeletedInferred` records that take a type out of
/// scope ([`Observation::OutOfScope`]). A list's resourceVersion is a
/// number, so no relist can write this one.
pub const OUT_OF_SCOPE: &str = "out-of-scope";

/// Errors of ingestion: only the journal can fail; bad objects are skipped.
pub type Result<T, E = crate::journal::Error> = std::result::Result<T, E>;

/// Applies observations to a batch. Owns the relist key sets.
pub struct Ingestor {
    cluster_id: String,
    compressor: ObjectCompressor,
    /// Shared with the configuration reload (SIGHUP), which swaps the rules.
    ignore: SharedIgnore,
    relists: RelistTracker,
    /// The last observation's type and its key (see [`Ingestor::type_key_of`]).
    last_type: Option<(Arc<ResourceType>, Arc<str>)>,
    /// Types being relisted at another version than their objects were
    /// recorded at: an unchanged resourceVersion does not make an object
    /// a duplicate there (see [`Ingestor::recorded_at_version`]).
    version_moved: std::collections::HashSet<String>,
}

/// Ignore rules by type key, replaceable while the writer runs.
pub type SharedIgnore = std::sync::Arc<std::sync::RwLock<HashMap<String, IgnoreRule>>>;

impl Ingestor {
    /// An ingestor for `cluster_id` with per-type (`type_key`) ignore rules,
    /// storing state values with [`ObjectCompressor::for_state`].
    pub fn new(cluster_id: String, ignore: HashMap<String, IgnoreRule>) -> Result<Self> {
        Ok(Self::with_compressor(
            cluster_id,
            ObjectCompressor::for_state()?,
            ignore,
        ))
    }

    /// Like [`Ingestor::new`], reading its ignore rules from `ignore`,
    /// which a configuration reload replaces.
    pub fn with_shared_ignore(cluster_id: String, ignore: SharedIgnore) -> Result<Self> {
        let mut ingestor = Self::new(cluster_id, HashMap::new())?;
        ingestor.ignore = ignore;
        Ok(ingestor)
    }

    /// Like [`Ingestor::new`], with another state value encoding (benches
    /// compare them).
    #[must_use]
    pub fn with_compressor(
        cluster_id: String,
        compressor: ObjectCompressor,
        ignore: HashMap<String, IgnoreRule>,
    ) -> Self {
        Self {
            cluster_id,
            compressor,
            ignore: std::sync::Arc::new(std::sync::RwLock::new(ignore)),
            relists: RelistTracker::default(),
            last_type: None,
            version_moved: std::collections::HashSet::new(),
        }
    }

    /// The ignore rules, for a configuration reload to replace.
    #[must_use]
    pub fn ignore_rules(&self) -> SharedIgnore {
        std::sync::Arc::clone(&self.ignore)
    }

    /// The type key of an observed object's type. Watchers share one
    /// `Arc<ResourceType>` per type, so it is formatted once per run of
    /// observations of a type, not once per object.
    fn type_key_of(&mut self, rtype: &Arc<ResourceType>) -> Arc<str> {
        match &self.last_type {
            Some((t, k)) if Arc::ptr_eq(t, rtype) || **t == **rtype => Arc::clone(k),
            _ => {
                let k: Arc<str> = type_key(rtype).into();
                self.last_type = Some((Arc::clone(rtype), Arc::clone(&k)));
                k
            }
        }
    }

    /// The batch these observations went into was committed.
    pub fn committed(&mut self) {
        self.relists.commit();
    }

    /// The batch failed before commit; it will be prepared again.
    pub fn rolled_back(&mut self) {
        self.relists.rollback();
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "one argument per record field; a builder would only move them around"
    )]
    fn record(
        &self,
        rtype: &ResourceType,
        ns: &str,
        name: &str,
        uid: &str,
        rv: &str,
        kind: EventKind,
        object: Vec<u8>,
        at_ms: i64,
    ) -> EventRecord {
        EventRecord {
            seq: 0,
            observed_at_ms: at_ms,
            cluster_id: self.cluster_id.clone(),
            rtype: rtype.clone(),
            namespace: (!ns.is_empty()).then(|| ns.to_owned()),
            name: name.to_owned(),
            uid: uid.to_owned(),
            resource_version: rv.to_owned(),
            kind,
            object,
        }
    }

    /// The state change recording `json` as the current object. Types
    /// with an ignore rule keep it inline: every update of theirs reads the
    /// recorded object back, and reading it from the log costs a block.
    fn put(&mut self, tk: &str, json: &[u8]) -> Result<StateChange> {
        let inline = self.ignore.read().map_or(true, |r| r.contains_key(tk));
        Ok(StateChange::Put(self.compressor.stored(json, inline)?))
    }

    /// Skips an object the journal cannot hold (far beyond what the API
    /// server stores), instead of failing the whole batch forever.
    fn too_large(&self, rtype: &ResourceType, o: &ObservedObject) -> bool {
        let big = u32::try_from(o.json.len())
            .map_or(true, |n| n > crate::journal::state::MAX_OBJECT_BYTES);
        if big {
            warn!(rtype = %type_key(rtype), namespace = %o.namespace, name = %o.name, bytes = o.json.len(), "object too large to record, skipped");
        }
        big
    }

    /// Records the inferred deletion of a state entry.
    fn infer_delete(
        &self,
        b: &mut BatchBuilder<'_>,
        rtype: &ResourceType,
        e: &StateEntry,
        list_rv: &str,
        at_ms: i64,
    ) -> Result<()> {
        let json = match e.object_json() {
            Ok(j) => j,
            Err(err) => {
                warn!(key = ?e.key, error = %err, "last state of a deleted object is unreadable; recording the deletion without it");
                Vec::new()
            }
        };
        let rec = self.record(
            rtype,
            e.key.namespace.as_deref().unwrap_or_default(),
            &e.key.name,
            &e.uid,
            &e.resource_version,
            EventKind::DeletedInferred {
                list_rv: list_rv.to_owned(),
            },
            json,
            at_ms,
        );
        b.record(rec, StateChange::Remove)?;
        Ok(())
    }

    /// Applies one observation to the batch. By reference: the writer
    /// keeps its observations until they are durable (a failed batch is
    /// prepared again), and only the object's JSON needs copying.
    pub fn apply(&mut self, b: &mut BatchBuilder<'_>, obs: &Observation) -> Result<()> {
        match obs {
            Observation::Applied {
                rtype,
                object,
                relist,
            } => {
                let tk = self.type_key_of(rtype);
                self.applied(b, rtype, &tk, object, *relist)
            }
            Observation::Deleted { rtype, object } => {
                let tk = self.type_key_of(rtype);
                self.deleted(b, rtype, &tk, object)
            }
            Observation::ResyncBegin { rtype, at_ms } => {
                let at_ms = *at_ms;
                let tk = type_key(rtype);
                let track = !b.type_is_empty(&tk)?;
                if track {
                    // Read before this relist's marker names the new version.
                    let tr = b.type_record(rtype)?;
                    let recorded = tr.listed_version.as_ref().unwrap_or(&tr.rtype.version);
                    if *recorded == rtype.version {
                        self.version_moved.remove(&tk);
                    } else {
                        tracing::info!(rtype = %tk, from = %recorded, to = %rtype.version, "served version changed; recording every object again at the new version");
                        self.version_moved.insert(tk.clone());
                    }
                }
                if self.relists.begin(&tk, track) {
                    let rec = self.record(
                        rtype,
                        "",
                        "",
                        "",
                        "",
                        EventKind::ResyncBegin { list_rv: None },
                        Vec::new(),
                        at_ms,
                    );
                    b.record(rec, StateChange::None)?;
                    self.relists.mark_begin_recorded(&tk);
                }
                Ok(())
            }
            Observation::ResyncEnd {
                rtype,
                list_rv,
                at_ms,
            } => {
                let at_ms = *at_ms;
                let tk = type_key(rtype);
                let Some(seen) = self.relists.end(&tk) else {
                    return Ok(());
                };
                // The relist's set goes back to the tracker before any
                // error returns, so a rollback can reopen it. An untracked
                // relist began with no object of its type: none is missing.
                let missing = if seen.tracked() {
                    self.relist_missing(b, rtype, &tk, &seen)
                } else {
                    Ok(Vec::new())
                };
                self.relists.closed(seen);
                for k in missing? {
                    if let Some(e) = b.get_encoded(&k)? {
                        self.infer_delete(b, rtype, &e, list_rv, at_ms)?;
                    }
                }
                let rec = self.record(
                    rtype,
                    "",
                    "",
                    "",
                    "",
                    EventKind::ResyncEnd {
                        list_rv: list_rv.clone(),
                    },
                    Vec::new(),
                    at_ms,
                );
                b.record(rec, StateChange::None)?;
                // Every object left in the state was delivered by this
                // relist, and recorded at its version.
                b.type_record(rtype)?.listed_version = Some(rtype.version.clone());
                self.version_moved.remove(&tk);
                Ok(())
            }
            Observation::TypeGone {
                rtype,
                list_rv,
                at_ms,
            } => self.drop_type(b, rtype, list_rv, *at_ms),
            Observation::OutOfScope { rtype, at_ms } => {
                let tk = type_key(rtype);
                let objects = b.keys_of_type_where(&tk, |_| true)?.len();
                if objects > 0 {
                    tracing::info!(rtype = %tk, objects, "type left the resource set; its objects are recorded as out of scope");
                }
                self.drop_type(b, rtype, OUT_OF_SCOPE, *at_ms)
            }
        }
    }

    /// Records every object of `rtype` still in the state as deleted as of
    /// `list_rv` and forgets the type.
    fn drop_type(
        &mut self,
        b: &mut BatchBuilder<'_>,
        rtype: &ResourceType,
        list_rv: &str,
        at_ms: i64,
    ) -> Result<()> {
        let tk = type_key(rtype);
        self.relists.discard(&tk);
        for k in b.keys_of_type_where(&tk, |_| true)? {
            if let Some(e) = b.get_encoded(&k)? {
                self.infer_delete(b, rtype, &e, list_rv, at_ms)?;
            }
        }
        b.forget_type(&tk);
        Ok(())
    }

    /// The state keys of a type that its completed relist did not deliver:
    /// deleted while unwatched. When the type's object count says the relist
    /// delivered every recorded object, nothing is missing and the state is
    /// not read: scanning it pulls every object of the type through sled's
    /// cache, and sled 0.34 keeps such sparsely read pages (each of its 256
    /// cache shards evicts only after 64 accesses), which kept the whole
    /// state in memory after every relist. Otherwise the keys are scanned
    /// (only those not delivered are kept) and the count is set from them.
    fn relist_missing(
        &self,
        b: &mut BatchBuilder<'_>,
        rtype: &ResourceType,
        tk: &str,
        seen: &relist::Delivered,
    ) -> Result<Vec<Vec<u8>>> {
        let delivered = seen.in_state();
        if b.type_record(rtype)?.objects == Some(delivered) {
            return Ok(Vec::new());
        }
        let mut total = 0u64;
        let missing = b.keys_of_type_where(tk, |k| {
            total += 1;
            !seen.contains(k)
        })?;
        // The inferred deletions that follow count themselves down.
        b.type_record(rtype)?.objects = Some(total);
        Ok(missing)
    }

    fn applied(
        &mut self,
        b: &mut BatchBuilder<'_>,
        rtype: &ResourceType,
        tk: &str,
        o: &ObservedObject,
        relist: bool,
    ) -> Result<()> {
        // Encoded once: deduplication, the staged state write and the
        // relist set all use this key.
        let k = encode_key(tk, &o.namespace, &o.name);
        let in_state = self.apply_object(b, rtype, tk, &k, o)?;
        if relist {
            self.relists.seen(tk, &k, in_state);
        }
        Ok(())
    }

    /// Records an added or modified object; returns whether its key is in
    /// the state afterwards.
    fn apply_object(
        &mut self,
        b: &mut BatchBuilder<'_>,
        rtype: &ResourceType,
        tk: &str,
        k: &[u8],
        o: &ObservedObject,
    ) -> Result<bool> {
        if self.too_large(rtype, o) {
            return Ok(b.head_encoded(k)?.is_some());
        }
        // The head is enough unless the object was recreated or an ignore
        // rule must compare the old object with the new one.
        let mut existed = false;
        if let Some(h) = b.head_encoded(k)? {
            let recreated = !h.uid.is_empty() && !o.uid.is_empty() && h.uid != o.uid;
            if recreated {
                // Deleted and recreated while we were not watching: the new
                // object's creation bounds the old one's deletion.
                if let Some(e) = b.get_encoded(k)? {
                    self.infer_delete(b, rtype, &e, &o.resource_version, o.observed_at_ms)?;
                }
            } else {
                if h.resource_version == o.resource_version
                    && self.recorded_at_version(b, rtype, tk, k)?
                {
                    return Ok(true);
                }
                if self.only_ignored_changed(b, tk, k, &o.json)? {
                    return Ok(true);
                }
                existed = true;
            }
        }
        if !existed && !o.selected {
            return Ok(false);
        }
        let change = self.put(tk, &o.json)?;
        let rec = self.record(
            rtype,
            &o.namespace,
            &o.name,
            &o.uid,
            &o.resource_version,
            EventKind::Applied,
            o.json.clone(),
            o.observed_at_ms,
        );
        b.record_keyed(rec, Some(k.to_vec()), Some(existed), change)?;
        Ok(true)
    }

    /// Whether the recorded object at `k` is at `rtype`'s version. Read
    /// only for types whose served version moved; elsewhere every recorded
    /// object is at the version being watched.
    fn recorded_at_version(
        &self,
        b: &BatchBuilder<'_>,
        rtype: &ResourceType,
        tk: &str,
        k: &[u8],
    ) -> Result<bool> {
        if !self.version_moved.contains(tk) {
            return Ok(true);
        }
        let Some(e) = b.get_encoded(k)? else {
            return Ok(false);
        };
        #[derive(serde::Deserialize)]
        struct Head {
            #[serde(rename = "apiVersion")]
            api_version: Option<String>,
        }
        let recorded = e
            .object_json()
            .ok()
            .and_then(|j| serde_json::from_slice::<Head>(&j).ok())
            .and_then(|h| h.api_version);
        Ok(recorded.as_deref() == Some(rtype.api_version().as_str()))
    }

    /// Whether the type's ignore rule says only ignored fields changed
    /// between the recorded object and `json`. Reads the recorded object
    /// only when the type has a rule.
    fn only_ignored_changed(
        &self,
        b: &BatchBuilder<'_>,
        tk: &str,
        k: &[u8],
        json: &[u8],
    ) -> Result<bool> {
        let Ok(rules) = self.ignore.read() else {
            return Ok(false);
        };
        let Some(rule) = rules.get(tk) else {
            return Ok(false);
        };
        let Some(e) = b.get_encoded(k)? else {
            return Ok(false);
        };
        Ok(e.object_json()
            .is_ok_and(|old| rule.only_ignored_changed(&old, json)))
    }

    fn deleted(
        &mut self,
        b: &mut BatchBuilder<'_>,
        rtype: &ResourceType,
        tk: &str,
        o: &ObservedObject,
    ) -> Result<()> {
        if self.too_large(rtype, o) {
            return Ok(());
        }
        let k = encode_key(tk, &o.namespace, &o.name);
        let Some(h) = b.head_encoded(&k)? else {
            // Never recorded (not selected), or its deletion was already
            // inferred by a relist: nothing to add.
            return Ok(());
        };
        let recreated = !h.uid.is_empty() && !o.uid.is_empty() && h.uid != o.uid;
        if recreated {
            if let Some(e) = b.get_encoded(&k)? {
                self.infer_delete(b, rtype, &e, &o.resource_version, o.observed_at_ms)?;
            }
            if !o.selected {
                return Ok(());
            }
        }
        // A recreated object's old version was removed just above.
        let (change, existed) = if recreated {
            (StateChange::None, false)
        } else {
            (StateChange::Remove, true)
        };
        let rec = self.record(
            rtype,
            &o.namespace,
            &o.name,
            &o.uid,
            &o.resource_version,
            EventKind::Deleted,
            o.json.clone(),
            o.observed_at_ms,
        );
        b.record_keyed(rec, Some(k), Some(existed), change)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
