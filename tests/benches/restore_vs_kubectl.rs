//! Restore throughput: `rewind` (plan + apply) against `kubectl apply` of
//! the same exported YAML, each into its own fresh local control plane, in
//! the same run. Prints a table with objects/s and the ratios. The
//! baselines:
//! - serial kubectl, client-side and `--server-side`: one process for all
//!   the files;
//! - parallel kubectl at the restore's concurrency: 16 `kubectl apply
//!   --server-side` processes at once, each given a 16th of the files
//!   (CRDs first, then Namespaces, then the other objects, each phase
//!   split 16 ways), the strongest kubectl baseline (P6 asks the restore
//!   to be at least 2x of it).
//!
//! The restore reads its input from memory (the recorded state), not from a
//! store, and no row measures the apiserver's own write ceiling.
//!
//! `cargo bench -p rewind-tests --bench restore_vs_kubectl` (size with
//! `REWIND_BENCH_CLUSTERS`, default 200 downstream clusters, about 1,400
//! objects).

#[path = "../tests/restore_support/mod.rs"]
mod restore_support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use restore_support::*;
use rewind_restore::{ApplyOptions, PlanOptions, ProtectedSet, apply, export, plan};
use rewind_tests::ControlPlane;

fn kubectl(cp: &ControlPlane, args: &[&str]) {
    let out = Command::new(&cp.binaries().kubectl)
        .arg("--kubeconfig")
        .arg(cp.admin_kubeconfig_path())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn kubectl_apply(cp: &ControlPlane, dir: &Path, server_side: bool) {
    let d = |p: &str| dir.join(p).to_string_lossy().into_owned();
    let ssa: &[&str] = if server_side { &["--server-side"] } else { &[] };
    kubectl(cp, &[&["apply", "-R", "-f", &d("00-crds")], ssa].concat());
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
            &[
                "apply",
                "-R",
                "-f",
                &d("01-namespaces"),
                "-f",
                &d("02-objects"),
            ],
            ssa,
        ]
        .concat(),
    );
}

/// Every file under `dir`, sorted.
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// `kubectl apply --server-side` of `paths` in `procs` processes at once,
/// each given every `procs`th file.
fn kubectl_apply_split(cp: &ControlPlane, paths: &[std::path::PathBuf], procs: usize) {
    let children: Vec<_> = (0..procs)
        .filter_map(|i| {
            let mine: Vec<&std::path::PathBuf> = paths.iter().skip(i).step_by(procs).collect();
            if mine.is_empty() {
                return None;
            }
            let mut cmd = Command::new(&cp.binaries().kubectl);
            cmd.arg("--kubeconfig")
                .arg(cp.admin_kubeconfig_path())
                .args(["apply", "--server-side"]);
            for p in mine {
                cmd.arg("-f").arg(p);
            }
            Some(
                cmd.stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap(),
            )
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "parallel kubectl apply: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The parallel baseline: CRDs (then waiting for Established), Namespaces,
/// then the other objects, each phase in `procs` kubectl processes.
fn kubectl_apply_parallel(cp: &ControlPlane, dir: &Path, procs: usize) {
    kubectl_apply_split(cp, &files(&dir.join("00-crds")), procs);
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
    kubectl_apply_split(cp, &files(&dir.join("01-namespaces")), procs);
    kubectl_apply_split(cp, &files(&dir.join("02-objects")), procs);
}

/// Processes of the parallel kubectl baseline: the restore's concurrency.
const KUBECTL_PROCS: usize = 16;

/// The parallel baseline's row name.
const PARALLEL: &str = "kubectl apply --server-side, 16 parallel";

struct Row {
    name: &'static str,
    objects: usize,
    elapsed: Duration,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    rewind_history::install_tls_provider();
    let clusters: usize = std::env::var("REWIND_BENCH_CLUSTERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let src = ControlPlane::start().await.unwrap();
    write_plane(&src.admin_client(), &plane(clusters)).await;
    let recorded = record(&src.admin_client()).await;
    drop(src);
    let n = recorded.len();
    let dir = tempfile::tempdir().unwrap();
    export(&recorded, dir.path()).unwrap();
    let mut rows = Vec::new();

    for concurrency in [16usize, 64] {
        let dst = ControlPlane::start().await.unwrap();
        let client = dst.admin_client();
        let opts = PlanOptions {
            protected: ProtectedSet::empty(&[]).unwrap(),
            ..PlanOptions::default()
        };
        let start = Instant::now();
        let p = plan(&recorded, &client, &opts).await.unwrap();
        let report = apply(
            &client,
            &p,
            &ApplyOptions {
                concurrency,
                ..ApplyOptions::default()
            },
        )
        .await
        .unwrap();
        let elapsed = start.elapsed();
        assert!(report.failures.is_empty(), "{:?}", report.failures);
        assert_eq!(report.written, n);
        let name = if concurrency == 16 {
            "rewind restore (plan+apply, 16)"
        } else {
            "rewind restore (plan+apply, 64)"
        };
        rows.push(Row {
            name,
            objects: n,
            elapsed,
        });
    }
    for server_side in [false, true] {
        let dst = ControlPlane::start().await.unwrap();
        let start = Instant::now();
        kubectl_apply(&dst, dir.path(), server_side);
        let elapsed = start.elapsed();
        let got = record(&dst.admin_client()).await.len();
        assert_eq!(got, n, "kubectl restored every object");
        let name = if server_side {
            "kubectl apply --server-side"
        } else {
            "kubectl apply"
        };
        rows.push(Row {
            name,
            objects: n,
            elapsed,
        });
    }
    {
        let dst = ControlPlane::start().await.unwrap();
        let start = Instant::now();
        kubectl_apply_parallel(&dst, dir.path(), KUBECTL_PROCS);
        let elapsed = start.elapsed();
        let got = record(&dst.admin_client()).await.len();
        assert_eq!(got, n, "parallel kubectl restored every object");
        rows.push(Row {
            name: PARALLEL,
            objects: n,
            elapsed,
        });
    }

    let secs = |name: &str| {
        rows.iter()
            .find(|r| r.name == name)
            .map(|r| r.elapsed.as_secs_f64())
            .unwrap()
    };
    let (base, parallel) = (secs("kubectl apply"), secs(PARALLEL));
    println!(
        "\nrestore of {clusters} clusters ({n} objects incl. 5 CRDs) into a fresh local control plane"
    );
    println!(
        "{:<42} {:>8} {:>10} {:>10} {:>12} {:>12}",
        "method", "objects", "seconds", "objects/s", "vs kubectl", "vs parallel"
    );
    for r in &rows {
        let s = r.elapsed.as_secs_f64();
        println!(
            "{:<42} {:>8} {:>10.2} {:>10.0} {:>11.1}x {:>11.1}x",
            r.name,
            r.objects,
            s,
            r.objects as f64 / s,
            base / s,
            parallel / s
        );
    }
    println!(
        "\nvs kubectl: kubectl apply's seconds / the row's (serial, client-side); vs parallel: the same against {PARALLEL} ({KUBECTL_PROCS} processes, each a {KUBECTL_PROCS}th of the files)"
    );
}
