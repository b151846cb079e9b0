//! The container shared by segments and snapshots:
//!
//! ```text
//! preamble | header block | [dictionary block] | data blocks ... | index block | trailer
//! ```
//!
//! Write order is fixed: preamble, header, dictionary, data, index, trailer.
//! Readers go in reverse: preamble, trailer, index, header, then data blocks
//! on demand. The index entries must tile the data region exactly (no gaps,
//! no overlap), so every byte of a file is accounted for.

use std::borrow::Cow;
use std::io::Write;

use crate::codec::{Compressor, Decompressor, Limits};
use crate::error::{ErrorKind, FormatError, Result, invalid};
use crate::frame::{
    BlockType, Codec, RawBlock, block_len, check_block, expect_type, open_block, write_block,
};
use crate::header::{
    FileKind, PREAMBLE_LEN, TRAILER_LEN, Trailer, decode_preamble, decode_trailer, encode_preamble,
    encode_trailer,
};

/// Location of one data block, as recorded by the kind's index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BlockPos {
    /// Offset from the start of the file.
    pub offset: u64,
    /// Total bytes of the block, framing included.
    pub len: u64,
}

/// Writes a container to a sink, tracking offsets.
pub(crate) struct ContainerWriter<W: Write> {
    sink: W,
    offset: u64,
    compressor: Compressor,
    /// Present when the file has a dictionary: data blocks use codec 2.
    dict_compressor: Option<Compressor>,
    data_blocks: u64,
    buf: Vec<u8>,
}

impl<W: Write> ContainerWriter<W> {
    /// Writes the preamble, the header block and the optional dictionary block.
    pub(crate) fn new(
        mut sink: W,
        kind: FileKind,
        version: u16,
        header: &[u8],
        level: i32,
        dictionary: Option<&[u8]>,
    ) -> Result<Self> {
        let mut compressor = Compressor::new(level, None)?;
        let mut buf = Vec::with_capacity(PREAMBLE_LEN + header.len() + 64);
        buf.extend_from_slice(&encode_preamble(kind, version, false));
        write_block(
            &mut buf,
            BlockType::Header,
            1,
            header,
            Some((&mut compressor, Codec::Zstd)),
        )?;
        let dict_compressor = match dictionary {
            Some(d) => {
                write_block(&mut buf, BlockType::Dictionary, 1, d, None)?;
                Some(Compressor::new(level, Some(d))?)
            }
            None => None,
        };
        sink.write_all(&buf)?;
        Ok(Self {
            sink,
            offset: buf.len() as u64,
            compressor,
            dict_compressor,
            data_blocks: 0,
            buf,
        })
    }

    /// Writes one data block; returns where it landed.
    pub(crate) fn write_data(
        &mut self,
        btype: BlockType,
        count: u32,
        raw: &[u8],
    ) -> Result<BlockPos> {
        self.buf.clear();
        let comp = match &mut self.dict_compressor {
            Some(d) => (d, Codec::ZstdDict),
            None => (&mut self.compressor, Codec::Zstd),
        };
        write_block(&mut self.buf, btype, count, raw, Some(comp))?;
        self.sink.write_all(&self.buf)?;
        let pos = BlockPos {
            offset: self.offset,
            len: self.buf.len() as u64,
        };
        self.offset += pos.len;
        self.data_blocks += 1;
        Ok(pos)
    }

    /// Writes one data block that was framed elsewhere (see [`write_block`]).
    pub(crate) fn write_framed(&mut self, framed: &[u8]) -> Result<BlockPos> {
        self.sink.write_all(framed)?;
        let pos = BlockPos {
            offset: self.offset,
            len: framed.len() as u64,
        };
        self.offset += pos.len;
        self.data_blocks += 1;
        Ok(pos)
    }

