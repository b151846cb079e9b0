//! Fault-matrix cell "CRDs created and deleted repeatedly: no gaps".
//!
//! rewindd records the rancher preset while a test CRD in a recorded group
//! (`rke-machine-config.cattle.io`) is created, filled with custom
//! resources, and deleted, `REWIND_CRD_CYCLES` times (default 9), always
//! under the same names, so every cycle brings back the same type and the
//! same object keys with new uids. The cycles rotate through three ways
//! of going away:
//! - *explicit*: the CRs are deleted one by one, then the CRD;
//! - *cascade*: the CRD is deleted with its CRs in it (the apiserver's
//!   cleanup deletes them);
//! - *racing*: the CRD is deleted right after its CRs were created, before
//!   the daemon was given time to see them.
//!
//! In the first two the test waits until the daemon has durably recorded
//! the new CRs before deleting. Rancher objects change between steps. The
//! last cycle leaves the CRD and its CRs in place.
//!
//! Must hold: the journal equals a fresh LIST; the log is gap-free without
//! duplicates and replays to the state; every CR uid the test waited for is
//! recorded as Applied and, unless it still exists, later as deleted (a
//! watch DELETED or an inferred delete); no CR the log saw is left in the
//! state after its deletion.

mod daemon_support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use daemon_support::*;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, PostParams};
use rewind_daemon::status::WatchState;
use rewind_format::EventKind;
use rewind_history::now_ms;
use rewind_tests::ControlPlane;
use rewind_tests::daemon::{DaemonConfig, Rewindd, RunOptions};
use serde_json::json;

const GROUP: &str = "rke-machine-config.cattle.io";
const PLURAL: &str = "rewindchurnconfigs";
const CRS: usize = 3;

fn crd() -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "metadata": {"name": format!("{PLURAL}.{GROUP}")},
        "spec": {"group": GROUP, "scope": "Namespaced",
            "names": {"plural": PLURAL, "singular": "rewindchurnconfig", "kind": "RewindChurnConfig",
                "listKind": "RewindChurnConfigList"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
    }))
    .unwrap()
}

fn cr_api(admin: &kube::Client) -> Api<DynamicObject> {
    let ar = ApiResource {
        group: GROUP.into(),
        version: "v1".into(),
        api_version: format!("{GROUP}/v1"),
        kind: "RewindChurnConfig".into(),
        plural: PLURAL.into(),
    };
    Api::namespaced_with(admin.clone(), "fleet-default", &ar)
}

