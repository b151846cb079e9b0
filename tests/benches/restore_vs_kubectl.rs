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
//! In that first table the restore reads its input from memory (the
//! recorded state).
//!
//! A second table is P6 as its target states it: a generated Rancher-like
//! plane of `REWIND_BENCH_STORE_OBJECTS` objects (default 100,000; 0 leaves
//! the table out) is recorded by the real `rewindd` into a local store, and
//! each row writes it into its own fresh control plane:
//! - the restore (`plan` + `apply` at concurrency 16), its time including
//!   reading the state from the store;
//! - 16 parallel `kubectl apply --server-side` processes over an export of
//!   the objects the restore creates in an empty plane (what the ceiling
//!   writes too);
//! - the apiserver's write ceiling: the fastest minimal writer we have, plain
//!   POSTs of the same objects (bodies serialized before the clock starts,
//!   no plan, no status, no owner rewiring, no retries) by 16, 64 and 256
//!   concurrent writers on one HTTP/1.1 connection pool; CRDs first (then
//!   waiting until they are served), then Namespaces, then the rest. The
//!   fastest of the three is the ceiling.
//!
//! Serial kubectl is left out of the second table (about half an hour for
//! 100,000 objects here); the first table has it.
//!
//! `cargo bench -p rewind-tests --bench restore_vs_kubectl` (size of the
//! first table with `REWIND_BENCH_CLUSTERS`, default 200 downstream
//! clusters, about 1,400 objects).

#[path = "../tests/restore_support/mod.rs"]
mod restore_support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use restore_support::*;
use rewind_history::pit::StoreSource;
use rewind_history::{DesiredState, Point, StateSource, TypedKey};
use rewind_restore::plan::Action;
use rewind_restore::strip::split_for_write;
use rewind_restore::{ApplyOptions, PlanOptions, ProtectedSet, apply, export, plan};
use rewind_tests::ControlPlane;
use rewind_tests::daemon::{self, DaemonConfig, RunOptions};
use rewind_tests::fixtures::{self, PlaneSpec};

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
    wait_established(cp);
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

