//! The desired state: every object of a management plane at one point, as
//! recorded (server fields included), keyed and sorted by type, namespace and
//! name.
//!
//! A [`DesiredState`] is what a [`StateSource`](crate::StateSource) yields
//! and what the restore tool plans, applies and exports.
//! It carries the CRDs of the recorded plane like any other object, so a
//! restore can install the schema the objects were written against.
//!
//! Types are rewind-format's [`ResourceType`]; [`KubeType`] adds what a
//! Kubernetes client needs of one. Objects are keyed by [`TypedKey`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use kube::discovery::ApiResource;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Errors building or querying a desired state.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// An object lacks a field every Kubernetes object has.
    #[error("object of type {rtype} has no {field}")]
    MissingField {
        /// The object's type.
        rtype: String,
        /// The missing field, e.g. `metadata.name`.
        field: &'static str,
    },
    /// A namespaced type without a namespace, or a cluster-scoped one with one.
    #[error("{rtype} {name:?}: namespace {namespace:?} does not fit the type's scope")]
    Scope {
        /// The object's type.
        rtype: String,
        /// The object's name.
        name: String,
        /// The namespace found.
        namespace: Option<String>,
    },
}

/// Result alias for this module.
pub type Result<T, E = StateError> = std::result::Result<T, E>;

/// A Kubernetes resource type: the format crate's, so a recorded type is
/// used as is.
pub use rewind_format::ResourceType;

/// What only a Kubernetes client needs of a [`ResourceType`]; kept here so
/// the format crate does not depend on kube.
pub trait KubeType {
    /// The type as kube's dynamic API needs it.
    fn api_resource(&self) -> ApiResource;
}

impl KubeType for ResourceType {
    fn api_resource(&self) -> ApiResource {
        ApiResource {
            group: self.group.clone(),
            version: self.version.clone(),
            api_version: self.api_version(),
            kind: self.kind.clone(),
            plural: self.resource.clone(),
        }
    }
}

/// The key of an object in a [`DesiredState`]: its full type, namespace and
/// name.
///
/// [`rewind_format::ObjectKey`] names the type by group and resource only:
/// the identity of an object in the recorded history, the same whatever
/// version the API served. A `TypedKey` carries the whole [`ResourceType`]
/// (version, kind, scope), which the restore tool needs to address the
/// object on an API server, and orders by it, version included.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TypedKey {
    /// The object's resource type.
    pub rtype: ResourceType,
    /// Namespace; `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    /// Object name.
    pub name: String,
}

impl TypedKey {
    /// The key of `obj`, an object of type `rtype`.
    pub fn of(rtype: &ResourceType, obj: &Value) -> Result<Self> {
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| StateError::MissingField {
                rtype: rtype.to_string(),
                field: "metadata.name",
            })?;
        let namespace = obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .map(str::to_owned);
        if rtype.namespaced != namespace.is_some() {
            return Err(StateError::Scope {
                rtype: rtype.to_string(),
                name: name.to_owned(),
                namespace,
            });
        }
        Ok(Self {
            rtype: rtype.clone(),
            namespace,
            name: name.to_owned(),
        })
    }
}

impl fmt::Display for TypedKey {
    /// `resource.group/namespace/name`, or `resource.group/name` when
    /// cluster-scoped: the form `rewind history` takes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{}/{}/{}", self.rtype.group_resource(), ns, self.name),
            None => write!(f, "{}/{}", self.rtype.group_resource(), self.name),
        }
    }
}

/// Selects part of a state. Each list is ORed within itself; lists are ANDed;
/// an empty list selects everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    /// Types by kind, plural or `resource.group` (case-insensitive).
    pub types: Vec<String>,
    /// Namespaces. Cluster-scoped objects never match a namespace filter.
    pub namespaces: Vec<String>,
    /// Names; a trailing `*` matches a prefix.
    pub names: Vec<String>,
}

impl Filter {
    /// Whether the filter selects everything.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.types.is_empty() && self.namespaces.is_empty() && self.names.is_empty()
    }

    /// Whether the filter selects objects of `rtype` at all.
    #[must_use]
    pub fn selects_type(&self, rtype: &ResourceType) -> bool {
        self.types.is_empty() || self.types.iter().any(|t| rtype.matches_name(t))
    }

    /// Whether the filter selects `key`.
    #[must_use]
    pub fn selects(&self, key: &TypedKey) -> bool {
        self.selects_parts(&key.rtype, key.namespace.as_deref(), &key.name)
    }

    /// Whether the filter selects the object of `rtype` at `namespace` and
    /// `name` (a key in parts, for callers that have no [`TypedKey`]).
    #[must_use]
    pub fn selects_parts(&self, rtype: &ResourceType, namespace: Option<&str>, name: &str) -> bool {
        let ns_ok = self.namespaces.is_empty()
            || namespace.is_some_and(|ns| self.namespaces.iter().any(|n| n == ns));
        let name_ok = self.names.is_empty() || self.names.iter().any(|p| glob(p, name));
        self.selects_type(rtype) && ns_ok && name_ok
    }
}

