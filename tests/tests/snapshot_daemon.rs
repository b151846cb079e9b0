//! rewindd's snapshots and segments against a recorded Rancher-like plane:
//!
//! - an on-demand snapshot through the admin socket while ingesting;
//! - every stored snapshot equals the journal's state at its seq, and the
//!   stored segments replay to the journal's final state;
//! - `/metrics` and `/readyz` answer;
//! - objects left in the log stay readable once the journal trims it;
//! - the real `rewindd` binary under a fake systemd: READY=1, watchdog
//!   pings, SIGHUP reloads, and SIGTERM during a snapshot exits 0 with
//!   STOPPING=1 and leaves a consistent store.
//!
//! Needs the local control plane (built on first use).

mod daemon_support;

use std::path::Path;
use std::time::Duration;

use daemon_support::*;
use rewind_daemon::config::{Config, Settings, parse_file};
use rewind_daemon::status::{read_status, status_path};
use rewind_format::state::State;
use rewind_format::{Limits, SegmentReader, SnapshotReader};
use rewind_history::store::{Store, StoreConfig};
use rewind_tests::ControlPlane;
use rewind_tests::daemon::DaemonConfig;
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
        path: rewind_tests::daemon::recorded_local_store(data),
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

/// rewindd run in-process against `cp` with the drill's configuration
/// (local store, 1 s seals), as `edit` changes it; returned once its
/// initial list has settled.
struct InProcess {
    data: tempfile::TempDir,
    port: u16,
    sock: std::path::PathBuf,
    status: std::path::PathBuf,
    stop: tokio::sync::oneshot::Sender<()>,
    daemon: tokio::task::JoinHandle<Result<(), rewind_daemon::service::ServiceError>>,
}

impl InProcess {
    async fn start(cp: &ControlPlane, edit: impl FnOnce(String) -> String) -> Self {
        let data = tempfile::tempdir().unwrap();
        let port = free_port();
        let text =
            edit(DaemonConfig::drill(data.path(), cp.readonly_kubeconfig_path(), port).text());
        let settings = Settings {
            kubeconfig: Some(cp.readonly_kubeconfig_path().to_path_buf()),
            data_dir: Some(data.path().to_path_buf()),
            presets: Some(vec!["rancher".into()]),
            status_interval_ms: Some(200),
            ..Settings::default()
        };
        let file = parse_file(Path::new("rewindd.toml"), &text).unwrap();
        let config = Config::from_settings(&settings, &file).unwrap();
        let sock = data.path().join("rewindd.sock");
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let daemon = tokio::spawn(rewind_daemon::service::run(
            config,
            settings.clone(),
            async {
                let _ = stop_rx.await;
            },
        ));
        wait_for_socket(&sock).await;
        let status = status_path(data.path());
        wait_settled(
            || read_status(&status).ok(),
            Duration::from_secs(2),
            "initial list",
        )
        .await;
        Self {
            data,
            port,
            sock,
            status,
            stop,
            daemon,
        }
    }

