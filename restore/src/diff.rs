//! What changed between two states: added, removed and changed objects per
//! type (`rewind diff`). Server-set fields (resourceVersion, managedFields,
//! …) do not count as changes; status does.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::compare::normalized;
use crate::strip::differing_paths;
use rewind_history::state::DesiredState;

/// Changes of one type.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TypeChanges {
    /// Objects only in the later state.
    pub added: Vec<String>,
    /// Objects only in the earlier state.
    pub removed: Vec<String>,
    /// Objects in both whose content differs, with the differing fields.
    pub changed: Vec<(String, Vec<String>)>,
}

/// Changes between two states, per type (`resource.group`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StateDiff {
    /// Per type, only types with changes.
    pub types: BTreeMap<String, TypeChanges>,
}

impl StateDiff {
    /// Whether nothing changed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.types.is_empty()
    }

    /// A per-type table, then each changed object.
    #[must_use]
    pub fn to_table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:<52} {:>7} {:>7} {:>7}",
            "TYPE", "ADDED", "REMOVED", "CHANGED"
        );
        for (t, c) in &self.types {
            let _ = writeln!(
                s,
                "{t:<52} {:>7} {:>7} {:>7}",
                c.added.len(),
                c.removed.len(),
                c.changed.len()
            );
        }
        for c in self.types.values() {
            for a in &c.added {
                let _ = writeln!(s, "+ {a}");
            }
            for r in &c.removed {
                let _ = writeln!(s, "- {r}");
            }
            for (o, fields) in &c.changed {
                let _ = writeln!(s, "~ {o}  ({})", fields.join(", "));
            }
        }
        s
    }
}

/// What changed from `from` to `to`.
#[must_use]
pub fn diff(from: &DesiredState, to: &DesiredState) -> StateDiff {
    let mut out = StateDiff::default();
    let mut types: BTreeMap<String, TypeChanges> = BTreeMap::new();
    fn entry(types: &mut BTreeMap<String, TypeChanges>, t: String) -> &mut TypeChanges {
        types.entry(t).or_default()
    }
    for (k, b) in to.iter() {
        match from.get(k) {
            None => entry(&mut types, k.rtype.group_resource())
                .added
                .push(k.to_string()),
            // The same record: nothing to normalize (a deep copy of each
            // side), which is most objects between two nearby points.
            Some(a) if a == b => {}
            Some(a) => {
                let (na, nb) = (normalized(k, a), normalized(k, b));
                if na != nb {
                    // Fields changed or removed, seen from both sides.
                    let mut fields = differing_paths(&nb, &na);
                    for f in differing_paths(&na, &nb) {
                        if !fields.contains(&f) {
                            fields.push(f);
                        }
                    }
                    entry(&mut types, k.rtype.group_resource())
                        .changed
                        .push((k.to_string(), fields));
                }
            }
        }
    }
    for (k, _) in from.iter() {
        if to.get(k).is_none() {
            entry(&mut types, k.rtype.group_resource())
                .removed
                .push(k.to_string());
        }
    }
    out.types = types;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::namespace_type;
    use serde_json::json;

    #[test]
    fn added_removed_changed_and_server_fields_ignored() {
        let t = namespace_type();
        let mut a = DesiredState::new();
        a.insert(
            &t,
            json!({"metadata": {"name": "same", "resourceVersion": "1"}}),
        )
        .unwrap();
        a.insert(&t, json!({"metadata": {"name": "gone"}})).unwrap();
        a.insert(
            &t,
            json!({"metadata": {"name": "edit", "labels": {"x": "1", "y": "2"}}}),
        )
        .unwrap();
        let mut b = DesiredState::new();
        b.insert(
            &t,
            json!({"metadata": {"name": "same", "resourceVersion": "7"}}),
        )
        .unwrap();
        b.insert(&t, json!({"metadata": {"name": "new"}})).unwrap();
        b.insert(
            &t,
            json!({"metadata": {"name": "edit", "labels": {"x": "3"}}}),
        )
        .unwrap();
        let d = diff(&a, &b);
        let ns = &d.types["namespaces"];
        assert_eq!(ns.added, vec!["namespaces/new"]);
        assert_eq!(ns.removed, vec!["namespaces/gone"]);
        assert_eq!(
            ns.changed,
            vec![(
                "namespaces/edit".to_owned(),
                vec!["metadata.labels".to_owned()]
            )]
        );
        assert!(diff(&a, &a).is_empty());
    }
}
