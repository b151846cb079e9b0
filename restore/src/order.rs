//! The order a restore writes in, and ownerReference rewiring.
//!
//! Phases: CRDs first (their objects cannot be written before they are
//! Established), then Namespaces (everything namespaced needs one), then all
//! other objects in *levels*: level 0 has no owner in the state, level n+1
//! objects have their deepest owner at level n, or, under a reference rule
//! of the `rancher` preset (GlobalRole before GlobalRoleBinding, Cluster
//! before Project, ...: [`ReferenceRule`]), the deepest object of a type
//! they reference; and within a level
//! cluster-scoped objects go before namespaced ones; last, admission
//! webhooks and policies and APIServices (see [`writes_last`]). Objects of one level are
//! independent and are written in parallel. An ownership cycle (which the API
//! allows but garbage collection never resolves) is broken by putting its
//! members at level 0 and reporting them.
//!
//! Owners are found by the UID recorded in the ownerReference (the owner's
//! recorded `metadata.uid`), falling back to group, kind and name, because
//! UIDs differ between the recorded cluster and the target.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use crate::actions::writes_last;
use rewind_history::select::preset::{self, GroupKind, ReferenceRule};
use rewind_history::state::{DesiredState, TypedKey};

/// Index from ownerReferences to the owners' keys in a state.
#[derive(Debug, Default)]
pub struct OwnerIndex {
    /// Recorded `metadata.uid` to key.
    by_uid: HashMap<String, TypedKey>,
    /// (group, kind, namespace, name) to key, for references whose UID the
    /// recording does not know.
    by_name: HashMap<(String, String, Option<String>, String), TypedKey>,
}

impl OwnerIndex {
    /// Indexes every object of `state`.
    #[must_use]
    pub fn new(state: &DesiredState) -> Self {
        let mut idx = Self::default();
        for (key, obj) in state.iter() {
            if let Some(uid) = obj.pointer("/metadata/uid").and_then(Value::as_str) {
                idx.by_uid.insert(uid.to_owned(), key.clone());
            }
            idx.by_name.insert(
                (
                    key.rtype.group.clone(),
                    key.rtype.kind.clone(),
                    key.namespace.clone(),
                    key.name.clone(),
                ),
                key.clone(),
            );
        }
        idx
    }

    /// The key of the owner `reference` names, for a dependent in
    /// `dependent_ns`.
    #[must_use]
    pub fn resolve(&self, dependent_ns: Option<&str>, reference: &Value) -> Option<&TypedKey> {
        if let Some(k) = reference
            .get("uid")
            .and_then(Value::as_str)
            .and_then(|u| self.by_uid.get(u))
        {
            return Some(k);
        }
        let api_version = reference.get("apiVersion").and_then(Value::as_str)?;
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        let kind = reference.get("kind").and_then(Value::as_str)?;
        let name = reference.get("name").and_then(Value::as_str)?;
        let lookup = |ns: Option<&str>| {
            self.by_name.get(&(
                group.to_owned(),
                kind.to_owned(),
                ns.map(str::to_owned),
                name.to_owned(),
            ))
        };
        // An owner is in the dependent's namespace or cluster-scoped.
        dependent_ns
            .and_then(|ns| lookup(Some(ns)))
            .or_else(|| lookup(None))
    }
}

fn owner_refs(obj: &Value) -> &[Value] {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// A restore's write order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Phases {
    /// CustomResourceDefinitions.
    pub crds: Vec<TypedKey>,
    /// Namespaces.
    pub namespaces: Vec<TypedKey>,
    /// All other objects, level by level (owners before dependents), each
    /// ownership level split in two: cluster-scoped objects, then
    /// namespaced ones.
    pub levels: Vec<Vec<TypedKey>>,
    /// Admission webhooks and policies and APIServices, after every level:
    /// one whose backend is not back yet cannot reject the other writes.
    pub last: Vec<TypedKey>,
    /// Objects in an ownership cycle, placed at level 0.
    pub cycles: Vec<TypedKey>,
}

/// Computes the write order of every object in `state`, with the
/// reference rules of the `rancher` preset (they name only Rancher's types,
/// so they order nothing else).
#[must_use]
pub fn phases(state: &DesiredState) -> Phases {
    phases_with(state, builtin_references())
}

