//! The resource set over time, end to end with the real `rewindd` and
//! `rewind` against a real API server:
//!
//! - rewindd stores the set it records with in every catalog entry, so
//!   `rewind restore --prune` needs no preset flag and leaves what the set
//!   never selected alone;
//! - a type a SIGHUP reload drops from the set is taken out of the record:
//!   later states no longer hold its objects, and a restore at a later
//!   point neither writes nor prunes them;
//! - a CRD whose served version moves: rewindd records each object again at
//!   the new version, and `rewind restore` writes each point's objects at
//!   the version they were recorded at.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use rewind_history::store::Store;
use rewind_tests::ControlPlane;
use rewind_tests::daemon::{DaemonConfig, Rewindd, RunOptions, rewind_bin, rewindd_bin};
use serde_json::json;

const APP: &str = "app";
const FOREIGN: &str = "cert-manager";

fn rewind(store: &Path) -> Command {
    let mut c = Command::new(rewind_bin().unwrap());
    c.arg("--store").arg(store);
    c
}

fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd.stdin(std::process::Stdio::null()).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Selectors for the `app` namespace, its ConfigMaps and, with `secrets`,
/// its Secrets; no preset.
fn selectors(secrets: bool) -> String {
    let mut s = String::from(
        "[[record.selectors]]\napiVersion = \"v1\"\nkinds = [\"Namespace\"]\nresourceNames = [\"app\"]\n\n\
         [[record.selectors]]\napiVersion = \"v1\"\nkinds = [\"ConfigMap\"]\nnamespaces = [\"app\"]\n\n",
    );
    if secrets {
        s.push_str(
            "[[record.selectors]]\napiVersion = \"v1\"\nkinds = [\"Secret\"]\nnamespaces = [\"app\"]\n\n",
        );
    }
    s
}

fn config(data: &Path, kubeconfig: &Path, secrets: bool) -> DaemonConfig {
    let mut c = DaemonConfig::new(data, kubeconfig);
    c.presets = Vec::new();
    c.extra = selectors(secrets);
    c
}

async fn namespace(client: &kube::Client, name: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    api.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": name}})).unwrap(),
    )
    .await
    .unwrap();
}

async fn configmap(client: &kube::Client, ns: &str, name: &str, v: &str) {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    api.patch(
        name,
        &PatchParams::apply("test").force(),
        &Patch::Apply(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": ns},
            "data": {"v": v}
        })),
    )
    .await
    .unwrap();
}

async fn secret(client: &kube::Client, ns: &str, name: &str, v: &str) {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    api.patch(
        name,
        &PatchParams::apply("test").force(),
        &Patch::Apply(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": ns},
            "stringData": {"v": v}
        })),
    )
    .await
    .unwrap();
}

async fn cm_value(client: &kube::Client, ns: &str, name: &str) -> Option<String> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    api.get_opt(name)
        .await
        .unwrap()
        .and_then(|c| c.data)
        .and_then(|d| d.get("v").cloned())
}

async fn secret_value(client: &kube::Client, ns: &str, name: &str) -> Option<String> {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    api.get_opt(name)
        .await
        .unwrap()
        .and_then(|s| s.data)
        .and_then(|d| {
            d.get("v")
                .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        })
}

