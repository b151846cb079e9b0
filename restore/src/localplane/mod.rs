//! A throwaway control plane on loopback: etcd and kube-apiserver started from
//! their binaries, for `rewind drill` when the operator gives no cluster.
//!
//! A drill must prove that a backup restores into an empty management plane,
//! and the cheapest empty plane is one made on the spot: a fresh etcd data
//! directory, an apiserver with a throwaway CA, and one admin token. Nothing
//! else runs (no controller-manager, no scheduler), which is what a restore
//! target needs: the API, its storage, admission and CRD handling. Everything
//! stops and the directory is removed when the [`LocalPlane`] drops.
//!
//! The test harness (`rewind-tests`) builds its control planes from the same
//! parts ([`process`], [`pki`], [`etcd_args`], [`apiserver_args`]).

pub mod pki;
pub mod process;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use process::Managed;

/// Admission plugins that need controllers or objects a bare control plane
/// does not run. The rest (NamespaceLifecycle, webhooks,
/// ValidatingAdmissionPolicy, ...) stay on as in production.
pub const DISABLED_ADMISSION: &str = "ServiceAccount,ResourceQuota,LimitRanger,Priority,\
DefaultTolerationSeconds,DefaultStorageClass,StorageObjectInUseProtection,\
PersistentVolumeClaimResize,RuntimeClass,DefaultIngressClass,TaintNodesByCondition,\
CertificateApproval,CertificateSigning,CertificateSubjectRestriction,\
ClusterTrustBundleAttest,PodSecurity";

/// Errors of the local control plane.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A binary was not found.
    #[error(
        "{name} not found: pass --{flag} PATH, set {var}, or put {name} on PATH \
         (tests/controlplane/build.sh builds it into target/controlplane/bin)"
    )]
    Missing {
        /// Binary name.
        name: &'static str,
        /// The flag that names it.
        flag: &'static str,
        /// The environment variable that names it.
        var: &'static str,
    },
    /// A named binary does not exist.
    #[error("{name} at {path} does not exist or is not a file")]
    NotAFile {
        /// Binary name.
        name: &'static str,
        /// Where it was looked for.
        path: String,
    },
    /// Local IO (temp dir, ports, files).
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A process could not be started.
    #[error(transparent)]
    Process(#[from] process::Error),
    /// Key material could not be generated.
    #[error(transparent)]
    Pki(#[from] pki::Error),
    /// A process exited, or did not become ready, while we waited for it.
    #[error("{0}")]
    Wait(#[from] WaitError),
    /// The client for the plane could not be built.
    #[error("building a client for the local control plane: {0}")]
    Client(String),
}

/// Result alias of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why waiting for a process to become ready failed.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    /// It exited first.
    #[error("{name} exited ({status}) before it was ready; last lines of {log}:\n{tail}")]
    Exited {
        /// Process name.
        name: &'static str,
        /// Its exit status.
        status: String,
        /// Its log file.
        log: String,
        /// The end of its log.
        tail: String,
    },
    /// It did not answer in time.
    #[error("{name} not ready after {secs} s (last check: {last}); last lines of {log}:\n{tail}")]
    NotReady {
        /// Process name.
        name: &'static str,
        /// How long we waited.
        secs: u64,
        /// What the last check said.
        last: String,
        /// Its log file.
        log: String,
        /// The end of its log.
        tail: String,
    },
}

/// Where the two binaries are.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// The etcd server.
    pub etcd: PathBuf,
    /// kube-apiserver.
    pub kube_apiserver: PathBuf,
}

impl Binaries {
    /// Finds the binaries: an explicit path first, then `REWIND_ETCD` /
    /// `REWIND_KUBE_APISERVER`, then `PATH`.
    pub fn locate(etcd: Option<&Path>, kube_apiserver: Option<&Path>) -> Result<Self> {
        Ok(Self {
            etcd: find("etcd", "etcd", "REWIND_ETCD", etcd)?,
            kube_apiserver: find(
                "kube-apiserver",
                "kube-apiserver",
                "REWIND_KUBE_APISERVER",
                kube_apiserver,
            )?,
        })
    }
}

fn find(
    name: &'static str,
    flag: &'static str,
    var: &'static str,
    given: Option<&Path>,
) -> Result<PathBuf> {
    let named = given
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os(var).map(PathBuf::from));
    if let Some(path) = named {
        return if path.is_file() {
            Ok(path)
        } else {
            Err(Error::NotAFile {
                name,
                path: path.display().to_string(),
            })
        };
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .ok_or(Error::Missing { name, flag, var })
}

