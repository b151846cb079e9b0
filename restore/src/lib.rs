//! `rewind`: rebuilds a Kubernetes management plane at any point in time.
//!
//! This crate is the restore side of Rewind. It never opens the daemon's sled
//! journal: it works from a [`DesiredState`] that a [`StateSource`] produces
//! (the store reader: snapshot + segments at a point; or [`DirSource`], a
//! directory of manifests), and from the live target cluster.
//!
//! # Layout
//! - [`state`]: [`ResourceType`], [`ObjectKey`], [`DesiredState`], [`Filter`].
//! - [`source`]: [`StateSource`], [`Point`], [`DirSource`].
//! - [`summary`]: the counts `rewind show` prints, read straight from a
//!   folded state without building a [`DesiredState`].
//! - [`pit`]: [`pit::StoreSource`], the state at a point from a store
//!   (snapshot + segments, in parallel, with fallback), history, verify.
//! - [`strip`]: server-set fields removed before writing.
//! - [`plan`](mod@plan): [`plan()`] → [`RestorePlan`], a printable value;
//!   `--dry-run` stops there.
//! - [`order`]: CRDs, Namespaces, then ownerReference levels; UID rewiring.
//! - [`apply`](mod@apply): [`apply()`] executes a plan (server-side apply,
//!   bounded parallelism per level, status subresource, prune, quiesce).
//! - [`resume`]: the restore journal behind `rewind restore --resume`.
//! - [`protect`]: the protected set and Rancher's restore preset.
//! - [`quiesce`]: Deployments scaled to zero during a restore and back.
//! - [`select`]: ResourceSets with Rancher Backups' semantics and the
//!   built-in presets; the daemon records by them, `--preset` and
//!   `--resource-set` filter a state by them.
//! - [`localplane`]: a throwaway etcd + kube-apiserver for `rewind drill`.
//! - [`live`]: reading the target; API failures with their reasons.
//! - [`raw`]: [`raw::RawObject`], an object kept as the API's raw JSON
//!   pieces, for lists, watches and write responses of objects of any depth
//!   (rewindd watches with it).
//! - [`deep`]: reading objects nested deeper than serde_json's limit of 128
//!   (up to [`deep::MAX_DEPTH`]), on stacks sized for them.
//! - [`export`](mod@export): [`export()`] writes `kubectl apply`-able YAML,
//!   through [`yaml`], a writer whose output YAML 1.1 readers (kubectl)
//!   read the same way.
//!
//! # For the store reader and `drill`
//! Implement [`StateSource`] for the store (snapshot + segments at a
//! [`Point`]): fold them into a `rewind_format::State`, then
//! [`from_format::desired_from_format`] makes the [`DesiredState`]. Everything from [`plan()`] on works unchanged.
//! A drill is: state at P, [`plan()`] + [`apply()`] into a throwaway
//! cluster, then compare with [`strip::strip_server_fields`] /
//! [`strip::drop_owner_uids`] applied to both sides (see
//! `tests/tests/restore_support/mod.rs::differences`).
//!
//! # Example
//! ```no_run
//! # async fn run(client: kube::Client) -> Result<(), Box<dyn std::error::Error>> {
//! use rewind_restore::{ApplyOptions, DirSource, PlanOptions, Point, ProtectedSet, StateSource};
//! let state = DirSource::new("backup/").state_at(&Point::Latest)?;
//! let opts = PlanOptions { protected: ProtectedSet::with_defaults(&[])?, ..PlanOptions::default() };
//! let plan = rewind_restore::plan(&state, &client, &opts).await?;
//! print!("{}", plan.to_table());
//! let report = rewind_restore::apply(&client, &plan, &ApplyOptions::default()).await?;
//! assert!(report.failures.is_empty());
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod apply;
pub mod compare;
pub mod deep;
pub mod diff;
pub mod export;
pub mod from_format;
pub mod live;
pub mod localplane;
pub mod order;
pub mod pit;
pub mod plan;
pub mod protect;
pub mod quiesce;
pub mod raw;
pub mod resume;
pub mod select;
pub mod source;
pub mod state;
pub mod store;
pub mod strip;
pub mod summary;
pub mod yaml;

/// Installs rustls' ring crypto provider for this process, once; later
/// calls do nothing. kube enables ring and the S3 store's HTTP client
/// enables aws-lc-rs; with both, rustls refuses to choose and every TLS
/// client creation panics. Call this before creating a `kube::Client`.
pub fn install_tls_provider() {
    // Err means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub use apply::{ApplyError, ApplyOptions, ApplyReport, Failure, apply};
pub use compare::{Difference, compare};
pub use export::{ExportReport, export};
pub use live::ApiFailure;
pub use plan::{Action, PlanItem, PlanOptions, RestorePlan, StatusMode, plan};
pub use protect::ProtectedSet;
pub use source::{DirSource, Point, SourceError, StateSource};
pub use state::{DesiredState, Filter, ObjectKey, ResourceType};
