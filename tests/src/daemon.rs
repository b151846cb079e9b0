//! The real `rewindd`, driven as the scenario tests, the benches and the
//! drill run it: its binary (brought up to date by cargo), a config file, a
//! running process with its own admin socket, its status file, "settled"
//! (every watcher watching, nothing lagging, the journal quiet), the
//! operator's commands (`rewindd snapshot`, `rewindd status`, `/metrics`),
//! and its local store (sealed segments, labelled snapshots).
//!
//! ```no_run
//! # async fn demo(cp: &rewind_tests::ControlPlane) -> Result<(), rewind_tests::daemon::Error> {
//! use std::time::Duration;
//! use rewind_tests::daemon::{DaemonConfig, RunOptions};
//! let dir = tempfile::tempdir().map_err(|e| rewind_tests::daemon::Error::Io {
//!     what: "tempdir".into(), source: e })?;
//! let cfg = DaemonConfig::new(dir.path().join("data"), cp.readonly_kubeconfig_path());
//! let mut d = cfg.start(&RunOptions::default())?;        // writes data.toml
//! d.settle(Duration::from_secs(2), "initial list").await?; // or cfg.start_settled(..)
//! let next_seq = d.status().map(|s| s.journal.next_seq);
//! let exit = d.terminate()?;   // SIGTERM: seal and store, exit 0
//! # let _ = (next_seq, exit); Ok(()) }
//! ```
//!
//! Several daemons of tests running in parallel never share a port, socket
//! or directory: everything lives under the data directory the test chose.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rewind_daemon::status::{StatusFile, WatchState, read_status, status_path};
use rewind_history::store::fleet::{self, Place};
use rewind_history::store::{SegmentEntry, SnapshotEntry, Store, StoreConfig, StoreError};

use crate::garage::Garage;

/// Errors of driving `rewindd`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// `cargo build` of a binary failed.
    #[error("building {bin} failed with {status}")]
    Build {
        /// The binary.
        bin: &'static str,
        /// Cargo's exit status.
        status: ExitStatus,
    },
    /// A binary is not where it should be.
    #[error(
        "{} is missing: run `cargo build --release -p rewind-daemon -p rewind-restore`, \
         or start the drill with `cargo run --release -p rewind-tests --bin dr-drill`",
        path.display()
    )]
    Missing {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// An operator's command (`rewindd snapshot`, ...) failed.
    #[error("{what} failed: {output}")]
    Command {
        /// The command.
        what: &'static str,
        /// Its stdout and stderr.
        output: String,
    },
    /// `/metrics` was asked of a daemon whose config serves none.
    #[error("rewindd serves no /metrics (metrics_addr is empty)")]
    NoMetrics,
    /// The store failed.
    #[error("{what}: {source}")]
    Store {
        /// What was being done.
        what: &'static str,
        /// Why it failed.
        source: StoreError,
    },
    /// The store's segments did not reach a sequence number in time.
    #[error("segments do not reach seq {last_seq} after {waited:?}")]
    NotSealed {
        /// The sequence number waited for.
        last_seq: u64,
        /// How long it waited.
        waited: Duration,
    },
    /// No snapshot in the store has the label.
    #[error("no snapshot labelled {label} in the store")]
    NoSnapshot {
        /// The label.
        label: String,
    },
    /// The daemon did not settle in time.
    #[error(
        "rewindd did not settle ({what}) within {waited:?}; journal {journal}; not ready:\n{not_ready}\nlog tail:\n{log_tail}"
    )]
    NotSettled {
        /// Which wait.
        what: String,
        /// How long it waited.
        waited: Duration,
        /// The journal's last status, if any.
        journal: String,
        /// Watchers not watching or lagging, one a line.
        not_ready: String,
        /// The last lines of the daemon's log.
        log_tail: String,
    },
    /// The daemon exited while it was expected to run.
    #[error("rewindd exited with {status}; log tail:\n{log_tail}")]
    Exited {
        /// Its exit status.
        status: ExitStatus,
        /// The last lines of its log.
        log_tail: String,
    },
}

/// Result alias of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

fn store(what: &'static str) -> impl FnOnce(StoreError) -> Error {
    move |source| Error::Store { what, source }
}

