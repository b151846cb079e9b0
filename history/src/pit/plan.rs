//! Which files a point needs, decided from the catalog alone: the base
//! snapshots to try (newest eligible first) and, for a base, the chain of
//! segments after it.

use crate::source::Point;
use crate::store::{SegmentEntry, SnapshotEntry};

use super::fold::Until;
use super::{PitError, Result};

/// The snapshots that may serve as the base for `point`, best first, and
/// where the fold stops.
pub fn bases<'a>(
    snapshots: &'a [SnapshotEntry],
    point: &Point,
) -> Result<(Vec<&'a SnapshotEntry>, Until)> {
    let newest_first = |pred: &dyn Fn(&SnapshotEntry) -> bool| -> Vec<&'a SnapshotEntry> {
        snapshots.iter().rev().filter(|s| pred(s)).collect()
    };
    Ok(match point {
        Point::Latest => (newest_first(&|_| true), Until::default()),
        Point::Seq(seq) => (
            newest_first(&|s| s.seq <= *seq),
            Until {
                seq: Some(*seq),
                time_ms: None,
            },
        ),
        Point::Time(t) => (
            newest_first(&|s| s.time_ms <= *t),
            Until {
                seq: None,
                time_ms: Some(*t),
            },
        ),
        Point::Snapshot(q) => {
            let named = snapshots
                .iter()
                .rev()
                .find(|s| s.matches(q) || s.label.as_deref() == Some(q.as_str()))
                .ok_or_else(|| PitError::UnknownSnapshot(q.clone()))?;
            // The named snapshot first; should it be damaged, an older one
            // plus segments up to its seq gives the same state.
            let mut v = vec![named];
            v.extend(
                snapshots
                    .iter()
                    .rev()
                    .filter(|s| s.seq < named.seq || (s.seq == named.seq && s.id != named.id)),
            );
            (
                v,
                Until {
                    seq: Some(named.seq),
                    time_ms: None,
                },
            )
        }
    })
}

/// The segments to fold after a base at `base_seq` (0: from empty), with
/// the first seq to take from each. Overlaps are trimmed; a gap before the
/// point is an error.
pub fn chain(
    segments: &[SegmentEntry],
    base_seq: u64,
    until: Until,
) -> Result<Vec<(SegmentEntry, u64)>> {
    let mut next = base_seq.saturating_add(1);
    let mut out = Vec::new();
    for s in segments {
        if s.last_seq < next {
            continue; // entirely in the base or in earlier segments
        }
        if until.seq.is_some_and(|u| next > u) || until.time_ms.is_some_and(|t| s.first_time_ms > t)
        {
            break;
        }
        if s.first_seq > next {
            // Nothing past a gap can be applied. It only matters when the
            // point lies beyond it.
            if until.seq.is_none_or(|u| u >= next) {
                return Err(PitError::Gap {
                    from: next,
                    to: s.first_seq.saturating_sub(1),
                });
            }
            break;
        }
        out.push((s.clone(), next));
        next = s.last_seq.saturating_add(1);
    }
    if let Some(u) = until.seq {
        let reached = next.saturating_sub(1);
        if reached < u {
            return Err(PitError::AfterWindow {
                requested: u,
                newest: reached,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(first: u64, last: u64) -> SegmentEntry {
        SegmentEntry {
            version: 1,
            id: format!("{first}-{last}"),
            first_seq: first,
            last_seq: last,
            first_time_ms: i64::try_from(first).unwrap() * 10,
            last_time_ms: i64::try_from(last).unwrap() * 10,
            events: last - first + 1,
            size: 1,
            sha256: "00".into(),
            encrypted: false,
            stored_at_ms: 0,
        }
    }

    #[test]
    fn chain_trims_overlaps_and_finds_gaps() {
        let segs = [seg(1, 10), seg(5, 20), seg(21, 30), seg(35, 40)];
        let c = chain(&segs, 0, Until::default().with_seq(25)).unwrap();
        let got: Vec<_> = c.iter().map(|(s, f)| (s.first_seq, *f)).collect();
        assert_eq!(got, vec![(1, 1), (5, 11), (21, 21)]);
        let c = chain(&segs, 12, Until::default().with_seq(30)).unwrap();
        let got: Vec<_> = c.iter().map(|(s, f)| (s.first_seq, *f)).collect();
        assert_eq!(got, vec![(5, 13), (21, 21)]);
        assert!(matches!(
            chain(&segs, 0, Until::default()),
            Err(PitError::Gap { from: 31, to: 34 })
        ));
        assert!(matches!(
            chain(&segs, 0, Until::default().with_seq(36)),
            Err(PitError::Gap { from: 31, to: 34 })
        ));
        assert!(matches!(
            chain(&segs[..3], 0, Until::default().with_seq(31)),
            Err(PitError::AfterWindow {
                requested: 31,
                newest: 30
            })
        ));
        assert!(matches!(
            chain(&segs[1..], 0, Until::default().with_seq(3)),
            Err(PitError::Gap { from: 1, to: 4 })
        ));
    }
}
