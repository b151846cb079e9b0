//! Restoring into a cluster that already holds the plane, drifted: changed,
//! deleted and extra objects. The plan must say exactly what changes, prune
//! must delete only unprotected extras, quiesce must hand Deployments back,
//! and the result must equal the recorded state.

mod restore_support;

use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use restore_support::*;
use rewind_history::{DesiredState, ResourceType, TypedKey};
use rewind_restore::live::api_for;
use rewind_restore::resume::{journal_path, read};
use rewind_restore::{Action, ApplyOptions, PlanOptions, ProtectedSet, apply, plan};
use rewind_tests::ControlPlane;
use serde_json::json;

fn key(t: ResourceType, ns: Option<&str>, name: &str) -> TypedKey {
    TypedKey {
        rtype: t,
        namespace: ns.map(Into::into),
        name: name.into(),
    }
}

fn action_of(p: &rewind_restore::RestorePlan, k: &TypedKey) -> Action {
    p.items
        .iter()
        .find(|i| &i.key == k)
        .unwrap_or_else(|| panic!("{k} not in plan"))
        .action
}

async fn create(client: &kube::Client, t: &ResourceType, body: serde_json::Value) {
    let ns = body["metadata"]["namespace"].as_str().map(str::to_owned);
    let mut body = body;
    body["apiVersion"] = json!(t.api_version());
    body["kind"] = json!(t.kind);
    let obj: DynamicObject = serde_json::from_value(body).unwrap();
    api_for(client, t, ns.as_deref())
        .create(&PostParams::default(), &obj)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restores_over_drift_with_prune_and_quiesce() {
    rewind_history::install_tls_provider();
    let cp = ControlPlane::start().await.unwrap();
    let client = cp.admin_client();
    write_plane(&client, &plane(5)).await;
    let recorded = record(&client).await;

    // Drift.
    let cm = key(cm_t(), Some("c-m-0001"), "agent-config");
    api_for(&client, &cm_t(), Some("c-m-0001"))
        .patch(
            &cm.name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"data": {"cluster": "tampered"}})),
        )
        .await
        .unwrap();
    let gone = key(mgmt_cluster_t(), None, "c-m-0002");
    api_for(&client, &mgmt_cluster_t(), None)
        .delete(&gone.name, &DeleteParams::default())
        .await
        .unwrap();
    let fleet = key(fleet_cluster_t(), Some("fleet-default"), "c-m-0003");
    api_for(&client, &fleet_cluster_t(), Some("fleet-default"))
        .patch_status(
            &fleet.name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": {"display": {"readyBundles": "0/3"}}})),
        )
        .await
        .unwrap();
    let stray = key(cm_t(), Some("c-m-0004"), "stray");
    create(
        &client,
        &cm_t(),
        json!({"metadata": {"name": "stray", "namespace": "c-m-0004"}}),
    )
    .await;
    create(
        &client,
        &cm_t(),
        json!({"metadata": {"name": "keep", "namespace": "kube-system"}}),
    )
    .await;
    let fc = key(deploy_t(), Some("cattle-system"), "fleet-controller");
    api_for(&client, &deploy_t(), Some("cattle-system"))
        .patch(
            &fc.name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"replicas": 5}})),
        )
        .await
        .unwrap();

    let opts = PlanOptions {
        prune: true,
        prune_scope: Some(rewind_history::select::ResourceSet::everything()),
        protected: ProtectedSet::with_defaults(&[]).unwrap(),
        ..PlanOptions::default()
    };
    let p = plan(&recorded, &client, &opts).await.unwrap();
    eprintln!("{}", p.to_table());
    assert_eq!(action_of(&p, &cm), Action::Update);
    assert_eq!(action_of(&p, &gone), Action::Create);
    assert_eq!(action_of(&p, &fleet), Action::Update);
    let fleet_changes = &p.items.iter().find(|i| i.key == fleet).unwrap().changes;
    assert_eq!(
        fleet_changes,
        &vec!["status.display.readyBundles".to_owned()],
        "field-level"
    );
    assert_eq!(action_of(&p, &stray), Action::Delete);
    assert_eq!(action_of(&p, &fc), Action::Update);
    // Dependents of the recreated cluster keep stale owner UIDs: rewired.
    let ns_of_gone = key(ns_t(), None, "c-m-0002");
    let project = key(project_t(), Some("c-m-0002"), "p-default");
    for k in [&ns_of_gone, &project] {
        let item = p.items.iter().find(|i| &i.key == k).unwrap();
        assert_eq!(item.action, Action::Update, "{k}");
        assert_eq!(item.changes, vec!["metadata.ownerReferences".to_owned()]);
    }
    assert!(
        p.items
            .iter()
            .all(|i| i.key.namespace.as_deref() != Some("kube-system"))
    );
    let changed = p
        .items
        .iter()
        .filter(|i| i.action != Action::Unchanged && i.action != Action::Skip)
        .count();
    assert_eq!(changed, 7, "{}", p.to_table());

    let state_dir = tempfile::tempdir().unwrap();
    let report = apply(
        &client,
        &p,
        &ApplyOptions {
            quiesce: vec![("cattle-system".into(), "fleet-controller".into())],
            state_dir: Some(state_dir.path().to_owned()),
            ..ApplyOptions::default()
        },
    )
    .await
    .unwrap();
    assert!(report.failures.is_empty(), "{:#?}", report.failures);
    assert_eq!(report.deleted, 1);
    assert_eq!(
        report.quiesced,
        vec![("cattle-system".into(), "fleet-controller".into(), 2)]
    );
    let (_, journal) = read(&journal_path(state_dir.path(), &p.id)).unwrap();
    assert_eq!(
        journal.quiesced,
        vec![("cattle-system".into(), "fleet-controller".into(), 5)],
        "original replicas journaled"
    );
    assert!(journal.finished);

    let mut want: DesiredState = recorded.clone();
    want.remove(&key(deploy_t(), Some("cattle-system"), "rancher"));
    let diffs = differences(&want, &client).await;
    // rancher is protected: left as it was, so it shows as "extra" here.
    let diffs: Vec<_> = diffs
        .into_iter()
        .filter(|d| d != "extra deployments.apps/cattle-system/rancher")
        .collect();
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
    let keep = api_for(&client, &cm_t(), Some("kube-system"))
        .get("keep")
        .await;
    assert!(keep.is_ok(), "protected kube-system object untouched");
    let again = plan(&recorded, &client, &opts).await.unwrap();
    assert!(!again.has_work(), "{}", again.to_table());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rancher_preset_applies_bro_fixes() {
    rewind_history::install_tls_provider();
    let (src, dst) = tokio::join!(ControlPlane::start(), ControlPlane::start());
    let (src, dst) = (src.unwrap(), dst.unwrap());
    write_plane(&src.admin_client(), &plane(3)).await;
    let mut recorded = record(&src.admin_client()).await;
    let reg = recorded
        .insert(
            &secret_t(),
            json!({"metadata": {"name": "reg-values", "namespace": "fleet-default"},
                   "type": "fleet.cattle.io/cluster-registration-values", "data": {"v": "eA=="}}),
        )
        .unwrap();
    let client = dst.admin_client();
    let opts = PlanOptions {
        rancher: true,
        protected: ProtectedSet::with_defaults(&[]).unwrap(),
        ..PlanOptions::default()
    };
    let p = plan(&recorded, &client, &opts).await.unwrap();
    assert_eq!(action_of(&p, &reg), Action::Skip);
    let preset = p.preset.clone().unwrap();
    assert_eq!(preset.service_account_secrets_dropped, 3);
    let report = apply(&client, &p, &ApplyOptions::default()).await.unwrap();
    assert!(report.failures.is_empty(), "{:#?}", report.failures);

    let fleet = api_for(&client, &fleet_cluster_t(), Some("fleet-default"))
        .get("c-m-0001")
        .await
        .unwrap();
    assert_eq!(
        fleet.data["spec"]["redeployAgentGeneration"], 2,
        "bumped from the recorded 1"
    );
    let sa = api_for(&client, &sa_t(), Some("c-m-0001"))
        .get("agent")
        .await
        .unwrap();
    assert!(sa.data.get("secrets").is_none(), "{:?}", sa.data);
    let mc = api_for(&client, &mgmt_cluster_t(), None)
        .get("c-m-0001")
        .await
        .unwrap();
    assert_eq!(
        mc.metadata.annotations.unwrap()["io.cattle.agent.force.deploy"],
        "true"
    );
    assert!(
        api_for(&client, &secret_t(), Some("fleet-default"))
            .get("reg-values")
            .await
            .is_err()
    );
}

