//! Wiring the recorder: [`Recorder::open`] opens the journal and builds what
//! other tasks share with the running recorder (the status [`Board`], the
//! journal's [`LogReader`], the writer's durable position, the handles a
//! reload uses); [`Recorder::run`] connects to the cluster and runs the
//! writer thread, the watch supervisor and the status file until `shutdown`
//! completes; then it stops the watchers, lets the writer drain and commit
//! what is queued, and returns. [`run`] does both.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::Api;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config as KubeConfig};
use tokio::sync::{Semaphore, broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::{ClusterSource, Config};
use crate::ingest::Ingestor;
use crate::journal::{self, Journal, LogReader};
use crate::status::{Board, write_status};
use crate::watch::{Supervisor, WatchCtx};
use crate::writer::{CommitNotice, Writer, WriterOptions};

/// Errors that stop the daemon.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The data directory cannot be created.
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The journal cannot be opened (another rewindd holds it, or it is
    /// from an unsupported version).
    #[error("cannot open the journal: {0}")]
    Journal(#[from] journal::Error),
    /// The cluster configuration is unusable.
    #[error("cluster configuration: {0}")]
    Kube(String),
    /// The writer thread died.
    #[error("journal writer thread failed")]
    Writer,
}

/// Result alias of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Optional observers of a running recorder.
#[derive(Default)]
pub struct Hooks {
    /// Receives every durable batch.
    pub commits: Option<broadcast::Sender<Arc<CommitNotice>>>,
}

/// What a configuration reload can change in the running recorder without
/// a restart.
#[derive(Clone)]
pub struct LiveRecorder {
    /// New resource sets for the watch supervisor.
    pub resource_set: Arc<tokio::sync::watch::Sender<rewind_history::select::ResourceSet>>,
    /// The ingestor's ignore rules.
    pub ignore: crate::ingest::SharedIgnore,
}

impl std::fmt::Debug for LiveRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveRecorder").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks").finish_non_exhaustive()
    }
}

/// Builds a kube client for the configured cluster.
pub async fn client(source: &ClusterSource) -> Result<Client> {
    rewind_history::install_tls_provider();
    let cfg = match source {
        ClusterSource::InCluster => {
            KubeConfig::incluster().map_err(|e| Error::Kube(e.to_string()))?
        }
        ClusterSource::Kubeconfig { path, context } => {
            let opts = KubeConfigOptions {
                context: context.clone(),
                ..KubeConfigOptions::default()
            };
            match path {
                Some(p) => {
                    let kc = Kubeconfig::read_from(p)
                        .map_err(|e| Error::Kube(format!("{}: {e}", p.display())))?;
                    KubeConfig::from_custom_kubeconfig(kc, &opts)
                        .await
                        .map_err(|e| Error::Kube(e.to_string()))?
                }
                None => KubeConfig::from_kubeconfig(&opts)
                    .await
                    .map_err(|e| Error::Kube(e.to_string()))?,
            }
        }
    };
    let mut cfg = cfg;
    // kube retries a 503, 504 or 429 up to 15 times with waits doubling to
    // minutes: one aggregated API whose backend is down then holds a
    // discovery pass for about five minutes, and its group is never named.
    // Every request of the recorder already retries on its own schedule
    // (watchers with their backoff, discovery every interval, the cluster
    // id with backoff), so a failure is reported at once instead.
    cfg.default_retry = false;
    Client::try_from(cfg).map_err(|e| Error::Kube(e.to_string()))
}

