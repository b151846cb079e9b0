//! The compactor against a real journal: segments and snapshots must
//! reproduce the journal's state exactly at their seqs.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use proptest::prelude::*;
use rewind_format::state::State;
use rewind_format::{
    EventBlockEncoder, EventKind, EventRecord, Limits, ResourceType, SegmentReader, SnapshotReader,
};
use rewind_history::now_ms;
use rewind_history::store::{RetentionPolicy, StoreConfig};

use super::seal::SEAL_READ_BYTES;
use super::*;
use crate::journal::batch::StateChange;
use crate::journal::{self, Journal, JournalOptions, ObjectCompressor};

/// A journal shared behind a mutex with the test that commits to it, read
/// under the lock. It never trims, so a test can replay it whole after a
/// ship.
impl EventLog for Mutex<Journal> {
    fn next_seq(&self) -> u64 {
        self.lock().map_or(0, |j| j.next_seq())
    }

    fn read_from(&self, from: u64, max_bytes: u64) -> journal::Result<Vec<EventRecord>> {
        self.lock()
            .map_err(|e| journal::Error::Corrupt(e.to_string()))?
            .read_from(from, max_bytes)
    }

    fn trim_below(&self, _below: u64) -> journal::Result<u64> {
        Ok(0)
    }

    fn size_on_disk(&self) -> u64 {
        self.lock()
            .ok()
            .and_then(|j| j.size_on_disk().ok())
            .unwrap_or(0)
    }
}

fn rtype(resource: &str, namespaced: bool) -> ResourceType {
    ResourceType {
        group: if namespaced {
            String::new()
        } else {
            "management.cattle.io".into()
        },
        version: "v1".into(),
        resource: resource.into(),
        kind: resource.into(),
        namespaced,
    }
}

/// One random operation on a small key space.
#[derive(Debug, Clone)]
enum Op {
    Apply {
        t: usize,
        ns: u8,
        name: u8,
        recreate: bool,
    },
    Delete {
        t: usize,
        ns: u8,
        name: u8,
        inferred: bool,
    },
    Resync {
        t: usize,
    },
    Commit,
    Snapshot,
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        6 => (0usize..3, 0u8..3, 0u8..6, prop::bool::weighted(0.1))
            .prop_map(|(t, ns, name, recreate)| Op::Apply { t, ns, name, recreate }),
        2 => (0usize..3, 0u8..3, 0u8..6, any::<bool>())
            .prop_map(|(t, ns, name, inferred)| Op::Delete { t, ns, name, inferred }),
        1 => (0usize..3).prop_map(|t| Op::Resync { t }),
        2 => Just(Op::Commit),
        1 => Just(Op::Snapshot),
    ];
    prop::collection::vec(op, 1..120)
}

/// Drives a journal the way the ingestor does (state changes follow the
/// records), keeping uids per key so deletes name the right object.
struct Driver {
    journal: Arc<Mutex<Journal>>,
    enc: EventBlockEncoder,
    comp: ObjectCompressor,
    pending: Vec<(EventRecord, bool)>,
    uids: BTreeMap<(usize, u8, u8), u32>,
    live: BTreeMap<(usize, u8, u8), bool>,
    counter: u64,
    /// Observation time of event 0, Unix ms.
    time_base: i64,
}

impl Driver {
    fn types() -> [ResourceType; 3] {
        [
            rtype("configmaps", true),
            rtype("clusters", false),
            rtype("secrets", true),
        ]
    }

    fn record(&mut self, t: usize, ns: u8, name: u8, kind: EventKind, remove: bool) {
        self.counter += 1;
        let rt = Self::types()[t].clone();
        let uid = self.uids.get(&(t, ns, name)).copied().unwrap_or(0);
        let namespace = rt.namespaced.then(|| format!("ns{ns}"));
        let rec = EventRecord {
            seq: 0,
            observed_at_ms: self.time_base + i64::try_from(self.counter).unwrap(),
            cluster_id: "c1".into(),
            rtype: rt,
            namespace,
            name: if kind.is_marker() {
                String::new()
            } else {
                format!("o{name}")
            },
            uid: if kind.is_marker() {
                String::new()
            } else {
                format!("uid-{t}-{ns}-{name}-{uid}")
            },
            resource_version: if kind.is_marker() {
                String::new()
            } else {
                self.counter.to_string()
            },
            object: if kind.is_marker() {
                Vec::new()
            } else {
                format!("{{\"n\":{}}}", self.counter).into_bytes()
            },
            kind,
        };
        self.pending.push((rec, remove));
    }

