//! `json_meta::extract` against serde_json: on generated JSON (any key
//! order, duplicate keys, escapes, whitespace), on mutations of it, and on
//! arbitrary bytes.
//!
//! The reference parses with serde_json into a tree that keeps duplicate keys
//! (`J`), then applies the module's rule: exactly one `metadata`, an object,
//! holding exactly one `name` / `namespace` / `uid` / `resourceVersion`, a
//! string. Where the path has no duplicate keys, the result must also equal
//! plain `serde_json::Value["metadata"]["uid"]` (and the others).
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss,
    reason = "fixtures are small"
)]

use std::fmt;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use rewind_format::json_meta::extract;
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// A JSON value that keeps every member of an object, duplicates included.
#[derive(Debug, Clone, PartialEq)]
enum J {
    Null,
    Bool(bool),
    /// Numbers as the text to write (the reference does not need their value).
    Num(String),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

impl<'de> Deserialize<'de> for J {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = J;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_unit<E>(self) -> Result<J, E> {
                Ok(J::Null)
            }
            fn visit_bool<E>(self, b: bool) -> Result<J, E> {
                Ok(J::Bool(b))
            }
            fn visit_u64<E>(self, n: u64) -> Result<J, E> {
                Ok(J::Num(n.to_string()))
            }
            fn visit_i64<E>(self, n: i64) -> Result<J, E> {
                Ok(J::Num(n.to_string()))
            }
            fn visit_f64<E>(self, n: f64) -> Result<J, E> {
                Ok(J::Num(n.to_string()))
            }
            fn visit_str<E>(self, s: &str) -> Result<J, E> {
                Ok(J::Str(s.to_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<J, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = a.next_element()? {
                    v.push(x);
                }
                Ok(J::Arr(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<J, A::Error> {
                let mut v = Vec::new();
                while let Some(kv) = a.next_entry::<String, J>()? {
                    v.push(kv);
                }
                Ok(J::Obj(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// name, namespace, uid, resourceVersion.
type Found = [Option<String>; 4];

const WANTED: [&str; 4] = ["name", "namespace", "uid", "resourceVersion"];

/// The rule of `json_meta`, on serde_json's parse. The flag says whether the
/// path had duplicate keys.
fn reference(bytes: &[u8]) -> Option<(Found, bool)> {
    let J::Obj(top) = serde_json::from_slice::<J>(bytes).ok()? else {
        return None;
    };
    let metas: Vec<&J> = top
        .iter()
        .filter(|(k, _)| k == "metadata")
        .map(|(_, v)| v)
        .collect();
    let mut dup = metas.len() > 1;
    let members = match metas.as_slice() {
        [J::Obj(m)] => m.as_slice(),
        _ => return Some((Found::default(), dup)),
    };
    let mut one = |key: &str| {
        let vals: Vec<&J> = members
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v)
            .collect();
        dup |= vals.len() > 1;
        match vals.as_slice() {
            [J::Str(s)] => Some(s.clone()),
            _ => None,
        }
    };
    let found = WANTED.map(&mut one);
    Some((found, dup))
}

fn scanner(bytes: &[u8]) -> Option<Found> {
    extract(bytes).map(|m| {
        [m.name, m.namespace, m.uid, m.resource_version].map(|v| v.map(|c| c.into_owned()))
    })
}

fn check(bytes: &[u8]) -> Result<(), TestCaseError> {
    let want = reference(bytes);
    prop_assert_eq!(
        scanner(bytes),
        want.as_ref().map(|(p, _)| p.clone()),
        "input {:?}",
        String::from_utf8_lossy(bytes)
    );
    if let Some((found, false)) = want {
        // No duplicate on the path: plain serde_json agrees.
        let v: serde_json::Value = serde_json::from_slice(bytes).unwrap();
        let plain = WANTED.map(|k| v["metadata"][k].as_str().map(str::to_owned));
        prop_assert_eq!(found, plain);
    }
    Ok(())
}

// ---- generation: a tree, then text with random escapes and whitespace ----

fn arb_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9-]{0,12}",
        "\\PC{0,8}",
        // Characters that must or may be escaped, and non-BMP ones.
        proptest::collection::vec(
            prop_oneof![
                Just('"'),
                Just('\\'),
                Just('/'),
                Just('\n'),
                Just('\u{1}'),
                Just('\u{7f}'),
                Just('é'),
                Just('\u{2028}'),
                Just('😀'),
                Just('a'),
            ],
            0..6
        )
        .prop_map(|v| v.into_iter().collect()),
    ]
}

fn arb_key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just("metadata".to_owned()),
        3 => Just("uid".to_owned()),
        3 => Just("resourceVersion".to_owned()),
        2 => Just("name".to_owned()),
        2 => Just("namespace".to_owned()),
        1 => Just("Metadata".to_owned()),
        1 => Just("uid ".to_owned()),
        2 => arb_text(),
    ]
}

/// Keys beside the wanted ones: now and then a duplicate of them.
fn arb_key_rare() -> impl Strategy<Value = String> {
    prop_oneof![1 => arb_key(), 6 => "[a-zA-Z]{1,10}"]
}

fn arb_number() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        Just("-0".to_owned()),
        Just("0.5e-3".to_owned()),
        Just("1E+2".to_owned()),
        Just("123456789012345678901234567890".to_owned()),
        Just("1.7e308".to_owned()),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| serde_json::to_string(&f).unwrap()),
    ]
}

fn arb_json() -> impl Strategy<Value = J> {
    let leaf = prop_oneof![
        Just(J::Null),
        any::<bool>().prop_map(J::Bool),
        arb_number().prop_map(J::Num),
        arb_text().prop_map(J::Str),
    ];
    leaf.prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(J::Arr),
            proptest::collection::vec((arb_key(), inner), 0..6).prop_map(J::Obj),
        ]
    })
}

