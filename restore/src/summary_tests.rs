//! The summary read straight from a folded state is the summary of the
//! desired state built the slow way, for any state and filter, and fails
//! with the same error.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use rewind_history::from_format::desired_from_format;

fn rtype(group: &str, resource: &str, kind: &str, namespaced: bool) -> rewind_format::ResourceType {
    rewind_format::ResourceType {
        group: group.into(),
        version: "v1".into(),
        resource: resource.into(),
        kind: kind.into(),
        namespaced,
    }
}

fn types() -> Vec<rewind_format::ResourceType> {
    vec![
        rtype("", "configmaps", "ConfigMap", true),
        rtype("", "namespaces", "Namespace", false),
        rtype("x.io", "widgets", "Widget", true),
        rtype("y.io", "gadgets", "Gadget", false),
        rtype(
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            false,
        ),
    ]
}

/// One recorded object: its type (index into [`types`]), namespace, name,
/// and the JSON bytes the store holds for it.
fn object(
    t: usize,
    ns: usize,
    name: usize,
    odd: usize,
) -> (usize, Option<String>, String, Vec<u8>) {
    let types = types();
    let t = t % types.len();
    let rt = &types[t];
    let ns = rt.namespaced.then(|| format!("ns{}", ns % 3));
    let name = format!("o{name}");
    let mut obj = json!({"apiVersion": "v1", "kind": rt.kind,
        "metadata": {"name": name, "labels": {"a": "b"}}, "spec": {"n": [1, 2.5, null, true]}});
    if let Some(ns) = &ns {
        obj["metadata"]["namespace"] = json!(ns);
    }
    if rt.resource == "customresourcedefinitions" {
        let (g, p) = [("x.io", "widgets"), ("y.io", "gadgets"), ("z.io", "things")][name.len() % 3];
        obj["spec"] = json!({"group": g, "names": {"plural": p, "kind": "K"}});
    }
    let text = serde_json::to_string(&obj).unwrap();
    // Records that must take the slow path, or fail the same way there.
    let text = match odd {
        0 => text.replacen("\"metadata\":{", "\"metadata\":{\"name\":7,", 1),
        1 => text.replacen("\"name\":", "\"n\\u0061me\":", 1),
        2 => format!("{{\"metadata\":[1],{}", &text[1..]),
        3 => text.replacen("\"spec\":{", "\"spec\":{\"big\":1e999,", 1),
        4 => text.replacen(
            "\"spec\":{",
            &format!(
                "\"spec\":{{\"deep\":{}1{},",
                "[".repeat(140),
                "]".repeat(140)
            ),
            1,
        ),
        5 => text.replacen("\"metadata\":{", "\"metadata\":{\"namespace\":\"\",", 1),
        6 => format!("{text} x"),
        7 => "[1,2]".into(),
        8 => text.replacen("\"metadata\":{", "\"metadata\":{\"namespace\":null,", 1),
        9 => format!(
            "{},\"metadata\":{{\"name\":\"later\"}}}}",
            &text[..text.len() - 1]
        ),
        _ => text,
    };
    (t, ns, name, text.into_bytes())
}

fn folded(objects: &[(usize, Option<String>, String, Vec<u8>)]) -> rewind_format::State {
    let types = types();
    let mut s = rewind_format::State::new("c");
    for (t, ns, name, bytes) in objects {
        let rt = &types[*t];
        s.types.insert(
            (rt.group.clone(), rt.resource.clone()),
            rewind_format::snapshot::TypeEntry {
                rtype: rt.clone(),
                list_rv: String::new(),
            },
        );
        s.objects.insert(
            rewind_format::ObjectKey {
                group: rt.group.clone(),
                resource: rt.resource.clone(),
                namespace: ns.clone(),
                name: name.clone(),
            },
            rewind_format::StateObject {
                uid: String::new(),
                resource_version: "1".into(),
                object: bytes.clone(),
            },
        );
    }
    s
}

