//! Snapshot of 100,000 objects taken while ingesting, and what it costs
//! ingestion.
//!
//! A real journal is filled with 100,000 Rancher-like objects (~2 KB of
//! JSON each) and sealed. Then, in the same run:
//! 1. baseline: durable ingestion of updates alone, events/s;
//! 2. a snapshot (fold of the sealed segments into a snapshot file) on one
//!    thread while the same ingestion runs on another; its time, MB/s of
//!    object JSON and size; and the ingestion rate during it.
//!
//! Each round also prints the process's RSS before the snapshot and its
//! peak during it (snapshot plus the concurrent ingestion), MB, and the
//! ingestion's stalls: the 99th percentile and the longest time between
//! two consecutive commits (a batch of 1,000 events built and committed),
//! alone and during the snapshot. A snapshot that held the journal up
//! would show as a long gap during it.
//!
//! `cargo bench -p rewind-daemon --bench snapshot_while_ingesting`
//! (`REWIND_BENCH_OBJECTS` overrides 100,000; `REWIND_BENCH_FOLD_MB` the
//! fold's memory budget).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rewind_daemon::compact::{CompactConfig, Compactor, EventLog};
use rewind_daemon::journal::batch::StateChange;
use rewind_daemon::journal::{Journal, JournalOptions, ObjectCompressor};
use rewind_format::{EventBlockEncoder, EventKind, EventRecord, ResourceType};
use rewind_history::store::{RetentionPolicy, StoreConfig};

const TYPES: [(&str, &str, bool); 5] = [
    ("management.cattle.io", "clusters", false),
    ("management.cattle.io", "projects", true),
    ("management.cattle.io", "tokens", false),
    ("", "secrets", true),
    ("management.cattle.io", "clusterroletemplatebindings", true),
];

fn object(i: u64, version: u64) -> (ResourceType, Option<String>, String, Vec<u8>) {
    let (group, resource, namespaced) = TYPES[(i % 5) as usize];
    let rt = ResourceType {
        group: group.into(),
        version: "v3".into(),
        resource: resource.into(),
        kind: resource.trim_end_matches('s').into(),
        namespaced,
    };
    let ns = namespaced.then(|| format!("c-{:05}", i % 2000));
    let name = format!("{resource}-{i:07}");
    let filler: String = (0..24)
        .map(|k| format!("\"f{k}\":\"{:016x}\",", (i * 31 + k) ^ 0x5bd1_e995))
        .collect();
    let json = format!(
        r#"{{"apiVersion":"{group}/v3","kind":"{resource}","metadata":{{"name":"{name}","namespace":"{}","uid":"uid-{i}","resourceVersion":"{version}","labels":{{"cattle.io/creator":"norman","field.cattle.io/projectId":"p-{}"}},"annotations":{{"lifecycle.cattle.io/create.mgmt-auth-crtb-controller":"true"}}}},"spec":{{{filler}"displayName":"object {i}"}},"status":{{"conditions":[{{"type":"Ready","status":"True","lastUpdateTime":"2026-01-01T00:00:00Z"}}],"v":{version}}}}}"#,
        ns.clone().unwrap_or_default(),
        i % 97
    );
    (rt, ns, name, json.into_bytes())
}

fn record(i: u64, version: u64) -> EventRecord {
    let (rtype, namespace, name, object) = object(i, version);
    EventRecord {
        seq: 0,
        observed_at_ms: 1_780_000_000_000 + i64::try_from(version).unwrap(),
        cluster_id: "bench".into(),
        rtype,
        namespace,
        name,
        uid: format!("uid-{i}"),
        resource_version: version.to_string(),
        kind: EventKind::Applied,
        object,
    }
}

struct Ingest {
    journal: Journal,
    enc: EventBlockEncoder,
    comp: ObjectCompressor,
    version: u64,
}

impl Ingest {
    /// Commits `n` events in batches of 1,000 (one fsync each); returns
    /// the events, the time, and each batch's time (from the previous
    /// commit's end to its own).
    fn run(
        &mut self,
        ids: impl Iterator<Item = u64>,
        n: usize,
        stop: Option<&AtomicBool>,
    ) -> (u64, Duration, Vec<Duration>) {
        let start = Instant::now();
        let mut done = 0u64;
        let mut gaps = Vec::new();
        let mut ids = ids.take(n).peekable();
        while ids.peek().is_some() {
            if stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
                break;
            }
            let t = Instant::now();
            let mut b = self.journal.batch();
            for i in ids.by_ref().take(1000) {
                self.version += 1;
                let r = record(i, self.version);
                let object = self.comp.compress(&r.object).unwrap();
                b.record(r, StateChange::Put(object)).unwrap();
                done += 1;
            }
            let p = b.finish(&mut self.enc).unwrap();
            self.journal.commit(&p).unwrap();
            gaps.push(t.elapsed());
        }
        (done, start.elapsed(), gaps)
    }
}

/// The 99th percentile and the longest of `gaps`, ms.
fn stalls(mut gaps: Vec<Duration>) -> (f64, f64) {
    gaps.sort();
    let ms = |d: Option<&Duration>| d.map_or(0.0, |d| d.as_secs_f64() * 1000.0);
    let p99 = gaps.len().saturating_sub(1) * 99 / 100;
    (ms(gaps.get(p99)), ms(gaps.last()))
}

