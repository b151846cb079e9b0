use rewind_format::{EventBlockEncoder, EventKind, EventRecord, ResourceType};

use super::batch::StateChange;
use super::*;

fn cm() -> ResourceType {
    ResourceType {
        group: String::new(),
        version: "v1".into(),
        resource: "configmaps".into(),
        kind: "ConfigMap".into(),
        namespaced: true,
    }
}

fn rec(name: &str, rv: &str) -> EventRecord {
    EventRecord {
        seq: 0,
        observed_at_ms: 1,
        cluster_id: "c".into(),
        rtype: cm(),
        namespace: Some("ns".into()),
        name: name.into(),
        uid: format!("uid-{name}"),
        resource_version: rv.into(),
        kind: EventKind::Applied,
        object: format!("{{\"rv\":\"{rv}\"}}").into_bytes(),
    }
}

/// The state change of `r`, as `c` stores it (left in the log by
/// [`ObjectCompressor::for_state`], inline by the others).
fn put(c: &mut ObjectCompressor, r: &EventRecord) -> StateChange {
    StateChange::Put(c.stored(&r.object, false).unwrap())
}

#[test]
fn committed_batches_survive_reopen_with_gap_free_seqs() {
    let dir = tempfile::tempdir().unwrap();
    let opts = JournalOptions::default();
    let mut enc = EventBlockEncoder::new(1).unwrap();
    let mut comp = ObjectCompressor::new(1).unwrap();
    {
        let mut j = Journal::open(dir.path(), &opts).unwrap();
        for round in 0..3 {
            let mut b = j.batch();
            for i in 0..5 {
                let r = rec(&format!("o{i}"), &format!("{}", round * 10 + i));
                let ch = put(&mut comp, &r);
                b.record(r, ch).unwrap();
            }
            let p = b.finish(&mut enc).unwrap();
            j.commit(&p).unwrap();
        }
        assert_eq!(j.next_seq(), 16);
    }
    let j = Journal::open_after_drop(dir.path(), &opts);
    assert_eq!(j.next_seq(), 16);
    let seqs: Vec<u64> = j.records_from(1).map(|r| r.unwrap().seq).collect();
    assert_eq!(seqs, (1..16).collect::<Vec<_>>());
    // Reading from the middle of a block starts at that record.
    let mid: Vec<u64> = j.records_from(8).map(|r| r.unwrap().seq).collect();
    assert_eq!(mid, (8..16).collect::<Vec<_>>());
    let state: Vec<StateEntry> = j.state().map(|r| r.unwrap()).collect();
    assert_eq!(state.len(), 5);
    let o4 = state.iter().find(|e| e.key.name == "o4").unwrap();
    assert_eq!(o4.resource_version, "24");
    assert_eq!(o4.object_json().unwrap(), br#"{"rv":"24"}"#);
    let tr = j.type_record("configmaps").unwrap().unwrap();
    assert_eq!(tr.events, 15);
    assert_eq!(tr.last_rv, "24");
}

#[test]
fn a_batch_is_committed_once_even_when_retried() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(dir.path(), &JournalOptions::default()).unwrap();
    let mut enc = EventBlockEncoder::new(1).unwrap();
    let mut comp = ObjectCompressor::new(1).unwrap();
    let mut b = j.batch();
    let r = rec("a", "1");
    let ch = put(&mut comp, &r);
    b.record(r, ch).unwrap();
    let p = b.finish(&mut enc).unwrap();
    j.commit(&p).unwrap();
    // A retry after an error that hid the success must not write it twice.
    j.commit(&p).unwrap();
    assert_eq!(j.records_from(1).count(), 1);
    // A batch prepared against an older position is refused.
    let stale = PreparedBatch {
        first_seq: 1,
        next_seq: 3,
        blocks: vec![(1, vec![1])],
        ..PreparedBatch::default()
    };
    assert!(matches!(j.commit(&stale), Err(Error::OutOfOrder { .. })));
}

#[test]
fn staged_changes_are_visible_within_the_batch() {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(dir.path(), &JournalOptions::default()).unwrap();
    let mut comp = ObjectCompressor::new(1).unwrap();
    let mut b = j.batch();
    let r = rec("a", "1");
    let key = batch::record_key(&r);
    let ch = put(&mut comp, &r);
    b.record(r.clone(), ch).unwrap();
    assert_eq!(b.get(&key).unwrap().unwrap().resource_version, "1");
    assert_eq!(b.keys_of_type("configmaps").unwrap().len(), 1);
    let mut d = r;
    d.kind = EventKind::Deleted;
    b.record(d, StateChange::Remove).unwrap();
    assert!(b.get(&key).unwrap().is_none());
    assert!(b.keys_of_type("configmaps").unwrap().is_empty());
}