/// Waits until the store's newest segment holds an event observed after
/// `after_ms`, then returns the store's segments.
async fn wait_stored(store: &Store, after_ms: i64, d: &mut Rewindd) {
    for _ in 0..300 {
        let segs = store.list_segments().await.unwrap();
        if segs.iter().any(|s| s.last_time_ms >= after_ms) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("nothing stored after {after_ms}\n{}", d.log_tail(30));
}

/// A store recorded by rewindd with selectors only: `rewind restore
/// --prune`, with no preset or set flag, deletes the stray object the set
/// selects and leaves a namespace the set never selected, with its objects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_needs_no_flag_on_a_store_recorded_by_rewindd() {
    rewind_history::install_tls_provider();
    let _ = (rewindd_bin(), rewind_bin());
    let plane = ControlPlane::start().await.unwrap();
    let client = plane.admin_client();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        &dir.path().join("data"),
        plane.admin_kubeconfig_path(),
        true,
    );
    namespace(&client, APP).await;
    configmap(&client, APP, "keep", "1").await;
    let mut d = cfg.start_settled(&RunOptions::default()).await.unwrap();
    let store = cfg.open_store().await.unwrap();
    wait_stored(&store, 0, &mut d).await;
    assert!(d.terminate().unwrap().success());

    // Every catalog entry names the set as the configuration did.
    let segs = store.list_segments().await.unwrap();
    assert!(!segs.is_empty());
    for s in &segs {
        let set = s
            .resource_set
            .as_ref()
            .unwrap_or_else(|| panic!("{} has no set", s.id));
        assert!(set.presets.is_empty());
        assert_eq!(set.selectors.len(), 3, "{set:?}");
    }

    // After the recording: a stray object the set selects, and a foreign
    // namespace it does not.
    configmap(&client, APP, "stray", "x").await;
    namespace(&client, FOREIGN).await;
    configmap(&client, FOREIGN, "ca", "foreign").await;
    secret(&client, FOREIGN, "tls", "foreign").await;

    let (ok, out, err) = run(rewind(&cfg.data.join("store"))
        .args(["restore", "--at", "latest", "--to"])
        .arg(plane.admin_kubeconfig_path())
        .args(["--prune", "--yes"]));
    assert!(ok, "{out}\n{err}");
    assert!(
        err.contains("limited to the resource set recorded with"),
        "{err}"
    );
    assert_eq!(cm_value(&client, APP, "stray").await, None, "stray pruned");
    assert_eq!(cm_value(&client, APP, "keep").await.as_deref(), Some("1"));
    let nss: Api<Namespace> = Api::all(client.clone());
    let foreign = nss.get(FOREIGN).await.unwrap();
    assert!(
        foreign.metadata.deletion_timestamp.is_none(),
        "foreign namespace left alone"
    );
    assert_eq!(
        cm_value(&client, FOREIGN, "ca").await.as_deref(),
        Some("foreign")
    );
    assert_eq!(
        secret_value(&client, FOREIGN, "tls").await.as_deref(),
        Some("foreign")
    );
}

/// A SIGHUP reload that drops Secrets from the set: the journal records the
/// recorded Secrets as out of scope, the state after it no longer holds
/// them, and a `--prune` restore at a later point neither writes nor
/// deletes the live Secret, while a restore before the reload still writes
/// it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_type_dropped_by_a_reload_leaves_later_states() {
    rewind_history::install_tls_provider();
    let _ = (rewindd_bin(), rewind_bin());
    let plane = ControlPlane::start().await.unwrap();
    let client = plane.admin_client();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cfg = config(&data, plane.admin_kubeconfig_path(), true);
    namespace(&client, APP).await;
    configmap(&client, APP, "c1", "1").await;
    secret(&client, APP, "s1", "recorded").await;
    let mut d = cfg.start_settled(&RunOptions::default()).await.unwrap();
    let store = cfg.open_store().await.unwrap();
    wait_stored(&store, 0, &mut d).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let before_reload = rewind_history::now_ms();
    tokio::time::sleep(Duration::from_millis(50)).await;

    // Drop Secrets from the set and reload.
    config(&data, plane.admin_kubeconfig_path(), false)
        .write(&cfg.path())
        .unwrap();
    assert!(
        Command::new("kill")
            .args(["-HUP", &d.pid().to_string()])
            .status()
            .unwrap()
            .success()
    );
    // A change after the reload, so that a later point exists.
    let mut stored = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let segs = store.list_segments().await.unwrap();
        if segs.iter().any(|s| {
            s.resource_set
                .as_ref()
                .is_some_and(|r| r.selectors.len() == 2)
        }) {
            stored = true;
            break;
        }
    }
    assert!(
        stored,
        "no segment under the reloaded set\n{}",
        d.log_tail(30)
    );
    let after_reload = rewind_history::now_ms();
    configmap(&client, APP, "c2", "2").await;
    wait_stored(&store, after_reload, &mut d).await;
    assert!(d.terminate().unwrap().success());
    let log = std::fs::read_to_string(data.join("rewindd.log")).unwrap_or_default();

    // The later state has no Secret; the earlier one has it.
    let export = |at: String, to: &Path| {
        let (ok, out, err) = run(rewind(&data.join("store"))
            .args(["export", "--at", &at, "--out"])
            .arg(to));
        assert!(ok, "{out}\n{err}\n{log}");
    };
    let (early, late) = (dir.path().join("early"), dir.path().join("late"));
    export(format!("ms:{before_reload}"), &early);
    export("latest".into(), &late);
    let has_secret = |root: &Path| {
        walk(root)
            .iter()
            .any(|p| p.to_string_lossy().contains("secrets") && p.ends_with("s1.yaml"))
    };
    assert!(has_secret(&early), "{:?}", walk(&early));
    assert!(!has_secret(&late), "{:?}", walk(&late));

    // The live Secret changes; a later restore with prune neither writes
    // it back nor deletes it.
    secret(&client, APP, "s1", "live").await;
    let (ok, out, err) = run(rewind(&data.join("store"))
        .args(["restore", "--at", "latest", "--to"])
        .arg(plane.admin_kubeconfig_path())
        .args(["--prune", "--yes"]));
    assert!(ok, "{out}\n{err}");
    assert_eq!(
        secret_value(&client, APP, "s1").await.as_deref(),
        Some("live")
    );
    // A restore before the reload writes it back.
    let (ok, out, err) = run(rewind(&data.join("store"))
        .args(["restore", "--at", &format!("ms:{before_reload}"), "--to"])
        .arg(plane.admin_kubeconfig_path())
        .args(["--yes"]));
    assert!(ok, "{out}\n{err}");
    assert_eq!(
        secret_value(&client, APP, "s1").await.as_deref(),
        Some("recorded")
    );
}

