//! `rewindd`: list-watches a Kubernetes management plane and records every
//! change into a durable event journal.
#![deny(missing_docs)]

pub mod ingest;
pub mod select;
pub mod journal;
