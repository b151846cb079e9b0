//! The Rancher example objects load into a real apiserver where they can;
//! what can't is reported, not fatal.

use kube::api::{Api, DynamicObject};
use kube::discovery::ApiResource;
use rewind_tests::ControlPlane;
use rewind_tests::fixtures;

#[tokio::test]
async fn examples_load_where_they_parse_and_are_served() {
    let cp = ControlPlane::start().await.unwrap();
    let admin = cp.admin_client();
    fixtures::install_rancher_crds(&admin).await.unwrap();
    let report = fixtures::load_examples(&admin).await.unwrap();
    let created = report.created.join("\n");
    let skipped: Vec<String> = report
        .skipped
        .iter()
        .map(|(s, r)| format!("{s}: {r}"))
        .collect();
    let skipped = skipped.join("\n");

    // Real management Clusters and Nodes from the dashboard mocks.
    assert!(
        created.contains("management.cattle.io/v3 Cluster c-kkwv2"),
        "{created}"
    );
    assert!(
        created.contains("management.cattle.io/v3 Node c-4sjtl/machine-74db2"),
        "{created}"
    );
    // The fixture with the stray-quote key loads (schemaless CRD keeps it).
    assert!(
        created.contains("eks-onclusterchange_active.yaml"),
        "{created}\n--\n{skipped}"
    );
    // A user and its password secret; fleet GitRepos; a generateName project.
    assert!(created.contains("User testuser"), "{created}");
    assert!(
        created.contains("v1 Secret cattle-local-user-passwords/testuser"),
        "{created}"
    );
    assert!(
        created.matches("fleet.cattle.io/v1alpha1 GitRepo").count() >= 50,
        "{created}"
    );
    assert!(created.contains("Project c-m-abcde/p-"), "{created}");
    // Kinds nobody serves here are skipped with a reason.
    assert!(
        skipped.contains("ext.cattle.io/v1 Token is not served"),
        "{skipped}"
    );
    assert!(
        skipped.contains("AKSClusterConfig is not served"),
        "{skipped}"
    );

    // The odd key really is stored.
    let ar = ApiResource::from_gvk_with_plural(
        &kube::api::GroupVersionKind::gvk("management.cattle.io", "v3", "Cluster"),
        "clusters",
    );
    let clusters = Api::<DynamicObject>::all_with(admin, &ar);
    let eks = created
        .lines()
        .find(|l| l.contains("eks-onclusterchange_active.yaml"))
        .and_then(|l| l.split_whitespace().nth(2))
        .unwrap()
        .to_string();
    let stored = clusters.get(&eks).await.unwrap();
    let group = &stored.data["spec"]["eksConfig"]["nodeGroups"][0];
    assert!(group.get("nodeRole\"").is_some(), "{group}");
}