/// The directory of the local store `<data>/store` where the rewindd of
/// data directory `data` recorded: its cluster's place, as the daemon
/// remembered it (`rewind_daemon::placement`), or the store's root.
pub fn recorded_local_store(data: &Path) -> PathBuf {
    let root = data.join("store");
    match rewind_daemon::placement::remembered(data) {
        Ok(Some(place)) => root.join(place.sub()),
        _ => root,
    }
}

/// How long a settle may take: `REWIND_SETTLE_SECS`, default 300. Generous
/// because the development machine runs several daemon tests and fuzzers
/// on two cores; a settle that needs it is slow, not wrong.
pub fn settle_timeout() -> Duration {
    Duration::from_secs(
        std::env::var("REWIND_SETTLE_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(300),
    )
}

fn debug_bin(package: &str, bin: &'static str) -> Result<PathBuf> {
    // Built (brought up to date) once per test process, not only when
    // missing: a stale binary from an older checkout once hid a daemon fix
    // and failed `live_metrics_relists_and_sighup_reload_of_the_real_daemon`.
    static BUILT: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let path = crate::controlplane::target_dir().join("debug").join(bin);
    let mut built = BUILT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !built.contains(&bin) {
        let status = crate::cargo::command()
            .args(["build", "-p", package, "--bin", bin])
            .status()
            .map_err(io(format!("running cargo build for {bin}")))?;
        if !status.success() {
            return Err(Error::Build { bin, status });
        }
        built.push(bin);
    }
    Ok(path)
}

/// `REWIND_REWINDD` if set (a release build for the soak), else the
/// debug `rewindd`, brought up to date once per process.
pub fn rewindd_bin() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("REWIND_REWINDD") {
        return Ok(PathBuf::from(p));
    }
    debug_bin("rewind-daemon", "rewindd")
}

/// `REWIND_REWIND` if set (a long run pinned to binaries built at one
/// commit), else the debug `rewind`, brought up to date once per process.
pub fn rewind_bin() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("REWIND_REWIND") {
        return Ok(PathBuf::from(p));
    }
    debug_bin("rewind-restore", "rewind")
}

/// A free loopback port, for `/metrics`.
pub fn free_port() -> Result<u16> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(io("choosing a free port"))
}

/// The two binaries the drill and the benches drive.
pub use crate::cargo::RewindBinaries as Binaries;

/// `rewindd` and `rewind` beside the running executable, built first by
/// the nested build of [`crate::cargo::rewind_binaries`] (same profile and
/// features as the running build, so nothing is compiled twice; a no-op
/// when they are fresh, so a stale binary never runs).
pub fn binaries(tag: &str) -> Result<Binaries> {
    crate::cargo::exe_dir()
        .and_then(|dir| crate::cargo::rewind_binaries(&dir, tag))
        .map_err(|e| Error::Io {
            what: "building rewindd and rewind".into(),
            source: std::io::Error::other(e.to_string()),
        })
}

/// Where the daemon ships sealed segments and snapshots.
#[derive(Debug, Clone)]
pub enum StoreSpec {
    /// `<data>/store`.
    Local,
    /// A local directory shared with other recorders.
    LocalAt(PathBuf),
    /// A bucket on a (Garage) S3 server over plain http on loopback.
    S3 {
        /// `http://127.0.0.1:port`.
        endpoint: String,
        /// The bucket.
        bucket: String,
        /// Key prefix inside it.
        prefix: String,
        /// `access_key_id = ...` / `secret_access_key = ...`.
        credentials_file: PathBuf,
    },
}

/// A `rewindd.toml` for tests: the rancher preset, a store, fast sealing.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// The data directory (journal, status file, local store, socket).
    pub data: PathBuf,
    /// kubeconfig of the cluster to record.
    pub kubeconfig: PathBuf,
    /// Preset names.
    pub presets: Vec<String>,
    /// The store.
    pub store: StoreSpec,
    /// `compact.seal_interval`.
    pub seal_interval: String,
    /// `compact.snapshot_after_events` (0 disables).
    pub snapshot_after_events: u64,
    /// `compact.disk_budget_bytes`; the daemon's default when `None`.
    pub disk_budget_bytes: Option<u64>,
    /// `compact.local_window`; the daemon's default (24 h) when `None`.
    pub local_window: Option<String>,
    /// `[retention]` `keep_last` and `point_in_time`; the daemon's defaults
    /// when `None`.
    pub retention: Option<(u32, String)>,
    /// `service.metrics_addr`; empty serves no `/metrics`.
    pub metrics_addr: String,
    /// Raw TOML appended to the file (extra sections).
    pub extra: String,
}