/// An object being deleted at the recorded point (held by a finalizer, with
/// a deletionTimestamp) is listed as such and not written; with
/// `include_deleting` it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_being_deleted_at_the_point_is_not_resurrected() {
    rewind_history::install_tls_provider();
    let (src, dst) = tokio::join!(ControlPlane::start(), ControlPlane::start());
    let (src, dst) = (src.unwrap(), dst.unwrap());
    let admin = src.admin_client();
    write_plane(&admin, &plane(1)).await;
    create(
        &admin,
        &cm_t(),
        json!({"metadata": {"name": "dying", "namespace": "c-m-0000",
                            "finalizers": ["rewind.test/hold"]}, "data": {"a": "1"}}),
    )
    .await;
    api_for(&admin, &cm_t(), Some("c-m-0000"))
        .delete("dying", &DeleteParams::default())
        .await
        .unwrap();
    let recorded = record(&admin).await;
    let dying = key(cm_t(), Some("c-m-0000"), "dying");
    assert!(
        recorded.get(&dying).unwrap()["metadata"]["deletionTimestamp"].is_string(),
        "recorded while being deleted"
    );

    let client = dst.admin_client();
    let opts = PlanOptions {
        protected: ProtectedSet::with_defaults(&[]).unwrap(),
        ..PlanOptions::default()
    };
    let p = plan(&recorded, &client, &opts).await.unwrap();
    let item = p.items.iter().find(|i| i.key == dying).unwrap();
    assert_eq!(item.action, Action::Skip);
    assert_eq!(item.reason, Some(rewind_restore::SkipReason::BeingDeleted));
    let table = p.to_table();
    assert!(table.contains("being deleted at the point"), "{table}");
    let json = serde_json::to_value(&p).unwrap();
    let listed = json["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["key"]["name"] == "dying")
        .cloned()
        .unwrap();
    assert_eq!(listed["reason"], "being_deleted", "{listed}");
    let report = apply(&client, &p, &ApplyOptions::default()).await.unwrap();
    assert!(report.failures.is_empty(), "{:#?}", report.failures);
    let cms = api_for(&client, &cm_t(), Some("c-m-0000"));
    assert!(cms.get("dying").await.is_err(), "not resurrected");
    assert!(cms.get("agent-config").await.is_ok(), "the rest restored");

    let with = PlanOptions {
        include_deleting: true,
        ..opts
    };
    let p = plan(&recorded, &client, &with).await.unwrap();
    assert_eq!(action_of(&p, &dying), Action::Create);
    let report = apply(&client, &p, &ApplyOptions::default()).await.unwrap();
    assert!(report.failures.is_empty(), "{:#?}", report.failures);
    let restored = cms.get("dying").await.unwrap();
    assert!(restored.metadata.deletion_timestamp.is_none());
    // Let the test's control plane delete it when it stops.
    cms.patch(
        "dying",
        &PatchParams::default(),
        &Patch::Merge(&json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
}

/// An ownerReference to an owner outside the state that exists in the
/// target is rewired to the live owner's UID (and kept), one whose owner
/// exists nowhere is dropped; both are listed in the plan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_outside_the_state_is_rewired_to_the_live_owner() {
    rewind_history::install_tls_provider();
    let (src, dst) = tokio::join!(ControlPlane::start(), ControlPlane::start());
    let (src, dst) = (src.unwrap(), dst.unwrap());
    let admin = src.admin_client();
    write_plane(&admin, &plane(1)).await;
    let ns = Some("c-m-0000");
    let cms = api_for(&admin, &cm_t(), ns);
    create(
        &admin,
        &cm_t(),
        json!({"metadata": {"name": "owner", "namespace": "c-m-0000"}}),
    )
    .await;
    let owner_uid = cms.get("owner").await.unwrap().metadata.uid.unwrap();
    for (name, owner) in [("dep", "owner"), ("orphan", "ghost")] {
        create(
            &admin,
            &cm_t(),
            json!({"metadata": {"name": name, "namespace": "c-m-0000", "ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": owner, "uid": owner_uid}]}}),
        )
        .await;
    }
    let mut recorded = record(&admin).await;
    // The owner is outside what is restored (another selection, or never
    // recorded); the target has its own copy of it.
    recorded.remove(&key(cm_t(), ns, "owner"));
    let client = dst.admin_client();
    write_plane(&client, &[]).await;
    create(&client, &ns_t(), json!({"metadata": {"name": "c-m-0000"}})).await;
    create(
        &client,
        &cm_t(),
        json!({"metadata": {"name": "owner", "namespace": "c-m-0000"}}),
    )
    .await;
    let live_owner = api_for(&client, &cm_t(), ns)
        .get("owner")
        .await
        .unwrap()
        .metadata
        .uid
        .unwrap();
    assert_ne!(live_owner, owner_uid);

    let opts = PlanOptions {
        protected: ProtectedSet::with_defaults(&[]).unwrap(),
        ..PlanOptions::default()
    };
    let p = plan(&recorded, &client, &opts).await.unwrap();
    let shown = |name: &str| format!("configmaps/c-m-0000/{name}");
    let outside: Vec<(String, String, Option<String>)> = p
        .outside_owners
        .iter()
        .map(|o| (o.object.clone(), o.owner.clone(), o.live_uid.clone()))
        .collect();
    assert!(
        outside.contains(&(
            shown("dep"),
            "ConfigMap/owner".into(),
            Some(live_owner.clone())
        )),
        "{outside:?}"
    );
    assert!(
        outside.contains(&(shown("orphan"), "ConfigMap/ghost".into(), None)),
        "{outside:?}"
    );
    assert!(
        p.to_table()
            .contains("dropped ownerReference: configmaps/c-m-0000/orphan -> ConfigMap/ghost"),
        "{}",
        p.to_table()
    );
    let report = apply(&client, &p, &ApplyOptions::default()).await.unwrap();
    assert!(report.failures.is_empty(), "{:#?}", report.failures);
    let dep = api_for(&client, &cm_t(), ns).get("dep").await.unwrap();
    let refs = dep.metadata.owner_references.unwrap();
    assert_eq!(refs.len(), 1);
    assert_eq!(
        (refs[0].name.as_str(), refs[0].uid.as_str()),
        ("owner", live_owner.as_str())
    );
    let orphan = api_for(&client, &cm_t(), ns).get("orphan").await.unwrap();
    assert!(
        orphan
            .metadata
            .owner_references
            .unwrap_or_default()
            .is_empty()
    );
    // Planned again: nothing to do (the rewired reference is what is live).
    let again = plan(&recorded, &client, &opts).await.unwrap();
    assert!(!again.has_work(), "{}", again.to_table());
}

