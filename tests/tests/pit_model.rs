//! The state at a point read from a store equals a plain BTreeMap model
//! folded from the replayed event list, at many points: latest, seqs (on
//! snapshot boundaries, inside segments), times and snapshot names; from
//! snapshots and from empty; plain and encrypted. A store whose segments
//! overlap is refused, naming both files, never trimmed.

mod pit_support;

use pit_support::*;
use rewind_format::State;
use rewind_history::Point;
use rewind_history::pit::{PitError, StoreSource};
use rewind_tests::fixtures::Rng;

const N: u64 = 3000;

async fn check_points(src: &StoreSource, events: &[rewind_format::EventRecord], seed: u64) {
    let mut rng = Rng::new(seed);
    let mut seqs: Vec<u64> = (0..25).map(|_| rng.between(1, N)).collect();
    seqs.extend([1, 2, 700, 701, 1500, 2999, N]);
    for s in seqs {
        let pit = src.load(&Point::Seq(s)).await.unwrap();
        assert_eq!(pit.state.seq, s, "seq {s}");
        assert_eq!(
            as_model(&pit.state),
            model(events, |e| e.seq <= s),
            "seq {s}"
        );
        // The whole state (types and their list resourceVersions too) equals
        // the reference fold of the format crate.
        let mut reference = State::new(CLUSTER);
        reference.apply_all(events, Some(s));
        assert_eq!(pit.state.types, reference.types, "types at seq {s}");
        assert_eq!(pit.state.time_ms, reference.time_ms);
    }
    let latest = src.load(&Point::Latest).await.unwrap();
    assert_eq!(latest.state.seq, N);
    assert_eq!(as_model(&latest.state), model(events, |_| true));
    for _ in 0..10 {
        let t = events[usize::try_from(rng.below(N)).unwrap()].observed_at_ms;
        let pit = src.load(&Point::Time(t)).await.unwrap();
        assert_eq!(
            as_model(&pit.state),
            model(events, |e| e.observed_at_ms <= t),
            "time {t}"
        );
        let last = events
            .iter()
            .take_while(|e| e.observed_at_ms <= t)
            .last()
            .unwrap();
        assert_eq!(pit.state.seq, last.seq);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn state_at_points_equals_the_model() {
    let events = events(11, N);
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout {
        segments: random_segments(11, N),
        snapshots: vec![700, 1500, 2400],
        recipient: None,
    };
    let store = build_store(dir.path(), &events, &layout).await;
    let src = StoreSource::new(store.clone(), Vec::new());
    check_points(&src, &events, 5).await;

    // Bases: the newest snapshot at or before the point.
    let pit = src.load(&Point::Seq(1499)).await.unwrap();
    assert!(
        pit.base
            .as_deref()
            .unwrap()
            .starts_with("00000000000000000700-")
    );
    assert!(pit.fallbacks.is_empty());
    let pit = src.load(&Point::Seq(1500)).await.unwrap();
    assert!(
        pit.base
            .as_deref()
            .unwrap()
            .starts_with("00000000000000001500-")
    );
    assert_eq!(pit.events, 0);
    let pit = src.load(&Point::Seq(600)).await.unwrap();
    assert_eq!(pit.base, None);
    assert_eq!(pit.events, 600);

    // A snapshot by label, short id and full id: exactly its state.
    let snaps = store.list_snapshots().await.unwrap();
    for q in ["first".to_owned(), snaps[1].short_id(), snaps[2].id.clone()] {
        let pit = src.load(&Point::Snapshot(q.clone())).await.unwrap();
        let want = snaps
            .iter()
            .find(|s| s.matches(&q) || s.label.as_deref() == Some(&q))
            .unwrap();
        assert_eq!(pit.state.seq, want.seq);
        assert_eq!(as_model(&pit.state), model(&events, |e| e.seq <= want.seq));
    }
    assert!(matches!(
        src.load(&Point::Snapshot("nope".into())).await,
        Err(PitError::UnknownSnapshot(_))
    ));
    assert!(matches!(
        src.load(&Point::Seq(N + 1)).await,
        Err(PitError::AfterWindow { requested, newest: N }) if requested == N + 1
    ));

    // Through the StateSource seam, as restore/export/drill use it.
    use rewind_history::StateSource;
    let desired = src.state_at(&Point::Seq(2000)).await.unwrap();
    assert_eq!(desired.len(), model(&events, |e| e.seq <= 2000).len());
}

#[tokio::test(flavor = "multi_thread")]
async fn from_empty_and_encrypted() {
    let events = events(23, N);
    // No snapshot at all: everything is folded from seq 1.
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout {
        segments: random_segments(23, N),
        snapshots: vec![],
        recipient: None,
    };
    let store = build_store(dir.path(), &events, &layout).await;
    check_points(&StoreSource::new(store, Vec::new()), &events, 7).await;

    // Encrypted: unreadable without the identity, identical with it.
    let id = rewind_format::crypto::Identity::generate();
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout {
        segments: random_segments(29, N),
        snapshots: vec![1000, 2000],
        recipient: Some(id.to_public()),
    };
    let store = build_store(dir.path(), &events, &layout).await;
    let err = StoreSource::new(store.clone(), Vec::new())
        .load(&Point::Latest)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("identity"), "{err}");
    check_points(&StoreSource::new(store, vec![id]), &events, 9).await;
}

/// Two segments claiming the same seqs are refused, naming both, at every
/// point that would read them: the reader never trims one silently.
#[tokio::test(flavor = "multi_thread")]
async fn overlapping_segments_are_refused_naming_both() {
    let events = events(13, 600);
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout {
        segments: vec![(1, 300), (250, 600)],
        snapshots: vec![],
        recipient: None,
    };
    let store = build_store(dir.path(), &events, &layout).await;
    let segs = store.list_segments().await.unwrap();
    let src = StoreSource::new(store.clone(), Vec::new());
    for point in [Point::Latest, Point::Seq(100), Point::Seq(400)] {
        let err = src.load(&point).await.unwrap_err();
        assert!(matches!(err, PitError::Lineage { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("overlap: two segments claim seqs 250..=300"),
            "{text}"
        );
        for s in &segs {
            assert!(text.contains(&s.catalog_key()), "{text}");
        }
    }
}
