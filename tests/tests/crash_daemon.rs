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
//!   on every file, `rewind_restore`'s verify, and `rewind verify` for the
//!   local store), and the stored segments are contiguous from seq 1 and
//!   byte-for-byte the journal's events.
//!
//! At the end (changes stopped, a clean restart, SIGTERM) the journal equals
//! a fresh LIST and every stored snapshot equals the journal at its seq.
//!
//! The second test does the same against a real S3 server (Garage) reached
//! through a TCP proxy, with a fourth phase, *uploading*: the proxy stalls,
//! the next seal's upload hangs in flight, and the daemon is killed with the
//! upload half sent (the proxy then delivers the held bytes, a truncated
//! request). The store is checked with `rewind_restore`'s verify (catalog,
//! hashes, framing, segment chain) after every kill.
//!
//! The third test kills the daemon while its journal trims: with
//! `local_window = "0s"` every block the store has is dropped from the
//! journal at once, after the objects still current in it are copied into
//! the state. After every kill each state object must still be readable,
//! and the stored segments followed by the journal's log must be gap-free,
//! without duplicates, and replay to the state.
//!
//! `REWIND_CRASH_KILLS` (default 20), `REWIND_CRASH_S3_KILLS` (default 20),
//! `REWIND_CRASH_TRIM_KILLS` (default 12) and `REWIND_CRASH_SEED` select the
//! long form. Needs the local control
//! plane (built on first use); the S3 test needs `garage`.

mod daemon_support;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use daemon_support::*;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use rewind_format::state::State;
use rewind_format::{EventRecord, Limits, SegmentReader, SnapshotReader};
use rewind_history::store::Store;
use rewind_tests::daemon::{DaemonConfig, Rewindd, RunOptions};
use rewind_tests::fixtures::Rng;
use rewind_tests::garage::Garage;
use rewind_tests::{ControlPlane, TcpProxy};

/// Identity of a record as far as "unchanged" goes.
fn fingerprint(r: &EventRecord) -> Fingerprint {
    (
        r.seq,
        r.rtype.group_resource(),
        r.name.clone(),
        r.uid.clone(),
        format!("{}/{:?}", r.resource_version, r.kind),
    )
}

type Fingerprint = (u64, String, String, String, String);

/// Checks that every record found before is still there, unchanged, and
/// remembers `records` for the next check.
fn still_there(known: &mut Vec<Fingerprint>, records: &[EventRecord], when: &str) {
    for (old, now) in known.iter().zip(records.iter().map(fingerprint)) {
        assert_eq!(*old, now, "{when}: a durable record changed");
    }
    assert!(
        records.len() >= known.len(),
        "{when}: durable records vanished"
    );
    *known = records.iter().map(fingerprint).collect();
}

