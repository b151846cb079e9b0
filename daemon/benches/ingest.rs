//! Ingestion throughput of the journal, against raw sled, in one run.
//!
//! `REWIND_BENCH_CPU=0 cargo bench -p rewind-daemon --bench ingest` pins
//! the bench to one core (taskset; the header says whether it worked).
//! Each row ingests the same N events of ~2 KB JSON objects (realistic
//! Rancher-like shapes, distinct content) durably:
//! - `journal`: the daemon's path: ingest rules (dedup lookup, a state
//!   value that points at the event in the log), the batch's events as
//!   compressed blocks of at most
//!   7 KiB (one sled batch), then the state changes with the commit record
//!   as one sled batch and the meta changes as another (no cross-tree
//!   transaction), then per batch sled's `flush` and the journal's
//!   `fdatasync` of the files sled wrote (`journal::durable`).
//! - `journal, objects inline`: the same with every object compressed
//!   into its state value, as journal layout 3 stored them.
//! - `raw sled, 1 tree`: one insert per event (seq → bytes), every 1,000
//!   inserts sled's `flush` and an `fdatasync` of sled's `db` file: the same
//!   sync the journal does (sled's flush alone ends in `sync_file_range`,
//!   which a power loss can undo), so the ratio compares like with like.
//! - `raw sled, log+state`: one insert per event into a log tree and a state
//!   tree (the naive design), with the same flush and sync every 1,000
//!   inserts.
//!
//! `REWIND_BENCH_STATE_LEVEL=raw|N` stores every object inline in the
//! state, raw or at zstd level N, and
//! `REWIND_BENCH_BLOCK_LEVEL=N` changes the block level: to compare encodings.
//! `REWIND_BENCH_CACHE_MB=N` gives the journal a sled page cache of N MiB
//! instead of the default, `REWIND_BENCH_BLOCK_BYTES=N` blocks of at most N
//! bytes. `REWIND_BENCH_HELD=1` prints, after each journal
//! row's run, how much RSS the open journal holds (sled's cache and the rest
//! of sled's memory) and its size on disk.
//!
//! [`STATE_ZSTD_LEVEL`]: rewind_daemon::journal::state::STATE_ZSTD_LEVEL
//!
//! Prints events/s and the ratio to the first baseline, and the process CPU
//! time per event (all threads, sled's included): on a shared machine the
//! CPU figure moves much less with other load than the wall-clock rate.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rewind_daemon::ingest::{Ingestor, Observation, ObservedObject};
use rewind_daemon::journal::state::STATE_ZSTD_LEVEL;
use rewind_daemon::journal::{Journal, JournalOptions, ObjectCompressor};
use rewind_format::{EventBlockEncoder, ResourceType};

// The daemon's allocator, so the bench measures what rewindd runs (the raw
// sled baselines run under it too).
#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn object(i: usize, rng: &mut u64) -> Vec<u8> {
    let mut next = || {
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        *rng
    };
    let mut labels = String::new();
    for l in 0..6 {
        labels.push_str(&format!(
            "\"label-{l}.cattle.io/key\":\"v{:x}\",",
            next() % 100_000
        ));
    }
    labels.pop();
    let mut conds = String::new();
    for c in 0..8 {
        conds.push_str(&format!(
            "{{\"type\":\"Cond{c}\",\"status\":\"True\",\"lastUpdateTime\":\"2026-11-26T13:{:02}:{:02}Z\",\"message\":\"{:x}{:x}\"}},",
            next() % 60,
            next() % 60,
            next(),
            next()
        ));
    }
    conds.pop();
    let mut s = format!(
        "{{\"apiVersion\":\"management.cattle.io/v3\",\"kind\":\"Cluster\",\"metadata\":{{\"name\":\"c-{i:06}\",\"uid\":\"{:016x}-{:016x}\",\"resourceVersion\":\"{}\",\"labels\":{{{labels}}},\"annotations\":{{\"field.cattle.io/creatorId\":\"user-{:x}\"}}}},\"spec\":{{\"displayName\":\"cluster {i}\",\"description\":\"{:x}{:x}{:x}\"}},\"status\":{{\"conditions\":[{conds}],\"nodeCount\":{},\"capacity\":{{\"cpu\":\"{}\",\"memory\":\"{}Ki\",\"pods\":\"110\"}}}}",
        next(),
        next(),
        i + 1,
        next(),
        next(),
        next(),
        next(),
        next() % 50,
        next() % 64,
        next() % 100_000_000
    );
    while s.len() < 2000 {
        s.push_str(&format!(",\"pad{}\":\"{:x}\"", s.len(), next()));
    }
    s.push('}');
    s.into_bytes()
}

