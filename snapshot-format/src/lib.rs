//! Rewind's on-disk formats: event records, segments and snapshots.
//!
//! This crate is pure and synchronous (no tokio, kube or sled). The full
//! specification is `docs/FORMAT.md`.
#![deny(missing_docs)]

pub mod codec;
pub mod error;
pub mod event;
pub mod frame;

pub use codec::{DEFAULT_LEVEL, Limits};
pub use error::{ErrorKind, FormatError, Result};
pub use event::{
    EventBlockEncoder, EventKind, EventRecord, ResourceType, decode_block, decode_record,
    encode_block, encode_record,
};
