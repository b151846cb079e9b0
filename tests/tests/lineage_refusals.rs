//! What restore and rewindd refuse, each by name, on a store a real rewindd
//! recorded: an injected gap (a segment's catalog entry deleted), a
//! duplicate (a second entry claiming a segment's seqs), a segment of a
//! lineage with no record, a lineage of another cluster; and rewindd
//! itself refuses to start on a store of another cluster, naming both
//! cluster ids and the fix, and starts a child lineage once told to adopt
//! the store.
//!
//! Needs the local control plane.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, Patch, PatchParams};
use rewind_history::Point;
use rewind_history::pit::StoreSource;
use rewind_history::pit::verify::verify_store;
use rewind_history::store::lineage::{self, LINEAGE_VERSION};
use rewind_history::store::{CreatedBy, LineageRecord, Store, StoreConfig};
use rewind_tests::ControlPlane;
use rewind_tests::daemon::{DaemonConfig, Rewindd, RunOptions, wait_sealed};

async fn put_cm(api: &Api<ConfigMap>, name: &str, value: &str) {
    let cm: ConfigMap = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default"},
        "data": {"v": value},
    }))
    .unwrap();
    api.patch(
        name,
        &PatchParams::apply("lineage-test").force(),
        &Patch::Apply(&cm),
    )
    .await
    .unwrap();
}

/// A copy of the store at `from`, opened.
async fn copy_store(from: &Path, to: &Path) -> Store {
    let ok = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    Store::open(&StoreConfig::Local {
        path: to.to_path_buf(),
    })
    .await
    .unwrap()
}

async fn latest_error(store: &Store) -> String {
    let src = StoreSource::new(store.clone(), Vec::new());
    match src.load(&Point::Latest).await {
        Ok(p) => panic!(
            "latest read {} objects from a broken store",
            p.state.objects.len()
        ),
        Err(e) => e.to_string(),
    }
}