/// The `rancher` preset's reference rules, read once.
fn builtin_references() -> &'static [ReferenceRule] {
    static RULES: std::sync::OnceLock<Vec<ReferenceRule>> = std::sync::OnceLock::new();
    RULES.get_or_init(|| {
        preset::rancher_references().unwrap_or_else(|e| {
            // A build defect (the file is embedded): order by ownership alone.
            tracing::warn!(error = %e, "the rancher preset's reference rules do not parse");
            Vec::new()
        })
    })
}

/// Computes the write order of every object in `state`; objects of a type
/// that `references` names as referenced go in an earlier level than the
/// objects of the types referencing it.
#[must_use]
pub fn phases_with(state: &DesiredState, references: &[ReferenceRule]) -> Phases {
    let idx = OwnerIndex::new(state);
    let mut out = Phases::default();
    // Owner edges among the "rest" objects only: CRDs and Namespaces are
    // written in earlier phases, so an edge to them never delays anything.
    // A Namespace owned by another object (Rancher's cluster namespaces can
    // be) cannot go in the early phase: its owner's new UID is not known
    // yet. It joins the levels, and so do its contents, after it.
    let owned = |key: &TypedKey, obj: &Value| {
        owner_refs(obj)
            .iter()
            .filter_map(|r| idx.resolve(key.namespace.as_deref(), r))
            .any(|o| !o.rtype.is_crd() && !o.rtype.is_namespace())
    };
    let late_ns: HashMap<&str, &TypedKey> = state
        .iter()
        .filter(|(k, o)| k.rtype.is_namespace() && owned(k, o))
        .map(|(k, _)| (k.name.as_str(), k))
        .collect();
    let mut owners: BTreeMap<&TypedKey, Vec<&TypedKey>> = BTreeMap::new();
    for (key, obj) in state.iter() {
        if key.rtype.is_crd() {
            out.crds.push(key.clone());
        } else if writes_last(&key.rtype) {
            out.last.push(key.clone());
        } else if key.rtype.is_namespace() && !late_ns.contains_key(key.name.as_str()) {
            out.namespaces.push(key.clone());
        } else {
            let mut os: Vec<&TypedKey> = owner_refs(obj)
                .iter()
                .filter_map(|r| idx.resolve(key.namespace.as_deref(), r))
                .filter(|o| {
                    !o.rtype.is_crd()
                        && (!o.rtype.is_namespace() || late_ns.contains_key(o.name.as_str()))
                        && *o != key
                })
                .collect();
            if let Some(ns) = key.namespace.as_deref().and_then(|ns| late_ns.get(ns)) {
                os.push(ns);
            }
            owners.insert(key, os);
        }
    }
    let (level, cycles) = levels_with_references(&owners, references);
    out.cycles = cycles;
    // Each ownership level in two sub-levels: cluster-scoped objects, then
    // namespaced ones (a namespaced object may name a cluster-scoped one:
    // a RoleBinding its ClusterRole, a Project its Cluster).
    for (key, l) in level {
        let sub = l
            .saturating_mul(2)
            .saturating_add(usize::from(key.rtype.namespaced));
        if out.levels.len() <= sub {
            out.levels.resize_with(sub.saturating_add(1), Vec::new);
        }
        if let Some(bucket) = out.levels.get_mut(sub) {
            bucket.push(key.clone());
        }
    }
    out.levels.retain(|b| !b.is_empty());
    for bucket in &mut out.levels {
        bucket.sort();
    }
    out.cycles.sort();
    out
}

/// A type for reference rules: group and kind.
fn group_kind(key: &TypedKey) -> GroupKind {
    GroupKind {
        group: key.rtype.group.clone(),
        kind: key.rtype.kind.clone(),
    }
}