fn walk(root: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

const GROUP: &str = "ver.rewind.test";

fn widgets(client: &kube::Client, version: &str) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(GROUP, version, "Widget"),
        "widgets",
    );
    Api::namespaced_with(client.clone(), APP, &ar)
}

/// Waits until `version` of the widgets is served.
async fn served(client: &kube::Client, version: &str) {
    for _ in 0..200 {
        if widgets(client, version)
            .list(&Default::default())
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{GROUP}/{version} never served");
}

/// The `apiVersion` of each exported widget, by name.
fn exported_versions(root: &Path) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = walk(root)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(&format!("{GROUP}_widgets")))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let av = text
                .lines()
                .find_map(|l| l.strip_prefix("apiVersion: "))
                .unwrap_or_default()
                .to_owned();
            (p.file_stem().unwrap().to_string_lossy().into_owned(), av)
        })
        .collect();
    out.sort();
    out
}

/// A CRD gains v2 (served, storage, preferred) while rewindd records: the
/// later state holds every widget at v2 (recorded again although its
/// resourceVersion did not change), the earlier one at v1, and a restore
/// of each point into a fresh control plane writes the widgets at the
/// version of that point.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_served_version_is_recorded_again_and_restored_per_point() {
    rewind_history::install_tls_provider();
    let _ = (rewindd_bin(), rewind_bin());
    let (src, dst) = tokio::join!(ControlPlane::start(), ControlPlane::start());
    let (src, dst) = (src.unwrap(), dst.unwrap());
    let (client, target) = (src.admin_client(), dst.admin_client());
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd =
        rewind_tests::fixtures::schemaless_crd(GROUP, "v1", "widgets", "Widget", true).unwrap();
    crds.create(&PostParams::default(), &crd).await.unwrap();
    namespace(&client, APP).await;
    served(&client, "v1").await;
    for (name, size) in [("w1", 1), ("w2", 2)] {
        let obj: DynamicObject = serde_json::from_value(json!({
            "apiVersion": format!("{GROUP}/v1"), "kind": "Widget",
            "metadata": {"name": name, "namespace": APP},
            "spec": {"size": size}
        }))
        .unwrap();
        widgets(&client, "v1")
            .create(&PostParams::default(), &obj)
            .await
            .unwrap();
    }

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut cfg = DaemonConfig::new(&data, src.admin_kubeconfig_path());
    cfg.presets = Vec::new();
    cfg.extra = format!(
        "[[record.selectors]]\napiVersion = \"apiextensions.k8s.io/v1\"\nkinds = [\"CustomResourceDefinition\"]\n\
         resourceNames = [\"widgets.{GROUP}\"]\n\n\
         [[record.selectors]]\napiVersion = \"v1\"\nkinds = [\"Namespace\"]\nresourceNames = [\"app\"]\n\n\
         [[record.selectors]]\napiVersion = \"{GROUP}/v1\"\n\n[[record.selectors]]\napiVersion = \"{GROUP}/v2\"\n\n"
    );
    let mut d = cfg.start_settled(&RunOptions::default()).await.unwrap();
    let store = cfg.open_store().await.unwrap();
    wait_stored(&store, 0, &mut d).await;
    let before_move = rewind_history::now_ms();
    tokio::time::sleep(Duration::from_millis(50)).await;

    // v2 becomes the storage and preferred version; v1 is still served.
    let schema = json!({"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}});
    crds.patch(
        &format!("widgets.{GROUP}"),
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"versions": [
            {"name": "v1", "served": true, "storage": false, "schema": schema},
            {"name": "v2", "served": true, "storage": true, "schema": schema},
        ]}})),
    )
    .await
    .unwrap();

    let export = |at: &str, to: &Path| {
        let _ = std::fs::remove_dir_all(to);
        let (ok, out, err) = run(rewind(&data.join("store"))
            .args(["export", "--at", at, "--out"])
            .arg(to));
        assert!(ok, "{out}\n{err}");
        exported_versions(to)
    };
    let late = dir.path().join("late");
    let want_v2 = vec![
        ("w1".to_owned(), format!("{GROUP}/v2")),
        ("w2".to_owned(), format!("{GROUP}/v2")),
    ];
    let mut got = Vec::new();
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        got = export("latest", &late);
        if got == want_v2 {
            break;
        }
    }
    assert_eq!(got, want_v2, "{}", d.log_tail(30));
    assert!(d.terminate().unwrap().success());
    // The store holds each widget recorded again, body and type at v2,
    // although neither resourceVersion changed.
    let mut v2_records = Vec::new();
    for seg in store.list_segments().await.unwrap() {
        let bytes = store.get_segment(&seg).await.unwrap();
        for e in rewind_format::SegmentReader::open(&bytes, None, rewind_format::Limits::default())
            .unwrap()
            .read_all()
            .unwrap()
        {
            if e.rtype.resource == "widgets"
                && e.kind == rewind_format::EventKind::Applied
                && e.rtype.version == "v2"
                && String::from_utf8_lossy(&e.object).contains(&format!("\"{GROUP}/v2\""))
            {
                v2_records.push(e.name.clone());
            }
        }
    }
    v2_records.sort();
    assert_eq!(v2_records, vec!["w1", "w2"]);
    let early = dir.path().join("early");
    assert_eq!(
        export(&format!("ms:{before_move}"), &early),
        vec![
            ("w1".to_owned(), format!("{GROUP}/v1")),
            ("w2".to_owned(), format!("{GROUP}/v1")),
        ]
    );

    // Each point restores at its own version.
    let restore = |at: String| {
        let (ok, out, err) = run(rewind(&data.join("store"))
            .args(["restore", "--at", &at, "--to"])
            .arg(dst.admin_kubeconfig_path())
            .arg("--yes"));
        assert!(ok, "restore at {at}:\n{out}\n{err}");
    };
    restore(format!("ms:{before_move}"));
    let tcrds: Api<CustomResourceDefinition> = Api::all(target.clone());
    let versions = |c: CustomResourceDefinition| -> Vec<String> {
        c.spec.versions.into_iter().map(|v| v.name).collect()
    };
    assert_eq!(
        versions(tcrds.get(&format!("widgets.{GROUP}")).await.unwrap()),
        vec!["v1"]
    );
    let w1 = widgets(&target, "v1").get("w1").await.unwrap();
    assert_eq!(w1.data["spec"]["size"], json!(1));
    restore("latest".into());
    assert_eq!(
        versions(tcrds.get(&format!("widgets.{GROUP}")).await.unwrap()),
        vec!["v1", "v2"]
    );
    served(&target, "v2").await;
    let w2 = widgets(&target, "v2").get("w2").await.unwrap();
    assert_eq!(w2.data["spec"]["size"], json!(2));
}