/// etcd's arguments: one member, client and peer on loopback, data in `dir`.
#[must_use]
pub fn etcd_args(dir: &Path, client: SocketAddr, peer: SocketAddr) -> Vec<String> {
    vec![
        "--name=rewind".into(),
        format!("--data-dir={}", dir.join("etcd").display()),
        format!("--listen-client-urls=http://{client}"),
        format!("--advertise-client-urls=http://{client}"),
        format!("--listen-peer-urls=http://{peer}"),
        format!("--initial-advertise-peer-urls=http://{peer}"),
        format!("--initial-cluster=rewind=http://{peer}"),
        // A throwaway plane: fsync only slows every write.
        "--unsafe-no-fsync".into(),
        "--log-level=warn".into(),
        // etcd's default 2 GiB quota is below a million-object plane with
        // its history; 8 GiB is the largest etcd recommends.
        "--quota-backend-bytes=8589934592".into(),
    ]
}

/// kube-apiserver's arguments for a bare loopback plane, then `extra`.
#[must_use]
pub fn apiserver_args(
    pki: &pki::Pki,
    etcd: SocketAddr,
    api: SocketAddr,
    extra: &[String],
) -> Vec<String> {
    let mut args = vec![
        format!("--etcd-servers=http://{etcd}"),
        "--bind-address=127.0.0.1".into(),
        "--advertise-address=127.0.0.1".into(),
        format!("--secure-port={}", api.port()),
        format!("--tls-cert-file={}", pki.serving_cert.display()),
        format!("--tls-private-key-file={}", pki.serving_key.display()),
        format!("--client-ca-file={}", pki.ca_cert.display()),
        format!("--token-auth-file={}", pki.token_file.display()),
        "--authorization-mode=RBAC".into(),
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
        format!("--service-account-key-file={}", pki.sa_pub.display()),
        format!(
            "--service-account-signing-key-file={}",
            pki.sa_key.display()
        ),
        "--service-cluster-ip-range=10.0.0.0/24".into(),
        format!("--disable-admission-plugins={DISABLED_ADMISSION}"),
        // Faster start, and no lease/endpoint writes.
        "--enable-priority-and-fairness=false".into(),
        "--endpoint-reconciler-type=none".into(),
        "--profiling=false".into(),
    ];
    args.extend(extra.iter().cloned());
    args
}

/// Picks `n` distinct free loopback ports (all bound at once, then released).
pub fn free_ports(n: usize) -> std::io::Result<Vec<SocketAddr>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()?;
    listeners.iter().map(TcpListener::local_addr).collect()
}

/// The text of a kubeconfig for `server` with a bearer token (context `rewind`).
#[must_use]
pub fn render_kubeconfig(server: &str, ca_pem: &str, user: &str, token: &str) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: rewind
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: {user}
  user:
    token: {token}
contexts:
- name: rewind
  context:
    cluster: rewind
    user: {user}
current-context: rewind
"
    )
}