    fn commit(&mut self) {
        let mut j = self.journal.lock().unwrap();
        let mut b = j.batch();
        for (rec, remove) in self.pending.drain(..) {
            let change = if rec.kind.is_marker() {
                StateChange::None
            } else if remove {
                StateChange::Remove
            } else {
                StateChange::Put(self.comp.compress(&rec.object).unwrap())
            };
            b.record(rec, change).unwrap();
        }
        let p = b.finish(&mut self.enc).unwrap();
        j.commit(&p).unwrap();
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Apply {
                t,
                ns,
                name,
                recreate,
            } => {
                let ns = if Self::types()[t].namespaced { ns } else { 0 };
                if recreate && self.live.get(&(t, ns, name)) == Some(&true) {
                    *self.uids.entry((t, ns, name)).or_default() += 1;
                }
                self.live.insert((t, ns, name), true);
                self.record(t, ns, name, EventKind::Applied, false);
            }
            Op::Delete {
                t,
                ns,
                name,
                inferred,
            } => {
                let ns = if Self::types()[t].namespaced { ns } else { 0 };
                if self.live.get(&(t, ns, name)) == Some(&true) {
                    self.live.insert((t, ns, name), false);
                    let kind = if inferred {
                        EventKind::DeletedInferred {
                            list_rv: "77".into(),
                        }
                    } else {
                        EventKind::Deleted
                    };
                    self.record(t, ns, name, kind, true);
                }
            }
            Op::Resync { t } => {
                let rv = (self.counter + 1).to_string();
                self.record(t, 0, 0, EventKind::ResyncEnd { list_rv: rv }, false);
            }
            Op::Commit | Op::Snapshot => self.commit(),
        }
    }
}

