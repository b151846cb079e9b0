//! Main restore scenario against real control planes: a Rancher-shaped plane
//! of 20 downstream clusters is written into one control plane, recorded the
//! way the daemon records it (LIST results, server fields and all), and
//! restored into a fresh control plane that has none of its CRDs. The result
//! is compared object by object: zero differences apart from server-set
//! fields, every ownerReference pointing at the new owner's UID.

mod restore_support;

use restore_support::*;
use rewind_history::TypedKey;
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
