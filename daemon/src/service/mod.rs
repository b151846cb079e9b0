//! Running as a service: wires the recorder ([`crate::Recorder`]) to the
//! compactor, the admin socket and the metrics endpoint, and talks to
//! systemd. The recorder is opened first and hands over what the others
//! share with it (its status board, the journal's reader, the writer's
//! durable position, the handles a reload changes); then everything runs.
//!
//! - **Readiness**: `READY=1` once the journal is open, the compactor runs
//!   and the admin socket listens (`Type=notify`).
//! - **Watchdog**: when systemd sets `WATCHDOG_USEC`, `WATCHDOG=1` every
//!   half period, but only while the journal commits, so a wedged journal
//!   gets the daemon restarted.
//! - **SIGTERM/SIGINT**: watchers stop, the writer commits what is queued,
//!   then the compactor seals every durable event and makes one bounded
//!   attempt to store it; exit 0. Nothing sealed is lost if the store is
//!   down: the files wait in `<data_dir>/compact`.
//! - **SIGHUP**: re-reads and validates the whole configuration; what can
//!   change while running is applied, the rest is named as needing a
//!   restart (see [`reload`]).

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
use crate::metrics::Sources;

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
    let data_dir = config.data_dir.clone();
    let settings = config.service.clone();
    let running = config.clone();
    let recorder = Recorder::open(config)?;
    let board = recorder.board();
    let log = recorder.log_reader();
    let durable = recorder.durable_seq();
    let live = recorder.live();

    let background = CancellationToken::new();
    let compactor = Compactor::open(
        Arc::new(log),
        Some(durable),
        &data_dir.join("compact"),
        settings.compact.clone(),
    )
    .await?;
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
    let recorder = tokio::spawn(recorder.run(shutdown, Hooks::default()));
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
    match recorded {
        Ok(r) => r.map_err(Into::into),
        Err(_) => Err(ServiceError::Startup),
    }
}

async fn watchdog(src: Sources, stop: CancellationToken) {
    let Some(period) = sd_notify::watchdog_enabled() else {
        return;
    };
    let mut tick = tokio::time::interval(period / 2);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let journal_ok = src
            .board
            .as_ref()
            .is_none_or(|b| b.snapshot().journal.healthy);
        if journal_ok {
            notify(&[sd_notify::NotifyState::Watchdog]);
        } else {
            tracing::warn!("journal unhealthy: withholding the systemd watchdog ping");
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
