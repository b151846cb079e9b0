//! Values of the `state` tree: the latest recorded version of each object.
//!
//! Layout 2 (written since journal layout 3; do not reorder, a change needs
//! a new version byte): `2u8`, then bincode (standard config) of
//! `(uid: String, resource_version: String, seq: u64, raw_len: u32,
//! codec: u8, object: Vec<u8>)`. `codec` is [`ObjectCodec`]:
//! - 0 stores the object's JSON as is (`object.len() == raw_len`);
//! - 1 as one zstd frame;
//! - 2 (journal layout 4) stores nothing (`object` is empty): the object is
//!   the JSON of the event record `seq` in the `log` tree, `raw_len` bytes
//!   long. See [`super::resolve`] for how it is read and how it is copied
//!   into the value before its block leaves the log.
//!
//! Layout 1 (journal layouts 1 and 2, still read): `1u8`, then bincode of
//! [`StoredV1`], whose `object_zstd` is one zstd frame.
//!
//! Why codec 2: the log already holds every recorded object, compressed in
//! its block. Storing it again here cost a second compression per event and,
//! worse, made every state value about a kilobyte: sled keeps up to 17
//! values per leaf and copies the leaf on every insert, so the state tree's
//! writes were most of the writer's time. Values of about 60 bytes took the
//! writer from 21-24 to about 14 us per event (`benches/ingest.rs`).
//! Objects stay inline (codec 0 or 1) where the ingest path reads them back
//! on every update: types with an ignore rule.

use super::keys::{ObjectKey, decode_object_key};
use super::{Error, Result};

/// Version byte of a state value written by this release.
const VERSION: u8 = 2;
/// Version byte of layout 1, read only.
const VERSION_1: u8 = 1;

/// zstd level of objects stored inline in state values (types with an
/// ignore rule, and objects copied in before their blocks are trimmed),
/// whatever `journal.zstd_level` says (that setting is for event blocks).
/// Level -1 (no entropy coding of literals) cost less CPU per event than
/// level 1 when every object was inline (22.8-23.6 against 24.2-26.5 us per
/// event, `benches/ingest.rs`), for values about a fifth larger.
pub const STATE_ZSTD_LEVEL: i32 = -1;

/// Largest object the journal will decompress: the API server stores at most
/// about 1.5 MiB per object, so anything near this cap is corrupt.
pub const MAX_OBJECT_BYTES: u32 = 64 << 20;

/// Layout 1 of a state value (frozen: do not change).
#[derive(bincode::Encode, bincode::Decode)]
#[cfg_attr(
    not(test),
    expect(
        dead_code,
        reason = "the frozen layout: values are read and written as borrowed tuples, which tests check against it"
    )
)]
struct StoredV1 {
    uid: String,
    resource_version: String,
    seq: u64,
    raw_len: u32,
    object_zstd: Vec<u8>,
}

/// Layout 2 of a state value (frozen: do not change).
#[derive(bincode::Encode, bincode::Decode)]
#[cfg_attr(
    not(test),
    expect(
        dead_code,
        reason = "the frozen layout: values are read and written as borrowed tuples, which tests check against it"
    )
)]
struct StoredV2 {
    uid: String,
    resource_version: String,
    seq: u64,
    raw_len: u32,
    codec: u8,
    object: Vec<u8>,
}

/// How a state value holds its object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectCodec {
    /// The JSON as is.
    Raw = 0,
    /// One zstd frame.
    Zstd = 1,
    /// Not in the value: the JSON of the log's event record `seq`.
    InLog = 2,
}

impl ObjectCodec {
    fn from_byte(b: u8) -> Option<Self> {
        match b {
            0 => Some(Self::Raw),
            1 => Some(Self::Zstd),
            2 => Some(Self::InLog),
            _ => None,
        }
    }
}

/// An object as the state tree holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    /// Length of the object's JSON.
    pub raw_len: u32,
    /// How `bytes` encode it.
    pub codec: ObjectCodec,
    /// The encoded object.
    pub bytes: Vec<u8>,
}

