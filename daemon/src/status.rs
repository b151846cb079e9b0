//! Visible status. The running daemon keeps a [`Board`] that watchers, the
//! discovery loop, the start-up connection and the journal writer update; a
//! task writes it every second or so as JSON to `DATA_DIR/status.json`
//! (write to a temporary file, then rename, so readers never see half a
//! file). `rewindd status` reads that file: it needs no connection to the
//! daemon, and a file that stopped changing tells that the daemon is gone
//! or stuck.
//!
//! Ready means recording: [`StatusFile::problems`] lists every reason it is
//! not (the apiserver cannot be reached or its TLS fails, discovery of a
//! group the record set covers fails, a selected type has not finished its
//! first list or its watch fails, the journal does not commit, the writer
//! thread stopped or makes no progress); an empty list is ready. `/readyz`,
//! `rewindd status` and the watchdog read the same figures.
//!
//! The writer's [`Heartbeat`] is beaten on every turn of its loop, idle or
//! not (it wakes at least once a second), so its age says whether the
//! thread is alive and unblocked whatever the cluster does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rewind_history::now_ms;
use serde::{Deserialize, Serialize};

/// Errors of the status file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing the file failed.
    #[error("status file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file does not parse.
    #[error("status file {path} is not valid: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

/// Result alias of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Layout version of the status file.
pub const STATUS_VERSION: u32 = 1;

/// Where the status file of a data directory lives.
#[must_use]
pub fn status_path(data_dir: &Path) -> PathBuf {
    data_dir.join("status.json")
}

/// State of one type's watcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WatchState {
    /// Started, nothing received yet.
    Starting,
    /// Listing (first list, or a relist after a gap).
    Relisting,
    /// Following the watch.
    Watching,
    /// Errors; retrying with backoff. `reason` says why.
    Failing,
    /// The type is no longer served; its watcher stopped.
    Stopped,
}

/// Status of one resource type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeStatus {
    /// `group/version` or `v1`.
    pub api_version: String,
    /// Kind.
    pub kind: String,
    /// Watcher state.
    pub state: WatchState,
    /// Why it is failing (the last error), if it is.
    pub reason: Option<String>,
    /// When the newest durable event of the type was observed, Unix ms.
    pub last_event_ms: Option<i64>,
    /// When the watcher last delivered anything, Unix ms.
    pub last_observed_ms: Option<i64>,
    /// Observation time of the newest observation of this type whose batch
    /// is durable (recorded or deduplicated), Unix ms.
    pub durable_through_ms: Option<i64>,
    /// How far the durable journal is behind the watcher for this type, ms.
    pub lag_ms: i64,
    /// Durable events of this type since the daemon started.
    pub events: u64,
    /// Relists of this type since the daemon started: lists after the
    /// watcher's first one (a 410, a broken watch). Absent in older files.
    #[serde(default)]
    pub relists: u64,
    /// Whether the watcher's first list completed (`InitDone`): from then
    /// on the journal holds the type's objects.
    #[serde(default)]
    pub listed: bool,
}

/// Status of the journal.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalStatus {
    /// Whether commits currently succeed.
    pub healthy: bool,
    /// The last write error, while unhealthy.
    pub error: Option<String>,
    /// Seq the next event will get.
    pub next_seq: u64,
    /// Last successful commit, Unix ms.
    pub last_commit_ms: Option<i64>,
    /// Duration of the last commit (encode, write, fsync), ms.
    pub last_commit_duration_ms: u64,
    /// Size on disk, bytes.
    pub size_bytes: u64,
    /// Durable events since the daemon started.
    pub events: u64,
    /// When the writer thread last turned its loop, Unix ms; `None` until
    /// it runs.
    #[serde(default)]
    pub writer_beat_ms: Option<i64>,
    /// Whether the writer thread has returned (shut down or died).
    #[serde(default)]
    pub writer_stopped: bool,
}

