//! Every recorded version of one object, with the field manager that made
//! it and what changed since the previous version.
//!
//! The window starts at the oldest base the store can fold from (seq 1 when
//! the segments reach back that far, else the oldest snapshot), whose copy
//! of the object is the first version; every event about the object in the
//! segments after it is another.

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use rewind_format::{EventKind, EventRecord, ResourceType, SegmentReader, SnapshotReader};
use serde::Serialize;
use serde_json::Value;

use super::fold::Until;
use super::{PitError, Result, StoreSource, blocking, open_plain, plan};

/// Which object: `TYPE/NAME` or `TYPE/NAMESPACE/NAME`, where TYPE is a
/// plural (`secrets`), `plural.group` or a kind (`Secret`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectSpec {
    /// The type as typed.
    pub rtype: String,
    /// Namespace, for namespaced objects.
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
}

impl std::str::FromStr for ObjectSpec {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [t, n] if !t.is_empty() && !n.is_empty() => Ok(Self {
                rtype: (*t).to_owned(),
                namespace: None,
                name: (*n).to_owned(),
            }),
            [t, ns, n] if !t.is_empty() && !ns.is_empty() && !n.is_empty() => Ok(Self {
                rtype: (*t).to_owned(),
                namespace: Some((*ns).to_owned()),
                name: (*n).to_owned(),
            }),
            _ => Err(format!("{s:?} is not TYPE/NAME or TYPE/NAMESPACE/NAME")),
        }
    }
}

impl ObjectSpec {
    /// Whether `t` is the type this spec names.
    #[must_use]
    pub fn type_matches(&self, t: &ResourceType) -> bool {
        let s = self.rtype.as_str();
        s == t.resource
            || s.eq_ignore_ascii_case(&t.kind)
            || (!t.group.is_empty()
                && s.strip_prefix(t.resource.as_str())
                    .and_then(|r| r.strip_prefix('.'))
                    == Some(t.group.as_str()))
    }

    fn matches(&self, e: &EventRecord) -> bool {
        e.name == self.name && e.namespace == self.namespace && self.type_matches(&e.rtype)
    }
}

/// One version of the object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Version {
    /// Sequence number of the event (the snapshot's for the first version).
    pub seq: u64,
    /// When Rewind observed it, Unix ms.
    pub time_ms: i64,
    /// `applied`, `deleted` or `snapshot` (the copy in the window's base).
    pub event: &'static str,
    /// resourceVersion.
    pub resource_version: String,
    /// uid.
    pub uid: String,
    /// The field manager of the newest managedFields entry.
    pub manager: Option<String>,
    /// Changed paths against the previous version.
    pub changes: Vec<Change>,
}

/// One changed path.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// JSON path, e.g. `.spec.replicas` or `.metadata.labels["app"]`.
    pub path: String,
    /// Value before (None: added).
    pub before: Option<Value>,
    /// Value after (None: removed).
    pub after: Option<Value>,
}

/// The field manager of the managedFields entry with the latest time (the
/// last one listed on ties).
#[must_use]
pub fn field_manager(obj: &Value) -> Option<String> {
    obj.pointer("/metadata/managedFields")?
        .as_array()?
        .iter()
        .filter_map(|m| {
            let t = m.get("time").and_then(Value::as_str).unwrap_or_default();
            Some((t, m.get("manager")?.as_str()?))
        })
        .fold(None, |best: Option<(&str, &str)>, cur| match best {
            Some(b) if b.0 > cur.0 => Some(b),
            _ => Some(cur),
        })
        .map(|(_, m)| m.to_owned())
}

/// Paths that differ between two objects. Server bookkeeping that changes
/// with every write (resourceVersion, managedFields) is left out; arrays
/// are compared whole.
#[must_use]
pub fn json_changes(before: &Value, after: &Value) -> Vec<Change> {
    let mut out = Vec::new();
    walk(String::new(), Some(before), Some(after), &mut out);
    out
}

fn walk(path: String, a: Option<&Value>, b: Option<&Value>, out: &mut Vec<Change>) {
    if matches!(
        path.as_str(),
        ".metadata.managedFields" | ".metadata.resourceVersion"
    ) {
        return;
    }
    match (a, b) {
        (Some(Value::Object(x)), Some(Value::Object(y))) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let p = if k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    format!("{path}.{k}")
                } else {
                    format!("{path}[{k:?}]")
                };
                walk(p, x.get(k), y.get(k), out);
            }
        }
        (x, y) if x == y => {}
        (x, y) => out.push(Change {
            path: if path.is_empty() { ".".into() } else { path },
            before: x.cloned(),
            after: y.cloned(),
        }),
    }
}

