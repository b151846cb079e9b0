//! A loopback TCP proxy between clients and the apiserver, for network faults.
//!
//! TLS passes through untouched (the serving certificate names 127.0.0.1, so a
//! kubeconfig pointing at the proxy verifies as usual). On command the proxy
//! stalls (holds every byte in both directions and new connections too, like a
//! black-holed link) or cuts every open connection at once (like a load
//! balancer or apiserver going away). Runs on the tokio runtime that started it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Shared switches read by every connection task.
#[derive(Debug)]
struct Shared {
    /// Where connections go.
    upstream: SocketAddr,
    /// While true, no byte moves and new connections wait before dialing.
    stalled: watch::Sender<bool>,
    /// Bumped by `cut_all`; a connection ends when it sees a change.
    cut: watch::Sender<u64>,
    /// Open client connections, for tests to wait on.
    open: AtomicUsize,
}

/// A running proxy. Dropping it closes the listener and every connection.
#[derive(Debug)]
pub struct TcpProxy {
    /// Where clients connect.
    addr: SocketAddr,
    /// Switches shared with the connection tasks.
    shared: Arc<Shared>,
    /// The accept loop; aborted on drop.
    accept: JoinHandle<()>,
}

impl TcpProxy {
    /// Listens on a free 127.0.0.1 port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream,
            stalled: watch::channel(false).0,
            cut: watch::channel(0).0,
            open: AtomicUsize::new(0),
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        tracing::debug!(%addr, %upstream, "proxy listening");
        Ok(Self {
            addr,
            shared,
            accept,
        })
    }

    /// The address clients should dial.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Holds all traffic (and new connections) until [`TcpProxy::resume`].
    pub fn stall(&self) {
        self.shared.stalled.send_replace(true);
        tracing::info!(addr = %self.addr, "proxy stalled");
    }

    /// Lets traffic flow again, including what was held.
    pub fn resume(&self) {
        self.shared.stalled.send_replace(false);
        tracing::info!(addr = %self.addr, "proxy resumed");
    }

    /// Closes every open connection now. New connections are still accepted.
    pub fn cut_all(&self) {
        self.shared.cut.send_modify(|generation| *generation += 1);
        tracing::info!(addr = %self.addr, "proxy cut all connections");
    }

    /// Client connections currently open through the proxy.
    pub fn open_connections(&self) -> usize {
        self.shared.open.load(Ordering::SeqCst)
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut_all();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((client, _)) => {
                tokio::spawn(serve(client, shared.clone()));
            }
            Err(e) => {
                tracing::warn!(error = %e, "proxy accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// Counts a connection as open for as long as it lives.
struct OpenGuard(Arc<Shared>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn serve(client: TcpStream, shared: Arc<Shared>) {
    shared.open.fetch_add(1, Ordering::SeqCst);
    let _guard = OpenGuard(shared.clone());
    let mut cut = shared.cut.subscribe();
    cut.mark_unchanged();
    let stalled = shared.stalled.subscribe();
    let relay = async {
        wait_flowing(stalled.clone()).await;
        let upstream = match TcpStream::connect(shared.upstream).await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "proxy could not reach upstream");
                return;
            }
        };
        let _ = client.set_nodelay(true);
        let _ = upstream.set_nodelay(true);
        let (client_rx, client_tx) = client.into_split();
        let (up_rx, up_tx) = upstream.into_split();
        tokio::join!(
            pump(client_rx, up_tx, stalled.clone()),
            pump(up_rx, client_tx, stalled.clone())
        );
    };
    tokio::select! {
        () = relay => {}
        _ = cut.changed() => {}
    }
}

/// Returns once the proxy is not stalled.
async fn wait_flowing(mut stalled: watch::Receiver<bool>) {
    // An Err means the proxy is gone; the cut signal ends the task then.
    let _ = stalled.wait_for(|s| !*s).await;
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    stalled: watch::Receiver<bool>,
) {
    let mut buf = vec![0_u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        wait_flowing(stalled.clone()).await;
        let Some(chunk) = buf.get(..n) else { break };
        if to.write_all(chunk).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}
