//! Object names and catalog entries: the store's layout (see `docs/STORE.md`).
//!
//! ```text
//! segments/<first:020>-<last:020>-<sha256>.seg     data: one sealed segment file
//! snapshots/<seq:020>-<sha256>.snap                data: one snapshot file
//! catalog/segments/<first:020>-<last:020>-<sha256>.json
//! catalog/snapshots/<seq:020>-<sha256>.json
//! lineages/<id>.json                               one per lineage (see [`super::lineage`])
//! ```
//!
//! These keys are relative to one cluster's place: `clusters/<cluster-key>/`
//! below the store's root, or the root itself for the flat layout of a
//! single-cluster store ([`super::fleet`]).
//!
//! A catalog entry is written only after its data object is complete, and
//! deleted before it; readers list the catalog only. A data object without a
//! catalog entry is either an upload in flight or garbage.
//!
//! **Catalog entries are a contract like the file formats: fields may be
//! added with `#[serde(default)]`, never removed or renamed; an entry whose
//! `version` is unknown is rejected.**

use serde::{Deserialize, Serialize};

use super::error::{Result, StoreError};
use crate::select::{self, ResourceSelector, ResourceSet};

/// Catalog entry version this code writes and reads.
pub const CATALOG_VERSION: u32 = 1;

/// Prefix of segment data objects.
pub const SEGMENTS: &str = "segments/";
/// Prefix of snapshot data objects.
pub const SNAPSHOTS: &str = "snapshots/";
/// Prefix of segment catalog entries.
pub const CATALOG_SEGMENTS: &str = "catalog/segments/";
/// Prefix of snapshot catalog entries.
pub const CATALOG_SNAPSHOTS: &str = "catalog/snapshots/";

/// The resource set in force when a file was recorded: built-in presets by
/// name plus selectors, as rewindd's configuration names them. A restore's
/// prune deletes only live objects this set selects.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedResourceSet {
    /// Built-in presets (`rancher`, `everything`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub presets: Vec<String>,
    /// Selectors, in Rancher Backups' ResourceSet shape.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub selectors: Vec<ResourceSelector>,
}

impl RecordedResourceSet {
    /// The set, compiled: the union of its presets and selectors.
    pub fn compile(&self) -> std::result::Result<ResourceSet, select::Error> {
        let mut set = ResourceSet::default();
        for p in &self.presets {
            set.extend(select::preset::preset(p)?);
        }
        set.extend(ResourceSet::compile(
            &self.selectors,
            "recorded resource set",
        )?);
        Ok(set)
    }
}

/// What the writer knows about a snapshot before storing it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    /// Sequence number the snapshot is consistent at.
    pub seq: u64,
    /// Time of that sequence number, Unix milliseconds.
    pub time_ms: i64,
    /// Objects in the snapshot.
    pub objects: u64,
    /// Label given to an on-demand snapshot; labelled snapshots are never
    /// removed by retention.
    pub label: Option<String>,
    /// Whether the file is an age envelope.
    pub encrypted: bool,
    /// The resource set in force at `seq`; goes into the catalog entry.
    #[serde(default)]
    pub resource_set: Option<RecordedResourceSet>,
}

/// A snapshot as listed in the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotEntry {
    /// Catalog entry version, [`CATALOG_VERSION`].
    pub version: u32,
    /// `<seq:020>-<sha256>`: unique, sorts by seq.
    pub id: String,
    /// Sequence number the snapshot is consistent at.
    pub seq: u64,
    /// Time of that sequence number, Unix milliseconds.
    pub time_ms: i64,
    /// Objects in the snapshot.
    pub objects: u64,
    /// Size of the data object in bytes.
    pub size: u64,
    /// SHA-256 of the data object, lowercase hex.
    pub sha256: String,
    /// Label of an on-demand snapshot.
    pub label: Option<String>,
    /// Whether the data object is an age envelope.
    pub encrypted: bool,
    /// When the entry was written, Unix milliseconds.
    pub stored_at_ms: i64,
    /// The resource set in force when the snapshot was taken; `None` in
    /// entries written without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_set: Option<RecordedResourceSet>,
    /// The lineage the snapshot belongs to; `None` in entries written
    /// before lineages (read as the one legacy lineage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lineage: Option<String>,
}

impl SnapshotEntry {
    /// Key of the data object.
    #[must_use]
    pub fn data_key(&self) -> String {
        format!("{SNAPSHOTS}{}.snap", self.id)
    }

    /// Key of the catalog entry.
    #[must_use]
    pub fn catalog_key(&self) -> String {
        format!("{CATALOG_SNAPSHOTS}{}.json", self.id)
    }

