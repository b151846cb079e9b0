//! A real kube-apiserver and etcd on loopback, one set per [`ControlPlane`].
//!
//! Each control plane has its own temporary directory (certificates, token
//! file, etcd data, logs, kubeconfigs) and its own free 127.0.0.1 ports, so
//! any number can run at once. Everything stops when the value drops, also
//! during a panic. By default no controller-manager runs: namespaces never
//! finish terminating, nothing is garbage-collected, and no service-account
//! token controller exists; identities come from a static token file
//! instead. [`Options::controller_manager`] starts kube-controller-manager
//! too ([`controllers`]), for tests that need controllers acting on what
//! they write.

mod binaries;
pub mod controllers;
mod etcd;
mod kubeconfig;
mod pki;
mod process;
mod proxy;
mod rbac;
mod reaper;
mod start;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::rbac::v1::PolicyRule;

pub use binaries::{
    Binaries, controller_manager as locate_controller_manager, locate as locate_binaries,
    target_dir, workspace_root,
};
pub use kubeconfig::{Identity, client_from_file};
pub use pki::{ADMIN_USER, READONLY_USER, SPARE_USERS};
pub use proxy::TcpProxy;
pub use rbac::read_only_rules;

use process::Managed;

/// Errors from the control plane harness.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Locating or building the binaries failed.
    #[error(transparent)]
    Binaries(#[from] binaries::Error),
    /// A process could not be started.
    #[error(transparent)]
    Process(#[from] process::Error),
    /// Key material could not be generated.
    #[error(transparent)]
    Pki(#[from] pki::Error),
    /// A kubeconfig or client could not be made.
    #[error(transparent)]
    Kubeconfig(#[from] kubeconfig::Error),
    /// The etcd gateway failed.
    #[error(transparent)]
    Etcd(#[from] etcd::Error),
    /// Granting RBAC failed.
    #[error(transparent)]
    Rbac(#[from] rbac::Error),
    /// Local IO (temp dir, ports, proxy listener).
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        source: std::io::Error,
    },
    /// A process exited, or did not become ready, while we waited for it.
    #[error(transparent)]
    Wait(#[from] rewind_restore::localplane::WaitError),
    /// The user is not one of the token file's spare users.
    #[error("unknown test user {0:?}: tokens exist only for {SPARE_USERS:?}")]
    UnknownUser(String),
    /// An operation needs a process that is stopped.
    #[error("{0} is stopped")]
    Stopped(&'static str),
}

/// Result alias for this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Knobs for [`ControlPlane::start_with`]. The defaults suit almost every test.
#[derive(Debug, Clone)]
pub struct Options {
    /// kube-apiserver's watch cache. Off by default, so every watch and list
    /// reaches etcd and [`ControlPlane::compact_etcd_now`] yields a real `410`
    /// for any older resourceVersion at once. Production runs with it on: then
    /// a watch from a version the cache still holds succeeds even after
    /// compaction, and `410 too old resource version` comes only when the
    /// version falls out of the cache window (for example right after
    /// [`ControlPlane::restart_apiserver`]).
    pub watch_cache: bool,
    /// Extra kube-apiserver flags, appended last (later flags win).
    pub extra_apiserver_args: Vec<String>,
    /// How long to wait for etcd health and apiserver `/readyz` (and for the
    /// controller-manager's first act).
    pub ready_timeout: Duration,
    /// Also run kube-controller-manager ([`controllers::CONTROLLERS`]).
    /// Off by default: it needs its own binary and adds a few seconds.
    pub controller_manager: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            watch_cache: false,
            extra_apiserver_args: Vec::new(),
            ready_timeout: Duration::from_secs(60),
            controller_manager: false,
        }
    }
}

/// A running etcd + kube-apiserver pair with an admin and a read-only identity.
pub struct ControlPlane {
    /// Holds certificates, data, logs and kubeconfigs; removed on drop.
    dir: tempfile::TempDir,
    /// The binaries in use.
    bins: Binaries,
    /// Key material and the token file, reused across restarts.
    pki: pki::Pki,
    /// etcd's client URL address (also its HTTP/JSON gateway).
    etcd_addr: SocketAddr,
    /// The full etcd command line, reused by `start_etcd`.
    etcd_args: Vec<String>,
    /// The apiserver's secure port address.
    apiserver_addr: SocketAddr,
    /// The full apiserver command line, reused by `restart_apiserver`.
    apiserver_args: Vec<String>,
    /// etcd, `None` while stopped.
    etcd: Mutex<Option<Managed>>,
    /// kube-apiserver, `None` while stopped.
    apiserver: Mutex<Option<Managed>>,
    /// kube-controller-manager, when the options asked for it.
    controller_manager: Mutex<Option<Managed>>,
    /// Time from spawning kube-controller-manager to its first act.
    controller_manager_startup: Option<Duration>,
    /// Readiness timeout from the options.
    ready_timeout: Duration,
    /// `system:masters` identity.
    admin: Identity,
    /// get/list/watch-only identity.
    readonly: Identity,
    /// Time from spawning etcd to apiserver `/readyz` (for reports).
    startup: Duration,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane")
            .field("dir", &self.dir.path())
            .field("etcd", &self.etcd_addr)
            .field("apiserver", &self.apiserver_addr)
            .finish_non_exhaustive()
    }
}

/// Admin and read-only identities that reach the apiserver through a [`TcpProxy`].
#[derive(Debug)]
pub struct Proxied {
    /// The proxy; stall, resume and cut through it.
    pub proxy: TcpProxy,
    /// Admin identity whose kubeconfig points at the proxy.
    pub admin: Identity,
    /// Read-only identity whose kubeconfig points at the proxy.
    pub readonly: Identity,
}

impl ControlPlane {
    /// Starts a control plane with default [`Options`].
    pub async fn start() -> Result<Self> {
        Self::start_with(Options::default()).await
    }

    /// The admin client (`system:masters`).
    pub fn admin_client(&self) -> kube::Client {
        self.admin.client.clone()
    }

    /// The least-privilege client (get/list/watch on everything).
    pub fn readonly_client(&self) -> kube::Client {
        self.readonly.client.clone()
    }

    /// The admin identity.
    pub fn admin(&self) -> &Identity {
        &self.admin
    }

    /// The least-privilege identity.
    pub fn readonly(&self) -> &Identity {
        &self.readonly
    }

    /// The admin kubeconfig file.
    pub fn admin_kubeconfig_path(&self) -> &Path {
        &self.admin.kubeconfig
    }

    /// The least-privilege kubeconfig file.
    pub fn readonly_kubeconfig_path(&self) -> &Path {
        &self.readonly.kubeconfig
    }

    /// `https://127.0.0.1:<port>`.
    pub fn apiserver_url(&self) -> String {
        format!("https://{}", self.apiserver_addr)
    }

    /// The apiserver's socket address.
    pub fn apiserver_addr(&self) -> SocketAddr {
        self.apiserver_addr
    }

    /// `http://127.0.0.1:<port>`, etcd's client URL.
    pub fn etcd_url(&self) -> String {
        format!("http://{}", self.etcd_addr)
    }

    /// The CA certificate file clients trust.
    pub fn ca_cert_path(&self) -> &Path {
        &self.pki.ca_cert
    }

    /// The temporary directory with logs (`etcd.log`, `kube-apiserver.log`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The binaries (kubectl included) this control plane uses.
    pub fn binaries(&self) -> &Binaries {
        &self.bins
    }

    /// How long etcd + apiserver took from spawn to `/readyz`.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// How long kube-controller-manager took from spawn to its first act
    /// (`None` without one).
    pub fn controller_manager_startup_time(&self) -> Option<Duration> {
        self.controller_manager_startup
    }

    /// Whether kube-controller-manager is running (started and not exited).
    pub fn controller_manager_running(&self) -> bool {
        let mut guard = self
            .controller_manager
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        guard.as_mut().is_some_and(|p| p.exited().is_none())
    }

    /// A spare user (one of [`SPARE_USERS`]) with whatever RBAC it has now
    /// (none until granted): for "insufficient rights" tests.
    pub async fn identity(&self, user: &str) -> Result<Identity> {
        if !SPARE_USERS.contains(&user) {
            return Err(Error::UnknownUser(user.to_string()));
        }
        let path = self.dir.path().join(format!("{user}.kubeconfig"));
        let token = pki::token_for(user);
        Ok(
            kubeconfig::write_identity(
                &path,
                &self.apiserver_url(),
                &self.pki.ca_pem,
                user,
                &token,
            )
            .await?,
        )
    }

    /// Grants `rules` cluster-wide to a spare user (replacing an earlier
    /// grant), waits until RBAC enforces them, and returns the identity.
    pub async fn create_identity(&self, user: &str, rules: Vec<PolicyRule>) -> Result<Identity> {
        let identity = self.identity(user).await?;
        rbac::grant_cluster(&self.admin.client, user, rules).await?;
        Ok(identity)
    }

    /// Like [`ControlPlane::create_identity`], but the rules hold only in `namespace`.
    pub async fn create_namespaced_identity(
        &self,
        user: &str,
        namespace: &str,
        rules: Vec<PolicyRule>,
    ) -> Result<Identity> {
        let identity = self.identity(user).await?;
        rbac::grant_namespaced(&self.admin.client, user, namespace, rules).await?;
        Ok(identity)
    }

    /// Compacts etcd to its current revision; returns that revision.
    pub async fn compact_etcd_now(&self) -> Result<i64> {
        Ok(etcd::compact_now(self.etcd_addr).await?)
    }

    /// etcd's current revision (the newest resourceVersion).
    pub async fn etcd_revision(&self) -> Result<i64> {
        Ok(etcd::current_revision(self.etcd_addr).await?)
    }

    /// Starts a TCP proxy to the apiserver and identities that use it.
    pub async fn proxy(&self) -> Result<Proxied> {
        let proxy = TcpProxy::start(self.apiserver_addr)
            .await
            .map_err(|source| Error::Io {
                what: "starting the proxy",
                source,
            })?;
        let server = format!("https://{}", proxy.addr());
        let port = proxy.addr().port();
        let mut made = Vec::new();
        for (user, name) in [(ADMIN_USER, "admin"), (READONLY_USER, "readonly")] {
            let path = self
                .dir
                .path()
                .join(format!("proxy-{port}-{name}.kubeconfig"));
            made.push(
                kubeconfig::write_identity(
                    &path,
                    &server,
                    &self.pki.ca_pem,
                    user,
                    &pki::token_for(user),
                )
                .await?,
            );
        }
        let mut made = made.into_iter();
        match (made.next(), made.next()) {
            (Some(admin), Some(readonly)) => Ok(Proxied {
                proxy,
                admin,
                readonly,
            }),
            _ => Err(Error::Stopped("proxy identities")),
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        // The controllers first, then the apiserver, so neither logs a storm
        // of connection errors.
        for slot in [&self.controller_manager, &self.apiserver, &self.etcd] {
            let mut guard = slot
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(mut p) = guard.take() {
                p.stop();
            }
        }
    }
}
