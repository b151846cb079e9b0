//! Objects as raw JSON pieces, so that no object can blind a watcher.
//!
//! kube's `DynamicObject` parses every object into a `serde_json::Value`,
//! and serde_json stops at 128 levels of nesting. A schemaless custom
//! resource may nest far deeper (the API server accepts up to 10,000
//! levels), and a single such object made the whole LIST fail: the type
//! stayed `Failing` and none of its objects were recorded.
//!
//! Used by rewindd's watchers and by the restore tool's reads and writes of
//! live objects. [`RawObject`] keeps every top-level field as a [`RawValue`] (the exact
//! text the API sent, in its order) and parses from `metadata` only what the
//! recorder and kube's watcher read (`LiteMeta`). serde_json skips a raw
//! value, or a field it ignores, with an explicit stack rather than by
//! recursion (`Deserializer::ignore_value`), so neither has a depth limit;
//! `managedFields[].fieldsV1` mirrors the object's shape and is skipped the
//! same way. A LIST page (`ObjectList<RawObject>`: kube reads `items`
//! directly) and a watch event (`{"type":..,"object":..}`, tag first, so
//! serde reaches `object` without buffering it) are then at most three
//! levels deep for the parser, whatever the objects hold.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{ApiResource, ObjectMeta};
use kube::core::DynamicResourceScope;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// The parts of `metadata` the recorder and the restore tool read; every
/// other field (above all `managedFields`) is skipped without being parsed.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LiteMeta {
    name: Option<String>,
    namespace: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    owner_references: Option<Vec<OwnerReference>>,
}

/// An object of any type, as the API sent it.
#[derive(Clone)]
pub struct RawObject {
    /// `apiVersion` as sent (watch events carry it, LIST items do not).
    pub api_version: Option<String>,
    /// `kind` as sent.
    pub kind: Option<String>,
    /// name, namespace, uid, resourceVersion, labels, ownerReferences: what
    /// kube's watcher (resourceVersion), selection and the restore tool's
    /// UID rewiring read. Built from `LiteMeta`.
    meta: ObjectMeta,
    /// `metadata` exactly as sent; `None` if the object had none.
    metadata: Option<Box<RawValue>>,
    /// Every other top-level field, in the order sent.
    rest: Vec<(String, Box<RawValue>)>,
}

impl fmt::Debug for RawObject {
    // Objects reach 1.5 MB: say which object it is, not what it holds.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawObject")
            .field("kind", &self.kind)
            .field("namespace", &self.meta.namespace)
            .field("name", &self.meta.name)
            .field("resource_version", &self.meta.resource_version)
            .field("fields", &self.rest.len())
            .finish_non_exhaustive()
    }
}

impl RawObject {
    /// The object's metadata as far as it was parsed: name, namespace,
    /// uid, resourceVersion, labels, ownerReferences.
    #[must_use]
    pub fn metadata(&self) -> &ObjectMeta {
        &self.meta
    }