/// Matches `text` against `pattern`, where `*` at the end matches any suffix
/// and a lone `*` matches anything.
#[must_use]
pub fn glob(pattern: &str, text: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => text.starts_with(prefix),
        None => pattern == text,
    }
}

/// Every object of a plane at one point, sorted by key.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DesiredState {
    /// The objects as recorded, server fields and status included.
    objects: BTreeMap<TypedKey, Value>,
}

impl DesiredState {
    /// An empty state.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) `obj` of type `rtype`; returns its key.
    pub fn insert(&mut self, rtype: &ResourceType, obj: Value) -> Result<TypedKey> {
        let key = TypedKey::of(rtype, &obj)?;
        self.objects.insert(key.clone(), obj);
        Ok(key)
    }

    /// A state of `entries`; for a key given twice the last one wins, as
    /// with [`insert`](Self::insert) one by one. Builds the map in one
    /// sorted pass, much faster than inserting 100,000 objects.
    #[must_use]
    pub fn from_entries(entries: Vec<(TypedKey, Value)>) -> Self {
        Self {
            objects: entries.into_iter().collect(),
        }
    }

    /// Removes an object, returning it.
    pub fn remove(&mut self, key: &TypedKey) -> Option<Value> {
        self.objects.remove(key)
    }

    /// The object at `key`.
    #[must_use]
    pub fn get(&self, key: &TypedKey) -> Option<&Value> {
        self.objects.get(key)
    }

    /// The object at `key`, mutable (for restore presets).
    pub fn get_mut(&mut self, key: &TypedKey) -> Option<&mut Value> {
        self.objects.get_mut(key)
    }

    /// Number of objects.
    #[must_use]
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// Whether the state holds no object.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// All objects in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&TypedKey, &Value)> {
        self.objects.iter()
    }

    /// All objects in key order, mutable.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&TypedKey, &mut Value)> {
        self.objects.iter_mut()
    }

    /// The CustomResourceDefinitions in the state.
    pub fn crds(&self) -> impl Iterator<Item = (&TypedKey, &Value)> {
        self.objects.iter().filter(|(k, _)| k.rtype.is_crd())
    }

    /// The distinct types present, sorted.
    #[must_use]
    pub fn types(&self) -> BTreeSet<ResourceType> {
        self.objects.keys().map(|k| k.rtype.clone()).collect()
    }

    /// Object counts per type.
    #[must_use]
    pub fn counts(&self) -> BTreeMap<ResourceType, usize> {
        let mut out = BTreeMap::new();
        for k in self.objects.keys() {
            *out.entry(k.rtype.clone()).or_insert(0) += 1;
        }
        out
    }

    /// The part of the state `filter` selects. CRDs are kept when a custom
    /// type they define is selected, so a filtered restore still installs the
    /// schema of what it restores.
    #[must_use]
    pub fn filtered(&self, filter: &Filter) -> Self {
        if filter.is_empty() {
            return self.clone();
        }
        let mut out: BTreeMap<TypedKey, Value> = self
            .objects
            .iter()
            .filter(|(k, _)| filter.selects(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let selected: BTreeSet<(String, String)> = out
            .keys()
            .map(|k| (k.rtype.group.clone(), k.rtype.resource.clone()))
            .collect();
        for (k, crd) in self.crds() {
            if crd_defines(crd).is_some_and(|gr| selected.contains(&gr)) {
                out.insert(k.clone(), crd.clone());
            }
        }
        Self { objects: out }
    }

    /// [`filtered`](Self::filtered), consuming the state: no copy of the
    /// objects, and none at all when the filter selects everything.
    #[must_use]
    pub fn into_filtered(mut self, filter: &Filter) -> Self {
        if filter.is_empty() {
            return self;
        }
        let defined: BTreeSet<(String, String)> = self
            .objects
            .iter()
            .filter(|(k, _)| filter.selects(k))
            .map(|(k, _)| (k.rtype.group.clone(), k.rtype.resource.clone()))
            .collect();
        self.objects.retain(|k, v| {
            filter.selects(k)
                || (k.rtype.is_crd() && crd_defines(v).is_some_and(|gr| defined.contains(&gr)))
        });
        self
    }

    /// Keeps only the objects `set` selects, with the daemon's semantics
    /// (type, name, namespace, labels, fields and excludes).
    pub fn retain_selected(&mut self, set: &crate::select::ResourceSet) {
        let empty = BTreeMap::new();
        self.objects.retain(|k, v| {
            let Some(sel) = set.for_type(&k.rtype) else {
                return false;
            };
            let labels: BTreeMap<String, String> = v
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                        .collect()
                })
                .unwrap_or_default();
            sel.selects(&crate::select::ObjectView {
                name: &k.name,
                namespace: k.namespace.as_deref().unwrap_or_default(),
                labels: if labels.is_empty() { &empty } else { &labels },
                object: v,
            })
        });
    }

    /// Whether objects of `rtype` are served with a `/status` subresource,
    /// according to the CRDs in this state. `None` when no CRD here defines
    /// the type (a built-in type, or a CRD only the target has).
    #[must_use]
    pub fn status_subresource(&self, rtype: &ResourceType) -> Option<bool> {
        self.crds()
            .find(|(_, crd)| {
                crd_defines(crd).is_some_and(|(g, r)| g == rtype.group && r == rtype.resource)
            })
            .map(|(_, crd)| crd_has_status(crd, &rtype.version))
    }
}

