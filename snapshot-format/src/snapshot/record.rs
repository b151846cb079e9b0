//! Object records inside snapshot data blocks, per format version.
//!
//! ```text
//! version 1: namespace Option<String> | name String | uid String
//!            | resource_version String | object Vec<u8>
//! version 2: namespace Option<String> | name String | uid Option<String>
//!            | resource_version Option<String> | object Vec<u8>
//! ```
//!
//! In version 2, `None` (one byte `0`, the same byte as version 1's empty
//! string) means "the value is the JSON's": `metadata.uid` or
//! `metadata.resourceVersion` of `object` as [`crate::json_meta`] defines it.
//! The writer leaves a value out only when the JSON holds exactly that
//! string, and stores it as `Some` otherwise (an empty uid, a uid the JSON
//! does not have or disagrees with, JSON that is not valid), so every object
//! round-trips. A reader fills `None` back from the JSON; when the JSON gives
//! no value the record is invalid ([`ErrorKind::ElidedValueMissing`]).

use std::borrow::Cow;

use super::{ObjectRef, SnapshotObject};
use crate::codec::{decode_from, encode_into};
use crate::error::{ErrorKind, FormatError, Result};
use crate::json_meta;

/// A version-2 record as decoded. Frozen for format version 2: do not add,
/// remove, reorder or retype fields.
#[derive(bincode::Decode)]
struct RecordV2 {
    namespace: Option<String>,
    name: String,
    uid: Option<String>,
    resource_version: Option<String>,
    object: Vec<u8>,
}

/// Appends one record of snapshot `version` (1 or 2) to `out`.
pub(crate) fn encode(version: u16, obj: ObjectRef<'_>, out: &mut Vec<u8>) -> Result<()> {
    if version == 1 {
        // Same bytes as encoding a SnapshotObject: bincode encodes &str like
        // String, &[u8] like Vec<u8>, and a tuple like a struct.
        let fields = (
            obj.namespace,
            obj.name,
            obj.uid,
            obj.resource_version,
            obj.object,
        );
        return encode_into(&fields, out, "snapshot object");
    }
    let meta = json_meta::extract(obj.object).unwrap_or_default();
    let fields = (
        obj.namespace,
        obj.name,
        keep(obj.uid, meta.uid.as_deref()),
        keep(obj.resource_version, meta.resource_version.as_deref()),
        obj.object,
    );
    encode_into(&fields, out, "snapshot object")
}

/// `value`, unless the JSON holds exactly that string (then `None`: left out).
fn keep<'a>(value: &'a str, in_json: Option<&str>) -> Option<&'a str> {
    (in_json != Some(value)).then_some(value)
}

/// Decodes one record of snapshot `version` from the front of `bytes`;
/// returns the object (values left to the JSON filled back in) and the bytes
/// used.
pub(crate) fn decode(version: u16, bytes: &[u8]) -> Result<(SnapshotObject, usize)> {
    if version == 1 {
        return decode_from(bytes, "snapshot object");
    }
    let (r, used): (RecordV2, usize) = decode_from(bytes, "snapshot object")?;
    Ok((r.resolve()?, used))
}

impl RecordV2 {
    fn resolve(self) -> Result<SnapshotObject> {
        let (uid, resource_version) = match (self.uid, self.resource_version) {
            (Some(uid), Some(rv)) => (uid, rv),
            (uid, rv) => {
                let meta = json_meta::extract(&self.object).unwrap_or_default();
                let fill =
                    |stored: Option<String>, in_json: Option<Cow<'_, str>>, field: &'static str| {
                        stored
                            .or_else(|| in_json.map(Cow::into_owned))
                            .ok_or_else(|| {
                                FormatError::new(ErrorKind::ElidedValueMissing {
                                    object: match &self.namespace {
                                        Some(ns) => format!("{ns}/{}", self.name),
                                        None => self.name.clone(),
                                    },
                                    field,
                                })
                            })
                    };
                (
                    fill(uid, meta.uid, "uid")?,
                    fill(rv, meta.resource_version, "resourceVersion")?,
                )
            }
        };
        Ok(SnapshotObject {
            namespace: self.namespace,
            name: self.name,
            uid,
            resource_version,
            object: self.object,
        })
    }
}

