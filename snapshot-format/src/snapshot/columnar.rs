//! Columnar object blocks: the data block payload of snapshot format
//! version 3 (`docs/FORMAT.md`, section 8.3).
//!
//! Objects of one type repeat the same keys in the same order, and the
//! values at one path (every `metadata.uid`, every `spec.displayName`) look
//! alike. Stored row by row, zstd pays a match for every repeated piece of
//! structure and models uids, names and timestamps with one set of
//! statistics. Version 3 splits each block into streams:
//!
//! - **meta**: per object, the record fields of version 2 (namespace, name,
//!   uid, resourceVersion, each left out when the JSON holds it) and a mode:
//!   columnar, or raw JSON bytes for an object this encoding cannot
//!   reproduce byte for byte;
//! - **shape**: per columnar object, its structure as one-byte tags and key
//!   references, nearly identical from one object to the next;
//! - **keys**: each object key the first time it appears at its path;
//! - **columns**: one per path (keys from the root, array elements
//!   collapsed), holding the raw text of the strings and numbers found there.
//!
//! The reader rebuilds each object's JSON exactly: it accepts only compact
//! JSON (no whitespace outside strings, which is how the Kubernetes API
//! serializes) and keeps strings and numbers as their raw bytes, escapes
//! included. Anything else is stored raw.

use std::collections::HashMap;

use super::{ObjectRef, record};
use crate::codec::{decode_from, encode_into};
use crate::error::{Result, invalid};

/// Deepest nesting of arrays and objects a columnar object may have; deeper
/// objects are stored raw. The reader refuses deeper shapes.
pub(crate) const MAX_DEPTH: usize = 128;

/// Shape tags.
const END: u8 = 0;
const OBJECT: u8 = 1;
const ARRAY: u8 = 2;
const STRING: u8 = 3;
const NUMBER: u8 = 4;
const TRUE: u8 = 5;
const FALSE: u8 = 6;
const NULL: u8 = 7;

/// Ends every key in the keys stream and every value in a column. JSON text
/// that this encoding accepts never holds a raw zero byte.
const TERM: u8 = 0;

/// Object modes in the meta stream.
const MODE_COLUMNAR: u8 = 0;
const MODE_RAW: u8 = 1;

/// Sentinel for "no child path yet".
const NONE: u32 = u32::MAX;

/// One token of compact JSON; ranges index the object's bytes.
#[derive(Debug, Clone, Copy)]
enum Token {
    ObjStart,
    ObjEnd,
    ArrStart,
    ArrEnd,
    Key(usize, usize),
    Str(usize, usize),
    Num(usize, usize),
    True,
    False,
    Null,
}

