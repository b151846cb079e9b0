//! The fixed-size preamble and trailer that frame every file.
//!
//! ```text
//! preamble (16 bytes, offset 0)
//!      0    8 magic        89 52 57 4E 44 0D 0A 1A  ("\x89RWND\r\n\x1a")
//!      8    2 version      u16 LE: segments 1, snapshots 1, 2 or 3 (see below)
//!     10    1 file kind    1 = segment, 2 = snapshot
//!     11    1 flags        bit 0 = encrypted; other bits must be 0
//!     12    4 crc          CRC-32 of bytes 0..12
//!
//! trailer (32 bytes, last bytes of the file)
//!      0    8 index offset u64 LE: offset of the index block (0 if encrypted)
//!      8    8 data blocks  u64 LE: number of data blocks (0 if encrypted)
//!     16    8 body length  u64 LE: file length minus 32
//!     24    4 crc          CRC-32 of trailer bytes 0..24
//!     28    4 end magic    52 57 4E 44 ("RWND")
//! ```
//!
//! The magic's high byte and CR LF catch 7-bit and newline-mangling
//! transfers, as in PNG. The trailer is written last: a file without a valid
//! trailer is incomplete and is never read.
//!
//! A version number names the revision of `docs/FORMAT.md` that last changed
//! a kind's layout, so versions are checked per kind: segments exist only in
//! version 1; snapshots in version 1, in version 2 (records leave out the
//! namespace, name, uid and resourceVersion their JSON already holds) and in
//! version 3 (object blocks are columnar). A release writes each
//! kind in its newest version and reads every version it knows.

use crate::codec::crc32;
use crate::error::{ErrorKind, FormatError, Result, invalid, truncated};
use crate::frame::{read_u32, read_u64};

/// The 8 magic bytes every Rewind file starts with.
pub const MAGIC: [u8; 8] = *b"\x89RWND\r\n\x1a";
/// The 4 bytes every Rewind file ends with.
pub const END_MAGIC: [u8; 4] = *b"RWND";
/// The highest format version this release knows, of any kind.
pub const FORMAT_VERSION: u16 = 3;
/// The version this release writes segments in (and the only one of segments).
pub const SEGMENT_VERSION: u16 = 1;
/// The version this release writes snapshots in; it also reads versions 1
/// and 2.
pub const SNAPSHOT_VERSION: u16 = 3;
/// Length of the preamble.
pub const PREAMBLE_LEN: usize = 16;
/// Length of the trailer.
pub const TRAILER_LEN: usize = 32;
/// Preamble flag: the body is an age-encrypted plain file.
pub const FLAG_ENCRYPTED: u8 = 1;

/// What a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FileKind {
    /// A sealed run of events.
    Segment = 1,
    /// The full state at one point.
    Snapshot = 2,
}

impl FileKind {
    /// Lowercase name, used in file names and messages.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Segment => "segment",
            Self::Snapshot => "snapshot",
        }
    }

    /// The newest version of this kind: what this release writes and the
    /// highest it reads.
    #[must_use]
    pub fn latest_version(self) -> u16 {
        match self {
            Self::Segment => SEGMENT_VERSION,
            Self::Snapshot => SNAPSHOT_VERSION,
        }
    }

    fn from_u8(b: u8) -> Option<Self> {
        match b {
            1 => Some(Self::Segment),
            2 => Some(Self::Snapshot),
            _ => None,
        }
    }
}

/// A decoded preamble.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preamble {
    /// Format version.
    pub version: u16,
    /// File kind.
    pub kind: FileKind,
    /// Whether the body is encrypted.
    pub encrypted: bool,
}

/// Encodes a preamble. The caller picks the version: the kind's
/// [`FileKind::latest_version`] for new files, the inner file's for an
/// encrypted wrapper.
#[must_use]
pub fn encode_preamble(kind: FileKind, version: u16, encrypted: bool) -> [u8; PREAMBLE_LEN] {
    let mut p = [0u8; PREAMBLE_LEN];
    p[..8].copy_from_slice(&MAGIC);
    p[8..10].copy_from_slice(&version.to_le_bytes());
    p[10] = kind as u8;
    p[11] = if encrypted { FLAG_ENCRYPTED } else { 0 };
    let crc = crc32(&p[..12]);
    p[12..16].copy_from_slice(&crc.to_le_bytes());
    p
}

