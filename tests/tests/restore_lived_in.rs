//! Restores into a lived-in cluster: kube-controller-manager running (and
//! left running after the restore), foreign workloads that were never
//! recorded, and a validating admission webhook that checks Rancher's
//! references and fails a share of its calls.
//!
//! The Rancher plane is recorded by the real rewindd (Rancher preset) and
//! restored by the real `rewind` binary, at a point between changes.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, ServiceAccount};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use rewind_tests::daemon::{DaemonConfig, RunOptions, rewind_bin, rewindd_bin};
use rewind_tests::fixtures::{PlaneSpec, generate, install_rancher_crds, load};
use rewind_tests::world::{Webhook, install_foreign};
use rewind_tests::{ControlPlane, Options};
use serde_json::{Value, json};

/// Fail every fifth webhook call: 20 %.
const FAIL_EVERY: usize = 5;

fn mgmt(client: &kube::Client, kind: &str, plural: &str, ns: Option<&str>) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("management.cattle.io", "v3", kind),
        plural,
    );
    match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    }
}

async fn create(api: &Api<DynamicObject>, body: Value) -> DynamicObject {
    let obj: DynamicObject = serde_json::from_value(body).unwrap();
    api.create(&PostParams::default(), &obj)
        .await
        .unwrap_or_else(|e| panic!("creating {:?}: {e}", obj.metadata.name))
}

fn rewind(store: &Path) -> Command {
    let mut c = Command::new(rewind_bin().unwrap());
    c.arg("--store").arg(store);
    c.stdin(std::process::Stdio::null());
    c
}