/// Splits `json` into tokens when the columnar encoding reproduces it byte
/// for byte (compact JSON, no zero byte, at most [`MAX_DEPTH`] deep);
/// `false` otherwise. `out` is cleared first.
fn tokenize(json: &[u8], out: &mut Vec<Token>) -> bool {
    out.clear();
    // For each open container: is it an object?
    let mut stack: Vec<bool> = Vec::new();
    let mut i = 0usize;
    // What may come next: a value, or (inside a container) a separator.
    let mut want_value = true;
    // Inside an object, a value must be preceded by a key.
    let mut want_key = false;
    loop {
        let Some(&b) = json.get(i) else {
            return stack.is_empty() && !want_value && !out.is_empty();
        };
        if want_key {
            // Just after '{' (where '}' is also allowed) or after ','.
            if b == b'}' && matches!(out.last(), Some(Token::ObjStart)) {
                out.push(Token::ObjEnd);
                stack.pop();
                i += 1;
                want_key = false;
                want_value = false;
                continue;
            }
            if b != b'"' {
                return false;
            }
            let Some(end) = string_end(json, i + 1) else {
                return false;
            };
            if json.get(end + 1) != Some(&b':') {
                return false;
            }
            out.push(Token::Key(i + 1, end));
            i = end + 2;
            want_key = false;
            want_value = true;
            continue;
        }
        if want_value {
            match b {
                b'{' => {
                    if stack.len() >= MAX_DEPTH {
                        return false;
                    }
                    stack.push(true);
                    out.push(Token::ObjStart);
                    i += 1;
                    want_key = true;
                    want_value = false;
                    continue;
                }
                b'[' => {
                    if stack.len() >= MAX_DEPTH {
                        return false;
                    }
                    stack.push(false);
                    out.push(Token::ArrStart);
                    i += 1;
                    // An empty array closes at once.
                    if json.get(i) == Some(&b']') {
                        stack.pop();
                        out.push(Token::ArrEnd);
                        i += 1;
                        want_value = false;
                    }
                    continue;
                }
                b'"' => {
                    let Some(end) = string_end(json, i + 1) else {
                        return false;
                    };
                    out.push(Token::Str(i + 1, end));
                    i = end + 1;
                }
                b'-' | b'0'..=b'9' => {
                    let start = i;
                    while json.get(i).is_some_and(|c| {
                        matches!(c, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
                    }) {
                        i += 1;
                    }
                    out.push(Token::Num(start, i));
                }
                b't' if json.get(i..i + 4) == Some(b"true") => {
                    out.push(Token::True);
                    i += 4;
                }
                b'f' if json.get(i..i + 5) == Some(b"false") => {
                    out.push(Token::False);
                    i += 5;
                }
                b'n' if json.get(i..i + 4) == Some(b"null") => {
                    out.push(Token::Null);
                    i += 4;
                }
                _ => return false,
            }
            want_value = false;
            continue;
        }
        // After a value: a separator, a close, or the end of the text.
        match (b, stack.last()) {
            (b',', Some(true)) => want_key = true,
            (b',', Some(false)) => want_value = true,
            (b'}', Some(true)) => {
                stack.pop();
                out.push(Token::ObjEnd);
            }
            (b']', Some(false)) => {
                stack.pop();
                out.push(Token::ArrEnd);
            }
            _ => return false,
        }
        i += 1;
    }
}

/// Position of the quote closing the string whose content starts at
/// `from`; `None` when it is unterminated or holds a zero byte (the stream
/// terminator; other control bytes pass through as they are).
fn string_end(json: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    loop {
        let rest = json.get(i..)?;
        i += memchr::memchr3(b'"', b'\\', TERM, rest)?;
        match json.get(i)? {
            b'"' => return Some(i),
            b'\\' => {
                if *json.get(i + 1)? == TERM {
                    return None;
                }
                i += 2;
            }
            _ => return None,
        }
    }
}

/// A path as the encoder tracks it.
#[derive(Default)]
struct EncPath {
    keys: Vec<Box<[u8]>>,
    key_index: HashMap<Box<[u8]>, u32>,
    /// Child path of each key, parallel to `keys`.
    key_child: Vec<u32>,
    elem_child: Option<u32>,
    column: Vec<u8>,
    /// The key index expected next in the object being encoded: objects at
    /// one path list their keys in the same order, so this saves a hash.
    guess: u32,
}

/// Builds one columnar block payload from objects pushed in order.
#[derive(Default)]
pub(crate) struct BlockBuilder {
    meta: Vec<u8>,
    shape: Vec<u8>,
    keys: Vec<u8>,
    paths: Vec<EncPath>,
    tokens: Vec<Token>,
    /// Object JSON bytes pushed since the last [`BlockBuilder::finish`].
    json_bytes: usize,
    /// Open containers of the object being written: path, and whether it
    /// is an array (whose elements share one path) rather than an object.
    stack: Vec<(u32, bool)>,
    scratch: EncPath,
}

/// The record fields of one object as versions 2 and 3 store them (`None`:
/// the JSON's own value).
pub(crate) type MetaFields<'a> = (
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
);

impl BlockBuilder {
    /// Object JSON bytes in the block so far.
    pub(crate) fn json_bytes(&self) -> usize {
        self.json_bytes
    }

    /// Appends one object.
    pub(crate) fn push(&mut self, obj: ObjectRef<'_>) -> Result<()> {
        let json = obj.object;
        self.json_bytes = self.json_bytes.saturating_add(json.len());
        let mut tokens = std::mem::take(&mut self.tokens);
        let columnar = tokenize(json, &mut tokens);
        let mode = if columnar { MODE_COLUMNAR } else { MODE_RAW };
        let (ns, name, uid, rv) = record::elide_v3(obj, columnar);
        encode_into(
            &(ns, name, uid, rv, mode),
            &mut self.meta,
            "snapshot object",
        )?;
        if columnar {
            self.emit(json, &tokens);
        } else {
            encode_into(&json, &mut self.meta, "snapshot object")?;
        }
        self.tokens = tokens;
        Ok(())
    }

