#![allow(clippy::cast_possible_truncation, reason = "fixtures are small")]

use proptest::prelude::*;

use super::*;

fn obj(json: &[u8]) -> ObjectRef<'_> {
    ObjectRef {
        namespace: None,
        name: "n",
        uid: "u",
        resource_version: "1",
        object: json,
    }
}

fn round_trip(objects: &[&[u8]]) -> (Vec<Vec<u8>>, Vec<u8>) {
    let mut b = BlockBuilder::default();
    for o in objects {
        b.push(obj(o)).unwrap();
    }
    let mut payload = Vec::new();
    b.finish(&mut payload).unwrap();
    let count = u32::try_from(objects.len()).unwrap();
    let back = decode_block(&payload, count, 1 << 30).unwrap();
    for r in &back {
        assert_eq!(
            (r.namespace.as_deref(), r.name.as_deref(), r.uid.as_deref()),
            (None, Some("n"), Some("u"))
        );
    }
    (back.into_iter().map(|r| r.object).collect(), payload)
}

fn is_columnar(json: &[u8]) -> bool {
    tokenize(json, &mut Vec::new())
}

#[test]
fn compact_json_is_columnar_and_round_trips() {
    let cases: &[&[u8]] = &[
        br#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"a","labels":{"x":"1","y":""}},"data":{"k":"dmFs"}}"#,
        br#"{"a":[],"b":{},"c":[[],[{}],[1,-2.5e+3,true,false,null]],"d":"\"q\\u0000\\\\"}"#,
        br#"{"a":[{"x":1},{"y":2},{"x":3,"y":4}]}"#,
        br#"{"dup":1,"dup":"2"}"#,
        br#""root string""#,
        b"12",
        b"null",
        b"[]",
        b"{}",
        br#"{"":""}"#,
        "{\"ü\":\"\u{1F600}\",\"ctl\":\"a\x01b\"}".as_bytes(),
    ];
    for c in cases {
        assert!(is_columnar(c), "{}", String::from_utf8_lossy(c));
    }
    let (back, _) = round_trip(cases);
    assert_eq!(back, cases.iter().map(|c| c.to_vec()).collect::<Vec<_>>());
}

