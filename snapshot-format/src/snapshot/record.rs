//! Object records inside snapshot data blocks, per format version.
//!
//! ```text
//! version 1: namespace Option<String> | name String | uid String
//!            | resource_version String | object Vec<u8>
//! version 2: namespace Option<String> | name Option<String> | uid Option<String>
//!            | resource_version Option<String> | object Vec<u8>
//! ```
//!
//! In version 2, `None` (one byte `0`, the same byte as version 1's empty
//! string) means "the value is the JSON's": `metadata.name`, `.namespace`,
//! `.uid` or `.resourceVersion` of `object` as [`crate::json_meta`] defines
//! it. The namespace of a cluster-scoped type has no value: its field is
//! always `None`, as in version 1. The writer leaves a value out only when
//! the JSON holds exactly that string, and stores it as `Some` otherwise (an
//! empty uid, a uid the JSON does not have or disagrees with, JSON that is
//! not valid), so every object round-trips. A reader fills `None` back from
//! the JSON; when the JSON gives no value the record is invalid
//! ([`ErrorKind::ElidedValueMissing`]).
//!
//! Version 3 keeps version 2's fields in the meta stream of a columnar
//! block (`columnar.rs`); for a columnar object the writer leaves a value
//! out only when its JSON string is unescaped, and the reader takes it from
//! the value found at its path instead of parsing the JSON.

use std::borrow::Cow;

use super::columnar::{DecodedRecord, MetaFields};
use super::{ObjectRef, SnapshotObject};
use crate::codec::{decode_from, encode_into};
use crate::error::{ErrorKind, FormatError, Result, invalid};
use crate::json_meta::{self, JsonMeta};

/// A version-2 record as decoded. Frozen for format version 2: do not add,
/// remove, reorder or retype fields.
#[derive(bincode::Decode)]
struct RecordV2 {
    namespace: Option<String>,
    name: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    object: Vec<u8>,
}

/// Appends one record of snapshot `version` (1 or 2) to `out`. The caller
/// has checked that `obj.namespace` matches the type's scope.
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
    let (ns, name, uid, rv) = elide(obj);
    encode_into(&(ns, name, uid, rv, obj.object), out, "snapshot object")
}

/// The record fields of version 2: each of namespace, name, uid and
/// resourceVersion, or `None` where the JSON holds exactly that value.
pub(crate) fn elide(obj: ObjectRef<'_>) -> MetaFields<'_> {
    elide_with(obj, false)
}

/// The record fields of version 3. A raw object's are version 2's. A
/// columnar object's reader takes a left-out value from the first string at
/// its path (`metadata.uid`, ...) as raw text, so the writer leaves a value
/// out only when the JSON holds it (the rule above) without escapes, where
/// the raw text is the value.
pub(crate) fn elide_v3(obj: ObjectRef<'_>, columnar: bool) -> MetaFields<'_> {
    elide_with(obj, columnar)
}

/// Each field, or `None` where the JSON holds that value (`unescaped_only`:
/// and its JSON string has no escape, so its raw text is the value).
fn elide_with(obj: ObjectRef<'_>, unescaped_only: bool) -> MetaFields<'_> {
    let meta = json_meta::extract(obj.object).unwrap_or_default();
    let keep = |value, in_json: &Option<Cow<'_, str>>| {
        if unescaped_only {
            keep_raw(value, in_json.as_ref())
        } else {
            keep(value, in_json.as_deref())
        }
    };
    (
        obj.namespace.and_then(|ns| keep(ns, &meta.namespace)),
        keep(obj.name, &meta.name),
        keep(obj.uid, &meta.uid),
        keep(obj.resource_version, &meta.resource_version),
    )
}

/// `value`, unless the JSON holds exactly that string unescaped.
fn keep_raw<'a>(value: &'a str, in_json: Option<&Cow<'_, str>>) -> Option<&'a str> {
    match in_json {
        Some(Cow::Borrowed(s)) if *s == value => None,
        _ => Some(value),
    }
}

/// Resolves a version-3 record: a raw object's left-out values come from
/// its JSON as in version 2, a columnar object's from the values the
/// decoder found at their paths.
pub(crate) fn resolve_v3(mut r: DecodedRecord, namespaced: bool) -> Result<SnapshotObject> {
    if let Some(found) = r.found {
        let text = |slot: Option<(usize, usize)>| {
            slot.and_then(|(s, e)| r.object.get(s..e))
                .and_then(|b| std::str::from_utf8(b).ok())
                .map(str::to_owned)
        };
        let [ns, name, uid, rv] = found;
        if namespaced && r.namespace.is_none() {
            r.namespace = text(ns);
        }
        if r.name.is_none() {
            r.name = text(name);
        }
        if r.uid.is_none() {
            r.uid = text(uid);
        }
        if r.resource_version.is_none() {
            r.resource_version = text(rv);
        }
    }
    let from_json = r.found.is_none();
    RecordV2 {
        namespace: r.namespace,
        name: r.name,
        uid: r.uid,
        resource_version: r.resource_version,
        object: r.object,
    }
    .resolve_with(namespaced, from_json)
}

/// `value`, unless the JSON holds exactly that string (then `None`: left out).
fn keep<'a>(value: &'a str, in_json: Option<&str>) -> Option<&'a str> {
    (in_json != Some(value)).then_some(value)
}

