//! A fleet in one bucket: several clusters recorded by real rewindd
//! processes into one Garage bucket and prefix, each in its own place
//! (`clusters/<kube-system uid>/`), read back by the `rewind` binary.
//!
//! - Three clusters (one control plane per cluster, started in turn: the
//!   machine has two cores): `rewind list` shows all three with their
//!   newest points; an export of each (`--cluster`) holds its own objects
//!   and nothing of the others; a live `restore --at latest` of each into a
//!   fresh control plane gives exactly the ConfigMaps the API held in that
//!   cluster's namespace and none of the other two clusters' namespaces or
//!   objects; without `--cluster` a reading command is an error listing the
//!   three, and an unknown `--cluster` names them.
//! - An existing flat store (the single-cluster layout, files directly
//!   under the prefix, from a data directory that never placed itself):
//!   `rewind` still lists and exports it, rewindd continues it in place
//!   (same lineage, nothing under `clusters/`), and a second cluster
//!   pointed at the same prefix gets its own place beside it.
//!
//! Needs the local control plane and Garage.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use rewind_history::store::Store;
use rewind_history::store::fleet::Place;
use rewind_tests::ControlPlane;
use rewind_tests::daemon::{DaemonConfig, RunOptions, rewind_bin, wait_sealed};
use rewind_tests::garage::Garage;

const PREFIX: &str = "fleet";

/// Creates namespace `ns` and ConfigMaps `names` in it.
async fn populate(admin: &kube::Client, ns: &str, names: &[String]) {
    let n: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": ns}})).unwrap();
    Api::<Namespace>::all(admin.clone())
        .create(&PostParams::default(), &n)
        .await
        .unwrap();
    let api: Api<ConfigMap> = Api::namespaced(admin.clone(), ns);
    for name in names {
        let cm: ConfigMap = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": ns},
            "data": {"v": name},
        }))
        .unwrap();
        api.patch(
            name,
            &PatchParams::apply("fleet-test").force(),
            &Patch::Apply(&cm),
        )
        .await
        .unwrap();
    }
}

async fn kube_system_uid(admin: &kube::Client) -> String {
    Api::<Namespace>::all(admin.clone())
        .get("kube-system")
        .await
        .unwrap()
        .metadata
        .uid
        .unwrap()
}

/// `rewind` on the Garage prefix, with its credentials.
fn rewind(g: &Garage) -> Command {
    let (id, secret) = g.key();
    let mut c = Command::new(rewind_bin().unwrap());
    c.env("AWS_ACCESS_KEY_ID", id)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("AWS_REGION", "garage")
        .env_remove("REWIND_CLUSTER")
        .arg("--store")
        .arg(format!("s3://{}/{PREFIX}", g.bucket()))
        .arg("--s3-endpoint")
        .arg(g.endpoint());
    c
}

fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd.stdin(std::process::Stdio::null()).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every file below `dir`, as a path string.
fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.display().to_string());
            }
        }
    }
    out
}

/// Exports the newest point of `cluster` (None: unnamed) into `out`.
fn export(g: &Garage, cluster: Option<&str>, out: &Path) -> (bool, String, String) {
    let _ = std::fs::remove_dir_all(out);
    let mut c = rewind(g);
    if let Some(k) = cluster {
        c.args(["--cluster", k]);
    }
    run(c.args(["export", "--at", "latest", "--out"]).arg(out))
}

/// The ConfigMaps of namespace `ns` the API holds, name → `data`.
type ConfigMaps = BTreeMap<String, BTreeMap<String, String>>;

async fn config_maps(client: &kube::Client, ns: &str) -> ConfigMaps {
    Api::<ConfigMap>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|cm| (cm.metadata.name.unwrap(), cm.data.unwrap_or_default()))
        .collect()
}

/// Records `ns` with `names` from a fresh control plane into the shared
/// prefix with a daemon whose data directory is `data`; returns the
/// cluster's uid, its place and the ConfigMaps the API held in `ns` when
/// the recording was sealed.
async fn record_cluster(
    g: &Garage,
    data: &Path,
    ns: &str,
    names: &[String],
) -> (String, Place, ConfigMaps) {
    let cp = ControlPlane::start().await.unwrap();
    let admin = cp.admin_client();
    let uid = kube_system_uid(&admin).await;
    populate(&admin, ns, names).await;
    let mut cfg = DaemonConfig::new(data, cp.readonly_kubeconfig_path()).s3(g, PREFIX);
    cfg.presets = vec!["everything".into()];
    let place = cfg.place().await.unwrap();
    let store = cfg.open_store().await.unwrap();
    let mut daemon = cfg.start_settled(&RunOptions::default()).await.unwrap();
    daemon
        .settle(Duration::from_secs(1), "recorded")
        .await
        .unwrap();
    let last = daemon.status().unwrap().journal.next_seq - 1;
    wait_sealed(&store, last).await.unwrap();
    assert!(daemon.terminate().unwrap().success());
    let held = config_maps(&admin, ns).await;
    (uid, place, held)
}