#[test]
fn json_the_encoding_cannot_reproduce_is_stored_raw_and_round_trips() {
    let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
    let cases: Vec<&[u8]> = vec![
        b"",
        b" {}",
        b"{} ",
        br#"{"a": 1}"#,
        b"{\n}",
        br#"{"a":1,}"#,
        br#"{"a"}"#,
        br#"{"a":tru}"#,
        b"{\"a\":\"x\0y\"}",
        b"{\"a\0\":1}",
        br#"{"a":"unterminated}"#,
        b"[1,2",
        b"{}{}",
        b"not json",
        b"\xff\xfe",
        deep.as_bytes(),
    ];
    for c in &cases {
        assert!(!is_columnar(c), "{}", String::from_utf8_lossy(c));
    }
    let mut mixed = cases.clone();
    mixed.insert(3, br#"{"a":1}"#);
    let (back, _) = round_trip(&mixed);
    assert_eq!(back, mixed.iter().map(|c| c.to_vec()).collect::<Vec<_>>());
    // The deepest nesting allowed is columnar.
    let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
    assert!(is_columnar(ok.as_bytes()));
}

#[test]
fn values_at_one_path_share_a_column_and_keys_are_stored_once() {
    let objs: Vec<Vec<u8>> = (0..50)
        .map(|i| {
            format!(r#"{{"metadata":{{"name":"obj-{i}","uid":"u{i}"}},"spec":{{"n":{i}}}}}"#)
                .into_bytes()
        })
        .collect();
    let refs: Vec<&[u8]> = objs.iter().map(Vec::as_slice).collect();
    let (back, payload) = round_trip(&refs);
    assert_eq!(back, objs);
    let (lens, used): (Vec<u64>, usize) = decode_from(&payload, "t").unwrap();
    // meta, shape, keys; then paths: root, metadata, name, uid, spec, n.
    assert_eq!(lens.len(), 3 + 6, "{lens:?}");
    let body = &payload[used..];
    let keys = &body[(lens[0] + lens[1]) as usize..][..lens[2] as usize];
    assert_eq!(keys, b"metadata\0name\0uid\0spec\0n\0");
    // Every object after the first has the same shape bytes.
    assert_eq!(lens[1] % 50, 0);
}

/// A JSON value to generate test objects from.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(|i| serde_json::json!(i)),
        (-1e6f64..1e6).prop_map(|f| serde_json::json!(f)),
        "[a-z\"\\\\\u{0}-\u{1f}\u{e9}\u{1F600}]{0,8}".prop_map(serde_json::Value::String),
    ];
    leaf.prop_recursive(6, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(serde_json::Value::Array),
            prop::collection::vec(("[a-c]{0,2}", inner), 0..5)
                .prop_map(|kv| serde_json::Value::Object(kv.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Model: a block gives back exactly the bytes pushed, in order, whether
    /// each object went columnar (compact) or raw (pretty).
    #[test]
    fn any_json_round_trips_byte_for_byte(
        values in prop::collection::vec((json_value(), any::<bool>()), 1..12)
    ) {
        let texts: Vec<Vec<u8>> = values
            .iter()
            .map(|(v, pretty)| {
                if *pretty {
                    serde_json::to_vec_pretty(v).unwrap()
                } else {
                    serde_json::to_vec(v).unwrap()
                }
            })
            .collect();
        for ((v, pretty), t) in values.iter().zip(&texts) {
            // Compact serde_json output is always columnar unless it holds a
            // zero byte; pretty output with any container content never is.
            let has_nul = t.contains(&0);
            if !pretty {
                prop_assert_eq!(is_columnar(t), !has_nul);
            } else if matches!(v, serde_json::Value::Object(m) if !m.is_empty()) {
                prop_assert!(!is_columnar(t));
            }
        }
        let refs: Vec<&[u8]> = texts.iter().map(Vec::as_slice).collect();
        let (back, _) = round_trip(&refs);
        prop_assert_eq!(back, texts);
    }

    /// Whatever bytes a block holds, decoding gives an error or objects,
    /// never a panic, and never more output than the cap.
    #[test]
    fn damaged_payloads_never_panic(
        values in prop::collection::vec(json_value(), 1..6),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let texts: Vec<Vec<u8>> = values.iter().map(|v| serde_json::to_vec(v).unwrap()).collect();
        let mut b = BlockBuilder::default();
        for t in &texts {
            b.push(obj(t)).unwrap();
        }
        let mut payload = Vec::new();
        b.finish(&mut payload).unwrap();
        for (i, x) in &flips {
            let i = i.index(payload.len());
            payload[i] ^= x | 1;
        }
        if truncate {
            payload.truncate(cut.index(payload.len()));
        }
        let n = u32::try_from(texts.len()).unwrap();
        if let Ok(objs) = decode_block(&payload, n, 4096) {
            prop_assert!(objs.iter().map(|o| o.object.len()).sum::<usize>() <= 4096);
        }
    }
}

#[test]
fn a_shape_that_repeats_a_long_key_is_capped() {
    // One 1000-byte key in 20 objects: the keys stream holds it once, the
    // rebuilt objects 20 times, so the cap must apply to the output.
    let key = vec![b'k'; 1000];
    let mut json = b"{\"".to_vec();
    json.extend_from_slice(&key);
    json.extend_from_slice(b"\":1}");
    let mut b = BlockBuilder::default();
    for _ in 0..20 {
        b.push(obj(&json)).unwrap();
    }
    let mut payload = Vec::new();
    b.finish(&mut payload).unwrap();
    assert!(payload.len() < 2 * json.len(), "{}", payload.len());
    let all = decode_block(&payload, 20, 1 << 20).unwrap();
    assert_eq!(
        all.iter().map(|r| r.object.len()).sum::<usize>(),
        20 * json.len()
    );
    let e = decode_block(&payload, 20, 10 * json.len()).err().unwrap();
    assert!(e.to_string().contains("exceed"), "{e}");
}

#[test]
fn every_leftover_or_missing_byte_is_an_error() {
    let j: &[u8] = br#"{"a":"x","b":[1,2]}"#;
    let mut b = BlockBuilder::default();
    b.push(obj(j)).unwrap();
    let mut payload = Vec::new();
    b.finish(&mut payload).unwrap();
    // Claiming two objects when the block holds one.
    let e = decode_block(&payload, 2, 1 << 20).err().unwrap();
    assert!(e.to_string().contains("snapshot object"), "{e}");
    // Claiming none: every stream has bytes left.
    let e = decode_block(&payload, 0, 1 << 20).err().unwrap();
    assert!(e.to_string().contains("meta stream has bytes left"), "{e}");
    // A byte appended after the last column.
    let mut longer = payload.clone();
    longer.push(0);
    let e = decode_block(&longer, 1, 1 << 20).err().unwrap();
    assert!(e.to_string().contains("bytes after the last column"), "{e}");
}

#[test]
fn values_left_out_come_back_from_their_paths() {
    let cases: &[(&str, &[u8], [bool; 4])] = &[
        // All four at their paths, unescaped: all left out.
        (
            "plain",
            br#"{"metadata":{"name":"n","namespace":"ns","uid":"u","resourceVersion":"1"}}"#,
            [false; 4],
        ),
        // Escaped: the raw text is not the value, so it is stored.
        (
            "escaped",
            br#"{"metadata":{"name":"\u006e","namespace":"ns","uid":"u","resourceVersion":"1"}}"#,
            [false, true, false, false],
        ),
        // A duplicate `uid` gives no value (json_meta's rule): stored.
        (
            "duplicate",
            br#"{"metadata":{"name":"n","namespace":"ns","uid":"u","uid":"u","resourceVersion":"1"}}"#,
            [false, false, true, false],
        ),
        // Differs from the record: stored.
        (
            "differs",
            br#"{"metadata":{"name":"n","namespace":"other","uid":"u","resourceVersion":"2"}}"#,
            [true, false, false, true],
        ),
        // The same keys deeper down are not the object's.
        (
            "nested",
            br#"{"spec":{"metadata":{"name":"n","uid":"u"}},"metadata":{"namespace":"ns","resourceVersion":"1"}}"#,
            [false, true, true, false],
        ),
    ];
    let mut b = BlockBuilder::default();
    for (_, json, _) in cases {
        b.push(ObjectRef {
            namespace: Some("ns"),
            name: "n",
            uid: "u",
            resource_version: "1",
            object: json,
        })
        .unwrap();
    }
    let mut payload = Vec::new();
    b.finish(&mut payload).unwrap();
    let back = decode_block(&payload, 5, 1 << 20).unwrap();
    for ((what, json, stored), r) in cases.iter().zip(back) {
        let got = [
            r.namespace.is_some(),
            r.name.is_some(),
            r.uid.is_some(),
            r.resource_version.is_some(),
        ];
        assert_eq!(got, *stored, "{what}");
        let o = record::resolve_v3(r, true).unwrap();
        assert_eq!(
            (
                o.namespace.as_deref(),
                o.name.as_str(),
                o.uid.as_str(),
                o.resource_version.as_str(),
                o.object.as_slice()
            ),
            (Some("ns"), "n", "u", "1", *json),
            "{what}"
        );
    }
}

#[test]
fn a_columnar_value_left_out_but_absent_is_a_typed_error() {
    // Forge: the writer left `uid` out, but the JSON has none at its path
    // (nor anywhere json_meta would look).
    let mut b = BlockBuilder::default();
    b.push(obj(br#"{"metadata":{"name":"n","resourceVersion":"1"}}"#))
        .unwrap();
    let mut payload = Vec::new();
    b.finish(&mut payload).unwrap();
    let mut back = decode_block(&payload, 1, 1 << 20).unwrap();
    let mut r = back.remove(0);
    assert_eq!(r.uid.as_deref(), Some("u"));
    r.uid = None;
    let e = record::resolve_v3(r, false).unwrap_err();
    assert!(
        matches!(&e.kind, crate::error::ErrorKind::ElidedValueMissing { object, field: "uid" } if object == "n"),
        "{e}"
    );
}

/// The worked example of `docs/FORMAT.md` section 8.2.2, byte for byte.
#[test]
fn the_spec_example_is_what_the_writer_makes() {
    let mut b = BlockBuilder::default();
    b.push(obj(br#"{"a":"x","b":[1,2]}"#)).unwrap();
    let mut payload = Vec::new();
    b.finish(&mut payload).unwrap();
    let (lens, used): (Vec<u64>, usize) = decode_from(&payload, "t").unwrap();
    let m = lens[0];
    assert_eq!(lens, [m, 9, 4, 0, 2, 0, 4]);
    let body = &payload[used + m as usize..];
    assert_eq!(
        body,
        b"\x01\x01\x03\x02\x02\x04\x04\x00\x00a\0b\0x\x001\x002\0"
    );
}

/// Writes seed inputs for the `columnar` fuzz target (count byte, then a
/// payload) when `REWIND_WRITE_FUZZ_SEEDS` names a directory.
#[test]
fn fuzz_seeds() {
    let Some(dir) = std::env::var_os("REWIND_WRITE_FUZZ_SEEDS") else {
        return;
    };
    let blocks: &[&[&[u8]]] = &[
        &[br#"{"a":"x","b":[1,2]}"#],
        &[
            br#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s1","namespace":"ns","uid":"u1","resourceVersion":"5","labels":{"a":"b"}},"data":{"k":"dmFs"},"type":"Opaque"}"#,
            br#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s2","namespace":"ns","uid":"u2","resourceVersion":"6"},"data":{},"type":"Opaque"}"#,
        ],
        &[b"{ \"pretty\": true }", br#"{"c":[[],[{}],[1,-2.5e+3,true,false,null,"s"]],"d":[{"x":1},{"y":"2"}]}"#],
        &[b"null", b"12", br#""s""#, b"[]", b"{}"],
    ];
    for (i, objs) in blocks.iter().enumerate() {
        let mut b = BlockBuilder::default();
        for o in *objs {
            b.push(obj(o)).unwrap();
        }
        let mut payload = vec![u8::try_from(objs.len()).unwrap()];
        let mut p = Vec::new();
        b.finish(&mut p).unwrap();
        payload.extend(p);
        std::fs::write(
            std::path::Path::new(&dir).join(format!("seed-{i}")),
            payload,
        )
        .unwrap();
    }
}
