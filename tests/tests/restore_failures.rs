//! Failures stay local and are reported with the API's reason: an object
//! the API rejects (schema violation), an object of a type nobody defines,
//! and an identity without write rights.

mod restore_support;

use restore_support::*;
use rewind_history::state::KubeType;
use rewind_history::{ResourceType, TypedKey};
use rewind_restore::{Action, ApplyOptions, PlanOptions, ProtectedSet, apply, plan};
use rewind_tests::ControlPlane;
use serde_json::json;

fn rancher_key() -> TypedKey {
    TypedKey {
        rtype: deploy_t(),
        namespace: Some("cattle-system".into()),
        name: "rancher".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_rejected_object_does_not_stop_the_rest() {
    rewind_history::install_tls_provider();
    let (src, dst) = tokio::join!(ControlPlane::start(), ControlPlane::start());
    let (src, dst) = (src.unwrap(), dst.unwrap());
    write_plane(&src.admin_client(), &plane(10)).await;
    let mut recorded = record(&src.admin_client()).await;
    // `spec.size` must be an integer >= 0. A string fails server-side
    // apply's typed conversion (a bare 500); -5 fails validation (422).
    let wrong_type = recorded
        .insert(&strict_t(), json!({"metadata": {"name": "wrong-type", "namespace": "c-m-0003"}, "spec": {"size": "huge"}}))
        .unwrap();
    let invalid = recorded
        .insert(&strict_t(), json!({"metadata": {"name": "negative", "namespace": "c-m-0003"}, "spec": {"size": -5}}))
        .unwrap();
    recorded
        .insert(
            &strict_t(),
            json!({"metadata": {"name": "good", "namespace": "c-m-0003"}, "spec": {"size": 3}}),
        )
        .unwrap();
    // A type no CRD defines, neither in the state nor in the target.
    let orphan_t = ResourceType::new("nowhere.test", "v1", "gadgets", "Gadget", true);
    let orphan = recorded
        .insert(
            &orphan_t,
            json!({"metadata": {"name": "g", "namespace": "c-m-0003"}}),
        )
        .unwrap();

    let client = dst.admin_client();
    let opts = PlanOptions {
        protected: ProtectedSet::with_defaults(&[]).unwrap(),
        ..PlanOptions::default()
    };
    let p = plan(&recorded, &client, &opts).await.unwrap();
    assert!(
        p.warnings
            .iter()
            .any(|w| w.contains("gadgets.nowhere.test")),
        "{:?}",
        p.warnings
    );
    let report = apply(&client, &p, &ApplyOptions::default()).await.unwrap();
    let mut failed: Vec<(&str, &str, u16)> = report
        .failures
        .iter()
        .map(|f| (f.object.as_str(), f.failure.reason.as_str(), f.failure.code))
        .collect();
    failed.sort();
    let (orphan_s, wrong_s, invalid_s) = (
        orphan.to_string(),
        wrong_type.to_string(),
        invalid.to_string(),
    );
    assert_eq!(
        failed,
        vec![
            (orphan_s.as_str(), "NotFound", 404),
            (invalid_s.as_str(), "Invalid", 422),
            (wrong_s.as_str(), "InternalError", 500),
        ],
        "{:#?}",
        report.failures
    );
    for f in report.failures.iter().filter(|f| f.object != orphan_s) {
        assert!(
            f.failure.message.contains("spec.size"),
            "{}",
            f.failure.message
        );
    }
    let missing = report
        .failures
        .iter()
        .find(|f| f.object == orphan_s)
        .unwrap();
    assert!(missing.failure.message.contains("CRD"), "{missing:?}");

    let mut want = recorded.clone();
    want.remove(&wrong_type);
    want.remove(&invalid);
    want.remove(&orphan);
    want.remove(&rancher_key());
    // Compare only the plane's types plus Strict (record() lists Strict).
    let diffs = differences(&want, &client).await;
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_without_write_rights_fails_clearly_and_writes_nothing() {
    rewind_history::install_tls_provider();
    let (src, dst) = tokio::join!(ControlPlane::start(), ControlPlane::start());
    let (src, dst) = (src.unwrap(), dst.unwrap());
    write_plane(&src.admin_client(), &plane(2)).await;
    let recorded = record(&src.admin_client()).await;
    // The read-only identity can plan (it may list) but not write.
    let ro = dst.readonly_client();
    let p = plan(&recorded, &ro, &PlanOptions::default()).await.unwrap();
    assert_eq!(p.count(Action::Create), recorded.len());
    let report = apply(&ro, &p, &ApplyOptions::default()).await.unwrap();
    assert_eq!(report.written, 0);
    assert!(!report.failures.is_empty());
    for f in &report.failures {
        assert_eq!(
            (f.failure.reason.as_str(), f.failure.code),
            ("Forbidden", 403),
            "{f:?}"
        );
        assert!(
            f.failure.message.contains("cannot patch"),
            "{}",
            f.failure.message
        );
    }
    // Every object failed: nothing written means every planned write is reported.
    assert_eq!(report.failures.len(), recorded.len());
    assert_eq!(count(&dst.admin_client(), &crd_t()).await, 0);
}

/// Creates `body` (of type `t`) with a plain POST.
async fn create(
    client: &kube::Client,
    t: &rewind_history::ResourceType,
    body: serde_json::Value,
) -> Result<(), kube::Error> {
    use kube::api::{DynamicObject, PostParams};
    let ns = body["metadata"]["namespace"].as_str().map(str::to_owned);
    let mut body = body;
    body["apiVersion"] = json!(t.api_version());
    body["kind"] = json!(t.kind);
    let obj: DynamicObject = serde_json::from_value(body).unwrap();
    rewind_restore::live::api_for(client, t, ns.as_deref())
        .create(&PostParams::default(), &obj)
        .await
        .map(drop)
}

/// An object an admission policy rejects because what it refers to is not
/// there yet is tried once more after its level, which writes it; one
/// still rejected (its reference never comes, or its namespace does not
/// exist) is reported with the reason, marked as tried again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_rejected_for_a_reference_are_tried_again_after_their_level() {
    use std::time::{Duration, Instant};
    rewind_history::install_tls_provider();
    let cp = ControlPlane::start().await.unwrap();
    let client = cp.admin_client();
    let vap_t = ResourceType::new(
        "admissionregistration.k8s.io",
        "v1",
        "validatingadmissionpolicies",
        "ValidatingAdmissionPolicy",
        false,
    );
    let vapb_t = ResourceType::new(
        "admissionregistration.k8s.io",
        "v1",
        "validatingadmissionpolicybindings",
        "ValidatingAdmissionPolicyBinding",
        false,
    );
    // ConfigMaps in a namespace labelled `rewind.test/needs` need the
    // Secret `allow` in the namespace the label names (a reference check,
    // the way rancher-webhook checks that a role exists).
    create(
        &client,
        &vap_t,
        json!({"metadata": {"name": "needs-allow"}, "spec": {
        "paramKind": {"apiVersion": "v1", "kind": "Secret"},
        "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
            "operations": ["CREATE", "UPDATE"], "resources": ["configmaps"]}]},
        "validations": [{"expression": "true"}]}}),
    )
    .await
    .unwrap();
    for ns in ["guarded", "locked"] {
        create(
            &client,
            &vapb_t,
            json!({"metadata": {"name": format!("needs-allow-{ns}")}, "spec": {
            "policyName": "needs-allow", "validationActions": ["Deny"],
            "paramRef": {"name": "allow", "namespace": ns, "parameterNotFoundAction": "Deny"},
            "matchResources": {"namespaceSelector": {"matchLabels": {"rewind.test/needs": ns}}}}}),
        )
        .await
        .unwrap();
    }
    // Wait until the policy is in force.
    create(
        &client,
        &ns_t(),
        json!({"metadata": {"name": "probe", "labels": {"rewind.test/needs": "locked"}}}),
    )
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while create(
        &client,
        &cm_t(),
        json!({"metadata": {"name": "probe", "namespace": "probe"}}),
    )
    .await
    .is_ok()
    {
        kube::Api::<kube::api::DynamicObject>::namespaced_with(
            client.clone(),
            "probe",
            &cm_t().api_resource(),
        )
        .delete("probe", &Default::default())
        .await
        .unwrap();
        assert!(Instant::now() < deadline, "policy never in force");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let mut state = rewind_history::DesiredState::new();
    for ns in ["guarded", "locked"] {
        state
            .insert(
                &ns_t(),
                json!({"metadata": {"name": ns, "labels": {"rewind.test/needs": ns}}}),
            )
            .unwrap();
    }
    for i in 0..5 {
        state
            .insert(
                &cm_t(),
                json!({"metadata": {"name": format!("cm-{i}"), "namespace": "guarded"}}),
            )
            .unwrap();
    }
    state
        .insert(
            &secret_t(),
            json!({"metadata": {"name": "allow", "namespace": "guarded"}, "type": "Opaque"}),
        )
        .unwrap();
    let locked = state
        .insert(
            &cm_t(),
            json!({"metadata": {"name": "cm-x", "namespace": "locked"}}),
        )
        .unwrap();
    let homeless = state
        .insert(
            &cm_t(),
            json!({"metadata": {"name": "cm-y", "namespace": "nowhere"}}),
        )
        .unwrap();
    let p = plan(&state, &client, &PlanOptions::default())
        .await
        .unwrap();
    // One at a time: every ConfigMap (sorted before Secrets) is written
    // before the Secret it needs.
    let report = apply(
        &client,
        &p,
        &ApplyOptions {
            concurrency: 1,
            ..ApplyOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(report.deferred_retries, 7, "{report:#?}");
    let mut failed: Vec<(String, bool)> = report
        .failures
        .iter()
        .map(|f| (f.object.clone(), f.retried_after_level))
        .collect();
    failed.sort();
    assert_eq!(
        failed,
        vec![(locked.to_string(), true), (homeless.to_string(), true)],
        "{:#?}",
        report.failures
    );
    let why = |k: &TypedKey| {
        report
            .failures
            .iter()
            .find(|f| f.object == k.to_string())
            .unwrap()
            .failure
            .clone()
    };
    assert!(
        why(&locked).message.contains("ValidatingAdmissionPolicy"),
        "{:?}",
        why(&locked)
    );
    assert_eq!(why(&homeless).code, 404, "{:?}", why(&homeless));
    for i in 0..5 {
        assert!(
            rewind_restore::live::api_for(&client, &cm_t(), Some("guarded"))
                .get(&format!("cm-{i}"))
                .await
                .is_ok()
        );
    }
}

/// Connections reset while a restore writes are retried with backoff: the
/// restore completes with no failure, counts the retries, and the result
/// equals the recording.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_resets_during_a_restore_are_retried() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;
    rewind_history::install_tls_provider();
    let (src, dst) = tokio::join!(ControlPlane::start(), ControlPlane::start());
    let (src, dst) = (src.unwrap(), dst.unwrap());
    write_plane(&src.admin_client(), &plane(80)).await;
    let recorded = record(&src.admin_client()).await;
    drop(src);
    let proxied = dst.proxy().await.unwrap();
    let client = proxied.admin.client.clone();
    let opts = PlanOptions {
        protected: ProtectedSet::with_defaults(&[]).unwrap(),
        ..PlanOptions::default()
    };
    let p = plan(&recorded, &client, &opts).await.unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let proxy = Arc::new(proxied.proxy);
    let cutter = {
        let (done, proxy) = (done.clone(), proxy.clone());
        tokio::spawn(async move {
            // Every connection dies now and then (a load balancer or an
            // apiserver going away), not so often that a request never
            // gets through.
            let mut cuts = 0;
            while !done.load(Ordering::Relaxed) && cuts < 8 {
                tokio::time::sleep(Duration::from_millis(250)).await;
                proxy.cut_all();
                cuts += 1;
            }
            cuts
        })
    };
    let report = apply(&client, &p, &ApplyOptions::default()).await.unwrap();
    done.store(true, Ordering::Relaxed);
    let cuts = cutter.await.unwrap();
    eprintln!(
        "{cuts} cuts, {} retries, {} written in {} ms",
        report.retries, report.written, report.elapsed_ms
    );
    assert!(report.failures.is_empty(), "{:#?}", report.failures);
    assert!(report.retries > 0, "no request met a reset ({cuts} cuts)");
    let mut want = recorded.clone();
    want.remove(&rancher_key());
    let diffs = differences(&want, &dst.admin_client()).await;
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}
