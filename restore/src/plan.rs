//! Planning a restore: what it will create, update, leave alone and (with
//! prune) delete, computed against the live target before any write.
//!
//! A [`RestorePlan`] is a plain value: printable as a table or JSON, and the
//! only input [`apply`](crate::apply()) takes, so `--dry-run` is simply "plan
//! and print". The plan applies the restore actions ([`crate::actions`]) to
//! the state first. An object is *unchanged* when the live object equals
//! what the restore would write (see [`crate::delta`]): server fields
//! stripped, ownerReference UIDs ignored since they differ between
//! clusters by construction, `apiVersion`/`kind` taken from the type,
//! status per its [`StatusMode`]; an *update* lists every differing field.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use futures::{StreamExt, TryStreamExt, stream};
use kube::Client;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::actions::{self, Adjustment};
use crate::delta;
use crate::fields::Seg;
use crate::live::{self, ApiFailure};
use crate::order::OwnerIndex;
use crate::owners::{OutsideOwner, resolve_outside_owners};
use crate::protect::{PresetReport, ProtectedSet, rancher_preset};
use crate::strip::{drop_owner_uids, split_for_write, strip_server_fields};
use rewind_history::select::ResourceSet;
use rewind_history::state::{
    DesiredState, Filter, ResourceType, TypedKey, crd_defines, crd_has_status,
};

/// Errors planning a restore.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// Prune was asked for without the resource set that was recorded.
    #[error(
        "refusing to prune without the resource set that was recorded: prune deletes only live objects that set selects, and the files this state was read from carry none; name it with --resource-preset NAME or --resource-set FILE"
    )]
    NoPruneScope,
    /// Listing the target failed.
    #[error("cannot list {rtype} in the target: {failure}")]
    List {
        /// The type being listed.
        rtype: String,
        /// The API's answer.
        failure: ApiFailure,
    },
}

/// Result alias for this module.
pub type Result<T, E = PlanError> = std::result::Result<T, E>;

/// How a type's `status` is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusMode {
    /// Through `/status` after the object: a CRD with a status subresource
    /// (the server drops status on create and ignores it on update).
    Subresource,
    /// In the object itself: a CRD without a status subresource.
    InBody,
    /// Not written: built-in types, whose status their controllers own.
    Skip,
}

/// What the restore does with one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Absent from the target: created.
    Create,
    /// Present but different: updated (server-side apply).
    Update,
    /// Present and equal: left alone.
    Unchanged,
    /// Live but not in the state: deleted (only with prune).
    Delete,
    /// Never touched; [`PlanItem::reason`] says why.
    Skip,
}

/// Why an object of the state is not written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// It matches the protected set (`--protect`, the defaults).
    Protected,
    /// The Rancher preset skips it (as Rancher Backups does).
    Preset,
    /// It was being deleted at the point (`metadata.deletionTimestamp`):
    /// restoring it would bring back an object its owner was tearing down.
    /// `--include-deleting` writes it anyway.
    BeingDeleted,
    /// A type whose objects belong to the cluster or its controllers
    /// (Nodes, Events, Leases, controller-made Endpoints and EndpointSlices).
    NeverWritten,
    /// A Pod with a controller ownerReference: its controller makes its own.
    ControllerOwned,
    /// A mirror Pod: the kubelet makes it from a static manifest.
    MirrorPod,
    /// A finished Pod or a completed Job: writing it would run it again.
    Finished,
    /// An auto-generated service-account token Secret (`<sa>-token-*`):
    /// its token and UID belong to the recorded cluster.
    ServiceAccountToken,
    /// An APIService the apiserver manages itself.
    ServerManaged,
}

impl SkipReason {
    /// The reason as the plan table prints it.
    #[must_use]
    pub fn describe(self) -> &'static str {
        match self {
            Self::Protected => "protected",
            Self::Preset => "skipped by the preset",
            Self::BeingDeleted => "being deleted at the point",
            Self::NeverWritten => "never written: the cluster's controllers own this type",
            Self::ControllerOwned => "owned by a controller, which makes its own",
            Self::MirrorPod => "mirror pod: the kubelet makes it",
            Self::Finished => "finished: writing it would run it again",
            Self::ServiceAccountToken => {
                "auto-generated service-account token: the cluster issues its own"
            }
            Self::ServerManaged => "managed by the apiserver",
        }
    }
}