/// A top-level object: random members plus 0..=2 `metadata` objects that
/// usually hold a uid and a resourceVersion string, at random positions.
fn arb_object() -> impl Strategy<Value = J> {
    let meta_member = (
        proptest::collection::vec((arb_key_rare(), arb_json()), 0..4),
        proptest::option::weighted(0.8, arb_text()),
        proptest::option::weighted(0.8, arb_text()),
        any::<u16>(),
        proptest::option::weighted(0.6, arb_text()),
        proptest::option::weighted(0.5, arb_text()),
    )
        .prop_map(|(mut members, uid, rv, pos, name, ns)| {
            for (key, value) in [("name", name), ("namespace", ns)] {
                let n = members.len() + 1;
                if let Some(v) = value {
                    members.insert(usize::from(pos / 3) % n, (key.into(), J::Str(v)));
                }
            }
            let n = members.len() + 1;
            if let Some(u) = uid {
                members.insert(usize::from(pos) % n, ("uid".into(), J::Str(u)));
            }
            let n = members.len() + 1;
            if let Some(r) = rv {
                members.insert(
                    usize::from(pos / 7) % n,
                    ("resourceVersion".into(), J::Str(r)),
                );
            }
            J::Obj(members)
        });
    // Mostly one metadata member; sometimes none or two (ambiguous).
    let metas = (
        proptest::collection::vec((meta_member, any::<u16>()), 2..=2),
        prop_oneof![1 => Just(0usize), 6 => Just(1), 1 => Just(2)],
    )
        .prop_map(|(mut v, n)| {
            v.truncate(n);
            v
        });
    (
        proptest::collection::vec((arb_key_rare(), arb_json()), 0..5),
        metas,
    )
        .prop_map(|(mut members, metas)| {
            for (m, pos) in metas {
                let n = members.len() + 1;
                members.insert(usize::from(pos) % n, ("metadata".into(), m));
            }
            J::Obj(members)
        })
}

/// Writes `j` as JSON text, choosing escapes and whitespace from `seed`.
struct Writer {
    seed: u64,
    out: String,
}

impl Writer {
    fn roll(&mut self, n: u64) -> u64 {
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        self.seed % n
    }

    fn ws(&mut self) {
        if self.roll(4) == 0 {
            for _ in 0..self.roll(3) {
                let c = [' ', '\t', '\n', '\r'][self.roll(4) as usize];
                self.out.push(c);
            }
        }
    }

