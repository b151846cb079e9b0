//! bincode 2 + zstd + CRC-32, with capped decompression.
//!
//! The bincode configuration is part of the format and must never change
//! within a format version: `standard()` with little-endian byte order,
//! variable-length integers (LEB128-like, see `docs/FORMAT.md`) and a decode
//! limit of [`MAX_RECORD_BYTES`] per structure, so that a forged length prefix
//! cannot make the decoder allocate more than that.

use bincode::config::{Configuration, LittleEndian, Varint};

use crate::error::{ErrorKind, FormatError, Result};

/// Largest single bincode structure (one event record, one object, one header).
/// Kubernetes objects are at most a few MiB (etcd's default request limit is 1.5 MiB).
pub const MAX_RECORD_BYTES: usize = 64 << 20;

/// The one bincode configuration of format version 1.
pub type BincodeConfig =
    Configuration<LittleEndian, Varint, bincode::config::Limit<MAX_RECORD_BYTES>>;

/// The configuration value; see the module doc.
pub const BINCODE: BincodeConfig = bincode::config::standard()
    .with_little_endian()
    .with_variable_int_encoding()
    .with_limit::<MAX_RECORD_BYTES>();

/// Default zstd level: a balance of encode speed and size measured by the
/// format benchmark (`examples/format_bench.rs`).
pub const DEFAULT_LEVEL: i32 = 9;

/// Limits applied while reading untrusted bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest decompressed size of one block. Blocks announce their raw size;
    /// a larger announcement is rejected before anything is allocated.
    pub max_block_bytes: u32,
    /// Largest number of blocks a file may index.
    pub max_blocks: u32,
    /// Largest plain file produced by decryption.
    pub max_file_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_block_bytes: 256 << 20,
            max_blocks: 1 << 22,
            max_file_bytes: 64 << 30,
        }
    }
}

/// CRC-32 (IEEE 802.3, the polynomial of zlib and PNG) of `data`.
#[must_use]
pub fn crc32(data: &[u8]) -> u32 {
    crc32fast::hash(data)
}

/// Encodes one structure with the format's bincode configuration, appending to `out`.
pub(crate) fn encode_into<T: bincode::Encode>(
    value: &T,
    out: &mut Vec<u8>,
    what: &'static str,
) -> Result<()> {
    bincode::encode_into_std_write(value, out, BINCODE).map_err(|e| {
        FormatError::new(ErrorKind::Encode {
            what,
            detail: e.to_string(),
        })
    })?;
    Ok(())
}

/// Decodes one structure from the front of `bytes`; returns it and the bytes consumed.
pub(crate) fn decode_from<T: bincode::Decode<()>>(
    bytes: &[u8],
    what: &'static str,
) -> Result<(T, usize)> {
    bincode::decode_from_slice(bytes, BINCODE).map_err(|e| {
        FormatError::new(ErrorKind::Decode {
            what,
            detail: e.to_string(),
        })
    })
}

/// Decodes exactly one structure filling all of `bytes`.
pub(crate) fn decode_exact<T: bincode::Decode<()>>(bytes: &[u8], what: &'static str) -> Result<T> {
    let (value, used) = decode_from(bytes, what)?;
    if used != bytes.len() {
        return Err(crate::error::invalid(
            what,
            format!("{} trailing bytes after the structure", bytes.len() - used),
        ));
    }
    Ok(value)
}

/// A reusable zstd compressor (one per writer: contexts are costly to create).
pub(crate) struct Compressor {
    inner: zstd::bulk::Compressor<'static>,
}

impl Compressor {
    /// A compressor at `level`, optionally primed with a dictionary.
    pub(crate) fn new(level: i32, dictionary: Option<&[u8]>) -> Result<Self> {
        let inner = match dictionary {
            Some(d) => zstd::bulk::Compressor::with_dictionary(level, d),
            None => zstd::bulk::Compressor::new(level),
        }
        .map_err(|e| FormatError::new(ErrorKind::Compress(e.to_string())))?;
        Ok(Self { inner })
    }

    /// Compresses `data` into a fresh buffer.
    pub(crate) fn compress(&mut self, data: &[u8]) -> Result<Vec<u8>> {
        self.inner
            .compress(data)
            .map_err(|e| FormatError::new(ErrorKind::Compress(e.to_string())))
    }
}

/// A reusable zstd decompressor whose output is capped by the caller.
pub(crate) struct Decompressor {
    inner: zstd::bulk::Decompressor<'static>,
}

impl Decompressor {
    /// A decompressor, optionally primed with a dictionary.
    pub(crate) fn new(dictionary: Option<&[u8]>) -> Result<Self> {
        let inner = match dictionary {
            Some(d) => zstd::bulk::Decompressor::with_dictionary(d),
            None => zstd::bulk::Decompressor::new(),
        }
        .map_err(|e| FormatError::new(ErrorKind::Decompress(e.to_string())))?;
        Ok(Self { inner })
    }

    /// Decompresses `data`, which must expand to exactly `raw_len` bytes.
    /// `raw_len` was checked against [`Limits::max_block_bytes`] by the caller,
    /// so the allocation is bounded whatever the zstd frame claims.
    pub(crate) fn decompress(&mut self, data: &[u8], raw_len: usize) -> Result<Vec<u8>> {
        let out = self
            .inner
            .decompress(data, raw_len)
            .map_err(|e| FormatError::new(ErrorKind::Decompress(e.to_string())))?;
        if out.len() != raw_len {
            return Err(FormatError::new(ErrorKind::Decompress(format!(
                "expanded to {} bytes, header says {raw_len}",
                out.len()
            ))));
        }
        Ok(out)
    }
}

/// Trains a zstd dictionary of at most `max_size` bytes from sample payloads
/// (for example the bincode-encoded records of a previous segment).
pub fn train_dictionary(samples: &[Vec<u8>], max_size: usize) -> Result<Vec<u8>> {
    zstd::dict::from_samples(samples, max_size)
        .map_err(|e| FormatError::new(ErrorKind::Compress(e.to_string())))
}
