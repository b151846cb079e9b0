//! Block framing: every payload in every file is a checksummed block.
//!
//! ```text
//! offset size field
//!      0    1 block type      (see BlockType)
//!      1    1 codec           0 = stored raw, 1 = zstd, 2 = zstd with the file's dictionary
//!      2    2 reserved        must be 0
//!      4    4 item count      u32 LE: records in the payload (meaning depends on type)
//!      8    4 stored length S u32 LE: bytes of payload as stored
//!     12    4 raw length R    u32 LE: bytes of payload after decompression
//!     16    4 header crc      CRC-32 of bytes 0..16
//!     20    S payload
//!   20+S    4 payload crc     CRC-32 of the S stored payload bytes
//! ```
//!
//! The header has its own checksum so that a flipped length is reported as a
//! checksum mismatch, not as a truncation or a huge allocation. Readers call
//! [`check_block`] (checksums and limits, no allocation) before decompressing.

use std::borrow::Cow;

use crate::codec::{Compressor, Decompressor, Limits, crc32};
use crate::error::{ErrorKind, FormatError, Result, invalid, truncated};

/// Bytes of a block before its payload.
pub const BLOCK_HEADER_LEN: usize = 20;
/// Bytes of a block after its payload.
pub const BLOCK_TRAILER_LEN: usize = 4;

/// What a block holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum BlockType {
    /// The file header (segment or snapshot metadata).
    Header = 1,
    /// Event records.
    Events = 2,
    /// Snapshot objects of one resource type.
    Objects = 3,
    /// The block index.
    Index = 4,
    /// A zstd dictionary used by blocks of codec 2.
    Dictionary = 5,
}

impl BlockType {
    fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            1 => Self::Header,
            2 => Self::Events,
            3 => Self::Objects,
            4 => Self::Index,
            5 => Self::Dictionary,
            _ => return None,
        })
    }
}

/// How a block's payload is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Codec {
    /// Stored as is.
    Raw = 0,
    /// One zstd frame.
    Zstd = 1,
    /// One zstd frame compressed with the file's dictionary block.
    ZstdDict = 2,
}

/// A block whose header and checksums were verified, payload still stored.
#[derive(Debug, Clone, Copy)]
pub struct RawBlock<'a> {
    /// Block type.
    pub btype: BlockType,
    /// Codec of the stored payload.
    pub codec: Codec,
    /// Item count from the header.
    pub count: u32,
    /// Decompressed payload length.
    pub raw_len: u32,
    /// Stored payload.
    pub stored: &'a [u8],
}

/// Appends one block holding `raw` to `out`. Compresses with `compressor`
/// when given, and falls back to raw storage when compression does not help.
pub(crate) fn write_block(
    out: &mut Vec<u8>,
    btype: BlockType,
    count: u32,
    raw: &[u8],
    compressor: Option<(&mut Compressor, Codec)>,
) -> Result<()> {
    let raw_len = len_u32(raw.len(), "block payload")?;
    let compressed = match compressor {
        Some((c, codec)) => {
            let z = c.compress(raw)?;
            (z.len() < raw.len()).then_some((z, codec))
        }
        None => None,
    };
    let (codec, stored): (Codec, &[u8]) = match &compressed {
        Some((z, codec)) => (*codec, z.as_slice()),
        None => (Codec::Raw, raw),
    };
    let stored_len = len_u32(stored.len(), "stored block payload")?;
    let mut head = [0u8; 16];
    head[0] = btype as u8;
    head[1] = codec as u8;
    head[4..8].copy_from_slice(&count.to_le_bytes());
    head[8..12].copy_from_slice(&stored_len.to_le_bytes());
    head[12..16].copy_from_slice(&raw_len.to_le_bytes());
    out.reserve(BLOCK_HEADER_LEN + stored.len() + BLOCK_TRAILER_LEN);
    out.extend_from_slice(&head);
    out.extend_from_slice(&crc32(&head).to_le_bytes());
    out.extend_from_slice(stored);
    out.extend_from_slice(&crc32(stored).to_le_bytes());
    Ok(())
}

/// Total bytes a block occupies, given its stored payload length.
#[must_use]
pub fn block_len(stored_len: u32) -> u64 {
    BLOCK_HEADER_LEN as u64 + u64::from(stored_len) + BLOCK_TRAILER_LEN as u64
}

