//! A full disk on the journal volume (issues #4 and #8): rewindd must stop
//! acknowledging, report unhealthy, stay alive, resume when space returns,
//! and lose nothing: no corruption, no lost acknowledged event, and in the
//! end no lost event at all (the watchers wait on the full queue instead of
//! dropping what the API sends).
//!
//! The real `rewindd` records the real local control plane; its journal
//! directory is a small tmpfs of its own (the status file and the store stay
//! on the ordinary disk, as with a dedicated journal volume). The test fills
//! the tmpfs with a filler file, keeps creating and updating ConfigMaps,
//! checks that the daemon reports the journal unhealthy (status file and
//! `rewindd status`) and that nothing new is acknowledged, frees the space,
//! and checks that recording resumes, that every write the API accepted is
//! in the log exactly once, that the log is gap-free and replays to the
//! state, and that the state equals a fresh LIST.
//!
//! The first test exercises the daemon's own guard (it stops before the
//! volume is full, so sled never sees the error). The second turns the
//! guard off (`REWIND_JOURNAL_MIN_FREE_BYTES=0` in a copy of the test
//! process, inherited by its rewindd) so that sled itself fails with
//! ENOSPC: the writer must reopen the journal, with the compactor's handle
//! detached, and go on. There sled may still succeed for a while in space
//! its files already hold, so that test does not require that nothing is
//! acknowledged while the volume is full, only that nothing is lost.
//!
//! Mounting needs root, or an unprivileged user namespace: when not root,
//! the test runs itself again under `unshare -rm`. If neither works it
//! fails and says why; it never passes without having filled a disk.

mod daemon_support;

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use daemon_support::*;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use rewind_format::EventKind;
use rewind_history::select::preset::preset;
use rewind_tests::ControlPlane;
use rewind_tests::daemon::{DaemonConfig, Rewindd, RunOptions};

/// Set in the copy of this test that runs inside `unshare -rm`.
const IN_NAMESPACE: &str = "REWIND_DISK_FULL_IN_USERNS";
/// The daemon's free-space reserve; `0` turns its check off.
const MIN_FREE_ENV: &str = "REWIND_JOURNAL_MIN_FREE_BYTES";
/// Size of the journal volume.
const VOLUME_MB: u64 = 48;

/// A tmpfs mounted on a directory for the test's lifetime.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: &Path, size_mb: u64) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={size_mb}m,mode=0700"))
            .arg("tmpfs")
            .arg(dir)
            .output()
            .expect("running mount");
        assert!(
            out.status.success(),
            "mount -t tmpfs on {} failed: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Self {
            dir: dir.to_path_buf(),
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a daemon killed by a failing assertion may still be closing
        // its files.
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// Writes zeros to `path` until the volume refuses; returns the bytes written.
fn fill(path: &Path) -> u64 {
    let mut f = std::fs::File::create(path).unwrap();
    let mut written = 0u64;
    for chunk in [1 << 20, 4096, 64] {
        let buf = vec![0u8; chunk];
        loop {
            match f.write(&buf) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
                Err(e) => panic!("filling {}: {e}", path.display()),
            }
        }
    }
    let _ = f.sync_all();
    written
}

fn cm(name: &str, round: u32) -> ConfigMap {
    let mut data = BTreeMap::new();
    let mut v = String::new();
    let mut x = u64::from(round).wrapping_add(name.len() as u64) | 1;
    while v.len() < 2000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.push_str(&format!("{x:016x}"));
    }
    data.insert("payload".to_owned(), v);
    data.insert("round".to_owned(), round.to_string());
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("cattle-system".into()),
            ..ObjectMeta::default()
        },
        data: Some(data),
        ..ConfigMap::default()
    }
}

/// Creates `names` (or replaces their data when they exist); returns the
/// `(name, resourceVersion)` of every accepted write.
async fn write_all(api: &Api<ConfigMap>, names: &[String], round: u32) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for n in names {
        let obj = cm(n, round);
        let res = match api.create(&PostParams::default(), &obj).await {
            Ok(o) => o,
            Err(kube::Error::Api(e)) if e.code == 409 => api
                .patch(
                    n,
                    &PatchParams::default(),
                    &Patch::Merge(serde_json::json!({ "data": obj.data })),
                )
                .await
                .unwrap(),
            Err(e) => panic!("writing {n}: {e}"),
        };
        out.push((n.clone(), res.metadata.resource_version.unwrap()));
    }
    out
}

