//! Snapshots: the full state of a cluster at one point.
//!
//! A snapshot is a container (`docs/FORMAT.md`, section 3) of kind `Snapshot`. Its
//! header block holds a [`SnapshotHeader`] (the point it is consistent at and
//! every resource type with its list resourceVersion); its data blocks hold
//! [`SnapshotObject`]s of one type each, sorted by (namespace, name); its
//! index block holds a [`SnapshotIndex`] with the first and last key of every
//! block, so one type, one namespace or one object can be read without
//! decoding the rest.
//!
//! Snapshots exist in three versions that differ only in the object records
//! (see `record.rs`): version 2 leaves out a namespace, name, uid or
//! resourceVersion that the object's JSON already holds, and readers fill it
//! back in; version 3 stores each data block's objects column by column
//! (`columnar.rs`). The [`SnapshotObject`]s a reader returns are the same for
//! all three.
mod columnar;
mod reader;
mod record;
mod writer;

pub use reader::{SnapshotIter, SnapshotReader};
pub use writer::SnapshotWriter;

use crate::error::{Result, invalid};
use crate::event::ResourceType;

/// A resource type in a snapshot and the list it was taken from. Frozen for v1.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct TypeEntry {
    /// The resource type.
    pub rtype: ResourceType,
    /// resourceVersion of the list (or the last watch event) the objects are
    /// consistent with; empty when unknown.
    pub list_rv: String,
}

/// Snapshot metadata (header block). Frozen for format version 1.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct SnapshotHeader {
    /// Id of the source cluster.
    pub cluster_id: String,
    /// The snapshot holds the state after applying every event with `seq <= seq`.
    pub seq: u64,
    /// Observation time of that point, Unix milliseconds.
    pub time_ms: i64,
    /// Every resource type, sorted by (group, resource), each at most once.
    /// Sections of data blocks follow this order.
    pub types: Vec<TypeEntry>,
    /// Position in `types` of `customresourcedefinitions.apiextensions.k8s.io`:
    /// the CRDs present at this point. `None` when the type was not recorded.
    pub crd_type: Option<u32>,
}

/// One object in a snapshot: a version-1 record as stored, and what readers
/// return for every version. Frozen for format version 1 (version 2's record
/// is described in `docs/FORMAT.md`, section 8.2).
#[derive(Debug, Clone, PartialEq, Eq, Hash, bincode::Encode, bincode::Decode)]
pub struct SnapshotObject {
    /// Namespace; `None` exactly when the type is cluster-scoped.
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// uid.
    pub uid: String,
    /// resourceVersion.
    pub resource_version: String,
    /// The object as JSON bytes, as the API returned them.
    pub object: Vec<u8>,
}

impl SnapshotObject {
    /// Sort key within a type.
    #[must_use]
    pub fn key(&self) -> (Option<&str>, &str) {
        (self.namespace.as_deref(), self.name.as_str())
    }
}

/// A borrowed [`SnapshotObject`], for writing without copying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectRef<'a> {
    /// Namespace; `None` exactly when the type is cluster-scoped.
    pub namespace: Option<&'a str>,
    /// Name.
    pub name: &'a str,
    /// uid.
    pub uid: &'a str,
    /// resourceVersion.
    pub resource_version: &'a str,
    /// JSON bytes.
    pub object: &'a [u8],
}

/// Index entry for one data block. Frozen for format version 1.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct SnapshotBlockInfo {
    /// Offset of the block from the start of the file.
    pub offset: u64,
    /// Length of the block including framing.
    pub len: u64,
    /// Position of the block's type in [`SnapshotHeader::types`].
    pub type_index: u32,
    /// Number of objects.
    pub count: u32,
    /// Namespace of the first object.
    pub first_namespace: Option<String>,
    /// Name of the first object.
    pub first_name: String,
    /// Namespace of the last object.
    pub last_namespace: Option<String>,
    /// Name of the last object.
    pub last_name: String,
}

impl SnapshotBlockInfo {
    pub(crate) fn first(&self) -> (Option<&str>, &str) {
        (self.first_namespace.as_deref(), self.first_name.as_str())
    }
    pub(crate) fn last(&self) -> (Option<&str>, &str) {
        (self.last_namespace.as_deref(), self.last_name.as_str())
    }
}

/// The snapshot index (index block). Frozen for format version 1.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct SnapshotIndex {
    /// One entry per data block, in file order (by type, then key).
    pub blocks: Vec<SnapshotBlockInfo>,
    /// Number of objects of each type, parallel to [`SnapshotHeader::types`].
    pub object_counts: Vec<u64>,
}

#[cfg(test)]
mod tests;

/// Entry points for the fuzz targets (`fuzz/`); not part of the API.
#[doc(hidden)]
pub mod fuzzing {
    use super::{ObjectRef, columnar};

    /// Decodes `data` as a columnar block payload: the first byte is the
    /// object count, the rest the payload. Never panics on any input. When
    /// the payload decodes, writing the objects again and decoding that must
    /// give the same objects; `Err` says how it did not (a fuzz finding).
    pub fn columnar_block(data: &[u8]) -> Result<(), String> {
        let Some((&count, payload)) = data.split_first() else {
            return Ok(());
        };
        let Ok(first) = columnar::decode_block(payload, u32::from(count), 1 << 24) else {
            return Ok(());
        };
        let mut b = columnar::BlockBuilder::default();
        for r in &first {
            let o = ObjectRef {
                namespace: r.namespace.as_deref(),
                name: r.name.as_deref().unwrap_or(""),
                uid: r.uid.as_deref().unwrap_or(""),
                resource_version: r.resource_version.as_deref().unwrap_or(""),
                object: &r.object,
            };
            b.push(o)
                .map_err(|e| format!("re-encoding a decoded block: {e}"))?;
        }
        let mut again = Vec::new();
        b.finish(&mut again)
            .map_err(|e| format!("finishing a block: {e}"))?;
        let second = columnar::decode_block(&again, u32::from(count), 1 << 24)
            .map_err(|e| format!("a re-encoded block does not decode: {e}"))?;
        let objects =
            |v: &[columnar::DecodedRecord]| v.iter().map(|r| r.object.clone()).collect::<Vec<_>>();
        if objects(&first) == objects(&second) {
            Ok(())
        } else {
            Err("a decoded block does not survive a round trip".into())
        }
    }
}

pub(crate) fn type_order(a: &ResourceType) -> (&str, &str) {
    (a.group.as_str(), a.resource.as_str())
}

/// Checks the header's invariants (type order, uniqueness, CRD pointer).
pub(crate) fn check_header(h: &SnapshotHeader) -> Result<()> {
    for pair in h.types.windows(2) {
        if let [a, b] = pair
            && type_order(&a.rtype) >= type_order(&b.rtype)
        {
            return Err(invalid(
                "snapshot header",
                format!(
                    "types not strictly sorted by (group, resource): {} then {}",
                    a.rtype.group_resource(),
                    b.rtype.group_resource()
                ),
            ));
        }
    }
    let crd = h.types.iter().position(|t| t.rtype.is_crd());
    if crd.map(|i| i as u64) != h.crd_type.map(u64::from) {
        return Err(invalid(
            "snapshot header",
            "crd_type does not point at the CRD type",
        ));
    }
    Ok(())
}
