//! ownerReferences to owners the state does not hold, resolved against the
//! target: an owner that exists live (outside the restored selection, or
//! never recorded) keeps its reference, rewired to its live UID, as Rancher
//! Backups does; a reference to an owner that exists neither in the state
//! nor live is dropped, because a reference to a UID that does not exist
//! lets the garbage collector delete the dependent.
//!
//! References to owners in the state are left to
//! [`rewire_owner_refs`](crate::order::rewire_owner_refs) at write time,
//! when the owners' new UIDs are known.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use futures::{StreamExt, stream};
use kube::Client;
use kube::core::GroupVersionKind;
use kube::discovery::Scope;
use serde::Serialize;
use serde_json::Value;

use crate::live::api_for;
use crate::order::OwnerIndex;
use rewind_history::state::{DesiredState, ResourceType, TypedKey};

/// Concurrent lookups against the target.
const LOOKUPS: usize = 16;

/// An ownerReference whose owner is not in the state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutsideOwner {
    /// The dependent.
    pub object: String,
    /// `kind/name` of the owner.
    pub owner: String,
    /// The owner's live UID the reference now carries; `None` when the
    /// owner does not exist in the target and the reference is dropped.
    pub live_uid: Option<String>,
}

/// (group, kind, owner namespace, owner name).
type OwnerId = (String, String, Option<String>, String);

/// Owners wanted per (group, version, kind): (dependent namespace, name).
type Wanted = BTreeMap<(String, String, String), BTreeSet<(Option<String>, String)>>;

fn group_version(api_version: &str) -> (&str, &str) {
    api_version.rsplit_once('/').unwrap_or(("", api_version))
}

fn refs(obj: &Value) -> impl Iterator<Item = &Value> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// The type an owner's `apiVersion`/`kind` names: from the state's types
/// when it holds that kind, else from the target's discovery. `None` when
/// the target does not serve it.
async fn owner_type(
    client: &Client,
    known: &[ResourceType],
    group: &str,
    version: &str,
    kind: &str,
) -> Option<ResourceType> {
    if let Some(t) = known.iter().find(|t| t.group == group && t.kind == kind) {
        return Some(t.clone());
    }
    let gvk = GroupVersionKind::gvk(group, version, kind);
    match kube::discovery::pinned_kind(client, &gvk).await {
        Ok((ar, caps)) => Some(ResourceType {
            group: ar.group,
            version: ar.version,
            resource: ar.plural,
            kind: ar.kind,
            namespaced: caps.scope == Scope::Namespaced,
        }),
        Err(e) => {
            tracing::debug!(group, version, kind, error = %e, "owner type not served by the target");
            None
        }
    }
}

/// Resolves every ownerReference of the objects `include` selects whose
/// owner is not in `state` against the target, rewriting `state` in place:
/// each such reference gets the live owner's UID, or is removed when the
/// owner does not exist live. Returns one entry per such reference.
pub async fn resolve_outside_owners(
    client: &Client,
    state: &mut DesiredState,
    include: impl Fn(&TypedKey) -> bool,
) -> Vec<OutsideOwner> {
    let idx = OwnerIndex::new(state);
    let mut wanted = Wanted::new();
    for (key, obj) in state.iter().filter(|(k, _)| include(k)) {
        for r in refs(obj) {
            if idx.resolve(key.namespace.as_deref(), r).is_some() {
                continue;
            }
            let (Some(api_version), Some(kind), Some(name)) = (
                r.get("apiVersion").and_then(Value::as_str),
                r.get("kind").and_then(Value::as_str),
                r.get("name").and_then(Value::as_str),
            ) else {
                continue;
            };
            let (group, version) = group_version(api_version);
            wanted
                .entry((group.to_owned(), version.to_owned(), kind.to_owned()))
                .or_default()
                .insert((key.namespace.clone(), name.to_owned()));
        }
    }
    if wanted.is_empty() {
        return Vec::new();
    }
    let known: Vec<ResourceType> = state.types().into_iter().collect();
    let mut lookups: Vec<(ResourceType, Option<String>, String)> = Vec::new();
    let mut unserved: BTreeSet<(String, String)> = BTreeSet::new();
    for ((group, version, kind), owners) in &wanted {
        let Some(t) = owner_type(client, &known, group, version, kind).await else {
            unserved.insert((group.clone(), kind.clone()));
            continue;
        };
        for (dep_ns, name) in owners {
            // A namespaced owner is in its dependent's namespace; a
            // cluster-scoped dependent cannot have one.
            let ns = if t.namespaced {
                match dep_ns {
                    Some(ns) => Some(ns.clone()),
                    None => continue,
                }
            } else {
                None
            };
            lookups.push((t.clone(), ns, name.clone()));
        }
    }
    let found: HashMap<OwnerId, String> = stream::iter(lookups)
        .map(|(t, ns, name)| async move {
            let got = api_for(client, &t, ns.as_deref()).get_metadata(&name).await;
            let uid = match got {
                Ok(m) => m.metadata.uid,
                Err(e) => {
                    tracing::debug!(owner = %t, name, error = %e, "owner not found in the target");
                    None
                }
            };
            uid.map(|u| ((t.group.clone(), t.kind.clone(), ns, name), u))
        })
        .buffer_unordered(LOOKUPS)
        .filter_map(|x| async move { x })
        .collect()
        .await;

    let mut out = Vec::new();
    for (key, obj) in state.iter_mut() {
        if !include(key) {
            continue;
        }
        let Some(list) = obj
            .pointer_mut("/metadata/ownerReferences")
            .and_then(Value::as_array_mut)
        else {
            continue;
        };
        let mut changed = false;
        list.retain_mut(|r| {
            if idx.resolve(key.namespace.as_deref(), r).is_some() {
                return true;
            }
            let field = |f: &str| r.get(f).and_then(Value::as_str).unwrap_or_default();
            let (group, _) = group_version(field("apiVersion"));
            let (kind, name) = (field("kind").to_owned(), field("name").to_owned());
            let uid = [key.namespace.clone(), None]
                .into_iter()
                .find_map(|ns| found.get(&(group.to_owned(), kind.clone(), ns, name.clone())));
            out.push(OutsideOwner {
                object: key.to_string(),
                owner: format!("{kind}/{name}"),
                live_uid: uid.cloned(),
            });
            changed = true;
            match (uid, r.as_object_mut()) {
                (Some(u), Some(m)) => {
                    m.insert("uid".into(), Value::String(u.clone()));
                    true
                }
                _ => false,
            }
        });
        if changed
            && list.is_empty()
            && let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut)
        {
            meta.remove("ownerReferences");
        }
    }
    for (group, kind) in unserved {
        tracing::info!(
            group,
            kind,
            "owners of a type the target does not serve are dropped"
        );
    }
    out
}
