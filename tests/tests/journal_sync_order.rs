//! The journal's files reach the disk before rewindd acknowledges an event.
//!
//! The real `rewindd` records the real local control plane under `strace
//! -f`, which logs every `pwrite64`, `sync_file_range`, `fdatasync` and
//! `fsync` with the file it went to, and every `write` of the daemon's log.
//! The writer logs `journal durable next_seq=N` (debug) right after it
//! publishes the durable position: the acknowledgement the sealer and
//! everything downstream wait for. For every acknowledgement that moved the
//! position forward, the trace must show, since the previous one:
//! - a `pwrite64` to the journal's `db` file (the commit's writes), then
//! - an `fdatasync` of `db` by the writer's thread, started after the last
//!   `pwrite64` to `db` the writer's thread made in that window and finished
//!   before the acknowledgement was written.
//!
//! sled's own flush ends with `sync_file_range`, which neither flushes the
//! drive's cache nor the file's size: without the journal's `fdatasync` this
//! test fails on the first acknowledgement.
//!
//! A power-loss simulation (dm-flakey, or a FUSE filesystem that drops
//! unsynced writes) is not possible in this container: the kernel has no
//! device-mapper (`/dev/mapper/control` is missing) and no `fusermount`. The
//! syscall order is what this test can prove; that `fdatasync` makes data
//! durable is the kernel's and the drive's contract.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ObjectMeta, PostParams};
use rewind_daemon::status::{read_status, status_path};
use rewind_tests::ControlPlane;
use rewind_tests::daemon::{DaemonConfig, Rewindd, RunOptions, rewindd_bin};

const STRACE: &str = "/usr/bin/strace";

/// One line of the trace that matters here.
#[derive(Debug, Clone, PartialEq)]
enum Call {
    /// `pwrite64` to the journal's `db` file.
    PwriteDb,
    /// `sync_file_range` of `db` (sled's flush).
    SyncRangeDb,
    /// `fdatasync` of `db`.
    FdatasyncDb,
    /// The writer's `journal durable` log line.
    Ack(u64),
}

/// Where a call stands in the trace: its start and end lines (the same
/// line unless strace split it as `unfinished`/`resumed`).
#[derive(Debug, Clone)]
struct Event {
    tid: u32,
    call: Call,
    start: usize,
    end: usize,
}

/// Removes ANSI colour sequences as strace prints them (`\33[2m`).
fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("\\33[") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 4..];
        let end = after.find('m').map_or(after.len(), |e| e + 1);
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

fn classify(name: &str, args: &str, db: &str) -> Option<Call> {
    // `-y` prints a descriptor as `5</path/of/file>`.
    let on_db = args
        .split_once('<')
        .is_some_and(|(_, r)| r.strip_prefix(db).is_some_and(|r| r.starts_with('>')));
    match name {
        "pwrite64" if on_db => Some(Call::PwriteDb),
        "sync_file_range" if on_db => Some(Call::SyncRangeDb),
        "fdatasync" if on_db => Some(Call::FdatasyncDb),
        "write" => {
            let text = strip_ansi(args);
            if !text.contains("journal durable") {
                return None;
            }
            let after = text.split("next_seq=").nth(1)?;
            let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok().map(Call::Ack)
        }
        _ => None,
    }
}

/// Parses `strace -f` output (`tid name(args) = ret`, possibly split into
/// `<unfinished ...>` and `<... name resumed>`).
fn parse_trace(text: &str, db: &str) -> Vec<Event> {
    let mut events: Vec<Event> = Vec::new();
    // (tid, name) → index in `events` of a call still unfinished.
    let mut open: Vec<(u32, String, Option<usize>)> = Vec::new();
    for (line_no, line) in text.lines().enumerate() {
        let Some((tid, rest)) = line.split_once(' ') else {
            continue;
        };
        let Ok(tid) = tid.trim().parse::<u32>() else {
            continue;
        };
        let rest = rest.trim_start();
        if let Some(resumed) = rest.strip_prefix("<... ") {
            let name = resumed.split_whitespace().next().unwrap_or_default();
            if let Some(pos) = open.iter().position(|(t, n, _)| *t == tid && n == name) {
                let (_, _, idx) = open.remove(pos);
                if let Some(i) = idx {
                    events[i].end = line_no;
                }
            }
            continue;
        }
        let Some((name, args)) = rest.split_once('(') else {
            continue;
        };
        let call = classify(name, args, db);
        let idx = call.map(|call| {
            events.push(Event {
                tid,
                call,
                start: line_no,
                end: line_no,
            });
            events.len() - 1
        });
        if rest.ends_with("<unfinished ...>") {
            open.push((tid, name.to_owned(), idx));
        }
    }
    events
}

