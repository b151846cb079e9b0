//! What `rewind show --at latest` costs on top of the library's
//! point-in-time fold, in the same run, on a local store of ~100,000
//! API-shaped objects: a snapshot plus N/2 update events (the scale run's
//! shape).
//!
//! ```text
//! cargo bench -p rewind-restore --bench show
//! ```
//!
//! - Objects: `REWIND_BENCH_PLANE` (default `target/bench-plane-100k.jsonl`,
//!   written by `cargo run --release -p rewind-tests --example plane_jsonl
//!   -- 100000 target/bench-plane-100k.jsonl`), one API object per line;
//!   `REWIND_BENCH_OBJECTS` caps how many are read.
//! - `REWIND_BENCH_EVENTS` updates (default: half the objects), full
//!   objects with a new resourceVersion and annotation, as a watch delivers
//!   them, in segments of 10,000.
//! - `REWIND_BENCH_STORE=DIR` builds the store there once and reuses it on
//!   later runs (for profiling the binary against it); default: a temp dir.
//! - `REWIND_BENCH_ROUNDS` (default 3).
//!
//! Each round times, back to back: (a) the library fold,
//! `StoreSource::load(latest)`; (b) the release `rewind` binary itself,
//! `show`, `show --output json`, `show --type ...`, each a whole process as
//! an operator runs it. The table gives medians and each figure's ratio to
//! the fold of the same round, in wall time and in CPU time (the CPU ratio
//! holds up better on a loaded machine).
//!
//! The profile behind the CLI's summary path is in `docs/BENCHMARKS.md`
//! (design measurements).
#![allow(clippy::cast_possible_truncation, reason = "figures are approximate")]

use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rewind_format::{EventKind, EventRecord, State, WriteOptions};
use rewind_history::Point;
use rewind_history::pit::StoreSource;
use rewind_history::store::{SegmentMeta, SnapshotMeta, Store, StoreConfig};
use rewind_tests::fixtures::{PlaneSpec, generate};
use serde_json::Value;

const CLUSTER: &str = "bench";
const T0: i64 = 1_790_000_000_000;
const SEGMENT_EVENTS: usize = 10_000;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One object, serialized once around its resourceVersion and a round
/// annotation, so an event is a few copies.
struct Template {
    rtype: rewind_format::ResourceType,
    namespace: Option<String>,
    name: String,
    uid: String,
    parts: [Vec<u8>; 3],
}

impl Template {
    fn json(&self, rv: u64, round: u64) -> Vec<u8> {
        let (rv, round) = (rv.to_string(), round.to_string());
        let mut v = Vec::with_capacity(self.parts.iter().map(Vec::len).sum::<usize>() + 24);
        v.extend_from_slice(&self.parts[0]);
        v.extend_from_slice(round.as_bytes());
        v.extend_from_slice(&self.parts[1]);
        v.extend_from_slice(rv.as_bytes());
        v.extend_from_slice(&self.parts[2]);
        v
    }

    fn event(&self, seq: u64, round: u64) -> EventRecord {
        EventRecord {
            seq,
            observed_at_ms: T0 + i64::try_from(seq).unwrap(),
            cluster_id: CLUSTER.into(),
            rtype: self.rtype.clone(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            uid: self.uid.clone(),
            resource_version: seq.to_string(),
            kind: EventKind::Applied,
            object: self.json(seq, round),
        }
    }
}

/// Reads the plane and resolves each object's type the way `--from-dir`
/// does (built-in table plus the plane's CRDs).
fn templates(plane: &Path, cap: usize) -> Vec<Template> {
    let f = std::fs::File::open(plane).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; write it with `cargo run --release -p rewind-tests --example plane_jsonl -- 100000 {}`",
            plane.display(),
            plane.display()
        )
    });
    // The plane file carries apiVersion and kind only; the generator knows
    // each kind's plural and scope.
    let types: HashMap<(String, String), rewind_format::ResourceType> =
        generate(&PlaneSpec::with_object_target(2_000))
            .into_iter()
            .map(|o| {
                let key = (o.api_version(), o.kind.clone());
                let t = rewind_format::ResourceType {
                    group: o.group,
                    version: o.version,
                    resource: o.resource,
                    kind: o.kind,
                    namespaced: o.namespaced,
                };
                (key, t)
            })
            .collect();
    let mut state = rewind_history::DesiredState::new();
    for line in std::io::BufReader::new(f).lines().take(cap) {
        let o: Value = serde_json::from_str(&line.unwrap()).unwrap();
        let key = (
            o["apiVersion"].as_str().unwrap().to_owned(),
            o["kind"].as_str().unwrap().to_owned(),
        );
        let t = &types[&key];
        state.insert(t, o).unwrap();
    }
    state
        .iter()
        .map(|(k, o)| {
            let mut o = o.clone();
            o["metadata"]["resourceVersion"] = "@RV@".into();
            let ann = o["metadata"]
                .as_object_mut()
                .unwrap()
                .entry("annotations")
                .or_insert_with(|| serde_json::json!({}));
            ann["rewind.bench/round"] = "@ROUND@".into();
            let text = serde_json::to_string(&o).unwrap();
            // Keys print sorted: annotations come before resourceVersion.
            let (a, rest) = text.split_once("@ROUND@").unwrap();
            let (b, c) = rest.split_once("@RV@").unwrap();
            Template {
                rtype: rewind_format::ResourceType {
                    group: k.rtype.group.clone(),
                    version: k.rtype.version.clone(),
                    resource: k.rtype.resource.clone(),
                    kind: k.rtype.kind.clone(),
                    namespaced: k.rtype.namespaced,
                },
                namespace: k.namespace.clone(),
                name: k.name.clone(),
                uid: o["metadata"]["uid"].as_str().unwrap_or_default().to_owned(),
                parts: [a.into(), b.into(), c.into()],
            }
        })
        .collect()
}

