//! `rewind list`: the snapshots in a store and the point-in-time window.

use std::io::Write;

use anyhow::Result;
use rewind_history::pit::verify::gaps;
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

/// Runs `rewind list`.
pub async fn run(a: &ListArgs, store: &StoreArgs) -> Result<()> {
    let src = store.open().await?;
    let snaps = src.store().list_snapshots().await?;
    let segs = src.store().list_segments().await?;
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
