//! `rewindd rbac`: the least-privilege RBAC for recording a resource set.
//!
//! The role is computed, not written by hand: one discovery pass against
//! the cluster ([`crate::watch::discovery`]), the types the record set
//! selects ([`crate::watch::choose_types`]), and for each API group the
//! resources by name with `get`, `list` and `watch`. Never `*`: a wildcard
//! resource also matches subresources (`nodes/proxy`, `pods/exec`,
//! `services/proxy`, ...), which run commands on kubelets and in pods.
//! Besides what it records, rewindd reads:
//!
//! - `customresourcedefinitions` (list/watch), to notice new types at once;
//! - the `kube-system` Namespace (get), whose uid is the default cluster id;
//! - the discovery documents (`/api`, `/apis` and below) and `/readyz`;
//! - a Lease in its own namespace, for leader election (a namespaced Role):
//!   `get` and `update` on that Lease by name, and `create` on leases,
//!   which Kubernetes cannot restrict by name (the object does not exist
//!   when the request is authorized).
//!
//! The output is a YAML stream (Namespace, ServiceAccount, ClusterRole,
//! ClusterRoleBinding, Role, RoleBinding), sorted so that the same cluster
//! and record set always give the same bytes.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use kube::Client;
use rewind_history::select::ResourceSet;

use crate::watch::{choose_types, discovery};

/// Errors of RBAC generation.
#[derive(Debug, thiserror::Error)]
pub enum RbacError {
    /// Discovery could not list the API groups at all.
    #[error("discovery against the cluster failed: {0}")]
    Discovery(#[from] discovery::Error),
    /// Some groups failed discovery: their types would be missing from the
    /// role, and recording them would be forbidden.
    #[error(
        "discovery failed for {}; the role would miss their types (fix the APIService, or generate again when it answers)",
        .0.iter().map(|(g, e)| format!("group `{g}` ({e})")).collect::<Vec<_>>().join(", ")
    )]
    FailedGroups(BTreeMap<String, String>),
    /// The record set selects no served type.
    #[error("the record set selects no type this cluster serves")]
    Empty,
}

/// Result alias of this module.
pub type Result<T, E = RbacError> = std::result::Result<T, E>;

/// Names of the generated objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// Namespace of the ServiceAccount and of the Lease.
    pub namespace: String,
    /// The ServiceAccount rewindd runs as in a cluster.
    pub service_account: String,
    /// What the record set is called in the header (e.g. the presets).
    pub record_set: String,
    /// The leader-election Lease's name (`[leader] lease`'s part after the
    /// slash).
    pub lease: String,
}

/// The API groups and resources to read, by group (`""` is core).
pub type Reads = BTreeMap<String, BTreeSet<String>>;

/// The verbs of every recorded type.
pub const READ_VERBS: [&str; 3] = ["get", "list", "watch"];

/// The group and resource rewindd watches for new types.
const CRDS: (&str, &str) = ("apiextensions.k8s.io", "customresourcedefinitions");

/// What rewindd reads besides the recorded types' endpoints.
pub const NON_RESOURCE_URLS: [&str; 5] = ["/api", "/api/*", "/apis", "/apis/*", "/readyz"];

/// Discovers the cluster and returns every group and resource `set`
/// selects, plus the CRDs rewindd watches itself.
pub async fn reads(client: &Client, set: &ResourceSet) -> Result<Reads> {
    let found = discovery::discover(client).await?;
    if !found.failed_groups.is_empty() {
        return Err(RbacError::FailedGroups(found.failed_groups));
    }
    let chosen = choose_types(&found, set);
    if chosen.is_empty() {
        return Err(RbacError::Empty);
    }
    let mut reads = Reads::new();
    for (t, _) in chosen.values() {
        reads
            .entry(t.group.clone())
            .or_default()
            .insert(t.resource.clone());
    }
    tracing::info!(
        groups = reads.len(),
        resources = reads.values().map(BTreeSet::len).sum::<usize>(),
        "record set resolved against discovery"
    );
    Ok(reads)
}

fn list(items: impl IntoIterator<Item = impl AsRef<str>>) -> String {
    let quoted: Vec<String> = items
        .into_iter()
        .map(|s| serde_json::Value::String(s.as_ref().to_owned()).to_string())
        .collect();
    format!("[{}]", quoted.join(", "))
}

