//! Where a desired state comes from.
//!
//! [`StateSource`] is the seam between reading history and restoring it: the
//! store reader (snapshot + segments, never sled) implements it for points in
//! time; [`DirSource`] implements it for a directory of JSON/YAML manifests
//! (what `rewind export` writes, or any `kubectl get -o yaml` output), which
//! operators can use directly and tests use too.
//!
//! The seam is async because the store is: callers await it on the runtime
//! they already run on.

use std::any::TypeId;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use k8s_openapi::{ClusterResourceScope, NamespaceResourceScope, Resource};
use serde::Deserialize;
use serde_json::Value;

use crate::state::{DesiredState, ResourceType, StateError, crd_types};

/// Errors producing a desired state.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The point is not one this source can produce.
    #[error("{source_name} cannot produce the state at {point}: {reason}")]
    Unsupported {
        /// The source.
        source_name: String,
        /// The requested point.
        point: String,
        /// Why.
        reason: String,
    },
    /// Reading a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file does not parse.
    #[error("{path}: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Parser message.
        reason: String,
    },
    /// An object's kind is neither built in nor defined by a CRD in the source.
    #[error(
        "{path}: unknown kind {api_version}/{kind}: add its CustomResourceDefinition to the directory"
    )]
    UnknownKind {
        /// The file.
        path: PathBuf,
        /// apiVersion.
        api_version: String,
        /// kind.
        kind: String,
    },
    /// An object is malformed.
    #[error("{path}: {source}")]
    State {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: StateError,
    },
}

/// Result alias for this module.
pub type Result<T, E = SourceError> = std::result::Result<T, E>;

/// A point in recorded history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Point {
    /// The newest recorded state.
    Latest,
    /// A time, Unix milliseconds: the state after the last event at or before it.
    Time(i64),
    /// The state right after the event with this sequence number.
    Seq(u64),
    /// Exactly the state of a named snapshot.
    Snapshot(String),
}

impl FromStr for Point {
    type Err = String;

    /// `latest`, `seq:N`, `snapshot:NAME`, `ms:UNIX_MILLIS`, an RFC 3339
    /// time with an offset (`2026-11-26T14:00:00Z`, `…+01:00`), or a bare
    /// number (a sequence number).
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        let parse_num = |v: &str| v.parse().map_err(|e| format!("{s:?}: {e}"));
        if s == "latest" {
            Ok(Self::Latest)
        } else if let Some(v) = s.strip_prefix("seq:") {
            Ok(Self::Seq(parse_num(v)?))
        } else if let Some(v) = s.strip_prefix("snapshot:") {
            Ok(Self::Snapshot(v.to_owned()))
        } else if let Some(v) = s.strip_prefix("ms:") {
            Ok(Self::Time(v.parse().map_err(|e| format!("{s:?}: {e}"))?))
        } else if let Ok(n) = s.parse() {
            Ok(Self::Seq(n))
        } else if let Ok(t) = s.parse::<jiff::Timestamp>() {
            // Sub-millisecond digits are truncated: events carry milliseconds.
            Ok(Self::Time(t.as_millisecond()))
        } else {
            Err(format!(
                "{s:?} is not latest, seq:N, ms:UNIX_MILLIS, an RFC 3339 time \
                 (2026-11-26T14:00:00Z) or snapshot:NAME"
            ))
        }
    }
}

impl fmt::Display for Point {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Latest => f.write_str("latest"),
            Self::Time(ms) => write!(f, "ms:{ms}"),
            Self::Seq(n) => write!(f, "seq:{n}"),
            Self::Snapshot(s) => write!(f, "snapshot:{s}"),
        }
    }
}

/// Something that can produce the desired state at a point.
///
/// The returned future is `Send`, so a state can be read from a spawned
/// task; implementations write `async fn state_at`.
pub trait StateSource {
    /// The state at `point`.
    fn state_at(&self, point: &Point) -> impl Future<Output = Result<DesiredState>> + Send;
}

/// A directory of manifests: `.json`, `.yaml` and `.yml` files, searched
/// recursively, each holding objects, `List`s, or several YAML documents.
/// It holds one state, so only [`Point::Latest`] is valid.
///
/// The files are read and parsed on the awaiting thread, without yielding:
/// the future needs no particular executor, and objects nested
/// [`deep`](crate::deep) are parsed on the stack the caller sized for them.
#[derive(Debug, Clone)]
pub struct DirSource {
    /// The directory.
    dir: PathBuf,
}

