//! Shared by the `restore_*` scenarios: a Rancher-shaped plane written into a
//! real control plane through plain creates (not through the restore code
//! under test), recording it the way the daemon sees it (LIST results with
//! every server field), and an object-by-object comparison.
#![allow(
    dead_code,
    reason = "shared by several test binaries, each using part of it"
)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use rewind_history::{DesiredState, ResourceType, TypedKey};
use rewind_restore::live::{api_for, list_all};
use serde_json::{Value, json};

pub fn crd_t() -> ResourceType {
    ResourceType::new(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        false,
    )
}
pub fn ns_t() -> ResourceType {
    ResourceType::new("", "v1", "namespaces", "Namespace", false)
}
pub fn mgmt_cluster_t() -> ResourceType {
    ResourceType::new("management.cattle.io", "v3", "clusters", "Cluster", false)
}
pub fn project_t() -> ResourceType {
    ResourceType::new("management.cattle.io", "v3", "projects", "Project", true)
}
pub fn fleet_cluster_t() -> ResourceType {
    ResourceType::new("fleet.cattle.io", "v1alpha1", "clusters", "Cluster", true)
}
/// A CRD without a status subresource: status is part of the object.
pub fn setting_t() -> ResourceType {
    ResourceType::new("management.cattle.io", "v3", "settings", "Setting", false)
}
/// A CRD with a strict schema (`spec.size` is an integer).
pub fn strict_t() -> ResourceType {
    ResourceType::new("rewind.test", "v1", "stricts", "Strict", true)
}
pub fn secret_t() -> ResourceType {
    ResourceType::new("", "v1", "secrets", "Secret", true)
}
pub fn cm_t() -> ResourceType {
    ResourceType::new("", "v1", "configmaps", "ConfigMap", true)
}
pub fn sa_t() -> ResourceType {
    ResourceType::new("", "v1", "serviceaccounts", "ServiceAccount", true)
}
pub fn deploy_t() -> ResourceType {
    ResourceType::new("apps", "v1", "deployments", "Deployment", true)
}

/// Every type the plane uses, CRDs and Namespaces first.
pub fn plane_types() -> Vec<ResourceType> {
    vec![
        crd_t(),
        ns_t(),
        mgmt_cluster_t(),
        setting_t(),
        project_t(),
        fleet_cluster_t(),
        strict_t(),
        secret_t(),
        cm_t(),
        sa_t(),
        deploy_t(),
    ]
}

fn crd(t: &ResourceType, status_subresource: bool, schema: Value) -> Value {
    let mut version = json!({
        "name": t.version, "served": true, "storage": true,
        "schema": {"openAPIV3Schema": schema},
    });
    if status_subresource {
        version["subresources"] = json!({"status": {}});
    }
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{}.{}", t.resource, t.group)},
        "spec": {
            "group": t.group,
            "scope": if t.namespaced { "Namespaced" } else { "Cluster" },
            "names": {"plural": t.resource, "kind": t.kind, "singular": t.kind.to_lowercase(),
                      "listKind": format!("{}List", t.kind)},
            "versions": [version],
        }
    })
}

fn open_schema() -> Value {
    json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
}

pub fn crds() -> Vec<Value> {
    vec![
        crd(&mgmt_cluster_t(), true, open_schema()),
        crd(&setting_t(), false, open_schema()),
        crd(&project_t(), true, open_schema()),
        crd(&fleet_cluster_t(), true, open_schema()),
        crd(
            &strict_t(),
            false,
            json!({"type": "object", "properties": {
                "spec": {"type": "object", "properties": {"size": {"type": "integer", "minimum": 0}}}}}),
        ),
    ]
}

/// One object to write: type, body, optional status, owners by (type, ns, name).
pub struct Obj {
    pub t: ResourceType,
    pub body: Value,
    pub status: Option<Value>,
    pub owners: Vec<(ResourceType, Option<String>, String)>,
}

fn meta(name: &str, ns: Option<&str>) -> Value {
    match ns {
        Some(ns) => json!({"name": name, "namespace": ns, "labels": {"rewind.test/plane": "yes"}}),
        None => json!({"name": name, "labels": {"rewind.test/plane": "yes"}}),
    }
}

