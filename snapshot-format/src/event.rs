//! The event record: one recorded change of one Kubernetes object.
//!
//! Records are encoded with the crate's fixed bincode configuration
//! ([`crate::codec::BINCODE`]) in field order. **Serialized types are frozen
//! for format version 1: do not add, remove or reorder fields or variants;
//! a change needs a new format version.**
//!
//! An *event block* is a [frame](crate::frame) of type `Events` whose payload
//! is the concatenation of bincode-encoded records, with strictly increasing
//! `seq`. The daemon's journal stores one event block per group commit;
//! segments store runs of them.

use serde::{Deserialize, Serialize};

use crate::codec::{Compressor, Decompressor, Limits, decode_exact, decode_from, encode_into};
use crate::error::{FormatError, Result, invalid};
use crate::frame::{BlockType, Codec, check_block, expect_type, len_u32, open_block, write_block};

/// A Kubernetes resource type as discovered from the API.
#[derive(
    Debug,
    Clone,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    bincode::Encode,
    bincode::Decode,
)]
pub struct ResourceType {
    /// API group; `""` for the core group.
    pub group: String,
    /// API version within the group, e.g. `v1`.
    pub version: String,
    /// Plural resource name, e.g. `clusters`.
    pub resource: String,
    /// Kind, e.g. `Cluster`.
    pub kind: String,
    /// Whether objects of this type live in a namespace.
    pub namespaced: bool,
}

impl ResourceType {
    /// The type of `kind` objects, served as the plural `resource` of
    /// `group` (`""` for the core group) at `version`.
    #[must_use]
    pub fn new(group: &str, version: &str, resource: &str, kind: &str, namespaced: bool) -> Self {
        Self {
            group: group.to_owned(),
            version: version.to_owned(),
            resource: resource.to_owned(),
            kind: kind.to_owned(),
            namespaced,
        }
    }

    /// `resource.group` (or just `resource` for the core group), the usual
    /// name of a type regardless of version.
    #[must_use]
    pub fn group_resource(&self) -> String {
        group_resource(&self.group, &self.resource)
    }

    /// Whether this is the CustomResourceDefinition type, whose objects a
    /// snapshot lists in its CRD section.
    #[must_use]
    pub fn is_crd(&self) -> bool {
        self.group == "apiextensions.k8s.io" && self.resource == "customresourcedefinitions"
    }

    /// `group/version`, or `version` for the core group: an object's
    /// `apiVersion`.
    #[must_use]
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Whether this is the core Namespace type.
    #[must_use]
    pub fn is_namespace(&self) -> bool {
        self.group.is_empty() && self.resource == "namespaces"
    }

    /// Whether `filter` (a kind, a plural, or `resource.group`, any case)
    /// names this type.
    #[must_use]
    pub fn matches_name(&self, filter: &str) -> bool {
        filter.eq_ignore_ascii_case(&self.kind)
            || filter.eq_ignore_ascii_case(&self.resource)
            || filter.eq_ignore_ascii_case(&self.group_resource())
    }
}

impl std::fmt::Display for ResourceType {
    /// `resource.group/version`, or `resource/version` for the core group.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.group_resource(), self.version)
    }
}

/// `resource.group`, or `resource` for the core group (`group` empty).
pub(crate) fn group_resource(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_owned()
    } else {
        format!("{resource}.{group}")
    }
}

/// What happened to the object.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
pub enum EventKind {
    /// The object was created or updated; the record holds its new state.
    Applied,
    /// A watch reported the object deleted; the record holds its last state.
    Deleted,
    /// The object was missing from a relist at `list_rv`, so it was deleted
    /// while the watch was broken. The record holds the last known state.
    DeletedInferred {
        /// resourceVersion of the list that no longer had the object.
        list_rv: String,
    },
    /// A relist of the record's resource type begins. Marker: no object.
    ResyncBegin {
        /// resourceVersion of the list, when known at the start.
        list_rv: Option<String>,
    },
    /// A relist of the record's resource type is complete. Marker: no object.
    ResyncEnd {
        /// resourceVersion of the list.
        list_rv: String,
    },
}

impl EventKind {
    /// Whether this kind is a resync marker rather than a change to an object.
    #[must_use]
    pub fn is_marker(&self) -> bool {
        matches!(self, Self::ResyncBegin { .. } | Self::ResyncEnd { .. })
    }
}

/// One recorded change.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
pub struct EventRecord {
    /// Rewind's own sequence number: strictly increasing over the whole log.
    pub seq: u64,
    /// When the event was observed, Unix milliseconds.
    pub observed_at_ms: i64,
    /// Id of the source cluster.
    pub cluster_id: String,
    /// The object's resource type.
    pub rtype: ResourceType,
    /// Namespace; `None` for cluster-scoped objects and markers.
    pub namespace: Option<String>,
    /// Object name; empty for markers.
    pub name: String,
    /// Object uid; empty for markers.
    pub uid: String,
    /// The object's resourceVersion; empty for markers.
    pub resource_version: String,
    /// What happened.
    pub kind: EventKind,
    /// The object as JSON bytes, exactly as the API returned them; empty for markers.
    pub object: Vec<u8>,
}

/// Encodes one record (bincode only, no framing or checksum).
pub fn encode_record(record: &EventRecord) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(record.object.len() + 128);
    encode_into(record, &mut out, "event record")?;
    Ok(out)
}