fn main() {
    let n: u64 = std::env::var("REWIND_BENCH_OBJECTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(&dir.path().join("journal"), &JournalOptions::default()).unwrap();
    let view: Arc<dyn EventLog> = Arc::new(journal.log_reader());
    let mut ingest = Ingest {
        journal,
        enc: EventBlockEncoder::new(1).unwrap(),
        comp: ObjectCompressor::new(1).unwrap(),
        version: 0,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let defaults = CompactConfig::default();
    let fold_memory_bytes = std::env::var("REWIND_BENCH_FOLD_MB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(defaults.fold_memory_bytes, |mb| mb << 20);
    println!("fold memory budget {} MiB", fold_memory_bytes >> 20);
    let settings = CompactConfig {
        snapshot_schedule: String::new(),
        fold_memory_bytes,
        ..defaults
    }
    .validate(
        StoreConfig::Local {
            path: dir.path().join("store"),
        },
        RetentionPolicy::default(),
    )
    .unwrap();
    let c = rt
        .block_on(Compactor::open(
            view,
            None,
            &dir.path().join("compact"),
            settings,
        ))
        .unwrap();

    let t = Instant::now();
    ingest.run(0..n, usize::try_from(n).unwrap(), None);
    let fill = t.elapsed();
    let json_bytes: u64 = (0..n).map(|i| object(i, 1).3.len() as u64).sum();
    let t = Instant::now();
    c.sealer().seal_all().unwrap();
    let seal = t.elapsed();

    let hwm_fill = peak_rss_mb();
    let mb = json_bytes as f64 / 1e6;
    println!("snapshot while ingesting ({n} objects, {mb:.1} MB of object JSON)");
    println!(
        "journal fill {:.2} s; sealing {n} events {:.2} s",
        fill.as_secs_f64(),
        seal.as_secs_f64()
    );
    println!(
        "{:<6} {:>8} {:>9} {:>8} {:>9} {:>12} {:>12} {:>7} {:>10} {:>10} {:>12} {:>12} {:>12} {:>12}",
        "round",
        "objects",
        "snap s",
        "MB/s",
        "size MB",
        "alone ev/s",
        "during ev/s",
        "ratio",
        "RSS MB",
        "peak MB",
        "alone p99 ms",
        "alone max ms",
        "during p99",
        "during max"
    );
    // Round 0: the first snapshot (every segment folded), alone, so its
    // own memory shows: RSS before and peak during, nothing else running.
    let rss_before = rss_mb("VmRSS:");
    reset_peak_rss();
    let t = Instant::now();
    let first = c.snapshot(None).unwrap();
    let first_t = t.elapsed();
    println!(
        "{:<6} {:>8} {:>9.2} {:>8.1} {:>9.2} {:>12} {:>12} {:>7} {:>10} {:>10} {:>12} {:>12} {:>12} {:>12}",
        0,
        first.objects,
        first_t.as_secs_f64(),
        mb / first_t.as_secs_f64(),
        first.size as f64 / 1e6,
        "-",
        "-",
        "-",
        rss_before,
        rss_mb("VmHWM:"),
        "-",
        "-",
        "-",
        "-"
    );
    // Rounds 1-3 fold the previous snapshot plus the events since, while
    // ingestion runs.
    let mut ratios = Vec::new();
    for round in 1..=3 {
        let updates = usize::try_from(n / 4).unwrap();
        let (base_n, base_t, base_gaps) =
            ingest.run((0..n).cycle().skip(round * 13), updates, None);
        let base_rate = base_n as f64 / base_t.as_secs_f64();
        c.sealer().seal_all().unwrap();
        let rss_before = rss_mb("VmRSS:");
        reset_peak_rss();
        let stop = Arc::new(AtomicBool::new(false));
        let (snap, snap_t, during_n, during_t, during_gaps) = std::thread::scope(|s| {
            let c = &c;
            let stop2 = Arc::clone(&stop);
            let h = s.spawn(move || {
                let t = Instant::now();
                let snap = c.snapshot(None).unwrap();
                stop2.store(true, Ordering::Relaxed);
                (snap, t.elapsed())
            });
            let (dn, dt, dg) = ingest.run((0..n).cycle().skip(round * 7), usize::MAX, Some(&stop));
            let (snap, st) = h.join().unwrap();
            (snap, st, dn, dt, dg)
        });
        let (alone_p99, alone_max) = stalls(base_gaps);
        let (during_p99, during_max) = stalls(during_gaps);
        let peak = rss_mb("VmHWM:");
        let during_rate = during_n as f64 / during_t.as_secs_f64();
        ratios.push(during_rate / base_rate);
        println!(
            "{:<6} {:>8} {:>9.2} {:>8.1} {:>9.2} {:>12.0} {:>12.0} {:>7.2} {:>10} {:>10} {:>12.1} {:>12.1} {:>12.1} {:>12.1}",
            round,
            snap.objects,
            snap_t.as_secs_f64(),
            mb / snap_t.as_secs_f64(),
            snap.size as f64 / 1e6,
            base_rate,
            during_rate,
            during_rate / base_rate,
            rss_before,
            peak,
            alone_p99,
            alone_max,
            during_p99,
            during_max
        );
    }
    println!(
        "peak RSS after fill {hwm_fill} MB, after the snapshots {} MB",
        peak_rss_mb()
    );
    ratios.sort_by(f64::total_cmp);
    println!(
        "median ingestion ratio during/alone: {:.2}",
        ratios[ratios.len() / 2]
    );
}

/// Peak resident memory of this process (VmHWM), MB.
fn peak_rss_mb() -> u64 {
    rss_mb("VmHWM:")
}

/// Starts a new peak-RSS window (Linux: writing 5 to clear_refs resets
/// VmHWM), so each round's peak is its own.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// A memory line of /proc/self/status (`VmRSS:`, `VmHWM:`), MB.
fn rss_mb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with(field)).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
            })
        })
        .map_or(0, |kb| kb / 1024)
}
