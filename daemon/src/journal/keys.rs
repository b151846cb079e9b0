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

/// Identity of one object in the current state.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    /// [`type_key`] of the object's type.
    pub type_key: String,
    /// Namespace, empty for cluster-scoped objects.
    pub namespace: String,
    /// Object name.
    pub name: String,
}

impl ObjectKey {
    /// The key in the `state` tree.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        encode_key(&self.type_key, &self.namespace, &self.name)
    }

    /// Parses a `state` key; `None` if it is not one this module wrote.
    #[must_use]
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut parts = text.splitn(3, '\0');
        let type_key = parts.next()?.to_owned();
        let namespace = parts.next()?.to_owned();
        let name = parts.next()?.to_owned();
        Some(Self {
            type_key,
            namespace,
            name,
        })
    }
}

/// The `state` key of an object, from its parts: what [`ObjectKey::encode`]
/// returns, without building the [`ObjectKey`] (three strings) first.
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

    #[test]
    fn object_key_round_trips_and_sorts_by_type() {
        let a = ObjectKey {
            type_key: "secrets".into(),
            namespace: "ns".into(),
            name: "a".into(),
        };
        assert_eq!(ObjectKey::decode(&a.encode()), Some(a.clone()));
        assert!(a.encode().starts_with(&type_prefix("secrets")));
        // A type whose name extends another's must not share its prefix.
        assert!(!a.encode().starts_with(&type_prefix("secret")));
    }

    #[test]
    fn seq_keys_sort_numerically() {
        assert!(seq_key(255) < seq_key(256));
        assert_eq!(decode_seq(&seq_key(42)), Some(42));
        assert_eq!(decode_seq(b"short"), None);
    }
}