/// The status file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusFile {
    /// [`STATUS_VERSION`].
    pub version: u32,
    /// Daemon pid.
    pub pid: u32,
    /// When this file was written, Unix ms.
    pub written_at_ms: i64,
    /// When the daemon started, Unix ms.
    pub started_at_ms: i64,
    /// Id of the recorded cluster; empty until known.
    pub cluster_id: String,
    /// Why the apiserver cannot be used, while it cannot
    /// (`apiserver unreachable: …`, `TLS: …`); `None` once it answered.
    #[serde(default)]
    pub apiserver: Option<String>,
    /// When discovery last succeeded, Unix ms.
    #[serde(default)]
    pub discovered_at_ms: Option<i64>,
    /// Journal health.
    pub journal: JournalStatus,
    /// API groups the record set covers whose discovery fails, with the
    /// error: their types cannot be recorded.
    pub failing_groups: BTreeMap<String, String>,
    /// API groups outside the record set whose discovery fails: shown, but
    /// nothing is missing from the recording.
    #[serde(default)]
    pub other_failing_groups: BTreeMap<String, String>,
    /// Per type, keyed by `resource.group`.
    pub types: BTreeMap<String, TypeStatus>,
    /// The store lineage being recorded, once decided at start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lineage: Option<LineageStatus>,
    /// Leadership (role, Lease, epoch, last takeover); `None` before the
    /// service sets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<crate::leader::LeaderStatus>,
}

/// The store lineage being recorded and how it was chosen at start.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineageStatus {
    /// Its id.
    pub id: String,
    /// Its parent, if it forked from one.
    pub parent: Option<String>,
    /// The parent's seq it forked at.
    pub fork_seq: Option<u64>,
    /// `continue`, `adopt` or `fresh`.
    pub decision: String,
    /// Why, for a fresh lineage.
    pub reason: Option<String>,
}

/// How long the writer thread may go without turning its loop before it
/// counts as stuck. It turns at least once a second when idle; a commit
/// (fsync) of a large batch on a slow disk takes seconds, not this long.
pub const WRITER_STUCK_AFTER: Duration = Duration::from_secs(30);

impl StatusFile {
    /// Every reason the daemon is not recording, one line each, as of
    /// `now` (Unix ms); empty when it records everything it should.
    #[must_use]
    pub fn problems(&self, now: i64) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(e) = &self.apiserver {
            out.push(e.clone());
        } else if self.cluster_id.is_empty() {
            out.push("cluster id not known yet (reading namespace kube-system)".to_owned());
        } else if self.discovered_at_ms.is_none() {
            out.push("discovery has not completed yet".to_owned());
        }
        for (g, e) in &self.failing_groups {
            out.push(format!("discovery of group {g} failing: {e}"));
        }
        for (k, t) in &self.types {
            match t.state {
                WatchState::Failing => out.push(format!(
                    "type {k}: watch failing: {}",
                    t.reason.as_deref().unwrap_or("unknown error")
                )),
                WatchState::Stopped => {}
                WatchState::Starting | WatchState::Relisting | WatchState::Watching
                    if !t.listed =>
                {
                    out.push(format!("type {k}: first list not done yet"));
                }
                WatchState::Starting | WatchState::Relisting | WatchState::Watching => {}
            }
        }
        let j = &self.journal;
        if !j.healthy {
            out.push(format!(
                "journal: commits failing: {}",
                j.error.as_deref().unwrap_or("unknown error")
            ));
        }
        if j.writer_stopped {
            out.push("journal writer thread stopped".to_owned());
        } else if let Some(beat) = j.writer_beat_ms {
            let age = now.saturating_sub(beat);
            let limit = i64::try_from(WRITER_STUCK_AFTER.as_millis()).unwrap_or(i64::MAX);
            if age > limit {
                out.push(format!(
                    "journal writer stuck: no progress for {}s",
                    age / 1000
                ));
            }
        } else if !self.cluster_id.is_empty() {
            out.push("journal writer not started yet".to_owned());
        }
        out
    }
}

/// The writer thread's liveness, beaten on every turn of its loop.
#[derive(Debug)]
pub struct Heartbeat {
    origin: Instant,
    /// Milliseconds from `origin` to the last beat, plus one; 0: never.
    last: AtomicU64,
    stopped: AtomicBool,
}

/// What a [`Heartbeat`] says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Beat {
    /// The writer has not started (the recorder waits for the cluster).
    NotStarted,
    /// The writer runs; its last turn was this long ago.
    Alive(Duration),
    /// The writer returned: shut down, or died.
    Stopped,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Self {
            origin: Instant::now(),
            last: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
        }
    }
}

impl Heartbeat {
    /// The writer turned its loop.
    pub fn beat(&self) {
        let ms = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(ms.saturating_add(1), Ordering::Relaxed);
    }

    /// The writer returned.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
    }

    /// The state as of now.
    #[must_use]
    pub fn state(&self) -> Beat {
        if self.stopped.load(Ordering::Relaxed) {
            return Beat::Stopped;
        }
        match self.last.load(Ordering::Relaxed) {
            0 => Beat::NotStarted,
            at => {
                let now = self.origin.elapsed();
                Beat::Alive(now.saturating_sub(Duration::from_millis(at.saturating_sub(1))))
            }
        }
    }
}