impl Driver {
    fn new(journal: Arc<Mutex<Journal>>) -> Self {
        Self {
            journal,
            enc: EventBlockEncoder::new(1).unwrap(),
            comp: ObjectCompressor::new(1).unwrap(),
            pending: vec![],
            uids: BTreeMap::new(),
            live: BTreeMap::new(),
            counter: 0,
            time_base: 1_700_000_000_000,
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A fresh journal in `dir/journal`, shared the way the daemon shares it.
fn shared_journal(dir: &std::path::Path) -> Arc<Mutex<Journal>> {
    Arc::new(Mutex::new(
        Journal::open(&dir.join("journal"), &JournalOptions::default()).unwrap(),
    ))
}

fn settings(store: &std::path::Path) -> Settings {
    let cfg = CompactConfig {
        seal_bytes: 4096,
        zstd_level: 3,
        snapshot_schedule: String::new(),
        ..CompactConfig::default()
    };
    cfg.validate(
        StoreConfig::Local {
            path: store.to_owned(),
        },
        RetentionPolicy::default(),
    )
    .unwrap()
}

/// The journal's current state as `(type, ns, name) -> (uid, rv, json)`.
/// `(type, ns, name) -> (uid, rv, json)`.
type Flat = BTreeMap<(String, Option<String>, String), (String, String, Vec<u8>)>;

fn journal_state(j: &Journal) -> Flat {
    j.state()
        .map(|e| {
            let e = e.unwrap();
            let json = e.object_json().unwrap();
            (
                (e.key.group_resource(), e.key.namespace, e.key.name),
                (e.uid, e.resource_version, json),
            )
        })
        .collect()
}

fn snapshot_state(bytes: &[u8]) -> Flat {
    let mut r = SnapshotReader::open(bytes, None, Limits::default()).unwrap();
    let types = r.header().types.clone();
    let mut out = BTreeMap::new();
    for (i, t) in types.iter().enumerate() {
        let tk = crate::journal::type_key(&t.rtype);
        for o in r.read_type(i).unwrap() {
            out.insert(
                (tk.clone(), o.namespace.clone(), o.name.clone()),
                (o.uid, o.resource_version, o.object),
            );
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn snapshots_reproduce_the_journal_state_at_their_seq(ops in ops(), fold_cap in prop_oneof![Just(u64::MAX), 1u64..200, 200u64..5000]) {
        let rt = runtime();
        let dir = tempfile::tempdir().unwrap();
        let journal = shared_journal(dir.path());
        let log: Arc<dyn EventLog> = journal.clone();
        let mut st = settings(&dir.path().join("store"));
        // Tiny: every few events are folded into an intermediate snapshot.
        st.fold_memory_bytes = fold_cap;
        let c = rt.block_on(Compactor::open(log, None, &dir.path().join("compact"), st)).unwrap();
        let mut d = Driver::new(journal.clone());
        let mut checked = 0;
        for op in ops.iter().chain(std::iter::once(&Op::Snapshot)) {
            d.apply(op);
            if let Op::Snapshot = op {
                let snap = c.snapshot(None).unwrap();
                let j = journal.lock().unwrap();
                prop_assert_eq!(snap.seq, j.next_seq() - 1);
                let bytes = c.ledger().files().get(&snap.key()).unwrap();
                prop_assert_eq!(snapshot_state(&bytes), journal_state(&j));
                // The fold agrees with the format crate's fold over all events.
                let mut s = State::new("c1");
                for e in j.records_from(1) { s.apply(&e.unwrap()); }
                let mut r = SnapshotReader::open(&bytes, None, Limits::default()).unwrap();
                let from_snap = State::from_snapshot(&mut r).unwrap();
                prop_assert_eq!(&from_snap.objects, &s.objects);
                prop_assert_eq!(&from_snap.types, &s.types);
                drop(j);
                rt.block_on(c.shipper().ship()).unwrap();
                checked += 1;
            }
        }
        prop_assert!(checked >= 1);
        // Every stored segment, replayed from the start, ends in the state.
        let segs = rt.block_on(c.shipper().store().list_segments()).unwrap();
        let mut s = State::new("c1");
        let mut next = 1;
        for seg in &segs {
            prop_assert_eq!(seg.first_seq, next);
            let bytes = rt.block_on(c.shipper().store().get_segment(seg)).unwrap();
            let mut r = rewind_format::SegmentReader::open(&bytes, None, Limits::default()).unwrap();
            for e in r.read_all().unwrap() { s.apply(&e); }
            next = seg.last_seq + 1;
        }
        let j = journal.lock().unwrap();
        prop_assert_eq!(next, j.next_seq());
        let last = rt.block_on(c.shipper().store().list_snapshots()).unwrap();
        if let Some(last) = last.last() {
            let bytes = rt.block_on(c.shipper().store().get_snapshot(last)).unwrap();
            let mut r = SnapshotReader::open(&bytes, None, Limits::default()).unwrap();
            prop_assert_eq!(&State::from_snapshot(&mut r).unwrap().objects, &s.objects);
        }
    }
}

#[test]
fn encrypted_store_never_holds_plain_secrets() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let journal = shared_journal(dir.path());
    let identity = rewind_format::crypto::Identity::generate();
    let mut s = settings(&dir.path().join("store"));
    s.recipients = vec![identity.to_public()];
    let c = rt
        .block_on(Compactor::open(
            journal.clone(),
            None,
            &dir.path().join("compact"),
            s,
        ))
        .unwrap();
    let mut d = Driver::new(journal.clone());
    for i in 0..50 {
        d.apply(&Op::Apply {
            t: 2,
            ns: 0,
            name: i % 6,
            recreate: false,
        });
    }
    d.commit();
    c.snapshot(Some("before-upgrade".into())).unwrap();
    rt.block_on(c.shipper().ship()).unwrap();
    let snaps = rt.block_on(c.shipper().store().list_snapshots()).unwrap();
    assert_eq!(snaps.len(), 1);
    assert!(snaps[0].encrypted && snaps[0].label.as_deref() == Some("before-upgrade"));
    // No file in the store holds a Secret's JSON or name in clear.
    let mut files = 0;
    for entry in walk(&dir.path().join("store")) {
        let bytes = std::fs::read(&entry).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains("{\"n\":") && !text.contains("uid-2-"),
            "{}",
            entry.display()
        );
        files += 1;
    }
    assert!(files >= 4, "segments, snapshot and their catalog entries");
    // The holder of the identity reads it back.
    let bytes = rt
        .block_on(c.shipper().store().get_snapshot(&snaps[0]))
        .unwrap();
    let plain = rewind_format::crypto::decrypt(&bytes, &[identity], &Limits::default()).unwrap();
    let mut r = SnapshotReader::open(&plain, None, Limits::default()).unwrap();
    assert_eq!(State::from_snapshot(&mut r).unwrap().objects.len(), 6);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn a_store_that_is_down_never_blocks_sealing_and_the_budget_warns() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let journal = shared_journal(dir.path());
    let mut s = settings(&dir.path().join("store"));
    s.disk_budget_bytes = 40 << 10;
    s.store_retry = rewind_history::store::RetryPolicy {
        initial: std::time::Duration::from_millis(1),
        max: std::time::Duration::from_millis(2),
        max_attempts: 2,
    };
    let c = rt
        .block_on(Compactor::open(
            journal.clone(),
            None,
            &dir.path().join("compact"),
            s.clone(),
        ))
        .unwrap();
    // Now make the store fail: swap its root for a file.
    std::fs::remove_dir_all(dir.path().join("store")).unwrap();
    std::fs::write(dir.path().join("store"), b"not a directory").unwrap();
    let mut d = Driver::new(journal.clone());
    for round in 0..20u8 {
        for i in 0..40 {
            d.apply(&Op::Apply {
                t: 0,
                ns: round % 3,
                name: i % 6,
                recreate: false,
            });
        }
        d.commit();
        assert!(
            c.sealer().seal_all().unwrap() >= 1,
            "sealing goes on while the store is down"
        );
    }
    assert!(rt.block_on(c.shipper().ship()).is_err());
    assert!(c.stats.store_down.load(Ordering::Relaxed));
    assert_eq!(c.ledger().progress().shipped_upto, 0);
    assert!(c.ledger().progress().sealed_upto == journal.lock().unwrap().next_seq() - 1);
    assert!(
        c.stats.over_budget.load(Ordering::Relaxed),
        "local {} bytes vs budget {}",
        CompactStats::get(&c.stats.local_bytes),
        s.disk_budget_bytes
    );
    // The store comes back: everything is shipped, nothing lost, budget clears
    // once the local files go (the journal itself is not trimmed yet).
    std::fs::remove_file(dir.path().join("store")).unwrap();
    c.snapshot(None).unwrap();
    rt.block_on(c.shipper().ship()).unwrap();
    let segs = rt.block_on(c.shipper().store().list_segments()).unwrap();
    assert_eq!(
        segs.last().unwrap().last_seq,
        journal.lock().unwrap().next_seq() - 1
    );
    assert_eq!(
        segs.iter().map(|s| s.events).sum::<u64>(),
        journal.lock().unwrap().next_seq() - 1
    );
    assert!(
        c.ledger().files().segments().unwrap().is_empty(),
        "shipped and folded segments leave the local dir"
    );
}

#[test]
fn the_log_reader_reads_like_the_journal_and_trims_only_whole_older_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let journal = shared_journal(dir.path());
    let mut d = Driver::new(journal.clone());
    for _ in 0..5 {
        for i in 0..10 {
            d.apply(&Op::Apply {
                t: 0,
                ns: 0,
                name: i % 6,
                recreate: false,
            });
        }
        d.commit();
    }
    let view = journal.lock().unwrap().log_reader();
    assert_eq!(view.next_seq(), 51);
    let all: Vec<u64> = view
        .read_from(1, u64::MAX)
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(all, (1..=50).collect::<Vec<_>>());
    assert_eq!(
        view.read_from(15, u64::MAX).unwrap().first().unwrap().seq,
        15
    );
    // A byte cap stops after the block that reaches it.
    assert_eq!(view.read_from(1, 1).unwrap().len(), 10);
    // Blocks start at 1, 11, 21, 31, 41: below 25 only the first two go.
    assert_eq!(view.trim_below(25).unwrap(), 20);
    assert_eq!(
        view.read_from(1, u64::MAX).unwrap().first().unwrap().seq,
        21
    );
    assert_eq!(view.trim_below(25).unwrap(), 0, "idempotent");
    // The journal goes on: next_seq, reads and commits are unaffected.
    assert_eq!(journal.lock().unwrap().next_seq(), 51);
    d.apply(&Op::Apply {
        t: 1,
        ns: 0,
        name: 1,
        recreate: false,
    });
    d.commit();
    assert_eq!(view.next_seq(), 52);
    assert_eq!(journal.lock().unwrap().records_from(21).count(), 31);
}

/// The writer's reopen after an I/O error must not be blocked by the
/// compactor: with the reader detached the journal reopens, and the reader
/// reads the reopened journal once attached again.
#[test]
fn a_detached_reader_lets_the_journal_reopen_and_reads_it_after() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal");
    let journal = Arc::new(Mutex::new(
        Journal::open(&path, &JournalOptions::default()).unwrap(),
    ));
    let mut d = Driver::new(journal.clone());
    for i in 0..10 {
        d.apply(&Op::Apply {
            t: 0,
            ns: 0,
            name: i % 6,
            recreate: false,
        });
    }
    d.commit();
    let reader = journal.lock().unwrap().log_reader();
    assert_eq!(reader.read_from(1, u64::MAX).unwrap().len(), 10);
    drop(d);
    let only = Arc::try_unwrap(journal).ok().unwrap().into_inner().unwrap();
    drop(only);
    // While the reader holds the journal open, its directory stays locked.
    assert!(
        Journal::open(&path, &JournalOptions::default()).is_err(),
        "a live handle blocks a reopen (what detaching is for)"
    );
    reader.detach();
    assert!(!reader.is_attached());
    assert_eq!(reader.next_seq(), 11, "last known next_seq while detached");
    assert!(reader.read_from(1, u64::MAX).is_err());
    let reopened = Journal::open_after_drop(&path, &JournalOptions::default());
    reader.attach(&reopened);
    let seqs: Vec<u64> = reader
        .read_from(1, u64::MAX)
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, (1..=10).collect::<Vec<_>>());
}

