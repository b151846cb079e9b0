//! The real `rewindd` and `rewind` binaries: found (or built) in the
//! workspace's target directory, started with a config file, asked for a
//! snapshot, watched until everything is recorded and sealed, and killed.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use rewind_daemon::status::{StatusFile, WatchState, read_status, status_path};
use rewind_history::store::{SegmentEntry, SnapshotEntry, Store, StoreConfig};

use super::{DrillError, Result, step};

/// The two binaries the drill drives.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// `rewindd`.
    pub rewindd: PathBuf,
    /// `rewind`.
    pub rewind: PathBuf,
}

/// Finds `rewindd` and `rewind` beside the running executable (the drill
/// runs from `target/release`), building them first with the cargo that ran
/// the drill. Cargo is a no-op when they are fresh, so a stale binary never
/// runs. The build names rewind-tests too: with only the daemon and restore
/// packages selected, cargo unifies fewer features (rustls, ring) than the
/// drill's own build, and each run would rebuild half the tree twice.
pub fn binaries() -> Result<Binaries> {
    let exe = std::env::current_exe().map_err(step("locating the drill's executable"))?;
    let dir = exe
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| DrillError::Step {
            step: "locating the drill's executable",
            reason: format!("{} has no parent directory", exe.display()),
        })?;
    // Bench binaries live in `<profile>/deps/`; the daemon is in `<profile>/`.
    let dir = if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent().map_or(dir.clone(), Path::to_path_buf)
    } else {
        dir
    };
    let profile_release = dir.file_name().is_some_and(|n| n == "release");
    if std::env::var_os("CARGO").is_some() {
        let mut cmd = crate::cargo::command();
        cmd.args([
            "build",
            "-p",
            "rewind-tests",
            "-p",
            "rewind-daemon",
            "-p",
            "rewind-restore",
            "--bins",
        ]);
        if profile_release {
            cmd.arg("--release");
        }
        eprintln!(
            "building rewindd and rewind ({:?})",
            cmd.get_args().collect::<Vec<_>>()
        );
        let st = cmd.status().map_err(step("running cargo build"))?;
        if !st.success() {
            return Err(DrillError::Step {
                step: "building rewindd and rewind",
                reason: format!("cargo exited with {st}"),
            });
        }
    }
    let b = Binaries {
        rewindd: dir.join("rewindd"),
        rewind: dir.join("rewind"),
    };
    for p in [&b.rewindd, &b.rewind] {
        if !p.exists() {
            return Err(DrillError::Step {
                step: "locating rewindd and rewind",
                reason: format!(
                    "{} is missing: run `cargo build --release -p rewind-daemon -p rewind-restore`, \
                     or start the drill with `cargo run --release -p rewind-tests --bin dr-drill`",
                    p.display()
                ),
            });
        }
    }
    Ok(b)
}

/// The daemon's config: the rancher preset, a local store, sealing every
/// second, no scheduled snapshots (the drill asks for its own).
pub fn config_text(data: &Path, kubeconfig: &Path, metrics_port: u16) -> String {
    format!(
        r#"data_dir = "{data}"

[cluster]
kubeconfig = "{kc}"

[record]
presets = ["rancher"]

[store]
kind = "local"
path = "{data}/store"

[compact]
seal_interval = "1s"
snapshot_schedule = ""
snapshot_after_events = 0

[retention]
keep_last = 10
point_in_time = "24h"

[service]
admin_socket = "{data}/rewindd.sock"
metrics_addr = "127.0.0.1:{metrics_port}"
"#,
        data = data.display(),
        kc = kubeconfig.display(),
    )
}

/// A running `rewindd`.
pub struct Daemon {
    child: tokio::process::Child,
    /// The data directory (journal, status file, store, log).
    pub data: PathBuf,
    /// The config file.
    pub config: PathBuf,
    /// The loopback port of `/metrics`.
    pub metrics_port: u16,
    bin: PathBuf,
}

impl Daemon {
    /// Starts `rewindd run` with a config for `kubeconfig` under `data`.
    pub async fn start(bin: &Path, data: &Path, kubeconfig: &Path) -> Result<Self> {
        let config = data.join("rewindd.toml");
        let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(step("choosing a metrics port"))?
            .port();
        std::fs::write(&config, config_text(data, kubeconfig, metrics_port))
            .map_err(step("writing rewindd.toml"))?;
        let log = std::fs::File::create(data.join("rewindd.log"))
            .map_err(step("creating rewindd.log"))?;
        let log2 = log.try_clone().map_err(step("creating rewindd.log"))?;
        let child = tokio::process::Command::new(bin)
            .arg("--config")
            .arg(&config)
            .args(["--status-interval-ms", "200", "run"])
            .stdout(log)
            .stderr(log2)
            .kill_on_drop(true)
            .spawn()
            .map_err(step("starting rewindd"))?;
        Ok(Self {
            child,
            data: data.to_path_buf(),
            config,
            metrics_port,
            bin: bin.to_path_buf(),
        })
    }