/// The levels of the objects in `owners` (each with its owners): one past
/// its deepest owner, and one past every object of the types it references
/// (`references`); an ownership cycle's members go to level 0 and are
/// returned. A level floor per type is found by repeating the ownership
/// pass until no floor rises; reference rules that form a cycle with each
/// other or with ownership stop rising after one pass per type and leave
/// the order of that cycle as ownership alone gives it.
fn levels_with_references<'a>(
    owners: &BTreeMap<&'a TypedKey, Vec<&'a TypedKey>>,
    references: &[ReferenceRule],
) -> (HashMap<&'a TypedKey, usize>, Vec<TypedKey>) {
    // Referencing type -> the types it references.
    let mut referenced_by: HashMap<GroupKind, Vec<&GroupKind>> = HashMap::new();
    for r in references {
        for t in &r.referencing {
            if *t != r.referenced {
                referenced_by
                    .entry(t.clone())
                    .or_default()
                    .push(&r.referenced);
            }
        }
    }
    let mut floors: HashMap<GroupKind, usize> = HashMap::new();
    let passes = referenced_by.len().saturating_add(1);
    let mut pass = 0;
    loop {
        let (level, cycles) = ownership_levels(owners, &floors);
        pass += 1;
        if referenced_by.is_empty() || pass > passes {
            return (level, cycles);
        }
        // The deepest level of each type's objects.
        let mut deepest: HashMap<GroupKind, usize> = HashMap::new();
        for (k, l) in &level {
            let d = deepest.entry(group_kind(k)).or_insert(0);
            *d = (*d).max(*l);
        }
        let mut risen = false;
        for (t, refs) in &referenced_by {
            let Some(want) = refs
                .iter()
                .filter_map(|r| deepest.get(*r))
                .map(|l| l.saturating_add(1))
                .max()
            else {
                continue;
            };
            if deepest.contains_key(t) && floors.get(t).copied().unwrap_or(0) < want {
                floors.insert(t.clone(), want);
                risen = true;
            }
        }
        if !risen {
            return (level, cycles);
        }
    }
}

/// Ownership levels with a floor per type (see
/// [`levels_with_references`]).
fn ownership_levels<'a>(
    owners: &BTreeMap<&'a TypedKey, Vec<&'a TypedKey>>,
    floors: &HashMap<GroupKind, usize>,
) -> (HashMap<&'a TypedKey, usize>, Vec<TypedKey>) {
    let floor = |k: &TypedKey| {
        if floors.is_empty() {
            0
        } else {
            floors.get(&group_kind(k)).copied().unwrap_or(0)
        }
    };
    let mut cycles = Vec::new();
    let mut level: HashMap<&TypedKey, usize> = HashMap::new();
    for &start in owners.keys() {
        if level.contains_key(start) {
            continue;
        }
        // Iterative depth-first search: deep ownership chains must not
        // overflow the stack. `on_path` detects cycles.
        let mut stack: Vec<(&TypedKey, usize)> = vec![(start, 0)];
        let mut on_path: Vec<&TypedKey> = vec![start];
        while let Some(&(node, next)) = stack.last() {
            let deps = owners.get(node).map_or(&[][..], Vec::as_slice);
            match deps.get(next) {
                Some(&owner) => {
                    if let Some(top) = stack.last_mut() {
                        top.1 += 1;
                    }
                    if level.contains_key(owner) {
                        continue;
                    }
                    if on_path.contains(&owner) {
                        // Cycle: its members go to level 0, reported.
                        level.insert(owner, floor(owner));
                        cycles.push(owner.clone());
                        continue;
                    }
                    stack.push((owner, 0));
                    on_path.push(owner);
                }
                None => {
                    let l = deps
                        .iter()
                        .filter_map(|o| level.get(o))
                        .map(|l| l + 1)
                        .max()
                        .unwrap_or(0)
                        .max(floor(node));
                    level.entry(node).or_insert(l);
                    stack.pop();
                    on_path.pop();
                }
            }
        }
    }
    (level, cycles)
}

/// An ownerReference a restore dropped because its owner is not restored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DroppedRef {
    /// The dependent.
    pub object: String,
    /// `kind/name` of the missing owner.
    pub owner: String,
}

