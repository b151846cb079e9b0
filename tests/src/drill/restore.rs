//! Restoring the store into a fresh control plane, as the runbook says:
//! `rewind list`, `rewind diff`, `rewind restore --at P --dry-run` (the
//! plan), then `rewind restore --at P --yes`.
//!
//! The `rewind` CLI is the path under test. While `rewind` cannot read a
//! store yet (it answers "not yet implemented: … needs the store reader"),
//! the drill falls back, and says so in its report, to the library with its
//! own reading of the store: the snapshot (for `snapshot:ID`) or every
//! segment from seq 1 (for `latest`), folded with `rewind_format::State`,
//! then `rewind_restore::{plan, apply}`.

use std::path::Path;
use std::time::{Duration, Instant};

use rewind_format::state::State;
use rewind_format::{Limits, SegmentReader, SnapshotReader};
use rewind_history::DesiredState;
use rewind_history::from_format::desired_from_format;
use rewind_history::store::Store;
use rewind_restore::{ApplyOptions, PlanOptions, ProtectedSet, apply, plan};
use serde::Serialize;

use super::{DrillError, Result, step};

/// How a restore went.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreRun {
    /// `cli` (`rewind restore --store`) or `fallback-library` (see module doc).
    pub path: String,
    /// Why the fallback was used, when it was.
    pub fallback_reason: Option<String>,
    /// Wall time from the start of the restore command to its end: reading
    /// the store, reconstructing, planning and applying.
    pub rto: Duration,
    /// Objects written.
    pub written: usize,
    /// Objects that failed, with the API's reason.
    pub failures: Vec<String>,
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

fn needs_store_reader(run: &CommandRun) -> bool {
    run.output.contains("not yet implemented")
}

/// The state at `point` read by the drill itself (the fallback).
pub async fn state_from_store(store: &Store, snapshot_id: Option<&str>) -> Result<DesiredState> {
    let state = match snapshot_id {
        Some(id) => {
            let entry = store
                .list_snapshots()
                .await
                .map_err(step("listing snapshots"))?
                .into_iter()
                .find(|s| s.id == id)
                .ok_or_else(|| DrillError::Step {
                    step: "reading the snapshot",
                    reason: format!("no snapshot {id}"),
                })?;
            let bytes = store
                .get_snapshot(&entry)
                .await
                .map_err(step("reading the snapshot"))?;
            let mut r = SnapshotReader::open(&bytes, None, Limits::default())
                .map_err(step("opening the snapshot"))?;
            State::from_snapshot(&mut r).map_err(step("decoding the snapshot"))?
        }
        None => {
            let mut s = State::new("");
            let mut next = 1;
            for seg in store
                .list_segments()
                .await
                .map_err(step("listing segments"))?
            {
                if seg.first_seq != next {
                    return Err(DrillError::Step {
                        step: "folding segments",
                        reason: format!(
                            "gap: expected seq {next}, segment starts at {}",
                            seg.first_seq
                        ),
                    });
                }
                let bytes = store
                    .get_segment(&seg)
                    .await
                    .map_err(step("reading a segment"))?;
                let events = SegmentReader::open(&bytes, None, Limits::default())
                    .map_err(step("opening a segment"))?
                    .read_all()
                    .map_err(step("decoding a segment"))?;
                for e in &events {
                    s.apply(e);
                }
                next = seg.last_seq + 1;
            }
            s
        }
    };
    desired_from_format(&state).map_err(step("converting the recorded state"))
}

/// Restores the state at `point` (`latest` or `snapshot:ID`) from the store
/// in `store_dir` into the cluster of `kubeconfig`.
pub async fn restore(
    bin: &Path,
    store: &Store,
    store_dir: &Path,
    point: &str,
    kubeconfig: &Path,
    client: &kube::Client,
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
    if run.ok {
        return Ok(RestoreRun {
            path: "cli".into(),
            fallback_reason: None,
            rto: start.elapsed(),
            written: 0,
            failures: Vec::new(),
        });
    }
    if !needs_store_reader(&run) {
        return Err(DrillError::Step {
            step: "rewind restore",
            reason: format!("{}\n{}", run.command, run.output),
        });
    }
    // Fallback: see the module doc.
    let start = Instant::now();
    let snapshot_id = point.strip_prefix("snapshot:");
    let state = state_from_store(store, snapshot_id).await?;
    let opts = PlanOptions {
        protected: ProtectedSet::with_defaults(&[]).map_err(step("the protected set"))?,
        ..PlanOptions::default()
    };
    let p = plan(&state, client, &opts)
        .await
        .map_err(step("planning"))?;
    let report = apply(client, &p, &ApplyOptions::default())
        .await
        .map_err(step("applying"))?;
    Ok(RestoreRun {
        path: "fallback-library".into(),
        fallback_reason: run
            .output
            .lines()
            .find(|l| l.contains("not yet implemented"))
            .map(|l| l.trim().to_owned()),
        rto: start.elapsed(),
        written: report.written,
        failures: report
            .failures
            .iter()
            .map(|f| format!("{} {}: {}", f.step, f.object, f.failure))
            .collect(),
    })
}
