//! Writer options shared by segments and snapshots.

use crate::codec::DEFAULT_LEVEL;

/// How a writer compresses and cuts blocks. None of these affect readers:
/// they are recorded in the blocks themselves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteOptions {
    /// zstd level, 1..=22 (negative levels are zstd's fast modes).
    pub level: i32,
    /// Target uncompressed size of one data block. A block is cut once it
    /// reaches this size, so it may exceed it by one record. Larger blocks
    /// compress better; smaller blocks make single-object reads cheaper.
    pub block_bytes: usize,
    /// Optional zstd dictionary, stored once in the file (see
    /// [`crate::codec::train_dictionary`]). Pays only for small blocks.
    pub dictionary: Option<Vec<u8>>,
}

/// Default block size of snapshots: 4 MiB of object JSON. Columnar blocks
/// (format version 3) compress better the more objects of a type they see
/// at once, while a single-object read still decodes only one block
/// (figures: `docs/BENCHMARKS.md`, "Design measurements").
pub const SNAPSHOT_BLOCK_BYTES: usize = 4 << 20;

impl WriteOptions {
    /// Options for snapshots at zstd `level`: [`SNAPSHOT_BLOCK_BYTES`]
    /// blocks, no dictionary.
    #[must_use]
    pub fn snapshot(level: i32) -> Self {
        Self {
            level,
            block_bytes: SNAPSHOT_BLOCK_BYTES,
            dictionary: None,
        }
    }
}

impl Default for WriteOptions {
    fn default() -> Self {
        Self {
            level: DEFAULT_LEVEL,
            block_bytes: 1 << 20,
            dictionary: None,
        }
    }
}