/// Runs `cmd`, asserts success, returns stdout parsed as JSON.
fn run_json(cmd: &mut Command) -> Value {
    let out = cmd.output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{stdout}\n{stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"))
}

/// Runs `cmd`, asserts failure, returns stderr.
fn run_failing(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "{cmd:?} succeeded:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}

/// `rewind restore` of `at` into `kubeconfig`, Rancher preset, with prune.
fn restore(store: &Path, at: &str, kubeconfig: &Path, dry_run: bool) -> Command {
    let mut c = rewind(store);
    c.args(["restore", "--at", at, "--to"])
        .arg(kubeconfig)
        .args([
            "--resource-preset",
            "rancher",
            "--prune",
            "--output",
            "json",
        ]);
    if dry_run {
        c.arg("--dry-run");
    } else {
        c.arg("--yes");
    }
    c
}

/// `type ns/name` of a plan item.
fn item_name(i: &Value) -> String {
    format!(
        "{} {}/{}",
        i["key"]["rtype"]["resource"].as_str().unwrap_or_default(),
        i["key"]["namespace"].as_str().unwrap_or_default(),
        i["key"]["name"].as_str().unwrap_or_default()
    )
}

/// Plan items that are work (create, update, delete), with their fields.
fn work(plan: &Value) -> Vec<String> {
    plan["plan"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| !matches!(i["action"].as_str(), Some("unchanged" | "skip")))
        .map(|i| format!("{} {} {}", i["action"], item_name(i), i["changes"]))
        .collect()
}

fn report_line(v: &Value) -> String {
    let r = &v["report"];
    format!(
        "written {} deleted {} failures {} retries {} deferred {} in {} ms",
        r["written"],
        r["deleted"],
        r["failures"].as_array().map_or(0, Vec::len),
        r["retries"],
        r["deferred_retries"],
        r["elapsed_ms"]
    )
}

fn assert_no_failures(what: &str, v: &Value) {
    let failures = v["report"]["failures"].as_array().unwrap();
    assert!(failures.is_empty(), "{what}: {failures:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_into_a_lived_in_cluster_with_controllers_and_a_webhook() {
    rewind_history::install_tls_provider();
    let began = Instant::now();
    let _ = (rewindd_bin(), rewind_bin());
    let (src, dst) = tokio::join!(
        ControlPlane::start(),
        ControlPlane::start_with(Options {
            controller_manager: true,
            ..Options::default()
        })
    );
    let (src, dst) = (src.unwrap(), dst.unwrap());
    eprintln!(
        "target ready: apiserver {:?}, controller-manager {:?}",
        dst.startup_time(),
        dst.controller_manager_startup_time()
    );
    let (admin, target) = (src.admin_client(), dst.admin_client());
    let (a, b) = tokio::join!(install_rancher_crds(&admin), install_rancher_crds(&target));
    let (_, _) = (a.unwrap(), b.unwrap());

    // The recorded plane: the generated Rancher objects, a hand-made
    // service-account token Secret (its token and uid belong to this
    // cluster), and a management Cluster being torn down at T.
    let objects = generate(&PlaneSpec::new(3));
    load(&admin, &objects, 8).await.unwrap();
    let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), "cattle-system");
    sas.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "rancher-agent"}})).unwrap(),
    )
    .await
    .unwrap();
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), "cattle-system");
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "rancher-agent-long-lived", "annotations": {
                    "kubernetes.io/service-account.name": "rancher-agent",
                    "kubernetes.io/service-account.uid": "0c1d-recorded-cluster-uid"}},
                "type": "kubernetes.io/service-account-token",
                "data": {"token": "cmVjb3JkZWQtY2x1c3Rlci10b2tlbg==", "ca.crt": "LS0tLS0="},
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let clusters = mgmt(&admin, "Cluster", "clusters", None);
    create(
        &clusters,
        json!({"apiVersion": "management.cattle.io/v3", "kind": "Cluster",
               "metadata": {"name": "c-torn-down", "finalizers": ["controller.cattle.io/cluster-agent-controller-cleanup"]},
               "spec": {"displayName": "torn down"}}),
    )
    .await;

    // Recorded by the real rewindd.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cfg = DaemonConfig::new(&data, src.readonly_kubeconfig_path());
    let mut daemon = cfg.start_settled(&RunOptions::default()).await.unwrap();
    clusters
        .delete("c-torn-down", &DeleteParams::default())
        .await
        .unwrap();
    daemon
        .settle(Duration::from_secs(2), "the teardown")
        .await
        .unwrap();
    let t = rewind_history::now_ms();
    tokio::time::sleep(Duration::from_millis(50)).await;

    // After T: a cluster renamed, a binding and a role added, a binding of
    // each kind removed.
    let some_cluster = objects
        .iter()
        .find(|o| o.kind == "Cluster" && o.group == "management.cattle.io")
        .unwrap()
        .name
        .clone();
    clusters
        .patch(
            &some_cluster,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"displayName": "renamed after T"}})),
        )
        .await
        .unwrap();
    create(
        &mgmt(&admin, "GlobalRole", "globalroles", None),
        json!({"apiVersion": "management.cattle.io/v3", "kind": "GlobalRole",
               "metadata": {"name": "added-after-t"}, "displayName": "after T", "rules": []}),
    )
    .await;
    create(
        &mgmt(&admin, "GlobalRoleBinding", "globalrolebindings", None),
        json!({"apiVersion": "management.cattle.io/v3", "kind": "GlobalRoleBinding",
               "metadata": {"name": "grb-added-after-t"}, "globalRoleName": "added-after-t", "userName": "u-after"}),
    )
    .await;
    let grb = objects
        .iter()
        .find(|o| o.kind == "GlobalRoleBinding")
        .unwrap()
        .clone();
    let crtb = objects
        .iter()
        .find(|o| o.kind == "ClusterRoleTemplateBinding")
        .unwrap()
        .clone();
    mgmt(&admin, "GlobalRoleBinding", "globalrolebindings", None)
        .delete(&grb.name, &DeleteParams::default())
        .await
        .unwrap();
    mgmt(
        &admin,
        "ClusterRoleTemplateBinding",
        "clusterroletemplatebindings",
        crtb.namespace.as_deref(),
    )
    .delete(&crtb.name, &DeleteParams::default())
    .await
    .unwrap();
    daemon
        .settle(Duration::from_secs(2), "the changes after T")
        .await
        .unwrap();
    assert!(daemon.terminate().unwrap().success());
    let store = data.join("store");

    // The lived-in target: foreign workloads, controllers, and the webhook
    // failing a fifth of its calls.
    let foreign = install_foreign(&target).await.unwrap();
    let webhook = Webhook::start(target.clone()).await.unwrap();
    webhook.install(&target).await.unwrap();
    webhook.fail_every(FAIL_EVERY);
    let before = webhook.stats();

    // The plane as it is now (a Rancher that lived on after T) ...
    let latest = run_json(&mut restore(
        &store,
        "latest",
        dst.admin_kubeconfig_path(),
        false,
    ));
    assert_no_failures("restore of latest", &latest);
    eprintln!("restore of latest: {}", report_line(&latest));
    // ... rolled back to T.
    let at = format!("ms:{t}");
    let back = run_json(&mut restore(
        &store,
        &at,
        dst.admin_kubeconfig_path(),
        false,
    ));
    assert_no_failures("restore of T", &back);
    eprintln!("restore of T: {}", report_line(&back));
    let stats = webhook.stats();
    eprintln!("webhook: {stats:?}, denials {:?}", webhook.denials());
    // Every failed call reached the client as a 500, and was retried and
    // counted.
    let seen = stats.failed_review + stats.failed_http - before.failed_review - before.failed_http;
    assert!(seen >= 1, "the webhook failed no call: {stats:?}");
    let retries =
        latest["report"]["retries"].as_u64().unwrap() + back["report"]["retries"].as_u64().unwrap();
    assert!(
        retries >= u64::try_from(seen).unwrap(),
        "{retries} retries counted for {seen} failed calls"
    );

    // The controllers act on what was written for 30 s.
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(
        dst.controller_manager_running(),
        "the controller-manager exited"
    );

    // 0 differences: planning T again finds nothing to do.
    let again = run_json(&mut restore(&store, &at, dst.admin_kubeconfig_path(), true));
    let left = work(&again);
    assert!(
        left.is_empty(),
        "after the restore and 30 s of controllers:\n{}",
        left.join("\n")
    );
    // Every foreign object is alive, with its own UID.
    let missing = foreign.missing(&target).await.unwrap();
    assert!(missing.is_empty(), "foreign objects hurt: {missing:#?}");
    // What T had is back; what came after is gone.
    let grbs = mgmt(&target, "GlobalRoleBinding", "globalrolebindings", None);
    assert!(grbs.get_opt(&grb.name).await.unwrap().is_some());
    assert!(grbs.get_opt("grb-added-after-t").await.unwrap().is_none());
    assert!(
        mgmt(&target, "GlobalRole", "globalroles", None)
            .get_opt("added-after-t")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        mgmt(
            &target,
            "ClusterRoleTemplateBinding",
            "clusterroletemplatebindings",
            crtb.namespace.as_deref()
        )
        .get_opt(&crtb.name)
        .await
        .unwrap()
        .is_some()
    );
    let live_cluster = mgmt(&target, "Cluster", "clusters", None)
        .get(&some_cluster)
        .await
        .unwrap();
    assert_ne!(live_cluster.data["spec"]["displayName"], "renamed after T");
    // The cluster being torn down at T is not resurrected.
    assert!(
        mgmt(&target, "Cluster", "clusters", None)
            .get_opt("c-torn-down")
            .await
            .unwrap()
            .is_none()
    );
    let skipped = again["plan"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["key"]["name"] == "c-torn-down")
        .unwrap_or_else(|| panic!("c-torn-down not in the plan"));
    assert_eq!(skipped["action"], "skip", "{skipped}");
    assert_eq!(skipped["reason"], "being_deleted", "{skipped}");
    // The token controller filled the token Secret for the live
    // ServiceAccount: the recorded token and uid are not what is live.
    let live_sa = Api::<ServiceAccount>::namespaced(target.clone(), "cattle-system")
        .get("rancher-agent")
        .await
        .unwrap();
    let live_secret = Api::<Secret>::namespaced(target.clone(), "cattle-system")
        .get("rancher-agent-long-lived")
        .await
        .unwrap();
    let annotations = live_secret.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(
        annotations.get("kubernetes.io/service-account.uid"),
        live_sa.metadata.uid.as_ref(),
        "{live_secret:?}"
    );
    let token = live_secret
        .data
        .as_ref()
        .and_then(|d| d.get("token"))
        .map(|t| t.0.clone())
        .unwrap_or_default();
    assert!(
        !token.is_empty() && token != b"recorded-cluster-token",
        "the token was not issued again: {live_secret:?}"
    );

    // Another manager adds a label, an annotation and a spec field to a
    // restored object; restoring T again removes all three.
    let intruder = PatchParams::apply("intruder").force();
    mgmt(&target, "Cluster", "clusters", None)
        .patch(
            &some_cluster,
            &intruder,
            &Patch::Apply(json!({
                "apiVersion": "management.cattle.io/v3", "kind": "Cluster",
                "metadata": {"name": some_cluster, "labels": {"intruder.example/added": "yes"},
                             "annotations": {"intruder.example/note": "added after the restore"}},
                "spec": {"intruderField": "added after the restore"},
            })),
        )
        .await
        .unwrap();
    let planned = run_json(&mut restore(&store, &at, dst.admin_kubeconfig_path(), true));
    let planned_work = work(&planned);
    assert_eq!(planned_work.len(), 1, "{planned_work:#?}");
    for field in [
        "intruder.example/added",
        "intruder.example/note",
        "intruderField",
    ] {
        assert!(
            planned_work[0].contains(field),
            "{field} not in {planned_work:?}"
        );
    }
    let third = run_json(&mut restore(
        &store,
        &at,
        dst.admin_kubeconfig_path(),
        false,
    ));
    assert_no_failures("restore of T over the intruder", &third);
    let live_cluster = mgmt(&target, "Cluster", "clusters", None)
        .get(&some_cluster)
        .await
        .unwrap();
    // (managedFields may keep an empty entry for the other manager: the
    // server's bookkeeping, not the object's content.)
    let (labels, annotations) = (
        live_cluster.metadata.labels.clone().unwrap_or_default(),
        live_cluster
            .metadata
            .annotations
            .clone()
            .unwrap_or_default(),
    );
    assert!(!labels.contains_key("intruder.example/added"), "{labels:?}");
    assert!(
        !annotations.contains_key("intruder.example/note"),
        "{annotations:?}"
    );
    assert!(
        live_cluster.data["spec"].get("intruderField").is_none(),
        "{}",
        live_cluster.data["spec"]
    );
    let last = run_json(&mut restore(&store, &at, dst.admin_kubeconfig_path(), true));
    let left = work(&last);
    assert!(
        left.is_empty(),
        "after restoring over the intruder:\n{}",
        left.join("\n")
    );

    // Points outside what is recorded are refused, naming the window or the gap.
    let err = run_failing(&mut restore(
        &store,
        "ms:1000",
        dst.admin_kubeconfig_path(),
        true,
    ));
    assert!(err.contains("before the recorded window"), "{err}");
    let listed = cfg.open_store().await.unwrap();
    let mut segments = listed.list_segments().await.unwrap();
    segments.sort_by_key(|s| s.first_seq);
    assert!(segments.len() >= 3, "{} segments", segments.len());
    let middle = segments[segments.len() / 2].clone();
    // The catalog lives in the cluster's place under the store's root.
    let place = rewind_tests::daemon::recorded_local_store(&data);
    std::fs::remove_file(place.join(middle.catalog_key())).unwrap();
    let err = run_failing(&mut restore(
        &store,
        &format!("ms:{}", middle.last_time_ms),
        dst.admin_kubeconfig_path(),
        true,
    ));
    assert!(
        err.contains(&format!(
            "gap: events {}..={} are missing",
            middle.first_seq, middle.last_seq
        )),
        "{err}"
    );
    eprintln!("whole test: {:?}", began.elapsed());
}

