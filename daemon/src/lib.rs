//! `rewindd`: list-watches a Kubernetes management plane and records every
//! change into a durable event journal.
//!
//! # Layout
//! - [`config`]: TOML file + flags + env → validated [`config::Config`].
//! - [`select`]: ResourceSets with Rancher Backups' semantics; presets.
//! - [`watch`]: per-group discovery, one kube watcher per selected type, the
//!   supervisor that follows CRDs.
//! - [`ingest`]: what to record for each observation (dedup, uid, relist
//!   diffs, selection, ignore rules).
//! - [`journal`]: the sled journal (event log blocks, current state, meta);
//!   its module doc is the on-disk specification.
//! - [`writer`]: group commit on a dedicated thread, retry on write errors.
//! - [`status`]: the status board and `status.json`.
//! - [`daemon`]: [`run`] wires it all.
//!
//! # Data flow
//! watchers → bounded channel + byte budget → writer thread → [`journal`].
//! An event is acknowledged once its batch is committed and fsynced.
//!
//! # For the next layers (segments, stores, admin API)
//! Stop the daemon or work inside it; then:
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
pub mod metrics;
pub mod service;
pub mod status;
pub mod watch;
pub mod writer;

pub use config::Config;
pub use daemon::{Hooks, run, run_with};
