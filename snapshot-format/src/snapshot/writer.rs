//! The streaming snapshot writer.

use std::io::Write;

use super::columnar::BlockBuilder;
use super::record;
use super::{
    ObjectRef, SnapshotBlockInfo, SnapshotHeader, SnapshotIndex, SnapshotObject, check_header,
};
use crate::codec::encode_into;
use crate::container::ContainerWriter;
use crate::error::{Result, invalid};
use crate::frame::{BlockType, len_u32};
use crate::header::{FileKind, SNAPSHOT_VERSION};
use crate::options::WriteOptions;

/// Streams a snapshot to a sink. Objects are pushed type by type (in header
/// order) and, within a type, in strictly increasing (namespace, name) order;
/// only the current block is held in memory.
pub struct SnapshotWriter<W: Write> {
    w: ContainerWriter<W>,
    /// Snapshot format version of the records (1, 2 or 3).
    version: u16,
    /// Version 3's block under construction (unused by versions 1 and 2,
    /// which append records to `pending`).
    columns: BlockBuilder,
    header: SnapshotHeader,
    block_bytes: usize,
    pending: Vec<u8>,
    pending_info: Option<SnapshotBlockInfo>,
    index: SnapshotIndex,
    current_type: Option<u32>,
    last_key: Option<(Option<String>, String)>,
}

impl<W: Write> SnapshotWriter<W> {
    /// Writes the preamble and header of a snapshot of the newest version
    /// ([`SNAPSHOT_VERSION`]). `header.crd_type` is computed here from
    /// `header.types`, whose order and uniqueness are checked.
    pub fn new(sink: W, header: SnapshotHeader, opts: &WriteOptions) -> Result<Self> {
        Self::with_version(sink, header, opts, SNAPSHOT_VERSION)
    }

    /// Like [`SnapshotWriter::new`], writing snapshot format `version`: 3
    /// (the default), 2 (row-oriented records) or 1 (records repeat
    /// namespace, name, uid and resourceVersion beside the JSON). Older
    /// versions are for readers of older releases and for tests.
    pub fn with_version(
        sink: W,
        mut header: SnapshotHeader,
        opts: &WriteOptions,
        version: u16,
    ) -> Result<Self> {
        if !(1..=SNAPSHOT_VERSION).contains(&version) {
            return Err(invalid(
                "snapshot writer",
                format!("cannot write snapshot version {version} (1..={SNAPSHOT_VERSION})"),
            ));
        }
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
            version,
            &hbytes,
            opts.level,
            opts.dictionary.as_deref(),
        )?;
        let object_counts = vec![0; header.types.len()];
        Ok(Self {
            w,
            version,
            columns: BlockBuilder::default(),
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
        let block_len = if self.version >= 3 {
            self.columns.push(obj)?;
            self.columns.json_bytes()
        } else {
            record::encode(self.version, obj, &mut self.pending)?;
            self.pending.len()
        };
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
        let full = block_len >= self.block_bytes || info.count == u32::MAX;
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
        if self.version >= 3 {
            self.columns.finish(&mut self.pending)?;
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