fn observations(n: usize) -> Vec<Observation> {
    let rtype = Arc::new(ResourceType {
        group: "management.cattle.io".into(),
        version: "v3".into(),
        resource: "clusters".into(),
        kind: "Cluster".into(),
        namespaced: false,
    });
    let mut rng = 0x2545_F491_4F6C_DD1D_u64;
    (0..n)
        .map(|i| Observation::Applied {
            rtype: rtype.clone(),
            object: ObservedObject {
                namespace: String::new(),
                name: format!("c-{:06}", i % (n / 2).max(1)),
                uid: format!("uid-{:06}", i % (n / 2).max(1)),
                resource_version: (i + 1).to_string(),
                json: object(i, &mut rng),
                selected: true,
                observed_at_ms: 0,
            },
            relist: false,
        })
        .collect()
}

/// Returns (total, time spent preparing batches, time spent committing).
/// `inline` stores every object in its state value, as journal layout 3
/// did, instead of leaving it in the log.
fn journal_run(obs: &[Observation], batch: usize, inline: bool) -> (Duration, Duration, Duration) {
    let dir = tempfile::tempdir().unwrap();
    // REWIND_BENCH_CACHE_MB=N compares sled page cache sizes.
    let mut opts = JournalOptions::default();
    if let Some(mb) = std::env::var("REWIND_BENCH_CACHE_MB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        opts.cache_capacity = mb << 20;
    }
    // REWIND_BENCH_BLOCK_BYTES=N compares block sizes (a large N: one
    // block per batch, as before 0.1's bounded blocks).
    if let Some(n) = std::env::var("REWIND_BENCH_BLOCK_BYTES")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        opts.block_bytes = n;
    }
    let mut j = Journal::open(dir.path(), &opts).unwrap();
    // REWIND_BENCH_STATE_LEVEL=raw|N compares state value encodings.
    let comp = match std::env::var("REWIND_BENCH_STATE_LEVEL").ok().as_deref() {
        Some("raw") => ObjectCompressor::uncompressed(),
        Some(l) => ObjectCompressor::new(l.parse().unwrap()).unwrap(),
        None if inline => ObjectCompressor::new(STATE_ZSTD_LEVEL).unwrap(),
        None => ObjectCompressor::for_state().unwrap(),
    };
    let mut ing = Ingestor::with_compressor("bench".into(), comp, HashMap::new());
    let level = std::env::var("REWIND_BENCH_BLOCK_LEVEL")
        .ok()
        .map_or(JournalOptions::default().zstd_level, |l| l.parse().unwrap());
    let mut enc = EventBlockEncoder::new(level).unwrap();
    let (mut prep, mut commit) = (Duration::ZERO, Duration::ZERO);
    let start = Instant::now();
    for chunk in obs.chunks(batch) {
        let t = Instant::now();
        let mut b = j.batch();
        for o in chunk {
            ing.apply(&mut b, o).unwrap();
        }
        let p = b.finish(&mut enc).unwrap();
        prep += t.elapsed();
        let t = Instant::now();
        j.commit(&p).unwrap();
        commit += t.elapsed();
        ing.committed();
    }
    let took = (start.elapsed(), prep, commit);
    assert_eq!(j.next_seq(), obs.len() as u64 + 1, "every event recorded");
    if std::env::var("REWIND_BENCH_HELD").is_ok_and(|v| v == "1") {
        // What the open journal holds in memory (sled's cache and whatever
        // else sled keeps): RSS with it open, minus RSS once it is closed,
        // each read after jemalloc's background purge (dirty pages kept 1 s).
        drop((ing, enc));
        std::thread::sleep(Duration::from_secs(2));
        let open = rss_kb();
        let size = j.size_on_disk().unwrap_or(0);
        drop(j);
        std::thread::sleep(Duration::from_secs(2));
        let closed = rss_kb();
        println!(
            "  batch {batch}: the open journal held {} MB of RSS; {} MB on disk",
            open.saturating_sub(closed) / 1024,
            size >> 20
        );
    }
    took
}

