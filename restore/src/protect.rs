//! What a restore never touches, and Rancher's known restore fixes.
//!
//! A *protected* object is neither written nor deleted: the running Rancher
//! server and its webhook (restoring them mid-restore restarts Rancher into a
//! half-written plane; BRO skips them for that reason), the cluster's own
//! namespaces and `kube-system`, and Rewind's own namespace. Prune also never
//! deletes CRDs (deleting one deletes every object of its type) nor what the
//! API server creates by itself.
//!
//! Patterns are `TYPE/NAMESPACE/NAME` or `TYPE/NAME` (any namespace or none),
//! where TYPE is a kind, plural or `resource.group` and each part may be `*`
//! or end with `*`. `namespaces/default` protects the Namespace object
//! `default`, not the objects in it; `*/kube-system/*` protects those.

use serde::Serialize;
use serde_json::Value;

use rewind_history::state::{DesiredState, TypedKey, glob};

/// Errors parsing protection patterns.
#[derive(Debug, thiserror::Error)]
pub enum ProtectError {
    /// A pattern without two or three `/`-separated parts.
    #[error("protection pattern {0:?} is not TYPE/NAME or TYPE/NAMESPACE/NAME")]
    BadPattern(String),
}

/// Result alias for this module.
pub type Result<T, E = ProtectError> = std::result::Result<T, E>;

/// The default protected set.
pub const DEFAULT_PROTECTED: &[&str] = &[
    "deployments.apps/cattle-system/rancher",
    "deployments.apps/cattle-system/rancher-webhook",
    "namespaces/kube-system",
    "namespaces/kube-public",
    "namespaces/kube-node-lease",
    "namespaces/default",
    "*/kube-system/*",
    "namespaces/rewind-system",
    "*/rewind-system/*",
];

/// Objects the API server or its controllers create on their own, which
/// prune must leave alone even when their type is selected.
pub const PRUNE_NEVER: &[&str] = &[
    "customresourcedefinitions.apiextensions.k8s.io/*",
    "services/default/kubernetes",
    "configmaps/*/kube-root-ca.crt",
    "serviceaccounts/*/default",
    "clusterroles.rbac.authorization.k8s.io/system:*",
    "clusterrolebindings.rbac.authorization.k8s.io/system:*",
    "clusterroles.rbac.authorization.k8s.io/admin",
    "clusterroles.rbac.authorization.k8s.io/edit",
    "clusterroles.rbac.authorization.k8s.io/view",
    "clusterroles.rbac.authorization.k8s.io/cluster-admin",
    "clusterrolebindings.rbac.authorization.k8s.io/cluster-admin",
    "flowschemas.flowcontrol.apiserver.k8s.io/*",
    "prioritylevelconfigurations.flowcontrol.apiserver.k8s.io/*",
];

/// One protection pattern.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pattern {
    /// Type part.
    rtype: String,
    /// Namespace part; `None` matches any namespace and none.
    namespace: Option<String>,
    /// Name part.
    name: String,
}

impl Pattern {
    /// Parses `TYPE/NAME` or `TYPE/NAMESPACE/NAME`.
    pub fn parse(s: &str) -> Result<Self> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [t, n] if !t.is_empty() && !n.is_empty() => Ok(Self {
                rtype: (*t).to_owned(),
                namespace: None,
                name: (*n).to_owned(),
            }),
            [t, ns, n] if !t.is_empty() && !n.is_empty() => Ok(Self {
                rtype: (*t).to_owned(),
                namespace: Some((*ns).to_owned()),
                name: (*n).to_owned(),
            }),
            _ => Err(ProtectError::BadPattern(s.to_owned())),
        }
    }

    /// Whether the pattern matches `key`.
    #[must_use]
    pub fn matches(&self, key: &TypedKey) -> bool {
        let type_ok = self.rtype == "*" || key.rtype.matches_name(&self.rtype);
        let ns_ok = match (&self.namespace, &key.namespace) {
            (None, _) => true,
            (Some(p), Some(ns)) => glob(p, ns),
            (Some(p), None) => p == "*" || p.is_empty(),
        };
        type_ok && ns_ok && glob(&self.name, &key.name)
    }
}

/// The objects a restore must not touch.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProtectedSet {
    /// Never written nor deleted.
    patterns: Vec<Pattern>,
    /// Individual objects (from presets) never written nor deleted.
    keys: Vec<TypedKey>,
    /// Never deleted by prune (may be written).
    prune_never: Vec<Pattern>,
}