    /// A path's child for a new key or array element.
    fn new_path(&mut self) -> u32 {
        let id = u32::try_from(self.paths.len()).unwrap_or(NONE);
        self.paths.push(EncPath::default());
        id
    }

    fn path(&mut self, id: u32) -> &mut EncPath {
        // Ids come from `new_path`, so the path exists; `scratch` only
        // keeps this total.
        match self.paths.get_mut(id as usize) {
            Some(p) => p,
            None => &mut self.scratch,
        }
    }

    /// Writes a tokenized object to the shape, keys and columns.
    fn emit(&mut self, json: &[u8], tokens: &[Token]) {
        if self.paths.is_empty() {
            self.new_path();
        }
        self.stack.clear();
        // Path of the value that comes next.
        let mut at: u32 = 0;
        for &t in tokens {
            // In an array, each element starts at the array's element path.
            if let Some(&(arr, true)) = self.stack.last()
                && !matches!(t, Token::ArrEnd)
            {
                at = match self.path(arr).elem_child {
                    Some(c) => c,
                    None => {
                        let c = self.new_path();
                        self.path(arr).elem_child = Some(c);
                        c
                    }
                };
            }
            match t {
                Token::ObjStart => {
                    self.shape.push(OBJECT);
                    self.path(at).guess = 0;
                    self.stack.push((at, false));
                }
                Token::ArrStart => {
                    self.shape.push(ARRAY);
                    self.stack.push((at, true));
                }
                Token::ObjEnd | Token::ArrEnd => {
                    self.shape.push(END);
                    self.stack.pop();
                }
                Token::Key(s, e) => {
                    let key = json.get(s..e).unwrap_or_default();
                    let obj = self.stack.last().map_or(0, |&(p, _)| p);
                    at = self.key_ref(obj, key);
                }
                Token::Str(s, e) => {
                    self.shape.push(STRING);
                    let col = &mut self.path(at).column;
                    col.extend_from_slice(json.get(s..e).unwrap_or_default());
                    col.push(TERM);
                }
                Token::Num(s, e) => {
                    self.shape.push(NUMBER);
                    let col = &mut self.path(at).column;
                    col.extend_from_slice(json.get(s..e).unwrap_or_default());
                    col.push(TERM);
                }
                Token::True => self.shape.push(TRUE),
                Token::False => self.shape.push(FALSE),
                Token::Null => self.shape.push(NULL),
            }
        }
    }

    /// Emits the reference to `key` in the object at path `obj` (adding the
    /// key to the path's table the first time) and returns its child path.
    fn key_ref(&mut self, obj: u32, key: &[u8]) -> u32 {
        let p = self.path(obj);
        let g = p.guess as usize;
        let found = if p.keys.get(g).is_some_and(|k| **k == *key) {
            u32::try_from(g).ok()
        } else {
            p.key_index.get(key).copied()
        };
        let (idx, child) = match found {
            Some(i) => (i, p.key_child.get(i as usize).copied().unwrap_or(NONE)),
            None => {
                let i = u32::try_from(p.keys.len()).unwrap_or(NONE);
                p.keys.push(key.into());
                p.key_index.insert(key.into(), i);
                self.keys.extend_from_slice(key);
                self.keys.push(TERM);
                let c = self.new_path();
                self.path(obj).key_child.push(c);
                (i, c)
            }
        };
        self.path(obj).guess = idx.saturating_add(1);
        write_varint(&mut self.shape, u64::from(idx) + 1);
        child
    }

    /// Writes the block payload to `out` (cleared first) and resets the
    /// builder for the next block.
    pub(crate) fn finish(&mut self, out: &mut Vec<u8>) -> Result<()> {
        out.clear();
        let mut lens: Vec<u64> = Vec::with_capacity(self.paths.len() + 3);
        lens.push(self.meta.len() as u64);
        lens.push(self.shape.len() as u64);
        lens.push(self.keys.len() as u64);
        lens.extend(self.paths.iter().map(|p| p.column.len() as u64));
        encode_into(&lens, out, "column lengths")?;
        out.extend_from_slice(&self.meta);
        out.extend_from_slice(&self.shape);
        out.extend_from_slice(&self.keys);
        for p in &self.paths {
            out.extend_from_slice(&p.column);
        }
        self.meta.clear();
        self.shape.clear();
        self.keys.clear();
        self.paths.clear();
        self.json_bytes = 0;
        Ok(())
    }
}

