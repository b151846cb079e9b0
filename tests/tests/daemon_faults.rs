//! rewindd keeps an exact record through faults: etcd compaction forcing
//! 410 relists, an apiserver restart, a stalled connection, a CRD created
//! and deleted mid-stream, and SIGKILL of the daemon with changes made while
//! it is down (including a delete and recreate under the same name). At the
//! end the journal equals a fresh LIST, and its log replays to that state
//! with nothing recorded twice.
//!
//! Runs the real `rewindd` binary as a child process, through a TCP proxy,
//! with the least-privilege identity (get, list, watch).

mod daemon_support;

use std::path::Path;
use std::time::Duration;

use daemon_support::*;
use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
use rewind_format::EventKind;
use rewind_tests::ControlPlane;
use rewind_tests::daemon::{DaemonConfig, Rewindd, RunOptions};
use serde_json::json;

fn start_daemon(kubeconfig: &Path, data: &Path) -> Rewindd {
    let opts = RunOptions {
        discovery_interval_s: Some(2),
        rust_log: Some("info".into()),
        ..RunOptions::default()
    };
    DaemonConfig::new(data, kubeconfig).start(&opts).unwrap()
}

fn crd(plural: &str) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.rke-machine-config.cattle.io")},
        "spec": {"group": "rke-machine-config.cattle.io", "scope": "Namespaced",
            "names": {"plural": plural, "singular": "rewindtestconfig", "kind": "RewindTestConfig", "listKind": "RewindTestConfigList"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_exactly_through_faults() {
    let cp = ControlPlane::start().await.unwrap();
    let admin = cp.admin_client();
    let objects = load_plane(&admin, 30).await;
    let proxied = cp.proxy().await.unwrap();
    let data_dir = tempfile::tempdir().unwrap();
    let data = &data_dir.path().join("data");

    let mut daemon = start_daemon(&proxied.readonly.kubeconfig, data);
    daemon
        .settle(Duration::from_secs(2), "initial list")
        .await
        .unwrap();
    let mut m = Mutator::new(admin.clone(), &objects);
    m.run(30).await;

    // 1. Compaction, then a broken watch: the re-watch from a compacted
    //    resourceVersion gets 410 and relists.
    m.run(12).await;
    cp.compact_etcd_now().await.unwrap();
    proxied.proxy.cut_all();
    m.run(24).await;

    // 2. The apiserver restarts: every watch breaks.
    cp.restart_apiserver().await.unwrap();
    m.run(24).await;

    // 3. A stalled connection: changes pile up behind it.
    proxied.proxy.stall();
    m.run(24).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    proxied.proxy.resume();
    m.run(12).await;

    // 4. A CRD created and deleted mid-stream (its group is in the preset).
    let crds: Api<DynamicObject> = Api::all_with(
        admin.clone(),
        &kube::api::ApiResource::erase::<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>(&()),
    );
    crds.create(&PostParams::default(), &crd("rewindtestconfigs"))
        .await
        .unwrap();
    let tk = "rewindtestconfigs.rke-machine-config.cattle.io";
    let ar = kube::api::ApiResource {
        group: "rke-machine-config.cattle.io".into(),
        version: "v1".into(),
        api_version: "rke-machine-config.cattle.io/v1".into(),
        kind: "RewindTestConfig".into(),
        plural: "rewindtestconfigs".into(),
    };
    let cfgs: Api<DynamicObject> = Api::namespaced_with(admin.clone(), "fleet-default", &ar);
    let mut created = 0;
    for attempt in 0..100 {
        let o: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "rke-machine-config.cattle.io/v1", "kind": "RewindTestConfig",
            "metadata": {"name": format!("cfg-{created}"), "namespace": "fleet-default"}, "spec": {"n": attempt}
        }))
        .unwrap();
        if cfgs.create(&PostParams::default(), &o).await.is_ok() {
            created += 1;
            if created == 3 {
                break;
            }
        } else {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    assert_eq!(
        created, 3,
        "custom resources of the new CRD could not be created"
    );
    // The daemon picks the new type up and records its objects.
    let t0 = std::time::Instant::now();
    while daemon
        .status()
        .is_none_or(|s| s.types.get(tk).is_none_or(|t| t.events < 3))
    {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "new CRD's objects not recorded"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    m.run(12).await;
    crds.delete(tk, &DeleteParams::default()).await.unwrap();
    m.run(12).await;

    // 5. SIGKILL; changes while the daemon is down, including a delete and
    //    recreate under the same name (new uid); then a restart.
    let cms: Api<DynamicObject> = Api::namespaced_with(
        admin.clone(),
        "cattle-system",
        &kube::api::ApiResource::erase::<k8s_openapi::api::core::v1::ConfigMap>(&()),
    );
    let recreated = "recreated-while-down".to_owned();
    let cm = |v: &str| -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": recreated, "namespace": "cattle-system"}, "data": {"v": v}
        }))
        .unwrap()
    };
    cms.create(&PostParams::default(), &cm("first"))
        .await
        .unwrap();
    daemon
        .settle(Duration::from_secs(1), "before the kill")
        .await
        .unwrap();
    daemon.kill().unwrap();
    m.run(24).await;
    cms.delete(&recreated, &DeleteParams::default())
        .await
        .unwrap();
    cms.create(&PostParams::default(), &cm("second"))
        .await
        .unwrap();
    let mut daemon = start_daemon(&proxied.readonly.kubeconfig, data);
    m.run(24).await;

    daemon
        .settle(Duration::from_secs(3), "after the faults")
        .await
        .unwrap();
    let exit = daemon.terminate().unwrap();
    assert!(exit.success(), "rewindd exited with {exit}");

    let Recorded {
        state,
        records: all,
        ..
    } = check_recorded(&cp.readonly_client(), "rancher", data).await;
    eprintln!("{} objects in state, {} records", state.len(), all.len());

    // The CRD's objects: recorded, then deleted.
    let cfg_events: Vec<_> = all
        .iter()
        .filter(|r| r.rtype.group_resource() == tk)
        .collect();
    assert!(
        cfg_events
            .iter()
            .filter(|r| r.kind == EventKind::Applied)
            .count()
            >= 3
    );
    assert!(!state.keys().any(|k| k.0 == tk));
    // The recreate during the gap: the old uid's inferred delete, then the new one.
    let cm_events: Vec<_> = all
        .iter()
        .filter(|r| r.rtype.resource == "configmaps" && r.name == recreated)
        .collect();
    let n = cm_events.len();
    let types: std::collections::BTreeSet<String> =
        all.iter().map(|r| r.rtype.group_resource()).collect();
    let cms_in_state: Vec<_> = state.keys().filter(|k| k.0 == "configmaps").collect();
    assert!(
        n >= 3,
        "{recreated}: {cm_events:?}\ntypes: {types:?}\nconfigmaps in state: {cms_in_state:?}"
    );
    assert!(
        matches!(cm_events[n - 2].kind, EventKind::DeletedInferred { .. }),
        "{:?}",
        cm_events[n - 2].kind
    );
    assert_eq!(cm_events[n - 1].kind, EventKind::Applied);
    assert_ne!(cm_events[n - 2].uid, cm_events[n - 1].uid);
    // Relists happened (compaction, restarts) and were recorded as markers.
    assert!(
        all.iter()
            .filter(|r| matches!(r.kind, EventKind::ResyncEnd { .. }))
            .count()
            > state.len().min(1)
    );
}
