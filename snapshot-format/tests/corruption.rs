//! Damaged input gives typed errors naming the file and block, never a panic
//! and never silently wrong data.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss,
    reason = "fixtures are small"
)]

mod common;

use common::*;
use rewind_format::codec::crc32;
use rewind_format::header::{PREAMBLE_LEN, TRAILER_LEN};
use rewind_format::segment::SegmentReader;
use rewind_format::{ErrorKind, FormatError, Limits, SnapshotReader, decode_block, encode_block};

fn read_segment(bytes: &[u8]) -> Result<u64, FormatError> {
    SegmentReader::open(bytes, Some("seg-x"), Limits::default())?.verify()
}

fn read_snapshot(bytes: &[u8]) -> Result<u64, FormatError> {
    SnapshotReader::open(bytes, Some("snap-x"), Limits::default())?.verify()
}

/// A snapshot of the newest version, 3 (the fixture's JSON holds every uid
/// and resourceVersion, so every record leaves them out).
fn snapshot_bytes() -> Vec<u8> {
    let (h, o) = sample_snapshot(12);
    write_snapshot(&h, &o, &small_blocks())
}

/// The same content as a version-2 snapshot.
fn snapshot_v2_bytes() -> Vec<u8> {
    let (h, o) = sample_snapshot(12);
    write_snapshot_version(&h, &o, &small_blocks(), 2)
}

/// The same content as a version-1 snapshot.
fn snapshot_v1_bytes() -> Vec<u8> {
    let (h, o) = sample_snapshot(12);
    write_snapshot_version(&h, &o, &small_blocks(), 1)
}

/// Rewrites the preamble's version (with a valid CRC).
fn with_version(bytes: &[u8], version: u16) -> Vec<u8> {
    let mut b = bytes.to_vec();
    b[8..10].copy_from_slice(&version.to_le_bytes());
    let crc = crc32(&b[..12]);
    b[12..16].copy_from_slice(&crc.to_le_bytes());
    b
}

/// Offsets where blocks start, from the index, plus the index and trailer.
fn segment_boundaries(bytes: &[u8]) -> Vec<usize> {
    let r = SegmentReader::open(bytes, None, Limits::default()).unwrap();
    let mut v: Vec<usize> = r.blocks().iter().map(|b| b.offset as usize).collect();
    v.push((r.blocks().last().unwrap().offset + r.blocks().last().unwrap().len) as usize);
    v.push(bytes.len() - TRAILER_LEN);
    v.push(PREAMBLE_LEN);
    v
}

#[test]
fn truncation_at_every_block_boundary_is_reported() {
    let bytes = sample_segment();
    assert_eq!(read_segment(&bytes).unwrap(), 60);
    let bounds = segment_boundaries(&bytes);
    assert!(bounds.len() > 8, "fixture should have many blocks");
    for cut in bounds {
        let err = read_segment(&bytes[..cut]).unwrap_err();
        assert!(
            matches!(
                err.kind,
                ErrorKind::MissingTrailer | ErrorKind::Truncated { .. }
            ),
            "cut at {cut}: {err}"
        );
        assert_eq!(err.file.as_deref(), Some("seg-x"));
    }
}

#[test]
fn truncation_at_every_byte_is_an_error() {
    for (bytes, read) in [
        (
            sample_segment(),
            read_segment as fn(&[u8]) -> Result<u64, FormatError>,
        ),
        (snapshot_bytes(), read_snapshot),
        (snapshot_v2_bytes(), read_snapshot),
        (snapshot_v1_bytes(), read_snapshot),
    ] {
        for cut in 0..bytes.len() {
            assert!(
                read(&bytes[..cut]).is_err(),
                "truncated to {cut} bytes read fine"
            );
        }
    }
}