/// Checks every acknowledgement against the calls before it; returns how
/// many acknowledgements moved the durable position.
fn check_order(events: &[Event]) -> usize {
    let mut last_ack: Option<(usize, u64)> = None;
    let mut checked = 0;
    for (i, e) in events.iter().enumerate() {
        let Call::Ack(seq) = e.call else { continue };
        let from = last_ack.map_or(0, |(j, _)| j + 1);
        let moved = last_ack.is_none_or(|(_, s)| seq > s);
        if moved && last_ack.is_some() {
            let window = &events[from..i];
            let writer = e.tid;
            let sync = window
                .iter()
                .rev()
                .find(|c| c.tid == writer && c.call == Call::FdatasyncDb)
                .unwrap_or_else(|| {
                    panic!("acknowledged next_seq={seq} with no fdatasync of the journal before it")
                });
            assert!(
                sync.end < e.start,
                "the fdatasync before next_seq={seq} had not finished when it was acknowledged"
            );
            assert!(
                window
                    .iter()
                    .any(|c| c.call == Call::PwriteDb && c.end < sync.start),
                "next_seq={seq}: no write to the journal before its fdatasync"
            );
            if let Some(late) = window
                .iter()
                .find(|c| c.tid == writer && c.call == Call::PwriteDb && c.start > sync.start)
            {
                panic!(
                    "next_seq={seq}: the writer wrote to the journal (trace line {}) after its fdatasync (line {}) and before acknowledging",
                    late.start + 1,
                    sync.start + 1
                );
            }
            checked += 1;
        }
        last_ack = Some((i, last_ack.map_or(seq, |(_, s)| s.max(seq))));
    }
    checked
}

