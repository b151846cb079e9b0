//! The harness's Rancher fixtures (the real Rancher CRDs and a generated
//! plane of 20 downstream clusters) recorded from one control plane and
//! restored into a fresh one with the Rancher preset off: zero differences
//! apart from server-set fields.

mod restore_support;

use std::collections::BTreeSet;

use restore_support::*;
use rewind_history::ResourceType;
use rewind_restore::{ApplyOptions, PlanOptions, ProtectedSet, apply, plan};
use rewind_tests::ControlPlane;
use rewind_tests::fixtures::{PlaneSpec, generate, install_rancher_crds, load};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_rancher_plane_restores_exactly() {
    rewind_history::install_tls_provider();
    let (src, dst) = tokio::join!(ControlPlane::start(), ControlPlane::start());
    let (src, dst) = (src.unwrap(), dst.unwrap());
    let admin = src.admin_client();
    install_rancher_crds(&admin).await.unwrap();
    let objects = generate(&PlaneSpec::new(20));
    load(&admin, &objects, 16).await.unwrap();

    let mut types: BTreeSet<ResourceType> = objects
        .iter()
        .map(|o| ResourceType::new(&o.group, &o.version, &o.resource, &o.kind, o.namespaced))
        .collect();
    types.insert(crd_t());
    let types: Vec<ResourceType> = types.into_iter().collect();
    let recorded = record_types(&admin, &types).await;
    assert!(
        recorded.len() >= objects.len(),
        "{} < {}",
        recorded.len(),
        objects.len()
    );
    drop(src);

    let client = dst.admin_client();
    // Nothing protected: the generated plane may hold Rancher's own Deployments.
    let opts = PlanOptions {
        protected: ProtectedSet::empty(&[]).unwrap(),
        ..PlanOptions::default()
    };
    let p = plan(&recorded, &client, &opts).await.unwrap();
    let report = apply(&client, &p, &ApplyOptions::default()).await.unwrap();
    assert!(
        report.failures.is_empty(),
        "{:#?}",
        &report.failures[..report.failures.len().min(10)]
    );
    eprintln!(
        "restored {} objects ({} status) in {} ms; dropped refs {}",
        report.written,
        report.status_written,
        report.elapsed_ms,
        report.dropped_owner_refs.len()
    );
    let diffs = differences_for(&recorded, &client, &types).await;
    assert!(
        diffs.is_empty(),
        "{} differences, first:\n{}",
        diffs.len(),
        diffs
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(!plan(&recorded, &client, &opts).await.unwrap().has_work());
}
