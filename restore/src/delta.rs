//! Field-level differences between the object a restore would write and
//! the live one: what the plan shows for each `update`, and empty exactly
//! when the live object already equals the recorded one.
//!
//! Equality, with two allowances for what the target adds by itself:
//! - a field only the live object has counts only when some field manager
//!   set it (`metadata.managedFields`, see [`crate::fields`]): a label,
//!   annotation or spec field another client added after the recorded
//!   point is a difference (and the restore removes it), while defaults
//!   filled on read and values the server allocated are not;
//! - an empty map, empty list or `null` is the same as no field.
//!
//! Lists are compared item by item and must have the same length; numbers
//! compare by value (`1` and `1.0`).

use std::fmt::Write as _;
use std::sync::LazyLock;

use serde_json::Value;

use crate::fields::{Seg, owned};

/// Most paths listed for one object; past it, one `…` entry says more differ.
pub const MAX_PATHS: usize = 50;

/// The paths where `want` and `have` differ (`spec.replicas`,
/// `metadata.labels["app.kubernetes.io/name"]`, `spec.ports[1].port`, …),
/// at most [`MAX_PATHS`]. `live` is the whole live object, whose
/// managedFields say who set a field only it has; `prefix` is the path of
/// `want`/`have` within it (empty for the whole object).
#[must_use]
pub fn differences(want: &Value, have: &Value, live: &Value, prefix: &[Seg<'_>]) -> Vec<String> {
    let mut out = Vec::new();
    let mut path = prefix.to_vec();
    walk(want, have, live, &mut path, &mut out);
    if out.len() > MAX_PATHS {
        let more = out.len().saturating_sub(MAX_PATHS);
        out.truncate(MAX_PATHS);
        out.push(format!("… and {more} more"));
    }
    out
}

/// An empty map, to compare a map only one side has against.
static EMPTY: LazyLock<Value> = LazyLock::new(|| Value::Object(serde_json::Map::new()));

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

fn walk<'a>(
    want: &'a Value,
    have: &'a Value,
    live: &Value,
    path: &mut Vec<Seg<'a>>,
    out: &mut Vec<String>,
) {
    match (want, have) {
        (Value::Object(w), Value::Object(h)) => {
            for (k, wv) in w {
                path.push(Seg::Key(k));
                match h.get(k) {
                    Some(hv) => walk(wv, hv, live, path, out),
                    None if is_empty(wv) => {}
                    None => out.push(render(path)),
                }
                path.pop();
            }
            for (k, hv) in h {
                if w.contains_key(k) || is_empty(hv) {
                    continue;
                }
                path.push(Seg::Key(k));
                if hv.is_object() {
                    // A map only the live object has: its owned leaves.
                    walk(&EMPTY, hv, live, path, out);
                } else if owned(live, path) {
                    out.push(render(path));
                }
                path.pop();
            }
        }
        (Value::Array(w), Value::Array(h)) => {
            if w.len() != h.len() {
                out.push(render(path));
                return;
            }
            for (i, (wv, hv)) in w.iter().zip(h).enumerate() {
                path.push(Seg::Index(i));
                walk(wv, hv, live, path, out);
                path.pop();
            }
        }
        (Value::Number(a), Value::Number(b)) => {
            if a.as_f64() != b.as_f64() {
                out.push(render(path));
            }
        }
        _ if is_empty(want) && is_empty(have) => {}
        _ => {
            if want != have {
                out.push(render(path));
            }
        }
    }
}

/// `a.b[2]["c.d/e"]`: keys that are not plain words are quoted.
fn render(path: &[Seg<'_>]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Index(i) => {
                let _ = write!(s, "[{i}]");
            }
            Seg::Key(k)
                if k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') =>
            {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Key(k) => {
                let _ = write!(s, "[{}]", Value::String((*k).to_owned()));
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn additions_by_other_managers_differ_defaults_do_not() {
        let want = json!({"metadata": {"name": "c", "labels": {"a": "1"}},
                          "spec": {"x": 1, "list": [{"name": "m", "image": "i"}]}});
        let live = json!({
            "metadata": {"name": "c", "labels": {"a": "1", "added": "yes"},
                         "annotations": {"note": "later"},
                         "managedFields": [
                            {"manager": "rewind", "fieldsV1": {"f:metadata": {"f:labels": {"f:a": {}}},
                                "f:spec": {"f:x": {}, "f:list": {"k:{\"name\":\"m\"}": {"f:name": {}, "f:image": {}}}}}},
                            {"manager": "kubectl-label", "fieldsV1": {"f:metadata": {"f:labels": {"f:added": {}}}}},
                            {"manager": "other", "fieldsV1": {"f:metadata": {"f:annotations": {"f:note": {}}},
                                "f:spec": {"f:extra": {}}}}]},
            "spec": {"x": 1.0, "defaulted": "d", "extra": true,
                     "list": [{"name": "m", "image": "i", "pullPolicy": "IfNotPresent"}]}
        });
        let d = differences(&want, &live, &live, &[]);
        assert_eq!(
            d,
            vec![
                "metadata.labels.added",
                "metadata.annotations.note",
                "spec.extra"
            ]
        );
        // Without the other managers' additions: equal (the defaults, at
        // the top and inside the list item, are owned by nobody).
        let mut clean = live.clone();
        clean["metadata"]["labels"]
            .as_object_mut()
            .unwrap()
            .remove("added");
        clean["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("annotations");
        clean["spec"].as_object_mut().unwrap().remove("extra");
        assert!(differences(&want, &clean, &clean, &[]).is_empty());
    }

    #[test]
    fn a_field_inside_an_atomic_value_is_its_owners() {
        let want = json!({"spec": {"selector": {"app": "a"}}});
        let live = json!({"metadata": {"managedFields": [
                {"manager": "other", "fieldsV1": {"f:spec": {"f:selector": {}}}}]},
            "spec": {"selector": {"app": "a", "tier": "x"}}});
        assert_eq!(
            differences(&want, &live, &live, &[]),
            vec!["spec.selector.tier"]
        );
    }

    #[test]
    fn values_lists_and_missing_fields() {
        let live = json!({"spec": {"a": 1, "l": [1, 2], "s": "x"}});
        let want =
            json!({"spec": {"a": 2, "l": [1, 2, 3], "s": "x", "new": {"k": "v"}, "none": {}}});
        assert_eq!(
            differences(&want, &live, &live, &[]),
            vec!["spec.a", "spec.l", "spec.new"]
        );
        let want = json!({"spec": {"a": 1, "l": [1, 3], "s": "x"}});
        assert_eq!(differences(&want, &live, &live, &[]), vec!["spec.l[1]"]);
    }

    #[test]
    fn paths_quote_odd_keys_and_take_a_prefix() {
        let want = json!({"labels": {"app.kubernetes.io/name": "a"}});
        let have = json!({"labels": {"app.kubernetes.io/name": "b"}});
        assert_eq!(
            differences(&want, &have, &json!({}), &[Seg::Key("metadata")]),
            vec!["metadata.labels[\"app.kubernetes.io/name\"]"]
        );
    }

    #[test]
    fn long_lists_of_paths_are_capped() {
        let want: serde_json::Map<String, Value> =
            (0..80).map(|i| (format!("k{i}"), json!(i))).collect();
        let d = differences(&Value::Object(want), &json!({}), &json!({}), &[]);
        assert_eq!(d.len(), MAX_PATHS + 1);
        assert_eq!(d.last().unwrap(), "… and 30 more");
    }
}