/// A Rancher-shaped plane with `clusters` downstream clusters, in write order.
pub fn plane(clusters: usize) -> Vec<Obj> {
    let mut v = Vec::new();
    let o = |t: ResourceType, body: Value| Obj {
        t,
        body,
        status: None,
        owners: Vec::new(),
    };
    for ns in ["fleet-default", "cattle-system", "cattle-global-data"] {
        v.push(o(ns_t(), json!({"metadata": meta(ns, None)})));
    }
    v.push(o(deploy_t(), deployment("cattle-system", "rancher", 3)));
    v.push(o(
        deploy_t(),
        deployment("cattle-system", "fleet-controller", 2),
    ));
    v.push(o(setting_t(), json!({"metadata": meta("server-url", None), "value": "https://rancher.example", "status": {"seen": true}})));
    for i in 0..clusters {
        let c = format!("c-m-{i:04}");
        v.push(Obj {
            status: Some(json!({"ready": true, "conditions": [{"type": "Ready", "status": "True"}], "agentImage": "rancher/agent:v2.9"})),
            ..o(mgmt_cluster_t(), json!({"metadata": meta(&c, None), "spec": {"displayName": format!("cluster {i}"), "fleetWorkspaceName": "fleet-default"}}))
        });
        v.push(Obj {
            owners: vec![(mgmt_cluster_t(), None, c.clone())],
            ..o(ns_t(), json!({"metadata": meta(&c, None)}))
        });
        v.push(Obj {
            status: Some(json!({"conditions": [{"type": "Created", "status": "True"}]})),
            owners: vec![(mgmt_cluster_t(), None, c.clone())],
            ..o(project_t(), json!({"metadata": meta("p-default", Some(&c)), "spec": {"clusterName": c, "displayName": "Default"}}))
        });
        v.push(Obj {
            owners: vec![(project_t(), Some(c.clone()), "p-default".into())],
            ..o(secret_t(), json!({"metadata": meta("creds", Some(&c)), "type": "Opaque", "data": {"token": "c2VjcmV0"}}))
        });
        v.push(Obj {
            owners: vec![(secret_t(), Some(c.clone()), "creds".into()), (project_t(), Some(c.clone()), "p-default".into())],
            ..o(cm_t(), json!({"metadata": meta("agent-config", Some(&c)), "data": {"cluster": c, "index": i.to_string()}}))
        });
        v.push(o(
            sa_t(),
            json!({"metadata": meta("agent", Some(&c)), "secrets": [{"name": "agent-token"}]}),
        ));
        v.push(Obj {
            status: Some(json!({"agent": {"lastSeen": "2026-11-26T00:00:00Z"}, "display": {"readyBundles": "3/3"}})),
            ..o(fleet_cluster_t(), json!({"metadata": meta(&c, Some("fleet-default")), "spec": {"kubeConfigSecret": format!("{c}-kubeconfig"), "redeployAgentGeneration": 1}}))
        });
    }
    v
}

pub fn deployment(ns: &str, name: &str, replicas: i64) -> Value {
    json!({
        "metadata": meta(name, Some(ns)),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": "main", "image": "rancher/rancher:v2.9"}]}}
        }
    })
}

fn with_type(t: &ResourceType, mut body: Value) -> Value {
    body["apiVersion"] = json!(t.api_version());
    body["kind"] = json!(t.kind);
    body
}