/// Restoring over a live object makes it equal the recorded one: a label,
/// an annotation, a spec field and a status field another field manager
/// added after the restore are removed by restoring the same point again,
/// the plan lists them field by field, and the next plan is all unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_removes_fields_other_managers_added() {
    rewind_history::install_tls_provider();
    let (src, dst) = tokio::join!(ControlPlane::start(), ControlPlane::start());
    let (src, dst) = (src.unwrap(), dst.unwrap());
    write_plane(&src.admin_client(), &plane(3)).await;
    let recorded = record(&src.admin_client()).await;
    drop(src);
    let client = dst.admin_client();
    let opts = PlanOptions {
        protected: ProtectedSet::with_defaults(&[]).unwrap(),
        ..PlanOptions::default()
    };
    let p = plan(&recorded, &client, &opts).await.unwrap();
    let report = apply(&client, &p, &ApplyOptions::default()).await.unwrap();
    assert!(report.failures.is_empty(), "{:#?}", report.failures);

    // Another manager adds to a restored Cluster (server-side apply), its
    // status (a controller) and a ConfigMap (a client-side update).
    let cluster = key(mgmt_cluster_t(), None, "c-m-0001");
    let clusters = api_for(&client, &mgmt_cluster_t(), None);
    let intruder = PatchParams::apply("intruder").force();
    clusters
        .patch(
            &cluster.name,
            &intruder,
            &Patch::Apply(&json!({
                "apiVersion": "management.cattle.io/v3", "kind": "Cluster",
                "metadata": {"name": "c-m-0001", "labels": {"added": "later"},
                             "annotations": {"note": "added later"}},
                "spec": {"extra": {"enabled": true}}
            })),
        )
        .await
        .unwrap();
    clusters
        .patch_status(
            &cluster.name,
            &PatchParams::apply("some-controller").force(),
            &Patch::Apply(&json!({
                "apiVersion": "management.cattle.io/v3", "kind": "Cluster",
                "metadata": {"name": "c-m-0001"},
                "status": {"observedLater": "yes"}
            })),
        )
        .await
        .unwrap();
    let cm = key(cm_t(), Some("c-m-0002"), "agent-config");
    api_for(&client, &cm_t(), Some("c-m-0002"))
        .patch(
            &cm.name,
            &PatchParams {
                field_manager: Some("kubectl-edit".into()),
                ..PatchParams::default()
            },
            &Patch::Merge(&json!({"data": {"added": "later"}})),
        )
        .await
        .unwrap();

    let p = plan(&recorded, &client, &opts).await.unwrap();
    eprintln!("{}", p.to_table());
    let changes = |k: &TypedKey| {
        let i = p.items.iter().find(|i| &i.key == k).unwrap();
        assert_eq!(i.action, Action::Update, "{k}");
        i.changes.clone()
    };
    assert_eq!(
        changes(&cluster),
        vec![
            "metadata.labels.added",
            "metadata.annotations.note",
            "spec.extra.enabled",
            "status.observedLater"
        ]
    );
    assert_eq!(changes(&cm), vec!["data.added"]);
    assert_eq!(p.count(Action::Update), 2, "{}", p.to_table());
    let table = p.to_table();
    assert!(table.contains("metadata.labels.added"), "{table}");

    let report = apply(&client, &p, &ApplyOptions::default()).await.unwrap();
    assert!(report.failures.is_empty(), "{:#?}", report.failures);
    assert_eq!(report.written, 2);
    let live = clusters.get(&cluster.name).await.unwrap();
    assert!(
        !live
            .metadata
            .labels
            .unwrap_or_default()
            .contains_key("added"),
        "label removed"
    );
    assert!(
        !live
            .metadata
            .annotations
            .unwrap_or_default()
            .contains_key("note"),
        "annotation removed"
    );
    assert!(live.data["spec"].get("extra").is_none(), "{}", live.data);
    assert!(live.data["status"].get("observedLater").is_none());
    assert_eq!(live.data["status"]["ready"], true, "recorded status kept");
    let cm_live = api_for(&client, &cm_t(), Some("c-m-0002"))
        .get(&cm.name)
        .await
        .unwrap();
    assert!(cm_live.data["data"].get("added").is_none());

    let again = plan(&recorded, &client, &opts).await.unwrap();
    assert!(!again.has_work(), "{}", again.to_table());
    assert_eq!(
        again.count(Action::Unchanged),
        recorded.len() - 1,
        "every object but the protected one unchanged"
    );
    let mut want = recorded.clone();
    want.remove(&key(deploy_t(), Some("cattle-system"), "rancher"));
    let diffs = differences(&want, &client).await;
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}

