//! A real Garage (S3-compatible object store) on loopback for the store
//! tests: one node ([`Garage`]), or a cluster of several ([`GarageCluster`],
//! three nodes with replication factor 3 the way operators deploy it).
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
//! through the `garage` CLI exactly as an operator would (node connect,
//! layout assign and apply, key create, bucket create and allow), can be
//! stopped (SIGKILL, like a crash) and restarted on the same ports and
//! data, and is killed on drop. A cluster's nodes each have their own
//! `node<i>/` directory (config, log, metadata, data), their own RPC, S3
//! and admin ports, one shared `rpc_secret` and their own zone; each names
//! the others as `bootstrap_peers`, so a restarted node rejoins at once.
//!
//! ```no_run
//! # fn demo() -> Result<(), rewind_tests::garage::GarageError> {
//! let mut g = rewind_tests::garage::Garage::start()?;
//! let (endpoint, bucket) = (g.endpoint(), g.bucket().to_owned());
//! let creds = g.credentials_file(); // access_key_id = ..., secret_access_key = ...
//! g.stop();
//! g.restart()?;
//!
//! let mut c = rewind_tests::garage::GarageCluster::start(3)?;
//! let through_first = c.endpoint(0)?; // every node serves the same bucket
//! c.stop_node(2)?;                    // writes and reads still reach a quorum
//! c.start_node(2)?;                   // back on its ports and data
//! # let _ = (endpoint, bucket, creds, through_first); Ok(()) }
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
    /// A node index past the cluster's nodes.
    #[error("garage cluster: no node {index} (it has {nodes})")]
    NoSuchNode {
        /// The index asked for.
        index: usize,
        /// How many nodes there are.
        nodes: usize,
    },
    /// The cluster's nodes did not all see each other (or the layout) in
    /// time.
    #[error("garage cluster not ready after {waited:?}: {detail}; logs under {dir}")]
    Unhealthy {
        /// How long it waited.
        waited: Duration,
        /// Which node does not see which, or lacks the layout.
        detail: String,
        /// The cluster's directory (`node<i>/garage.log`).
        dir: String,
    },
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
    /// Config, metadata, data, log, credentials: removed on drop.
    dir: tempfile::TempDir,
    /// The one node; its files are the temp dir itself. Boxed, so a
    /// `Garage` stays small inside the tests' enums.
    node: Box<Node>,
    /// The key and bucket the tests use.
    access: Access,
}

/// A running Garage cluster of several nodes on loopback, each with its
/// own data and metadata directories and RPC, S3 and admin ports, one
/// shared `rpc_secret`, every node in its own zone; any node can be
/// stopped and started again. See [`GarageCluster::start`].
pub struct GarageCluster {
    /// `node<i>/` per node, and the credentials file: removed on drop.
    dir: tempfile::TempDir,
    /// The nodes, in the order they were started.
    nodes: Vec<Node>,
    /// The key and bucket the tests use.
    access: Access,
}

/// The access key created for the tests and the bucket it may use.
struct Access {
    /// Access key id.
    key_id: String,
    /// Its secret.
    secret: String,
    /// The bucket the key may read and write.
    bucket: String,
    /// `access_key_id = ...`, `secret_access_key = ...`.
    credentials_file: PathBuf,
}

/// One Garage server: its directory (`garage.toml`, `garage.log`, `meta/`,
/// `data/`), its ports and, while it runs, its process.
struct Node {
    /// The binary.
    bin: PathBuf,
    /// Config, log, metadata and data.
    dir: PathBuf,
    /// The server process, when running.
    child: Option<Child>,
    /// S3 API port on 127.0.0.1.
    s3_port: u16,
    /// RPC port on 127.0.0.1.
    rpc_port: u16,
    /// Admin API port on 127.0.0.1.
    admin_port: u16,
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

/// How long a node or the cluster may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A random `rpc_secret`: 32 bytes as hex.
fn rpc_secret() -> String {
    (0..4u64)
        .map(|i| format!("{:016x}", random_u64() ^ i))
        .collect()
}

impl Node {
    /// A node in `dir` on free ports; nothing runs yet.
    fn new(bin: PathBuf, dir: PathBuf) -> Result<Self> {
        std::fs::create_dir_all(&dir).map_err(io(format!("create {}", dir.display())))?;
        Ok(Self {
            bin,
            dir,
            child: None,
            s3_port: free_port()?,
            rpc_port: free_port()?,
            admin_port: free_port()?,
        })
    }

