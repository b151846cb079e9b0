//! Segments: sealed, immutable runs of consecutive events.
//!
//! A segment is a container (`docs/FORMAT.md`, section 3) of kind `Segment`. Its header
//! block holds a [`SegmentHeader`]; its data blocks are event blocks (see
//! [`crate::event`]); its index block holds a [`SegmentIndex`] with one entry
//! per data block, so that a reader can seek by sequence number or time
//! without decompressing the whole file.
mod reader;
mod scan;
mod writer;

pub use reader::{SegmentIter, SegmentReader};
pub use scan::{EventKindView, EventView, ResourceTypeView, SegmentScanner};
pub use writer::{SegmentWriter, encode_segment};

/// Segment metadata (header block). Frozen for format version 1.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct SegmentHeader {
    /// Id of the source cluster; every event has the same `cluster_id`.
    pub cluster_id: String,
    /// Sequence number of the first event.
    pub first_seq: u64,
    /// Sequence number of the last event.
    pub last_seq: u64,
    /// Smallest `observed_at_ms` of the events.
    pub min_time_ms: i64,
    /// Largest `observed_at_ms` of the events.
    pub max_time_ms: i64,
    /// Number of events (at least 1).
    pub event_count: u64,
}

/// Index entry for one data block. Frozen for format version 1.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct SegmentBlockInfo {
    /// Offset of the block from the start of the file.
    pub offset: u64,
    /// Length of the block including its framing.
    pub len: u64,
    /// Sequence number of the block's first event.
    pub first_seq: u64,
    /// Sequence number of the block's last event.
    pub last_seq: u64,
    /// Smallest `observed_at_ms` in the block.
    pub min_time_ms: i64,
    /// Largest `observed_at_ms` in the block.
    pub max_time_ms: i64,
    /// Number of events in the block.
    pub count: u32,
}

/// The segment index (index block). Frozen for format version 1.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct SegmentIndex {
    /// One entry per data block, in file order.
    pub blocks: Vec<SegmentBlockInfo>,
}
