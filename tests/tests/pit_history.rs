//! `history` lists every version of one object in the window, with the
//! field manager of its newest managedFields entry and the changed paths.

mod pit_support;

use pit_support::*;
use rewind_format::EventKind;
use rewind_history::pit::StoreSource;
use rewind_history::pit::history::{ObjectSpec, field_manager};

const N: u64 = 2500;

fn busiest(events: &[rewind_format::EventRecord]) -> (String, Option<String>, String) {
    let mut counts = std::collections::BTreeMap::new();
    for e in events.iter().filter(|e| e.kind == EventKind::Applied) {
        *counts
            .entry((
                e.rtype.resource.clone(),
                e.namespace.clone(),
                e.name.clone(),
            ))
            .or_insert(0) += 1;
    }
    counts.into_iter().max_by_key(|(_, n)| *n).unwrap().0
}

#[tokio::test(flavor = "multi_thread")]
async fn every_version_with_its_field_manager() {
    let events = events(61, N);
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout {
        segments: random_segments(61, N),
        snapshots: vec![1000],
        recipient: None,
    };
    let store = build_store(dir.path(), &events, &layout).await;
    let src = StoreSource::new(store.clone(), Vec::new());
    let (resource, ns, name) = busiest(&events);
    let spec_text = match &ns {
        Some(ns) => format!("{resource}/{ns}/{name}"),
        None => format!("{resource}/{name}"),
    };
    let spec: ObjectSpec = spec_text.parse().unwrap();
    let versions = src.history(&spec).await.unwrap();
    let want: Vec<&rewind_format::EventRecord> = events
        .iter()
        .filter(|e| {
            e.rtype.resource == resource
                && e.namespace == ns
                && e.name == name
                && matches!(
                    e.kind,
                    EventKind::Applied | EventKind::Deleted | EventKind::DeletedInferred { .. }
                )
        })
        .collect();
    assert!(want.len() > 5);
    assert_eq!(versions.len(), want.len());
    for (v, e) in versions.iter().zip(&want) {
        assert_eq!(v.seq, e.seq);
        assert_eq!(v.resource_version, e.resource_version);
        assert_eq!(v.time_ms, e.observed_at_ms);
        let obj: serde_json::Value = serde_json::from_slice(&e.object).unwrap();
        // The generator puts the real manager in the newest entry, after an
        // older one: the newest must win, not the first or last listed.
        let m = field_manager(&obj).unwrap();
        assert!(MANAGERS.contains(&m.as_str()));
        assert_eq!(v.manager.as_deref(), Some(m.as_str()));
    }
    // Consecutive applied versions show their spec change.
    let pair = versions
        .windows(2)
        .find(|w| w[0].event == "applied" && w[1].event == "applied")
        .unwrap();
    assert!(pair[1].changes.iter().any(|c| c.path == ".spec.n"));
    assert!(
        !pair[1]
            .changes
            .iter()
            .any(|c| c.path.contains("managedFields"))
    );

    // With the early segments gone, the window starts at the snapshot, whose
    // copy is the first version.
    for s in store.list_segments().await.unwrap() {
        if s.last_seq <= 1000 {
            store.delete_segment(&s).await.unwrap();
        }
    }
    let versions = src.history(&spec).await.unwrap();
    let later: Vec<_> = want.iter().filter(|e| e.seq > 1000).collect();
    let in_snapshot = model(&events, |e| e.seq <= 1000)
        .keys()
        .any(|k| k.1 == resource && k.2 == ns && k.3 == name);
    assert_eq!(versions.len(), later.len() + usize::from(in_snapshot));
    if in_snapshot {
        assert_eq!(versions[0].event, "snapshot");
        assert_eq!(versions[0].seq, 1000);
    }
    assert_eq!(versions.last().unwrap().seq, later.last().unwrap().seq);
}
