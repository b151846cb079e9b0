//! Main restore scenario against real control planes: a Rancher-shaped plane
//! of 20 downstream clusters is written into one control plane, recorded the
//! way the daemon records it (LIST results, server fields and all), and
//! restored into a fresh control plane that has none of its CRDs. The result
//! is compared object by object: zero differences apart from server-set
//! fields, every ownerReference pointing at the new owner's UID.

mod restore_support;

use restore_support::*;
use rewind_history::{ResourceType, TypedKey};
use rewind_restore::{Action, ApplyOptions, PlanOptions, ProtectedSet, apply, plan};
use rewind_tests::ControlPlane;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restores_a_recorded_plane_into_a_fresh_control_plane() {
    rewind_history::install_tls_provider();
    let (src, dst) = tokio::join!(ControlPlane::start(), ControlPlane::start());
    let (src, dst) = (src.unwrap(), dst.unwrap());
    write_plane(&src.admin_client(), &plane(20)).await;
    let mut recorded = record(&src.admin_client()).await;
    // As rewindd records them: with apiVersion/kind, which LIST items of
    // built-in types lack (the second plan below once saw every such
    // object as `update [apiVersion, kind]`).
    for (k, o) in recorded.iter_mut() {
        let m = o.as_object_mut().unwrap();
        m.insert("apiVersion".into(), k.rtype.api_version().into());
        m.insert("kind".into(), k.rtype.kind.clone().into());
    }
    assert!(
        recorded.len() > 20 * 7,
        "recorded {} objects",
        recorded.len()
    );
    drop(src);

    let client = dst.admin_client();
    // The target lacks every CRD: they come from the state.
    assert_eq!(count(&client, &mgmt_cluster_t()).await, 0);
    let opts = PlanOptions {
        protected: ProtectedSet::with_defaults(&[]).unwrap(),
        ..PlanOptions::default()
    };
    let p = plan(&recorded, &client, &opts).await.unwrap();
    let rancher = TypedKey {
        rtype: deploy_t(),
        namespace: Some("cattle-system".into()),
        name: "rancher".into(),
    };
    let skipped: Vec<_> = p
        .items
        .iter()
        .filter(|i| i.action == Action::Skip)
        .map(|i| &i.key)
        .collect();
    assert_eq!(
        skipped,
        vec![&rancher],
        "only the protected Rancher Deployment is skipped"
    );
    assert_eq!(
        p.count(Action::Create),
        recorded.len() - 1,
        "{}",
        p.to_table()
    );

    let report = apply(&client, &p, &ApplyOptions::default()).await.unwrap();
    assert!(report.failures.is_empty(), "{:#?}", report.failures);
    assert!(
        report.dropped_owner_refs.is_empty(),
        "{:?}",
        report.dropped_owner_refs
    );
    assert_eq!(report.written, recorded.len() - 1);
    // Management clusters, projects and fleet clusters have a status subresource.
    assert_eq!(report.status_written, 20 * 3);

    let mut want = recorded.clone();
    want.remove(&rancher);
    let diffs = differences(&want, &client).await;
    assert!(
        diffs.is_empty(),
        "{} differences:\n{}",
        diffs.len(),
        diffs.join("\n")
    );

    // A second plan against the restored cluster has nothing to do.
    let again = plan(&recorded, &client, &opts).await.unwrap();
    assert!(!again.has_work(), "{}", again.to_table());
    assert_eq!(again.count(Action::Unchanged), recorded.len() - 1);
}

/// Creates `body` (of type `t`) with a plain POST, as an ordinary client would.
async fn create(client: &kube::Client, t: &rewind_history::ResourceType, body: serde_json::Value) {
    use kube::api::{DynamicObject, PostParams};
    let ns = body["metadata"]["namespace"].as_str().map(str::to_owned);
    let mut body = body;
    body["apiVersion"] = serde_json::json!(t.api_version());
    body["kind"] = serde_json::json!(t.kind);
    let obj: DynamicObject = serde_json::from_value(body).unwrap();
    rewind_restore::live::api_for(client, t, ns.as_deref())
        .create(&PostParams::default(), &obj)
        .await
        .unwrap_or_else(|e| panic!("creating {t}: {e}"));
}

