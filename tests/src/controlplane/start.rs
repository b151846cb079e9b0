//! Starting, restarting and stopping etcd and kube-apiserver.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rewind_restore::localplane;

use super::process::Managed;
use super::{
    ControlPlane, Error, Options, Result, binaries, controllers, kubeconfig, pki, rbac, reaper,
};

/// How many times a start is retried when a process dies early (for example a
/// port taken between picking and binding it).
const ATTEMPTS: usize = 3;

/// Picks `n` distinct free loopback ports (all bound at once, then released).
fn free_ports(n: usize) -> Result<Vec<SocketAddr>> {
    localplane::free_ports(n).map_err(|source| Error::Io {
        what: "picking free ports",
        source,
    })
}

fn apiserver_args(
    pki: &pki::Pki,
    etcd: SocketAddr,
    api: SocketAddr,
    opts: &Options,
) -> Vec<String> {
    let mut extra = vec![format!("--watch-cache={}", opts.watch_cache)];
    extra.extend(opts.extra_apiserver_args.iter().cloned());
    localplane::apiserver_args(pki, etcd, api, &extra)
}

impl ControlPlane {
    /// Starts a control plane with the given options.
    pub async fn start_with(opts: Options) -> Result<Self> {
        let bins = tokio::task::spawn_blocking(binaries::locate)
            .await
            .map_err(|e| Error::Io {
                what: "locating binaries",
                source: std::io::Error::other(e),
            })??;
        let mut attempt = 1;
        loop {
            match Self::start_once(bins.clone(), &opts).await {
                Err(e @ Error::Wait(localplane::WaitError::Exited { .. }))
                    if attempt < ATTEMPTS =>
                {
                    tracing::warn!(attempt, error = %e, "control plane died at start; retrying");
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn start_once(bins: binaries::Binaries, opts: &Options) -> Result<Self> {
        let kcm_bin = if opts.controller_manager {
            Some(
                tokio::task::spawn_blocking(binaries::controller_manager)
                    .await
                    .map_err(|e| Error::Io {
                        what: "locating kube-controller-manager",
                        source: std::io::Error::other(e),
                    })??,
            )
        } else {
            None
        };
        reaper::reap_orphans();
        let dir = tempfile::Builder::new()
            .prefix("rewind-cp-")
            .tempdir()
            .map_err(|source| Error::Io {
                what: "creating the temp dir",
                source,
            })?;
        reaper::write_owner(dir.path()).map_err(|source| Error::Io {
            what: "writing the owner file",
            source,
        })?;
        let pki = pki::generate(dir.path())?;
        let ports = free_ports(3)?;
        let (Some(&etcd_addr), Some(&peer), Some(&apiserver_addr)) =
            (ports.first(), ports.get(1), ports.get(2))
        else {
            return Err(Error::Stopped("port picker"));
        };
        let etcd_args = localplane::etcd_args(dir.path(), etcd_addr, peer);
        let apiserver_args = apiserver_args(&pki, etcd_addr, apiserver_addr, opts);

        let began = Instant::now();
        let mut etcd =
            Managed::spawn("etcd", &bins.etcd, &etcd_args, &dir.path().join("etcd.log"))?;
        wait_etcd(&mut etcd, etcd_addr, opts.ready_timeout).await?;
        let mut api = Managed::spawn(
            "kube-apiserver",
            &bins.kube_apiserver,
            &apiserver_args,
            &dir.path().join("kube-apiserver.log"),
        )?;
        let server = format!("https://{apiserver_addr}");
        let admin = kubeconfig::write_identity(
            &dir.path().join("admin.kubeconfig"),
            &server,
            &pki.ca_pem,
            pki::ADMIN_USER,
            &pki::token_for(pki::ADMIN_USER),
        )
        .await?;
        wait_apiserver(&mut api, &admin.client, opts.ready_timeout).await?;
        let startup = began.elapsed();

        rbac::grant_cluster(&admin.client, pki::READONLY_USER, rbac::read_only_rules()).await?;
        let readonly = kubeconfig::write_identity(
            &dir.path().join("readonly.kubeconfig"),
            &server,
            &pki.ca_pem,
            pki::READONLY_USER,
            &pki::token_for(pki::READONLY_USER),
        )
        .await?;
        let (controller_manager, controller_manager_startup) = match kcm_bin {
            Some(path) => {
                let began = Instant::now();
                let kubeconfig = dir.path().join("kube-controller-manager.kubeconfig");
                std::fs::write(
                    &kubeconfig,
                    kubeconfig::render(
                        &server,
                        &pki.ca_pem,
                        controllers::USER,
                        &controllers::token(),
                    ),
                )
                .map_err(|source| Error::Io {
                    what: "writing the controller-manager's kubeconfig",
                    source,
                })?;
                let mut kcm = Managed::spawn(
                    "kube-controller-manager",
                    &path,
                    &controllers::args(&kubeconfig, &pki),
                    &dir.path().join("kube-controller-manager.log"),
                )?;
                localplane::wait_ready(&mut kcm, opts.ready_timeout, || {
                    controllers::ready(&admin.client)
                })
                .await?;
                tracing::info!(
                    startup_ms = began.elapsed().as_millis(),
                    "controller-manager ready"
                );
                (Some(kcm), Some(began.elapsed()))
            }
            None => (None, None),
        };
        tracing::info!(apiserver = %server, dir = %dir.path().display(),
            startup_ms = startup.as_millis(), "control plane ready");
        Ok(Self {
            dir,
            bins,
            pki,
            etcd_addr,
            etcd_args,
            apiserver_addr,
            apiserver_args,
            etcd: Mutex::new(Some(etcd)),
            apiserver: Mutex::new(Some(api)),
            controller_manager: Mutex::new(controller_manager),
            controller_manager_startup,
            ready_timeout: opts.ready_timeout,
            admin,
            readonly,
            startup,
        })
    }

    /// Kills kube-apiserver and starts it again on the same port with the same
    /// certificates and tokens; returns once `/readyz` is OK. Every open watch
    /// and connection breaks, as in a real restart.
    pub async fn restart_apiserver(&self) -> Result<()> {
        let old = lock(&self.apiserver).take();
        drop(old);
        let mut api = Managed::spawn(
            "kube-apiserver",
            &self.bins.kube_apiserver,
            &self.apiserver_args,
            &self.dir.path().join("kube-apiserver.log"),
        )?;
        wait_apiserver(&mut api, &self.admin.client, self.ready_timeout).await?;
        *lock(&self.apiserver) = Some(api);
        tracing::info!(apiserver = %self.apiserver_addr, "apiserver restarted");
        Ok(())
    }

    /// Kills kube-apiserver and starts it again like
    /// [`ControlPlane::restart_apiserver`], but returns as soon as the new
    /// process is spawned: for tests of what a client sees while the server
    /// starts (refused connections, then a server that is not ready yet).
    pub fn restart_apiserver_without_waiting(&self) -> Result<()> {
        let old = lock(&self.apiserver).take();
        drop(old);
        let api = Managed::spawn(
            "kube-apiserver",
            &self.bins.kube_apiserver,
            &self.apiserver_args,
            &self.dir.path().join("kube-apiserver.log"),
        )?;
        *lock(&self.apiserver) = Some(api);
        tracing::info!(apiserver = %self.apiserver_addr, "apiserver restarting");
        Ok(())
    }

    /// Kills etcd (as a crash would). The apiserver stays up and fails requests.
    pub fn stop_etcd(&self) {
        let old = lock(&self.etcd).take();
        drop(old);
        tracing::info!(etcd = %self.etcd_addr, "etcd stopped");
    }

    /// Starts etcd again on the same data and port; returns once it is healthy.
    /// A no-op when it is running.
    pub async fn start_etcd(&self) -> Result<()> {
        if lock(&self.etcd).is_some() {
            return Ok(());
        }
        let mut etcd = Managed::spawn(
            "etcd",
            &self.bins.etcd,
            &self.etcd_args,
            &self.dir.path().join("etcd.log"),
        )?;
        wait_etcd(&mut etcd, self.etcd_addr, self.ready_timeout).await?;
        *lock(&self.etcd) = Some(etcd);
        tracing::info!(etcd = %self.etcd_addr, "etcd started");
        Ok(())
    }
}

fn lock(slot: &Mutex<Option<Managed>>) -> std::sync::MutexGuard<'_, Option<Managed>> {
    slot.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn wait_etcd(p: &mut Managed, addr: SocketAddr, limit: Duration) -> Result<()> {
    localplane::wait_ready(p, limit, || localplane::etcd_health(addr))
        .await
        .map_err(Error::from)
}

async fn wait_apiserver(p: &mut Managed, admin: &kube::Client, limit: Duration) -> Result<()> {
    localplane::wait_ready(p, limit, || localplane::apiserver_ready(admin))
        .await
        .map_err(Error::from)
}
