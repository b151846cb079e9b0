//! Rewind's on-disk formats: event records, segments and snapshots.
//!
//! This crate is pure and synchronous (no tokio, kube or sled). The full
//! specification is `docs/FORMAT.md`; each module's doc holds its part.
//!
//! - [`event`]: one recorded change, and event blocks (the daemon's journal unit);
//! - [`segment`]: a sealed run of events with a seq/time index;
//! - [`snapshot`]: the state at one point, objects grouped by type;
//! - [`crypto`]: age (X25519) encryption of any file;
//! - [`state`]: folding events onto a state, for point-in-time reconstruction;
//! - [`header`], [`frame`], [`codec`]: the framing, checksums and encoding.
#![deny(missing_docs)]

pub mod codec;
mod container;
pub mod crypto;
pub mod error;
pub mod event;
pub mod frame;
pub mod header;
pub mod naming;
pub mod options;
pub mod segment;
pub mod snapshot;
pub mod state;

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
