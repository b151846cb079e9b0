//! Snapshots: the full state of a cluster at one point.
//!
//! A snapshot is a container (`docs/FORMAT.md`, section 3) of kind `Snapshot`. Its
//! header block holds a [`SnapshotHeader`] (the point it is consistent at and
//! every resource type with its list resourceVersion); its data blocks hold
//! [`SnapshotObject`]s of one type each, sorted by (namespace, name); its
//! index block holds a [`SnapshotIndex`] with the first and last key of every
//! block, so one type, one namespace or one object can be read without
//! decoding the rest.

use std::io::Write;

use crate::codec::{Limits, decode_exact, decode_from, encode_into};
use crate::container::{BlockPos, Container, ContainerWriter};
use crate::error::{Result, invalid};
use crate::event::ResourceType;
use crate::frame::{BlockType, len_u32};
use crate::header::FileKind;
use crate::options::WriteOptions;

/// A resource type in a snapshot and the list it was taken from. Frozen for v1.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct TypeEntry {
    /// The resource type.
    pub rtype: ResourceType,
    /// resourceVersion of the list (or the last watch event) the objects are
    /// consistent with; empty when unknown.
    pub list_rv: String,
}

/// Snapshot metadata (header block). Frozen for format version 1.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct SnapshotHeader {
    /// Id of the source cluster.
    pub cluster_id: String,
    /// The snapshot holds the state after applying every event with `seq <= seq`.
    pub seq: u64,
    /// Observation time of that point, Unix milliseconds.
    pub time_ms: i64,
    /// Every resource type, sorted by (group, resource), each at most once.
    /// Sections of data blocks follow this order.
    pub types: Vec<TypeEntry>,
    /// Position in `types` of `customresourcedefinitions.apiextensions.k8s.io`:
    /// the CRDs present at this point. `None` when the type was not recorded.
    pub crd_type: Option<u32>,
}

/// One object in a snapshot. Frozen for format version 1.
#[derive(Debug, Clone, PartialEq, Eq, Hash, bincode::Encode, bincode::Decode)]
pub struct SnapshotObject {
    /// Namespace; `None` exactly when the type is cluster-scoped.
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// uid.
    pub uid: String,
    /// resourceVersion.
    pub resource_version: String,
    /// The object as JSON bytes, as the API returned them.
    pub object: Vec<u8>,
}

impl SnapshotObject {
    /// Sort key within a type.
    #[must_use]
    pub fn key(&self) -> (Option<&str>, &str) {
        (self.namespace.as_deref(), self.name.as_str())
    }
}

/// A borrowed [`SnapshotObject`], for writing without copying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectRef<'a> {
    /// Namespace; `None` exactly when the type is cluster-scoped.
    pub namespace: Option<&'a str>,
    /// Name.
    pub name: &'a str,
    /// uid.
    pub uid: &'a str,
    /// resourceVersion.
    pub resource_version: &'a str,
    /// JSON bytes.
    pub object: &'a [u8],
}

/// Index entry for one data block. Frozen for format version 1.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct SnapshotBlockInfo {
    /// Offset of the block from the start of the file.
    pub offset: u64,
    /// Length of the block including framing.
    pub len: u64,
    /// Position of the block's type in [`SnapshotHeader::types`].
    pub type_index: u32,
    /// Number of objects.
    pub count: u32,
    /// Namespace of the first object.
    pub first_namespace: Option<String>,
    /// Name of the first object.
    pub first_name: String,
    /// Namespace of the last object.
    pub last_namespace: Option<String>,
    /// Name of the last object.
    pub last_name: String,
}

impl SnapshotBlockInfo {
    fn first(&self) -> (Option<&str>, &str) {
        (self.first_namespace.as_deref(), self.first_name.as_str())
    }
    fn last(&self) -> (Option<&str>, &str) {
        (self.last_namespace.as_deref(), self.last_name.as_str())
    }
}

/// The snapshot index (index block). Frozen for format version 1.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct SnapshotIndex {
    /// One entry per data block, in file order (by type, then key).
    pub blocks: Vec<SnapshotBlockInfo>,
    /// Number of objects of each type, parallel to [`SnapshotHeader::types`].
    pub object_counts: Vec<u64>,
}

fn type_order(a: &ResourceType) -> (&str, &str) {
    (a.group.as_str(), a.resource.as_str())
}

/// Checks the header's invariants (type order, uniqueness, CRD pointer).
fn check_header(h: &SnapshotHeader) -> Result<()> {
    for pair in h.types.windows(2) {
        if let [a, b] = pair
            && type_order(&a.rtype) >= type_order(&b.rtype)
        {
            return Err(invalid(
                "snapshot header",
                format!(
                    "types not strictly sorted by (group, resource): {} then {}",
                    a.rtype.group_resource(),
                    b.rtype.group_resource()
                ),
            ));
        }
    }
    let crd = h.types.iter().position(|t| t.rtype.is_crd());
    if crd.map(|i| i as u64) != h.crd_type.map(u64::from) {
        return Err(invalid(
            "snapshot header",
            "crd_type does not point at the CRD type",
        ));
    }
    Ok(())
}

/// Streams a snapshot to a sink. Objects are pushed type by type (in header
/// order) and, within a type, in strictly increasing (namespace, name) order;
/// only the current block is held in memory.
pub struct SnapshotWriter<W: Write> {
    w: ContainerWriter<W>,
    header: SnapshotHeader,
    block_bytes: usize,
    pending: Vec<u8>,
    pending_info: Option<SnapshotBlockInfo>,
    index: SnapshotIndex,
    current_type: Option<u32>,
    last_key: Option<(Option<String>, String)>,
}

