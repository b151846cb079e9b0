//! Comparing a desired state with what a cluster holds, object by object,
//! apart from server-set fields: the check behind `rewind drill` and the
//! restore tests.
//!
//! Equal means equal after [`strip_server_fields`] on both sides, with
//! ownerReference UIDs left out (they differ between clusters by
//! construction; instead every live reference must carry its live owner's
//! UID), `apiVersion`/`kind` left out (LIST items of built-in types lack
//! them), CRD `status` left out (conditions and accepted names are the
//! server's), and what the restore actions leave to the target (a
//! Service's allocated clusterIP, …; see [`actions::adjust`]) left out.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;

use crate::actions;
use crate::live::{ApiFailure, list_all};
use crate::strip::{drop_owner_uids, strip_server_fields};
use rewind_history::state::{DesiredState, ResourceType, TypedKey};

/// One difference.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Difference {
    /// In the desired state, not in the cluster.
    Missing {
        /// The object.
        object: String,
    },
    /// In the cluster, not in the desired state.
    Extra {
        /// The object.
        object: String,
    },
    /// In both, with different content.
    Differs {
        /// The object.
        object: String,
        /// The desired object, normalized.
        want: Value,
        /// The live object, normalized.
        got: Value,
    },
    /// A live ownerReference whose UID is not its live owner's.
    DanglingOwner {
        /// The dependent.
        object: String,
        /// `kind/name` of the owner.
        owner: String,
        /// The UID the reference carries.
        uid: String,
    },
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Missing { object } => write!(f, "missing {object}"),
            Self::Extra { object } => write!(f, "extra {object}"),
            Self::Differs { object, want, got } => {
                write!(f, "differs {object}:\n  want {want}\n  got  {got}")
            }
            Self::DanglingOwner { object, owner, uid } => {
                write!(
                    f,
                    "{object}: ownerReference {owner} has uid {uid}, not the live owner's"
                )
            }
        }
    }
}

/// The part of an object a comparison looks at.
#[must_use]
pub fn normalized(key: &TypedKey, obj: &Value) -> Value {
    let mut o = obj.clone();
    // Before stripping: the actions read managedFields.
    actions::adjust(key, &mut o);
    strip_server_fields(&mut o);
    drop_owner_uids(&mut o);
    if let Some(m) = o.as_object_mut() {
        m.remove("apiVersion");
        m.remove("kind");
        if key.rtype.is_crd() {
            m.remove("status");
        }
    }
    o
}

/// Every difference between `want` and `got` (a recording of the cluster).
#[must_use]
pub fn compare(want: &DesiredState, got: &DesiredState) -> Vec<Difference> {
    let mut out = Vec::new();
    for (k, w) in want.iter() {
        match got.get(k) {
            None => out.push(Difference::Missing {
                object: k.to_string(),
            }),
            Some(g) => {
                let (nw, ng) = (normalized(k, w), normalized(k, g));
                if nw != ng {
                    out.push(Difference::Differs {
                        object: k.to_string(),
                        want: nw,
                        got: ng,
                    });
                }
            }
        }
    }
    for (k, _) in got.iter() {
        if want.get(k).is_none() {
            out.push(Difference::Extra {
                object: k.to_string(),
            });
        }
    }
    let uid_of = |o: &Value| {
        o.pointer("/metadata/uid")
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let live_uids: HashMap<(&str, &str, Option<&str>), String> = got
        .iter()
        .filter_map(|(k, o)| {
            Some((
                (
                    k.rtype.kind.as_str(),
                    k.name.as_str(),
                    k.namespace.as_deref(),
                ),
                uid_of(o)?,
            ))
        })
        .collect();
    for (k, o) in got.iter() {
        let refs = o
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array);
        for r in refs.into_iter().flatten() {
            let field = |f: &str| r.get(f).and_then(Value::as_str).unwrap_or_default();
            let (kind, name, uid) = (field("kind"), field("name"), field("uid"));
            let owner = live_uids
                .get(&(kind, name, k.namespace.as_deref()))
                .or_else(|| live_uids.get(&(kind, name, None)));
            if owner.map(String::as_str) != Some(uid) {
                out.push(Difference::DanglingOwner {
                    object: k.to_string(),
                    owner: format!("{kind}/{name}"),
                    uid: uid.to_owned(),
                });
            }
        }
    }
    out
}

/// Records the cluster's objects of `types` (LIST results, server fields
/// and all), as the daemon would.
pub async fn record(
    client: &kube::Client,
    types: &[ResourceType],
) -> Result<DesiredState, ApiFailure> {
    let mut s = DesiredState::new();
    for t in types {
        for o in list_all(client, t).await?.unwrap_or_default() {
            // A listed object always has a name and the type's scope.
            if s.insert(t, o).is_err() {
                tracing::warn!(rtype = %t, "skipping a listed object without a usable key");
            }
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::namespace_type;
    use serde_json::json;

    #[test]
    fn finds_each_kind_of_difference() {
        let t = namespace_type();
        let mut want = DesiredState::new();
        want.insert(
            &t,
            json!({"metadata": {"name": "same", "uid": "1", "resourceVersion": "5"}}),
        )
        .unwrap();
        want.insert(
            &t,
            json!({"metadata": {"name": "changed", "labels": {"a": "1"}}}),
        )
        .unwrap();
        want.insert(&t, json!({"metadata": {"name": "missing"}}))
            .unwrap();
        let mut got = DesiredState::new();
        got.insert(&t, json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "same", "uid": "9", "resourceVersion": "7"}})).unwrap();
        got.insert(
            &t,
            json!({"metadata": {"name": "changed", "uid": "c", "labels": {"a": "2"}}}),
        )
        .unwrap();
        got.insert(
            &t,
            json!({"metadata": {"name": "extra", "uid": "e",
            "ownerReferences": [{"kind": "Namespace", "name": "same", "uid": "1"}]}}),
        )
        .unwrap();
        let d: Vec<String> = compare(&want, &got)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(d.len(), 4, "{d:#?}");
        assert!(
            d.iter()
                .any(|x| x.starts_with("differs namespaces/changed"))
        );
        assert!(d.contains(&"missing namespaces/missing".to_owned()));
        assert!(d.contains(&"extra namespaces/extra".to_owned()));
        assert!(
            d.iter()
                .any(|x| x.contains("ownerReference Namespace/same has uid 1"))
        );
    }
}