impl DaemonConfig {
    /// The rancher preset into `<data>/store`, sealing every second, no
    /// automatic snapshots.
    pub fn new(data: impl Into<PathBuf>, kubeconfig: &Path) -> Self {
        Self {
            data: data.into(),
            kubeconfig: kubeconfig.to_path_buf(),
            presets: vec!["rancher".into()],
            store: StoreSpec::Local,
            seal_interval: "1s".into(),
            snapshot_after_events: 0,
            disk_budget_bytes: None,
            local_window: None,
            retention: None,
            metrics_addr: String::new(),
            extra: String::new(),
        }
    }

    /// The drill's daemon: [`DaemonConfig::new`], keeping the last 10
    /// snapshots and 24 h of points, `/metrics` on loopback `metrics_port`.
    pub fn drill(data: impl Into<PathBuf>, kubeconfig: &Path, metrics_port: u16) -> Self {
        Self::new(data, kubeconfig)
            .retention(10, "24h")
            .metrics_addr(&format!("127.0.0.1:{metrics_port}"))
    }

    /// Ships to `garage`'s bucket under `prefix` instead.
    pub fn s3(self, garage: &Garage, prefix: &str) -> Self {
        self.s3_server(
            garage.endpoint(),
            garage.bucket(),
            prefix,
            garage.credentials_file(),
        )
    }

    /// Ships to the S3 server at `endpoint` (plain http on loopback),
    /// `bucket` under `prefix`, with the keys in `credentials_file`.
    pub fn s3_server(
        mut self,
        endpoint: String,
        bucket: &str,
        prefix: &str,
        credentials_file: PathBuf,
    ) -> Self {
        self.store = StoreSpec::S3 {
            endpoint,
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            credentials_file,
        };
        self
    }

    /// Sets `compact.snapshot_after_events`.
    pub fn snapshot_after_events(mut self, n: u64) -> Self {
        self.snapshot_after_events = n;
        self
    }

    /// Sets `compact.disk_budget_bytes`.
    pub fn disk_budget_bytes(mut self, bytes: u64) -> Self {
        self.disk_budget_bytes = Some(bytes);
        self
    }

    /// Sets `compact.local_window` (`"0s"`: the journal trims every block
    /// as soon as the store has it).
    pub fn local_window(mut self, window: &str) -> Self {
        self.local_window = Some(window.to_owned());
        self
    }

    /// Sets `[retention]` `keep_last` and `point_in_time`.
    pub fn retention(mut self, keep_last: u32, point_in_time: &str) -> Self {
        self.retention = Some((keep_last, point_in_time.to_owned()));
        self
    }

    /// Sets `service.metrics_addr` (`host:port`).
    pub fn metrics_addr(mut self, addr: &str) -> Self {
        addr.clone_into(&mut self.metrics_addr);
        self
    }

    /// The admin socket the config names.
    pub fn admin_socket(&self) -> PathBuf {
        self.data.join("rewindd.sock")
    }

    /// The store as `rewind_restore` opens it.
    pub fn store_config(&self) -> StoreConfig {
        use rewind_history::store::S3Config;
        match &self.store {
            StoreSpec::Local => StoreConfig::Local {
                path: self.data.join("store"),
            },
            StoreSpec::LocalAt(path) => StoreConfig::Local { path: path.clone() },
            StoreSpec::S3 {
                endpoint,
                bucket,
                prefix,
                credentials_file,
            } => StoreConfig::S3(S3Config {
                endpoint: Some(endpoint.clone()),
                bucket: bucket.clone(),
                prefix: prefix.clone(),
                region: "garage".into(),
                credentials_file: Some(credentials_file.clone()),
                ca_file: None,
                allow_http: true,
                path_style: true,
            }),
        }
    }

