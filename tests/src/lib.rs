//! Rewind's test harness: a real local control plane (kube-apiserver + etcd),
//! Rancher-like fixtures, and fault hooks.
//!
//! Everything Rewind claims about the Kubernetes API is tested against a real
//! kube-apiserver and etcd, built from their Go modules by
//! `tests/controlplane/build.sh` on first use (several minutes cold, then
//! instant), never against a mock.
//!
//! # Control plane
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use rewind_tests::ControlPlane;
//! let cp = ControlPlane::start().await?;         // etcd + apiserver on free ports
//! let admin: kube::Client = cp.admin_client();   // system:masters
//! let ro: kube::Client = cp.readonly_client();   // get/list/watch only
//! let _ = (cp.admin_kubeconfig_path(), cp.readonly_kubeconfig_path(), cp.apiserver_url());
//! // "Insufficient rights" identities: spare users granted rules on demand.
//! let limited = cp.create_identity("limited-user", vec![/* PolicyRule */]).await?;
//! // Faults:
//! cp.compact_etcd_now().await?;                  // old resourceVersions -> real 410
//! cp.restart_apiserver().await?;                 // breaks every watch
//! cp.stop_etcd(); cp.start_etcd().await?;
//! let p = cp.proxy().await?;                     // p.admin / p.readonly go through it
//! p.proxy.stall(); p.proxy.resume(); p.proxy.cut_all();
//! # let _ = (admin, ro, limited); Ok(()) }
//! ```
//!
//! Identities are bearer tokens from a static token file: `rewind-admin`
//! (`system:masters`), `rewind-readonly` (a ClusterRole with get/list/watch on
//! `*`/`*`, nothing else), and spare users without any RBAC
//! ([`controlplane::SPARE_USERS`]: `restore-user`, `limited-user`, `daemon-user`,
//! `user-a`..`user-c`) that `create_identity` / `create_namespaced_identity`
//! grant rules to (it waits until RBAC enforces them) and `identity` returns
//! as they are.
//!
//! The apiserver's watch cache is off by default ([`Options::watch_cache`]), so
//! every watch reaches etcd and `compact_etcd_now` makes older resourceVersions
//! answer `ERROR 410 Expired` at once. With the cache on (as in production), a
//! 410 comes once the version is outside the cache, e.g. after a restart.
//!
//! Each control plane lives in its own temp dir (`cp.dir()`: logs `etcd.log`,
//! `kube-apiserver.log`, kubeconfigs) and stops on drop, also on panic. Run as
//! many as you like in parallel. A control plane whose test process was
//! killed outright (no `Drop`) is reaped by the next `ControlPlane::start`. No controller-manager runs unless
//! [`Options::controller_manager`] asks for one: without it namespaces never
//! finish terminating and nothing is garbage-collected. Binaries come from
//! `REWIND_KUBE_APISERVER`, `REWIND_ETCD`, `REWIND_KUBECTL` when set, else
//! `target/controlplane/bin/`.
//!
//! # Fixtures
//!
//! [`fixtures`] installs the real Rancher CRDs, the schemaless runtime CRDs and
//! the example objects from `../shared/reference/rancher/`, and generates
//! deterministic Rancher-like management planes at any scale
//! ([`fixtures::generate`], pure, usable from benches), loaded with
//! [`fixtures::load`].
//!
//! `cargo run -p rewind-tests --bin controlplane -- up --kubeconfig PATH` runs
//! one control plane in the foreground for manual work and demos.
//!
//! # A lived-in cluster
//!
//! [`world`] makes a target look like a real one before a restore:
//! kube-controller-manager beside the apiserver ([`Options::controller_manager`]),
//! foreign workloads ([`world::foreign`]) and a validating admission webhook
//! that checks Rancher's references and fails a share of calls on demand
//! ([`world::webhook`]).
//!
//! # Daemon
//!
//! [`daemon`] runs the real `rewindd` for the scenario tests, the benches and
//! the drill: binaries, config, process, status file, waiting until it has
//! recorded everything, the operator's commands and its local store.
//!
//! # Tools on first use
//!
//! [`garage`] starts a real Garage (S3) server for the store tests, one
//! node or a cluster of three (one node can be stopped and started); the
//! binary is installed on first use at the pinned version into
//! `target/tools/` when the machine has none; [`versitygw`] starts the
//! Versity S3 Gateway, a real S3 server that honours conditional PUTs
//! (Garage does not), built on first use from its Go module, for the
//! store's compare-and-swap. [`setup`] runs the scripts that
//! build or install such tools (each under its own file lock, so parallel
//! test binaries do the work once) and shows their long steps with
//! [`progress`]: a start line (what, version, about how long, the log), the
//! elapsed time, an end line. [`cargo`] runs nested cargo builds (the drill's
//! `rewindd` and `rewind`) with the features and profile of the running
//! build, so nothing is compiled twice.

pub mod cargo;
pub mod controlplane;
pub mod daemon;
pub mod drill;
pub mod fixtures;
pub mod garage;
pub mod progress;
pub mod setup;
pub mod versitygw;
pub mod world;

pub use controlplane::{ControlPlane, Identity, Options, Proxied, TcpProxy};
