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
//! Objects nested deeper than [`YAML_MAX_DEPTH`] are written as JSON (still
//! `<name>.yaml`; see there).
//!
//! Server fields and `status` are dropped. So are `ownerReferences`: their
//! UIDs belong to the recorded cluster, and a reference to a UID that does
//! not exist in the target lets the garbage collector delete the object.
//! `rewind restore` rewires them instead.
//!
//! The manifests hold Secrets in the clear, so every file is written 0600
//! and every directory the export creates 0700, whatever the umask; an
//! existing file is made 0600 before it is overwritten.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use crate::strip::split_for_write;
use rewind_history::state::{DesiredState, TypedKey};

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
    /// An object too deep to write (no thread for it, in practice).
    #[error("{0}: {1}")]
    Deep(String, rewind_history::deep::Error),
}

/// Objects nested deeper than this are written as JSON instead of YAML:
/// serde YAML readers stop at 128 levels (so would `rewind show
/// --from-dir`), and block YAML's indentation grows with the square of the
/// depth. JSON is a YAML 1.2 document, and kubectl reads a file that starts
/// with `{` as JSON.
pub const YAML_MAX_DEPTH: usize = 100;

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

fn safe(part: &str, key: &TypedKey) -> Result<String> {
    if part.is_empty() || part == "." || part == ".." || part.contains(['/', '\\', '\0']) {
        return Err(ExportError::BadName(key.to_string()));
    }
    Ok(part.to_owned())
}

/// The file an object is exported to, relative to the output directory.
pub fn relative_path(key: &TypedKey) -> Result<PathBuf> {
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
pub fn manifest(key: &TypedKey, obj: &Value) -> (Value, bool) {
    let (mut body, _status) = split_for_write(obj);
    let mut dropped = false;
    if let Some(m) = body.as_object_mut() {
        // The version the object was recorded at (an object recorded before
        // its type's served version moved keeps its old version's body).
        let version = crate::apply::recorded_version(&key.rtype, obj);
        m.insert("apiVersion".into(), Value::String(version.api_version()));
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
            private_dir_all(parent).map_err(|source| ExportError::Io {
                path: parent.to_owned(),
                source,
            })?;
        }
        // Stripping clones the object: a deep one is handled on a stack
        // sized for it (inline for ordinary objects).
        let depth = rewind_history::deep::depth_of_value(obj);
        let (text, dropped) = rewind_history::deep::on_stack_for(depth, || {
            let (body, dropped) = manifest(key, obj);
            let text = if rewind_history::deep::depth_of_value(&body) <= YAML_MAX_DEPTH {
                Ok(crate::yaml::to_yaml(&body).into_bytes())
            } else {
                serde_json::to_vec(&body)
            };
            (text, dropped)
        })
        .map_err(|e| ExportError::Deep(key.to_string(), e))?;
        let text = text.map_err(|e| ExportError::Deep(key.to_string(), e.into()))?;
        report.owner_refs_dropped += usize::from(dropped);
        write_private(&path, &text).map_err(|source| ExportError::Io {
            path: path.clone(),
            source,
        })?;
        report.files += 1;
    }
    Ok(report)
}