/// Decodes one record produced by [`encode_record`]; the whole input must be used.
pub fn decode_record(bytes: &[u8]) -> Result<EventRecord> {
    decode_exact(bytes, "event record")
}

/// Encodes event blocks, keeping one zstd context across calls.
pub struct EventBlockEncoder {
    compressor: Compressor,
    codec: Codec,
    scratch: Vec<u8>,
}

impl EventBlockEncoder {
    /// An encoder compressing at zstd `level` (1..=22; 3 is zstd's default).
    pub fn new(level: i32) -> Result<Self> {
        Ok(Self {
            compressor: Compressor::new(level, None)?,
            codec: Codec::Zstd,
            scratch: Vec::new(),
        })
    }

    /// An encoder using a zstd dictionary (codec 2). Small blocks, such as a
    /// journal's group commits of a few events, shrink to a third or half
    /// (see `docs/FORMAT.md`, section 13). The same dictionary must be given
    /// to [`EventBlockDecoder::with_dictionary`]; zstd rejects a different one.
    pub fn with_dictionary(level: i32, dictionary: &[u8]) -> Result<Self> {
        Ok(Self {
            compressor: Compressor::new(level, Some(dictionary))?,
            codec: Codec::ZstdDict,
            scratch: Vec::new(),
        })
    }

    /// Encodes `records` (strictly increasing `seq`) as one checksummed,
    /// compressed event block.
    pub fn encode(&mut self, records: &[EventRecord]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.encode_into(records, &mut out)?;
        Ok(out)
    }

    /// Like [`EventBlockEncoder::encode`], appending the block to `out`.
    pub fn encode_into(&mut self, records: &[EventRecord], out: &mut Vec<u8>) -> Result<()> {
        check_increasing(records)?;
        self.scratch.clear();
        for r in records {
            encode_into(r, &mut self.scratch, "event record")?;
        }
        let count = len_u32(records.len(), "event block record count")?;
        write_block(
            out,
            BlockType::Events,
            count,
            &self.scratch,
            Some((&mut self.compressor, self.codec)),
        )
    }
}

/// Decodes event blocks, keeping zstd contexts across calls.
pub struct EventBlockDecoder {
    plain: Decompressor,
    dict: Option<Decompressor>,
    limits: Limits,
}

impl EventBlockDecoder {
    /// A decoder for blocks without a dictionary.
    pub fn new(limits: Limits) -> Result<Self> {
        Ok(Self {
            plain: Decompressor::new(None)?,
            dict: None,
            limits,
        })
    }

    /// A decoder that also reads blocks written with `dictionary`.
    pub fn with_dictionary(limits: Limits, dictionary: &[u8]) -> Result<Self> {
        Ok(Self {
            plain: Decompressor::new(None)?,
            dict: Some(Decompressor::new(Some(dictionary))?),
            limits,
        })
    }

    /// Decodes one event block; the input must be exactly one block.
    /// Verifies checksums, the size cap and seq order.
    pub fn decode(&mut self, bytes: &[u8]) -> Result<Vec<EventRecord>> {
        let (block, used) = check_block(bytes, &self.limits)?;
        if used != bytes.len() {
            return Err(invalid(
                "event block",
                format!("{} trailing bytes after the block", bytes.len() - used),
            ));
        }
        expect_type(&block, BlockType::Events)?;
        let payload = open_block(&block, &mut self.plain, self.dict.as_mut())?;
        decode_records(&payload, block.count)
    }
}

/// Encodes `records` as one event block at zstd `level`. For many blocks,
/// reuse an [`EventBlockEncoder`].
pub fn encode_block(records: &[EventRecord], level: i32) -> Result<Vec<u8>> {
    EventBlockEncoder::new(level)?.encode(records)
}

/// Decodes one event block produced by [`encode_block`]. The input must be
/// exactly one block. Verifies checksums, the size cap and seq order.
pub fn decode_block(bytes: &[u8], limits: &Limits) -> Result<Vec<EventRecord>> {
    EventBlockDecoder::new(*limits)?.decode(bytes)
}

/// Decodes `count` records filling all of `payload`, checking seq order.
pub(crate) fn decode_records(payload: &[u8], count: u32) -> Result<Vec<EventRecord>> {
    // Each record takes at least a few bytes, so a count larger than the
    // payload is forged; do not let it drive the allocation.
    let cap = usize::try_from(count).unwrap_or(0).min(payload.len());
    let mut records = Vec::with_capacity(cap);
    let mut rest = payload;
    for _ in 0..count {
        let (record, used): (EventRecord, usize) = decode_from(rest, "event record")?;
        rest = rest.get(used..).unwrap_or_default();
        records.push(record);
    }
    if !rest.is_empty() {
        return Err(invalid(
            "event block",
            format!("{} bytes after the last record", rest.len()),
        ));
    }
    check_increasing(&records)?;
    Ok(records)
}

fn check_increasing(records: &[EventRecord]) -> Result<()> {
    for pair in records.windows(2) {
        if let [a, b] = pair
            && b.seq <= a.seq
        {
            return Err(invalid(
                "event block",
                format!("seq not strictly increasing: {} then {}", a.seq, b.seq),
            ));
        }
    }
    Ok(())
}

impl From<bincode::error::DecodeError> for FormatError {
    fn from(e: bincode::error::DecodeError) -> Self {
        FormatError::new(crate::error::ErrorKind::Decode {
            what: "structure",
            detail: e.to_string(),
        })
    }
}
