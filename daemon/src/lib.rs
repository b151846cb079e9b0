//! `rewindd`: list-watches a Kubernetes management plane, records every
//! change into a durable event journal, and turns the journal into segments
//! and snapshots in a store.
//!
//! # Modules
//! - [`service`]: the entry point of `rewindd run`, [`service::run`]: starts
//!   the recorder, the compactor, the admin socket and the metrics endpoint,
//!   talks to systemd, and applies a configuration reload (SIGHUP);
//!   [`service::lineage`] decides at start which store lineage the journal
//!   records.
//! - [`daemon`]: the recorder, [`Recorder`]: opens the journal, then runs
//!   the watch supervisor, the writer thread and the status file.
//! - [`config`]: TOML file + flags + env → validated [`config::Config`].
//! - [`watch`]: per-group discovery, one kube watcher per selected type, the
//!   supervisor that follows CRDs.
//! - [`ingest`]: what to record for each observation (dedup, uid, relist
//!   diffs, selection, ignore rules).
//! - [`writer`]: group commit on a dedicated thread, retry on write errors;
//!   publishes the durable position.
//! - [`journal`]: the journal (event log blocks, current state, meta)
//!   and the [`journal::LogReader`] other tasks read it with; its module doc
//!   is the on-disk specification.
//! - [`compact`]: sealing, snapshots, shipping to the store, trimming the
//!   journal, disk accounting, and retention (`rewindd prune`).
//! - [`placement`]: where in the store this recorder writes (its cluster's
//!   place, or the flat layout of a single-cluster store), remembered in
//!   the data directory.
//! - [`admin`]: the admin socket (`rewindd snapshot`) and its client.
//! - [`leader`]: leadership by a `coordination.k8s.io` Lease when two
//!   recorders share a store: only the holder ships.
//! - [`rbac`]: the least-privilege RBAC for a record set (`rewindd rbac`).
//! - [`metrics`]: Prometheus metrics, `/healthz` and `/readyz`.
//! - [`status`]: the status board, `status.json` (`rewindd status`), what
//!   "ready" means (the list of problems) and the writer's heartbeat.
//!
//! Resource selection and the store come from `rewind_history`.
//!
//! # Data flow
//! watchers → bounded channel + byte budget → writer thread → [`journal`];
//! the writer publishes the durable seq, and the compactor reads the journal
//! through a [`journal::LogReader`] up to that seq → segments and snapshots
//! in `<data_dir>/compact` → the store. An event is acknowledged once its
//! batch is committed and fsynced.
//!
//! # Reading a journal outside the daemon
//! Stop the daemon first (an open journal locks its directory); then:
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use rewind_daemon::journal::{Journal, JournalOptions};
//! let j = Journal::open(std::path::Path::new("/var/lib/rewind/journal"), &JournalOptions::default())?;
//! for block in j.blocks_from(1) {
//!     let (first_seq, records) = block?;
//!     // seal `records` into a segment …
//!     let _ = (first_seq, records);
//! }
//! for entry in j.state() {
//!     let e = entry?;
//!     let _json = e.object_json()?; // snapshot the current state …
//! }
//! # Ok(()) }
//! ```
//! In-process observers get every durable batch through
//! [`daemon::Hooks::commits`].
#![deny(missing_docs)]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "outside data must never panic the recorder or the restore tool"
)]

pub mod admin;
pub mod compact;
pub mod config;
pub mod daemon;
pub mod ingest;
pub mod journal;
pub mod leader;
pub mod metrics;
pub mod placement;
pub mod rbac;
pub mod service;
pub mod status;
pub mod watch;
pub mod writer;

pub use config::Config;
pub use daemon::{Hooks, Recorder, run};
