//! The compactor's tasks: the seal/snapshot loop, which also answers
//! on-demand snapshot requests ([`Command`]), and the shipper.
//!
//! Shutdown is passed in (a [`CancellationToken`]): on cancel the loop
//! seals what is durable, makes one last attempt to ship (bounded by
//! `final_ship_timeout`), and returns; nothing is lost if that attempt
//! fails, the files wait locally for the next start.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::{CompactError, Compactor, Result, SnapshotInfo};

/// A request to the compactor.
#[derive(Debug)]
pub enum Command {
    /// Take a snapshot now.
    Snapshot {
        /// Label; labelled snapshots are kept until deleted.
        label: Option<String>,
        /// Reply only once the snapshot is in the store.
        wait: bool,
        /// Where the answer goes.
        reply: oneshot::Sender<Result<SnapshotInfo, String>>,
    },
}

/// A handle to ask the running compactor for things.
#[derive(Debug, Clone)]
pub struct CompactorHandle {
    /// Commands to the loop; bounded, so a flood of requests waits.
    tx: mpsc::Sender<Command>,
}

impl CompactorHandle {
    /// Asks for a snapshot and waits for the answer.
    pub async fn snapshot(&self, label: Option<String>, wait: bool) -> Result<SnapshotInfo> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Snapshot { label, wait, reply })
            .await
            .map_err(|_| CompactError::Stopped)?;
        rx.await
            .map_err(|_| CompactError::Stopped)?
            .map_err(CompactError::Task)
    }
}

/// Starts the loop and the shipper; both stop when `shutdown` is cancelled.
/// The returned join handle resolves after the final seal and ship.
pub fn spawn(
    c: Arc<Compactor>,
    shutdown: CancellationToken,
) -> (CompactorHandle, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(16);
    let join = tokio::spawn(run(c, rx, shutdown));
    (CompactorHandle { tx }, join)
}

async fn blocking<T: Send + 'static>(
    c: &Arc<Compactor>,
    f: impl FnOnce(&Compactor) -> Result<T> + Send + 'static,
) -> Result<T> {
    let c = Arc::clone(c);
    tokio::task::spawn_blocking(move || f(&c))
        .await
        .map_err(|e| CompactError::Task(e.to_string()))?
}

async fn run(c: Arc<Compactor>, mut rx: mpsc::Receiver<Command>, shutdown: CancellationToken) {
    let ship_now = Arc::new(tokio::sync::Notify::new());
    let shipper = tokio::spawn(ship_loop(
        Arc::clone(&c),
        Arc::clone(&ship_now),
        shutdown.clone(),
    ));
    let mut in_force = c.settings();
    let mut next_scheduled = in_force
        .schedule
        .as_ref()
        .and_then(|s| s.next_after(rewind_history::now_ms()));
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            cmd = rx.recv() => {
                let Some(Command::Snapshot { label, wait, reply }) = cmd else { break };
                let answer = on_demand(&c, label, wait, &ship_now).await;
                let _ = reply.send(answer.map_err(|e| e.to_string()));
            }
            _ = tick.tick() => {
                if c.sealer().seal_due() {
                    match blocking(&c, |c| c.sealer().seal_all()).await {
                        Ok(n) if n > 0 => ship_now.notify_one(),
                        Ok(_) => {}
                        Err(e) => tracing::error!(error = %e, "sealing failed; will retry"),
                    }
                }
                let now = rewind_history::now_ms();
                let settings = c.settings();
                if !Arc::ptr_eq(&settings, &in_force) {
                    // Reloaded: the schedule may have changed.
                    next_scheduled = settings.schedule.as_ref().and_then(|s| s.next_after(now));
                    in_force = Arc::clone(&settings);
                }
                let scheduled = next_scheduled.is_some_and(|t| now >= t);
                let threshold = settings.snapshot_after_events > 0
                    && c.snapshotter().events_since_snapshot() >= settings.snapshot_after_events;
                // A lineage that started fresh needs a snapshot before it
                // ships anything: take one once something is sealed.
                let first = {
                    let p = c.ledger().progress();
                    p.snapshot_first
                        && p.snapshots.is_empty()
                        && c.ledger().files().segments().is_ok_and(|s| !s.is_empty())
                };
                let threshold = threshold || first;
                if scheduled || threshold {
                    if scheduled {
                        next_scheduled = settings.schedule.as_ref().and_then(|s| s.next_after(now));
                    }
                    match blocking(&c, |c| c.snapshot(None)).await {
                        Ok(_) => ship_now.notify_one(),
                        Err(e) => tracing::error!(error = %e, "snapshot failed; will retry"),
                    }
                }
            }
        }
    }
    // Graceful stop: seal everything durable, one bounded last ship.
    if let Err(e) = blocking(&c, |c| c.sealer().seal_all()).await {
        tracing::error!(error = %e, "final seal failed; events stay in the journal");
    }
    let _ = shipper.await;
    if tokio::time::timeout(Duration::from_secs(10), c.shipper().ship())
        .await
        .is_err()
    {
        tracing::warn!("store did not take the last files before shutdown; they wait locally");
    }
}

async fn on_demand(
    c: &Arc<Compactor>,
    label: Option<String>,
    wait: bool,
    ship_now: &tokio::sync::Notify,
) -> Result<SnapshotInfo> {
    let snap = blocking(c, move |c| c.snapshot(label)).await?;
    if wait {
        c.shipper().ship().await?;
    } else {
        ship_now.notify_one();
    }
    Ok(c.info(&snap))
}

async fn ship_loop(c: Arc<Compactor>, now: Arc<tokio::sync::Notify>, shutdown: CancellationToken) {
    let mut backoff = Duration::from_secs(1);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = now.notified() => {}
            () = tokio::time::sleep(backoff) => {}
        }
        let result = tokio::select! {
            () = shutdown.cancelled() => return,
            r = c.shipper().ship() => r,
        };
        backoff = match result {
            Ok(()) => Duration::from_secs(1),
            Err(_) => (backoff * 2).min(Duration::from_secs(60)),
        };
    }
}