#[test]
fn filtered_keys_merge_the_journal_with_the_staged_changes() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(dir.path(), &JournalOptions::default()).unwrap();
    let mut enc = EventBlockEncoder::new(1).unwrap();
    let mut comp = ObjectCompressor::new(1).unwrap();
    let mut b = j.batch();
    for name in ["a", "b", "c"] {
        let r = rec(name, "1");
        let ch = put(&mut comp, &r);
        b.record(r, ch).unwrap();
    }
    let p = b.finish(&mut enc).unwrap();
    j.commit(&p).unwrap();
    // Committed: a, b, c. Staged: b removed, d added, c updated.
    let mut b = j.batch();
    let mut d = rec("b", "2");
    d.kind = EventKind::Deleted;
    b.record(d, StateChange::Remove).unwrap();
    for (name, rv) in [("d", "3"), ("c", "4")] {
        let r = rec(name, rv);
        let ch = put(&mut comp, &r);
        b.record(r, ch).unwrap();
    }
    let key = |n: &str| keys::encode_key("configmaps", "ns", n);
    let all = b.keys_of_type_where("configmaps", |_| true).unwrap();
    assert_eq!(all, vec![key("a"), key("c"), key("d")]);
    let all_set: Vec<Vec<u8>> = b.keys_of_type("configmaps").unwrap().into_iter().collect();
    assert_eq!(all, all_set, "the same keys as the unfiltered set");
    let not_c = b
        .keys_of_type_where("configmaps", |k| k != key("c").as_slice())
        .unwrap();
    assert_eq!(not_c, vec![key("a"), key("d")]);
    assert!(
        b.keys_of_type_where("secrets", |_| true)
            .unwrap()
            .is_empty()
    );
    // The staged value is the one read back, from a reused encode buffer.
    let e = b.get(&batch::record_key(&rec("c", "4"))).unwrap().unwrap();
    assert_eq!(e.resource_version, "4");
    assert_eq!(e.object_json().unwrap(), br#"{"rv":"4"}"#);
}

#[test]
fn a_batch_without_records_still_applies_its_meta_changes() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(dir.path(), &JournalOptions::default()).unwrap();
    let mut enc = EventBlockEncoder::new(1).unwrap();
    let mut comp = ObjectCompressor::new(1).unwrap();
    let mut b = j.batch();
    let r = rec("a", "1");
    let ch = put(&mut comp, &r);
    b.record(r, ch).unwrap();
    let p = b.finish(&mut enc).unwrap();
    j.commit(&p).unwrap();
    assert!(j.type_record("configmaps").unwrap().is_some());
    // A type whose objects are all gone already: only its record goes.
    let mut b = j.batch();
    b.forget_type("configmaps");
    let p = b.finish(&mut enc).unwrap();
    assert_eq!(p.len(), 0);
    j.commit(&p).unwrap();
    assert!(j.type_record("configmaps").unwrap().is_none());
}

fn batch_of(
    j: &Journal,
    enc: &mut EventBlockEncoder,
    comp: &mut ObjectCompressor,
    names: &[(&str, &str)],
) -> PreparedBatch {
    let mut b = j.batch();
    for (name, rv) in names {
        let r = rec(name, rv);
        let ch = put(comp, &r);
        b.record(r, ch).unwrap();
    }
    b.finish(enc).unwrap()
}

fn reopen(dir: &std::path::Path) -> Journal {
    Journal::open_after_drop(dir, &JournalOptions::default())
}

