//! A real single-node Garage (S3-compatible object store) on loopback, for
//! the store tests.
//!
//! The `garage` binary comes from `REWIND_GARAGE` when set, else
//! `~/.cargo/bin/garage` (`cargo install garage --locked`), else `PATH`.
//! Each instance lives in its own temp dir on free ports; it is configured
//! through the `garage` CLI exactly as an operator would (layout assign and
//! apply, key create, bucket create and allow), can be stopped (SIGKILL,
//! like a crash) and restarted on the same ports and data, and is killed on
//! drop.
//!
//! ```no_run
//! # fn demo() -> Result<(), rewind_tests::garage::GarageError> {
//! let mut g = rewind_tests::garage::Garage::start()?;
//! let (endpoint, bucket) = (g.endpoint(), g.bucket().to_owned());
//! let creds = g.credentials_file(); // access_key_id = ..., secret_access_key = ...
//! g.stop();
//! g.restart()?;
//! # let _ = (endpoint, bucket, creds); Ok(()) }
//! ```

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Errors starting or driving Garage.
#[derive(Debug, thiserror::Error)]
pub enum GarageError {
    /// The binary could not be found.
    #[error("garage binary not found (set REWIND_GARAGE or `cargo install garage --locked`)")]
    NotInstalled,
    /// A file or process operation failed.
    #[error("garage: {what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A `garage` CLI command failed.
    #[error("garage {args}: exit {status}: {stderr}")]
    Command {
        /// The arguments.
        args: String,
        /// Exit status.
        status: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// Garage did not become ready in time.
    #[error("garage not ready after {0:?}; see {1}")]
    Timeout(Duration, String),
    /// CLI output could not be understood.
    #[error("garage: could not parse {what} from: {output}")]
    Parse {
        /// What was expected.
        what: &'static str,
        /// The output.
        output: String,
    },
}

/// Result alias for the Garage harness.
pub type Result<T, E = GarageError> = std::result::Result<T, E>;

/// A running (or stopped) single-node Garage.
pub struct Garage {
    /// The binary.
    bin: PathBuf,
    /// Config, metadata, data, log, credentials: removed on drop.
    dir: tempfile::TempDir,
    /// The server process, when running.
    child: Option<Child>,
    /// S3 API port on 127.0.0.1.
    s3_port: u16,
    /// Access key id created for the tests.
    key_id: String,
    /// Its secret.
    secret: String,
    /// The bucket the key may read and write.
    bucket: String,
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> GarageError {
    let what = what.into();
    move |source| GarageError::Io { what, source }
}

fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(io("bind a free port"))?;
    Ok(l.local_addr().map_err(io("local addr"))?.port())
}

/// Where the binary is, if anywhere.
#[must_use]
pub fn binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("REWIND_GARAGE") {
        return Some(PathBuf::from(p));
    }
    if let Some(home) = std::env::var_os("HOME") {
        let p = Path::new(&home).join(".cargo/bin/garage");
        if p.exists() {
            return Some(p);
        }
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("garage"))
            .find(|p| p.exists())
    })
}

impl Garage {
    /// Starts a configured Garage with one key and one bucket, `rewind`.
    pub fn start() -> Result<Self> {
        let bin = binary().ok_or(GarageError::NotInstalled)?;
        let dir = tempfile::Builder::new()
            .prefix("rewind-garage-")
            .tempdir()
            .map_err(io("temp dir"))?;
        let (s3_port, rpc_port, admin_port) = (free_port()?, free_port()?, free_port()?);
        let secret: String = (0..4)
            .map(|i| format!("{:016x}", random_u64() ^ i))
            .collect();
        let root = dir.path();
        let conf = format!(
            r#"metadata_dir = "{meta}"
data_dir = "{data}"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{rpc_port}"
rpc_public_addr = "127.0.0.1:{rpc_port}"
rpc_secret = "{secret}"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:{s3_port}"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:{admin_port}"
"#,
            meta = root.join("meta").display(),
            data = root.join("data").display(),
        );
        std::fs::write(root.join("garage.toml"), conf).map_err(io("write garage.toml"))?;
        let mut g = Self {
            bin,
            dir,
            child: None,
            s3_port,
            key_id: String::new(),
            secret: String::new(),
            bucket: "rewind".to_owned(),
        };
        g.spawn()?;
        g.configure()?;
        Ok(g)
    }

