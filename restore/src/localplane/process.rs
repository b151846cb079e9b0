//! A child process whose output goes to a log file and which dies with its owner.
//! The test harness (`rewind-tests`) uses the same type for its control planes.
//!
//! etcd and kube-apiserver are single processes, but each still gets its own
//! process group so a Ctrl-C in the terminal reaches only the harness, which
//! then stops them in order. Dropping a [`Managed`] kills and reaps the child,
//! so a panicking test leaves nothing behind.

use std::fs::{File, OpenOptions};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Errors from starting or watching a child process.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The binary could not be started at all.
    #[error("could not start {name} ({binary}): {source}")]
    Spawn {
        /// Process name.
        name: &'static str,
        /// The binary.
        binary: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The log file could not be opened.
    #[error("could not open log file {path}: {source}")]
    Log {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// Result alias for this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A running child with its log file.
#[derive(Debug)]
pub struct Managed {
    /// Short name used in errors ("etcd", "kube-apiserver").
    name: &'static str,
    /// The child; `None` once it has been stopped and reaped.
    child: Option<Child>,
    /// Where stdout and stderr go; read back for error messages.
    log: PathBuf,
}

impl Managed {
    /// Starts `binary args...`, appending stdout and stderr to `log`.
    pub fn spawn(name: &'static str, binary: &Path, args: &[String], log: &Path) -> Result<Self> {
        let open = || {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .map_err(|source| Error::Log {
                    path: log.display().to_string(),
                    source,
                })
        };
        let out: File = open()?;
        let err: File = open()?;
        let child = Command::new(binary)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .map_err(|source| Error::Spawn {
                name,
                binary: binary.display().to_string(),
                source,
            })?;
        tracing::debug!(name, pid = child.id(), log = %log.display(), "started");
        Ok(Self {
            name,
            child: Some(child),
            log: log.to_path_buf(),
        })
    }

    /// The exit status if the child has exited, as text for error messages.
    pub fn exited(&mut self) -> Option<String> {
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            Ok(None) => None,
            Err(e) => Some(format!("unknown state: {e}")),
        }
    }

    /// The name used in errors.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The log file path.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last `lines` lines of the log, for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        tail_of_file(&self.log, lines)
    }

    /// Kills the child (SIGKILL) and reaps it. Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Errors mean it is already gone; either way we reap below.
            let _ = child.kill();
            let _ = child.wait();
            tracing::debug!(name = self.name, "stopped");
        }
    }
}

impl Drop for Managed {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The last `lines` lines of a text file, or a note saying why it can't be read.
pub fn tail_of_file(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            let start = all.len().saturating_sub(lines);
            all.get(start..).unwrap_or_default().join("\n")
        }
        Err(e) => format!("(log {} unreadable: {e})", path.display()),
    }
}
