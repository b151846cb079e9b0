//! Ignoring changes that touch only chosen fields, per resource type.
//!
//! Example: a Rancher token's `lastUsedAt` changes on every API call, and a
//! downstream cluster's status churns; recording those buries real changes.
//! An update is ignored when the old and new objects are equal once the
//! rule's fields (and the fields every write changes: resourceVersion,
//! managedFields) are removed from both. Ignored updates are not recorded and
//! leave the current state at the last recorded version.

use serde_json::Value;

/// Fields removed from both sides before comparing, for every rule.
const ALWAYS: &[&[&str]] = &[
    &["metadata", "resourceVersion"],
    &["metadata", "managedFields"],
];

/// What to ignore for one type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoreRule {
    /// Dotted paths, e.g. `lastUsedAt` or `status.conditions`.
    pub paths: Vec<Vec<String>>,
    /// Also ignore updates that change only `status`.
    pub status_only: bool,
}

impl IgnoreRule {
    /// A rule from dotted paths.
    #[must_use]
    pub fn new(paths: &[String], status_only: bool) -> Self {
        Self {
            paths: paths
                .iter()
                .map(|p| p.split('.').map(str::to_owned).collect())
                .collect(),
            status_only,
        }
    }

    /// Whether going from `old` to `new` changes only ignored fields.
    /// Anything that does not parse is never ignored.
    #[must_use]
    pub fn only_ignored_changed(&self, old: &[u8], new: &[u8]) -> bool {
        let (Ok(mut a), Ok(mut b)) = (
            serde_json::from_slice::<Value>(old),
            serde_json::from_slice::<Value>(new),
        ) else {
            return false;
        };
        for v in [&mut a, &mut b] {
            for p in ALWAYS {
                remove_path(v, p.iter().copied());
            }
            for p in &self.paths {
                remove_path(v, p.iter().map(String::as_str));
            }
            if self.status_only {
                remove_path(v, ["status"].into_iter());
            }
        }
        a == b
    }
}

fn remove_path<'a>(v: &mut Value, mut path: impl Iterator<Item = &'a str>) {
    let Some(first) = path.next() else { return };
    let Value::Object(map) = v else { return };
    let rest: Vec<&str> = path.collect();
    if rest.is_empty() {
        map.remove(first);
    } else if let Some(child) = map.get_mut(first) {
        remove_path(child, rest.into_iter());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_last_used_at_only_is_ignored() {
        let r = IgnoreRule::new(&["lastUsedAt".to_owned()], false);
        let old =
            br#"{"metadata":{"name":"t","resourceVersion":"1"},"lastUsedAt":"a","token":"x"}"#;
        let touch =
            br#"{"metadata":{"name":"t","resourceVersion":"2"},"lastUsedAt":"b","token":"x"}"#;
        let real =
            br#"{"metadata":{"name":"t","resourceVersion":"3"},"lastUsedAt":"b","token":"y"}"#;
        assert!(r.only_ignored_changed(old, touch));
        assert!(!r.only_ignored_changed(old, real));
    }

    #[test]
    fn status_only_rule() {
        let r = IgnoreRule::new(&[], true);
        let a = br#"{"metadata":{"name":"c"},"spec":{"x":1},"status":{"nodeCount":3}}"#;
        let b = br#"{"metadata":{"name":"c"},"spec":{"x":1}}"#;
        let c = br#"{"metadata":{"name":"c"},"spec":{"x":2}}"#;
        assert!(r.only_ignored_changed(a, b));
        assert!(!r.only_ignored_changed(a, c));
        assert!(!r.only_ignored_changed(a, b"not json"));
    }
}