#[test]
fn a_crash_before_the_commit_point_drops_the_unacknowledged_block() {
    let dir = tempfile::tempdir().unwrap();
    let mut enc = EventBlockEncoder::new(1).unwrap();
    let mut comp = ObjectCompressor::new(1).unwrap();
    {
        let mut j = Journal::open(dir.path(), &JournalOptions::default()).unwrap();
        let p = batch_of(&j, &mut enc, &mut comp, &[("a", "1"), ("b", "2")]);
        j.commit(&p).unwrap();
        let p = batch_of(&j, &mut enc, &mut comp, &[("a", "3"), ("c", "4")]);
        j.commit_torn(&p, commit::TornAt::AfterLog).unwrap();
        // A journal with a half-written batch refuses to go on.
        assert!(matches!(j.commit(&p), Err(Error::NeedsReopen)));
    }
    let mut j = reopen(dir.path());
    assert_eq!(j.next_seq(), 3);
    assert_eq!(j.records_from(1).count(), 2, "the torn block is gone");
    assert!(j.log.get(keys::seq_key(3)).unwrap().is_none());
    let names: Vec<(String, String)> = j
        .state()
        .map(|e| e.unwrap())
        .map(|e| (e.key.name, e.resource_version))
        .collect();
    assert_eq!(
        names,
        vec![("a".into(), "1".into()), ("b".into(), "2".into())]
    );
    assert_eq!(j.type_record("configmaps").unwrap().unwrap().events, 2);
    // The journal goes on from there.
    let p = batch_of(&j, &mut enc, &mut comp, &[("d", "5")]);
    j.commit(&p).unwrap();
    let seqs: Vec<u64> = j.records_from(1).map(|r| r.unwrap().seq).collect();
    assert_eq!(seqs, vec![1, 2, 3]);
}

#[test]
fn a_crash_after_the_commit_point_finishes_the_meta_writes() {
    let dir = tempfile::tempdir().unwrap();
    let mut enc = EventBlockEncoder::new(1).unwrap();
    let mut comp = ObjectCompressor::new(1).unwrap();
    {
        let mut j = Journal::open(dir.path(), &JournalOptions::default()).unwrap();
        let p = batch_of(&j, &mut enc, &mut comp, &[("a", "1")]);
        j.commit(&p).unwrap();
        let p = batch_of(&j, &mut enc, &mut comp, &[("a", "3"), ("c", "4")]);
        j.commit_torn(&p, commit::TornAt::AfterState).unwrap();
        // Meta was not written: it still says seq 2.
        assert_eq!(
            meta::decode_u64(&j.meta.get(meta::NEXT_SEQ).unwrap().unwrap()).unwrap(),
            2
        );
    }
    let j = reopen(dir.path());
    assert_eq!(j.next_seq(), 4);
    assert_eq!(
        meta::decode_u64(&j.meta.get(meta::NEXT_SEQ).unwrap().unwrap()).unwrap(),
        4
    );
    let tr = j.type_record("configmaps").unwrap().unwrap();
    assert_eq!((tr.events, tr.last_rv.as_str()), (3, "4"));
    let seqs: Vec<u64> = j.records_from(1).map(|r| r.unwrap().seq).collect();
    assert_eq!(seqs, vec![1, 2, 3]);
    assert_eq!(j.state().count(), 2);
}

#[test]
fn a_layout_1_journal_is_read_and_upgraded() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut j = Journal::open(dir.path(), &JournalOptions::default()).unwrap();
        let mut enc = EventBlockEncoder::new(1).unwrap();
        let mut comp = ObjectCompressor::new(1).unwrap();
        let p = batch_of(&j, &mut enc, &mut comp, &[("a", "1")]);
        j.commit(&p).unwrap();
        // What layout 1 wrote: the same trees, no commit record.
        j.state.remove(commit::COMMIT_KEY).unwrap();
        j.meta.insert(meta::FORMAT, meta::FORMAT_VERSION_1).unwrap();
        j.flush().unwrap();
    }
    let j = reopen(dir.path());
    assert_eq!(j.next_seq(), 2);
    assert_eq!(
        j.meta.get(meta::FORMAT).unwrap().unwrap().as_ref(),
        meta::FORMAT_VERSION
    );
    drop(j);
    let dir2 = tempfile::tempdir().unwrap();
    {
        let mut j = Journal::open(dir2.path(), &JournalOptions::default()).unwrap();
        j.meta.insert(meta::FORMAT, &b"5"[..]).unwrap();
        j.flush().unwrap();
    }
    let mut err = None;
    for _ in 0..200 {
        match Journal::open(dir2.path(), &JournalOptions::default()) {
            Err(Error::UnsupportedLayout { found }) => {
                err = Some(found);
                break;
            }
            _ => std::thread::sleep(std::time::Duration::from_millis(10)),
        }
    }
    assert_eq!(err.as_deref(), Some("5"));
}