/// `rewind --cluster <uid> restore --at latest` into a fresh control plane
/// (dropped before returning); returns, for each namespace of `nss`,
/// whether it exists in the target and the ConfigMaps it holds, and the
/// names of every ConfigMap in the target.
async fn restore_cluster(
    g: &Garage,
    uid: &str,
    state_dir: &Path,
    nss: &[String],
) -> (BTreeMap<String, (bool, ConfigMaps)>, Vec<String>) {
    let cp = ControlPlane::start().await.unwrap();
    let mut c = rewind(g);
    c.args(["--cluster", uid, "restore", "--at", "latest", "--to"])
        .arg(cp.admin_kubeconfig_path())
        .args(["--yes", "--output", "json", "--state-dir"])
        .arg(state_dir);
    let (ok, out, err) = run(&mut c);
    assert!(ok, "restore of {uid}:\n{out}\n{err}");
    let report: serde_json::Value = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("restore of {uid}: {e}: {out}\n{err}"));
    let failures = report["report"]["failures"].as_array().unwrap();
    assert!(failures.is_empty(), "restore of {uid}: {failures:#?}");
    let target = cp.admin_client();
    let namespaces = Api::<Namespace>::all(target.clone());
    let mut per_ns = BTreeMap::new();
    for ns in nss {
        let exists = namespaces.get_opt(ns).await.unwrap().is_some();
        per_ns.insert(ns.clone(), (exists, config_maps(&target, ns).await));
    }
    let all = Api::<ConfigMap>::all(target)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|cm| {
            format!(
                "{}/{}",
                cm.metadata.namespace.unwrap_or_default(),
                cm.metadata.name.unwrap_or_default()
            )
        })
        .collect();
    drop(cp);
    (per_ns, all)
}

fn names(i: usize) -> Vec<String> {
    vec![format!("c{i}-a"), format!("c{i}-b")]
}

