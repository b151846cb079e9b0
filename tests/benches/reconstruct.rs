//! Time to reconstruct the state at a late point from a store: a snapshot of
//! ~100,000 Rancher-shaped objects plus 1,000,000 update events in sealed
//! segments (full objects, as the watch delivers them), against a naive
//! single-threaded fold of the same files in the same run.
//!
//! `cargo bench -p rewind-tests --bench reconstruct` (sizes with
//! `REWIND_BENCH_OBJECTS`, `REWIND_BENCH_EVENTS`; rounds with
//! `REWIND_BENCH_ROUNDS`, default 3). Target: <= 3 s.
//!
//! Where the time went in earlier profiles is in `docs/BENCHMARKS.md`
//! (design measurements).
#![allow(clippy::cast_possible_truncation, reason = "figures are approximate")]

use std::time::{Duration, Instant};

use rewind_format::{
    EventKind, EventRecord, Limits, ResourceType, SegmentReader, SnapshotReader, State,
    WriteOptions,
};
use rewind_history::Point;
use rewind_history::pit::StoreSource;
use rewind_history::store::{SegmentMeta, SnapshotMeta, Store, StoreConfig};
use rewind_tests::fixtures::{PlaneSpec, Rng, generate};

const CLUSTER: &str = "bench";
const T0: i64 = 1_790_000_000_000;
const SEGMENT_EVENTS: u64 = 10_000;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One generated object, serialized once around its resourceVersion so an
/// update is two copies and a number.
struct Template {
    rtype: ResourceType,
    namespace: Option<String>,
    name: String,
    uid: String,
    before: Vec<u8>,
    after: Vec<u8>,
}

impl Template {
    fn json(&self, rv: u64) -> Vec<u8> {
        let rv = rv.to_string();
        let mut v = Vec::with_capacity(self.before.len() + rv.len() + self.after.len());
        v.extend_from_slice(&self.before);
        v.extend_from_slice(rv.as_bytes());
        v.extend_from_slice(&self.after);
        v
    }
}

fn templates(target: usize) -> Vec<Template> {
    generate(&PlaneSpec::with_object_target(target))
        .into_iter()
        .enumerate()
        .map(|(i, o)| {
            let mut json = o.json.clone();
            let uid = format!("uid-{i:08}");
            json["metadata"]["uid"] = serde_json::json!(uid);
            json["metadata"]["resourceVersion"] = serde_json::json!("@RV@");
            let text = serde_json::to_string(&json).unwrap();
            let (before, after) = text.split_once("@RV@").unwrap();
            Template {
                rtype: ResourceType {
                    group: o.group.clone(),
                    version: o.version.clone(),
                    resource: o.resource.clone(),
                    kind: o.kind.clone(),
                    namespaced: o.namespaced,
                },
                namespace: o.namespace.clone(),
                name: o.name.clone(),
                uid,
                before: before.as_bytes().to_vec(),
                after: after.as_bytes().to_vec(),
            }
        })
        .collect()
}

fn event(t: &Template, seq: u64) -> EventRecord {
    EventRecord {
        seq,
        observed_at_ms: T0 + i64::try_from(seq).unwrap(),
        cluster_id: CLUSTER.into(),
        rtype: t.rtype.clone(),
        namespace: t.namespace.clone(),
        name: t.name.clone(),
        uid: t.uid.clone(),
        resource_version: seq.to_string(),
        kind: EventKind::Applied,
        object: t.json(seq),
    }
}

