//! `rewind`, the restore tool: parse flags, set up logging, run the command.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "outside data must never panic the recorder or the restore tool"
)]

mod cli;

use clap::Parser;

fn main() -> std::process::ExitCode {
    match real_main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "rewind: error: {}",
                rewind_history::report::chain(e.as_ref())
            );
            std::process::ExitCode::FAILURE
        }
    }
}

fn real_main() -> anyhow::Result<()> {
    let cli = cli::args::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&cli.log)?)
        .with_writer(std::io::stderr)
        .init();
    rewind_history::install_tls_provider();
    // Objects may nest up to `deep::MAX_DEPTH` levels, and every step on a
    // `serde_json::Value` recurses: the command runs on a runtime thread
    // with a stack sized for that, not on the main thread.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(rewind_history::deep::BINARY_STACK)
        .build()?;
    rt.block_on(async move {
        match tokio::spawn(cli::run(cli)).await {
            Ok(r) => r,
            Err(e) => match e.try_into_panic() {
                Ok(payload) => std::panic::resume_unwind(payload),
                Err(e) => Err(e.into()),
            },
        }
    })
}
