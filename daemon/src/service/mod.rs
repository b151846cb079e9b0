//! Running as a service: wires the recorder ([`crate::Recorder`]) to the
//! compactor, the admin socket and the metrics endpoint, and talks to
//! systemd. The recorder is opened first and hands over what the others
//! share with it (its status board, the journal's reader, the writer's
//! durable position, the handles a reload changes); then everything runs.
//!
//! - **Readiness**: `READY=1` (`Type=notify`) once the journal is open and
//!   the status file, `/readyz` and the watchdog run, before the apiserver
//!   has answered (a plane that is down at boot must not meet the unit's
//!   start timeout), and again once the compactor runs and the admin socket
//!   listens. Whether rewindd records is `/readyz` and `rewindd status`.
//! - **Watchdog**: when systemd sets `WATCHDOG_USEC`, `WATCHDOG=1` every
//!   half period while the journal writer thread makes progress: it turns
//!   its loop at least once a second, idle or not, and each retry of a
//!   failing commit is a turn (see [`feed_watchdog`]). A writer that is
//!   stuck (no turn for [`crate::status::WRITER_STUCK_AFTER`]) or has
//!   stopped gets the daemon restarted. An apiserver that is down, or not
//!   reached yet at start, does not: the writer keeps turning (or has not
//!   started), and a restart would only relist everything once it is back.
//! - **Lineage**: before anything is watched, the journal is compared with
//!   the store and the recorder continues its lineage, adopts a history
//!   from before lineages, or starts a child lineage (see [`lineage`]).
//! - **Leadership** (`[leader]`, see [`crate::leader`]): with a Lease the
//!   recorder first runs as a standby (records into its journal, ships
//!   nothing, and keeps its journal to `local_window`, see [`bounded`]);
//!   once it holds the Lease the recorder is reopened on
//!   the same journal and the lineage decided as at start: its own journal
//!   continuing the store's newest lineage continues it, anything else (a
//!   takeover) is a child lineage of it. Deposed, it stops recording and
//!   exits with the reason; after the last ship of a clean stop it
//!   releases the Lease.
//! - **SIGTERM/SIGINT**: watchers stop, the writer commits what is queued,
//!   then the compactor seals every durable event and makes one bounded
//!   attempt to store it; exit 0. Nothing sealed is lost if the store is
//!   down: the files wait in `<data_dir>/compact`.
//! - **SIGHUP**: re-reads and validates the whole configuration; what can
//!   change while running is applied, the rest is named as needing a
//!   restart (see [`reload`]).

pub mod bounded;
pub mod lineage;
pub mod reload;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use rewind_history::now_ms;
use rewind_history::store::RetentionPolicy;

use crate::compact::{CompactError, Compactor, prune};
use crate::config::Config;
use crate::daemon::{Hooks, Recorder};
use crate::leader::{self, Leadership, Role};
use crate::metrics::Sources;
use crate::status::{Beat, Board, WRITER_STUCK_AFTER};

