//! Ready means recording. The real `rewindd`, each case against the real
//! apiserver of the local control plane (or, for "unreachable", a loopback
//! port nothing listens on), asked the way an operator and a probe ask:
//! `/readyz` (status and body) and `rewindd status` (exit code and the
//! reason line).
//!
//! - no apiserver at start: not ready, "apiserver unreachable: …", and the
//!   daemon stays up retrying (`/healthz` 200: no restart storm);
//! - a kubeconfig whose CA did not sign the apiserver's certificate: not
//!   ready, "TLS: …";
//! - an `APIService` in the record set whose backend Service has no
//!   endpoints: not ready, the group named;
//! - an identity whose RBAC forbids one selected type: not ready, the type
//!   named;
//! - the same record set with a read-only identity: ready, `rewindd status`
//!   one `ready:` line and exit 0;
//! - started as systemd starts it (`NOTIFY_SOCKET`, `WATCHDOG_USEC`) with
//!   the apiserver unreachable: `READY=1`, then `WATCHDOG=1` every half
//!   period all along (no restart storm while the apiserver is down).

use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::rbac::v1::PolicyRule;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use kube::api::{Api, PostParams};
use rewind_tests::ControlPlane;
use rewind_tests::daemon::{DaemonConfig, Rewindd, RunOptions, free_port};
use serde_json::json;

/// Configmaps always; `extra` adds selectors (TOML).
fn config(data: &Path, kubeconfig: &Path, extra: &str) -> DaemonConfig {
    let mut cfg = DaemonConfig::new(data, kubeconfig)
        .metrics_addr(&format!("127.0.0.1:{}", free_port().unwrap()));
    cfg.presets = Vec::new();
    cfg.extra =
        format!("[[record.selectors]]\napiVersion = \"v1\"\nkinds = [\"configmaps\"]\n\n{extra}");
    cfg
}

fn start(cfg: &DaemonConfig) -> Rewindd {
    start_with(cfg, Vec::new())
}

fn start_with(cfg: &DaemonConfig, env: Vec<(String, String)>) -> Rewindd {
    cfg.start(&RunOptions {
        rust_log: Some("info".into()),
        env,
        ..RunOptions::default()
    })
    .unwrap()
}

/// A kubeconfig for a loopback port nothing listens on.
fn dead_kubeconfig(dir: &Path) -> std::path::PathBuf {
    let port = free_port().unwrap();
    let kc = dir.join("dead.kubeconfig");
    let ca = wrong_ca_pem(&dir.join("pki"));
    std::fs::write(
        &kc,
        rewind_restore::localplane::render_kubeconfig(
            &format!("https://127.0.0.1:{port}"),
            &ca,
            "nobody",
            "token",
        ),
    )
    .unwrap();
    kc
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(240)
}

