//! Zero-copy reading of segment blocks, for folds that look at every event
//! but keep only a few objects (point-in-time reconstruction).
//!
//! [`SegmentReader::read_block`](super::SegmentReader::read_block) returns
//! owned [`EventRecord`]s: every object's JSON is copied out of the
//! decompressed block and every string allocated, which is most of the cost
//! of folding a million events when only the last version of each object
//! survives. [`SegmentScanner::scan_block`] decodes the same bytes into
//! [`EventView`]s that borrow from the decompressed block instead, and hands
//! them to a closure; the caller copies out only what it keeps.
//!
//! The views decode the frozen v1 record layout exactly (`bincode` encodes
//! `String`/`Vec<u8>` and `&str`/`&[u8]` identically), and a block is
//! checked as strictly as by the owning reader: record count, strictly
//! increasing seqs inside the index entry's seq and time range, the
//! header's cluster id, and first/last seq equal to the index.

use bincode::BorrowDecode;

use super::{SegmentBlockInfo, SegmentHeader, SegmentReader};
use crate::codec::{BINCODE, Limits};
use crate::container::{BlockPos, Container};
use crate::error::{ErrorKind, FormatError, Result, invalid};
use crate::event::{EventKind, EventRecord, ResourceType};
use crate::frame::BlockType;
use crate::header::FileKind;

/// A borrowed [`ResourceType`]. Field order is the record layout's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, BorrowDecode)]
pub struct ResourceTypeView<'a> {
    /// API group; `""` for the core group.
    pub group: &'a str,
    /// API version.
    pub version: &'a str,
    /// Plural resource name.
    pub resource: &'a str,
    /// Kind.
    pub kind: &'a str,
    /// Whether objects of this type live in a namespace.
    pub namespaced: bool,
}

impl ResourceTypeView<'_> {
    /// The owned type.
    #[must_use]
    pub fn to_owned_type(&self) -> ResourceType {
        ResourceType {
            group: self.group.to_owned(),
            version: self.version.to_owned(),
            resource: self.resource.to_owned(),
            kind: self.kind.to_owned(),
            namespaced: self.namespaced,
        }
    }

    /// Whether this view equals `t`, without allocating.
    #[must_use]
    pub fn same_as(&self, t: &ResourceType) -> bool {
        self.group == t.group
            && self.version == t.version
            && self.resource == t.resource
            && self.kind == t.kind
            && self.namespaced == t.namespaced
    }
}

/// A borrowed [`EventKind`]. Variant order is the record layout's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, BorrowDecode)]
pub enum EventKindView<'a> {
    /// See [`EventKind::Applied`].
    Applied,
    /// See [`EventKind::Deleted`].
    Deleted,
    /// See [`EventKind::DeletedInferred`].
    DeletedInferred {
        /// resourceVersion of the list that no longer had the object.
        list_rv: &'a str,
    },
    /// See [`EventKind::ResyncBegin`].
    ResyncBegin {
        /// resourceVersion of the list, when known at the start.
        list_rv: Option<&'a str>,
    },
    /// See [`EventKind::ResyncEnd`].
    ResyncEnd {
        /// resourceVersion of the list.
        list_rv: &'a str,
    },
}

impl EventKindView<'_> {
    /// The owned kind.
    #[must_use]
    pub fn to_owned_kind(&self) -> EventKind {
        match *self {
            Self::Applied => EventKind::Applied,
            Self::Deleted => EventKind::Deleted,
            Self::DeletedInferred { list_rv } => EventKind::DeletedInferred {
                list_rv: list_rv.to_owned(),
            },
            Self::ResyncBegin { list_rv } => EventKind::ResyncBegin {
                list_rv: list_rv.map(str::to_owned),
            },
            Self::ResyncEnd { list_rv } => EventKind::ResyncEnd {
                list_rv: list_rv.to_owned(),
            },
        }
    }
}

/// A borrowed [`EventRecord`]: strings and the object's JSON point into the
/// decompressed block. Field order is the record layout's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, BorrowDecode)]
pub struct EventView<'a> {
    /// See [`EventRecord::seq`].
    pub seq: u64,
    /// See [`EventRecord::observed_at_ms`].
    pub observed_at_ms: i64,
    /// See [`EventRecord::cluster_id`].
    pub cluster_id: &'a str,
    /// See [`EventRecord::rtype`].
    pub rtype: ResourceTypeView<'a>,
    /// See [`EventRecord::namespace`].
    pub namespace: Option<&'a str>,
    /// See [`EventRecord::name`].
    pub name: &'a str,
    /// See [`EventRecord::uid`].
    pub uid: &'a str,
    /// See [`EventRecord::resource_version`].
    pub resource_version: &'a str,
    /// See [`EventRecord::kind`].
    pub kind: EventKindView<'a>,
    /// See [`EventRecord::object`].
    pub object: &'a [u8],
}

