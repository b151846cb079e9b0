//! Visible status. The running daemon keeps a [`Board`] that watchers, the
//! discovery loop and the journal writer update; a task writes it every
//! second or so as JSON to `DATA_DIR/status.json` (write to a temporary file,
//! then rename, so readers never see half a file). `rewindd status` reads that
//! file: it needs no connection to the daemon, and a file that stopped
//! changing tells that the daemon is gone or stuck.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

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
    /// Id of the recorded cluster.
    pub cluster_id: String,
    /// Journal health.
    pub journal: JournalStatus,
    /// API groups whose discovery fails, with the error.
    pub failing_groups: BTreeMap<String, String>,
    /// Per type, keyed by `resource.group`.
    pub types: BTreeMap<String, TypeStatus>,
    /// The store lineage being recorded, once decided at start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lineage: Option<LineageStatus>,
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

impl StatusFile {
    /// Whether everything works: the journal commits and no watcher fails.
    #[must_use]
    pub fn healthy(&self) -> bool {
        self.journal.healthy && self.types.values().all(|t| t.state != WatchState::Failing)
    }
}

/// Shared, updated status.
#[derive(Debug, Clone, Default)]
pub struct Board {
    inner: Arc<Mutex<StatusFile>>,
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
            });
        f(t);
    }

    /// A copy of the status as of now.
    #[must_use]
    pub fn snapshot(&self) -> StatusFile {
        let mut s = self.lock().clone();
        s.written_at_ms = now_ms();
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

/// Renders the status for `rewindd status`. `stale_after_ms`: how old the
/// file may be before the daemon counts as not running.
#[must_use]
pub fn render(s: &StatusFile, now: i64, stale_after_ms: i64) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let age = now.saturating_sub(s.written_at_ms);
    let stale = age > stale_after_ms;
    let health = if stale {
        "STALE"
    } else if s.healthy() {
        "healthy"
    } else {
        "UNHEALTHY"
    };
    let _ = writeln!(
        out,
        "rewindd pid {} · cluster {} · {} · status written {}",
        s.pid,
        s.cluster_id,
        health,
        ago(now, Some(s.written_at_ms))
    );
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
    if stale {
        let _ = writeln!(
            out,
            "the status file has not changed for {}s: the daemon is not running or is stuck",
            age / 1000
        );
    }
    let j = &s.journal;
    let _ = writeln!(
        out,
        "journal: {} · next seq {} · {:.1} MiB · last commit {} ({} ms) · {} events since start{}",
        if j.healthy { "ok" } else { "FAILING" },
        j.next_seq,
        j.size_bytes as f64 / (1024.0 * 1024.0),
        ago(now, j.last_commit_ms),
        j.last_commit_duration_ms,
        j.events,
        j.error
            .as_ref()
            .map(|e| format!(" · error: {e}"))
            .unwrap_or_default()
    );
    for (g, e) in &s.failing_groups {
        let _ = writeln!(out, "discovery of group {g} failing: {e}");
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
        assert!(!back.healthy());
        let fresh = render(&back, back.written_at_ms + 100, 5000);
        assert!(fresh.contains("UNHEALTHY"), "{fresh}");
        assert!(fresh.contains("403 forbidden"), "{fresh}");
        let stale = render(&back, back.written_at_ms + 60_000, 5000);
        assert!(stale.contains("not running"), "{stale}");
    }
}
