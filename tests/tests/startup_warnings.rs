//! rewindd warns at start about settings that are valid but weaken what it
//! protects: shipping to S3 without encryption recipients (every Secret
//! leaves the host readable), and a kubeconfig whose cluster sets
//! `insecure-skip-tls-verify: true` (the apiserver is not authenticated).
//!
//! Runs the real `rewindd` binary; the warnings come from the configuration
//! alone, before the daemon reaches the cluster or the store, so neither
//! needs to exist.

use std::path::Path;
use std::time::{Duration, Instant};

use rewind_tests::daemon::{DaemonConfig, Rewindd, RunOptions, StoreSpec};

const KUBECONFIG: &str = "\
apiVersion: v1
kind: Config
clusters:
- name: careful
  cluster:
    server: https://127.0.0.1:1
- name: trusting
  cluster:
    server: https://127.0.0.1:1
    insecure-skip-tls-verify: true
contexts:
- name: careful
  context:
    cluster: careful
    user: u
- name: trusting
  context:
    cluster: trusting
    user: u
current-context: trusting
users:
- name: u
  user:
    token: t
";

fn config(dir: &Path, store: StoreSpec) -> std::path::PathBuf {
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, KUBECONFIG).unwrap();
    let mut cfg = DaemonConfig::new(dir.join("data"), &kubeconfig);
    cfg.store = store;
    let path = dir.join("rewindd.toml");
    cfg.write(&path).unwrap();
    path
}

/// The daemon's log once it holds every line of `want`, or after 60 s.
async fn log_with(daemon: &mut Rewindd, want: &[&str]) -> String {
    let t = Instant::now();
    loop {
        let log = std::fs::read_to_string(&daemon.log).unwrap_or_default();
        if want.iter().all(|w| log.contains(w)) || t.elapsed() > Duration::from_secs(60) {
            return log;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_without_recipients_and_an_insecure_kubeconfig_are_warned_about_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let credentials = tmp.path().join("credentials");
    std::fs::write(&credentials, "access_key_id = a\nsecret_access_key = b\n").unwrap();
    let cfg = config(
        tmp.path(),
        StoreSpec::S3 {
            endpoint: "http://127.0.0.1:1".into(),
            bucket: "b".into(),
            prefix: "p".into(),
            credentials_file: credentials,
        },
    );
    let mut daemon =
        Rewindd::spawn(&cfg, &tmp.path().join("data"), &RunOptions::default()).unwrap();
    let want = [
        "shipping to S3 without encryption recipients",
        "insecure-skip-tls-verify",
    ];
    let log = log_with(&mut daemon, &want).await;
    let _ = daemon.kill();
    for w in want {
        let line = log
            .lines()
            .find(|l| l.contains(w))
            .unwrap_or_else(|| panic!("no warning containing {w:?}; log:\n{log}"));
        assert!(line.contains("WARN"), "not a warning: {line}");
    }
    let tls = log
        .lines()
        .find(|l| l.contains("insecure-skip-tls-verify"))
        .unwrap();
    assert!(
        tls.contains("trusting"),
        "the warning names the cluster: {tls}"
    );
}
