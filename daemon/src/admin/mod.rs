//! The admin API: one JSON request per line over a Unix socket, one JSON
//! reply per line. The socket is created mode 0660 and, when configured,
//! handed to a group, so operators in that group can ask for snapshots
//! without root and nobody else can.
//!
//! ```text
//! -> {"op":"snapshot","label":"before-upgrade","wait":true}
//! <- {"ok":true,"snapshot":{"id":"...","seq":42,"time_ms":...,"size":...,"objects":...,"label":"before-upgrade","stored":true}}
//! -> {"op":"ping"}
//! <- {"ok":true}
//! ```

pub mod client;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::compact::{CompactorHandle, SnapshotInfo};

/// Errors of the admin API.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No daemon listens on the socket.
    #[error("rewindd is not running (nothing listens on {})", path.display())]
    NotRunning {
        /// The socket path.
        path: PathBuf,
    },
    /// Socket setup or I/O failed.
    #[error("admin socket {}: {op}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The socket path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The named group does not exist.
    #[error("admin socket group `{0}` not found in /etc/group")]
    NoSuchGroup(String),
    /// The daemon may not hand its socket to the configured group: its user
    /// is not a member and it lacks CAP_CHOWN.
    #[error(
        "admin socket {}: cannot give it to group `{group}` (gid {gid}): this process is not a member of that group; run rewindd with that supplementary group (SupplementaryGroups={group} in the systemd unit) or change [service] admin_group",
        path.display()
    )]
    GroupNotPermitted {
        /// The socket path.
        path: PathBuf,
        /// The configured group.
        group: String,
        /// Its id.
        gid: u32,
        /// The chown error.
        #[source]
        source: std::io::Error,
    },
    /// The caller may not connect to the socket.
    #[error(
        "permission denied on admin socket {}: only {} may ask rewindd for snapshots",
        path.display(),
        match group {
            Some(g) => format!("root, the daemon's user and members of group `{g}` (the socket's group)"),
            None => "root, the daemon's user and members of the socket's group ([service] admin_group), who can also enter its directory".to_owned(),
        }
    )]
    Denied {
        /// The socket path.
        path: PathBuf,
        /// The socket's group, when it could be read.
        group: Option<String>,
        /// The connect error.
        #[source]
        source: std::io::Error,
    },
    /// The daemon answered with an error.
    #[error("rewindd: {0}")]
    Remote(String),
    /// A message could not be understood.
    #[error("admin protocol: {0}")]
    Protocol(String),
}

impl AdminError {
    /// Whether a restart with the same configuration and host setup would
    /// fail the same way (a missing group, a group the daemon may not use):
    /// `rewindd run` exits with [`EXIT_DEPLOYMENT`] then, which the unit's
    /// `RestartPreventExitStatus=` keeps from restarting in a loop.
    #[must_use]
    pub fn restart_cannot_fix(&self) -> bool {
        matches!(self, Self::NoSuchGroup(_) | Self::GroupNotPermitted { .. })
    }
}

/// Exit status of `rewindd run` for a deployment error no restart can fix
/// (`EX_CONFIG` of sysexits.h): a configuration that cannot be read or is
/// invalid, an admin socket group that is missing or not the daemon's. The
/// unit names it in `RestartPreventExitStatus=`.
pub const EXIT_DEPLOYMENT: u8 = 78;

/// Result alias of the admin API.
pub type Result<T, E = AdminError> = std::result::Result<T, E>;

/// A request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Request {
    /// Is anyone there?
    Ping,
    /// Take a snapshot now.
    Snapshot {
        /// Label (kept until deleted).
        #[serde(default)]
        label: Option<String>,
        /// Answer once stored.
        #[serde(default)]
        wait: bool,
    },
}

/// A reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// Whether the request succeeded.
    pub ok: bool,
    /// The error, when not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The snapshot made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapshotInfo>,
}

/// Longest request line accepted.
const MAX_LINE: u64 = 16 << 10;

