//! The snapshot reader: whole file, one type, one namespace or one object.

use super::{
    SnapshotHeader, SnapshotIndex, SnapshotObject, check_header, columnar, record, type_order,
};
use crate::codec::{Limits, decode_exact};
use crate::container::{BlockPos, Container};
use crate::error::{Result, invalid};
use crate::frame::BlockType;
use crate::header::FileKind;

/// Reads a snapshot from its plain (decrypted) bytes.
pub struct SnapshotReader<'a> {
    c: Container<'a>,
    header: SnapshotHeader,
    index: SnapshotIndex,
}

impl<'a> SnapshotReader<'a> {
    /// Opens a snapshot: verifies framing, header and index (not data blocks).
    pub fn open(bytes: &'a [u8], name: Option<&str>, limits: Limits) -> Result<Self> {
        let c = Container::open(bytes, FileKind::Snapshot, limits, name)?;
        let header: SnapshotHeader =
            decode_exact(&c.header, "snapshot header").map_err(|e| c.err(e, Some(0)))?;
        check_header(&header).map_err(|e| c.err(e, Some(0)))?;
        let index: SnapshotIndex =
            decode_exact(&c.index, "snapshot index").map_err(|e| c.err(e, None))?;
        c.check_tiling(index.blocks.iter().map(|b| BlockPos {
            offset: b.offset,
            len: b.len,
        }))?;
        check_index(&header, &index).map_err(|e| c.err(e, None))?;
        Ok(Self { c, header, index })
    }

    /// The snapshot format version of the file (1, 2 or 3). Readers return the
    /// same objects for all three; this is for tools that report it.
    #[must_use]
    pub fn version(&self) -> u16 {
        self.c.version
    }

    /// The snapshot's header.
    #[must_use]
    pub fn header(&self) -> &SnapshotHeader {
        &self.header
    }

    /// The block index.
    #[must_use]
    pub fn index(&self) -> &SnapshotIndex {
        &self.index
    }

    /// Position of the type with this group and resource.
    #[must_use]
    pub fn type_index(&self, group: &str, resource: &str) -> Option<usize> {
        self.header
            .types
            .binary_search_by(|t| type_order(&t.rtype).cmp(&(group, resource)))
            .ok()
    }

    /// Decodes data block `i`, checking it against its index entry.
    pub fn read_block(&mut self, i: usize) -> Result<Vec<SnapshotObject>> {
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
        let namespaced = self
            .header
            .types
            .get(usize::try_from(info.type_index).unwrap_or(usize::MAX))
            .map(|t| t.rtype.namespaced);
        let (raw, payload) = self.c.read_block(ordinal, pos, BlockType::Objects)?;
        let version = self.c.version;
        let limits = self.c.limits;
        let check = || -> Result<Vec<SnapshotObject>> {
            if raw.count != info.count {
                return Err(invalid(
                    "object block",
                    "object count differs from the index",
                ));
            }
            let objs = if version >= 3 {
                let max = usize::try_from(limits.max_block_bytes).unwrap_or(usize::MAX);
                let records = columnar::decode_block(&payload, raw.count, max)?;
                let mut objs: Vec<SnapshotObject> = Vec::with_capacity(records.len());
                for r in records {
                    objs.push(record::resolve_v3(r, namespaced == Some(true))?);
                }
                objs
            } else {
                let cap = usize::try_from(raw.count).unwrap_or(0).min(payload.len());
                let mut objs: Vec<SnapshotObject> = Vec::with_capacity(cap);
                let mut rest: &[u8] = &payload;
                for _ in 0..raw.count {
                    let (o, used) = record::decode(version, namespaced == Some(true), rest)?;
                    rest = rest.get(used..).unwrap_or_default();
                    objs.push(o);
                }
                if !rest.is_empty() {
                    return Err(invalid("object block", "bytes after the last object"));
                }
                objs
            };
            for pair in objs.windows(2) {
                if let [a, b] = pair
                    && a.key() >= b.key()
                {
                    return Err(invalid(
                        "object block",
                        "objects not sorted by (namespace, name)",
                    ));
                }
            }
            if objs
                .iter()
                .any(|o| Some(o.namespace.is_some()) != namespaced)
            {
                return Err(invalid(
                    "object block",
                    "namespace does not match the type's scope",
                ));
            }
            let keys = (
                objs.first().map(SnapshotObject::key),
                objs.last().map(SnapshotObject::key),
            );
            if keys != (Some(info.first()), Some(info.last())) {
                return Err(invalid(
                    "object block",
                    "first/last key differ from the index",
                ));
            }
            Ok(objs)
        };
        check().map_err(|e| self.c.err(e, Some(self.c.data_ordinal(ordinal))))
    }

