//! Soak: rewindd records a steady stream of changes (default 1,000 events/s)
//! for `REWIND_SOAK_MINUTES` (default 30) while it seals every second,
//! uploads to a real S3 server (Garage) and makes a snapshot every
//! `REWIND_SOAK_SNAPSHOT_EVENTS` (default 60,000) sealed events. Every 10 s
//! it samples the daemon's RSS and open file descriptors (from `/proc`),
//! the journal's next seq, the journal directory's size, and the stored
//! segments and snapshots, into a CSV, and draws them as an SVG.
//!
//! Long form, run by hand on a quiet machine (release daemon):
//!
//! ```sh
//! cargo build --release -p rewind-daemon
//! REWIND_REWINDD=$PWD/target/release/rewindd REWIND_SOAK_MINUTES=30 \
//!   cargo test --release -p rewind-tests --test reliability_soak -- --ignored --nocapture
//! ```
//!
//! Output: `REWIND_SOAK_OUT` (default `docs/soak`) + `.csv` and `.svg`.
//! `REWIND_SOAK_RATE` changes the rate. Must hold: the daemon stays up and
//! healthy; after a 2-minute warm-up (or the first third of a shorter run)
//! the open fds never exceed the first sample after warm-up by more than
//! 16, and RSS stops growing: the last third's mean RSS (of the samples
//! after warm-up) is within 1.1x of the middle third's (see [`rss_flat`]);
//! at the end the journal equals a fresh LIST and the store holds every
//! durable event.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "figures are approximate"
)]

mod daemon_support;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use daemon_support::*;
use kube::api::{Api, Patch, PatchParams, PostParams};
use rewind_tests::ControlPlane;
use rewind_tests::daemon::{DaemonConfig, RunOptions};
use rewind_tests::garage::Garage;

const CONFIGMAPS: usize = 200;
const NS: &str = "cattle-system";

/// One 10-second sample.
#[derive(Debug, Clone)]
struct Sample {
    t_s: f64,
    rss_kib: u64,
    fds: u64,
    next_seq: u64,
    changes: u64,
    journal_bytes: u64,
    segments: usize,
    snapshots: usize,
}

fn rss_kib(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn fds(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count() as u64)
        .unwrap_or(0)
}

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Patches ConfigMaps at `rate` per second with at most 64 in flight until
/// told to stop; returns (changes made, ticks that could not keep up).
fn spawn_load(
    admin: kube::Client,
    rate: u64,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(admin, NS);
        let permits = Arc::new(tokio::sync::Semaphore::new(64));
        let per_tick = (rate / 100).max(1);
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut i = 0u64;
        let mut behind = 0u64;
        while !stop.load(Ordering::Relaxed) {
            tick.tick().await;
            for _ in 0..per_tick {
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    behind += 1;
                    continue;
                };
                let cms = cms.clone();
                let done = done.clone();
                let name = format!("soak-{}", i % CONFIGMAPS as u64);
                let value = format!("{i:020}-{}", "x".repeat(200));
                i += 1;
                tokio::spawn(async move {
                    let patch = serde_json::json!({"data": {"v": value}});
                    if cms
                        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                        .is_ok()
                    {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    drop(permit);
                });
            }
        }
        let _ = permits.acquire_many(64).await;
        behind
    })
}

/// `(t, y)` points scaled into a `w` x `h` box at `(x0, y0)`; returns the
/// polyline's points and the y value at the top of the box.
fn polyline(series: &[(f64, f64)], x0: f64, y0: f64, w: f64, h: f64) -> (String, f64) {
    let tmax = series.last().map_or(1.0, |p| p.0).max(1.0);
    let ymax = series.iter().map(|p| p.1).fold(1.0f64, f64::max) * 1.1;
    let pts: Vec<String> = series
        .iter()
        .map(|(t, y)| format!("{:.1},{:.1}", x0 + t / tmax * w, y0 + h - y / ymax * h))
        .collect();
    (pts.join(" "), ymax)
}

/// Three panels (RSS, fds, recorded events/s) over time, hand-drawn.
fn svg(samples: &[Sample], title: &str) -> String {
    let (w, h, left, top, gap) = (760.0, 150.0, 70.0, 40.0, 50.0);
    let rss: Vec<(f64, f64)> = samples
        .iter()
        .map(|s| (s.t_s, s.rss_kib as f64 / 1024.0))
        .collect();
    let fds: Vec<(f64, f64)> = samples.iter().map(|s| (s.t_s, s.fds as f64)).collect();
    let rate: Vec<(f64, f64)> = samples
        .windows(2)
        .map(|p| {
            let dt = (p[1].t_s - p[0].t_s).max(0.001);
            (
                p[1].t_s,
                p[1].next_seq.saturating_sub(p[0].next_seq) as f64 / dt,
            )
        })
        .collect();
    let panels = [
        ("RSS (MiB)", rss),
        ("open fds", fds),
        ("recorded events/s", rate),
    ];
    let total_h = top + 3.0 * (h + gap);
    let tmax = samples.last().map_or(0.0, |s| s.t_s);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{total_h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{left}\" y=\"22\" font-size=\"14\">{title}</text>\n",
        left + w + 20.0
    );
    for (i, (label, series)) in panels.iter().enumerate() {
        let y0 = top + i as f64 * (h + gap);
        let (pts, ymax) = polyline(series, left, y0, w, h);
        let _ = write!(
            out,
            "<rect x=\"{left}\" y=\"{y0}\" width=\"{w}\" height=\"{h}\" fill=\"none\" stroke=\"#999\"/>\n\
             <text x=\"{left}\" y=\"{}\">{label}</text>\n\
             <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{ymax:.0}</text>\n\
             <text x=\"{}\" y=\"{}\" text-anchor=\"end\">0</text>\n\
             <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{tmax:.0} s</text>\n\
             <polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\" points=\"{pts}\"/>\n",
            y0 - 5.0,
            left - 5.0,
            y0 + 10.0,
            left - 5.0,
            y0 + h,
            left + w,
            y0 + h + 15.0,
        );
    }
    out.push_str("</svg>\n");
    out
}