fn write_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(u8::try_from(v & 0x7f).unwrap_or(0) | 0x80);
        v >>= 7;
    }
    out.push(u8::try_from(v).unwrap_or(0));
}

/// The record fields of one decoded object, before the JSON fills in the
/// ones left out.
pub(crate) struct DecodedRecord {
    pub(crate) namespace: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) uid: Option<String>,
    pub(crate) resource_version: Option<String>,
    pub(crate) object: Vec<u8>,
    /// For a columnar object: where in `object` the string values of
    /// `metadata.namespace`, `.name`, `.uid` and `.resourceVersion` are (the
    /// first of each, without quotes); `None` for a raw object.
    pub(crate) found: Option<[Option<(usize, usize)>; 4]>,
}

/// Roles of the paths whose values fill elided record fields, as indexes
/// into [`DecodedRecord::found`].
const ROLES: [&[u8]; 4] = [b"namespace", b"name", b"uid", b"resourceVersion"];

/// A path as the decoder tracks it.
struct DecPath {
    /// Key ranges in the keys stream.
    keys: Vec<(usize, usize)>,
    key_child: Vec<u32>,
    elem_child: u32,
    /// Index into [`ROLES`] plus one, or 0.
    role: u8,
    /// Read position and end of the path's column in the payload.
    pos: usize,
    end: usize,
}

/// A cursor over one stream of the payload.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn byte(&mut self, what: &'static str) -> Result<u8> {
        let b = self
            .bytes
            .get(self.pos)
            .copied()
            .ok_or_else(|| invalid("columnar block", format!("{what} ends early")))?;
        self.pos += 1;
        Ok(b)
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn varint(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte("shape")?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(invalid("columnar block", "key reference overflows"))
    }
}

/// Decodes a columnar block payload of `count` objects, whose JSON together
/// may not exceed `max_total` bytes (a shape can repeat one long key or
/// value many times, so the output is capped, not just the input).
pub(crate) fn decode_block(
    payload: &[u8],
    count: u32,
    max_total: usize,
) -> Result<Vec<DecodedRecord>> {
    let (lens, used): (Vec<u64>, usize) = decode_from(payload, "column lengths")?;
    let body = payload.get(used..).unwrap_or_default();
    let mut bounds = Vec::with_capacity(lens.len());
    let mut at = 0usize;
    for &l in &lens {
        let end = usize::try_from(l)
            .ok()
            .and_then(|l| at.checked_add(l))
            .filter(|&e| e <= body.len())
            .ok_or_else(|| invalid("columnar block", "stream lengths exceed the block"))?;
        bounds.push((at, end));
        at = end;
    }
    if at != body.len() {
        return Err(invalid("columnar block", "bytes after the last column"));
    }
    let (meta_r, shape_r, keys_r) = match bounds.get(..3) {
        Some(&[m, s, k]) => (m, s, k),
        _ => return Err(invalid("columnar block", "fewer than three streams")),
    };
    let stream = |(s, e): (usize, usize)| body.get(s..e).unwrap_or_default();
    let mut meta: &[u8] = stream(meta_r);
    let mut shape = Cursor {
        bytes: stream(shape_r),
        pos: 0,
    };
    let keys_bytes = stream(keys_r);
    let mut keys_pos = 0usize;
    let columns = bounds.get(3..).unwrap_or_default();
    let mut paths: Vec<DecPath> = Vec::new();
    let mut total = 0usize;
    let cap = usize::try_from(count).unwrap_or(0).min(meta.len());
    let mut out = Vec::with_capacity(cap);
    let mut stack: Vec<(bool, u32, bool)> = Vec::new();
    let mut meta_path = NONE;
    let mut last_len = 0usize;
    for _ in 0..count {
        type Fields = (
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            u8,
        );
        let ((namespace, name, uid, resource_version, mode), used): (Fields, usize) =
            decode_from(meta, "snapshot object")?;
        meta = meta.get(used..).unwrap_or_default();
        let (object, found) = match mode {
            MODE_RAW => {
                let (o, used): (Vec<u8>, usize) = decode_from(meta, "snapshot object")?;
                meta = meta.get(used..).unwrap_or_default();
                (o, None)
            }
            MODE_COLUMNAR => {
                // Objects in a block are alike: the last one's size is a good
                // first allocation.
                let mut json = Vec::with_capacity(last_len.min(max_total));
                let mut d = Decoder {
                    body,
                    shape: &mut shape,
                    keys: keys_bytes,
                    keys_pos: &mut keys_pos,
                    columns,
                    paths: &mut paths,
                    stack: &mut stack,
                    out: &mut json,
                    budget: max_total.saturating_sub(total),
                    meta_path: &mut meta_path,
                    found: [None; 4],
                };
                d.object()?;
                let found = d.found;
                last_len = json.len();
                (json, Some(found))
            }
            m => {
                return Err(invalid(
                    "columnar block",
                    format!("unknown object mode {m}"),
                ));
            }
        };
        total = total.saturating_add(object.len());
        if total > max_total {
            return Err(invalid(
                "columnar block",
                format!("objects exceed {max_total} bytes"),
            ));
        }
        out.push(DecodedRecord {
            namespace,
            name,
            uid,
            resource_version,
            object,
            found,
        });
    }
    if !meta.is_empty() {
        return Err(invalid("columnar block", "meta stream has bytes left"));
    }
    if shape.pos != shape.bytes.len() {
        return Err(invalid("columnar block", "shape stream has bytes left"));
    }
    if keys_pos != keys_bytes.len() {
        return Err(invalid("columnar block", "keys stream has bytes left"));
    }
    if paths.len() != columns.len() {
        return Err(invalid(
            "columnar block",
            format!("{} columns for {} paths", columns.len(), paths.len()),
        ));
    }
    if let Some(i) = paths.iter().position(|p| p.pos != p.end) {
        return Err(invalid(
            "columnar block",
            format!("column {i} has bytes left"),
        ));
    }
    Ok(out)
}