/// Encodes a version-2 record with the given value fields as they are, for
/// tests that forge records the writer would not make.
#[cfg(test)]
pub(crate) fn encode_raw_for_tests(
    namespace: Option<&str>,
    name: &str,
    uid: Option<&str>,
    resource_version: Option<&str>,
    object: &[u8],
    out: &mut Vec<u8>,
) {
    let fields = (namespace, name, uid, resource_version, object);
    let r = encode_into(&fields, out, "test record");
    assert!(r.is_ok());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj<'a>(uid: &'a str, rv: &'a str, json: &'a str) -> ObjectRef<'a> {
        ObjectRef {
            namespace: Some("ns"),
            name: "n",
            uid,
            resource_version: rv,
            object: json.as_bytes(),
        }
    }

    fn encoded(o: ObjectRef<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        encode(2, o, &mut out).unwrap();
        out
    }

    /// The bytes between the name and the object: the two value fields.
    fn value_fields(o: ObjectRef<'_>) -> Vec<u8> {
        let b = encoded(o);
        // namespace Some("ns") = 1,2,'n','s'; name "n" = 1,'n'.
        assert_eq!(&b[..6], &[1, 2, b'n', b's', 1, b'n']);
        let json_len = o.object.len();
        // The JSON is short here, so its length is one varint byte.
        b[6..b.len() - json_len - 1].to_vec()
    }

    #[test]
    fn values_the_json_holds_are_one_zero_byte() {
        let j = r#"{"metadata":{"uid":"u-1","resourceVersion":"42"}}"#;
        assert_eq!(value_fields(obj("u-1", "42", j)), [0, 0]);
        // Only the one that matches is left out.
        assert_eq!(
            value_fields(obj("u-2", "42", j)),
            [1, 3, b'u', b'-', b'2', 0]
        );
        assert_eq!(value_fields(obj("u-1", "43", j)), [0, 1, 2, b'4', b'3']);
        // An empty uid the JSON does not hold is stored as Some("").
        assert_eq!(
            value_fields(obj("", "", r#"{"metadata":{}}"#)),
            [1, 0, 1, 0]
        );
        // Escaped in the JSON, still the same string.
        let j = r#"{"metadata":{"uid":"u\u002d1","resourceVersion":"4\u0032"}}"#;
        assert_eq!(value_fields(obj("u-1", "42", j)), [0, 0]);
    }

    #[test]
    fn every_shape_round_trips() {
        let cases = [
            (
                "u-1",
                "42",
                r#"{"metadata":{"uid":"u-1","resourceVersion":"42"}}"#,
            ),
            ("", "", r#"{"metadata":{"uid":"","resourceVersion":""}}"#),
            ("", "", r#"{"metadata":{"uid":"x","resourceVersion":"y"}}"#),
            (
                "u",
                "1",
                r#"{"metadata":{"uid":"u","resourceVersion":"1"},"metadata":{}}"#,
            ),
            ("u", "1", "not json"),
            ("u", "1", ""),
        ];
        for (uid, rv, json) in cases {
            let o = obj(uid, rv, json);
            let b = encoded(o);
            let (back, used) = decode(2, &b).unwrap();
            assert_eq!(used, b.len());
            assert_eq!(
                (
                    back.uid.as_str(),
                    back.resource_version.as_str(),
                    &back.object[..]
                ),
                (uid, rv, json.as_bytes()),
                "{json}"
            );
        }
    }

    #[test]
    fn a_value_left_to_json_without_it_is_a_typed_error() {
        // Forged: both values left out, but the JSON has no resourceVersion.
        let j = r#"{"metadata":{"uid":"u-1"}}"#;
        let fields = (Some("ns"), "n", None::<&str>, None::<&str>, j.as_bytes());
        let mut b = Vec::new();
        encode_into(&fields, &mut b, "test").unwrap();
        let err = decode(2, &b).unwrap_err();
        assert!(
            matches!(
                &err.kind,
                ErrorKind::ElidedValueMissing { object, field: "resourceVersion" } if object == "ns/n"
            ),
            "{err}"
        );
        // Cluster-scoped: the object is named by its name alone.
        let fields = (None::<&str>, "c", None::<&str>, Some("1"), &b"[]"[..]);
        let mut b = Vec::new();
        encode_into(&fields, &mut b, "test").unwrap();
        let err = decode(2, &b).unwrap_err();
        assert!(
            matches!(&err.kind, ErrorKind::ElidedValueMissing { object, field: "uid" } if object == "c"),
            "{err}"
        );
    }
}
