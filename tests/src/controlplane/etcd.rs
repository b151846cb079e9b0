//! Talking to etcd through its v3 HTTP/JSON gateway, without etcdctl.
//!
//! The gateway is served on the client URL. Requests are plain HTTP/1.0 with
//! `Content-Length` so the reply is neither chunked nor kept alive: read to EOF,
//! split at the blank line. int64 fields arrive as JSON strings.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Errors from the etcd gateway.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Connecting, writing or reading failed.
    #[error("etcd gateway at {addr}: {source}")]
    Io {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// No answer within the timeout.
    #[error("etcd gateway at {addr} did not answer {path} within {secs} s")]
    Timeout {
        addr: SocketAddr,
        path: String,
        secs: u64,
    },
    /// A reply that is not HTTP, not 200, or not the JSON we expect.
    #[error("etcd gateway {path}: unexpected reply: {detail}")]
    Reply { path: String, detail: String },
}

/// Result alias for this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

const TIMEOUT: Duration = Duration::from_secs(10);

/// Sends `method path` with a JSON body; returns (status, body).
async fn request(addr: SocketAddr, method: &str, path: &str, body: &str) -> Result<(u16, String)> {
    let io = |source| Error::Io { addr, source };
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.map_err(io)?;
        let req = format!(
            "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(req.as_bytes()).await.map_err(io)?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.map_err(io)?;
        Ok::<_, Error>(raw)
    };
    let raw = tokio::time::timeout(TIMEOUT, exchange)
        .await
        .map_err(|_| Error::Timeout {
            addr,
            path: path.to_string(),
            secs: TIMEOUT.as_secs(),
        })??;
    let text = String::from_utf8_lossy(&raw);
    let reply_err = |detail: String| Error::Reply {
        path: path.to_string(),
        detail,
    };
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| reply_err(format!("no header end in {text:?}")))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| reply_err(format!("bad status line in {head:?}")))?;
    Ok((status, body.to_string()))
}

async fn post_json(addr: SocketAddr, path: &str, body: &str) -> Result<serde_json::Value> {
    let (status, reply) = request(addr, "POST", path, body).await?;
    if status != 200 {
        return Err(Error::Reply {
            path: path.to_string(),
            detail: format!("HTTP {status}: {reply}"),
        });
    }
    serde_json::from_str(&reply).map_err(|e| Error::Reply {
        path: path.to_string(),
        detail: format!("not JSON ({e}): {reply}"),
    })
}

/// The store's current revision (the header of a one-key range request).
pub async fn current_revision(addr: SocketAddr) -> Result<i64> {
    // Key "\0" (base64 "AA==") need not exist; the header carries the revision.
    let reply = post_json(addr, "/v3/kv/range", r#"{"key":"AA==","limit":1}"#).await?;
    let revision = reply
        .get("header")
        .and_then(|h| h.get("revision"))
        .and_then(|r| match r {
            serde_json::Value::String(s) => s.parse::<i64>().ok(),
            other => other.as_i64(),
        });
    revision.ok_or_else(|| Error::Reply {
        path: "/v3/kv/range".to_string(),
        detail: format!("no header.revision in {reply}"),
    })
}

/// Compacts etcd's history up to its current revision and returns that revision.
///
/// Every resourceVersion below it is then gone for good: watches and paged lists
/// from older versions get a real `410 Expired` (once the apiserver's watch
/// cache no longer covers them).
pub async fn compact_now(addr: SocketAddr) -> Result<i64> {
    let revision = current_revision(addr).await?;
    let body = format!(r#"{{"revision":"{revision}","physical":true}}"#);
    post_json(addr, "/v3/kv/compaction", &body).await?;
    tracing::info!(revision, "compacted etcd");
    Ok(revision)
}
