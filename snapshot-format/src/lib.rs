//! Rewind's on-disk formats: event records, segments and snapshots.
//!
//! This crate is pure and synchronous (no tokio, kube or sled). The full
//! specification is `docs/FORMAT.md`; each module's doc holds its part.
//!
//! - [`event`]: one recorded change, and event blocks (the daemon's journal unit);
//! - [`segment`]: a sealed run of events with a seq/time index;
//! - [`snapshot`]: the state at one point, objects grouped by type; since
//!   version 3 each block stores its objects column by column (one column
//!   per JSON path), which compresses about a fifth smaller;
//! - [`json_meta`]: `metadata.name`, `.namespace`, `.uid` and
//!   `.resourceVersion` read from an object's JSON in one pass (version-2
//!   and version-3 snapshots store them only there);
//! - [`crypto`]: age (X25519) encryption of any file;
//! - [`state`]: folding events onto a state, for point-in-time reconstruction;
//! - [`transition`]: what one event, or a run of them, does to a key and to
//!   its type: the rules every fold (one by one, spilling, parallel) shares;
//! - [`header`], [`frame`], [`codec`]: the framing, checksums and encoding;
//! - [`naming`]: content-hash file names; [`verify`]: whole-file checks.
//!
//! Every reader works on a byte slice (files are whole objects in a store),
//! checks before it parses, and returns a [`FormatError`] naming the file, the
//! block and what was wrong; no input makes it panic.
//!
//! # Example
//!
//! ```
//! use rewind_format::{
//!     EventKind, EventRecord, Limits, ResourceType, SnapshotReader, State, WriteOptions,
//! };
//!
//! let ns = ResourceType {
//!     group: String::new(),
//!     version: "v1".into(),
//!     resource: "namespaces".into(),
//!     kind: "Namespace".into(),
//!     namespaced: false,
//! };
//! let event = EventRecord {
//!     seq: 1,
//!     observed_at_ms: 1_700_000_000_000,
//!     cluster_id: "local".into(),
//!     rtype: ns,
//!     namespace: None,
//!     name: "cattle-system".into(),
//!     uid: "0b6c…".into(),
//!     resource_version: "42".into(),
//!     kind: EventKind::Applied,
//!     object: br#"{"kind":"Namespace","metadata":{"name":"cattle-system"}}"#.to_vec(),
//! };
//!
//! // The daemon's journal: one checksummed, compressed block per group commit.
//! let block = rewind_format::encode_block(std::slice::from_ref(&event), 3)?;
//! assert_eq!(rewind_format::decode_block(&block, &Limits::default())?, vec![event.clone()]);
//!
//! // Fold events into a state and write it as a snapshot...
//! let mut state = State::new("local");
//! state.apply(&event);
//! let bytes = state.write_snapshot(Vec::new(), &WriteOptions::default())?;
//! let name = rewind_format::naming::content_name(&bytes)?; // "snapshot-<sha256>"
//! assert!(name.starts_with("snapshot-"));
//!
//! // ...and read one object back without decoding the rest.
//! let mut reader = SnapshotReader::open(&bytes, Some(&name), Limits::default())?;
//! let t = reader.type_index("", "namespaces").expect("type recorded");
//! let obj = reader.get(t, None, "cattle-system")?.expect("object present");
//! assert_eq!(obj.resource_version, "42");
//! # Ok::<(), rewind_format::FormatError>(())
//! ```
#![deny(missing_docs)]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "outside data must never panic the recorder or the restore tool"
)]

pub mod codec;
mod container;
pub mod crypto;
pub mod error;
pub mod event;
pub mod frame;
pub mod header;
pub mod json_meta;
pub mod naming;
pub mod options;
pub mod segment;
pub mod snapshot;
pub mod state;
pub mod transition;
pub mod verify;

pub use codec::{DEFAULT_LEVEL, Limits};
pub use error::{ErrorKind, FormatError, Result};
pub use event::{
    EventBlockDecoder, EventBlockEncoder, EventKind, EventRecord, ResourceType, decode_block,
    decode_record, encode_block, encode_record,
};
pub use header::FileKind;
pub use options::WriteOptions;
pub use segment::{SegmentHeader, SegmentReader, SegmentWriter, encode_segment};
pub use snapshot::{
    ObjectRef, SnapshotHeader, SnapshotObject, SnapshotReader, SnapshotWriter, TypeEntry,
};
pub use state::{ObjectKey, State, StateObject};
pub use transition::{Change, Effect, HasUid, KeyOp};
pub use verify::{Summary, verify_file};