/// Polls `/readyz` until `want(code, body)`; returns what it answered.
async fn readyz_until(
    d: &mut Rewindd,
    what: &str,
    want: impl Fn(u16, &str) -> bool,
) -> (u16, String) {
    let until = deadline();
    loop {
        d.check_running().unwrap();
        let got = d.http_get("/readyz").await;
        if let Ok((code, body)) = &got
            && want(*code, body)
        {
            return (*code, body.clone());
        }
        assert!(
            Instant::now() < until,
            "{what}: /readyz last answered {got:?}\nlog:\n{}",
            d.log_tail(30)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Polls `rewindd status` until `want(exit code, stdout)`.
async fn status_until(
    d: &mut Rewindd,
    what: &str,
    want: impl Fn(Option<i32>, &str) -> bool,
) -> (Option<i32>, String) {
    let until = deadline();
    loop {
        d.check_running().unwrap();
        let (code, out) = d.status_exit().await.unwrap();
        if want(code, &out) {
            return (code, out);
        }
        assert!(
            Instant::now() < until,
            "{what}: rewindd status last exited {code:?}:\n{out}\nlog:\n{}",
            d.log_tail(30)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Asserts the daemon is not ready because of a problem whose line starts
/// with `prefix` and contains every one of `needles`, in both `/readyz` and
/// `rewindd status`.
async fn assert_not_ready(d: &mut Rewindd, prefix: &str, needles: &[&str]) {
    let line_matches = |l: &str| {
        l.strip_prefix("not ready: ")
            .is_some_and(|p| p.starts_with(prefix) && needles.iter().all(|n| p.contains(n)))
    };
    let (code, body) = readyz_until(d, prefix, |_, body| body.lines().any(line_matches)).await;
    eprintln!("/readyz {code}:\n{body}");
    assert_eq!(code, 503, "/readyz body:\n{body}");
    let (code, out) = status_until(d, prefix, |_, out| out.lines().any(line_matches)).await;
    eprintln!("rewindd status exited {code:?}:\n{out}");
    assert_eq!(code, Some(1), "rewindd status:\n{out}");
    assert!(
        out.lines().all(|l| l.starts_with("not ready: ")),
        "one line per problem:\n{out}"
    );
}

fn wrong_ca_pem(dir: &Path) -> String {
    std::fs::create_dir_all(dir).unwrap();
    let pki = rewind_restore::localplane::pki::generate(dir, "t,u,1\n").unwrap();
    pki.ca_pem
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_unreachable_apiserver_at_start_is_not_ready() {
    let dir = tempfile::tempdir().unwrap();
    let kc = dead_kubeconfig(dir.path());
    let cfg = config(&dir.path().join("data"), &kc, "");
    let mut d = start(&cfg);
    assert_not_ready(&mut d, "apiserver unreachable: ", &["onnection refused"]).await;
    // It keeps retrying rather than exiting, and stays live: a supervisor
    // must not restart it while the apiserver is merely down.
    tokio::time::sleep(Duration::from_secs(3)).await;
    d.check_running().unwrap();
    assert_eq!(d.http_get("/healthz").await.unwrap().0, 200);
    assert_not_ready(&mut d, "apiserver unreachable: ", &[]).await;
    let s = d.status().unwrap();
    assert!(s.types.is_empty(), "no type is watched: {:?}", s.types);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_tls_failure_is_not_ready() {
    let cp = ControlPlane::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("wrong-ca.kubeconfig");
    let ca = wrong_ca_pem(&dir.path().join("pki"));
    std::fs::write(
        &kc,
        rewind_restore::localplane::render_kubeconfig(&cp.apiserver_url(), &ca, "x", "x"),
    )
    .unwrap();
    let cfg = config(&dir.path().join("data"), &kc, "");
    let mut d = start(&cfg);
    assert_not_ready(&mut d, "TLS: ", &[]).await;
    let (_, body) = d.http_get("/readyz").await.unwrap();
    assert!(
        !body.contains("apiserver unreachable"),
        "a TLS failure is named as such:\n{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_apiservice_with_down_backend_names_the_group() {
    let cp = ControlPlane::start().await.unwrap();
    let admin = cp.admin_client();
    // A Service without a selector has no endpoints: the aggregator cannot
    // reach the API behind it, and answers 503 for its group version.
    let svc: Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "down-backend", "namespace": "default"},
        "spec": {"ports": [{"port": 443, "protocol": "TCP"}]}
    }))
    .unwrap();
    Api::<Service>::namespaced(admin.clone(), "default")
        .create(&PostParams::default(), &svc)
        .await
        .unwrap();
    let apisvc: APIService = serde_json::from_value(json!({
        "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
        "metadata": {"name": "v1.health.rewind.test"},
        "spec": {
            "group": "health.rewind.test", "version": "v1",
            "service": {"name": "down-backend", "namespace": "default", "port": 443},
            "insecureSkipTLSVerify": true,
            "groupPriorityMinimum": 1000, "versionPriority": 15
        }
    }))
    .unwrap();
    Api::<APIService>::all(admin.clone())
        .create(&PostParams::default(), &apisvc)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        &dir.path().join("data"),
        cp.readonly_kubeconfig_path(),
        "[[record.selectors]]\napiVersion = \"health.rewind.test/v1\"\n",
    );
    let mut d = start(&cfg);
    assert_not_ready(
        &mut d,
        "discovery of group health.rewind.test failing: ",
        &["health.rewind.test/v1"],
    )
    .await;
    // The rest records: configmaps listed and watching.
    let s = d.status().unwrap();
    assert!(
        s.types.get("configmaps").is_some_and(|t| t.listed),
        "{:?}",
        s.types
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_rbac_forbidding_one_type_names_it() {
    let cp = ControlPlane::start().await.unwrap();
    // Configmaps and namespaces (the cluster id) readable; secrets not.
    let id = cp
        .create_identity(
            "daemon-user",
            vec![PolicyRule {
                api_groups: Some(vec![String::new()]),
                resources: Some(vec!["configmaps".into(), "namespaces".into()]),
                verbs: vec!["get".into(), "list".into(), "watch".into()],
                ..PolicyRule::default()
            }],
        )
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        &dir.path().join("data"),
        &id.kubeconfig,
        "[[record.selectors]]\napiVersion = \"v1\"\nkinds = [\"secrets\"]\n",
    );
    let mut d = start(&cfg);
    assert_not_ready(&mut d, "type secrets: watch failing: ", &["forbidden"]).await;
    let (_, body) = d.http_get("/readyz").await.unwrap();
    assert!(
        !body.contains("type configmaps"),
        "only the forbidden type is named:\n{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readonly_identity_becomes_ready() {
    let cp = ControlPlane::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        &dir.path().join("data"),
        cp.readonly_kubeconfig_path(),
        "[[record.selectors]]\napiVersion = \"v1\"\nkinds = [\"secrets\"]\n",
    );
    let mut d = start(&cfg);
    let (code, body) = readyz_until(&mut d, "ready", |code, _| code == 200).await;
    assert_eq!((code, body.as_str()), (200, "ready\n"));
    let (code, out) = status_until(&mut d, "ready", |code, _| code == Some(0)).await;
    assert_eq!(code, Some(0));
    assert_eq!(out.lines().count(), 1, "one summary line:\n{out}");
    assert!(out.starts_with("ready: recording 2 types"), "{out}");
    assert_eq!(d.http_get("/healthz").await.unwrap(), (200, "ok\n".into()));
    let s = d.status().unwrap();
    assert!(s.types.values().all(|t| t.listed), "{:?}", s.types);
    assert!(s.journal.writer_beat_ms.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_watchdog_stays_fed_while_the_apiserver_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let kc = dead_kubeconfig(dir.path());
    let sock_path = dir.path().join("notify.sock");
    let sock = tokio::net::UnixDatagram::bind(&sock_path).unwrap();
    let cfg = config(&dir.path().join("data"), &kc, "");
    // A 1 s watchdog: rewindd pings every 500 ms while it should.
    let mut d = start_with(
        &cfg,
        vec![
            ("NOTIFY_SOCKET".into(), sock_path.display().to_string()),
            ("WATCHDOG_USEC".into(), "1000000".into()),
        ],
    );
    assert_not_ready(&mut d, "apiserver unreachable: ", &[]).await;
    let mut ready = false;
    let mut buf = vec![0u8; 4096];
    // What was sent so far (READY=1 first); then count fresh pings only.
    while let Ok(n) = sock.try_recv(&mut buf) {
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        ready |= msg.lines().any(|l| l == "READY=1");
    }
    let mut pings = 0;
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(200), sock.recv(&mut buf)).await
        else {
            continue;
        };
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        ready |= msg.lines().any(|l| l == "READY=1");
        pings += msg.lines().filter(|l| *l == "WATCHDOG=1").count();
    }
    d.check_running().unwrap();
    assert!(ready, "READY=1 was sent");
    assert!(
        pings >= 6,
        "the watchdog is fed while the apiserver is down: {pings} pings in 5 s"
    );
    assert_not_ready(&mut d, "apiserver unreachable: ", &[]).await;
}
