//! Failures stay local and are reported with the API's reason: an object
//! the API rejects (schema violation), an object of a type nobody defines,
//! and an identity without write rights.

mod restore_support;

use restore_support::*;
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