    fn string(&mut self, s: &str) {
        self.out.push('"');
        for c in s.chars() {
            let must = c == '"' || c == '\\' || (c as u32) < 0x20;
            match (must, self.roll(5)) {
                (false, 1..) => self.out.push(c),
                (_, 0) | (true, 1 | 2) => {
                    let mut units = [0u16; 2];
                    for u in c.encode_utf16(&mut units) {
                        self.out.push_str(&format!("\\u{u:04x}"));
                    }
                }
                (true, _) => match c {
                    '"' => self.out.push_str("\\\""),
                    '\\' => self.out.push_str("\\\\"),
                    '\n' => self.out.push_str("\\n"),
                    _ => self.out.push_str(&format!("\\u{:04X}", c as u32)),
                },
            }
        }
        self.out.push('"');
    }

    fn value(&mut self, j: &J) {
        self.ws();
        match j {
            J::Null => self.out.push_str("null"),
            J::Bool(b) => self.out.push_str(if *b { "true" } else { "false" }),
            J::Num(n) => self.out.push_str(n),
            J::Str(s) => self.string(s),
            J::Arr(v) => {
                self.out.push('[');
                for (i, x) in v.iter().enumerate() {
                    if i > 0 {
                        self.out.push(',');
                    }
                    self.value(x);
                }
                self.ws();
                self.out.push(']');
            }
            J::Obj(m) => {
                self.out.push('{');
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        self.out.push(',');
                    }
                    self.ws();
                    self.string(k);
                    self.ws();
                    self.out.push(':');
                    self.value(v);
                    self.ws();
                }
                self.ws();
                self.out.push('}');
            }
        }
        self.ws();
    }
}

fn write(j: &J, seed: u64) -> Vec<u8> {
    let mut w = Writer {
        seed: seed | 1,
        out: String::new(),
    };
    w.value(j);
    w.out.into_bytes()
}

/// Bytes that matter to a JSON scanner, for mutations.
const ALPHABET: &[u8] = b"{}[]\":,\\ u0123456789abcdefEe+-.tnl\x00\x1f\x7f\xc3\xa9\xff";

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn agrees_with_serde_json_on_generated_objects(j in arb_object(), seed in any::<u64>()) {
        let text = write(&j, seed);
        // The generator writes valid JSON: serde_json must read it back.
        prop_assert!(serde_json::from_slice::<J>(&text).is_ok(), "{}", String::from_utf8_lossy(&text));
        check(&text)?;
    }

    #[test]
    fn agrees_with_serde_json_on_mutated_objects(
        j in arb_object(),
        seed in any::<u64>(),
        edits in proptest::collection::vec((any::<u16>(), 0u8..3, any::<prop::sample::Index>()), 1..4),
    ) {
        let mut text = write(&j, seed);
        for (pos, op, pick) in edits {
            let at = usize::from(pos) % (text.len() + 1);
            let b = *pick.get(ALPHABET);
            match op {
                0 if at < text.len() => { text.remove(at); }
                1 if at < text.len() => text[at] = b,
                _ => text.insert(at, b),
            }
        }
        check(&text)?;
    }

    #[test]
    fn agrees_with_serde_json_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        check(&bytes)?;
    }

    #[test]
    fn agrees_with_serde_json_on_json_alphabet_soup(
        picks in proptest::collection::vec(any::<prop::sample::Index>(), 0..48)
    ) {
        let mut bytes = b"{\"metadata\":{\"uid\":".to_vec();
        bytes.extend(picks.iter().map(|p| *p.get(ALPHABET)));
        check(&bytes)?;
    }
}

#[test]
fn generated_objects_often_hold_values() {
    // The generator must exercise the interesting case, not only `None`.
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = (arb_object(), any::<u64>());
    let (mut found, mut total) = (0, 0);
    for _ in 0..500 {
        let (j, seed) = strategy.new_tree(&mut runner).unwrap().current();
        let text = write(&j, seed);
        total += 1;
        if scanner(&text).is_some_and(|[_, _, uid, _]| uid.is_some()) {
            found += 1;
        }
    }
    assert!(found * 5 > total, "only {found} of {total} had a uid");
}
