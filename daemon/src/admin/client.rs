//! The client side of the admin API, for `rewindd snapshot`.

use std::path::Path;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use super::{AdminError, Reply, Request, Result};
use crate::compact::SnapshotInfo;

/// Sends one request and reads the reply.
pub async fn call(socket: &Path, request: &Request) -> Result<Reply> {
    let stream = UnixStream::connect(socket)
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
                AdminError::NotRunning {
                    path: socket.to_owned(),
                }
            }
            std::io::ErrorKind::PermissionDenied => AdminError::Denied {
                path: socket.to_owned(),
                group: socket_group(socket),
                source: e,
            },
            _ => AdminError::Io {
                op: "connect",
                path: socket.to_owned(),
                source: e,
            },
        })?;
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_vec(request).map_err(|e| AdminError::Protocol(e.to_string()))?;
    line.push(b'\n');
    let io = |op| {
        move |source| AdminError::Io {
            op,
            path: socket.to_owned(),
            source,
        }
    };
    write.write_all(&line).await.map_err(io("write"))?;
    let mut reply = String::new();
    BufReader::new(read)
        .read_line(&mut reply)
        .await
        .map_err(io("read"))?;
    if reply.is_empty() {
        return Err(AdminError::Protocol(
            "the daemon closed the connection".into(),
        ));
    }
    serde_json::from_str(&reply).map_err(|e| AdminError::Protocol(e.to_string()))
}

/// The group of the socket, when the caller can see it.
fn socket_group(socket: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let gid = std::fs::metadata(socket).ok()?.gid();
    Some(super::group_name(gid).unwrap_or_else(|| gid.to_string()))
}

/// Asks the daemon for a snapshot.
pub async fn snapshot(socket: &Path, label: Option<String>, wait: bool) -> Result<SnapshotInfo> {
    let reply = call(socket, &Request::Snapshot { label, wait }).await?;
    match (reply.ok, reply.snapshot) {
        (true, Some(s)) => Ok(s),
        _ => Err(AdminError::Remote(
            reply.error.unwrap_or_else(|| "no snapshot in reply".into()),
        )),
    }
}

/// How `rewindd snapshot` prints a snapshot.
#[must_use]
pub fn render(s: &SnapshotInfo) -> String {
    let time = jiff::Timestamp::from_millisecond(s.time_ms)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| s.time_ms.to_string());
    format!(
        "id:      {}\nseq:     {}\ntime:    {}\nsize:    {} bytes\nobjects: {}\nlabel:   {}\nstored:  {}\n",
        s.id,
        s.seq,
        time,
        s.size,
        s.objects,
        s.label.as_deref().unwrap_or("-"),
        if s.stored {
            "yes"
        } else {
            "not yet (local; shipping in the background)"
        },
    )
}
