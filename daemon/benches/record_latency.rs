//! End-to-end figures against the real local control plane, in one run:
//! - latency from an API write (create returns) to the event being durable
//!   (its batch committed and fsynced), with default batching: once on an
//!   otherwise idle apiserver, and once while 64 other writers create
//!   Secrets as fast as the apiserver takes them (the heaviest write load
//!   it sustains here; the rate is printed), which the recorder records
//!   too;
//! - daemon RSS while recording many objects (the `rewindd` binary as a
//!   child process, peak and settled RSS from /proc).
//!
//! `cargo bench -p rewind-daemon --bench record_latency`
//! (REWIND_BENCH_WRITES, REWIND_BENCH_OBJECTS to change the sizes;
//! REWIND_BENCH_LOAD=0 leaves out the row under load). Each
//! daemon's log goes to `target/record_latency-logs/rewindd-N.log` (N counts
//! the rows in order), so the table stays readable.
//! `REWIND_BENCH_VARIANTS="--flag value;--flag value"` replaces the tuned
//! rows, `REWIND_BENCH_STOP=KILL` stops each daemon with SIGKILL (for a heap
//! profiler to see what was live).
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "figures are approximate"
)]

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{Api, ObjectMeta, PostParams};
use rewind_daemon::config::{Config, FileConfig, Settings};
use rewind_daemon::{Hooks, Recorder};
use rewind_history::select::{ResourceSelector, ResourceSet};
use rewind_tests::ControlPlane;

// The daemon's allocator, so the bench measures what rewindd runs (the raw
// sled baselines run under it too).
#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn cm(name: &str, ns: &str, i: usize) -> ConfigMap {
    let mut data = std::collections::BTreeMap::new();
    let mut v = String::new();
    while v.len() < 1800 {
        v.push_str(&format!(
            "{:x}",
            (i as u64 + v.len() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ));
    }
    data.insert("payload".to_owned(), v);
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.into()),
            ..ObjectMeta::default()
        },
        data: Some(data),
        ..ConfigMap::default()
    }
}

