//! The segment writer.

use super::{SegmentBlockInfo, SegmentHeader, SegmentIndex};
use crate::codec::{Compressor, encode_into};
use crate::container::ContainerWriter;
use crate::error::{Result, invalid};
use crate::event::EventRecord;
use crate::frame::{BlockType, Codec, write_block};
use crate::header::{FileKind, SEGMENT_VERSION};
use crate::options::WriteOptions;

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
            SEGMENT_VERSION,
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
