//! A real single-node Garage (S3-compatible object store) on loopback, for
//! the store tests.
//!
//! The `garage` binary ([`binary`]) comes from `REWIND_GARAGE` when set,
//! else from `tests/garage/install.sh`: a `garage` 2.5.0 on `PATH` or in
//! `~/.cargo/bin`, else the one it installs on first use into
//! `<target>/tools/garage-2.5.0/` (`cargo install garage --locked`, about 20
//! minutes cold on 2 cores, under a file lock so parallel test binaries
//! install once; the progress shows on stderr, cargo's output goes to
//! `install.log` there).
//!
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
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::progress::{Display, Sink};
use crate::setup;

/// Errors starting or driving Garage.
#[derive(Debug, thiserror::Error)]
pub enum GarageError {
    /// Finding or installing the binary failed (the message names the
    /// install log).
    #[error("getting garage (set REWIND_GARAGE to use an existing binary): {0}")]
    Setup(#[from] setup::Error),
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

/// The `garage` binary: `REWIND_GARAGE` when set, else what
/// `tests/garage/install.sh` finds or installs (see the module doc). Once
/// per process; the first call may wait for an install.
pub fn binary() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("REWIND_GARAGE") {
        return Ok(PathBuf::from(p));
    }
    static FOUND: OnceLock<Result<PathBuf, setup::Error>> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            let mut cmd = install_command();
            cmd.env("CARGO_TARGET_DIR", crate::controlplane::target_dir());
            find_or_install(cmd, Display::for_stderr(), &crate::progress::stderr())
        })
        .clone()
        .map_err(GarageError::Setup)
}

/// `bash tests/garage/install.sh`.
fn install_command() -> Command {
    setup::command(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("garage")
            .join("install.sh"),
    )
}

/// Runs the install script; its answer is the last line it prints.
fn find_or_install(cmd: Command, display: Display, sink: &Sink) -> Result<PathBuf, setup::Error> {
    let out = setup::run_on(cmd, "tests/garage/install.sh", display, sink)?;
    let path = out
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(PathBuf::from)
        .ok_or_else(|| setup::Error::Spawn {
            script: "tests/garage/install.sh".to_owned(),
            message: "it printed no path".to_owned(),
        })?;
    Ok(path)
}

