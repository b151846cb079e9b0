//! A recorder whose journal is wiped while the plane keeps changing starts a
//! child lineage, and restore never splices the two histories.
//!
//! rewindd records ConfigMaps of one namespace (the `everything` preset)
//! into a store; it is stopped, its journal and local files are deleted
//! (the store stays), objects change, one is deleted, and it starts again.
//! Then: the store holds two lineages (a root and a child forked at the
//! root's last seq), no sequence number is used twice, the state at a time
//! before the wipe, at the fork point, at a time after the restart and at
//! `latest` equal what the test wrote (a model), and a time inside the
//! outage is refused naming both lineages (also by `rewind export`).
//! `rewind verify` passes and `rewind list` shows both lineages.
//!
//! Run on a local store and on Garage (S3, where conditional PUTs are not
//! honoured: the lineage record's create-only write falls back to a HEAD).
//!
//! Needs the local control plane (and `garage` for the second test).

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use rewind_history::Point;
use rewind_history::pit::{PitError, StoreSource};
use rewind_history::source::StateSource;
use rewind_tests::ControlPlane;
use rewind_tests::daemon::{DaemonConfig, RunOptions, rewind_bin, wait_sealed};
use rewind_tests::garage::Garage;

const NS: &str = "lineage-test";

type Model = BTreeMap<String, String>;

async fn put_cm(api: &Api<ConfigMap>, name: &str, value: &str, model: &mut Model) {
    let cm: ConfigMap = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": NS},
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
    model.insert(name.to_owned(), value.to_owned());
}

async fn delete_cm(api: &Api<ConfigMap>, name: &str, model: &mut Model) {
    api.delete(name, &DeleteParams::default()).await.unwrap();
    model.remove(name);
}

