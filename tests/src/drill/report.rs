//! One restore checked object by object, the runbook's read-only commands,
//! and the drill report (text for people, JSON for schedulers).

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use rewind_history::DesiredState;
use rewind_history::select::ResourceSet;
use rewind_restore::compare;
use serde::Serialize;

use super::restore::{CommandRun, RestoreRun, restore, rewind_cli};
use super::{DrillError, Result, capture, step};
use crate::ControlPlane;
use crate::daemon::Binaries;

/// One restored point.
#[derive(Debug, Clone, Serialize)]
pub struct PointReport {
    /// `latest` or `snapshot`.
    pub label: String,
    /// The `--at` argument.
    pub point: String,
    /// Objects expected (the LIST captured before the crash).
    pub objects: usize,
    /// Objects per type.
    pub per_type: std::collections::BTreeMap<String, usize>,
    /// The restore's RTO.
    pub restore: RestoreRun,
    /// Every difference, readable.
    pub differences: Vec<String>,
}

/// The whole drill.
#[derive(Debug, Clone, Serialize)]
pub struct DrillReport {
    /// Downstream clusters generated.
    pub clusters: usize,
    /// Objects the generator loaded.
    pub objects_loaded: usize,
    /// API writes the drill made after the daemon started.
    pub changes_made: usize,
    /// The downstream cluster scaled to zero.
    pub scaled_to_zero: String,
    /// The on-demand snapshot.
    pub snapshot_id: String,
    /// Its sequence number.
    pub snapshot_seq: u64,
    /// The last recorded sequence number at the crash.
    pub last_seq: u64,
    /// Segments in the store at the crash.
    pub segments: usize,
    /// Crash time minus the time of the newest event in the store.
    pub rpo_ms: i64,
    /// `rewindd status` right before the crash.
    pub rewindd_status: String,
    /// The runbook's read-only commands against the store.
    pub runbook: Vec<CommandRun>,
    /// The two restores.
    pub points: Vec<PointReport>,
    /// The drill's wall time.
    pub total: Duration,
}

impl DrillReport {
    /// Whether every restore matched its expected state, and each had
    /// objects to compare (a restore with a failed object ends the drill
    /// with an error).
    #[must_use]
    pub fn passed(&self) -> bool {
        !self.points.is_empty()
            && self
                .points
                .iter()
                .all(|p| p.objects > 0 && p.differences.is_empty())
    }

    /// The report for people.
    #[must_use]
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "Rewind DR drill");
        let _ = writeln!(
            s,
            "  plane          {} downstream clusters, {} objects loaded, {} changes while recording",
            self.clusters, self.objects_loaded, self.changes_made
        );
        let _ = writeln!(s, "  scaled to zero {}", self.scaled_to_zero);
        let _ = writeln!(
            s,
            "  snapshot       {} (seq {}, label pre-change)",
            self.snapshot_id, self.snapshot_seq
        );
        let _ = writeln!(
            s,
            "  recorded       seq 1..{} in {} segments",
            self.last_seq, self.segments
        );
        #[expect(clippy::cast_precision_loss, reason = "display only")]
        let rpo = self.rpo_ms as f64 / 1000.0;
        let _ = writeln!(
            s,
            "  RPO            {rpo:.1} s (crash time minus the newest stored event)"
        );
        for p in &self.points {
            let _ = writeln!(s, "restore at {} ({})", p.point, p.label);
            let _ = writeln!(s, "  objects        {}", p.objects);
            let _ = writeln!(s, "  differences    {}", p.differences.len());
            let _ = writeln!(s, "  RTO            {:.1} s", p.restore.rto.as_secs_f64());
            for d in p.differences.iter().take(20) {
                let _ = writeln!(s, "  DIFF {d}");
            }
        }
        let _ = writeln!(s, "runbook commands against the store:");
        for c in &self.runbook {
            let first = c
                .output
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "  [{}] {}  -> {first}",
                if c.ok { "ok" } else { "FAILED" },
                c.command
            );
        }
        let _ = writeln!(
            s,
            "result: {} (drill took {:.0} s)",
            if self.passed() { "PASSED" } else { "FAILED" },
            self.total.as_secs_f64()
        );
        s
    }
}

