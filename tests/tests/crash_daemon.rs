//! Crash consistency of rewindd: SIGKILL at random moments under a steady
//! stream of changes, restart, check, repeat.
//!
//! The real `rewindd` binary records the local control plane with the
//! read-only identity into a local store (seal every second, a snapshot
//! every 150 sealed events, on-demand snapshots through the admin socket).
//! A background task creates, updates and deletes ConfigMaps, Secrets,
//! Tokens, Settings and management Clusters the whole time. Each round
//! kills the daemon with SIGKILL in one of three phases, chosen by a seeded
//! RNG: during the initial list (ingesting), in steady state (group commits
//! and seals every second), or just after asking for a snapshot.
//!
//! After every kill:
//! - the journal holds every event the daemon acknowledged as durable (the
//!   status file's `journal.next_seq`, written only after fsync), and every
//!   record a previous round found on disk is still there, unchanged;
//! - seqs are gap-free and unique, no `(uid, resourceVersion)` is recorded
//!   twice as Applied, and the log replays to the journal's state;
//! - the store verifies (catalog hashes, then `rewind_format::verify_file`
//!   on every file; `rewind verify` too once it is implemented), and the
//!   stored segments are
//!   contiguous from seq 1 and byte-for-byte the journal's events.
//!
//! At the end (changes stopped, a clean restart, SIGTERM) the journal equals
//! a fresh LIST and every stored snapshot equals the journal at its seq.
//!
//! `REWIND_CRASH_KILLS` (default 20) and `REWIND_CRASH_SEED` select the long
//! form. Needs the local control plane (built on first use).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

mod daemon_support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use daemon_support::*;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use rewind_daemon::select::preset::preset;
use rewind_daemon::status::{StatusFile, read_status, status_path};
use rewind_format::state::State;
use rewind_format::{EventRecord, Limits, SegmentReader, SnapshotReader};
use rewind_restore::store::{Store, StoreConfig};
use rewind_tests::ControlPlane;
use rewind_tests::fixtures::Rng;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn config_text(data: &Path, kubeconfig: &Path) -> String {
    format!(
        r#"data_dir = "{data}"

[cluster]
kubeconfig = "{kc}"

[record]
presets = ["rancher"]

[store]
kind = "local"
path = "{data}/store"

[compact]
seal_interval = "1s"
snapshot_schedule = ""
snapshot_after_events = 150

[service]
admin_socket = "{data}/rewindd.sock"
metrics_addr = ""
"#,
        data = data.display(),
        kc = kubeconfig.display(),
    )
}