/// Binds the socket: removes a stale one, sets 0660 and the group.
pub fn bind(path: &Path, group: Option<&str>) -> Result<UnixListener> {
    let io = |op| {
        move |source| AdminError::Io {
            op,
            path: path.to_owned(),
            source,
        }
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io("create directory"))?;
    }
    if path.exists() {
        // Another daemon answering means we must not steal its socket.
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(AdminError::Io {
                op: "bind",
                path: path.to_owned(),
                source: std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    "another rewindd is listening",
                ),
            });
        }
        std::fs::remove_file(path).map_err(io("remove stale socket"))?;
    }
    let listener = UnixListener::bind(path).map_err(io("bind"))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(io("chmod"))?;
    if let Some(g) = group {
        let gid = group_id(g)?;
        std::os::unix::fs::chown(path, None, Some(gid)).map_err(|source| {
            if source.kind() == std::io::ErrorKind::PermissionDenied {
                AdminError::GroupNotPermitted {
                    path: path.to_owned(),
                    group: g.to_owned(),
                    gid,
                    source,
                }
            } else {
                AdminError::Io {
                    op: "chown",
                    path: path.to_owned(),
                    source,
                }
            }
        })?;
    }
    Ok(listener)
}

fn groups() -> Result<Vec<(String, u32)>> {
    let text = std::fs::read_to_string("/etc/group").map_err(|source| AdminError::Io {
        op: "read /etc/group",
        path: PathBuf::from("/etc/group"),
        source,
    })?;
    Ok(text
        .lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let n = f.next()?;
            let gid = f.nth(1)?.parse().ok()?;
            Some((n.to_owned(), gid))
        })
        .collect())
}

/// Looks a group up in `/etc/group` (numeric ids are taken as they are).
pub fn group_id(name: &str) -> Result<u32> {
    if let Ok(id) = name.parse() {
        return Ok(id);
    }
    groups()?
        .into_iter()
        .find_map(|(n, gid)| (n == name).then_some(gid))
        .ok_or_else(|| AdminError::NoSuchGroup(name.to_owned()))
}

/// The name of group `gid` in `/etc/group`, if it has one.
#[must_use]
pub fn group_name(gid: u32) -> Option<String> {
    groups()
        .ok()?
        .into_iter()
        .find_map(|(n, g)| (g == gid).then_some(n))
}

/// Serves requests until `shutdown`; at most 8 connections at a time.
pub async fn serve(
    listener: UnixListener,
    compactor: CompactorHandle,
    shutdown: CancellationToken,
) {
    let limit = Arc::new(Semaphore::new(8));
    loop {
        let permit = tokio::select! {
            () = shutdown.cancelled() => return,
            p = Arc::clone(&limit).acquire_owned() => match p { Ok(p) => p, Err(_) => return },
        };
        let stream = tokio::select! {
            () = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "admin socket accept failed");
                    continue;
                }
            },
        };
        let c = compactor.clone();
        tokio::spawn(async move {
            if let Err(e) = handle(stream, c).await {
                tracing::debug!(error = %e, "admin connection ended with an error");
            }
            drop(permit);
        });
    }
}

async fn handle(stream: UnixStream, compactor: CompactorHandle) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read.take(MAX_LINE)).lines();
    while let Some(line) = lines.next_line().await? {
        let reply = match serde_json::from_str::<Request>(&line) {
            Err(e) => Reply {
                ok: false,
                error: Some(format!("bad request: {e}")),
                snapshot: None,
            },
            Ok(Request::Ping) => Reply {
                ok: true,
                error: None,
                snapshot: None,
            },
            Ok(Request::Snapshot { label, wait }) => {
                tracing::info!(label = ?label, wait, "on-demand snapshot requested");
                match compactor.snapshot(label, wait).await {
                    Ok(s) => Reply {
                        ok: true,
                        error: None,
                        snapshot: Some(s),
                    },
                    Err(e) => Reply {
                        ok: false,
                        error: Some(e.to_string()),
                        snapshot: None,
                    },
                }
            }
        };
        let mut out = serde_json::to_vec(&reply).map_err(std::io::Error::other)?;
        out.push(b'\n');
        write.write_all(&out).await?;
    }
    Ok(())
}