impl<W: Write> SnapshotWriter<W> {
    /// Writes the preamble and header. `header.crd_type` is computed here
    /// from `header.types`, whose order and uniqueness are checked.
    pub fn new(sink: W, mut header: SnapshotHeader, opts: &WriteOptions) -> Result<Self> {
        header.crd_type = header
            .types
            .iter()
            .position(|t| t.rtype.is_crd())
            .map(|i| len_u32(i, "type count"))
            .transpose()?;
        check_header(&header)?;
        let mut hbytes = Vec::new();
        encode_into(&header, &mut hbytes, "snapshot header")?;
        let w = ContainerWriter::new(
            sink,
            FileKind::Snapshot,
            &hbytes,
            opts.level,
            opts.dictionary.as_deref(),
        )?;
        let object_counts = vec![0; header.types.len()];
        Ok(Self {
            w,
            header,
            block_bytes: opts.block_bytes,
            pending: Vec::with_capacity(opts.block_bytes.min(64 << 20) + (1 << 16)),
            pending_info: None,
            index: SnapshotIndex {
                blocks: Vec::new(),
                object_counts,
            },
            current_type: None,
            last_key: None,
        })
    }

    /// Appends an object of type `type_index` (position in the header's types).
    pub fn push(&mut self, type_index: usize, obj: &SnapshotObject) -> Result<()> {
        self.push_ref(
            type_index,
            ObjectRef {
                namespace: obj.namespace.as_deref(),
                name: &obj.name,
                uid: &obj.uid,
                resource_version: &obj.resource_version,
                object: &obj.object,
            },
        )
    }

    /// Like [`SnapshotWriter::push`], from borrowed parts (no copy of the JSON).
    pub fn push_ref(&mut self, type_index: usize, obj: ObjectRef<'_>) -> Result<()> {
        let t = len_u32(type_index, "type index")?;
        let rtype = &self
            .header
            .types
            .get(type_index)
            .ok_or_else(|| invalid("snapshot object", format!("type index {t} out of range")))?
            .rtype;
        if rtype.namespaced != obj.namespace.is_some() {
            return Err(invalid(
                "snapshot object",
                format!(
                    "{}/{}: namespace does not match the type's scope",
                    rtype.group_resource(),
                    obj.name
                ),
            ));
        }
        match self.current_type {
            Some(c) if t < c => {
                return Err(invalid(
                    "snapshot object",
                    "types pushed out of header order",
                ));
            }
            Some(c) if t == c => {
                if let Some((ns, name)) = &self.last_key
                    && (ns.as_deref(), name.as_str()) >= (obj.namespace, obj.name)
                {
                    return Err(invalid(
                        "snapshot object",
                        format!(
                            "{:?}/{} not after {:?}/{}",
                            obj.namespace, obj.name, ns, name
                        ),
                    ));
                }
            }
            _ => {
                self.cut()?;
                self.current_type = Some(t);
            }
        }
        // Same bytes as encoding a SnapshotObject: bincode encodes &str like
        // String, &[u8] like Vec<u8>, and a tuple like a struct.
        let fields = (
            obj.namespace,
            obj.name,
            obj.uid,
            obj.resource_version,
            obj.object,
        );
        encode_into(&fields, &mut self.pending, "snapshot object")?;
        let info = self.pending_info.get_or_insert_with(|| SnapshotBlockInfo {
            offset: 0,
            len: 0,
            type_index: t,
            count: 0,
            first_namespace: obj.namespace.map(str::to_owned),
            first_name: obj.name.to_owned(),
            last_namespace: None,
            last_name: String::new(),
        });
        info.count = info.count.saturating_add(1);
        let full = self.pending.len() >= self.block_bytes || info.count == u32::MAX;
        if let Some(c) = self.index.object_counts.get_mut(type_index) {
            *c += 1;
        }
        self.last_key = Some((obj.namespace.map(str::to_owned), obj.name.to_owned()));
        if full {
            self.cut()?;
        }
        Ok(())
    }

    fn cut(&mut self) -> Result<()> {
        let Some(mut info) = self.pending_info.take() else {
            return Ok(());
        };
        if let Some((ns, name)) = &self.last_key {
            info.last_namespace.clone_from(ns);
            info.last_name.clone_from(name);
        }
        let pos = self
            .w
            .write_data(BlockType::Objects, info.count, &self.pending)?;
        self.pending.clear();
        info.offset = pos.offset;
        info.len = pos.len;
        self.index.blocks.push(info);
        Ok(())
    }

    /// Writes the last block, the index and the trailer; returns the sink.
    pub fn finish(mut self) -> Result<W> {
        self.cut()?;
        let mut ibytes = Vec::new();
        encode_into(&self.index, &mut ibytes, "snapshot index")?;
        self.w.finish(&ibytes)
    }
}

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
        let check = || -> Result<Vec<SnapshotObject>> {
            if raw.count != info.count {
                return Err(invalid(
                    "object block",
                    "object count differs from the index",
                ));
            }
            let cap = usize::try_from(raw.count).unwrap_or(0).min(payload.len());
            let mut objs: Vec<SnapshotObject> = Vec::with_capacity(cap);
            let mut rest: &[u8] = &payload;
            for _ in 0..raw.count {
                let (o, used): (SnapshotObject, usize) = decode_from(rest, "snapshot object")?;
                rest = rest.get(used..).unwrap_or_default();
                if let Some(prev) = objs.last()
                    && prev.key() >= o.key()
                {
                    return Err(invalid(
                        "object block",
                        "objects not sorted by (namespace, name)",
                    ));
                }
                if Some(o.namespace.is_some()) != namespaced {
                    return Err(invalid(
                        "object block",
                        "namespace does not match the type's scope",
                    ));
                }
                objs.push(o);
            }
            if !rest.is_empty() {
                return Err(invalid("object block", "bytes after the last object"));
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
