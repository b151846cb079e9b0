//! Reads `metadata.name`, `metadata.namespace`, `metadata.uid` and
//! `metadata.resourceVersion` out of an object's JSON bytes, in one pass and
//! without building a tree.
//!
//! Snapshot format version 2 leaves a record's name, namespace, uid and
//! resourceVersion out when the JSON already holds them (`docs/FORMAT.md`,
//! section 8.2), so the writer and every reader must agree, byte for byte, on
//! what "the JSON's `metadata.uid`" is. This module is that definition
//! (frozen with version 2):
//!
//! - the input is one JSON text (RFC 8259) in UTF-8, optionally surrounded by
//!   whitespace (space, tab, LF, CR), and its value is an object;
//! - the whole text is valid: strings hold no raw control characters
//!   (`< 0x20`), escapes are the RFC's (`\uXXXX` surrogates must pair),
//!   numbers follow the RFC grammar and are finite as IEEE-754 doubles, and
//!   arrays and objects nest at most [`MAX_DEPTH`] deep (serde_json's limit);
//! - the top-level object has **exactly one** member whose key (after
//!   unescaping) is `metadata`, and that member's value is an object;
//! - that object has **exactly one** member `name` (resp. `namespace`, `uid`,
//!   `resourceVersion`), and its value is a string. The result is the string,
//!   unescaped. Each of the four is looked up on its own.
//!
//! Anything else (invalid JSON, a missing member, a duplicate key on the
//! path, a value that is not a string) means "no value": duplicate keys are
//! refused rather than resolved, because JSON parsers disagree on them
//! (serde_json keeps the last, others the first). On valid, duplicate-free
//! JSON the result equals `serde_json::Value`'s
//! `v["metadata"]["uid"].as_str()`; the property tests check this.
//!
//! [`extract`] is total: any bytes give `Some` or `None`, never a panic.

use std::borrow::Cow;

/// Deepest nesting of arrays and objects accepted, the top-level object
/// counting as 1. serde_json refuses the 128th level; so does this scanner.
pub const MAX_DEPTH: u32 = 127;

/// The values found in an object's JSON; `None` where the rule (module doc)
/// gives no value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JsonMeta<'a> {
    /// `metadata.name`, unescaped.
    pub name: Option<Cow<'a, str>>,
    /// `metadata.namespace`, unescaped.
    pub namespace: Option<Cow<'a, str>>,
    /// `metadata.uid`, unescaped.
    pub uid: Option<Cow<'a, str>>,
    /// `metadata.resourceVersion`, unescaped.
    pub resource_version: Option<Cow<'a, str>>,
}

/// Scans `json`: `None` when it is not a valid JSON object text (module
/// doc), otherwise the `metadata` values it holds.
#[must_use]
pub fn extract(json: &[u8]) -> Option<JsonMeta<'_>> {
    // Checking UTF-8 once up front lets string contents be borrowed as &str
    // (every slice taken below starts and ends at an ASCII quote).
    std::str::from_utf8(json).ok()?;
    let mut s = Scanner { b: json, i: 0 };
    s.ws();
    let mut found = JsonMeta::default();
    let mut metadata_members = 0u32;
    s.object(1, |s, key, depth| {
        if !key.is("metadata") {
            return s.value(depth);
        }
        metadata_members += 1;
        if s.peek() == Some(b'{') {
            found = s.metadata(depth)?;
        } else {
            s.value(depth)?;
        }
        Some(())
    })?;
    s.ws();
    if s.i != json.len() {
        return None;
    }
    if metadata_members != 1 {
        return Some(JsonMeta::default());
    }
    Some(found)
}

/// A string token as it appears between its quotes.
#[derive(Clone, Copy)]
struct Str<'a> {
    raw: &'a [u8],
    /// Whether it holds a backslash (so it must be unescaped to compare).
    escaped: bool,
}

