//! The `meta` tree: the next sequence number and one record per resource type.
//!
//! Keys: `next_seq` (u64 big-endian), `format` (`b"4"`), `lineage` (the
//! store lineage id this journal records, UTF-8; absent in a new journal
//! and in journals from before lineages), `seq_offset` (u64 big-endian:
//! what the lineage adds to this journal's sequence numbers; absent means
//! 0, set when a standby's journal becomes a lineage at a takeover), and
//! `type/<type_key>` holding a JSON [`TypeRecord`]. JSON because these
//! records are few and small, and readable with any sled dump.

use rewind_format::ResourceType;
use serde::{Deserialize, Serialize};

use super::{Error, Result};

/// Key of the next sequence number to assign.
pub const NEXT_SEQ: &[u8] = b"next_seq";
/// Key of the journal layout version.
pub const FORMAT: &[u8] = b"format";
/// Journal layout version this release writes and reads.
pub const FORMAT_VERSION: &[u8] = b"4";
/// Layout 3: as 4, with every object inline in its state value (no state
/// codec 2, see [`super::state`]). Read as 4.
pub const FORMAT_VERSION_3: &[u8] = b"3";
/// Layout 2: state values of layout 1 only (see [`super::state`]). Read as 4.
pub const FORMAT_VERSION_2: &[u8] = b"2";
/// Layout 1: as 2, with one sled transaction per commit and no commit
/// record. Read as 4.
pub const FORMAT_VERSION_1: &[u8] = b"1";
/// Key of the lineage id.
pub const LINEAGE: &[u8] = b"lineage";
/// Key of the lineage's offset over the journal's sequence numbers.
pub const SEQ_OFFSET: &[u8] = b"seq_offset";
/// Prefix of per-type records.
pub const TYPE_PREFIX: &[u8] = b"type/";

/// What the journal knows about one recorded resource type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeRecord {
    /// The type as last discovered (its served version may change).
    pub rtype: ResourceType,
    /// resourceVersion of the newest object event recorded for the type.
    pub last_rv: String,
    /// resourceVersion of the last completed relist, if any.
    pub list_rv: Option<String>,
    /// When the newest event of this type was observed, Unix ms.
    pub last_event_ms: i64,
    /// Number of events recorded for this type, markers included.
    pub events: u64,
    /// Number of this type's objects in the `state` tree, when known: kept
    /// by every batch, so that a relist that delivered every recorded
    /// object need not scan the type's state (a scan pulls every object
    /// through sled's cache). `None` in records written before it existed
    /// (the JSON field is optional both ways) until a relist counts them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objects: Option<u64>,
    /// The version of the type's last completed relist: every object in
    /// the state is recorded at it. When the served version moves, the next
    /// relist records each object again at the new version, even where its
    /// resourceVersion is unchanged. `None` in records written before it
    /// existed (their `rtype` version stands in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listed_version: Option<String>,
}

impl TypeRecord {
    /// A record for a type seen for the first time.
    #[must_use]
    pub fn new(rtype: ResourceType) -> Self {
        Self {
            rtype,
            last_rv: String::new(),
            list_rv: None,
            last_event_ms: 0,
            events: 0,
            objects: Some(0),
            listed_version: None,
        }
    }
}

/// `meta` key of a type record.
#[must_use]
pub fn type_record_key(type_key: &str) -> Vec<u8> {
    let mut k = TYPE_PREFIX.to_vec();
    k.extend_from_slice(type_key.as_bytes());
    k
}

pub(crate) fn encode_type_record(r: &TypeRecord) -> Result<Vec<u8>> {
    serde_json::to_vec(r).map_err(|e| Error::Corrupt(format!("cannot encode type record: {e}")))
}

pub(crate) fn decode_type_record(v: &[u8]) -> Result<TypeRecord> {
    serde_json::from_slice(v).map_err(|e| Error::Corrupt(format!("bad type record: {e}")))
}

pub(crate) fn decode_u64(v: &[u8]) -> Result<u64> {
    let arr: [u8; 8] = v
        .try_into()
        .map_err(|_| Error::Corrupt(format!("bad next_seq value of {} bytes", v.len())))?;
    Ok(u64::from_be_bytes(arr))
}
