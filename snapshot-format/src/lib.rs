//! Rewind's on-disk formats: event records, segments and snapshots.
//!
//! This crate is pure and synchronous (no tokio, kube or sled). The full
//! specification is `docs/FORMAT.md`.
#![deny(missing_docs)]