/// Creates `dir` and its missing parents, each new one 0700.
fn private_dir_all(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Writes `path` readable by its owner only (0600), also when it existed.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // `mode` applies only when the file is created.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rewind_history::source::{DirSource, Point, StateSource};
    use rewind_history::state::ResourceType;
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
        let back =
            futures::executor::block_on(DirSource::new(d.path()).state_at(&Point::Latest)).unwrap();
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

    /// Objects past [`YAML_MAX_DEPTH`] are written as JSON, and `--from-dir`
    /// reads them back, up to the API server's depth (10,000 levels).
    #[test]
    fn deep_objects_are_exported_as_json_and_read_back() {
        let deep = |d: usize| format!("{}\"leaf\"{}", r#"{"n":"#.repeat(d), "}".repeat(d));
        // Values this deep are cloned, compared and dropped on a stack
        // sized for them, as the `rewind` binary runs its commands.
        rewind_history::deep::on_stack_for(rewind_history::deep::MAX_DEPTH, || {
            let t = ResourceType {
                group: "x.io".into(),
                version: "v1".into(),
                resource: "widgets".into(),
                kind: "Widget".into(),
                namespaced: true,
            };
            let mut s = DesiredState::new();
            s.insert(&crate::live::crd_type(), json!({"metadata": {"name": "widgets.x.io"},
                "spec": {"group": "x.io", "scope": "Namespaced", "names": {"plural": "widgets", "kind": "Widget"},
                         "versions": [{"name": "v1", "served": true, "storage": true}]}}))
                .unwrap();
            let depths = [YAML_MAX_DEPTH - 3, 300, 10_000];
            for d in depths {
                let spec = deep(d);
                // As recorded: managedFields mirror the spec, a few levels deeper.
                let text = format!(
                    r#"{{"metadata":{{"name":"w{d}","namespace":"n","uid":"u","resourceVersion":"3",
                    "managedFields":[{{"manager":"m","fieldsType":"FieldsV1","fieldsV1":{{"f:spec":{spec}}}}}]}},
                    "spec":{spec},"status":{{"ok":true}}}}"#
                );
                assert!(serde_json::from_str::<Value>(&text).is_err() || d < 128);
                s.insert(&t, rewind_history::deep::parse(text.as_bytes()).unwrap()).unwrap();
            }
            let dir = tempfile::tempdir().unwrap();
            let r = export(&s, dir.path()).unwrap();
            assert_eq!(r.files, depths.len() + 1);
            let back =
                futures::executor::block_on(DirSource::new(dir.path()).state_at(&Point::Latest))
                    .unwrap();
            assert_eq!(back.len(), depths.len() + 1);
            for d in depths {
                let file = dir.path().join(format!("02-objects/x.io_widgets/n/w{d}.yaml"));
                let text = std::fs::read_to_string(&file).unwrap();
                // The metadata's depth is gone with managedFields; the spec's stays.
                let as_json = d + 1 > YAML_MAX_DEPTH;
                assert_eq!(text.starts_with('{'), as_json, "w{d}");
                let (k, orig) = s.iter().find(|(k, _)| k.name == format!("w{d}")).unwrap();
                let (_, got) = back.iter().find(|(bk, _)| *bk == k).unwrap();
                assert_eq!(got["spec"], orig["spec"], "w{d}: spec kept");
                assert_eq!(rewind_history::deep::depth_of_value(got), d + 1);
                assert!(got["metadata"].get("managedFields").is_none());
                assert!(got.get("status").is_none());
            }
        })
        .unwrap();
    }

    /// Exported Secrets are in the clear: no file or created directory may
    /// be readable by others, whatever the umask, and an existing
    /// world-readable file is tightened before it is overwritten.
    #[test]
    fn exported_files_are_private_whatever_the_umask() {
        use std::os::unix::fs::PermissionsExt;
        let secrets = ResourceType {
            group: String::new(),
            version: "v1".into(),
            resource: "secrets".into(),
            kind: "Secret".into(),
            namespaced: true,
        };
        let mut s = DesiredState::new();
        s.insert(&secrets, json!({"metadata": {"name": "db", "namespace": "n"}, "data": {"password": "aHVudGVyMg=="}})).unwrap();
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("02-objects/core_secrets/n/db.yaml");
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, "old").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let out = d.path().join("fresh");
        export(&s, &out).unwrap();
        export(&s, d.path()).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&file), 0o600, "an existing file is tightened");
        let fresh = out.join("02-objects/core_secrets/n/db.yaml");
        assert_eq!(mode(&fresh), 0o600);
        for dir in [
            out.join("02-objects"),
            out.join("02-objects/core_secrets"),
            out.join("02-objects/core_secrets/n"),
        ] {
            assert_eq!(mode(&dir), 0o700, "{}", dir.display());
        }
        assert!(
            std::fs::read_to_string(&fresh)
                .unwrap()
                .contains("aHVudGVyMg==")
        );
    }
}