/// The `(group, plural)` a CRD object defines.
#[must_use]
pub fn crd_defines(crd: &Value) -> Option<(String, String)> {
    let group = crd.pointer("/spec/group")?.as_str()?;
    let plural = crd.pointer("/spec/names/plural")?.as_str()?;
    Some((group.to_owned(), plural.to_owned()))
}

/// The resource types a CRD object serves, one per served version.
#[must_use]
pub fn crd_types(crd: &Value) -> Vec<ResourceType> {
    let (Some((group, plural)), Some(kind)) = (
        crd_defines(crd),
        crd.pointer("/spec/names/kind").and_then(Value::as_str),
    ) else {
        return Vec::new();
    };
    let namespaced = crd.pointer("/spec/scope").and_then(Value::as_str) == Some("Namespaced");
    crd.pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|v| v.get("served").and_then(Value::as_bool).unwrap_or(true))
        .filter_map(|v| v.get("name").and_then(Value::as_str))
        .map(|version| ResourceType {
            group: group.clone(),
            version: version.to_owned(),
            resource: plural.clone(),
            kind: kind.to_owned(),
            namespaced,
        })
        .collect()
}

/// Whether a CRD object declares a status subresource for `version`.
#[must_use]
pub fn crd_has_status(crd: &Value, version: &str) -> bool {
    crd.pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|v| v.get("name").and_then(Value::as_str) == Some(version))
        .any(|v| v.pointer("/subresources/status").is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn cm_type() -> ResourceType {
        ResourceType {
            group: String::new(),
            version: "v1".into(),
            resource: "configmaps".into(),
            kind: "ConfigMap".into(),
            namespaced: true,
        }
    }

    #[test]
    fn key_checks_scope_and_name() {
        let t = cm_type();
        let ok = json!({"metadata": {"name": "a", "namespace": "ns"}});
        let key = TypedKey::of(&t, &ok).unwrap();
        assert_eq!(key.to_string(), "configmaps/ns/a");
        let no_ns = json!({"metadata": {"name": "a"}});
        assert!(matches!(
            TypedKey::of(&t, &no_ns),
            Err(StateError::Scope { .. })
        ));
        let no_name = json!({"metadata": {"namespace": "ns"}});
        assert!(matches!(
            TypedKey::of(&t, &no_name),
            Err(StateError::MissingField { .. })
        ));
    }

    #[test]
    fn filter_keeps_crd_of_selected_type() {
        let crd_t = ResourceType {
            group: "apiextensions.k8s.io".into(),
            version: "v1".into(),
            resource: "customresourcedefinitions".into(),
            kind: "CustomResourceDefinition".into(),
            namespaced: false,
        };
        let cl_t = ResourceType {
            group: "fleet.cattle.io".into(),
            version: "v1alpha1".into(),
            resource: "clusters".into(),
            kind: "Cluster".into(),
            namespaced: true,
        };
        let mut s = DesiredState::new();
        s.insert(
            &crd_t,
            json!({"metadata": {"name": "clusters.fleet.cattle.io"},
                   "spec": {"group": "fleet.cattle.io", "names": {"plural": "clusters", "kind": "Cluster"},
                            "scope": "Namespaced",
                            "versions": [{"name": "v1alpha1", "served": true, "subresources": {"status": {}}}]}}),
        )
        .unwrap();
        s.insert(
            &cl_t,
            json!({"metadata": {"name": "c1", "namespace": "fleet-default"}}),
        )
        .unwrap();
        s.insert(
            &cm_type(),
            json!({"metadata": {"name": "x", "namespace": "a"}}),
        )
        .unwrap();
        let f = Filter {
            types: vec!["clusters.fleet.cattle.io".into()],
            ..Filter::default()
        };
        let out = s.filtered(&f);
        assert_eq!(out.len(), 2);
        assert_eq!(out.crds().count(), 1);
        assert_eq!(s.status_subresource(&cl_t), Some(true));
        assert_eq!(s.status_subresource(&cm_type()), None);
        let (_, crd) = s.crds().next().unwrap();
        assert_eq!(crd_types(crd), vec![cl_t]);
    }

    #[test]
    fn name_and_namespace_filters() {
        let t = cm_type();
        let k = TypedKey::of(&t, &json!({"metadata": {"name": "abc", "namespace": "n1"}})).unwrap();
        let by_prefix = Filter {
            names: vec!["ab*".into()],
            ..Filter::default()
        };
        assert!(by_prefix.selects(&k));
        let other_ns = Filter {
            namespaces: vec!["n2".into()],
            ..Filter::default()
        };
        assert!(!other_ns.selects(&k));
        let by_kind = Filter {
            types: vec!["configmap".into()],
            ..Filter::default()
        };
        assert!(by_kind.selects(&k));
    }
}