/// A script that runs the real rewindd under strace, writing the trace to
/// `trace`.
fn strace_wrapper(dir: &Path, trace: &Path) -> PathBuf {
    let script = dir.join("rewindd-under-strace");
    let text = format!(
        "#!/bin/sh\nexec {STRACE} -f -y -qq -s 400 -o '{}' \
         -e trace=pwrite64,pwritev,pwritev2,write,fdatasync,fsync,sync_file_range \
         '{}' \"$@\"\n",
        trace.display(),
        rewindd_bin().unwrap().display()
    );
    std::fs::write(&script, text).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

fn journal_next_seq(data: &Path) -> u64 {
    read_status(&status_path(data)).map_or(0, |s| s.journal.next_seq)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_journal_is_fdatasynced_after_its_writes_and_before_each_acknowledgement() {
    assert!(
        Path::new(STRACE).exists(),
        "{STRACE} is needed to trace the daemon's syscalls"
    );
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
    let trace = tmp.path().join("strace.txt");
    let wrapper = strace_wrapper(tmp.path(), &trace);
    let cfg = DaemonConfig::new(&data, cp.readonly_kubeconfig_path());
    let cfg_path = tmp.path().join("rewindd.toml");
    cfg.write(&cfg_path).unwrap();
    let mut daemon = Rewindd::spawn(
        &cfg_path,
        &data,
        &RunOptions {
            rewindd: Some(wrapper),
            rust_log: Some("warn,rewind_daemon::writer=debug".into()),
            ..RunOptions::default()
        },
    )
    .unwrap();

    // The initial list, then ConfigMaps one by one: many small commits.
    let t = Instant::now();
    while journal_next_seq(&data) < 2 {
        daemon.check_running().unwrap();
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "rewindd recorded nothing; log:\n{}",
            daemon.log_tail(30)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let before = journal_next_seq(&data);
    let n = 30u64;
    for i in 0..n {
        let cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some(format!("sync-order-{i:02}")),
                ..ObjectMeta::default()
            },
            data: Some([("i".to_owned(), i.to_string())].into()),
            ..ConfigMap::default()
        };
        api.create(&PostParams::default(), &cm).await.unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let t = Instant::now();
    while journal_next_seq(&data) < before + n {
        daemon.check_running().unwrap();
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "rewindd did not record the ConfigMaps; log:\n{}",
            daemon.log_tail(30)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pid = read_status(&status_path(&data)).unwrap().pid;
    let sent = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let t = Instant::now();
    while daemon.check_running().is_ok() {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "rewindd did not exit on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let db = std::fs::canonicalize(data.join("journal").join("db")).unwrap();
    let text = std::fs::read_to_string(&trace).unwrap();
    let events = parse_trace(&text, &db.display().to_string());
    assert!(
        events.iter().any(|e| e.call == Call::SyncRangeDb),
        "the trace shows no sync_file_range of {}: it did not trace sled's flush",
        db.display()
    );
    let checked = check_order(&events);
    let acked = events
        .iter()
        .filter_map(|e| match e.call {
            Call::Ack(s) => Some(s),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    assert!(
        acked >= before + n,
        "the trace's last acknowledgement is next_seq={acked}, the daemon recorded {}",
        before + n
    );
    assert!(
        checked >= 5,
        "only {checked} acknowledgements moved the durable position"
    );
    eprintln!(
        "checked {checked} acknowledgements (up to next_seq={acked}) against {} traced calls",
        events.len()
    );
}

#[test]
fn the_trace_check_refuses_an_acknowledgement_before_the_fdatasync() {
    let db = "/j/db";
    let good = "\
1 write(2</l>, \"journal durable next_seq=1\\n\", 30) = 30
1 pwrite64(5</j/db>, \"x\", 1, 0) = 1
1 sync_file_range(5</j/db>, 0, 1, 7) = 0
1 fdatasync(5</j/db>) = 0
1 write(2</l>, \"\\33[2mjournal durable\\33[0m \\33[3mnext_seq\\33[0m\\33[2m=\\33[0m2\\n\", 60) = 60
";
    assert_eq!(check_order(&parse_trace(good, db)), 1);
    let no_sync = "\
1 write(2</l>, \"journal durable next_seq=1\\n\", 30) = 30
1 pwrite64(5</j/db>, \"x\", 1, 0) = 1
1 sync_file_range(5</j/db>, 0, 1, 7) = 0
1 write(2</l>, \"journal durable next_seq=2\\n\", 30) = 30
";
    let r = std::panic::catch_unwind(|| check_order(&parse_trace(no_sync, db)));
    assert!(r.is_err(), "an acknowledgement without fdatasync passed");
    let sync_first = "\
1 write(2</l>, \"journal durable next_seq=1\\n\", 30) = 30
1 pwrite64(5</j/db>, \"x\", 1, 0) = 1
1 fdatasync(5</j/db>) = 0
1 pwrite64(5</j/db>, \"y\", 1, 1) = 1
1 write(2</l>, \"journal durable next_seq=2\\n\", 30) = 30
";
    let r = std::panic::catch_unwind(|| check_order(&parse_trace(sync_first, db)));
    assert!(r.is_err(), "a write after the fdatasync passed");
    let unfinished = "\
1 write(2</l>, \"journal durable next_seq=1\\n\", 30) = 30
1 pwrite64(5</j/db>, \"x\", 1, 0) = 1
1 fdatasync(5</j/db> <unfinished ...>
2 write(2</l>, \"journal durable next_seq=2\\n\", 30) = 30
1 <... fdatasync resumed>) = 0
";
    let r = std::panic::catch_unwind(|| check_order(&parse_trace(unfinished, db)));
    assert!(r.is_err(), "an acknowledgement during the fdatasync passed");
}
