//! Fault-matrix cell "S3 store down": rewindd ships to a real S3 server
//! (Garage) under steady changes; the server is killed for
//! `REWIND_S3_DOWN_SECS` (default 30; the long form is 600, ten minutes) and
//! started again. While it is down rewindd must stay up and keep
//! acknowledging events (the journal is healthy and `next_seq` grows); once
//! it is back, the store must catch up: its segments contiguous from seq 1
//! to the journal's end and equal to the journal's events, and the journal
//! equal to a fresh LIST.
//!
//! Needs the `garage` binary (`REWIND_GARAGE`, `~/.cargo/bin`, or `PATH`).

mod daemon_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use daemon_support::*;
use rewind_format::{EventRecord, Limits, SegmentReader};
use rewind_history::store::Store;
use rewind_tests::ControlPlane;
use rewind_tests::daemon::{DaemonConfig, RunOptions};
use rewind_tests::garage::Garage;

/// The disk budget the daemon runs with: room for the long form's ten
/// minutes of this churn (about 120 events/s) with a wide margin.
const BUDGET: u64 = 512 << 20;

/// Bytes of the files under `dir`, as the daemon's local data.
fn tree_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => tree_bytes(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

fn down_secs() -> u64 {
    std::env::var("REWIND_S3_DOWN_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30)
}

/// Stored segments: contiguous from 1 and equal to the journal. Returns the
/// last stored seq.
async fn stored_through(store: &Store, records: Option<&[EventRecord]>) -> u64 {
    let mut next = 1;
    for s in store.list_segments().await.unwrap() {
        assert_eq!(s.first_seq, next, "stored segments are contiguous");
        if let Some(records) = records {
            let bytes = store.get_segment(&s).await.unwrap();
            for e in SegmentReader::open(&bytes, None, Limits::default())
                .unwrap()
                .read_all()
                .unwrap()
            {
                assert_eq!(&e, &records[usize::try_from(e.seq).unwrap() - 1]);
            }
        }
        next = s.last_seq + 1;
    }
    next - 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_down_then_back_loses_nothing_and_catches_up() {
    rewind_history::install_tls_provider();
    let _ = rewindd_bin();
    let mut garage = tokio::task::spawn_blocking(Garage::start)
        .await
        .unwrap()
        .unwrap();
    let cp = ControlPlane::start().await.unwrap();
    let admin = cp.admin_client();
    let objects = load_plane(&admin, 5).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cfg = DaemonConfig::new(&data, cp.readonly_kubeconfig_path())
        .s3(&garage, "down-test")
        .snapshot_after_events(500)
        .disk_budget_bytes(BUDGET);
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
    // Something is stored before the outage.
    let t0 = Instant::now();
    while stored_through(&store, None).await == 0 {
        assert!(t0.elapsed() < Duration::from_secs(60), "nothing stored");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let before = stored_through(&store, None).await;

    garage.stop();
    let down_at = daemon.status().unwrap().journal.next_seq;
    let t0 = Instant::now();
    let mut healthy = true;
    let mut local_max = tree_bytes(&data);
    while t0.elapsed() < Duration::from_secs(down_secs()) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        daemon.check_running().unwrap();
        if let Some(s) = daemon.status() {
            healthy &= s.journal.healthy;
        }
        local_max = local_max.max(tree_bytes(&data));
    }
    // What the daemon keeps locally while it cannot ship (journal and sealed
    // files) stays within the configured budget through the outage.
    assert!(
        local_max < BUDGET,
        "local data reached {local_max} bytes, over the {BUDGET}-byte budget"
    );
    let up_at = daemon.status().unwrap().journal.next_seq;
    assert!(healthy, "the journal stays healthy with the store down");
    assert!(
        up_at > down_at + 50,
        "events kept being acknowledged while the store was down ({down_at} -> {up_at})"
    );
    tokio::task::block_in_place(|| garage.restart()).unwrap();
    stop.store(true, Ordering::Relaxed);
    let steps = churn.await.unwrap();
    daemon
        .settle(Duration::from_secs(3), "after the outage")
        .await
        .unwrap();
    let end = daemon.status().unwrap().journal.next_seq - 1;
    let t0 = Instant::now();
    while stored_through(&store, None).await < end {
        assert!(
            t0.elapsed() < Duration::from_secs(180),
            "the store did not catch up: stored through {} of {end}",
            stored_through(&store, None).await
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let caught_up = t0.elapsed();
    let exit = daemon.terminate().unwrap();
    assert!(exit.success(), "rewindd exited with {exit}");

    let Recorded { records, .. } = check_recorded(&cp.readonly_client(), "rancher", &data).await;
    let n = records.len() as u64;
    let stored = stored_through(&store, Some(&records)).await;
    assert_eq!(stored, n, "every durable event is stored");
    eprintln!(
        "store down {}s: stored through {before} before, acknowledged {down_at} -> {up_at} while \
         down; caught up to {end} {caught_up:?} after the store and the changes stopped; \
         {steps} change steps, {n} records, 0 differences; local data at most {:.1} MiB \
         during the outage (budget {} MiB)",
        down_secs(),
        local_max as f64 / f64::from(1u32 << 20),
        BUDGET >> 20
    );
}
