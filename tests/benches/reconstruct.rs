//! Time to reconstruct the state at a late point from a store: a snapshot of
//! ~100,000 Rancher-shaped objects plus 1,000,000 update events in sealed
//! segments (full objects, as the watch delivers them), against a naive
//! single-threaded fold of the same files in the same run.
//!
//! `cargo bench -p rewind-tests --bench reconstruct` (sizes with
//! `REWIND_BENCH_OBJECTS`, `REWIND_BENCH_EVENTS`; rounds with
//! `REWIND_BENCH_ROUNDS`, default 3). Target: <= 3 s.
//!
//! Then P5 as its target states it (`REWIND_BENCH_P5_OBJECTS`, default
//! 1,000,000, 0 leaves it out; `REWIND_BENCH_P5_EVENTS`, default 2,000,000):
//! a snapshot of the objects, then mixed events on a tenth more names than
//! that (a name not live is created with a new uid; a live one is deleted
//! one time in ten, else updated with a changed annotation and
//! resourceVersion). The state is read at points spread over the whole
//! history (a quarter, half, three quarters, the end) with the page cache
//! of every store file dropped first (`posix_fadvise(DONTNEED)`, which needs
//! no root), from the local directory and from Garage (the same files
//! copied into it; its data files dropped from the cache too), and checked
//! equal to the naive fold of the same point.
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
use rewind_tests::fixtures::{GeneratedObject, PlaneSpec, Rng, generate};

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

