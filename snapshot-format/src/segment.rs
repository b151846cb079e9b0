//! Segments: sealed, immutable runs of consecutive events.
//!
//! A segment is a container (`docs/FORMAT.md`, section 3) of kind `Segment`. Its header
//! block holds a [`SegmentHeader`]; its data blocks are event blocks (see
//! [`crate::event`]); its index block holds a [`SegmentIndex`] with one entry
//! per data block, so that a reader can seek by sequence number or time
//! without decompressing the whole file.

use crate::codec::{Compressor, Limits, decode_exact, encode_into};
use crate::container::{BlockPos, Container, ContainerWriter};
use crate::error::{Result, invalid};
use crate::event::{EventRecord, decode_records};
use crate::frame::{BlockType, Codec, write_block};
use crate::header::FileKind;
use crate::options::WriteOptions;

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

/// Builds a segment from events pushed in sequence order.
///
/// Compressed blocks are kept in memory until [`SegmentWriter::finish`],
/// because the header (written first) summarises all events.
pub struct SegmentWriter {
    cluster_id: String,
    opts: WriteOptions,
    compressor: Compressor,
    pending: Vec<u8>,
    pending_info: Option<SegmentBlockInfo>,
    framed: Vec<(Vec<u8>, SegmentBlockInfo)>,
    header: Option<SegmentHeader>,
}

impl SegmentWriter {
    /// A writer for events of `cluster_id`.
    pub fn new(cluster_id: impl Into<String>, opts: WriteOptions) -> Result<Self> {
        let compressor = Compressor::new(opts.level, opts.dictionary.as_deref())?;
        Ok(Self {
            cluster_id: cluster_id.into(),
            opts,
            compressor,
            pending: Vec::new(),
            pending_info: None,
            framed: Vec::new(),
            header: None,
        })
    }

    /// Appends one event. Its `seq` must exceed the previous one and its
    /// `cluster_id` must be the segment's.
    pub fn push(&mut self, e: &EventRecord) -> Result<()> {
        if e.cluster_id != self.cluster_id {
            return Err(invalid(
                "segment event",
                format!(
                    "cluster id {:?}, segment is {:?}",
                    e.cluster_id, self.cluster_id
                ),
            ));
        }
        let t = e.observed_at_ms;
        match &mut self.header {
            None => {
                self.header = Some(SegmentHeader {
                    cluster_id: self.cluster_id.clone(),
                    first_seq: e.seq,
                    last_seq: e.seq,
                    min_time_ms: t,
                    max_time_ms: t,
                    event_count: 1,
                });
            }
            Some(h) => {
                if e.seq <= h.last_seq {
                    return Err(invalid(
                        "segment event",
                        format!("seq {} after {}: not increasing", e.seq, h.last_seq),
                    ));
                }
                h.last_seq = e.seq;
                h.min_time_ms = h.min_time_ms.min(t);
                h.max_time_ms = h.max_time_ms.max(t);
                h.event_count += 1;
            }
        }
        encode_into(e, &mut self.pending, "event record")?;
        let info = self.pending_info.get_or_insert(SegmentBlockInfo {
            offset: 0,
            len: 0,
            first_seq: e.seq,
            last_seq: e.seq,
            min_time_ms: t,
            max_time_ms: t,
            count: 0,
        });
        info.last_seq = e.seq;
        info.min_time_ms = info.min_time_ms.min(t);
        info.max_time_ms = info.max_time_ms.max(t);
        info.count = info.count.saturating_add(1);
        if self.pending.len() >= self.opts.block_bytes || info.count == u32::MAX {
            self.cut()?;
        }
        Ok(())
    }

    fn cut(&mut self) -> Result<()> {
        let Some(info) = self.pending_info.take() else {
            return Ok(());
        };
        let codec = if self.opts.dictionary.is_some() {
            Codec::ZstdDict
        } else {
            Codec::Zstd
        };
        let mut framed = Vec::new();
        write_block(
            &mut framed,
            BlockType::Events,
            info.count,
            &self.pending,
            Some((&mut self.compressor, codec)),
        )?;
        self.pending.clear();
        self.framed.push((framed, info));
        Ok(())
    }

