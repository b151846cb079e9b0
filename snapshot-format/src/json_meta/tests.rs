//! Hand-picked cases; `tests/json_meta.rs` compares with serde_json on
//! generated and mutated input.

use super::{MAX_DEPTH, extract};

fn both(json: &str) -> Option<(Option<String>, Option<String>)> {
    extract(json.as_bytes()).map(|m| {
        (
            m.uid.map(|c| c.into_owned()),
            m.resource_version.map(|c| c.into_owned()),
        )
    })
}

fn some(uid: &str, rv: &str) -> Option<(Option<String>, Option<String>)> {
    Some((Some(uid.into()), Some(rv.into())))
}

#[test]
fn finds_both_values_whatever_the_order_and_nesting_around_them() {
    let j = r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"a","labels":{"uid":"no"},
        "managedFields":[{"manager":"x","fieldsV1":{"f:metadata":{"f:uid":{}}}}],
        "resourceVersion":"42","uid":"0b6c-11"},"data":{"metadata":{"uid":"nested"}}}"#;
    assert_eq!(both(j), some("0b6c-11", "42"));
    let j = r#" { "metadata" : { "uid" : "u" , "resourceVersion" : "7" } , "x" : [1, -2.5e3, true, false, null, "s\"]"] } "#;
    assert_eq!(both(j), some("u", "7"));
}

#[test]
fn finds_name_and_namespace_too() {
    let m = extract(
        br#"{"metadata":{"namespace":"cattle-system","labels":{"name":"x"},"name":"rancher","uid":"u"}}"#,
    )
    .unwrap();
    assert_eq!(m.name.as_deref(), Some("rancher"));
    assert_eq!(m.namespace.as_deref(), Some("cattle-system"));
    assert_eq!(m.uid.as_deref(), Some("u"));
    assert_eq!(m.resource_version, None);
    let m = extract(br#"{"metadata":{"name":"a","name":"a","namespace":null}}"#).unwrap();
    assert_eq!(
        (m.name, m.namespace),
        (None, None),
        "duplicate, not a string"
    );
}

#[test]
fn values_borrow_unless_escaped_and_escapes_are_decoded() {
    let m = extract(
        br#"{"metadata":{"uid":"plain","resourceVersion":"a\u0062\n\"\\\/\t\ud83d\ude00"}}"#,
    )
    .unwrap();
    assert!(matches!(m.uid, Some(std::borrow::Cow::Borrowed("plain"))));
    assert_eq!(m.resource_version.as_deref(), Some("ab\n\"\\/\t\u{1F600}"));
    // Escaped keys are the same keys.
    assert_eq!(
        both(r#"{"meta\u0064ata":{"\u0075id":"u","resourceVersion":"1"}}"#),
        some("u", "1")
    );
}

#[test]
fn missing_duplicate_or_non_string_values_give_none() {
    let none = Some((None, None));
    assert_eq!(both(r#"{"kind":"X"}"#), none);
    assert_eq!(both(r#"{"metadata":null}"#), none);
    assert_eq!(
        both(r#"{"metadata":{"uid":5,"resourceVersion":["1"]}}"#),
        none
    );
    assert_eq!(
        both(
            r#"{"metadata":{"uid":"a","resourceVersion":"1"},"metadata":{"uid":"a","resourceVersion":"1"}}"#
        ),
        none,
        "a duplicate metadata member is ambiguous"
    );
    assert_eq!(
        both(r#"{"metadata":{"uid":"a","uid":"b","resourceVersion":"1"}}"#),
        Some((None, Some("1".into())))
    );
    assert_eq!(
        both(r#"{"metadata":{"uid":"a","resourceVersion":"1","resourceVersion":"1"}}"#),
        Some((Some("a".into()), None))
    );
    assert_eq!(
        both(r#"{"metadata":{"uid":"","resourceVersion":""}}"#),
        some("", "")
    );
}

#[test]
fn invalid_json_gives_none() {
    for bad in [
        "",
        "[]",
        "\"s\"",
        "{",
        "{}x",
        "{,}",
        r#"{"a":1,}"#,
        r#"{"a" 1}"#,
        r#"{"a":01}"#,
        r#"{"a":1.}"#,
        r#"{"a":1e}"#,
        r#"{"a":-}"#,
        r#"{"a":1e400}"#,
        r#"{"a":tru}"#,
        r#"{"a":[1 2]}"#,
        r#"{"a":"\x"}"#,
        r#"{"a":"\u12"}"#,
        r#"{"a":"\ud800"}"#,
        r#"{"a":"\udc00\ud800"}"#,
        "{\"a\":\"tab\there\"}",
        r#"{"metadata":{"uid":"a","resourceVersion":"1"}"#,
        r#"{"metadata":{"uid":"a" "resourceVersion":"1"}}"#,
        r#"{'metadata':{}}"#,
    ] {
        assert_eq!(both(bad), None, "{bad:?}");
    }
    assert_eq!(extract(b"{\"a\":\"\xff\"}"), None, "invalid UTF-8");
    // Big numbers are fine while they stay finite doubles.
    assert_eq!(
        both(r#"{"a":123456789012345678901234567890,"b":1.5e308,"c":-0,"d":0e999}"#),
        Some((None, None))
    );
}

#[test]
fn nesting_is_limited_like_serde_json() {
    let nest = |n: usize| {
        let mut s = String::from("{\"a\":");
        s.push_str(&"[".repeat(n - 1));
        s.push_str(&"]".repeat(n - 1));
        s.push('}');
        s
    };
    let limit = MAX_DEPTH as usize;
    assert!(extract(nest(limit).as_bytes()).is_some());
    assert!(serde_json::from_str::<serde_json::Value>(&nest(limit)).is_ok());
    assert!(extract(nest(limit + 1).as_bytes()).is_none());
    assert!(serde_json::from_str::<serde_json::Value>(&nest(limit + 1)).is_err());
    // Deep input far beyond the limit is refused without deep recursion.
    assert!(extract(nest(100_000).as_bytes()).is_none());
}

#[test]
fn long_plain_strings_are_scanned_in_words() {
    for len in 0..40 {
        for special in ["\"", "\\\\", "\\n"] {
            let body = "x".repeat(len);
            let j = format!(
                r#"{{"metadata":{{"uid":"{body}{special}{body}","resourceVersion":"{body}"}}}}"#
            );
            let want = serde_json::from_str::<serde_json::Value>(&j).ok().map(|v| {
                (
                    v["metadata"]["uid"].as_str().map(str::to_owned),
                    v["metadata"]["resourceVersion"].as_str().map(str::to_owned),
                )
            });
            assert_eq!(both(&j), want, "{j}");
        }
    }
}
