//! Restoring the store into a fresh control plane, as the runbook says:
//! `rewind list`, `rewind diff`, `rewind restore --at P --dry-run` (the
//! plan), then `rewind restore --at P --yes`, all through the `rewind` CLI.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{DrillError, Result, step};

/// How a restore went.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreRun {
    /// Wall time from the start of the restore command to its end: reading
    /// the store, reconstructing, planning and applying.
    pub rto: Duration,
}

/// One runbook command's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct CommandRun {
    /// The command line, as an operator would type it.
    pub command: String,
    /// Whether it exited 0.
    pub ok: bool,
    /// Its output (stdout then stderr), first lines.
    pub output: String,
}

/// Runs `rewind ARGS`, capturing its output.
pub async fn rewind_cli(bin: &Path, args: &[String]) -> Result<CommandRun> {
    let out = tokio::process::Command::new(bin)
        .args(args)
        // The operator's view: the error message, not a backtrace.
        .env("RUST_BACKTRACE", "0")
        .env("RUST_LIB_BACKTRACE", "0")
        .output()
        .await
        .map_err(step("running rewind"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let first: Vec<&str> = text.lines().take(40).collect();
    Ok(CommandRun {
        command: format!("rewind {}", args.join(" ")),
        ok: out.status.success(),
        output: first.join("\n"),
    })
}

/// Restores the state at `point` (`latest` or `snapshot:ID`) from the store
/// in `store_dir` into the cluster of `kubeconfig`.
pub async fn restore(
    bin: &Path,
    store_dir: &Path,
    point: &str,
    kubeconfig: &Path,
    state_dir: &Path,
) -> Result<RestoreRun> {
    let args: Vec<String> = vec![
        "--store".into(),
        store_dir.display().to_string(),
        "restore".into(),
        "--at".into(),
        point.into(),
        "--to".into(),
        kubeconfig.display().to_string(),
        "--state-dir".into(),
        state_dir.display().to_string(),
        "--yes".into(),
    ];
    let start = Instant::now();
    let run = rewind_cli(bin, &args).await?;
    if !run.ok {
        return Err(DrillError::Step {
            step: "rewind restore",
            reason: format!("{}\n{}", run.command, run.output),
        });
    }
    Ok(RestoreRun {
        rto: start.elapsed(),
    })
}
