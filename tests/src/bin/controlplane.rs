//! Runs a real local control plane in the foreground for manual work, demos
//! and benchmarks:
//!
//! ```text
//! cargo run -p rewind-tests --bin controlplane -- up --kubeconfig ./kubeconfig
//! kubectl --kubeconfig ./kubeconfig get ns
//! ```
//!
//! Writes the admin kubeconfig to PATH and the least-privilege one beside it
//! (`PATH.readonly`), optionally installs the Rancher fixtures, prints where
//! everything is, and stops everything on Ctrl-C or SIGTERM.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use rewind_tests::{ControlPlane, fixtures};

#[derive(Parser, Debug)]
#[command(about = "A real local kube-apiserver + etcd for Rewind")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Start a control plane and keep it running until Ctrl-C or SIGTERM.
    Up {
        /// Where to write the admin kubeconfig; the read-only one goes to PATH.readonly.
        #[arg(long, env = "REWIND_KUBECONFIG_OUT")]
        kubeconfig: PathBuf,
        /// Also install the Rancher CRDs and a generated plane of N downstream clusters.
        #[arg(long, value_name = "N")]
        rancher_clusters: Option<usize>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let Command::Up {
        kubeconfig,
        rancher_clusters,
    } = Cli::parse().command;

    let cp = ControlPlane::start()
        .await
        .context("starting the control plane")?;
    let readonly_out = PathBuf::from(format!("{}.readonly", kubeconfig.display()));
    std::fs::copy(cp.admin_kubeconfig_path(), &kubeconfig)
        .with_context(|| format!("writing {}", kubeconfig.display()))?;
    std::fs::copy(cp.readonly_kubeconfig_path(), &readonly_out)
        .with_context(|| format!("writing {}", readonly_out.display()))?;

    if let Some(n) = rancher_clusters {
        let client = cp.admin_client();
        let crds = fixtures::install_rancher_crds(&client)
            .await
            .context("installing the Rancher CRDs")?;
        let objects = fixtures::generate(&fixtures::PlaneSpec::new(n));
        let report = fixtures::load(&client, &objects, 16)
            .await
            .context("loading the generated plane")?;
        println!(
            "installed {} CRDs; loaded {} objects ({n} downstream clusters) in {:.1} s",
            crds.installed.len(),
            report.created,
            report.elapsed.as_secs_f64()
        );
    }

    println!(
        "control plane ready in {:.1} s",
        cp.startup_time().as_secs_f64()
    );
    println!("  apiserver:           {}", cp.apiserver_url());
    println!("  etcd:                {}", cp.etcd_url());
    println!("  admin kubeconfig:    {}", kubeconfig.display());
    println!("  read-only kubeconfig: {}", readonly_out.display());
    println!("  logs and data:       {}", cp.dir().display());
    println!(
        "  try: kubectl --kubeconfig {} get ns",
        kubeconfig.display()
    );
    println!("Ctrl-C or SIGTERM stops it.");

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
        _ = term.recv() => {}
    }
    println!("stopping");
    drop(cp);
    for path in [&kubeconfig, &readonly_out] {
        // The files name a server that no longer exists.
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}
