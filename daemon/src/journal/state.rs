//! Values of the `state` tree: the latest recorded version of each object.
//!
//! Layout (do not reorder; a change needs a new `VERSION`):
//! `VERSION: u8` then bincode (standard config) of [`Stored`], whose
//! `object_zstd` is the object's JSON compressed as one zstd frame.

use super::keys::ObjectKey;
use super::{Error, Result};

/// Version byte of a stored state value.
const VERSION: u8 = 1;

/// Largest object the journal will decompress: the API server stores at most
/// about 1.5 MiB per object, so anything near this cap is corrupt.
pub const MAX_OBJECT_BYTES: u32 = 64 << 20;

#[derive(bincode::Encode, bincode::Decode)]
struct Stored {
    uid: String,
    resource_version: String,
    seq: u64,
    raw_len: u32,
    object_zstd: Vec<u8>,
}

/// One object of the current state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateEntry {
    /// Where the object lives.
    pub key: ObjectKey,
    /// Its uid, to tell a recreated object from the one recorded.
    pub uid: String,
    /// Its resourceVersion, for deduplication of relisted objects.
    pub resource_version: String,
    /// Sequence number of the event that recorded this version.
    pub seq: u64,
    /// Length of the object's JSON.
    pub raw_len: u32,
    /// The object's JSON, zstd-compressed; see [`StateEntry::object_json`].
    pub object_zstd: Vec<u8>,
}

impl StateEntry {
    /// The object's JSON as recorded.
    pub fn object_json(&self) -> Result<Vec<u8>> {
        if self.raw_len > MAX_OBJECT_BYTES {
            return Err(Error::Corrupt(format!(
                "state entry {:?} claims {} bytes",
                self.key, self.raw_len
            )));
        }
        let cap = usize::try_from(self.raw_len).unwrap_or(0);
        let out = zstd::bulk::decompress(&self.object_zstd, cap).map_err(|e| {
            Error::Corrupt(format!(
                "state entry {:?} does not decompress: {e}",
                self.key
            ))
        })?;
        if out.len() != cap {
            return Err(Error::Corrupt(format!(
                "state entry {:?}: {} bytes, expected {}",
                self.key,
                out.len(),
                cap
            )));
        }
        Ok(out)
    }

    /// Encodes the value for the `state` tree.
    pub(crate) fn encode_value(&self) -> Result<Vec<u8>> {
        // The same bytes as bincode of `Stored` (a tuple encodes its fields
        // in order, a `&str` or `&[u8]` like the owned type), without
        // copying the object.
        let stored = (
            self.uid.as_str(),
            self.resource_version.as_str(),
            self.seq,
            self.raw_len,
            self.object_zstd.as_slice(),
        );
        let mut out = Vec::with_capacity(self.object_zstd.len() + 64);
        out.push(VERSION);
        bincode::encode_into_std_write(stored, &mut out, bincode::config::standard())
            .map_err(|e| Error::Corrupt(format!("cannot encode state entry: {e}")))?;
        Ok(out)
    }

    /// Decodes a `state` tree entry.
    pub(crate) fn decode(key: &[u8], value: &[u8]) -> Result<Self> {
        let key = ObjectKey::decode(key)
            .ok_or_else(|| Error::Corrupt(format!("bad state key {key:?}")))?;
        let Some((&version, rest)) = value.split_first() else {
            return Err(Error::Corrupt(format!("empty state value for {key:?}")));
        };
        if version != VERSION {
            return Err(Error::Corrupt(format!(
                "state value version {version} for {key:?}, this release reads {VERSION}"
            )));
        }
        let (stored, used): (Stored, usize) =
            bincode::decode_from_slice(rest, bincode::config::standard())
                .map_err(|e| Error::Corrupt(format!("state value for {key:?}: {e}")))?;
        if used != rest.len() {
            return Err(Error::Corrupt(format!(
                "trailing bytes in state value for {key:?}"
            )));
        }
        Ok(Self {
            key,
            uid: stored.uid,
            resource_version: stored.resource_version,
            seq: stored.seq,
            raw_len: stored.raw_len,
            object_zstd: stored.object_zstd,
        })
    }
}

/// Compresses objects for the state tree, reusing one zstd context.
pub struct ObjectCompressor {
    inner: zstd::bulk::Compressor<'static>,
}

impl ObjectCompressor {
    /// A compressor at zstd `level`.
    pub fn new(level: i32) -> Result<Self> {
        let level = std::env::var("H2_STATE_LEVEL")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(level);
        let inner = zstd::bulk::Compressor::new(level)
            .map_err(|e| Error::Corrupt(format!("zstd level {level}: {e}")))?;
        Ok(Self { inner })
    }

    /// Compresses `json`, returning `(raw_len, compressed)`.
    pub fn compress(&mut self, json: &[u8]) -> Result<(u32, Vec<u8>)> {
        let raw_len = u32::try_from(json.len())
            .ok()
            .filter(|n| *n <= MAX_OBJECT_BYTES)
            .ok_or_else(|| Error::TooLarge(json.len()))?;
        let out = self
            .inner
            .compress(json)
            .map_err(|e| Error::Corrupt(format!("zstd compress: {e}")))?;
        Ok((raw_len, out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_value_round_trips() {
        let mut c = ObjectCompressor::new(1).unwrap();
        let json = br#"{"metadata":{"name":"x"}}"#;
        let (raw_len, object_zstd) = c.compress(json).unwrap();
        let key = ObjectKey {
            type_key: "configmaps".into(),
            namespace: "default".into(),
            name: "x".into(),
        };
        let e = StateEntry {
            key: key.clone(),
            uid: "u".into(),
            resource_version: "7".into(),
            seq: 3,
            raw_len,
            object_zstd,
        };
        let v = e.encode_value().unwrap();
        let owned = Stored {
            uid: e.uid.clone(),
            resource_version: e.resource_version.clone(),
            seq: e.seq,
            raw_len: e.raw_len,
            object_zstd: e.object_zstd.clone(),
        };
        let mut want = vec![VERSION];
        bincode::encode_into_std_write(&owned, &mut want, bincode::config::standard()).unwrap();
        assert_eq!(v, want, "the borrowed encoding is the layout of `Stored`");
        let back = StateEntry::decode(&key.encode(), &v).unwrap();
        assert_eq!(back, e);
        assert_eq!(back.object_json().unwrap(), json);
    }

    #[test]
    fn corrupt_values_are_errors_not_panics() {
        let key = ObjectKey {
            type_key: "t".into(),
            namespace: String::new(),
            name: "n".into(),
        }
        .encode();
        for bad in [&b""[..], &[9u8][..], &[1u8, 0xff, 0xff][..]] {
            assert!(StateEntry::decode(&key, bad).is_err());
        }
    }
}