/// The journal drops its own events only once they are sealed AND stored
/// AND older than the local window; a segment stored while young is trimmed
/// later, when it has aged: deciding only at the moment a segment is stored
/// would never trim with a 24 h window.
#[test]
fn journal_trims_only_sealed_stored_events_older_than_the_window() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let journal = shared_journal(dir.path());
    let reader = journal.lock().unwrap().log_reader();
    let mut s = settings(&dir.path().join("store"));
    let window_ms = 3_000;
    s.local_window_ms = window_ms;
    let c = rt
        .block_on(Compactor::open(
            Arc::new(reader.clone()),
            None,
            &dir.path().join("compact"),
            s,
        ))
        .unwrap();
    let mut d = Driver {
        time_base: now_ms(),
        ..Driver::new(journal.clone())
    };
    let batch = |d: &mut Driver| {
        for i in 0..10 {
            d.apply(&Op::Apply {
                t: 0,
                ns: 0,
                name: i % 6,
                recreate: false,
            });
        }
        d.commit();
    };
    let first_in_journal = || reader.read_from(1, u64::MAX).unwrap().first().unwrap().seq;
    // 1..=30 sealed and stored; 31..=40 sealed only; 41..=50 not sealed.
    for _ in 0..3 {
        batch(&mut d);
    }
    c.sealer().seal_all().unwrap();
    rt.block_on(c.shipper().ship()).unwrap();
    assert_eq!(c.ledger().progress().shipped_upto, 30);
    batch(&mut d);
    c.sealer().seal_all().unwrap();
    batch(&mut d);
    assert_eq!(c.trimmer().trim().unwrap(), 0, "stored but young: kept");
    assert_eq!(first_in_journal(), 1);

    std::thread::sleep(std::time::Duration::from_millis(
        u64::try_from(window_ms).unwrap() + 300,
    ));
    // Now everything is old; only what is also stored may go.
    assert_eq!(c.trimmer().trim().unwrap(), 30);
    assert_eq!(first_in_journal(), 31, "sealed but not stored: kept");
    assert_eq!(CompactStats::get(&c.stats.trimmed_below), 31);
    // Storing 31..=40 lets them go on that same ship; 41..=50 stay, old as
    // they are, because they are not sealed.
    rt.block_on(c.shipper().ship()).unwrap();
    assert_eq!(first_in_journal(), 41);
    let left: Vec<u64> = reader
        .read_from(1, u64::MAX)
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(left, (41..=50).collect::<Vec<_>>());
    assert!(c.ledger().progress().untrimmed.is_empty());
    // Nothing was lost: the store has every sealed event.
    let segs = rt.block_on(c.shipper().store().list_segments()).unwrap();
    assert_eq!(segs.iter().map(|s| s.events).sum::<u64>(), 40);
}

