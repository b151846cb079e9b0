//! Fault-matrix cell "the daemon's credentials revoked, then restored":
//! rewindd records with a spare identity granted get/list/watch; the grant
//! is replaced by one that allows nothing useful and the apiserver restarts
//! (so every watch must be re-authorized) while changes go on. rewindd must
//! stay up, say loudly what is wrong (watchers `Failing` with the API's
//! reason in the status file, errors in the log), and once the grant is back
//! record without gaps: the journal equals a fresh LIST, and its log replays
//! to it with nothing recorded twice.

mod daemon_support;

use std::time::{Duration, Instant};

use daemon_support::*;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::rbac::v1::PolicyRule;
use kube::api::{Api, ListParams};
use rewind_daemon::status::WatchState;
use rewind_tests::ControlPlane;
use rewind_tests::daemon::{DaemonConfig, RunOptions};

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(groups.iter().map(ToString::to_string).collect()),
        resources: Some(resources.iter().map(ToString::to_string).collect()),
        verbs: verbs.iter().map(ToString::to_string).collect(),
        ..Default::default()
    }
}

fn reader() -> Vec<PolicyRule> {
    vec![rule(&["*"], &["*"], &["get", "list", "watch"])]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_credentials_are_loud_and_recording_resumes_without_gaps() {
    let _ = rewindd_bin();
    let cp = ControlPlane::start().await.unwrap();
    let admin = cp.admin_client();
    let objects = load_plane(&admin, 5).await;
    let user = cp.create_identity("daemon-user", reader()).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cfg = DaemonConfig::new(&data, &user.kubeconfig);
    let log = dir.path().join("rewindd.log");
    let opts = RunOptions {
        discovery_interval_s: Some(2),
        rust_log: Some("info".into()),
        log: Some(log.clone()),
        ..RunOptions::default()
    };
    let mut daemon = cfg.start_settled(&opts).await.unwrap();
    let mut m = Mutator::new(admin.clone(), &objects);
    assert_eq!(m.run(12).await, 0);

    // Revoke: a grant that allows nothing rewindd needs, enforced.
    cp.create_identity(
        "daemon-user",
        vec![rule(&[""], &["nothing-here"], &["get"])],
    )
    .await
    .unwrap();
    let cms: Api<ConfigMap> = Api::all(user.client.clone());
    let t0 = Instant::now();
    while cms.list(&ListParams::default().limit(1)).await.is_ok() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "revocation not enforced"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Open watches were authorized when they began: break them.
    cp.restart_apiserver().await.unwrap();
    assert_eq!(m.run(24).await, 0);

    // Loud: watchers fail with the API's reason; the process stays up.
    let t0 = Instant::now();
    let failing = loop {
        let s = daemon.status();
        let failing: Vec<(String, String)> = s
            .iter()
            .flat_map(|s| s.types.iter())
            .filter(|(_, t)| t.state == WatchState::Failing)
            .map(|(k, t)| (k.clone(), t.reason.clone().unwrap_or_default()))
            .collect();
        if failing.len() > 1 || t0.elapsed() > Duration::from_secs(60) {
            break failing;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    daemon
        .check_running()
        .unwrap_or_else(|e| panic!("on revoked credentials: {e}"));
    assert!(
        failing.len() > 1,
        "no watcher reports the revocation: {:?}",
        daemon.status().map(|s| s.types)
    );
    assert!(
        failing
            .iter()
            .any(|(_, r)| r.contains("forbidden") || r.contains("403")),
        "the reason names the refusal: {failing:?}"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("forbidden") || text.contains("403"),
        "the log says why"
    );
    assert_eq!(m.run(12).await, 0);

    // Restored: everything changed meanwhile is recorded, exactly once.
    cp.create_identity("daemon-user", reader()).await.unwrap();
    let t0 = Instant::now();
    assert_eq!(m.run(12).await, 0);
    daemon
        .settle(Duration::from_secs(3), "after the grant returns")
        .await
        .unwrap();
    let recovered = t0.elapsed();
    let exit = daemon.terminate().unwrap();
    assert!(exit.success(), "rewindd exited with {exit}");

    let Recorded { state, records, .. } =
        check_recorded(&cp.readonly_client(), "rancher", &data).await;
    let n = records.len();
    eprintln!(
        "{} watchers failing while revoked (e.g. {:?}); recovered {recovered:?} after the grant \
         returned; {n} records, {} objects",
        failing.len(),
        failing.first(),
        state.len()
    );
}