/// `kubectl wait --for condition=Established crd --all`, again until it
/// succeeds (at most a minute): a CRD created a moment ago has no
/// `status.conditions` yet, and kubectl fails on it instead of waiting.
fn wait_established(cp: &ControlPlane) {
    let start = Instant::now();
    loop {
        let out = Command::new(&cp.binaries().kubectl)
            .arg("--kubeconfig")
            .arg(cp.admin_kubeconfig_path())
            .args([
                "wait",
                "--for",
                "condition=Established",
                "crd",
                "--all",
                "--timeout=60s",
            ])
            .output()
            .unwrap();
        if out.status.success() {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "kubectl wait for Established CRDs: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
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
    wait_established(cp);
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

    let store_objects = std::env::var("REWIND_BENCH_STORE_OBJECTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000usize);
    if store_objects > 0 {
        from_the_store(store_objects).await;
    }
}

/// Objects the generator makes per downstream cluster (measured: 50
/// clusters give 1,051 objects).
const OBJECTS_PER_CLUSTER: usize = 21;

/// Concurrencies of the ceiling's writers.
const CEILING_WRITERS: [usize; 3] = [16, 64, 256];

/// The second table: about `n` objects recorded by rewindd, restored from
/// the store, against parallel kubectl and the apiserver's write ceiling.
async fn from_the_store(n: usize) {
    let bins = daemon::binaries("[restore_vs_kubectl]").unwrap();
    let src = ControlPlane::start().await.unwrap();
    let admin = src.admin_client();
    fixtures::install_rancher_crds(&admin).await.unwrap();
    let generated = fixtures::generate(&PlaneSpec::new((n / OBJECTS_PER_CLUSTER).max(1)));
    let loaded = fixtures::load(&admin, &generated, 32).await.unwrap();
    drop(generated);
    eprintln!("[restore_vs_kubectl] loaded {} objects", loaded.created);
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("rewindd");
    std::fs::create_dir_all(&data).unwrap();
    let cfg = DaemonConfig::drill(
        &data,
        src.readonly_kubeconfig_path(),
        daemon::free_port().unwrap(),
    );
    let mut d = cfg.start(&RunOptions::operator(&bins.rewindd)).unwrap();
    let settled = d
        .settle(Duration::from_secs(1), "initial list")
        .await
        .unwrap();
    d.snapshot("p6").await.unwrap();
    let last_seq = settled.journal.next_seq.saturating_sub(1);
    let store = cfg.open_store().await.unwrap();
    daemon::wait_sealed(&store, last_seq).await.unwrap();
    d.kill().unwrap();
    drop(src);
    let source = StoreSource::new(store, Vec::new());

    let mut rows = Vec::new();
    // The restore: reading the state from the store is part of its time.
    let state = {
        let dst = ControlPlane::start().await.unwrap();
        let client = dst.admin_client();
        let start = Instant::now();
        let state = source.state_at(&Point::Latest).await.unwrap();
        let opts = PlanOptions {
            protected: ProtectedSet::with_defaults(&[]).unwrap(),
            ..PlanOptions::default()
        };
        let p = plan(&state, &client, &opts).await.unwrap();
        let report = apply(
            &client,
            &p,
            &ApplyOptions {
                concurrency: KUBECTL_PROCS,
                ..ApplyOptions::default()
            },
        )
        .await
        .unwrap();
        let elapsed = start.elapsed();
        assert!(report.failures.is_empty(), "{:?}", report.failures);
        rows.push(Row {
            name: "rewind restore from the store (16)",
            objects: report.written,
            elapsed,
        });
        state
    };

    // What the ceiling and parallel kubectl write: the objects the restore
    // creates in an empty control plane, as its plan sees them there (not
    // what it skips, such as Events and Leases, nor what a fresh plane
    // already has).
    let (bodies, creates) = {
        let dst = ControlPlane::start().await.unwrap();
        let opts = PlanOptions {
            protected: ProtectedSet::with_defaults(&[]).unwrap(),
            ..PlanOptions::default()
        };
        let p = plan(&state, &dst.admin_client(), &opts).await.unwrap();
        let creates: Vec<&TypedKey> = p
            .items
            .iter()
            .filter(|i| i.action == Action::Create)
            .map(|i| &i.key)
            .collect();
        let subset = DesiredState::from_entries(
            creates
                .iter()
                .filter_map(|k| Some(((*k).clone(), p.state.get(k)?.clone())))
                .collect(),
        );
        (ceiling_bodies(&p.state, &creates), subset)
    };

    {
        let dir = tempfile::tempdir().unwrap();
        export(&creates, dir.path()).unwrap();
        let dst = ControlPlane::start().await.unwrap();
        let start = Instant::now();
        kubectl_apply_parallel(&dst, dir.path(), KUBECTL_PROCS);
        let elapsed = start.elapsed();
        rows.push(Row {
            name: PARALLEL,
            objects: bodies.len(),
            elapsed,
        });
    }
    for writers in CEILING_WRITERS {
        let dst = ControlPlane::start().await.unwrap();
        let start = Instant::now();
        let written = write_raw(&dst.admin_client(), &bodies, writers).await;
        let elapsed = start.elapsed();
        rows.push(Row {
            name: match writers {
                16 => "apiserver write ceiling, 16 writers",
                64 => "apiserver write ceiling, 64 writers",
                _ => "apiserver write ceiling, 256 writers",
            },
            objects: written,
            elapsed,
        });
    }

    let rate = |r: &Row| r.objects as f64 / r.elapsed.as_secs_f64();
    let parallel = rows.iter().find(|r| r.name == PARALLEL).map_or(0.0, rate);
    let ceiling = rows
        .iter()
        .filter(|r| r.name.starts_with("apiserver"))
        .map(rate)
        .fold(0.0, f64::max);
    println!(
        "\nrestore of {} objects read from the store (a Rancher-like plane recorded by rewindd) into a fresh local control plane",
        state.len()
    );
    println!(
        "{:<42} {:>8} {:>10} {:>10} {:>12} {:>12}",
        "method", "objects", "seconds", "objects/s", "vs parallel", "vs ceiling"
    );
    for r in &rows {
        println!(
            "{:<42} {:>8} {:>10.2} {:>10.0} {:>11.2}x {:>11.2}x",
            r.name,
            r.objects,
            r.elapsed.as_secs_f64(),
            rate(r),
            rate(r) / parallel,
            rate(r) / ceiling
        );
    }
    println!(
        "\nvs parallel: the row's objects/s / {PARALLEL}'s; vs ceiling: / the fastest apiserver write ceiling row's (plain creates of the same objects)"
    );
}

/// A create of one object: its collection's path, the body, and whether it
/// is a CRD or a Namespace (written first).
struct RawCreate {
    path: String,
    body: Vec<u8>,
    phase: u8,
}

/// The ceiling's requests for `keys`, serialized once: the body the restore
/// would write, without status and ownerReferences (both cost the restore
/// extra work the ceiling leaves out).
fn ceiling_bodies(state: &DesiredState, keys: &[&TypedKey]) -> Vec<RawCreate> {
    keys.iter()
        .filter_map(|k| {
            let (mut body, _status) = split_for_write(state.get(k)?);
            if let Some(m) = body.get_mut("metadata").and_then(|m| m.as_object_mut()) {
                m.remove("ownerReferences");
            }
            let t = &k.rtype;
            let base = if t.group.is_empty() {
                format!("/api/{}", t.version)
            } else {
                format!("/apis/{}/{}", t.group, t.version)
            };
            let path = match &k.namespace {
                Some(ns) => format!("{base}/namespaces/{ns}/{}", t.resource),
                None => format!("{base}/{}", t.resource),
            };
            let phase = match (t.group.as_str(), t.resource.as_str()) {
                ("apiextensions.k8s.io", "customresourcedefinitions") => 0,
                ("", "namespaces") => 1,
                _ => 2,
            };
            Some(RawCreate {
                path,
                body: serde_json::to_vec(&body).ok()?,
                phase,
            })
        })
        .collect()
}

/// POSTs every create, `writers` at a time, phase by phase (CRDs, then
/// waiting until every CRD is served, Namespaces, the rest); returns how
/// many were created.
async fn write_raw(client: &kube::Client, creates: &[RawCreate], writers: usize) -> usize {
    let mut written = 0;
    for phase in 0..3u8 {
        let batch: Vec<&RawCreate> = creates.iter().filter(|c| c.phase == phase).collect();
        let results: Vec<Result<(), String>> = stream::iter(batch)
            .map(|c| async move {
                let req = http::Request::post(&c.path)
                    .header("content-type", "application/json")
                    .body(c.body.clone())
                    .map_err(|e| e.to_string())?;
                client
                    .request_text(req)
                    .await
                    .map(drop)
                    .map_err(|e| format!("POST {}: {e}", c.path))
            })
            .buffer_unordered(writers)
            .collect()
            .await;
        let failed: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
        assert!(
            failed.is_empty(),
            "{} of the ceiling's creates failed, the first: {}",
            failed.len(),
            failed[0]
        );
        written += results.len();
        if phase == 0 {
            let paths: Vec<&str> = creates
                .iter()
                .filter(|c| c.phase == 2)
                .map(|c| c.path.as_str())
                .collect();
            wait_served(client, &paths).await;
        }
    }
    written
}

/// Waits until every collection among `paths` answers a LIST (the CRDs
/// behind them are served).
async fn wait_served(client: &kube::Client, paths: &[&str]) {
    let mut collections: Vec<String> = paths
        .iter()
        .map(|p| {
            // The type's collection across namespaces.
            match p.split_once("/namespaces/") {
                Some((base, rest)) => {
                    format!("{base}/{}", rest.split('/').nth(1).unwrap_or_default())
                }
                None => (*p).to_owned(),
            }
        })
        .collect();
    collections.sort();
    collections.dedup();
    let start = Instant::now();
    for c in collections {
        loop {
            let req = http::Request::get(format!("{c}?limit=1"))
                .body(Vec::new())
                .unwrap();
            if client.request_text(req).await.is_ok() {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "{c} not served after 120 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
