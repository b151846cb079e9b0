//! `rewind list`: the store's lineages and forks, the snapshots, and the
//! point-in-time window of the lineage points are read in (`--lineage`,
//! default the newest, with its ancestors up to their fork points).
//! Over a store that holds several clusters and no `--cluster`: every
//! cluster with its place, lineages, newest point and RPO.

use std::io::Write;

use anyhow::Result;
use rewind_history::Point;
use rewind_history::pit::plan;
use rewind_history::pit::verify::gaps;
use rewind_history::store::fleet;
use rewind_history::store::lineage::LEGACY;
use rewind_history::store::{LineageRecord, SegmentEntry, SnapshotEntry, Store};
use serde_json::json;

use super::args::{ListArgs, Output};
use super::store::StoreArgs;

/// A Unix-ms time as RFC 3339 (UTC), or the number when out of range.
pub fn time(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).map_or_else(|_| ms.to_string(), |t| t.to_string())
}

fn mb(bytes: u64) -> String {
    #[expect(clippy::cast_precision_loss, reason = "a size for people")]
    let v = bytes as f64 / 1e6;
    format!("{v:.1} MB")
}

/// One cluster of a store as `rewind list` shows it.
#[derive(Debug, Clone, serde::Serialize)]
struct ClusterRow {
    /// The name `--cluster` takes.
    name: String,
    /// Where its history is: `clusters/<key>/`, or `/` for the flat layout.
    place: String,
    /// The cluster identities its lineage records carry.
    cluster_uids: Vec<String>,
    /// Its lineages, oldest first (`legacy` for entries without one).
    lineages: Vec<String>,
    /// The lineage of its newest file.
    newest_lineage: Option<String>,
    /// Seq of its newest recorded point.
    newest_seq: Option<u64>,
    /// Time of its newest recorded point, Unix ms.
    newest_time_ms: Option<i64>,
    /// Age of the newest recorded point when listed, ms.
    rpo_ms: Option<i64>,
}

/// `rewind list` over a store of several clusters, none named.
async fn run_fleet(a: &ListArgs, root: &Store, members: &[fleet::Member]) -> Result<()> {
    let now = rewind_history::now_ms();
    let mut rows = Vec::new();
    for m in members {
        let store = m.place.open(root)?;
        let records = store.list_lineages().await?;
        let snaps = store.list_snapshots().await?;
        let segs = store.list_segments().await?;
        let newest = segs
            .iter()
            .map(|s| (s.last_seq, s.last_time_ms, s.lineage.clone()))
            .chain(snaps.iter().map(|s| (s.seq, s.time_ms, s.lineage.clone())))
            .max_by_key(|(seq, ..)| *seq);
        let mut lineages: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
        if segs.iter().any(|s| s.lineage.is_none()) || snaps.iter().any(|s| s.lineage.is_none()) {
            lineages.insert(0, LEGACY.to_owned());
        }
        rows.push(ClusterRow {
            name: m.name(),
            place: match &m.place {
                fleet::Place::Flat => "/".to_owned(),
                p @ fleet::Place::Cluster(_) => p.to_string(),
            },
            cluster_uids: m.cluster_uids.clone(),
            lineages,
            newest_lineage: newest
                .as_ref()
                .map(|n| n.2.clone().unwrap_or_else(|| LEGACY.to_owned())),
            newest_seq: newest.as_ref().map(|n| n.0),
            newest_time_ms: newest.as_ref().map(|n| n.1),
            rpo_ms: newest.as_ref().map(|n| now.saturating_sub(n.1)),
        });
    }
    let mut out = std::io::stdout().lock();
    match a.output {
        Output::Json => {
            serde_json::to_writer_pretty(&mut out, &json!({ "clusters": rows }))?;
            writeln!(out)?;
        }
        Output::Table => {
            writeln!(
                out,
                "{:<40} {:<50} {:>10} {:<25} {:>10} LINEAGES",
                "CLUSTER", "PLACE", "NEWEST SEQ", "NEWEST TIME", "RPO"
            )?;
            for r in &rows {
                let lineages: Vec<String> = r
                    .lineages
                    .iter()
                    .map(|l| {
                        let short = l.get(..8).unwrap_or(l);
                        if r.newest_lineage.as_deref() == Some(l.as_str()) {
                            format!("{short}*")
                        } else {
                            short.to_owned()
                        }
                    })
                    .collect();
                writeln!(
                    out,
                    "{:<40} {:<50} {:>10} {:<25} {:>10} {}",
                    r.name,
                    r.place,
                    r.newest_seq.map_or_else(|| "-".into(), |s| s.to_string()),
                    r.newest_time_ms.map_or_else(|| "-".into(), time),
                    r.rpo_ms.map_or_else(|| "-".into(), age),
                    lineages.join(" ")
                )?;
            }
            writeln!(
                out,
                "({} clusters; * the lineage of the newest point; read one with --cluster NAME)",
                rows.len()
            )?;
        }
    }
    Ok(())
}