impl Garage {
    /// Starts a configured Garage with one key and one bucket, `rewind`.
    pub fn start() -> Result<Self> {
        let bin = binary()?;
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

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::progress::tests::Captured;

    const PLAIN: Display = Display::Plain {
        every: Duration::from_millis(100),
    };

    /// A machine for the install script: an empty HOME, a PATH with only
    /// the system's tools (and `extra_path` first), a target directory, and
    /// a fake cargo whose `install` takes `secs`, logs its arguments to
    /// `calls`, prints `cargo says` and, unless `fail`, installs a fake
    /// garage 2.5.0 under `--root`.
    struct FakeMachine {
        dir: tempfile::TempDir,
    }

    fn write_exe(path: &Path, body: &str) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn fake_garage(version: &str) -> String {
        format!("#!/bin/sh\necho 'garage cargo:{version} [features: fake]'\n")
    }

    impl FakeMachine {
        fn new(secs: f32, fail: bool) -> Self {
            let dir = tempfile::tempdir().unwrap();
            let calls = dir.path().join("calls");
            write_exe(&dir.path().join("garage-to-install"), &fake_garage("2.5.0"));
            let install = if fail {
                "echo 'error: boom' ; exit 101".to_owned()
            } else {
                format!(
                    "while [ $# -gt 0 ]; do [ \"$1\" = --root ] && root=\"$2\"; shift; done\n\
                     mkdir -p \"$root/bin\" \"$root/build\"\n\
                     cp {} \"$root/bin/garage\"",
                    dir.path().join("garage-to-install").display()
                )
            };
            write_exe(
                &dir.path().join("fake-cargo"),
                &format!(
                    "#!/bin/bash\necho \"$*\" >> {calls}\necho 'cargo says'\nsleep {secs}\n{install}\n",
                    calls = calls.display()
                ),
            );
            std::fs::create_dir_all(dir.path().join("home")).unwrap();
            std::fs::create_dir_all(dir.path().join("path")).unwrap();
            Self { dir }
        }

        fn path(&self, rel: &str) -> PathBuf {
            self.dir.path().join(rel)
        }

        fn command(&self) -> Command {
            let mut cmd = install_command();
            cmd.env_remove("REWIND_GARAGE")
                .env("HOME", self.path("home"))
                .env(
                    "PATH",
                    format!("{}:/usr/bin:/bin", self.path("path").display()),
                )
                .env("CARGO", self.path("fake-cargo"))
                .env("CARGO_TARGET_DIR", self.path("target"));
            cmd
        }

        fn installs(&self) -> usize {
            std::fs::read_to_string(self.path("calls"))
                .map(|s| s.lines().count())
                .unwrap_or(0)
        }

        fn installed(&self) -> PathBuf {
            self.path("target/tools/garage-2.5.0/bin/garage")
        }
    }

    #[test]
    fn parallel_first_uses_install_once_under_the_lock_and_say_so() {
        let m = FakeMachine::new(1.0, false);
        let out = Captured::default();
        let found: Vec<PathBuf> = std::thread::scope(|s| {
            let runs: Vec<_> = (0..4)
                .map(|_| s.spawn(|| find_or_install(m.command(), PLAIN, &out.sink()).unwrap()))
                .collect();
            runs.into_iter().map(|r| r.join().unwrap()).collect()
        });
        assert_eq!(m.installs(), 1, "cargo install ran more than once");
        let calls = std::fs::read_to_string(m.path("calls")).unwrap();
        assert_eq!(
            calls.trim(),
            format!(
                "install garage --locked --version 2.5.0 --root {root} --target-dir {root}/build",
                root = m.path("target/tools/garage-2.5.0").display()
            )
        );
        assert!(found.iter().all(|p| *p == m.installed()), "{found:?}");
        let text = out.text();
        assert!(
            text.contains("garage: installing garage 2.5.0 from crates.io"),
            "{text}"
        );
        assert!(text.contains("about 20 min cold on 2 cores"), "{text}");
        assert!(
            text.contains(&format!(
                "log: {}",
                m.path("target/tools/garage-2.5.0/install.log").display()
            )),
            "{text}"
        );
        assert!(
            text.contains("garage: installed garage 2.5.0 in "),
            "{text}"
        );
        assert!(
            text.contains("  ... garage: "),
            "no elapsed-time line: {text}"
        );
        // cargo's own output went to the log, not to the screen.
        assert!(!text.contains("cargo says"), "{text}");
        let log = std::fs::read_to_string(m.path("target/tools/garage-2.5.0/install.log")).unwrap();
        assert!(log.contains("cargo says"));
        // The build directory is removed after a successful install.
        assert!(!m.path("target/tools/garage-2.5.0/build").exists());

        // The next process finds it without installing or showing a step.
        let again = Captured::default();
        assert_eq!(
            find_or_install(m.command(), PLAIN, &again.sink()).unwrap(),
            m.installed()
        );
        assert_eq!(m.installs(), 1);
        assert_eq!(again.text(), "");
    }

    #[test]
    fn a_failed_install_is_an_error_naming_the_log() {
        let m = FakeMachine::new(0.0, true);
        let out = Captured::default();
        let err = find_or_install(m.command(), PLAIN, &out.sink()).unwrap_err();
        let msg = GarageError::Setup(err).to_string();
        let log = m.path("target/tools/garage-2.5.0/install.log");
        assert!(
            msg.contains(&format!("see {}", log.display())),
            "the error must name the log: {msg}"
        );
        assert!(msg.contains("error: boom"), "the log's tail: {msg}");
        assert!(msg.contains("REWIND_GARAGE"), "{msg}");
    }

    #[test]
    fn a_pinned_garage_already_installed_is_used_and_another_version_is_not() {
        // ~/.cargo/bin/garage at the pinned version: used, nothing installed.
        let m = FakeMachine::new(0.0, false);
        let home_bin = m.path("home/.cargo/bin/garage");
        write_exe(&home_bin, &fake_garage("2.5.0"));
        let out = Captured::default();
        assert_eq!(
            find_or_install(m.command(), PLAIN, &out.sink()).unwrap(),
            home_bin
        );
        assert_eq!(m.installs(), 0);

        // On PATH at the pinned version: used first.
        let on_path = m.path("path/garage");
        write_exe(&on_path, &fake_garage("2.5.0"));
        assert_eq!(
            find_or_install(m.command(), PLAIN, &out.sink()).unwrap(),
            on_path
        );

        // Another version on PATH and in ~/.cargo/bin: the pinned one is installed.
        let m = FakeMachine::new(0.0, false);
        write_exe(&m.path("path/garage"), &fake_garage("1.0.1"));
        write_exe(&m.path("home/.cargo/bin/garage"), &fake_garage("2.4.0"));
        assert_eq!(
            find_or_install(m.command(), PLAIN, &out.sink()).unwrap(),
            m.installed()
        );
        assert_eq!(m.installs(), 1);
    }

    /// The real machine's garage, when one is installed at the pinned
    /// version (as `.ci/run` and the development machine have it): found
    /// without installing anything.
    #[test]
    fn the_machines_pinned_garage_is_found_without_installing() {
        let Some(home) = std::env::var_os("HOME") else {
            return;
        };
        let real = Path::new(&home).join(".cargo/bin/garage");
        let Ok(v) = Command::new(&real).arg("--version").output() else {
            eprintln!("no {}: nothing to check", real.display());
            return;
        };
        if !String::from_utf8_lossy(&v.stdout).contains(":2.5.0 ") {
            eprintln!("{} is not 2.5.0: nothing to check", real.display());
            return;
        }
        let m = FakeMachine::new(0.0, true);
        let mut cmd = m.command();
        cmd.env("HOME", &home);
        let out = Captured::default();
        assert_eq!(find_or_install(cmd, PLAIN, &out.sink()).unwrap(), real);
        assert_eq!(m.installs(), 0);
    }
}
