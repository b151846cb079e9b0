//! Foreign workloads: what a real management cluster runs besides Rancher,
//! and what a restore with `--prune` must never touch because it was never
//! recorded.
//!
//! - a cert-manager-like namespace: Deployments, a Service, Secrets (a CA
//!   and a TLS Secret), ServiceAccounts, a Role and RoleBinding, a
//!   ClusterRole and ClusterRoleBinding, a ConfigMap owned by one of the
//!   Deployments (the garbage collector keeps it while its owner lives);
//! - Helm release Secrets (`type: helm.sh/release.v1`, label `owner: helm`):
//!   cert-manager's in its namespace, and Rancher's own in `cattle-system`,
//!   inside the namespaces the Rancher preset records but excluded from it
//!   by that label;
//! - CNI-like cluster-wide RBAC (calico's ClusterRoles and
//!   ClusterRoleBindings) with their ServiceAccount, DaemonSet and
//!   ConfigMap in `kube-system`;
//! - more of `kube-system`: a CoreDNS Deployment, ConfigMap, ServiceAccount
//!   and Service.
//!
//! [`install`] creates them and returns each with its UID;
//! [`Foreign::missing`] names those not alive with that same UID (deleted,
//! or deleted and made again).

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use serde_json::{Value, json};

/// Errors of installing or checking the foreign workloads.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("{what}: {source}")]
    Kube {
        /// The call, naming the object.
        what: String,
        /// The cause.
        source: kube::Error,
    },
    /// An object body did not parse.
    #[error("foreign object {what}: {source}")]
    Body {
        /// The object.
        what: String,
        /// The cause.
        source: serde_json::Error,
    },
}

/// Result alias for this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One installed foreign object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// `apiVersion`.
    pub api_version: String,
    /// `kind`.
    pub kind: String,
    /// Plural resource.
    pub plural: String,
    /// Namespace, for namespaced objects.
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// UID at install time.
    pub uid: String,
}

impl std::fmt::Display for Installed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{}/{ns}/{}", self.plural, self.name),
            None => write!(f, "{}/{}", self.plural, self.name),
        }
    }
}

/// The foreign workloads of one cluster.
#[derive(Debug, Clone, Default)]
pub struct Foreign {
    /// Every object, in creation order.
    pub objects: Vec<Installed>,
}

fn api(
    client: &kube::Client,
    api_version: &str,
    kind: &str,
    plural: &str,
    ns: Option<&str>,
) -> Api<DynamicObject> {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let ar =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
    match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    }
}

/// The plural of every kind used here (each adds an `s`).
fn plural_of(kind: &str) -> String {
    format!("{}s", kind.to_lowercase())
}

fn deployment(ns: &str, name: &str, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "labels": {"app.kubernetes.io/name": name}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "template": {"metadata": {"labels": {"app.kubernetes.io/name": name}},
                         "spec": {"serviceAccountName": name,
                                  "containers": [{"name": name, "image": image}]}}
        }
    })
}

fn service_account(ns: &str, name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": ns}})
}

fn helm_release(ns: &str, release: &str, version: u32) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Secret", "type": "helm.sh/release.v1",
        "metadata": {"name": format!("sh.helm.release.v1.{release}.v{version}"), "namespace": ns,
                     "labels": {"owner": "helm", "name": release, "status": "deployed",
                                "version": version.to_string()}},
        "data": {"release": "SDRzSUFBQUFBQUFBLzZxdUJRQUFBUC8vQUFBQUFBQUFBQT09"},
    })
}

fn cluster_role(name: &str, rules: Value) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
           "metadata": {"name": name}, "rules": rules})
}

fn cluster_role_binding(name: &str, role: &str, sa_ns: &str, sa: &str) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
           "metadata": {"name": name},
           "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
           "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": sa_ns}]})
}

