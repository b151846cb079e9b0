//! `verify_store` names exactly what is damaged: a truncated file, a flipped
//! bit (with its block), two swapped files, a missing data object, and a
//! gap in the segment chain; a sound store is reported sound.

mod pit_support;

use pit_support::*;
use rewind_history::pit::verify::{Gap, verify_store};

const N: u64 = 1500;

#[tokio::test(flavor = "multi_thread")]
async fn verify_names_the_damaged_file_and_block() {
    let events = events(53, N);
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout {
        segments: vec![(1, 300), (301, 600), (601, 900), (901, 1200), (1201, N)],
        snapshots: vec![500, 1000],
        recipient: None,
    };
    let store = build_store(dir.path(), &events, &layout).await;
    let report = verify_store(&store, &[]).await.unwrap();
    assert!(!report.is_damaged(), "{}", report.to_text());
    assert_eq!(report.files.len(), 7);
    assert!(report.files.iter().all(|f| f.records.is_some()));

    let segs = store.list_segments().await.unwrap();
    let snaps = store.list_snapshots().await.unwrap();
    let path = |k: String| dir.path().join(k);

    // 1. Truncate a segment.
    let seg0 = path(segs[0].data_key());
    let b = std::fs::read(&seg0).unwrap();
    std::fs::write(&seg0, &b[..b.len() - 10]).unwrap();
    // 2. Flip a bit in a snapshot's 3rd data block (block 3 in file order).
    let snap1 = path(snaps[1].data_key());
    let b = std::fs::read(&snap1).unwrap();
    let r =
        rewind_format::SnapshotReader::open(&b, None, rewind_format::Limits::default()).unwrap();
    let off = usize::try_from(r.index().blocks[2].offset).unwrap() + 40;
    drop(r);
    flip_bit(&snap1, off);
    // 3. Swap two segment files.
    let (a, c) = (path(segs[1].data_key()), path(segs[3].data_key()));
    let tmp = dir.path().join("swap");
    std::fs::rename(&a, &tmp).unwrap();
    std::fs::rename(&c, &a).unwrap();
    std::fs::rename(&tmp, &c).unwrap();

    let report = verify_store(&store, &[]).await.unwrap();
    let text = report.to_text();
    assert!(report.is_damaged());
    let damaged: Vec<&str> = report
        .files
        .iter()
        .filter(|f| !f.problems.is_empty())
        .map(|f| f.key.as_str())
        .collect();
    let mut want = vec![
        segs[0].data_key(),
        segs[1].data_key(),
        segs[3].data_key(),
        snaps[1].data_key(),
    ];
    want.sort();
    let mut got: Vec<String> = damaged.iter().map(|s| (*s).to_owned()).collect();
    got.sort();
    assert_eq!(got, want, "{text}");
    let problems = |key: &str| {
        report
            .files
            .iter()
            .find(|f| f.key == key)
            .unwrap()
            .problems
            .join("; ")
    };
    let p = problems(&segs[0].data_key());
    assert!(p.contains("size") && p.contains("incomplete"), "{p}");
    let p = problems(&snaps[1].data_key());
    assert!(
        p.contains("block 3") && p.contains("checksum mismatch"),
        "{p}"
    );
    let p = problems(&segs[1].data_key());
    assert!(
        p.contains(&format!("holds the bytes of {}", segs[3].data_key())),
        "{p}"
    );
    assert!(report.gaps.is_empty());

    // 4. A segment lost entirely (data and catalog): a gap.
    store.delete_segment(&segs[4]).await.unwrap();
    std::fs::remove_file(path(snaps[0].data_key())).unwrap();
    let report = verify_store(&store, &[]).await.unwrap();
    assert!(
        report.gaps.is_empty(),
        "the chain ends earlier, it has no hole"
    );
    store.delete_segment(&segs[2]).await.unwrap();
    let report = verify_store(&store, &[]).await.unwrap();
    assert_eq!(
        report.gaps,
        vec![Gap {
            from: 601,
            to: 900,
            lineage: None
        }]
    );
    assert!(report.to_text().contains("GAP events 601..=900"));
    assert!(problems_of(&report, &snaps[0].data_key()).contains("missing"));
}

fn problems_of(r: &rewind_history::pit::verify::VerifyReport, key: &str) -> String {
    r.files
        .iter()
        .find(|f| f.key == key)
        .unwrap()
        .problems
        .join("; ")
}

#[tokio::test(flavor = "multi_thread")]
async fn encrypted_files_need_the_identity_for_a_full_check() {
    let events = events(59, 400);
    let id = rewind_format::crypto::Identity::generate();
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout {
        segments: vec![(1, 200), (201, 400)],
        snapshots: vec![300],
        recipient: Some(id.to_public()),
    };
    let store = build_store(dir.path(), &events, &layout).await;
    let without = verify_store(&store, &[]).await.unwrap();
    assert!(!without.is_damaged());
    assert!(without.files.iter().all(|f| f.unchecked.is_some()));
    let with = verify_store(&store, &[id]).await.unwrap();
    assert!(!with.is_damaged(), "{}", with.to_text());
    assert!(
        with.files
            .iter()
            .all(|f| f.unchecked.is_none() && f.records.is_some())
    );
}
