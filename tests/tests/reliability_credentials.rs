//! Fault-matrix cell "the daemon's credentials revoked, then restored":
//! rewindd records with a spare identity granted get/list/watch; the grant
//! is replaced by one that allows nothing useful and the apiserver restarts
//! (so every watch must be re-authorized) while changes go on. rewindd must
//! stay up, say loudly what is wrong (watchers `Failing` with the API's
//! reason in the status file, errors in the log), and once the grant is back
//! record without gaps: the journal equals a fresh LIST, and its log replays
//! to it with nothing recorded twice.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

mod daemon_support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use daemon_support::*;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::rbac::v1::PolicyRule;
use kube::api::{Api, ListParams};
use rewind_daemon::select::preset::preset;
use rewind_daemon::status::{WatchState, read_status, status_path};
use rewind_tests::ControlPlane;

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
    let bin = rewindd_bin();
    let cp = ControlPlane::start().await.unwrap();
    let admin = cp.admin_client();
    let objects = load_plane(&admin, 5).await;
    let user = cp.create_identity("daemon-user", reader()).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Own admin socket and no metrics port: daemons of tests running in
    // parallel must not collide on /run/rewind/rewindd.sock or :9464.
    std::fs::write(
        dir.path().join("none.toml"),
        format!(
            "[service]\nadmin_socket = \"{}\"\nmetrics_addr = \"\"\n",
            dir.path().join("rewindd.sock").display()
        ),
    )
    .unwrap();
    let log = dir.path().join("rewindd.log");
    let mut child = Command::new(&bin)
        .arg("--kubeconfig")
        .arg(&user.kubeconfig)
        .arg("--data-dir")
        .arg(&data)
        .arg("--config")
        .arg(dir.path().join("none.toml"))
        .args([
            "--presets",
            "rancher",
            "--status-interval-ms",
            "200",
            "--discovery-interval-s",
            "2",
        ])
        .env("RUST_LOG", "info")
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::inherit())
        .arg("run")
        .spawn()
        .unwrap();
    let pid = child.id();
    let status = || {
        read_status(&status_path(&data))
            .ok()
            .filter(|s| s.pid == pid)
    };
    wait_settled(status, Duration::from_secs(2), "initial list").await;
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
        let s = status();
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
    assert!(
        child.try_wait().unwrap().is_none(),
        "rewindd exited on revoked credentials"
    );
    assert!(
        failing.len() > 1,
        "no watcher reports the revocation: {:?}",
        status().map(|s| s.types)
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
    wait_settled(status, Duration::from_secs(3), "after the grant returns").await;
    let recovered = t0.elapsed();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    assert!(child.wait().unwrap().success());

    let live = live_selected(&cp.readonly_client(), &preset("rancher").unwrap()).await;
    let j = open_journal(&data.join("journal"));
    let state = journal_state(&j);
    let diffs = differences(&state, &live);
    assert!(
        diffs.is_empty(),
        "{} differences:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
    let n = check_log(&j);
    eprintln!(
        "{} watchers failing while revoked (e.g. {:?}); recovered {recovered:?} after the grant \
         returned; {n} records, {} objects",
        failing.len(),
        failing.first(),
        state.len()
    );
}
