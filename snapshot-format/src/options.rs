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

impl Default for WriteOptions {
    fn default() -> Self {
        Self {
            level: DEFAULT_LEVEL,
            block_bytes: 1 << 20,
            dictionary: None,
        }
    }
}
