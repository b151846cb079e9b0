//! Two recorders on one store with a leader Lease: only the holder ships,
//! the standby takes over when the leader dies or stalls, and restore
//! never splices the two histories.
//!
//! rewindd A and B record the ConfigMaps of one namespace into one local
//! store (in a second test, one Garage bucket and prefix), both with `[leader] lease = "rewind-system/rewindd"` (6 s
//! duration, 4 s renew deadline: room for renewals answered slowly on a loaded machine) and the control plane's admin identity
//! (it writes the Lease). A writer changes a ConfigMap every 2 s and
//! keeps a model from its own acknowledged writes. Then:
//!
//! 1. A leads; B is a standby and ships nothing (every lineage in the
//!    store is A's).
//! 2. A is stopped with SIGSTOP past its Lease: B takes over with a child
//!    lineage forked at A's last stored seq. A is resumed (SIGCONT): it
//!    exits deposed, naming B, and stores nothing after the fork.
//! 3. A starts again (a standby), B is killed with SIGKILL: A takes over
//!    with a child of B's lineage.
//! 4. A third recorder without a Lease on the same store is refused at
//!    start, naming the lineage A ships and its host (and, in its own
//!    test, a recorder stops shipping once another forked its lineage).
//! 5. Every quarter second of the run is restored from the store and
//!    compared with the model: every point is answered exactly, across
//!    both takeovers (the new leader ships the events its journal kept as
//!    a standby, its first snapshot at or before the old lineage's last
//!    stored event). No seq is in two segments of one chain; `rewind
//!    verify` passes.
//!
//! Prints, for each takeover, the takeover time (leader stopped or killed
//! → the new leader's first stored file) and the RPO (stop → the newest
//! event time the old lineage stored), which `docs/BENCHMARKS.md` keeps.
//!
//! On the local store (which has compare-and-swap) each new leader's
//! first file is preceded by its swap of the store's head, which then
//! names its lineage; Garage has no head.
//!
//! Needs the local control plane, and Garage for its test.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, Patch, PatchParams, PostParams};
use rewind_history::Point;
use rewind_history::pit::{PitError, StoreSource};
use rewind_history::source::StateSource;
use rewind_history::store::{LineageRecord, Store};
use rewind_tests::ControlPlane;
use rewind_tests::daemon::{DaemonConfig, Rewindd, RunOptions, StoreSpec, rewind_bin};
use rewind_tests::versitygw::Versity;

const NS: &str = "leader-test";

type Model = BTreeMap<String, String>;

/// The writer's acknowledged writes: (time the API acknowledged it, the
/// model from then on).
type Timeline = Arc<Mutex<Vec<(i64, i64, Model)>>>;

fn config(
    data: &std::path::Path,
    store: &std::path::Path,
    kubeconfig: &std::path::Path,
) -> DaemonConfig {
    let mut cfg = DaemonConfig::new(data, kubeconfig);
    cfg.presets = Vec::new();
    cfg.store = StoreSpec::LocalAt(store.to_path_buf());
    cfg.extra = format!(
        "[[record.selectors]]\napiVersion = \"v1\"\nkinds = [\"configmaps\"]\nnamespaces = [\"{NS}\"]\n\n\
         [leader]\nlease = \"rewind-system/rewindd\"\nduration_s = 6\nrenew_deadline_ms = 4000\nretry_ms = 250\n"
    );
    cfg
}

fn start(cfg: &DaemonConfig) -> Rewindd {
    cfg.start(&RunOptions {
        rust_log: Some("info".into()),
        ..RunOptions::default()
    })
    .unwrap()
}

