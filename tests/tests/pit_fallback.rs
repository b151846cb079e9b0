//! A damaged newest snapshot: the state is rebuilt from an older snapshot
//! plus segments, the result says so, and it still equals the model.

mod pit_support;

use pit_support::*;
use rewind_history::Point;
use rewind_history::pit::{PitError, StoreSource};

const N: u64 = 2000;

#[tokio::test(flavor = "multi_thread")]
async fn damaged_newest_snapshot_falls_back_and_says_so() {
    let events = events(41, N);
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout {
        segments: random_segments(41, N),
        snapshots: vec![600, 1200, 1800],
        recipient: None,
    };
    let store = build_store(dir.path(), &events, &layout).await;
    let snaps = store.list_snapshots().await.unwrap();
    let newest = snaps.last().unwrap().clone();
    flip_bit(&dir.path().join(newest.data_key()), 200);

    let src = StoreSource::new(store.clone(), Vec::new());
    let pit = src.load(&Point::Latest).await.unwrap();
    assert_eq!(pit.fallbacks.len(), 1);
    assert_eq!(pit.fallbacks[0].snapshot, newest.id);
    assert!(
        pit.fallbacks[0].reason.contains("sha256"),
        "{}",
        pit.fallbacks[0].reason
    );
    assert_eq!(pit.base.as_deref(), Some(snaps[1].id.as_str()));
    assert_eq!(as_model(&pit.state), model(&events, |_| true));
    assert_eq!(pit.state.seq, N);

    // Asking for the damaged snapshot by name gives its state all the same.
    let pit = src.load(&Point::Snapshot(newest.short_id())).await.unwrap();
    assert_eq!(pit.fallbacks.len(), 1);
    assert_eq!(pit.state.seq, 1800);
    assert_eq!(as_model(&pit.state), model(&events, |e| e.seq <= 1800));

    // A point before the damaged one never touches it.
    let pit = src.load(&Point::Seq(1500)).await.unwrap();
    assert!(pit.fallbacks.is_empty());

    // Damage that the hash cannot see (catalog entry rewritten to match):
    // the decoder finds it, names the block, and the fallback happens too.
    let second = snaps[1].clone();
    let path = dir.path().join(second.data_key());
    let mut bytes = std::fs::read(&path).unwrap();
    let r = rewind_format::SnapshotReader::open(&bytes, None, rewind_format::Limits::default())
        .unwrap();
    let off = usize::try_from(r.index().blocks[2].offset).unwrap() + 30;
    drop(r);
    bytes[off] ^= 0x01;
    let entry = store
        .put_snapshot(
            rewind_history::store::SnapshotMeta {
                seq: second.seq,
                time_ms: second.time_ms,
                objects: second.objects,
                label: None,
                encrypted: false,
                resource_set: None,
            },
            bytes.into(),
        )
        .await
        .unwrap();
    store.delete_snapshot(&second).await.unwrap();
    let pit = src.load(&Point::Seq(1700)).await.unwrap();
    assert_eq!(pit.fallbacks.len(), 1);
    assert_eq!(pit.fallbacks[0].snapshot, entry.id);
    assert!(
        pit.fallbacks[0].reason.contains("block 3"),
        "{}",
        pit.fallbacks[0].reason
    );
    assert_eq!(pit.base.as_deref(), Some(snaps[0].id.as_str()));
    assert_eq!(as_model(&pit.state), model(&events, |e| e.seq <= 1700));

    // Every snapshot damaged: folded from seq 1, with every skip listed.
    flip_bit(&dir.path().join(snaps[0].data_key()), 100);
    let pit = src.load(&Point::Latest).await.unwrap();
    assert_eq!(pit.fallbacks.len(), 3);
    assert_eq!(pit.base, None);
    assert_eq!(as_model(&pit.state), model(&events, |_| true));
}

#[tokio::test(flavor = "multi_thread")]
async fn no_usable_base_is_an_error_naming_the_damage() {
    let events = events(43, N);
    let dir = tempfile::tempdir().unwrap();
    // Segments only from seq 1001: the snapshot at 1000 is the only base.
    let layout = Layout {
        segments: vec![(1001, 1500), (1501, N)],
        snapshots: vec![1000],
        recipient: None,
    };
    let store = build_store(dir.path(), &events, &layout).await;
    let src = StoreSource::new(store.clone(), Vec::new());
    assert_eq!(
        as_model(&src.load(&Point::Latest).await.unwrap().state),
        model(&events, |_| true)
    );
    let snap = store.list_snapshots().await.unwrap()[0].clone();
    flip_bit(&dir.path().join(snap.data_key()), 50);
    match src.load(&Point::Latest).await {
        Err(PitError::NoBase { reason, .. }) => {
            assert!(reason.contains(&snap.id), "{reason}");
            assert!(reason.contains("segments start at seq 1001"), "{reason}");
        }
        other => panic!("expected NoBase, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gap_before_the_point_is_reported() {
    let events = events(47, N);
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout {
        segments: vec![(1, 700), (701, 900), (1001, N)],
        snapshots: vec![],
        recipient: None,
    };
    let store = build_store(dir.path(), &events, &layout).await;
    let src = StoreSource::new(store, Vec::new());
    // Before the gap is fine.
    let pit = src.load(&Point::Seq(850)).await.unwrap();
    assert_eq!(as_model(&pit.state), model(&events, |e| e.seq <= 850));
    for p in [Point::Latest, Point::Seq(950), Point::Seq(1500)] {
        assert!(
            matches!(
                src.load(&p).await,
                Err(PitError::Gap {
                    from: 901,
                    to: 1000
                })
            ),
            "{p}"
        );
    }
}