fn foreign_record(cluster: &str) -> LineageRecord {
    LineageRecord {
        version: LINEAGE_VERSION,
        id: lineage::new_id().unwrap(),
        parent: None,
        cluster_uid: cluster.into(),
        created_by: CreatedBy::default(),
        created_at_ms: 1,
        first_seq: 1,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lineage_refusals_name_the_offending_files() {
    rewind_history::install_tls_provider();
    let cp = ControlPlane::start().await.unwrap();
    let admin = cp.admin_client();
    let api: Api<ConfigMap> = Api::namespaced(admin.clone(), "default");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut cfg = DaemonConfig::new(&data, cp.readonly_kubeconfig_path());
    cfg.presets = vec!["everything".into()];
    let store = cfg.open_store().await.unwrap();
    let mut daemon = cfg.start_settled(&RunOptions::default()).await.unwrap();
    for round in 0..3 {
        put_cm(&api, &format!("r{round}"), "1").await;
        daemon
            .settle(Duration::from_secs(1), "round")
            .await
            .unwrap();
        let last = daemon.status().unwrap().journal.next_seq - 1;
        wait_sealed(&store, last).await.unwrap();
    }
    assert!(daemon.terminate().unwrap().success());
    let ours = daemon_cluster_uid(&admin).await;
    let lineages = store.list_lineages().await.unwrap();
    assert_eq!(lineages.len(), 1);
    let own = lineages[0].clone();
    assert_eq!(own.cluster_uid, ours);
    let segs = store.list_segments().await.unwrap();
    assert!(segs.len() >= 3, "{} segments", segs.len());
    assert!(
        segs.iter()
            .all(|s| s.lineage.as_deref() == Some(own.id.as_str()))
    );
    for w in segs.windows(2) {
        assert_eq!(
            w[1].prev_sha256.as_deref(),
            Some(w[0].sha256.as_str()),
            "the digest chain"
        );
    }
    let clean = verify_store(&store, &[]).await.unwrap();
    assert!(!clean.is_damaged(), "{}", clean.to_text());
    // The cluster's place in the store: the files the daemon recorded.
    let root = rewind_tests::daemon::recorded_local_store(&data);
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();

    // An injected gap: a middle segment's entry deleted.
    let gap = copy_store(&root, &work.join("gap")).await;
    let middle = &segs[segs.len() / 2];
    gap.delete_object(&middle.catalog_key()).await.unwrap();
    let err = latest_error(&gap).await;
    assert!(
        err.contains(&format!(
            "events {}..={}",
            middle.first_seq, middle.last_seq
        )),
        "{err}"
    );
    let report = verify_store(&gap, &[]).await.unwrap();
    let text = report.to_text();
    assert!(report.is_damaged());
    assert!(
        text.contains(&format!(
            "GAP events {}..={}",
            middle.first_seq, middle.last_seq
        )) && text.contains(&own.id),
        "{text}"
    );

    // A duplicate: another entry (and file) claiming a segment's seqs.
    let dup = copy_store(&root, &work.join("dup")).await;
    let victim = segs.last().unwrap();
    let mut bytes = dup.get_segment(victim).await.unwrap().to_vec();
    bytes.extend_from_slice(b"x");
    let mut other = victim.clone();
    other.sha256 = rewind_history::store::layout::sha256_hex(&bytes);
    other.size += 1;
    other.id =
        rewind_history::store::layout::segment_id(other.first_seq, other.last_seq, &other.sha256);
    dup.put_object(&other.data_key(), Bytes::from(bytes))
        .await
        .unwrap();
    dup.put_object(
        &other.catalog_key(),
        Bytes::from(serde_json::to_vec(&other).unwrap()),
    )
    .await
    .unwrap();
    let err = latest_error(&dup).await;
    assert!(err.contains("duplicate"), "{err}");
    assert!(
        err.contains(&victim.catalog_key()) && err.contains(&other.catalog_key()),
        "{err}"
    );
    let text = verify_store(&dup, &[]).await.unwrap().to_text();
    assert!(
        text.contains("duplicate") && text.contains(&other.catalog_key()),
        "{text}"
    );

    // A segment of a lineage with no record (copied from another store).
    let stray = copy_store(&root, &work.join("stray")).await;
    let mut foreign_seg = victim.clone();
    let unknown = lineage::new_id().unwrap();
    foreign_seg.lineage = Some(unknown.clone());
    foreign_seg.first_seq = victim.last_seq + 1;
    foreign_seg.last_seq = victim.last_seq + 1;
    foreign_seg.id = rewind_history::store::layout::segment_id(
        foreign_seg.first_seq,
        foreign_seg.last_seq,
        &foreign_seg.sha256,
    );
    stray
        .put_object(
            &foreign_seg.catalog_key(),
            Bytes::from(serde_json::to_vec(&foreign_seg).unwrap()),
        )
        .await
        .unwrap();
    let err = latest_error(&stray).await;
    assert!(
        err.contains("no record in lineages/") && err.contains(&foreign_seg.catalog_key()),
        "{err}"
    );

    // A lineage of another cluster in the store.
    let foreign = copy_store(&root, &work.join("foreign")).await;
    let rec = foreign_record("another-cluster-uid");
    foreign.put_lineage(&rec).await.unwrap();
    let err = latest_error(&foreign).await;
    assert!(
        err.contains("more than one cluster") && err.contains("another-cluster-uid"),
        "{err}"
    );
    let text = verify_store(&foreign, &[]).await.unwrap().to_text();
    assert!(text.contains(&rec.id), "{text}");

    // rewindd refuses a store of another cluster, naming both and the fix.
    let real = cfg.open_store().await.unwrap();
    real.put_lineage(&rec).await.unwrap();
    let mut refused = cfg.start(&RunOptions::default()).unwrap();
    let log = wait_exit(&mut refused).await;
    assert!(
        log.contains("another-cluster-uid") && log.contains(&ours) && log.contains("adopt_store"),
        "{log}"
    );
    // Told to adopt it, it records into a child of the newest lineage.
    let adopt_cfg: PathBuf = dir.path().join("adopt.toml");
    std::fs::write(
        &adopt_cfg,
        cfg.text()
            .replace("[cluster]\n", "[cluster]\nadopt_store = true\n"),
    )
    .unwrap();
    let mut adopted = Rewindd::spawn(&adopt_cfg, &data, &RunOptions::default()).unwrap();
    let status = adopted
        .settle(Duration::from_secs(1), "adopted")
        .await
        .unwrap();
    let lin = status.lineage.expect("a lineage in the status");
    assert_eq!(lin.decision, "fresh");
    assert_eq!(lin.parent.as_deref(), Some(own.id.as_str()));
    assert!(adopted.terminate().unwrap().success());
}

async fn daemon_cluster_uid(admin: &kube::Client) -> String {
    Api::<Namespace>::all(admin.clone())
        .get("kube-system")
        .await
        .unwrap()
        .metadata
        .uid
        .unwrap()
}

/// Waits for a daemon that must refuse to start; returns its log.
async fn wait_exit(d: &mut Rewindd) -> String {
    for _ in 0..600 {
        if d.check_running().is_err() {
            return std::fs::read_to_string(&d.log).unwrap_or_default();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "rewindd kept running on another cluster's store: {}",
        d.log_tail(20)
    );
}