impl<'a> Str<'a> {
    fn decode(self) -> Option<Cow<'a, str>> {
        if self.escaped {
            unescape(self.raw).map(Cow::Owned)
        } else {
            std::str::from_utf8(self.raw).ok().map(Cow::Borrowed)
        }
    }

    fn is(self, want: &str) -> bool {
        if self.escaped {
            unescape(self.raw).as_deref() == Some(want)
        } else {
            self.raw == want.as_bytes()
        }
    }
}

/// One wanted member of `metadata`: how often its key appeared, and its
/// string value when the last occurrence was a string.
#[derive(Default)]
struct Wanted<'a> {
    count: u32,
    value: Option<Str<'a>>,
}

impl<'a> Wanted<'a> {
    fn get(self) -> Option<Cow<'a, str>> {
        if self.count == 1 {
            self.value.and_then(Str::decode)
        } else {
            None
        }
    }
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn expect(&mut self, c: u8) -> Option<()> {
        (self.bump()? == c).then_some(())
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    /// Any value; `depth` is the nesting of the container holding it.
    fn value(&mut self, depth: u32) -> Option<()> {
        match self.peek()? {
            b'{' => self.object(depth + 1, |s, _, d| s.value(d)),
            b'[' => self.array(depth + 1),
            b'"' => self.string().map(drop),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    /// An object at nesting `depth`; `member` reads each member's value
    /// (positioned on its first byte) given the key and `depth`.
    fn object(
        &mut self,
        depth: u32,
        mut member: impl FnMut(&mut Self, Str<'a>, u32) -> Option<()>,
    ) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.expect(b'{')?;
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Some(());
        }
        loop {
            let key = self.string()?;
            self.ws();
            self.expect(b':')?;
            self.ws();
            member(self, key, depth)?;
            self.ws();
            match self.bump()? {
                b',' => self.ws(),
                b'}' => return Some(()),
                _ => return None,
            }
        }
    }

    fn array(&mut self, depth: u32) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.expect(b'[')?;
        self.ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            return Some(());
        }
        loop {
            self.value(depth)?;
            self.ws();
            match self.bump()? {
                b',' => self.ws(),
                b']' => return Some(()),
                _ => return None,
            }
        }
    }

    /// The `metadata` object (a member of the object at `depth`).
    fn metadata(&mut self, depth: u32) -> Option<JsonMeta<'a>> {
        let mut name = Wanted::default();
        let mut namespace = Wanted::default();
        let mut uid = Wanted::default();
        let mut rv = Wanted::default();
        self.object(depth + 1, |s, key, d| {
            let slot = if key.is("name") {
                &mut name
            } else if key.is("namespace") {
                &mut namespace
            } else if key.is("uid") {
                &mut uid
            } else if key.is("resourceVersion") {
                &mut rv
            } else {
                return s.value(d);
            };
            slot.count += 1;
            if s.peek() == Some(b'"') {
                slot.value = Some(s.string()?);
            } else {
                slot.value = None;
                s.value(d)?;
            }
            Some(())
        })?;
        Some(JsonMeta {
            name: name.get(),
            namespace: namespace.get(),
            uid: uid.get(),
            resource_version: rv.get(),
        })
    }

    fn string(&mut self) -> Option<Str<'a>> {
        self.expect(b'"')?;
        let start = self.i;
        let mut escaped = false;
        loop {
            let rest = self.b.get(self.i..)?;
            self.i += skip_plain(rest)?;
            match self.bump()? {
                b'"' => {
                    let raw = self.b.get(start..self.i - 1)?;
                    return Some(Str { raw, escaped });
                }
                b'\\' => {
                    escaped = true;
                    self.escape()?;
                }
                _ => return None, // a raw control character
            }
        }
    }

    /// Checks one escape (after its backslash).
    fn escape(&mut self) -> Option<()> {
        match self.bump()? {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Some(()),
            b'u' => {
                let rest = self.b.get(self.i..)?;
                let (_, used) = unicode_escape(rest)?;
                self.i += used;
                Some(())
            }
            _ => None,
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.i.checked_add(word.len())?;
        (self.b.get(self.i..end)? == word).then_some(())?;
        self.i = end;
        Some(())
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        self.i - start
    }

    fn number(&mut self) -> Option<()> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek()? {
            b'0' => self.i += 1,
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        let mut float = false;
        if self.peek() == Some(b'.') {
            self.i += 1;
            float = true;
            if self.digits() == 0 {
                return None;
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            float = true;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if self.digits() == 0 {
                return None;
            }
        }
        // serde_json reads integers beyond u64/i64 and all fractions as f64
        // and refuses infinities; 18 digits always fit an i64.
        let token = self.b.get(start..self.i)?;
        if float || token.len() > 18 {
            let v: f64 = std::str::from_utf8(token).ok()?.parse().ok()?;
            if !v.is_finite() {
                return None;
            }
        }
        Some(())
    }
}

/// Length of the run of bytes at the start of `s` that end no string: not a
/// quote, a backslash or a control character. `None` when `s` has no such
/// byte (the string is unterminated).
fn skip_plain(s: &[u8]) -> Option<usize> {
    // Eight bytes at a time: most of a Kubernetes object is long plain
    // strings (annotations, certificates, managedFields keys).
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let mut n = 0;
    for chunk in s.chunks_exact(8) {
        let Ok(w) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let x = u64::from_le_bytes(w);
        // The "has a byte below n" word tests (Bit Twiddling Hacks): nonzero
        // exactly when some byte of the word is a quote, a backslash or
        // below 0x20. The bytes are then found one by one below.
        let below = |v: u64, n: u64| v.wrapping_sub(LO * n) & !v & HI;
        let quote = below(x ^ (LO * u64::from(b'"')), 1);
        let slash = below(x ^ (LO * u64::from(b'\\')), 1);
        if quote | slash | below(x, 0x20) != 0 {
            break;
        }
        n += 8;
    }
    let tail = s.get(n..)?;
    let m = tail
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
    Some(n + m)
}

fn hex4(s: &[u8]) -> Option<u32> {
    let digits = s.get(..4)?;
    digits.iter().try_fold(0u32, |acc, &c| {
        let d = char::from(c).to_digit(16)?;
        Some(acc << 4 | d)
    })
}

/// Decodes the rest of a `\u` escape at the start of `s` (the four hex
/// digits, and the second `\uXXXX` of a surrogate pair): the character and
/// the bytes used. Lone or reversed surrogates are errors, as in serde_json.
fn unicode_escape(s: &[u8]) -> Option<(char, usize)> {
    let hi = hex4(s)?;
    match hi {
        0xD800..=0xDBFF => {
            if s.get(4..6)? != b"\\u" {
                return None;
            }
            let lo = hex4(s.get(6..)?)?;
            if !(0xDC00..=0xDFFF).contains(&lo) {
                return None;
            }
            let c = 0x1_0000 + ((hi - 0xD800) << 10 | (lo - 0xDC00));
            Some((char::from_u32(c)?, 10))
        }
        0xDC00..=0xDFFF => None,
        _ => Some((char::from_u32(hi)?, 4)),
    }
}

/// Unescapes the contents of a string token already checked by the scanner.
fn unescape(raw: &[u8]) -> Option<String> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while !rest.is_empty() {
        let plain = rest.iter().position(|&c| c == b'\\').unwrap_or(rest.len());
        out.push_str(std::str::from_utf8(rest.get(..plain)?).ok()?);
        rest = rest.get(plain..)?;
        let Some((&b'\\', after)) = rest.split_first() else {
            break;
        };
        let (&e, after) = after.split_first()?;
        rest = after;
        let c = match e {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let (c, used) = unicode_escape(rest)?;
                rest = rest.get(used..)?;
                c
            }
            _ => return None,
        };
        out.push(c);
    }
    Some(out)
}

#[cfg(test)]
mod tests;