/// One object's line in a plan.
#[derive(Debug, Clone, Serialize)]
pub struct PlanItem {
    /// The object.
    pub key: TypedKey,
    /// What happens to it.
    pub action: Action,
    /// For updates: the fields that differ (`spec.x`, `status`, …).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<String>,
    /// For skips: why the object is not written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<SkipReason>,
    /// The restore action that changed the object before writing, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adjusted: Option<Adjustment>,
    /// The live object's UID, so dependents of unchanged owners can be
    /// rewired without writing the owner.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live_uid: Option<String>,
    /// The live object's resourceVersion when planned. An update replaces
    /// the object at that version; a conflict re-reads it.
    #[serde(skip)]
    pub live_resource_version: Option<String>,
    /// For updates of objects whose allocated fields are carried over (see
    /// [`actions::carry_over`]): the live object when planned. `None` for an
    /// update planned without it: the writer reads it.
    #[serde(skip)]
    pub live_object: Option<Value>,
}

/// Options for [`plan`].
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// Which part of the state to restore (and, with prune, to prune).
    pub filter: Filter,
    /// Also delete live objects of the restored types that the state lacks
    /// and [`prune_scope`](Self::prune_scope) selects.
    pub prune: bool,
    /// The resource set that was recorded (see [`crate::scope`]): prune
    /// deletes nothing it does not select, and refuses to run without it.
    pub prune_scope: Option<ResourceSet>,
    /// Objects never written nor deleted.
    pub protected: ProtectedSet,
    /// Apply Rancher's known restore fixes.
    pub rancher: bool,
    /// Also write objects that were being deleted at the point (they are
    /// skipped by default).
    pub include_deleting: bool,
}

/// A computed restore: the state to write, and what happens to each object.
#[derive(Debug, Clone, Serialize)]
pub struct RestorePlan {
    /// Hash of the state to write and the options that shape it: a resumed
    /// restore must have the same id as the interrupted one.
    pub id: String,
    /// One item per object, in key order (deletions included).
    pub items: Vec<PlanItem>,
    /// How status is written per type.
    pub status_modes: BTreeMap<String, StatusMode>,
    /// What the Rancher preset changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preset: Option<PresetReport>,
    /// ownerReferences to owners outside the state, resolved against the
    /// target: rewired to the live owner, or dropped when it is not there.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub outside_owners: Vec<OutsideOwner>,
    /// Things the operator should know (types the target cannot serve, …).
    pub warnings: Vec<String>,
    /// The state to write (filtered, preset applied). Not printed.
    #[serde(skip)]
    pub state: DesiredState,
    /// Status mode per type, for the writer.
    #[serde(skip)]
    pub modes: HashMap<ResourceType, StatusMode>,
}

impl RestorePlan {
    /// Number of items with `action`.
    #[must_use]
    pub fn count(&self, action: Action) -> usize {
        self.items.iter().filter(|i| i.action == action).count()
    }

    /// Whether applying the plan writes or deletes anything.
    #[must_use]
    pub fn has_work(&self) -> bool {
        self.items
            .iter()
            .any(|i| matches!(i.action, Action::Create | Action::Update | Action::Delete))
    }

