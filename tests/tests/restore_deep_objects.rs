//! Objects nested deeper than serde_json's recursion limit (128), up to the
//! API server's own limit (request bodies of 10,000 levels), go the whole
//! way through Rewind: rewindd records them, `rewind export` writes them
//! (as JSON, which kubectl reads), `kubectl apply` takes the export back,
//! and `rewind restore` applies them into a fresh control plane, byte for
//! byte. The recorder side alone is
//! `reliability_odd_objects::regression_objects_nested_deeper_than_128_levels`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, PostParams};
use rewind_history::raw::RawObject;
use rewind_tests::ControlPlane;
use rewind_tests::daemon::{DaemonConfig, RunOptions, rewind_bin, rewindd_bin};
use serde_json::json;

const GROUP: &str = "deep.rewind.test";
const NS: &str = "cattle-deep";

/// (name, spec depth): the body adds one level; 9,999 is the deepest spec
/// the API server accepts.
const OBJECTS: [(&str, usize); 3] = [("deeper", 300), ("deepest", 9_999), ("plain", 1)];

fn spec(depth: usize) -> String {
    format!("{}\"leaf\"{}", r#"{"n":"#.repeat(depth), "}".repeat(depth))
}

fn url(name: Option<&str>) -> String {
    let base = format!("/apis/{GROUP}/v1/namespaces/{NS}/deepthings");
    name.map_or(base.clone(), |n| format!("{base}/{n}"))
}

/// The CRD (schemaless) and the namespace.
async fn prepare(admin: &kube::Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(admin.clone());
    let crd = rewind_tests::fixtures::schemaless_crd(GROUP, "v1", "deepthings", "DeepThing", true)
        .unwrap();
    crds.create(&PostParams::default(), &crd).await.unwrap();
    let nss: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(admin.clone());
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": NS}})).unwrap(),
    )
    .await
    .unwrap();
}