    /// Short id for people: the seq and the first 8 hex digits of the hash.
    #[must_use]
    pub fn short_id(&self) -> String {
        format!(
            "{}-{}",
            self.seq,
            self.sha256.get(..8).unwrap_or(&self.sha256)
        )
    }

    /// Whether `query` names this snapshot: its full id, its short id, or a
    /// prefix of its hash of at least 6 digits.
    #[must_use]
    pub fn matches(&self, query: &str) -> bool {
        query == self.id
            || query == self.short_id()
            || (query.len() >= 6 && self.sha256.starts_with(query))
    }
}

/// What the writer knows about a segment before storing it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentMeta {
    /// First sequence number in the segment.
    pub first_seq: u64,
    /// Last sequence number in the segment.
    pub last_seq: u64,
    /// Observation time of the first event, Unix milliseconds.
    pub first_time_ms: i64,
    /// Observation time of the last event, Unix milliseconds.
    pub last_time_ms: i64,
    /// Events in the segment.
    pub events: u64,
    /// Whether the file is an age envelope.
    pub encrypted: bool,
    /// The resource set its events were recorded under; goes into the
    /// catalog entry.
    #[serde(default)]
    pub resource_set: Option<RecordedResourceSet>,
}

/// A segment as listed in the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentEntry {
    /// Catalog entry version, [`CATALOG_VERSION`].
    pub version: u32,
    /// `<first:020>-<last:020>-<sha256>`.
    pub id: String,
    /// First sequence number.
    pub first_seq: u64,
    /// Last sequence number.
    pub last_seq: u64,
    /// Observation time of the first event, Unix milliseconds.
    pub first_time_ms: i64,
    /// Observation time of the last event, Unix milliseconds.
    pub last_time_ms: i64,
    /// Events in the segment.
    pub events: u64,
    /// Size of the data object in bytes.
    pub size: u64,
    /// SHA-256 of the data object, lowercase hex.
    pub sha256: String,
    /// Whether the data object is an age envelope.
    pub encrypted: bool,
    /// When the entry was written, Unix milliseconds.
    pub stored_at_ms: i64,
    /// The resource set in force when the segment was recorded; `None` in
    /// entries written without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_set: Option<RecordedResourceSet>,
    /// The lineage the segment belongs to; `None` in entries written
    /// before lineages (read as the one legacy lineage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lineage: Option<String>,
    /// SHA-256 of the previous segment of the same lineage (the one ending
    /// at `first_seq - 1`); `None` for the first segment after a lineage's
    /// start, which only a snapshot of the same lineage can precede.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev_sha256: Option<String>,
}

impl SegmentEntry {
    /// Key of the data object.
    #[must_use]
    pub fn data_key(&self) -> String {
        format!("{SEGMENTS}{}.seg", self.id)
    }

    /// Key of the catalog entry.
    #[must_use]
    pub fn catalog_key(&self) -> String {
        format!("{CATALOG_SEGMENTS}{}.json", self.id)
    }
}

/// Where a file being stored sits in its lineage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chain {
    /// The lineage's id; `None` writes an entry without one.
    pub lineage: Option<String>,
    /// For a segment, the SHA-256 of the previous segment of the lineage.
    pub prev_sha256: Option<String>,
}

/// Id of a snapshot from its seq and hash.
#[must_use]
pub fn snapshot_id(seq: u64, sha256: &str) -> String {
    format!("{seq:020}-{sha256}")
}

/// Id of a segment from its seq range and hash.
#[must_use]
pub fn segment_id(first: u64, last: u64, sha256: &str) -> String {
    format!("{first:020}-{last:020}-{sha256}")
}

/// Parses a snapshot catalog entry and checks it against its key.
pub fn parse_snapshot_entry(key: &str, bytes: &[u8]) -> Result<SnapshotEntry> {
    let entry: SnapshotEntry = parse_json(key, bytes)?;
    check_version(key, entry.version)?;
    if entry.catalog_key() != key || entry.id != snapshot_id(entry.seq, &entry.sha256) {
        return Err(catalog(key, "id, seq and hash do not match the key"));
    }
    Ok(entry)
}

/// Parses a segment catalog entry and checks it against its key.
pub fn parse_segment_entry(key: &str, bytes: &[u8]) -> Result<SegmentEntry> {
    let entry: SegmentEntry = parse_json(key, bytes)?;
    check_version(key, entry.version)?;
    if entry.catalog_key() != key
        || entry.id != segment_id(entry.first_seq, entry.last_seq, &entry.sha256)
    {
        return Err(catalog(key, "id, seq range and hash do not match the key"));
    }
    if entry.first_seq > entry.last_seq {
        return Err(catalog(key, "first_seq is after last_seq"));
    }
    Ok(entry)
}

