use kube::api::{DynamicObject, ObjectList, TypeMeta};
use kube::core::WatchEvent;
use kube::{Resource as _, ResourceExt as _};
use serde_json::{Value, json};

use super::RawObject;

/// `{"n":{"n":...{"n":"leaf"}...}}`, `depth` levels, built as text: serde_json
/// can neither build nor parse it as a `Value` past 128.
fn deep(depth: usize) -> String {
    format!("{}\"leaf\"{}", r#"{"n":"#.repeat(depth), "}".repeat(depth))
}

/// An object as the API server sends it, with `managedFields` as deep as
/// its spec (fieldsV1 mirrors the object's shape).
fn object(name: &str, rv: &str, depth: usize) -> String {
    format!(
        r#"{{"metadata":{{"name":"{name}","namespace":"ns","uid":"u-{name}","resourceVersion":"{rv}",
        "labels":{{"app":"x"}},"creationTimestamp":"2026-11-26T23:18:42Z",
        "managedFields":[{{"manager":"m","operation":"Update","fieldsType":"FieldsV1","fieldsV1":{}}}]}},
        "spec":{},"status":{{"ok":true}}}}"#,
        deep(depth),
        deep(depth)
    )
}

#[test]
fn a_list_page_with_deep_items_parses_and_every_item_is_kept() {
    for depth in [300, 10_000, 100_000] {
        let items = [
            object("a", "5", 2),
            object("deep", "6", depth),
            object("b", "7", 2),
        ];
        let page = format!(
            r#"{{"apiVersion":"odd.rewind.test/v1","kind":"OddThingList","metadata":{{"resourceVersion":"9"}},"items":[{}]}}"#,
            items.join(",")
        );
        assert!(serde_json::from_str::<ObjectList<DynamicObject>>(&page).is_err());
        let list: ObjectList<RawObject> = serde_json::from_str(&page).unwrap();
        assert_eq!(list.metadata.resource_version.as_deref(), Some("9"));
        let names: Vec<_> = list.items.iter().map(|o| o.meta().name.clone()).collect();
        assert_eq!(
            names,
            [Some("a".into()), Some("deep".into()), Some("b".into())]
        );
        let d = &list.items[1];
        assert_eq!(d.resource_version().as_deref(), Some("6"));
        assert_eq!(d.meta().uid.as_deref(), Some("u-deep"));
        assert_eq!(d.meta().labels.as_ref().unwrap()["app"], "x");
        // Every piece is kept as sent.
        assert_eq!(d.field("spec").unwrap().get(), deep(depth));
        let json = d.to_json("odd.rewind.test/v1", "OddThing").unwrap();
        let text = String::from_utf8(json).unwrap();
        assert!(text.starts_with(
            r#"{"apiVersion":"odd.rewind.test/v1","kind":"OddThing","metadata":{"name":"deep""#
        ));
        assert!(text.contains(&format!(r#""spec":{}"#, deep(depth))));
    }
}

#[test]
fn a_watch_event_with_a_deep_object_parses() {
    let obj = object("deep", "12", 10_000);
    // `obj` without its opening brace: its fields and its closing brace.
    let line = format!(
        r#"{{"type":"MODIFIED","object":{{"apiVersion":"odd.rewind.test/v1","kind":"OddThing",{}}}"#,
        &obj[1..]
    );
    assert!(serde_json::from_str::<WatchEvent<DynamicObject>>(&line).is_err());
    match serde_json::from_str::<WatchEvent<RawObject>>(&line).unwrap() {
        WatchEvent::Modified(o) => {
            assert_eq!(o.api_version.as_deref(), Some("odd.rewind.test/v1"));
            assert_eq!(o.kind.as_deref(), Some("OddThing"));
            assert_eq!(o.resource_version().as_deref(), Some("12"));
            assert_eq!(o.field("spec").unwrap().get(), deep(10_000));
        }
        other => panic!("{other:?}"),
    }
}

/// The journal's bytes must mean what `DynamicObject` recorded before.
#[test]
fn to_json_equals_what_dynamic_object_wrote() {
    let texts = [
        object("a", "5", 3),
        r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s","namespace":"n","annotations":{"a":"b"},
            "ownerReferences":[{"apiVersion":"v1","kind":"X","name":"o","uid":"1","controller":true}],
            "finalizers":["f"],"generation":3,"deletionTimestamp":"2026-11-26T23:18:43Z",
            "deletionGracePeriodSeconds":30},"type":"Opaque","data":{"k":"AAEC/w=="},
            "immutable":false,"numbers":[1,-2,3.5,1e3,18446744073709551615]}"#
            .to_owned(),
        r#"{"metadata":{"name":"bare"}}"#.to_owned(),
        r#"{"spec":{"é\"scaped":"\u00e9"}}"#.to_owned(),
    ];
    for text in texts {
        let mut dynamic: DynamicObject = serde_json::from_str(&text).unwrap();
        dynamic.types = Some(TypeMeta {
            api_version: "g/v1".into(),
            kind: "K".into(),
        });
        let before = serde_json::to_value(&dynamic).unwrap();
        let raw: RawObject = serde_json::from_str(&text).unwrap();
        let now: Value = serde_json::from_slice(&raw.to_json("g/v1", "K").unwrap()).unwrap();
        assert_eq!(now, before, "{text}");
    }
}

#[test]
fn metadata_beyond_the_lite_fields_is_not_parsed_but_kept() {
    let text =
        r#"{"metadata":{"name":"n","futureField":{"x":[1,{"y":null}]},"labels":null},"x":1}"#;
    let o: RawObject = serde_json::from_str(text).unwrap();
    assert_eq!(o.meta().name.as_deref(), Some("n"));
    assert_eq!(o.meta().labels, None);
    let v: Value = serde_json::from_slice(&o.to_json("v1", "K").unwrap()).unwrap();
    assert_eq!(v["metadata"]["futureField"], json!({"x": [1, {"y": null}]}));
    // `metadata: null` is an object without metadata, not an error.
    let o: RawObject = serde_json::from_str(r#"{"metadata":null,"x":1}"#).unwrap();
    assert_eq!(o.meta().name, None);
    // Metadata of the wrong shape is an error (the API server never sends it).
    assert!(serde_json::from_str::<RawObject>(r#"{"metadata":{"name":5}}"#).is_err());
    assert!(serde_json::from_str::<RawObject>(r#"[1]"#).is_err());
}