/// Journals written before state values had a codec byte (layout 2, state
/// layout 1) open, read their objects, take new commits and are relabelled.
#[test]
fn a_layout_2_journal_with_old_state_values_is_read_and_upgraded() {
    let dir = tempfile::tempdir().unwrap();
    let old_json = br#"{"rv":"1"}"#;
    {
        let mut j = Journal::open(dir.path(), &JournalOptions::default()).unwrap();
        let mut enc = EventBlockEncoder::new(1).unwrap();
        let mut comp = ObjectCompressor::new(1).unwrap();
        let p = batch_of(&j, &mut enc, &mut comp, &[("a", "1"), ("b", "2")]);
        j.commit(&p).unwrap();
        // Rewrite both state values as layout 2 stored them.
        for name in ["a", "b"] {
            let key = ObjectKey {
                group: String::new(),
                resource: "configmaps".into(),
                namespace: Some("ns".into()),
                name: name.into(),
            };
            let e = j.get(&key).unwrap().unwrap();
            let v = state::encode_value_v1(
                &e,
                &zstd::bulk::compress(&e.object_json().unwrap(), 3).unwrap(),
            );
            j.state.insert(keys::encode_object_key(&key), v).unwrap();
        }
        j.meta.insert(meta::FORMAT, meta::FORMAT_VERSION_2).unwrap();
        j.flush().unwrap();
    }
    let mut j = reopen(dir.path());
    assert_eq!(
        j.meta.get(meta::FORMAT).unwrap().unwrap().as_ref(),
        meta::FORMAT_VERSION
    );
    let mut enc = EventBlockEncoder::new(1).unwrap();
    let mut comp = ObjectCompressor::uncompressed();
    let p = batch_of(&j, &mut enc, &mut comp, &[("b", "5")]);
    j.commit(&p).unwrap();
    drop(j);
    let j = reopen(dir.path());
    let state: Vec<StateEntry> = j.state().map(|r| r.unwrap()).collect();
    assert_eq!(state.len(), 2);
    assert_eq!(state[0].object_json().unwrap(), old_json);
    assert_eq!(state[0].object.codec, ObjectCodec::Zstd);
    assert_eq!(state[1].object_json().unwrap(), br#"{"rv":"5"}"#);
    assert_eq!(state[1].object.codec, ObjectCodec::Raw);
}

#[test]
fn a_batch_split_into_several_blocks_reads_and_recovers_like_one() {
    let dir = tempfile::tempdir().unwrap();
    // Blocks of about one record each.
    let opts = JournalOptions {
        block_bytes: 64,
        ..JournalOptions::default()
    };
    let mut enc = EventBlockEncoder::new(1).unwrap();
    let mut comp = ObjectCompressor::new(1).unwrap();
    {
        let mut j = Journal::open(dir.path(), &opts).unwrap();
        let names = [("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")];
        let p = batch_of(&j, &mut enc, &mut comp, &names);
        assert_eq!(p.blocks.len(), 4, "one block per record");
        let firsts: Vec<u64> = p.blocks.iter().map(|(s, _)| *s).collect();
        assert_eq!(firsts, vec![1, 2, 3, 4]);
        j.commit(&p).unwrap();
        // The next batch reaches the log but not its commit point.
        let p = batch_of(&j, &mut enc, &mut comp, &[("e", "5"), ("f", "6")]);
        assert_eq!(p.blocks.len(), 2);
        j.commit_torn(&p, commit::TornAt::AfterLog).unwrap();
    }
    let mut j = Journal::open_after_drop(dir.path(), &opts);
    assert_eq!(j.next_seq(), 5, "both blocks of the torn batch are dropped");
    assert!(j.log.get(keys::seq_key(5)).unwrap().is_none());
    assert!(j.log.get(keys::seq_key(6)).unwrap().is_none());
    let seqs: Vec<u64> = j.records_from(3).map(|r| r.unwrap().seq).collect();
    assert_eq!(seqs, vec![3, 4]);
    // The journal goes on from there.
    let p = batch_of(&j, &mut enc, &mut comp, &[("e", "5"), ("f", "6")]);
    j.commit(&p).unwrap();
    let seqs: Vec<u64> = j.records_from(1).map(|r| r.unwrap().seq).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(j.state().count(), 6);
    // With the default limit a small batch is one block again.
    drop(j);
    let j = reopen(dir.path());
    let mut enc2 = EventBlockEncoder::new(1).unwrap();
    let p = batch_of(&j, &mut enc2, &mut comp, &[("g", "7"), ("h", "8")]);
    assert_eq!(p.blocks.len(), 1);
}

#[test]
fn sled_blob_files_are_found_and_synced_before_the_commit_returns() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(dir.path(), &JournalOptions::default()).unwrap();
    let mut enc = EventBlockEncoder::new(1).unwrap();
    let mut comp = ObjectCompressor::new(1).unwrap();
    // An incompressible object larger than a quarter of sled's segment:
    // sled writes it to a file of its own under blobs/.
    let mut x = 0x9E37_79B9_7F4A_7C15_u64;
    let noise: String = (0..300_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'!' + u8::try_from(x % 90).unwrap())
        })
        .filter(|c| *c != '"' && *c != '\\')
        .collect();
    let mut r = rec("big", "1");
    r.object = format!("{{\"data\":\"{noise}\"}}").into_bytes();
    let ch = put(&mut comp, &r);
    let mut b = j.batch();
    b.record(r, ch).unwrap();
    let p = b.finish(&mut enc).unwrap();
    assert_eq!(p.blocks.len(), 1, "one event, one block, however large");
    j.commit(&p).unwrap();
    let blobs: Vec<i64> = std::fs::read_dir(dir.path().join("blobs"))
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().to_str()?.parse().ok())
        .collect();
    assert!(!blobs.is_empty(), "sled stored the object as a blob");
    assert_eq!(
        j.files.blobs_synced,
        blobs.iter().copied().max(),
        "every blob file was synced"
    );
    // Small batches create no blob files and leave the mark alone.
    let before = j.files.blobs_synced;
    let p = batch_of(&j, &mut enc, &mut comp, &[("a", "2")]);
    j.commit(&p).unwrap();
    assert_eq!(j.files.blobs_synced, before);
    drop(j);
    let j = reopen(dir.path());
    let e = j
        .get(&batch::record_key(&rec("big", "1")))
        .unwrap()
        .unwrap();
    assert!(e.object_json().unwrap().len() > 200_000);
}