    /// Stops the daemon and waits for a clean exit.
    async fn stop(self) -> tempfile::TempDir {
        self.stop.send(()).unwrap();
        self.daemon.await.unwrap().unwrap();
        self.data
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_demand_snapshot_through_the_socket_while_ingesting() {
    let cp = ControlPlane::start().await.unwrap();
    let admin = cp.admin_client();
    let objects = load_plane(&admin, clusters()).await;
    let d = InProcess::start(&cp, |text| text).await;
    let (port, sock, status) = (d.port, d.sock.clone(), d.status.clone());

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

    let data = d.stop().await;
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
        path: rewind_tests::daemon::recorded_local_store(data.path()),
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

/// Journal layout 4 keeps most objects only in the log; the compactor
/// copies them into the state before it trims their blocks. With a local
/// window of 0 s every shipped segment's blocks leave the journal at once:
/// after a first sync and a stream of changes, the journal's state (objects
/// read from the log, or copied in by a trim) must still equal a fresh LIST,
/// content included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_stay_readable_after_the_journal_trims_their_blocks() {
    let cp = ControlPlane::start().await.unwrap();
    let admin = cp.admin_client();
    let objects = load_plane(&admin, clusters()).await;
    let d = InProcess::start(&cp, |text| {
        let text = text.replace("[compact]\n", "[compact]\nlocal_window = \"0s\"\n");
        assert!(text.contains("local_window = \"0s\""));
        text
    })
    .await;
    let (port, status) = (d.port, d.status.clone());
    let listed = read_status(&status).unwrap().journal.next_seq;
    let mut m = Mutator::new(admin.clone(), &objects);
    assert_eq!(m.run(150).await, 0);
    wait_settled(
        || read_status(&status).ok(),
        Duration::from_secs(2),
        "after the stream",
    )
    .await;
    // Wait for a trim past the first sync: every object listed then and not
    // changed since had its block dropped.
    let mut trimmed = 0.0;
    for _ in 0..120 {
        trimmed = one(&scrape(port).await, "rewind_journal_trimmed_below_seq");
        #[expect(clippy::cast_precision_loss, reason = "small test seqs")]
        if trimmed > listed as f64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    #[expect(clippy::cast_precision_loss, reason = "small test seqs")]
    let past = trimmed > listed as f64;
    assert!(
        past,
        "trimmed below {trimmed}, first sync ended at {listed}"
    );
    let data = d.stop().await;

    let (j, state, _) = check_state(&admin, "rancher", data.path()).await;
    let first_kept = j.records_from(1).next().unwrap().unwrap().seq;
    assert!(
        first_kept > listed / 2,
        "the log starts at {first_kept}: most of the first sync's blocks are gone"
    );
    assert!(state.len() > objects.len() / 2, "{} objects", state.len());
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
        DaemonConfig::drill(data.path(), cp.readonly_kubeconfig_path(), free_port()).text(),
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

/// `/metrics` of a live rewindd as `(name, labels) -> value`.
async fn scrape(port: u16) -> Vec<(String, String, f64)> {
    let (code, body) = http_get(port, "/metrics").await;
    assert_eq!(code, 200, "{body}");
    let text = body.split("\r\n\r\n").nth(1).unwrap_or_default();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            (name.to_owned(), labels.to_owned(), value.parse().unwrap())
        })
        .collect()
}

fn series<'a>(m: &'a [(String, String, f64)], name: &str) -> Vec<(&'a str, f64)> {
    m.iter()
        .filter(|(n, _, _)| n == name)
        .map(|(_, l, v)| (l.as_str(), *v))
        .collect()
}

fn one(m: &[(String, String, f64)], name: &str) -> f64 {
    let s = series(m, name);
    assert_eq!(s.len(), 1, "exactly one {name}: {s:?}");
    s[0].1
}

fn type_label(labels: &str) -> String {
    labels
        .split(',')
        .find_map(|kv| kv.strip_prefix("type=\""))
        .map(|v| v.trim_end_matches('"').to_owned())
        .unwrap()
}

async fn wait_log(log: &Path, needle: &str, from: usize) -> String {
    for _ in 0..300 {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.get(from..).is_some_and(|t| t.contains(needle)) {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "no `{needle}` in the log:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

/// The metrics, scraped from the real `rewindd` binary, each with a
/// sane value; a relist (410 after an etcd compaction and an apiserver
/// restart) is counted; then SIGHUP reloads: a bad file is refused and the
/// running configuration kept; a good one is applied while running (a new
/// snapshot threshold takes snapshots, a wider resource set adds watchers)
/// and a changed store is named as needing a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_metrics_relists_and_sighup_reload_of_the_real_daemon() {
    let bin = rewindd_bin();
    let cp = ControlPlane::start().await.unwrap();
    let admin = cp.admin_client();
    let objects = load_plane(&admin, clusters().min(10)).await;
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = data.path().join("rewindd.toml");
    let base = DaemonConfig::drill(data.path(), cp.readonly_kubeconfig_path(), port).text();
    std::fs::write(&cfg, &base).unwrap();
    let sock = data.path().join("rewindd.sock");
    let log_path = data.path().join("rewindd.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let started_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let mut child = tokio::process::Command::new(&bin)
        .arg("--config")
        .arg(&cfg)
        .arg("--status-interval-ms")
        .arg("200")
        .arg("run")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap().to_string();
    let hup = || {
        assert!(
            std::process::Command::new("kill")
                .args(["-HUP", &pid])
                .status()
                .unwrap()
                .success()
        );
    };
    wait_for_socket(&sock).await;
    let status = status_path(data.path());
    wait_settled(
        || read_status(&status).ok(),
        Duration::from_secs(1),
        "initial list",
    )
    .await;
    let snap = rewind_daemon::admin::client::snapshot(&sock, None, true)
        .await
        .unwrap();

    // Every metric the issue lists, with a sane value.
    let m = scrape(port).await;
    let events = series(&m, "rewind_events_recorded_total");
    let types: std::collections::BTreeSet<String> =
        events.iter().map(|(l, _)| type_label(l)).collect();
    assert!(types.len() >= 3, "types with events: {types:?}");
    let recorded: f64 = events.iter().map(|(_, v)| v).sum();
    assert!(
        recorded >= f64::from(u32::try_from(objects.len()).unwrap()) * 0.5,
        "{recorded} events for {} objects",
        objects.len()
    );
    for name in ["rewind_watch_lag_seconds", "rewind_relists_total"] {
        let s = series(&m, name);
        let seen: std::collections::BTreeSet<String> =
            s.iter().map(|(l, _)| type_label(l)).collect();
        assert_eq!(seen, types, "{name} for every type");
        for (l, v) in s {
            assert!((0.0..600.0).contains(&v), "{name}{{{l}}} = {v}");
        }
    }
    assert!(
        series(&m, "rewind_relists_total")
            .iter()
            .all(|(_, v)| *v == 0.0),
        "no relist before any fault"
    );
    let states = series(&m, "rewind_watcher_state");
    for t in &types {
        let of: Vec<_> = states.iter().filter(|(l, _)| type_label(l) == *t).collect();
        assert_eq!(of.len(), 5, "five states of {t}");
        assert_eq!(
            of.iter().map(|(_, v)| v).sum::<f64>(),
            1.0,
            "one state of {t}"
        );
        assert!(
            of.iter()
                .any(|(l, v)| *v == 1.0 && l.contains("state=\"watching\"")),
            "{t}: {of:?}"
        );
    }
    let now_s = started_s + 3600.0;
    let t = one(&m, "rewind_last_snapshot_timestamp_seconds");
    assert!(t > started_s - 60.0 && t < now_s, "last snapshot at {t}");
    assert_eq!(one(&m, "rewind_last_snapshot_bytes"), snap.size as f64);
    assert_eq!(one(&m, "rewind_last_snapshot_objects"), snap.objects as f64);
    let d = one(&m, "rewind_last_snapshot_duration_seconds");
    assert!((0.0..120.0).contains(&d), "snapshot took {d} s");
    assert_eq!(one(&m, "rewind_store_errors_total"), 0.0);
    assert!(one(&m, "rewind_journal_bytes") > 4096.0);
    assert_eq!(one(&m, "rewind_journal_healthy"), 1.0);
    assert!(one(&m, "rewind_snapshots_total") >= 1.0);
    assert_eq!(http_get(port, "/healthz").await.0, 200);
    assert_eq!(http_get(port, "/readyz").await.0, 200);

    // A relist: changes after the watchers' resourceVersions, etcd compacted
    // past them, and every watch broken: the re-watch gets 410 and relists.
    let mut mutator = Mutator::new(admin.clone(), &objects);
    assert_eq!(mutator.run(20).await, 0);
    cp.compact_etcd_now().await.unwrap();
    cp.restart_apiserver().await.unwrap();
    let mut relists = 0.0;
    for _ in 0..240 {
        relists = series(&scrape(port).await, "rewind_relists_total")
            .iter()
            .map(|(_, v)| v)
            .sum();
        if relists > 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(relists > 0.0, "a 410 relist is counted");

    // SIGHUP with a bad file: refused, the running configuration stays.
    let mark = std::fs::read_to_string(&log_path).unwrap().len();
    std::fs::write(
        &cfg,
        base.replace("seal_interval = \"1s\"", "seal_interval = \"soon\""),
    )
    .unwrap();
    hup();
    let text = wait_log(&log_path, "keeping the running configuration", mark).await;
    assert!(
        text[mark..].contains("compact.seal_interval"),
        "the bad setting is named"
    );
    assert!(
        child.try_wait().unwrap().is_none(),
        "a bad reload does not stop rewindd"
    );

    // SIGHUP with a good file: a snapshot threshold, a wider resource set,
    // an ignore rule (applied now) and another store (needs a restart).
    let before = read_status(&status).unwrap().types.len();
    let snapshots_before = one(&scrape(port).await, "rewind_snapshots_total");
    let good = base
        .replace("snapshot_after_events = 0", "snapshot_after_events = 5")
        .replace("presets = [\"rancher\"]", "presets = [\"everything\"]\n\n[[record.ignore]]\ntype = \"configmaps\"\nstatus_only = true")
        .replace(&format!("path = \"{}/store\"", data.path().display()), &format!("path = \"{}/other-store\"", data.path().display()));
    assert_ne!(good, base);
    let mark = std::fs::read_to_string(&log_path).unwrap().len();
    std::fs::write(&cfg, &good).unwrap();
    hup();
    let text = wait_log(&log_path, "configuration reloaded", mark).await;
    let tail = &text[mark..];
    for applied in ["compact", "record.resource_sets", "record.ignore"] {
        assert!(
            tail.contains(&format!("\"{applied}\"")),
            "{applied} applied: {tail}"
        );
    }
    assert!(tail.contains("only after a restart"), "{tail}");
    assert!(
        tail.contains("\"store\""),
        "the store change needs a restart: {tail}"
    );
    // The wider set adds watchers; the threshold takes snapshots by itself.
    assert_eq!(mutator.run(30).await, 0);
    let mut after = before;
    let mut snapshots = snapshots_before;
    for _ in 0..240 {
        after = read_status(&status).map(|s| s.types.len()).unwrap_or(0);
        snapshots = one(&scrape(port).await, "rewind_snapshots_total");
        if after > before && snapshots > snapshots_before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        after > before,
        "the everything preset adds types: {before} -> {after}"
    );
    assert!(
        snapshots > snapshots_before,
        "the reloaded threshold takes snapshots: {snapshots_before} -> {snapshots}"
    );
    // The store was not switched: files still go to the first one.
    assert!(!data.path().join("other-store").exists());

    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let code = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(code.success(), "exit {code:?}");
}