    /// The raw text of a top-level field (`metadata` included; `apiVersion`
    /// and `kind` are strings, see the fields).
    #[must_use]
    pub fn field(&self, name: &str) -> Option<&RawValue> {
        if name == "metadata" {
            return self.metadata.as_deref();
        }
        self.rest
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_ref())
    }

    /// The object's JSON with `apiVersion` and `kind` set (LIST items lack
    /// them), written from the pieces as sent: no field is re-parsed.
    pub fn to_json(&self, api_version: &str, kind: &str) -> Result<Vec<u8>, serde_json::Error> {
        self.write(Some(api_version), Some(kind), true)
    }

    /// The object's JSON exactly as sent (no `apiVersion`/`kind` for a
    /// LIST item; a missing `metadata` stays missing).
    pub fn to_json_as_sent(&self) -> Result<Vec<u8>, serde_json::Error> {
        self.write(self.api_version.as_deref(), self.kind.as_deref(), false)
    }

    /// The object as sent, as a `Value`, whatever its depth (up to
    /// [`crate::deep::MAX_DEPTH`]).
    pub fn to_value(&self) -> Result<serde_json::Value, crate::deep::Error> {
        crate::deep::parse(&self.to_json_as_sent()?)
    }

    fn write(
        &self,
        api_version: Option<&str>,
        kind: Option<&str>,
        fill_metadata: bool,
    ) -> Result<Vec<u8>, serde_json::Error> {
        let len = self.metadata.as_ref().map_or(2, |m| m.get().len())
            + self
                .rest
                .iter()
                .map(|(k, v)| k.len() + v.get().len() + 4)
                .sum::<usize>()
            + api_version.map_or(0, str::len)
            + kind.map_or(0, str::len)
            + 40;
        let mut out = Vec::with_capacity(len);
        out.push(b'{');
        let sep = |out: &mut Vec<u8>| {
            if out.len() > 1 {
                out.push(b',');
            }
        };
        if let Some(v) = api_version {
            out.extend_from_slice(b"\"apiVersion\":");
            serde_json::to_writer(&mut out, v)?;
        }
        if let Some(v) = kind {
            sep(&mut out);
            out.extend_from_slice(b"\"kind\":");
            serde_json::to_writer(&mut out, v)?;
        }
        // `DynamicObject` wrote `{}` for an object without metadata; the
        // as-sent form keeps it absent.
        let metadata = match (&self.metadata, fill_metadata) {
            (Some(m), _) => Some(m.get()),
            (None, true) => Some("{}"),
            (None, false) => None,
        };
        if let Some(m) = metadata {
            sep(&mut out);
            out.extend_from_slice(b"\"metadata\":");
            out.extend_from_slice(m.as_bytes());
        }
        for (k, v) in &self.rest {
            sep(&mut out);
            serde_json::to_writer(&mut out, k)?;
            out.push(b':');
            out.extend_from_slice(v.get().as_bytes());
        }
        out.push(b'}');
        Ok(out)
    }
}

impl<'de> Deserialize<'de> for RawObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(RawObjectVisitor)
    }
}

struct RawObjectVisitor;

impl<'de> Visitor<'de> for RawObjectVisitor {
    type Value = RawObject;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Kubernetes object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawObject, A::Error> {
        let mut api_version = None;
        let mut kind = None;
        let mut metadata: Option<Box<RawValue>> = None;
        let mut rest = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "apiVersion" => api_version = map.next_value::<Option<String>>()?,
                "kind" => kind = map.next_value::<Option<String>>()?,
                "metadata" => metadata = Some(map.next_value()?),
                _ => rest.push((key, map.next_value()?)),
            }
        }
        let lite = match &metadata {
            Some(m) => serde_json::from_str::<Option<LiteMeta>>(m.get())
                .map_err(|e| de::Error::custom(format_args!("metadata: {e}")))?
                .unwrap_or_default(),
            None => LiteMeta::default(),
        };
        let meta = ObjectMeta {
            name: lite.name,
            namespace: lite.namespace,
            uid: lite.uid,
            resource_version: lite.resource_version,
            labels: lite.labels,
            owner_references: lite.owner_references,
            ..ObjectMeta::default()
        };
        Ok(RawObject {
            api_version,
            kind,
            meta,
            metadata,
            rest,
        })
    }
}

impl kube::Resource for RawObject {
    type DynamicType = ApiResource;
    type Scope = DynamicResourceScope;

    fn group(dt: &ApiResource) -> Cow<'_, str> {
        dt.group.as_str().into()
    }

    fn version(dt: &ApiResource) -> Cow<'_, str> {
        dt.version.as_str().into()
    }

    fn kind(dt: &ApiResource) -> Cow<'_, str> {
        dt.kind.as_str().into()
    }

    fn api_version(dt: &ApiResource) -> Cow<'_, str> {
        dt.api_version.as_str().into()
    }

    fn plural(dt: &ApiResource) -> Cow<'_, str> {
        dt.plural.as_str().into()
    }

    fn meta(&self) -> &ObjectMeta {
        &self.meta
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.meta
    }
}

#[cfg(test)]
#[path = "raw_tests.rs"]
mod tests;