    fn conf(&self) -> PathBuf {
        self.dir.path().join("garage.toml")
    }

    /// The temp dir (config, `garage.log`, data).
    #[must_use]
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `http://127.0.0.1:<port>`.
    #[must_use]
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    /// The bucket name.
    #[must_use]
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// `(access key id, secret key)`.
    #[must_use]
    pub fn key(&self) -> (&str, &str) {
        (&self.key_id, &self.secret)
    }

    /// A credentials file for the key, in the format Rewind's store reads.
    #[must_use]
    pub fn credentials_file(&self) -> PathBuf {
        self.dir.path().join("credentials")
    }

    fn spawn(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("garage.log"))
            .map_err(io("open garage.log"))?;
        let log2 = log.try_clone().map_err(io("clone log"))?;
        let child = Command::new(&self.bin)
            .arg("-c")
            .arg(self.conf())
            .arg("server")
            .env("RUST_LOG", "garage=warn")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(io(format!("spawn {}", self.bin.display())))?;
        self.child = Some(child);
        self.wait_port()
    }

    fn wait_port(&self) -> Result<()> {
        let timeout = Duration::from_secs(30);
        let start = Instant::now();
        while start.elapsed() < timeout {
            if TcpStream::connect(("127.0.0.1", self.s3_port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(GarageError::Timeout(
            timeout,
            self.dir.path().join("garage.log").display().to_string(),
        ))
    }

    /// Runs the `garage` CLI against this instance, returning stdout.
    pub fn cli(&self, args: &[&str]) -> Result<String> {
        let out = Command::new(&self.bin)
            .arg("-c")
            .arg(self.conf())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(io("run garage cli"))?;
        if !out.status.success() {
            return Err(GarageError::Command {
                args: args.join(" "),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Retries a CLI command while the node settles (layout propagation).
    fn cli_retry(&self, args: &[&str]) -> Result<String> {
        let start = Instant::now();
        loop {
            match self.cli(args) {
                Ok(out) => return Ok(out),
                Err(e) if start.elapsed() > Duration::from_secs(30) => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    fn configure(&mut self) -> Result<()> {
        let id_out = self.cli_retry(&["node", "id", "-q"])?;
        let node = id_out
            .trim()
            .split('@')
            .next()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| GarageError::Parse {
                what: "node id",
                output: id_out.clone(),
            })?
            .to_owned();
        let short = node.get(..16).unwrap_or(&node).to_owned();
        self.cli_retry(&["layout", "assign", "-z", "dc1", "-c", "1G", &short])?;
        self.cli_retry(&["layout", "apply", "--version", "1"])?;
        let key_out = self.cli_retry(&["key", "create", "rewind-key"])?;
        self.key_id = field(&key_out, "Key ID")?;
        self.secret = field(&key_out, "Secret key")?;
        self.cli_retry(&["bucket", "create", &self.bucket])?;
        self.cli_retry(&[
            "bucket",
            "allow",
            "--read",
            "--write",
            "--owner",
            &self.bucket,
            "--key",
            "rewind-key",
        ])?;
        std::fs::write(
            self.credentials_file(),
            format!(
                "access_key_id = {}\nsecret_access_key = {}\n",
                self.key_id, self.secret
            ),
        )
        .map_err(io("write credentials"))
    }

    /// Kills the server (SIGKILL: like a crash or a cut network).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same ports and data.
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        self.spawn()?;
        // Ready once the S3 API answers and the layout is loaded.
        self.cli_retry(&["status"]).map(|_| ())
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Finds `Name: value` in CLI output (v1 and v2 print keys this way).
fn field(out: &str, name: &'static str) -> Result<String> {
    out.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim().eq_ignore_ascii_case(name)).then(|| v.trim().to_owned())
        })
        .filter(|v| !v.is_empty())
        .ok_or_else(|| GarageError::Parse {
            what: name,
            output: out.to_owned(),
        })
}

fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}
