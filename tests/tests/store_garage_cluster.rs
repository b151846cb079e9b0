//! The store on a distributed engine: a three-node Garage cluster on
//! loopback (replication factor 3, each node in its own zone, the way
//! operators deploy it). The cluster itself serves one bucket through every
//! node and keeps serving it with one node down; and rewindd, shipping
//! through one node while a writer changes the plane, loses nothing when
//! another node is stopped for a minute (`REWIND_GARAGE_NODE_DOWN_SECS`,
//! default 60) and started again: shipping keeps succeeding, reads work
//! through the surviving nodes during the outage, and afterwards the store
//! holds every event from seq 1 without a gap and its newest state equals
//! what the API holds.
//!
//! `a_three_node_garage_cluster_loses_one_node_and_nothing_is_lost` takes
//! about three to four minutes on two cores (the minute of outage, a
//! control plane, three Garage nodes and the daemon's catch-up).
//!
//! Needs the `garage` binary (`REWIND_GARAGE`, `~/.cargo/bin`, or `PATH`).

mod daemon_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use daemon_support::*;
use rewind_format::{EventRecord, Limits, SegmentReader};
use rewind_history::Point;
use rewind_history::deep;
use rewind_history::pit::StoreSource;
use rewind_history::store::{S3Config, SegmentMeta, Store, StoreConfig};
use rewind_tests::ControlPlane;
use rewind_tests::daemon::{DaemonConfig, RunOptions, StoreSpec, free_port, rewind_bin};
use rewind_tests::garage::GarageCluster;
use serde_json::Value;

/// The node rewindd ships through and the reads go through: kept up.
const KEPT: usize = 0;
/// The other surviving node, read through during the outage.
const OTHER: usize = 1;
/// The node stopped and started again.
const STOPPED: usize = 2;

fn down_secs() -> u64 {
    env_u64("REWIND_GARAGE_NODE_DOWN_SECS", 60)
}

/// The store through node `node`'s S3 endpoint.
fn store_config(c: &GarageCluster, node: usize, prefix: &str) -> StoreConfig {
    StoreConfig::S3(S3Config {
        endpoint: Some(c.endpoint(node).unwrap()),
        bucket: c.bucket().to_owned(),
        prefix: prefix.to_owned(),
        region: "garage".into(),
        credentials_file: Some(c.credentials_file()),
        ca_file: None,
        allow_http: true,
        path_style: true,
    })
}

async fn start_cluster() -> GarageCluster {
    tokio::task::spawn_blocking(|| GarageCluster::start(3))
        .await
        .unwrap()
        .unwrap()
}

fn seg_meta(i: u64) -> SegmentMeta {
    SegmentMeta {
        first_seq: i * 10 + 1,
        last_seq: i * 10 + 10,
        first_time_ms: 1_000 + i64::try_from(i).unwrap(),
        last_time_ms: 2_000 + i64::try_from(i).unwrap(),
        events: 10,
        encrypted: false,
        resource_set: None,
    }
}

fn seg_bytes(i: u64) -> Vec<u8> {
    format!("segment {i} ").repeat(1000).into_bytes()
}

