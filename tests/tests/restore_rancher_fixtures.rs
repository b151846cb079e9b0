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

/// The write order of the generated Rancher plane, as `rewind restore`
/// computes it from the state it plans: every GlobalRoleBinding after the
/// GlobalRole it names, every binding after its RoleTemplate and its
/// Cluster or Project, every Project after its Cluster (the `rancher`
/// preset's reference rules); by ownership and scope alone, most of these
/// share a level.
#[test]
fn the_write_order_puts_what_rancher_objects_name_first() {
    use rewind_history::DesiredState;
    use rewind_restore::order::{phases, phases_with};
    use serde_json::Value;
    let objects = generate(&PlaneSpec::new(5));
    let mut state = DesiredState::new();
    for o in &objects {
        let t = ResourceType::new(&o.group, &o.version, &o.resource, &o.kind, o.namespaced);
        state.insert(&t, o.json.clone()).unwrap();
    }
    let level_map = |p: &rewind_restore::order::Phases| {
        let mut m = std::collections::HashMap::new();
        for (i, l) in p.levels.iter().enumerate() {
            for k in l {
                m.insert(
                    (k.rtype.kind.clone(), k.namespace.clone(), k.name.clone()),
                    i,
                );
            }
        }
        m
    };
    let checks = |p: &rewind_restore::order::Phases| -> (usize, Vec<String>) {
        let levels = level_map(p);
        let at = |kind: &str, ns: Option<&str>, name: &str| {
            levels
                .get(&(kind.to_owned(), ns.map(str::to_owned), name.to_owned()))
                .copied()
        };
        let s = |v: &Value, path: &str| v.pointer(path).and_then(Value::as_str).map(str::to_owned);
        let (mut checked, mut wrong) = (0, Vec::new());
        for (k, obj) in state.iter() {
            let ns = k.namespace.as_deref();
            let mut named: Vec<(&str, Option<String>, String)> = Vec::new();
            match k.rtype.kind.as_str() {
                "GlobalRoleBinding" => {
                    named.extend(s(obj, "/globalRoleName").map(|n| ("GlobalRole", None, n)))
                }
                "ClusterRoleTemplateBinding" => {
                    named.extend(s(obj, "/roleTemplateName").map(|n| ("RoleTemplate", None, n)));
                    named.extend(s(obj, "/clusterName").map(|n| ("Cluster", None, n)));
                }
                "ProjectRoleTemplateBinding" => {
                    named.extend(s(obj, "/roleTemplateName").map(|n| ("RoleTemplate", None, n)));
                    if let Some((c, p)) = s(obj, "/projectName")
                        .as_deref()
                        .and_then(|v| v.split_once(':'))
                    {
                        named.push(("Project", Some(c.to_owned()), p.to_owned()));
                    }
                }
                "Project" => {
                    named.extend(s(obj, "/spec/clusterName").map(|n| ("Cluster", None, n)))
                }
                _ => {}
            }
            let Some(mine) = at(&k.rtype.kind, ns, &k.name) else {
                continue;
            };
            for (kind, rns, name) in named {
                if let Some(theirs) = at(kind, rns.as_deref(), &name) {
                    checked += 1;
                    if theirs >= mine {
                        wrong.push(format!(
                            "{k} (level {mine}) is not after {kind} {name} (level {theirs})"
                        ));
                    }
                }
            }
        }
        (checked, wrong)
    };
    let (checked, wrong) = checks(&phases(&state));
    assert!(checked > 20, "only {checked} references checked");
    assert!(wrong.is_empty(), "{wrong:#?}");
    // Without the rules, some of them are not ordered: the rules matter here.
    let (_, unordered) = checks(&phases_with(&state, &[]));
    assert!(!unordered.is_empty());
    eprintln!(
        "{checked} references ordered; {} without the rules' order",
        unordered.len()
    );
}
