//! The `rewind` binary on a store: list, show at a seq, history, verify
//! (exit code and the damaged file named), and the warning line when the
//! newest snapshot is damaged.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

#[path = "../../tests/tests/pit_support/mod.rs"]
mod pit_support;

use std::process::{Command, Output, Stdio};

use pit_support::*;
use rewind_format::EventKind;
use serde_json::Value;

fn rewind(store: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rewind"))
        .arg("--store")
        .arg(store)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "rewind failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn store_commands_end_to_end() {
    const N: u64 = 1500;
    let events = events(71, N);
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout {
        segments: random_segments(71, N),
        snapshots: vec![500, 1000],
        recipient: None,
    };
    let store = build_store(dir.path(), &events, &layout).await;
    let d = dir.path();

    let list: Value = serde_json::from_str(&ok(&rewind(d, &["list", "-o", "json"]))).unwrap();
    assert_eq!(list["snapshots"].as_array().unwrap().len(), 2);
    assert_eq!(list["window"]["from_seq"], 1);
    assert_eq!(list["window"]["to_seq"], N);
    assert!(list["gaps"].as_array().unwrap().is_empty());

    let show: Value =
        serde_json::from_str(&ok(&rewind(d, &["show", "--at", "seq:1200", "-o", "json"]))).unwrap();
    assert_eq!(
        show["objects"].as_u64().unwrap(),
        model(&events, |e| e.seq <= 1200).len() as u64
    );

    let target = events
        .iter()
        .find(|e| e.kind == EventKind::Applied && e.rtype.resource == "configmaps")
        .unwrap();
    let spec = format!(
        "configmaps/{}/{}",
        target.namespace.as_deref().unwrap(),
        target.name
    );
    let hist: Value =
        serde_json::from_str(&ok(&rewind(d, &["history", &spec, "-o", "json"]))).unwrap();
    let want: Vec<u64> = events
        .iter()
        .filter(|e| {
            e.rtype.resource == "configmaps"
                && e.namespace == target.namespace
                && e.name == target.name
                && !matches!(
                    e.kind,
                    EventKind::ResyncBegin { .. } | EventKind::ResyncEnd { .. }
                )
        })
        .map(|e| e.seq)
        .collect();
    let got: Vec<u64> = hist
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(got, want);
    assert!(hist[0]["manager"].is_string());

    ok(&rewind(d, &["verify"]));

    // Damage the newest snapshot: verify fails naming it; show still works
    // from the older snapshot and says so.
    let newest = store.list_snapshots().await.unwrap().pop().unwrap();
    flip_bit(&d.join(newest.data_key()), 300);
    let out = rewind(d, &["verify"]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("DAMAGED {}", newest.data_key())),
        "{text}"
    );
    let out = rewind(d, &["show", "--at", "latest", "-o", "json"]);
    let show: Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(
        show["objects"].as_u64().unwrap(),
        model(&events, |_| true).len() as u64
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("warning: snapshot {} is damaged", newest.id)),
        "{err}"
    );
}