/// The resource set the plane was recorded with: its namespaces and the
/// types of its CRDs (a cert-manager-like namespace is outside it).
fn plane_selectors() -> Vec<rewind_history::select::ResourceSelector> {
    use rewind_history::select::ResourceSelector;
    let ns = Some("^(c-m-|cattle-|fleet-)".to_owned());
    let mut v = vec![
        ResourceSelector {
            api_version: "v1".into(),
            kinds: vec!["namespaces".into()],
            resource_name_regexp: ns.clone(),
            ..ResourceSelector::default()
        },
        ResourceSelector {
            api_version: "v1".into(),
            kinds: vec![
                "configmaps".into(),
                "secrets".into(),
                "serviceaccounts".into(),
            ],
            namespace_regexp: ns.clone(),
            ..ResourceSelector::default()
        },
        ResourceSelector {
            api_version: "apps/v1".into(),
            kinds: vec!["deployments".into()],
            namespace_regexp: ns,
            ..ResourceSelector::default()
        },
        ResourceSelector {
            api_version: "apiextensions.k8s.io/v1".into(),
            kinds: vec!["customresourcedefinitions".into()],
            resource_name_regexp: Some("(cattle\\.io|rewind\\.test)$".into()),
            ..ResourceSelector::default()
        },
    ];
    for api_version in [
        "management.cattle.io/v3",
        "fleet.cattle.io/v1alpha1",
        "rewind.test/v1",
    ] {
        v.push(ResourceSelector {
            api_version: api_version.into(),
            ..ResourceSelector::default()
        });
    }
    v
}

