//! Whole-file verification, for `rewind verify` and for the daemon after an
//! upload: content name, framing, every block, every invariant.

use crate::codec::Limits;
use crate::crypto::{self, Identity};
use crate::error::Result;
use crate::header::{FileKind, decode_preamble};
use crate::naming::verify_content_name;
use crate::segment::SegmentReader;
use crate::snapshot::SnapshotReader;

/// What a verified file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Segment or snapshot.
    pub kind: FileKind,
    /// Whether the stored bytes were encrypted.
    pub encrypted: bool,
    /// Number of data blocks.
    pub blocks: u64,
    /// Events (segment) or objects (snapshot).
    pub records: u64,
    /// Sequence range: (first, last) of a segment, (seq, seq) of a snapshot.
    pub seq: (u64, u64),
}

/// Verifies a stored file completely. When `name` is given it must be the
/// file's content name (a directory prefix or extension is allowed).
/// Encrypted files need one of `identities`.
pub fn verify_file(
    bytes: &[u8],
    name: Option<&str>,
    identities: &[Identity],
    limits: &Limits,
) -> Result<Summary> {
    if let Some(n) = name {
        verify_content_name(n, bytes)?;
    }
    let pre = decode_preamble(bytes).map_err(|e| e.in_file(name))?;
    let plain = crypto::open(bytes, identities, limits).map_err(|e| e.in_file(name))?;
    match pre.kind {
        FileKind::Segment => {
            let mut r = SegmentReader::open(&plain, name, *limits)?;
            let records = r.verify()?;
            let h = r.header();
            Ok(Summary {
                kind: pre.kind,
                encrypted: pre.encrypted,
                blocks: r.blocks().len() as u64,
                records,
                seq: (h.first_seq, h.last_seq),
            })
        }
        FileKind::Snapshot => {
            let mut r = SnapshotReader::open(&plain, name, *limits)?;
            let records = r.verify()?;
            let seq = r.header().seq;
            Ok(Summary {
                kind: pre.kind,
                encrypted: pre.encrypted,
                blocks: r.index().blocks.len() as u64,
                records,
                seq: (seq, seq),
            })
        }
    }
}
