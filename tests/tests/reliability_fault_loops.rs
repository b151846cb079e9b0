//! Fault-matrix cells that repeat a fault under steady changes:
//!
//! - the apiserver restarted every 10 s (the Rancher incident: a restart
//!   loop); short form 60 s, long form `REWIND_FAULT_SECS=300` (5 minutes);
//! - etcd compacted every 3 s, so re-watches keep getting 410 and relisting;
//!   same durations. Each compaction is followed by cutting every
//!   connection (the test proxy), since an open watch survives compaction
//!   and only its re-watch from an old resourceVersion gets 410.
//!
//! rewindd (read-only identity) must stay up throughout, and once the fault
//! stops the journal must equal a fresh LIST, with a gap-free log and no
//! `(uid, resourceVersion)` recorded twice.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

mod daemon_support;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use daemon_support::*;
use rewind_daemon::select::preset::preset;
use rewind_daemon::status::{StatusFile, WatchState, read_status, status_path};
use rewind_format::EventKind;
use rewind_tests::ControlPlane;

#[derive(Clone, Copy, Debug)]
enum Fault {
    RestartApiserver,
    CompactEtcd,
}

fn fault_secs() -> u64 {
    std::env::var("REWIND_FAULT_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60)
}

fn start(kubeconfig: &std::path::Path, dir: &std::path::Path) -> Child {
    // Own admin socket and no metrics port: daemons of tests running in
    // parallel must not collide on /run/rewind/rewindd.sock or :9464.
    std::fs::write(
        dir.join("none.toml"),
        format!(
            "[service]\nadmin_socket = \"{}\"\nmetrics_addr = \"\"\n",
            dir.join("rewindd.sock").display()
        ),
    )
    .unwrap();
    Command::new(rewindd_bin())
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--config")
        .arg(dir.join("none.toml"))
        .args([
            "--presets",
            "rancher",
            "--status-interval-ms",
            "200",
            "--discovery-interval-s",
            "2",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("rewindd.err")).unwrap())
        .arg("run")
        .spawn()
        .unwrap()
}

/// `wait_settled`, but on a timeout it says which watchers were not ready
/// and shows the daemon's log.
async fn settle(status: impl Fn() -> Option<StatusFile>, err_log: &std::path::Path, what: &str) {
    let waited = tokio::time::timeout(
        Duration::from_secs(170),
        wait_settled(&status, Duration::from_secs(3), what),
    )
    .await;
    if waited.is_err() {
        let s = status();
        let not_ready: Vec<String> = s
            .iter()
            .flat_map(|s| s.types.iter())
            .filter(|(_, t)| {
                !matches!(t.state, WatchState::Watching | WatchState::Stopped) || t.lag_ms != 0
            })
            .map(|(k, t)| format!("{k}: {:?} lag {} ms {:?}", t.state, t.lag_ms, t.reason))
            .collect();
        let log = std::fs::read_to_string(err_log).unwrap_or_default();
        panic!(
            "rewindd did not settle ({what}); journal {:?}; not ready:\n{}\nlog tail:\n{}",
            s.as_ref().map(|s| &s.journal),
            not_ready.join("\n"),
            log.lines().rev().take(20).collect::<Vec<_>>().join("\n")
        );
    }
}

async fn run(fault: Fault, every: Duration) {
    let cp = ControlPlane::start().await.unwrap();
    let admin = cp.admin_client();
    let objects = load_plane(&admin, 5).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Through a proxy, so compaction can be paired with broken watches.
    let proxied = cp.proxy().await.unwrap();
    let mut child = start(&proxied.readonly.kubeconfig, dir.path());
    let pid = child.id();
    let status = || -> Option<StatusFile> {
        read_status(&status_path(&data))
            .ok()
            .filter(|s| s.pid == pid)
    };
    settle(status, &dir.path().join("rewindd.err"), "initial list").await;
    let types = status().unwrap().types.len();

    let stop = Arc::new(AtomicBool::new(false));
    let churn = {
        let stop = stop.clone();
        let mut m = Mutator::new(admin.clone(), &objects);
        tokio::spawn(async move {
            let (mut steps, mut failed) = (0, 0);
            while !stop.load(Ordering::Relaxed) {
                failed += m.run(6).await;
                steps += 6;
            }
            (steps, failed)
        })
    };
    let t0 = Instant::now();
    let mut faults = 0;
    while t0.elapsed() < Duration::from_secs(fault_secs()) {
        tokio::time::sleep(every).await;
        match fault {
            Fault::RestartApiserver => cp.restart_apiserver().await.unwrap(),
            // An open watch survives compaction; its re-watch from an old
            // resourceVersion is what gets 410. Break the watches too.
            Fault::CompactEtcd => {
                cp.compact_etcd_now().await.unwrap();
                proxied.proxy.cut_all();
            }
        }
        faults += 1;
        assert!(
            child.try_wait().unwrap().is_none(),
            "rewindd exited during {fault:?}: {}",
            std::fs::read_to_string(dir.path().join("rewindd.err")).unwrap()
        );
    }
    stop.store(true, Ordering::Relaxed);
    let (steps, failed) = churn.await.unwrap();
    let t = Instant::now();
    settle(status, &dir.path().join("rewindd.err"), "after the faults").await;
    let caught_up = t.elapsed();
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
    let relists = j
        .records_from(1)
        .map(Result::unwrap)
        .filter(|r| matches!(r.kind, EventKind::ResyncEnd { .. }))
        .count();
    eprintln!(
        "{fault:?} x{faults} every {every:?} for {:?}: {steps} change steps ({failed} refused \
         during faults), caught up {caught_up:?} after; {n} records, {relists} relists, {} objects, \
         0 differences",
        t0.elapsed(),
        state.len()
    );
    // A restart alone needs no relist (watches resume from their
    // resourceVersion); compaction + broken watches does.
    if matches!(fault, Fault::CompactEtcd) {
        assert!(
            relists > types,
            "the faults forced relists beyond the initial {types}"
        );
    }
    assert!(faults >= 2, "{faults} faults");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apiserver_restart_loop_leaves_no_gaps() {
    run(Fault::RestartApiserver, Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_compaction_every_few_seconds_leaves_no_gaps() {
    run(Fault::CompactEtcd, Duration::from_secs(3)).await;
}