    /// Writes the whole segment and returns its bytes. Fails on an empty segment.
    pub fn finish(mut self) -> Result<Vec<u8>> {
        self.cut()?;
        let header = self
            .header
            .take()
            .ok_or_else(|| invalid("segment", "no events: a segment holds at least one"))?;
        let mut hbytes = Vec::new();
        encode_into(&header, &mut hbytes, "segment header")?;
        let total: usize = self.framed.iter().map(|(f, _)| f.len()).sum();
        let out = Vec::with_capacity(total + hbytes.len() + 4096);
        let mut w = ContainerWriter::new(
            out,
            FileKind::Segment,
            &hbytes,
            self.opts.level,
            self.opts.dictionary.as_deref(),
        )?;
        let mut index = SegmentIndex {
            blocks: Vec::with_capacity(self.framed.len()),
        };
        for (framed, mut info) in self.framed {
            let pos = w.write_framed(&framed)?;
            info.offset = pos.offset;
            info.len = pos.len;
            index.blocks.push(info);
        }
        let mut ibytes = Vec::new();
        encode_into(&index, &mut ibytes, "segment index")?;
        w.finish(&ibytes)
    }
}

/// Encodes `events` (in seq order) as one segment.
pub fn encode_segment(
    cluster_id: &str,
    events: &[EventRecord],
    opts: &WriteOptions,
) -> Result<Vec<u8>> {
    let mut w = SegmentWriter::new(cluster_id, opts.clone())?;
    for e in events {
        w.push(e)?;
    }
    w.finish()
}

/// Reads a segment from its plain (decrypted) bytes.
pub struct SegmentReader<'a> {
    c: Container<'a>,
    header: SegmentHeader,
    index: SegmentIndex,
}

impl<'a> SegmentReader<'a> {
    /// Opens a segment: verifies framing, header and index (not data blocks).
    /// `name` is used in error messages.
    pub fn open(bytes: &'a [u8], name: Option<&str>, limits: Limits) -> Result<Self> {
        let c = Container::open(bytes, FileKind::Segment, limits, name)?;
        let header: SegmentHeader =
            decode_exact(&c.header, "segment header").map_err(|e| c.err(e, Some(0)))?;
        let index: SegmentIndex =
            decode_exact(&c.index, "segment index").map_err(|e| c.err(e, None))?;
        c.check_tiling(index.blocks.iter().map(|b| BlockPos {
            offset: b.offset,
            len: b.len,
        }))?;
        check_index(&header, &index).map_err(|e| c.err(e, None))?;
        Ok(Self { c, header, index })
    }

    /// The segment's header.
    #[must_use]
    pub fn header(&self) -> &SegmentHeader {
        &self.header
    }

    /// The block index.
    #[must_use]
    pub fn blocks(&self) -> &[SegmentBlockInfo] {
        &self.index.blocks
    }

    /// Decodes data block `i` and checks it against its index entry.
    pub fn read_block(&mut self, i: usize) -> Result<Vec<EventRecord>> {
        let info = self
            .index
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
        let check = || -> Result<Vec<EventRecord>> {
            if raw.count != info.count {
                return Err(invalid(
                    "event block",
                    "record count differs from the index",
                ));
            }
            let events = decode_records(&payload, raw.count)?;
            for e in &events {
                if e.seq < info.first_seq
                    || e.seq > info.last_seq
                    || e.observed_at_ms < info.min_time_ms
                    || e.observed_at_ms > info.max_time_ms
                {
                    return Err(invalid(
                        "event block",
                        format!("event {} outside its index entry", e.seq),
                    ));
                }
                if e.cluster_id != self.header.cluster_id {
                    return Err(invalid("event block", "cluster id differs from the header"));
                }
            }
            let (first, last) = (events.first(), events.last());
            if first.map(|e| e.seq) != Some(info.first_seq)
                || last.map(|e| e.seq) != Some(info.last_seq)
            {
                return Err(invalid(
                    "event block",
                    "first/last seq differ from the index",
                ));
            }
            Ok(events)
        };
        check().map_err(|e| self.c.err(e, Some(self.c.data_ordinal(ordinal))))
    }