#[test]
fn every_single_bit_flip_is_detected() {
    for (bytes, read) in [
        (
            sample_segment(),
            read_segment as fn(&[u8]) -> Result<u64, FormatError>,
        ),
        (snapshot_bytes(), read_snapshot),
        (snapshot_v2_bytes(), read_snapshot),
        (snapshot_v1_bytes(), read_snapshot),
    ] {
        read(&bytes).unwrap();
        for pos in 0..bytes.len() {
            let mut b = bytes.clone();
            b[pos] ^= 1 << (pos % 8);
            assert!(read(&b).is_err(), "flip at byte {pos} went unnoticed");
        }
    }
}

#[test]
fn damaged_data_block_names_file_and_block() {
    let bytes = sample_segment();
    let r = SegmentReader::open(&bytes, None, Limits::default()).unwrap();
    let b = r.blocks()[4].clone();
    let mut bad = bytes.clone();
    bad[(b.offset + 25) as usize] ^= 0x40; // inside the payload
    let mut r = SegmentReader::open(&bad, Some("seg-x"), Limits::default()).unwrap();
    r.read_block(0).unwrap();
    let err = r.read_block(4).unwrap_err();
    // Header is block 0, so data block 4 is block 5 in file order.
    assert_eq!(err.block, Some(5));
    assert!(matches!(
        err.kind,
        ErrorKind::ChecksumMismatch {
            what: "block payload",
            ..
        }
    ));
    assert!(
        err.to_string()
            .starts_with("seg-x block 5: checksum mismatch"),
        "{err}"
    );
}

#[test]
fn wrong_magic_future_version_wrong_kind() {
    let bytes = sample_segment();
    let mut bad = bytes.clone();
    bad[1] = b'X';
    assert!(matches!(
        read_segment(&bad).unwrap_err().kind,
        ErrorKind::BadMagic
    ));

    // A well-formed preamble of version 2: rejected as unsupported, not guessed.
    let mut future = bytes.clone();
    future[8..10].copy_from_slice(&2u16.to_le_bytes());
    let crc = crc32(&future[..12]);
    future[12..16].copy_from_slice(&crc.to_le_bytes());
    let err = read_segment(&future).unwrap_err();
    assert!(
        matches!(
            err.kind,
            ErrorKind::UnsupportedVersion {
                found: 2,
                supported: 1
            }
        ),
        "{err}"
    );

    let err = read_snapshot(&bytes).unwrap_err();
    assert!(
        matches!(
            err.kind,
            ErrorKind::WrongKind {
                expected: "snapshot",
                found: 1
            }
        ),
        "{err}"
    );
}

#[test]
fn snapshot_versions_one_to_three_read_four_is_unsupported() {
    let v3 = snapshot_bytes();
    let v2 = snapshot_v2_bytes();
    let v1 = snapshot_v1_bytes();
    assert_eq!(
        (&v1[8..10], &v2[8..10], &v3[8..10]),
        (&[1u8, 0][..], &[2u8, 0][..], &[3u8, 0][..])
    );
    assert!(v2.len() < v1.len(), "v2 {} vs v1 {}", v2.len(), v1.len());
    assert_eq!(read_snapshot(&v1).unwrap(), read_snapshot(&v2).unwrap());
    assert_eq!(read_snapshot(&v1).unwrap(), read_snapshot(&v3).unwrap());
    // A version-2 file relabelled 3 (or the reverse) is caught: the block
    // payloads differ in layout.
    assert!(read_snapshot(&with_version(&v2, 3)).is_err());
    assert!(read_snapshot(&with_version(&v3, 2)).is_err());
    for (found, bytes) in [
        (4u16, with_version(&v3, 4)),
        (0xFFFF, with_version(&v1, 0xFFFF)),
    ] {
        let err = read_snapshot(&bytes).unwrap_err();
        assert!(
            matches!(err.kind, ErrorKind::UnsupportedVersion { found: f, supported: 3 } if f == found),
            "{err}"
        );
        assert_eq!(err.file.as_deref(), Some("snap-x"));
    }
    let err = read_snapshot(&with_version(&v3, 0)).unwrap_err();
    assert!(
        matches!(err.kind, ErrorKind::UnsupportedVersion { found: 0, .. }),
        "{err}"
    );
    // Segments did not change in version 2: a "version 2 segment" is unknown.
    let err = read_segment(&with_version(&sample_segment(), 2)).unwrap_err();
    assert!(
        matches!(
            err.kind,
            ErrorKind::UnsupportedVersion {
                found: 2,
                supported: 1
            }
        ),
        "{err}"
    );
}