/// The harness's lived-in pieces act as in a real cluster: the garbage
/// collector deletes what lost its owner, the namespace controller finishes
/// a deletion, the token controller fills a token Secret, and the webhook
/// denies a binding whose role is missing, allows it once the role exists,
/// and fails every n-th call when told to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lived_in_world_controllers_act_and_the_webhook_checks_references() {
    rewind_history::install_tls_provider();
    let cp = ControlPlane::start_with(Options {
        controller_manager: true,
        ..Options::default()
    })
    .await
    .unwrap();
    eprintln!(
        "controller-manager ready after {:?}",
        cp.controller_manager_startup_time()
    );
    let client = cp.admin_client();
    install_rancher_crds(&client).await.unwrap();
    let foreign = install_foreign(&client).await.unwrap();

    // Garbage collector: an owner UID that does not exist gets the object deleted.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "cert-manager");
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "orphan", "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "Deployment", "name": "cert-manager",
             "uid": "00000000-0000-0000-0000-000000000000"}]}}))
        .unwrap(),
    )
    .await
    .unwrap();
    // Token controller: a token Secret is filled for its ServiceAccount.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "cert-manager");
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "cm-token", "annotations": {
                "kubernetes.io/service-account.name": "cert-manager"}},
                "type": "kubernetes.io/service-account-token"}))
            .unwrap(),
        )
        .await
        .unwrap();
    // Namespace controller: a deleted namespace goes, with what is in it.
    let nss: Api<Namespace> = Api::all(client.clone());
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "short-lived"}})).unwrap(),
    )
    .await
    .unwrap();
    Api::<ConfigMap>::namespaced(client.clone(), "short-lived")
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "inside"}})).unwrap(),
        )
        .await
        .unwrap();
    nss.delete("short-lived", &DeleteParams::default())
        .await
        .unwrap();

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let orphan_gone = cms.get_opt("orphan").await.unwrap().is_none();
        let token = secrets
            .get("cm-token")
            .await
            .unwrap()
            .data
            .is_some_and(|d| d.contains_key("token"));
        let ns_gone = nss.get_opt("short-lived").await.unwrap().is_none();
        if orphan_gone && token && ns_gone {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "controllers did not act: orphan gone {orphan_gone}, token {token}, namespace gone {ns_gone}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The foreign workloads (one ConfigMap owned by a live Deployment) stay.
    assert_eq!(
        foreign.missing(&client).await.unwrap(),
        Vec::<String>::new()
    );

    // The webhook.
    let webhook = Webhook::start(client.clone()).await.unwrap();
    webhook.install(&client).await.unwrap();
    let grbs = mgmt(&client, "GlobalRoleBinding", "globalrolebindings", None);
    let grb = json!({"apiVersion": "management.cattle.io/v3", "kind": "GlobalRoleBinding",
                     "metadata": {"name": "grb-test"}, "globalRoleName": "gr-test", "userName": "u-1"});
    let denied = grbs
        .create(
            &PostParams::default(),
            &serde_json::from_value(grb.clone()).unwrap(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&denied, kube::Error::Api(s) if s.code == 400 && s.message.contains("globalRoleName: Not found")),
        "{denied:?}"
    );
    create(
        &mgmt(&client, "GlobalRole", "globalroles", None),
        json!({"apiVersion": "management.cattle.io/v3", "kind": "GlobalRole",
               "metadata": {"name": "gr-test"}, "rules": []}),
    )
    .await;
    create(&grbs, grb).await;
    // A CRTB naming a cluster that does not exist, and a PRTB naming a
    // project that does not exist, are denied.
    let crtb = json!({"apiVersion": "management.cattle.io/v3", "kind": "ClusterRoleTemplateBinding",
                      "metadata": {"name": "crtb-test", "namespace": "c-none"},
                      "clusterName": "c-none", "roleTemplateName": "cluster-owner", "userName": "u-1"});
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "c-none"}})).unwrap(),
    )
    .await
    .unwrap();
    let err = mgmt(
        &client,
        "ClusterRoleTemplateBinding",
        "clusterroletemplatebindings",
        Some("c-none"),
    )
    .create(
        &PostParams::default(),
        &serde_json::from_value(crtb).unwrap(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 400 && s.message.contains("specified cluster c-none not found")),
        "{err:?}"
    );
    let prtb = json!({"apiVersion": "management.cattle.io/v3", "kind": "ProjectRoleTemplateBinding",
                      "metadata": {"name": "prtb-test", "namespace": "c-none"},
                      "projectName": "c-none:p-none", "roleTemplateName": "project-owner", "userName": "u-1"});
    let err = mgmt(
        &client,
        "ProjectRoleTemplateBinding",
        "projectroletemplatebindings",
        Some("c-none"),
    )
    .create(
        &PostParams::default(),
        &serde_json::from_value(prtb).unwrap(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 400 && s.message.contains("c-none:p-none not found")),
        "{err:?}"
    );

    // Every second call fails, and with `failurePolicy: Fail` each failure,
    // an HTTP 500 or an admission response with code 500, reaches the
    // client as a 500.
    webhook.fail_every(2);
    let before = webhook.stats();
    let mut server_errors = 0;
    for i in 0..8 {
        let body = json!({"apiVersion": "management.cattle.io/v3", "kind": "GlobalRoleBinding",
                          "metadata": {"name": format!("grb-fail-{i}")}, "globalRoleName": "gr-test", "userName": "u-1"});
        match grbs
            .create(
                &PostParams::default(),
                &serde_json::from_value(body).unwrap(),
            )
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 500 => server_errors += 1,
            Err(e) => panic!("{e:?}"),
        }
    }
    let stats = webhook.stats();
    assert!(stats.failed_http > before.failed_http, "{stats:?}");
    assert!(stats.failed_review > before.failed_review, "{stats:?}");
    assert_eq!(
        server_errors,
        stats.failed_review + stats.failed_http - before.failed_review - before.failed_http,
        "{stats:?}"
    );
    webhook.uninstall(&client).await.unwrap();
}