impl StoreSource {
    /// Every version of one object in the store's window, oldest first.
    pub async fn history(&self, spec: &ObjectSpec) -> Result<Vec<Version>> {
        let view = self.view(&crate::source::Point::Latest).await?;
        let (snapshots, segments) = (&view.snapshots, &view.segments);
        // The oldest base with an unbroken chain to the newest event.
        let mut base = None;
        let mut chain = plan::chain(segments, &view.forks, &plan::Base::Empty, Until::default());
        if chain.is_err() {
            for s in snapshots {
                if let Ok(c) =
                    plan::chain(segments, &view.forks, &plan::Base::of(s), Until::default())
                {
                    base = Some(s);
                    chain = Ok(c);
                    break;
                }
            }
        }
        let chain = chain?;
        let mut raw: Vec<(u64, i64, &'static str, Value, String, String)> = Vec::new();
        if let Some(entry) = base {
            let bytes = self.store.get_snapshot(entry).await?;
            let (key, ids, limits, spec2) = (
                entry.data_key(),
                self.identities.clone(),
                self.limits,
                spec.clone(),
            );
            let found = blocking(move || {
                let plain = open_plain(&bytes, &key, &ids, &limits)?;
                let fmt = |source| PitError::Format {
                    file: key.clone(),
                    source,
                };
                let mut r = SnapshotReader::open(&plain, Some(&key), limits).map_err(fmt)?;
                let types: Vec<usize> = (0..r.header().types.len())
                    .filter(|t| {
                        r.header()
                            .types
                            .get(*t)
                            .is_some_and(|e| spec2.type_matches(&e.rtype))
                    })
                    .collect();
                for t in types {
                    if let Some(o) = r
                        .get(t, spec2.namespace.as_deref(), &spec2.name)
                        .map_err(fmt)?
                    {
                        return Ok(Some(o));
                    }
                }
                Ok(None)
            })
            .await?;
            if let Some(o) = found {
                let v = parse(&o.object);
                raw.push((
                    entry.seq,
                    entry.time_ms,
                    "snapshot",
                    v,
                    o.resource_version,
                    o.uid,
                ));
            }
        }
        let files: Vec<(String, u64, Bytes)> = futures::stream::iter(chain)
            .map(|(entry, from)| async move {
                let bytes = self.store.get_segment(&entry).await?;
                Ok::<_, PitError>((entry.data_key(), from, bytes))
            })
            .buffered(8)
            .try_collect()
            .await?;
        let (ids, limits, spec2) = (self.identities.clone(), self.limits, spec.clone());
        let events = blocking(move || {
            let mut out = Vec::new();
            for (key, from, bytes) in &files {
                let plain = open_plain(bytes, key, &ids, &limits)?;
                let mut r = SegmentReader::open(&plain, Some(key), limits).map_err(|source| {
                    PitError::Format {
                        file: key.clone(),
                        source,
                    }
                })?;
                for e in r.iter() {
                    let e = e.map_err(|source| PitError::Format {
                        file: key.clone(),
                        source,
                    })?;
                    if e.seq >= *from && spec2.matches(&e) {
                        out.push(e);
                    }
                }
            }
            Ok(out)
        })
        .await?;
        for e in events {
            let ev = match e.kind {
                EventKind::Applied => "applied",
                EventKind::Deleted | EventKind::DeletedInferred { .. } => "deleted",
                EventKind::ResyncBegin { .. } | EventKind::ResyncEnd { .. } => continue,
            };
            raw.push((
                e.seq,
                e.observed_at_ms,
                ev,
                parse(&e.object),
                e.resource_version,
                e.uid,
            ));
        }
        let mut out = Vec::with_capacity(raw.len());
        let mut prev: Option<Value> = None;
        for (seq, time_ms, event, obj, resource_version, uid) in raw {
            let changes = match (&prev, event) {
                (_, "deleted") => Vec::new(),
                (Some(p), _) => json_changes(p, &obj),
                (None, _) => Vec::new(),
            };
            out.push(Version {
                seq,
                time_ms,
                event,
                resource_version,
                uid,
                manager: field_manager(&obj),
                changes,
            });
            prev = if event == "deleted" { None } else { Some(obj) };
        }
        Ok(out)
    }
}

fn parse(bytes: &[u8]) -> Value {
    crate::deep::parse(bytes).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn newest_managed_fields_entry_wins() {
        let o = json!({"metadata": {"managedFields": [
            {"manager": "kubectl", "time": "2026-01-02T00:00:00Z"},
            {"manager": "rancher", "time": "2026-01-03T00:00:00Z"},
            {"manager": "fleet", "time": "2026-01-01T00:00:00Z"}]}});
        assert_eq!(field_manager(&o).as_deref(), Some("rancher"));
        assert_eq!(field_manager(&json!({})), None);
    }

    #[test]
    fn changes_list_paths() {
        let a = json!({"metadata": {"resourceVersion": "1", "labels": {"a.b/c": "x"}}, "spec": {"n": 1, "l": [1]}});
        let b = json!({"metadata": {"resourceVersion": "2", "labels": {}}, "spec": {"n": 2, "l": [1], "m": true}});
        let paths: Vec<String> = json_changes(&a, &b).into_iter().map(|c| c.path).collect();
        assert_eq!(
            paths,
            vec![".metadata.labels[\"a.b/c\"]", ".spec.m", ".spec.n"]
        );
    }

    #[test]
    fn object_specs_parse() {
        let s: ObjectSpec = "clusters.management.cattle.io/c-1".parse().unwrap();
        assert_eq!(s.namespace, None);
        let t = ResourceType {
            group: "management.cattle.io".into(),
            version: "v3".into(),
            resource: "clusters".into(),
            kind: "Cluster".into(),
            namespaced: false,
        };
        assert!(s.type_matches(&t));
        let s: ObjectSpec = "Secret/ns/x".parse().unwrap();
        assert_eq!(s.namespace.as_deref(), Some("ns"));
        assert!("a".parse::<ObjectSpec>().is_err());
        assert!("a//b".parse::<ObjectSpec>().is_err());
    }
}