    fn conf(&self) -> PathBuf {
        self.dir.join("garage.toml")
    }

    fn log(&self) -> PathBuf {
        self.dir.join("garage.log")
    }

    /// Writes `garage.toml`: `replication_factor`, the shared `secret`,
    /// and `peers` (`<node id>@<addr>`) as `bootstrap_peers`, which a
    /// restarted node dials at once.
    fn write_config(
        &self,
        replication_factor: usize,
        secret: &str,
        peers: &[String],
    ) -> Result<()> {
        let peers: Vec<String> = peers.iter().map(|p| format!("\"{p}\"")).collect();
        let conf = format!(
            r#"metadata_dir = "{meta}"
data_dir = "{data}"
db_engine = "sqlite"
replication_factor = {replication_factor}
rpc_bind_addr = "127.0.0.1:{rpc}"
rpc_public_addr = "127.0.0.1:{rpc}"
rpc_secret = "{secret}"
bootstrap_peers = [{peers}]

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:{s3}"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:{admin}"
"#,
            meta = self.dir.join("meta").display(),
            data = self.dir.join("data").display(),
            rpc = self.rpc_port,
            peers = peers.join(", "),
            s3 = self.s3_port,
            admin = self.admin_port,
        );
        std::fs::write(self.conf(), conf).map_err(io("write garage.toml"))
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    fn spawn(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
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
        let start = Instant::now();
        while start.elapsed() < READY_TIMEOUT {
            if TcpStream::connect(("127.0.0.1", self.s3_port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(GarageError::Timeout(
            READY_TIMEOUT,
            self.log().display().to_string(),
        ))
    }

    /// Runs the `garage` CLI against this node, returning stdout.
    fn cli(&self, args: &[&str]) -> Result<String> {
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

    /// Retries a CLI command while the node settles (peers, layout
    /// propagation, quorum).
    fn cli_retry(&self, args: &[&str]) -> Result<String> {
        let start = Instant::now();
        loop {
            match self.cli(args) {
                Ok(out) => return Ok(out),
                Err(e) if start.elapsed() > READY_TIMEOUT => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    /// The node's full id and RPC address, `<hex id>@127.0.0.1:<port>`.
    fn id(&self) -> Result<String> {
        let out = self.cli_retry(&["node", "id", "-q"])?;
        let id = out.trim();
        match id.split_once('@') {
            Some((hex, _)) if !hex.is_empty() => Ok(id.to_owned()),
            _ => Err(GarageError::Parse {
                what: "node id",
                output: out.clone(),
            }),
        }
    }

    /// Kills the server (SIGKILL: like a crash or a cut network).
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The short id (16 hex digits) `garage status` and `layout assign` use.
fn short_id(full: &str) -> &str {
    let hex = full.split('@').next().unwrap_or(full);
    hex.get(..16).unwrap_or(hex)
}

/// Creates the key `rewind-key` and the bucket `rewind` through `node`,
/// allows the key on it, and writes the credentials file into `dir`.
fn create_access(node: &Node, dir: &Path) -> Result<Access> {
    let bucket = "rewind".to_owned();
    let key_out = node.cli_retry(&["key", "create", "rewind-key"])?;
    let key_id = field(&key_out, "Key ID")?;
    let secret = field(&key_out, "Secret key")?;
    node.cli_retry(&["bucket", "create", &bucket])?;
    node.cli_retry(&[
        "bucket",
        "allow",
        "--read",
        "--write",
        "--owner",
        &bucket,
        "--key",
        "rewind-key",
    ])?;
    let credentials_file = dir.join("credentials");
    std::fs::write(
        &credentials_file,
        format!("access_key_id = {key_id}\nsecret_access_key = {secret}\n"),
    )
    .map_err(io("write credentials"))?;
    Ok(Access {
        key_id,
        secret,
        bucket,
        credentials_file,
    })
}

impl Garage {
    /// Starts a configured Garage with one key and one bucket, `rewind`.
    pub fn start() -> Result<Self> {
        let bin = binary()?;
        let dir = tempfile::Builder::new()
            .prefix("rewind-garage-")
            .tempdir()
            .map_err(io("temp dir"))?;
        let mut node = Box::new(Node::new(bin, dir.path().to_path_buf())?);
        node.write_config(1, &rpc_secret(), &[])?;
        node.spawn()?;
        let id = node.id()?;
        node.cli_retry(&["layout", "assign", "-z", "dc1", "-c", "1G", short_id(&id)])?;
        node.cli_retry(&["layout", "apply", "--version", "1"])?;
        let access = create_access(&node, dir.path())?;
        Ok(Self { dir, node, access })
    }

    /// The temp dir (config, `garage.log`, data).
    #[must_use]
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `http://127.0.0.1:<port>`.
    #[must_use]
    pub fn endpoint(&self) -> String {
        self.node.endpoint()
    }

    /// The bucket name.
    #[must_use]
    pub fn bucket(&self) -> &str {
        &self.access.bucket
    }

    /// `(access key id, secret key)`.
    #[must_use]
    pub fn key(&self) -> (&str, &str) {
        (&self.access.key_id, &self.access.secret)
    }

    /// A credentials file for the key, in the format Rewind's store reads.
    #[must_use]
    pub fn credentials_file(&self) -> PathBuf {
        self.access.credentials_file.clone()
    }

    /// Runs the `garage` CLI against this instance, returning stdout.
    pub fn cli(&self, args: &[&str]) -> Result<String> {
        self.node.cli(args)
    }

    /// Kills the server (SIGKILL: like a crash or a cut network).
    pub fn stop(&mut self) {
        self.node.stop();
    }

    /// Starts the server again on the same ports and data.
    pub fn restart(&mut self) -> Result<()> {
        self.node.stop();
        self.node.spawn()?;
        // Ready once the S3 API answers and the layout is loaded.
        self.node.cli_retry(&["status"]).map(|_| ())
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        self.node.stop();
    }
}

/// Which of `ids` (short ids) `garage status` output lists as healthy: the
/// rows of the `HEALTHY NODES` table, up to the next `====` heading.
fn healthy_in_status<'a>(status: &str, ids: &[&'a str]) -> Vec<&'a str> {
    let healthy: Vec<&str> = status
        .lines()
        .skip_while(|l| !l.contains("HEALTHY NODES"))
        .skip(1)
        .take_while(|l| !l.starts_with("===="))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    ids.iter()
        .copied()
        .filter(|id| healthy.contains(id))
        .collect()
}

impl GarageCluster {
    /// Starts `nodes` Garage servers on loopback (`replication_factor` =
    /// `nodes`, at most 3: Garage's "3" is what operators deploy), connects
    /// them, assigns each its own zone (`z0`, `z1`, ...) with 1 GB and
    /// applies that layout, then creates one key and the bucket `rewind`.
    /// Each node's config names the others as `bootstrap_peers`, so a
    /// stopped node rejoins as soon as it starts again. Returns once every
    /// node sees every other as healthy.
    pub fn start(nodes: usize) -> Result<Self> {
        if nodes == 0 {
            return Err(GarageError::NoSuchNode { index: 0, nodes });
        }
        let bin = binary()?;
        let dir = tempfile::Builder::new()
            .prefix("rewind-garage-cluster-")
            .tempdir()
            .map_err(io("temp dir"))?;
        let replication = nodes.min(3);
        let secret = rpc_secret();
        let mut all = Vec::with_capacity(nodes);
        for i in 0..nodes {
            let node = Node::new(bin.clone(), dir.path().join(format!("node{i}")))?;
            node.write_config(replication, &secret, &[])?;
            all.push(node);
        }
        let mut cluster = Self {
            dir,
            nodes: all,
            access: Access {
                key_id: String::new(),
                secret: String::new(),
                bucket: String::new(),
                credentials_file: PathBuf::new(),
            },
        };
        for node in &mut cluster.nodes {
            node.spawn()?;
        }
        let ids = cluster
            .nodes
            .iter()
            .map(Node::id)
            .collect::<Result<Vec<_>>>()?;
        // Every node's config names the others, for its next start; the
        // running ones are connected by hand.
        for (i, node) in cluster.nodes.iter().enumerate() {
            let peers: Vec<String> = ids
                .iter()
                .enumerate()
                .filter(|&(j, _)| j != i)
                .map(|(_, id)| id.clone())
                .collect();
            node.write_config(replication, &secret, &peers)?;
        }
        let first = cluster.node(0)?;
        for id in ids.iter().skip(1) {
            first.cli_retry(&["node", "connect", id])?;
        }
        cluster.wait_healthy()?;
        for (i, id) in ids.iter().enumerate() {
            let zone = format!("z{i}");
            first.cli_retry(&["layout", "assign", "-z", &zone, "-c", "1G", short_id(id)])?;
        }
        first.cli_retry(&["layout", "apply", "--version", "1"])?;
        cluster.wait_layout(1)?;
        cluster.access = create_access(first, cluster.dir.path())?;
        Ok(cluster)
    }

    fn node(&self, index: usize) -> Result<&Node> {
        self.nodes.get(index).ok_or(GarageError::NoSuchNode {
            index,
            nodes: self.nodes.len(),
        })
    }

    fn node_mut(&mut self, index: usize) -> Result<&mut Node> {
        let nodes = self.nodes.len();
        self.nodes
            .get_mut(index)
            .ok_or(GarageError::NoSuchNode { index, nodes })
    }

    /// How many nodes the cluster has.
    #[must_use]
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the cluster has no nodes (never, once started).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The temp dir: `node<i>/` (config, `garage.log`, `meta/`, `data/`)
    /// per node, and the credentials file.
    #[must_use]
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Node `index`'s S3 endpoint, `http://127.0.0.1:<port>`.
    pub fn endpoint(&self, index: usize) -> Result<String> {
        self.node(index).map(Node::endpoint)
    }

    /// The bucket name.
    #[must_use]
    pub fn bucket(&self) -> &str {
        &self.access.bucket
    }

    /// `(access key id, secret key)`.
    #[must_use]
    pub fn key(&self) -> (&str, &str) {
        (&self.access.key_id, &self.access.secret)
    }

    /// A credentials file for the key, in the format Rewind's store reads.
    #[must_use]
    pub fn credentials_file(&self) -> PathBuf {
        self.access.credentials_file.clone()
    }

    /// Runs the `garage` CLI against node `index`, returning stdout.
    pub fn cli(&self, index: usize, args: &[&str]) -> Result<String> {
        self.node(index)?.cli(args)
    }

    /// Whether node `index` runs (was started and not stopped since).
    #[must_use]
    pub fn is_running(&self, index: usize) -> bool {
        self.nodes.get(index).is_some_and(|n| n.child.is_some())
    }

    /// Kills node `index` (SIGKILL: like a crash, a power cut or a lost
    /// host); its directories and ports stay reserved for
    /// [`GarageCluster::start_node`].
    pub fn stop_node(&mut self, index: usize) -> Result<()> {
        self.node_mut(index)?.stop();
        Ok(())
    }

    /// Starts node `index` again on its ports and data, and returns once
    /// every running node sees every running node as healthy.
    pub fn start_node(&mut self, index: usize) -> Result<()> {
        let node = self.node_mut(index)?;
        node.stop();
        node.spawn()?;
        self.wait_healthy()
    }

    /// Waits until every running node's `garage status` lists every running
    /// node as healthy.
    pub fn wait_healthy(&self) -> Result<()> {
        let running: Vec<&Node> = self.nodes.iter().filter(|n| n.child.is_some()).collect();
        let ids = running.iter().map(|n| n.id()).collect::<Result<Vec<_>>>()?;
        let short: Vec<&str> = ids.iter().map(|id| short_id(id)).collect();
        let start = Instant::now();
        loop {
            let mut missing = Vec::new();
            for (node, id) in running.iter().zip(&short) {
                let status = node.cli(&["status"]).unwrap_or_default();
                let healthy = healthy_in_status(&status, &short);
                for s in &short {
                    if !healthy.contains(s) {
                        missing.push(format!("{id} does not see {s}"));
                    }
                }
            }
            if missing.is_empty() {
                return Ok(());
            }
            if start.elapsed() > READY_TIMEOUT {
                return Err(GarageError::Unhealthy {
                    waited: start.elapsed(),
                    detail: missing.join("; "),
                    dir: self.dir.path().display().to_string(),
                });
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Waits until every running node holds layout `version`.
    fn wait_layout(&self, version: u64) -> Result<()> {
        let want = format!("Current cluster layout version: {version}");
        let start = Instant::now();
        loop {
            let behind: Vec<String> = self
                .nodes
                .iter()
                .enumerate()
                .filter(|(_, n)| n.child.is_some())
                .filter(|(_, n)| {
                    !n.cli(&["layout", "show"])
                        .unwrap_or_default()
                        .contains(&want)
                })
                .map(|(i, _)| format!("node {i} has no layout version {version}"))
                .collect();
            if behind.is_empty() {
                return Ok(());
            }
            if start.elapsed() > READY_TIMEOUT {
                return Err(GarageError::Unhealthy {
                    waited: start.elapsed(),
                    detail: behind.join("; "),
                    dir: self.dir.path().display().to_string(),
                });
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for GarageCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.stop();
        }
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

    /// `garage status` as 2.5.0 prints it with one of three nodes down:
    /// only the rows of the healthy table count.
    #[test]
    fn healthy_nodes_are_read_from_the_healthy_table_only() {
        let status = "\
==== HEALTHY NODES ====
ID                Hostname  Address          Tags  Zone  Capacity   DataAvail         ResyncQueue  Version
09e6ff06c4d8b8ba  vm        127.0.0.1:39101  []    z1    953.7 MiB  43.0 GiB (17.1%)  0            cargo:2.5.0
424d0bd5c939e34f  vm        127.0.0.1:39100  []    z0    953.7 MiB  43.0 GiB (17.1%)  0            cargo:2.5.0

==== FAILED NODES ====
ID                Hostname  Tags  Zone  Capacity   Last seen
9afda32a8ff587e9  vm        []    z2    953.7 MiB  18 seconds ago
";
        let ids = ["424d0bd5c939e34f", "09e6ff06c4d8b8ba", "9afda32a8ff587e9"];
        assert_eq!(
            healthy_in_status(status, &ids),
            vec!["424d0bd5c939e34f", "09e6ff06c4d8b8ba"]
        );
        assert!(healthy_in_status("", &ids).is_empty());
        assert_eq!(
            short_id(
                "9afda32a8ff587e9c03246159d75cd8ea957b3ccf10a122facdf9e2fe4c61113@127.0.0.1:39102"
            ),
            "9afda32a8ff587e9"
        );
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