/// Sealing takes only what the writer reports fsynced (its durable seq),
/// never events whose `next_seq` record is written but not yet durable.
#[test]
fn sealing_takes_only_what_the_writer_reports_durable() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let journal = shared_journal(dir.path());
    let (durable, durable_rx) = tokio::sync::watch::channel(1);
    let reader = journal.lock().unwrap().log_reader();
    let c = rt
        .block_on(Compactor::open(
            Arc::new(reader),
            Some(durable_rx),
            &dir.path().join("compact"),
            settings(&dir.path().join("store")),
        ))
        .unwrap();
    let mut d = Driver::new(journal.clone());
    for _ in 0..2 {
        for i in 0..10 {
            d.apply(&Op::Apply {
                t: 0,
                ns: 0,
                name: i % 6,
                recreate: false,
            });
        }
        d.commit();
    }
    assert_eq!(
        c.sealer().durable_next_seq(),
        1,
        "nothing reported durable yet"
    );
    assert_eq!(c.sealer().seal_all().unwrap(), 0);
    durable.send_replace(11);
    c.sealer().seal_all().unwrap();
    assert_eq!(c.ledger().progress().sealed_upto, 10);
    durable.send_replace(21);
    c.sealer().seal_all().unwrap();
    assert_eq!(c.ledger().progress().sealed_upto, 20);
}

