//! What `rewind show` prints: object counts per type and per namespace.
//!
//! [`Summary::of`] counts a [`DesiredState`]. [`Summary::from_format`] gives
//! the same summary straight from a folded `rewind_format::State` without
//! building the desired state: on a plane of 100,000 objects, turning every
//! object into a `serde_json::Value` cost several times the fold itself,
//! and a summary needs only each object's name and namespace. Every
//! object is still parsed in full (without allocating), so a record that
//! the desired state would refuse is refused here too, with the same error;
//! anything unusual is handed to the desired state's own code.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use rewind_history::from_format::{
    FromFormatError, object_slices, par_map, parse_object, resource_types, type_of,
};
use rewind_history::state::{DesiredState, Filter, ResourceType, TypedKey, crd_defines};

/// Object counts of a state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Objects per type, sorted by type.
    pub types: BTreeMap<ResourceType, usize>,
    /// Objects per namespace (cluster-scoped objects are in none).
    pub namespaces: BTreeMap<String, usize>,
    /// All objects.
    pub objects: usize,
}

impl Summary {
    /// The summary of `state`.
    #[must_use]
    pub fn of(state: &DesiredState) -> Self {
        Self::of_keys(state.iter().map(|(k, _)| k))
    }

    fn of_keys<'k>(keys: impl Iterator<Item = &'k TypedKey>) -> Self {
        let mut s = Self::default();
        for k in keys {
            s.objects += 1;
            *s.types.entry(k.rtype.clone()).or_insert(0) += 1;
            if let Some(ns) = &k.namespace {
                *s.namespaces.entry(ns.clone()).or_insert(0) += 1;
            }
        }
        s
    }

    /// The summary of `desired_from_format(state)?.into_filtered(filter)`,
    /// and the same error when that fails, without building the state.
    pub fn from_format(
        state: &rewind_format::State,
        filter: &Filter,
    ) -> Result<Self, FromFormatError> {
        let types = resource_types(state);
        let objects = object_slices(state);
        let keyed = par_map(
            &objects,
            |(k, bytes)| -> Result<Entry<'_>, FromFormatError> {
                let rtype = type_of(&types, k)?;
                // A filtered summary keeps CRDs by what they define: their
                // objects are needed (there are few of them).
                if let Some((namespace, name)) = fast_key(rtype, bytes).filter(|_| !rtype.is_crd())
                {
                    return Ok(((rtype, namespace, name), None));
                }
                let obj = parse_object(k, bytes)?;
                let key = TypedKey::of(rtype, &obj)?;
                let defines = if rtype.is_crd() {
                    crd_defines(&obj)
                } else {
                    None
                };
                Ok(((rtype, key.namespace, key.name), defines))
            },
        );
        // The first error in key order, as when building the state.
        let entries = keyed.into_iter().collect::<Result<Vec<_>, _>>()?;
        // One entry per key, the last wins: the desired state's map, sorted
        // the same way (type, namespace, name), built in one pass.
        let keys: BTreeMap<EntryKey<'_>, Option<(String, String)>> = entries.into_iter().collect();
        let selects = |(t, ns, name): &EntryKey<'_>| {
            filter.is_empty() || filter.selects_parts(t, ns.as_deref(), name)
        };
        let defined: BTreeSet<(&str, &str)> = if filter.is_empty() {
            BTreeSet::new()
        } else {
            keys.keys()
                .filter(|k| selects(k))
                .map(|(t, _, _)| (t.group.as_str(), t.resource.as_str()))
                .collect()
        };
        let mut types: BTreeMap<&ResourceType, usize> = BTreeMap::new();
        let mut out = Self::default();
        for (k, defines) in &keys {
            let crd_kept = defines
                .as_ref()
                .is_some_and(|(g, r)| defined.contains(&(g.as_str(), r.as_str())));
            if !(selects(k) || crd_kept) {
                continue;
            }
            let (t, ns, _) = k;
            out.objects += 1;
            *types.entry(t).or_insert(0) += 1;
            if let Some(ns) = ns {
                *out.namespaces.entry(ns.clone()).or_insert(0) += 1;
            }
        }
        out.types = types.into_iter().map(|(t, n)| (t.clone(), n)).collect();
        Ok(out)
    }
}

/// A key as the desired state orders it: type, namespace, name.
type EntryKey<'t> = (&'t ResourceType, Option<String>, String);

/// A key, and for a CRD the `(group, plural)` it defines.
type Entry<'t> = (EntryKey<'t>, Option<(String, String)>);

/// The key of a recorded object when it is an ordinary one: valid JSON (by
/// the same rules as `Value`: depth, number range), a map whose `metadata`
/// is a map with a non-empty string `name` and a `namespace` that fits the
/// type's scope. `None` for anything else: the caller then takes the
/// `Value` path, which gives the exact key or error.
fn fast_key(rtype: &ResourceType, bytes: &[u8]) -> Option<(Option<String>, String)> {
    let head: Head = serde_json::from_slice(bytes).ok()?;
    let Some(Meta {
        name: Field::Str(name),
        namespace,
    }) = head.metadata?
    else {
        return None;
    };
    let namespace = match namespace {
        Field::Absent => None,
        Field::Str(ns) => Some(ns).filter(|n| !n.is_empty()),
        Field::Other => return None,
    };
    (!name.is_empty() && rtype.namespaced == namespace.is_some()).then_some((namespace, name))
}