/// This process's resident set, KiB.
fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn raw_run(obs: &[Observation], two_trees: bool) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::Config::new()
        .path(dir.path())
        .cache_capacity(64 << 20)
        .flush_every_ms(None)
        .open()
        .unwrap();
    let log = db.open_tree("log").unwrap();
    let state = db.open_tree("state").unwrap();
    // sled's log and pages; `fdatasync` needs no write access.
    let db_file = std::fs::File::open(dir.path().join("db")).unwrap();
    let start = Instant::now();
    for (i, o) in obs.iter().enumerate() {
        let Observation::Applied { object, .. } = o else {
            unreachable!()
        };
        log.insert((i as u64).to_be_bytes(), object.json.as_slice())
            .unwrap();
        if two_trees {
            state
                .insert(object.name.as_bytes(), object.json.as_slice())
                .unwrap();
        }
        if i % 1000 == 999 {
            db.flush().unwrap();
            db_file.sync_data().unwrap();
        }
    }
    db.flush().unwrap();
    db_file.sync_data().unwrap();
    start.elapsed()
}

/// CPU seconds this process used so far (user + system, all threads).
fn cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the line, in clock ticks (100 per second).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    (f.get(11).copied().unwrap_or(0.0) + f.get(12).copied().unwrap_or(0.0)) / 100.0
}

/// Pins this process (every thread it has and will start) to one CPU with
/// `taskset`, before sled starts its threads; what happened, for the header.
fn pin(cpu: &str) -> String {
    let pid = std::process::id().to_string();
    match std::process::Command::new("taskset")
        .args(["-a", "-p", "-c", cpu, &pid])
        .output()
    {
        Ok(o) if o.status.success() => format!("pinned to CPU {cpu} (taskset)"),
        Ok(o) => format!(
            "NOT pinned: taskset -p -c {cpu} failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => format!("NOT pinned: taskset: {e}"),
    }
}

fn main() {
    // REWIND_BENCH_CPU=N: every row on one core, sled's threads included.
    let pinned = std::env::var("REWIND_BENCH_CPU")
        .ok()
        .map_or_else(|| "not pinned".to_owned(), |cpu| pin(&cpu));
    let n: usize = std::env::var("REWIND_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let obs = observations(n);
    let avg = obs
        .iter()
        .map(|o| match o {
            Observation::Applied { object, .. } => object.json.len(),
            _ => 0,
        })
        .sum::<usize>()
        / n;
    let allocator = if cfg!(feature = "jemalloc") {
        "jemalloc"
    } else {
        "system (glibc) malloc"
    };
    println!(
        "ingest bench: {n} events, average object {avg} bytes, allocator {allocator}, {pinned}"
    );
    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    // REWIND_BENCH_ONLY=journal skips the baselines (for profiling).
    let only_journal = std::env::var("REWIND_BENCH_ONLY").is_ok_and(|v| v == "journal");
    let us_per_event = |cpu: f64| cpu * 1e6 / n as f64;
    let (raw1, raw1_cpu) = if only_journal {
        (1.0, 1.0)
    } else {
        let c = cpu_s();
        (rate(raw_run(&obs, false)), us_per_event(cpu_s() - c))
    };
    let (raw2, raw2_cpu) = if only_journal {
        (1.0, 1.0)
    } else {
        let c = cpu_s();
        (rate(raw_run(&obs, true)), us_per_event(cpu_s() - c))
    };
    let mut rows = vec![
        (
            "raw sled, 1 tree, flush+fdatasync/1000".to_owned(),
            raw1,
            raw1_cpu,
            String::new(),
        ),
        (
            "raw sled, log+state, flush+fdatasync/1000".to_owned(),
            raw2,
            raw2_cpu,
            String::new(),
        ),
    ];
    // The same run with every object inline in the state (layout 3, the
    // design before 0.1's layout 4), for the ratio.
    let runs = [(1000, true), (1000, false), (5000, false), (10_000, false)];
    for (b, inline) in runs {
        let c = cpu_s();
        let (total, prep, commit) = journal_run(&obs, b, inline);
        let cpu = us_per_event(cpu_s() - c);
        let split = format!(
            "prepare {:.0}%, commit+fsync {:.0}%",
            100.0 * prep.as_secs_f64() / total.as_secs_f64(),
            100.0 * commit.as_secs_f64() / total.as_secs_f64()
        );
        let name = if inline {
            format!("journal, batch {b}, objects inline")
        } else {
            format!("journal, batch {b}")
        };
        rows.push((name, rate(total), cpu, split));
    }
    println!(
        "{:<42} {:>12} {:>10} {:>14} {:>10}",
        "variant", "events/s", "vs raw 1 tree", "CPU us/event", "vs raw 1 tree"
    );
    for (name, r, cpu, split) in rows {
        println!(
            "{name:<42} {r:>12.0} {:>9.2}x {cpu:>14.1} {:>9.2}x  {split}",
            r / raw1,
            raw1_cpu / cpu
        );
    }
}