/// Creates `objects`, as text (serde_json cannot build them), waiting for
/// the CRD to be served.
async fn create(admin: &kube::Client, objects: &[(&str, usize)]) {
    let t0 = Instant::now();
    for &(name, depth) in objects {
        let body = format!(
            r#"{{"apiVersion":"{GROUP}/v1","kind":"DeepThing","metadata":{{"name":"{name}","namespace":"{NS}"}},"spec":{}}}"#,
            spec(depth)
        );
        loop {
            let req = http::Request::post(url(None))
                .header("Content-Type", "application/json")
                .body(body.clone().into_bytes())
                .unwrap();
            match admin.request_text(req).await {
                Ok(_) => break,
                Err(e) => {
                    assert!(t0.elapsed() < Duration::from_secs(60), "{e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
}

/// Asserts every object is live in `cp` with exactly its spec.
async fn assert_live(admin: &kube::Client, what: &str) {
    for (name, depth) in OBJECTS {
        let req = http::Request::get(url(Some(name)))
            .body(Vec::new())
            .unwrap();
        let text = admin
            .request_text(req)
            .await
            .unwrap_or_else(|e| panic!("{what}: {name} not found: {e}"));
        assert!(
            text.contains(&format!(r#""spec":{}"#, spec(depth))),
            "{what}: {name} ({depth} levels) differs"
        );
    }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn rewind(store: &Path) -> Command {
    let mut c = Command::new(rewind_bin().unwrap());
    c.arg("--store").arg(store);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_objects_are_recorded_exported_and_restored() {
    rewind_history::install_tls_provider();
    let _ = (rewindd_bin(), rewind_bin());
    let (src, dst) = tokio::join!(ControlPlane::start(), ControlPlane::start());
    let (src, dst) = (src.unwrap(), dst.unwrap());
    let (admin, target) = (src.admin_client(), dst.admin_client());
    tokio::join!(prepare(&admin), prepare(&target));
    create(&admin, &OBJECTS).await;
    // Not recorded: `--prune` must delete it from the target.
    create(&target, &[("stray", 9_999)]).await;

    // Recorded, and a snapshot stored.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut cfg = DaemonConfig::new(&data, src.readonly_kubeconfig_path());
    cfg.presets = vec!["everything".into()];
    let mut daemon = cfg.start_settled(&RunOptions::default()).await.unwrap();
    let snap = rewind_daemon::admin::client::snapshot(&cfg.admin_socket(), None, true)
        .await
        .unwrap();
    assert!(snap.stored);
    assert!(daemon.terminate().unwrap().success());
    let store = data.join("store");

    // Exported: deep objects as JSON, the plain one as YAML, specs intact.
    let out = dir.path().join("export");
    run(rewind(&store).arg("export").arg("--out").arg(&out));
    for (name, depth) in OBJECTS {
        let file = out.join(format!("02-objects/{GROUP}_deepthings/{NS}/{name}.yaml"));
        let text = std::fs::read_to_string(&file).unwrap();
        assert_eq!(
            text.starts_with('{'),
            depth > 100,
            "{name}: {}",
            &text[..40]
        );
        if depth > 100 {
            assert!(
                text.contains(&format!(r#""spec":{}"#, spec(depth))),
                "{name}"
            );
        }
    }

    // kubectl applies the export: the objects deleted from the source come
    // back as they were.
    let objects: Api<RawObject> = Api::namespaced_with(
        admin.clone(),
        NS,
        &kube::api::ApiResource::from_gvk_with_plural(
            &kube::api::GroupVersionKind::gvk(GROUP, "v1", "DeepThing"),
            "deepthings",
        ),
    );
    for (name, _) in OBJECTS {
        objects
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
    }
    let files: Vec<String> = OBJECTS
        .iter()
        .map(|(name, _)| {
            out.join(format!("02-objects/{GROUP}_deepthings/{NS}/{name}.yaml"))
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let mut kubectl = Command::new(&src.binaries().kubectl);
    kubectl
        .arg("--kubeconfig")
        .arg(src.admin_kubeconfig_path())
        .arg("apply");
    for f in &files {
        kubectl.arg("-f").arg(f);
    }
    run(&mut kubectl);
    assert_live(&admin, "kubectl apply of the export").await;

    // rewind restore into a fresh control plane (CRD and namespace there).
    let report = run(rewind(&store)
        .arg("restore")
        .arg("--to")
        .arg(dst.admin_kubeconfig_path())
        // What rewindd recorded with; prune deletes nothing it does not select.
        .args(["--namespace", NS, "--resource-preset", "everything"])
        .args(["--prune", "--yes"]));
    assert_live(&target, &format!("rewind restore ({report})")).await;
    let req = http::Request::get(url(Some("stray")))
        .body(Vec::new())
        .unwrap();
    match target.request_text(req).await {
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        other => panic!("the stray deep object was not pruned: {other:?}"),
    }
    // Planning again reads the deep objects back from the target and finds
    // them unchanged.
    let again = run(rewind(&store)
        .arg("restore")
        .arg("--to")
        .arg(dst.admin_kubeconfig_path())
        .args(["--namespace", NS, "--dry-run", "--output", "json"]));
    let plan: serde_json::Value = serde_json::from_str(&again).unwrap();
    // Everything is unchanged, the CRD included: LIST items of built-in
    // types carry no apiVersion/kind while rewindd records them, which made
    // it `update [apiVersion, kind]` (regression test
    // `plan::tests::regression_replan_ignores_apiversion_kind_absent_live`).
    let items = plan["plan"]["items"].as_array().unwrap();
    assert!(
        items
            .iter()
            .any(|i| i["key"]["rtype"]["kind"] == "CustomResourceDefinition"),
        "the CRD is not planned:\n{again}"
    );
    let work: Vec<_> = items
        .iter()
        .filter(|i| i["action"] != "unchanged")
        .collect();
    assert!(work.is_empty(), "a re-plan has work: {work:#?}");
    for (name, _) in OBJECTS {
        let item = plan["plan"]["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["key"]["name"] == name && i["key"]["namespace"] == NS)
            .unwrap_or_else(|| panic!("{name} not planned:\n{again}"));
        assert_eq!(item["action"], "unchanged", "{name}:\n{again}");
    }
}
