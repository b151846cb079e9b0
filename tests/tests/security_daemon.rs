//! What rewindd leaves on the host and in its store, and what it prints:
//!
//! - every directory it creates is 0700, every file 0600, the admin socket
//!   0660 (group-restricted);
//! - no Secret value (planted markers, raw and base64, through `data` and
//!   `stringData`) appears in its logs at debug level, `/metrics`, the status
//!   file or `rewindd status`;
//! - with age recipients configured, no Secret value, nor the Secret's name,
//!   appears in any byte of the store, and the files are age-encrypted;
//! - a tampered store file is refused (catalog hash, and the AEAD under it);
//! - the daemon records everything with get/list/watch only: its identity
//!   cannot create, update or delete, and its journal equals a fresh LIST.
//!
//! Runs the real `rewindd` binary against the local control plane.

mod daemon_support;

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use daemon_support::*;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use rewind_daemon::status::{read_status, status_path};
use rewind_format::Limits;
use rewind_history::select::preset::preset;
use rewind_history::store::{Store, StoreConfig};
use rewind_tests::ControlPlane;
use rewind_tests::daemon::DaemonConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn http_get(port: u16, path: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        out.push(p.clone());
        if std::fs::symlink_metadata(&p).unwrap().is_dir() {
            walk(&p, out);
        }
    }
}