impl StoredObject {
    /// An object that is the JSON of its event record in the log.
    pub fn in_log(json: &[u8]) -> Result<Self> {
        Ok(Self {
            raw_len: checked_len(json)?,
            codec: ObjectCodec::InLog,
            bytes: Vec::new(),
        })
    }
}

/// `json`'s length as a state value records it, refusing objects the
/// journal will not hold.
fn checked_len(json: &[u8]) -> Result<u32> {
    u32::try_from(json.len())
        .ok()
        .filter(|n| *n <= MAX_OBJECT_BYTES)
        .ok_or_else(|| Error::TooLarge(json.len()))
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
    /// The object; see [`StateEntry::object_json`].
    pub object: StoredObject,
}

impl StateEntry {
    /// The object's JSON as recorded. Entries read through the journal
    /// ([`super::Journal::get`], [`super::Journal::state`], a batch's `get`)
    /// always hold their object; an entry decoded from a raw value whose
    /// object is in the log ([`ObjectCodec::InLog`]) is an error here.
    pub fn object_json(&self) -> Result<Vec<u8>> {
        let raw_len = self.object.raw_len;
        if raw_len > MAX_OBJECT_BYTES {
            return Err(Error::Corrupt(format!(
                "state entry {:?} claims {raw_len} bytes",
                self.key
            )));
        }
        let cap = usize::try_from(raw_len).unwrap_or(0);
        let out = match self.object.codec {
            ObjectCodec::Raw => self.object.bytes.clone(),
            ObjectCodec::Zstd => zstd::bulk::decompress(&self.object.bytes, cap).map_err(|e| {
                Error::Corrupt(format!(
                    "state entry {:?} does not decompress: {e}",
                    self.key
                ))
            })?,
            ObjectCodec::InLog => {
                return Err(Error::Corrupt(format!(
                    "state entry {:?}: its object is event {} of the log, not read yet",
                    self.key, self.seq
                )));
            }
        };
        if out.len() != cap {
            return Err(Error::Corrupt(format!(
                "state entry {:?}: {} bytes, expected {cap}",
                self.key,
                out.len(),
            )));
        }
        Ok(out)
    }

    /// Encodes the value for the `state` tree (layout 2).
    #[cfg(test)]
    pub(crate) fn encode_value(&self) -> Result<Vec<u8>> {
        encode_value(&self.uid, &self.resource_version, self.seq, &self.object)
    }

    /// Decodes a `state` tree entry (layout 1 or 2).
    pub(crate) fn decode(key: &[u8], value: &[u8]) -> Result<Self> {
        let key = decode_object_key(key)
            .ok_or_else(|| Error::Corrupt(format!("bad state key {key:?}")))?;
        let v =
            parse(value).map_err(|e| Error::Corrupt(format!("state value for {key:?}: {e}")))?;
        Ok(Self {
            key,
            uid: v.uid.to_owned(),
            resource_version: v.resource_version.to_owned(),
            seq: v.seq,
            object: StoredObject {
                raw_len: v.raw_len,
                codec: v.codec,
                bytes: v.object.to_vec(),
            },
        })
    }
}

/// What deduplication needs of a state entry: read without copying (or
/// decompressing) its object, which is most of the entry's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateHead {
    /// The object's uid.
    pub uid: String,
    /// Its resourceVersion.
    pub resource_version: String,
    /// Sequence number of the event that recorded this version.
    pub seq: u64,
}

impl StateHead {
    /// Decodes the head of a `state` tree value (layout 1 or 2), checking
    /// the whole value as [`StateEntry::decode`] does.
    pub(crate) fn decode(key: &[u8], value: &[u8]) -> Result<Self> {
        let v = parse(value).map_err(|e| {
            Error::Corrupt(format!(
                "state value for {:?}: {e}",
                String::from_utf8_lossy(key)
            ))
        })?;
        Ok(Self {
            uid: v.uid.to_owned(),
            resource_version: v.resource_version.to_owned(),
            seq: v.seq,
        })
    }
}