/// The harness's cluster: one bucket, written through one node and read
/// through every other; with one node stopped, writes and reads still reach
/// a quorum; the stopped node, started again, serves everything, including
/// what was written while it was down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_node_cluster_serves_one_bucket_through_every_node() {
    rewind_history::install_tls_provider();
    let mut cluster = start_cluster().await;
    assert_eq!(cluster.len(), 3);
    let stores: Vec<Store> = {
        let mut v = Vec::new();
        for i in 0..3 {
            v.push(
                Store::open(&store_config(&cluster, i, "harness"))
                    .await
                    .unwrap(),
            );
        }
        v
    };
    let first = stores[KEPT]
        .put_segment(seg_meta(0), seg_bytes(0).into())
        .await
        .unwrap();
    for s in &stores {
        assert_eq!(s.list_segments().await.unwrap(), vec![first.clone()]);
        assert_eq!(s.get_segment(&first).await.unwrap(), seg_bytes(0));
    }

    cluster.stop_node(STOPPED).unwrap();
    assert!(!cluster.is_running(STOPPED));
    let second = stores[KEPT]
        .put_segment(seg_meta(1), seg_bytes(1).into())
        .await
        .unwrap();
    for s in [&stores[KEPT], &stores[OTHER]] {
        assert_eq!(
            s.list_segments().await.unwrap(),
            vec![first.clone(), second.clone()]
        );
        assert_eq!(s.get_segment(&second).await.unwrap(), seg_bytes(1));
    }
    assert!(
        stores[STOPPED].list_segments().await.is_err(),
        "a stopped node's endpoint answers"
    );

    tokio::task::block_in_place(|| cluster.start_node(STOPPED)).unwrap();
    assert!(cluster.is_running(STOPPED));
    let back = &stores[STOPPED];
    assert_eq!(
        back.list_segments().await.unwrap(),
        vec![first.clone(), second.clone()]
    );
    assert_eq!(back.get_segment(&second).await.unwrap(), seg_bytes(1));
    assert!(matches!(
        cluster.endpoint(3),
        Err(rewind_tests::garage::GarageError::NoSuchNode { index: 3, nodes: 3 })
    ));
}

/// Stored segments: contiguous from seq 1, and, given the journal's
/// records, equal to them. Returns the last stored seq.
async fn stored_through(store: &Store, records: Option<&[EventRecord]>) -> u64 {
    let mut next = 1;
    for s in store.list_segments().await.unwrap() {
        assert_eq!(
            s.first_seq,
            next,
            "stored segments are contiguous: {} follows seq {}",
            s.id,
            next - 1
        );
        if let Some(records) = records {
            let bytes = store.get_segment(&s).await.unwrap();
            for e in SegmentReader::open(&bytes, None, Limits::default())
                .unwrap()
                .read_all()
                .unwrap()
            {
                let j = records
                    .get(usize::try_from(e.seq).unwrap() - 1)
                    .unwrap_or_else(|| panic!("stored seq {} is not in the journal", e.seq));
                assert_eq!(&e, j, "stored event {} differs from the journal", e.seq);
            }
        }
        next = s.last_seq + 1;
    }
    next - 1
}

/// The value of an unlabelled series in Prometheus text.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// `rewind --store s3://<bucket>/<prefix> --s3-endpoint <node> ARGS` with
/// the cluster's key in the environment; returns stdout and stderr, failing
/// the test on a non-zero exit.
async fn rewind(c: &GarageCluster, node: usize, prefix: &str, args: &[&str]) -> (String, String) {
    let (key, secret) = c.key();
    let out = tokio::process::Command::new(rewind_bin().unwrap())
        .arg("--store")
        .arg(format!("s3://{}/{prefix}", c.bucket()))
        .arg("--s3-endpoint")
        .arg(c.endpoint(node).unwrap())
        .args(args)
        .env("AWS_ACCESS_KEY_ID", key)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("AWS_REGION", "garage")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(
        out.status.success(),
        "rewind {args:?} through node {node} failed:\n{stdout}{stderr}"
    );
    (stdout, stderr)
}

/// `rewind list -o json` through `node`: the window's newest seq, asserting
/// the window starts at seq 1 and has no gap.
async fn list_newest(c: &GarageCluster, node: usize, prefix: &str) -> u64 {
    let (out, _) = rewind(c, node, prefix, &["list", "-o", "json"]).await;
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["window"]["from_seq"], 1,
        "window through node {node}: {v}"
    );
    assert_eq!(
        v["gaps"],
        Value::Array(Vec::new()),
        "gaps through node {node}"
    );
    v["window"]["to_seq"].as_u64().unwrap()
}