/// Rewrites the ownerReference UIDs of `body` (an object about to be
/// written) to the owners' UIDs in the target, from `new_uids`. References
/// whose owner is in the state but has no UID in the target (not written,
/// or its write failed) are dropped: a reference to a UID that does not
/// exist would let the garbage collector delete the dependent. References
/// to owners outside the state are kept as they are: the plan has already
/// pointed them at the live owner (see [`crate::owners`]).
pub fn rewire_owner_refs(
    key: &TypedKey,
    body: &mut Value,
    idx: &OwnerIndex,
    new_uids: &HashMap<TypedKey, String>,
) -> Vec<DroppedRef> {
    let mut dropped = Vec::new();
    let Some(refs) = body
        .pointer_mut("/metadata/ownerReferences")
        .and_then(Value::as_array_mut)
    else {
        return dropped;
    };
    refs.retain_mut(|r| {
        let Some(owner) = idx.resolve(key.namespace.as_deref(), r) else {
            // An owner outside the state: the plan resolved it against the
            // target (live UID, or the reference dropped).
            return true;
        };
        let uid = new_uids.get(owner);
        match (uid, r.as_object_mut()) {
            (Some(uid), Some(m)) => {
                m.insert("uid".into(), Value::String(uid.clone()));
                true
            }
            _ => {
                let kind = r.get("kind").and_then(Value::as_str).unwrap_or("?");
                let name = r.get("name").and_then(Value::as_str).unwrap_or("?");
                dropped.push(DroppedRef {
                    object: key.to_string(),
                    owner: format!("{kind}/{name}"),
                });
                false
            }
        }
    });
    if refs.is_empty()
        && let Some(meta) = body.get_mut("metadata").and_then(Value::as_object_mut)
    {
        meta.remove("ownerReferences");
    }
    dropped
}