/// Builds the store: objects created at seqs 1..=n, a snapshot there, then
/// `events` updates to random objects in segments of 10,000 (level 3, as
/// the daemon seals them). Returns the store and the snapshot's seq.
async fn build(dir: &std::path::Path, tpl: &[Template], events: u64) -> (Store, u64) {
    let store = Store::open(&StoreConfig::Local {
        path: dir.to_owned(),
    })
    .await
    .unwrap();
    let mut state = State::new(CLUSTER);
    for (i, t) in tpl.iter().enumerate() {
        state.apply(&event(t, i as u64 + 1));
    }
    let base = state.seq;
    let snap = state
        .write_snapshot(Vec::new(), &WriteOptions::default())
        .unwrap();
    store
        .put_snapshot(
            SnapshotMeta {
                seq: base,
                time_ms: state.time_ms,
                objects: state.objects.len() as u64,
                label: None,
                encrypted: false,
                resource_set: None,
            },
            snap.into(),
        )
        .await
        .unwrap();
    drop(state);
    let seg_opts = WriteOptions {
        level: 3,
        ..WriteOptions::default()
    };
    let segments = events.div_ceil(SEGMENT_EVENTS);
    // Encode on every core; store in order.
    let encoded: Vec<(SegmentMeta, Vec<u8>)> = std::thread::scope(|s| {
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let seg_opts = seg_opts.clone();
                s.spawn(move || {
                    let mut out = Vec::new();
                    for k in (w..segments).step_by(usize::try_from(workers).unwrap()) {
                        let mut rng = Rng::new(k + 1);
                        let first = base + 1 + k * SEGMENT_EVENTS;
                        let last = (first + SEGMENT_EVENTS - 1).min(base + events);
                        let evs: Vec<EventRecord> = (first..=last)
                            .map(|seq| event(&tpl[rng.below(tpl.len() as u64) as usize], seq))
                            .collect();
                        let bytes =
                            rewind_format::encode_segment(CLUSTER, &evs, &seg_opts).unwrap();
                        let meta = SegmentMeta {
                            first_seq: first,
                            last_seq: last,
                            first_time_ms: evs[0].observed_at_ms,
                            last_time_ms: evs.last().unwrap().observed_at_ms,
                            events: evs.len() as u64,
                            encrypted: false,
                            resource_set: None,
                        };
                        out.push((k, meta, bytes));
                    }
                    out
                })
            })
            .collect();
        let mut all: Vec<_> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        all.sort_by_key(|x| x.0);
        all.into_iter().map(|(_, m, b)| (m, b)).collect()
    });
    for (meta, bytes) in encoded {
        store.put_segment(meta, bytes.into()).await.unwrap();
    }
    (store, base)
}

/// The baseline: the same files, fetched the same way, decoded and folded
/// on one thread with the format crate's reference fold.
async fn naive(store: &Store, until: u64) -> (State, Duration) {
    let start = Instant::now();
    let snap = store.list_snapshots().await.unwrap().pop().unwrap();
    let bytes = store.get_snapshot(&snap).await.unwrap();
    let mut r = SnapshotReader::open(&bytes, None, Limits::default()).unwrap();
    let mut state = State::from_snapshot(&mut r).unwrap();
    for seg in store.list_segments().await.unwrap() {
        if seg.first_seq > until {
            break;
        }
        let bytes = store.get_segment(&seg).await.unwrap();
        let mut r = SegmentReader::open(&bytes, None, Limits::default()).unwrap();
        state.apply_all(&r.read_all().unwrap(), Some(until));
    }
    (state, start.elapsed())
}

/// Process CPU time (user + system), from /proc/self/stat, in seconds.
fn cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |x| x.1);
    let f: Vec<f64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    // Fields 14 and 15 of stat (utime, stime), counted after the comm field.
    (f.get(11).copied().unwrap_or(0.0) + f.get(12).copied().unwrap_or(0.0)) / 100.0
}

