//! Removing what the API server sets, so a recorded object can be written to
//! another cluster.
//!
//! A create fails when `resourceVersion` is set, and `uid`,
//! `creationTimestamp`, `generation` and `managedFields` belong to the
//! server that wrote them. `status` is split off: for custom resources with a
//! status subresource the server drops it on create, so it is written through
//! `/status` afterwards. ownerReference UIDs are left here for
//! [`rewire_owner_refs`](crate::order::rewire_owner_refs), which maps them to
//! the new owners.

use serde_json::{Map, Value};

/// The `metadata` fields the API server sets and a restore must not send.
pub const SERVER_METADATA: &[&str] = &[
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "generation",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// Removes server-set metadata from `obj` in place.
pub fn strip_server_fields(obj: &mut Value) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        for f in SERVER_METADATA {
            meta.remove(*f);
        }
        drop_empty(meta, "annotations");
        drop_empty(meta, "labels");
    }
}

fn drop_empty(meta: &mut Map<String, Value>, field: &str) {
    if meta
        .get(field)
        .is_some_and(|v| v.is_null() || v.as_object().is_some_and(Map::is_empty))
    {
        meta.remove(field);
    }
}

/// Removes and returns `status`.
pub fn take_status(obj: &mut Value) -> Option<Value> {
    obj.as_object_mut()?.remove("status")
}

/// Removes `metadata.ownerReferences[*].uid`, for comparing objects across
/// clusters where the owners' UIDs differ by construction.
pub fn drop_owner_uids(obj: &mut Value) {
    if let Some(refs) = obj
        .pointer_mut("/metadata/ownerReferences")
        .and_then(Value::as_array_mut)
    {
        for r in refs.iter_mut().filter_map(Value::as_object_mut) {
            r.remove("uid");
        }
    }
}

/// A recorded object split into what a restore writes: the body (server
/// fields and status removed) and the status, if any.
#[must_use]
pub fn split_for_write(recorded: &Value) -> (Value, Option<Value>) {
    let mut body = recorded.clone();
    strip_server_fields(&mut body);
    let status = take_status(&mut body);
    (body, status)
}

/// Whether every field of `want` has the same value in `have`: objects are
/// compared key by key (extra keys in `have` are defaults or other writers'
/// fields, which a server-side apply leaves alone), arrays element by element
/// with equal lengths, scalars by equality.
#[must_use]
pub fn is_subset(want: &Value, have: &Value) -> bool {
    match (want, have) {
        (Value::Object(w), Value::Object(h)) => w.iter().all(|(k, wv)| match h.get(k) {
            Some(hv) => is_subset(wv, hv),
            // Sending an empty map or null is the same as not sending it.
            None => wv.is_null() || wv.as_object().is_some_and(Map::is_empty),
        }),
        (Value::Array(w), Value::Array(h)) => {
            w.len() == h.len() && w.iter().zip(h).all(|(a, b)| is_subset(a, b))
        }
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => want == have,
    }
}

/// Top-level paths (`spec.replicas`, `data.key`, …, two levels deep) where
/// `want` is not a subset of `have`, for showing what an update changes.
#[must_use]
pub fn differing_paths(want: &Value, have: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let (Value::Object(w), Value::Object(h)) = (want, have) {
        for (k, wv) in w {
            match (wv, h.get(k)) {
                (Value::Object(wi), Some(Value::Object(hi))) => {
                    for (k2, wv2) in wi {
                        let same = hi.get(k2).map_or_else(
                            || wv2.is_null() || wv2.as_object().is_some_and(Map::is_empty),
                            |hv2| is_subset(wv2, hv2),
                        );
                        if !same {
                            out.push(format!("{k}.{k2}"));
                        }
                    }
                }
                (_, Some(hv)) if is_subset(wv, hv) => {}
                (_, None) if wv.is_null() => {}
                _ => out.push(k.clone()),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn recorded() -> Value {
        json!({
            "apiVersion": "management.cattle.io/v3",
            "kind": "Cluster",
            "metadata": {
                "name": "c-1", "uid": "u1", "resourceVersion": "42",
                "creationTimestamp": "2026-01-01T00:00:00Z", "generation": 3,
                "managedFields": [{"manager": "rancher"}], "selfLink": "/x",
                "deletionTimestamp": "2026-01-02T00:00:00Z", "deletionGracePeriodSeconds": 0,
                "labels": {"a": "b"}, "annotations": {},
                "finalizers": ["f"],
                "ownerReferences": [{"apiVersion": "v1", "kind": "Namespace", "name": "n", "uid": "o1"}]
            },
            "spec": {"displayName": "one"},
            "status": {"ready": true}
        })
    }

    #[test]
    fn strips_every_server_field_and_keeps_user_fields() {
        let (body, status) = split_for_write(&recorded());
        let meta = body["metadata"].as_object().unwrap();
        for f in SERVER_METADATA {
            assert!(!meta.contains_key(*f), "{f} left in {meta:?}");
        }
        assert!(
            !meta.contains_key("annotations"),
            "empty annotations dropped"
        );
        assert_eq!(meta["labels"], json!({"a": "b"}));
        assert_eq!(meta["finalizers"], json!(["f"]));
        assert_eq!(
            meta["ownerReferences"][0]["uid"], "o1",
            "rewired later, not here"
        );
        assert_eq!(body["spec"], json!({"displayName": "one"}));
        assert!(body.get("status").is_none());
        assert_eq!(status, Some(json!({"ready": true})));
    }

    #[test]
    fn subset_ignores_server_defaults_but_not_changes() {
        let want = json!({"spec": {"a": 1, "list": [{"x": 1}]}, "metadata": {"labels": {}}});
        let live = json!({"spec": {"a": 1.0, "b": "default", "list": [{"x": 1, "y": 2}]},
                          "metadata": {"name": "n"}});
        assert!(is_subset(&want, &live));
        let changed = json!({"spec": {"a": 2, "list": [{"x": 1}]}});
        assert!(!is_subset(&changed, &live));
        assert_eq!(differing_paths(&changed, &live), vec!["spec.a".to_owned()]);
        let longer = json!({"spec": {"list": [{"x": 1}, {"x": 2}]}});
        assert!(!is_subset(&longer, &live));
        assert_eq!(
            differing_paths(&json!({"data": {"k": "v"}}), &live),
            vec!["data"]
        );
    }

    #[test]
    fn owner_uids_dropped_for_comparison() {
        let mut o = recorded();
        drop_owner_uids(&mut o);
        assert!(o["metadata"]["ownerReferences"][0].get("uid").is_none());
        assert_eq!(o["metadata"]["ownerReferences"][0]["name"], "n");
    }
}