/// Restores `point` into a fresh control plane and compares the result with
/// `want`, the LIST captured at that point.
pub async fn restore_and_verify(
    bins: &Binaries,
    data: &Path,
    label: &str,
    point: &str,
    want: &mut DesiredState,
    set: &ResourceSet,
    work: &Path,
) -> Result<PointReport> {
    if want.is_empty() {
        return Err(DrillError::Step {
            step: "verifying the restore",
            reason: format!("the expected state at {point} is empty: nothing to compare"),
        });
    }
    let cp = ControlPlane::start()
        .await
        .map_err(step("starting a fresh control plane"))?;
    let admin = cp.admin_client();
    let before = capture::capture(&admin, set).await?;
    let state_dir = work.join(format!("restore-{label}"));
    std::fs::create_dir_all(&state_dir).map_err(step("creating the restore state dir"))?;
    let run = restore(
        &bins.rewind,
        &data.join("store"),
        point,
        cp.admin_kubeconfig_path(),
        &state_dir,
    )
    .await?;
    let mut got = capture::capture(&admin, set).await?;
    capture::drop_preexisting(want, &mut got, &before);
    capture::drop_builtin_status(want, &mut got);
    capture::drop_not_restored(want);
    let differences = compare(want, &got)
        .iter()
        .map(ToString::to_string)
        .collect();
    Ok(PointReport {
        label: label.to_owned(),
        point: point.to_owned(),
        objects: want.len(),
        per_type: capture::counts(want),
        restore: run,
        differences,
    })
}

/// The runbook's read-only steps against the store: `rewind list`, then
/// `rewind diff` from the snapshot to the newest point.
pub async fn runbook(bins: &Binaries, data: &Path, snapshot_id: &str) -> Result<Vec<CommandRun>> {
    let store = data.join("store").display().to_string();
    let mut out = Vec::new();
    for args in [
        vec!["--store".to_owned(), store.clone(), "list".into()],
        vec![
            "--store".to_owned(),
            store.clone(),
            "diff".into(),
            "--from".into(),
            format!("snapshot:{snapshot_id}"),
            "--to".into(),
            "latest".into(),
        ],
    ] {
        out.push(rewind_cli(&bins.rewind, &args).await?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(objects: usize, differences: usize) -> PointReport {
        PointReport {
            label: "latest".into(),
            point: "latest".into(),
            objects,
            per_type: std::collections::BTreeMap::new(),
            restore: RestoreRun {
                rto: Duration::ZERO,
            },
            differences: vec!["x".to_owned(); differences],
        }
    }

    fn report(points: Vec<PointReport>) -> DrillReport {
        DrillReport {
            clusters: 1,
            objects_loaded: 1,
            changes_made: 0,
            scaled_to_zero: String::new(),
            snapshot_id: String::new(),
            snapshot_seq: 0,
            last_seq: 0,
            segments: 0,
            rpo_ms: 0,
            rewindd_status: String::new(),
            runbook: Vec::new(),
            points,
            total: Duration::ZERO,
        }
    }

    #[test]
    fn a_drill_with_nothing_compared_does_not_pass() {
        assert!(report(vec![point(3, 0), point(2, 0)]).passed());
        assert!(!report(vec![point(3, 0), point(2, 1)]).passed());
        assert!(!report(vec![point(3, 0), point(0, 0)]).passed());
        assert!(!report(Vec::new()).passed());
    }

    #[tokio::test]
    async fn an_empty_expected_state_is_an_error_before_any_restore() {
        let bins = Binaries {
            rewindd: "/nonexistent/rewindd".into(),
            rewind: "/nonexistent/rewind".into(),
        };
        let dir = tempfile::tempdir().unwrap();
        let err = restore_and_verify(
            &bins,
            dir.path(),
            "latest",
            "latest",
            &mut DesiredState::new(),
            &ResourceSet::everything(),
            dir.path(),
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("nothing to compare"), "{err}");
    }
}