/// Decodes one record of snapshot `version` from the front of `bytes`, for a
/// type that is `namespaced` or not; returns the object (values left to the
/// JSON filled back in) and the bytes used.
pub(crate) fn decode(
    version: u16,
    namespaced: bool,
    bytes: &[u8],
) -> Result<(SnapshotObject, usize)> {
    if version == 1 {
        return decode_from(bytes, "snapshot object");
    }
    let (r, used): (RecordV2, usize) = decode_from(bytes, "snapshot object")?;
    Ok((r.resolve(namespaced)?, used))
}

impl RecordV2 {
    fn resolve(self, namespaced: bool) -> Result<SnapshotObject> {
        self.resolve_with(namespaced, true)
    }

    /// Fills values left out from the JSON (when `from_json`) and fails on
    /// any still missing.
    fn resolve_with(self, namespaced: bool, from_json: bool) -> Result<SnapshotObject> {
        if !namespaced && self.namespace.is_some() {
            return Err(invalid(
                "object block",
                "namespace does not match the type's scope",
            ));
        }
        let RecordV2 {
            namespace,
            name,
            uid,
            resource_version,
            object,
        } = self;
        let all_stored = (namespace.is_some() || !namespaced)
            && name.is_some()
            && uid.is_some()
            && resource_version.is_some();
        let meta = if all_stored || !from_json {
            JsonMeta::default()
        } else {
            json_meta::extract(&object).unwrap_or_default()
        };
        let namespace = match namespace {
            Some(ns) => Some(ns),
            None if namespaced => meta.namespace.map(Cow::into_owned),
            None => None,
        };
        let name = name.or_else(|| meta.name.map(Cow::into_owned));
        let uid = uid.or_else(|| meta.uid.map(Cow::into_owned));
        let rv = resource_version.or_else(|| meta.resource_version.map(Cow::into_owned));
        let fail = |field: &'static str, ns: Option<&str>, name: Option<&str>| {
            let name = name.unwrap_or("?");
            FormatError::new(ErrorKind::ElidedValueMissing {
                object: ns.map_or_else(|| name.to_owned(), |ns| format!("{ns}/{name}")),
                field,
            })
        };
        if namespaced && namespace.is_none() {
            return Err(fail("namespace", Some("?"), name.as_deref()));
        }
        let Some(name) = name else {
            return Err(fail("name", namespace.as_deref(), None));
        };
        let Some(uid) = uid else {
            return Err(fail("uid", namespace.as_deref(), Some(&name)));
        };
        let Some(resource_version) = rv else {
            return Err(fail("resourceVersion", namespace.as_deref(), Some(&name)));
        };
        Ok(SnapshotObject {
            namespace,
            name,
            uid,
            resource_version,
            object,
        })
    }
}