    /// The store's root as `rewind --store` names it; the daemon's files
    /// are in its cluster's place below it ([`DaemonConfig::place_config`]).
    pub async fn open_root(&self) -> Result<Store> {
        Store::open(&self.store_config())
            .await
            .map_err(store("opening the store"))
    }

    /// The daemon's cluster's place in the store: where a rewindd of this
    /// configuration records (its cluster's key is the `kube-system` uid
    /// of the cluster the kubeconfig names), decided as rewindd decides it.
    pub async fn place(&self) -> Result<Place> {
        let client = crate::controlplane::client_from_file(&self.kubeconfig)
            .await
            .map_err(|e| Error::Command {
                what: "reading the recorded cluster's kubeconfig",
                output: e.to_string(),
            })?;
        let uid = kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(client)
            .get("kube-system")
            .await
            .ok()
            .and_then(|ns| ns.metadata.uid)
            .ok_or(Error::Command {
                what: "reading the kube-system namespace's uid",
                output: String::new(),
            })?;
        let root = self.open_root().await?;
        let adopt = self.extra.contains("adopt_store = true");
        fleet::place_recorder(&root, &uid, adopt)
            .await
            .map(|p| p.place)
            .map_err(|e| Error::Command {
                what: "placing the cluster in the store",
                output: e.to_string(),
            })
    }

    /// The settings of the daemon's cluster's place (see
    /// [`DaemonConfig::place`]).
    pub async fn place_config(&self) -> Result<StoreConfig> {
        Ok(self.place().await?.config(&self.store_config()))
    }

    /// Opens the daemon's cluster's place in the store (see
    /// [`DaemonConfig::place`]): the files it records.
    pub async fn open_store(&self) -> Result<Store> {
        Store::open(&self.place_config().await?)
            .await
            .map_err(store("opening the store"))
    }

    /// The file's text.
    pub fn text(&self) -> String {
        let data = self.data.display();
        let store = match &self.store {
            StoreSpec::Local => format!("kind = \"local\"\npath = \"{data}/store\"\n"),
            StoreSpec::LocalAt(path) => {
                format!("kind = \"local\"\npath = \"{}\"\n", path.display())
            }
            StoreSpec::S3 {
                endpoint,
                bucket,
                prefix,
                credentials_file,
            } => format!(
                "kind = \"s3\"\nendpoint = \"{endpoint}\"\nbucket = \"{bucket}\"\n\
                 prefix = \"{prefix}\"\nregion = \"garage\"\ncredentials_file = \"{}\"\n\
                 allow_http = true\npath_style = true\n",
                credentials_file.display()
            ),
        };
        let presets: Vec<String> = self.presets.iter().map(|p| format!("\"{p}\"")).collect();
        format!(
            "data_dir = \"{data}\"\n\n[cluster]\nkubeconfig = \"{kc}\"\n\n[record]\npresets = [{presets}]\n\n\
             [store]\n{store}\n[compact]\nseal_interval = \"{seal}\"\nsnapshot_schedule = \"\"\n\
             snapshot_after_events = {snap}\n{budget}{window}\n{retention}[service]\nadmin_socket = \"{sock}\"\nmetrics_addr = \"{metrics}\"\n\n{extra}",
            kc = self.kubeconfig.display(),
            presets = presets.join(", "),
            seal = self.seal_interval,
            snap = self.snapshot_after_events,
            budget = self
                .disk_budget_bytes
                .map(|b| format!("disk_budget_bytes = {b}\n"))
                .unwrap_or_default(),
            window = self
                .local_window
                .as_ref()
                .map(|w| format!("local_window = \"{w}\"\n"))
                .unwrap_or_default(),
            retention = self
                .retention
                .as_ref()
                .map(|(keep, pit)| {
                    format!("[retention]\nkeep_last = {keep}\npoint_in_time = \"{pit}\"\n\n")
                })
                .unwrap_or_default(),
            sock = self.admin_socket().display(),
            metrics = self.metrics_addr,
            extra = self.extra,
        )
    }

