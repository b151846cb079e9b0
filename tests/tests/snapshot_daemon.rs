//! rewindd's snapshots and segments against a recorded Rancher-like plane:
//!
//! - an on-demand snapshot through the admin socket while ingesting;
//! - every stored snapshot equals the journal's state at its seq, and the
//!   stored segments replay to the journal's final state;
//! - `/metrics` and `/readyz` answer;
//! - the real `rewindd` binary under a fake systemd: READY=1, watchdog
//!   pings, SIGHUP reloads, and SIGTERM during a snapshot exits 0 with
//!   STOPPING=1 and leaves a consistent store.
//!
//! Needs the local control plane (built on first use).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

mod daemon_support;

use std::path::Path;
use std::time::Duration;

use daemon_support::*;
use rewind_daemon::config::{Config, FileConfig, Settings};
use rewind_daemon::status::{read_status, status_path};
use rewind_format::state::State;
use rewind_format::{Limits, SegmentReader, SnapshotReader};
use rewind_restore::store::{Store, StoreConfig};
use rewind_tests::ControlPlane;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn clusters() -> usize {
    std::env::var("REWIND_TEST_CLUSTERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn config_text(data: &Path, kubeconfig: &Path, metrics_port: u16) -> String {
    format!(
        r#"data_dir = "{data}"

[cluster]
kubeconfig = "{kc}"

[record]
presets = ["rancher"]

[store]
kind = "local"
path = "{data}/store"

[compact]
seal_interval = "1s"
snapshot_schedule = ""
snapshot_after_events = 0

[retention]
keep_last = 10
point_in_time = "24h"

[service]
admin_socket = "{data}/rewindd.sock"
metrics_addr = "127.0.0.1:{metrics_port}"
"#,
        data = data.display(),
        kc = kubeconfig.display(),
    )
}

async fn http_get(port: u16, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let code = out.split_whitespace().nth(1).unwrap().parse().unwrap();
    (code, out)
}

async fn wait_for_socket(sock: &Path) {
    for i in 0..600 {
        if i % 50 == 49 {
            let log = sock.with_file_name("rewindd.log");
            eprintln!(
                "waiting for {}: {}",
                sock.display(),
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        if rewind_daemon::admin::client::call(sock, &rewind_daemon::admin::Request::Ping)
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("admin socket {} never answered", sock.display());
}

/// Checks the store against the journal: every listed file is intact, the
/// segments are contiguous from seq 1 to the journal's end and replay to
/// its state, and each snapshot equals the journal replayed to its seq.
async fn check_store_against_journal(data: &Path) -> (usize, usize) {
    let store = Store::open(&StoreConfig::Local {
        path: data.join("store"),
    })
    .await
    .unwrap();
    let j = open_journal(&data.join("journal"));
    let records: Vec<_> = j.records_from(1).map(Result::unwrap).collect();
    let last = j.next_seq() - 1;

    let segs = store.list_segments().await.unwrap();
    let mut replay = State::new("");
    let mut next = 1;
    for s in &segs {
        assert_eq!(s.first_seq, next, "segments are contiguous");
        let bytes = store.get_segment(s).await.unwrap();
        for e in SegmentReader::open(&bytes, None, Limits::default())
            .unwrap()
            .read_all()
            .unwrap()
        {
            replay.apply(&e);
        }
        next = s.last_seq + 1;
    }
    assert_eq!(next, last + 1, "every durable event was sealed and stored");
    let mut from_journal = State::new("");
    for r in &records {
        from_journal.apply(r);
    }
    assert_eq!(
        replay.objects, from_journal.objects,
        "segments replay to the journal's state"
    );
    // The journal's own state tree agrees too (same keys and versions).
    let js = journal_state(&j);
    assert_eq!(js.len(), from_journal.objects.len());

    let snaps = store.list_snapshots().await.unwrap();
    for s in &snaps {
        let bytes = store.get_snapshot(s).await.unwrap();
        let mut r = SnapshotReader::open(&bytes, None, Limits::default()).unwrap();
        let got = State::from_snapshot(&mut r).unwrap();
        let mut want = State::new("");
        for rec in records.iter().take_while(|r| r.seq <= s.seq) {
            want.apply(rec);
        }
        assert_eq!(got.seq, s.seq);
        assert_eq!(
            got.objects, want.objects,
            "snapshot {} equals the journal at seq {}",
            s.id, s.seq
        );
        assert_eq!(
            got.types, want.types,
            "and carries each type's resourceVersion"
        );
        assert_eq!(u64::try_from(got.objects.len()).unwrap(), s.objects);
    }
    (segs.len(), snaps.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_demand_snapshot_through_the_socket_while_ingesting() {
    let cp = ControlPlane::start().await.unwrap();
    let admin = cp.admin_client();
    let objects = load_plane(&admin, clusters()).await;
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let text = config_text(data.path(), cp.readonly_kubeconfig_path(), port);
    let settings = Settings {
        kubeconfig: Some(cp.readonly_kubeconfig_path().to_path_buf()),
        data_dir: Some(data.path().to_path_buf()),
        presets: Some(vec!["rancher".into()]),
        status_interval_ms: Some(200),
        ..Settings::default()
    };
    let config = Config::from_settings(&settings, &FileConfig::default()).unwrap();
    let service = rewind_daemon::service::Sections::parse(&text)
        .unwrap()
        .validate(data.path())
        .unwrap();
    let sock = data.path().join("rewindd.sock");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let daemon = tokio::spawn(rewind_daemon::service::run(config, None, service, async {
        let _ = stop_rx.await;
    }));
    wait_for_socket(&sock).await;
    let status = status_path(data.path());
    wait_settled(
        || read_status(&status).ok(),
        Duration::from_secs(2),
        "initial list",
    )
    .await;

    // Ingest while asking for a snapshot.
    let mut m = Mutator::new(admin.clone(), &objects);
    let mutator = tokio::spawn(async move { m.run(150).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let info = rewind_daemon::admin::client::snapshot(&sock, Some("during-ingest".into()), true)
        .await
        .unwrap();
    eprintln!("{}", rewind_daemon::admin::client::render(&info));
    assert!(info.stored, "--wait returns once stored");
    assert_eq!(info.label.as_deref(), Some("during-ingest"));
    assert!(
        info.objects > u64::try_from(objects.len() / 2).unwrap(),
        "{} objects",
        info.objects
    );
    assert!(
        !mutator.is_finished(),
        "the snapshot was taken while ingesting"
    );
    assert_eq!(mutator.await.unwrap(), 0);
    wait_settled(
        || read_status(&status).ok(),
        Duration::from_secs(2),
        "after the stream",
    )
    .await;
    let second = rewind_daemon::admin::client::snapshot(&sock, None, true)
        .await
        .unwrap();
    assert!(
        second.seq > info.seq,
        "ingestion went on during the first snapshot"
    );

    let (code, body) = http_get(port, "/metrics").await;
    assert_eq!(code, 200);
    assert!(body.contains("rewind_snapshots_total 2"), "{body}");
    assert!(
        body.contains("rewind_events_recorded_total{type="),
        "per-type events"
    );
    assert!(body.contains("rewind_watcher_state{"), "watcher states");
    assert_eq!(http_get(port, "/readyz").await.0, 200);
    assert_eq!(http_get(port, "/healthz").await.0, 200);

    stop_tx.send(()).unwrap();
    daemon.await.unwrap().unwrap();
    assert!(!sock.exists(), "the socket is removed on exit");
    // Not running any more: the client says so.
    let err = rewind_daemon::admin::client::snapshot(&sock, None, false)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not running"), "{err}");

    let (segs, snaps) = check_store_against_journal(data.path()).await;
    assert!(
        segs >= 2 && snaps >= 2,
        "{segs} segments, {snaps} snapshots"
    );
    let store = Store::open(&StoreConfig::Local {
        path: data.path().join("store"),
    })
    .await
    .unwrap();
    let labelled = store
        .list_snapshots()
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.label.is_some())
        .unwrap();
    assert_eq!(labelled.seq, info.seq);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_snapshot_exits_zero_and_leaves_a_consistent_store() {
    let bin = rewindd_bin();
    let cp = ControlPlane::start().await.unwrap();
    let admin = cp.admin_client();
    let objects = load_plane(&admin, clusters()).await;
    let data = tempfile::tempdir().unwrap();
    let cfg = data.path().join("rewindd.toml");
    std::fs::write(
        &cfg,
        config_text(data.path(), cp.readonly_kubeconfig_path(), free_port()),
    )
    .unwrap();
    let sock = data.path().join("rewindd.sock");
    let log = std::fs::File::create(data.path().join("rewindd.log")).unwrap();
    // Play systemd: a notify socket and a watchdog.
    let notify_path = data.path().join("notify.sock");
    let notify = tokio::net::UnixDatagram::bind(&notify_path).unwrap();
    let mut child = tokio::process::Command::new(&bin)
        .env("NOTIFY_SOCKET", &notify_path)
        .env("WATCHDOG_USEC", "400000")
        .arg("--config")
        .arg(&cfg)
        .arg("--status-interval-ms")
        .arg("200")
        .arg("run")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap().to_string();
    let kill = |sig: &str| {
        assert!(
            std::process::Command::new("kill")
                .args([sig, &pid])
                .status()
                .unwrap()
                .success()
        );
    };
    let mut seen: Vec<String> = Vec::new();
    let mut buf = [0u8; 256];
    let mut recv = async |seen: &mut Vec<String>, want: &str| {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while !seen.iter().any(|m| m == want) {
            let n = tokio::time::timeout_at(deadline, notify.recv(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("no {want} from rewindd; got {seen:?}"))
                .unwrap();
            seen.push(String::from_utf8_lossy(&buf[..n]).trim().to_owned());
        }
    };
    wait_for_socket(&sock).await;
    recv(&mut seen, "READY=1").await;
    recv(&mut seen, "WATCHDOG=1").await;
    let status = status_path(data.path());
    wait_settled(
        || read_status(&status).ok(),
        Duration::from_secs(1),
        "initial list",
    )
    .await;

    // SIGHUP reloads; the daemon stays up and says it is ready again.
    kill("-HUP");
    recv(&mut seen, "RELOADING=1").await;
    seen.retain(|m| m != "READY=1");
    recv(&mut seen, "READY=1").await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "SIGHUP must not stop rewindd"
    );

    let mut m = Mutator::new(admin.clone(), &objects);
    assert_eq!(m.run(60).await, 0);

    // Ask for a snapshot and send SIGTERM while it is being made.
    let sock2 = sock.clone();
    let request = tokio::spawn(async move {
        rewind_daemon::admin::client::snapshot(&sock2, Some("interrupted".into()), true).await
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    kill("-TERM");
    let code = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .unwrap()
        .unwrap();
    let log = std::fs::read_to_string(data.path().join("rewindd.log")).unwrap();
    assert!(code.success(), "exit {code:?}\n{log}");
    recv(&mut seen, "STOPPING=1").await;
    // The request either completed or saw the daemon go away; never a hang.
    let answered = tokio::time::timeout(Duration::from_secs(5), request)
        .await
        .unwrap()
        .unwrap();
    eprintln!(
        "snapshot request during SIGTERM: {:?}",
        answered.as_ref().map(|s| s.seq)
    );

    let (segs, snaps) = check_store_against_journal(data.path()).await;
    eprintln!(
        "after SIGTERM: {segs} segments, {snaps} snapshots, all consistent; notify: {seen:?}"
    );
    assert!(segs >= 1);
}
