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

/// Where the fold starts: after a snapshot, or from the empty state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base {
    /// The empty state, before seq 1: the segments must start at seq 1.
    Empty,
    /// A snapshot consistent at `seq`, taken at `time_ms`.
    Snapshot {
        /// Its seq.
        seq: u64,
        /// Time of that seq, Unix ms.
        time_ms: i64,
    },
}

impl Base {
    fn seq(self) -> u64 {
        match self {
            Self::Empty => 0,
            Self::Snapshot { seq, .. } => seq,
        }
    }
}

/// The segments to fold after `base`, with the first seq to take from
/// each. Overlaps are trimmed. Errors, never a silently wrong state:
/// - a gap in the seqs before the point ([`PitError::Gap`]); for a time,
///   also a gap right after the last event at or before it, since the
///   missing events may be at or before that time;
/// - a point before the first recorded event, from the empty base
///   ([`PitError::BeforeWindow`]);
/// - a seq after the newest recorded one ([`PitError::AfterWindow`]).
pub fn chain(
    segments: &[SegmentEntry],
    base: Base,
    until: Until,
) -> Result<Vec<(SegmentEntry, u64)>> {
    let mut next = base.seq().saturating_add(1);
    // Time of the last event taken so far (the base's, for a snapshot).
    let mut reached_time = match base {
        Base::Empty => None,
        Base::Snapshot { time_ms, .. } => Some(time_ms),
    };
    if base == Base::Empty {
        if until.seq == Some(0) {
            return Err(PitError::BeforeWindow {
                point: "seq 0".into(),
                oldest: first_event(segments),
            });
        }
        let first = segments.iter().find(|s| s.last_seq >= 1);
        if let (Some(t), Some(first)) = (until.time_ms, first)
            && first.first_seq == 1
            && first.first_time_ms > t
        {
            return Err(PitError::BeforeWindow {
                point: format!("time {}", when(t)),
                oldest: first_event(segments),
            });
        }
    }
    let mut out = Vec::new();
    for s in segments {
        if s.last_seq < next {
            continue; // entirely in the base or in earlier segments
        }
        if s.first_seq > next {
            // Nothing past a gap can be applied. It matters when the point
            // may lie beyond it: a seq past its start, the newest state, or
            // a time at or after the last event before it (the missing
            // events have unknown times from then on).
            let matters = match (until.seq, until.time_ms) {
                (Some(u), _) => u >= next,
                (None, Some(t)) => reached_time.is_none_or(|r| r <= t),
                (None, None) => true,
            };
            if matters {
                return Err(PitError::Gap {
                    from: next,
                    to: s.first_seq.saturating_sub(1),
                });
            }
            break;
        }
        if until.seq.is_some_and(|u| next > u) || until.time_ms.is_some_and(|t| s.first_time_ms > t)
        {
            break;
        }
        out.push((s.clone(), next));
        next = s.last_seq.saturating_add(1);
        reached_time = Some(s.last_time_ms);
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

/// A time for an error: RFC 3339 and the Unix milliseconds `ms:` takes.
fn when(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map_or_else(|_| format!("ms:{ms}"), |t| format!("{t} (ms:{ms})"))
}

/// The first recorded event, `seq N at T ms`, for errors: the first
/// segment when the segments start at seq 1.
fn first_event(segments: &[SegmentEntry]) -> String {
    segments.iter().find(|s| s.first_seq == 1).map_or_else(
        || "none reachable from seq 1".into(),
        |s| format!("seq 1 at {}", when(s.first_time_ms)),
    )
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
            resource_set: None,
        }
    }

    #[test]
    fn chain_trims_overlaps_and_finds_gaps() {
        let segs = [seg(1, 10), seg(5, 20), seg(21, 30), seg(35, 40)];
        let c = chain(&segs, Base::Empty, Until::default().with_seq(25)).unwrap();
        let got: Vec<_> = c.iter().map(|(s, f)| (s.first_seq, *f)).collect();
        assert_eq!(got, vec![(1, 1), (5, 11), (21, 21)]);
        let c = chain(
            &segs,
            Base::Snapshot {
                seq: 12,
                time_ms: 120,
            },
            Until::default().with_seq(30),
        )
        .unwrap();
        let got: Vec<_> = c.iter().map(|(s, f)| (s.first_seq, *f)).collect();
        assert_eq!(got, vec![(5, 13), (21, 21)]);
        assert!(matches!(
            chain(&segs, Base::Empty, Until::default()),
            Err(PitError::Gap { from: 31, to: 34 })
        ));
        assert!(matches!(
            chain(&segs, Base::Empty, Until::default().with_seq(36)),
            Err(PitError::Gap { from: 31, to: 34 })
        ));
        assert!(matches!(
            chain(&segs[..3], Base::Empty, Until::default().with_seq(31)),
            Err(PitError::AfterWindow {
                requested: 31,
                newest: 30
            })
        ));
        assert!(matches!(
            chain(&segs[1..], Base::Empty, Until::default().with_seq(3)),
            Err(PitError::Gap { from: 1, to: 4 })
        ));
    }

    /// A time before the first recorded event has no recorded state: an
    /// error naming the window, never the empty state.
    #[test]
    fn a_point_before_the_window_is_an_error() {
        let segs = [seg(1, 10), seg(11, 20)];
        let until = |t| Until {
            seq: None,
            time_ms: Some(t),
        };
        assert!(matches!(
            chain(&segs, Base::Empty, until(5)),
            Err(PitError::BeforeWindow { .. })
        ));
        let err = chain(&segs, Base::Empty, Until::default().with_seq(0)).unwrap_err();
        assert!(
            err.to_string()
                .contains("seq 1 at 1970-01-01T00:00:00.01Z (ms:10)"),
            "{err}"
        );
        // At the first event's time the state holds that event.
        assert_eq!(chain(&segs, Base::Empty, until(10)).unwrap().len(), 1);
        // From a snapshot the window starts at the snapshot.
        assert!(
            chain(
                &segs,
                Base::Snapshot {
                    seq: 10,
                    time_ms: 100
                },
                until(150)
            )
            .is_ok()
        );
    }

    /// A time inside a gap (after the last event before the gap, before
    /// the first after it) is an error: the missing events may be at or
    /// before it. Before the gap's last known event it is fine.
    #[test]
    fn a_time_inside_a_gap_is_an_error() {
        // seg(1, 10): times 10..=100; seg(21, 30): times 210..=300.
        let segs = [seg(1, 10), seg(21, 30)];
        let until = |t| Until {
            seq: None,
            time_ms: Some(t),
        };
        assert!(matches!(
            chain(&segs, Base::Empty, until(150)),
            Err(PitError::Gap { from: 11, to: 20 })
        ));
        assert!(matches!(
            chain(&segs, Base::Empty, until(100)),
            Err(PitError::Gap { from: 11, to: 20 })
        ));
        let c = chain(&segs, Base::Empty, until(50)).unwrap();
        assert_eq!(c.len(), 1);
        assert!(matches!(
            chain(
                &segs,
                Base::Snapshot {
                    seq: 10,
                    time_ms: 100
                },
                until(150)
            ),
            Err(PitError::Gap { from: 11, to: 20 })
        ));
    }
}
