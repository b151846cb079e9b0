//! The foundation's "done when": against a real kube-apiserver + etcd,
//! a generated Rancher plane of 50 downstream clusters loads, the
//! least-privilege identity lists it all back (and can write nothing), a watch
//! from a compacted resourceVersion gets a real 410, and clients keep working
//! across an apiserver restart.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DynamicObject, ListParams, ObjectMeta, PostParams, WatchEvent, WatchParams};
use kube::runtime::watcher;
use rewind_tests::ControlPlane;
use rewind_tests::fixtures::{self, GeneratedObject, PlaneSpec};

type Key = (String, String, String, String, bool); // group, version, resource, kind, namespaced

fn key(o: &GeneratedObject) -> Key {
    (
        o.group.clone(),
        o.version.clone(),
        o.resource.clone(),
        o.kind.clone(),
        o.namespaced,
    )
}

fn cm(name: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some([("k".to_string(), name.to_string())].into()),
        ..Default::default()
    }
}

/// Lists every object of one resource (all namespaces) with paging.
async fn list_all(api: &Api<DynamicObject>) -> Vec<DynamicObject> {
    let mut out = Vec::new();
    let mut lp = ListParams::default().limit(200);
    loop {
        let page = api.list(&lp).await.unwrap();
        out.extend(page.items);
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => lp = lp.continue_token(&token),
            _ => return out,
        }
    }
}

/// Waits (60 s at most) until the watcher reports an object named `want`.
async fn wait_for(rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>, want: &str) {
    let seen = async {
        while let Some(n) = rx.recv().await {
            if n == want {
                return;
            }
        }
        panic!("watcher ended before {want}");
    };
    tokio::time::timeout(Duration::from_secs(60), seen)
        .await
        .unwrap_or_else(|_| panic!("watcher did not report {want} within 60 s"));
}

#[tokio::test]
async fn rancher_plane_readonly_listing_real_410_and_apiserver_restart() {
    let cp = ControlPlane::start().await.expect("control plane starts");
    let admin = cp.admin_client();
    let ro = cp.readonly_client();

    // Real Rancher CRDs plus the run-time schemaless ones.
    let crds = fixtures::install_rancher_crds(&admin).await.unwrap();
    for name in [
        "clusters.management.cattle.io",
        "nodes.management.cattle.io",
        "projects.management.cattle.io",
        "clusters.provisioning.cattle.io",
        "gitrepos.fleet.cattle.io",
    ] {
        assert!(
            crds.installed.iter().any(|n| n == name),
            "{name} missing: {:?}",
            crds.installed
        );
    }
    assert!(crds.unparsable.is_empty(), "{:?}", crds.unparsable);

    // A generated plane of 50 downstream clusters.
    let spec = PlaneSpec::new(50);
    let objects = fixtures::generate(&spec);
    let report = fixtures::load(&admin, &objects, 16).await.unwrap();
    assert_eq!(report.created, objects.len());
    eprintln!("loaded {} objects in {:?}", report.created, report.elapsed);

    // Everything lists back through the least-privilege identity.
    let mut by_resource: BTreeMap<Key, Vec<&GeneratedObject>> = BTreeMap::new();
    for o in &objects {
        by_resource.entry(key(o)).or_default().push(o);
    }
    for (k, generated) in &by_resource {
        let api = fixtures::list_api_for(&ro, generated[0]);
        let listed = list_all(&api).await;
        let listed_names: BTreeSet<(Option<String>, String)> = listed
            .iter()
            .map(|o| {
                (
                    o.metadata.namespace.clone(),
                    o.metadata.name.clone().unwrap(),
                )
            })
            .collect();
        let want: BTreeSet<(Option<String>, String)> = generated
            .iter()
            .map(|o| (o.namespace.clone(), o.name.clone()))
            .collect();
        if k.0.ends_with("cattle.io") {
            // Only our objects exist of Rancher kinds: exact equality.
            assert_eq!(listed_names, want, "{k:?}");
        } else {
            // Built-in kinds also hold the apiserver's own objects.
            assert!(
                want.is_subset(&listed_names),
                "{k:?}: {:?}",
                want.difference(&listed_names)
            );
        }
    }
    let is_mgmt_cluster =
        |o: &&GeneratedObject| o.kind == "Cluster" && o.group == "management.cattle.io";
    let clusters = fixtures::list_api_for(&ro, objects.iter().find(is_mgmt_cluster).unwrap());
    let listed = list_all(&clusters).await;
    assert_eq!(listed.len(), 50);
    // Content survives the round trip (schemaless CRD: stored as written).
    for c in &listed {
        let name = c.metadata.name.as_deref().unwrap();
        let generated = objects
            .iter()
            .filter(is_mgmt_cluster)
            .find(|o| o.name == name)
            .unwrap();
        assert_eq!(c.data["spec"], generated.json["spec"]);
        assert_eq!(c.data["status"], generated.json["status"]);
        assert_eq!(c.data["status"]["nodeCount"], 3);
    }

    // The least-privilege identity can write nothing.
    let ro_cms = Api::<ConfigMap>::namespaced(ro.clone(), "default");
    let err = ro_cms
        .create(&PostParams::default(), &cm("nope"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 403),
        "{err:?}"
    );
    let err = clusters
        .delete(
            &listed[0].metadata.name.clone().unwrap(),
            &Default::default(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 403),
        "{err:?}"
    );

    // A real 410: remember an early resourceVersion, write more, compact etcd,
    // then watch from the early version.
    let cms = Api::<ConfigMap>::namespaced(admin.clone(), "default");
    let early = cms
        .create(&PostParams::default(), &cm("early"))
        .await
        .unwrap();
    let early_rv = early.metadata.resource_version.clone().unwrap();
    for i in 0..5 {
        cms.create(&PostParams::default(), &cm(&format!("later-{i}")))
            .await
            .unwrap();
    }
    let compacted = cp.compact_etcd_now().await.unwrap();
    assert!(compacted > early_rv.parse::<i64>().unwrap());
    let mut stream = Api::<ConfigMap>::namespaced(ro.clone(), "default")
        .watch(&WatchParams::default().timeout(10), &early_rv)
        .await
        .unwrap()
        .boxed();
    let first = tokio::time::timeout(Duration::from_secs(15), stream.try_next())
        .await
        .unwrap()
        .unwrap();
    match first {
        Some(WatchEvent::Error(status)) => {
            assert_eq!(status.code, 410, "{status:?}");
            assert_eq!(status.reason, "Expired", "{status:?}");
        }
        other => panic!("expected an ERROR 410 event, got {other:?}"),
    }

    // A kube watcher (least-privilege) keeps going across an apiserver restart.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let watched = Api::<ConfigMap>::namespaced(ro.clone(), "default");
    let task = tokio::spawn(async move {
        let mut events = watcher(watched, watcher::Config::default()).boxed();
        while let Some(ev) = events.next().await {
            let names: Vec<String> = match ev {
                Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                    vec![o.metadata.name.unwrap_or_default()]
                }
                _ => continue,
            };
            for n in names {
                if tx.send(n).is_err() {
                    return;
                }
            }
        }
    });
    cms.create(&PostParams::default(), &cm("before-restart"))
        .await
        .unwrap();
    wait_for(&mut rx, "before-restart").await;
    let before = list_all(&clusters).await.len();

    cp.restart_apiserver().await.unwrap();

    assert_eq!(
        list_all(&clusters).await.len(),
        before,
        "same clusters after restart"
    );
    cms.create(&PostParams::default(), &cm("after-restart"))
        .await
        .unwrap();
    wait_for(&mut rx, "after-restart").await;
    task.abort();
}