/// Encodes a version-2 record with the given fields as they are, for tests
/// that forge records the writer would not make.
#[cfg(test)]
pub(crate) fn encode_raw_for_tests(
    namespace: Option<&str>,
    name: Option<&str>,
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

    /// The bytes between the name and the object: the uid and
    /// resourceVersion fields, for JSON without name and namespace.
    fn value_fields(o: ObjectRef<'_>) -> Vec<u8> {
        let b = encoded(o);
        // namespace Some("ns") = 1,2,'n','s'; name Some("n") = 1,1,'n'.
        assert_eq!(&b[..7], &[1, 2, b'n', b's', 1, 1, b'n']);
        let json_len = o.object.len();
        // The JSON is short here, so its length is one varint byte.
        b[7..b.len() - json_len - 1].to_vec()
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
        // Name and namespace too: a typical object's record is four zeros.
        let j = r#"{"metadata":{"name":"n","namespace":"ns","uid":"u","resourceVersion":"1"}}"#;
        let b = encoded(obj("u", "1", j));
        assert_eq!(&b[..5], &[0, 0, 0, 0, u8::try_from(j.len()).unwrap()]);
        // A cluster-scoped object's namespace is None whatever the JSON says.
        let mut o = obj("u", "1", j);
        o.namespace = None;
        assert_eq!(
            &encoded(o)[..5],
            &[0, 0, 0, 0, u8::try_from(j.len()).unwrap()]
        );
    }

    #[test]
    fn every_shape_round_trips() {
        let cases = [
            (
                "u-1",
                "42",
                r#"{"metadata":{"name":"n","namespace":"ns","uid":"u-1","resourceVersion":"42"}}"#,
            ),
            ("", "", r#"{"metadata":{"uid":"","resourceVersion":""}}"#),
            ("", "", r#"{"metadata":{"uid":"x","resourceVersion":"y"}}"#),
            (
                "u",
                "1",
                r#"{"metadata":{"name":"other","namespace":"other","uid":"u","resourceVersion":"1"}}"#,
            ),
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
            let (back, used) = decode(2, true, &b).unwrap();
            assert_eq!(used, b.len());
            assert_eq!(
                (
                    back.namespace.as_deref(),
                    back.name.as_str(),
                    back.uid.as_str(),
                    back.resource_version.as_str(),
                    &back.object[..]
                ),
                (Some("ns"), "n", uid, rv, json.as_bytes()),
                "{json}"
            );
        }
    }

    fn forged_error(
        namespaced: bool,
        fields: (Option<&str>, Option<&str>, Option<&str>, Option<&str>),
        json: &str,
    ) -> FormatError {
        let mut b = Vec::new();
        encode_raw_for_tests(
            fields.0,
            fields.1,
            fields.2,
            fields.3,
            json.as_bytes(),
            &mut b,
        );
        decode(2, namespaced, &b).unwrap_err()
    }

    #[test]
    fn a_value_left_to_json_without_it_is_a_typed_error() {
        let j = r#"{"metadata":{"name":"n","uid":"u-1"}}"#;
        let cases = [
            (
                true,
                (Some("ns"), None, None, None),
                "ns/n",
                "resourceVersion",
            ),
            (true, (None, None, None, Some("1")), "?/n", "namespace"),
            (false, (None, None, None, None), "n", "resourceVersion"),
            (false, (None, Some("c"), None, Some("1")), "c", "uid"),
        ];
        for (namespaced, fields, object_is, field_is) in cases {
            let json = if field_is == "uid" {
                r#"{"metadata":{}}"#
            } else {
                j
            };
            let err = forged_error(namespaced, fields, json);
            assert!(
                matches!(&err.kind, ErrorKind::ElidedValueMissing { object, field } if object == object_is && *field == field_is),
                "{err}"
            );
        }
        let err = forged_error(true, (Some("ns"), None, Some("u"), Some("1")), "{}");
        assert!(
            matches!(&err.kind, ErrorKind::ElidedValueMissing { object, field: "name" } if object == "ns/?"),
            "{err}"
        );
        // A cluster-scoped type's record never carries a namespace.
        let err = forged_error(false, (Some("ns"), Some("n"), Some("u"), Some("1")), "{}");
        assert!(matches!(err.kind, ErrorKind::Invalid { .. }), "{err}");
    }
}