/// A JSON value walked the way `Value` reads it (so the same inputs fail),
/// keeping nothing.
struct Skip;

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SkipVisitor).map(|()| Self)
    }
}

struct SkipVisitor;

impl<'de> Visitor<'de> for SkipVisitor {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_key::<IgnoredAny>()?.is_some() {
            map.next_value::<Skip>()?;
        }
        Ok(())
    }
}

/// The top level of an object: only `metadata` is kept (the last one, as
/// `Value` keeps the last of repeated keys). Anything but a map is an
/// error, so the caller falls back.
struct Head {
    metadata: Option<Option<Meta>>,
}

/// `metadata`, when it is a map.
struct Meta {
    name: Field,
    namespace: Field,
}

/// A string field: absent, a string, or something else.
enum Field {
    Absent,
    Str(String),
    Other,
}

/// Whether a key is the one looked for, without allocating.
struct IsKey(&'static str);

impl<'de> de::DeserializeSeed<'de> for IsKey {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for IsKey {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E>(self, v: &str) -> Result<bool, E> {
        Ok(v == self.0)
    }
}

/// Which of `metadata`'s keys this is.
enum MetaKey {
    Name,
    Namespace,
    Other,
}

impl<'de> Deserialize<'de> for MetaKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = MetaKey;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E>(self, v: &str) -> Result<MetaKey, E> {
                Ok(match v {
                    "name" => MetaKey::Name,
                    "namespace" => MetaKey::Namespace,
                    _ => MetaKey::Other,
                })
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> Deserialize<'de> for Head {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Head;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Head, A::Error> {
                let mut metadata = None;
                while let Some(is_meta) = map.next_key_seed(IsKey("metadata"))? {
                    if is_meta {
                        metadata = Some(map.next_value::<MaybeMeta>()?.0);
                    } else {
                        map.next_value::<Skip>()?;
                    }
                }
                Ok(Head { metadata })
            }
        }
        d.deserialize_any(V)
    }
}

/// `metadata`'s value: `Some` when it is a map.
struct MaybeMeta(Option<Meta>);

impl<'de> Deserialize<'de> for MaybeMeta {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MaybeMeta;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<MaybeMeta, A::Error> {
                let (mut name, mut namespace) = (Field::Absent, Field::Absent);
                while let Some(k) = map.next_key::<MetaKey>()? {
                    match k {
                        MetaKey::Name => name = map.next_value::<StrField>()?.0,
                        MetaKey::Namespace => namespace = map.next_value::<StrField>()?.0,
                        MetaKey::Other => map.next_value::<Skip>().map(|_| ())?,
                    }
                }
                Ok(MaybeMeta(Some(Meta { name, namespace })))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<MaybeMeta, A::Error> {
                SkipVisitor.visit_seq(seq).map(|()| MaybeMeta(None))
            }
            fn visit_bool<E>(self, _: bool) -> Result<MaybeMeta, E> {
                Ok(MaybeMeta(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<MaybeMeta, E> {
                Ok(MaybeMeta(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<MaybeMeta, E> {
                Ok(MaybeMeta(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<MaybeMeta, E> {
                Ok(MaybeMeta(None))
            }
            fn visit_str<E>(self, _: &str) -> Result<MaybeMeta, E> {
                Ok(MaybeMeta(None))
            }
            fn visit_unit<E>(self) -> Result<MaybeMeta, E> {
                Ok(MaybeMeta(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// A field's value: its text when a string, `Other` for any other value.
struct StrField(Field);

impl<'de> Deserialize<'de> for StrField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StrField;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E>(self, v: &str) -> Result<StrField, E> {
                Ok(StrField(Field::Str(v.to_owned())))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<StrField, A::Error> {
                SkipVisitor.visit_seq(seq).map(|()| StrField(Field::Other))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<StrField, A::Error> {
                SkipVisitor.visit_map(map).map(|()| StrField(Field::Other))
            }
            fn visit_bool<E>(self, _: bool) -> Result<StrField, E> {
                Ok(StrField(Field::Other))
            }
            fn visit_i64<E>(self, _: i64) -> Result<StrField, E> {
                Ok(StrField(Field::Other))
            }
            fn visit_u64<E>(self, _: u64) -> Result<StrField, E> {
                Ok(StrField(Field::Other))
            }
            fn visit_f64<E>(self, _: f64) -> Result<StrField, E> {
                Ok(StrField(Field::Other))
            }
            fn visit_unit<E>(self) -> Result<StrField, E> {
                Ok(StrField(Field::Other))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
#[path = "summary_tests.rs"]
mod tests;
