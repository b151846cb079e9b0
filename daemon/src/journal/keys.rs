//! Key layout of the journal's sled trees.
//!
//! - `log`: 8-byte big-endian sequence number of a block's first record, so
//!   sled's byte order is seq order.
//! - `state`: `type_key 0x00 namespace 0x00 name`. Kubernetes names and
//!   namespaces never contain NUL, so the separator is unambiguous and all
//!   objects of one type share the prefix `type_key 0x00`.
//! - `meta`: UTF-8 strings, see [`super::meta`].

use rewind_format::ResourceType;

/// Stable name of a resource type in the journal: `resource.group`, or
/// `resource` for the core group. Version-free on purpose: when the served
/// version of a group changes, its objects keep their keys.
#[must_use]
pub fn type_key(rtype: &ResourceType) -> String {
    rtype.group_resource()
}

/// Identity of one object in the current state: the format crate's key
/// (group, resource, namespace, name), version-free like [`type_key`].
pub use rewind_format::ObjectKey;

/// The key of the object `name` in `namespace` of type `rtype`; an empty
/// namespace is none, as the `state` key cannot tell them apart.
#[must_use]
pub fn object_key(rtype: &ResourceType, namespace: Option<&str>, name: &str) -> ObjectKey {
    ObjectKey {
        group: rtype.group.clone(),
        resource: rtype.resource.clone(),
        namespace: namespace.filter(|ns| !ns.is_empty()).map(str::to_owned),
        name: name.to_owned(),
    }
}

/// The `state` key of `key`: `type_key 0x00 namespace 0x00 name`, with an
/// empty namespace for cluster-scoped objects.
#[must_use]
pub fn encode_object_key(key: &ObjectKey) -> Vec<u8> {
    let namespace = key.namespace.as_deref().unwrap_or_default();
    let mut out = Vec::with_capacity(
        key.resource.len() + 1 + key.group.len() + namespace.len() + key.name.len() + 2,
    );
    out.extend_from_slice(key.resource.as_bytes());
    if !key.group.is_empty() {
        out.push(b'.');
        out.extend_from_slice(key.group.as_bytes());
    }
    out.push(0);
    out.extend_from_slice(namespace.as_bytes());
    out.push(0);
    out.extend_from_slice(key.name.as_bytes());
    out
}

/// Parses a `state` key; `None` if it is not one this module wrote. The
/// type key splits at its first `.`: Kubernetes plural resource names are
/// DNS labels, without dots, so the split gives back the type it was
/// written from.
#[must_use]
pub fn decode_object_key(bytes: &[u8]) -> Option<ObjectKey> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut parts = text.splitn(3, '\0');
    let type_key = parts.next()?;
    let (resource, group) = type_key.split_once('.').unwrap_or((type_key, ""));
    let namespace = parts.next()?;
    let name = parts.next()?;
    Some(ObjectKey {
        group: group.to_owned(),
        resource: resource.to_owned(),
        namespace: (!namespace.is_empty()).then(|| namespace.to_owned()),
        name: name.to_owned(),
    })
}

/// The `state` key of an object, from its parts: what [`encode_object_key`]
/// returns, without building the [`ObjectKey`] first.
#[must_use]
pub fn encode_key(type_key: &str, namespace: &str, name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(type_key.len() + namespace.len() + name.len() + 2);
    out.extend_from_slice(type_key.as_bytes());
    out.push(0);
    out.extend_from_slice(namespace.as_bytes());
    out.push(0);
    out.extend_from_slice(name.as_bytes());
    out
}

/// Prefix of all `state` keys of one type.
#[must_use]
pub fn type_prefix(type_key: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(type_key.len() + 1);
    out.extend_from_slice(type_key.as_bytes());
    out.push(0);
    out
}

/// `log` key of a block whose first record has `seq`.
#[must_use]
pub fn seq_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

/// Parses a `log` key.
#[must_use]
pub fn decode_seq(bytes: &[u8]) -> Option<u64> {
    let arr: [u8; 8] = bytes.try_into().ok()?;
    Some(u64::from_be_bytes(arr))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(group: &str, resource: &str, namespace: Option<&str>, name: &str) -> ObjectKey {
        ObjectKey {
            group: group.into(),
            resource: resource.into(),
            namespace: namespace.map(Into::into),
            name: name.into(),
        }
    }

    #[test]
    fn object_key_round_trips_and_sorts_by_type() {
        let a = key("", "secrets", Some("ns"), "a");
        assert_eq!(decode_object_key(&encode_object_key(&a)), Some(a.clone()));
        assert!(encode_object_key(&a).starts_with(&type_prefix("secrets")));
        // A type whose name extends another's must not share its prefix.
        assert!(!encode_object_key(&a).starts_with(&type_prefix("secret")));
        for k in [
            key("apps", "deployments", Some("ns"), "d"),
            key("fleet.cattle.io", "clusters", Some("fleet-default"), "c"),
            key("", "namespaces", None, "ns"),
            key("management.cattle.io", "users", None, "u-1"),
        ] {
            assert_eq!(decode_object_key(&encode_object_key(&k)), Some(k.clone()));
        }
    }

    #[test]
    fn object_key_bytes_are_type_key_namespace_name() {
        let d = key("apps", "deployments", Some("ns"), "d");
        assert_eq!(encode_object_key(&d), b"deployments.apps\0ns\0d");
        let n = key("", "namespaces", None, "ns");
        assert_eq!(encode_object_key(&n), b"namespaces\0\0ns");
        let rtype = ResourceType {
            group: "apps".into(),
            version: "v1".into(),
            resource: "deployments".into(),
            kind: "Deployment".into(),
            namespaced: true,
        };
        assert_eq!(
            encode_object_key(&object_key(&rtype, Some("ns"), "d")),
            encode_key(&type_key(&rtype), "ns", "d")
        );
        assert_eq!(object_key(&rtype, Some(""), "d").namespace, None);
    }

    #[test]
    fn seq_keys_sort_numerically() {
        assert!(seq_key(255) < seq_key(256));
        assert_eq!(decode_seq(&seq_key(42)), Some(42));
        assert_eq!(decode_seq(b"short"), None);
    }
}
