//! Spare token users get exactly the RBAC a test grants them, no more.

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::api::rbac::v1::PolicyRule;
use kube::api::{Api, ListParams, ObjectMeta, PostParams};
use rewind_tests::ControlPlane;

fn forbidden<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> bool {
    matches!(r, Err(kube::Error::Api(ref s)) if s.code == 403)
}

fn rule(resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![String::new()]),
        resources: Some(resources.iter().map(|s| s.to_string()).collect()),
        verbs: verbs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

#[tokio::test]
async fn spare_users_get_only_what_is_granted() {
    let cp = ControlPlane::start().await.unwrap();
    let admin = cp.admin_client();
    Api::<Namespace>::all(admin.clone())
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: ObjectMeta {
                    name: Some("team".into()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .unwrap();

    // No grant: nothing beyond discovery.
    let nobody = cp.identity("user-a").await.unwrap();
    assert!(forbidden(
        Api::<Namespace>::all(nobody.client.clone())
            .list(&ListParams::default())
            .await
    ));
    assert!(nobody.kubeconfig.exists());

    // Cluster-wide: list configmaps everywhere, nothing else.
    let limited = cp
        .create_identity(
            "limited-user",
            vec![rule(&["configmaps"], &["get", "list"])],
        )
        .await
        .unwrap();
    assert!(
        Api::<ConfigMap>::all(limited.client.clone())
            .list(&ListParams::default())
            .await
            .is_ok()
    );
    assert!(forbidden(
        Api::<Secret>::all(limited.client.clone())
            .list(&ListParams::default())
            .await
    ));
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some("x".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    assert!(forbidden(
        Api::<ConfigMap>::namespaced(limited.client.clone(), "team")
            .create(&PostParams::default(), &cm)
            .await
    ));

    // Namespaced: may create configmaps in "team" only.
    let restore = cp
        .create_namespaced_identity(
            "restore-user",
            "team",
            vec![rule(&["configmaps"], &["create", "get"])],
        )
        .await
        .unwrap();
    assert!(
        Api::<ConfigMap>::namespaced(restore.client.clone(), "team")
            .create(&PostParams::default(), &cm)
            .await
            .is_ok()
    );
    assert!(forbidden(
        Api::<ConfigMap>::namespaced(restore.client.clone(), "default")
            .create(&PostParams::default(), &cm)
            .await
    ));

    // A new grant replaces the old one.
    let limited = cp
        .create_identity("limited-user", vec![rule(&["secrets"], &["list"])])
        .await
        .unwrap();
    assert!(
        Api::<Secret>::all(limited.client.clone())
            .list(&ListParams::default())
            .await
            .is_ok()
    );
    let cms = Api::<ConfigMap>::all(limited.client.clone());
    let revoked = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while !forbidden(cms.list(&ListParams::default()).await) {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(
        revoked.is_ok(),
        "the earlier configmaps grant is still in force"
    );

    // Only the token file's users exist.
    assert!(cp.identity("someone-else").await.is_err());
}
