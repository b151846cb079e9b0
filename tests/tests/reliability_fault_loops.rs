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

mod daemon_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use daemon_support::*;
use rewind_format::EventKind;
use rewind_tests::ControlPlane;
use rewind_tests::daemon::{DaemonConfig, RunOptions};

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

async fn run(fault: Fault, every: Duration) {
    let cp = ControlPlane::start().await.unwrap();
    let admin = cp.admin_client();
    let objects = load_plane(&admin, 5).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Through a proxy, so compaction can be paired with broken watches.
    let proxied = cp.proxy().await.unwrap();
    let cfg = DaemonConfig::new(&data, &proxied.readonly.kubeconfig);
    let opts = RunOptions {
        discovery_interval_s: Some(2),
        ..RunOptions::default()
    };
    let mut daemon = cfg.start(&opts).unwrap();
    daemon
        .settle(Duration::from_secs(3), "initial list")
        .await
        .unwrap();
    let types = daemon.status().unwrap().types.len();

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
        daemon
            .check_running()
            .unwrap_or_else(|e| panic!("during {fault:?}: {e}"));
    }
    stop.store(true, Ordering::Relaxed);
    let (steps, failed) = churn.await.unwrap();
    let t = Instant::now();
    daemon
        .settle(Duration::from_secs(3), "after the faults")
        .await
        .unwrap();
    let caught_up = t.elapsed();
    let exit = daemon.terminate().unwrap();
    assert!(exit.success(), "rewindd exited with {exit}");

    let Recorded { state, records, .. } =
        check_recorded(&cp.readonly_client(), "rancher", &data).await;
    let n = records.len();
    let relists = records
        .iter()
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