/// A target holding the plane, a foreign product's namespace (like
/// cert-manager's: workloads, secrets, RBAC) and one stray Secret inside
/// the plane's namespaces.
async fn lived_in_target(client: &kube::Client) -> TypedKey {
    write_plane(client, &plane(2)).await;
    let ns = Some("cert-manager");
    create(
        client,
        &ns_t(),
        json!({"metadata": {"name": "cert-manager"}}),
    )
    .await;
    create(
        client,
        &deploy_t(),
        deployment("cert-manager", "cert-manager", 1),
    )
    .await;
    create(client, &secret_t(), json!({"metadata": {"name": "cert-manager-ca", "namespace": "cert-manager"}, "type": "Opaque"})).await;
    create(
        client,
        &cm_t(),
        json!({"metadata": {"name": "cfg", "namespace": "cert-manager"}}),
    )
    .await;
    create(
        client,
        &sa_t(),
        json!({"metadata": {"name": "cert-manager", "namespace": "cert-manager"}}),
    )
    .await;
    let _ = ns;
    create(
        client,
        &secret_t(),
        json!({"metadata": {"name": "stray", "namespace": "c-m-0001"}, "type": "Opaque"}),
    )
    .await;
    key(secret_t(), Some("c-m-0001"), "stray")
}

async fn foreign_alive(client: &kube::Client) {
    let ns = Some("cert-manager");
    assert!(
        api_for(client, &ns_t(), None)
            .get("cert-manager")
            .await
            .is_ok()
    );
    assert!(
        api_for(client, &deploy_t(), ns)
            .get("cert-manager")
            .await
            .is_ok()
    );
    assert!(
        api_for(client, &secret_t(), ns)
            .get("cert-manager-ca")
            .await
            .is_ok()
    );
    assert!(api_for(client, &cm_t(), ns).get("cfg").await.is_ok());
    assert!(
        api_for(client, &sa_t(), ns)
            .get("cert-manager")
            .await
            .is_ok()
    );
}