/// Verifies every stored file: the store checks size and SHA-256 against
/// the catalog, `rewind_format::verify_file` checks framing, checksums and
/// the index; `rewind_restore`'s verify checks all of that plus the segment
/// chain, and for a local store the `rewind verify` command must agree.
/// Returns the files checked.
async fn verify_store(store: &Store, local: Option<&Path>) -> usize {
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
    let report = rewind_history::pit::verify::verify_store(store, &[])
        .await
        .unwrap();
    assert!(
        !report.is_damaged() && report.gaps.is_empty(),
        "the store does not verify:\n{}",
        report.to_text()
    );
    assert_eq!(report.files.len(), n, "verify checked every file");
    if let Some(dir) = local {
        let out = Command::new(rewind_tests::daemon::rewind_bin().unwrap())
            .arg("--store")
            .arg(dir)
            .arg("verify")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "rewind verify failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
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

/// Waits until the daemon has started its watchers; a daemon that exited
/// or never started fails with its log's tail, so the cause shows.
async fn wait_running(d: &mut Rewindd) {
    let t0 = Instant::now();
    while d.status().is_none_or(|s| s.types.is_empty()) {
        if let Err(e) = d.check_running() {
            panic!("rewindd exited before it started its watchers: {e}");
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "rewindd never started within 60 s; log tail:\n{}",
            d.log_tail(30)
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Where the daemon ships: its local store, or Garage behind a proxy that
/// can stall uploads.
enum Target {
    Local,
    S3 { garage: Garage, proxy: TcpProxy },
}

const PHASES: [&str; 4] = ["ingesting", "steady", "snapshotting", "uploading"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_and_duplicates_nothing() {
    run(env_u64("REWIND_CRASH_KILLS", 20), Target::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_s3_uploads_loses_and_duplicates_nothing() {
    rewind_history::install_tls_provider();
    let garage = tokio::task::spawn_blocking(Garage::start)
        .await
        .unwrap()
        .unwrap();
    let upstream = garage
        .endpoint()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let proxy = TcpProxy::start(upstream).await.unwrap();
    run(
        env_u64("REWIND_CRASH_S3_KILLS", 20),
        Target::S3 { garage, proxy },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_the_journal_trims_loses_nothing() {
    let kills = env_u64("REWIND_CRASH_TRIM_KILLS", 12);
    let seed = env_u64("REWIND_CRASH_SEED", 0x5eed_c4a5);
    let mut rng = Rng::new(seed ^ 0x7219);
    let _ = rewindd_bin();
    rewind_history::install_tls_provider();
    let cp = ControlPlane::start().await.unwrap();
    let admin = cp.admin_client();
    let objects = load_plane(&admin, 10).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cfg = DaemonConfig::new(&data, cp.readonly_kubeconfig_path())
        .snapshot_after_events(150)
        .local_window("0s");
    let opts = RunOptions {
        status_interval_ms: 50,
        discovery_interval_s: Some(5),
        rust_log: Some("info".into()),
        log: Some(dir.path().join("rewindd.log")),
        ..RunOptions::default()
    };
    let store = cfg.open_store().await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let churn = spawn_churn(admin.clone(), objects.clone(), stop.clone());
    let mut known: Vec<Fingerprint> = Vec::new();
    let mut trimmed_rounds = 0;
    for round in 0..kills {
        let mut daemon = cfg.start(&opts).unwrap();
        let mut acked = 0u64;
        let until = Instant::now() + Duration::from_millis(rng.between(300, 4000));
        while Instant::now() < until {
            if let Some(st) = daemon.status() {
                acked = acked.max(st.journal.next_seq);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        daemon.kill().unwrap();
        let j = open_journal(&data.join("journal"));
        assert!(
            j.next_seq() >= acked,
            "round {round}: acknowledged up to seq {} but the journal ends at {}",
            acked.saturating_sub(1),
            j.next_seq() - 1
        );
        // Every object, read through the log or copied into the state.
        let state = journal_state(&j);
        let (records, first_kept) = stored_then_journal(&store, &j).await;
        drop(j);
        let n = check_records(records.iter().cloned(), &state);
        still_there(&mut known, &records, &format!("round {round}"));
        if first_kept > 1 {
            trimmed_rounds += 1;
        }
        eprintln!(
            "round {round}: acked < {acked}, {n} records, journal log from seq {first_kept}, {} objects",
            state.len()
        );
    }
    stop.store(true, Ordering::Relaxed);
    churn.await.unwrap();
    let mut daemon = cfg.start(&opts).unwrap();
    daemon
        .settle(Duration::from_secs(3), "final")
        .await
        .unwrap();
    let exit = daemon.terminate().unwrap();
    assert!(exit.success(), "rewindd exited with {exit}");
    let (j, state, _) = check_state(&cp.readonly_client(), "rancher", &data).await;
    let (records, first_kept) = stored_then_journal(&store, &j).await;
    let n = check_records(records.iter().cloned(), &state);
    assert_eq!(j.next_seq(), n + 1);
    still_there(&mut known, &records, "final");
    eprintln!(
        "{kills} kills while trimming: {trimmed_rounds} rounds found the log trimmed; \
         {n} records, journal log from seq {first_kept}, {} objects",
        state.len()
    );
    assert!(
        trimmed_rounds > 0 && first_kept > 1,
        "the journal never trimmed, so this tested nothing"
    );
}

/// The stored segments (contiguous from seq 1), then the journal's records
/// past them; where both hold an event they must be equal. Returns the
/// records and the first seq the journal's log still holds.
async fn stored_then_journal(
    store: &Store,
    j: &rewind_daemon::journal::Journal,
) -> (Vec<EventRecord>, u64) {
    let mut out: Vec<EventRecord> = Vec::new();
    for s in store.list_segments().await.unwrap() {
        assert_eq!(
            s.first_seq,
            out.len() as u64 + 1,
            "stored segments are contiguous"
        );
        let bytes = store.get_segment(&s).await.unwrap();
        out.extend(
            SegmentReader::open(&bytes, None, Limits::default())
                .unwrap()
                .read_all()
                .unwrap(),
        );
    }
    let mut first_kept = j.next_seq();
    for (i, r) in j.records_from(1).enumerate() {
        let r = r.unwrap();
        if i == 0 {
            first_kept = r.seq;
            assert!(
                r.seq <= out.len() as u64 + 1,
                "the journal trimmed seq {} .. {} before the store had them",
                out.len() + 1,
                r.seq - 1
            );
        }
        match out.get(usize::try_from(r.seq).unwrap() - 1) {
            Some(stored) => assert_eq!(
                stored, &r,
                "stored event {} differs from the journal",
                r.seq
            ),
            None => out.push(r),
        }
    }
    (out, first_kept)
}

async fn run(kills: u64, target: Target) {
    let seed = env_u64("REWIND_CRASH_SEED", 0x5eed_c4a5);
    let mut rng = Rng::new(seed);
    let _ = rewindd_bin();
    rewind_history::install_tls_provider();

    let cp = ControlPlane::start().await.unwrap();
    let admin = cp.admin_client();
    let objects = load_plane(&admin, 10).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("rewindd.log");
    let mut cfg =
        DaemonConfig::new(&data, cp.readonly_kubeconfig_path()).snapshot_after_events(150);
    // The daemon reaches Garage through the proxy; the test's own store
    // client goes direct, so a stalled proxy never blocks the checks.
    let direct = cfg.clone();
    let (direct, phases_n) = match &target {
        Target::Local => (direct, 3),
        Target::S3 { garage, proxy } => {
            cfg = cfg.s3(garage, "crash");
            if let rewind_tests::daemon::StoreSpec::S3 { endpoint, .. } = &mut cfg.store {
                *endpoint = format!("http://{}", proxy.addr());
            }
            (direct.s3(garage, "crash"), 6)
        }
    };
    let opts = RunOptions {
        status_interval_ms: 50,
        discovery_interval_s: Some(5),
        rust_log: Some("info".into()),
        log: Some(log.clone()),
        ..RunOptions::default()
    };
    let sock = cfg.admin_socket();
    // The cluster's place in the store: where the daemon's files are.
    let place = direct.place_config().await.unwrap();
    let store = Store::open(&place).await.unwrap();
    let local_store = match (&target, &place) {
        (Target::Local, rewind_history::store::StoreConfig::Local { path }) => Some(path.clone()),
        _ => None,
    };

    let stop = Arc::new(AtomicBool::new(false));
    let churn = spawn_churn(admin.clone(), objects.clone(), stop.clone());

    let mut known: Vec<Fingerprint> = Vec::new();
    let mut phases = [0u32; 4];
    let mut max_acked = 0;
    let started = Instant::now();
    for round in 0..kills {
        let mut daemon = cfg.start(&opts).unwrap();
        // With S3, half the rounds kill during an upload (draws 3..=5).
        let phase = rng.below(phases_n).min(3);
        phases[usize::try_from(phase).unwrap()] += 1;
        let mut acked = 0u64;
        let watch = |acked: &mut u64, d: &Rewindd| {
            if let Some(s) = d.status() {
                *acked = (*acked).max(s.journal.next_seq);
            }
        };
        let delay = match phase {
            // Ingesting: the initial list (or the relist after a restart).
            0 => Duration::from_millis(rng.between(0, 600)),
            // Steady state: group commits, a seal every second.
            1 => Duration::from_millis(rng.between(600, 3500)),
            // Snapshotting: ask for one, kill while it is being made.
            2 => {
                wait_running(&mut daemon).await;
                tokio::time::sleep(Duration::from_millis(300)).await;
                let s = sock.clone();
                tokio::spawn(async move {
                    let _ = rewind_daemon::admin::client::snapshot(&s, None, true).await;
                });
                Duration::from_millis(rng.between(0, 250))
            }
            // Uploading: stall the link to S3; the next seal's upload (and
            // a snapshot's, every 150 events) hangs half sent.
            _ => {
                wait_running(&mut daemon).await;
                tokio::time::sleep(Duration::from_millis(rng.between(200, 1200))).await;
                if let Target::S3 { proxy, .. } = &target {
                    proxy.stall();
                }
                Duration::from_millis(rng.between(1100, 2500))
            }
        };
        let until = Instant::now() + delay;
        while Instant::now() < until {
            watch(&mut acked, &daemon);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        watch(&mut acked, &daemon);
        daemon.kill().unwrap();
        if let Target::S3 { proxy, .. } = &target {
            // The held bytes go on to Garage: a request cut mid-body.
            proxy.resume();
        }

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
        still_there(&mut known, &records, &format!("round {round}"));
        max_acked = max_acked.max(acked);
        let files = verify_store(&store, local_store.as_deref()).await;
        let (segs, stored) = check_segments(&store, &records).await;
        eprintln!(
            "round {round}: {} after {delay:?}: acked < {acked}, journal {} records, \
             {segs} segments stored through {stored}, {files} files verified",
            PHASES[usize::try_from(phase).unwrap()],
            records.len()
        );
    }

    // The last start: catch up, then a clean stop with the changes stopped.
    stop.store(true, Ordering::Relaxed);
    let steps = churn.await.unwrap();
    let mut daemon = cfg.start(&opts).unwrap();
    daemon
        .settle(Duration::from_secs(3), "final")
        .await
        .unwrap();
    let exit = daemon.terminate().unwrap();
    assert!(
        exit.success(),
        "rewindd exited with {exit}\n{}",
        daemon.log_tail(40)
    );

    let Recorded { state, records, .. } =
        check_recorded(&cp.readonly_client(), "rancher", &data).await;
    let n = records.len() as u64;
    still_there(&mut known, &records, "final");
    let verified = verify_store(&store, local_store.as_deref()).await;
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
        "{kills} kills (seed {seed:#x}; phases ingest/steady/snapshot/upload {phases:?}) in {:?}; \
         {steps} change steps; {n} records, {} objects, {segs} segments, {} snapshots; \
         highest acknowledged seq {}; {verified} store files verified",
        started.elapsed(),
        state.len(),
        snaps.len(),
        max_acked.saturating_sub(1)
    );
    assert!(!snaps.is_empty(), "snapshots were made between the kills");
}