fn filter_strategy() -> impl Strategy<Value = Filter> {
    let types = prop::sample::subsequence(
        vec![
            "configmap",
            "widgets",
            "gadgets.y.io",
            "namespaces",
            "customresourcedefinitions",
        ],
        0..3,
    );
    let nss = prop::sample::subsequence(vec!["ns0", "ns1", "ns2"], 0..2);
    let names = prop::sample::subsequence(vec!["o1*", "o2", "o*"], 0..2);
    (types, nss, names).prop_map(|(t, n, m)| Filter {
        types: t.into_iter().map(str::to_owned).collect(),
        namespaces: n.into_iter().map(str::to_owned).collect(),
        names: m.into_iter().map(str::to_owned).collect(),
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn summary_from_format_is_the_desired_states_summary(
        raw in prop::collection::vec((0usize..5, 0usize..3, 0usize..40, 0usize..200), 0..60),
        filter in filter_strategy(),
    ) {
        let objects: Vec<_> = raw.into_iter().map(|(t, ns, n, odd)| object(t, ns, n, odd)).collect();
        let state = folded(&objects);
        let fast = Summary::from_format(&state, &filter);
        match desired_from_format(&state) {
            Ok(desired) => {
                let expected = Summary::of(&desired.filtered(&filter));
                prop_assert_eq!(&Summary::of(&desired.clone().into_filtered(&filter)), &expected);
                prop_assert_eq!(fast.unwrap(), expected);
            }
            Err(e) => prop_assert_eq!(fast.unwrap_err().to_string(), e.to_string()),
        }
    }
}

#[test]
fn fast_key_takes_only_what_value_reads_the_same_way() {
    let cm = types()[0].clone();
    let cases: Vec<(String, bool)> = vec![
        (r#"{"metadata":{"name":"a","namespace":"n"}}"#.into(), true),
        (
            r#"{"metadata":{"n\u0061me":"a","namespace":"n"}}"#.into(),
            true,
        ),
        (
            r#"{"metadata":{"name":"a","namespace":"n"},"metadata":{"name":"b","namespace":"n"}}"#
                .into(),
            true,
        ),
        (
            r#"{"metadata":{"name":"a","namespace":"n"},"x":1e999}"#.into(),
            false,
        ),
        (
            format!(
                r#"{{"metadata":{{"name":"a","namespace":"n"}},"x":{}{}}}"#,
                "[".repeat(130),
                "]".repeat(130)
            ),
            false,
        ),
        (
            r#"{"metadata":{"name":"a","namespace":"n"}} trailing"#.into(),
            false,
        ),
        (
            r#"{"metadata":{"name":"a","namespace":"n","x":"\ud800"}}"#.into(),
            false,
        ),
        (
            r#"[{"metadata":{"name":"a","namespace":"n"}}]"#.into(),
            false,
        ),
        (r#"{"metadata":["a","n"]}"#.into(), false),
        (r#"{"metadata":{"name":"","namespace":"n"}}"#.into(), false),
        (r#"{"metadata":{"name":"a"}}"#.into(), false),
        (r#"{"metadata":{"name":"a","namespace":7}}"#.into(), false),
    ];
    for (text, fast) in cases {
        let got = fast_key(&cm, text.as_bytes());
        assert_eq!(got.is_some(), fast, "{text}");
        let slow = serde_json::from_slice::<Value>(text.as_bytes())
            .ok()
            .and_then(|v| TypedKey::of(&cm, &v).ok());
        if let Some((namespace, name)) = got {
            let k = TypedKey {
                rtype: cm.clone(),
                namespace,
                name,
            };
            assert_eq!(Some(k), slow, "{text}");
        }
    }
    // The escaped name is unescaped, as Value does.
    let k = fast_key(&cm, br#"{"metadata":{"name":"a\u00e9","namespace":"n"}}"#).unwrap();
    assert_eq!(k.1, "a\u{e9}");
}

#[test]
fn last_duplicate_wins_in_from_entries() {
    let cm = types()[0].clone();
    let a = json!({"metadata": {"name": "a", "namespace": "n"}, "v": 1});
    let b = json!({"metadata": {"name": "a", "namespace": "n"}, "v": 2});
    let k = TypedKey::of(&cm, &a).unwrap();
    let s = DesiredState::from_entries(vec![(k.clone(), a), (k.clone(), b)]);
    assert_eq!(s.len(), 1);
    assert_eq!(s.get(&k).unwrap()["v"], 2);
}