/// A standby's journal taken over as a child lineage forked at seq 100:
/// the compactor seals the journal's events 1..=20 as the lineage's
/// 101..=120, cuts a first snapshot exactly at a given seq, and trims the
/// journal in its own numbers.
#[test]
fn a_shifted_log_seals_a_standby_journal_in_the_lineages_numbers_and_cuts_exactly() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let journal = shared_journal(dir.path());
    let mut d = Driver::new(journal.clone());
    for _ in 0..2 {
        for i in 0..10 {
            d.apply(&Op::Apply {
                t: 0,
                ns: 0,
                name: i % 6,
                recreate: false,
            });
        }
        d.commit();
    }
    let (_durable, durable_rx) = tokio::sync::watch::channel(21);
    let c = rt
        .block_on(async {
            let durable = super::log::shift_durable(durable_rx, 100);
            Compactor::open(
                Arc::new(super::log::Shifted::new(journal.clone(), 100)),
                Some(durable),
                &dir.path().join("compact"),
                settings(&dir.path().join("store")),
            )
            .await
        })
        .unwrap();
    c.ledger()
        .update(|p| {
            p.sealed_upto = 100;
            p.shipped_upto = 100;
        })
        .unwrap();
    assert_eq!(c.sealer().durable_next_seq(), 121);
    c.sealer().seal_through(107).unwrap();
    assert_eq!(
        c.ledger().progress().sealed_upto,
        107,
        "sealed exactly to the cut"
    );
    let snap = c.snapshotter().snapshot(None).unwrap();
    assert_eq!(snap.seq, 107);
    c.sealer().seal_all().unwrap();
    let segs = c.ledger().files().segments().unwrap();
    let ranges: Vec<(u64, u64)> = segs.iter().map(|(f, l, _)| (*f, *l)).collect();
    assert_eq!(ranges.first().map(|r| r.0), Some(101));
    assert_eq!(ranges.last().map(|r| r.1), Some(120));
    for w in ranges.windows(2) {
        assert_eq!(w[1].0, w[0].1 + 1, "{ranges:?}");
    }
    let shifted = super::log::Shifted::new(journal.clone(), 100);
    let first = shifted.read_from(101, 1 << 20).unwrap();
    assert_eq!(first.first().map(|e| e.seq), Some(101));
    assert_eq!(shifted.next_seq(), 121);
}

/// Counts the compactor's reads and the largest one, to see how much of
/// the journal a seal holds decoded at once.
struct CountingLog {
    inner: Arc<Mutex<Journal>>,
    reads: std::sync::atomic::AtomicU64,
    largest: std::sync::atomic::AtomicU64,
}

impl EventLog for CountingLog {
    fn next_seq(&self) -> u64 {
        self.inner.next_seq()
    }
    fn read_from(&self, from: u64, max_bytes: u64) -> journal::Result<Vec<EventRecord>> {
        let out = self.inner.read_from(from, max_bytes)?;
        let bytes: usize = out.iter().map(|e| e.object.len()).sum();
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.largest
            .fetch_max(u64::try_from(bytes).unwrap(), Ordering::Relaxed);
        Ok(out)
    }
    fn trim_below(&self, below: u64) -> journal::Result<u64> {
        self.inner.trim_below(below)
    }
    fn size_on_disk(&self) -> u64 {
        self.inner.size_on_disk()
    }
}

