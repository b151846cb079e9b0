//! The Versity S3 Gateway (versitygw) on loopback, for the tests of the
//! store's compare-and-swap on S3: a real S3 server that operators run (in
//! front of a POSIX filesystem here), and one that honours conditional
//! PUTs (`If-None-Match: *`, `If-Match`), which Garage 2.x does not.
//!
//! The binary ([`binary`]) comes from `REWIND_VERSITYGW` when set, else
//! from `tests/versitygw/install.sh`: the one built on first use into
//! `<target>/tools/versitygw-1.8.0/` from its Go module (about 3-6 minutes
//! cold on 2 cores, under a file lock so parallel test binaries build it
//! once; the progress shows on stderr, Go's output goes to `install.log`
//! there).
//!
//! Each instance serves its own temp dir (one directory per bucket) on a
//! free port with one root key, and is killed on drop.
//!
//! ```no_run
//! # fn demo() -> Result<(), rewind_tests::versitygw::VersityError> {
//! let v = rewind_tests::versitygw::Versity::start()?;
//! let (endpoint, bucket) = (v.endpoint(), v.bucket().to_owned());
//! let creds = v.credentials_file(); // access_key_id = ..., secret_access_key = ...
//! # let _ = (endpoint, bucket, creds); Ok(()) }
//! ```

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::progress::Display;
use crate::setup;

/// Errors starting versitygw.
#[derive(Debug, thiserror::Error)]
pub enum VersityError {
    /// Finding or building the binary failed (the message names the log).
    #[error("getting versitygw (set REWIND_VERSITYGW to use an existing binary): {0}")]
    Setup(#[from] setup::Error),
    /// A file or process operation failed.
    #[error("versitygw: {what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The server did not accept connections in time, or exited.
    #[error("versitygw did not start: {reason}; log tail:\n{log_tail}")]
    NotReady {
        /// What happened.
        reason: String,
        /// The end of its log.
        log_tail: String,
    },
}

/// Result alias for this module.
pub type Result<T, E = VersityError> = std::result::Result<T, E>;

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> VersityError {
    let what = what.into();
    move |source| VersityError::Io { what, source }
}

/// The bucket every instance serves.
const BUCKET: &str = "rewind";
/// The root key's id and secret (loopback only).
const ACCESS: &str = "rewindtestaccess";
const SECRET: &str = "rewindtestsecretkey0123456789";

/// The `versitygw` binary: `REWIND_VERSITYGW` when set, else what
/// `tests/versitygw/install.sh` finds or builds. Once per process; the
/// first call may wait for a build.
pub fn binary() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("REWIND_VERSITYGW") {
        return Ok(PathBuf::from(p));
    }
    static FOUND: OnceLock<Result<PathBuf, setup::Error>> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            let script = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("versitygw")
                .join("install.sh");
            let mut cmd = setup::command(&script);
            cmd.env("CARGO_TARGET_DIR", crate::controlplane::target_dir());
            let out = setup::run_on(
                cmd,
                "tests/versitygw/install.sh",
                Display::for_stderr(),
                &crate::progress::stderr(),
            )?;
            out.lines()
                .rev()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .map(PathBuf::from)
                .ok_or_else(|| setup::Error::Spawn {
                    script: "tests/versitygw/install.sh".to_owned(),
                    message: "it printed no path".to_owned(),
                })
        })
        .clone()
        .map_err(VersityError::Setup)
}

/// A running versitygw; killed on drop.
#[derive(Debug)]
pub struct Versity {
    /// Data (one directory per bucket), log, credentials: removed on drop.
    dir: tempfile::TempDir,
    /// The server.
    child: Child,
    /// Its S3 port on 127.0.0.1.
    port: u16,
}

impl Versity {
    /// Starts versitygw over a fresh directory with the bucket `rewind`.
    pub fn start() -> Result<Self> {
        let bin = binary()?;
        let dir = tempfile::Builder::new()
            .prefix("rewind-versitygw-")
            .tempdir()
            .map_err(io("temp dir"))?;
        let data = dir.path().join("data");
        std::fs::create_dir_all(data.join(BUCKET)).map_err(io("create the bucket"))?;
        std::fs::write(
            dir.path().join("credentials"),
            format!("access_key_id = {ACCESS}\nsecret_access_key = {SECRET}\n"),
        )
        .map_err(io("write credentials"))?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(io("find a free port"))?
            .port();
        let log_path = dir.path().join("versitygw.log");
        let log = std::fs::File::create(&log_path).map_err(io("create the log"))?;
        let log2 = log.try_clone().map_err(io("clone the log handle"))?;
        let child = Command::new(&bin)
            .arg("--access")
            .arg(ACCESS)
            .arg("--secret")
            .arg(SECRET)
            .arg("--port")
            .arg(format!("127.0.0.1:{port}"))
            // The region Rewind's test configurations sign with.
            .arg("--region")
            .arg("garage")
            .arg("posix")
            .arg(&data)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .spawn()
            .map_err(io(format!("starting {}", bin.display())))?;
        let mut v = Self { dir, child, port };
        v.wait_ready(&log_path)?;
        Ok(v)
    }

    fn wait_ready(&mut self, log: &Path) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let tail = || {
            std::fs::read_to_string(log)
                .unwrap_or_default()
                .lines()
                .rev()
                .take(20)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n")
        };
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(VersityError::NotReady {
                    reason: format!("it exited with {status}"),
                    log_tail: tail(),
                });
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(VersityError::NotReady {
                    reason: "no connection within 30 s".into(),
                    log_tail: tail(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `http://127.0.0.1:<port>`.
    #[must_use]
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The bucket name.
    #[must_use]
    pub fn bucket(&self) -> &str {
        BUCKET
    }

    /// `(access key id, secret key)`.
    #[must_use]
    pub fn key(&self) -> (&str, &str) {
        (ACCESS, SECRET)
    }

    /// A credentials file for the key, in the format Rewind's store reads.
    #[must_use]
    pub fn credentials_file(&self) -> PathBuf {
        self.dir.path().join("credentials")
    }

    /// The temp dir (data, log, credentials).
    #[must_use]
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Versity {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