/// Prune deletes only live objects the recorded resource set selects: a
/// foreign namespace and its objects survive, a stray object inside the
/// recorded namespaces goes; without a set, prune is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_leaves_what_was_never_recorded() {
    rewind_history::install_tls_provider();
    let (src, dst) = tokio::join!(ControlPlane::start(), ControlPlane::start());
    let (src, dst) = (src.unwrap(), dst.unwrap());
    write_plane(&src.admin_client(), &plane(2)).await;
    let recorded = record(&src.admin_client()).await;
    drop(src);
    let client = dst.admin_client();
    let stray = lived_in_target(&client).await;

    let mut opts = PlanOptions {
        prune: true,
        protected: ProtectedSet::with_defaults(&[]).unwrap(),
        ..PlanOptions::default()
    };
    let refused = plan(&recorded, &client, &opts).await.unwrap_err();
    let msg = refused.to_string();
    assert!(
        msg.contains("refusing to prune") && msg.contains("--resource-preset"),
        "{msg}"
    );
    opts.prune_scope =
        Some(rewind_history::select::ResourceSet::compile(&plane_selectors(), "test").unwrap());
    let p = plan(&recorded, &client, &opts).await.unwrap();
    let deletes: Vec<&TypedKey> = p
        .items
        .iter()
        .filter(|i| i.action == Action::Delete)
        .map(|i| &i.key)
        .collect();
    assert_eq!(deletes, vec![&stray], "{}", p.to_table());
    assert!(
        p.to_table().contains("delete     secrets/c-m-0001/stray"),
        "{}",
        p.to_table()
    );
    let report = apply(&client, &p, &ApplyOptions::default()).await.unwrap();
    assert!(report.failures.is_empty(), "{:#?}", report.failures);
    assert_eq!(report.deleted, 1);
    assert!(
        api_for(&client, &secret_t(), Some("c-m-0001"))
            .get("stray")
            .await
            .is_err()
    );
    foreign_alive(&client).await;
}

