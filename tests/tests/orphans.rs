//! A control plane whose owner was SIGKILLed (no Drop ran) is reaped by the
//! next `ControlPlane::start`, so a killed test cannot leave an apiserver
//! running for the rest of a CI run.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// Pids whose command line mentions `needle`.
fn users_of(needle: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        })
        .filter(|e| {
            std::fs::read(e.path().join("cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(needle))
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

#[tokio::test]
async fn next_start_reaps_a_killed_owners_control_plane() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_controlplane"))
        .args(["up", "--kubeconfig"])
        .arg(tmp.path().join("kc"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let dir = tokio::time::timeout(Duration::from_secs(180), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(d) = line.trim().strip_prefix("logs and data:") {
                return d.trim().to_string();
            }
        }
        panic!("controlplane exited early");
    })
    .await
    .unwrap();
    assert!(
        users_of(&dir).len() >= 2,
        "etcd and apiserver should run for {dir}"
    );

    // Kill the owner the hard way: no Drop, no signal handler.
    let pid = child.id().unwrap().to_string();
    assert!(
        Command::new("kill")
            .args(["-KILL", &pid])
            .status()
            .await
            .unwrap()
            .success()
    );
    child.wait().await.unwrap();
    assert!(
        !users_of(&dir).is_empty(),
        "children outlive a SIGKILLed owner"
    );

    let cp = rewind_tests::ControlPlane::start().await.unwrap();
    assert!(users_of(&dir).is_empty(), "orphans of {dir} still running");
    assert!(!std::path::Path::new(&dir).exists(), "{dir} not removed");
    drop(cp);
}