/// After a server-side apply, the live ownerReferences are the union of
/// ours and those other field managers own: a reference to the owner's old
/// UID (same kind and name, another UID) written by the original creator
/// survives the apply. Returns the list without such stale references when
/// there are any, for a follow-up patch that replaces the list.
#[must_use]
pub fn without_stale_refs(ours: &Value, live: &[Value]) -> Option<Vec<Value>> {
    let ours: Vec<(&str, &str, &str)> = owner_refs(ours)
        .iter()
        .filter_map(|r| {
            Some((
                r.get("kind")?.as_str()?,
                r.get("name")?.as_str()?,
                r.get("uid")?.as_str()?,
            ))
        })
        .collect();
    let stale = |r: &Value| {
        let kind = r.get("kind").and_then(Value::as_str);
        let name = r.get("name").and_then(Value::as_str);
        let uid = r.get("uid").and_then(Value::as_str);
        ours.iter()
            .any(|(k, n, u)| Some(*k) == kind && Some(*n) == name && Some(*u) != uid)
    };
    if !live.iter().any(stale) {
        return None;
    }
    Some(live.iter().filter(|r| !stale(r)).cloned().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rewind_history::state::ResourceType;
    use serde_json::json;

    fn t(kind: &str, resource: &str, namespaced: bool) -> ResourceType {
        ResourceType {
            group: "g.io".into(),
            version: "v1".into(),
            resource: resource.into(),
            kind: kind.into(),
            namespaced,
        }
    }

    fn obj(name: &str, uid: &str, owners: &[(&str, &str, &str)]) -> Value {
        let refs: Vec<Value> = owners
            .iter()
            .map(|(kind, name, uid)| json!({"apiVersion": "g.io/v1", "kind": kind, "name": name, "uid": uid}))
            .collect();
        json!({"metadata": {"name": name, "namespace": "ns", "uid": uid, "ownerReferences": refs}})
    }

    fn state() -> (DesiredState, ResourceType) {
        let a = t("A", "as", true);
        let mut s = DesiredState::new();
        s.insert(&a, obj("root", "u-root", &[])).unwrap();
        s.insert(&a, obj("mid", "u-mid", &[("A", "root", "u-root")]))
            .unwrap();
        s.insert(
            &a,
            obj(
                "leaf",
                "u-leaf",
                &[("A", "mid", "u-mid"), ("A", "root", "u-root")],
            ),
        )
        .unwrap();
        // Owner not in the state: stays at level 0.
        s.insert(&a, obj("orphan", "u-o", &[("A", "gone", "u-gone")]))
            .unwrap();
        // Referenced by name only (UID unknown to the recording).
        s.insert(&a, obj("byname", "u-b", &[("A", "mid", "other-uid")]))
            .unwrap();
        let ns_t = ResourceType {
            group: String::new(),
            version: "v1".into(),
            resource: "namespaces".into(),
            kind: "Namespace".into(),
            namespaced: false,
        };
        s.insert(&ns_t, json!({"metadata": {"name": "ns", "uid": "u-ns"}}))
            .unwrap();
        (s, a)
    }

    fn names(keys: &[TypedKey]) -> Vec<&str> {
        keys.iter().map(|k| k.name.as_str()).collect()
    }

    #[test]
    fn levels_put_owners_first() {
        let (s, _) = state();
        let p = phases(&s);
        assert_eq!(names(&p.namespaces), vec!["ns"]);
        assert_eq!(p.levels.len(), 3);
        assert_eq!(names(&p.levels[0]), vec!["orphan", "root"]);
        assert_eq!(names(&p.levels[1]), vec!["mid"]);
        assert_eq!(names(&p.levels[2]), vec!["byname", "leaf"]);
        assert!(p.cycles.is_empty());
    }

    #[test]
    fn owned_namespace_goes_after_its_owner_and_before_its_contents() {
        let c = ResourceType {
            namespaced: false,
            ..t("C", "cs", false)
        };
        let ns_t = ResourceType {
            group: String::new(),
            version: "v1".into(),
            resource: "namespaces".into(),
            kind: "Namespace".into(),
            namespaced: false,
        };
        let mut s = DesiredState::new();
        s.insert(&c, json!({"metadata": {"name": "c1", "uid": "uc"}}))
            .unwrap();
        s.insert(&ns_t, json!({"metadata": {"name": "c1", "uid": "un",
            "ownerReferences": [{"apiVersion": "g.io/v1", "kind": "C", "name": "c1", "uid": "uc"}]}}))
            .unwrap();
        s.insert(&ns_t, json!({"metadata": {"name": "free", "uid": "uf"}}))
            .unwrap();
        let a = t("A", "as", true);
        s.insert(
            &a,
            json!({"metadata": {"name": "in-c1", "namespace": "c1"}}),
        )
        .unwrap();
        s.insert(
            &a,
            json!({"metadata": {"name": "in-free", "namespace": "free"}}),
        )
        .unwrap();
        let p = phases(&s);
        assert_eq!(names(&p.namespaces), vec!["free"]);
        // Level 0: the cluster-scoped owner, then the namespaced object.
        assert_eq!(names(&p.levels[0]), vec!["c1"]);
        assert_eq!(names(&p.levels[1]), vec!["in-free"]);
        assert_eq!(names(&p.levels[2]), vec!["c1"]);
        assert_eq!(p.levels[2][0].rtype, ns_t);
        assert_eq!(names(&p.levels[3]), vec!["in-c1"]);
    }

    #[test]
    fn admission_objects_and_apiservices_go_last() {
        let (mut s, _) = state();
        let vwc = ResourceType {
            group: "admissionregistration.k8s.io".into(),
            version: "v1".into(),
            resource: "validatingwebhookconfigurations".into(),
            kind: "ValidatingWebhookConfiguration".into(),
            namespaced: false,
        };
        let api = ResourceType {
            group: "apiregistration.k8s.io".into(),
            resource: "apiservices".into(),
            kind: "APIService".into(),
            ..vwc.clone()
        };
        s.insert(&vwc, json!({"metadata": {"name": "hook"}}))
            .unwrap();
        s.insert(&api, json!({"metadata": {"name": "v1.x.io"}}))
            .unwrap();
        let p = phases(&s);
        assert_eq!(names(&p.last), vec!["hook", "v1.x.io"]);
        assert!(
            p.levels
                .iter()
                .flatten()
                .all(|k| k.rtype != vwc && k.rtype != api)
        );
    }

    #[test]
    fn cycle_is_broken_and_reported() {
        let a = t("A", "as", true);
        let mut s = DesiredState::new();
        s.insert(&a, obj("x", "ux", &[("A", "y", "uy")])).unwrap();
        s.insert(&a, obj("y", "uy", &[("A", "x", "ux")])).unwrap();
        let p = phases(&s);
        let total: usize = p.levels.iter().map(Vec::len).sum();
        assert_eq!(total, 2, "every object placed once: {p:?}");
        assert_eq!(p.cycles.len(), 1);
    }

    #[test]
    fn deep_chain_does_not_overflow() {
        let a = t("A", "as", true);
        let mut s = DesiredState::new();
        s.insert(&a, obj("n0", "u0", &[])).unwrap();
        for i in 1..5000 {
            let owner = format!("n{}", i - 1);
            let ouid = format!("u{}", i - 1);
            s.insert(
                &a,
                obj(&format!("n{i}"), &format!("u{i}"), &[("A", &owner, &ouid)]),
            )
            .unwrap();
        }
        let p = phases(&s);
        assert_eq!(p.levels.len(), 5000);
    }

    #[test]
    fn stale_refs_to_a_recreated_owner_are_found() {
        let ours =
            json!({"metadata": {"ownerReferences": [{"kind": "A", "name": "o", "uid": "new"}]}});
        let live = vec![
            json!({"kind": "A", "name": "o", "uid": "old"}),
            json!({"kind": "A", "name": "o", "uid": "new"}),
            json!({"kind": "B", "name": "other", "uid": "b"}),
        ];
        let fixed = without_stale_refs(&ours, &live).unwrap();
        assert_eq!(fixed, vec![live[1].clone(), live[2].clone()]);
        assert_eq!(without_stale_refs(&ours, &fixed), None);
    }

    #[test]
    fn rewire_maps_uids_drops_unwritten_owners_keeps_outside_ones() {
        let (s, a) = state();
        let idx = OwnerIndex::new(&s);
        let leaf = TypedKey {
            rtype: a.clone(),
            namespace: Some("ns".into()),
            name: "leaf".into(),
        };
        let mid = TypedKey {
            name: "mid".into(),
            ..leaf.clone()
        };
        let mut new_uids = HashMap::new();
        new_uids.insert(mid.clone(), "new-mid".to_owned());
        // root has no new UID (its write failed): its reference is dropped.
        let mut body = s.get(&leaf).unwrap().clone();
        let dropped = rewire_owner_refs(&leaf, &mut body, &idx, &new_uids);
        let refs = body["metadata"]["ownerReferences"].as_array().unwrap();
        assert_eq!(refs.len(), 1);
        assert_eq!(refs[0]["uid"], "new-mid");
        assert_eq!(
            dropped,
            vec![DroppedRef {
                object: leaf.to_string(),
                owner: "A/root".into()
            }]
        );

        // An owner outside the state was resolved by the plan: kept.
        let orphan = TypedKey {
            name: "orphan".into(),
            ..leaf
        };
        let mut body = s.get(&orphan).unwrap().clone();
        let dropped = rewire_owner_refs(&orphan, &mut body, &idx, &new_uids);
        assert!(dropped.is_empty());
        assert_eq!(body["metadata"]["ownerReferences"][0]["uid"], "u-gone");
    }

    #[test]
    fn cluster_scoped_objects_go_before_namespaced_ones_in_a_level() {
        let role = ResourceType {
            group: "rbac.authorization.k8s.io".into(),
            version: "v1".into(),
            resource: "clusterroles".into(),
            kind: "ClusterRole".into(),
            namespaced: false,
        };
        let binding = ResourceType {
            resource: "rolebindings".into(),
            kind: "RoleBinding".into(),
            namespaced: true,
            ..role.clone()
        };
        let mut s = DesiredState::new();
        s.insert(
            &binding,
            json!({"metadata": {"name": "b", "namespace": "ns"}}),
        )
        .unwrap();
        s.insert(&role, json!({"metadata": {"name": "r"}})).unwrap();
        // An owned pair one level down splits the same way.
        let a = t("A", "as", true);
        let c = t("C", "cs", false);
        s.insert(&c, json!({"metadata": {"name": "c-root", "uid": "uc"}}))
            .unwrap();
        s.insert(
            &c,
            json!({"metadata": {"name": "c-child", "ownerReferences": [
            {"apiVersion": "g.io/v1", "kind": "C", "name": "c-root", "uid": "uc"}]}}),
        )
        .unwrap();
        s.insert(
            &a,
            json!({"metadata": {"name": "a-child", "namespace": "ns", "ownerReferences": [
            {"apiVersion": "g.io/v1", "kind": "C", "name": "c-root", "uid": "uc"}]}}),
        )
        .unwrap();
        let p = phases(&s);
        let scoped: Vec<Vec<bool>> = p
            .levels
            .iter()
            .map(|l| l.iter().map(|k| k.rtype.namespaced).collect())
            .collect();
        assert_eq!(
            scoped,
            vec![vec![false, false], vec![true], vec![false], vec![true]]
        );
        assert_eq!(names(&p.levels[0]), vec!["c-root", "r"]);
        assert_eq!(names(&p.levels[1]), vec!["b"]);
        assert_eq!(names(&p.levels[2]), vec!["c-child"]);
        assert_eq!(names(&p.levels[3]), vec!["a-child"]);
    }

    fn rancher(kind: &str, namespaced: bool) -> ResourceType {
        ResourceType {
            group: "management.cattle.io".into(),
            version: "v3".into(),
            resource: format!("{}s", kind.to_lowercase()),
            kind: kind.into(),
            namespaced,
        }
    }

    fn level_of(p: &Phases, name: &str) -> usize {
        p.levels
            .iter()
            .position(|l| l.iter().any(|k| k.name == name))
            .unwrap_or_else(|| panic!("{name} not placed: {p:?}"))
    }

    #[test]
    fn the_rancher_reference_rules_put_what_is_named_first() {
        let mut s = DesiredState::new();
        let plain = |name: &str, ns: Option<&str>| match ns {
            Some(ns) => json!({"metadata": {"name": name, "namespace": ns}}),
            None => json!({"metadata": {"name": name}}),
        };
        for (kind, namespaced, name) in [
            ("RoleTemplate", false, "rt"),
            ("GlobalRole", false, "gr"),
            ("GlobalRoleBinding", false, "grb"),
            ("Cluster", false, "c-1"),
            ("Project", true, "p-1"),
            ("ClusterRoleTemplateBinding", true, "crtb"),
            ("ProjectRoleTemplateBinding", true, "prtb"),
        ] {
            let ns = namespaced.then_some("c-1");
            s.insert(&rancher(kind, namespaced), plain(name, ns))
                .unwrap();
        }
        // A RoleBinding owned by the CRTB goes after it.
        let rb = ResourceType {
            group: "rbac.authorization.k8s.io".into(),
            version: "v1".into(),
            resource: "rolebindings".into(),
            kind: "RoleBinding".into(),
            namespaced: true,
        };
        s.insert(
            &rb,
            json!({"metadata": {"name": "rb", "namespace": "c-1", "ownerReferences": [
                {"apiVersion": "management.cattle.io/v3", "kind": "ClusterRoleTemplateBinding", "name": "crtb", "uid": "x"}]}}),
        )
        .unwrap();

        // By ownership and scope alone: two levels, whatever names what.
        let plain_order = phases_with(&s, &[]);
        assert_eq!(plain_order.levels.len(), 3);
        assert_eq!(level_of(&plain_order, "gr"), level_of(&plain_order, "grb"));

        let p = phases(&s);
        let before = |a: &str, b: &str| {
            assert!(
                level_of(&p, a) < level_of(&p, b),
                "{a} must be written before {b}: {:?}",
                p.levels
            );
        };
        before("rt", "gr");
        before("gr", "grb");
        before("rt", "crtb");
        before("grb", "crtb");
        before("c-1", "p-1");
        before("c-1", "crtb");
        before("p-1", "prtb");
        before("rt", "prtb");
        before("crtb", "rb");
        // Nothing named waits: the RoleTemplate and the Cluster go first.
        assert_eq!(names(&p.levels[0]), vec!["c-1", "rt"]);
        assert!(p.cycles.is_empty());
    }

    #[test]
    fn reference_rules_in_a_cycle_still_give_an_order() {
        let gk = |kind: &str| GroupKind {
            group: "g.io".into(),
            kind: kind.into(),
        };
        let rules = vec![
            ReferenceRule {
                referenced: gk("A"),
                referencing: vec![gk("C")],
                because: String::new(),
            },
            ReferenceRule {
                referenced: gk("C"),
                referencing: vec![gk("A")],
                because: String::new(),
            },
        ];
        let (s, _) = state();
        let mut s = s;
        s.insert(&t("C", "cs", false), json!({"metadata": {"name": "c"}}))
            .unwrap();
        let p = phases_with(&s, &rules);
        let placed: usize = p.levels.iter().map(Vec::len).sum();
        assert_eq!(placed, 6, "every object placed once: {p:?}");
    }
}