/// Files under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The store's state at its newest point, keyed like [`live_selected`].
async fn newest_state(store: &Store) -> (u64, BTreeMap<Key, Seen>) {
    let pit = StoreSource::new(store.clone(), Vec::new())
        .load(&Point::Latest)
        .await
        .unwrap();
    let state = pit
        .state
        .objects
        .iter()
        .map(|(k, o)| {
            (
                (
                    k.group_resource(),
                    k.namespace.clone().unwrap_or_default(),
                    k.name.clone(),
                ),
                Seen {
                    uid: o.uid.clone(),
                    rv: o.resource_version.clone(),
                    json: deep::parse(&o.object).unwrap(),
                },
            )
        })
        .collect();
    (pit.state.seq, state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_node_garage_cluster_loses_one_node_and_nothing_is_lost() {
    rewind_history::install_tls_provider();
    let _ = (rewindd_bin(), rewind_bin().unwrap());
    let mut cluster = start_cluster().await;
    let cp = ControlPlane::start().await.unwrap();
    let admin = cp.admin_client();
    let objects = load_plane(&admin, 5).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let prefix = "three-nodes";
    let mut cfg = DaemonConfig::new(&data, cp.readonly_kubeconfig_path())
        .snapshot_after_events(500)
        .metrics_addr(&format!("127.0.0.1:{}", free_port().unwrap()));
    cfg.store = StoreSpec::S3 {
        endpoint: cluster.endpoint(KEPT).unwrap(),
        bucket: cluster.bucket().to_owned(),
        prefix: prefix.to_owned(),
        credentials_file: cluster.credentials_file(),
    };
    let store = cfg.open_store().await.unwrap();
    let mut daemon = cfg.start_settled(&RunOptions::default()).await.unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let churn = {
        let stop = stop.clone();
        let mut m = Mutator::new(admin.clone(), &objects);
        tokio::spawn(async move {
            let mut steps = 0;
            while !stop.load(Ordering::Relaxed) {
                m.run(6).await;
                steps += 6;
            }
            steps
        })
    };
    let t0 = Instant::now();
    while stored_through(&store, None).await == 0 {
        assert!(t0.elapsed() < Duration::from_secs(60), "nothing stored");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // One node down for a minute while the plane changes.
    tokio::task::block_in_place(|| cluster.stop_node(STOPPED)).unwrap();
    let stored_at_stop = stored_through(&store, None).await;
    let acked_at_stop = daemon.status().unwrap().journal.next_seq;
    let errors_at_stop = metric(
        &daemon.metrics().await.unwrap(),
        "rewind_store_errors_total",
    );
    let t0 = Instant::now();
    let (mut samples, mut store_down_samples, mut unhealthy) = (0, 0, 0);
    let mut reads_checked = false;
    let mut listed = Vec::new();
    while t0.elapsed() < Duration::from_secs(down_secs()) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        daemon.check_running().unwrap();
        samples += 1;
        if !daemon.status().is_some_and(|s| s.journal.healthy) {
            unhealthy += 1;
        }
        let m = daemon.metrics().await.unwrap();
        if metric(&m, "rewind_store_up") != Some(1.0) {
            store_down_samples += 1;
        }
        // Reads through both surviving nodes while the third is down: the
        // window, and an export of the newest point.
        if !reads_checked && t0.elapsed() > Duration::from_secs(down_secs() / 3) {
            for node in [KEPT, OTHER] {
                listed.push(list_newest(&cluster, node, prefix).await);
            }
            let out = dir.path().join("export-during-outage");
            let (_, said) = rewind(
                &cluster,
                OTHER,
                prefix,
                &["export", "--at", "latest", "--out", out.to_str().unwrap()],
            )
            .await;
            let files = files_under(&out).len();
            assert!(
                files > 0,
                "the export during the outage wrote nothing: {said}"
            );
            assert!(said.contains(&format!("wrote {files} files")), "{said}");
            reads_checked = true;
        }
    }
    let stored_at_start_again = stored_through(&store, None).await;
    let acked_at_start_again = daemon.status().unwrap().journal.next_seq;
    let errors_after = metric(
        &daemon.metrics().await.unwrap(),
        "rewind_store_errors_total",
    );
    assert!(reads_checked, "the outage was too short to read during it");
    assert_eq!(
        unhealthy, 0,
        "the journal was unhealthy in {unhealthy} of {samples} samples"
    );
    assert_eq!(
        store_down_samples, 0,
        "rewind_store_up was not 1 in {store_down_samples} of {samples} samples with one node down"
    );
    assert_eq!(
        errors_after, errors_at_stop,
        "store operations failed after retries with one node down"
    );
    assert!(
        acked_at_start_again > acked_at_stop + 50,
        "events kept being recorded ({acked_at_stop} -> {acked_at_start_again})"
    );
    assert!(
        stored_at_start_again > stored_at_stop + 50,
        "shipping kept succeeding with one node down (stored through {stored_at_stop} -> \
         {stored_at_start_again})"
    );
    assert!(
        listed.iter().all(|&s| s >= stored_at_stop),
        "reads during the outage saw the store as of before it: {listed:?} < {stored_at_stop}"
    );

    tokio::task::block_in_place(|| cluster.start_node(STOPPED)).unwrap();
    // The plane keeps changing while the node rejoins.
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, Ordering::Relaxed);
    let steps = churn.await.unwrap();
    daemon
        .settle(Duration::from_secs(3), "after the node came back")
        .await
        .unwrap();
    let end = daemon.status().unwrap().journal.next_seq - 1;
    let t0 = Instant::now();
    while stored_through(&store, None).await < end {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "the store did not catch up: stored through {} of {end}",
            stored_through(&store, None).await
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let exit = daemon.terminate().unwrap();
    assert!(exit.success(), "rewindd exited with {exit}");

    // Every event, from seq 1, without a gap, equal to the journal; the
    // journal equal to a fresh LIST.
    let Recorded { records, live, .. } =
        check_recorded(&cp.readonly_client(), "rancher", &data).await;
    let n = records.len() as u64;
    assert_eq!(stored_through(&store, Some(&records)).await, n);
    let report = rewind_history::pit::verify::verify_store(&store, &[])
        .await
        .unwrap();
    assert!(
        !report.is_damaged() && report.gaps.is_empty(),
        "the store does not verify:\n{}",
        report.to_text()
    );

    // The newest point, read through the node that was down, equals what
    // the API holds; its window and an export of it agree.
    let back = cfg
        .place()
        .await
        .unwrap()
        .open(
            &Store::open(&store_config(&cluster, STOPPED, prefix))
                .await
                .unwrap(),
        )
        .unwrap();
    assert_eq!(
        back.list_segments().await.unwrap(),
        store.list_segments().await.unwrap(),
        "the restarted node serves the same catalog"
    );
    let (seq, state) = newest_state(&back).await;
    assert_eq!(seq, n, "the newest point is the last recorded event");
    let diffs = differences(&state, &live);
    assert!(
        diffs.is_empty(),
        "the newest point differs from the API in {} objects:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
    assert_eq!(list_newest(&cluster, STOPPED, prefix).await, n);
    let out = dir.path().join("export-after");
    rewind(
        &cluster,
        STOPPED,
        prefix,
        &["export", "--at", "latest", "--out", out.to_str().unwrap()],
    )
    .await;
    assert_eq!(
        files_under(&out).len(),
        live.len(),
        "the export has one file per live object"
    );
    eprintln!(
        "node {STOPPED} down {}s: stored through {stored_at_stop} -> {stored_at_start_again} \
         while down (acknowledged {acked_at_stop} -> {acked_at_start_again}), store up in all \
         {samples} samples, reads through nodes {KEPT} and {OTHER} saw {listed:?}; {steps} change \
         steps, {n} events stored from seq 1 without a gap, newest point equals the API \
         ({} objects)",
        down_secs(),
        live.len()
    );
}