    /// Writes the index block and the trailer; returns the sink.
    pub(crate) fn finish(mut self, index: &[u8]) -> Result<W> {
        self.buf.clear();
        let index_offset = self.offset;
        write_block(
            &mut self.buf,
            BlockType::Index,
            1,
            index,
            Some((&mut self.compressor, Codec::Zstd)),
        )?;
        let body_len = index_offset + self.buf.len() as u64;
        self.buf.extend_from_slice(&encode_trailer(&Trailer {
            index_offset,
            data_blocks: self.data_blocks,
            body_len,
        }));
        self.sink.write_all(&self.buf)?;
        self.sink.flush()?;
        Ok(self.sink)
    }
}

/// A verified container over plain (decrypted) bytes.
pub(crate) struct Container<'a> {
    bytes: &'a [u8],
    /// Format version from the preamble (already checked against the kind).
    pub(crate) version: u16,
    /// File name for error messages.
    pub(crate) name: Option<String>,
    pub(crate) limits: Limits,
    /// Decoded header payload.
    pub(crate) header: Vec<u8>,
    /// Decoded index payload.
    pub(crate) index: Vec<u8>,
    /// Offset where data blocks start.
    pub(crate) data_start: u64,
    /// Offset of the index block, where data blocks end.
    pub(crate) data_end: u64,
    /// Number of data blocks, from the trailer.
    pub(crate) data_blocks: u64,
    plain: Decompressor,
    dict: Option<Decompressor>,
    /// File-order ordinal of the first data block (errors count blocks in
    /// file order: header 0, dictionary 1 when present, then data, then index).
    first_data: u64,
}

impl<'a> Container<'a> {
    /// Opens a container: checks preamble, trailer, header, dictionary and index blocks.
    pub(crate) fn open(
        bytes: &'a [u8],
        kind: FileKind,
        limits: Limits,
        name: Option<&str>,
    ) -> Result<Self> {
        Self::open_inner(bytes, kind, limits)
            .map_err(|e| e.in_file(name))
            .map(|mut c| {
                c.name = name.map(str::to_owned);
                c
            })
    }

    fn open_inner(bytes: &'a [u8], kind: FileKind, limits: Limits) -> Result<Self> {
        let pre = decode_preamble(bytes)?;
        if pre.encrypted {
            return Err(FormatError::new(ErrorKind::EncryptedNeedsIdentity));
        }
        if pre.kind != kind {
            return Err(FormatError::new(ErrorKind::WrongKind {
                expected: kind.name(),
                found: pre.kind as u8,
            }));
        }
        let trailer = decode_trailer(bytes)?;
        if trailer.data_blocks > u64::from(limits.max_blocks) {
            return Err(FormatError::new(ErrorKind::TooLarge {
                what: "block count",
                size: trailer.data_blocks,
                limit: u64::from(limits.max_blocks),
            }));
        }
        let mut plain = Decompressor::new(None)?;
        let body = bytes.get(..bytes.len() - TRAILER_LEN).unwrap_or_default();

        let (hblock, hlen) = check_block(body.get(PREAMBLE_LEN..).unwrap_or_default(), &limits)
            .map_err(|e| e.in_block(0))?;
        expect_type(&hblock, BlockType::Header).map_err(|e| e.in_block(0))?;
        let header = open_block(&hblock, &mut plain, None)
            .map_err(|e| e.in_block(0))?
            .into_owned();
        let mut data_start = (PREAMBLE_LEN + hlen) as u64;

        let dict = {
            let rest = body.get(PREAMBLE_LEN + hlen..).unwrap_or_default();
            match check_block(rest, &limits) {
                Ok((b, dlen)) if b.btype == BlockType::Dictionary => {
                    let d = open_block(&b, &mut plain, None).map_err(|e| e.in_block(1))?;
                    data_start += dlen as u64;
                    Some(Decompressor::new(Some(&d))?)
                }
                // A damaged block that claims to be the dictionary is reported
                // as such; anything else is the first data block, checked later.
                Err(e) if rest.first() == Some(&(BlockType::Dictionary as u8)) => {
                    return Err(e.in_block(1));
                }
                _ => None,
            }
        };

        let first_data: u64 = if dict.is_some() { 2 } else { 1 };
        let index_ordinal = first_data.saturating_add(trailer.data_blocks);
        let idx_at = usize::try_from(trailer.index_offset)
            .map_err(|_| invalid("trailer", "index offset overflows"))?;
        if trailer.index_offset < data_start {
            return Err(invalid("trailer", "index offset inside the header"));
        }
        let iblock_bytes = body
            .get(idx_at..)
            .ok_or_else(|| invalid("trailer", "index offset past the end of the file"))?;
        let (iblock, ilen) =
            check_block(iblock_bytes, &limits).map_err(|e| e.in_block(index_ordinal))?;
        expect_type(&iblock, BlockType::Index).map_err(|e| e.in_block(index_ordinal))?;
        if idx_at + ilen != body.len() {
            return Err(invalid(
                "index block",
                "does not end where the trailer begins",
            ));
        }
        let index = open_block(&iblock, &mut plain, None)
            .map_err(|e| e.in_block(index_ordinal))?
            .into_owned();
        Ok(Self {
            bytes,
            version: pre.version,
            name: None,
            limits,
            header,
            index,
            data_start,
            data_end: trailer.index_offset,
            data_blocks: trailer.data_blocks,
            plain,
            dict,
            first_data,
        })
    }

