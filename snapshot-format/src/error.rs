//! Typed errors: every failure says which file, which block and what was wrong.
//!
//! One error type serves the whole crate so that the restore tool can print
//! `snapshot snap-1a2b block 7: checksum mismatch in block payload` without
//! knowing which module raised it.

use std::fmt;

/// Result alias used throughout the crate.
pub type Result<T, E = FormatError> = std::result::Result<T, E>;

/// A format error with its location.
#[derive(Debug)]
pub struct FormatError {
    /// Name of the file being read or written, when the caller gave one.
    pub file: Option<String>,
    /// Index of the block (0-based, in file order) where the problem was found.
    pub block: Option<u64>,
    /// What was wrong.
    pub kind: ErrorKind,
}

/// What was wrong. Lowercase messages, no trailing punctuation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The file does not start with Rewind's magic bytes.
    #[error("bad magic bytes: not a rewind file")]
    BadMagic,
    /// The file was written by a format version this release cannot read.
    #[error("unsupported format version {found} (this release reads up to {supported})")]
    UnsupportedVersion {
        /// Version found in the file.
        found: u16,
        /// Highest version this release reads.
        supported: u16,
    },
    /// The file is of another kind than the caller expected.
    #[error("wrong file kind: expected {expected}, found {found}")]
    WrongKind {
        /// Kind the caller asked for.
        expected: &'static str,
        /// Kind byte found in the file.
        found: u8,
    },
    /// The data ends before a structure it announces.
    #[error("truncated: {what} needs {needed} bytes, {available} available")]
    Truncated {
        /// The structure being read.
        what: &'static str,
        /// Bytes it needs.
        needed: u64,
        /// Bytes left.
        available: u64,
    },
    /// The file has no valid trailer: it was truncated or is still being written.
    #[error("file incomplete: no valid trailer (truncated or still being written)")]
    MissingTrailer,
    /// A stored CRC-32 does not match the data.
    #[error("checksum mismatch in {what}: stored {stored:#010x}, computed {computed:#010x}")]
    ChecksumMismatch {
        /// The checksummed structure.
        what: &'static str,
        /// Checksum stored in the file.
        stored: u32,
        /// Checksum of the bytes read.
        computed: u32,
    },
    /// A size exceeds a configured or structural limit.
    #[error("{what} too large: {size} bytes, limit {limit}")]
    TooLarge {
        /// What is too large.
        what: &'static str,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A structure is well-formed but breaks an invariant of the format.
    #[error("invalid {what}: {detail}")]
    Invalid {
        /// The structure.
        what: &'static str,
        /// Which invariant.
        detail: String,
    },
    /// A version-2 snapshot record leaves its namespace, name, uid or
    /// resourceVersion to the object's JSON, which holds no single such string.
    #[error(
        "object {object}: {field} is left to the JSON, which has no single metadata.{field} string"
    )]
    ElidedValueMissing {
        /// The object, `namespace/name` (or `name` when cluster-scoped).
        object: String,
        /// `namespace`, `name`, `uid` or `resourceVersion`.
        field: &'static str,
    },
    /// zstd could not decompress a payload.
    #[error("decompression failed: {0}")]
    Decompress(String),
    /// zstd could not compress a payload (bad level, out of memory).
    #[error("compression failed: {0}")]
    Compress(String),
    /// bincode could not decode a structure.
    #[error("decoding {what} failed: {detail}")]
    Decode {
        /// The structure.
        what: &'static str,
        /// bincode's message.
        detail: String,
    },
    /// bincode could not encode a structure.
    #[error("encoding {what} failed: {detail}")]
    Encode {
        /// The structure.
        what: &'static str,
        /// bincode's message.
        detail: String,
    },
    /// The file is encrypted and no identity was given.
    #[error("file is encrypted: an age identity is needed to read it")]
    EncryptedNeedsIdentity,
    /// Decryption failed: wrong identity, or the ciphertext was altered.
    #[error("decryption failed (wrong identity or tampered data): {0}")]
    Decrypt(String),
    /// Encryption failed.
    #[error("encryption failed: {0}")]
    Encrypt(String),
    /// An I/O error from the writer's sink.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl FormatError {
    /// An error with no location yet; readers add it with [`FormatError::in_file`]
    /// and [`FormatError::in_block`].
    #[must_use]
    pub fn new(kind: ErrorKind) -> Self {
        Self {
            file: None,
            block: None,
            kind,
        }
    }

    /// Attaches a file name unless one is already set.
    #[must_use]
    pub fn in_file(mut self, file: Option<&str>) -> Self {
        if self.file.is_none() {
            self.file = file.map(str::to_owned);
        }
        self
    }

    /// Attaches a block index unless one is already set.
    #[must_use]
    pub fn in_block(mut self, block: u64) -> Self {
        if self.block.is_none() {
            self.block = Some(block);
        }
        self
    }
}

impl From<ErrorKind> for FormatError {
    fn from(kind: ErrorKind) -> Self {
        Self::new(kind)
    }
}

impl From<std::io::Error> for FormatError {
    fn from(e: std::io::Error) -> Self {
        Self::new(ErrorKind::Io(e))
    }
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{file} ")?;
        }
        if let Some(block) = self.block {
            write!(f, "block {block}")?;
        }
        if self.file.is_some() || self.block.is_some() {
            write!(f, ": ")?;
        }
        write!(f, "{}", self.kind)
    }
}

impl std::error::Error for FormatError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.kind)
    }
}

/// Shorthand for an [`ErrorKind::Invalid`] error.
pub(crate) fn invalid(what: &'static str, detail: impl Into<String>) -> FormatError {
    FormatError::new(ErrorKind::Invalid {
        what,
        detail: detail.into(),
    })
}

/// Shorthand for an [`ErrorKind::Truncated`] error.
pub(crate) fn truncated(what: &'static str, needed: usize, available: usize) -> FormatError {
    FormatError::new(ErrorKind::Truncated {
        what,
        needed: needed as u64,
        available: available as u64,
    })
}
