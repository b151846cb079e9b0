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
    /// A `--store` value is not a directory or an `s3://bucket/prefix` URL.
    #[error("store {url:?}: {reason}")]
    Url {
        /// The value.
        url: String,
        /// What was wrong.
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
    /// A name already holds different content: two writers (or two
    /// histories) claimed the same object. Never overwritten.
    #[error(
        "`{key}` already exists in the store with different content ({reason}): two recorders or two histories wrote the same name; see `rewind verify` and docs/MANUAL.md, \"Lineages\""
    )]
    Conflict {
        /// Key of the object.
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
            Self::Remote { source, .. } => match **source {
                // object_store wraps some answers (a refused list, for one)
                // in `Generic` without mapping their status; a 4xx is the
                // server's final word, so retrying it only delays the error.
                object_store::Error::Generic { .. } => {
                    http_status(&**source).is_none_or(status_may_pass)
                }
                object_store::Error::JoinError { .. } => true,
                _ => false,
            },
            Self::Config { .. }
            | Self::Url { .. }
            | Self::NotFound { .. }
            | Self::Catalog { .. }
            | Self::Mismatch { .. }
            | Self::Conflict { .. }
            | Self::Unavailable { .. } => false,
        }
    }

    /// The HTTP status the server answered with, when the error carries one.
    #[must_use]
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Self::Remote { source, .. } => http_status(&**source),
            Self::Unavailable { last, .. } => last.http_status(),
            _ => None,
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

/// Finds the status code in an object_store error chain.
///
/// object_store keeps its request error type private, so the status is only
/// reachable through the message it prints ("...non-2xx status code: 403
/// Forbidden: ..."); the chain is walked because the status sits a level or
/// two below the outer error.
fn http_status(err: &(dyn std::error::Error + 'static)) -> Option<u16> {
    const MARK: &str = "status code: ";
    let mut next = Some(err);
    while let Some(e) = next {
        let text = e.to_string();
        if let Some(at) = text.find(MARK) {
            let digits = text.get(at + MARK.len()..at + MARK.len() + 3)?;
            return digits.parse().ok().filter(|s| (100..600).contains(s));
        }
        next = e.source();
    }
    None
}

/// Whether a request answered with `status` may succeed if sent again: server
/// errors, timeouts and throttling may pass; other client errors never will.
fn status_may_pass(status: u16) -> bool {
    !(400..500).contains(&status) || status == 408 || status == 429
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("Server returned non-2xx status code: {0} Forbidden: <Error/>")]
    struct Status(u16);

    #[derive(Debug, thiserror::Error)]
    #[error("Error performing GET http://x in 3ms - {0}")]
    struct Outer(#[source] Status);

    fn generic(status: u16) -> StoreError {
        StoreError::Remote {
            op: "list",
            key: "segments/".into(),
            source: Box::new(object_store::Error::Generic {
                store: "S3",
                source: Box::new(Outer(Status(status))),
            }),
        }
    }

    /// Regression: a list refused for bad credentials (403 wrapped in
    /// `Generic`) was retried for ~20 s before the error reached the user.
    #[test]
    fn client_errors_in_generic_are_permanent() {
        assert_eq!(generic(403).http_status(), Some(403));
        assert!(!generic(403).is_transient());
        assert!(!generic(400).is_transient());
        assert!(generic(503).is_transient());
        assert!(generic(500).is_transient());
        assert!(generic(429).is_transient());
        assert!(generic(408).is_transient());
        let plain = StoreError::Remote {
            op: "list",
            key: "k".into(),
            source: Box::new(object_store::Error::Generic {
                store: "S3",
                source: "connection reset".into(),
            }),
        };
        assert_eq!(plain.http_status(), None);
        assert!(plain.is_transient());
    }
}