/// The format's type of a generated object.
fn rtype_of(o: &GeneratedObject) -> ResourceType {
    ResourceType {
        group: o.group.clone(),
        version: o.version.clone(),
        resource: o.resource.clone(),
        kind: o.kind.clone(),
        namespaced: o.namespaced,
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
                rtype: rtype_of(&o),
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
    let base = put_snapshot(&store, state).await;
    put_segments(&store, base, events, |k, seqs| {
        let mut rng = Rng::new(k + 1);
        seqs.map(|seq| event(&tpl[rng.below(tpl.len() as u64) as usize], seq))
            .collect()
    })
    .await;
    (store, base)
}

/// Stores `state` as the store's snapshot; returns its seq.
async fn put_snapshot(store: &Store, state: State) -> u64 {
    let snap = state
        .write_snapshot(Vec::new(), &WriteOptions::default())
        .unwrap();
    store
        .put_snapshot(
            SnapshotMeta {
                seq: state.seq,
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
    state.seq
}

/// Stores `events` events after `base` in segments of [`SEGMENT_EVENTS`]
/// (level 3, as the daemon seals them): `segment(k, seqs)` makes segment
/// k's events. Encoded on every core, stored in order.
async fn put_segments<F>(store: &Store, base: u64, events: u64, segment: F)
where
    F: Fn(u64, std::ops::RangeInclusive<u64>) -> Vec<EventRecord> + Sync,
{
    let seg_opts = WriteOptions {
        level: 3,
        ..WriteOptions::default()
    };
    let segments = events.div_ceil(SEGMENT_EVENTS);
    let encoded: Vec<(SegmentMeta, Vec<u8>)> = std::thread::scope(|s| {
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let (seg_opts, segment) = (seg_opts.clone(), &segment);
                s.spawn(move || {
                    let mut out = Vec::new();
                    for k in (w..segments).step_by(usize::try_from(workers).unwrap()) {
                        let first = base + 1 + k * SEGMENT_EVENTS;
                        let last = (first + SEGMENT_EVENTS - 1).min(base + events);
                        let evs = segment(k, first..=last);
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

/// One name of the P5 plane, serialized once with placeholders for what
/// changes between its events.
struct Mixed {
    rtype: ResourceType,
    namespace: Option<String>,
    name: String,
    text: String,
}

impl Mixed {
    fn json(&self, uid: &str, rv: u64, v: u64) -> Vec<u8> {
        self.text
            .replacen("@UID@", uid, 1)
            .replacen("@RV@", &rv.to_string(), 1)
            .replacen("@V@", &v.to_string(), 1)
            .into_bytes()
    }
}

/// What one P5 event does: the name's index, the uid generation, the
/// annotation's value, deleted or not. Chosen in one pass in seq order
/// (the live set is sequential), encoded in parallel afterwards.
#[derive(Clone, Copy)]
struct Step {
    idx: u32,
    generation: u32,
    v: u64,
    deleted: bool,
}

fn mixed_templates(target: usize) -> Vec<Mixed> {
    let objects = generate(&PlaneSpec::with_object_target(target));
    // A tenth more names than are live at the snapshot: the spare ones are
    // created later. A spare name is the object's name with `-spare`.
    let spare = objects.len() / 10;
    objects
        .iter()
        .chain(objects.iter().take(spare))
        .enumerate()
        .map(|(i, o)| {
            let mut json = o.json.clone();
            let name = if i < objects.len() {
                o.name.clone()
            } else {
                format!("{}-spare", o.name)
            };
            json["metadata"]["name"] = serde_json::json!(name);
            json["metadata"]["uid"] = serde_json::json!("@UID@");
            json["metadata"]["resourceVersion"] = serde_json::json!("@RV@");
            json["metadata"]["annotations"]["rewind.bench/v"] = serde_json::json!("@V@");
            Mixed {
                rtype: rtype_of(o),
                namespace: o.namespace.clone(),
                name,
                text: serde_json::to_string(&json).unwrap(),
            }
        })
        .collect()
}

fn mixed_event(t: &Mixed, idx: usize, step: Step, seq: u64) -> EventRecord {
    let uid = format!("uid-{idx:08}-{}", step.generation);
    EventRecord {
        seq,
        observed_at_ms: T0 + i64::try_from(seq).unwrap(),
        cluster_id: CLUSTER.into(),
        rtype: t.rtype.clone(),
        namespace: t.namespace.clone(),
        name: t.name.clone(),
        object: t.json(&uid, seq, step.v),
        uid,
        resource_version: seq.to_string(),
        kind: if step.deleted {
            EventKind::Deleted
        } else {
            EventKind::Applied
        },
    }
}

/// The P5 store: the first `live` names created at seqs 1..=live and
/// snapshotted there, then `events` mixed events in segments of 10,000.
/// Returns the store, the snapshot's seq and (creates, updates, deletes).
async fn build_mixed(
    dir: &std::path::Path,
    tpl: &[Mixed],
    live: usize,
    events: u64,
) -> (Store, u64, [u64; 3]) {
    let store = Store::open(&StoreConfig::Local {
        path: dir.to_owned(),
    })
    .await
    .unwrap();
    let mut state = State::new(CLUSTER);
    let first = Step {
        idx: 0,
        generation: 0,
        v: 0,
        deleted: false,
    };
    for (i, t) in tpl.iter().enumerate().take(live) {
        state.apply(&mixed_event(
            t,
            i,
            Step {
                idx: i as u32,
                ..first
            },
            i as u64 + 1,
        ));
    }
    let base = put_snapshot(&store, state).await;
    // The steps, in seq order.
    let mut alive: Vec<bool> = (0..tpl.len()).map(|i| i < live).collect();
    let mut generation = vec![0u32; tpl.len()];
    let mut last_v = vec![0u64; tpl.len()];
    let mut counts = [0u64; 3];
    let mut rng = Rng::new(5);
    let steps: Vec<Step> = (0..events)
        .map(|k| {
            let idx = rng.below(tpl.len() as u64) as usize;
            if !alive[idx] {
                alive[idx] = true;
                generation[idx] += 1;
                counts[0] += 1;
                last_v[idx] = k;
                Step {
                    idx: idx as u32,
                    generation: generation[idx],
                    v: k,
                    deleted: false,
                }
            } else if rng.below(10) == 0 {
                alive[idx] = false;
                counts[2] += 1;
                Step {
                    idx: idx as u32,
                    generation: generation[idx],
                    v: last_v[idx],
                    deleted: true,
                }
            } else {
                counts[1] += 1;
                last_v[idx] = k;
                Step {
                    idx: idx as u32,
                    generation: generation[idx],
                    v: k,
                    deleted: false,
                }
            }
        })
        .collect();
    put_segments(&store, base, events, |_, seqs| {
        seqs.map(|seq| {
            let step = steps[(seq - base - 1) as usize];
            let idx = step.idx as usize;
            mixed_event(&tpl[idx], idx, step, seq)
        })
        .collect()
    })
    .await;
    (store, base, counts)
}

/// Drops every file under `dirs` from the page cache.
fn drop_cache(dirs: &[&std::path::Path]) {
    let mut stack: Vec<std::path::PathBuf> = dirs.iter().map(|d| d.to_path_buf()).collect();
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(f) = std::fs::File::open(&p) {
                let _ = rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed);
            }
        }
    }
}

/// Copies every snapshot and segment of `from` into `to`.
async fn copy_store(from: &Store, to: &Store) {
    for s in from.list_snapshots().await.unwrap() {
        let bytes = from.get_snapshot(&s).await.unwrap();
        let meta = SnapshotMeta {
            seq: s.seq,
            time_ms: s.time_ms,
            objects: s.objects,
            label: s.label,
            encrypted: s.encrypted,
            resource_set: s.resource_set,
        };
        to.put_snapshot(meta, bytes).await.unwrap();
    }
    for s in from.list_segments().await.unwrap() {
        let bytes = from.get_segment(&s).await.unwrap();
        let meta = SegmentMeta {
            first_seq: s.first_seq,
            last_seq: s.last_seq,
            first_time_ms: s.first_time_ms,
            last_time_ms: s.last_time_ms,
            events: s.events,
            encrypted: s.encrypted,
            resource_set: s.resource_set,
        };
        to.put_segment(meta, bytes).await.unwrap();
    }
}

/// P5: the state at points over a mixed history of `objects` objects and
/// `events` events, cold, from the local store and from Garage.
async fn p5(objects: usize, events: u64) {
    let dir = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let tpl = mixed_templates(objects);
    let live = tpl.len() * 10 / 11;
    let (store, base, [creates, updates, deletes]) =
        build_mixed(dir.path(), &tpl, live, events).await;
    drop(tpl);
    let size = |v: Vec<u64>| v.iter().sum::<u64>() as f64 / 1e6;
    let snap_mb = size(
        store
            .list_snapshots()
            .await
            .unwrap()
            .iter()
            .map(|s| s.size)
            .collect(),
    );
    let seg_mb = size(
        store
            .list_segments()
            .await
            .unwrap()
            .iter()
            .map(|s| s.size)
            .collect(),
    );
    let garage = tokio::task::spawn_blocking(rewind_tests::garage::Garage::start)
        .await
        .unwrap()
        .unwrap();
    let remote = Store::open(&StoreConfig::S3(rewind_history::store::S3Config {
        endpoint: Some(garage.endpoint()),
        bucket: garage.bucket().to_owned(),
        prefix: "p5".into(),
        region: "garage".into(),
        credentials_file: Some(garage.credentials_file()),
        ca_file: None,
        allow_http: true,
        path_style: true,
    }))
    .await
    .unwrap();
    copy_store(&store, &remote).await;
    println!(
        "\nP5 store: {live} objects at the snapshot (seq {base}, {snap_mb:.1} MB), then {events} mixed events ({creates} creates, {updates} content updates, {deletes} deletes) in {} segments {seg_mb:.1} MB; built and copied to Garage in {}",
        events.div_ceil(SEGMENT_EVENTS),
        secs(t.elapsed())
    );
    let sources = [
        ("local", StoreSource::new(store.clone(), Vec::new())),
        ("Garage", StoreSource::new(remote, Vec::new())),
    ];
    println!(
        "{:<8} {:>10} {:>12} {:>8} {:>10} {:>10} {:>10}",
        "P5 point", "seq", "store", "objects", "seconds", "cpu s", "naive s"
    );
    for quarter in 1..=4u64 {
        let until = base + events * quarter / 4;
        let (reference, naive_took) = {
            drop_cache(&[dir.path(), garage.dir()]);
            naive(&store, until).await
        };
        for (name, src) in &sources {
            drop_cache(&[dir.path(), garage.dir()]);
            let (t, c) = (Instant::now(), cpu());
            let pit = src.load(&Point::Seq(until)).await.unwrap();
            let (took, cpu_s) = (t.elapsed(), cpu() - c);
            assert_eq!(pit.state, reference, "P5 at seq {until} from {name}");
            println!(
                "{:<8} {until:>10} {name:>12} {:>8} {:>10.2} {cpu_s:>10.2} {:>10.2}",
                format!("{quarter}/4"),
                pit.state.objects.len(),
                took.as_secs_f64(),
                naive_took.as_secs_f64()
            );
        }
    }
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
    let p5_objects = env("REWIND_BENCH_P5_OBJECTS", 1_000_000);
    if p5_objects > 0 {
        p5(
            usize::try_from(p5_objects).unwrap(),
            env("REWIND_BENCH_P5_EVENTS", 2_000_000),
        )
        .await;
    }
}