/// A duration in ms for people: `42s`, `3m07s`, `5h02m`, `2d03h`.
fn age(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86_400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// Runs `rewind list`.
pub async fn run(a: &ListArgs, store: &StoreArgs) -> Result<()> {
    if !store.names_cluster() {
        let (root, members) = store.open_root().await?;
        if members.len() > 1 {
            return run_fleet(a, root.store(), &members).await;
        }
    }
    let src = store.open().await?;
    let records = src.store().list_lineages().await?;
    let all_snaps = src.store().list_snapshots().await?;
    let all_segs = src.store().list_segments().await?;
    let lineages = lineage_rows(&records, &all_snaps, &all_segs);
    let mut problems = plan::store_problems(&records, &all_snaps, &all_segs);
    // The head names who ships now (stores with compare-and-swap only).
    let head = match src.store().read_head().await {
        Ok(h) => h.map(|(h, _)| h),
        Err(e) => {
            problems.push((format!("the head cannot be read: {e}"), Vec::new()));
            None
        }
    };
    // The window of the lineage points are read in; the whole store when
    // its lineages do not form one history (the problem is printed).
    let (snaps, segs, path, view_error) = match src.view(&Point::Latest).await {
        Ok(v) => (v.snapshots, v.segments, v.path, None),
        Err(e) => (
            all_snaps.clone(),
            all_segs.clone(),
            Vec::new(),
            Some(e.to_string()),
        ),
    };
    // The window: from seq 1 when the segments reach back that far without
    // a hole, else from the oldest snapshot; to the newest event.
    let oldest = snaps.first();
    let from_one = gaps(segs.iter().map(|s| (s.first_seq, s.last_seq)), 1)
        .first()
        .is_none_or(|g| oldest.is_some_and(|o| g.from > o.seq));
    let from = if from_one && segs.first().is_some_and(|s| s.first_seq <= 1) {
        Some((1, segs.first().map_or(0, |s| s.first_time_ms)))
    } else {
        oldest.map(|o| (o.seq, o.time_ms))
    };
    let to = segs
        .iter()
        .map(|s| (s.last_seq, s.last_time_ms))
        .chain(snaps.iter().map(|s| (s.seq, s.time_ms)))
        .max();
    let holes = gaps(
        segs.iter().map(|s| (s.first_seq, s.last_seq)),
        from.map_or(1, |f| f.0.saturating_add(1)),
    );
    let events: u64 = segs.iter().map(|s| s.events).sum();
    let seg_bytes: u64 = segs.iter().map(|s| s.size).sum();
    let mut out = std::io::stdout().lock();
    match a.output {
        Output::Json => {
            serde_json::to_writer_pretty(
                &mut out,
                &json!({
                    "lineages": lineages,
                    "head": head,
                    "path": path,
                    "problems": problems.iter().map(|(r, c)| json!({"reason": r, "candidates": c})).collect::<Vec<_>>(),
                    "view_error": view_error,
                    "snapshots": snaps,
                    "segments": {"count": segs.len(), "events": events, "bytes": seg_bytes,
                        "first_seq": segs.first().map(|s| s.first_seq),
                        "last_seq": segs.iter().map(|s| s.last_seq).max()},
                    "window": {"from_seq": from.map(|f| f.0), "from_time_ms": from.map(|f| f.1),
                        "to_seq": to.map(|t| t.0), "to_time_ms": to.map(|t| t.1)},
                    "gaps": holes,
                }),
            )?;
            writeln!(out)?;
        }
        Output::Table => {
            if !lineages.is_empty() {
                writeln!(
                    out,
                    "{:<34} {:<34} {:>10} {:<38} {:>21} WINDOW",
                    "LINEAGE", "PARENT", "FORK SEQ", "CLUSTER", "SEQS"
                )?;
                for l in &lineages {
                    writeln!(
                        out,
                        "{:<34} {:<34} {:>10} {:<38} {:>21} {}",
                        format!(
                            "{}{}",
                            l.id,
                            if path.last() == Some(&l.id) { " *" } else { "" }
                        ),
                        l.parent.as_deref().unwrap_or("-"),
                        l.fork_seq.map_or_else(|| "-".into(), |f| f.to_string()),
                        l.cluster.as_deref().unwrap_or("-"),
                        l.seqs
                            .map_or_else(|| "no files".into(), |(a, b)| format!("{a}..={b}")),
                        l.times.map_or_else(String::new, |(a, b)| format!(
                            "{} .. {}",
                            time(a),
                            time(b)
                        ))
                    )?;
                }
                writeln!(
                    out,
                    "(* the lineage points are read in; pick another with --lineage ID)"
                )?;
                if let Some(h) = &head {
                    writeln!(
                        out,
                        "head: lineage {} (epoch {}, holder {}, swapped {}): the recorder that ships now",
                        h.lineage,
                        h.epoch,
                        h.holder,
                        time(h.updated_at_ms)
                    )?;
                }
                writeln!(out)?;
            }
            for (reason, candidates) in &problems {
                writeln!(out, "PROBLEM: {reason}: {}", candidates.join(", "))?;
            }
            if let Some(e) = &view_error {
                writeln!(out, "PROBLEM: {e}\n")?;
            }
            writeln!(
                out,
                "{:<22} {:>10} {:<25} {:>9} {:>10} {:<4} LABEL",
                "SNAPSHOT", "SEQ", "TIME", "OBJECTS", "SIZE", "ENC"
            )?;
            for s in &snaps {
                writeln!(
                    out,
                    "{:<22} {:>10} {:<25} {:>9} {:>10} {:<4} {}",
                    s.short_id(),
                    s.seq,
                    time(s.time_ms),
                    s.objects,
                    mb(s.size),
                    if s.encrypted { "yes" } else { "no" },
                    s.label.as_deref().unwrap_or("")
                )?;
            }
            writeln!(
                out,
                "\nsegments: {} files, {events} events, {}",
                segs.len(),
                mb(seg_bytes)
            )?;
            match (from, to) {
                (Some(f), Some(t)) => writeln!(
                    out,
                    "point-in-time window: seq {}..={} ({} .. {})",
                    f.0,
                    t.0,
                    time(f.1),
                    time(t.1)
                )?,
                _ => writeln!(out, "point-in-time window: empty (nothing recorded yet)")?,
            }
            for g in &holes {
                writeln!(
                    out,
                    "GAP: events {}..={} are missing; points after it need a later snapshot",
                    g.from, g.to
                )?;
            }
        }
    }
    Ok(())
}

/// One lineage as `rewind list` shows it.
#[derive(Debug, Clone, serde::Serialize)]
struct LineageRow {
    /// Its id, or `legacy` for entries without one.
    id: String,
    /// Its parent.
    parent: Option<String>,
    /// The parent's seq it forked at.
    fork_seq: Option<u64>,
    /// The recorded cluster.
    cluster: Option<String>,
    /// Who created it (`host`, version, data directory).
    created_by: Option<String>,
    /// The first and last seq of its files.
    seqs: Option<(u64, u64)>,
    /// The times of those.
    times: Option<(i64, i64)>,
    /// Its files.
    files: usize,
}

fn lineage_rows(
    records: &[LineageRecord],
    snaps: &[SnapshotEntry],
    segs: &[SegmentEntry],
) -> Vec<LineageRow> {
    let files_of = |id: Option<&str>| {
        let mut seqs: Vec<(u64, u64, i64, i64)> = segs
            .iter()
            .filter(|s| s.lineage.as_deref() == id)
            .map(|s| (s.first_seq, s.last_seq, s.first_time_ms, s.last_time_ms))
            .collect();
        seqs.extend(
            snaps
                .iter()
                .filter(|s| s.lineage.as_deref() == id)
                .map(|s| (s.seq, s.seq, s.time_ms, s.time_ms)),
        );
        let n = seqs.len();
        let lo = seqs.iter().min_by_key(|s| s.0).map(|s| (s.0, s.2));
        let hi = seqs.iter().max_by_key(|s| s.1).map(|s| (s.1, s.3));
        match (lo, hi) {
            (Some(lo), Some(hi)) => (Some((lo.0, hi.0)), Some((lo.1, hi.1)), n),
            _ => (None, None, n),
        }
    };
    let mut rows = Vec::new();
    let (seqs, times, files) = files_of(None);
    if files > 0 {
        rows.push(LineageRow {
            id: LEGACY.into(),
            parent: None,
            fork_seq: None,
            cluster: None,
            created_by: None,
            seqs,
            times,
            files,
        });
    }
    for r in records {
        let (seqs, times, files) = files_of(Some(&r.id));
        rows.push(LineageRow {
            id: r.id.clone(),
            parent: r.parent.as_ref().map(|p| p.lineage.clone()),
            fork_seq: r.parent.as_ref().map(|p| p.fork_seq),
            cluster: Some(r.cluster_uid.clone()),
            created_by: Some(format!(
                "{} rewindd {} {}",
                r.created_by.host, r.created_by.version, r.created_by.data_dir
            )),
            seqs,
            times,
            files,
        });
    }
    rows
}