/// A state value's fields, borrowed from its bytes.
struct Parsed<'a> {
    uid: &'a str,
    resource_version: &'a str,
    seq: u64,
    raw_len: u32,
    codec: ObjectCodec,
    object: &'a [u8],
}

/// [`StoredV2`] borrowed from a value's bytes.
type BorrowedV2<'a> = (&'a str, &'a str, u64, u32, u8, &'a [u8]);
/// [`StoredV1`] borrowed from a value's bytes.
type BorrowedV1<'a> = (&'a str, &'a str, u64, u32, &'a [u8]);

/// Parses a state value of layout 1 or 2 without copying it.
fn parse(value: &[u8]) -> Result<Parsed<'_>, String> {
    let Some((&version, rest)) = value.split_first() else {
        return Err("empty value".into());
    };
    let cfg = bincode::config::standard();
    let (parsed, used) = match version {
        // The borrowed tuples decode exactly like `StoredV2` and `StoredV1`
        // (a `&str` or `&[u8]` like the owned type).
        VERSION => {
            let ((uid, resource_version, seq, raw_len, codec, object), used): (
                BorrowedV2<'_>,
                usize,
            ) = bincode::borrow_decode_from_slice(rest, cfg).map_err(|e| e.to_string())?;
            let codec =
                ObjectCodec::from_byte(codec).ok_or_else(|| format!("unknown codec {codec}"))?;
            let p = Parsed {
                uid,
                resource_version,
                seq,
                raw_len,
                codec,
                object,
            };
            (p, used)
        }
        VERSION_1 => {
            let ((uid, resource_version, seq, raw_len, object), used): (BorrowedV1<'_>, usize) =
                bincode::borrow_decode_from_slice(rest, cfg).map_err(|e| e.to_string())?;
            let p = Parsed {
                uid,
                resource_version,
                seq,
                raw_len,
                codec: ObjectCodec::Zstd,
                object,
            };
            (p, used)
        }
        v => {
            return Err(format!(
                "version {v}, this release reads {VERSION_1} and {VERSION}"
            ));
        }
    };
    if used != rest.len() {
        return Err("trailing bytes".into());
    }
    if parsed.codec == ObjectCodec::Raw
        && u32::try_from(parsed.object.len()).ok() != Some(parsed.raw_len)
    {
        return Err(format!(
            "{} stored bytes, raw length {}",
            parsed.object.len(),
            parsed.raw_len
        ));
    }
    if parsed.codec == ObjectCodec::InLog && !parsed.object.is_empty() {
        return Err(format!(
            "{} stored bytes for an object kept in the log",
            parsed.object.len()
        ));
    }
    Ok(parsed)
}

/// Encodes a `state` tree value (layout 2) from its parts.
#[cfg(test)]
pub(crate) fn encode_value(
    uid: &str,
    resource_version: &str,
    seq: u64,
    object: &StoredObject,
) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    encode_value_into(uid, resource_version, seq, object, &mut out)?;
    Ok(out)
}

/// Encodes a `state` tree value (layout 2) from its parts into `out`
/// (cleared first): the batch reuses one buffer for every value.
pub(crate) fn encode_value_into(
    uid: &str,
    resource_version: &str,
    seq: u64,
    object: &StoredObject,
    out: &mut Vec<u8>,
) -> Result<()> {
    // The same bytes as bincode of `StoredV2` (a tuple encodes its fields
    // in order, a `&str` or `&[u8]` like the owned type), without copying
    // the object first.
    let stored = (
        uid,
        resource_version,
        seq,
        object.raw_len,
        object.codec as u8,
        object.bytes.as_slice(),
    );
    out.clear();
    out.reserve(object.bytes.len() + uid.len() + resource_version.len() + 32);
    out.push(VERSION);
    bincode::encode_into_std_write(stored, out, bincode::config::standard())
        .map_err(|e| Error::Corrupt(format!("cannot encode state entry: {e}")))?;
    Ok(())
}