/// The cluster id: configured, else the uid of `kube-system` (as Rancher
/// Backups names its files). Retries with backoff until it is known or
/// `cancel`; meanwhile the board says why the apiserver cannot be used
/// (unreachable, TLS, an API error), and each new reason is logged.
pub(crate) async fn cluster_id(
    client: &Client,
    configured: Option<&String>,
    board: &Board,
    cancel: &CancellationToken,
) -> Option<String> {
    if let Some(id) = configured {
        return Some(id.clone());
    }
    let api: Api<Namespace> = Api::all(client.clone());
    let mut backoff = Duration::from_millis(200);
    let mut last: Option<String> = None;
    loop {
        match api.get("kube-system").await {
            Ok(ns) => {
                board.update(|s| s.apiserver = None);
                if let Some(uid) = ns.metadata.uid {
                    return Some(uid);
                }
            }
            Err(e) => {
                let problem = crate::status::apiserver_problem(&e);
                if last.as_deref() != Some(problem.as_str()) {
                    warn!(error = %problem, retry_in_ms = backoff.as_millis(), "cannot read kube-system's uid for the cluster id; retrying with backoff (or set cluster.id)");
                    last = Some(problem.clone());
                }
                board.update(|s| s.apiserver = Some(problem));
            }
        }
        tokio::select! {
            () = cancel.cancelled() => return None,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

/// Creates the data directory 0700, and tightens an existing one to 0700: it
/// holds the plain-text journal, so only the daemon's user may enter it.
fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let mode = std::fs::metadata(dir)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        warn!(dir = %dir.display(), mode = format!("{mode:o}"), "data directory was readable by others; setting it to 0700");
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Runs the recorder until `shutdown` completes.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<()> {
    Recorder::open(config)?
        .run(shutdown, Hooks::default())
        .await
}

/// A recorder with its journal open, not yet running. Hands out, before it
/// runs, everything other tasks share with it.
pub struct Recorder {
    /// The validated configuration.
    config: Config,
    /// The open journal; the writer thread takes it.
    journal: Journal,
    /// The status board, also shown by `/metrics` and the watchdog.
    board: Board,
    /// The journal's reader for other tasks; the writer detaches it around
    /// a reopen.
    reader: LogReader,
    /// One past the last durable event; the writer publishes on it.
    durable: tokio::sync::watch::Sender<u64>,
    /// Resource sets for the watch supervisor (and a reload).
    resource_set: Arc<tokio::sync::watch::Sender<rewind_history::select::ResourceSet>>,
    /// The supervisor's end of `resource_set`.
    resource_set_rx: tokio::sync::watch::Receiver<rewind_history::select::ResourceSet>,
    /// The ingestor's ignore rules (and a reload's).
    ignore: crate::ingest::SharedIgnore,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("journal", &self.journal.dir())
            .finish_non_exhaustive()
    }
}

impl Recorder {
    /// Creates the data directory and opens the journal.
    pub fn open(config: Config) -> Result<Self> {
        create_private_dir(&config.data_dir).map_err(|source| Error::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
        let journal = Journal::open(&config.journal_dir(), &config.journal)?;
        let board = Board::new();
        board.update(|s| s.journal.next_seq = journal.next_seq());
        // Until the writer runs, what is in the journal is what is durable.
        let (durable, _) = tokio::sync::watch::channel(journal.next_seq());
        let reader = journal.log_reader();
        info!(dir = %config.journal_dir().display(), next_seq = journal.next_seq(), "journal open");
        let (set_tx, resource_set_rx) = tokio::sync::watch::channel(config.resource_set.clone());
        let ignore = Arc::new(std::sync::RwLock::new(config.ignore.clone()));
        Ok(Self {
            config,
            journal,
            board,
            reader,
            durable,
            resource_set: Arc::new(set_tx),
            resource_set_rx,
            ignore,
        })
    }

    /// The journal's lineage, its next seq in the lineage's numbering
    /// (see [`Recorder::seq_offset`]), and whether it never recorded
    /// anything.
    pub fn journal_lineage(&self) -> Result<(Option<String>, u64, bool)> {
        Ok((
            self.journal.lineage()?,
            self.journal
                .next_seq()
                .saturating_add(self.journal.seq_offset()?),
            self.journal.is_new()?,
        ))
    }

    /// What the lineage adds to the journal's sequence numbers (0 but for
    /// a standby's journal that became a lineage at a takeover).
    pub fn seq_offset(&self) -> Result<u64> {
        Ok(self.journal.seq_offset()?)
    }

    /// Makes the journal, recorded by a standby without a lineage, lineage
    /// `id`'s, its seq `s` being the lineage's `s + offset`.
    pub fn take_lineage_at(&mut self, id: &str, offset: u64) -> Result<()> {
        Ok(self.journal.take_lineage_at(id, offset)?)
    }

    /// Records that the journal continues lineage `id`.
    pub fn set_lineage(&mut self, id: &str) -> Result<()> {
        Ok(self.journal.set_lineage(id)?)
    }

    /// Starts the (new) journal as lineage `id` at `first_seq`.
    pub fn begin_lineage(&mut self, id: &str, first_seq: u64) -> Result<()> {
        self.journal.begin_lineage(id, first_seq)?;
        let next = self.journal.next_seq();
        self.durable.send_replace(next);
        self.board.update(|s| s.journal.next_seq = next);
        Ok(())
    }

    /// The status board.
    #[must_use]
    pub fn board(&self) -> Board {
        self.board.clone()
    }

    /// A reader of the journal's log that keeps working while the recorder
    /// runs, across the writer's reopens.
    #[must_use]
    pub fn log_reader(&self) -> LogReader {
        self.reader.clone()
    }

    /// One past the last durable event, as the writer publishes it.
    #[must_use]
    pub fn durable_seq(&self) -> tokio::sync::watch::Receiver<u64> {
        self.durable.subscribe()
    }

    /// Names the recorded cluster once the service has resolved it, so
    /// [`Recorder::run`] does not ask the apiserver again.
    pub fn set_cluster_id(&mut self, id: String) {
        self.config.cluster_id = Some(id);
    }

    /// What a configuration reload may change while the recorder runs.
    #[must_use]
    pub fn live(&self) -> LiveRecorder {
        LiveRecorder {
            resource_set: Arc::clone(&self.resource_set),
            ignore: Arc::clone(&self.ignore),
        }
    }

    /// Records until `shutdown` completes.
    pub async fn run(self, shutdown: impl Future<Output = ()>, hooks: Hooks) -> Result<()> {
        let Self {
            config,
            journal,
            board,
            reader,
            durable,
            resource_set: _,
            resource_set_rx: mut set_rx,
            ignore,
        } = self;
        let known: Vec<_> = journal
            .type_records()?
            .into_iter()
            .map(|r| r.rtype)
            .collect();
        let client = client(&config.cluster).await?;

        let cancel = CancellationToken::new();
        let status_task = tokio::spawn(status_loop(
            board.clone(),
            config.status_path(),
            config.status_interval,
            cancel.clone(),
        ));

        let mut shutdown = std::pin::pin!(shutdown);
        let cid = tokio::select! {
            id = cluster_id(&client, config.cluster_id.as_ref(), &board, &cancel) => id,
            () = &mut shutdown => None,
        };
        let Some(cid) = cid else {
            cancel.cancel();
            let _ = status_task.await;
            return Ok(());
        };
        board.update(|s| s.cluster_id = cid.clone());
        info!(cluster_id = %cid, presets = ?config.presets, "recording");

        let ingestor = Ingestor::with_shared_ignore(cid, ignore)?;
        let writer = Writer::new(
            journal,
            ingestor,
            WriterOptions {
                flush_interval: config.flush_interval,
                max_events: config.flush_max_events,
            },
            board.clone(),
            hooks.commits.clone(),
        )?
        .with_log_reader(reader)
        .publishing_durable_seq(durable);
        // Messages are small (the bytes are budgeted separately), so the count
        // bound only caps bookkeeping.
        let (tx, rx) = mpsc::channel(config.flush_max_events.clamp(1024, 65_536));
        let rt = tokio::runtime::Handle::current();
        let writer_thread = std::thread::Builder::new()
            .name("rewind-journal".into())
            .spawn(move || writer.run(rt, rx))
            .map_err(|_| Error::Writer)?;

        let budget_total = u32::try_from(config.queue_bytes).unwrap_or(u32::MAX);
        let ctx = WatchCtx {
            client,
            tx,
            budget: Arc::new(Semaphore::new(
                usize::try_from(budget_total).unwrap_or(usize::MAX),
            )),
            budget_total,
            board: board.clone(),
        };
        // The newest set: a reload may have sent one before the watchers
        // started.
        let set = set_rx.borrow_and_update().clone();
        let supervisor =
            Supervisor::new(ctx, set, config.discovery_interval, known).with_updates(set_rx);
        let sup_task = tokio::spawn(supervisor.run(cancel.clone()));

        shutdown.await;
        info!("shutting down: stopping watchers, committing what is queued");
        cancel.cancel();
        let _ = sup_task.await;
        // The supervisor owned the last sender: the writer drains and returns.
        let journal = tokio::task::spawn_blocking(move || writer_thread.join())
            .await
            .map_err(|_| Error::Writer)?
            .map_err(|_| Error::Writer)?;
        drop(journal);
        let _ = status_task.await;
        if let Err(e) = write_status(&config.status_path(), &board.snapshot()) {
            warn!(error = %e, "cannot write the final status");
        }
        Ok(())
    }
}

pub(crate) async fn status_loop(
    board: Board,
    path: std::path::PathBuf,
    every: Duration,
    cancel: CancellationToken,
) {
    let mut logged = false;
    loop {
        match write_status(&path, &board.snapshot()) {
            Ok(()) => logged = false,
            Err(e) if !logged => {
                warn!(error = %e, "cannot write the status file");
                logged = true;
            }
            Err(_) => {}
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}
