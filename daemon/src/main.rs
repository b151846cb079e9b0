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
use rewind_daemon::status::{problems_at, read_status, render, render_details, status_path};
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
    /// Print the least-privilege RBAC (ClusterRole, Role, bindings) for the
    /// record set ([record] or --presets), from discovery against the cluster.
    Rbac {
        /// Namespace of the ServiceAccount and of the leader-election Lease.
        #[arg(long, default_value = "rewind-system")]
        namespace: String,
        /// The ServiceAccount the roles are bound to.
        #[arg(long, default_value = "rewindd")]
        service_account: String,
        /// The leader-election Lease's name ([leader] lease is
        /// NAMESPACE/NAME); `get` and `update` are granted on it only.
        #[arg(long, default_value = "rewindd")]
        lease_name: String,
    },
    /// Whether the running daemon records (from DATA_DIR/status.json): one
    /// `ready: …` line and exit 0, or one `not ready: …` line per problem
    /// and exit 1; exit 3 when it never ran.
    Status {
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
        /// Also print the journal, the failing groups and every type.
        #[arg(long, short)]
        verbose: bool,
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
            // A configuration that cannot be read or is invalid stays so
            // across restarts: the deployment-error status, which the
            // unit's RestartPreventExitStatus= does not restart on.
            let config = match cli.settings.load() {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("rewindd: {}", rewind_history::report::chain(&e));
                    return Ok(ExitCode::from(rewind_daemon::admin::EXIT_DEPLOYMENT));
                }
            };
            config.warn_weak_settings();
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            match rt.block_on(rewind_daemon::service::run(
                config,
                cli.settings.clone(),
                shutdown_signal(),
            )) {
                Ok(()) => Ok(ExitCode::SUCCESS),
                // Restarting would fail the same way: a distinct status
                // that the unit's RestartPreventExitStatus= names.
                Err(rewind_daemon::service::ServiceError::Admin(e)) if e.restart_cannot_fix() => {
                    eprintln!("rewindd: {}", rewind_history::report::chain(&e));
                    Ok(ExitCode::from(rewind_daemon::admin::EXIT_DEPLOYMENT))
                }
                Err(e) => Err(e.into()),
            }
        }
        Command::Snapshot {
            label,
            wait,
            socket,
        } => {
            // An explicit socket needs no config file (which members of the
            // admin group may not be allowed to read).
            let socket = match socket {
                Some(s) => s,
                None => cli.settings.read_file()?.service.admin_socket,
            };
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
            let data_dir = cli.settings.data_dir_in(&file);
            let mut service = ServiceSettings::from_file(&file, &data_dir)?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            // The place this data directory's recorder writes.
            service.compact.store = rt.block_on(rewind_daemon::placement::for_prune(
                &data_dir,
                &service.compact.store,
                service.compact.store_retry,
                file.cluster.id.as_deref(),
                file.cluster.adopt_store,
            ))?;
            rt.block_on(rewind_daemon::compact::prune::run_cli(
                &service.compact,
                dry_run,
            ))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Rbac {
            namespace,
            service_account,
            lease_name,
        } => {
            let config = cli.settings.load()?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            let reads = rt.block_on(async {
                let client = rewind_daemon::daemon::client(&config.cluster).await?;
                anyhow::Ok(rewind_daemon::rbac::reads(&client, &config.resource_set).await?)
            })?;
            let record_set = if config.presets.is_empty() {
                "of the configuration's [record] selectors".to_owned()
            } else {
                format!("`{}`", config.presets.join(","))
            };
            print!(
                "{}",
                rewind_daemon::rbac::render(
                    &reads,
                    &rewind_daemon::rbac::Names {
                        namespace,
                        service_account,
                        record_set,
                        lease: lease_name,
                    }
                )
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Status {
            json,
            verbose,
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
                if verbose {
                    print!("{}", render_details(&status, now));
                }
            }
            Ok(if problems_at(&status, now, stale_ms).is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
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