async fn wait_role(d: &mut Rewindd, role: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        if let Some(s) = d.status()
            && s.leader.as_ref().is_some_and(|l| l.role == role)
        {
            return;
        }
        d.check_running().unwrap();
        assert!(
            Instant::now() < deadline,
            "no role {role} within {within:?}: {:?}\n{}",
            d.status().and_then(|s| s.leader),
            d.log_tail(30)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `d` listed its types (the writer never lets it settle).
async fn wait_listed(d: &mut Rewindd) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(s) = d.status()
            && !s.types.is_empty()
            && s.types.values().all(|t| t.listed)
            && s.problems(rewind_history::now_ms()).is_empty()
        {
            return;
        }
        d.check_running().unwrap();
        assert!(Instant::now() < deadline, "not listed\n{}", d.log_tail(30));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn signal(d: &Rewindd, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &d.pid().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

/// The lineage records, and the first file the store holds of `id`
/// (stored time, event time), waiting for one.
async fn first_file_of(store: &Store, id: &str, within: Duration) -> (i64, i64) {
    let deadline = Instant::now() + within;
    loop {
        let snaps = store.list_snapshots().await.unwrap();
        if let Some(s) = snaps
            .iter()
            .filter(|s| s.lineage.as_deref() == Some(id))
            .min_by_key(|s| s.stored_at_ms)
        {
            return (s.stored_at_ms, s.time_ms);
        }
        assert!(Instant::now() < deadline, "lineage {id} stored no snapshot");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn new_child_of(store: &Store, parent: &str, within: Duration) -> LineageRecord {
    let deadline = Instant::now() + within;
    loop {
        let ls = store.list_lineages().await.unwrap();
        if let Some(c) = ls
            .iter()
            .find(|l| l.parent.as_ref().is_some_and(|p| p.lineage == parent))
        {
            return c.clone();
        }
        assert!(Instant::now() < deadline, "no child of lineage {parent}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The store's head names `lineage` and the leader `d` as its holder, at
/// `d`'s epoch: the new leader swapped it before its first file, which
/// fences the old one. A store without compare-and-swap (Garage) has
/// none.
async fn assert_head(store: &Store, lineage: &str, d: &Rewindd) {
    let cas = store
        .probe_conditional_writes()
        .await
        .unwrap()
        .compare_and_swap;
    let head = store.read_head().await.unwrap();
    if !cas {
        assert_eq!(head, None, "no head without compare-and-swap");
        return;
    }
    let (head, _) = head.expect("a head");
    let leader = d.status().unwrap().leader.unwrap();
    assert_eq!(
        (
            head.lineage.as_str(),
            Some(head.holder.as_str()),
            Some(head.epoch)
        ),
        (lineage, leader.identity.as_deref(), leader.epoch),
        "{head:?}"
    );
}

/// The newest event time the store holds of `lineage` up to `upto`.
async fn last_event_time(store: &Store, lineage: &str, upto: u64) -> i64 {
    store
        .list_segments()
        .await
        .unwrap()
        .iter()
        .filter(|s| s.lineage.as_deref() == Some(lineage) && s.last_seq <= upto)
        .map(|s| s.last_time_ms)
        .max()
        .unwrap_or(0)
}

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

/// The points a model check visits, from `from` to the last acknowledged
/// write, a quarter second apart, each with the model at it: the writes
/// acknowledged by then. A point where a write was in flight (from 100 ms
/// before it was sent to 1.5 s after its acknowledgement: the recorder
/// observes the API a little later, up to a second on a loaded machine)
/// is skipped in steps of 50 ms.
fn settled_points(timeline: &[(i64, i64, Model)], from: i64) -> Vec<(i64, Model)> {
    let Some(&(_, last_ack, _)) = timeline.last() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut t = from;
    while t < last_ack {
        let in_flight = timeline
            .iter()
            .any(|(before, acked, _)| *before <= t + 100 && *acked + 1500 >= t);
        if in_flight {
            t += 50;
            continue;
        }
        let expected = timeline
            .iter()
            .rev()
            .find(|(_, acked, _)| *acked <= t)
            .map(|(_, _, m)| m.clone())
            .unwrap_or_default();
        out.push((t, expected));
        t += 250;
    }
    out
}

/// A takeover as the store shows it.
struct Takeover {
    parent: String,
    child: String,
    /// The parent's newest stored event time.
    parent_last_ms: i64,
    /// The child's first snapshot's time.
    child_first_ms: i64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_takeover_sigstop_sigkill_and_a_second_recorder_without_a_lease() {
    takeovers(None).await;
}

/// The same run with both recorders shipping into one Garage bucket and
/// prefix: Garage honours no conditional write, so there is no head, and
/// the Lease deadline and the lineage check before each round are the
/// fence; every point is still answered exactly and nothing is stored
/// past a fork.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_takeover_on_garage() {
    let g = tokio::task::spawn_blocking(rewind_tests::garage::Garage::start)
        .await
        .unwrap()
        .unwrap();
    takeovers(Some(&g)).await;
}

/// Both takeovers, the refused third recorder and the model check, into a
/// shared local directory, or into `garage` under one prefix.
async fn takeovers(garage: Option<&rewind_tests::garage::Garage>) {
    rewind_history::install_tls_provider();
    let cp = ControlPlane::start().await.unwrap();
    let admin = cp.admin_client();
    for ns in [NS, "rewind-system"] {
        let n: Namespace =
            serde_json::from_value(serde_json::json!({"metadata": {"name": ns}})).unwrap();
        Api::<Namespace>::all(admin.clone())
            .create(&PostParams::default(), &n)
            .await
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    let kc = cp.admin_kubeconfig_path().to_path_buf();
    let on = |cfg: DaemonConfig| match garage {
        Some(g) => cfg.s3(g, "takeover"),
        None => cfg,
    };
    let cfg_a = on(config(&dir.path().join("a"), &store_dir, &kc));
    let cfg_b = on(config(&dir.path().join("b"), &store_dir, &kc));
    let store = cfg_a.open_store().await.unwrap();

    // The writer: one ConfigMap changed every 2 s, a second one created
    // now and then, the model after each acknowledged write.
    let timeline: Timeline = Arc::new(Mutex::new(Vec::new()));
    let stop_writer = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let api: Api<ConfigMap> = Api::namespaced(admin.clone(), NS);
        let (timeline, stop) = (Arc::clone(&timeline), Arc::clone(&stop_writer));
        tokio::spawn(async move {
            let mut model = Model::new();
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                let name = if i.is_multiple_of(3) {
                    format!("c{i}")
                } else {
                    "counter".into()
                };
                let cm: ConfigMap = serde_json::from_value(serde_json::json!({
                    "apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": name, "namespace": NS},
                    "data": {"v": i.to_string()},
                }))
                .unwrap();
                // Retried until acknowledged (a loaded apiserver resets
                // connections): the write may land at any attempt.
                let before = rewind_history::now_ms();
                let mut tries = 0;
                while let Err(e) = api
                    .patch(
                        &name,
                        &PatchParams::apply("leader-test").force(),
                        &Patch::Apply(&cm),
                    )
                    .await
                {
                    tries += 1;
                    assert!(tries < 20, "writing {name}: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                let acked = rewind_history::now_ms();
                model.insert(name, i.to_string());
                timeline
                    .lock()
                    .unwrap()
                    .push((before, acked, model.clone()));
                tokio::time::sleep(Duration::from_millis(2000)).await;
            }
        })
    };

    // 1. A leads, B stands by and ships nothing.
    let mut a = start(&cfg_a);
    wait_role(&mut a, "leader", Duration::from_secs(60)).await;
    wait_listed(&mut a).await;
    let mut b = start(&cfg_b);
    wait_role(&mut b, "standby", Duration::from_secs(60)).await;
    wait_listed(&mut b).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let lineages = store.list_lineages().await.unwrap();
    assert_eq!(
        lineages.len(),
        1,
        "only the leader writes lineages: {lineages:?}"
    );
    let root = lineages[0].id.clone();
    assert!(
        lineages[0].created_by.data_dir.ends_with("/a"),
        "{:?}",
        lineages[0].created_by
    );
    let status_b = b.status().unwrap();
    assert!(status_b.lineage.is_none(), "a standby decides no lineage");
    let a_status = a.status().unwrap();
    let l = a_status.leader.clone().unwrap();
    assert_eq!(l.lease.as_deref(), Some("rewind-system/rewindd"));
    assert_eq!(
        a_status.lineage.as_ref().map(|l| l.id.as_str()),
        Some(root.as_str())
    );

    // 2. SIGSTOP A past its Lease: B takes over; SIGCONT: A exits deposed.
    let stopped_at = rewind_history::now_ms();
    signal(&a, "-STOP");
    let child1 = new_child_of(&store, &root, Duration::from_secs(60)).await;
    wait_role(&mut b, "leader", Duration::from_secs(5)).await;
    let (stored1, first1) = first_file_of(&store, &child1.id, Duration::from_secs(60)).await;
    assert_head(&store, &child1.id, &b).await;
    let fork1 = child1.parent.clone().unwrap();
    let parent_last1 = last_event_time(&store, &root, fork1.fork_seq).await;
    eprintln!(
        "takeover 1 (SIGSTOP): {} ms from stop to the new leader's first stored file; RPO {} ms (stop → newest stored event of the old lineage); not answerable {} ms (old lineage's last event → child's first snapshot, 0 when the child's snapshot is at or before it)",
        stored1 - stopped_at,
        stopped_at - parent_last1,
        (first1 - parent_last1).max(0)
    );
    signal(&a, "-CONT");
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Err(e) = a.check_running() {
            break e.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "a resumed, deposed leader must exit\n{}",
            a.log_tail(30)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let log_a = std::fs::read_to_string(&a.log).unwrap();
    assert!(
        log_a.contains("deposed")
            && log_a.contains(
                b.status()
                    .unwrap()
                    .leader
                    .unwrap()
                    .identity
                    .as_deref()
                    .unwrap()
            ),
        "A names its deposition and the new holder: {exit}\n{}",
        a.log_tail(20)
    );
    // Nothing of the root lineage past the fork, now or later.
    let late: Vec<_> = store
        .list_segments()
        .await
        .unwrap()
        .into_iter()
        .filter(|s| s.lineage.as_deref() == Some(root.as_str()) && s.last_seq > fork1.fork_seq)
        .collect();
    assert!(
        late.is_empty(),
        "the deposed leader stored after the fork: {late:?}"
    );

    // 3. A back as a standby; SIGKILL B: A takes over from B's lineage.
    let mut a = start(&cfg_a);
    wait_role(&mut a, "standby", Duration::from_secs(60)).await;
    wait_listed(&mut a).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let killed_at = rewind_history::now_ms();
    b.kill().unwrap();
    let child2 = new_child_of(&store, &child1.id, Duration::from_secs(60)).await;
    wait_role(&mut a, "leader", Duration::from_secs(5)).await;
    let (stored2, first2) = first_file_of(&store, &child2.id, Duration::from_secs(60)).await;
    assert_head(&store, &child2.id, &a).await;
    let fork2 = child2.parent.clone().unwrap();
    let parent_last2 = last_event_time(&store, &child1.id, fork2.fork_seq).await;
    eprintln!(
        "takeover 2 (SIGKILL): {} ms from kill to the new leader's first stored file; RPO {} ms; not answerable {} ms",
        stored2 - killed_at,
        killed_at - parent_last2,
        (first2 - parent_last2).max(0)
    );
    assert!(
        a.status()
            .unwrap()
            .leader
            .unwrap()
            .last_takeover_ms
            .is_some_and(|t| t >= killed_at),
        "the status names the takeover"
    );

    // 4. A recorder without a Lease on the same store is refused at start.
    let mut cfg_c = on(config(&dir.path().join("c"), &store_dir, &kc));
    cfg_c.extra = format!(
        "[[record.selectors]]\napiVersion = \"v1\"\nkinds = [\"configmaps\"]\nnamespaces = [\"{NS}\"]\n"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut c = start(&cfg_c);
    let deadline = Instant::now() + Duration::from_secs(60);
    while c.check_running().is_ok() {
        assert!(
            Instant::now() < deadline,
            "a recorder without a Lease must be refused\n{}",
            c.log_tail(20)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log_c = std::fs::read_to_string(&c.log).unwrap();
    assert!(
        log_c.contains("another recorder ships into this store")
            && log_c.contains(&child2.id)
            && log_c.contains(&rewind_history::store::lineage::host_name()),
        "{log_c}"
    );
    assert_eq!(
        store.list_lineages().await.unwrap().len(),
        3,
        "C wrote no lineage"
    );

    // 5. Every quarter second of the run, restored.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop_writer.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.await.unwrap();
    let a_final = a.settle(Duration::from_secs(2), "the end").await.unwrap();
    rewind_tests::daemon::wait_sealed(&store, a_final.journal.next_seq - 1)
        .await
        .unwrap();
    let exit = a.terminate().unwrap();
    assert!(exit.success(), "{exit}");

    let takeovers = [
        Takeover {
            parent: root.clone(),
            child: child1.id.clone(),
            parent_last_ms: parent_last1,
            child_first_ms: first1,
        },
        Takeover {
            parent: child1.id.clone(),
            child: child2.id.clone(),
            parent_last_ms: parent_last2,
            child_first_ms: first2,
        },
    ];
    let src = StoreSource::new(store.clone(), Vec::new());
    let timeline = timeline.lock().unwrap().clone();
    let recorded_from = store
        .list_segments()
        .await
        .unwrap()
        .iter()
        .filter(|s| s.lineage.as_deref() == Some(root.as_str()))
        .map(|s| s.first_time_ms)
        .min()
        .unwrap();
    let (mut exact, mut refused) = (0, 0);
    for (t, expected) in settled_points(&timeline, recorded_from + 1000) {
        match src.load(&Point::Time(t)).await {
            Ok(_) => {
                let s = src.state_at(&Point::Time(t)).await.unwrap();
                assert_eq!(model_of(&s), expected, "state at ms:{t}");
                exact += 1;
            }
            Err(e) => {
                let inside = takeovers
                    .iter()
                    .find(|k| t > k.parent_last_ms && t < k.child_first_ms);
                let Some(k) = inside else {
                    panic!("ms:{t} outside every takeover interval refused: {e}");
                };
                assert!(
                    matches!(&e, PitError::Fork { parent, child, .. } if *parent == k.parent && *child == k.child),
                    "ms:{t}: {e}"
                );
                refused += 1;
            }
        }
    }
    eprintln!("{exact} points equal the model, {refused} refused inside a takeover interval");
    assert!(exact >= 8, "{exact}");
    // The standby's kept events cover the takeover: the child's first
    // snapshot is at or before the parent's last stored event.
    for k in &takeovers {
        assert!(
            k.child_first_ms <= k.parent_last_ms,
            "a time hole between lineage {} (last event ms:{}) and its child {} (first snapshot ms:{})",
            k.parent,
            k.parent_last_ms,
            k.child,
            k.child_first_ms
        );
    }
    assert_eq!(refused, 0);

    // No seq twice within the chain; verify passes.
    let segs = store.list_segments().await.unwrap();
    let lineages = store.list_lineages().await.unwrap();
    for l in &lineages {
        let mut own: Vec<_> = segs
            .iter()
            .filter(|s| s.lineage.as_deref() == Some(l.id.as_str()))
            .collect();
        own.sort_by_key(|s| s.first_seq);
        for w in own.windows(2) {
            assert_eq!(
                w[1].first_seq,
                w[0].last_seq + 1,
                "{} then {}",
                w[0].id,
                w[1].id
            );
        }
        if let Some(p) = &l.parent {
            assert_eq!(l.first_seq, p.fork_seq + 1);
            assert!(own.first().is_none_or(|s| s.first_seq > p.fork_seq));
        }
    }
    let mut verify = std::process::Command::new(rewind_bin().unwrap());
    match garage {
        Some(g) => {
            let (id, secret) = g.key();
            verify
                .env("AWS_ACCESS_KEY_ID", id)
                .env("AWS_SECRET_ACCESS_KEY", secret)
                .env("AWS_REGION", "garage")
                .arg("--store")
                .arg(format!("s3://{}/takeover", g.bucket()))
                .arg("--s3-endpoint")
                .arg(g.endpoint());
        }
        None => {
            verify.arg("--store").arg(&store_dir);
        }
    }
    let out = verify
        .env_remove("REWIND_CLUSTER")
        .arg("verify")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What fences a deposed writer depends on the store's conditional
/// writes, which rewindd probes before it ships: a local directory refuses
/// a second create (a hard link) and has compare-and-swap (under a
/// directory lock); Garage (a
/// real single-node server) is asked the same questions and the answers
/// it gives are what the manual states. The probe leaves nothing behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_conditional_writes_are_probed_on_a_local_directory_and_garage() {
    rewind_history::install_tls_provider();
    let dir = tempfile::tempdir().unwrap();
    let local = DaemonConfig::new(dir.path().join("data"), std::path::Path::new("/unset"));
    let store = local.open_root().await.unwrap();
    let w = store.probe_conditional_writes().await.unwrap();
    assert!(w.create_only, "{w}");
    assert!(w.compare_and_swap, "{w}");
    assert!(store.list("probes/").await.unwrap().is_empty());

    let g = tokio::task::spawn_blocking(rewind_tests::garage::Garage::start)
        .await
        .unwrap()
        .unwrap();
    let cfg =
        DaemonConfig::new(dir.path().join("g"), std::path::Path::new("/unset")).s3(&g, "probe");
    let store = cfg.open_root().await.unwrap();
    let w = store.probe_conditional_writes().await.unwrap();
    eprintln!("garage: {w}");
    // Garage 2.x answers conditional PUTs as plain ones: the second create
    // and the If-Match writes succeed.
    assert!(!w.create_only, "{w}");
    assert!(!w.compare_and_swap, "{w}");
    assert!(store.list("probes/").await.unwrap().is_empty());

    let v = tokio::task::spawn_blocking(Versity::start)
        .await
        .unwrap()
        .unwrap();
    let store = on_versity(
        DaemonConfig::new(dir.path().join("v"), std::path::Path::new("/unset")),
        &v,
    )
    .open_root()
    .await
    .unwrap();
    let w = store.probe_conditional_writes().await.unwrap();
    eprintln!("versitygw: {w}");
    assert!(w.create_only && w.compare_and_swap, "{w}");
    assert!(store.list("probes/").await.unwrap().is_empty());
}

/// Ships into `v`'s bucket under the prefix `cas`.
fn on_versity(cfg: DaemonConfig, v: &Versity) -> DaemonConfig {
    cfg.s3_server(v.endpoint(), v.bucket(), "cas", v.credentials_file())
}

/// The head is a compare-and-swap on both stores that have one: a local
/// directory and versitygw (S3 `If-Match`). From one version, of eight
/// writers swapping at once exactly one wins; a stale version and a second
/// create lose and write nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_swap_has_one_winner_on_a_local_directory_and_versitygw() {
    use rewind_history::store::head::HEAD_VERSION;
    use rewind_history::store::{Head, Swap};
    rewind_history::install_tls_provider();
    let dir = tempfile::tempdir().unwrap();
    let v = tokio::task::spawn_blocking(Versity::start)
        .await
        .unwrap()
        .unwrap();
    let local = DaemonConfig::new(dir.path().join("l"), std::path::Path::new("/unset"));
    let s3 = on_versity(
        DaemonConfig::new(dir.path().join("v"), std::path::Path::new("/unset")),
        &v,
    );
    for cfg in [local, s3] {
        let store = cfg.open_root().await.unwrap();
        let head = |holder: &str| Head {
            version: HEAD_VERSION,
            lineage: "ab".repeat(16),
            epoch: 1,
            holder: holder.into(),
            updated_at_ms: rewind_history::now_ms(),
        };
        assert_eq!(store.read_head().await.unwrap(), None);
        let Swap::Swapped(first) = store.swap_head(None, &head("first")).await.unwrap() else {
            panic!("{}: the first create lost", store.kind());
        };
        assert_eq!(
            store.swap_head(None, &head("second")).await.unwrap(),
            Swap::Lost,
            "{}: a second create",
            store.kind()
        );
        let (stored, version) = store.read_head().await.unwrap().unwrap();
        assert_eq!((stored.holder.as_str(), &version), ("first", &first));
        let writers: Vec<_> = (0..8)
            .map(|i| {
                let (store, version, h) = (store.clone(), version.clone(), head(&format!("w{i}")));
                tokio::spawn(async move { store.swap_head(Some(&version), &h).await.unwrap() })
            })
            .collect();
        let mut won = 0;
        for w in writers {
            if matches!(w.await.unwrap(), Swap::Swapped(_)) {
                won += 1;
            }
        }
        assert_eq!(won, 1, "{}: one winner of eight", store.kind());
        let (now, _) = store.read_head().await.unwrap().unwrap();
        assert!(now.holder.starts_with('w'), "{now:?}");
        assert_eq!(
            store
                .swap_head(Some(&version), &head("stale"))
                .await
                .unwrap(),
            Swap::Lost,
            "{}: a stale version",
            store.kind()
        );
    }
}

/// How the other writer shows itself to the recorder in
/// [`stops_once_another_writes`].
#[derive(Debug, Clone, Copy)]
enum Other {
    /// Its lineage record, forked from the recorder's.
    Lineage,
    /// Its swap of the store's head (its record not yet written).
    Head,
}

/// At write time: a recorder without a Lease stops shipping once another
/// recorder started a lineage forked from its own (here the other
/// recorder's record is written by the test, as it would be), with an
/// error naming that lineage and its creator, and stores nothing past the
/// fork point.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorder_stops_shipping_once_another_forked_its_lineage() {
    stops_once_another_writes(Other::Lineage, None).await;
}

/// The head fence at write time: another writer swaps the store's head
/// to its lineage before its lineage record exists (so the lineage check
/// before each round passes). The recorder's next swap fails: it stops
/// with an error naming the head's lineage and holder and stores nothing
/// more, although nothing about its own Lease or lineage checks changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorder_stops_shipping_once_another_swapped_the_head() {
    stops_once_another_writes(Other::Head, None).await;
}

/// The head fence on S3: the same, the recorder shipping into versitygw,
/// whose `If-Match` PUTs make the head a compare-and-swap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorder_on_s3_with_if_match_stops_once_another_swapped_the_head() {
    let v = tokio::task::spawn_blocking(Versity::start)
        .await
        .unwrap()
        .unwrap();
    stops_once_another_writes(Other::Head, Some(&v)).await;
}

/// A recorder of one namespace's ConfigMaps into a local store, or into
/// `versity`; the other writer shows itself as `how` says.
async fn stops_once_another_writes(how: Other, versity: Option<&Versity>) {
    rewind_history::install_tls_provider();
    let cp = ControlPlane::start().await.unwrap();
    let admin = cp.admin_client();
    let n: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": NS}})).unwrap();
    Api::<Namespace>::all(admin.clone())
        .create(&PostParams::default(), &n)
        .await
        .unwrap();
    let api: Api<ConfigMap> = Api::namespaced(admin.clone(), NS);
    let put = |name: &'static str, v: &'static str| {
        let api = api.clone();
        async move {
            let cm: ConfigMap = serde_json::from_value(serde_json::json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": NS}, "data": {"v": v},
            }))
            .unwrap();
            api.patch(
                name,
                &PatchParams::apply("leader-test").force(),
                &Patch::Apply(&cm),
            )
            .await
            .unwrap();
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(
        &dir.path().join("x"),
        &dir.path().join("store"),
        cp.readonly_kubeconfig_path(),
    );
    cfg.extra = format!(
        "[[record.selectors]]\napiVersion = \"v1\"\nkinds = [\"configmaps\"]\nnamespaces = [\"{NS}\"]\n"
    );
    if let Some(v) = versity {
        cfg = on_versity(cfg, v);
    }
    let store = cfg.open_store().await.unwrap();
    put("one", "1").await;
    let mut x = start(&cfg);
    let s = x.settle(Duration::from_secs(1), "x").await.unwrap();
    rewind_tests::daemon::wait_sealed(&store, s.journal.next_seq - 1)
        .await
        .unwrap();
    let ours = s.lineage.unwrap().id;
    let fork = store
        .list_segments()
        .await
        .unwrap()
        .iter()
        .map(|s| s.last_seq)
        .max()
        .unwrap();
    let other = LineageRecord {
        version: rewind_history::store::lineage::LINEAGE_VERSION,
        id: rewind_history::store::lineage::new_id().unwrap(),
        parent: Some(rewind_history::store::ForkPoint {
            lineage: ours.clone(),
            fork_seq: fork,
        }),
        cluster_uid: s.cluster_id.clone(),
        created_by: rewind_history::store::CreatedBy {
            host: "other-host".into(),
            version: "test".into(),
            data_dir: "/elsewhere".into(),
        },
        created_at_ms: rewind_history::now_ms(),
        first_seq: fork + 1,
    };
    let (said, names) = match how {
        Other::Lineage => {
            store.put_lineage(&other).await.unwrap();
            ("not shipping: lineage", vec!["other-host", "/elsewhere"])
        }
        Other::Head => {
            let (head, version) = store.read_head().await.unwrap().expect("a head");
            assert_eq!(head.lineage, ours, "the recorder swapped the head");
            let theirs = rewind_history::store::Head {
                version: rewind_history::store::head::HEAD_VERSION,
                lineage: other.id.clone(),
                epoch: head.epoch + 1,
                holder: "other-host-0badcafe".into(),
                updated_at_ms: rewind_history::now_ms(),
            };
            let swapped = store.swap_head(Some(&version), &theirs).await.unwrap();
            assert!(
                matches!(swapped, rewind_history::store::Swap::Swapped(_)),
                "{swapped:?}"
            );
            (
                "not shipping: the store's head names lineage",
                vec!["other-host-0badcafe"],
            )
        }
    };
    put("one", "2").await;
    put("two", "1").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let log = std::fs::read_to_string(&x.log).unwrap();
        if log.contains(said) {
            break log;
        }
        assert!(Instant::now() < deadline, "{how:?}: {}", x.log_tail(30));
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        text.contains(&other.id) && names.iter().all(|n| text.contains(n)),
        "{how:?}: {}",
        x.log_tail(20)
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let past: Vec<_> = store
        .list_segments()
        .await
        .unwrap()
        .into_iter()
        .filter(|s| s.last_seq > fork)
        .collect();
    assert!(past.is_empty(), "stored past the fork: {past:?}");
    x.kill().unwrap();
}

/// A standby bounds its journal by its local window: B, a standby with a
/// 4 s window beside leader A, folds the events older than the window
/// into its base snapshot and trims them from its journal, again and
/// again while a ConfigMap changes every 2 s. ConfigMaps created
/// before B started and never changed since live only in that base once
/// their events are trimmed. A is then killed: B takes over, and its
/// child lineage's first snapshot (folded from the base) and every point
/// after it equal what the API held, the untouched ConfigMaps included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_trims_its_journal_to_its_window_and_still_takes_over_whole() {
    rewind_history::install_tls_provider();
    let cp = ControlPlane::start().await.unwrap();
    let admin = cp.admin_client();
    for ns in [NS, "rewind-system"] {
        let n: Namespace =
            serde_json::from_value(serde_json::json!({"metadata": {"name": ns}})).unwrap();
        Api::<Namespace>::all(admin.clone())
            .create(&PostParams::default(), &n)
            .await
            .unwrap();
    }
    let api: Api<ConfigMap> = Api::namespaced(admin.clone(), NS);
    let mut model = Model::new();
    for i in 0..5 {
        let name = format!("still-{i}");
        let cm: ConfigMap = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": NS}, "data": {"v": "still"},
        }))
        .unwrap();
        api.create(&PostParams::default(), &cm).await.unwrap();
        model.insert(name, "still".into());
    }
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    let kc = cp.admin_kubeconfig_path().to_path_buf();
    let cfg_a = config(&dir.path().join("a"), &store_dir, &kc);
    let cfg_b = config(&dir.path().join("b"), &store_dir, &kc).local_window("4s");
    let store = cfg_a.open_store().await.unwrap();

    let timeline: Timeline = Arc::new(Mutex::new(Vec::new()));
    let stop_writer = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (timeline, stop) = (Arc::clone(&timeline), Arc::clone(&stop_writer));
        tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                let cm: ConfigMap = serde_json::from_value(serde_json::json!({
                    "apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "counter", "namespace": NS},
                    "data": {"v": i.to_string()},
                }))
                .unwrap();
                let before = rewind_history::now_ms();
                let mut tries = 0;
                while let Err(e) = api
                    .patch(
                        "counter",
                        &PatchParams::apply("leader-test").force(),
                        &Patch::Apply(&cm),
                    )
                    .await
                {
                    tries += 1;
                    assert!(tries < 20, "writing counter: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                model.insert("counter".into(), i.to_string());
                timeline
                    .lock()
                    .unwrap()
                    .push((before, rewind_history::now_ms(), model.clone()));
                tokio::time::sleep(Duration::from_millis(2000)).await;
            }
        })
    };

    let mut a = start(&cfg_a);
    wait_role(&mut a, "leader", Duration::from_secs(60)).await;
    wait_listed(&mut a).await;
    let mut b = start(&cfg_b);
    wait_role(&mut b, "standby", Duration::from_secs(60)).await;
    wait_listed(&mut b).await;

    // B trims, round after round: its base moves and its journal's oldest
    // events go.
    let progress = dir.path().join("b/standby/progress.json");
    let base_seq = || -> u64 {
        std::fs::read(&progress)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["shipped_upto"].as_u64())
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let trims = |log: &str| {
        log.lines()
            .filter(|l| l.contains("standby journal trimmed to its local window"))
            .count()
    };
    let first_base = loop {
        let log = std::fs::read_to_string(&b.log).unwrap();
        if trims(&log) >= 1 {
            break base_seq();
        }
        b.check_running().unwrap();
        assert!(
            Instant::now() < deadline,
            "B never trimmed\n{}",
            b.log_tail(30)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(first_base > 0, "B's base names the events it stands for");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let log = std::fs::read_to_string(&b.log).unwrap();
        if trims(&log) >= 3 && base_seq() > first_base {
            break;
        }
        b.check_running().unwrap();
        assert!(
            Instant::now() < deadline,
            "B trimmed only once\n{}",
            b.log_tail(30)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let standby_files = std::fs::read_dir(dir.path().join("b/standby/snapshots"))
        .unwrap()
        .count();
    assert_eq!(standby_files, 1, "B keeps one base snapshot");
    assert!(
        store
            .list_lineages()
            .await
            .unwrap()
            .iter()
            .all(|l| l.created_by.data_dir.ends_with("/a")),
        "a trimming standby ships nothing"
    );

    // Kill A: B takes over from its trimmed journal.
    let killed_at = rewind_history::now_ms();
    let root = store.list_lineages().await.unwrap()[0].id.clone();
    a.kill().unwrap();
    let child = new_child_of(&store, &root, Duration::from_secs(60)).await;
    wait_role(&mut b, "leader", Duration::from_secs(5)).await;
    let (_, child_first) = first_file_of(&store, &child.id, Duration::from_secs(60)).await;
    let log_b = std::fs::read_to_string(&b.log).unwrap();
    assert!(
        log_b.contains("the standby's base snapshot is the first snapshot's fold base"),
        "B's first snapshot is folded from its base\n{}",
        b.log_tail(30)
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop_writer.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.await.unwrap();
    let b_final = b.settle(Duration::from_secs(2), "the end").await.unwrap();
    rewind_tests::daemon::wait_sealed(&store, b_final.journal.next_seq - 1)
        .await
        .unwrap();
    let exit = b.terminate().unwrap();
    assert!(exit.success(), "{exit}");

    // Every quarter second from the child's first snapshot on equals the
    // model, the ConfigMaps that only the base held included.
    let src = StoreSource::new(store.clone(), Vec::new());
    let timeline = timeline.lock().unwrap().clone();
    let mut exact = 0;
    for (t, expected) in settled_points(&timeline, child_first.max(killed_at - 60_000)) {
        let s = src.state_at(&Point::Time(t)).await.unwrap();
        assert_eq!(model_of(&s), expected, "state at ms:{t}");
        exact += 1;
    }
    // The first snapshot itself holds the untouched ConfigMaps.
    let first = src.state_at(&Point::Time(child_first)).await.unwrap();
    let held = model_of(&first);
    for i in 0..5 {
        assert_eq!(
            held.get(&format!("still-{i}")).map(String::as_str),
            Some("still"),
            "the child's first snapshot lost still-{i}: {held:?}"
        );
    }
    eprintln!("{exact} points after the takeover equal the model");
    assert!(exact >= 4, "{exact}");
    let out = std::process::Command::new(rewind_bin().unwrap())
        .arg("--store")
        .arg(&store_dir)
        .arg("verify")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