    /// The daemon's process id (for memory and fd sampling); `None` once it
    /// has exited.
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The last lines of the daemon's log, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.data.join("rewindd.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines
            .get(lines.len().saturating_sub(20)..)
            .unwrap_or_default()
            .join("\n")
    }

    /// The status file, when there is one.
    pub fn status(&self) -> Option<StatusFile> {
        read_status(&status_path(&self.data)).ok()
    }

    /// Waits until every watcher watches without lag, the journal is healthy
    /// and has not moved for `quiet`: the daemon has recorded everything the
    /// API sent.
    pub async fn wait_settled(
        &mut self,
        quiet: Duration,
        what: &'static str,
    ) -> Result<StatusFile> {
        let start = Instant::now();
        let mut last_seq = 0;
        let mut since = Instant::now();
        loop {
            if let Ok(Some(code)) = self.child.try_wait() {
                return Err(DrillError::Step {
                    step: what,
                    reason: format!("rewindd exited with {code}:\n{}", self.log_tail()),
                });
            }
            if start.elapsed() > Duration::from_secs(300) {
                return Err(DrillError::Step {
                    step: what,
                    reason: format!("rewindd did not settle in 300 s:\n{}", self.log_tail()),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            let Some(s) = self.status() else { continue };
            let ready = !s.types.is_empty()
                && s.journal.healthy
                && s.types.values().all(|t| {
                    matches!(t.state, WatchState::Watching | WatchState::Stopped) && t.lag_ms == 0
                });
            if !ready || s.journal.next_seq != last_seq {
                last_seq = s.journal.next_seq;
                since = Instant::now();
                continue;
            }
            if since.elapsed() >= quiet {
                return Ok(s);
            }
        }
    }

    /// `rewindd snapshot --label L --wait`, the operator's command; returns
    /// its output.
    pub async fn snapshot(&self, label: &str) -> Result<String> {
        let out = tokio::process::Command::new(&self.bin)
            .arg("--config")
            .arg(&self.config)
            .args(["snapshot", "--label", label, "--wait"])
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(step("running rewindd snapshot"))?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            return Err(DrillError::Step {
                step: "rewindd snapshot --wait",
                reason: format!("{}{}", text, String::from_utf8_lossy(&out.stderr)),
            });
        }
        Ok(text)
    }

    /// `rewindd status`, the operator's view, as printed.
    pub async fn status_text(&self) -> Result<String> {
        let out = tokio::process::Command::new(&self.bin)
            .arg("--config")
            .arg(&self.config)
            .arg("status")
            .output()
            .await
            .map_err(step("running rewindd status"))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `GET /metrics`, the Prometheus text.
    pub async fn metrics(&self) -> Result<String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", self.metrics_port))
            .await
            .map_err(step("connecting to /metrics"))?;
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .await
            .map_err(step("asking for /metrics"))?;
        let mut out = String::new();
        s.read_to_string(&mut out)
            .await
            .map_err(step("reading /metrics"))?;
        Ok(out
            .split_once("\r\n\r\n")
            .map_or(out.clone(), |(_, body)| body.to_owned()))
    }

    /// SIGKILL: the daemon dies with the control plane, as in a crash.
    pub async fn kill(mut self) -> Result<()> {
        self.child.kill().await.map_err(step("killing rewindd"))
    }
}

/// The drill's store.
pub async fn open_store(data: &Path) -> Result<Store> {
    Store::open(&StoreConfig::Local {
        path: data.join("store"),
    })
    .await
    .map_err(step("opening the store"))
}

/// Waits until the store's segments reach `last_seq`: everything the
/// journal acknowledged is sealed and stored.
pub async fn wait_sealed(store: &Store, last_seq: u64) -> Result<Vec<SegmentEntry>> {
    let start = Instant::now();
    loop {
        let segs = store
            .list_segments()
            .await
            .map_err(step("listing segments"))?;
        if segs.iter().map(|s| s.last_seq).max().unwrap_or(0) >= last_seq {
            return Ok(segs);
        }
        if start.elapsed() > Duration::from_secs(120) {
            return Err(DrillError::Step {
                step: "waiting for the journal to be sealed into the store",
                reason: format!("segments do not reach seq {last_seq} after 120 s"),
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The labelled snapshot in the store.
pub async fn labelled_snapshot(store: &Store, label: &str) -> Result<SnapshotEntry> {
    store
        .list_snapshots()
        .await
        .map_err(step("listing snapshots"))?
        .into_iter()
        .find(|s| s.label.as_deref() == Some(label))
        .ok_or_else(|| DrillError::Step {
            step: "finding the on-demand snapshot",
            reason: format!("no snapshot labelled {label} in the store"),
        })
}