/// Rebuilds one object's JSON from the shared streams.
struct Decoder<'s, 'b> {
    body: &'b [u8],
    shape: &'s mut Cursor<'b>,
    keys: &'b [u8],
    keys_pos: &'s mut usize,
    columns: &'b [(usize, usize)],
    paths: &'s mut Vec<DecPath>,
    stack: &'s mut Vec<(bool, u32, bool)>,
    out: &'s mut Vec<u8>,
    /// Bytes this object may still grow by.
    budget: usize,
    /// The path of the top-level `metadata` member, once seen.
    meta_path: &'s mut u32,
    found: [Option<(usize, usize)>; 4],
}

impl Decoder<'_, '_> {
    fn new_path(&mut self) -> Result<u32> {
        let i = self.paths.len();
        let &(pos, end) = self
            .columns
            .get(i)
            .ok_or_else(|| invalid("columnar block", "more paths than columns"))?;
        self.paths.push(DecPath {
            keys: Vec::new(),
            key_child: Vec::new(),
            elem_child: NONE,
            role: 0,
            pos,
            end,
        });
        u32::try_from(i).map_err(|_| invalid("columnar block", "too many paths"))
    }

    fn path(&mut self, id: u32) -> Result<&mut DecPath> {
        self.paths
            .get_mut(id as usize)
            .ok_or_else(|| invalid("columnar block", "path out of range"))
    }

    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        if bytes.len() > self.budget {
            return Err(invalid(
                "columnar block",
                "objects exceed the block size limit",
            ));
        }
        self.budget -= bytes.len();
        self.out.extend_from_slice(bytes);
        Ok(())
    }

    /// The next value of path `p`'s column.
    fn value(&mut self, p: u32) -> Result<()> {
        let body = self.body;
        let path = self.path(p)?;
        let col = body.get(path.pos..path.end).unwrap_or_default();
        let len = memchr::memchr(TERM, col)
            .ok_or_else(|| invalid("columnar block", format!("column {p} ends early")))?;
        let (s, e) = (path.pos, path.pos + len);
        path.pos = e + 1;
        self.put(body.get(s..e).unwrap_or_default())
    }

    fn object(&mut self) -> Result<()> {
        if self.paths.is_empty() {
            self.new_path()?;
        }
        self.stack.clear();
        // Path of the value to read next; `None` inside a container between
        // members or elements.
        let mut want: Option<u32> = Some(0);
        loop {
            if let Some(p) = want.take() {
                match self.shape.byte("shape")? {
                    OBJECT | ARRAY if self.stack.len() >= MAX_DEPTH => {
                        return Err(invalid("columnar block", "shape nests too deep"));
                    }
                    OBJECT => {
                        self.put(b"{")?;
                        self.stack.push((true, p, true));
                    }
                    ARRAY => {
                        self.put(b"[")?;
                        self.stack.push((false, p, true));
                    }
                    STRING => {
                        self.put(b"\"")?;
                        let start = self.out.len();
                        self.value(p)?;
                        let role = self.path(p)?.role;
                        if let Some(slot) = role
                            .checked_sub(1)
                            .and_then(|r| self.found.get_mut(usize::from(r)))
                            && slot.is_none()
                        {
                            *slot = Some((start, self.out.len()));
                        }
                        self.put(b"\"")?;
                    }
                    NUMBER => {
                        let before = self.out.len();
                        self.value(p)?;
                        if self.out.len() == before {
                            return Err(invalid("columnar block", "empty number"));
                        }
                    }
                    TRUE => self.put(b"true")?,
                    FALSE => self.put(b"false")?,
                    NULL => self.put(b"null")?,
                    t => {
                        return Err(invalid("columnar block", format!("unknown shape tag {t}")));
                    }
                }
            }
            let Some(&mut (is_obj, p, ref mut first)) = self.stack.last_mut() else {
                return Ok(());
            };
            let was_first = std::mem::replace(first, false);
            if is_obj {
                let k = self.shape.varint()?;
                if k == 0 {
                    self.put(b"}")?;
                    self.stack.pop();
                    continue;
                }
                if !was_first {
                    self.put(b",")?;
                }
                let (s, e, child) = self.key(p, k - 1)?;
                self.put(b"\"")?;
                let keys = self.keys;
                self.put(keys.get(s..e).unwrap_or_default())?;
                self.put(b"\":")?;
                want = Some(child);
            } else {
                if self.shape.peek() == Some(END) {
                    self.shape.pos += 1;
                    self.put(b"]")?;
                    self.stack.pop();
                    continue;
                }
                if !was_first {
                    self.put(b",")?;
                }
                let c = match self.path(p)?.elem_child {
                    NONE => {
                        let c = self.new_path()?;
                        self.path(p)?.elem_child = c;
                        c
                    }
                    c => c,
                };
                want = Some(c);
            }
        }
    }

    /// Key `k` of path `p`: its range in the keys stream and its child path,
    /// reading the key from the stream when `k` is the next new one.
    fn key(&mut self, p: u32, k: u64) -> Result<(usize, usize, u32)> {
        let path = self.path(p)?;
        let n = path.keys.len() as u64;
        if k < n {
            let i = usize::try_from(k).unwrap_or(usize::MAX);
            let (s, e) = path.keys.get(i).copied().unwrap_or_default();
            let c = path.key_child.get(i).copied().unwrap_or(NONE);
            return Ok((s, e, c));
        }
        if k > n {
            return Err(invalid(
                "columnar block",
                format!("key reference {k} past the {n} keys of path {p}"),
            ));
        }
        let s = *self.keys_pos;
        let rest = self.keys.get(s..).unwrap_or_default();
        let len = memchr::memchr(TERM, rest)
            .ok_or_else(|| invalid("columnar block", "keys stream ends early"))?;
        *self.keys_pos = s + len + 1;
        let c = self.new_path()?;
        let key = self.keys.get(s..s + len).unwrap_or_default();
        if p == 0 && key == b"metadata" && *self.meta_path == NONE {
            *self.meta_path = c;
        } else if p == *self.meta_path
            && let Some(r) = ROLES.iter().position(|&k| k == key)
        {
            self.path(c)?.role = u8::try_from(r + 1).unwrap_or(0);
        }
        let path = self.path(p)?;
        path.keys.push((s, s + len));
        path.key_child.push(c);
        Ok((s, s + len, c))
    }
}

#[cfg(test)]
mod tests;
