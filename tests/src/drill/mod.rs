//! The one-command disaster-recovery drill behind
//! `cargo run --release -p rewind-tests --bin dr-drill`: Rewind's main job,
//! end to end, on throwaway local control planes.
//!
//! 1. A control plane with the Rancher CRDs and a generated plane of N
//!    downstream clusters (default 50).
//! 2. The real `rewindd` against it, as the read-only identity, with its
//!    journal and a local store.
//! 3. Changes, among them a downstream cluster scaled to zero; then
//!    `rewindd snapshot --label pre-change --wait`; then more changes.
//! 4. The expected state, captured twice by a LIST of every type the daemon's
//!    resource set selects: right before the snapshot and right before the
//!    crash (after the daemon settled and sealed everything).
//! 5. The crash: rewindd killed, the control plane dropped (etcd and all).
//! 6. Two restores into fresh control planes, at `latest` and at the
//!    snapshot ([`restore`]), each checked object by object against its
//!    expected state with `rewind_restore::compare`.
//!
//! The report gives objects, differences, RPO (crash time minus the time of
//! the newest event in the store) and RTO (the restore's wall time).

pub mod bench;
pub mod capture;
pub mod changes;
pub mod report;
pub mod restore;

use std::fmt::Display;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::ControlPlane;
use crate::daemon::{self, DaemonConfig, RunOptions};
use crate::fixtures;

pub use report::{DrillReport, PointReport};

/// Errors of the drill: which step failed, and why.
#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    /// A step failed.
    #[error("{step}: {reason}")]
    Step {
        /// What the drill was doing.
        step: &'static str,
        /// The cause.
        reason: String,
    },
}

/// Result alias for the drill.
pub type Result<T, E = DrillError> = std::result::Result<T, E>;

/// Maps any displayable error to [`DrillError::Step`].
pub fn step<E: Display>(step: &'static str) -> impl FnOnce(E) -> DrillError {
    move |e| DrillError::Step {
        step,
        reason: e.to_string(),
    }
}

/// What to drill.
#[derive(Debug, Clone)]
pub struct DrillOptions {
    /// Downstream clusters in the generated plane.
    pub clusters: usize,
    /// Rounds of churn before and after the snapshot.
    pub churn: usize,
    /// Where the daemon's data, the store and the reports go.
    pub work_dir: PathBuf,
}

/// Runs the drill. Differences are in the report, not errors; errors mean
/// the drill itself could not run.
pub async fn run(opts: &DrillOptions) -> Result<DrillReport> {
    let total = Instant::now();
    let bins = daemon::binaries("[dr-drill]").map_err(step("building rewindd and rewind"))?;
    let data = opts.work_dir.join("rewindd");
    std::fs::create_dir_all(&data).map_err(step("creating the work directory"))?;
    let set = capture::rancher_set()?;

    say("starting a local control plane");
    let cp = ControlPlane::start()
        .await
        .map_err(step("starting the control plane"))?;
    let admin = cp.admin_client();
    fixtures::install_rancher_crds(&admin)
        .await
        .map_err(step("installing the Rancher CRDs"))?;
    let objects = fixtures::generate(&fixtures::PlaneSpec::new(opts.clusters));
    let loaded = fixtures::load(&admin, &objects, 16)
        .await
        .map_err(step("loading the generated plane"))?;
    say(&format!(
        "loaded {} objects ({} downstream clusters)",
        loaded.created, opts.clusters
    ));

    say("starting rewindd (read-only identity, local store)");
    let metrics_port = daemon::free_port().map_err(step("choosing a metrics port"))?;
    let cfg = DaemonConfig::drill(&data, cp.readonly_kubeconfig_path(), metrics_port);
    let mut d = cfg
        .start(&RunOptions::operator(&bins.rewindd))
        .map_err(step("starting rewindd"))?;
    d.settle(Duration::from_secs(1), "initial list")
        .await
        .map_err(step("waiting for the initial list"))?;
    let store = cfg.open_store().await.map_err(step("opening the store"))?;

    let mut ch = changes::Changes::new(admin.clone(), &objects);
    let scaled = ch.scale_first_cluster_to_zero(&objects).await?;
    say(&format!("scaled downstream cluster {scaled} to zero"));
    ch.churn("a", opts.churn).await?;
    d.settle(Duration::from_secs(1), "before the snapshot")
        .await
        .map_err(step("waiting for rewindd before the snapshot"))?;
    let mut want_snapshot = capture::capture(&admin, &set).await?;
    let snap_out = d
        .snapshot("pre-change")
        .await
        .map_err(step("rewindd snapshot --wait"))?;
    say(&format!(
        "rewindd snapshot --label pre-change --wait: {}",
        snap_out.trim()
    ));
    let snap = daemon::labelled_snapshot(&store, "pre-change")
        .await
        .map_err(step("finding the on-demand snapshot"))?;

    ch.churn("b", opts.churn).await?;
    let settled = d
        .settle(Duration::from_secs(1), "before the crash")
        .await
        .map_err(step("waiting for rewindd before the crash"))?;
    let mut want_latest = capture::capture(&admin, &set).await?;
    let last_seq = settled.journal.next_seq.saturating_sub(1);
    let segs = daemon::wait_sealed(&store, last_seq)
        .await
        .map_err(step("waiting for the journal to be sealed into the store"))?;
    let status_text = d
        .status_text()
        .await
        .map_err(step("running rewindd status"))?;
    // Kept beside the report: what an operator's Prometheus would scrape.
    if let Ok(m) = d.metrics().await {
        let _ = std::fs::write(opts.work_dir.join("metrics.txt"), m);
    }
    let newest_event_ms = segs.iter().map(|s| s.last_time_ms).max().unwrap_or(0);

    say("crash: rewindd killed, control plane destroyed");
    d.kill().map_err(step("killing rewindd"))?;
    drop(cp);
    let crash_ms = now_ms();
    let rpo_ms = crash_ms.saturating_sub(newest_event_ms);

    let mut points = Vec::new();
    for (label, point, want) in [
        ("latest", "latest".to_owned(), &mut want_latest),
        (
            "snapshot",
            format!("snapshot:{}", snap.id),
            &mut want_snapshot,
        ),
    ] {
        say(&format!("restoring at {point} into a fresh control plane"));
        points.push(
            report::restore_and_verify(&bins, &data, label, &point, want, &set, &opts.work_dir)
                .await?,
        );
    }
    let runbook = report::runbook(&bins, &data, &snap.id).await?;
    Ok(DrillReport {
        clusters: opts.clusters,
        objects_loaded: loaded.created,
        changes_made: ch.made,
        scaled_to_zero: scaled,
        snapshot_id: snap.id,
        snapshot_seq: snap.seq,
        last_seq,
        segments: segs.len(),
        rpo_ms,
        rewindd_status: status_text,
        runbook,
        points,
        total: total.elapsed(),
    })
}

/// Progress on stderr; the report goes to stdout.
fn say(what: &str) {
    eprintln!("[dr-drill] {what}");
}

use rewind_history::now_ms;
