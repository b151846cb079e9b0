//! Objects nested deeper than serde_json's recursion limit (128).
//!
//! A schemaless custom resource may nest as deep as the API server lets a
//! request body nest: 10,000 levels (Go's JSON decoder refuses 10,001 with
//! "exceeded max depth"; `reliability_odd_objects` checks it). What is
//! recorded is a few levels deeper still, as `managedFields[].fieldsV1`
//! mirrors the object's shape under `metadata`. rewindd records such objects
//! (it never parses them); this module lets the restore side read them.
//!
//! - [`parse`] parses with serde_json's default limit first (every ordinary
//!   object, at no extra cost); only when that fails on an object deeper
//!   than the limit does it measure the depth (an iterative byte scan),
//!   refuse anything beyond [`MAX_DEPTH`] with a typed error, and parse
//!   again without the limit on a thread whose stack is sized for that
//!   depth. So neither a recorded deep object nor a hostile one can
//!   overflow the caller's stack while parsing.
//! - Everything else done with a `serde_json::Value` (clone, compare,
//!   serialize, drop) recurses too. [`on_stack_for`] runs such work on a
//!   stack sized for a depth, and the `rewind` binary runs its commands on
//!   [`BINARY_STACK`] stacks, enough for [`MAX_DEPTH`] in a debug build
//!   (about 3.3 KiB per level for the costliest step, parsing, measured;
//!   a release build needs a quarter of that). A library caller on a
//!   default 2 MiB thread handles a few hundred levels.

use serde::Deserialize as _;
use serde_json::Value;

/// The deepest object (in `{`/`[` levels) the restore side reads: the API
/// server's 10,000 plus room for what it adds (`managedFields`).
pub const MAX_DEPTH: usize = 10_240;

/// Stack of the `rewind` binary's runtime threads: [`MAX_DEPTH`] levels at
/// about 3.3 KiB each (debug build) with room to spare. Reserved address
/// space; only the pages a deep object touches are ever used.
pub const BINARY_STACK: usize = 64 << 20;

/// Depth up to which work stays on the caller's thread.
const INLINE_DEPTH: usize = 128;

/// Stack budgeted per level on a sized thread (twice the measured need of
/// a debug build).
const STACK_PER_LEVEL: usize = 8 << 10;

/// Stack every sized thread starts with, for the work around the recursion.
const STACK_BASE: usize = 1 << 20;

/// Errors of deep parsing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Not JSON (or JSON of the wrong shape).
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    /// Nested deeper than the restore side reads.
    #[error("nested {depth} levels deep; the limit is {MAX_DEPTH}")]
    TooDeep {
        /// The object's depth.
        depth: usize,
    },
    /// The thread for a deep object could not be started.
    #[error("cannot start a thread for a {depth}-level object: {source}")]
    Thread {
        /// The object's depth.
        depth: usize,
        /// Why.
        source: std::io::Error,
    },
}

/// Result alias of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Max nesting depth of `{`/`[` in JSON text; strings are skipped. Never
/// fails: text that is not JSON gets some number, and parsing reports it.
#[must_use]
pub fn depth_of_json(bytes: &[u8]) -> usize {
    let (mut depth, mut max, mut in_str, mut esc) = (0usize, 0usize, false, false);
    for &b in bytes {
        if in_str {
            match (esc, b) {
                (true, _) => esc = false,
                (false, b'\\') => esc = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'{' | b'[' => {
                depth += 1;
                max = max.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Nesting depth of a value (a scalar is 0), without recursion.
#[must_use]
pub fn depth_of_value(v: &Value) -> usize {
    let mut max = 0;
    let mut todo = vec![(v, 0usize)];
    while let Some((v, d)) = todo.pop() {
        match v {
            Value::Object(m) => {
                max = max.max(d + 1);
                todo.extend(m.values().map(|c| (c, d + 1)));
            }
            Value::Array(a) => {
                max = max.max(d + 1);
                todo.extend(a.iter().map(|c| (c, d + 1)));
            }
            _ => {}
        }
    }
    max
}

/// Runs `f` on a stack sized for `depth` levels: inline when shallow, else
/// on a thread of its own (joined before returning).
pub fn on_stack_for<R: Send>(depth: usize, f: impl FnOnce() -> R + Send) -> Result<R> {
    if depth <= INLINE_DEPTH {
        return Ok(f());
    }
    let stack = STACK_BASE.saturating_add(depth.saturating_mul(STACK_PER_LEVEL));
    std::thread::scope(|s| {
        let handle = std::thread::Builder::new()
            .name("rewind-deep".into())
            .stack_size(stack)
            .spawn_scoped(s, f)
            .map_err(|source| Error::Thread { depth, source })?;
        match handle.join() {
            Ok(r) => Ok(r),
            // `f` is our own code on data already checked: a panic is a bug
            // and must not be swallowed.
            Err(payload) => std::panic::resume_unwind(payload),
        }
    })
}

/// Parses JSON of any depth up to [`MAX_DEPTH`] (see the module doc).
pub fn parse(bytes: &[u8]) -> Result<Value> {
    let first = match serde_json::from_slice(bytes) {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    let depth = depth_of_json(bytes);
    // serde_json counts the same levels and stops at 128.
    if depth < INLINE_DEPTH {
        return Err(first.into());
    }
    if depth > MAX_DEPTH {
        return Err(Error::TooDeep { depth });
    }
    on_stack_for(depth, || {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        de.disable_recursion_limit();
        let v = Value::deserialize(&mut de)?;
        de.end()?;
        Ok(v)
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `depth` levels of `{"n":..}` around a string, as text.
    pub(crate) fn deep(depth: usize) -> String {
        format!("{}\"leaf\"{}", r#"{"n":"#.repeat(depth), "}".repeat(depth))
    }

    #[test]
    fn ordinary_json_parses_as_before() {
        assert_eq!(
            parse(br#"{"a":[1,{"b":"}"}]}"#).unwrap(),
            serde_json::json!({"a": [1, {"b": "}"}]})
        );
        assert!(matches!(parse(b"{\"a\":"), Err(Error::Json(_))));
        assert_eq!(depth_of_json(br#"{"a":"{{[[","b":[{}]}"#), 3);
    }

    #[test]
    fn objects_up_to_the_limit_parse_and_deeper_ones_are_refused() {
        for depth in [128, 300, MAX_DEPTH] {
            let text = deep(depth);
            assert!(serde_json::from_str::<Value>(&text).is_err() || depth < 128);
            let v = parse(text.as_bytes()).unwrap();
            // Checked, serialized and dropped on a stack sized for it.
            on_stack_for(depth, move || {
                assert_eq!(depth_of_value(&v), depth);
                assert_eq!(serde_json::to_string(&v).unwrap(), text);
            })
            .unwrap();
        }
        let e = parse(deep(MAX_DEPTH + 1).as_bytes()).unwrap_err();
        assert!(
            matches!(e, Error::TooDeep { depth } if depth == MAX_DEPTH + 1),
            "{e}"
        );
        // Far beyond: refused by the scan, the parser never recurses.
        assert!(matches!(
            parse(deep(1_000_000).as_bytes()),
            Err(Error::TooDeep { .. })
        ));
        // Deep but broken JSON is a parse error, not a crash.
        let broken = &deep(500)[..1_000];
        assert!(matches!(parse(broken.as_bytes()), Err(Error::Json(_))));
    }
}