/// Stops a [`Heartbeat`] when dropped: the writer holds one for as long as
/// it runs, so a writer that returns or unwinds stops its heartbeat.
#[derive(Debug)]
pub struct StopOnDrop(pub Arc<Heartbeat>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// Describes a failed request to the apiserver for the status: `TLS: …`
/// when the TLS handshake failed (an unknown CA, a wrong server name),
/// `apiserver answered: …` for an API error, `apiserver unreachable: …`
/// otherwise (refused, timed out, no route).
#[must_use]
pub fn apiserver_problem(e: &kube::Error) -> String {
    let text = rewind_history::report::chain(e);
    if let kube::Error::Api(_) = e {
        return format!("apiserver answered: {text}");
    }
    if is_tls(e) {
        return format!("TLS: {text}");
    }
    format!("apiserver unreachable: {text}")
}

/// Whether a rustls error is somewhere in `e`'s chain, including inside an
/// `io::Error` (whose `source()` skips the error it wraps).
fn is_tls(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(cur) = next {
        if cur.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        if let Some(io) = cur.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && is_tls(inner)
        {
            return true;
        }
        if matches!(
            cur.downcast_ref::<kube::Error>(),
            Some(kube::Error::RustlsTls(_) | kube::Error::TlsRequired)
        ) {
            return true;
        }
        next = cur.source();
    }
    false
}

/// Shared, updated status.
#[derive(Debug, Clone, Default)]
pub struct Board {
    inner: Arc<Mutex<StatusFile>>,
    writer: Arc<Heartbeat>,
}

impl Board {
    /// A board for a daemon starting now.
    #[must_use]
    pub fn new() -> Self {
        let b = Self::default();
        {
            let mut s = b.lock();
            s.version = STATUS_VERSION;
            s.pid = std::process::id();
            s.started_at_ms = now_ms();
            s.journal.healthy = true;
        }
        b
    }

    fn lock(&self) -> MutexGuard<'_, StatusFile> {
        // A panic elsewhere while holding the lock leaves plain data: keep
        // reporting rather than propagate the poison.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The journal writer's heartbeat.
    #[must_use]
    pub fn writer_heartbeat(&self) -> Arc<Heartbeat> {
        Arc::clone(&self.writer)
    }

    /// Runs `f` on the status.
    pub fn update<R>(&self, f: impl FnOnce(&mut StatusFile) -> R) -> R {
        f(&mut self.lock())
    }

    /// Updates one type's entry, creating it if needed.
    pub fn update_type(
        &self,
        type_key: &str,
        api_version: &str,
        kind: &str,
        f: impl FnOnce(&mut TypeStatus),
    ) {
        let mut s = self.lock();
        let t = s
            .types
            .entry(type_key.to_owned())
            .or_insert_with(|| TypeStatus {
                api_version: api_version.to_owned(),
                kind: kind.to_owned(),
                state: WatchState::Starting,
                reason: None,
                last_event_ms: None,
                last_observed_ms: None,
                durable_through_ms: None,
                lag_ms: 0,
                events: 0,
                relists: 0,
                listed: false,
            });
        f(t);
    }

    /// A copy of the status as of now.
    #[must_use]
    pub fn snapshot(&self) -> StatusFile {
        let mut s = self.lock().clone();
        s.written_at_ms = now_ms();
        match self.writer.state() {
            Beat::NotStarted => {}
            Beat::Alive(age) => {
                let age = i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
                s.journal.writer_beat_ms = Some(s.written_at_ms.saturating_sub(age));
            }
            Beat::Stopped => s.journal.writer_stopped = true,
        }
        for t in s.types.values_mut() {
            t.lag_ms = match (t.last_observed_ms, t.durable_through_ms) {
                (Some(o), Some(d)) => o.saturating_sub(d).max(0),
                (Some(o), None) => s.written_at_ms.saturating_sub(o).max(0),
                _ => 0,
            };
        }
        s
    }
}

/// Writes the status file atomically.
pub fn write_status(path: &Path, status: &StatusFile) -> Result<()> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec_pretty(status).map_err(|e| Error::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    Ok(())
}

/// Reads a status file.
pub fn read_status(path: &Path) -> Result<StatusFile> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

fn ago(now: i64, t: Option<i64>) -> String {
    match t {
        None => "-".to_owned(),
        Some(t) => {
            let ms = now.saturating_sub(t).max(0);
            if ms < 10_000 {
                format!("{:.1}s ago", ms as f64 / 1000.0)
            } else {
                format!("{}s ago", ms / 1000)
            }
        }
    }
}

/// Every reason the daemon described by `s` is not recording as of `now`,
/// the status file's own age first: older than `stale_after_ms` means the
/// daemon is not running or is stuck, and the rest is what it said last.
#[must_use]
pub fn problems_at(s: &StatusFile, now: i64, stale_after_ms: i64) -> Vec<String> {
    let age = now.saturating_sub(s.written_at_ms);
    let mut out = Vec::new();
    if age > stale_after_ms {
        out.push(format!(
            "status file not updated for {}s: rewindd (pid {}) is not running or is stuck",
            age / 1000,
            s.pid
        ));
    }
    out.extend(s.problems(now));
    out
}

/// ` · leader of lineage …` / ` · standby (holder …)`: the role part of
/// the status line, empty without leader election.
fn role_line(s: &StatusFile, now: i64) -> String {
    let Some(l) = &s.leader else {
        return String::new();
    };
    let lineage = s
        .lineage
        .as_ref()
        .map_or_else(String::new, |l| format!(" of lineage {}", l.id));
    match l.role.as_str() {
        "leader" => format!(
            " · leader{lineage} (Lease {}, epoch {}, took over {})",
            l.lease.as_deref().unwrap_or("-"),
            l.epoch.unwrap_or_default(),
            ago(now, l.last_takeover_ms)
        ),
        "unconfigured" => String::new(),
        other => format!(
            " · {other}: ships nothing (Lease {} held by {})",
            l.lease.as_deref().unwrap_or("-"),
            l.holder.as_deref().unwrap_or("nobody")
        ),
    }
}

/// Renders the status for `rewindd status`: one line, `ready: …`, when
/// [`problems_at`] finds nothing; otherwise one `not ready: …` line per
/// problem. `stale_after_ms`: how old the file may be before the daemon
/// counts as not running.
#[must_use]
pub fn render(s: &StatusFile, now: i64, stale_after_ms: i64) -> String {
    use std::fmt::Write as _;
    let problems = problems_at(s, now, stale_after_ms);
    let mut out = String::new();
    if problems.is_empty() {
        let watching = s
            .types
            .values()
            .filter(|t| t.state != WatchState::Stopped)
            .count();
        let _ = writeln!(
            out,
            "ready: recording {watching} types of cluster {} · journal next seq {} · last commit {} · rewindd pid {}{}",
            s.cluster_id,
            s.journal.next_seq,
            ago(now, s.journal.last_commit_ms),
            s.pid,
            role_line(s, now)
        );
    }
    for p in problems {
        let _ = writeln!(out, "not ready: {p}");
    }
    out
}

/// The detailed view of `rewindd status --verbose`: the daemon, the
/// journal, failing groups, and a table of every type.
#[must_use]
pub fn render_details(s: &StatusFile, now: i64) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "rewindd pid {} · cluster {} · status written {}",
        s.pid,
        if s.cluster_id.is_empty() {
            "(unknown)"
        } else {
            &s.cluster_id
        },
        ago(now, Some(s.written_at_ms))
    );
    if let Some(l) = &s.leader {
        let _ = writeln!(
            out,
            "role {}{}{}{}",
            l.role,
            l.lease
                .as_ref()
                .map_or_else(String::new, |x| format!(" · Lease {x}")),
            l.holder
                .as_ref()
                .map_or_else(String::new, |h| format!(" held by {h}")),
            l.last_takeover_ms.map_or_else(String::new, |t| format!(
                " · last takeover {}",
                ago(now, Some(t))
            ))
        );
    }
    if let Some(l) = &s.lineage {
        let _ = writeln!(
            out,
            "lineage {} ({}){}",
            l.id,
            l.decision,
            l.parent.as_ref().map_or_else(String::new, |p| format!(
                " · forked from {p} at seq {}",
                l.fork_seq.unwrap_or_default()
            ))
        );
    }
    let j = &s.journal;
    let _ = writeln!(
        out,
        "journal: {} · next seq {} · {:.1} MiB · last commit {} ({} ms) · {} events since start · writer turned {}{}",
        if j.healthy { "ok" } else { "FAILING" },
        j.next_seq,
        j.size_bytes as f64 / (1024.0 * 1024.0),
        ago(now, j.last_commit_ms),
        j.last_commit_duration_ms,
        j.events,
        ago(now, j.writer_beat_ms),
        j.error
            .as_ref()
            .map(|e| format!(" · error: {e}"))
            .unwrap_or_default()
    );
    for (g, e) in &s.failing_groups {
        let _ = writeln!(out, "discovery of group {g} failing: {e}");
    }
    for (g, e) in &s.other_failing_groups {
        let _ = writeln!(
            out,
            "discovery of group {g} failing (not in the record set): {e}"
        );
    }
    let _ = writeln!(
        out,
        "{:<48} {:<10} {:>12} {:>8} {:>8}  REASON",
        "TYPE", "STATE", "LAST EVENT", "LAG", "EVENTS"
    );
    for (k, t) in &s.types {
        let state = match t.state {
            WatchState::Starting => "starting",
            WatchState::Relisting => "relisting",
            WatchState::Watching => "watching",
            WatchState::Failing => "failing",
            WatchState::Stopped => "stopped",
        };
        let _ = writeln!(
            out,
            "{:<48} {:<10} {:>12} {:>6}ms {:>8}  {}",
            k,
            state,
            ago(now, t.last_event_ms),
            t.lag_ms,
            t.events,
            t.reason.as_deref().unwrap_or("")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_file_round_trips_and_renders_staleness() {
        let dir = tempfile::tempdir().unwrap();
        let b = Board::new();
        b.update_type(
            "clusters.management.cattle.io",
            "management.cattle.io/v3",
            "Cluster",
            |t| {
                t.state = WatchState::Failing;
                t.reason = Some("403 forbidden".into());
            },
        );
        let s = b.snapshot();
        let p = status_path(dir.path());
        write_status(&p, &s).unwrap();
        let back = read_status(&p).unwrap();
        assert_eq!(back, s);
        let fresh = render(&back, back.written_at_ms + 100, 5000);
        assert!(
            fresh.lines().any(|l| l.starts_with(
                "not ready: type clusters.management.cattle.io: watch failing: 403 forbidden"
            )),
            "{fresh}"
        );
        let stale = render(&back, back.written_at_ms + 60_000, 5000);
        assert!(stale.contains("not running"), "{stale}");
        let details = render_details(&back, back.written_at_ms + 100);
        assert!(details.contains("403 forbidden"), "{details}");
    }

    fn ready_status() -> StatusFile {
        let b = Board::new();
        b.writer_heartbeat().beat();
        b.update(|s| {
            s.cluster_id = "c".into();
            s.discovered_at_ms = Some(now_ms());
        });
        b.update_type("configmaps", "v1", "ConfigMap", |t| {
            t.state = WatchState::Watching;
            t.listed = true;
        });
        b.snapshot()
    }

    #[test]
    fn ready_means_recording_and_each_gap_is_one_named_problem() {
        let ok = ready_status();
        let now = ok.written_at_ms;
        assert_eq!(ok.problems(now), Vec::<String>::new());
        assert!(render(&ok, now, 5000).starts_with("ready: recording 1 types"));

        let mut s = ok.clone();
        s.cluster_id.clear();
        s.discovered_at_ms = None;
        s.journal.writer_beat_ms = None;
        s.types.clear();
        s.apiserver = Some("apiserver unreachable: connection refused".into());
        assert_eq!(
            s.problems(now),
            ["apiserver unreachable: connection refused"],
            "waiting for the cluster: the apiserver is the one reason"
        );

        let mut s = ok.clone();
        s.failing_groups.insert(
            "metrics.k8s.io".into(),
            "metrics.k8s.io/v1beta1: 503".into(),
        );
        s.other_failing_groups
            .insert("other.io".into(), "other.io/v1: 503".into());
        assert_eq!(
            s.problems(now),
            ["discovery of group metrics.k8s.io failing: metrics.k8s.io/v1beta1: 503"]
        );

        let mut s = ok.clone();
        if let Some(t) = s.types.get_mut("configmaps") {
            t.listed = false;
            t.state = WatchState::Relisting;
        }
        assert_eq!(
            s.problems(now),
            ["type configmaps: first list not done yet"]
        );

        let mut s = ok.clone();
        s.journal.healthy = false;
        s.journal.error = Some("no space".into());
        assert_eq!(s.problems(now), ["journal: commits failing: no space"]);

        let stuck = now + 31_000;
        assert_eq!(
            ok.problems(stuck),
            ["journal writer stuck: no progress for 31s"]
        );
        let mut s = ok.clone();
        s.journal.writer_stopped = true;
        assert_eq!(s.problems(now), ["journal writer thread stopped"]);
        let stale = problems_at(&ok, now + 20_000, 5000);
        assert!(stale[0].contains("not running"), "{stale:?}");
    }
}