    /// Checks that `positions` tile the data region exactly.
    pub(crate) fn check_tiling(&self, positions: impl Iterator<Item = BlockPos>) -> Result<()> {
        let mut at = self.data_start;
        let mut n = 0u64;
        for (i, p) in positions.enumerate() {
            if p.offset != at {
                return Err(self.err(
                    invalid(
                        "index",
                        format!("entry {i} at offset {}, expected {at}", p.offset),
                    ),
                    None,
                ));
            }
            at = at.saturating_add(p.len);
            n += 1;
        }
        if at != self.data_end || n != self.data_blocks {
            return Err(self.err(
                invalid(
                    "index",
                    format!(
                        "{n} entries end at {at}; trailer says {} blocks ending at {}",
                        self.data_blocks, self.data_end
                    ),
                ),
                None,
            ));
        }
        Ok(())
    }

    /// Reads, verifies and decompresses data block number `block` (0-based
    /// among data blocks) at `pos`.
    pub(crate) fn read_block(
        &mut self,
        block: u64,
        pos: BlockPos,
        btype: BlockType,
    ) -> Result<(RawBlock<'a>, Cow<'a, [u8]>)> {
        let r = self.read_block_inner(pos, btype);
        r.map_err(|e| self.err(e, Some(self.data_ordinal(block))))
    }

    fn read_block_inner(
        &mut self,
        pos: BlockPos,
        btype: BlockType,
    ) -> Result<(RawBlock<'a>, Cow<'a, [u8]>)> {
        let start =
            usize::try_from(pos.offset).map_err(|_| invalid("index", "offset overflows"))?;
        let bytes: &'a [u8] = self.bytes;
        let from = bytes
            .get(start..)
            .ok_or_else(|| invalid("index", "block offset past the end of the file"))?;
        let (raw, used) = check_block(from, &self.limits)?;
        if used as u64 != pos.len
            || block_len(u32::try_from(raw.stored.len()).unwrap_or(u32::MAX)) != pos.len
        {
            return Err(invalid("index", "block length differs from the index"));
        }
        expect_type(&raw, btype)?;
        let payload = open_block(&raw, &mut self.plain, self.dict.as_mut())?;
        Ok((raw, payload))
    }

    /// File-order ordinal of data block `i`, for error messages.
    pub(crate) fn data_ordinal(&self, i: u64) -> u64 {
        self.first_data.saturating_add(i)
    }

    /// Attaches this file's name and a block index to an error.
    pub(crate) fn err(&self, e: FormatError, block: Option<u64>) -> FormatError {
        let e = e.in_file(self.name.as_deref());
        match block {
            Some(b) => e.in_block(b),
            None => e,
        }
    }
}