impl ProtectedSet {
    /// The defaults ([`DEFAULT_PROTECTED`], [`PRUNE_NEVER`]) plus `extra`.
    pub fn with_defaults(extra: &[String]) -> Result<Self> {
        let mut set = Self::empty(extra)?;
        for p in DEFAULT_PROTECTED {
            set.patterns.push(Pattern::parse(p)?);
        }
        Ok(set)
    }

    /// Only `extra` (and [`PRUNE_NEVER`], which is not configurable).
    pub fn empty(extra: &[String]) -> Result<Self> {
        Ok(Self {
            patterns: extra
                .iter()
                .map(|p| Pattern::parse(p))
                .collect::<Result<_>>()?,
            keys: Vec::new(),
            prune_never: PRUNE_NEVER
                .iter()
                .map(|p| Pattern::parse(p))
                .collect::<Result<_>>()?,
        })
    }

    /// Protects one object.
    pub fn add_key(&mut self, key: TypedKey) {
        self.keys.push(key);
    }

    /// Whether `key` must be neither written nor deleted.
    #[must_use]
    pub fn is_protected(&self, key: &TypedKey) -> bool {
        self.keys.contains(key) || self.patterns.iter().any(|p| p.matches(key))
    }

    /// Whether `key` was protected individually (by a preset's skip).
    #[must_use]
    pub fn is_preset_key(&self, key: &TypedKey) -> bool {
        self.keys.contains(key)
    }

    /// Whether prune may delete `key`.
    #[must_use]
    pub fn may_prune(&self, key: &TypedKey) -> bool {
        !self.is_protected(key) && !self.prune_never.iter().any(|p| p.matches(key))
    }
}

/// What the Rancher preset changed, for the plan's notes.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct PresetReport {
    /// ServiceAccounts whose `secrets` list was dropped.
    pub service_account_secrets_dropped: usize,
    /// Clusters whose agent redeploy generation was bumped.
    pub agent_redeploys: usize,
    /// Objects skipped (and protected from prune).
    pub skipped: Vec<String>,
}

fn is(key: &TypedKey, group: &str, resource: &str) -> bool {
    key.rtype.group == group && key.rtype.resource == resource
}

fn bump(obj: &mut Value, field: &str) -> bool {
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return false;
    };
    let next = spec
        .get(field)
        .and_then(Value::as_i64)
        .unwrap_or(0)
        .saturating_add(1);
    spec.insert(field.to_owned(), Value::from(next));
    true
}

