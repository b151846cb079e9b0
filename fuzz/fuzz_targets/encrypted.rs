//! Any bytes given to the decrypting reader give a plain file or a typed error.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rewind_format::crypto::{self, Identity};
use rewind_format::{Limits, SnapshotReader};

/// The golden files' test identity, so that corpus entries made from the
/// golden encrypted snapshot get past the age header.
fn identity() -> &'static Identity {
    static ID: OnceLock<Identity> = OnceLock::new();
    ID.get_or_init(|| {
        crypto::parse_identity(include_str!(
            "../../snapshot-format/tests/golden/v1/test-identity.txt"
        ))
        .expect("test identity parses")
    })
}

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_block_bytes: 16 << 20,
        max_file_bytes: 64 << 20,
        ..Limits::default()
    };
    let _ = crypto::is_encrypted(data);
    if let Ok(plain) = crypto::open(data, std::slice::from_ref(identity()), &limits)
        && let Ok(mut r) = SnapshotReader::open(&plain, None, limits)
    {
        let _ = r.verify();
    }
});