/// Polls `check` until it says ready, the process exits, or `limit` passes.
pub async fn wait_ready<F, Fut>(
    p: &mut Managed,
    limit: Duration,
    mut check: F,
) -> Result<(), WaitError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let start = Instant::now();
    loop {
        let last = match check().await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if let Some(status) = p.exited() {
            return Err(WaitError::Exited {
                name: p.name(),
                status,
                log: p.log_path().display().to_string(),
                tail: p.log_tail(40),
            });
        }
        if start.elapsed() > limit {
            return Err(WaitError::NotReady {
                name: p.name(),
                secs: limit.as_secs(),
                last,
                log: p.log_path().display().to_string(),
                tail: p.log_tail(40),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether etcd at `addr` answers `/health` with `"health":"true"`.
pub async fn etcd_health(addr: SocketAddr) -> Result<(), String> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        let req = format!("GET /health HTTP/1.0\r\nHost: {addr}\r\n\r\n");
        stream.write_all(req.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(raw)
    };
    match tokio::time::timeout(Duration::from_secs(5), exchange).await {
        Ok(Ok(raw)) if String::from_utf8_lossy(&raw).contains("\"true\"") => Ok(()),
        Ok(Ok(raw)) => Err(format!(
            "GET http://{addr}/health said {:?}",
            String::from_utf8_lossy(&raw)
        )),
        Ok(Err(e)) => Err(format!("GET http://{addr}/health: {e}")),
        Err(_) => Err(format!("GET http://{addr}/health timed out")),
    }
}

/// Whether the apiserver answers `/readyz` with `ok`.
pub async fn apiserver_ready(client: &kube::Client) -> Result<(), String> {
    let req = http::Request::get("/readyz")
        .body(Vec::new())
        .map_err(|e| e.to_string())?;
    match tokio::time::timeout(Duration::from_secs(5), client.request_text(req)).await {
        Ok(Ok(body)) if body.trim() == "ok" => Ok(()),
        Ok(Ok(body)) => Err(format!("/readyz said {body:?}")),
        Ok(Err(e)) => Err(format!("/readyz: {e}")),
        Err(_) => Err("/readyz timed out".into()),
    }
}

/// Builds a client from a kubeconfig file (its current context).
pub async fn client_from_file(path: &Path) -> Result<kube::Client> {
    rewind_history::install_tls_provider();
    let err = |e: &dyn std::fmt::Display| Error::Client(format!("{}: {e}", path.display()));
    let kubeconfig = Kubeconfig::read_from(path).map_err(|e| err(&e))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| err(&e))?;
    kube::Client::try_from(config).map_err(|e| err(&e))
}

/// The admin user of a local plane (member of `system:masters`).
pub const ADMIN_USER: &str = "rewind-drill-admin";

/// A running throwaway control plane. Dropping it stops both processes and
/// removes its directory (unless [`LocalPlane::keep`] was called).
pub struct LocalPlane {
    // Field order is drop order: the apiserver goes before etcd.
    apiserver: Managed,
    etcd: Managed,
    kubeconfig: PathBuf,
    client: kube::Client,
    server: String,
    startup: Duration,
    dir: Option<tempfile::TempDir>,
}

impl LocalPlane {
    /// Starts etcd and kube-apiserver on free loopback ports and waits until
    /// the apiserver is ready (at most `limit` each).
    pub async fn start(bins: &Binaries, limit: Duration) -> Result<Self> {
        let io = |what: &str| {
            let what = what.to_owned();
            move |source| Error::Io { what, source }
        };
        let dir = tempfile::Builder::new()
            .prefix("rewind-drill-")
            .tempdir()
            .map_err(io("creating the drill's temp dir"))?;
        let token = random_token().map_err(io("reading /dev/urandom"))?;
        let tokens = format!("{token},{ADMIN_USER},uid-{ADMIN_USER},\"system:masters\"\n");
        let pki = pki::generate(dir.path(), &tokens)?;
        let ports = free_ports(3).map_err(io("picking free ports"))?;
        let (Some(&etcd_addr), Some(&peer), Some(&api_addr)) =
            (ports.first(), ports.get(1), ports.get(2))
        else {
            return Err(Error::Io {
                what: "picking free ports".into(),
                source: std::io::Error::other("fewer ports than asked for"),
            });
        };
        let began = Instant::now();
        let mut etcd = Managed::spawn(
            "etcd",
            &bins.etcd,
            &etcd_args(dir.path(), etcd_addr, peer),
            &dir.path().join("etcd.log"),
        )?;
        wait_ready(&mut etcd, limit, || etcd_health(etcd_addr)).await?;
        let mut apiserver = Managed::spawn(
            "kube-apiserver",
            &bins.kube_apiserver,
            &apiserver_args(&pki, etcd_addr, api_addr, &[]),
            &dir.path().join("kube-apiserver.log"),
        )?;
        let server = format!("https://{api_addr}");
        let kubeconfig = dir.path().join("admin.kubeconfig");
        std::fs::write(
            &kubeconfig,
            render_kubeconfig(&server, &pki.ca_pem, ADMIN_USER, &token),
        )
        .map_err(io("writing the drill's kubeconfig"))?;
        let client = client_from_file(&kubeconfig).await?;
        wait_ready(&mut apiserver, limit, || apiserver_ready(&client)).await?;
        let startup = began.elapsed();
        tracing::info!(apiserver = %server, dir = %dir.path().display(),
            startup_ms = startup.as_millis(), "local control plane ready");
        Ok(Self {
            apiserver,
            etcd,
            kubeconfig,
            client,
            server,
            startup,
            dir: Some(dir),
        })
    }

    /// An admin client.
    #[must_use]
    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    /// The admin kubeconfig file (valid while the plane runs).
    #[must_use]
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The apiserver's URL.
    #[must_use]
    pub fn server(&self) -> &str {
        &self.server
    }

    /// How long etcd plus the apiserver took to become ready.
    #[must_use]
    pub fn startup(&self) -> Duration {
        self.startup
    }

    /// Keeps the directory (logs, etcd data, kubeconfig) after the plane
    /// stops, for a post-mortem; returns its path.
    pub fn keep(&mut self) -> Option<PathBuf> {
        self.dir.take().map(tempfile::TempDir::keep)
    }
}

impl std::fmt::Debug for LocalPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalPlane")
            .field("server", &self.server)
            .field("kubeconfig", &self.kubeconfig)
            .finish_non_exhaustive()
    }
}

impl Drop for LocalPlane {
    fn drop(&mut self) {
        self.apiserver.stop();
        self.etcd.stop();
    }
}

/// A bearer token nobody can guess: the plane listens on loopback only, but
/// other local users must not be able to write into it.
fn random_token() -> std::io::Result<String> {
    use std::io::Read as _;
    let mut bytes = [0_u8; 24];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
