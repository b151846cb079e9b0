//! `rewind`: rebuilds a Kubernetes management plane at any point in time.
//!
//! This crate only restores. The state to restore comes from
//! `rewind-history` (a [`DesiredState`](rewind_history::DesiredState) from a store at a point, or from a
//! directory of manifests); this crate plans against the live target, writes,
//! exports and compares.
//!
//! # Modules
//! - [`plan`](mod@plan): [`plan()`] → [`RestorePlan`], a printable value;
//!   `--dry-run` stops there.
//! - [`order`]: CRDs, Namespaces, then ownerReference levels (cluster-scoped
//!   before namespaced in each), admission objects last; UID rewiring.
//! - [`owners`]: owners outside the state, looked up in the target.
//! - [`strip`]: server-set fields removed before writing.
//! - [`actions`]: restore actions per type (objects skipped, fields the
//!   target allocates left out, webhooks written last), applied in the plan.
//! - [`fields`]: field ownership read from `managedFields`.
//! - [`delta`]: field-level differences between the object to write and
//!   the live one (equality, allowing defaults and allocated values).
//! - [`apply`](mod@apply): [`apply()`] executes a plan (server-side apply
//!   for new objects, replace at the live resourceVersion for existing
//!   ones, bounded parallelism per level, status subresource, prune,
//!   quiesce).
//! - [`resume`]: the restore journal behind `rewind restore --resume`.
//! - [`scope`]: what prune may delete (the resource set recorded at the
//!   point).
//! - [`protect`]: the protected set and Rancher's restore preset.
//! - [`quiesce`]: Deployments scaled to zero during a restore and back.
//! - [`live`]: reading the target; API failures with their reasons.
//! - [`compare`](mod@compare) and [`diff`]: a state against live objects,
//!   and two states against each other.
//! - [`summary`]: the counts `rewind show` prints, read straight from a
//!   folded state without building a `DesiredState`.
//! - [`export`](mod@export): [`export()`] writes `kubectl apply`-able YAML,
//!   through [`yaml`], a writer whose output YAML 1.1 readers (kubectl)
//!   read the same way.
//! - [`localplane`]: a throwaway etcd + kube-apiserver for `rewind drill`.
//! - `cli` (binary only): the `rewind` commands.
//!
//! A drill is: state at P, [`plan()`] + [`apply()`] into a throwaway
//! cluster, then [`compare()`] with [`strip::strip_server_fields`] /
//! [`strip::drop_owner_uids`] applied to both sides.
//!
//! # Example
//! ```no_run
//! # async fn run(client: kube::Client) -> Result<(), Box<dyn std::error::Error>> {
//! use rewind_history::{DirSource, Point, StateSource};
//! use rewind_restore::{ApplyOptions, PlanOptions, ProtectedSet};
//! let state = DirSource::new("backup/").state_at(&Point::Latest).await?;
//! let opts = PlanOptions { protected: ProtectedSet::with_defaults(&[])?, ..PlanOptions::default() };
//! let plan = rewind_restore::plan(&state, &client, &opts).await?;
//! print!("{}", plan.to_table());
//! let report = rewind_restore::apply(&client, &plan, &ApplyOptions::default()).await?;
//! assert!(report.failures.is_empty());
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "outside data must never panic the recorder or the restore tool"
)]

pub mod actions;
pub mod apply;
pub mod compare;
pub mod delta;
pub mod diff;
pub mod export;
pub mod fields;
pub mod live;
pub mod localplane;
pub mod order;
pub mod owners;
pub mod plan;
pub mod protect;
pub mod quiesce;
pub mod resume;
pub mod scope;
pub mod strip;
pub mod summary;
pub mod yaml;

pub use apply::{ApplyError, ApplyOptions, ApplyReport, Failure, apply};
pub use compare::{Difference, compare};
pub use export::{ExportReport, export};
pub use live::ApiFailure;
pub use plan::{Action, PlanItem, PlanOptions, RestorePlan, SkipReason, StatusMode, plan};
pub use protect::ProtectedSet;
