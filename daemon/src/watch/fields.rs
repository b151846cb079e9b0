//! Field selectors over a [`RawObject`], without parsing the object.
//!
//! Selection compares field paths against [`ObjectView::object`], a
//! `serde_json::Value`; parsing a whole object into one is what fails past
//! 128 levels. So the watcher builds a `Value` that holds only the paths
//! the type's selectors compare: each path is followed through the raw text
//! one level at a time (a map of raw values, one level for the parser) and
//! only the value at its end is parsed. A type without field selectors
//! parses nothing.
//!
//! When even that end value cannot be parsed (a selector that points at a
//! subtree nested deeper than 128 levels), [`view`] fails and the watcher
//! records the object as selected: recording one object too many is
//! recoverable, a missing one is not.
//!
//! [`ObjectView::object`]: rewind_history::select::ObjectView

use std::collections::BTreeMap;

use serde_json::value::RawValue;
use serde_json::{Map, Value};

use rewind_history::raw::RawObject;

/// Errors of field lookup.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A value on a field path does not parse (nesting beyond serde_json's
    /// limit, in practice).
    #[error("field {path}: {source}")]
    Parse {
        /// The dotted path.
        path: String,
        /// Why.
        source: serde_json::Error,
    },
}

/// Result alias of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An object holding, of `obj`, exactly the values at `paths` (absent paths
/// stay absent): what selection's field comparison reads.
pub fn view<'p>(
    obj: &RawObject,
    api_version: &str,
    kind: &str,
    paths: impl IntoIterator<Item = &'p [String]>,
) -> Result<Value> {
    let mut root = Map::new();
    for path in paths {
        if let Some(v) = lookup(obj, api_version, kind, path)? {
            insert(&mut root, path, v);
        }
    }
    Ok(Value::Object(root))
}

fn lookup(
    obj: &RawObject,
    api_version: &str,
    kind: &str,
    path: &[String],
) -> Result<Option<Value>> {
    let Some((first, rest)) = path.split_first() else {
        return Ok(None);
    };
    let fixed = match first.as_str() {
        "apiVersion" => Some(api_version),
        "kind" => Some(kind),
        _ => None,
    };
    if let Some(s) = fixed {
        return Ok(rest.is_empty().then(|| Value::String(s.to_owned())));
    }
    let Some(mut cur) = obj.field(first) else {
        return Ok(None);
    };
    let err = |source| Error::Parse {
        path: path.join("."),
        source,
    };
    for seg in rest {
        // A raw value starts at its first byte (serde_json skips the
        // whitespace before it); anything but an object has no fields.
        if !cur.get().starts_with('{') {
            return Ok(None);
        }
        let map: BTreeMap<String, &RawValue> = serde_json::from_str(cur.get()).map_err(err)?;
        match map.get(seg) {
            Some(next) => cur = next,
            None => return Ok(None),
        }
    }
    serde_json::from_str::<Value>(cur.get())
        .map(Some)
        .map_err(err)
}

fn insert(root: &mut Map<String, Value>, path: &[String], v: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut m = root;
    for p in parents {
        let next = m
            .entry(p.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        // A shorter path already put the whole parent here, which holds
        // this value too.
        let Value::Object(next) = next else { return };
        m = next;
    }
    m.insert(last.clone(), v);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> RawObject {
        serde_json::from_str(text).unwrap()
    }

    fn path(p: &str) -> Vec<String> {
        p.split('.').map(str::to_owned).collect()
    }

    fn deep(depth: usize) -> String {
        format!("{}\"leaf\"{}", r#"{"n":"#.repeat(depth), "}".repeat(depth))
    }

    #[test]
    fn view_holds_exactly_the_selected_paths() {
        let o = raw(
            r#"{"metadata":{"name":"a","labels":{"x":"1"}},"type":"kubernetes.io/tls",
                "spec":{"nodeName":"n1","other":[1,2]},"status":{"phase":"Running"}}"#,
        );
        let paths = [
            path("type"),
            path("spec.nodeName"),
            path("metadata.labels.x"),
            path("kind"),
            path("spec.missing"),
            path("type.sub"),
        ];
        let v = view(&o, "v1", "Secret", paths.iter().map(Vec::as_slice)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "type": "kubernetes.io/tls",
                "spec": {"nodeName": "n1"},
                "metadata": {"labels": {"x": "1"}},
                "kind": "Secret",
            })
        );
    }

    #[test]
    fn paths_beside_a_deep_subtree_still_resolve() {
        let text = format!(
            r#"{{"metadata":{{"name":"d"}},"spec":{{"deep":{},"shallow":"s"}}}}"#,
            deep(5_000)
        );
        let o = raw(&text);
        let p = [path("spec.shallow")];
        let v = view(&o, "v1", "X", p.iter().map(Vec::as_slice)).unwrap();
        assert_eq!(v, serde_json::json!({"spec": {"shallow": "s"}}));
        // A selector aimed at the deep subtree itself cannot be compared.
        let p = [path("spec.deep")];
        let e = view(&o, "v1", "X", p.iter().map(Vec::as_slice)).unwrap_err();
        assert!(e.to_string().contains("spec.deep"), "{e}");
    }
}