fn out_base() -> PathBuf {
    std::env::var_os("REWIND_SOAK_OUT").map_or_else(
        || rewind_tests::controlplane::workspace_root().join("docs/soak"),
        PathBuf::from,
    )
}

fn mean(v: &[Sample], f: impl Fn(&Sample) -> u64) -> f64 {
    v.iter().map(|s| f(s) as f64).sum::<f64>() / v.len().max(1) as f64
}

/// RSS means of the first, middle and last third of `after` (the samples
/// after warm-up), KiB.
fn rss_thirds(after: &[Sample]) -> (f64, f64, f64) {
    let third = (after.len() / 3).max(1);
    let first = mean(&after[..third.min(after.len())], |s| s.rss_kib);
    let middle = mean(
        &after[third.min(after.len())..(2 * third).min(after.len())],
        |s| s.rss_kib,
    );
    let last = mean(&after[after.len().saturating_sub(third)..], |s| s.rss_kib);
    (first, middle, last)
}

/// Whether RSS stayed flat: the last third's mean is within 1.1x of the
/// middle third's.
///
/// Why not the first third: sled's page cache (64 MiB by default) fills as
/// the journal grows, so RSS climbs for the first ten minutes or so at
/// 1,000 events/s and then holds. The 30-minute run at 992 changes/s
/// (`docs/soak.csv`) went 52 -> 139 MiB in 12 minutes and then stayed at
/// 139-150 MiB for 18; its first-third/last-third ratio (1.51) failed the
/// earlier 1.5x bound although nothing grew after the cache was full. A
/// leak keeps growing, and shows between the middle and the last third.
fn rss_flat(after: &[Sample]) -> Result<(), String> {
    let (first, middle, last) = rss_thirds(after);
    if last <= middle * 1.1 {
        Ok(())
    } else {
        Err(format!(
            "RSS grew: thirds after warm-up {:.1} / {:.1} / {:.1} MiB",
            first / 1024.0,
            middle / 1024.0,
            last / 1024.0
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "soak: minutes to hours; run by hand (see the file's doc)"]
async fn soak_steady_load_keeps_rss_and_fds_flat() {
    let minutes = env_u64("REWIND_SOAK_MINUTES", 30);
    let rate = env_u64("REWIND_SOAK_RATE", 1000);
    let snapshot_events = env_u64("REWIND_SOAK_SNAPSHOT_EVENTS", 60_000);
    rewind_history::install_tls_provider();
    let garage = tokio::task::spawn_blocking(Garage::start)
        .await
        .unwrap()
        .unwrap();
    let cp = ControlPlane::start().await.unwrap();
    let admin = cp.admin_client();
    load_plane(&admin, 2).await;
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(admin.clone(), NS);
    for i in 0..CONFIGMAPS {
        let cm = serde_json::from_value(serde_json::json!({
            "metadata": {"name": format!("soak-{i}"), "namespace": NS}, "data": {"v": "0"}
        }))
        .unwrap();
        cms.create(&PostParams::default(), &cm).await.unwrap();
    }

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cfg = DaemonConfig::new(&data, cp.readonly_kubeconfig_path())
        .s3(&garage, "soak")
        .snapshot_after_events(snapshot_events);
    let store = cfg.open_store().await.unwrap();
    let mut daemon = cfg.start_settled(&RunOptions::default()).await.unwrap();
    let pid = daemon.pid();

    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let load = spawn_load(admin.clone(), rate, stop.clone(), done.clone());
    let start = Instant::now();
    let until = Duration::from_secs(minutes * 60);
    let mut samples: Vec<Sample> = Vec::new();
    let mut healthy = true;
    loop {
        daemon.check_running().unwrap();
        let st = daemon.status();
        healthy &= st.as_ref().is_none_or(|s| s.journal.healthy);
        let s = Sample {
            t_s: start.elapsed().as_secs_f64(),
            rss_kib: rss_kib(pid),
            fds: fds(pid),
            next_seq: st.map_or(0, |s| s.journal.next_seq),
            changes: done.load(Ordering::Relaxed),
            journal_bytes: dir_bytes(&data.join("journal")),
            segments: store.list_segments().await.map_or(0, |v| v.len()),
            snapshots: store.list_snapshots().await.map_or(0, |v| v.len()),
        };
        eprintln!("{s:?}");
        samples.push(s);
        if start.elapsed() >= until {
            break;
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let behind = load.await.unwrap();

    let base = out_base();
    let mut csv =
        String::from("t_s,rss_kib,fds,next_seq,changes,journal_bytes,segments,snapshots\n");
    for s in &samples {
        let _ = writeln!(
            csv,
            "{:.1},{},{},{},{},{},{},{}",
            s.t_s,
            s.rss_kib,
            s.fds,
            s.next_seq,
            s.changes,
            s.journal_bytes,
            s.segments,
            s.snapshots
        );
    }
    std::fs::write(base.with_extension("csv"), csv).unwrap();
    let secs = samples.last().map_or(1.0, |s| s.t_s);
    let achieved = samples.last().map_or(0, |s| s.changes) as f64 / secs;
    let title = format!(
        "rewindd soak: {minutes} min at {achieved:.0} changes/s (target {rate}), S3 store, seal 1 s, snapshot every {snapshot_events} events"
    );
    std::fs::write(base.with_extension("svg"), svg(&samples, &title)).unwrap();

    daemon
        .settle(Duration::from_secs(3), "after the load")
        .await
        .unwrap();
    let exit = daemon.terminate().unwrap();
    assert!(exit.success(), "rewindd exited with {exit}");
    let n = check_recorded(&cp.readonly_client(), "rancher", &data)
        .await
        .records
        .len() as u64;
    let stored = store
        .list_segments()
        .await
        .unwrap()
        .last()
        .map_or(0, |s| s.last_seq);
    assert_eq!(stored, n, "the store holds every durable event");

    let warm = if until >= Duration::from_secs(360) {
        120.0
    } else {
        secs / 3.0
    };
    let after: Vec<Sample> = samples.iter().filter(|s| s.t_s >= warm).cloned().collect();
    let (first, middle, last) = rss_thirds(&after);
    let fd0 = after.first().map_or(0, |s| s.fds);
    let fd_max = after.iter().map(|s| s.fds).max().unwrap_or(0);
    let snaps = samples.last().map_or(0, |s| s.snapshots);
    eprintln!(
        "soak {minutes} min: {:.0} changes/s achieved (target {rate}, {behind} slots skipped), \
         {n} records, {snaps} snapshots, {} segments stored; RSS thirds after warm-up \
         {:.1}/{:.1}/{:.1} MiB (max {:.1}); fds {fd0} -> max {fd_max}; journal dir max {:.1} MiB; \
         healthy throughout: {healthy}; CSV and SVG at {}",
        achieved,
        samples.last().map_or(0, |s| s.segments),
        first / 1024.0,
        middle / 1024.0,
        last / 1024.0,
        samples.iter().map(|s| s.rss_kib).max().unwrap_or(0) as f64 / 1024.0,
        samples.iter().map(|s| s.journal_bytes).max().unwrap_or(0) as f64 / 1048576.0,
        base.display()
    );
    assert!(healthy, "the journal stayed healthy");
    assert!(snaps > 0, "snapshots were made during the soak");
    assert!(fd_max <= fd0 + 16, "open fds grew: {fd0} -> {fd_max}");
    if let Err(e) = rss_flat(&after) {
        panic!("{e}");
    }
}

fn sample(t_s: f64, rss_mib: f64) -> Sample {
    Sample {
        t_s,
        rss_kib: (rss_mib * 1024.0) as u64,
        fds: 66,
        next_seq: 0,
        changes: 0,
        journal_bytes: 0,
        segments: 0,
        snapshots: 0,
    }
}

/// The shape of the 30-minute run: a climb while sled's cache fills, then
/// a plateau. It failed the old first-vs-last-third bound.
#[test]
fn regression_rss_check_accepts_a_cache_filling_then_flat() {
    let series: Vec<Sample> = (12..180)
        .map(|i| {
            let t = f64::from(i) * 10.0;
            let mib = if t < 740.0 {
                53.0 + (t - 120.0) * 0.146
            } else {
                143.0 + (t - 740.0) * 0.007
            };
            sample(t, mib)
        })
        .collect();
    let (first, _, last) = rss_thirds(&series);
    assert!(
        last > first * 1.5,
        "the series is the one the old bound refused"
    );
    rss_flat(&series).unwrap();
}

#[test]
fn rss_check_refuses_steady_growth() {
    // 60 MiB growing 2 MiB a minute, never levelling: a leak. (The bound
    // cannot see a leak much slower than about 1 MiB a minute in 30 minutes.)
    let series: Vec<Sample> = (12..180)
        .map(|i| sample(f64::from(i) * 10.0, 60.0 + f64::from(i) * 2.0 / 6.0))
        .collect();
    let err = rss_flat(&series).unwrap_err();
    assert!(err.contains("RSS grew"), "{err}");
    // Flat passes.
    let flat: Vec<Sample> = (12..180)
        .map(|i| sample(f64::from(i) * 10.0, 100.0))
        .collect();
    rss_flat(&flat).unwrap();
}