fn start(cfg: &Path, log: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(rewindd_bin())
        .arg("--config")
        .arg(cfg)
        .args(["--status-interval-ms", "50", "--discovery-interval-s", "5"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .arg("run")
        .spawn()
        .unwrap()
}

/// The status written by this very process (a dead daemon's file does not count).
fn status_of(data: &Path, pid: u32) -> Option<StatusFile> {
    read_status(&status_path(data))
        .ok()
        .filter(|s| s.pid == pid)
}

/// Identity of a record as far as "unchanged" goes.
fn fingerprint(r: &EventRecord) -> (u64, String, String, String, String) {
    (
        r.seq,
        r.rtype.group_resource(),
        r.name.clone(),
        r.uid.clone(),
        format!("{}/{:?}", r.resource_version, r.kind),
    )
}

/// Verifies every stored file: the store checks size and SHA-256 against
/// the catalog, `rewind_format::verify_file` checks framing, checksums and
/// the index. Also runs `rewind verify` once the binary implements it
/// (until then it says "not yet implemented"). Returns the files checked.
async fn verify_store(store: &Store, dir: &Path) -> usize {
    let mut n = 0;
    for s in store.list_segments().await.unwrap() {
        let bytes = store.get_segment(&s).await.unwrap();
        rewind_format::verify_file(&bytes, None, &[], &Limits::default())
            .unwrap_or_else(|e| panic!("segment {}: {e}", s.id));
        n += 1;
    }
    for s in store.list_snapshots().await.unwrap() {
        let bytes = store.get_snapshot(&s).await.unwrap();
        rewind_format::verify_file(&bytes, None, &[], &Limits::default())
            .unwrap_or_else(|e| panic!("snapshot {}: {e}", s.id));
        n += 1;
    }
    let bin = rewind_tests::controlplane::target_dir()
        .join("debug")
        .join("rewind");
    if bin.exists() {
        let out = Command::new(bin)
            .arg("--store")
            .arg(dir)
            .arg("verify")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() || text.contains("not yet implemented"),
            "rewind verify failed:\n{text}"
        );
    }
    n
}

/// Stored segments: contiguous from 1, inside the journal, equal to its
/// records. Returns (segments, last stored seq).
async fn check_segments(store: &Store, records: &[EventRecord]) -> (usize, u64) {
    let segs = store.list_segments().await.unwrap();
    let mut next = 1;
    for s in &segs {
        assert_eq!(s.first_seq, next, "stored segments are contiguous");
        let bytes = store.get_segment(s).await.unwrap();
        let events = SegmentReader::open(&bytes, None, Limits::default())
            .unwrap()
            .read_all()
            .unwrap();
        for e in events {
            let j = records
                .get(usize::try_from(e.seq).unwrap() - 1)
                .unwrap_or_else(|| panic!("stored seq {} is not in the journal", e.seq));
            assert_eq!(&e, j, "stored event {} differs from the journal", e.seq);
        }
        next = s.last_seq + 1;
    }
    (segs.len(), next - 1)
}

/// Changes ConfigMaps, Secrets and Rancher objects until told to stop.
fn spawn_churn(
    admin: kube::Client,
    objects: Vec<rewind_tests::fixtures::GeneratedObject>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let mut m = Mutator::new(admin.clone(), &objects);
        let secrets: Api<k8s_openapi::api::core::v1::Secret> =
            Api::namespaced(admin, "cattle-system");
        let mut steps = 0u64;
        let mut i = 0u64;
        while !stop.load(Ordering::Relaxed) {
            m.run(6).await;
            let name = format!("rewind-crash-{}", i % 5);
            let s: k8s_openapi::api::core::v1::Secret = serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "namespace": "cattle-system"},
                "stringData": {"v": format!("value-{i}")}
            }))
            .unwrap();
            match i % 3 {
                0 => {
                    let _ = secrets.create(&PostParams::default(), &s).await;
                }
                1 => {
                    let _ = secrets
                        .patch(
                            &name,
                            &PatchParams::default(),
                            &Patch::Merge(
                                serde_json::json!({"stringData": {"v": format!("u-{i}")}}),
                            ),
                        )
                        .await;
                }
                _ => {
                    let _ = secrets.delete(&name, &DeleteParams::default()).await;
                }
            }
            i += 1;
            steps += 7;
        }
        steps
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_and_duplicates_nothing() {
    let kills = env_u64("REWIND_CRASH_KILLS", 20);
    let seed = env_u64("REWIND_CRASH_SEED", 0x5eed_c4a5);
    let mut rng = Rng::new(seed);
    let _ = rewindd_bin();
    rewind_restore::install_tls_provider();

    let cp = ControlPlane::start().await.unwrap();
    let admin = cp.admin_client();
    let objects = load_plane(&admin, 10).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cfg = dir.path().join("rewindd.toml");
    let log = dir.path().join("rewindd.log");
    std::fs::write(&cfg, config_text(&data, cp.readonly_kubeconfig_path())).unwrap();
    let sock = data.join("rewindd.sock");
    let store = Store::open(&StoreConfig::Local {
        path: data.join("store"),
    })
    .await
    .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let churn = spawn_churn(admin.clone(), objects.clone(), stop.clone());

    let mut known: Vec<(u64, String, String, String, String)> = Vec::new();
    let mut phases = [0u32; 3];
    let mut max_acked = 0;
    let started = Instant::now();
    for round in 0..kills {
        let mut child = start(&cfg, &log);
        let pid = child.id();
        let phase = rng.below(3);
        phases[usize::try_from(phase).unwrap()] += 1;
        let mut acked = 0u64;
        let watch = |acked: &mut u64| {
            if let Some(s) = status_of(&data, pid) {
                *acked = (*acked).max(s.journal.next_seq);
            }
        };
        let delay = match phase {
            // Ingesting: the initial list (or the relist after a restart).
            0 => Duration::from_millis(rng.between(0, 600)),
            // Steady state: group commits, a seal every second.
            1 => Duration::from_millis(rng.between(600, 3500)),
            // Snapshotting: ask for one, kill while it is being made.
            _ => {
                let t0 = Instant::now();
                while status_of(&data, pid).is_none_or(|s| s.types.is_empty()) {
                    assert!(
                        t0.elapsed() < Duration::from_secs(60),
                        "rewindd never started"
                    );
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
                let s = sock.clone();
                tokio::spawn(async move {
                    let _ = rewind_daemon::admin::client::snapshot(&s, None, true).await;
                });
                Duration::from_millis(rng.between(0, 250))
            }
        };
        let until = Instant::now() + delay;
        while Instant::now() < until {
            watch(&mut acked);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        watch(&mut acked);
        child.kill().unwrap();
        child.wait().unwrap();

        let j = open_journal(&data.join("journal"));
        let next = j.next_seq();
        assert!(
            next >= acked,
            "round {round}: acknowledged up to seq {} but the journal ends at {}",
            acked - 1,
            next - 1
        );
        check_log(&j);
        let records: Vec<EventRecord> = j.records_from(1).map(Result::unwrap).collect();
        drop(j);
        for (old, now) in known.iter().zip(records.iter().map(fingerprint)) {
            assert_eq!(*old, now, "round {round}: a durable record changed");
        }
        assert!(
            records.len() >= known.len(),
            "round {round}: durable records vanished"
        );
        known = records.iter().map(fingerprint).collect();
        max_acked = max_acked.max(acked);
        let files = verify_store(&store, &data.join("store")).await;
        let (segs, stored) = check_segments(&store, &records).await;
        eprintln!(
            "round {round}: phase {phase} after {delay:?}: acked < {acked}, journal {} records, \
             {segs} segments stored through {stored}, {files} files verified",
            records.len()
        );
    }

    // The last start: catch up, then a clean stop with the changes stopped.
    stop.store(true, Ordering::Relaxed);
    let steps = churn.await.unwrap();
    let mut child = start(&cfg, &log);
    let pid = child.id();
    wait_settled(|| status_of(&data, pid), Duration::from_secs(3), "final").await;
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    let exit = child.wait().unwrap();
    assert!(
        exit.success(),
        "rewindd exited with {exit}\n{}",
        std::fs::read_to_string(&log).unwrap()
    );

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
    let records: Vec<EventRecord> = j.records_from(1).map(Result::unwrap).collect();
    drop(j);
    for (old, now) in known.iter().zip(records.iter().map(fingerprint)) {
        assert_eq!(*old, now, "final: a durable record changed");
    }
    let verified = verify_store(&store, &data.join("store")).await;
    let (segs, stored) = check_segments(&store, &records).await;
    assert_eq!(stored, n, "SIGTERM seals and stores every durable event");
    let snaps = store.list_snapshots().await.unwrap();
    for s in &snaps {
        let bytes = store.get_snapshot(s).await.unwrap();
        let mut r = SnapshotReader::open(&bytes, None, Limits::default()).unwrap();
        let got = State::from_snapshot(&mut r).unwrap();
        let mut want = State::new("");
        for rec in records.iter().take_while(|r| r.seq <= s.seq) {
            want.apply(rec);
        }
        assert_eq!(got.objects, want.objects, "snapshot at seq {}", s.seq);
    }
    eprintln!(
        "{kills} kills (seed {seed:#x}; phases ingest/steady/snapshot {phases:?}) in {:?}; \
         {steps} change steps; {n} records, {} objects, {segs} segments, {} snapshots; \
         highest acknowledged seq {}; {verified} store files verified",
        started.elapsed(),
        state.len(),
        snaps.len(),
        max_acked.saturating_sub(1)
    );
    assert!(!snaps.is_empty(), "snapshots were made between the kills");
}