/// The data key a catalog key stands for, if it is one.
#[must_use]
pub fn data_key_of_catalog(key: &str) -> Option<String> {
    if let Some(stem) = key
        .strip_prefix(CATALOG_SNAPSHOTS)
        .and_then(|s| s.strip_suffix(".json"))
    {
        return Some(format!("{SNAPSHOTS}{stem}.snap"));
    }
    key.strip_prefix(CATALOG_SEGMENTS)
        .and_then(|s| s.strip_suffix(".json"))
        .map(|stem| format!("{SEGMENTS}{stem}.seg"))
}

/// Largest catalog entry a reader accepts. Entries are a few hundred bytes
/// (the label is the only free text); anything near this is not ours.
pub const MAX_CATALOG_ENTRY_BYTES: u64 = 64 << 10;

fn parse_json<T: serde::de::DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T> {
    if u64::try_from(bytes.len()).map_or(true, |n| n > MAX_CATALOG_ENTRY_BYTES) {
        return Err(catalog(
            key,
            format!(
                "{} bytes, more than a catalog entry may hold ({MAX_CATALOG_ENTRY_BYTES})",
                bytes.len()
            ),
        ));
    }
    serde_json::from_slice(bytes).map_err(|e| catalog(key, e.to_string()))
}

fn check_version(key: &str, version: u32) -> Result<()> {
    if version == CATALOG_VERSION {
        Ok(())
    } else {
        Err(catalog(
            key,
            format!("unsupported catalog version {version} (this build reads {CATALOG_VERSION})"),
        ))
    }
}

fn catalog(key: &str, reason: impl Into<String>) -> StoreError {
    StoreError::Catalog {
        key: key.to_owned(),
        reason: reason.into(),
    }
}

/// Lowercase hex SHA-256 of `bytes`.
#[must_use]
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    use std::fmt::Write;
    let digest = sha2::Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for b in digest.iter() {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_by_seq_and_map_back() {
        let a = snapshot_id(9, "ab");
        let b = snapshot_id(10, "aa");
        assert!(a < b);
        assert_eq!(
            data_key_of_catalog(&format!("{CATALOG_SNAPSHOTS}{b}.json")),
            Some(format!("{SNAPSHOTS}{b}.snap"))
        );
        assert_eq!(data_key_of_catalog("catalog/other"), None);
    }

    #[test]
    fn resource_set_is_optional_and_round_trips() {
        // An entry written before the field existed.
        let old = br#"{"version":1,"id":"00000000000000000005-00000000000000000005-00ff","first_seq":5,"last_seq":5,
            "first_time_ms":1,"last_time_ms":1,"events":1,"size":3,"sha256":"00ff",
            "encrypted":false,"stored_at_ms":4}"#;
        let key = format!("{CATALOG_SEGMENTS}{}.json", segment_id(5, 5, "00ff"));
        let mut e = parse_segment_entry(&key, old).unwrap();
        assert_eq!(e.resource_set, None);
        assert!(
            !String::from_utf8(serde_json::to_vec(&e).unwrap())
                .unwrap()
                .contains("resource_set")
        );
        e.resource_set = Some(RecordedResourceSet {
            presets: vec!["rancher".into()],
            selectors: vec![ResourceSelector {
                api_version: "v1".into(),
                kinds: vec!["ConfigMap".into()],
                namespaces: vec!["cattle-system".into()],
                ..ResourceSelector::default()
            }],
        });
        let json = serde_json::to_vec(&e).unwrap();
        let back = parse_segment_entry(&key, &json).unwrap();
        assert_eq!(back, e);
        let set = back.resource_set.unwrap().compile().unwrap();
        assert!(set.len() > 1);
    }

    #[test]
    fn entry_must_match_its_key() {
        let e = SnapshotEntry {
            version: 1,
            id: snapshot_id(5, "00ff"),
            seq: 5,
            time_ms: 1,
            objects: 2,
            size: 3,
            sha256: "00ff".into(),
            label: None,
            encrypted: false,
            stored_at_ms: 4,
            resource_set: None,
            lineage: None,
        };
        let json = serde_json::to_vec(&e).unwrap();
        assert_eq!(parse_snapshot_entry(&e.catalog_key(), &json).unwrap(), e);
        assert!(parse_snapshot_entry("catalog/snapshots/x.json", &json).is_err());
        let mut future = e.clone();
        future.version = 2;
        let json = serde_json::to_vec(&future).unwrap();
        assert!(parse_snapshot_entry(&e.catalog_key(), &json).is_err());
        assert!(parse_snapshot_entry(&e.catalog_key(), b"{garbage").is_err());
    }

    #[test]
    fn sha256_known_answer() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
