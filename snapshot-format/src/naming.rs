//! Content-hash names: a file is named by the SHA-256 of its exact bytes
//! (after encryption, when encrypted), so a name proves what it holds and a
//! store can detect a swapped or damaged object.
//!
//! Name: `<kind>-<64 lowercase hex digits>`, e.g. `snapshot-3f9a…`.

use sha2::{Digest, Sha256};

use crate::error::{Result, invalid};
use crate::header::decode_preamble;

/// SHA-256 of `bytes`.
#[must_use]
pub fn content_hash(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Lowercase hex of the SHA-256 of `bytes`.
#[must_use]
pub fn content_hash_hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    content_hash(bytes)
        .iter()
        .fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The name of a Rewind file: kind from its preamble, then its content hash.
pub fn content_name(bytes: &[u8]) -> Result<String> {
    let pre = decode_preamble(bytes)?;
    Ok(format!("{}-{}", pre.kind.name(), content_hash_hex(bytes)))
}

/// Checks that `name` (optionally with a directory prefix or an extension)
/// is the content name of `bytes`.
pub fn verify_content_name(name: &str, bytes: &[u8]) -> Result<()> {
    let base = name.rsplit('/').next().unwrap_or(name);
    let base = base.split('.').next().unwrap_or(base);
    let expected = content_name(bytes)?;
    if base == expected {
        Ok(())
    } else {
        Err(invalid("content name", format!("{name} holds {expected}")).in_file(Some(name)))
    }
}