/// Peak memory while a busy plane is first synced: a seal streams the
/// journal's events in reads of about `SEAL_READ_BYTES` instead of holding
/// a whole segment's events (16 MiB of JSON by default) before encoding
/// them; the segments must still hold exactly the journal's events,
/// contiguous, each of about `seal_bytes`.
#[test]
fn regression_a_seal_streams_the_journal_in_short_reads_and_loses_nothing() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let journal = shared_journal(dir.path());
    let log = Arc::new(CountingLog {
        inner: journal.clone(),
        reads: 0.into(),
        largest: 0.into(),
    });
    let mut st = settings(&dir.path().join("store"));
    st.seal_bytes = 3 << 20;
    let c = rt
        .block_on(Compactor::open(
            log.clone(),
            None,
            &dir.path().join("compact"),
            st,
        ))
        .unwrap();
    let mut d = Driver::new(journal.clone());
    // 8,000 events of 1 KB: about 8 MB of JSON, so three segments, each
    // needing several reads.
    let mut x = 0x2545_F491_4F6C_DD1D_u64;
    for round in 0..8 {
        for i in 0..1000u32 {
            d.apply(&Op::Apply {
                t: 0,
                ns: u8::try_from(i % 7).unwrap(),
                name: u8::try_from(i % 251).unwrap(),
                recreate: false,
            });
            let noise: String = (0..120)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    format!("{:02x}", x % 256)
                })
                .collect::<String>();
            let (rec, _) = d.pending.last_mut().unwrap();
            rec.object = format!(
                "{{\"round\":{round},\"i\":{i},\"data\":\"{noise}{noise}{noise}{noise}\"}}"
            )
            .into_bytes();
        }
        d.commit();
    }
    let written = c.sealer().seal_all().unwrap();
    assert_eq!(written, 3, "8 MB of JSON in segments of 3 MiB");
    assert!(
        log.reads.load(Ordering::Relaxed) >= 8,
        "reads of ~1 MiB each"
    );
    let largest = log.largest.load(Ordering::Relaxed);
    assert!(
        largest <= SEAL_READ_BYTES + (64 << 10),
        "a read held {largest} bytes of JSON"
    );
    rt.block_on(c.shipper().ship()).unwrap();
    let segs = rt.block_on(c.shipper().store().list_segments()).unwrap();
    let mut sealed = Vec::new();
    for seg in &segs {
        let bytes = rt.block_on(c.shipper().store().get_segment(seg)).unwrap();
        let mut r = SegmentReader::open(&bytes, None, Limits::default()).unwrap();
        let events = r.read_all().unwrap();
        let json: usize = events.iter().map(|e| e.object.len()).sum();
        assert!(json <= (3 << 20) + (64 << 10), "segment of {json} bytes");
        assert_eq!(events.first().map(|e| e.seq), Some(seg.first_seq));
        assert_eq!(events.last().map(|e| e.seq), Some(seg.last_seq));
        sealed.extend(events);
    }
    let j = journal.lock().unwrap();
    let model: Vec<EventRecord> = j.records_from(1).map(Result::unwrap).collect();
    assert_eq!(model.len(), 8000);
    assert!(
        sealed == model,
        "the segments hold exactly the journal's events"
    );
}

/// A crash after a file reached the store but before the progress was
/// saved: the next start finds the file of its lineage and does not store
/// a second, differently encrypted copy claiming the same seqs.
#[test]
fn a_file_stored_before_a_crash_is_not_stored_again() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let journal = shared_journal(dir.path());
    let identity = rewind_format::crypto::Identity::generate();
    let mut s = settings(&dir.path().join("store"));
    s.recipients = vec![identity.to_public()];
    let open = |s: Settings| {
        rt.block_on(Compactor::open(
            journal.clone(),
            None,
            &dir.path().join("compact"),
            s,
        ))
        .unwrap()
    };
    let c = open(s.clone());
    c.ledger()
        .update(|p| p.lineage = Some("ab".repeat(16)))
        .unwrap();
    let mut d = Driver::new(journal.clone());
    for round in 0..3 {
        for i in 0..20 {
            d.apply(&Op::Apply {
                t: 2,
                ns: 0,
                name: (i + round) % 6,
                recreate: false,
            });
        }
        d.commit();
        assert!(c.sealer().seal_all().unwrap() >= 1);
    }
    rt.block_on(c.shipper().ship()).unwrap();
    let stored = rt.block_on(c.shipper().store().list_segments()).unwrap();
    assert!(stored.len() >= 2);
    let shipped = c.ledger().progress();
    // The progress as it was before the ship (the crash lost its save).
    c.ledger()
        .update(|p| {
            p.shipped_upto = 0;
            p.prev_sha256 = None;
            p.untrimmed.clear();
        })
        .unwrap();
    drop(c);
    let c = open(s);
    rt.block_on(c.shipper().ship()).unwrap();
    let again = rt.block_on(c.shipper().store().list_segments()).unwrap();
    assert_eq!(again, stored, "no segment stored twice");
    let p = c.ledger().progress();
    assert_eq!(p.shipped_upto, shipped.shipped_upto);
    assert_eq!(p.prev_sha256, shipped.prev_sha256);
}

fn named_set(preset: &str) -> RecordedResourceSet {
    RecordedResourceSet {
        presets: vec![preset.into()],
        selectors: Vec::new(),
    }
}

