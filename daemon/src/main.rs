//! `rewindd`, the recording daemon: thin wrapper over [`rewind_daemon::run`].
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "outside data must never panic the recorder or the restore tool"
)]

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use rewind_daemon::config::{ServiceSettings, Settings};
use rewind_daemon::status::{read_status, render, status_path};
use rewind_history::now_ms;

// jemalloc returns freed memory to the OS by itself (decay, purged by a
// background thread), where glibc keeps ~57 MB of freed heap in the settled
// daemon; see docs/MANUAL.md, "Memory".
#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "rewindd",
    version,
    about = "Records a Kubernetes management plane into a durable event journal"
)]
struct Cli {
    #[command(flatten)]
    settings: Settings,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Record until SIGTERM or SIGINT.
    Run,
    /// Ask the running daemon for a snapshot now (over its admin socket).
    Snapshot {
        /// Label; labelled snapshots are kept until deleted by hand.
        #[arg(long)]
        label: Option<String>,
        /// Wait until the snapshot is in the store.
        #[arg(long)]
        wait: bool,
        /// The daemon's admin socket ([service] admin_socket).
        #[arg(long, env = "REWIND_ADMIN_SOCKET")]
        socket: Option<std::path::PathBuf>,
    },
    /// Apply the retention policy ([retention]) to the store.
    Prune {
        /// Only show what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
    /// Print the running daemon's status (from DATA_DIR/status.json).
    Status {
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
        /// Seconds after which an unchanged status file means the daemon is not running.
        #[arg(long, default_value_t = 10)]
        stale_after_s: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match real_main(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("rewindd: {}", rewind_history::report::chain(e.as_ref()));
            ExitCode::from(2)
        }
    }
}

fn real_main(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run => {
            // The journal holds every recorded Secret in plain text: nothing the
            // daemon creates may be readable by other users, whatever umask it was
            // started with (systemd's unit sets UMask=0077 too; a shell may not).
            rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
                )
                .init();
            let config = cli.settings.load()?;
            config.warn_weak_settings();
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            rt.block_on(rewind_daemon::service::run(
                config,
                cli.settings.clone(),
                shutdown_signal(),
            ))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Snapshot {
            label,
            wait,
            socket,
        } => {
            let file = cli.settings.read_file()?;
            let socket = socket.unwrap_or(file.service.admin_socket);
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            match rt.block_on(rewind_daemon::admin::client::snapshot(&socket, label, wait)) {
                Ok(info) => {
                    print!("{}", rewind_daemon::admin::client::render(&info));
                    Ok(ExitCode::SUCCESS)
                }
                Err(e @ rewind_daemon::admin::AdminError::NotRunning { .. }) => {
                    eprintln!("rewindd: {e}");
                    Ok(ExitCode::from(3))
                }
                Err(e) => Err(e.into()),
            }
        }
        Command::Prune { dry_run } => {
            let file = cli.settings.read_file()?;
            let service = ServiceSettings::from_file(&file, &cli.settings.data_dir_in(&file))?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            rt.block_on(rewind_daemon::compact::prune::run_cli(
                &service.compact,
                dry_run,
            ))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Status {
            json,
            stale_after_s,
        } => {
            let dir = cli.settings.data_dir()?;
            let path = status_path(&dir);
            let status = match read_status(&path) {
                Ok(s) => s,
                Err(e) => {
                    println!(
                        "no status: {e}\nrewindd has not run with data directory {}",
                        dir.display()
                    );
                    return Ok(ExitCode::from(3));
                }
            };
            let now = now_ms();
            let stale_ms = i64::try_from(stale_after_s.saturating_mul(1000)).unwrap_or(i64::MAX);
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print!("{}", render(&status, now, stale_ms));
            }
            let stale = now.saturating_sub(status.written_at_ms) > stale_ms;
            Ok(if stale || !status.healthy() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