/// Encodes objects for the state tree, reusing one zstd context.
pub struct ObjectCompressor {
    /// `None` stores objects as they are.
    inner: Option<zstd::bulk::Compressor<'static>>,
    /// Whether [`ObjectCompressor::stored`] may leave objects in the log
    /// ([`ObjectCodec::InLog`]).
    objects_in_log: bool,
}

impl ObjectCompressor {
    /// A compressor at zstd `level`. Negative levels are zstd's fast
    /// levels: no entropy coding, several times faster than level 1 on
    /// small objects.
    pub fn new(level: i32) -> Result<Self> {
        let inner = zstd::bulk::Compressor::new(level)
            .map_err(|e| Error::Corrupt(format!("zstd level {level}: {e}")))?;
        Ok(Self {
            inner: Some(inner),
            objects_in_log: false,
        })
    }

    /// The daemon's encoding of state values: objects stay in the log
    /// ([`ObjectCodec::InLog`]) unless the caller needs them inline, which
    /// are compressed at zstd level [`STATE_ZSTD_LEVEL`].
    pub fn for_state() -> Result<Self> {
        Ok(Self {
            objects_in_log: true,
            ..Self::new(STATE_ZSTD_LEVEL)?
        })
    }

    /// Stores objects as they are.
    #[must_use]
    pub fn uncompressed() -> Self {
        Self {
            inner: None,
            objects_in_log: false,
        }
    }

    /// The state value's object for `json`: left in the log when this
    /// compressor allows it and `inline` is false, else [`Self::compress`].
    pub fn stored(&mut self, json: &[u8], inline: bool) -> Result<StoredObject> {
        if self.objects_in_log && !inline {
            StoredObject::in_log(json)
        } else {
            self.compress(json)
        }
    }

    /// Encodes `json` inline for the state tree.
    pub fn compress(&mut self, json: &[u8]) -> Result<StoredObject> {
        let raw_len = checked_len(json)?;
        let Some(inner) = &mut self.inner else {
            return Ok(StoredObject {
                raw_len,
                codec: ObjectCodec::Raw,
                bytes: json.to_vec(),
            });
        };
        let bytes = inner
            .compress(json)
            .map_err(|e| Error::Corrupt(format!("zstd compress: {e}")))?;
        // Incompressible objects are kept as they are: as small, and free
        // to read.
        if bytes.len() >= json.len() {
            return Ok(StoredObject {
                raw_len,
                codec: ObjectCodec::Raw,
                bytes: json.to_vec(),
            });
        }
        Ok(StoredObject {
            raw_len,
            codec: ObjectCodec::Zstd,
            bytes,
        })
    }
}