/// Each stored segment and snapshot names the resource set its events were
/// recorded under: a change seals what came before under the old set, and
/// the files after it carry the new one, across a restart too.
#[test]
fn stored_files_name_the_resource_set_they_were_recorded_under() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let journal = shared_journal(dir.path());
    let open = || {
        rt.block_on(Compactor::open(
            journal.clone(),
            None,
            &dir.path().join("compact"),
            settings(&dir.path().join("store")),
        ))
        .unwrap()
    };
    let c = open();
    let mut d = Driver::new(journal.clone());
    let apply = |d: &mut Driver, n: u8| {
        for i in 0..n {
            d.apply(&Op::Apply {
                t: 0,
                ns: 0,
                name: i % 6,
                recreate: false,
            });
        }
        d.commit();
    };
    c.record_set(named_set("rancher")).unwrap();
    apply(&mut d, 5);
    // Pending events are sealed under the set they were recorded with.
    c.record_set(named_set("everything")).unwrap();
    apply(&mut d, 4);
    c.snapshot(None).unwrap();
    rt.block_on(c.shipper().ship()).unwrap();
    drop(c);
    // A restart with the same set adds nothing; a third set applies to what
    // follows it.
    let c = open();
    c.record_set(named_set("everything")).unwrap();
    assert_eq!(
        c.ledger().progress().resource_sets.len(),
        1,
        "older sets no file needs are dropped"
    );
    apply(&mut d, 3);
    c.record_set(named_set("rancher")).unwrap();
    rt.block_on(c.shipper().ship()).unwrap();

    let store = c.shipper().store();
    let segs = rt.block_on(store.list_segments()).unwrap();
    let by_range: Vec<(u64, u64, Vec<String>)> = segs
        .iter()
        .map(|s| {
            (
                s.first_seq,
                s.last_seq,
                s.resource_set.clone().unwrap().presets,
            )
        })
        .collect();
    assert_eq!(
        by_range,
        vec![
            (1, 5, vec!["rancher".to_owned()]),
            (6, 9, vec!["everything".to_owned()]),
            (10, 12, vec!["everything".to_owned()]),
        ]
    );
    let snaps = rt.block_on(store.list_snapshots()).unwrap();
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0].seq, 9);
    assert_eq!(snaps[0].resource_set, Some(named_set("everything")));
    // The set in force for the events after the last change.
    assert_eq!(
        c.ledger().progress().set_at(13),
        Some(&named_set("rancher"))
    );
}

/// The head fence: a writer whose head was swapped by the writer of
/// another lineage (a standby that took over, between this writer's
/// lineage check and its next file) stores nothing more, and says who
/// holds the head; a writer without the fence would have stored the file.
#[test]
fn a_writer_whose_head_another_lineage_swapped_stores_nothing_more() {
    use rewind_history::store::head::HEAD_VERSION;
    use rewind_history::store::{Head, Swap};

    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let journal = shared_journal(dir.path());
    let c = rt
        .block_on(Compactor::open(
            journal.clone(),
            None,
            &dir.path().join("compact"),
            settings(&dir.path().join("store")),
        ))
        .unwrap();
    let ours = "ab".repeat(16);
    c.ledger()
        .update(|p| p.lineage = Some(ours.clone()))
        .unwrap();
    let store = c.shipper().store().clone();
    let cas = rt.block_on(store.probe_conditional_writes()).unwrap();
    assert!(cas.compare_and_swap, "a local store has compare-and-swap");
    c.shipper().enable_fence(3, "recorder-a".into());
    let mut d = Driver::new(journal.clone());
    let round = |d: &mut Driver, n: u8| {
        for i in 0..20 {
            d.apply(&Op::Apply {
                t: 2,
                ns: 0,
                name: (i + n) % 6,
                recreate: false,
            });
        }
        d.commit();
        assert!(c.sealer().seal_all().unwrap() >= 1);
    };
    round(&mut d, 0);
    rt.block_on(c.shipper().ship()).unwrap();
    let stored = rt.block_on(store.list_segments()).unwrap();
    assert!(!stored.is_empty());
    let (head, version) = rt.block_on(store.read_head()).unwrap().unwrap();
    assert_eq!(
        (head.lineage.as_str(), head.epoch, head.holder.as_str()),
        (ours.as_str(), 3, "recorder-a")
    );

    // Another writer swaps the head to its lineage (its lineage record
    // not yet written, so the lineage check before the round passes).
    let theirs = Head {
        version: HEAD_VERSION,
        lineage: "cd".repeat(16),
        epoch: 4,
        holder: "recorder-b".into(),
        updated_at_ms: now_ms(),
    };
    assert!(matches!(
        rt.block_on(store.swap_head(Some(&version), &theirs))
            .unwrap(),
        Swap::Swapped(_)
    ));
    round(&mut d, 1);
    let err = rt.block_on(c.shipper().ship()).unwrap_err();
    assert!(matches!(err, CompactError::Fenced(_)), "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&"cd".repeat(16)) && text.contains("recorder-b") && text.contains(&ours),
        "{text}"
    );
    assert_eq!(
        rt.block_on(store.list_segments()).unwrap(),
        stored,
        "nothing stored after the head changed hands"
    );
    assert_eq!(rt.block_on(store.read_head()).unwrap().unwrap().0, theirs);

    // The control: without the fence the same round is stored.
    c.shipper().disable_fence();
    rt.block_on(c.shipper().ship()).unwrap();
    assert!(rt.block_on(store.list_segments()).unwrap().len() > stored.len());
}