    /// Block numbers holding objects of type `t`.
    fn blocks_of(&self, t: usize) -> std::ops::Range<usize> {
        let t = u32::try_from(t).unwrap_or(u32::MAX);
        let start = self.index.blocks.partition_point(|b| b.type_index < t);
        let end = self.index.blocks.partition_point(|b| b.type_index <= t);
        start..end
    }

    /// Every object of type `t`, sorted.
    pub fn read_type(&mut self, t: usize) -> Result<Vec<SnapshotObject>> {
        let mut out = Vec::new();
        for i in self.blocks_of(t) {
            out.extend(self.read_block(i)?);
        }
        Ok(out)
    }

    /// Objects of type `t` in `namespace` (`None`: cluster-scoped), decoding
    /// only the blocks whose key range can hold them.
    pub fn read_namespace(
        &mut self,
        t: usize,
        namespace: Option<&str>,
    ) -> Result<Vec<SnapshotObject>> {
        let mut out = Vec::new();
        let range = self.blocks_of(t);
        for i in range {
            let Some(b) = self.index.blocks.get(i) else {
                break;
            };
            if b.first().0 > namespace {
                break;
            }
            if b.last().0 < namespace {
                continue;
            }
            out.extend(
                self.read_block(i)?
                    .into_iter()
                    .filter(|o| o.namespace.as_deref() == namespace),
            );
        }
        Ok(out)
    }

    /// One object, decoding at most one block.
    pub fn get(
        &mut self,
        t: usize,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<SnapshotObject>> {
        let key = (namespace, name);
        let range = self.blocks_of(t);
        let start = range.start;
        let Some(blocks) = self.index.blocks.get(range) else {
            return Ok(None);
        };
        let i = start + blocks.partition_point(|b| b.last() < key);
        match self.index.blocks.get(i) {
            Some(b) if b.type_index as usize == t && b.first() <= key => {}
            _ => return Ok(None),
        }
        Ok(self.read_block(i)?.into_iter().find(|o| o.key() == key))
    }

    /// The CRDs present at this point (empty when the type was not recorded).
    pub fn crds(&mut self) -> Result<Vec<SnapshotObject>> {
        match self.header.crd_type {
            Some(t) => self.read_type(t as usize),
            None => Ok(Vec::new()),
        }
    }

    /// Streams every object with its type position, one block at a time.
    pub fn iter(&mut self) -> SnapshotIter<'_, 'a> {
        SnapshotIter {
            reader: self,
            next_block: 0,
            current: Vec::new().into_iter(),
            current_type: 0,
            failed: false,
        }
    }

    /// Reads and checks every block; returns the number of objects.
    pub fn verify(&mut self) -> Result<u64> {
        let mut n = 0u64;
        for i in 0..self.index.blocks.len() {
            n += self.read_block(i)?.len() as u64;
        }
        Ok(n)
    }
}

/// Iterator over `(type position, object)`; see [`SnapshotReader::iter`].
pub struct SnapshotIter<'r, 'a> {
    reader: &'r mut SnapshotReader<'a>,
    next_block: usize,
    current: std::vec::IntoIter<SnapshotObject>,
    current_type: usize,
    failed: bool,
}

impl Iterator for SnapshotIter<'_, '_> {
    type Item = Result<(usize, SnapshotObject)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(o) = self.current.next() {
                return Some(Ok((self.current_type, o)));
            }
            if self.failed {
                return None;
            }
            let i = self.next_block;
            let t = self.reader.index.blocks.get(i)?.type_index as usize;
            self.next_block += 1;
            match self.reader.read_block(i) {
                Ok(v) => {
                    self.current = v.into_iter();
                    self.current_type = t;
                }
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

fn check_index(h: &SnapshotHeader, idx: &SnapshotIndex) -> Result<()> {
    if idx.object_counts.len() != h.types.len() {
        return Err(invalid(
            "snapshot index",
            "object counts do not match the types",
        ));
    }
    let mut counts = vec![0u64; h.types.len()];
    for (i, b) in idx.blocks.iter().enumerate() {
        let c = counts
            .get_mut(b.type_index as usize)
            .ok_or_else(|| invalid("snapshot index", format!("entry {i}: type out of range")))?;
        *c += u64::from(b.count);
        if b.count == 0 || b.first() > b.last() {
            return Err(invalid("snapshot index", format!("entry {i}: malformed")));
        }
    }
    if counts != idx.object_counts {
        return Err(invalid(
            "snapshot index",
            "object counts do not match the blocks",
        ));
    }
    for pair in idx.blocks.windows(2) {
        if let [a, b] = pair
            && (a.type_index > b.type_index
                || (a.type_index == b.type_index && a.last() >= b.first()))
        {
            return Err(invalid(
                "snapshot index",
                "blocks out of (type, namespace, name) order",
            ));
        }
    }
    Ok(())
}