/// `rewind restore --prune` reads the resource set recorded in the store's
/// catalog; a store whose files carry none makes it refuse, unless the set
/// is named on the command line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_prune_uses_the_resource_set_recorded_in_the_store() {
    use rewind_format::{EventKind, EventRecord, WriteOptions};
    use rewind_history::store::{SegmentMeta, Store, StoreConfig};
    rewind_history::install_tls_provider();
    let (src, dst) = tokio::join!(ControlPlane::start(), ControlPlane::start());
    let (src, dst) = (src.unwrap(), dst.unwrap());
    write_plane(&src.admin_client(), &plane(2)).await;
    let recorded = record(&src.admin_client()).await;
    drop(src);
    let client = dst.admin_client();
    let stray = lived_in_target(&client).await;

    // A store holding the recorded state as one segment.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreConfig::Local {
        path: dir.path().to_owned(),
    })
    .await
    .unwrap();
    let events: Vec<EventRecord> = recorded
        .iter()
        .enumerate()
        .map(|(i, (k, o))| EventRecord {
            seq: i as u64 + 1,
            observed_at_ms: 1_800_000_000_000 + i64::try_from(i).unwrap(),
            cluster_id: "test".into(),
            rtype: rewind_format::ResourceType {
                group: k.rtype.group.clone(),
                version: k.rtype.version.clone(),
                resource: k.rtype.resource.clone(),
                kind: k.rtype.kind.clone(),
                namespaced: k.rtype.namespaced,
            },
            namespace: k.namespace.clone(),
            name: k.name.clone(),
            uid: o["metadata"]["uid"].as_str().unwrap().into(),
            resource_version: o["metadata"]["resourceVersion"].as_str().unwrap().into(),
            kind: EventKind::Applied,
            object: serde_json::to_vec(o).unwrap(),
        })
        .collect();
    let bytes = rewind_format::encode_segment("test", &events, &WriteOptions::default()).unwrap();
    let entry = store
        .put_segment(
            SegmentMeta {
                first_seq: 1,
                last_seq: events.len() as u64,
                first_time_ms: events[0].observed_at_ms,
                last_time_ms: events.last().unwrap().observed_at_ms,
                events: events.len() as u64,
                encrypted: false,
                resource_set: None,
            },
            bytes.into(),
        )
        .await
        .unwrap();
    let restore = |extra: &[&str]| {
        std::process::Command::new(rewind_tests::daemon::rewind_bin().unwrap())
            .arg("--store")
            .arg(dir.path())
            .args(["restore", "--at", "latest", "--to"])
            .arg(dst.admin_kubeconfig_path())
            .args(["--prune", "--yes"])
            .args(extra)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };

    // No set recorded, none named: refused, nothing deleted.
    let out = restore(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("refusing to prune") && stderr.contains("--resource-set"),
        "{stderr}"
    );
    assert!(
        api_for(&client, &secret_t(), Some("c-m-0001"))
            .get("stray")
            .await
            .is_ok()
    );

    // The catalog entry carries the recorded set (as rewindd writes it).
    let catalog = dir.path().join(entry.catalog_key());
    let mut doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&catalog).unwrap()).unwrap();
    doc["resource_set"] = json!({"selectors": plane_selectors()});
    std::fs::write(&catalog, serde_json::to_vec(&doc).unwrap()).unwrap();
    let out = restore(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{}\n{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        stderr.contains("limited to the resource set recorded with"),
        "{stderr}"
    );
    assert!(
        api_for(
            &client,
            &secret_t(),
            Some(stray.namespace.as_deref().unwrap())
        )
        .get(&stray.name)
        .await
        .is_err(),
        "the stray secret inside the recorded set is pruned"
    );
    foreign_alive(&client).await;
}
