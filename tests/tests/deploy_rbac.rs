//! The shipped recorder RBAC (`deploy/rbac/rewindd-readonly.yaml`) is least
//! privilege and enough:
//!
//! - it is exactly what `rewindd rbac --presets rancher` prints against the
//!   harness's apiserver with the Rancher CRDs installed (golden; write it
//!   again with `REWIND_BLESS_GOLDEN=1`);
//! - bound to a user, it answers 403 for the subresources that run commands
//!   (`nodes/proxy`, `pods/exec`, `pods/attach`, `pods/portforward`,
//!   `services/proxy`) and for every write verb on several types, while
//!   rewindd recording the whole `rancher` preset as that user lists and
//!   watches every type and its journal equals a fresh LIST.
//!
//! Runs the real `rewindd` binary against the local control plane.

mod daemon_support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use daemon_support::*;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::{ClusterRole, Role};
use kube::api::{Api, PostParams};
use rewind_daemon::status::WatchState;
use rewind_tests::ControlPlane;
use rewind_tests::daemon::{DaemonConfig, RunOptions};

const USER: &str = "daemon-user";

fn shipped_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/rbac/rewindd-readonly.yaml")
}

/// `rewindd rbac --presets rancher` with `kubeconfig`, no config file.
fn generate(kubeconfig: &Path, scratch: &Path) -> String {
    let empty = scratch.join("empty.toml");
    std::fs::write(&empty, "").unwrap();
    let out = Command::new(rewindd_bin())
        .arg("--config")
        .arg(&empty)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["rbac", "--presets", "rancher"])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "rewindd rbac failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The documents of a YAML stream, as JSON.
fn documents(text: &str) -> Vec<serde_json::Value> {
    rewind_tests::fixtures::parse_yaml_documents(text)
        .into_iter()
        .map(|d| d.unwrap())
        .collect()
}