/// Paths whose mode is wider than 0700 (directories), 0600 (files) or
/// 0660 (the admin socket).
fn mode_violations(paths: &[PathBuf]) -> Vec<String> {
    let mut bad = Vec::new();
    for p in paths {
        let md = std::fs::symlink_metadata(p).unwrap();
        let mode = md.permissions().mode() & 0o777;
        let ok = if md.file_type().is_socket() {
            mode == 0o660
        } else if md.is_dir() {
            mode == 0o700
        } else {
            mode & 0o077 == 0
        };
        if !ok {
            bad.push(format!("{} is {mode:o}", p.display()));
        }
    }
    bad
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Every way a marker could show: raw, and base64 as it sits in `data`.
fn forms(markers: &[String]) -> Vec<String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    markers
        .iter()
        .flat_map(|m| [m.clone(), b64.encode(m)])
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_files_no_secret_in_outputs_or_store_and_tamper_refused() {
    let bin = rewindd_bin();
    rewind_history::install_tls_provider();
    let cp = ControlPlane::start().await.unwrap();
    let admin = cp.admin_client();
    let _ = load_plane(&admin, 3).await;

    // Unique markers, planted before and while the daemon runs.
    let tag = format!("{:x}", u64::from(std::process::id()) * 7919 + 17);
    let markers: Vec<String> = (0..4)
        .map(|i| format!("rewind-marker-{i}-{tag}-do-not-leak"))
        .collect();
    let secret_name = format!("rewind-sec-{tag}");
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), "cattle-system");
    let b64 = base64::engine::general_purpose::STANDARD;
    let s: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": secret_name, "namespace": "cattle-system"},
        "data": {"password": b64.encode(&markers[0])},
        "stringData": {"token": markers[1]}
    }))
    .unwrap();
    secrets.create(&PostParams::default(), &s).await.unwrap();

    let identity = rewind_format::crypto::Identity::generate();
    let recipient = identity.to_public().to_string();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cfg = dir.path().join("rewindd.toml");
    let port = free_port();
    std::fs::write(
        &cfg,
        // The drill's config, with the snapshot encrypted to one recipient.
        format!(
            "{}\n[encryption]\nrecipients = [\"{recipient}\"]\n",
            DaemonConfig::drill(&data, cp.readonly_kubeconfig_path(), port).text()
        ),
    )
    .unwrap();
    let stdout = dir.path().join("stdout.log");
    let stderr = dir.path().join("stderr.log");
    let mut child = Command::new(&bin)
        .arg("--config")
        .arg(&cfg)
        .args(["--status-interval-ms", "200"])
        .env("RUST_LOG", "debug")
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .arg("run")
        .spawn()
        .unwrap();
    let pid = child.id();
    let status = || {
        read_status(&status_path(&data))
            .ok()
            .filter(|s| s.pid == pid)
    };
    wait_settled(status, Duration::from_secs(2), "initial list").await;

    // Changes while running: an update through data, a new Secret through
    // stringData, a ConfigMap, and a delete.
    secrets
        .patch(
            &secret_name,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"data": {"password": b64.encode(&markers[2])}})),
        )
        .await
        .unwrap();
    let s2: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": format!("{secret_name}-2"), "namespace": "cattle-system"},
        "stringData": {"key": markers[3]}
    }))
    .unwrap();
    secrets.create(&PostParams::default(), &s2).await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(admin.clone(), "cattle-system");
    let cm: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "rewind-sec-cm", "namespace": "cattle-system"}, "data": {"a": "b"}
    }))
    .unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    wait_settled(status, Duration::from_secs(2), "changes").await;
    let sock = data.join("rewindd.sock");
    let snap = rewind_daemon::admin::client::snapshot(&sock, Some("security".into()), true)
        .await
        .unwrap();
    assert!(snap.stored);
    secrets
        .delete(&format!("{secret_name}-2"), &DeleteParams::default())
        .await
        .unwrap();
    wait_settled(status, Duration::from_secs(2), "delete").await;

    // RBAC: the daemon's identity can read but not write.
    let ro: Api<ConfigMap> = Api::namespaced(cp.readonly_client(), "cattle-system");
    let denied = ro.create(&PostParams::default(), &cm).await.unwrap_err();
    assert!(
        matches!(&denied, kube::Error::Api(e) if e.code == 403),
        "{denied}"
    );
    let denied = ro
        .delete("rewind-sec-cm", &DeleteParams::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&denied, kube::Error::Api(e) if e.code == 403),
        "{denied}"
    );

    // Modes while running: the socket is 0660, the rest private.
    let mut paths = vec![data.clone()];
    walk(&data, &mut paths);
    let bad = mode_violations(&paths);
    assert!(bad.is_empty(), "not private:\n{}", bad.join("\n"));
    let checked = paths.len();
    assert!(paths.iter().any(|p| p.ends_with("status.json")));
    assert!(paths.iter().any(|p| p.ends_with("journal")));
    assert!(paths.iter().any(|p| p.ends_with("rewindd.sock")));

    let metrics = http_get(port, "/metrics").await;
    assert!(
        metrics.contains("rewind_events_recorded_total"),
        "{metrics}"
    );
    let status_cmd = Command::new(&bin)
        .arg("--data-dir")
        .arg(&data)
        .arg("status")
        .arg("--verbose")
        .stderr(Stdio::piped())
        .output()
        .unwrap();

    assert!(
        Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    assert!(child.wait().unwrap().success());

    // The record is complete with get/list/watch only.
    let live = live_selected(&cp.readonly_client(), &preset("rancher").unwrap()).await;
    let j = open_journal(&data.join("journal"));
    let state = journal_state(&j);
    let diffs = differences(&state, &live);
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
    assert!(
        state.keys().any(|k| k.0 == "secrets" && k.2 == secret_name),
        "the planted Secret is recorded"
    );
    drop(j);

    // No marker in any output.
    let outputs: Vec<(String, Vec<u8>)> = vec![
        ("stdout".into(), std::fs::read(&stdout).unwrap()),
        ("stderr".into(), std::fs::read(&stderr).unwrap()),
        ("/metrics".into(), metrics.into_bytes()),
        (
            "status.json".into(),
            std::fs::read(status_path(&data)).unwrap(),
        ),
        ("rewindd status".into(), {
            let mut b = status_cmd.stdout.clone();
            b.extend_from_slice(&status_cmd.stderr);
            b
        }),
    ];
    let log_len = outputs[0].1.len() + outputs[1].1.len();
    assert!(log_len > 1000, "debug logs were written ({log_len} bytes)");
    for (what, bytes) in &outputs {
        for m in forms(&markers) {
            assert!(!contains(bytes, &m), "{what} holds Secret value {m}");
        }
    }

    // No marker, and not the Secret's name, in any byte of the store.
    let mut files = Vec::new();
    walk(&data.join("store"), &mut files);
    let files: Vec<_> = files.into_iter().filter(|p| p.is_file()).collect();
    assert!(files.len() >= 4, "segments, snapshots and their catalog");
    let mut needles = forms(&markers);
    needles.push(secret_name.clone());
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        for n in &needles {
            assert!(!contains(&bytes, n), "{} holds {n} in clear", f.display());
        }
    }

    // Encrypted, readable with the identity, and a flipped byte is refused.
    let store = Store::open(&StoreConfig::Local {
        path: rewind_tests::daemon::recorded_local_store(&data),
    })
    .await
    .unwrap();
    let segs = store.list_segments().await.unwrap();
    let snaps = store.list_snapshots().await.unwrap();
    assert!(!segs.is_empty() && !snaps.is_empty());
    let bytes = store.get_snapshot(&snaps[0]).await.unwrap();
    assert!(rewind_format::crypto::is_encrypted(&bytes).unwrap());
    assert!(
        rewind_format::verify_file(&bytes, None, &[], &Limits::default()).is_err(),
        "an encrypted file does not verify without the identity"
    );
    let plain =
        rewind_format::crypto::decrypt(&bytes, std::slice::from_ref(&identity), &Limits::default())
            .unwrap();
    let mut reader = rewind_format::SnapshotReader::open(&plain, None, Limits::default()).unwrap();
    let state = rewind_format::State::from_snapshot(&mut reader).unwrap();
    let recorded = state
        .objects
        .iter()
        .find(|(k, _)| k.resource == "secrets" && k.name == secret_name)
        .map(|(_, o)| o.object.clone())
        .expect("the identity decrypts a snapshot holding the planted Secret");
    assert!(
        contains(&recorded, &b64.encode(&markers[2])),
        "and the Secret's value, so the store checks above were not vacuous"
    );
    rewind_format::verify_file(
        &bytes,
        None,
        std::slice::from_ref(&identity),
        &Limits::default(),
    )
    .unwrap();

    let seg_file = files
        .iter()
        .find(|p| p.extension().is_some_and(|e| e == "seg"))
        .unwrap()
        .clone();
    let mut tampered = std::fs::read(&seg_file).unwrap();
    let mid = tampered.len() / 2;
    tampered[mid] ^= 0x01;
    // Even re-hashed (an attacker who also rewrites the catalog), the AEAD
    // refuses it.
    let err = rewind_format::verify_file(
        &tampered,
        None,
        std::slice::from_ref(&identity),
        &Limits::default(),
    )
    .unwrap_err();
    eprintln!("tampered segment, decrypted: {err}");
    std::fs::write(&seg_file, &tampered).unwrap();
    let seg = segs
        .iter()
        .find(|s| seg_file.to_string_lossy().contains(&s.id))
        .unwrap_or(&segs[0]);
    let err = store.get_segment(seg).await.unwrap_err();
    eprintln!("tampered segment, read from the store: {err}");
    assert!(
        err.to_string().contains("does not match its catalog entry"),
        "{err}"
    );
    eprintln!(
        "{checked} paths private; {} store files, none with a marker; {} outputs clean",
        files.len(),
        outputs.len()
    );
}

