//! The `rewind` binary on a store: list, show at a seq, history, verify
//! (exit code and the damaged file named), and the warning line when the
//! newest snapshot is damaged.

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

/// What `rewind show` printed before it read counts straight from the
/// folded state: the desired state built object by object, filtered, then
/// counted (the code of that version, kept here as the reference).
fn show_reference(state: &rewind_history::DesiredState, json: bool) -> String {
    use std::collections::BTreeMap;
    use std::fmt::Write as _;
    let counts = state.counts();
    if json {
        let types: Vec<_> = counts
            .iter()
            .map(|(t, n)| serde_json::json!({"type": t.group_resource(), "version": t.version, "kind": t.kind, "objects": n}))
            .collect();
        let mut namespaces: BTreeMap<&str, usize> = BTreeMap::new();
        for (k, _) in state.iter() {
            if let Some(ns) = &k.namespace {
                *namespaces.entry(ns).or_insert(0) += 1;
            }
        }
        let v =
            serde_json::json!({"objects": state.len(), "types": types, "namespaces": namespaces});
        return serde_json::to_string_pretty(&v).unwrap() + "\n";
    }
    let mut out = String::new();
    writeln!(out, "{:<60} {:<12} {:>8}", "TYPE", "VERSION", "OBJECTS").unwrap();
    for (t, n) in &counts {
        writeln!(out, "{:<60} {:<12} {:>8}", t.group_resource(), t.version, n).unwrap();
    }
    writeln!(out, "{:<60} {:<12} {:>8}", "TOTAL", "", state.len()).unwrap();
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn show_from_a_store_prints_what_the_desired_state_gives() {
    use rewind_history::pit::StoreSource;
    use rewind_history::{Filter, Point};
    const N: u64 = 1200;
    let events = events(5, N);
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout {
        segments: random_segments(5, N),
        snapshots: vec![400],
        recipient: None,
    };
    let store = build_store(dir.path(), &events, &layout).await;
    let src = StoreSource::new(store, Vec::new());
    let filters: [&[&str]; 4] = [
        &[],
        &[
            "--type",
            "configmaps",
            "--type",
            "bundles",
            "--namespace",
            "ns-1",
        ],
        &["--type", "clusters.management.cattle.io"],
        &[
            "--name",
            "obj-1*",
            "--namespace",
            "ns-0",
            "--namespace",
            "ns-2",
        ],
    ];
    let mut checked = 0;
    for at in ["seq:300", "seq:900", "latest"] {
        let point: Point = at.parse().unwrap();
        let pit = src.load(&point).await.unwrap();
        let desired = rewind_history::from_format::desired_from_format(&pit.state).unwrap();
        for flags in filters {
            let list = |i: usize| -> Vec<String> {
                flags
                    .chunks(2)
                    .filter(|c| c[0] == ["--type", "--namespace", "--name"][i])
                    .map(|c| c[1].to_owned())
                    .collect()
            };
            let filter = Filter {
                types: list(0),
                namespaces: list(1),
                names: list(2),
            };
            let expected_state = desired.filtered(&filter);
            for json in [false, true] {
                let mut args = vec!["show", "--at", at];
                args.extend_from_slice(flags);
                if json {
                    args.extend_from_slice(&["-o", "json"]);
                }
                let got = ok(&rewind(dir.path(), &args));
                assert_eq!(got, show_reference(&expected_state, json), "{args:?}");
                checked += usize::from(!expected_state.is_empty());
            }
        }
    }
    // The filters are not all empty-handed: most cases count something.
    assert!(checked >= 12, "{checked}");
}

/// A store path that does not exist, or is not a directory, is an error
/// naming it for every command that reads a store, printed once and without
/// a backtrace; `rewind` never creates it. A store that exists but holds
/// nothing lists as empty and exits 0, and reading a state from it is an
/// error.
#[test]
fn regression_missing_store_is_an_error_naming_it_and_an_empty_store_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-store");
    let not_dir = dir.path().join("a-file");
    std::fs::write(&not_dir, b"x").unwrap();
    let out_dir = dir.path().join("export");
    let out_dir = out_dir.to_str().unwrap();
    let commands: [&[&str]; 7] = [
        &["list"],
        &["show", "--at", "latest"],
        &["history", "clusters.management.cattle.io/c-1"],
        &["diff", "--from", "seq:1", "--to", "latest"],
        &["export", "--at", "latest", "--out", out_dir],
        &["verify"],
        &[
            "restore",
            "--at",
            "latest",
            "--to",
            "/nonexistent-kubeconfig",
            "--dry-run",
        ],
    ];
    for (store, says) in [
        (&missing, "no such directory"),
        (&not_dir, "not a directory"),
    ] {
        for args in commands {
            let out = rewind(store, args);
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                !out.status.success(),
                "{args:?} on {}: exit 0\n{err}",
                store.display()
            );
            assert!(
                err.contains(&store.display().to_string()) && err.contains(says),
                "{args:?}: {err}"
            );
            assert_eq!(
                err.matches(says).count(),
                1,
                "{args:?}: printed more than once: {err}"
            );
            assert!(!err.contains("backtrace"), "{args:?}: {err}");
        }
    }
    assert!(!missing.exists(), "a reader never creates the store");

    let empty = dir.path().join("empty-store");
    std::fs::create_dir(&empty).unwrap();
    let list = ok(&rewind(&empty, &["list"]));
    assert!(list.contains("nothing recorded yet"), "{list}");
    let show = rewind(&empty, &["show", "--at", "latest"]);
    assert!(!show.status.success());
    assert!(String::from_utf8_lossy(&show.stderr).contains("no recorded history"));
}

/// A point before the recorded window is refused by every command that
/// reads a state from the store, naming the window: never an empty state
/// and exit 0 (the drill before it starts a control plane).
#[tokio::test(flavor = "multi_thread")]
async fn a_point_before_the_window_is_refused_by_every_reading_command() {
    const N: u64 = 300;
    let events = events(23, N);
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout {
        segments: random_segments(23, N),
        snapshots: vec![],
        recipient: None,
    };
    build_store(dir.path(), &events, &layout).await;
    let d = dir.path();
    let before = format!("ms:{}", T0 - 60_000);
    let out_dir = dir.path().join("export");
    let out_arg = out_dir.display().to_string();
    for args in [
        vec!["show", "--at", before.as_str()],
        vec!["export", "--at", before.as_str(), "--out", out_arg.as_str()],
        vec!["diff", "--from", before.as_str(), "--to", "latest"],
        vec!["drill", "--at", before.as_str()],
    ] {
        let out = rewind(d, &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded:\n{stderr}");
        assert!(
            stderr.contains("before the recorded window"),
            "{args:?}: {stderr}"
        );
    }
    // Nothing was written by the refused export.
    assert!(
        !out_dir.exists() || std::fs::read_dir(&out_dir).unwrap().next().is_none(),
        "the refused export wrote files"
    );
    // The newest point still reads.
    ok(&rewind(d, &["show", "--at", "latest"]));
}