/// Applies the fixes Rancher's backup-restore-operator applies on restore
/// (see `shared/reference/peers.md`), and protects what it skips:
/// - ServiceAccount `secrets` are dropped (token Secrets are re-created by
///   the target's controllers, and stale references break token lookup);
/// - Fleet clusters get `spec.redeployAgentGeneration` + 1 and provisioning
///   clusters `spec.redeploySystemAgentGeneration` + 1, and management
///   clusters the `io.cattle.agent.force.deploy` annotation, so agents
///   reconnect to the restored plane;
/// - `rancher`/`rancher-webhook` Deployments (default protected anyway),
///   built-in GlobalRoles and RoleTemplates (Rancher recreates them) and
///   `fleet.cattle.io/cluster-registration-values` Secrets are skipped.
pub fn rancher_preset(state: &mut DesiredState, protected: &mut ProtectedSet) -> PresetReport {
    let mut report = PresetReport::default();
    let mut skip = Vec::new();
    for (key, obj) in state.iter_mut() {
        if is(key, "", "serviceaccounts") {
            if let Some(m) = obj.as_object_mut()
                && m.remove("secrets").is_some()
            {
                report.service_account_secrets_dropped += 1;
            }
        } else if is(key, "fleet.cattle.io", "clusters") {
            if bump(obj, "redeployAgentGeneration") {
                report.agent_redeploys += 1;
            }
        } else if is(key, "provisioning.cattle.io", "clusters") {
            if bump(obj, "redeploySystemAgentGeneration") {
                report.agent_redeploys += 1;
            }
        } else if is(key, "management.cattle.io", "clusters") {
            if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                let ann = meta
                    .entry("annotations")
                    .or_insert_with(|| Value::Object(serde_json::Map::new()));
                if let Some(a) = ann.as_object_mut() {
                    a.insert("io.cattle.agent.force.deploy".into(), Value::from("true"));
                }
            }
        } else if is(key, "", "secrets") {
            if obj.get("type").and_then(Value::as_str)
                == Some("fleet.cattle.io/cluster-registration-values")
            {
                skip.push(key.clone());
            }
        } else if (is(key, "management.cattle.io", "globalroles")
            || is(key, "management.cattle.io", "roletemplates"))
            && obj.get("builtin").and_then(Value::as_bool) == Some(true)
        {
            skip.push(key.clone());
        }
    }
    for key in skip {
        report.skipped.push(key.to_string());
        protected.add_key(key);
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use rewind_history::state::ResourceType;
    use serde_json::json;

    fn key(group: &str, resource: &str, kind: &str, ns: Option<&str>, name: &str) -> TypedKey {
        TypedKey {
            rtype: ResourceType {
                group: group.into(),
                version: "v1".into(),
                resource: resource.into(),
                kind: kind.into(),
                namespaced: ns.is_some(),
            },
            namespace: ns.map(Into::into),
            name: name.into(),
        }
    }

    #[test]
    fn defaults_protect_rancher_and_system_namespaces_only() {
        let p = ProtectedSet::with_defaults(&[]).unwrap();
        let rancher = key(
            "apps",
            "deployments",
            "Deployment",
            Some("cattle-system"),
            "rancher",
        );
        let other = key(
            "apps",
            "deployments",
            "Deployment",
            Some("cattle-system"),
            "fleet",
        );
        let ns_default = key("", "namespaces", "Namespace", None, "default");
        let in_default = key("", "configmaps", "ConfigMap", Some("default"), "x");
        let in_ks = key("", "configmaps", "ConfigMap", Some("kube-system"), "x");
        assert!(p.is_protected(&rancher));
        assert!(!p.is_protected(&other));
        assert!(p.is_protected(&ns_default));
        assert!(!p.is_protected(&in_default));
        assert!(p.is_protected(&in_ks));
        let crd = key(
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            None,
            "a.b",
        );
        assert!(!p.is_protected(&crd));
        assert!(!p.may_prune(&crd));
        assert!(p.may_prune(&other));
        let none = ProtectedSet::empty(&["ConfigMap/default/x".into()]).unwrap();
        assert!(none.is_protected(&in_default));
        assert!(!none.is_protected(&rancher));
        assert!(Pattern::parse("justone").is_err());
    }

    #[test]
    fn rancher_preset_fixes_and_skips() {
        let mut s = DesiredState::new();
        let sa = key("", "serviceaccounts", "ServiceAccount", Some("a"), "sa");
        let fleet = key(
            "fleet.cattle.io",
            "clusters",
            "Cluster",
            Some("fleet-default"),
            "c1",
        );
        let reg = key("", "secrets", "Secret", Some("fleet-default"), "reg");
        let gr = key(
            "management.cattle.io",
            "globalroles",
            "GlobalRole",
            None,
            "admin",
        );
        s.insert(
            &sa.rtype,
            json!({"metadata": {"name": "sa", "namespace": "a"}, "secrets": [{"name": "t"}]}),
        )
        .unwrap();
        s.insert(&fleet.rtype, json!({"metadata": {"name": "c1", "namespace": "fleet-default"}, "spec": {"redeployAgentGeneration": 4}})).unwrap();
        s.insert(&reg.rtype, json!({"metadata": {"name": "reg", "namespace": "fleet-default"}, "type": "fleet.cattle.io/cluster-registration-values"})).unwrap();
        s.insert(
            &gr.rtype,
            json!({"metadata": {"name": "admin"}, "builtin": true}),
        )
        .unwrap();
        let mut p = ProtectedSet::empty(&[]).unwrap();
        let r = rancher_preset(&mut s, &mut p);
        assert_eq!(r.service_account_secrets_dropped, 1);
        assert!(s.get(&sa).unwrap().get("secrets").is_none());
        assert_eq!(s.get(&fleet).unwrap()["spec"]["redeployAgentGeneration"], 5);
        assert!(p.is_protected(&reg) && p.is_protected(&gr));
        assert!(!p.is_protected(&fleet));
        assert_eq!(r.skipped.len(), 2);
    }
}
