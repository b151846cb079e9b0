//! Rewind's recorded history: what both binaries share.
//!
//! `rewindd` (the recorder) writes history into a store; `rewind` (the
//! restore tool) reads it back. Both stand on this crate and on
//! `rewind-format`, never on each other.
//!
//! # Modules
//! - [`store`]: [`store::Store`], where sealed segments and snapshots live
//!   (a local directory or S3-compatible storage): layout, catalog,
//!   lineages (one record per unbroken history), the head (a
//!   compare-and-swap fence for writers), many clusters in one
//!   store (`fleet`: a place per cluster), retry, retention, and
//!   [`store::StoreConfig`] with the `--store` URL parser.
//! - [`pit`]: the state at a point from a store ([`pit::StoreSource`]:
//!   snapshot + segments, planned from the catalog within one lineage and
//!   its ancestors, folded in parallel),
//!   the history of one object, and the offline check behind `rewind verify`.
//! - [`source`]: [`StateSource`], [`Point`] and [`DirSource`] (a directory of
//!   manifests as a state).
//! - [`state`]: [`DesiredState`], [`TypedKey`], [`Filter`]: the restore
//!   side's view of a state; [`ResourceType`] (rewind-format's) with
//!   [`KubeType`], its Kubernetes client side.
//! - [`from_format`]: from `rewind_format::State` to a [`DesiredState`].
//! - [`select`]: ResourceSets with Rancher Backups' semantics and the
//!   built-in presets: what rewindd records and what `--preset` keeps.
//! - [`raw`]: [`raw::RawObject`], an object kept as the API's raw JSON
//!   pieces (rewindd watches with it; the restore tool reads live objects
//!   with it).
//! - [`deep`]: parsing objects nested deeper than serde_json's limit.
//! - [`report`]: [`report::chain`], an error and its causes for people,
//!   each cause once.
//! - [`clock`]: [`clock::now_ms`], wall-clock Unix milliseconds.
//! - [`tls`]: [`tls::install_tls_provider`], the process's rustls provider.
#![deny(missing_docs)]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "outside data must never panic the recorder or the restore tool"
)]

pub mod clock;
pub mod deep;
pub mod from_format;
pub mod pit;
pub mod raw;
pub mod report;
pub mod select;
pub mod source;
pub mod state;
pub mod store;
pub mod tls;

pub use clock::now_ms;
pub use source::{DirSource, Point, SourceError, StateSource};
pub use state::{DesiredState, Filter, KubeType, ResourceType, TypedKey};
pub use tls::install_tls_provider;