#[test]
fn garbage_and_empty_input() {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for len in [0usize, 1, 15, 16, 47, 48, 100, 5000] {
        let g: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        assert!(read_segment(&g).is_err());
        assert!(read_snapshot(&g).is_err());
        assert!(decode_block(&g, &Limits::default()).is_err());
    }
    // Garbage behind a valid preamble.
    let mut g = sample_segment()[..PREAMBLE_LEN].to_vec();
    g.extend(std::iter::repeat_n(0xAB, 300));
    assert!(matches!(
        read_segment(&g).unwrap_err().kind,
        ErrorKind::MissingTrailer
    ));
}

#[test]
fn event_block_bit_flips_and_truncation() {
    let block = encode_block(&sample_events(30), 3).unwrap();
    for pos in 0..block.len() {
        let mut b = block.clone();
        b[pos] ^= 1 << (pos % 8);
        assert!(
            decode_block(&b, &Limits::default()).is_err(),
            "flip at {pos}"
        );
    }
    for cut in 0..block.len() {
        assert!(
            decode_block(&block[..cut], &Limits::default()).is_err(),
            "cut at {cut}"
        );
    }
}

/// Frames `stored` as a block with a claimed raw length and valid checksums.
fn forge_block(btype: u8, codec: u8, count: u32, raw_len: u32, stored: &[u8]) -> Vec<u8> {
    let mut head = [0u8; 16];
    head[0] = btype;
    head[1] = codec;
    head[4..8].copy_from_slice(&count.to_le_bytes());
    head[8..12].copy_from_slice(&(stored.len() as u32).to_le_bytes());
    head[12..16].copy_from_slice(&raw_len.to_le_bytes());
    let mut out = head.to_vec();
    out.extend_from_slice(&crc32(&head).to_le_bytes());
    out.extend_from_slice(stored);
    out.extend_from_slice(&crc32(stored).to_le_bytes());
    out
}

#[test]
fn decompression_is_capped() {
    // 64 MiB of zeros compresses to a few KiB: a bomb if trusted.
    let bomb = zstd::bulk::compress(&vec![0u8; 64 << 20], 19).unwrap();
    // Claims 100 bytes: decompression must stop, not expand to 64 MiB.
    let b = forge_block(2, 1, 1, 100, &bomb);
    let err = decode_block(&b, &Limits::default()).unwrap_err();
    assert!(matches!(err.kind, ErrorKind::Decompress(_)), "{err}");
    // Claims the truth, but above the limit: rejected before decompressing.
    let b = forge_block(2, 1, 1, 64 << 20, &bomb);
    let limits = Limits {
        max_block_bytes: 1 << 20,
        ..Limits::default()
    };
    let err = decode_block(&b, &limits).unwrap_err();
    assert!(
        matches!(err.kind, ErrorKind::TooLarge { what: "block", .. }),
        "{err}"
    );
}

#[test]
fn forged_counts_and_lengths_do_not_allocate_or_panic() {
    // A record count of u32::MAX over an empty payload.
    let b = forge_block(2, 0, u32::MAX, 0, &[]);
    assert!(decode_block(&b, &Limits::default()).is_err());
    // A bincode length prefix claiming 2^60 bytes of object.
    let mut payload = vec![0u8; 8];
    payload.extend_from_slice(&[0xFF, 0, 0, 0, 0, 0, 0, 0x10]);
    let b = forge_block(2, 0, 1, payload.len() as u32, &payload);
    assert!(decode_block(&b, &Limits::default()).is_err());
    // Unknown block type and codec.
    assert!(decode_block(&forge_block(9, 0, 0, 0, &[]), &Limits::default()).is_err());
    assert!(decode_block(&forge_block(2, 7, 0, 0, &[]), &Limits::default()).is_err());
}