/// Where the time goes: fetching (read + SHA-256), the snapshot decode and
/// the segment fold, each timed alone.
async fn phases(store: &Store, until: u64) {
    use rewind_history::pit::fold::{SegmentInput, Until, decode_snapshot, fold_segments};
    let t = Instant::now();
    let snap = store.list_snapshots().await.unwrap().pop().unwrap();
    let sbytes = store.get_snapshot(&snap).await.unwrap();
    let mut segs = Vec::new();
    for seg in store.list_segments().await.unwrap() {
        if seg.first_seq <= until {
            segs.push((seg.data_key(), store.get_segment(&seg).await.unwrap()));
        }
    }
    let fetch = t.elapsed();
    let (t, c) = (Instant::now(), cpu());
    let mut state = decode_snapshot(&sbytes, "snap", Limits::default()).unwrap();
    let (dsnap, csnap) = (t.elapsed(), cpu() - c);
    let inputs: Vec<SegmentInput<'_>> = segs
        .iter()
        .map(|(k, b)| SegmentInput {
            name: k,
            plain: b,
            from_seq: 0,
        })
        .collect();
    let (t, c) = (Instant::now(), cpu());
    fold_segments(
        &mut state,
        &inputs,
        Until::default().with_seq(until),
        Limits::default(),
    )
    .unwrap();
    let (dfold, cfold) = (t.elapsed(), cpu() - c);
    let (t, c) = (Instant::now(), cpu());
    let mut n = 0;
    for (k, b) in &segs {
        let mut r = SegmentReader::open(b, Some(k), Limits::default()).unwrap();
        n += r.read_all().unwrap().len();
    }
    let (ddec, cdec) = (t.elapsed(), cpu() - c);
    println!(
        "  phases: fetch+sha256 {} | snapshot decode {} (cpu {:.2} s) | segment fold {} (cpu {:.2} s) | plain decode of the {n} events, one thread {} (cpu {:.2} s)",
        secs(fetch),
        secs(dsnap),
        csnap,
        secs(dfold),
        cfold,
        secs(ddec),
        cdec
    );
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

#[tokio::main]
async fn main() {
    let objects = env("REWIND_BENCH_OBJECTS", 100_000);
    let events = env("REWIND_BENCH_EVENTS", 1_000_000);
    let rounds = env("REWIND_BENCH_ROUNDS", 3);
    let dir = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let tpl = templates(usize::try_from(objects).unwrap());
    let (store, base) = build(dir.path(), &tpl, events).await;
    let snap_bytes: u64 = store
        .list_snapshots()
        .await
        .unwrap()
        .iter()
        .map(|s| s.size)
        .sum();
    let seg_bytes: u64 = store
        .list_segments()
        .await
        .unwrap()
        .iter()
        .map(|s| s.size)
        .sum();
    let raw: u64 = tpl
        .iter()
        .map(|t| (t.before.len() + t.after.len()) as u64)
        .sum();
    println!(
        "store: {} objects ({:.0} MB JSON), snapshot {:.1} MB, {} events in {} segments {:.1} MB; built in {}",
        tpl.len(),
        raw as f64 / 1e6,
        snap_bytes as f64 / 1e6,
        events,
        events.div_ceil(SEGMENT_EVENTS),
        seg_bytes as f64 / 1e6,
        secs(t.elapsed())
    );
    drop(tpl);
    let mut rng = Rng::new(99);
    let src = StoreSource::new(store.clone(), Vec::new());
    let mut fast = Vec::new();
    let mut slow = Vec::new();
    for round in 0..rounds {
        // An arbitrary late point: in the last tenth of the events.
        let until = base + events - rng.below(events / 10 + 1);
        let (t, c) = (Instant::now(), cpu());
        let pit = src.load(&Point::Seq(until)).await.unwrap();
        let (d, cf) = (t.elapsed(), cpu() - c);
        let c = cpu();
        let (reference, dn) = naive(&store, until).await;
        let cn = cpu() - c;
        assert_eq!(pit.state, reference, "round {round}: parallel fold differs");
        println!(
            "round {round}: seq {until}: StoreSource {} (cpu {cf:.2} s; {} events, {} segments), naive single-threaded {} (cpu {cn:.2} s)",
            secs(d),
            pit.events,
            pit.segments,
            secs(dn)
        );
        phases(&store, until).await;
        fast.push(d);
        slow.push(dn);
        drop(pit);
    }
    fast.sort();
    slow.sort();
    let med = |v: &[Duration]| v[v.len() / 2];
    println!();
    println!("| method | median | best | vs naive |");
    println!("|---|---|---|---|");
    println!(
        "| StoreSource::load (parallel, reduced) | {} | {} | {:.2}x faster |",
        secs(med(&fast)),
        secs(fast[0]),
        med(&slow).as_secs_f64() / med(&fast).as_secs_f64()
    );
    println!(
        "| naive: State::from_snapshot + apply_all, one thread | {} | {} | 1.00x |",
        secs(med(&slow)),
        secs(slow[0])
    );
    println!(
        "target <= 3 s: {}",
        if med(&fast) <= Duration::from_secs(3) {
            "met"
        } else {
            "NOT met"
        }
    );
}