fn rewindd_status(data: &Path) -> (bool, String) {
    let out = Command::new(rewindd_bin())
        .arg("--data-dir")
        .arg(data)
        .arg("status")
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Runs test `name` again in a child process: under `unshare -rm` when
/// `userns`, with `env` set. Returns when the copy passed.
fn run_copy(name: &str, userns: bool, env: &[(&str, &str)]) {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = if userns {
        let mut c = Command::new("unshare");
        c.args(["-rm", "--propagation", "private"]).arg(&exe);
        c
    } else {
        Command::new(&exe)
    };
    cmd.args(["--exact", name, "--nocapture", "--test-threads=1"]);
    if userns {
        cmd.env(IN_NAMESPACE, "1");
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    match cmd.output() {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout);
            assert!(
                text.contains("1 passed"),
                "the copy of {name} ran no test:\n{text}"
            );
            println!("{text}");
        }
        Ok(o) => panic!(
            "the copy of {name} failed ({}){}:\n{}\n{}",
            o.status,
            if userns {
                " (not root: it ran under `unshare -rm`)"
            } else {
                ""
            },
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => panic!(
            "this test mounts a tmpfs: run it as root, or install util-linux's `unshare` \
             and allow unprivileged user namespaces ({e})"
        ),
    }
}

/// Whether this process may mount; if not, runs `name` again under
/// `unshare -rm` and returns false (the copy did the work).
fn can_mount_here(name: &str, env: &[(&str, &str)]) -> bool {
    if is_root() || std::env::var_os(IN_NAMESPACE).is_some() {
        return true;
    }
    run_copy(name, true, env);
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journal_volume_full_stops_acks_reports_unhealthy_and_loses_nothing() {
    let name = "journal_volume_full_stops_acks_reports_unhealthy_and_loses_nothing";
    if can_mount_here(name, &[]) {
        scenario(true).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sled_failing_on_a_full_volume_is_reopened_and_loses_nothing() {
    let name = "sled_failing_on_a_full_volume_is_reopened_and_loses_nothing";
    if std::env::var(MIN_FREE_ENV).as_deref() != Ok("0") {
        // The daemon inherits the variable from a copy of this process.
        run_copy(name, false, &[(MIN_FREE_ENV, "0")]);
        return;
    }
    if can_mount_here(name, &[(MIN_FREE_ENV, "0")]) {
        scenario(false).await;
    }
}

/// `guarded`: the daemon's free-space check is on, so nothing may be
/// acknowledged once it reports the volume full.
async fn scenario(guarded: bool) {
    let cp = ControlPlane::start().await.unwrap();
    let admin = cp.admin_client();
    let _ = Api::<Namespace>::all(admin.clone())
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: ObjectMeta {
                    name: Some("cattle-system".into()),
                    ..ObjectMeta::default()
                },
                ..Namespace::default()
            },
        )
        .await;
    let api: Api<ConfigMap> = Api::namespaced(admin.clone(), "cattle-system");

    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let journal_dir = data.join("journal");
    let volume = Tmpfs::mount(&journal_dir, VOLUME_MB);
    let cfg = DaemonConfig::new(&data, cp.readonly_kubeconfig_path());
    let cfg_path = tmp.path().join("rewindd.toml");
    cfg.write(&cfg_path).unwrap();
    let mut daemon = Rewindd::spawn(
        &cfg_path,
        &data,
        &RunOptions {
            rust_log: Some("info".into()),
            ..RunOptions::default()
        },
    )
    .unwrap();

    // 1. Steady recording before the disk fills.
    let first: Vec<String> = (0..60).map(|i| format!("df-{i:03}")).collect();
    let mut accepted = write_all(&api, &first, 0).await;
    daemon
        .settle(Duration::from_secs(2), "before the disk fills")
        .await
        .unwrap();
    let before = daemon.status().unwrap();
    assert!(before.journal.healthy);
    let acked_before = before.journal.next_seq;

    // 2. Fill the journal volume and keep writing.
    let filler = volume.dir.join("filler");
    let filled = fill(&filler);
    assert!(filled > 0, "nothing could be written to the journal volume");
    let during: Vec<String> = (0..400).map(|i| format!("df-full-{i:03}")).collect();
    let t = Instant::now();
    let mut unhealthy = None;
    let mut batch: u32 = 0;
    while t.elapsed() < Duration::from_secs(120) {
        let from = (batch as usize * 20) % during.len();
        accepted.extend(write_all(&api, &during[from..][..20], 1 + batch).await);
        batch += 1;
        daemon.check_running().unwrap();
        if let Some(s) = daemon.status()
            && !s.journal.healthy
        {
            unhealthy = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let unhealthy = unhealthy.unwrap_or_else(|| {
        panic!(
            "the journal never reported unhealthy with its volume full; log:\n{}",
            daemon.log_tail(30)
        )
    });
    let why = unhealthy.journal.error.clone().unwrap_or_default();
    assert!(
        why.to_lowercase().contains("space"),
        "the reason names the full disk: {why:?}"
    );
    // Stays alive, stays unhealthy, acknowledges nothing while full.
    accepted.extend(write_all(&api, &during[..50], 99).await);
    tokio::time::sleep(Duration::from_secs(3)).await;
    daemon.check_running().unwrap();
    let still = daemon.status().unwrap();
    if guarded {
        assert!(!still.journal.healthy, "healthy again on a full disk");
        assert_eq!(
            still.journal.next_seq, unhealthy.journal.next_seq,
            "events acknowledged while the journal volume was full"
        );
        let (ok, text) = rewindd_status(&data);
        assert!(!ok, "`rewindd status` exits 0 on a full journal:\n{text}");
        assert!(
            text.to_lowercase().contains("space"),
            "`rewindd status` does not say why:\n{text}"
        );
    }

    // 3. Free the space: recording resumes by itself.
    std::fs::remove_file(&filler).unwrap();
    let t = Instant::now();
    while !daemon.status().is_some_and(|s| s.journal.healthy) {
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "the journal did not recover after space returned; log:\n{}",
            daemon.log_tail(30)
        );
        daemon.check_running().unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    accepted.extend(write_all(&api, &first[..10], 100).await);
    daemon
        .settle(Duration::from_secs(3), "after space returned")
        .await
        .unwrap();
    let after = daemon.status().unwrap();
    assert!(after.journal.next_seq > still.journal.next_seq || !guarded);
    assert!(after.journal.next_seq >= acked_before);
    let exit = daemon.terminate().unwrap();
    assert!(exit.success(), "rewindd exited with {exit}");

    // 4. Nothing lost, nothing twice, no corruption.
    let j = open_journal(&journal_dir);
    let records = check_log(&j);
    assert!(records >= acked_before - 1);
    let applied: HashSet<(String, String)> = j
        .records_from(1)
        .map(Result::unwrap)
        .filter(|r| r.kind == EventKind::Applied && r.rtype.resource == "configmaps")
        .map(|r| (r.name, r.resource_version))
        .collect();
    let lost: Vec<&(String, String)> = accepted.iter().filter(|w| !applied.contains(*w)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} accepted writes are not in the log, e.g. {:?}",
        lost.len(),
        accepted.len(),
        &lost[..lost.len().min(5)]
    );
    let set = preset("rancher").unwrap();
    let live = live_selected(&admin, &set).await;
    let diffs = differences(&journal_state(&j), &live);
    assert!(
        diffs.is_empty(),
        "journal differs from a fresh LIST:\n{}",
        diffs.join("\n")
    );
    println!(
        "disk full (guarded: {guarded}): {} writes accepted by the API, {records} records, {filled} filler bytes, unhealthy because {why:?}",
        accepted.len()
    );
    drop(j);
    drop(volume);
}