    /// The plan as a table: per-type counts, then every non-unchanged object.
    #[must_use]
    pub fn to_table(&self) -> String {
        let mut per_type: BTreeMap<String, [usize; 5]> = BTreeMap::new();
        for i in &self.items {
            let row = per_type
                .entry(i.key.rtype.group_resource())
                .or_insert([0; 5]);
            if let Some(c) = row.get_mut(i.action as usize) {
                *c += 1;
            }
        }
        let mut s = String::new();
        let _ = writeln!(s, "restore plan {}", self.id);
        let _ = writeln!(
            s,
            "{:<52} {:>7} {:>7} {:>9} {:>7} {:>6}",
            "TYPE", "CREATE", "UPDATE", "UNCHANGED", "DELETE", "SKIP"
        );
        for (t, [c, u, n, d, k]) in &per_type {
            let _ = writeln!(s, "{t:<52} {c:>7} {u:>7} {n:>9} {d:>7} {k:>6}");
        }
        let _ = writeln!(
            s,
            "{:<52} {:>7} {:>7} {:>9} {:>7} {:>6}",
            "TOTAL",
            self.count(Action::Create),
            self.count(Action::Update),
            self.count(Action::Unchanged),
            self.count(Action::Delete),
            self.count(Action::Skip)
        );
        // Skips by type are many and alike (every Event): one line per type.
        let by_type = |i: &PlanItem| i.reason == Some(SkipReason::NeverWritten);
        let changed: Vec<&PlanItem> = self
            .items
            .iter()
            .filter(|i| i.action != Action::Unchanged && !by_type(i))
            .collect();
        if !changed.is_empty() {
            let _ = writeln!(s, "\n{:<10} OBJECT", "ACTION");
            for i in changed {
                let action = format!("{:?}", i.action).to_lowercase();
                let _ = write!(s, "{action:<10} {}", i.key);
                if !i.changes.is_empty() {
                    let _ = write!(s, "  ({})", i.changes.join(", "));
                }
                if let Some(r) = i.reason {
                    let _ = write!(s, "  ({})", r.describe());
                }
                s.push('\n');
            }
        }
        let mut never: BTreeMap<String, usize> = BTreeMap::new();
        for i in self.items.iter().filter(|i| by_type(i)) {
            *never.entry(i.key.rtype.group_resource()).or_insert(0) += 1;
        }
        for (t, n) in &never {
            let _ = writeln!(
                s,
                "{:<10} {t} ({n} objects)  ({})",
                "skip",
                SkipReason::NeverWritten.describe()
            );
        }
        let rewired = self
            .outside_owners
            .iter()
            .filter(|o| o.live_uid.is_some())
            .count();
        if rewired > 0 {
            let _ = writeln!(
                s,
                "{rewired} ownerReferences point at owners outside the state that exist in the target: rewired to their live UIDs"
            );
        }
        for o in self.outside_owners.iter().filter(|o| o.live_uid.is_none()) {
            let _ = writeln!(
                s,
                "dropped ownerReference: {} -> {} (owner neither in the state nor in the target)",
                o.object, o.owner
            );
        }
        let mut adjusted: BTreeMap<Adjustment, usize> = BTreeMap::new();
        for i in &self.items {
            if let Some(a) = i.adjusted {
                *adjusted.entry(a).or_insert(0) += 1;
            }
        }
        if !adjusted.is_empty() {
            let _ = writeln!(s, "\nrestore actions:");
            for (a, n) in &adjusted {
                let _ = writeln!(s, "  {n:>7} {}", a.describe());
            }
        }
        for w in &self.warnings {
            let _ = writeln!(s, "warning: {w}");
        }
        s
    }
}

/// The status mode of every type in `state`, from the state's CRDs, then
/// the target's.
fn status_modes(state: &DesiredState, live_crds: &[Value]) -> HashMap<ResourceType, StatusMode> {
    let mut out = HashMap::new();
    for rtype in state.types() {
        let mode = match state.status_subresource(&rtype) {
            Some(true) => StatusMode::Subresource,
            Some(false) => StatusMode::InBody,
            None => live_crds
                .iter()
                .find(|c| {
                    crd_defines(c).is_some_and(|(g, r)| g == rtype.group && r == rtype.resource)
                })
                .map_or(StatusMode::Skip, |c| {
                    if crd_has_status(c, &rtype.version) {
                        StatusMode::Subresource
                    } else {
                        StatusMode::InBody
                    }
                }),
        };
        out.insert(rtype, mode);
    }
    out
}

/// The body a restore sends for `obj` and the status it writes separately.
#[must_use]
pub fn write_parts(obj: &Value, mode: StatusMode) -> (Value, Option<Value>) {
    let (mut body, status) = split_for_write(obj);
    match mode {
        StatusMode::Subresource => (body, status),
        StatusMode::InBody => {
            if let (Some(st), Some(m)) = (status, body.as_object_mut()) {
                m.insert("status".into(), st);
            }
            (body, None)
        }
        StatusMode::Skip => (body, None),
    }
}