/// Everything but the owned ConfigMap, in creation order.
fn bodies() -> Vec<Value> {
    let cm = "cert-manager";
    vec![
        json!({"apiVersion": "v1", "kind": "Namespace",
               "metadata": {"name": cm, "labels": {"app.kubernetes.io/managed-by": "Helm"}}}),
        service_account(cm, "cert-manager"),
        service_account(cm, "cert-manager-webhook"),
        deployment(
            cm,
            "cert-manager",
            "quay.io/jetstack/cert-manager-controller:v1.16.1",
        ),
        deployment(
            cm,
            "cert-manager-webhook",
            "quay.io/jetstack/cert-manager-webhook:v1.16.1",
        ),
        json!({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "cert-manager-webhook", "namespace": cm},
               "spec": {"selector": {"app.kubernetes.io/name": "cert-manager-webhook"},
                        "ports": [{"name": "https", "port": 443, "targetPort": 10250}]}}),
        json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
               "metadata": {"name": "cert-manager-ca", "namespace": cm},
               "data": {"ca.crt": "LS0tLS1CRUdJTg=="}}),
        json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
               "metadata": {"name": "cert-manager-webhook-ca", "namespace": cm},
               "data": {"tls.crt": "LS0tLS1CRUdJTg==", "tls.key": "LS0tLS1CRUdJTg==", "ca.crt": "LS0tLS1CRUdJTg=="}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
               "metadata": {"name": "cert-manager:leaderelection", "namespace": cm},
               "rules": [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "cert-manager:leaderelection", "namespace": cm},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "cert-manager:leaderelection"},
               "subjects": [{"kind": "ServiceAccount", "name": "cert-manager", "namespace": cm}]}),
        cluster_role(
            "cert-manager-controller-certificates",
            json!([
            {"apiGroups": ["cert-manager.io"], "resources": ["certificates", "certificaterequests"], "verbs": ["*"]},
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "watch", "create", "update", "delete"]}]),
        ),
        cluster_role_binding(
            "cert-manager-controller-certificates",
            "cert-manager-controller-certificates",
            cm,
            "cert-manager",
        ),
        helm_release(cm, "cert-manager", 1),
        helm_release(cm, "cert-manager", 2),
        // Rancher's own Helm release, in a namespace the Rancher preset
        // records, excluded from it by `owner: helm`.
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "cattle-system"}}),
        helm_release("cattle-system", "rancher", 1),
        // A CNI's cluster-wide RBAC and its kube-system pieces.
        service_account("kube-system", "calico-node"),
        cluster_role(
            "calico-node",
            json!([
            {"apiGroups": [""], "resources": ["pods", "nodes", "namespaces"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["crd.projectcalico.org"], "resources": ["*"], "verbs": ["*"]}]),
        ),
        cluster_role_binding("calico-node", "calico-node", "kube-system", "calico-node"),
        cluster_role(
            "calico-cni-plugin",
            json!([
            {"apiGroups": [""], "resources": ["pods", "nodes", "namespaces"], "verbs": ["get"]}]),
        ),
        cluster_role_binding(
            "calico-cni-plugin",
            "calico-cni-plugin",
            "kube-system",
            "calico-node",
        ),
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "calico-config", "namespace": "kube-system"},
               "data": {"calico_backend": "bird", "veth_mtu": "0"}}),
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
               "metadata": {"name": "calico-node", "namespace": "kube-system"},
               "spec": {"selector": {"matchLabels": {"k8s-app": "calico-node"}},
                        "template": {"metadata": {"labels": {"k8s-app": "calico-node"}},
                                     "spec": {"serviceAccountName": "calico-node", "hostNetwork": true,
                                              "containers": [{"name": "calico-node", "image": "docker.io/calico/node:v3.28.2"}]}}}}),
        service_account("kube-system", "coredns"),
        deployment(
            "kube-system",
            "coredns",
            "registry.k8s.io/coredns/coredns:v1.11.3",
        ),
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "coredns", "namespace": "kube-system"},
               "data": {"Corefile": ".:53 {\n    kubernetes cluster.local\n    forward . /etc/resolv.conf\n}\n"}}),
        json!({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}},
               "spec": {"selector": {"app.kubernetes.io/name": "coredns"},
                        "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]}}),
    ]
}

async fn create(client: &kube::Client, body: Value) -> Result<Installed> {
    let api_version = body["apiVersion"].as_str().unwrap_or_default().to_owned();
    let kind = body["kind"].as_str().unwrap_or_default().to_owned();
    let namespace = body["metadata"]["namespace"].as_str().map(str::to_owned);
    let name = body["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let plural = plural_of(&kind);
    let what = format!(
        "{plural}/{}{name}",
        namespace
            .as_deref()
            .map(|n| format!("{n}/"))
            .unwrap_or_default()
    );
    let obj: DynamicObject = serde_json::from_value(body).map_err(|source| Error::Body {
        what: what.clone(),
        source,
    })?;
    let a = api(client, &api_version, &kind, &plural, namespace.as_deref());
    let created = match a.create(&PostParams::default(), &obj).await {
        Ok(c) => c,
        // A namespace the cluster already has (kube-system, cattle-system
        // when Rancher's plane was restored first) is used as it is.
        Err(kube::Error::Api(s)) if s.code == 409 && kind == "Namespace" => {
            a.get(&name).await.map_err(|source| Error::Kube {
                what: format!("reading {what}"),
                source,
            })?
        }
        Err(source) => {
            return Err(Error::Kube {
                what: format!("creating {what}"),
                source,
            });
        }
    };
    Ok(Installed {
        api_version,
        kind,
        plural,
        namespace,
        name,
        uid: created.metadata.uid.unwrap_or_default(),
    })
}

/// Creates the foreign workloads in the cluster `client` talks to.
pub async fn install(client: &kube::Client) -> Result<Foreign> {
    let mut objects = Vec::new();
    for body in bodies() {
        objects.push(create(client, body).await?);
    }
    // A ConfigMap owned by the cert-manager Deployment: alive as long as the
    // garbage collector finds its owner.
    let owner = objects
        .iter()
        .find(|o| o.kind == "Deployment" && o.name == "cert-manager")
        .map(|o| o.uid.clone())
        .unwrap_or_default();
    objects.push(
        create(
            client,
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "cert-manager-controller-config", "namespace": "cert-manager",
                                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                                     "name": "cert-manager", "uid": owner,
                                                     "controller": true, "blockOwnerDeletion": true}]},
                   "data": {"leader-election": "true"}}),
        )
        .await?,
    );
    tracing::info!(objects = objects.len(), "foreign workloads installed");
    Ok(Foreign { objects })
}

impl Foreign {
    /// The objects not alive with their install-time UID, each with what
    /// was found instead (missing, being deleted, or another UID).
    pub async fn missing(&self, client: &kube::Client) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for o in &self.objects {
            let a = api(
                client,
                &o.api_version,
                &o.kind,
                &o.plural,
                o.namespace.as_deref(),
            );
            let live = a.get_opt(&o.name).await.map_err(|source| Error::Kube {
                what: format!("reading {o}"),
                source,
            })?;
            match live {
                None => out.push(format!("{o}: gone")),
                Some(l) if l.metadata.deletion_timestamp.is_some() => {
                    out.push(format!("{o}: being deleted"));
                }
                Some(l) if l.metadata.uid.as_deref() != Some(o.uid.as_str()) => {
                    out.push(format!(
                        "{o}: made again (uid {:?}, was {})",
                        l.metadata.uid, o.uid
                    ));
                }
                Some(_) => {}
            }
        }
        Ok(out)
    }
}