/// Regression: rewindd started outside systemd (no `UMask=0077`, no
/// `StateDirectoryMode`) created its data directory 0755, the sled journal's
/// files 0644 and `status.json` 0644, so any local user could read every
/// recorded Secret from the journal. Fixed by umask 0077 in `rewindd run` and
/// a 0700 data directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_data_dir_journal_and_status_world_readable() {
    let bin = rewindd_bin();
    let cp = ControlPlane::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut child = Command::new(&bin)
        .arg("--kubeconfig")
        .arg(cp.readonly_kubeconfig_path())
        .arg("--data-dir")
        .arg(&data)
        .arg("--config")
        .arg(dir.path().join("none.toml"))
        .args(["--presets", "rancher", "--status-interval-ms", "100"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .arg("run")
        .spawn()
        .unwrap();
    // Own admin socket and no metrics port: daemons of tests running in
    // parallel must not collide on /run/rewind/rewindd.sock or :9464.
    std::fs::write(
        dir.path().join("none.toml"),
        format!(
            "[service]\nadmin_socket = \"{}\"\nmetrics_addr = \"\"\n",
            dir.path().join("rewindd.sock").display()
        ),
    )
    .unwrap();
    let pid = child.id();
    wait_settled(
        || {
            read_status(&status_path(&data))
                .ok()
                .filter(|s| s.pid == pid)
        },
        Duration::from_secs(1),
        "start",
    )
    .await;
    let mut paths = vec![data.clone()];
    walk(&data, &mut paths);
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    child.wait().unwrap();
    let bad = mode_violations(&paths);
    assert!(bad.is_empty(), "not private:\n{}", bad.join("\n"));
}