/// Whether the export in `dir` holds `ns`'s objects `names` and no other
/// cluster's namespace of `others`.
fn holds_only(dir: &Path, ns: &str, names: &[String], others: &[String]) {
    let all = files(dir);
    for n in names {
        assert!(
            all.iter().any(|f| f.contains(ns) && f.contains(n.as_str())),
            "{n} of {ns} missing from {}: {all:#?}",
            dir.display()
        );
    }
    for o in others.iter().filter(|o| o.as_str() != ns) {
        assert!(
            !all.iter().any(|f| f.contains(o.as_str())),
            "{o} leaked into the export of {ns}: {all:#?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_clusters_in_one_bucket_each_restore_their_own_state() {
    rewind_history::install_tls_provider();
    let g = tokio::task::spawn_blocking(Garage::start)
        .await
        .unwrap()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let nss: Vec<String> = (1..=3).map(|i| format!("fleet-ns-{i}")).collect();
    let mut clusters = Vec::new();
    let mut held = Vec::new();
    for (i, ns) in nss.iter().enumerate() {
        let data = dir.path().join(format!("data-{i}"));
        let (uid, place, cms) = record_cluster(&g, &data, ns, &names(i + 1)).await;
        assert!(
            names(i + 1).iter().all(|n| cms.contains_key(n)),
            "the API held {cms:?}"
        );
        held.push(cms);
        assert_eq!(place, Place::Cluster(uid.clone()));
        assert_eq!(
            std::fs::read_to_string(data.join("store-place"))
                .unwrap()
                .lines()
                .next(),
            Some(format!("clusters/{uid}").as_str()),
            "the daemon remembers its place"
        );
        clusters.push(uid);
    }

    // All three listed, each with its newest point and lineage.
    let (ok, out, err) = run(rewind(&g).args(["list", "-o", "json"]));
    assert!(ok, "{out}\n{err}");
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rows = listed["clusters"].as_array().unwrap();
    let mut got: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    got.sort_unstable();
    let mut want: Vec<&str> = clusters.iter().map(String::as_str).collect();
    want.sort_unstable();
    assert_eq!(got, want, "{out}");
    for r in rows {
        assert!(r["newest_seq"].as_u64().unwrap() > 0, "{r}");
        assert!(r["rpo_ms"].as_i64().unwrap() >= 0, "{r}");
        assert_eq!(r["lineages"].as_array().unwrap().len(), 1, "{r}");
        assert_eq!(
            r["place"],
            format!("clusters/{}/", r["name"].as_str().unwrap())
        );
    }
    let (ok, table, err) = run(rewind(&g).arg("list"));
    assert!(ok, "{table}\n{err}");
    assert!(
        clusters.iter().all(|c| table.contains(c.as_str())) && table.contains("RPO"),
        "{table}"
    );

    // Each cluster's export holds its own objects and none of the others.
    for (i, uid) in clusters.iter().enumerate() {
        let out = dir.path().join(format!("export-{i}"));
        let (ok, o, e) = export(&g, Some(uid), &out);
        assert!(ok, "{o}\n{e}");
        holds_only(&out, &nss[i], &names(i + 1), &nss);
    }

    // A live restore of each into a fresh control plane (one at a time)
    // gives exactly the ConfigMaps the API held in its namespace, object by
    // object, and nothing of the other two clusters.
    for (i, uid) in clusters.iter().enumerate() {
        let state_dir = dir.path().join(format!("restore-state-{i}"));
        let (per_ns, all) = restore_cluster(&g, uid, &state_dir, &nss).await;
        for (j, ns) in nss.iter().enumerate() {
            let (exists, cms) = &per_ns[ns];
            if i == j {
                assert!(*exists, "{ns} not restored from {uid}");
                assert_eq!(cms, &held[i], "the ConfigMaps of {ns} restored from {uid}");
            } else {
                assert!(!exists, "{ns} of another cluster restored from {uid}");
                assert!(
                    cms.is_empty(),
                    "{ns} of another cluster in {uid}'s: {cms:?}"
                );
            }
        }
        for (j, _) in nss.iter().enumerate().filter(|(j, _)| *j != i) {
            for n in names(j + 1) {
                assert!(
                    !all.iter().any(|c| c.ends_with(&format!("/{n}"))),
                    "{n} of cluster {j} restored from {uid}: {all:#?}"
                );
            }
        }
    }

    // Never a guess: without --cluster a reading command lists the three;
    // an unknown one names them.
    let (ok, _, err) = export(&g, None, &dir.path().join("unnamed"));
    assert!(!ok);
    assert!(
        err.contains("3 clusters") && clusters.iter().all(|c| err.contains(c.as_str())),
        "{err}"
    );
    let (ok, _, err) =
        run(rewind(&g).args(["--cluster", "no-such-cluster", "show", "--at", "latest"]));
    assert!(!ok);
    assert!(
        err.contains("\"no-such-cluster\" is not in the store")
            && clusters.iter().all(|c| err.contains(c.as_str())),
        "{err}"
    );
    let (ok, _, err) = run(rewind(&g).arg("verify"));
    assert!(!ok && err.contains("name one with --cluster"), "{err}");
    let (ok, out, err) = run(rewind(&g).args(["--cluster", &clusters[1], "verify"]));
    assert!(ok, "{out}\n{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_flat_store_is_listed_restored_and_continued() {
    rewind_history::install_tls_provider();
    let g = tokio::task::spawn_blocking(Garage::start)
        .await
        .unwrap()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data-a");
    let (ns_a, ns_b) = ("flat-ns-a".to_owned(), "flat-ns-b".to_owned());

    let cp = ControlPlane::start().await.unwrap();
    let admin = cp.admin_client();
    let uid_a = kube_system_uid(&admin).await;
    populate(&admin, &ns_a, &names(1)).await;
    let mut cfg = DaemonConfig::new(&data, cp.readonly_kubeconfig_path()).s3(&g, PREFIX);
    cfg.presets = vec!["everything".into()];
    let mut daemon = cfg.start_settled(&RunOptions::default()).await.unwrap();
    daemon
        .settle(Duration::from_secs(1), "first")
        .await
        .unwrap();
    let last = daemon.status().unwrap().journal.next_seq - 1;
    let lineage = daemon.status().unwrap().lineage.unwrap().id;
    wait_sealed(&cfg.open_store().await.unwrap(), last)
        .await
        .unwrap();
    assert!(daemon.terminate().unwrap().success());

    // The single-cluster layout of before: every file moved from the
    // cluster's place to the prefix itself, and a data directory that
    // never placed itself.
    let root: Store = cfg.open_root().await.unwrap();
    let sub = format!("clusters/{uid_a}/");
    let moved = root.list(&sub).await.unwrap();
    assert!(
        moved.len() >= 3,
        "a lineage record, a segment and its entry: {moved:?}"
    );
    for o in &moved {
        let bytes = root.get_object(&o.key).await.unwrap();
        let flat = o.key.strip_prefix(&sub).unwrap();
        root.put_object(flat, bytes).await.unwrap();
        root.delete_object(&o.key).await.unwrap();
    }
    std::fs::remove_file(data.join("store-place")).unwrap();
    assert_eq!(cfg.place().await.unwrap(), Place::Flat);

    // Listed and exported as before.
    let (ok, out, err) = run(rewind(&g).args(["list", "-o", "json"]));
    assert!(ok, "{out}\n{err}");
    assert!(out.contains(&lineage), "{out}");
    let (ok, o, e) = export(&g, None, &dir.path().join("flat-1"));
    assert!(ok, "{o}\n{e}");
    holds_only(&dir.path().join("flat-1"), &ns_a, &names(1), &[]);

    // rewindd continues it in place: the same lineage, new files at the
    // root, nothing under clusters/.
    let later = vec!["c1-later".to_owned()];
    let api: Api<ConfigMap> = Api::namespaced(admin.clone(), &ns_a);
    let cm: ConfigMap = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "c1-later", "namespace": ns_a}, "data": {"v": "1"},
    }))
    .unwrap();
    let mut daemon = cfg.start_settled(&RunOptions::default()).await.unwrap();
    api.patch(
        "c1-later",
        &PatchParams::apply("fleet-test").force(),
        &Patch::Apply(&cm),
    )
    .await
    .unwrap();
    daemon
        .settle(Duration::from_secs(1), "continued")
        .await
        .unwrap();
    let status = daemon.status().unwrap();
    let lin = status.lineage.unwrap();
    assert_eq!(
        (lin.id.as_str(), lin.decision.as_str()),
        (lineage.as_str(), "continue")
    );
    wait_sealed(&root, status.journal.next_seq - 1)
        .await
        .unwrap();
    assert!(daemon.terminate().unwrap().success());
    assert!(root.list("clusters/").await.unwrap().is_empty());
    assert_eq!(
        std::fs::read_to_string(data.join("store-place"))
            .unwrap()
            .lines()
            .next(),
        Some(""),
        "the flat layout is remembered as the place"
    );
    let (ok, o, e) = export(&g, None, &dir.path().join("flat-2"));
    assert!(ok, "{o}\n{e}");
    holds_only(&dir.path().join("flat-2"), &ns_a, &later, &[]);
    drop(cp);

    // A second cluster on the same prefix gets its own place beside it.
    let (uid_b, place_b, _) =
        record_cluster(&g, &dir.path().join("data-b"), &ns_b, &names(2)).await;
    assert_eq!(place_b, Place::Cluster(uid_b.clone()));
    let (ok, out, err) = run(rewind(&g).args(["list", "-o", "json"]));
    assert!(ok, "{out}\n{err}");
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rows = listed["clusters"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{out}");
    assert_eq!(
        (rows[0]["name"].as_str(), rows[0]["place"].as_str()),
        (Some(uid_a.as_str()), Some("/"))
    );
    assert_eq!(rows[1]["name"].as_str(), Some(uid_b.as_str()));
    let both = [ns_a.clone(), ns_b.clone()];
    let out_a: PathBuf = dir.path().join("a");
    let (ok, o, e) = export(&g, Some(&uid_a), &out_a);
    assert!(ok, "{o}\n{e}");
    holds_only(&out_a, &ns_a, &[names(1), later].concat(), &both);
    let out_b: PathBuf = dir.path().join("b");
    let (ok, o, e) = export(&g, Some(&uid_b), &out_b);
    assert!(ok, "{o}\n{e}");
    holds_only(&out_b, &ns_b, &names(2), &both);
    let (ok, _, err) = export(&g, None, &dir.path().join("c"));
    assert!(!ok && err.contains(&uid_a) && err.contains(&uid_b), "{err}");
}