impl EventView<'_> {
    /// The owned record (copies everything).
    #[must_use]
    pub fn to_record(&self) -> EventRecord {
        EventRecord {
            seq: self.seq,
            observed_at_ms: self.observed_at_ms,
            cluster_id: self.cluster_id.to_owned(),
            rtype: self.rtype.to_owned_type(),
            namespace: self.namespace.map(str::to_owned),
            name: self.name.to_owned(),
            uid: self.uid.to_owned(),
            resource_version: self.resource_version.to_owned(),
            kind: self.kind.to_owned_kind(),
            object: self.object.to_vec(),
        }
    }
}

/// Reads a segment's blocks as borrowed [`EventView`]s.
pub struct SegmentScanner<'a> {
    c: Container<'a>,
    header: SegmentHeader,
    blocks: Vec<SegmentBlockInfo>,
}

impl<'a> SegmentScanner<'a> {
    /// Opens a segment from its plain bytes, with the same checks as
    /// [`SegmentReader::open`] (framing, header, index; not data blocks).
    pub fn open(bytes: &'a [u8], name: Option<&str>, limits: Limits) -> Result<Self> {
        // The owning reader does (and keeps) the header and index checks.
        let r = SegmentReader::open(bytes, name, limits)?;
        let (header, blocks) = (r.header().clone(), r.blocks().to_vec());
        let c = Container::open(bytes, FileKind::Segment, limits, name)?;
        Ok(Self { c, header, blocks })
    }

    /// The segment's header.
    #[must_use]
    pub fn header(&self) -> &SegmentHeader {
        &self.header
    }

    /// The block index.
    #[must_use]
    pub fn blocks(&self) -> &[SegmentBlockInfo] {
        &self.blocks
    }