/// The restore actions per type against the real apiserver: objects the
/// target's controllers own are skipped and listed by reason, allocated
/// and binding fields are left to the target (updates keep the live ones),
/// and a validating webhook whose backend is down is written after every
/// other object, so it cannot reject them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn type_actions_skip_adjust_and_write_webhooks_last() {
    use rewind_restore::SkipReason;
    use rewind_restore::actions::Adjustment;
    use rewind_restore::live::api_for;
    use serde_json::json;

    rewind_history::install_tls_provider();
    let (src, dst) = tokio::join!(ControlPlane::start(), ControlPlane::start());
    let (src, dst) = (src.unwrap(), dst.unwrap());
    let admin = src.admin_client();
    let svc_t = ResourceType::new("", "v1", "services", "Service", true);
    let job_t = ResourceType::new("batch", "v1", "jobs", "Job", true);
    let pod_t = ResourceType::new("", "v1", "pods", "Pod", true);
    let event_t = ResourceType::new("", "v1", "events", "Event", true);
    let lease_t = ResourceType::new("coordination.k8s.io", "v1", "leases", "Lease", true);
    let node_t = ResourceType::new("", "v1", "nodes", "Node", false);
    let ep_t = ResourceType::new("", "v1", "endpoints", "Endpoints", true);
    let slice_t = ResourceType::new(
        "discovery.k8s.io",
        "v1",
        "endpointslices",
        "EndpointSlice",
        true,
    );
    let pv_t = ResourceType::new("", "v1", "persistentvolumes", "PersistentVolume", false);
    let pvc_t = ResourceType::new(
        "",
        "v1",
        "persistentvolumeclaims",
        "PersistentVolumeClaim",
        true,
    );
    let vwc_t = ResourceType::new(
        "admissionregistration.k8s.io",
        "v1",
        "validatingwebhookconfigurations",
        "ValidatingWebhookConfiguration",
        false,
    );
    let types = vec![
        ns_t(),
        svc_t.clone(),
        job_t.clone(),
        pod_t.clone(),
        event_t.clone(),
        lease_t.clone(),
        node_t.clone(),
        ep_t.clone(),
        slice_t.clone(),
        pv_t.clone(),
        pvc_t.clone(),
        sa_t(),
        secret_t(),
        cm_t(),
        vwc_t.clone(),
    ];
    let m = |name: &str| json!({"name": name, "namespace": "apps"});
    create(
        &admin,
        &ns_t(),
        json!({"metadata": {"name": "apps", "labels": {"rewind.test/guarded": "yes"}}}),
    )
    .await;
    create(&admin, &svc_t, json!({"metadata": m("web"), "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})).await;
    create(&admin, &svc_t, json!({"metadata": m("np"), "spec": {"type": "NodePort", "selector": {"app": "np"},
        "ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443, "nodePort": 30443}]}})).await;
    create(&admin, &svc_t, json!({"metadata": m("headless"), "spec": {"clusterIP": "None", "selector": {"app": "h"}, "ports": [{"port": 80}]}})).await;
    create(
        &admin,
        &job_t,
        json!({"metadata": m("once"), "spec": {"template": {"spec": {
        "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}}),
    )
    .await;
    let containers = json!([{"name": "c", "image": "busybox"}]);
    create(&admin, &pod_t, json!({"metadata": {"name": "web-1", "namespace": "apps", "ownerReferences": [
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "6a1c1d2e-0000-4000-8000-000000000001", "controller": true}]},
        "spec": {"containers": containers}})).await;
    create(&admin, &pod_t, json!({"metadata": m("standalone"), "spec": {"nodeName": "old-node", "priority": 5, "containers": containers}})).await;
    create(&admin, &sa_t(), json!({"metadata": m("builder")})).await;
    create(
        &admin,
        &secret_t(),
        json!({"metadata": {"name": "builder-token-x7k2p", "namespace": "apps",
        "annotations": {"kubernetes.io/service-account.name": "builder"}},
        "type": "kubernetes.io/service-account-token", "data": {"token": "b2xk"}}),
    )
    .await;
    create(&admin, &secret_t(), json!({"metadata": {"name": "builder-long-lived", "namespace": "apps",
        "annotations": {"kubernetes.io/service-account.name": "builder", "kubernetes.io/service-account.uid": "old-uid"}},
        "type": "kubernetes.io/service-account-token", "data": {"token": "b2xk", "ca.crt": "Y2E="}})).await;
    create(&admin, &event_t, json!({"metadata": m("web.1"), "involvedObject": {"kind": "Service", "namespace": "apps", "name": "web"},
        "reason": "Test", "message": "m"})).await;
    create(
        &admin,
        &lease_t,
        json!({"metadata": m("leader"), "spec": {"holderIdentity": "old"}}),
    )
    .await;
    create(&admin, &node_t, json!({"metadata": {"name": "old-node"}})).await;
    create(&admin, &ep_t, json!({"metadata": m("web"), "subsets": [{"addresses": [{"ip": "10.9.0.1"}], "ports": [{"port": 80}]}]})).await;
    create(&admin, &slice_t, json!({"metadata": {"name": "web-abc", "namespace": "apps", "labels": {
        "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io", "kubernetes.io/service-name": "web"}},
        "addressType": "IPv4", "endpoints": [{"addresses": ["10.9.0.1"]}], "ports": [{"port": 80}]})).await;
    create(&admin, &pvc_t, json!({"metadata": {"name": "data", "namespace": "apps", "annotations": {
        "pv.kubernetes.io/bind-completed": "yes", "pv.kubernetes.io/bound-by-controller": "yes"}},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}, "volumeName": "pv1"}})).await;
    create(&admin, &pv_t, json!({"metadata": {"name": "pv1", "annotations": {"pv.kubernetes.io/bound-by-controller": "yes"}},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/tmp/pv1"},
                 "claimRef": {"kind": "PersistentVolumeClaim", "namespace": "apps", "name": "data", "uid": "1b1c1d2e-0000-4000-8000-000000000002"}}})).await;
    for i in 0..20 {
        create(
            &admin,
            &cm_t(),
            json!({"metadata": m(&format!("cm-{i:02}")), "data": {"i": i.to_string()}}),
        )
        .await;
    }
    // Last in the source too: it rejects every ConfigMap write in `apps`.
    create(&admin, &vwc_t, json!({"metadata": {"name": "deny-configmaps"}, "webhooks": [{
        "name": "deny.rewind.test", "clientConfig": {"url": "https://127.0.0.1:1/deny"},
        "rules": [{"operations": ["CREATE", "UPDATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"]}],
        "namespaceSelector": {"matchLabels": {"rewind.test/guarded": "yes"}},
        "failurePolicy": "Fail", "sideEffects": "None", "admissionReviewVersions": ["v1"]}]})).await;
    let recorded = record_types(&admin, &types).await;
    let recorded_np = recorded
        .iter()
        .find(|(k, _)| k.name == "np" && k.rtype == svc_t)
        .unwrap()
        .1
        .clone();
    drop(src);

    let client = dst.admin_client();
    let opts = PlanOptions {
        protected: ProtectedSet::with_defaults(&[]).unwrap(),
        ..PlanOptions::default()
    };
    let p = plan(&recorded, &client, &opts).await.unwrap();
    let table = p.to_table();
    eprintln!("{table}");
    let item = |t: &rewind_history::ResourceType, name: &str| {
        p.items
            .iter()
            .find(|i| &i.key.rtype == t && i.key.name == name)
            .unwrap_or_else(|| panic!("{t}/{name} not in the plan"))
    };
    for (t, name) in [
        (&event_t, "web.1"),
        (&lease_t, "leader"),
        (&node_t, "old-node"),
        (&ep_t, "web"),
        (&slice_t, "web-abc"),
    ] {
        assert_eq!(
            item(t, name).reason,
            Some(SkipReason::NeverWritten),
            "{t}/{name}"
        );
    }
    assert_eq!(
        item(&pod_t, "web-1").reason,
        Some(SkipReason::ControllerOwned)
    );
    assert_eq!(
        item(&secret_t(), "builder-token-x7k2p").reason,
        Some(SkipReason::ServiceAccountToken)
    );
    for (t, name, a) in [
        (&svc_t, "web", Adjustment::ServiceAllocated),
        (&svc_t, "np", Adjustment::ServiceAllocated),
        (&job_t, "once", Adjustment::JobControllerUid),
        (&pod_t, "standalone", Adjustment::PodBinding),
        (&secret_t(), "builder-long-lived", Adjustment::TokenData),
        (&pv_t, "pv1", Adjustment::VolumeBinding),
        (&pvc_t, "data", Adjustment::VolumeBinding),
    ] {
        let i = item(t, name);
        assert_eq!(
            (i.action, i.adjusted),
            (Action::Create, Some(a)),
            "{t}/{name}"
        );
    }
    assert_eq!(item(&svc_t, "headless").adjusted, None, "headless kept");
    // Every recorded Event is skipped by type (the apiserver may have
    // emitted some of its own besides the test's).
    let events = recorded.iter().filter(|(k, _)| k.rtype == event_t).count();
    assert!(events >= 1);
    assert!(
        table.contains(&format!("events ({events} objects)")),
        "{table}"
    );
    assert!(table.contains("restore actions:"), "{table}");

    let report = apply(&client, &p, &ApplyOptions::default()).await.unwrap();
    assert!(report.failures.is_empty(), "{:#?}", report.failures);
    for (t, name) in [
        (&event_t, "web.1"),
        (&lease_t, "leader"),
        (&ep_t, "web"),
        (&slice_t, "web-abc"),
        (&pod_t, "web-1"),
        (&secret_t(), "builder-token-x7k2p"),
    ] {
        assert!(
            api_for(&client, t, Some("apps")).get(name).await.is_err(),
            "{t}/{name} written"
        );
    }
    assert!(
        api_for(&client, &node_t, None)
            .get("old-node")
            .await
            .is_err()
    );
    let np = api_for(&client, &svc_t, Some("apps"))
        .get("np")
        .await
        .unwrap();
    assert_eq!(
        np.data["spec"]["ports"][1]["nodePort"], 30443,
        "explicit nodePort kept"
    );
    assert!(
        np.data["spec"]["ports"][0]["nodePort"].is_number(),
        "allocated anew"
    );
    assert_ne!(np.data["spec"]["clusterIP"], json!(null));
    let recorded_ip = recorded_np["spec"]["clusterIP"].clone();
    eprintln!(
        "np clusterIP recorded {recorded_ip}, restored {}",
        np.data["spec"]["clusterIP"]
    );
    let headless = api_for(&client, &svc_t, Some("apps"))
        .get("headless")
        .await
        .unwrap();
    assert_eq!(headless.data["spec"]["clusterIP"], "None");
    let job = api_for(&client, &job_t, Some("apps"))
        .get("once")
        .await
        .unwrap();
    let uid = job.metadata.uid.clone().unwrap();
    assert_eq!(
        job.data["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"],
        json!(uid),
        "selector made for the new Job"
    );
    let pod = api_for(&client, &pod_t, Some("apps"))
        .get("standalone")
        .await
        .unwrap();
    assert!(
        pod.data["spec"].get("nodeName").is_none(),
        "{}",
        pod.data["spec"]
    );
    let tok = api_for(&client, &secret_t(), Some("apps"))
        .get("builder-long-lived")
        .await
        .unwrap();
    assert!(
        tok.data
            .get("data")
            .is_none_or(|d| d.get("token").is_none())
    );
    assert!(
        !tok.metadata
            .annotations
            .unwrap_or_default()
            .contains_key("kubernetes.io/service-account.uid")
    );
    let pv = api_for(&client, &pv_t, None).get("pv1").await.unwrap();
    assert!(pv.data["spec"]["claimRef"].get("uid").is_none());
    assert!(
        api_for(&client, &vwc_t, None)
            .get("deny-configmaps")
            .await
            .is_ok()
    );
    for i in 0..20 {
        assert!(
            api_for(&client, &cm_t(), Some("apps"))
                .get(&format!("cm-{i:02}"))
                .await
                .is_ok()
        );
    }

    // Every written object equals its recording, apart from what the
    // actions leave to the target; and a second plan has nothing to do.
    let mut want = recorded.clone();
    for i in p.items.iter().filter(|i| i.action == Action::Skip) {
        want.remove(&i.key);
    }
    let diffs = differences_without_status(&want, &client, &types, &types).await;
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
    let again = plan(&recorded, &client, &opts).await.unwrap();
    assert!(!again.has_work(), "{}", again.to_table());

    // Updates keep what the target allocated (most of it immutable): a
    // label another manager added to each adjusted object is removed by a
    // replace that carries the live clusterIP, nodePorts, Job selector,
    // node binding, token data and volume binding over.
    let adjusted: Vec<(rewind_history::ResourceType, Option<&str>, &str)> = vec![
        (svc_t.clone(), Some("apps"), "np"),
        (svc_t.clone(), Some("apps"), "web"),
        (job_t.clone(), Some("apps"), "once"),
        (pod_t.clone(), Some("apps"), "standalone"),
        (secret_t(), Some("apps"), "builder-long-lived"),
        (pv_t.clone(), None, "pv1"),
        (pvc_t.clone(), Some("apps"), "data"),
    ];
    for (t, ns, name) in &adjusted {
        api_for(&client, t, *ns)
            .patch(
                name,
                &kube::api::PatchParams::apply("intruder").force(),
                &kube::api::Patch::Apply(&json!({
                    "apiVersion": t.api_version(), "kind": t.kind,
                    "metadata": {"name": name, "labels": {"intruder": "yes"}}
                })),
            )
            .await
            .unwrap_or_else(|e| panic!("{t}/{name}: {e}"));
    }
    let ip_before = api_for(&client, &svc_t, Some("apps"))
        .get("np")
        .await
        .unwrap()
        .data["spec"]["clusterIP"]
        .clone();
    let p = plan(&recorded, &client, &opts).await.unwrap();
    assert_eq!(p.count(Action::Update), adjusted.len(), "{}", p.to_table());
    for i in p.items.iter().filter(|i| i.action == Action::Update) {
        assert_eq!(i.changes, vec!["metadata.labels.intruder"], "{}", i.key);
    }
    let report = apply(&client, &p, &ApplyOptions::default()).await.unwrap();
    assert!(report.failures.is_empty(), "{:#?}", report.failures);
    for (t, ns, name) in &adjusted {
        let o = api_for(&client, t, *ns).get(name).await.unwrap();
        assert!(
            !o.metadata
                .labels
                .unwrap_or_default()
                .contains_key("intruder"),
            "{t}/{name}"
        );
    }
    let np = api_for(&client, &svc_t, Some("apps"))
        .get("np")
        .await
        .unwrap();
    assert_eq!(np.data["spec"]["clusterIP"], ip_before, "clusterIP kept");
    let job = api_for(&client, &job_t, Some("apps"))
        .get("once")
        .await
        .unwrap();
    assert_eq!(
        job.data["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"],
        json!(uid)
    );
    let again = plan(&recorded, &client, &opts).await.unwrap();
    assert!(!again.has_work(), "{}", again.to_table());
}