/// Objects left in the log (state codec 2) read back through every path,
/// within their batch and after it; a trim copies into the state exactly
/// the objects whose blocks go, and leaves alone a value that points at a
/// newer event.
#[test]
fn objects_left_in_the_log_read_back_and_move_into_the_state_before_a_trim() {
    let dir = tempfile::tempdir().unwrap();
    // About one record per block, so a trim drops some and keeps others.
    let opts = JournalOptions {
        block_bytes: 64,
        ..JournalOptions::default()
    };
    let mut j = Journal::open(dir.path(), &opts).unwrap();
    let mut enc = EventBlockEncoder::new(1).unwrap();
    let mut comp = ObjectCompressor::for_state().unwrap();
    let key = |name: &str| ObjectKey {
        group: String::new(),
        resource: "configmaps".into(),
        namespace: Some("ns".into()),
        name: name.into(),
    };
    let mut b = j.batch();
    for (name, rv) in [("a", "1"), ("b", "2"), ("c", "3")] {
        let r = rec(name, rv);
        let ch = StateChange::Put(comp.stored(&r.object, false).unwrap());
        b.record(r, ch).unwrap();
    }
    // Staged, not written yet: read from the batch's own records.
    let staged = b.get(&key("b")).unwrap().unwrap();
    assert_eq!(staged.object_json().unwrap(), br#"{"rv":"2"}"#);
    let p = b.finish(&mut enc).unwrap();
    j.commit(&p).unwrap();
    // "a" changes again in a later block.
    let p = batch_of(&j, &mut enc, &mut comp, &[("a", "4")]);
    j.commit(&p).unwrap();
    for name in ["a", "b", "c"] {
        assert_eq!(
            j.stored_codec(&key(name)),
            Some(ObjectCodec::InLog),
            "{name}"
        );
    }
    let objects = |j: &Journal| -> Vec<(String, Vec<u8>)> {
        j.state()
            .map(|e| {
                let e = e.unwrap();
                (e.key.name.clone(), e.object_json().unwrap())
            })
            .collect()
    };
    let want = vec![
        ("a".to_owned(), br#"{"rv":"4"}"#.to_vec()),
        ("b".to_owned(), br#"{"rv":"2"}"#.to_vec()),
        ("c".to_owned(), br#"{"rv":"3"}"#.to_vec()),
    ];
    assert_eq!(objects(&j), want);
    assert_eq!(
        j.get(&key("c")).unwrap().unwrap().object_json().unwrap(),
        br#"{"rv":"3"}"#
    );
    // Drop every block but the last (which holds "a" at rv 4).
    let view = j.log_reader();
    assert_eq!(view.trim_below(j.next_seq()).unwrap(), 3);
    assert_eq!(j.records_from(1).count(), 1, "only the last block is left");
    assert_eq!(j.stored_codec(&key("a")), Some(ObjectCodec::InLog));
    assert_ne!(j.stored_codec(&key("b")), Some(ObjectCodec::InLog));
    assert_ne!(j.stored_codec(&key("c")), Some(ObjectCodec::InLog));
    assert_eq!(objects(&j), want);
    drop(view);
    drop(j);
    let j = Journal::open_after_drop(dir.path(), &opts);
    assert_eq!(objects(&j), want, "after reopening");
}

/// A state value that points at an event no block holds is reported as
/// corruption naming the object, not returned empty or panicked on.
#[test]
fn a_value_pointing_at_a_missing_event_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(dir.path(), &JournalOptions::default()).unwrap();
    let mut enc = EventBlockEncoder::new(1).unwrap();
    let mut comp = ObjectCompressor::for_state().unwrap();
    let p = batch_of(&j, &mut enc, &mut comp, &[("a", "1")]);
    j.commit(&p).unwrap();
    // The block goes without the trim's copy (what a bug would do).
    j.log.remove(keys::seq_key(1)).unwrap();
    let key = ObjectKey {
        group: String::new(),
        resource: "configmaps".into(),
        namespace: Some("ns".into()),
        name: "a".into(),
    };
    let err = j.get(&key).unwrap_err().to_string();
    assert!(
        err.contains("points at event 1") && err.contains("\"a\""),
        "{err}"
    );
    assert!(j.state().next().unwrap().is_err());
}

/// A new journal given a lineage starts at the fork point's next seq, and
/// keeps both across a reopen; a journal that holds events cannot be
/// given a base (its seqs are already assigned).
#[test]
fn a_new_lineage_starts_past_the_fork_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let opts = JournalOptions::default();
    let mut enc = EventBlockEncoder::new(1).unwrap();
    let mut comp = ObjectCompressor::new(1).unwrap();
    {
        let mut j = Journal::open(dir.path(), &opts).unwrap();
        assert!(j.is_new().unwrap());
        assert_eq!(j.lineage().unwrap(), None);
        j.begin_lineage("abc", 501).unwrap();
        assert_eq!(j.next_seq(), 501);
        let mut b = j.batch();
        let r = rec("o1", "1");
        let ch = put(&mut comp, &r);
        b.record(r, ch).unwrap();
        let p = b.finish(&mut enc).unwrap();
        j.commit(&p).unwrap();
        assert!(j.begin_lineage("def", 900).is_err());
    }
    let j = Journal::open_after_drop(dir.path(), &opts);
    assert_eq!(j.next_seq(), 502);
    assert_eq!(j.lineage().unwrap().as_deref(), Some("abc"));
    let seqs: Vec<u64> = j.records_from(1).map(|r| r.unwrap().seq).collect();
    assert_eq!(seqs, vec![501]);
}

#[test]
fn a_standby_journal_takes_a_lineage_with_an_offset_that_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let opts = JournalOptions::default();
    let mut enc = EventBlockEncoder::new(1).unwrap();
    let mut comp = ObjectCompressor::new(1).unwrap();
    {
        let mut j = Journal::open(dir.path(), &opts).unwrap();
        let mut b = j.batch();
        for (name, rv) in [("o1", "1"), ("o2", "2")] {
            let r = rec(name, rv);
            let ch = put(&mut comp, &r);
            b.record(r, ch).unwrap();
        }
        let p = b.finish(&mut enc).unwrap();
        j.commit(&p).unwrap();
        assert_eq!(j.seq_offset().unwrap(), 0);
        j.take_lineage_at("abc", 700).unwrap();
        assert!(
            j.take_lineage_at("def", 900).is_err(),
            "a journal with a lineage keeps it"
        );
    }
    let j = Journal::open_after_drop(dir.path(), &opts);
    assert_eq!(j.lineage().unwrap().as_deref(), Some("abc"));
    assert_eq!(j.seq_offset().unwrap(), 700);
    assert_eq!(j.next_seq(), 3, "the journal keeps its own numbers");
    let seqs: Vec<u64> = j.records_from(1).map(|r| r.unwrap().seq).collect();
    assert_eq!(seqs, vec![1, 2]);
}
