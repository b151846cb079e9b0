//! Fault-matrix cell "a downstream cluster scaled to zero: nodes deleted,
//! status fields gone, the cluster left Ready: recorded faithfully, restored
//! faithfully" — the Rancher incident, end to end.
//!
//! rewindd records a generated Rancher plane into a local store. A snapshot
//! is taken; then the first downstream cluster is scaled to zero (its
//! management Nodes deleted, `status.nodeCount`, `capacity` and
//! `allocatable` removed, the Ready condition kept) and other objects
//! change. The daemon stops with SIGTERM (everything sealed and stored).
//!
//! Recorded faithfully: the journal equals a fresh LIST, and it holds the
//! nodes' deletions and the cluster without the status fields.
//! Restored faithfully: `rewind restore` at `latest` into a fresh control
//! plane gives the scaled-down state (no nodes, no status fields, still
//! Ready), and at the earlier snapshot gives the nodes and fields back;
//! each compared object by object with the LIST taken at that point
//! (`rewind_tests::drill::report::restore_and_verify`).

mod daemon_support;

use std::time::{Duration, Instant};

use daemon_support::*;
use rewind_format::EventKind;
use rewind_history::select::preset::preset;
use rewind_history::state::DesiredState;
use rewind_tests::ControlPlane;
use rewind_tests::daemon::{
    Binaries, DaemonConfig, RunOptions, rewind_bin, rewindd_bin, wait_sealed,
};
use rewind_tests::drill::capture::capture;
use rewind_tests::drill::report::restore_and_verify;
use serde_json::Value;

/// The management Cluster `name` in `state`.
fn cluster<'a>(state: &'a DesiredState, name: &str) -> &'a Value {
    state
        .iter()
        .find(|(k, _)| {
            k.rtype.group == "management.cattle.io"
                && k.rtype.resource == "clusters"
                && k.name == name
        })
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("cluster {name} is missing"))
}

/// Its management Nodes (they live in the cluster's namespace).
fn nodes(state: &DesiredState, cluster: &str) -> usize {
    state
        .iter()
        .filter(|(k, _)| {
            k.rtype.group == "management.cattle.io"
                && k.rtype.resource == "nodes"
                && k.namespace.as_deref() == Some(cluster)
        })
        .count()
}

fn ready(c: &Value) -> bool {
    c["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_scaled_to_zero_is_recorded_and_restored_faithfully() {
    rewind_history::install_tls_provider();
    let bins = Binaries {
        rewindd: rewindd_bin().unwrap(),
        rewind: rewind_bin().unwrap(),
    };
    let cp = ControlPlane::start().await.unwrap();
    let admin = cp.admin_client();
    let objects = load_plane(&admin, 5).await;
    let set = preset("rancher").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cfg = DaemonConfig::new(&data, cp.readonly_kubeconfig_path());
    let store = cfg.open_store().await.unwrap();
    let mut daemon = cfg.start_settled(&RunOptions::default()).await.unwrap();

    let mut m = Mutator::new(admin.clone(), &objects);
    // Ready before anything happens: the generated clusters carry it.
    m.run(2).await;
    daemon
        .settle(Duration::from_secs(1), "before the snapshot")
        .await
        .unwrap();
    let mut want_before = capture(&admin, &set).await.unwrap();
    let snap =
        rewind_daemon::admin::client::snapshot(&cfg.admin_socket(), Some("pre-scale".into()), true)
            .await
            .unwrap();
    assert!(snap.stored, "the snapshot reached the store");

    let scaled = m.scale_cluster_to_zero(&objects).await;
    m.run(12).await;
    daemon
        .settle(Duration::from_secs(2), "after the scale-down")
        .await
        .unwrap();
    let mut want_after = capture(&admin, &set).await.unwrap();
    let last_seq = daemon.status().unwrap().journal.next_seq - 1;
    wait_sealed(&store, last_seq).await.unwrap();
    let exit = daemon.terminate().unwrap();
    assert!(exit.success(), "rewindd exited with {exit}");

    // The incident as the API shows it.
    let nodes_before = nodes(&want_before, &scaled);
    assert!(nodes_before > 0, "cluster {scaled} had nodes");
    assert_eq!(nodes(&want_after, &scaled), 0, "its nodes are deleted");
    let c_before = cluster(&want_before, &scaled);
    let c_after = cluster(&want_after, &scaled);
    for field in ["nodeCount", "capacity", "allocatable"] {
        assert!(
            !c_before["status"][field].is_null(),
            "status.{field} present before"
        );
        assert!(
            c_after["status"][field].is_null(),
            "status.{field} gone after"
        );
    }
    assert!(ready(c_before) && ready(c_after), "the cluster stays Ready");

    // Recorded faithfully.
    let Recorded { state, records, .. } =
        check_recorded(&cp.readonly_client(), "rancher", &data).await;
    let node_deletes = records
        .iter()
        .filter(|r| {
            r.seq > snap.seq
                && r.rtype.resource == "nodes"
                && r.namespace.as_deref() == Some(scaled.as_str())
                && r.kind == EventKind::Deleted
        })
        .count();
    assert_eq!(node_deletes, nodes_before, "every node's deletion recorded");
    drop(cp);

    // Restored faithfully, at both points, into fresh control planes.
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let mut took = Vec::new();
    for (label, point, want) in [
        ("latest", "latest".to_owned(), &mut want_after),
        (
            "pre-scale",
            format!("snapshot:{}", snap.id),
            &mut want_before,
        ),
    ] {
        let t = Instant::now();
        let report = restore_and_verify(&bins, &data, label, &point, want, &set, &work)
            .await
            .unwrap();
        assert!(
            report.differences.is_empty(),
            "restore at {point}: {} differences:\n{}",
            report.differences.len(),
            report.differences.join("\n")
        );
        took.push(format!(
            "{label}: {} objects in {:?}",
            report.objects,
            t.elapsed()
        ));
    }
    eprintln!(
        "cluster {scaled} scaled to zero: {nodes_before} nodes deleted and recorded, \
         status fields gone, Ready kept; {} objects recorded, 0 differences; restored {}",
        state.len(),
        took.join("; ")
    );
}
