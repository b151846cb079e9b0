//! Errors of sealing, compaction and shipping.

use std::path::PathBuf;

/// Result alias of the compaction module.
pub type Result<T, E = CompactError> = std::result::Result<T, E>;

/// What can go wrong while sealing, folding or shipping.
#[derive(Debug, thiserror::Error)]
pub enum CompactError {
    /// A local file operation failed.
    #[error("compaction: {op} `{}`: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Encoding or decoding a segment or snapshot failed.
    #[error("compaction: {0}")]
    Format(#[from] rewind_format::FormatError),
    /// Reading or trimming the journal failed.
    #[error("compaction: journal: {0}")]
    Journal(String),
    /// The store (local directory or S3) failed.
    #[error("compaction: {0}")]
    Store(#[from] rewind_history::store::StoreError),
    /// The local progress file does not parse.
    #[error("compaction progress `{}` is corrupt: {reason}", path.display())]
    Progress {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A setting is wrong; names it.
    #[error("setting `{setting}`: {reason}")]
    Config {
        /// The setting.
        setting: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The compactor task has stopped (shutdown).
    #[error("the compactor is not running")]
    Stopped,
    /// This recorder may not write to the store: it does not hold the
    /// leader Lease (a standby), or no longer surely does.
    #[error("not shipping: this recorder is {role}, not the holder of Lease {lease}")]
    NotLeader {
        /// `standby` or `deposed`.
        role: &'static str,
        /// The Lease.
        lease: String,
    },
    /// Another recorder started a lineage that forks from the one this
    /// recorder ships: two recorders write to one store prefix.
    #[error("{0}")]
    TakenOver(Box<TakenOver>),
    /// The store's head names another writer this recorder may not
    /// replace: it was fenced off the store.
    #[error("{0}")]
    Fenced(Box<Fenced>),
    /// The store's head changed between reading it and swapping it
    /// (another writer swapped it just then); the next round decides again.
    #[error(
        "the store's head changed while this recorder swapped it: another writer is active; not shipping this round"
    )]
    HeadMoved,
    /// A blocking task panicked or was cancelled.
    #[error("compaction task failed: {0}")]
    Task(String),
}

/// A lineage another recorder forked from the one this recorder ships.
#[derive(Debug, thiserror::Error)]
#[error(
    "not shipping: lineage {child} (created by {host}, data dir {data_dir}, {when}) forked from this recorder's lineage {ours} at seq {fork_seq}: another recorder ships into this store prefix. Give the recorders a [leader] lease, or separate prefixes"
)]
pub struct TakenOver {
    /// This recorder's lineage.
    pub ours: String,
    /// The other lineage.
    pub child: String,
    /// Where it forked.
    pub fork_seq: u64,
    /// Its creator's host.
    pub host: String,
    /// Its creator's data directory.
    pub data_dir: String,
    /// When it was created.
    pub when: String,
}

/// A head this recorder may not replace.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "not shipping: the store's head names lineage {head_lineage} (epoch {head_epoch}, holder {head_holder}), and this recorder ships lineage {ours} (epoch {epoch}): {reason}. Another recorder took over this store prefix; this one writes nothing more to it (restart it to run as a standby, or give it its own prefix)"
)]
pub struct Fenced {
    /// This recorder's lineage.
    pub ours: String,
    /// This recorder's epoch.
    pub epoch: u64,
    /// The lineage the head names.
    pub head_lineage: String,
    /// The head's epoch.
    pub head_epoch: u64,
    /// The head's holder.
    pub head_holder: String,
    /// Why it may not be replaced.
    pub reason: String,
}