pub async fn wait_established(client: &kube::Client, name: &str) {
    let api = api_for(client, &crd_t(), None);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let c = api.get(name).await.unwrap();
        let ok = c.data["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Established" && c["status"] == "True");
        if ok {
            return;
        }
        assert!(Instant::now() < deadline, "CRD {name} not established");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Creates `crds` and waits until each is Established.
pub async fn install_crds(client: &kube::Client, crds: &[Value]) {
    let api = api_for(client, &crd_t(), None);
    for c in crds {
        let name = c["metadata"]["name"].as_str().unwrap();
        let obj: DynamicObject = serde_json::from_value(c.clone()).unwrap();
        api.create(&PostParams::default(), &obj).await.unwrap();
        wait_established(client, name).await;
    }
    // A create right after Established may still race the CR endpoint.
    tokio::time::sleep(Duration::from_millis(500)).await;
}

/// Writes the plane with plain POSTs (owners' UIDs looked up as they are
/// created) and status with merge patches on /status.
pub async fn write_plane(client: &kube::Client, objs: &[Obj]) {
    install_crds(client, &crds()).await;
    let mut uids: BTreeMap<(String, Option<String>, String), String> = BTreeMap::new();
    for o in objs {
        let ns = o.body["metadata"]["namespace"].as_str().map(str::to_owned);
        let name = o.body["metadata"]["name"].as_str().unwrap().to_owned();
        let mut body = with_type(&o.t, o.body.clone());
        let refs: Vec<Value> = o
            .owners
            .iter()
            .map(|(t, ons, oname)| {
                let uid = &uids[&(t.group_resource(), ons.clone(), oname.clone())];
                json!({"apiVersion": t.api_version(), "kind": t.kind, "name": oname, "uid": uid})
            })
            .collect();
        if !refs.is_empty() {
            body["metadata"]["ownerReferences"] = json!(refs);
        }
        let api = api_for(client, &o.t, ns.as_deref());
        let obj: DynamicObject = serde_json::from_value(body).unwrap();
        let created = api
            .create(&PostParams::default(), &obj)
            .await
            .unwrap_or_else(|e| panic!("creating {}/{name}: {e}", o.t));
        uids.insert(
            (o.t.group_resource(), ns.clone(), name.clone()),
            created.metadata.uid.unwrap(),
        );
        if let Some(st) = &o.status {
            api.patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(&json!({"status": st})),
            )
            .await
            .unwrap();
        }
    }
}

/// Records the plane's types the way the daemon sees them: LIST results,
/// server fields and all. System objects the apiserver makes are left out.
pub async fn record(client: &kube::Client) -> DesiredState {
    record_types(client, &plane_types()).await
}

/// Like [`record`], for the given types.
pub async fn record_types(client: &kube::Client, types: &[ResourceType]) -> DesiredState {
    let mut s = DesiredState::new();
    for t in types.iter().cloned() {
        for o in list_all(client, &t).await.unwrap().unwrap_or_default() {
            let ns = o["metadata"]["namespace"].as_str().unwrap_or("");
            let name = o["metadata"]["name"].as_str().unwrap_or("");
            if ns == "kube-system"
                || ns == "default"
                || (t == ns_t() && name.starts_with("kube-"))
                || (t == ns_t() && name == "default")
            {
                continue;
            }
            s.insert(&t, o).unwrap();
        }
    }
    s
}

/// What must be equal between the recorded and the restored object.
pub fn normalized(key: &TypedKey, o: &Value) -> Value {
    rewind_restore::compare::normalized(key, o)
}

/// Differences between `want` and what `client`'s cluster holds, object by
/// object, apart from server-set fields (see `rewind_restore::compare`):
/// missing, extra (outside the system namespaces), changed objects, and
/// ownerReferences not carrying the live owner's UID.
pub async fn differences(want: &DesiredState, client: &kube::Client) -> Vec<String> {
    differences_for(want, client, &plane_types()).await
}

/// Like [`differences`], recording `types` from the cluster.
pub async fn differences_for(
    want: &DesiredState,
    client: &kube::Client,
    types: &[ResourceType],
) -> Vec<String> {
    let got = record_types(client, types).await;
    rewind_restore::compare(want, &got)
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// Like [`differences_for`], without the `status` of `no_status` types on
/// either side: built-in types whose status the restore leaves to the
/// target (the apiserver stamps some of it on create).
pub async fn differences_without_status(
    want: &DesiredState,
    client: &kube::Client,
    types: &[ResourceType],
    no_status: &[ResourceType],
) -> Vec<String> {
    let mut want = want.clone();
    let mut got = record_types(client, types).await;
    for s in [&mut want, &mut got] {
        for (k, o) in s.iter_mut() {
            if no_status.contains(&k.rtype) {
                o.as_object_mut().unwrap().remove("status");
            }
        }
    }
    rewind_restore::compare(&want, &got)
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// Counts objects of `t` in the cluster.
pub async fn count(client: &kube::Client, t: &ResourceType) -> usize {
    let api: Api<DynamicObject> = api_for(client, t, None);
    api.list(&ListParams::default())
        .await
        .map(|l| l.items.len())
        .unwrap_or(0)
}