    /// Writes the file.
    pub fn write(&self, path: &Path) -> Result<()> {
        std::fs::write(path, self.text()).map_err(io(format!("writing {}", path.display())))
    }

    /// Where [`DaemonConfig::start`] writes the file: `<data>.toml`, beside
    /// the data directory (inside it, rewindd's own files would mix with it).
    pub fn path(&self) -> PathBuf {
        self.data.with_extension("toml")
    }

    /// Writes the file to [`DaemonConfig::path`] and starts `rewindd run`.
    pub fn start(&self, opts: &RunOptions) -> Result<Rewindd> {
        let path = self.path();
        self.write(&path)?;
        let mut d = Rewindd::spawn(&path, &self.data, opts)?;
        d.metrics_addr = Some(self.metrics_addr.clone()).filter(|a| !a.is_empty());
        Ok(d)
    }

    /// [`DaemonConfig::start`], then waits until it settled after its
    /// initial list (2 s quiet).
    pub async fn start_settled(&self, opts: &RunOptions) -> Result<Rewindd> {
        let mut d = self.start(opts)?;
        d.settle(Duration::from_secs(2), "initial list").await?;
        Ok(d)
    }
}

/// How to run the process.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The binary; [`rewindd_bin`] when `None`.
    pub rewindd: Option<PathBuf>,
    /// `--status-interval-ms`.
    pub status_interval_ms: u64,
    /// `--discovery-interval-s`; the daemon's default when `None`.
    pub discovery_interval_s: Option<u64>,
    /// `RUST_LOG`; inherited from this process when `None`.
    pub rust_log: Option<String>,
    /// Log file for stdout and stderr, appended to; default `<data>/rewindd.log`.
    pub log: Option<PathBuf>,
    /// Extra environment variables (`NOTIFY_SOCKET`, `WATCHDOG_USEC`, …).
    pub env: Vec<(String, String)>,
}

impl Default for RunOptions {
    /// Tests' daemons: status every 200 ms, discovery every 5 s, warnings.
    fn default() -> Self {
        Self {
            rewindd: None,
            status_interval_ms: 200,
            discovery_interval_s: Some(5),
            rust_log: Some("warn".into()),
            log: None,
            env: Vec::new(),
        }
    }
}

impl RunOptions {
    /// `rewindd` as an operator runs it (the drill, the benches): the
    /// daemon's own discovery interval, `RUST_LOG` from the environment,
    /// status every 200 ms.
    pub fn operator(rewindd: &Path) -> Self {
        Self {
            rewindd: Some(rewindd.to_path_buf()),
            discovery_interval_s: None,
            rust_log: None,
            ..Self::default()
        }
    }
}

/// The status file `rewindd` with `pid` wrote under `data` (a dead
/// daemon's file does not count).
pub fn status_of(data: &Path, pid: u32) -> Option<StatusFile> {
    read_status(&status_path(data))
        .ok()
        .filter(|s| s.pid == pid)
}

/// A running `rewindd run`. Killed on drop if still running.
#[derive(Debug)]
pub struct Rewindd {
    child: Child,
    /// The binary it runs.
    bin: PathBuf,
    /// Its config file.
    pub config: PathBuf,
    /// Its data directory.
    pub data: PathBuf,
    /// Its log file (stdout and stderr).
    pub log: PathBuf,
    /// Where it serves `/metrics`, if anywhere.
    pub metrics_addr: Option<String>,
}

