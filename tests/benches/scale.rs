//! How Rewind's times and memory grow with the size of the management plane,
//! end to end with the real binaries.
//!
//! `cargo bench -p rewind-tests --bench scale` (sizes with
//! `REWIND_SCALE_SIZES=10000,30000,100000`, the default; an SVG plot with
//! `REWIND_SCALE_SVG=docs/scale.svg`). For each size N:
//! 1. a fresh local control plane is loaded with a generated Rancher-like
//!    plane of about N objects (`fixtures::generate`, ~21 objects per
//!    downstream cluster);
//! 2. `rewindd` (release build, read-only identity, local store) starts and
//!    records it: **ingestion** is the time from start until it has settled
//!    (initial LIST of every type, journaled durably); its RSS is sampled
//!    every 100 ms from start to the end, and the peak is **daemon memory**;
//! 3. **snapshot**: `rewindd snapshot --wait` over the admin socket;
//! 4. N/2 updates (annotation patches spread over every generated object;
//!    at most `REWIND_SCALE_UPDATES_MAX` when set), recorded and sealed into
//!    segments;
//! 5. **point-in-time reconstruction**: `rewind show --at latest`, which reads
//!    the snapshot plus the N/2 events from the store and folds them (the
//!    CLI's wall time, process start included);
//! 6. **restore**: `rewind restore --at latest --yes` into a second, empty
//!    control plane (CRDs first, then everything), wall time; only for sizes
//!    up to `REWIND_SCALE_RESTORE_MAX` (default 300,000: a million objects
//!    restore in about half an hour here), `-` in the table above it.
//!
//! Each row is also printed to stderr as soon as its size is done, so a run
//! that fails at a large size keeps the smaller ones.
//!
//! Every figure is one run on a shared 2-core machine, so read the curves'
//! shape more than single points. The 1,000,000-event reconstruction target
//! is measured by the `reconstruct` bench; here the events per size are N/2
//! because each one is a real API write.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "figures are approximate"
)]

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use kube::api::{Patch, PatchParams};
use rewind_tests::ControlPlane;
use rewind_tests::daemon::{self, DaemonConfig, RunOptions};
use rewind_tests::drill::restore::rewind_cli;
use rewind_tests::fixtures::{self, PlaneSpec};
use serde_json::json;

/// Objects the generator makes per downstream cluster (measured: 50
/// clusters give 1,051 objects).
const OBJECTS_PER_CLUSTER: usize = 21;

/// The largest size restored unless `REWIND_SCALE_RESTORE_MAX` says otherwise.
const RESTORE_MAX: usize = 300_000;

fn env_usize(name: &str) -> Option<usize> {
    std::env::var(name).ok()?.trim().parse().ok()
}