/// Decodes and checks the preamble at the start of `bytes`: magic, checksum,
/// version (unknown versions are rejected, never guessed: above the kind's
/// newest, or above [`FORMAT_VERSION`] when the kind is unknown too), kind
/// and flags.
pub fn decode_preamble(bytes: &[u8]) -> Result<Preamble> {
    let p = bytes
        .get(..PREAMBLE_LEN)
        .ok_or_else(|| truncated("preamble", PREAMBLE_LEN, bytes.len()))?;
    if p.get(..8) != Some(&MAGIC[..]) {
        return Err(FormatError::new(ErrorKind::BadMagic));
    }
    let stored = read_u32(p, 12)?;
    let computed = crc32(p.get(..12).unwrap_or_default());
    if stored != computed {
        return Err(FormatError::new(ErrorKind::ChecksumMismatch {
            what: "preamble",
            stored,
            computed,
        }));
    }
    let version = u16::from_le_bytes([
        p.get(8).copied().unwrap_or_default(),
        p.get(9).copied().unwrap_or_default(),
    ]);
    let kind_byte = p.get(10).copied().unwrap_or_default();
    let kind = FileKind::from_u8(kind_byte);
    let supported = kind.map_or(FORMAT_VERSION, FileKind::latest_version);
    if version == 0 || version > supported {
        return Err(FormatError::new(ErrorKind::UnsupportedVersion {
            found: version,
            supported,
        }));
    }
    let kind = kind.ok_or_else(|| invalid("preamble", format!("unknown file kind {kind_byte}")))?;
    let flags = p.get(11).copied().unwrap_or_default();
    if flags & !FLAG_ENCRYPTED != 0 {
        return Err(invalid("preamble", format!("unknown flags {flags:#04x}")));
    }
    Ok(Preamble {
        version,
        kind,
        encrypted: flags & FLAG_ENCRYPTED != 0,
    })
}

/// A decoded trailer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trailer {
    /// Offset of the index block.
    pub index_offset: u64,
    /// Number of data blocks.
    pub data_blocks: u64,
    /// File length minus the trailer.
    pub body_len: u64,
}

/// Encodes a trailer.
#[must_use]
pub fn encode_trailer(t: &Trailer) -> [u8; TRAILER_LEN] {
    let mut b = [0u8; TRAILER_LEN];
    b[..8].copy_from_slice(&t.index_offset.to_le_bytes());
    b[8..16].copy_from_slice(&t.data_blocks.to_le_bytes());
    b[16..24].copy_from_slice(&t.body_len.to_le_bytes());
    let crc = crc32(&b[..24]);
    b[24..28].copy_from_slice(&crc.to_le_bytes());
    b[28..32].copy_from_slice(&END_MAGIC);
    b
}

/// Decodes and checks the trailer at the end of `bytes`.
pub fn decode_trailer(bytes: &[u8]) -> Result<Trailer> {
    let min = PREAMBLE_LEN + TRAILER_LEN;
    if bytes.len() < min {
        return Err(truncated("file", min, bytes.len()));
    }
    let start = bytes.len() - TRAILER_LEN;
    let t = bytes.get(start..).unwrap_or_default();
    if t.get(28..32) != Some(&END_MAGIC[..]) {
        return Err(FormatError::new(ErrorKind::MissingTrailer));
    }
    let stored = read_u32(t, 24)?;
    let computed = crc32(t.get(..24).unwrap_or_default());
    if stored != computed {
        return Err(FormatError::new(ErrorKind::ChecksumMismatch {
            what: "trailer",
            stored,
            computed,
        }));
    }
    let trailer = Trailer {
        index_offset: read_u64(t, 0)?,
        data_blocks: read_u64(t, 8)?,
        body_len: read_u64(t, 16)?,
    };
    if trailer.body_len != start as u64 {
        return Err(FormatError::new(ErrorKind::Truncated {
            what: "file body",
            needed: trailer.body_len,
            available: start as u64,
        }));
    }
    Ok(trailer)
}