/// Verifies the block at the front of `bytes` (header checksum, limits,
/// payload checksum) and returns it with the number of bytes it occupies.
pub fn check_block<'a>(bytes: &'a [u8], limits: &Limits) -> Result<(RawBlock<'a>, usize)> {
    let head = bytes
        .get(..BLOCK_HEADER_LEN)
        .ok_or_else(|| truncated("block header", BLOCK_HEADER_LEN, bytes.len()))?;
    let stored_crc = read_u32(head, 16)?;
    let computed = crc32(head.get(..16).unwrap_or_default());
    if stored_crc != computed {
        return Err(FormatError::new(ErrorKind::ChecksumMismatch {
            what: "block header",
            stored: stored_crc,
            computed,
        }));
    }
    let btype_byte = head.first().copied().unwrap_or_default();
    let btype = BlockType::from_u8(btype_byte)
        .ok_or_else(|| invalid("block header", format!("unknown block type {btype_byte}")))?;
    let codec = match head.get(1).copied().unwrap_or_default() {
        0 => Codec::Raw,
        1 => Codec::Zstd,
        2 => Codec::ZstdDict,
        other => return Err(invalid("block header", format!("unknown codec {other}"))),
    };
    if head.get(2..4) != Some(&[0, 0][..]) {
        return Err(invalid("block header", "reserved bytes are not zero"));
    }
    let count = read_u32(head, 4)?;
    let stored_len = read_u32(head, 8)?;
    let raw_len = read_u32(head, 12)?;
    if raw_len > limits.max_block_bytes {
        return Err(FormatError::new(ErrorKind::TooLarge {
            what: "block",
            size: u64::from(raw_len),
            limit: u64::from(limits.max_block_bytes),
        }));
    }
    if codec == Codec::Raw && stored_len != raw_len {
        return Err(invalid(
            "block header",
            "raw block with stored length != raw length",
        ));
    }
    let total = usize::try_from(block_len(stored_len))
        .map_err(|_| invalid("block header", "block length overflows"))?;
    let whole = bytes
        .get(..total)
        .ok_or_else(|| truncated("block", total, bytes.len()))?;
    let stored = whole
        .get(BLOCK_HEADER_LEN..total - BLOCK_TRAILER_LEN)
        .ok_or_else(|| truncated("block payload", total, bytes.len()))?;
    let stored_crc = read_u32(whole, total - BLOCK_TRAILER_LEN)?;
    let computed = crc32(stored);
    if stored_crc != computed {
        return Err(FormatError::new(ErrorKind::ChecksumMismatch {
            what: "block payload",
            stored: stored_crc,
            computed,
        }));
    }
    Ok((
        RawBlock {
            btype,
            codec,
            count,
            raw_len,
            stored,
        },
        total,
    ))
}

/// Returns a checked block's decompressed payload. `dict` is the
/// decompressor for codec 2, present only when the file has a dictionary.
pub(crate) fn open_block<'a>(
    block: &RawBlock<'a>,
    plain: &mut Decompressor,
    dict: Option<&mut Decompressor>,
) -> Result<Cow<'a, [u8]>> {
    let raw_len = usize::try_from(block.raw_len)
        .map_err(|_| invalid("block header", "raw length overflows"))?;
    match block.codec {
        Codec::Raw => Ok(Cow::Borrowed(block.stored)),
        Codec::Zstd => Ok(Cow::Owned(plain.decompress(block.stored, raw_len)?)),
        Codec::ZstdDict => match dict {
            Some(d) => Ok(Cow::Owned(d.decompress(block.stored, raw_len)?)),
            None => Err(invalid(
                "block",
                "codec 2 (dictionary) but the file has no dictionary",
            )),
        },
    }
}

/// Requires a block to be of a given type.
pub(crate) fn expect_type(block: &RawBlock<'_>, want: BlockType) -> Result<()> {
    if block.btype == want {
        Ok(())
    } else {
        Err(invalid(
            "block",
            format!("expected a {want:?} block, found {:?}", block.btype),
        ))
    }
}

/// Reads a little-endian u32 at `at`.
pub(crate) fn read_u32(bytes: &[u8], at: usize) -> Result<u32> {
    let b: [u8; 4] = bytes
        .get(at..at.saturating_add(4))
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| truncated("u32 field", at.saturating_add(4), bytes.len()))?;
    Ok(u32::from_le_bytes(b))
}

/// Reads a little-endian u64 at `at`.
pub(crate) fn read_u64(bytes: &[u8], at: usize) -> Result<u64> {
    let b: [u8; 8] = bytes
        .get(at..at.saturating_add(8))
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| truncated("u64 field", at.saturating_add(8), bytes.len()))?;
    Ok(u64::from_le_bytes(b))
}

/// Converts a length to the u32 the block header stores.
pub(crate) fn len_u32(len: usize, what: &'static str) -> Result<u32> {
    u32::try_from(len).map_err(|_| {
        FormatError::new(ErrorKind::TooLarge {
            what,
            size: len as u64,
            limit: u64::from(u32::MAX),
        })
    })
}
