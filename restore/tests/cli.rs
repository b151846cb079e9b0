//! The `rewind` binary end to end: show, export, completions, the store
//! commands' clear "not yet" error, and restore (dry run, refusal without
//! confirmation, real run) against a real local control plane.

#[path = "../../tests/tests/restore_support/mod.rs"]
mod restore_support;

use std::process::{Command, Output, Stdio};

use restore_support::*;
use rewind_tests::ControlPlane;
use serde_json::Value;

fn rewind(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rewind"))
        .args(args)
        .stdin(Stdio::null())
        .env_remove("REWIND_STORE")
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

#[test]
fn store_commands_without_a_store_say_so_and_completions_work() {
    for cmd in [&["list"][..], &["history", "secrets/a/b"], &["verify"]] {
        let out = rewind(cmd);
        assert!(!out.status.success(), "{cmd:?} succeeded without a store");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--store"), "{cmd:?}: {err}");
    }
    let bash = ok(&rewind(&["completions", "bash"]));
    // diff of two manifest directories.
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ns = |name: &str, label: &str| {
        format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n  labels: {{l: \"{label}\"}}\n"
        )
    };
    std::fs::write(
        a.path().join("x.yaml"),
        ns("kept", "1") + "---\n" + &ns("gone", "1"),
    )
    .unwrap();
    std::fs::write(
        b.path().join("y.yaml"),
        ns("kept", "2") + "---\n" + &ns("new", "1"),
    )
    .unwrap();
    let (ad, bd) = (a.path().to_str().unwrap(), b.path().to_str().unwrap());
    let d: Value = serde_json::from_str(&ok(&rewind(&[
        "diff",
        "--from-dir",
        ad,
        "--to-dir",
        bd,
        "-o",
        "json",
    ])))
    .unwrap();
    assert_eq!(
        d["types"]["namespaces"]["added"],
        serde_json::json!(["namespaces/new"])
    );
    assert_eq!(
        d["types"]["namespaces"]["removed"],
        serde_json::json!(["namespaces/gone"])
    );
    assert_eq!(d["types"]["namespaces"]["changed"][0][0], "namespaces/kept");
    assert!(
        bash.contains("rewind") && bash.contains("--from-dir"),
        "{bash}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_from_a_directory_with_the_cli() {
    rewind_history::install_tls_provider();
    let (src, dst) = tokio::join!(ControlPlane::start(), ControlPlane::start());
    let (src, dst) = (src.unwrap(), dst.unwrap());
    write_plane(&src.admin_client(), &plane(3)).await;
    let recorded = record(&src.admin_client()).await;
    // The recording as `kubectl get -o json` would write it: server fields and all.
    let dir = tempfile::tempdir().unwrap();
    for (i, (k, o)) in recorded.iter().enumerate() {
        let mut o = o.clone();
        o["apiVersion"] = Value::from(k.rtype.api_version());
        o["kind"] = Value::from(k.rtype.kind.clone());
        std::fs::write(dir.path().join(format!("{i}.json")), o.to_string()).unwrap();
    }
    let from = dir.path().to_str().unwrap();
    let n = recorded.len();

    let show: Value =
        serde_json::from_str(&ok(&rewind(&["show", "--from-dir", from, "-o", "json"]))).unwrap();
    assert_eq!(show["objects"], n);
    let out = tempfile::tempdir().unwrap();
    ok(&rewind(&[
        "export",
        "--from-dir",
        from,
        "--out",
        out.path().to_str().unwrap(),
    ]));
    assert!(
        out.path()
            .join("00-crds/clusters.management.cattle.io.yaml")
            .exists()
    );

    let kc = dst.admin_kubeconfig_path().to_str().unwrap().to_owned();
    let dry: Value = serde_json::from_str(&ok(&rewind(&[
        "restore",
        "--from-dir",
        from,
        "--to",
        &kc,
        "--dry-run",
        "-o",
        "json",
    ])))
    .unwrap();
    let items = dry["plan"]["items"].as_array().unwrap();
    let creates = items.iter().filter(|i| i["action"] == "create").count();
    assert_eq!(creates, n - 1, "all but the protected rancher Deployment");
    assert_eq!(
        count(&dst.admin_client(), &mgmt_cluster_t()).await,
        0,
        "dry run wrote nothing"
    );

    let refused = rewind(&["restore", "--from-dir", from, "--to", &kc]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--yes"));
    assert_eq!(
        count(&dst.admin_client(), &crd_t()).await,
        0,
        "nothing written without confirmation"
    );

    let state = tempfile::tempdir().unwrap();
    let report = ok(&rewind(&[
        "restore",
        "--from-dir",
        from,
        "--to",
        &kc,
        "--yes",
        "--state-dir",
        state.path().to_str().unwrap(),
    ]));
    assert!(report.contains(&format!("{} written", n - 1)), "{report}");
    let mut want = recorded.clone();
    want.remove(&rewind_history::TypedKey {
        rtype: deploy_t(),
        namespace: Some("cattle-system".into()),
        name: "rancher".into(),
    });
    let diffs = differences(&want, &dst.admin_client()).await;
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
    // Journal written and finished.
    let journals: Vec<_> = std::fs::read_dir(state.path()).unwrap().collect();
    assert_eq!(journals.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drill_reports_a_clean_restore_and_fails_on_a_rejected_object() {
    rewind_history::install_tls_provider();
    let (src, dst, dst2) = tokio::join!(
        ControlPlane::start(),
        ControlPlane::start(),
        ControlPlane::start()
    );
    let (src, dst, dst2) = (src.unwrap(), dst.unwrap(), dst2.unwrap());
    write_plane(&src.admin_client(), &plane(3)).await;
    let recorded = record(&src.admin_client()).await;
    let dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    rewind_restore::export(&recorded, dir.path()).unwrap();
    let from = dir.path().to_str().unwrap();

    let report_path = out.path().join("drill.json");
    let kc = dst.admin_kubeconfig_path().to_str().unwrap().to_owned();
    let text = ok(&rewind(&[
        "drill",
        "--from-dir",
        from,
        "--to",
        &kc,
        "--report",
        report_path.to_str().unwrap(),
    ]));
    assert!(text.contains("differences  0"), "{text}");
    let report: Value = serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    assert_eq!(report["passed"], true);
    assert_eq!(report["differences"].as_array().unwrap().len(), 0);
    // Export drops ownerReferences and status; every object but the
    // protected Rancher Deployment is restored.
    assert_eq!(report["objects_restored"], recorded.len() - 1);
    assert!(report["rto_ms"].as_u64().is_some());

    // An object the API rejects makes the drill fail, and say why.
    std::fs::write(
        dir.path().join("bad.yaml"),
        "apiVersion: rewind.test/v1\nkind: Strict\nmetadata:\n  name: bad\n  namespace: c-m-0001\nspec:\n  size: -5\n",
    )
    .unwrap();
    let kc2 = dst2.admin_kubeconfig_path().to_str().unwrap().to_owned();
    let failed = rewind(&[
        "drill",
        "--from-dir",
        from,
        "--to",
        &kc2,
        "--report",
        report_path.to_str().unwrap(),
    ]);
    assert!(!failed.status.success());
    let report: Value = serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    assert_eq!(report["passed"], false);
    assert_eq!(report["failures"][0]["reason"], "Invalid", "{report}");
    assert_eq!(report["differences"][0]["kind"], "missing", "{report}");
}

/// A drill with nothing to compare fails with an error that says so: an
/// empty state (refused before any control plane starts), and a state whose
/// every object the plan skips.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drill_fails_on_an_empty_state() {
    let empty = tempfile::tempdir().unwrap();
    let out = rewind(&["drill", "--from-dir", empty.path().to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("holds no objects") && err.contains("nothing to compare"),
        "{err}"
    );

    rewind_history::install_tls_provider();
    let dst = ControlPlane::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Leases are recorded but never written.
    std::fs::write(
        dir.path().join("lease.yaml"),
        "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata:\n  name: l1\n  namespace: default\n\
         spec:\n  holderIdentity: old-node\n",
    )
    .unwrap();
    let kc = dst.admin_kubeconfig_path().to_str().unwrap().to_owned();
    let out = rewind(&[
        "drill",
        "--from-dir",
        dir.path().to_str().unwrap(),
        "--to",
        &kc,
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("skipped by the plan") && err.contains("nothing to compare"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_restore_process_resumes_to_a_complete_result() {
    rewind_history::install_tls_provider();
    let (src, dst) = tokio::join!(ControlPlane::start(), ControlPlane::start());
    let (src, dst) = (src.unwrap(), dst.unwrap());
    write_plane(&src.admin_client(), &plane(60)).await;
    let recorded = record(&src.admin_client()).await;
    let dir = tempfile::tempdir().unwrap();
    for (i, (k, o)) in recorded.iter().enumerate() {
        let mut o = o.clone();
        o["apiVersion"] = Value::from(k.rtype.api_version());
        o["kind"] = Value::from(k.rtype.kind.clone());
        std::fs::write(dir.path().join(format!("{i}.json")), o.to_string()).unwrap();
    }
    let from = dir.path().to_str().unwrap().to_owned();
    let kc = dst.admin_kubeconfig_path().to_str().unwrap().to_owned();
    let state = tempfile::tempdir().unwrap();
    let state_dir = state.path().to_str().unwrap().to_owned();
    let args = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "restore",
            "--from-dir",
            &from,
            "--to",
            &kc,
            "--yes",
            "--state-dir",
            &state_dir,
            "--quiesce",
            "cattle-system/fleet-controller",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        v.extend(extra.iter().map(|s| (*s).to_owned()));
        v
    };

    let mut child = Command::new(env!("CARGO_BIN_EXE_rewind"))
        .args(args(&["--concurrency", "2"]))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // SIGKILL once more than two journal chunks are on disk.
    loop {
        let lines: usize = std::fs::read_dir(state.path())
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| {
                        std::fs::read_to_string(e.path())
                            .unwrap_or_default()
                            .lines()
                            .count()
                    })
                    .sum()
            })
            .unwrap_or(0);
        if lines > 130 {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "restore ended before it was killed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !differences(&recorded, &dst.admin_client()).await.is_empty(),
        "incomplete after the kill"
    );

    let again = rewind(&args(&[]).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("--resume"),
        "{again:?}"
    );

    ok(&rewind(
        &args(&["--resume"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    ));
    let mut want = recorded.clone();
    want.remove(&rewind_history::TypedKey {
        rtype: deploy_t(),
        namespace: Some("cattle-system".into()),
        name: "rancher".into(),
    });
    let diffs = differences(&want, &dst.admin_client()).await;
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}

/// `rewind drill` without `--to` starts its own etcd and kube-apiserver,
/// restores into them, compares, and stops them; `--keep` leaves their files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drill_without_a_target_starts_and_removes_its_own_control_plane() {
    rewind_history::install_tls_provider();
    let src = ControlPlane::start().await.unwrap();
    let bins = rewind_tests::controlplane::locate_binaries().unwrap();
    write_plane(&src.admin_client(), &plane(3)).await;
    let recorded = record(&src.admin_client()).await;
    let dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    rewind_restore::export(&recorded, dir.path()).unwrap();
    let report_path = out.path().join("drill.json");

    let run = Command::new(env!("CARGO_BIN_EXE_rewind"))
        .args(["drill", "--keep", "--from-dir"])
        .arg(dir.path())
        .arg("--report")
        .arg(&report_path)
        .env_remove("REWIND_STORE")
        .env("REWIND_ETCD", &bins.etcd)
        .env("REWIND_KUBE_APISERVER", &bins.kube_apiserver)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = ok(&run);
    assert!(text.contains("differences  0"), "{text}");
    let report: Value = serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    assert_eq!(report["passed"], true, "{report}");
    assert_eq!(report["objects_restored"], recorded.len() - 1, "{report}");
    assert!(
        report["target"]
            .as_str()
            .unwrap()
            .starts_with("local control plane https://127.0.0.1:"),
        "{report}"
    );

    // --keep printed where the plane's files are; its apiserver is gone.
    let stderr = String::from_utf8_lossy(&run.stderr);
    let kept = stderr
        .lines()
        .find_map(|l| l.strip_prefix("kept the local control plane's files in "))
        .unwrap_or_else(|| panic!("no kept dir in stderr:\n{stderr}"))
        .to_owned();
    let kept = std::path::PathBuf::from(kept);
    assert!(kept.join("kube-apiserver.log").is_file());
    let kubeconfig = kept.join("admin.kubeconfig");
    let client = rewind_tests::controlplane::client_from_file(&kubeconfig)
        .await
        .unwrap();
    let gone = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        client.apiserver_version(),
    )
    .await;
    assert!(
        !matches!(gone, Ok(Ok(_))),
        "the drill's apiserver still answers after the drill ended"
    );
    std::fs::remove_dir_all(&kept).unwrap();

    // A binary that is not there is named, and nothing is restored.
    let missing = rewind(&[
        "drill",
        "--from-dir",
        dir.path().to_str().unwrap(),
        "--etcd",
        "/nonexistent/etcd",
    ]);
    assert!(!missing.status.success());
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(
        err.contains("etcd at /nonexistent/etcd does not exist"),
        "{err}"
    );
}

/// `--resource-set` and `--resource-preset` select with the daemon's ResourceSet
/// semantics; a bad file is named.
#[test]
fn show_filters_by_resource_set_selectors() {
    let dir = tempfile::tempdir().unwrap();
    let objects = [
        ("v1", "ConfigMap", Some("keep"), "app-config", "web"),
        ("v1", "ConfigMap", Some("keep"), "other", "db"),
        ("v1", "ConfigMap", Some("drop"), "app-config", "web"),
        ("v1", "Secret", Some("keep"), "app-secret", "web"),
        ("v1", "Namespace", None, "keep", "web"),
    ];
    for (i, (api, kind, ns, name, app)) in objects.iter().enumerate() {
        let mut meta = serde_json::json!({"name": name, "labels": {"app": app}});
        if let Some(ns) = ns {
            meta["namespace"] = Value::from(*ns);
        }
        let o = serde_json::json!({"apiVersion": api, "kind": kind, "metadata": meta});
        std::fs::write(dir.path().join(format!("{i}.json")), o.to_string()).unwrap();
    }
    let from = dir.path().to_str().unwrap();
    let count = |extra: &[&str]| -> u64 {
        let mut args = vec!["show", "--from-dir", from, "--output", "json"];
        args.extend_from_slice(extra);
        let v: Value = serde_json::from_str(&ok(&rewind(&args))).unwrap();
        v["objects"].as_u64().unwrap()
    };
    let all = count(&[]);
    assert_eq!(all, objects.len() as u64);
    assert_eq!(count(&["--resource-preset", "everything"]), all);

    // ConfigMaps in namespace `keep` labelled app=web, and every Secret.
    let sets = tempfile::tempdir().unwrap();
    let set = sets.path().join("set.yaml");
    std::fs::write(
        &set,
        "- apiVersion: v1\n  kindsRegexp: \"^configmaps$\"\n  namespaces: [keep]\n  \
         labelSelectors:\n    matchLabels:\n      app: web\n\
         - apiVersion: v1\n  kinds: [secrets]\n",
    )
    .unwrap();
    let want = objects
        .iter()
        .filter(|(_, kind, ns, _, app)| {
            (*kind == "ConfigMap" && *ns == Some("keep") && *app == "web") || *kind == "Secret"
        })
        .count() as u64;
    assert_eq!(count(&["--resource-set", set.to_str().unwrap()]), want);

    let bad = sets.path().join("bad.yaml");
    std::fs::write(&bad, "- apiVersion: v1\n  kindsRegexp: \"(\"\n").unwrap();
    let out = rewind(&[
        "show",
        "--from-dir",
        from,
        "--resource-set",
        bad.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.yaml"), "{err}");
    let out = rewind(&["show", "--from-dir", from, "--resource-preset", "nonesuch"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nonesuch"));
}