    /// Index of the first block that may hold `seq` or a later event.
    #[must_use]
    pub fn block_for_seq(&self, seq: u64) -> usize {
        self.index.blocks.partition_point(|b| b.last_seq < seq)
    }

    /// Index of the first block holding an event observed at or after `time_ms`.
    /// Times need not be monotonic across events, so later blocks may still
    /// hold earlier times; this is the first block worth reading.
    #[must_use]
    pub fn block_for_time(&self, time_ms: i64) -> usize {
        self.index
            .blocks
            .iter()
            .position(|b| b.max_time_ms >= time_ms)
            .unwrap_or(self.index.blocks.len())
    }

    /// All events with `seq >= from_seq`, decoding only the blocks needed.
    pub fn events_from_seq(&mut self, from_seq: u64) -> Result<Vec<EventRecord>> {
        let mut out = Vec::new();
        for i in self.block_for_seq(from_seq)..self.index.blocks.len() {
            out.extend(
                self.read_block(i)?
                    .into_iter()
                    .filter(|e| e.seq >= from_seq),
            );
        }
        Ok(out)
    }

    /// Every event, in order.
    pub fn read_all(&mut self) -> Result<Vec<EventRecord>> {
        self.events_from_seq(0)
    }

    /// Iterates over events block by block, decoding one block at a time.
    pub fn iter(&mut self) -> SegmentIter<'_, 'a> {
        SegmentIter {
            reader: self,
            next_block: 0,
            current: Vec::new().into_iter(),
            failed: false,
        }
    }

    /// Reads and checks every block; returns the number of events.
    pub fn verify(&mut self) -> Result<u64> {
        let mut n = 0u64;
        for i in 0..self.index.blocks.len() {
            n += self.read_block(i)?.len() as u64;
        }
        Ok(n)
    }
}

/// Iterator over a segment's events; see [`SegmentReader::iter`].
pub struct SegmentIter<'r, 'a> {
    reader: &'r mut SegmentReader<'a>,
    next_block: usize,
    current: std::vec::IntoIter<EventRecord>,
    failed: bool,
}

impl Iterator for SegmentIter<'_, '_> {
    type Item = Result<EventRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(e) = self.current.next() {
                return Some(Ok(e));
            }
            if self.failed || self.next_block >= self.reader.index.blocks.len() {
                return None;
            }
            let i = self.next_block;
            self.next_block += 1;
            match self.reader.read_block(i) {
                Ok(v) => self.current = v.into_iter(),
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

fn check_index(h: &SegmentHeader, idx: &SegmentIndex) -> Result<()> {
    let (Some(first), Some(last)) = (idx.blocks.first(), idx.blocks.last()) else {
        return Err(invalid("segment index", "no blocks"));
    };
    let total: u64 = idx.blocks.iter().map(|b| u64::from(b.count)).sum();
    let min_t = idx.blocks.iter().map(|b| b.min_time_ms).min();
    let max_t = idx.blocks.iter().map(|b| b.max_time_ms).max();
    if first.first_seq != h.first_seq
        || last.last_seq != h.last_seq
        || total != h.event_count
        || min_t != Some(h.min_time_ms)
        || max_t != Some(h.max_time_ms)
    {
        return Err(invalid("segment index", "does not match the header"));
    }
    for b in &idx.blocks {
        if b.count == 0 || b.first_seq > b.last_seq || b.min_time_ms > b.max_time_ms {
            return Err(invalid("segment index", "malformed entry"));
        }
        let span = b.last_seq - b.first_seq;
        if span < u64::from(b.count) - 1 {
            return Err(invalid(
                "segment index",
                "more events than sequence numbers",
            ));
        }
    }
    for pair in idx.blocks.windows(2) {
        if let [a, b] = pair
            && b.first_seq <= a.last_seq
        {
            return Err(invalid("segment index", "blocks out of seq order"));
        }
    }
    Ok(())
}
