//! Encryption: any Rewind file may be wrapped for age X25519 recipients.
//!
//! ```text
//! preamble (kind of the inner file, flags = encrypted) | age ciphertext | trailer
//! ```
//!
//! The age ciphertext (binary age v1 format, <https://age-encryption.org/v1>)
//! decrypts to a complete plain Rewind file of the same kind. age's payload
//! is ChaCha20-Poly1305 in 64 KiB chunks with a last-chunk flag, so any
//! change, truncation or extension of the ciphertext fails decryption. The
//! outer trailer has index offset 0 and 0 data blocks. The outer preamble
//! repeats the inner file's kind and version.
//!
//! A writer needs only public recipients (`age1...`); a reader needs an
//! identity (`AGE-SECRET-KEY-1...`). The outer preamble stays readable, so
//! a reader can tell that a file is encrypted and what it holds.

use std::borrow::Cow;
use std::io::{Read, Write};
use std::str::FromStr;

pub use age::x25519::{Identity, Recipient};

use crate::codec::Limits;
use crate::error::{ErrorKind, FormatError, Result, invalid};
use crate::header::{
    PREAMBLE_LEN, TRAILER_LEN, Trailer, decode_preamble, decode_trailer, encode_preamble,
    encode_trailer,
};

/// Parses a public recipient (`age1...`).
pub fn parse_recipient(s: &str) -> Result<Recipient> {
    Recipient::from_str(s.trim())
        .map_err(|e| FormatError::new(ErrorKind::Encrypt(format!("bad recipient: {e}"))))
}

/// Parses an identity (`AGE-SECRET-KEY-1...`); lines starting with `#` and
/// blank lines are skipped, as in age identity files.
pub fn parse_identity(s: &str) -> Result<Identity> {
    let line = s
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .unwrap_or_default();
    Identity::from_str(line)
        .map_err(|e| FormatError::new(ErrorKind::Decrypt(format!("bad identity: {e}"))))
}

/// Whether `bytes` is an encrypted Rewind file (checks the preamble only).
pub fn is_encrypted(bytes: &[u8]) -> Result<bool> {
    Ok(decode_preamble(bytes)?.encrypted)
}

/// Encrypts a complete plain Rewind file to `recipients`.
pub fn encrypt(plain: &[u8], recipients: &[Recipient]) -> Result<Vec<u8>> {
    let pre = decode_preamble(plain)?;
    if pre.encrypted {
        return Err(invalid("plain file", "already encrypted"));
    }
    decode_trailer(plain)?;
    let enc = age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
        .map_err(|e| FormatError::new(ErrorKind::Encrypt(e.to_string())))?;
    let mut out = Vec::with_capacity(plain.len() + 512);
    out.extend_from_slice(&encode_preamble(pre.kind, pre.version, true));
    let mut w = enc
        .wrap_output(&mut out)
        .map_err(|e| FormatError::new(ErrorKind::Encrypt(e.to_string())))?;
    w.write_all(plain)?;
    w.finish()?;
    let body_len = out.len() as u64;
    out.extend_from_slice(&encode_trailer(&Trailer {
        index_offset: 0,
        data_blocks: 0,
        body_len,
    }));
    Ok(out)
}

/// Decrypts an encrypted Rewind file with any of `identities`; returns the
/// plain file, whose kind must match the outer preamble.
pub fn decrypt(bytes: &[u8], identities: &[Identity], limits: &Limits) -> Result<Vec<u8>> {
    let pre = decode_preamble(bytes)?;
    if !pre.encrypted {
        return Err(invalid("encrypted file", "preamble has no encrypted flag"));
    }
    let t = decode_trailer(bytes)?;
    if t.index_offset != 0 || t.data_blocks != 0 {
        return Err(invalid("trailer", "encrypted file with an index"));
    }
    let body = bytes
        .get(PREAMBLE_LEN..bytes.len() - TRAILER_LEN)
        .unwrap_or_default();
    let dec = age::Decryptor::new_buffered(body)
        .map_err(|e| FormatError::new(ErrorKind::Decrypt(e.to_string())))?;
    let reader = dec
        .decrypt(identities.iter().map(|i| i as &dyn age::Identity))
        .map_err(|e| FormatError::new(ErrorKind::Decrypt(e.to_string())))?;
    let mut plain = Vec::new();
    reader
        .take(limits.max_file_bytes.saturating_add(1))
        .read_to_end(&mut plain)
        .map_err(|e| FormatError::new(ErrorKind::Decrypt(e.to_string())))?;
    if plain.len() as u64 > limits.max_file_bytes {
        return Err(FormatError::new(ErrorKind::TooLarge {
            what: "decrypted file",
            size: plain.len() as u64,
            limit: limits.max_file_bytes,
        }));
    }
    let inner = decode_preamble(&plain)?;
    if inner.encrypted || inner.kind != pre.kind || inner.version != pre.version {
        return Err(invalid(
            "decrypted file",
            "kind, version or flags differ from the outer preamble",
        ));
    }
    Ok(plain)
}

/// Returns the plain bytes of a Rewind file: borrowed when it is not
/// encrypted, decrypted when it is (an identity is then required).
pub fn open<'a>(
    bytes: &'a [u8],
    identities: &[Identity],
    limits: &Limits,
) -> Result<Cow<'a, [u8]>> {
    if !is_encrypted(bytes)? {
        return Ok(Cow::Borrowed(bytes));
    }
    if identities.is_empty() {
        return Err(FormatError::new(ErrorKind::EncryptedNeedsIdentity));
    }
    decrypt(bytes, identities, limits).map(Cow::Owned)
}