#[derive(Debug, Clone, Default)]
struct Row {
    objects: usize,
    events: u64,
    load_s: f64,
    ingest_s: f64,
    rss_peak_mb: f64,
    /// Peaks of the three phases: first sync, snapshot, updates and seal.
    rss_phase_peaks_mb: [f64; 3],
    rss_end_mb: f64,
    snapshot_s: f64,
    snapshot_mb: f64,
    updates: usize,
    pit_s: f64,
    restore_s: f64,
    restored: usize,
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Samples the RSS of `pid` every 100 ms until `stop`; keeps the peak.
fn sample_rss(pid: u32, stop: Arc<AtomicBool>, peak: Arc<AtomicU64>, last: Arc<AtomicU64>) {
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let kb = rss_kb(pid);
            if kb > 0 {
                peak.fetch_max(kb, Ordering::Relaxed);
                last.store(kb, Ordering::Relaxed);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
}

async fn run_size(n: usize, bins: &daemon::Binaries) -> Row {
    let mut row = Row::default();
    let cp = ControlPlane::start().await.unwrap();
    let admin = cp.admin_client();
    fixtures::install_rancher_crds(&admin).await.unwrap();
    let clusters = (n / OBJECTS_PER_CLUSTER).max(1);
    let objects = fixtures::generate(&PlaneSpec::new(clusters));
    let t = Instant::now();
    let loaded = fixtures::load(&admin, &objects, 32).await.unwrap();
    row.load_s = t.elapsed().as_secs_f64();
    row.objects = loaded.created;
    eprintln!(
        "[scale {n}] loaded {} objects in {:.1} s",
        loaded.created, row.load_s
    );

    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("rewindd");
    std::fs::create_dir_all(&data).unwrap();
    let cfg = DaemonConfig::drill(
        &data,
        cp.readonly_kubeconfig_path(),
        daemon::free_port().unwrap(),
    );
    let t = Instant::now();
    let mut d = cfg.start(&RunOptions::operator(&bins.rewindd)).unwrap();
    let (stop, peak, last) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    sample_rss(d.pid(), stop.clone(), peak.clone(), last.clone());
    let settled = d
        .settle(Duration::from_secs(1), "initial list")
        .await
        .unwrap();
    // The settle check waits 1 s of quiet; that second is not ingestion.
    row.ingest_s = (t.elapsed().as_secs_f64() - 1.0).max(0.0);
    // Each phase's peak: the sampler keeps raising `peak`; reading and
    // resetting it at a phase's end gives that phase's own.
    let mut phase_peaks = [0u64; 3];
    phase_peaks[0] = peak.swap(0, Ordering::Relaxed);
    eprintln!("[scale {n}] rewindd settled in {:.1} s", row.ingest_s);

    let t = Instant::now();
    d.snapshot("scale").await.unwrap();
    row.snapshot_s = t.elapsed().as_secs_f64();
    // A snapshot shorter than the sampling interval has no sample of its
    // own; the latest sample stands in for its peak.
    phase_peaks[1] = peak
        .swap(0, Ordering::Relaxed)
        .max(last.load(Ordering::Relaxed));
    let store = cfg.open_store().await.unwrap();
    let snap = daemon::labelled_snapshot(&store, "scale").await.unwrap();
    row.snapshot_mb = snap.size as f64 / 1e6;

    // N/2 real updates, spread over every generated object.
    let updates = (n / 2).min(env_usize("REWIND_SCALE_UPDATES_MAX").unwrap_or(usize::MAX));
    let targets: Vec<_> = objects
        .iter()
        .filter(|o| !(o.kind == "Namespace" && o.group.is_empty()))
        .collect();
    stream::iter(0..updates)
        .map(|i| {
            let o = targets[i % targets.len()];
            let api = fixtures::api_for(&admin, o);
            let name = o.name.clone();
            async move {
                let patch =
                    json!({"metadata": {"annotations": {"rewind.scale/round": i.to_string()}}});
                api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .unwrap();
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<()>>()
        .await;
    row.updates = updates;
    let settled_after = d
        .settle(Duration::from_secs(1), "after the updates")
        .await
        .unwrap();
    let last_seq = settled_after.journal.next_seq.saturating_sub(1);
    daemon::wait_sealed(&store, last_seq).await.unwrap();
    row.events = settled_after.journal.next_seq;
    stop.store(true, Ordering::Relaxed);
    phase_peaks[2] = peak.load(Ordering::Relaxed);
    row.rss_phase_peaks_mb = phase_peaks.map(|kb| kb as f64 / 1024.0);
    row.rss_peak_mb = row.rss_phase_peaks_mb.iter().copied().fold(0.0, f64::max);
    row.rss_end_mb = last.load(Ordering::Relaxed) as f64 / 1024.0;
    let _ = settled;
    d.kill().unwrap();
    drop(cp);

    let store_arg = data.join("store").display().to_string();
    let t = Instant::now();
    let show = rewind_cli(
        &bins.rewind,
        &[
            "--store".into(),
            store_arg.clone(),
            "show".into(),
            "--at".into(),
            "latest".into(),
        ],
    )
    .await
    .unwrap();
    row.pit_s = t.elapsed().as_secs_f64();
    assert!(show.ok, "rewind show failed: {}", show.output);

    if n > env_usize("REWIND_SCALE_RESTORE_MAX").unwrap_or(RESTORE_MAX) {
        row.restore_s = f64::NAN;
        eprintln!(
            "[scale {n}] show {:.1} s, restore not run (above the restore size)",
            row.pit_s
        );
        return row;
    }
    let target = ControlPlane::start().await.unwrap();
    let t = Instant::now();
    let restore = rewind_cli(
        &bins.rewind,
        &[
            "--store".into(),
            store_arg,
            "restore".into(),
            "--at".into(),
            "latest".into(),
            "--to".into(),
            target.admin_kubeconfig_path().display().to_string(),
            "--yes".into(),
            "--concurrency".into(),
            "32".into(),
        ],
    )
    .await
    .unwrap();
    row.restore_s = t.elapsed().as_secs_f64();
    assert!(restore.ok, "rewind restore failed: {}", restore.output);
    row.restored = row.objects;
    eprintln!(
        "[scale {n}] show {:.1} s, restore {:.1} s",
        row.pit_s, row.restore_s
    );
    row
}

/// One line of the chart: its name, colour and value per row.
type Series = (&'static str, &'static str, fn(&Row) -> f64);

/// A line chart of `series` (name, points) against object counts.
fn svg(rows: &[Row]) -> String {
    let (w, h, left, right, top, bottom) = (720.0, 420.0, 70.0, 190.0, 30.0, 50.0);
    let max_x = rows.iter().map(|r| r.objects).max().unwrap_or(1) as f64;
    let series: [Series; 5] = [
        ("ingestion (s)", "#1f77b4", |r| r.ingest_s),
        ("snapshot (s)", "#ff7f0e", |r| r.snapshot_s),
        ("reconstruct (s)", "#2ca02c", |r| r.pit_s),
        ("restore (s)", "#d62728", |r| r.restore_s),
        ("RSS peak (100 MB)", "#9467bd", |r| r.rss_peak_mb / 100.0),
    ];
    let max_y = rows
        .iter()
        .flat_map(|r| series.iter().map(move |(_, _, f)| f(r)))
        .filter(|v| v.is_finite())
        .fold(1.0_f64, f64::max)
        * 1.1;
    let px = |x: f64| left + (x / max_x) * (w - left - right);
    let py = |y: f64| h - bottom - (y / max_y) * (h - top - bottom);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        s,
        r#"<rect width="{w}" height="{h}" fill="white"/><text x="{left}" y="18" font-size="14">Rewind at scale: seconds (and daemon RSS peak in 100 MB) by objects recorded</text>"#
    );
    // Axes and ticks.
    let _ = writeln!(
        s,
        r#"<line x1="{left}" y1="{}" x2="{}" y2="{}" stroke="black"/><line x1="{left}" y1="{top}" x2="{left}" y2="{}" stroke="black"/>"#,
        h - bottom,
        w - right,
        h - bottom,
        h - bottom
    );
    for i in 0..=5 {
        let y = max_y * f64::from(i) / 5.0;
        let _ = writeln!(
            s,
            r##"<text x="{}" y="{}" text-anchor="end">{y:.0}</text><line x1="{left}" y1="{}" x2="{}" y2="{}" stroke="#ddd"/>"##,
            left - 6.0,
            py(y) + 4.0,
            py(y),
            w - right,
            py(y)
        );
    }
    for r in rows {
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">{}k</text>"#,
            px(r.objects as f64),
            h - bottom + 18.0,
            r.objects / 1000
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">objects</text>"#,
        (left + w - right) / 2.0,
        h - 12.0
    );
    for (i, (name, color, f)) in series.iter().enumerate() {
        let pts: Vec<String> = rows
            .iter()
            .filter(|r| f(r).is_finite())
            .map(|r| format!("{:.1},{:.1}", px(r.objects as f64), py(f(r))))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            pts.join(" ")
        );
        for p in &pts {
            let (x, y) = p.split_once(',').unwrap();
            let _ = writeln!(s, r#"<circle cx="{x}" cy="{y}" r="3" fill="{color}"/>"#);
        }
        let ly = top + 20.0 + 20.0 * i as f64;
        let _ = writeln!(
            s,
            r#"<line x1="{}" y1="{ly}" x2="{}" y2="{ly}" stroke="{color}" stroke-width="3"/><text x="{}" y="{}">{name}</text>"#,
            w - right + 10.0,
            w - right + 30.0,
            w - right + 36.0,
            ly + 4.0
        );
    }
    s.push_str("</svg>\n");
    s
}

/// Rows of a table this bench printed (to draw the plot again from a kept
/// output, `REWIND_SCALE_TABLE=FILE`).
fn rows_from_table(text: &str) -> Vec<Row> {
    text.lines()
        .skip_while(|l| !l.contains("ingest/s"))
        .skip(1)
        .filter_map(|l| {
            let c: Vec<&str> = l.split_whitespace().collect();
            let f = |i: usize| c.get(i).and_then(|v| v.parse::<f64>().ok());
            (c.len() == 14).then_some(())?;
            Some(Row {
                objects: c[0].parse().ok()?,
                events: c[1].parse().ok()?,
                load_s: f(2)?,
                ingest_s: f(3)?,
                rss_peak_mb: f(5)?,
                rss_end_mb: f(7)?,
                snapshot_s: f(9)?,
                snapshot_mb: f(10)?,
                pit_s: f(11)?,
                restore_s: if c[12] == "-" { f64::NAN } else { f(12)? },
                restored: c[0].parse().ok()?,
                updates: 0,
                rss_phase_peaks_mb: [0.0; 3],
            })
        })
        .collect()
}

/// The table's heading line.
fn header() -> String {
    format!(
        "{:>8} {:>8} {:>9} {:>10} {:>10} {:>10} {:>10} {:>10} {:>11} {:>10} {:>11} {:>10}",
        "objects",
        "events",
        "load s",
        "ingest s",
        "ingest/s",
        "RSS peak",
        "RSS end",
        "snap s",
        "snap MB",
        "show s",
        "restore s",
        "restore/s"
    )
}

/// One size's line of the table; `-` for a restore not run.
fn table_row(r: &Row) -> String {
    let (restore, rate) = if r.restore_s.is_finite() {
        (
            format!("{:.1}", r.restore_s),
            format!("{:.0}", r.restored as f64 / r.restore_s.max(0.001)),
        )
    } else {
        ("-".to_owned(), "-".to_owned())
    };
    format!(
        "{:>8} {:>8} {:>9.1} {:>10.1} {:>10.0} {:>7.0} MB {:>7.0} MB {:>10.2} {:>11.1} {:>10.2} {:>11} {:>10}",
        r.objects,
        r.events,
        r.load_s,
        r.ingest_s,
        r.objects as f64 / r.ingest_s.max(0.001),
        r.rss_peak_mb,
        r.rss_end_mb,
        r.snapshot_s,
        r.snapshot_mb,
        r.pit_s,
        restore,
        rate
    )
}

/// `REWIND_SCALE_SVG`, relative to the workspace root (cargo runs benches
/// in the package's directory).
fn svg_path() -> Option<std::path::PathBuf> {
    let p = std::path::PathBuf::from(std::env::var_os("REWIND_SCALE_SVG")?);
    Some(if p.is_absolute() {
        p
    } else {
        rewind_tests::controlplane::workspace_root().join(p)
    })
}

#[tokio::main]
async fn main() {
    rewind_history::install_tls_provider();
    if let Ok(table) = std::env::var("REWIND_SCALE_TABLE") {
        let rows = rows_from_table(&std::fs::read_to_string(&table).unwrap());
        assert!(!rows.is_empty(), "no scale rows in {table}");
        let path = svg_path().expect("REWIND_SCALE_SVG names the plot");
        std::fs::write(&path, svg(&rows)).unwrap();
        println!(
            "plot of {} rows from {table} written to {}",
            rows.len(),
            path.display()
        );
        return;
    }
    let sizes: Vec<usize> = std::env::var("REWIND_SCALE_SIZES")
        .unwrap_or_else(|_| "10000,30000,100000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let bins = daemon::binaries("[scale]").unwrap();
    let mut rows = Vec::new();
    for &n in &sizes {
        let row = run_size(n, &bins).await;
        eprintln!("[scale {n}] row:\n{}\n{}", header(), table_row(&row));
        rows.push(row);
    }
    println!("scale run: generated Rancher-like planes, real rewindd/rewind, local control plane");
    println!("{}", header());
    for r in &rows {
        println!("{}", table_row(r));
    }
    println!("rewindd RSS peak by phase (first sync / on-demand snapshot / updates and sealing):");
    for r in &rows {
        let [sync, snap, updates] = r.rss_phase_peaks_mb;
        println!(
            "{:>8} objects: {sync:.0} MB / {snap:.0} MB / {updates:.0} MB",
            r.objects
        );
    }
    if let Some(path) = svg_path() {
        std::fs::write(&path, svg(&rows)).unwrap();
        println!("plot written to {}", path.display());
    }
}