    /// Decompresses data block `i`, checks it against its index entry and
    /// gives its events, in log order, to `f`.
    pub fn scan_block<R>(&mut self, i: usize, f: impl FnOnce(&[EventView<'_>]) -> R) -> Result<R> {
        let info = self
            .blocks
            .get(i)
            .cloned()
            .ok_or_else(|| invalid("block number", format!("{i} out of range")))?;
        let ordinal = i as u64;
        let pos = BlockPos {
            offset: info.offset,
            len: info.len,
        };
        let (raw, payload) = self.c.read_block(ordinal, pos, BlockType::Events)?;
        let views = (|| {
            if raw.count != info.count {
                return Err(invalid(
                    "event block",
                    "record count differs from the index",
                ));
            }
            decode_views(&payload, &info, &self.header.cluster_id)
        })()
        .map_err(|e| self.c.err(e, Some(self.c.data_ordinal(ordinal))))?;
        Ok(f(&views))
    }
}

/// Decodes the `info.count` records filling `payload`, with the owning
/// reader's checks.
fn decode_views<'p>(
    payload: &'p [u8],
    info: &SegmentBlockInfo,
    cluster_id: &str,
) -> Result<Vec<EventView<'p>>> {
    // A forged count must not drive the allocation: every record takes
    // more than one byte.
    let cap = usize::try_from(info.count).unwrap_or(0).min(payload.len());
    let mut views: Vec<EventView<'p>> = Vec::with_capacity(cap);
    let mut rest = payload;
    for _ in 0..info.count {
        let (v, used): (EventView<'p>, usize) = bincode::borrow_decode_from_slice(rest, BINCODE)
            .map_err(|e| {
                FormatError::new(ErrorKind::Decode {
                    what: "event record",
                    detail: e.to_string(),
                })
            })?;
        rest = rest.get(used..).unwrap_or_default();
        if views.last().is_some_and(|p| v.seq <= p.seq) {
            return Err(invalid(
                "event block",
                format!("seq not strictly increasing: before {}", v.seq),
            ));
        }
        if v.seq < info.first_seq
            || v.seq > info.last_seq
            || v.observed_at_ms < info.min_time_ms
            || v.observed_at_ms > info.max_time_ms
        {
            return Err(invalid(
                "event block",
                format!("event {} outside its index entry", v.seq),
            ));
        }
        if v.cluster_id != cluster_id {
            return Err(invalid("event block", "cluster id differs from the header"));
        }
        views.push(v);
    }
    if !rest.is_empty() {
        return Err(invalid(
            "event block",
            format!("{} bytes after the last record", rest.len()),
        ));
    }
    if views.first().map(|e| e.seq) != Some(info.first_seq)
        || views.last().map(|e| e.seq) != Some(info.last_seq)
    {
        return Err(invalid(
            "event block",
            "first/last seq differ from the index",
        ));
    }
    Ok(views)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::encode_into;
    use crate::options::WriteOptions;
    use crate::segment::encode_segment;
    use proptest::prelude::*;

    fn rtype(g: &str, r: &str) -> ResourceType {
        ResourceType {
            group: g.into(),
            version: "v1".into(),
            resource: r.into(),
            kind: "K".into(),
            namespaced: true,
        }
    }

    fn kind() -> impl Strategy<Value = EventKind> {
        prop_oneof![
            Just(EventKind::Applied),
            Just(EventKind::Deleted),
            "[0-9]{0,4}".prop_map(|list_rv| EventKind::DeletedInferred { list_rv }),
            proptest::option::of("[0-9]{0,4}")
                .prop_map(|list_rv| EventKind::ResyncBegin { list_rv }),
            "[0-9]{0,4}".prop_map(|list_rv| EventKind::ResyncEnd { list_rv }),
        ]
    }

    fn record(seq: u64) -> impl Strategy<Value = EventRecord> {
        (
            any::<i64>(),
            "[a-z.]{0,6}",
            "[a-z]{1,6}",
            proptest::option::of("[a-z]{0,5}"),
            "\\PC{0,8}",
            "[a-f0-9]{0,4}",
            "[0-9]{0,4}",
            kind(),
            proptest::collection::vec(any::<u8>(), 0..64),
        )
            .prop_map(move |(t, g, r, namespace, name, uid, rv, kind, object)| {
                EventRecord {
                    seq,
                    observed_at_ms: t,
                    cluster_id: "c".into(),
                    rtype: rtype(&g, &r),
                    namespace,
                    name,
                    uid,
                    resource_version: rv,
                    kind,
                    object,
                }
            })
    }

    proptest! {
        /// A view decodes exactly what the owning decoder decodes.
        #[test]
        fn view_equals_owned_record(r in record(7)) {
            let mut bytes = Vec::new();
            encode_into(&r, &mut bytes, "t").unwrap();
            let (v, used): (EventView<'_>, usize) =
                bincode::borrow_decode_from_slice(&bytes, BINCODE).unwrap();
            prop_assert_eq!(used, bytes.len());
            prop_assert_eq!(v.to_record(), r);
        }

        /// Scanning a segment yields the reader's events, block by block.
        #[test]
        fn scan_equals_read(rs in proptest::collection::vec(record(0), 1..40), small in any::<bool>()) {
            let rs: Vec<EventRecord> = rs
                .into_iter()
                .enumerate()
                .map(|(i, mut r)| { r.seq = 10 + 3 * i as u64; r })
                .collect();
            let opts = WriteOptions {
                level: 1,
                block_bytes: if small { 64 } else { 1 << 20 },
                dictionary: None,
            };
            let bytes = encode_segment("c", &rs, &opts).unwrap();
            let mut reader = SegmentReader::open(&bytes, None, Limits::default()).unwrap();
            let mut scanner = SegmentScanner::open(&bytes, None, Limits::default()).unwrap();
            prop_assert_eq!(scanner.blocks(), reader.blocks());
            for i in 0..reader.blocks().len() {
                let owned = reader.read_block(i).unwrap();
                let viewed = scanner
                    .scan_block(i, |vs| vs.iter().map(EventView::to_record).collect::<Vec<_>>())
                    .unwrap();
                prop_assert_eq!(viewed, owned);
            }
        }
    }

    /// Every single-byte corruption the reader rejects, the scanner rejects
    /// too (and neither panics).
    #[test]
    fn damaged_blocks_are_rejected_like_the_reader_does() {
        let rs: Vec<EventRecord> = (1..=30)
            .map(|seq| EventRecord {
                seq,
                observed_at_ms: 1000 + i64::try_from(seq).unwrap(),
                cluster_id: "c".into(),
                rtype: rtype("g", "things"),
                namespace: Some("ns".into()),
                name: format!("n{seq}"),
                uid: "u".into(),
                resource_version: seq.to_string(),
                kind: EventKind::Applied,
                object: b"{\"a\":1}".to_vec(),
            })
            .collect();
        let opts = WriteOptions {
            level: 1,
            block_bytes: 200,
            dictionary: None,
        };
        let good = encode_segment("c", &rs, &opts).unwrap();
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0x5a;
            let read = SegmentReader::open(&bad, None, Limits::default()).and_then(|mut r| {
                (0..r.blocks().len()).try_for_each(|i| r.read_block(i).map(drop))
            });
            let scan = SegmentScanner::open(&bad, None, Limits::default())
                .and_then(|mut s| (0..s.blocks().len()).try_for_each(|i| s.scan_block(i, |_| ())));
            assert_eq!(read.is_ok(), scan.is_ok(), "byte {at}");
        }
    }
}
