//! Encryption: round trips, wrong keys and tampering.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss,
    reason = "fixtures are small"
)]

mod common;

use common::*;
use rewind_format::crypto::{self, Identity};
use rewind_format::segment::SegmentReader;
use rewind_format::{ErrorKind, Limits, SnapshotReader};

fn snapshot_bytes() -> Vec<u8> {
    let (h, o) = sample_snapshot(10);
    write_snapshot(&h, &o, &small_blocks())
}

#[test]
fn round_trip_for_segments_and_snapshots() {
    let id = Identity::generate();
    let other = Identity::generate();
    for plain in [sample_segment(), snapshot_bytes()] {
        let enc = crypto::encrypt(&plain, &[id.to_public(), other.to_public()]).unwrap();
        assert!(crypto::is_encrypted(&enc).unwrap());
        assert!(!crypto::is_encrypted(&plain).unwrap());
        // The payload is not readable without the key.
        assert!(!enc.windows(12).any(|w| w == b"\"apiVersion\""));
        // Either recipient can read it.
        for key in [&id, &other] {
            let back = crypto::open(&enc, std::slice::from_ref(key), &Limits::default()).unwrap();
            assert_eq!(&*back, &plain[..]);
        }
    }
    let enc = crypto::encrypt(&sample_segment(), &[id.to_public()]).unwrap();
    let plain = crypto::open(&enc, &[id], &Limits::default()).unwrap();
    let mut r = SegmentReader::open(&plain, None, Limits::default()).unwrap();
    assert_eq!(r.read_all().unwrap(), sample_events(60));
}

#[test]
fn readers_say_an_identity_is_needed() {
    let id = Identity::generate();
    let enc = crypto::encrypt(&snapshot_bytes(), &[id.to_public()]).unwrap();
    let err = SnapshotReader::open(&enc, Some("snap"), Limits::default())
        .err()
        .unwrap();
    assert!(
        matches!(err.kind, ErrorKind::EncryptedNeedsIdentity),
        "{err}"
    );
    let err = crypto::open(&enc, &[], &Limits::default()).unwrap_err();
    assert!(matches!(err.kind, ErrorKind::EncryptedNeedsIdentity));
}

#[test]
fn wrong_identity_fails() {
    let enc = crypto::encrypt(&sample_segment(), &[Identity::generate().to_public()]).unwrap();
    let err = crypto::open(&enc, &[Identity::generate()], &Limits::default()).unwrap_err();
    assert!(matches!(err.kind, ErrorKind::Decrypt(_)), "{err}");
}

#[test]
fn any_tampering_is_detected() {
    let id = Identity::generate();
    let plain = sample_segment();
    let enc = crypto::encrypt(&plain, &[id.to_public()]).unwrap();
    let ids = [id];
    // Every byte of the file (preamble, age header, payload, trailer).
    for pos in 0..enc.len() {
        let mut b = enc.clone();
        b[pos] ^= 0x01;
        assert!(
            crypto::open(&b, &ids, &Limits::default()).is_err(),
            "tamper at {pos} undetected"
        );
    }
    // Dropping the last ciphertext chunk's tail, with a re-forged trailer.
    let body_end = enc.len() - 32;
    let mut cut = enc[..body_end - 17].to_vec();
    let t = rewind_format::header::encode_trailer(&rewind_format::header::Trailer {
        index_offset: 0,
        data_blocks: 0,
        body_len: cut.len() as u64,
    });
    cut.extend_from_slice(&t);
    let err = crypto::open(&cut, &ids, &Limits::default()).unwrap_err();
    assert!(matches!(err.kind, ErrorKind::Decrypt(_)), "{err}");
}

#[test]
fn keys_parse_from_text() {
    let id = Identity::generate();
    let secret = {
        use age::secrecy::ExposeSecret;
        id.to_string().expose_secret().to_owned()
    };
    let parsed =
        crypto::parse_identity(&format!("# created: now\n# public key: x\n{secret}\n")).unwrap();
    let r = crypto::parse_recipient(&id.to_public().to_string()).unwrap();
    assert_eq!(r.to_string(), parsed.to_public().to_string());
    assert!(crypto::parse_recipient("age1nope").is_err());
    assert!(crypto::parse_identity("garbage").is_err());
}

#[test]
fn verify_file_checks_name_blocks_and_encryption() {
    use rewind_format::naming::content_name;
    use rewind_format::{FileKind, verify_file};
    let id = Identity::generate();
    let plain = snapshot_bytes();
    let enc = crypto::encrypt(&plain, &[id.to_public()]).unwrap();
    let limits = Limits::default();
    let s = verify_file(&plain, Some(&content_name(&plain).unwrap()), &[], &limits).unwrap();
    assert_eq!(
        (s.kind, s.encrypted, s.records),
        (FileKind::Snapshot, false, 40)
    );
    let name = format!("store/{}.rwf", content_name(&enc).unwrap());
    let s = verify_file(&enc, Some(&name), std::slice::from_ref(&id), &limits).unwrap();
    assert_eq!(
        (s.kind, s.encrypted, s.records, s.seq),
        (FileKind::Snapshot, true, 40, (4242, 4242))
    );
    // A file stored under another file's name is caught before parsing.
    let err = verify_file(&plain, Some(&name), &[], &limits).unwrap_err();
    assert_eq!(err.file.as_deref(), Some(name.as_str()));
    let seg = sample_segment();
    let s = verify_file(&seg, None, &[], &limits).unwrap();
    assert_eq!((s.kind, s.records, s.seq), (FileKind::Segment, 60, (1, 60)));
}