fn plan_id(state: &DesiredState, opts: &PlanOptions) -> String {
    let mut h = Sha256::new();
    h.update(format!(
        "rewind-plan-v1 prune={} rancher={} include_deleting={}\n",
        opts.prune, opts.rancher, opts.include_deleting
    ));
    for (k, v) in state.iter() {
        h.update(k.to_string());
        h.update([0]);
        h.update(v.to_string());
        h.update([0]);
    }
    let digest = h.finalize();
    digest.iter().take(12).fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Top-level fields the comparison leaves out: the restore sends the
/// object's type's `apiVersion`/`kind` whatever was recorded (see
/// [`apply`](crate::apply())), and a live object of that type has them by
/// definition; but LIST items of built-in types omit them while rewindd
/// records them, so comparing them made every recorded built-in object
/// (CRDs, Namespaces, ConfigMaps, …) an `update [apiVersion, kind]`.
const TYPE_FIELDS: [&str; 2] = ["apiVersion", "kind"];

/// The fields where the live object differs from what the restore writes
/// for `obj` (see [`crate::delta`]): empty when they are equal, apart from
/// server-set metadata, ownerReference UIDs (rewired separately), `status`
/// per `mode`, and what the restore actions leave to the target. `key`
/// names the object's type for the restore actions (`None`: no actions).
fn compare(key: Option<&TypedKey>, obj: &Value, live: &Value, mode: StatusMode) -> Vec<String> {
    let (mut body, status) = write_parts(obj, mode);
    let mut have = live.clone();
    if let Some(k) = key {
        // What an update writes: the live allocated fields carried over
        // (they are the target's, not a difference).
        actions::carry_over(k, &mut body, live);
    }
    strip_server_fields(&mut have);
    let live_status = have.as_object_mut().and_then(|m| m.remove("status"));
    for o in [&mut body, &mut have] {
        if let Some(m) = o.as_object_mut() {
            for f in TYPE_FIELDS {
                m.remove(f);
            }
        }
        drop_owner_uids(o);
    }
    if mode == StatusMode::InBody
        && let (Some(st), Some(m)) = (live_status.clone(), have.as_object_mut())
    {
        m.insert("status".into(), st);
    }
    let mut changes = delta::differences(&body, &have, live, &[]);
    if let Some(st) = status {
        let live_st = live_status.unwrap_or(Value::Null);
        changes.extend(delta::differences(
            &st,
            &live_st,
            live,
            &[Seg::Key("status")],
        ));
    }
    changes
}

/// Marks as updates the unchanged objects whose live ownerReferences do not
/// point at their owners' UIDs in the target: an owner the restore creates
/// (it was deleted and gets a new UID), or one replaced since. Without this,
/// dependents would keep references to UIDs that no longer exist, and the
/// garbage collector would delete them.
fn rewire_check(
    state: &DesiredState,
    items: &mut [PlanItem],
    live_ref_uids: &HashMap<TypedKey, Vec<String>>,
) {
    let idx = OwnerIndex::new(state);
    let owner_uid: HashMap<TypedKey, Option<String>> = items
        .iter()
        .filter(|i| i.action != Action::Delete)
        .map(|i| {
            let uid = if i.action == Action::Create {
                None
            } else {
                i.live_uid.clone()
            };
            (i.key.clone(), uid)
        })
        .collect();
    for item in items.iter_mut().filter(|i| i.action == Action::Unchanged) {
        let Some(obj) = state.get(&item.key) else {
            continue;
        };
        let live_uids = live_ref_uids.get(&item.key).map_or(&[][..], Vec::as_slice);
        let stale = obj
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|r| match idx.resolve(item.key.namespace.as_deref(), r) {
                Some(owner) => match owner_uid.get(owner) {
                    Some(Some(uid)) => !live_uids.contains(uid),
                    // The owner is created by this restore: a new UID.
                    Some(None) => true,
                    // Not planned (cannot happen for an owner in the state).
                    None => false,
                },
                // An owner outside the state: the plan set its live UID.
                None => r
                    .get("uid")
                    .and_then(Value::as_str)
                    .is_some_and(|u| !live_uids.iter().any(|l| l == u)),
            });
        if stale {
            item.action = Action::Update;
            item.changes.push("metadata.ownerReferences".into());
        }
    }
}

