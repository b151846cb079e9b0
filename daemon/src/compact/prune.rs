//! `rewindd prune`: applies the retention policy to the store. Plan first
//! ([`plan`]), then execute ([`execute`]); `--dry-run` stops after the plan.

use rewind_history::store::retention::KeepReason;
use rewind_history::store::{RetentionPlan, RetentionPolicy, Store};

use super::error::Result;

/// Lists the store and applies `policy` at `now_ms`.
pub async fn plan(store: &Store, policy: &RetentionPolicy, now_ms: i64) -> Result<RetentionPlan> {
    let snaps = store.list_snapshots().await?;
    let segs = store.list_segments().await?;
    Ok(policy.plan(&snaps, &segs, now_ms))
}

/// Deletes what `plan` removes: snapshots first (so no snapshot is ever
/// listed without the segments after it), then segments, then orphaned
/// data objects older than an hour.
pub async fn execute(store: &Store, plan: &RetentionPlan, now_ms: i64) -> Result<()> {
    for s in &plan.remove {
        store.delete_snapshot(s).await?;
        tracing::info!(id = %s.id, seq = s.seq, "snapshot removed");
    }
    for s in &plan.remove_segments {
        store.delete_segment(s).await?;
    }
    store.collect_garbage(now_ms, 3_600_000, false).await?;
    Ok(())
}

/// The plan as a table for people.
#[must_use]
pub fn render(plan: &RetentionPlan) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<8} {:<24} {:>12} {:>10} {:>12}  reasons",
        "action", "snapshot", "seq", "objects", "bytes"
    );
    for (s, why) in &plan.keep {
        let why: Vec<String> = why
            .iter()
            .map(|r: &KeepReason| format!("{r:?}").to_lowercase())
            .collect();
        let _ = writeln!(
            out,
            "{:<8} {:<24} {:>12} {:>10} {:>12}  {}",
            "keep",
            s.short_id(),
            s.seq,
            s.objects,
            s.size,
            why.join(",")
        );
    }
    for s in &plan.remove {
        let _ = writeln!(
            out,
            "{:<8} {:<24} {:>12} {:>10} {:>12}",
            "remove",
            s.short_id(),
            s.seq,
            s.objects,
            s.size
        );
    }
    let bytes: u64 = plan.remove_segments.iter().map(|s| s.size).sum();
    let _ = writeln!(
        out,
        "segments: keep {}, remove {} ({} bytes)",
        plan.keep_segments.len(),
        plan.remove_segments.len(),
        bytes
    );
    out
}

/// `rewindd prune [--dry-run]`: prints the plan, then executes it unless a
/// dry run. Works without the daemon: it only needs the store.
pub async fn run_cli(settings: &super::Settings, dry_run: bool) -> Result<()> {
    let store = Store::open_with(&settings.store, settings.store_retry).await?;
    if settings.retention.is_empty() {
        println!("no [retention] rule is set: nothing would be removed");
    }
    let now = rewind_history::now_ms();
    let plan = plan(&store, &settings.retention, now).await?;
    print!("{}", render(&plan));
    if dry_run {
        let garbage = store.collect_garbage(now, 3_600_000, true).await?;
        println!(
            "dry run: {} snapshot(s) and {} segment(s) would be removed, plus {} orphaned object(s)",
            plan.remove.len(),
            plan.remove_segments.len(),
            garbage.orphans.len()
        );
        return Ok(());
    }
    execute(&store, &plan, now).await?;
    println!(
        "removed {} snapshot(s) and {} segment(s)",
        plan.remove.len(),
        plan.remove_segments.len()
    );
    Ok(())
}
