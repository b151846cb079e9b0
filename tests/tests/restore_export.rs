//! `rewind export` writes YAML that plain `kubectl apply` accepts: a plane
//! recorded from one control plane is exported, applied with kubectl into a
//! fresh control plane, and compared object by object (export drops status
//! and ownerReferences by design; everything else must match).

mod restore_support;

use std::path::Path;
use std::process::Command;

use restore_support::*;
use rewind_history::{DesiredState, DirSource, Point, StateSource};
use rewind_restore::export;
use rewind_tests::ControlPlane;
use serde_json::Value;

fn kubectl(cp: &ControlPlane, args: &[&str]) {
    let out = Command::new(&cp.binaries().kubectl)
        .arg("--kubeconfig")
        .arg(cp.admin_kubeconfig_path())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kubectl {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Applies an export with kubectl the way the export's docs say.
pub fn kubectl_apply_export(cp: &ControlPlane, dir: &Path) {
    let d = |p: &str| dir.join(p).to_string_lossy().into_owned();
    kubectl(cp, &["apply", "-R", "-f", &d("00-crds")]);
    kubectl(
        cp,
        &[
            "wait",
            "--for",
            "condition=Established",
            "crd",
            "--all",
            "--timeout=60s",
        ],
    );
    kubectl(
        cp,
        &[
            "apply",
            "-R",
            "-f",
            &d("01-namespaces"),
            "-f",
            &d("02-objects"),
        ],
    );
}

fn without_status_and_owners(s: &DesiredState) -> DesiredState {
    let mut out = DesiredState::new();
    for (k, o) in s.iter() {
        let mut o = o.clone();
        if let Some(m) = o.as_object_mut() {
            m.remove("status");
        }
        if let Some(meta) = o.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("ownerReferences");
            if let Some(a) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
                a.remove("kubectl.kubernetes.io/last-applied-configuration");
            }
        }
        out.insert(&k.rtype, o).unwrap();
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exported_yaml_is_accepted_by_kubectl_apply() {
    rewind_history::install_tls_provider();
    let (src, dst) = tokio::join!(ControlPlane::start(), ControlPlane::start());
    let (src, dst) = (src.unwrap(), dst.unwrap());
    write_plane(&src.admin_client(), &plane(5)).await;
    let recorded = record(&src.admin_client()).await;
    let dir = tempfile::tempdir().unwrap();
    let report = export(&recorded, dir.path()).unwrap();
    assert_eq!(report.files, recorded.len());
    // The export reads back as the same set of objects.
    let back = DirSource::new(dir.path())
        .state_at(&Point::Latest)
        .await
        .unwrap();
    assert_eq!(back.len(), recorded.len());

    kubectl_apply_export(&dst, dir.path());
    let got = without_status_and_owners(&record(&dst.admin_client()).await);
    let want = without_status_and_owners(&recorded);
    let mut diffs = Vec::new();
    for (k, w) in want.iter() {
        match got.get(k) {
            None => diffs.push(format!("missing {k}")),
            Some(g) => {
                let (nw, ng) = (normalized(k, w), normalized(k, g));
                // Namespace status is server-set; ignore it with the rest of status.
                if nw != ng {
                    diffs.push(format!("differs {k}:\n  want {nw}\n  got  {ng}"));
                }
            }
        }
    }
    assert_eq!(got.len(), want.len());
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}