fn object<T: serde::de::DeserializeOwned>(docs: &[serde_json::Value], kind: &str) -> T {
    let doc = docs
        .iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in the shipped RBAC"));
    serde_json::from_value(doc.clone()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_rbac_shipped_yaml_is_the_generators_output_for_rancher() {
    rewind_history::install_tls_provider();
    let cp = ControlPlane::start().await.unwrap();
    rewind_tests::fixtures::install_rancher_crds(&cp.admin_client())
        .await
        .unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let generated = generate(cp.readonly_kubeconfig_path(), scratch.path());
    let path = shipped_path();
    if std::env::var_os("REWIND_BLESS_GOLDEN").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let shipped = std::fs::read_to_string(&path).unwrap();
    assert!(
        shipped == generated,
        "{} is not `rewindd rbac --presets rancher`'s output (REWIND_BLESS_GOLDEN=1 writes it):\n{generated}",
        path.display()
    );
    // What least privilege means here, checked on the file itself.
    let docs = documents(&shipped);
    let role: ClusterRole = object(&docs, "ClusterRole");
    for rule in role.rules.unwrap() {
        for r in rule.resources.iter().flatten() {
            assert!(!r.contains('*') && !r.contains('/'), "resource {r:?}");
        }
        for g in rule.api_groups.iter().flatten() {
            assert_ne!(g, "*");
        }
        for v in &rule.verbs {
            assert!(["get", "list", "watch"].contains(&v.as_str()), "verb {v}");
        }
    }
    let lease: Role = object(&docs, "Role");
    let rules = lease.rules.unwrap();
    assert_eq!(rules.len(), 2);
    for r in &rules {
        assert_eq!(r.resources.as_deref(), Some(&["leases".to_owned()][..]));
    }
    // get/update on the one Lease by name; create (never restricted by
    // name in Kubernetes) alone.
    assert_eq!(
        rules[0].resource_names.as_deref(),
        Some(&["rewindd".to_owned()][..])
    );
    assert_eq!(rules[0].verbs, ["get", "update"]);
    assert_eq!(rules[1].resource_names, None);
    assert_eq!(rules[1].verbs, ["create"]);
}

/// The error a raw request got: its HTTP status, or 0 for success.
async fn status_of(client: &kube::Client, method: &str, uri: &str) -> u16 {
    let mut req = http::Request::builder().method(method).uri(uri);
    let body = if matches!(method, "POST" | "PUT" | "PATCH") {
        req = req.header(
            "Content-Type",
            if method == "PATCH" {
                "application/merge-patch+json"
            } else {
                "application/json"
            },
        );
        b"{}".to_vec()
    } else {
        Vec::new()
    };
    match client.request_text(req.body(body).unwrap()).await {
        Ok(_) => 0,
        Err(kube::Error::Api(s)) => s.code,
        Err(e) => panic!("{method} {uri}: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_rbac_denies_subresources_and_writes() {
    rewind_history::install_tls_provider();
    let cp = ControlPlane::start().await.unwrap();
    let admin = cp.admin_client();
    let _ = load_plane(&admin, 2).await;

    let docs = documents(&std::fs::read_to_string(shipped_path()).unwrap());
    let role: ClusterRole = object(&docs, "ClusterRole");
    let lease: Role = object(&docs, "Role");
    let ns = lease.metadata.namespace.clone().unwrap();
    let identity = cp
        .create_identity(USER, role.rules.clone().unwrap())
        .await
        .unwrap();
    Api::<Namespace>::all(admin.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": ns}})).unwrap(),
        )
        .await
        .unwrap();
    cp.create_namespaced_identity(USER, &ns, lease.rules.clone().unwrap())
        .await
        .unwrap();
    let user = identity.client.clone();

    // The grant is in force: reads answer.
    for uri in [
        "/api/v1/namespaces/kube-system",
        "/api/v1/namespaces/cattle-system/secrets",
        "/apis/management.cattle.io/v3/clusters",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        "/readyz",
    ] {
        assert_eq!(status_of(&user, "GET", uri).await, 0, "GET {uri}");
    }
    // The Lease: in its namespace only.
    let lease_body = serde_json::json!({"metadata": {"name": "rewindd"}, "spec": {}});
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> = Api::namespaced(user.clone(), &ns);
    leases
        .create(
            &PostParams::default(),
            &serde_json::from_value(lease_body.clone()).unwrap(),
        )
        .await
        .unwrap();
    let mut held = leases.get("rewindd").await.unwrap();
    held.spec = Some(k8s_openapi::api::coordination::v1::LeaseSpec {
        holder_identity: Some("me".into()),
        ..Default::default()
    });
    leases
        .replace("rewindd", &PostParams::default(), &held)
        .await
        .unwrap();
    // Another Lease of the namespace: created (create cannot be limited
    // by name), but neither read nor updated.
    let other = serde_json::json!({"metadata": {"name": "someone-else"}, "spec": {}});
    let created = leases
        .create(
            &PostParams::default(),
            &serde_json::from_value(other).unwrap(),
        )
        .await
        .unwrap();
    match leases.get("someone-else").await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 403),
        other => panic!("another Lease was readable: {other:?}"),
    }
    match leases
        .replace("someone-else", &PostParams::default(), &created)
        .await
    {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 403),
        other => panic!("another Lease was updatable: {other:?}"),
    }
    let elsewhere: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(user.clone(), "default");
    match elsewhere
        .create(
            &PostParams::default(),
            &serde_json::from_value(lease_body).unwrap(),
        )
        .await
    {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 403),
        other => panic!("a Lease outside {ns}: {other:?}"),
    }

    let mut allowed = Vec::new();
    let mut check = |what: String, code: u16| {
        if code != 403 {
            allowed.push(format!("{what}: {code}"));
        }
    };
    // Subresources that reach kubelets or containers. The objects need not
    // exist: authorization answers before the lookup.
    for (method, uri) in [
        ("GET", "/api/v1/nodes/node-1/proxy/"),
        ("GET", "/api/v1/nodes/node-1/proxy/configz"),
        ("GET", "/api/v1/namespaces/default/services/svc/proxy/"),
        (
            "GET",
            "/api/v1/namespaces/default/pods/p/exec?command=id&stdout=true",
        ),
        (
            "POST",
            "/api/v1/namespaces/default/pods/p/exec?command=id&stdout=true",
        ),
        (
            "GET",
            "/api/v1/namespaces/default/pods/p/attach?stdout=true",
        ),
        (
            "POST",
            "/api/v1/namespaces/default/pods/p/attach?stdout=true",
        ),
        (
            "GET",
            "/api/v1/namespaces/default/pods/p/portforward?ports=80",
        ),
        (
            "POST",
            "/api/v1/namespaces/default/pods/p/portforward?ports=80",
        ),
        ("GET", "/api/v1/namespaces/default/pods/p/proxy/"),
    ] {
        check(
            format!("{method} {uri}"),
            status_of(&user, method, uri).await,
        );
    }
    // Every write verb on several types, core, cluster-scoped and custom.
    for (collection, name) in [
        ("/api/v1/namespaces/cattle-system/configmaps", "cm"),
        ("/api/v1/namespaces/cattle-system/secrets", "s"),
        ("/api/v1/namespaces", "cattle-system"),
        ("/apis/rbac.authorization.k8s.io/v1/clusterroles", "cr"),
        ("/apis/management.cattle.io/v3/clusters", "local"),
        (
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            "clusters.management.cattle.io",
        ),
    ] {
        let item = format!("{collection}/{name}");
        for (verb, method, uri) in [
            ("create", "POST", collection.to_owned()),
            ("update", "PUT", item.clone()),
            ("patch", "PATCH", item.clone()),
            ("delete", "DELETE", item.clone()),
            ("deletecollection", "DELETE", collection.to_owned()),
        ] {
            if collection == "/api/v1/namespaces" && verb == "deletecollection" {
                continue; // namespaces have no deletecollection
            }
            check(
                format!("{verb} {uri}"),
                status_of(&user, method, &uri).await,
            );
        }
    }
    // Subresource writes: status and scale.
    for (method, uri) in [
        ("PUT", "/apis/management.cattle.io/v3/clusters/local/status"),
        ("PATCH", "/api/v1/namespaces/cattle-system/status"),
        (
            "PATCH",
            "/apis/apps/v1/namespaces/cattle-system/deployments/rancher/scale",
        ),
    ] {
        check(
            format!("{method} {uri}"),
            status_of(&user, method, uri).await,
        );
    }
    assert!(allowed.is_empty(), "not forbidden:\n{}", allowed.join("\n"));

    // Recording the whole preset with exactly this role works.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cfg = DaemonConfig::new(&data, &identity.kubeconfig);
    let mut d = cfg.start(&RunOptions::default()).unwrap();
    let status = d
        .settle(Duration::from_secs(2), "initial list with the shipped role")
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", d.log_tail(40)));
    let problems = status.problems(rewind_history::clock::now_ms());
    assert!(problems.is_empty(), "{problems:?}\n{status:?}");
    // Every type the role grants (by name) is watched, and nothing else:
    // the role is exactly the record set (plus the CRD watch rewindd keeps
    // for itself, recorded or not).
    let watched: BTreeSet<String> = status.types.keys().cloned().collect();
    let mut granted = BTreeSet::new();
    for rule in role.rules.iter().flatten() {
        if rule.resource_names.is_some() {
            continue;
        }
        for g in rule.api_groups.iter().flatten() {
            for r in rule.resources.iter().flatten() {
                granted.insert(if g.is_empty() {
                    r.clone()
                } else {
                    format!("{r}.{g}")
                });
            }
        }
    }
    let crds = "customresourcedefinitions.apiextensions.k8s.io".to_owned();
    if !watched.contains(&crds) {
        granted.remove(&crds);
    }
    assert_eq!(watched, granted, "watched types against granted ones");
    for (k, t) in &status.types {
        assert_eq!(t.state, WatchState::Watching, "{k}: {:?}", t.reason);
    }
    let log = std::fs::read_to_string(&d.log).unwrap_or_default();
    assert!(!log.contains("forbidden"), "{}", d.log_tail(40));
    assert!(d.terminate().unwrap().success(), "{}", d.log_tail(40));
    let recorded = check_recorded(&admin, "rancher", &data).await;
    assert!(!recorded.state.is_empty());
}
