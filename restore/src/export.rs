//! `rewind export`: a desired state as plain YAML manifests, one file per
//! object, that `kubectl apply` accepts.
//!
//! Layout, chosen so `kubectl apply -R` over each directory in name order is
//! a working restore without Rewind:
//! ```text
//! DIR/00-crds/<name>.yaml
//! DIR/01-namespaces/<name>.yaml
//! DIR/02-objects/<group|core>_<resource>/<namespace|_cluster>/<name>.yaml
//! ```
//! Apply `00-crds` first and wait for `Established` (kubectl cannot map a
//! custom kind before its CRD is served), then the rest.
//!
//! Server fields and `status` are dropped. So are `ownerReferences`: their
//! UIDs belong to the recorded cluster, and a reference to a UID that does
//! not exist in the target lets the garbage collector delete the object.
//! `rewind restore` rewires them instead.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use crate::state::{DesiredState, ObjectKey};
use crate::strip::split_for_write;

/// Errors exporting.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A name that would escape the output directory.
    #[error("{0}: name is not usable as a file name")]
    BadName(String),
}

/// Result alias for this module.
pub type Result<T, E = ExportError> = std::result::Result<T, E>;

/// What an export wrote.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ExportReport {
    /// Files written.
    pub files: usize,
    /// Objects whose ownerReferences were dropped.
    pub owner_refs_dropped: usize,
}

fn safe(part: &str, key: &ObjectKey) -> Result<String> {
    if part.is_empty() || part == "." || part == ".." || part.contains(['/', '\\', '\0']) {
        return Err(ExportError::BadName(key.to_string()));
    }
    Ok(part.to_owned())
}

/// The file an object is exported to, relative to the output directory.
pub fn relative_path(key: &ObjectKey) -> Result<PathBuf> {
    let file = format!("{}.yaml", safe(&key.name, key)?);
    if key.rtype.is_crd() {
        return Ok(Path::new("00-crds").join(file));
    }
    if key.rtype.is_namespace() {
        return Ok(Path::new("01-namespaces").join(file));
    }
    let group = if key.rtype.group.is_empty() {
        "core"
    } else {
        key.rtype.group.as_str()
    };
    let ns = match &key.namespace {
        Some(ns) => safe(ns, key)?,
        None => "_cluster".to_owned(),
    };
    Ok(Path::new("02-objects")
        .join(format!("{group}_{}", key.rtype.resource))
        .join(ns)
        .join(file))
}

/// The manifest for one recorded object.
#[must_use]
pub fn manifest(key: &ObjectKey, obj: &Value) -> (Value, bool) {
    let (mut body, _status) = split_for_write(obj);
    let mut dropped = false;
    if let Some(m) = body.as_object_mut() {
        m.insert("apiVersion".into(), Value::String(key.rtype.api_version()));
        m.insert("kind".into(), Value::String(key.rtype.kind.clone()));
        if let Some(meta) = m.get_mut("metadata").and_then(Value::as_object_mut) {
            dropped = meta.remove("ownerReferences").is_some();
        }
    }
    (body, dropped)
}

/// Writes every object of `state` under `out`.
pub fn export(state: &DesiredState, out: &Path) -> Result<ExportReport> {
    let mut report = ExportReport::default();
    for (key, obj) in state.iter() {
        let path = out.join(relative_path(key)?);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| ExportError::Io {
                path: parent.to_owned(),
                source,
            })?;
        }
        let (body, dropped) = manifest(key, obj);
        report.owner_refs_dropped += usize::from(dropped);
        let yaml = crate::yaml::to_yaml(&body);
        std::fs::write(&path, yaml).map_err(|source| ExportError::Io {
            path: path.clone(),
            source,
        })?;
        report.files += 1;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{DirSource, Point, StateSource};
    use crate::state::ResourceType;
    use serde_json::json;

    #[test]
    fn export_then_read_back_gives_the_stripped_objects() {
        let t = ResourceType {
            group: "x.io".into(),
            version: "v1".into(),
            resource: "widgets".into(),
            kind: "Widget".into(),
            namespaced: true,
        };
        let crd = crate::live::crd_type();
        let mut s = DesiredState::new();
        s.insert(&crd, json!({"metadata": {"name": "widgets.x.io", "uid": "u"},
            "spec": {"group": "x.io", "scope": "Namespaced", "names": {"plural": "widgets", "kind": "Widget"},
                     "versions": [{"name": "v1", "served": true, "storage": true}]},
            "status": {"storedVersions": ["v1"]}})).unwrap();
        s.insert(&t, json!({"metadata": {"name": "w:1", "namespace": "n", "uid": "u2", "resourceVersion": "3",
            "ownerReferences": [{"apiVersion": "v1", "kind": "X", "name": "o", "uid": "z"}]},
            "spec": {"n": 1, "s": "yes"}, "status": {"ok": true}})).unwrap();
        let d = tempfile::tempdir().unwrap();
        let r = export(&s, d.path()).unwrap();
        assert_eq!(r.files, 2);
        assert_eq!(r.owner_refs_dropped, 1);
        assert!(d.path().join("02-objects/x.io_widgets/n/w:1.yaml").exists());
        assert!(d.path().join("00-crds/widgets.x.io.yaml").exists());
        let back = DirSource::new(d.path()).state_at(&Point::Latest).unwrap();
        assert_eq!(back.len(), 2);
        let (k, w) = back.iter().find(|(k, _)| k.rtype == t).unwrap();
        assert_eq!(k.name, "w:1");
        assert_eq!(
            w["spec"],
            json!({"n": 1, "s": "yes"}),
            "\"yes\" stays a string"
        );
        assert!(w.get("status").is_none());
        assert!(
            w["metadata"].get("uid").is_none() && w["metadata"].get("ownerReferences").is_none()
        );
    }
}
