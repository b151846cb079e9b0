//! Every invalid configuration value makes `rewindd run` refuse to start
//! with an error that names the setting.
//!
//! A table of bad values, each a valid base config with one section
//! replaced; each case runs the real binary and checks that it exits
//! non-zero, quickly, with the setting's name on stderr. All cases run and
//! the failures are reported together. No control plane needed: a config
//! is checked before rewindd connects anywhere.

mod daemon_support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use daemon_support::rewindd_bin;

/// `(section, lines replacing that section, the setting the error must name)`.
/// Section "" is the top level.
const CASES: &[(&str, &str, &str)] = &[
    ("", r#"data_dir = """#, "data_dir"),
    ("", "no_such_setting = 1", "no_such_setting"),
    (
        "cluster",
        r#"kubeconfig = "/nonexistent/kubeconfig""#,
        "cluster.kubeconfig",
    ),
    (
        "cluster",
        "in_cluster = true\nkubeconfig = \"{kc}\"",
        "cluster.in_cluster",
    ),
    (
        "cluster",
        "kubeconfig = \"{kc}\"\nid = \"  \"",
        "cluster.id",
    ),
    (
        "record",
        r#"presets = ["no-such-preset"]"#,
        "record.presets",
    ),
    (
        "journal",
        "flush_interval_ms = 0",
        "journal.flush_interval_ms",
    ),
    (
        "journal",
        "flush_interval_ms = 999999",
        "journal.flush_interval_ms",
    ),
    (
        "journal",
        r#"flush_interval_ms = "fast""#,
        "flush_interval_ms",
    ),
    ("journal", "flush_interval_ms = -5", "flush_interval_ms"),
    ("journal", "flush_intervall_ms = 5", "flush_intervall_ms"),
    (
        "journal",
        "flush_max_events = 0",
        "journal.flush_max_events",
    ),
    (
        "journal",
        "cache_capacity_mb = 1",
        "journal.cache_capacity_mb",
    ),
    ("journal", "zstd_level = 30", "journal.zstd_level"),
    ("journal", "queue_mb = 1", "journal.queue_mb"),
    ("discovery", "interval_s = 0", "discovery.interval_s"),
    ("status", "interval_ms = 10", "status.interval_ms"),
    ("store", r#"kind = "ftp""#, "kind"),
    ("store", "kind = \"local\"\npath = \"\"", "store.path"),
    (
        "store",
        "kind = \"s3\"\nbucket = \"\"\nregion = \"us-east-1\"",
        "store.bucket",
    ),
    (
        "store",
        "kind = \"s3\"\nbucket = \"b\"\nregion = \"\"",
        "store.region",
    ),
    (
        "store",
        "kind = \"s3\"\nbucket = \"b\"\nprefix = \"/abs\"",
        "store.prefix",
    ),
    (
        "store",
        "kind = \"s3\"\nbucket = \"b\"\nendpoint = \"ftp://s3.example.com\"",
        "store.endpoint",
    ),
    (
        "store",
        "kind = \"s3\"\nbucket = \"b\"\nendpoint = \"http://s3.example.com\"",
        "store.endpoint",
    ),
    (
        "store",
        "kind = \"s3\"\nbucket = \"b\"\nendpoint = \"http://s3.example.com\"\nallow_http = true",
        "store.allow_http",
    ),
    (
        "compact",
        r#"seal_interval = "10 parsecs""#,
        "compact.seal_interval",
    ),
    (
        "compact",
        r#"seal_interval = "50ms""#,
        "compact.seal_interval",
    ),
    (
        "compact",
        r#"snapshot_schedule = "61 * * * *""#,
        "compact.snapshot_schedule",
    ),
    ("compact", "seal_bytes = 100", "compact.seal_bytes"),
    ("compact", "zstd_level = 0", "compact.zstd_level"),
    (
        "compact",
        "segment_zstd_level = 23",
        "compact.segment_zstd_level",
    ),
    (
        "compact",
        r#"local_window = "forever""#,
        "compact.local_window",
    ),
    ("compact", "disk_budget_bytes = -1", "disk_budget_bytes"),
    (
        "encryption",
        r#"recipients = ["age1notakey"]"#,
        "encryption.recipients",
    ),
    (
        "encryption",
        r#"recipients_files = ["/nonexistent/recipients"]"#,
        "encryption.recipients_files",
    ),
    (
        "retention",
        r#"point_in_time = "soon""#,
        "retention.point_in_time",
    ),
    ("retention", "keep_last = -1", "keep_last"),
    (
        "service",
        r#"metrics_addr = "0.0.0.0:9464""#,
        "service.metrics_addr",
    ),
    (
        "service",
        r#"metrics_addr = "not an address""#,
        "service.metrics_addr",
    ),
];

/// The base: valid, with one line per section that a case may replace.
const BASE: &[(&str, &str)] = &[
    ("", "data_dir = \"{data}\""),
    ("cluster", "kubeconfig = \"{kc}\""),
    ("record", "presets = [\"rancher\"]"),
    ("journal", "flush_interval_ms = 20"),
    ("discovery", "interval_s = 30"),
    ("status", "interval_ms = 1000"),
    ("store", "kind = \"local\"\npath = \"{data}/store\""),
    ("compact", "seal_interval = \"10s\""),
    ("encryption", "recipients = []"),
    ("retention", "keep_last = 3"),
    (
        "service",
        "admin_socket = \"{data}/rewindd.sock\"\nmetrics_addr = \"\"",
    ),
];

fn config(section: &str, lines: &str, data: &Path, kc: &Path) -> String {
    let mut out = String::new();
    for (s, base) in BASE {
        let body = if *s == section { lines } else { base };
        if !s.is_empty() {
            out.push_str(&format!("\n[{s}]\n"));
        }
        out.push_str(body);
        out.push('\n');
        // A top-level case adds to the top level rather than replacing data_dir.
        if s.is_empty() && section.is_empty() && !lines.starts_with("data_dir") {
            out.push_str(base);
            out.push('\n');
        }
    }
    out.replace("{data}", &data.display().to_string())
        .replace("{kc}", &kc.display().to_string())
}

/// Runs `rewindd --config FILE run`; returns (exit success, stderr), or
/// None when it was still running after `limit` (it accepted the config).
fn run(bin: &Path, cfg: &Path, limit: Duration) -> Option<(bool, String)> {
    let mut child = Command::new(bin)
        .arg("--config")
        .arg(cfg)
        .arg("run")
        .env("RUST_BACKTRACE", "0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            return Some((
                status.success(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ));
        }
        if start.elapsed() > limit {
            child.kill().unwrap();
            child.wait().unwrap();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn every_invalid_value_names_its_setting() {
    let bin = rewindd_bin();
    let dir = tempfile::tempdir().unwrap();
    // A kubeconfig that exists but points nowhere: a config that passes
    // validation fails later, on connecting, without naming any setting.
    let kc = dir.path().join("kubeconfig");
    std::fs::write(
        &kc,
        "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n",
    )
    .unwrap();
    let mut failures = Vec::new();
    for (i, (section, lines, setting)) in CASES.iter().enumerate() {
        let data = dir.path().join(format!("data-{i}"));
        let cfg = dir.path().join(format!("case-{i}.toml"));
        std::fs::write(&cfg, config(section, lines, &data, &kc)).unwrap();
        let t = Instant::now();
        match run(&bin, &cfg, Duration::from_secs(20)) {
            None => failures.push(format!("[{section}] {lines:?}: accepted (still running)")),
            Some((true, _)) => failures.push(format!("[{section}] {lines:?}: exited 0")),
            Some((false, err)) if !err.contains(setting) => failures.push(format!(
                "[{section}] {lines:?}: error does not name `{setting}`: {}",
                err.trim()
            )),
            Some((false, err)) => eprintln!(
                "ok in {:?}: [{section}] {lines:?} -> {}",
                t.elapsed(),
                err.lines().last().unwrap_or_default()
            ),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} bad configs:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}

/// The base config itself passes validation: the cases fail because of
/// their one bad value, not because of the base.
#[test]
fn the_base_config_is_valid() {
    let bin = rewindd_bin();
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    std::fs::write(
        &kc,
        "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n",
    )
    .unwrap();
    let cfg = dir.path().join("base.toml");
    let data = dir.path().join("data");
    std::fs::write(&cfg, config("none", "", &data, &kc)).unwrap();
    if let Some((ok, err)) = run(&bin, &cfg, Duration::from_secs(20)) {
        assert!(!ok, "no cluster to reach, yet rewindd exited 0");
        for (_, _, setting) in CASES {
            if setting.contains('.') {
                assert!(
                    !err.contains(&format!("`{setting}`")),
                    "the base config is refused for {setting}: {err}"
                );
            }
        }
    }
}

/// A config file that does not exist is named once, with its cause once.
#[test]
fn regression_a_missing_config_file_is_reported_once() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nonexistent.toml");
    let (ok, err) = run(&rewindd_bin(), &missing, Duration::from_secs(30)).unwrap();
    assert!(!ok);
    assert_eq!(err.matches("nonexistent.toml").count(), 1, "{err}");
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
}