/// The name of the recorder's ClusterRole and ClusterRoleBinding.
pub const CLUSTER_ROLE: &str = "rewind:recorder";
/// The name of the Lease Role and RoleBinding.
pub const LEASE_ROLE: &str = "rewind:recorder-lease";

/// The YAML stream for `reads`.
#[must_use]
pub fn render(reads: &Reads, names: &Names) -> String {
    let Names {
        namespace: ns,
        service_account: sa,
        record_set,
        lease,
    } = names;
    let mut reads = reads.clone();
    reads
        .entry(CRDS.0.to_owned())
        .or_default()
        .insert(CRDS.1.to_owned());
    let mut y = String::new();
    let _ = write!(
        y,
        "# rewindd records; it never writes to the cluster. Generated by
# `rewindd rbac` for the record set {record_set}: get/list/watch on each
# type the set selects, by name (never `*`, which would also grant
# subresources such as nodes/proxy and pods/exec), and what rewindd reads
# itself. Types the cluster serves later (a new CRD) are not covered:
# generate again after installing them.
apiVersion: v1
kind: Namespace
metadata:
  name: {ns}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {sa}
  namespace: {ns}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: {CLUSTER_ROLE}
rules:
"
    );
    for (group, resources) in &reads {
        let _ = write!(
            y,
            "  - apiGroups: {}\n    resources: {}\n    verbs: {}\n",
            list([group]),
            list(resources),
            list(READ_VERBS)
        );
    }
    let _ = write!(
        y,
        "  # The cluster id: the uid of the kube-system Namespace.
  - apiGroups: [\"\"]
    resources: [\"namespaces\"]
    resourceNames: [\"kube-system\"]
    verbs: [\"get\"]
  # Discovery, and the server's readiness.
  - nonResourceURLs: {urls}
    verbs: [\"get\"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: {CLUSTER_ROLE}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: {CLUSTER_ROLE}
subjects:
  - kind: ServiceAccount
    name: {sa}
    namespace: {ns}
# For rewindd outside the cluster (systemd), bind a user or group instead:
#  - kind: User
#    name: rewindd
#    apiGroup: rbac.authorization.k8s.io
---
# Leader election: one Lease, in this namespace only. `create` cannot be
# restricted by name in Kubernetes; `get` and `update` are, to that Lease.
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: {LEASE_ROLE}
  namespace: {ns}
rules:
  - apiGroups: [\"coordination.k8s.io\"]
    resources: [\"leases\"]
    resourceNames: {lease_names}
    verbs: [\"get\", \"update\"]
  - apiGroups: [\"coordination.k8s.io\"]
    resources: [\"leases\"]
    verbs: [\"create\"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: {LEASE_ROLE}
  namespace: {ns}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: {LEASE_ROLE}
subjects:
  - kind: ServiceAccount
    name: {sa}
    namespace: {ns}
",
        urls = list(NON_RESOURCE_URLS),
        lease_names = list([lease]),
    );
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Names {
        Names {
            namespace: "rewind-system".into(),
            service_account: "rewindd".into(),
            record_set: "test".into(),
            lease: "rewindd".into(),
        }
    }

    #[test]
    fn resources_are_named_never_wildcards_and_crds_are_added() {
        let mut reads = Reads::new();
        reads
            .entry(String::new())
            .or_default()
            .extend(["secrets".to_owned(), "configmaps".to_owned()]);
        reads
            .entry("management.cattle.io".into())
            .or_default()
            .insert("clusters".into());
        let y = render(&reads, &names());
        assert!(!y.contains("\"*\""), "{y}");
        assert!(
            y.contains(
                "  - apiGroups: [\"\"]\n    resources: [\"configmaps\", \"secrets\"]\n    verbs: [\"get\", \"list\", \"watch\"]\n"
            ),
            "{y}"
        );
        assert!(
            y.contains("  - apiGroups: [\"apiextensions.k8s.io\"]\n    resources: [\"customresourcedefinitions\"]\n"),
            "{y}"
        );
        assert_eq!(y, render(&reads, &names()), "deterministic");
        assert!(
            y.contains("    resourceNames: [\"rewindd\"]\n    verbs: [\"get\", \"update\"]\n"),
            "get/update on the one Lease by name: {y}"
        );
    }
}