impl Rewindd {
    /// Starts `rewindd --config <config> run`.
    pub fn spawn(config: &Path, data: &Path, opts: &RunOptions) -> Result<Self> {
        std::fs::create_dir_all(data).map_err(io(format!("creating {}", data.display())))?;
        let log = opts.log.clone().unwrap_or_else(|| data.join("rewindd.log"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(io(format!("opening {}", log.display())))?;
        let file2 = file.try_clone().map_err(io("cloning the log handle"))?;
        let bin = match &opts.rewindd {
            Some(b) => b.clone(),
            None => rewindd_bin()?,
        };
        let mut cmd = Command::new(&bin);
        cmd.arg("--config")
            .arg(config)
            .arg("--status-interval-ms")
            .arg(opts.status_interval_ms.to_string());
        if let Some(s) = opts.discovery_interval_s {
            cmd.arg("--discovery-interval-s").arg(s.to_string());
        }
        if let Some(filter) = &opts.rust_log {
            cmd.env("RUST_LOG", filter);
        }
        cmd.envs(opts.env.iter().map(|(k, v)| (k, v)));
        let child = cmd
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(file2))
            .arg("run")
            .spawn()
            .map_err(io("starting rewindd"))?;
        Ok(Self {
            child,
            bin,
            config: config.to_path_buf(),
            data: data.to_path_buf(),
            log,
            metrics_addr: None,
        })
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The status this process wrote, if any yet.
    pub fn status(&self) -> Option<StatusFile> {
        status_of(&self.data, self.pid())
    }

    /// The last `n` lines of its log.
    pub fn log_tail(&self, n: usize) -> String {
        log_tail(&self.log, n)
    }

    /// `Err(Exited)` if the process has exited.
    pub fn check_running(&mut self) -> Result<()> {
        match self.child.try_wait().map_err(io("polling rewindd"))? {
            None => Ok(()),
            Some(status) => Err(Error::Exited {
                status,
                log_tail: self.log_tail(30),
            }),
        }
    }

    /// SIGKILL, and reap it.
    pub fn kill(&mut self) -> Result<()> {
        self.child.kill().map_err(io("killing rewindd"))?;
        self.child.wait().map_err(io("reaping rewindd"))?;
        Ok(())
    }

    /// SIGTERM (seal, store, exit), and wait for the exit.
    pub fn terminate(&mut self) -> Result<ExitStatus> {
        let sent = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .map_err(io("running kill -TERM"))?;
        if !sent.success() {
            return Err(Error::Io {
                what: format!("kill -TERM {}", self.pid()),
                source: std::io::Error::other(format!("kill exited with {sent}")),
            });
        }
        self.child.wait().map_err(io("waiting for rewindd"))
    }

    /// Waits until this daemon settled (see [`wait_settled`]) and returns
    /// its status then; the error names the watchers that are not ready and
    /// shows the log's tail, or says the daemon exited.
    pub async fn settle(&mut self, quiet: Duration, what: &str) -> Result<StatusFile> {
        let (data, pid) = (self.data.clone(), self.pid());
        let settled = settled(
            || status_of(&data, pid),
            || self.check_running(),
            quiet,
            settle_timeout(),
            what,
        )
        .await;
        match settled {
            Err(Error::NotSettled {
                what,
                waited,
                journal,
                not_ready,
                ..
            }) => {
                self.check_running()?;
                Err(Error::NotSettled {
                    what,
                    waited,
                    journal,
                    not_ready,
                    log_tail: self.log_tail(20),
                })
            }
            other => other,
        }
    }

    /// Runs `rewindd --config <config> ARGS` and returns its stdout.
    async fn command(&self, what: &'static str, args: &[&str]) -> Result<String> {
        let out = tokio::process::Command::new(&self.bin)
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(io(format!("running {what}")))?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            return Err(Error::Command {
                what,
                output: format!("{text}{}", String::from_utf8_lossy(&out.stderr)),
            });
        }
        Ok(text)
    }

    /// `rewindd snapshot --label LABEL --wait`, the operator's command;
    /// returns its output.
    pub async fn snapshot(&self, label: &str) -> Result<String> {
        self.command(
            "rewindd snapshot --wait",
            &["snapshot", "--label", label, "--wait"],
        )
        .await
    }

    /// `rewindd status --verbose`, the operator's view (the ready line, then
    /// the journal and every type), as printed; an error when not ready.
    pub async fn status_text(&self) -> Result<String> {
        self.command("rewindd status", &["status", "--verbose"])
            .await
    }

    /// `rewindd status` whatever its exit: the exit code (`None` when
    /// killed by a signal) and stdout.
    pub async fn status_exit(&self) -> Result<(Option<i32>, String)> {
        let out = tokio::process::Command::new(&self.bin)
            .arg("--config")
            .arg(&self.config)
            .arg("status")
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(io("running rewindd status"))?;
        Ok((
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        ))
    }

    /// `GET path` on the metrics address: the HTTP status code and body.
    pub async fn http_get(&self, path: &str) -> Result<(u16, String)> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = self.metrics_addr.as_deref().ok_or(Error::NoMetrics)?;
        let mut s = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(io(format!("connecting to {path}")))?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
            .await
            .map_err(io(format!("asking for {path}")))?;
        let mut out = String::new();
        s.read_to_string(&mut out)
            .await
            .map_err(io(format!("reading {path}")))?;
        let (head, body) = out.split_once("\r\n\r\n").unwrap_or((out.as_str(), ""));
        let code = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        Ok((code, body.to_owned()))
    }