impl DirSource {
    /// A source reading `dir`.
    #[must_use]
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }
}

fn builtin<T: Resource>() -> ResourceType
where
    T::Scope: 'static,
{
    ResourceType {
        group: T::GROUP.to_owned(),
        version: T::VERSION.to_owned(),
        resource: T::URL_PATH_SEGMENT.to_owned(),
        kind: T::KIND.to_owned(),
        namespaced: TypeId::of::<T::Scope>() == TypeId::of::<NamespaceResourceScope>()
            && TypeId::of::<T::Scope>() != TypeId::of::<ClusterResourceScope>(),
    }
}

/// The built-in types a management plane holds.
#[must_use]
pub fn builtin_types() -> Vec<ResourceType> {
    use k8s_openapi::api::{
        admissionregistration::v1 as adm, apps::v1 as apps, batch::v1 as batch,
        coordination::v1 as coord, core::v1 as core, networking::v1 as net, policy::v1 as policy,
        rbac::v1 as rbac, scheduling::v1 as sched, storage::v1 as storage,
    };
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as ext;
    vec![
        builtin::<ext::CustomResourceDefinition>(),
        builtin::<core::Namespace>(),
        builtin::<core::ConfigMap>(),
        builtin::<core::Secret>(),
        builtin::<core::ServiceAccount>(),
        builtin::<core::Service>(),
        builtin::<core::Endpoints>(),
        builtin::<core::Pod>(),
        builtin::<core::PersistentVolume>(),
        builtin::<core::PersistentVolumeClaim>(),
        builtin::<core::LimitRange>(),
        builtin::<core::ResourceQuota>(),
        builtin::<apps::Deployment>(),
        builtin::<apps::StatefulSet>(),
        builtin::<apps::DaemonSet>(),
        builtin::<apps::ReplicaSet>(),
        builtin::<batch::Job>(),
        builtin::<batch::CronJob>(),
        builtin::<rbac::Role>(),
        builtin::<rbac::RoleBinding>(),
        builtin::<rbac::ClusterRole>(),
        builtin::<rbac::ClusterRoleBinding>(),
        builtin::<net::Ingress>(),
        builtin::<net::NetworkPolicy>(),
        builtin::<net::IngressClass>(),
        builtin::<policy::PodDisruptionBudget>(),
        builtin::<coord::Lease>(),
        builtin::<sched::PriorityClass>(),
        builtin::<storage::StorageClass>(),
        builtin::<adm::MutatingWebhookConfiguration>(),
        builtin::<adm::ValidatingWebhookConfiguration>(),
    ]
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|source| SourceError::Io {
        path: dir.to_owned(),
        source,
    })?;
    for e in entries {
        let e = e.map_err(|source| SourceError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let path = e.path();
        if path.is_dir() {
            collect_files(&path, out)?;
        } else if matches!(
            path.extension().and_then(|x| x.to_str()),
            Some("json" | "yaml" | "yml")
        ) {
            out.push(path);
        }
    }
    Ok(())
}

