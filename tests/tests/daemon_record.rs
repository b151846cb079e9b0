//! rewindd records a Rancher-like management plane exactly: after a stream
//! of creates, updates and deletes (including a downstream cluster scaled to
//! zero), the journal's current state equals a fresh LIST of every recorded
//! type, and its log replays to that state with nothing recorded twice.
//!
//! Runs the daemon in process, with the least-privilege identity (get, list,
//! watch). Needs the local control plane (built on first use).

mod daemon_support;

use std::time::Duration;

use daemon_support::*;
use rewind_daemon::config::{Config, FileConfig, Settings};
use rewind_daemon::{Hooks, Recorder};
use rewind_tests::ControlPlane;

/// Downstream clusters in the plane. The scenario is 200; override
/// with REWIND_TEST_CLUSTERS for a quicker run.
fn clusters() -> usize {
    std::env::var("REWIND_TEST_CLUSTERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_a_rancher_plane_with_zero_differences() {
    let cp = ControlPlane::start().await.unwrap();
    let admin = cp.admin_client();
    let objects = load_plane(&admin, clusters()).await;

    let data = tempfile::tempdir().unwrap();
    let settings = Settings {
        kubeconfig: Some(cp.readonly_kubeconfig_path().to_path_buf()),
        data_dir: Some(data.path().to_path_buf()),
        presets: Some(vec!["rancher".into()]),
        discovery_interval_s: Some(2),
        status_interval_ms: Some(200),
        ..Settings::default()
    };
    let config = Config::from_settings(&settings, &FileConfig::default()).unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let started = std::time::Instant::now();
    let recorder = Recorder::open(config).unwrap();
    let board = recorder.board();
    let daemon = tokio::spawn(recorder.run(
        async {
            let _ = stop_rx.await;
        },
        Hooks::default(),
    ));
    wait_settled(
        || Some(board.snapshot()),
        Duration::from_secs(2),
        "initial list",
    )
    .await;
    let initial = board.snapshot();
    eprintln!(
        "initial sync of {} types: {} events in {:?}",
        initial.types.len(),
        initial.journal.events,
        started.elapsed()
    );

    let mut m = Mutator::new(admin.clone(), &objects);
    assert_eq!(m.run(120).await, 0);
    let scaled = m.scale_cluster_to_zero(&objects).await;
    assert_eq!(m.run(120).await, 0);
    wait_settled(
        || Some(board.snapshot()),
        Duration::from_secs(2),
        "after the stream",
    )
    .await;

    stop_tx.send(()).unwrap();
    daemon.await.unwrap().unwrap();

    let (j, state, _) = check_state(&cp.readonly_client(), "rancher", data.path()).await;
    assert!(
        state.len() > objects.len() / 2,
        "the plane was recorded: {} objects",
        state.len()
    );
    let records = check_log(&j);
    eprintln!(
        "{} objects in state, {} records in the log",
        state.len(),
        records
    );

    // The incident, recorded: no nodes left for the scaled cluster, and its
    // vanished status fields are gone from the recorded object too.
    assert!(
        !state
            .keys()
            .any(|k| k.0 == "nodes.management.cattle.io" && k.1 == scaled)
    );
    let c = &state[&(
        "clusters.management.cattle.io".to_owned(),
        String::new(),
        scaled.clone(),
    )];
    for f in ["nodeCount", "capacity", "allocatable"] {
        assert!(c.json["status"].get(f).is_none(), "{f} still recorded");
    }
    let deleted_nodes = j
        .records_from(1)
        .map(Result::unwrap)
        .filter(|r| {
            r.rtype.resource == "nodes"
                && r.namespace.as_deref() == Some(scaled.as_str())
                && r.kind == rewind_format::EventKind::Deleted
        })
        .count();
    assert!(
        deleted_nodes >= 3,
        "node deletions recorded: {deleted_nodes}"
    );
}