/// Applies the restore actions to every object of `state`: the objects they
/// skip, with why, and those they adjusted in place, with how.
fn apply_actions(
    state: &mut DesiredState,
) -> (HashMap<TypedKey, SkipReason>, HashMap<TypedKey, Adjustment>) {
    let skips: HashMap<TypedKey, SkipReason> = state
        .iter()
        .filter_map(|(k, o)| actions::skip_reason(k, o, state).map(|r| (k.clone(), r)))
        .collect();
    let mut adjusted = HashMap::new();
    for (k, o) in state.iter_mut() {
        if skips.contains_key(k) {
            continue;
        }
        if let Some(a) = actions::adjust(k, o) {
            adjusted.insert(k.clone(), a);
        }
    }
    (skips, adjusted)
}

/// Computes the restore of `desired` into the cluster `client` talks to.
/// Reads the target (one paginated LIST per type); writes nothing.
pub async fn plan(
    desired: &DesiredState,
    client: &Client,
    opts: &PlanOptions,
) -> Result<RestorePlan> {
    let prune_scope = match (opts.prune, &opts.prune_scope) {
        (false, _) => None,
        (true, None) => return Err(PlanError::NoPruneScope),
        (true, Some(s)) => Some(s),
    };
    let mut state = desired.filtered(&opts.filter);
    let mut protected = opts.protected.clone();
    let preset = opts
        .rancher
        .then(|| rancher_preset(&mut state, &mut protected));
    let mut warnings = Vec::new();
    let (action_skips, adjusted) = apply_actions(&mut state);
    let outside_owners =
        resolve_outside_owners(client, &mut state, |k| !action_skips.contains_key(k)).await;

    let live_crds = live::list_all(client, &live::crd_type())
        .await
        .map_err(|failure| PlanError::List {
            rtype: "customresourcedefinitions".into(),
            failure,
        })?
        .unwrap_or_default();
    let modes = status_modes(&state, &live_crds);

    // A type whose every object is skipped by a restore action is not read:
    // nothing of it is compared, written or pruned.
    let types: Vec<ResourceType> = state
        .types()
        .into_iter()
        .filter(|t| {
            state
                .iter()
                .any(|(k, _)| &k.rtype == t && !action_skips.contains_key(k))
        })
        .collect();
    let listed: Vec<(ResourceType, Option<Vec<Value>>)> = stream::iter(types)
        .map(|t| async move {
            let r = live::list_all(client, &t).await;
            r.map(|l| (t.clone(), l))
                .map_err(|failure| PlanError::List {
                    rtype: t.to_string(),
                    failure,
                })
        })
        .buffer_unordered(8)
        .try_collect()
        .await?;

    let mut items = Vec::new();
    let mut prune_candidates: Vec<(TypedKey, Value)> = Vec::new();
    // The owner UIDs each live object's ownerReferences carry.
    let mut live_ref_uids: HashMap<TypedKey, Vec<String>> = HashMap::new();
    for (rtype, live_objs) in listed {
        let live_objs = match live_objs {
            Some(l) => l,
            None => {
                if state.status_subresource(&rtype).is_none() {
                    warnings.push(format!(
                        "the target does not serve {rtype} and the state has no CRD for it: its objects will fail"
                    ));
                }
                Vec::new()
            }
        };
        let mode = modes.get(&rtype).copied().unwrap_or(StatusMode::Skip);
        let mut live_by_key: BTreeMap<TypedKey, Value> = BTreeMap::new();
        for l in live_objs {
            if let Ok(k) = TypedKey::of(&rtype, &l) {
                live_by_key.insert(k, l);
            }
        }
        for (key, obj) in state.iter().filter(|(k, _)| k.rtype == rtype) {
            let live = live_by_key.remove(key);
            if let Some(l) = &live {
                let uids = l
                    .pointer("/metadata/ownerReferences")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|r| r.get("uid").and_then(Value::as_str).map(str::to_owned))
                    .collect();
                live_ref_uids.insert(key.clone(), uids);
            }
            let live_uid = live
                .as_ref()
                .and_then(|l| l.pointer("/metadata/uid"))
                .and_then(Value::as_str)
                .map(str::to_owned);
            let skip = if protected.is_preset_key(key) {
                Some(SkipReason::Preset)
            } else if protected.is_protected(key) {
                Some(SkipReason::Protected)
            } else if !opts.include_deleting && obj.pointer("/metadata/deletionTimestamp").is_some()
            {
                Some(SkipReason::BeingDeleted)
            } else {
                action_skips.get(key).copied()
            };
            let (action, changes) = if skip.is_some() {
                (Action::Skip, Vec::new())
            } else {
                match &live {
                    None => (Action::Create, Vec::new()),
                    Some(l) => {
                        let changes = compare(Some(key), obj, l, mode);
                        if changes.is_empty() {
                            (Action::Unchanged, changes)
                        } else {
                            (Action::Update, changes)
                        }
                    }
                }
            };
            let live_resource_version = live
                .as_ref()
                .and_then(|l| l.pointer("/metadata/resourceVersion"))
                .and_then(Value::as_str)
                .map(str::to_owned);
            // Kept for updates only; an object `rewire_check` turns into an
            // update is read again when written.
            let live_object = live
                .as_ref()
                .filter(|l| action == Action::Update && actions::has_carry_over(&key.rtype, l))
                .cloned();
            items.push(PlanItem {
                key: key.clone(),
                action,
                changes,
                reason: skip,
                adjusted: adjusted.get(key).copied(),
                live_uid,
                live_resource_version,
                live_object,
            });
        }
        if prune_scope.is_some() {
            for (key, l) in live_by_key {
                let deleting = l.pointer("/metadata/deletionTimestamp").is_some();
                if deleting
                    || !opts.filter.selects(&key)
                    || !protected.may_prune(&key)
                    || actions::skip_reason(&key, &l, &state).is_some()
                {
                    continue;
                }
                prune_candidates.push((key, l));
            }
        }
    }
    // Only what the recorded resource set selects.
    if let Some(scope) = prune_scope {
        let mut candidates = DesiredState::from_entries(prune_candidates);
        candidates.retain_selected(scope);
        for (key, l) in candidates.iter() {
            let live_uid = l
                .pointer("/metadata/uid")
                .and_then(Value::as_str)
                .map(str::to_owned);
            items.push(PlanItem {
                key: key.clone(),
                action: Action::Delete,
                changes: Vec::new(),
                reason: None,
                adjusted: None,
                live_uid,
                live_resource_version: None,
                live_object: None,
            });
        }
    }
    // Types not read at all: every object is skipped by a restore action.
    let listed_types: std::collections::HashSet<&ResourceType> =
        items.iter().map(|i| &i.key.rtype).collect();
    let unlisted: Vec<PlanItem> = state
        .iter()
        .filter(|(k, _)| !listed_types.contains(&k.rtype))
        .filter_map(|(k, _)| {
            action_skips.get(k).map(|r| PlanItem {
                key: k.clone(),
                action: Action::Skip,
                changes: Vec::new(),
                reason: Some(*r),
                adjusted: None,
                live_uid: None,
                live_resource_version: None,
                live_object: None,
            })
        })
        .collect();
    items.extend(unlisted);
    rewire_check(&state, &mut items, &live_ref_uids);
    items.sort_by(|a, b| a.key.cmp(&b.key).then(a.action.cmp(&b.action)));
    let id = plan_id(&state, opts);
    tracing::info!(plan = %id, objects = state.len(), items = items.len(), "restore planned");
    Ok(RestorePlan {
        id,
        items,
        status_modes: modes.iter().map(|(t, m)| (t.to_string(), *m)).collect(),
        preset,
        outside_owners,
        warnings,
        state,
        modes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn compare_ignores_server_fields_and_owner_uids() {
        let recorded = json!({
            "metadata": {"name": "a", "uid": "old", "resourceVersion": "5",
                         "ownerReferences": [{"apiVersion": "v1", "kind": "X", "name": "o", "uid": "old-o"}]},
            "spec": {"a": 1}, "status": {"phase": "Ready"}
        });
        let live = json!({
            "metadata": {"name": "a", "uid": "new", "resourceVersion": "9", "generation": 1,
                         "ownerReferences": [{"apiVersion": "v1", "kind": "X", "name": "o", "uid": "new-o"}]},
            "spec": {"a": 1, "defaulted": true}, "status": {"phase": "Ready", "extra": 1}
        });
        assert!(compare(None, &recorded, &live, StatusMode::Subresource).is_empty());
        let mut stale = live.clone();
        stale["status"]["phase"] = json!("Pending");
        assert_eq!(
            compare(None, &recorded, &stale, StatusMode::Subresource),
            vec!["status.phase"]
        );
        assert!(compare(None, &recorded, &stale, StatusMode::Skip).is_empty());
        assert_eq!(
            compare(None, &recorded, &stale, StatusMode::InBody),
            vec!["status.phase"]
        );
        stale["spec"]["a"] = json!(2);
        assert_eq!(
            compare(None, &recorded, &stale, StatusMode::Skip),
            vec!["spec.a"]
        );
    }

    /// Regression: a re-plan against a plane the restore just wrote listed
    /// every built-in object from a rewindd store (which records
    /// `apiVersion`/`kind`) as `update [apiVersion, kind]`, because the
    /// API's LIST items of built-in types carry neither.
    #[test]
    fn regression_replan_ignores_apiversion_kind_absent_live() {
        let recorded = json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "things.x.io", "uid": "old", "resourceVersion": "5"},
            "spec": {"group": "x.io", "scope": "Namespaced"},
            "status": {"storedVersions": ["v1"]}
        });
        let listed = json!({
            "metadata": {"name": "things.x.io", "uid": "new", "resourceVersion": "9"},
            "spec": {"group": "x.io", "scope": "Namespaced"},
            "status": {"storedVersions": ["v1"], "conditions": []}
        });
        for mode in [
            StatusMode::Skip,
            StatusMode::InBody,
            StatusMode::Subresource,
        ] {
            assert!(
                compare(None, &recorded, &listed, mode).is_empty(),
                "{mode:?}: {:?}",
                compare(None, &recorded, &listed, mode)
            );
        }
        // A live object that carries them (a custom resource) is the same.
        let mut typed = listed.clone();
        typed["apiVersion"] = json!("apiextensions.k8s.io/v1");
        typed["kind"] = json!("CustomResourceDefinition");
        assert!(compare(None, &recorded, &typed, StatusMode::Skip).is_empty());
        // Real differences are still seen beside the missing type fields.
        let mut changed = listed;
        changed["spec"]["scope"] = json!("Cluster");
        assert_eq!(
            compare(None, &recorded, &changed, StatusMode::Skip),
            vec!["spec.scope"]
        );
    }

    #[test]
    fn write_parts_per_mode() {
        let o = json!({"metadata": {"name": "a", "uid": "u"}, "status": {"s": 1}});
        let (b, s) = write_parts(&o, StatusMode::Subresource);
        assert!(b.get("status").is_none() && s == Some(json!({"s": 1})));
        let (b, s) = write_parts(&o, StatusMode::InBody);
        assert!(b.get("status").is_some() && s.is_none());
        let (b, s) = write_parts(&o, StatusMode::Skip);
        assert!(b.get("status").is_none() && s.is_none());
        assert!(b["metadata"].get("uid").is_none());
    }

    #[test]
    fn plan_id_depends_on_content_and_options() {
        let t = crate::live::namespace_type();
        let mut s = DesiredState::new();
        s.insert(&t, json!({"metadata": {"name": "a"}})).unwrap();
        let o = PlanOptions::default();
        let id = plan_id(&s, &o);
        assert_eq!(id, plan_id(&s.clone(), &o));
        assert_ne!(
            id,
            plan_id(
                &s,
                &PlanOptions {
                    prune: true,
                    ..o.clone()
                }
            )
        );
        s.insert(&t, json!({"metadata": {"name": "b"}})).unwrap();
        assert_ne!(id, plan_id(&s, &o));
    }
}