/// A value exactly as state layout 1 stored it, for tests of old journals.
#[cfg(test)]
pub(crate) fn encode_value_v1(e: &StateEntry, object_zstd: &[u8]) -> Vec<u8> {
    let old = StoredV1 {
        uid: e.uid.clone(),
        resource_version: e.resource_version.clone(),
        seq: e.seq,
        raw_len: e.object.raw_len,
        object_zstd: object_zstd.to_vec(),
    };
    let mut v = vec![VERSION_1];
    bincode::encode_into_std_write(&old, &mut v, bincode::config::standard()).unwrap();
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::keys::encode_object_key;

    fn key() -> ObjectKey {
        ObjectKey {
            group: String::new(),
            resource: "configmaps".into(),
            namespace: Some("default".into()),
            name: "x".into(),
        }
    }

    fn entry(object: StoredObject) -> StateEntry {
        StateEntry {
            key: key(),
            uid: "u".into(),
            resource_version: "7".into(),
            seq: 3,
            object,
        }
    }

    const JSON: &[u8] =
        br#"{"metadata":{"name":"x","labels":{"a":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}}}"#;

    #[test]
    fn state_value_round_trips_with_every_codec() {
        for mut c in [
            ObjectCompressor::new(1).unwrap(),
            ObjectCompressor::new(-1).unwrap(),
            ObjectCompressor::uncompressed(),
        ] {
            let object = c.compress(JSON).unwrap();
            let e = entry(object.clone());
            let v = e.encode_value().unwrap();
            let owned = StoredV2 {
                uid: e.uid.clone(),
                resource_version: e.resource_version.clone(),
                seq: e.seq,
                raw_len: object.raw_len,
                codec: object.codec as u8,
                object: object.bytes.clone(),
            };
            let mut want = vec![VERSION];
            bincode::encode_into_std_write(&owned, &mut want, bincode::config::standard()).unwrap();
            assert_eq!(v, want, "the borrowed encoding is the layout of `StoredV2`");
            let back = StateEntry::decode(&encode_object_key(&key()), &v).unwrap();
            assert_eq!(back, e);
            let head = StateHead::decode(&encode_object_key(&key()), &v).unwrap();
            assert_eq!(
                (head.uid, head.resource_version, head.seq),
                (e.uid.clone(), e.resource_version.clone(), e.seq)
            );
            assert_eq!(back.object_json().unwrap(), JSON);
        }
        assert_eq!(
            ObjectCompressor::new(1)
                .unwrap()
                .compress(JSON)
                .unwrap()
                .codec,
            ObjectCodec::Zstd
        );
        assert_eq!(
            ObjectCompressor::uncompressed()
                .compress(JSON)
                .unwrap()
                .codec,
            ObjectCodec::Raw
        );
    }

    #[test]
    fn layout_1_values_are_still_read() {
        // A value exactly as journal layouts 1 and 2 wrote it.
        let old = StoredV1 {
            uid: "u".into(),
            resource_version: "7".into(),
            seq: 3,
            raw_len: u32::try_from(JSON.len()).unwrap(),
            object_zstd: zstd::bulk::compress(JSON, 1).unwrap(),
        };
        let mut v = vec![VERSION_1];
        bincode::encode_into_std_write(&old, &mut v, bincode::config::standard()).unwrap();
        let e = StateEntry::decode(&encode_object_key(&key()), &v).unwrap();
        assert_eq!(
            (e.uid.as_str(), e.resource_version.as_str(), e.seq),
            ("u", "7", 3)
        );
        assert_eq!(e.object.codec, ObjectCodec::Zstd);
        assert_eq!(e.object_json().unwrap(), JSON);
        let head = StateHead::decode(&encode_object_key(&key()), &v).unwrap();
        assert_eq!((head.uid.as_str(), head.seq), ("u", 3));
    }

    #[test]
    fn incompressible_objects_are_stored_raw() {
        let tiny = br#"{}"#;
        let o = ObjectCompressor::new(1).unwrap().compress(tiny).unwrap();
        assert_eq!(o.codec, ObjectCodec::Raw);
        assert_eq!(o.bytes, tiny);
    }

    #[test]
    fn corrupt_values_are_errors_not_panics() {
        let k = encode_object_key(&key());
        for bad in [
            &b""[..],
            &[9u8][..],
            &[1u8, 0xff, 0xff][..],
            &[2u8, 0xff][..],
        ] {
            assert!(StateEntry::decode(&k, bad).is_err());
            assert!(StateHead::decode(&k, bad).is_err());
        }
        // An unknown codec, and a raw object whose length disagrees.
        for (codec, raw_len) in [(7u8, 2u32), (0, 3)] {
            let mut v = vec![VERSION];
            let s = StoredV2 {
                uid: "u".into(),
                resource_version: "1".into(),
                seq: 1,
                raw_len,
                codec,
                object: b"{}".to_vec(),
            };
            bincode::encode_into_std_write(&s, &mut v, bincode::config::standard()).unwrap();
            assert!(
                StateEntry::decode(&k, &v).is_err(),
                "codec {codec} raw_len {raw_len}"
            );
            assert!(StateHead::decode(&k, &v).is_err());
        }
    }
}
