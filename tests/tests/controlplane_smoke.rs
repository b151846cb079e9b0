//! Smoke test of the harness itself: start, both identities, RBAC, logs.

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ListParams, ObjectMeta, PostParams};
use rewind_tests::ControlPlane;

#[tokio::test]
async fn starts_with_admin_and_readonly_identities() {
    let cp = ControlPlane::start().await.expect("control plane starts");
    eprintln!("startup {:?} dir {}", cp.startup_time(), cp.dir().display());
    let admin = cp.admin_client();
    let nss = Api::<Namespace>::all(admin.clone())
        .list(&ListParams::default())
        .await
        .unwrap();
    let names: Vec<_> = nss
        .items
        .iter()
        .filter_map(|n| n.metadata.name.clone())
        .collect();
    assert!(names.contains(&"default".to_string()), "{names:?}");

    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some("x".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<ConfigMap>::namespaced(admin, "default")
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();

    let ro = Api::<ConfigMap>::namespaced(cp.readonly_client(), "default");
    assert!(ro.get("x").await.is_ok());
    let err = ro
        .create(
            &PostParams::default(),
            &ConfigMap {
                metadata: ObjectMeta {
                    name: Some("y".into()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 403),
        "{err:?}"
    );
}