    /// `GET /metrics`, the Prometheus text.
    pub async fn metrics(&self) -> Result<String> {
        self.http_get("/metrics").await.map(|(_, body)| body)
    }
}

impl Drop for Rewindd {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The last `n` lines of a log file.
pub fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut lines: Vec<&str> = text.lines().rev().take(n).collect();
    lines.reverse();
    lines.join("\n")
}

fn ready(s: &StatusFile) -> bool {
    !s.types.is_empty()
        && s.journal.healthy
        && s.types
            .values()
            .all(|t| matches!(t.state, WatchState::Watching | WatchState::Stopped) && t.lag_ms == 0)
}

/// Waits until every watcher watches, nothing lags, and the journal has not
/// moved for `quiet`: the daemon has recorded everything the API sent.
/// `status` returns the daemon's current status (None while it has none).
/// Returns the status that settled.
pub async fn wait_settled(
    status: impl FnMut() -> Option<StatusFile>,
    quiet: Duration,
    timeout: Duration,
    what: &str,
) -> Result<StatusFile> {
    settled(status, || Ok(()), quiet, timeout, what).await
}

/// [`wait_settled`], giving up as soon as `alive` fails (the daemon exited).
async fn settled(
    mut status: impl FnMut() -> Option<StatusFile>,
    mut alive: impl FnMut() -> Result<()>,
    quiet: Duration,
    timeout: Duration,
    what: &str,
) -> Result<StatusFile> {
    let start = Instant::now();
    let mut last_seq = 0;
    let mut since = Instant::now();
    loop {
        if start.elapsed() >= timeout {
            let s = status();
            let not_ready: Vec<String> = s
                .iter()
                .flat_map(|s| s.types.iter())
                .filter(|(_, t)| {
                    !matches!(t.state, WatchState::Watching | WatchState::Stopped) || t.lag_ms != 0
                })
                .map(|(k, t)| format!("{k}: {:?} lag {} ms {:?}", t.state, t.lag_ms, t.reason))
                .collect();
            return Err(Error::NotSettled {
                what: what.to_owned(),
                waited: start.elapsed(),
                journal: format!("{:?}", s.as_ref().map(|s| &s.journal)),
                not_ready: not_ready.join("\n"),
                log_tail: String::new(),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        alive()?;
        let Some(s) = status() else { continue };
        if !ready(&s) || s.journal.next_seq != last_seq {
            last_seq = s.journal.next_seq;
            since = Instant::now();
            continue;
        }
        if since.elapsed() >= quiet {
            return Ok(s);
        }
    }
}

/// Waits until the store's segments reach `last_seq`: everything the
/// journal acknowledged is sealed and stored.
pub async fn wait_sealed(store: &Store, last_seq: u64) -> Result<Vec<SegmentEntry>> {
    let start = Instant::now();
    loop {
        let segs = store
            .list_segments()
            .await
            .map_err(self::store("listing segments"))?;
        if segs.iter().map(|s| s.last_seq).max().unwrap_or(0) >= last_seq {
            return Ok(segs);
        }
        if start.elapsed() > Duration::from_secs(120) {
            return Err(Error::NotSealed {
                last_seq,
                waited: start.elapsed(),
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The snapshot labelled `label` in the store.
pub async fn labelled_snapshot(store: &Store, label: &str) -> Result<SnapshotEntry> {
    store
        .list_snapshots()
        .await
        .map_err(self::store("listing snapshots"))?
        .into_iter()
        .find(|s| s.label.as_deref() == Some(label))
        .ok_or_else(|| Error::NoSnapshot {
            label: label.to_owned(),
        })
}
