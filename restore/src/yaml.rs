//! A YAML writer for JSON values that YAML 1.1 and 1.2 readers agree on.
//!
//! kubectl reads manifests with go-yaml v2, a YAML 1.1 parser: there `yes`,
//! `on`, `y` are booleans, `0755` is octal and `1:20` is a number. The
//! serde YAML crates emit YAML 1.2 and leave such strings unquoted, so a
//! label value `"yes"` comes back as a bool and kubectl rejects the file
//! (found by the kubectl export test). This writer emits a string plain only
//! when it is plainly a word; everything else is double-quoted with JSON
//! escapes, which both YAML versions read as the same string.

use std::fmt::Write as _;

use serde_json::Value;

/// Words YAML 1.1 reads as booleans or null.
const RESERVED: &[&str] = &[
    "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "true", "True", "TRUE", "false",
    "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF", "null", "Null", "NULL", "~",
];

/// Whether `s` can be written without quotes and read back as the same
/// string by YAML 1.1 and 1.2 parsers.
fn plain_ok(s: &str) -> bool {
    let mut chars = s.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    first.is_ascii_alphabetic()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
        && !RESERVED.contains(&s)
}

fn scalar(s: &str, out: &mut String) {
    if plain_ok(s) {
        out.push_str(s);
    } else {
        // A JSON string literal is a valid YAML double-quoted scalar.
        out.push_str(&Value::String(s.to_owned()).to_string());
    }
}

fn is_block(v: &Value) -> bool {
    match v {
        Value::Object(m) => !m.is_empty(),
        Value::Array(a) => !a.is_empty(),
        _ => false,
    }
}

fn inline(v: &Value, out: &mut String) {
    match v {
        Value::String(s) => scalar(s, out),
        Value::Object(_) => out.push_str("{}"),
        Value::Array(_) => out.push_str("[]"),
        other => out.push_str(&other.to_string()),
    }
}

fn block(v: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(m) => {
            for (k, val) in m {
                out.push_str(&pad);
                scalar(k, out);
                out.push(':');
                if is_block(val) {
                    out.push('\n');
                    let child = if val.is_array() { indent } else { indent + 2 };
                    block(val, child, out);
                } else {
                    out.push(' ');
                    inline(val, out);
                    out.push('\n');
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                out.push_str(&pad);
                out.push('-');
                if is_block(item) {
                    // The first line of the item goes after "- ", the rest
                    // indented under it.
                    let mut inner = String::new();
                    block(item, indent + 2, &mut inner);
                    out.push(' ');
                    out.push_str(inner.get(indent + 2..).unwrap_or(&inner));
                } else {
                    out.push(' ');
                    inline(item, out);
                    out.push('\n');
                }
            }
        }
        other => {
            out.push_str(&pad);
            inline(other, out);
            out.push('\n');
        }
    }
}

/// `value` as a YAML document.
#[must_use]
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    if is_block(value) {
        block(value, 0, &mut out);
    } else {
        inline(value, &mut out);
        let _ = writeln!(out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde::Deserialize;
    use serde_json::json;

    fn read(yaml: &str) -> Value {
        Value::deserialize(serde_yaml_ng::Deserializer::from_str(yaml)).unwrap()
    }

    #[test]
    fn yaml_1_1_lookalikes_are_quoted() {
        let v = json!({"metadata": {"labels": {"a": "yes", "b": "on", "c": "0755", "d": "1:20", "e": "y", "f": "", "g": "1e3", "on": "x"}}});
        let y = to_yaml(&v);
        for s in [
            "\"yes\"", "\"on\"", "\"0755\"", "\"1:20\"", "\"y\"", "\"\"", "\"1e3\"", "\"on\":",
        ] {
            assert!(y.contains(s), "{s} not quoted in:\n{y}");
        }
        assert_eq!(read(&y), v);
    }

    #[test]
    fn nested_lists_and_maps_round_trip() {
        let v = json!({
            "spec": {"versions": [{"name": "v1", "schema": {"x": [1, 2, {"k": null}]}, "served": true}],
                     "empty": {}, "none": [], "multi": "line1\nline2\ttab \"q\" é"},
            "list": [[1, [2]], "a b", -0.5]
        });
        let y = to_yaml(&v);
        assert_eq!(read(&y), v, "yaml was:\n{y}");
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            "[a-zA-Z0-9 :_./\\-\n\"'#@&*!|>%{}\\[\\],?]{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::btree_map("[a-z0-9 :.\\-]{0,6}", inner, 0..5)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_json_round_trips(v in arb_json()) {
            let y = to_yaml(&v);
            prop_assert_eq!(read(&y), v, "yaml was:\n{}", y);
        }
    }
}
