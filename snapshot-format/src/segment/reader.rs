//! The segment reader: seek by sequence number or time, iterate, verify.

use super::{SegmentBlockInfo, SegmentHeader, SegmentIndex};
use crate::codec::{Limits, decode_exact};
use crate::container::{BlockPos, Container};
use crate::error::{Result, invalid};
use crate::event::{EventRecord, decode_records};
use crate::frame::BlockType;
use crate::header::FileKind;

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