fn parse_file(path: &Path) -> Result<Vec<Value>> {
    let text = std::fs::read_to_string(path).map_err(|source| SourceError::Io {
        path: path.to_owned(),
        source,
    })?;
    let parse_err = |e: &dyn fmt::Display| SourceError::Parse {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    let is_json = path.extension().and_then(|x| x.to_str()) == Some("json");
    // `rewind export` writes objects too deep for YAML readers as JSON (a
    // YAML 1.2 document; kubectl sniffs the brace and reads it as JSON).
    let json = (is_json || text.trim_start().starts_with('{'))
        .then(|| crate::deep::parse(text.as_bytes()));
    let docs: Vec<Value> = match json {
        Some(Ok(v)) => vec![v],
        Some(Err(e)) if is_json => return Err(parse_err(&e)),
        // YAML, or a YAML flow mapping that is not JSON.
        _ => {
            let mut docs = Vec::new();
            for doc in serde_yaml_ng::Deserializer::from_str(&text) {
                let v = Value::deserialize(doc).map_err(|e| parse_err(&e))?;
                if !v.is_null() {
                    docs.push(v);
                }
            }
            docs
        }
    };
    let mut out = Vec::new();
    for d in docs {
        match d.get("items").and_then(Value::as_array) {
            Some(items)
                if d.get("kind")
                    .and_then(Value::as_str)
                    .is_some_and(|k| k.ends_with("List")) =>
            {
                out.extend(items.iter().cloned());
            }
            _ => out.push(d),
        }
    }
    Ok(out)
}

/// Builds a state from loose objects, resolving each `apiVersion`/`kind` to
/// a resource type from the built-in table and the CRDs among the objects.
pub fn state_from_objects(objects: Vec<(PathBuf, Value)>) -> Result<DesiredState> {
    let mut types = builtin_types();
    for (_, o) in &objects {
        if o.get("kind").and_then(Value::as_str) == Some("CustomResourceDefinition") {
            types.extend(crd_types(o));
        }
    }
    let mut state = DesiredState::new();
    for (path, o) in objects {
        let api_version = o
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let kind = o
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let (group, version) = api_version
            .rsplit_once('/')
            .unwrap_or(("", api_version.as_str()));
        let Some(rtype) = types
            .iter()
            .find(|t| t.group == group && t.version == version && t.kind == kind)
        else {
            return Err(SourceError::UnknownKind {
                path,
                api_version,
                kind,
            });
        };
        state
            .insert(rtype, o)
            .map_err(|source| SourceError::State { path, source })?;
    }
    Ok(state)
}

impl StateSource for DirSource {
    async fn state_at(&self, point: &Point) -> Result<DesiredState> {
        if *point != Point::Latest {
            return Err(SourceError::Unsupported {
                source_name: format!("directory {}", self.dir.display()),
                point: point.to_string(),
                reason: "a directory holds one state; use --at latest".into(),
            });
        }
        let mut files = Vec::new();
        collect_files(&self.dir, &mut files)?;
        files.sort();
        let mut objects = Vec::new();
        for f in files {
            for o in parse_file(&f)? {
                objects.push((f.clone(), o));
            }
        }
        state_from_objects(objects)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_scopes_are_right() {
        let t = builtin_types();
        let find = |k: &str| t.iter().find(|x| x.kind == k).unwrap();
        assert!(find("ConfigMap").namespaced);
        assert!(!find("Namespace").namespaced);
        assert!(!find("ClusterRole").namespaced);
        assert_eq!(find("Deployment").group, "apps");
        assert_eq!(
            find("CustomResourceDefinition").resource,
            "customresourcedefinitions"
        );
    }

    #[test]
    fn points_parse() {
        assert_eq!("latest".parse::<Point>().unwrap(), Point::Latest);
        assert_eq!("seq:7".parse::<Point>().unwrap(), Point::Seq(7));
        assert_eq!("7".parse::<Point>().unwrap(), Point::Seq(7));
        assert_eq!(
            "snapshot:a".parse::<Point>().unwrap(),
            Point::Snapshot("a".into())
        );
        assert!("yesterday".parse::<Point>().is_err());
        assert_eq!(
            "2026-11-26T14:00:00Z".parse::<Point>().unwrap(),
            Point::Time(1_795_701_600_000)
        );
        assert_eq!(
            "2026-11-26T15:00:00.250+01:00".parse::<Point>().unwrap(),
            Point::Time(1_795_701_600_250)
        );
        // A time without an offset is ambiguous: refused, not guessed.
        assert!("2026-11-26T14:00:00".parse::<Point>().is_err());
    }

    #[tokio::test]
    async fn dir_source_reads_yaml_json_lists_and_crds() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("sub")).unwrap();
        std::fs::write(
            d.path().join("a.yaml"),
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: n1\n---\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.x.io\nspec:\n  group: x.io\n  scope: Namespaced\n  names: {plural: widgets, kind: Widget}\n  versions: [{name: v1, served: true}]\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("sub/b.json"),
            r#"{"kind":"List","apiVersion":"v1","items":[{"apiVersion":"x.io/v1","kind":"Widget","metadata":{"name":"w","namespace":"n1"}}]}"#,
        )
        .unwrap();
        let s = DirSource::new(d.path())
            .state_at(&Point::Latest)
            .await
            .unwrap();
        assert_eq!(s.len(), 3);
        assert!(
            s.iter()
                .any(|(k, _)| k.rtype.resource == "widgets" && k.rtype.namespaced)
        );
        assert!(
            DirSource::new(d.path())
                .state_at(&Point::Seq(1))
                .await
                .is_err()
        );
        std::fs::write(
            d.path().join("c.yaml"),
            "apiVersion: y.io/v1\nkind: Gadget\nmetadata: {name: g}\n",
        )
        .unwrap();
        assert!(matches!(
            DirSource::new(d.path()).state_at(&Point::Latest).await,
            Err(SourceError::UnknownKind { .. })
        ));
    }
}
