//! The control plane's fault hooks do what they say, against the real thing:
//! a proxy that stalls and cuts, etcd going away and coming back, and the
//! production watch-cache setting giving its own 410 after a restart.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ListParams, ObjectMeta, PostParams, WatchEvent, WatchParams};
use rewind_tests::{ControlPlane, Options};

fn cm(name: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        ..Default::default()
    }
}

#[tokio::test]
async fn proxy_stalls_resumes_and_cuts() {
    let cp = ControlPlane::start().await.unwrap();
    let p = cp.proxy().await.unwrap();
    let nss = Api::<Namespace>::all(p.readonly.client.clone());
    assert!(
        !nss.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );

    // Stalled: a request gets no answer.
    p.proxy.stall();
    let held = tokio::time::timeout(Duration::from_secs(2), nss.list(&ListParams::default())).await;
    assert!(
        held.is_err(),
        "a request went through a stalled proxy: {held:?}"
    );
    // Resumed: requests flow again.
    p.proxy.resume();
    let list =
        tokio::time::timeout(Duration::from_secs(20), nss.list(&ListParams::default())).await;
    assert!(list.unwrap().is_ok());

    // Cut: an open watch ends at once.
    let cms = Api::<ConfigMap>::namespaced(p.admin.client.clone(), "default");
    let mut stream = cms
        .watch(&WatchParams::default().timeout(120), "0")
        .await
        .unwrap()
        .boxed();
    cms.create(&PostParams::default(), &cm("seen"))
        .await
        .unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.try_next())
            .await
            .unwrap()
        {
            Ok(Some(WatchEvent::Added(o))) if o.metadata.name.as_deref() == Some("seen") => break,
            Ok(Some(_)) => continue,
            other => panic!("watch ended early: {other:?}"),
        }
    }
    assert!(p.proxy.open_connections() > 0);
    p.proxy.cut_all();
    let end = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match stream.next().await {
                None | Some(Err(_)) => return,
                Some(Ok(_)) => continue,
            }
        }
    })
    .await;
    assert!(end.is_ok(), "the watch survived cut_all");
    // And the proxy still serves new connections.
    assert!(nss.list(&ListParams::default()).await.is_ok());
}

#[tokio::test]
async fn etcd_stops_and_starts_with_its_data() {
    let cp = ControlPlane::start().await.unwrap();
    let cms = Api::<ConfigMap>::namespaced(cp.admin_client(), "default");
    cms.create(&PostParams::default(), &cm("kept"))
        .await
        .unwrap();

    cp.stop_etcd();
    let down = tokio::time::timeout(Duration::from_secs(5), cms.get("kept")).await;
    assert!(
        !matches!(down, Ok(Ok(_))),
        "read succeeded with etcd stopped"
    );

    cp.start_etcd().await.unwrap();
    let back = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            if let Ok(o) = cms.get("kept").await {
                return o;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("apiserver serves again after etcd is back");
    assert_eq!(back.metadata.name.as_deref(), Some("kept"));
}

#[tokio::test]
async fn watch_cache_on_gives_410_after_compaction_and_restart() {
    let cp = ControlPlane::start_with(Options {
        watch_cache: true,
        ..Options::default()
    })
    .await
    .unwrap();
    let cms = Api::<ConfigMap>::namespaced(cp.admin_client(), "default");
    let early = cms
        .create(&PostParams::default(), &cm("early"))
        .await
        .unwrap();
    let early_rv = early.metadata.resource_version.unwrap();
    for i in 0..3 {
        cms.create(&PostParams::default(), &cm(&format!("n{i}")))
            .await
            .unwrap();
    }
    cp.compact_etcd_now().await.unwrap();
    // The restarted apiserver's cache starts after the compaction point.
    cp.restart_apiserver().await.unwrap();
    let ro = Api::<ConfigMap>::namespaced(cp.readonly_client(), "default");
    let mut stream = ro
        .watch(&WatchParams::default().timeout(10), &early_rv)
        .await
        .unwrap()
        .boxed();
    let first = tokio::time::timeout(Duration::from_secs(15), stream.try_next())
        .await
        .unwrap();
    match first {
        Ok(Some(WatchEvent::Error(s))) => {
            assert_eq!((s.code, s.reason.as_str()), (410, "Expired"), "{s:?}")
        }
        other => panic!("expected ERROR 410, got {other:?}"),
    }
}