/// Creates the CRs, retrying while the new type is not served yet.
/// Returns their uids and the time just before the last create.
async fn create_crs(crs: &Api<DynamicObject>, cycle: usize) -> (Vec<String>, i64) {
    let mut uids = Vec::new();
    let mut before_last = 0;
    let t0 = Instant::now();
    while uids.len() < CRS {
        let o: DynamicObject = serde_json::from_value(json!({
            "apiVersion": format!("{GROUP}/v1"), "kind": "RewindChurnConfig",
            "metadata": {"name": format!("cfg-{}", uids.len()), "namespace": "fleet-default"},
            "spec": {"cycle": cycle}
        }))
        .unwrap();
        before_last = now_ms();
        match crs.create(&PostParams::default(), &o).await {
            Ok(created) => uids.push(created.metadata.uid.unwrap()),
            Err(e) => {
                assert!(
                    t0.elapsed() < Duration::from_secs(60),
                    "cycle {cycle}: CRs cannot be created: {e}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    (uids, before_last)
}

/// Waits until the daemon has durably recorded an observation of the type
/// made after `since_ms`, then until it settled.
async fn wait_recorded(daemon: &mut Rewindd, tk: &str, since_ms: i64, what: &str) {
    let t0 = Instant::now();
    while daemon.status().is_none_or(|s| {
        s.types.get(tk).is_none_or(|t| {
            t.state != WatchState::Watching || t.durable_through_ms.is_none_or(|d| d < since_ms)
        })
    }) {
        daemon.check_running().unwrap();
        assert!(
            t0.elapsed() < rewind_tests::daemon::settle_timeout(),
            "{what}: the daemon did not record the new CRs; status of the type: {:?}",
            daemon.status().and_then(|s| s.types.get(tk).cloned())
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    daemon.settle(Duration::from_secs(1), what).await.unwrap();
}

/// Waits until the CRD is gone (its CRs cleaned up by the apiserver).
async fn wait_crd_gone(crds: &Api<CustomResourceDefinition>, name: &str) {
    let t0 = Instant::now();
    while crds.get_opt(name).await.unwrap().is_some() {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "CRD {name} was not deleted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crds_created_and_deleted_repeatedly_leave_no_gaps() {
    let cycles: usize = std::env::var("REWIND_CRD_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(9);
    let cp = ControlPlane::start().await.unwrap();
    let admin = cp.admin_client();
    let objects = load_plane(&admin, 5).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cfg = DaemonConfig::new(&data, cp.readonly_kubeconfig_path());
    let opts = RunOptions {
        discovery_interval_s: Some(2),
        ..RunOptions::default()
    };
    let mut daemon = cfg.start_settled(&opts).await.unwrap();

    let crds: Api<CustomResourceDefinition> = Api::all(admin.clone());
    let crd_name = format!("{PLURAL}.{GROUP}");
    let tk = crd_name.clone();
    let crs = cr_api(&admin);
    let mut m = Mutator::new(admin.clone(), &objects);
    // uid -> must the log hold its deletion too?
    let mut waited_for: BTreeMap<String, bool> = BTreeMap::new();
    let mut modes = [0usize; 3];
    let started = Instant::now();
    for cycle in 0..cycles {
        let last = cycle + 1 == cycles;
        crds.create(&PostParams::default(), &crd()).await.unwrap();
        m.run(6).await;
        let (uids, before_last) = create_crs(&crs, cycle).await;
        let mode = cycle % 3;
        modes[mode] += 1;
        if mode != 2 || last {
            wait_recorded(&mut daemon, &tk, before_last, &format!("cycle {cycle}")).await;
            for u in &uids {
                waited_for.insert(u.clone(), !last);
            }
        }
        if last {
            break;
        }
        m.run(6).await;
        match mode {
            0 => {
                for i in 0..CRS {
                    crs.delete(&format!("cfg-{i}"), &DeleteParams::default())
                        .await
                        .unwrap();
                }
                crds.delete(&crd_name, &DeleteParams::default())
                    .await
                    .unwrap();
            }
            _ => {
                crds.delete(&crd_name, &DeleteParams::default())
                    .await
                    .unwrap();
            }
        }
        wait_crd_gone(&crds, &crd_name).await;
        m.run(6).await;
    }
    let churn_time = started.elapsed();
    daemon
        .settle(Duration::from_secs(3), "after the cycles")
        .await
        .unwrap();
    let exit = daemon.terminate().unwrap();
    assert!(exit.success(), "rewindd exited with {exit}");

    let Recorded {
        state,
        live,
        records: all,
    } = check_recorded(&cp.readonly_client(), "rancher", &data).await;
    let n = all.len();

    let cr_records: Vec<_> = all
        .iter()
        .filter(|r| r.rtype.group_resource() == tk)
        .collect();
    let mut applied: BTreeSet<String> = BTreeSet::new();
    let mut deleted: BTreeMap<String, &EventKind> = BTreeMap::new();
    for r in &cr_records {
        match &r.kind {
            EventKind::Applied => {
                assert!(
                    !deleted.contains_key(&r.uid),
                    "CR uid {} applied after its deletion",
                    r.uid
                );
                applied.insert(r.uid.clone());
            }
            k @ (EventKind::Deleted | EventKind::DeletedInferred { .. }) => {
                deleted.insert(r.uid.clone(), k);
            }
            _ => {}
        }
    }
    for (uid, must_be_deleted) in &waited_for {
        assert!(applied.contains(uid), "CR uid {uid} was never recorded");
        assert_eq!(
            deleted.contains_key(uid),
            *must_be_deleted,
            "CR uid {uid}: deletion recorded = {}",
            deleted.contains_key(uid)
        );
    }
    for uid in &applied {
        let live_now = live.values().any(|s| s.uid == *uid);
        assert_eq!(
            deleted.contains_key(uid),
            !live_now,
            "CR uid {uid}: recorded deleted = {}, live = {live_now}",
            deleted.contains_key(uid)
        );
    }
    let in_state = state.keys().filter(|k| k.0 == tk).count();
    assert_eq!(in_state, CRS, "the last cycle's CRs are in the state");
    let explicit = deleted
        .values()
        .filter(|k| matches!(k, EventKind::Deleted))
        .count();
    eprintln!(
        "{cycles} CRD cycles (explicit/cascade/racing {modes:?}) in {churn_time:?}; \
         {} CR uids recorded ({} waited for), {} deletions recorded ({explicit} watch DELETED, \
         {} inferred); {n} records, {} objects, 0 differences",
        applied.len(),
        waited_for.len(),
        deleted.len(),
        deleted.len() - explicit,
        state.len()
    );
}