/// Objects created at seqs 1..=n, a snapshot there (default writer, as the
/// daemon writes them), then `events` updates spread over every object in
/// segments of 10,000 at level 3 (as the daemon seals them).
async fn build(store: &Store, tpl: &[Template], events: usize) {
    let mut state = State::new(CLUSTER);
    for (i, t) in tpl.iter().enumerate() {
        state.apply(&t.event(i as u64 + 1, 0));
    }
    let base = state.seq;
    let snap = state
        .write_snapshot(Vec::new(), &WriteOptions::default())
        .unwrap();
    let meta = SnapshotMeta {
        seq: base,
        time_ms: state.time_ms,
        objects: state.objects.len() as u64,
        label: None,
        encrypted: false,
        resource_set: None,
    };
    drop(state);
    store.put_snapshot(meta, snap.into()).await.unwrap();
    let opts = WriteOptions {
        level: 3,
        ..WriteOptions::default()
    };
    // A stride coprime with the object count visits every object once
    // before any twice, like the scale run's patches.
    let stride = (1..)
        .map(|s| 7919 * s)
        .find(|s| gcd(*s, tpl.len()) == 1)
        .unwrap();
    let seqs: Vec<u64> = (base + 1..=base + events as u64).collect();
    for chunk in seqs.chunks(SEGMENT_EVENTS) {
        let evs: Vec<EventRecord> = chunk
            .iter()
            .map(|&seq| {
                let i = (seq - base - 1) as usize;
                tpl[(i * stride) % tpl.len()].event(seq, 1 + (i / tpl.len()) as u64)
            })
            .collect();
        let bytes = rewind_format::encode_segment(CLUSTER, &evs, &opts).unwrap();
        let meta = SegmentMeta {
            first_seq: evs[0].seq,
            last_seq: evs.last().unwrap().seq,
            first_time_ms: evs[0].observed_at_ms,
            last_time_ms: evs.last().unwrap().observed_at_ms,
            events: evs.len() as u64,
            encrypted: false,
            resource_set: None,
        };
        store.put_segment(meta, bytes.into()).await.unwrap();
    }
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Runs the release binary once; returns its wall time and stdout.
fn rewind(store: &Path, args: &[&str]) -> (Duration, Vec<u8>) {
    let t = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_rewind"))
        .arg("--store")
        .arg(store)
        .args(args)
        .output()
        .unwrap();
    let d = t.elapsed();
    assert!(
        out.status.success(),
        "rewind {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (d, out.stdout)
}

/// CPU seconds (user + system) of this process and of its waited-for
/// children, from /proc/self/stat: the load-independent part of a figure.
fn cpu() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |x| x.1);
    let f: Vec<f64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    let at = |i: usize| f.get(i).copied().unwrap_or(0.0) / 100.0;
    // utime, stime, cutime, cstime: fields 14-17, counted after comm.
    (at(11) + at(12), at(13) + at(14))
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let plane = std::env::var_os("REWIND_BENCH_PLANE")
        .map_or_else(|| root.join("target/bench-plane-100k.jsonl"), PathBuf::from);
    let cap = env("REWIND_BENCH_OBJECTS", usize::MAX);
    let rounds = env("REWIND_BENCH_ROUNDS", 3).max(1);
    let tmp = tempfile::tempdir().unwrap();
    let dir =
        std::env::var_os("REWIND_BENCH_STORE").map_or_else(|| tmp.path().to_owned(), PathBuf::from);
    let store = Store::open(&StoreConfig::Local { path: dir.clone() })
        .await
        .unwrap();
    let t = Instant::now();
    if store.list_snapshots().await.unwrap().is_empty() {
        let tpl = templates(&plane, cap);
        let events = env("REWIND_BENCH_EVENTS", tpl.len() / 2);
        build(&store, &tpl, events).await;
    }
    let snaps = store.list_snapshots().await.unwrap();
    let segs = store.list_segments().await.unwrap();
    println!(
        "store {}: snapshot of {} objects, {:.1} MB; {} events in {} segments, {:.1} MB (ready in {})",
        dir.display(),
        snaps[0].objects,
        snaps[0].size as f64 / 1e6,
        segs.iter().map(|s| s.events).sum::<u64>(),
        segs.len(),
        segs.iter().map(|s| s.size).sum::<u64>() as f64 / 1e6,
        secs(t.elapsed())
    );

    let src = StoreSource::new(store, Vec::new());
    let runs: [(&str, Vec<&str>); 3] = [
        ("rewind show --at latest", vec!["show", "--at", "latest"]),
        (
            "rewind show --at latest --output json",
            vec!["show", "--at", "latest", "--output", "json"],
        ),
        (
            "rewind show --at latest --type configmaps --namespace fleet-default",
            vec![
                "show",
                "--at",
                "latest",
                "--type",
                "configmaps",
                "--namespace",
                "fleet-default",
            ],
        ),
    ];
    let mut fold = Vec::new();
    let mut fold_cpu = Vec::new();
    let mut cli_cpu: Vec<Vec<f64>> = vec![Vec::new(); runs.len()];
    let mut cpu_ratios: Vec<Vec<f64>> = vec![Vec::new(); runs.len()];
    let mut cli: Vec<Vec<Duration>> = vec![Vec::new(); runs.len()];
    let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); runs.len()];
    for round in 0..rounds {
        let (t, c) = (Instant::now(), cpu().0);
        let pit = src.load(&Point::Latest).await.unwrap();
        let f = t.elapsed();
        let fc = cpu().0 - c;
        fold_cpu.push(fc);
        let objects = pit.state.objects.len();
        drop(pit);
        let mut line = format!(
            "round {round}: fold {} cpu {fc:.2} s ({objects} objects)",
            secs(f)
        );
        for (i, (name, args)) in runs.iter().enumerate() {
            let c = cpu().1;
            let (d, out) = rewind(&dir, args);
            let cc = cpu().1 - c;
            cli_cpu[i].push(cc);
            cpu_ratios[i].push(cc / fc.max(0.01));
            if i == 0 {
                let total = String::from_utf8_lossy(&out)
                    .lines()
                    .last()
                    .unwrap_or_default()
                    .to_owned();
                assert!(
                    total.ends_with(&objects.to_string()),
                    "{name} disagrees with the fold's {objects} objects: {total}"
                );
            }
            line += &format!(" | cli{i} {} cpu {cc:.2} s", secs(d));
            cli[i].push(d);
            ratios[i].push(d.as_secs_f64() / f.as_secs_f64());
        }
        println!("{line}");
        fold.push(f);
    }
    let fold_med = median(&mut fold);
    let mid = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!();
    println!(
        "| path | wall median | wall best | / fold wall (median of rounds) | CPU median | / fold CPU (median of rounds) |"
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| library fold: StoreSource::load(latest) | {} | {} | 1.00 | {:.2} s | 1.00 |",
        secs(fold_med),
        secs(fold[0]),
        mid(&mut fold_cpu)
    );
    for (i, (name, _)) in runs.iter().enumerate() {
        let med = median(&mut cli[i]);
        println!(
            "| {name} (whole process) | {} | {} | {:.2} | {:.2} s | {:.2} |",
            secs(med),
            secs(cli[i][0]),
            mid(&mut ratios[i]),
            mid(&mut cli_cpu[i]),
            mid(&mut cpu_ratios[i])
        );
    }
    println!("target: `rewind show --at latest` within 2x of the fold");
}