/// Errors of the service wrapper.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Recording failed.
    #[error(transparent)]
    Daemon(#[from] crate::daemon::Error),
    /// Compaction or store setup failed.
    #[error(transparent)]
    Compact(#[from] CompactError),
    /// The admin socket could not be set up.
    #[error(transparent)]
    Admin(#[from] crate::admin::AdminError),
    /// The metrics endpoint could not be set up.
    #[error(transparent)]
    Metrics(#[from] crate::metrics::MetricsError),
    /// The journal and the store do not agree and cannot be reconciled.
    #[error(transparent)]
    Lineage(#[from] lineage::LineageError),
    /// The journal could not be read.
    #[error("journal: {0}")]
    Journal(#[from] crate::journal::Error),
    /// Leader election failed, or this recorder was deposed.
    #[error(transparent)]
    Leader(#[from] leader::LeaderError),
    /// The store could not be opened.
    #[error("store: {0}")]
    Store(#[from] rewind_history::store::StoreError),
    /// The recorder could not be placed in the store.
    #[error(transparent)]
    Placement(#[from] crate::placement::PlacementError),
    /// The recorder's task ended without a result (it panicked or was
    /// cancelled).
    #[error("the recorder stopped during startup")]
    Startup,
}

fn notify(state: &[sd_notify::NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::debug!(error = %e, "sd_notify failed");
    }
}

/// Runs the whole daemon until `shutdown`: recorder, compactor, admin
/// socket, metrics, systemd notifications. `config` is the configuration it
/// starts with ([`crate::config::Settings::load`]); `flags` are the
/// command-line settings the daemon was started with (they name the config
/// file); a SIGHUP rebuilds the configuration from them.
pub async fn run(
    config: Config,
    flags: crate::config::Settings,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServiceError> {
    // kube (ring) and the S3 client (aws-lc-rs) both link rustls providers.
    rewind_history::install_tls_provider();
    let mut config = config;
    let data_dir = config.data_dir.clone();
    let mut settings = config.service.clone();
    let running = config.clone();
    let stop = CancellationToken::new();
    {
        let stop = stop.clone();
        tokio::spawn(async move {
            shutdown.await;
            stop.cancel();
        });
    }
    // The lineage is decided before anything is watched: it needs the
    // cluster's identity and the store's lineages.
    let client = crate::daemon::client(&config.cluster).await?;
    let mut recorder = Recorder::open(config.clone())?;
    let Some(cluster_uid) = wait_for_cluster(&client, &config, &recorder, &stop).await? else {
        return Ok(());
    };
    config.cluster_id = Some(cluster_uid.clone());
    recorder.set_cluster_id(cluster_uid.clone());
    // The store rooted at this cluster's place: the compactor and the
    // lineage decision see only this cluster's history.
    settings.compact.store = crate::placement::resolve(
        &data_dir,
        &settings.compact.store,
        settings.compact.store_retry,
        &cluster_uid,
        config.adopt_store,
    )
    .await?;
    let store = rewind_history::store::Store::open_with(
        &settings.compact.store,
        settings.compact.store_retry,
    )
    .await?;
    // Leadership: without a Lease this recorder always ships; with one it
    // records as a standby until it holds the Lease, and only then decides
    // its lineage (a takeover makes a child of the store's newest lineage).
    let lease_stop = CancellationToken::new();
    let (leadership, lease_task) = match &config.leader {
        None => (Leadership::unconfigured(), None),
        Some(ls) => {
            let l = Leadership::standby(leader::identity()?, ls);
            let task = {
                let (client, ls, l, token, stop) = (
                    client.clone(),
                    ls.clone(),
                    l.clone(),
                    lease_stop.clone(),
                    stop.clone(),
                );
                tokio::spawn(async move {
                    let r = leader::run(client, ls, l, token).await;
                    if r.is_err() {
                        // Deposed: stop recording; the final ship is refused
                        // by the shipper's gate.
                        stop.cancel();
                    }
                    r
                })
            };
            (l, Some(task))
        }
    };
    if config.leader.is_some() {
        let prepared = lineage::prepare_standby(&config, &store, recorder).await?;
        match standby(prepared, &config, &leadership, &stop).await? {
            Some(r) => recorder = r,
            None => {
                lease_stop.cancel();
                return finish_lease(lease_task).await;
            }
        }
    }
    let head_fence = probe_store(&store, &leadership).await;
    let (recorder, established) =
        lineage::establish(&config, &cluster_uid, &store, recorder).await?;
    // A standby's journal that became the lineage keeps its own numbers;
    // the compactor sees the lineage's.
    let offset = recorder.seq_offset()?;
    let board = recorder.board();
    let status_sync = tokio::spawn(sync_leader_status(
        board.clone(),
        leadership.clone(),
        lease_stop.clone(),
    ));
    let log: Arc<dyn crate::compact::EventLog> = if offset > 0 {
        Arc::new(crate::compact::log::Shifted::new(
            recorder.log_reader(),
            offset,
        ))
    } else {
        Arc::new(recorder.log_reader())
    };
    let durable = crate::compact::log::shift_durable(recorder.durable_seq(), offset);
    let live = recorder.live();

    let background = CancellationToken::new();
    let compactor = Compactor::open(
        log,
        Some(durable),
        &data_dir.join("compact"),
        settings.compact.clone(),
    )
    .await?;
    lineage::apply_to_ledger(compactor.ledger(), &store, &established).await?;
    compactor.shipper().set_leadership(leadership.clone());
    if head_fence {
        let holder = match leadership.identity() {
            Some(id) => id.to_owned(),
            None => leader::identity()?,
        };
        compactor
            .shipper()
            .enable_fence(leadership.epoch().unwrap_or(0), holder);
    }
    if let Some(cut) = established.first_snapshot {
        // A takeover: the child's first snapshot at the cut, nothing
        // before it shipped.
        let (compactor, set) = (Arc::clone(&compactor), running.recorded_set.clone());
        let base = established.standby_base.clone();
        tokio::task::spawn_blocking(move || {
            lineage::snapshot_at_cut(&compactor, cut, set, base.as_ref())
        })
        .await
        .map_err(|_| ServiceError::Startup)??;
    }
    {
        // The files sealed from now on name the set this run records.
        let compactor = Arc::clone(&compactor);
        let set = running.recorded_set.clone();
        match tokio::task::spawn_blocking(move || compactor.record_set(set)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot record the resource set in force"),
            Err(e) => tracing::warn!(error = %e, "recording the resource set in force failed"),
        }
    }
    // The watchers start only now: what the previous run left unsealed is
    // sealed under its own set, and everything after under this one.
    let recorder = tokio::spawn(recorder.run(stop.clone().cancelled_owned(), Hooks::default()));
    let (handle, compact_task) = crate::compact::spawn(Arc::clone(&compactor), background.clone());

    let listener = crate::admin::bind(&settings.admin_socket, settings.admin_group.as_deref())?;
    let admin_task = tokio::spawn(crate::admin::serve(listener, handle, background.clone()));
    tracing::info!(socket = %settings.admin_socket.display(), "admin socket listening");

    let sources = Sources {
        board: Some(board),
        compact: Some(Arc::clone(&compactor.stats)),
        disk_budget_bytes: settings.compact.disk_budget_bytes,
    };
    let metrics_task = match settings.metrics_addr {
        Some(addr) => {
            // Bind now so a taken port fails the start, not a scrape.
            let task = tokio::spawn(crate::metrics::serve(
                addr,
                sources.clone(),
                background.clone(),
            ));
            Some(task)
        }
        None => None,
    };

    let policy = Arc::new(RwLock::new(settings.compact.retention));
    let auto_prune = Arc::new(AtomicBool::new(settings.auto_prune));
    let prune_task = tokio::spawn(prune_loop(
        Arc::clone(&compactor),
        Arc::clone(&policy),
        Arc::clone(&auto_prune),
        background.clone(),
    ));
    let targets = reload::Targets {
        compactor: Arc::clone(&compactor),
        live: Some(live),
        policy: Arc::clone(&policy),
        auto_prune,
    };
    let hup_task = tokio::spawn(reload_loop(flags, running, targets, background.clone()));
    let watchdog_task = tokio::spawn(watchdog(sources, background.clone()));

    notify(&[sd_notify::NotifyState::Ready]);
    tracing::info!("rewindd ready");

    let recorded = recorder.await;
    notify(&[sd_notify::NotifyState::Stopping]);
    tracing::info!("recorder stopped; sealing and storing what is durable");
    background.cancel();
    let _ = compact_task.await;
    let _ = admin_task.await;
    if let Some(t) = metrics_task {
        let _ = t.await;
    }
    let _ = prune_task.await;
    let _ = hup_task.await;
    let _ = watchdog_task.await;
    let _ = std::fs::remove_file(&settings.admin_socket);
    // Everything is shipped that will be: only now may a standby take over.
    lease_stop.cancel();
    let _ = status_sync.await;
    if let Some(ls) = &config.leader {
        leader::release(client.clone(), ls, &leadership).await;
    }
    let deposed = finish_lease(lease_task).await;
    match recorded {
        Ok(r) => r?,
        Err(_) => return Err(ServiceError::Startup),
    }
    deposed
}

/// Finds which conditional writes the store honours (only once this
/// recorder may write: the probe writes objects) and says what fences a
/// deposed writer then; returns whether the store has compare-and-swap
/// (the head fence). Not fatal: names are write-once either way.
async fn probe_store(store: &rewind_history::store::Store, leadership: &Leadership) -> bool {
    match store.probe_conditional_writes().await {
        Ok(w) => {
            let fence = if w.compare_and_swap {
                "the store's head is swapped (compare-and-swap) before every file: once another writer has swapped it, this one writes nothing more"
            } else if w.create_only {
                "write-once names refuse a second write; the Lease deadline and the lineage check before each ship fence a deposed leader"
            } else {
                "write-once names are checked before each write (not atomic on this store); the Lease deadline and the lineage check before each ship fence a deposed leader, and the worst left behind is an orphaned file that `rewind verify` reports"
            };
            tracing::info!(store = store.kind(), writes = %w, fence, "store conditional writes probed");
            leadership.set_store_writes(w.to_string());
            w.compare_and_swap
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot probe the store's conditional writes");
            false
        }
    }
}

/// The leader loop's result once it has stopped: an error when this
/// recorder was deposed.
async fn finish_lease(
    task: Option<tokio::task::JoinHandle<Result<(), leader::LeaderError>>>,
) -> Result<(), ServiceError> {
    match task {
        Some(t) => match t.await {
            Ok(r) => r.map_err(Into::into),
            Err(_) => Err(ServiceError::Startup),
        },
        None => Ok(()),
    }
}

/// Copies the leadership into the status board (status file, `/metrics`)
/// every second and on each change of role.
async fn sync_leader_status(board: Board, leadership: Leadership, stop: CancellationToken) {
    let mut roles = leadership.watch();
    loop {
        board.update(|s| s.leader = Some(leadership.status()));
        tokio::select! {
            () = stop.cancelled() => {
                board.update(|s| s.leader = Some(leadership.status()));
                return;
            }
            r = roles.changed() => if r.is_err() { return },
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// Records as a standby: the recorder runs (journal, status file,
/// `/metrics`, watchdog) but nothing is sealed or shipped, until this
/// recorder holds the Lease (returns the recorder reopened on the same
/// journal, for the lineage decision) or `stop` (returns `None`).
async fn standby(
    recorder: Recorder,
    config: &Config,
    leadership: &Leadership,
    stop: &CancellationToken,
) -> Result<Option<Recorder>, ServiceError> {
    let mut roles = leadership.watch();
    let board = recorder.board();
    let halt = CancellationToken::new();
    let sync = tokio::spawn(sync_leader_status(
        board.clone(),
        leadership.clone(),
        halt.clone(),
    ));
    let sources = Sources {
        board: Some(board),
        compact: None,
        disk_budget_bytes: config.service.compact.disk_budget_bytes,
    };
    let metrics_task = config
        .service
        .metrics_addr
        .map(|addr| tokio::spawn(crate::metrics::serve(addr, sources.clone(), halt.clone())));
    let watchdog_task = tokio::spawn(watchdog(sources, halt.clone()));
    let keeper_task = keep_bounded(&recorder, config, halt.clone())?;
    let task = tokio::spawn(recorder.run(halt.clone().cancelled_owned(), Hooks::default()));
    tracing::info!(
        identity = leadership.identity().unwrap_or_default(),
        "standby: recording into the journal, shipping nothing until this recorder holds the Lease"
    );
    let leader = loop {
        if *roles.borrow_and_update() == Role::Leader {
            break true;
        }
        tokio::select! {
            () = stop.cancelled() => break false,
            r = roles.changed() => if r.is_err() { break false },
        }
    };
    halt.cancel();
    let recorded = task.await;
    let _ = sync.await;
    let _ = watchdog_task.await;
    if let Some(t) = keeper_task {
        let _ = t.await;
    }
    if let Some(t) = metrics_task
        && let Ok(Err(e)) = t.await
    {
        return Err(e.into());
    }
    match recorded {
        Ok(r) => r?,
        Err(_) => return Err(ServiceError::Startup),
    }
    if !leader {
        return Ok(None);
    }
    tracing::info!("holding the Lease: deciding the lineage and starting to ship");
    Ok(Some(lineage::reopen(config).await?))
}

/// Bounds a standby's journal by the local window until `halt`
/// ([`bounded`]): every `seal_interval`, the events older than the window
/// are folded into the standby's base snapshot and trimmed. Only for a
/// journal without a lineage (a journal that still continues a lineage
/// holds events its next run as the leader ships: it is not trimmed
/// here). A directory left by another journal is moved aside first.
fn keep_bounded(
    recorder: &Recorder,
    config: &Config,
    halt: CancellationToken,
) -> Result<Option<tokio::task::JoinHandle<()>>, ServiceError> {
    let (lineage, _, _) = recorder.journal_lineage()?;
    if lineage.is_some() {
        return Ok(None);
    }
    let log: Arc<dyn crate::compact::EventLog> = Arc::new(recorder.log_reader());
    let dir = bounded::standby_dir(&config.data_dir);
    let settings = config.service.compact.clone();
    let mut keeper = bounded::StandbyKeeper::open(
        Arc::clone(&log),
        recorder.durable_seq(),
        &dir,
        settings.clone(),
    )?;
    if keeper.is_stale() {
        let aside = config.data_dir.join(format!("aside-{}", now_ms()));
        tracing::warn!(dir = %dir.display(), "the standby's base belongs to another journal: moved aside");
        drop(keeper);
        lineage::move_aside(&dir, &aside)?;
        keeper = bounded::StandbyKeeper::open(log, recorder.durable_seq(), &dir, settings.clone())?;
    }
    let keeper = Arc::new(keeper);
    let every = settings.seal_interval.max(Duration::from_secs(1));
    Ok(Some(tokio::spawn(async move {
        loop {
            tokio::select! {
                () = halt.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
            let k = Arc::clone(&keeper);
            match tokio::task::spawn_blocking(move || k.keep()).await {
                Ok(Ok(n)) if n > 0 => {
                    tracing::info!(events = n, "standby journal trimmed to its local window")
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "could not bound the standby's journal; retrying")
                }
                Err(e) => tracing::warn!(error = %e, "bounding the standby's journal failed"),
            }
        }
    })))
}

/// Waits until the cluster's identity is known (or `stop`), while the
/// status file, `/readyz` and the watchdog already run on the recorder's
/// board: an apiserver that cannot be reached at start shows as not ready
/// with its reason, and does not get the daemon restarted. These early
/// tasks end before the lineage is decided (which may reopen the recorder
/// with a new board); the service starts its own afterwards.
async fn wait_for_cluster(
    client: &kube::Client,
    config: &Config,
    recorder: &Recorder,
    stop: &CancellationToken,
) -> Result<Option<String>, ServiceError> {
    let board = recorder.board();
    let early = CancellationToken::new();
    let status_task = tokio::spawn(crate::daemon::status_loop(
        board.clone(),
        config.status_path(),
        config.status_interval,
        early.clone(),
    ));
    let sources = Sources {
        board: Some(board.clone()),
        compact: None,
        disk_budget_bytes: config.service.compact.disk_budget_bytes,
    };
    let metrics_task = config
        .service
        .metrics_addr
        .map(|addr| tokio::spawn(crate::metrics::serve(addr, sources.clone(), early.clone())));
    let watchdog_task = tokio::spawn(watchdog(sources, early.clone()));
    // Started as far as systemd is concerned: an apiserver that is down at
    // boot must not run into the unit's start timeout (a kill and a restart
    // loop); whether rewindd records is what `/readyz` and the status say.
    notify(&[sd_notify::NotifyState::Ready]);
    let id = crate::daemon::cluster_id(client, config.cluster_id.as_ref(), &board, stop).await;
    early.cancel();
    let _ = status_task.await;
    let _ = watchdog_task.await;
    if let Some(t) = metrics_task
        && let Ok(Err(e)) = t.await
    {
        return Err(e.into());
    }
    Ok(id)
}

/// The watchdog's rule: feed while the writer turns its loop, or before
/// it starts (the recorder is waiting for the cluster, which a restart
/// would not bring); withhold once it is stuck or stopped.
#[must_use]
pub fn feed_watchdog(beat: Beat) -> bool {
    match beat {
        Beat::NotStarted => true,
        Beat::Alive(age) => age <= WRITER_STUCK_AFTER,
        Beat::Stopped => false,
    }
}

async fn watchdog(src: Sources, stop: CancellationToken) {
    let Some(period) = sd_notify::watchdog_enabled() else {
        return;
    };
    let Some(board) = src.board else {
        return;
    };
    let heartbeat = board.writer_heartbeat();
    let mut tick = tokio::time::interval(period / 2);
    let mut withheld = false;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let beat = heartbeat.state();
        if feed_watchdog(beat) {
            if std::mem::take(&mut withheld) {
                tracing::info!("journal writer turns again: feeding the systemd watchdog");
            }
            notify(&[sd_notify::NotifyState::Watchdog]);
        } else if !std::mem::replace(&mut withheld, true) {
            tracing::error!(writer = ?beat, "journal writer stuck or stopped: withholding the systemd watchdog ping");
        }
    }
}

async fn reload_loop(
    flags: crate::config::Settings,
    mut running: Config,
    targets: reload::Targets,
    stop: CancellationToken,
) {
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; reload needs a restart");
        return;
    };
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            s = hup.recv() => if s.is_none() { return },
        }
        notify(&[sd_notify::NotifyState::Reloading]);
        // A changed resource set seals the journal first: blocking.
        let (f, r, t) = (flags.clone(), running.clone(), targets.clone());
        if let Ok(Some(now)) = tokio::task::spawn_blocking(move || reload::reload(&f, &r, &t)).await
        {
            running = now;
        }
        notify(&[sd_notify::NotifyState::Ready]);
    }
}

async fn prune_loop(
    c: Arc<Compactor>,
    policy: Arc<RwLock<RetentionPolicy>>,
    enabled: Arc<AtomicBool>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(600)) => {}
        }
        if !enabled.load(Ordering::Relaxed) {
            continue;
        }
        let p = policy.read().map(|p| *p).unwrap_or_default();
        if p.is_empty() {
            continue;
        }
        if let Err(e) = c.shipper().before_write().await {
            tracing::debug!(error = %e, "not pruning: this recorder may not write to the store");
            continue;
        }
        let now = now_ms();
        let store = c.shipper().store();
        match prune::plan(store, &p, now).await {
            Ok(plan) => {
                if let Err(e) = prune::execute(store, &plan, now).await {
                    tracing::warn!(error = %e, "prune failed; will retry");
                }
            }
            Err(e) => tracing::warn!(error = %e, "prune could not list the store"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::Heartbeat;

    #[test]
    fn the_watchdog_is_fed_by_the_writer_turning_not_by_the_process() {
        let hb = Heartbeat::default();
        assert!(
            feed_watchdog(hb.state()),
            "before the writer starts (waiting for an unreachable apiserver): fed"
        );
        hb.beat();
        assert!(matches!(hb.state(), Beat::Alive(_)));
        assert!(feed_watchdog(hb.state()), "a writer that just turned: fed");
        assert!(feed_watchdog(Beat::Alive(WRITER_STUCK_AFTER)));
        assert!(
            !feed_watchdog(Beat::Alive(WRITER_STUCK_AFTER + Duration::from_millis(1))),
            "a writer stuck past the limit: withheld"
        );
        hb.stop();
        assert_eq!(hb.state(), Beat::Stopped);
        assert!(!feed_watchdog(hb.state()), "a stopped writer: withheld");
        hb.beat();
        assert_eq!(hb.state(), Beat::Stopped, "a stopped writer stays stopped");
    }

    #[test]
    fn a_writer_thread_that_returns_or_unwinds_stops_its_heartbeat() {
        let hb = std::sync::Arc::new(Heartbeat::default());
        let h = std::sync::Arc::clone(&hb);
        let t = std::thread::spawn(move || {
            let _stop = crate::status::StopOnDrop(std::sync::Arc::clone(&h));
            h.beat();
            panic!("writer dies");
        });
        assert!(t.join().is_err());
        assert_eq!(hb.state(), Beat::Stopped);
        assert!(!feed_watchdog(hb.state()));
    }
}
