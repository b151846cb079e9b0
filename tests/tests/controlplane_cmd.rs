//! `controlplane up` writes kubeconfigs that kubectl uses, and stops on SIGTERM.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

async fn kubectl(
    kubectl: &std::path::Path,
    kubeconfig: &std::path::Path,
    args: &[&str],
) -> (bool, String) {
    let out = Command::new(kubectl)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test]
async fn controlplane_up_serves_kubectl_and_stops_on_sigterm() {
    let bins = tokio::task::spawn_blocking(rewind_tests::controlplane::locate_binaries)
        .await
        .unwrap()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    // Its stderr goes to a file, shown when it exits early.
    let err_log = dir.path().join("controlplane.stderr");
    let err_file = std::fs::File::create(&err_log).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_controlplane"))
        .args(["up", "--kubeconfig"])
        .arg(&kc)
        .args(["--rancher-clusters", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::from(err_file))
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = String::new();
    tokio::time::timeout(Duration::from_secs(180), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            printed.push_str(&line);
            printed.push('\n');
            if line.contains("Ctrl-C") {
                return;
            }
        }
        panic!(
            "controlplane exited early:\n{printed}\nits stderr:\n{}",
            std::fs::read_to_string(&err_log).unwrap_or_default()
        );
    })
    .await
    .expect("controlplane up becomes ready");
    assert!(printed.contains("admin kubeconfig"), "{printed}");

    let (ok, ns) = kubectl(&bins.kubectl, &kc, &["get", "ns", "-o", "name"]).await;
    assert!(ok, "{ns}");
    assert!(
        ns.contains("namespace/default") && ns.contains("namespace/fleet-default"),
        "{ns}"
    );
    let (ok, crds) = kubectl(&bins.kubectl, &kc, &["get", "crds"]).await;
    assert!(ok, "{crds}");
    assert!(
        crds.contains("clusters.management.cattle.io")
            && crds.contains("projects.management.cattle.io"),
        "{crds}"
    );
    let (ok, clusters) = kubectl(
        &bins.kubectl,
        &kc,
        &["get", "clusters.management.cattle.io", "-o", "name"],
    )
    .await;
    assert!(ok, "{clusters}");
    assert_eq!(clusters.lines().count(), 2, "{clusters}");

    // The read-only kubeconfig beside it reads but may not write.
    let ro = dir.path().join("kubeconfig.readonly");
    let (ok, out) = kubectl(
        &bins.kubectl,
        &ro,
        &["get", "clusters.management.cattle.io"],
    )
    .await;
    assert!(ok, "{out}");
    let (ok, out) = kubectl(
        &bins.kubectl,
        &ro,
        &["create", "configmap", "x", "-n", "default"],
    )
    .await;
    assert!(!ok && out.contains("forbidden"), "{out}");

    let pid = child.id().unwrap().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("stops on SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");
    assert!(!kc.exists(), "kubeconfig left behind");
}
