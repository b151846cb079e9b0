//! `cargo run --release -p rewind-tests --bin dr-drill`: the one-command
//! disaster-recovery drill on throwaway local control planes (see
//! `rewind_tests::drill`). Prints the report, writes it as JSON, and exits
//! non-zero on any difference or failed object.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Parser;
use rewind_tests::drill::{self, DrillOptions};

/// One-command DR drill: record a generated Rancher plane with the real
/// rewindd, crash it, restore it twice into fresh control planes, compare.
#[derive(Debug, Parser)]
#[command(name = "dr-drill", version)]
struct Args {
    /// Downstream clusters in the generated Rancher-like plane.
    #[arg(long, default_value_t = 50)]
    clusters: usize,
    /// Rounds of changes before and after the snapshot (4 writes each).
    #[arg(long, default_value_t = 10)]
    churn: usize,
    /// Work directory (daemon data, store, reports); default: a new temp dir, kept.
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Where to write the JSON report; default: WORK_DIR/drill-report.json.
    #[arg(long)]
    report: Option<PathBuf>,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("REWIND_LOG")
                // The harness polls /readyz while a control plane starts;
                // kube's client logs each early 500 as an error.
                .unwrap_or_else(|_| {
                    tracing_subscriber::EnvFilter::new("warn,kube_client::client::builder=off")
                }),
        )
        .with_writer(std::io::stderr)
        .init();
    rewind_history::install_tls_provider();
    let args = Args::parse();
    let work_dir = match args.work_dir {
        Some(d) => d,
        None => tempfile::Builder::new()
            .prefix("rewind-drill-")
            .tempdir()
            .context("creating a work directory")?
            .keep(),
    };
    let opts = DrillOptions {
        clusters: args.clusters,
        churn: args.churn,
        work_dir: work_dir.clone(),
    };
    let report = drill::run(&opts).await.context("the drill could not run")?;
    print!("{}", report.to_text());
    let path = args
        .report
        .unwrap_or_else(|| work_dir.join("drill-report.json"));
    let mut doc = serde_json::to_value(&report)?;
    if let Some(m) = doc.as_object_mut() {
        m.insert("passed".into(), report.passed().into());
    }
    std::fs::write(&path, serde_json::to_vec_pretty(&doc)?)
        .with_context(|| format!("writing {}", path.display()))?;
    println!("JSON report: {}", path.display());
    if !report.passed() {
        bail!("drill failed: differences or failed objects (see above)");
    }
    Ok(())
}
