//! The store layer's errors.

use std::path::PathBuf;

/// Result alias for the store layer.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Everything that can go wrong talking to a store.
///
/// [`StoreError::is_transient`] decides what the retry loop retries: a
/// network hiccup or a server restart is transient, a missing object, a
/// refused credential or a malformed catalog entry is not.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A setting is missing or wrong; names the setting.
    #[error("store setting `{setting}`: {reason}")]
    Config {
        /// The setting's name as it appears in the configuration file.
        setting: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The object does not exist.
    #[error("object `{key}` not found in the store")]
    NotFound {
        /// Key relative to the store root.
        key: String,
    },
    /// A local filesystem operation failed.
    #[error("local store: {op} `{}`: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The object store (S3) returned an error.
    #[error("object store: {op} `{key}`: {source}")]
    Remote {
        /// What was being done.
        op: &'static str,
        /// Key relative to the store root.
        key: String,
        /// The underlying error.
        #[source]
        source: Box<object_store::Error>,
    },
    /// A catalog entry or object name could not be understood.
    #[error("catalog entry `{key}` is malformed: {reason}")]
    Catalog {
        /// Key of the entry.
        key: String,
        /// What was wrong.
        reason: String,
    },
    /// An object read back does not match its catalog entry.
    #[error("object `{key}` does not match its catalog entry: {reason}")]
    Mismatch {
        /// Key of the data object.
        key: String,
        /// What differs.
        reason: String,
    },
    /// Retries were exhausted; carries the last error.
    #[error("store unavailable after {attempts} attempts: {last}")]
    Unavailable {
        /// How many attempts were made.
        attempts: u32,
        /// The last error seen.
        #[source]
        last: Box<StoreError>,
    },
}

impl StoreError {
    /// Whether retrying the same operation later may succeed.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Io { source, .. } => !matches!(
                source.kind(),
                std::io::ErrorKind::NotFound
                    | std::io::ErrorKind::PermissionDenied
                    | std::io::ErrorKind::InvalidInput
                    | std::io::ErrorKind::InvalidData
            ),
            Self::Remote { source, .. } => matches!(
                **source,
                object_store::Error::Generic { .. } | object_store::Error::JoinError { .. }
            ),
            Self::Config { .. }
            | Self::NotFound { .. }
            | Self::Catalog { .. }
            | Self::Mismatch { .. }
            | Self::Unavailable { .. } => false,
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn remote(op: &'static str, key: &str, source: object_store::Error) -> Self {
        if let object_store::Error::NotFound { .. } = source {
            return Self::NotFound {
                key: key.to_owned(),
            };
        }
        Self::Remote {
            op,
            key: key.to_owned(),
            source: Box::new(source),
        }
    }
}
