//! Field ownership from `metadata.managedFields`: whether some field manager
//! set a given field of an object.
//!
//! The API server records, for each manager, the set of fields it set
//! (`fieldsV1`): `f:<name>` for a map field, `k:<json>` for a list item
//! found by its key fields, `v:<json>` for a set item by value, `i:<n>` for
//! a list item by index, and `.` for the item itself. An empty set at a
//! field means the field is owned whole (a leaf, or an atomic list or map),
//! descendants included.
//!
//! Values the server allocates on create (a Service's `clusterIP`, its
//! `nodePort`s) and defaults filled on read are owned by nobody, while a
//! label, annotation or spec field another client added is owned by that
//! client's manager. The restore uses this to tell the two apart.

use serde_json::Value;

/// One step of a path into an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seg<'a> {
    /// A map key.
    Key(&'a str),
    /// A list index.
    Index(usize),
}

/// Whether any managedFields entry of `obj` owns the field at `path` (a
/// path into `obj` itself, so list items can be matched by their keys).
#[must_use]
pub fn owned(obj: &Value, path: &[Seg<'_>]) -> bool {
    managed_sets(obj).any(|set| walk(set, path, obj))
}

/// The `fieldsV1` sets of `obj`'s managedFields entries.
fn managed_sets(obj: &Value) -> impl Iterator<Item = &Value> {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| e.get("fieldsV1"))
}

fn walk(set: &Value, path: &[Seg<'_>], at: &Value) -> bool {
    let Some((first, rest)) = path.split_first() else {
        return true;
    };
    let Some(map) = set.as_object() else {
        return false;
    };
    if map.is_empty() {
        // Owned whole: everything below it too.
        return true;
    }
    match *first {
        Seg::Key(k) => map
            .get(&format!("f:{k}"))
            .is_some_and(|child| walk(child, rest, at.get(k).unwrap_or(&Value::Null))),
        Seg::Index(i) => {
            let Some(elem) = at.get(i) else {
                return false;
            };
            map.iter()
                .any(|(mk, child)| item_matches(mk, i, elem) && walk(child, rest, elem))
        }
    }
}

/// Whether the set key `mk` names the list item `elem` at index `i`.
fn item_matches(mk: &str, i: usize, elem: &Value) -> bool {
    if let Some(js) = mk.strip_prefix("k:") {
        let Ok(Value::Object(keys)) = serde_json::from_str::<Value>(js) else {
            return false;
        };
        keys.iter()
            .all(|(k, v)| elem.get(k).is_some_and(|e| same_scalar(v, e)))
    } else if let Some(js) = mk.strip_prefix("v:") {
        serde_json::from_str::<Value>(js).is_ok_and(|v| same_scalar(&v, elem))
    } else if let Some(n) = mk.strip_prefix("i:") {
        n.parse::<usize>().is_ok_and(|n| n == i)
    } else {
        false
    }
}

/// Equality where numbers compare by value (`80` and `80.0` are one port).
fn same_scalar(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc() -> Value {
        json!({
            "metadata": {
                "name": "s",
                "labels": {"app": "a", "extra": "x"},
                "managedFields": [
                    {"manager": "kubectl", "operation": "Update", "fieldsV1": {
                        "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                        "f:spec": {"f:ports": {
                            "k:{\"port\":80,\"protocol\":\"TCP\"}": {".": {}, "f:port": {}, "f:nodePort": {}}
                        }, "f:selector": {}}
                    }},
                    {"manager": "other", "operation": "Apply", "fieldsV1": {
                        "f:metadata": {"f:labels": {"f:extra": {}}}
                    }}
                ]
            },
            "spec": {
                "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080},
                          {"port": 443, "protocol": "TCP", "nodePort": 30443}],
                "selector": {"app": "a"},
                "clusterIP": "10.0.0.1"
            }
        })
    }

    #[test]
    fn finds_owned_map_fields_and_list_items_by_key() {
        let o = svc();
        let k = Seg::Key;
        assert!(owned(&o, &[k("metadata"), k("labels"), k("app")]));
        assert!(owned(&o, &[k("metadata"), k("labels"), k("extra")]));
        assert!(!owned(&o, &[k("metadata"), k("labels"), k("nobody")]));
        assert!(owned(
            &o,
            &[k("spec"), k("ports"), Seg::Index(0), k("nodePort")]
        ));
        // The second port's nodePort was allocated: nobody set it.
        assert!(!owned(
            &o,
            &[k("spec"), k("ports"), Seg::Index(1), k("nodePort")]
        ));
        assert!(!owned(&o, &[k("spec"), k("clusterIP")]));
        // An atomic map owns what is below it.
        assert!(owned(&o, &[k("spec"), k("selector"), k("app")]));
    }

    #[test]
    fn set_and_index_items() {
        let o = json!({
            "metadata": {"finalizers": ["a", "b"], "managedFields": [
                {"manager": "m", "fieldsV1": {"f:metadata": {"f:finalizers": {"v:\"b\"": {}}},
                                              "f:spec": {"f:list": {"i:1": {"f:x": {}}}}}}
            ]},
            "spec": {"list": [{"x": 1}, {"x": 2}]}
        });
        let k = Seg::Key;
        assert!(owned(&o, &[k("metadata"), k("finalizers"), Seg::Index(1)]));
        assert!(!owned(&o, &[k("metadata"), k("finalizers"), Seg::Index(0)]));
        assert!(owned(&o, &[k("spec"), k("list"), Seg::Index(1), k("x")]));
        assert!(!owned(&o, &[k("spec"), k("list"), Seg::Index(0), k("x")]));
        assert!(!owned(&json!({"spec": {}}), &[k("spec")]));
    }
}