/// The test namespace's ConfigMaps in a restored state, name → `data.v`.
fn model_of(state: &rewind_history::state::DesiredState) -> Model {
    state
        .iter()
        .filter(|(k, _)| {
            k.rtype.resource == "configmaps"
                && k.rtype.group.is_empty()
                && k.namespace.as_deref() == Some(NS)
        })
        .map(|(k, v)| {
            (
                k.name.clone(),
                v["data"]["v"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

async fn state_at(src: &StoreSource, point: &Point) -> Model {
    match src.state_at(point).await {
        Ok(s) => model_of(&s),
        Err(e) => panic!("state at {point}: {e}"),
    }
}

/// `rewind_args` name the store for the `rewind` binary; `rewind_env` is
/// its extra environment (S3 credentials).
async fn scenario(cfg: DaemonConfig, rewind_args: Vec<String>, rewind_env: Vec<(String, String)>) {
    let cp = ControlPlane::start().await.unwrap();
    let admin = cp.admin_client();
    let ns: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": NS}})).unwrap();
    Api::<Namespace>::all(admin.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let api: Api<ConfigMap> = Api::namespaced(admin.clone(), NS);
    let mut cfg = cfg;
    cfg.kubeconfig = cp.readonly_kubeconfig_path().to_path_buf();
    cfg.presets = vec!["everything".into()];
    let data = cfg.data.clone();
    let store = cfg.open_store().await.unwrap();
    let mut model = Model::new();

    // Lineage 1: A, then B.
    let mut daemon = cfg.start_settled(&RunOptions::default()).await.unwrap();
    for i in 1..=5 {
        put_cm(&api, &format!("a{i}"), "1", &mut model).await;
    }
    daemon.settle(Duration::from_secs(1), "A").await.unwrap();
    let model_a = model.clone();
    let t_a = rewind_history::now_ms();
    tokio::time::sleep(Duration::from_millis(50)).await;
    put_cm(&api, "a1", "2", &mut model).await;
    put_cm(&api, "b1", "1", &mut model).await;
    delete_cm(&api, "a2", &mut model).await;
    daemon.settle(Duration::from_secs(1), "B").await.unwrap();
    let model_b = model.clone();
    let last = daemon.status().unwrap().journal.next_seq - 1;
    wait_sealed(&store, last).await.unwrap();
    let exit = daemon.terminate().unwrap();
    assert!(exit.success(), "rewindd exited with {exit}");

    // The data directory is lost (the store survives); the plane changes.
    for d in ["journal", "compact", "status.json"] {
        let p = data.join(d);
        if p.is_dir() {
            std::fs::remove_dir_all(&p).unwrap();
        } else if p.exists() {
            std::fs::remove_file(&p).unwrap();
        }
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    put_cm(&api, "a1", "3", &mut model).await;
    delete_cm(&api, "a3", &mut model).await;
    put_cm(&api, "c1", "1", &mut model).await;
    let t_outage = rewind_history::now_ms();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let model_r = model.clone();

    // Lineage 2: the child, from a fresh list.
    let mut daemon = cfg.start_settled(&RunOptions::default()).await.unwrap();
    let status = daemon.status().unwrap();
    let lin = status
        .lineage
        .clone()
        .expect("the status names the lineage");
    assert_eq!(lin.decision, "fresh", "{lin:?}");
    let lineages = store.list_lineages().await.unwrap();
    assert_eq!(lineages.len(), 2, "{lineages:?}");
    let root = lineages
        .iter()
        .find(|l| l.parent.is_none())
        .expect("a root lineage");
    let child = lineages
        .iter()
        .find(|l| l.parent.is_some())
        .expect("a child lineage");
    assert_eq!(child.id, lin.id);
    let fork = child.parent.clone().unwrap();
    assert_eq!(fork.lineage, root.id);
    assert_eq!(
        fork.fork_seq, last,
        "the child forks at the root's last seq"
    );
    assert_eq!(child.first_seq, last + 1);
    assert!(
        status.journal.next_seq > last + 1,
        "the new journal continues after the fork"
    );
    // The child's first stored file is a snapshot.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let child_snap = loop {
        let snaps = store.list_snapshots().await.unwrap();
        if let Some(s) = snaps
            .iter()
            .find(|s| s.lineage.as_deref() == Some(&child.id))
        {
            break s.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no snapshot of the child lineage"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    daemon
        .settle(Duration::from_secs(1), "restart")
        .await
        .unwrap();
    let last = daemon.status().unwrap().journal.next_seq - 1;
    wait_sealed(&store, last).await.unwrap();
    let t_r = rewind_history::now_ms();
    tokio::time::sleep(Duration::from_millis(50)).await;
    put_cm(&api, "b1", "2", &mut model).await;
    daemon.settle(Duration::from_secs(1), "C").await.unwrap();
    let model_c = model.clone();
    let last = daemon.status().unwrap().journal.next_seq - 1;
    wait_sealed(&store, last).await.unwrap();
    let exit = daemon.terminate().unwrap();
    assert!(exit.success(), "rewindd exited with {exit}");

    // No sequence number is used twice.
    let segs = store.list_segments().await.unwrap();
    for w in segs.windows(2) {
        assert!(
            w[1].first_seq > w[0].last_seq,
            "{} and {} share seqs",
            w[0].id,
            w[1].id
        );
    }
    for s in &segs {
        let l = lineages
            .iter()
            .find(|l| Some(&l.id) == s.lineage.as_ref())
            .expect("every segment names a known lineage");
        assert!(s.first_seq >= l.first_seq);
        if l.id == root.id {
            assert!(s.last_seq <= fork.fork_seq);
        }
    }
    let first_child_seg = segs
        .iter()
        .find(|s| s.lineage.as_deref() == Some(&child.id))
        .unwrap();
    assert_eq!(first_child_seg.first_seq, child.first_seq);
    assert_eq!(first_child_seg.prev_sha256, None);
    assert!(child_snap.seq >= child.first_seq);

    // Restores: before the wipe, at the fork, after the restart, latest.
    let src = StoreSource::new(store.clone(), Vec::new());
    assert_eq!(
        state_at(&src, &Point::Time(t_a)).await,
        model_a,
        "before the wipe"
    );
    assert_eq!(
        state_at(&src, &Point::Seq(fork.fork_seq)).await,
        model_b,
        "at the fork"
    );
    assert_eq!(
        state_at(&src, &Point::Time(t_r)).await,
        model_r,
        "after the restart"
    );
    assert_eq!(state_at(&src, &Point::Latest).await, model_c, "latest");
    // The parent, named, reads the same at its end.
    let parent_src =
        StoreSource::new(store.clone(), Vec::new()).with_lineage(Some(root.id.clone()));
    assert_eq!(
        state_at(&parent_src, &Point::Latest).await,
        model_b,
        "the parent's latest"
    );

    // A time inside the outage is refused, naming both lineages.
    let err = src.load(&Point::Time(t_outage)).await.unwrap_err();
    assert!(
        matches!(&err, PitError::Fork { parent, child: c, fork_seq, .. }
            if *parent == root.id && *c == child.id && *fork_seq == fork.fork_seq),
        "{err}"
    );
    let rewind = rewind_bin().unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(&rewind)
        .args(&rewind_args)
        .envs(rewind_env.iter().cloned())
        .args(["export", "--at", &format!("ms:{t_outage}"), "--out"])
        .arg(out_dir.path().join("x"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "export in the outage must fail: {stderr}"
    );
    assert!(
        stderr.contains(&root.id) && stderr.contains(&child.id) && stderr.contains("forked"),
        "{stderr}"
    );
    // verify passes; list shows both lineages.
    let out = std::process::Command::new(&rewind)
        .args(&rewind_args)
        .envs(rewind_env.iter().cloned())
        .arg("verify")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let out = std::process::Command::new(&rewind)
        .args(&rewind_args)
        .envs(rewind_env.iter().cloned())
        .arg("list")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&root.id) && text.contains(&child.id),
        "{text}"
    );
    assert!(text.contains(&format!("{} *", child.id)), "{text}");
    eprintln!(
        "root {} (seqs ..={}), child {} from seq {} (snapshot at {}): {} segments, restores equal the model",
        root.id,
        fork.fork_seq,
        child.id,
        child.first_seq,
        child_snap.seq,
        segs.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lineage_wiped_journal_makes_a_child() {
    rewind_history::install_tls_provider();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cfg = DaemonConfig::new(&data, std::path::Path::new("/unset"));
    let args = vec![
        "--store".to_owned(),
        data.join("store").display().to_string(),
    ];
    scenario(cfg, args, Vec::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lineage_wiped_journal_makes_a_child_on_garage() {
    rewind_history::install_tls_provider();
    let g = tokio::task::spawn_blocking(Garage::start)
        .await
        .unwrap()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cfg = DaemonConfig::new(&data, std::path::Path::new("/unset")).s3(&g, "lineage");
    let (id, secret) = g.key();
    let env = vec![
        ("AWS_ACCESS_KEY_ID".to_owned(), id.to_owned()),
        ("AWS_SECRET_ACCESS_KEY".to_owned(), secret.to_owned()),
        ("AWS_REGION".to_owned(), "garage".to_owned()),
    ];
    let args = vec![
        "--store".to_owned(),
        format!("s3://{}/lineage", g.bucket()),
        "--s3-endpoint".to_owned(),
        g.endpoint(),
    ];
    scenario(cfg, args, env).await;
}