async fn namespace(client: &kube::Client, name: &str) {
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    let _ = Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await;
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Writers of the load beside the measured writes.
const LOAD_WRITERS: usize = 64;

/// A 2 KB Secret of the load.
fn load_secret(i: usize) -> Secret {
    let payload = cm("x", "load", i)
        .data
        .and_then(|d| d.into_values().next())
        .unwrap_or_default();
    Secret {
        metadata: ObjectMeta {
            name: Some(format!("load-{i}")),
            namespace: Some("load".into()),
            ..ObjectMeta::default()
        },
        string_data: Some([("payload".to_owned(), payload)].into()),
        ..Secret::default()
    }
}

/// Creates Secrets in namespace `load` with [`LOAD_WRITERS`] writers until
/// `stop`; returns how many were created and in how long.
async fn write_load(client: kube::Client, stop: Arc<AtomicBool>) -> (usize, Duration) {
    let api: Api<Secret> = Api::namespaced(client, "load");
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let workers = (0..LOAD_WRITERS).map(|_| {
        let (api, stop, next) = (api.clone(), stop.clone(), next.clone());
        async move {
            let mut done = 0;
            while !stop.load(Ordering::Relaxed) {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if api
                    .create(&PostParams::default(), &load_secret(i))
                    .await
                    .is_ok()
                {
                    done += 1;
                }
            }
            done
        }
    });
    let done: usize = futures::future::join_all(workers).await.into_iter().sum();
    (done, start.elapsed())
}

async fn latency(cp: &ControlPlane, writes: usize, loaded: bool) {
    let admin = cp.admin_client();
    namespace(&admin, "bench").await;
    namespace(&admin, "load").await;
    let data = tempfile::tempdir().unwrap();
    let settings = Settings {
        kubeconfig: Some(cp.readonly_kubeconfig_path().to_path_buf()),
        data_dir: Some(data.path().to_path_buf()),
        ..Settings::default()
    };
    // REWIND_BENCH_CACHE_MB / REWIND_BENCH_QUEUE_MB compare journal
    // settings against the defaults.
    let from_env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    let settings = Settings {
        cache_capacity_mb: from_env("REWIND_BENCH_CACHE_MB"),
        queue_mb: from_env("REWIND_BENCH_QUEUE_MB"),
        ..settings
    };
    let mut config = Config::from_settings(&settings, &FileConfig::default()).unwrap();
    let sel = ResourceSelector {
        api_version: "v1".into(),
        kinds_regexp: Some("^configmaps$".into()),
        namespaces: vec!["bench".into()],
        ..ResourceSelector::default()
    };
    let load_sel = ResourceSelector {
        api_version: "v1".into(),
        kinds_regexp: Some("^secrets$".into()),
        namespaces: vec!["load".into()],
        ..ResourceSelector::default()
    };
    config.resource_set = ResourceSet::compile(&[sel, load_sel], "bench").unwrap();
    let flush = config.flush_interval;
    let (tx, mut rx) = tokio::sync::broadcast::channel(65_536);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let recorder = Recorder::open(config).unwrap();
    let board = recorder.board();
    let daemon = tokio::spawn(recorder.run(
        async {
            let _ = stop_rx.await;
        },
        Hooks { commits: Some(tx) },
    ));
    let watching = |t: &str| {
        board
            .snapshot()
            .types
            .get(t)
            .is_some_and(|t| t.state == rewind_daemon::status::WatchState::Watching)
    };
    while !(watching("configmaps") && watching("secrets")) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let durable = tokio::spawn(async move {
        let mut at: HashMap<String, Instant> = HashMap::new();
        loop {
            match rx.recv().await {
                Ok(n) => {
                    for (k, _) in &n.touched {
                        if k.name.starts_with("lat-") {
                            at.entry(k.name.clone()).or_insert(n.at);
                        }
                    }
                    if at.len() >= writes {
                        break;
                    }
                }
                // Under load the channel can overflow; the missed commits'
                // writes count as never durable (the maximum).
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            }
        }
        at
    });
    let stop_load = Arc::new(AtomicBool::new(false));
    let load = loaded.then(|| tokio::spawn(write_load(admin.clone(), stop_load.clone())));
    if loaded {
        // The load reaches its pace before the measured writes start.
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    let api: Api<ConfigMap> = Api::namespaced(admin.clone(), "bench");
    // Paced writes from 8 writers, like a busy management plane.
    let written: Vec<(String, Instant)> = stream::iter(0..writes)
        .map(|i| {
            let api = api.clone();
            async move {
                let name = format!("lat-{i}");
                api.create(&PostParams::default(), &cm(&name, "bench", i))
                    .await
                    .unwrap();
                (name, Instant::now())
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let at = tokio::time::timeout(Duration::from_secs(60), durable)
        .await
        .unwrap()
        .unwrap();
    stop_load.store(true, Ordering::Relaxed);
    let load = match load {
        Some(task) => Some(task.await.unwrap()),
        None => None,
    };
    let mut lat: Vec<Duration> = written
        .iter()
        .map(|(n, t)| {
            at.get(n)
                .map_or(Duration::MAX, |d| d.saturating_duration_since(*t))
        })
        .collect();
    lat.sort();
    stop_tx.send(()).unwrap();
    daemon.await.unwrap().unwrap();
    match load {
        Some((n, took)) => println!(
            "\nAPI write -> durable under load, {writes} creates of 2 KB ConfigMaps while {LOAD_WRITERS} writers created {n} 2 KB Secrets ({:.0}/s, recorded too), flush interval {flush:?}",
            n as f64 / took.as_secs_f64()
        ),
        None => println!(
            "\nAPI write -> durable, {writes} creates of 2 KB ConfigMaps, flush interval {flush:?}"
        ),
    }
    println!("{:>10} {:>10} {:>10} {:>10}", "p50", "p90", "p99", "max");
    println!(
        "{:>10.1?} {:>10.1?} {:>10.1?} {:>10.1?}",
        pct(&lat, 0.5),
        pct(&lat, 0.9),
        pct(&lat, 0.99),
        lat[lat.len() - 1]
    );
}

/// (VmRSS, VmHWM, RssAnon) of a process, KiB. RssAnon leaves out the
/// binary's own pages (RssFile), which no heap change moves.
fn rss_kb(pid: u32) -> (u64, u64, u64) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"), field("RssAnon:"))
}

async fn memory(cp: &ControlPlane, objects: usize) {
    let admin = cp.admin_client();
    namespace(&admin, "cattle-system").await;
    let api: Api<ConfigMap> = Api::namespaced(admin.clone(), "cattle-system");
    let t = Instant::now();
    stream::iter(0..objects)
        .map(|i| {
            let api = api.clone();
            async move {
                api.create(
                    &PostParams::default(),
                    &cm(&format!("obj-{i}"), "cattle-system", i),
                )
                .await
                .unwrap();
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<()>>()
        .await;
    let load = t.elapsed();
    // REWIND_BENCH_REWINDD=path[,path..] compares daemon builds (say, a
    // kept copy of the previous build against this one) on the same loaded
    // plane; the default is the workspace's release build (else debug).
    let default_bin = {
        let release = rewind_tests::controlplane::target_dir()
            .join("release")
            .join("rewindd");
        if release.exists() {
            release
        } else {
            rewind_tests::controlplane::target_dir()
                .join("debug")
                .join("rewindd")
        }
    };
    let bins: Vec<std::path::PathBuf> = std::env::var("REWIND_BENCH_REWINDD").map_or_else(
        |_| vec![default_bin],
        |v| v.split(',').map(std::path::PathBuf::from).collect(),
    );
    println!("\nrewindd recording {objects} 2 KB objects (loaded in {load:.1?})");
    println!(
        "{:<70} {:>9} {:>13} {:>12} {:>10} {:>10}",
        "binary and settings", "recorded", "initial sync", "RSS settled", "RSS peak", "anon"
    );
    // REWIND_BENCH_DEFAULTS_ONLY=1 skips the tuned variants.
    let defaults_only = std::env::var("REWIND_BENCH_DEFAULTS_ONLY").is_ok_and(|v| v == "1");
    let variants: &[&[&str]] = if defaults_only {
        &[&[]]
    } else {
        &[
            &[],
            &["--flush-max-events", "10000"],
            &[
                "--flush-max-events",
                "2000",
                "--cache-capacity-mb",
                "16",
                "--queue-mb",
                "8",
            ],
        ]
    };
    // REWIND_BENCH_VARIANTS="--flag value;--flag value" replaces the tuned
    // variants (each `;`-separated entry is one row's extra flags).
    let custom: Option<Vec<Vec<String>>> = std::env::var("REWIND_BENCH_VARIANTS").ok().map(|v| {
        v.split(';')
            .map(|row| row.split_whitespace().map(str::to_owned).collect())
            .collect()
    });
    let custom_refs: Option<Vec<Vec<&str>>> = custom.as_ref().map(|rows| {
        rows.iter()
            .map(|r| r.iter().map(String::as_str).collect())
            .collect()
    });
    let custom_slices: Option<Vec<&[&str]>> = custom_refs
        .as_ref()
        .map(|rows| rows.iter().map(Vec::as_slice).collect());
    let variants: &[&[&str]] = custom_slices.as_deref().unwrap_or(variants);
    let unit = unit_env();
    for bin in &bins {
        // Production runs rewindd under deploy/rewindd.service, whose
        // environment also sets the allocator; a hand-run daemon must not
        // need it (.cargo/config.toml builds the settings in).
        run_variant(cp, bin, &[], &unit, objects).await;
        for extra in variants {
            run_variant(cp, bin, extra, &[], objects).await;
        }
    }
}

/// The `Environment=` settings of deploy/rewindd.service, except RUST_LOG.
fn unit_env() -> Vec<(String, String)> {
    let path = rewind_tests::controlplane::workspace_root().join("deploy/rewindd.service");
    std::fs::read_to_string(&path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Environment="))
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| *k != "RUST_LOG")
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

async fn run_variant(
    cp: &ControlPlane,
    bin: &std::path::Path,
    extra: &[&str],
    envs: &[(String, String)],
    objects: usize,
) {
    {
        let data = tempfile::tempdir().unwrap();
        let log_path = log_dir().join(format!("rewindd-{}.log", next_log()));
        let log = std::fs::File::create(&log_path).unwrap();
        let t = Instant::now();
        let mut child = std::process::Command::new(bin)
            .arg("--kubeconfig")
            .arg(cp.readonly_kubeconfig_path())
            .arg("--data-dir")
            .arg(data.path())
            .args(["--presets", "rancher", "--status-interval-ms", "200"])
            .args(extra)
            .arg("run")
            .env("RUST_LOG", "warn")
            .envs(envs.iter().map(|(k, v)| (k, v)))
            // The daemon's log goes to a file, not into the table.
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let path = rewind_daemon::status::status_path(data.path());
        let mut recorded = 0;
        while t.elapsed() < Duration::from_secs(600) {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if let Ok(s) = rewind_daemon::status::read_status(&path) {
                recorded = s.types.get("configmaps").map_or(0, |t| t.events);
                if recorded as usize >= objects {
                    break;
                }
            }
        }
        let synced = t.elapsed();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let (rss, hwm, anon) = rss_kb(child.id());
        // REWIND_BENCH_STOP=KILL stops the daemon without its shutdown, so
        // a heap profiler (a REWIND_BENCH_REWINDD wrapper that execs
        // rewindd under heaptrack) sees what was live when RSS was read.
        let signal = std::env::var("REWIND_BENCH_STOP").unwrap_or_else(|_| "TERM".into());
        let _ = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status();
        let _ = child.wait();
        let label = format!(
            "{} {}",
            bin.file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
            if !envs.is_empty() {
                "defaults, as deploy/rewindd.service runs it".to_owned()
            } else if extra.is_empty() {
                "defaults, hand-run (no environment: built-in allocator settings)".to_owned()
            } else {
                extra.join(" ")
            }
        );
        println!(
            "{label:<70} {recorded:>9} {synced:>13.1?} {:>9} MB {:>7} MB {:>7} MB",
            rss / 1024,
            hwm / 1024,
            anon / 1024
        );
    }
}

/// Where the daemons' logs go: `target/record_latency-logs`.
fn log_dir() -> std::path::PathBuf {
    let dir = rewind_tests::controlplane::target_dir().join("record_latency-logs");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn next_log() -> usize {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

#[tokio::main]
async fn main() {
    let cp = ControlPlane::start().await.unwrap();
    if env("REWIND_BENCH_WRITES", 2000) > 0 {
        latency(&cp, env("REWIND_BENCH_WRITES", 2000), false).await;
        if env("REWIND_BENCH_LOAD", 1) == 1 {
            let loaded = ControlPlane::start().await.unwrap();
            latency(&loaded, env("REWIND_BENCH_WRITES", 2000), true).await;
        }
    }
    memory(&cp, env("REWIND_BENCH_OBJECTS", 100_000)).await;
    println!(
        "\n(daemon logs, one per row: {})",
        log_dir().join("rewindd-N.log").display()
    );
}
