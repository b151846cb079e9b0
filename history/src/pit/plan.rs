//! Which files a point needs, decided from the catalog alone: the lineage
//! and its ancestors ([`view`]), the base snapshots to try (newest eligible
//! first, [`bases`]) and, for a base, the chain of segments after it
//! ([`chain`]).
//!
//! Restore never splices two histories. A lineage's own files must form
//! one chain: each segment starts right after the previous one ends and
//! names its digest (`prev_sha256`); a lineage is entered from its parent
//! only at the fork point, and only through a snapshot of its own or a
//! segment that names the parent's segment ending there. Gaps, overlaps,
//! duplicates, links to no file, files of an unknown lineage or another
//! cluster, and two children of one fork point are errors that list the
//! files involved, never a trimmed or guessed chain.

use std::collections::{BTreeMap, BTreeSet};

use crate::source::Point;
use crate::store::lineage::{LEGACY, LineageRecord};
use crate::store::{SegmentEntry, SnapshotEntry};

use super::fold::Until;
use super::{PitError, Result};

/// The files one lineage's points may use: its own, and each ancestor's up
/// to the fork point its child left it at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct View {
    /// Lineages from the root to the chosen one; [`LEGACY`] stands for the
    /// entries without a lineage.
    pub path: Vec<String>,
    /// Snapshots in the view, by seq.
    pub snapshots: Vec<SnapshotEntry>,
    /// Segments in the view, by first seq.
    pub segments: Vec<SegmentEntry>,
    /// Where each lineage of the path (but the root) forked, with its first
    /// snapshot's seq (`None` before it has one), for errors.
    pub forks: Vec<ForkInfo>,
}

/// A fork on a view's path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForkInfo {
    /// The parent.
    pub parent: String,
    /// The parent's last seq the child continues from.
    pub fork_seq: u64,
    /// The child.
    pub child: String,
    /// The child's first snapshot's seq.
    pub first_snapshot: Option<u64>,
}

/// The lineage id an entry names, [`LEGACY`] for none.
fn lineage_of(l: Option<&String>) -> &str {
    l.map_or(LEGACY, String::as_str)
}

fn seg_name(s: &SegmentEntry) -> String {
    format!(
        "{} (lineage {})",
        s.catalog_key(),
        lineage_of(s.lineage.as_ref())
    )
}

fn snap_name(s: &SnapshotEntry) -> String {
    format!(
        "{} (lineage {})",
        s.catalog_key(),
        lineage_of(s.lineage.as_ref())
    )
}

fn lineage_err(reason: impl Into<String>, candidates: Vec<String>) -> PitError {
    PitError::Lineage {
        reason: reason.into(),
        candidates,
    }
}

/// Finds the lineage `query` names: its full id, or a prefix of at least 8
/// digits that only one lineage has.
pub fn find_lineage<'a>(lineages: &'a [LineageRecord], query: &str) -> Result<&'a LineageRecord> {
    let hits: Vec<&LineageRecord> = lineages
        .iter()
        .filter(|l| l.id == query || (query.len() >= 8 && l.id.starts_with(query)))
        .collect();
    match hits.as_slice() {
        [one] => Ok(one),
        [] => Err(lineage_err(
            format!("no lineage in the store matches {query:?} (see `rewind list`)"),
            lineages.iter().map(|l| l.id.clone()).collect(),
        )),
        many => Err(lineage_err(
            format!("{query:?} names more than one lineage"),
            many.iter().map(|l| l.id.clone()).collect(),
        )),
    }
}

/// Every problem of the store's lineages as a whole, one line each: files
/// of an unknown lineage, lineages of more than one cluster, two children
/// of one fork point, a parent that does not exist.
#[must_use]
pub fn store_problems(
    lineages: &[LineageRecord],
    snapshots: &[SnapshotEntry],
    segments: &[SegmentEntry],
) -> Vec<(String, Vec<String>)> {
    let known: BTreeSet<&str> = lineages.iter().map(|l| l.id.as_str()).collect();
    let mut out = Vec::new();
    let mut unknown = Vec::new();
    for s in segments {
        if let Some(l) = &s.lineage
            && !known.contains(l.as_str())
        {
            unknown.push(seg_name(s));
        }
    }
    for s in snapshots {
        if let Some(l) = &s.lineage
            && !known.contains(l.as_str())
        {
            unknown.push(snap_name(s));
        }
    }
    if !unknown.is_empty() {
        out.push((
            "files of a lineage with no record in lineages/ (written by another recorder or copied from another store)".into(),
            unknown,
        ));
    }
    // Histories of different clusters: a lineage is of its root's cluster
    // (a store adopted after a cluster was rebuilt continues the old tree
    // under the new uid); two trees whose roots record different clusters
    // share a prefix they must not.
    let root_of = |l: &LineageRecord| -> String {
        let mut at = l;
        let mut steps = 0;
        while let Some(p) = &at.parent
            && let Some(next) = lineages.iter().find(|r| r.id == p.lineage)
            && steps < lineages.len()
        {
            at = next;
            steps += 1;
        }
        at.cluster_uid.clone()
    };
    let clusters: BTreeMap<String, Vec<&str>> =
        lineages.iter().fold(BTreeMap::new(), |mut m, l| {
            m.entry(root_of(l))
                .or_insert_with(Vec::new)
                .push(l.id.as_str());
            m
        });
    if clusters.len() > 1 {
        out.push((
            "lineages of more than one cluster share this store".into(),
            clusters
                .iter()
                .map(|(c, ls)| format!("cluster {c}: lineages {}", ls.join(", ")))
                .collect(),
        ));
    }
    // A lineage with no file yet (a recorder stopped between writing the
    // record and its first file) never competes for a fork point.
    let has_files = |id: &str| {
        segments.iter().any(|s| s.lineage.as_deref() == Some(id))
            || snapshots.iter().any(|s| s.lineage.as_deref() == Some(id))
    };
    let mut children: BTreeMap<(&str, u64), Vec<&str>> = BTreeMap::new();
    for l in lineages {
        if let Some(p) = &l.parent {
            if has_files(&l.id) {
                children
                    .entry((p.lineage.as_str(), p.fork_seq))
                    .or_default()
                    .push(l.id.as_str());
            }
            if p.lineage != LEGACY && !known.contains(p.lineage.as_str()) {
                out.push((
                    format!("lineage {} names a parent with no record", l.id),
                    vec![p.lineage.clone()],
                ));
            }
        }
    }
    for ((parent, fork), kids) in children {
        if kids.len() > 1 {
            out.push((
                format!("two children fork lineage {parent} at seq {fork} (two recorders took over at once)"),
                kids.iter().map(|k| (*k).to_owned()).collect(),
            ));
        }
    }
    out
}

/// The files a point of `choice` (default: the lineage of the newest file)
/// may use. Errors on any problem of [`store_problems`] and on overlapping
/// files within the view.
pub fn view(
    lineages: &[LineageRecord],
    snapshots: &[SnapshotEntry],
    segments: &[SegmentEntry],
    choice: Option<&str>,
) -> Result<View> {
    if let Some((reason, candidates)) = store_problems(lineages, snapshots, segments)
        .into_iter()
        .next()
    {
        return Err(lineage_err(reason, candidates));
    }
    let leaf: String = match choice {
        Some(q) if q == LEGACY => LEGACY.into(),
        Some(q) => find_lineage(lineages, q)?.id.clone(),
        None => newest_lineage(snapshots, segments).to_owned(),
    };
    // Root first; each step's fork point bounds the parent's files.
    let mut path = vec![(leaf.clone(), None::<u64>)];
    let mut at = leaf.clone();
    while let Some(rec) = lineages.iter().find(|l| l.id == at) {
        let Some(p) = &rec.parent else { break };
        if path.iter().any(|(id, _)| *id == p.lineage) {
            return Err(lineage_err(
                "the lineages' parents form a loop",
                path.iter().map(|(id, _)| id.clone()).collect(),
            ));
        }
        path.push((p.lineage.clone(), Some(p.fork_seq)));
        at = p.lineage.clone();
    }
    path.reverse();
    let mut view = View::default();
    for (id, bound) in &path {
        let within = |seq: u64| bound.is_none_or(|b| seq <= b);
        view.snapshots.extend(
            snapshots
                .iter()
                .filter(|s| lineage_of(s.lineage.as_ref()) == id && within(s.seq))
                .cloned(),
        );
        view.segments.extend(
            segments
                .iter()
                .filter(|s| lineage_of(s.lineage.as_ref()) == id && within(s.last_seq))
                .cloned(),
        );
        view.path.push(id.clone());
    }
    for pair in path.windows(2) {
        if let [(parent, _), (child, _)] = pair
            && let Some(rec) = lineages.iter().find(|l| &l.id == child)
            && let Some(p) = &rec.parent
        {
            view.forks.push(ForkInfo {
                parent: parent.clone(),
                fork_seq: p.fork_seq,
                child: child.clone(),
                first_snapshot: snapshots
                    .iter()
                    .filter(|s| s.lineage.as_deref() == Some(child.as_str()))
                    .map(|s| s.seq)
                    .min(),
            });
        }
    }
    view.snapshots
        .sort_by(|a, b| (a.seq, &a.id).cmp(&(b.seq, &b.id)));
    view.segments
        .sort_by(|a, b| (a.first_seq, &a.id).cmp(&(b.first_seq, &b.id)));
    if let Some((reason, candidates)) = overlaps(&view.segments).into_iter().next() {
        return Err(lineage_err(reason, candidates));
    }
    Ok(view)
}

/// The lineage of the newest file: the history a plain point reads.
fn newest_lineage<'a>(snapshots: &'a [SnapshotEntry], segments: &'a [SegmentEntry]) -> &'a str {
    let seg = segments
        .iter()
        .max_by_key(|s| (s.last_seq, s.stored_at_ms))
        .map(|s| (s.last_seq, lineage_of(s.lineage.as_ref())));
    let snap = snapshots
        .iter()
        .max_by_key(|s| (s.seq, s.stored_at_ms))
        .map(|s| (s.seq, lineage_of(s.lineage.as_ref())));
    match (seg, snap) {
        (Some(a), Some(b)) => {
            if b.0 > a.0 {
                b.1
            } else {
                a.1
            }
        }
        (Some(a), None) => a.1,
        (None, Some(b)) => b.1,
        (None, None) => LEGACY,
    }
}

/// Segments (sorted by first seq) that claim the same sequence numbers:
/// duplicates and overlaps, each with the files involved.
#[must_use]
pub fn overlaps(segments: &[SegmentEntry]) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let mut prev: Option<&SegmentEntry> = None;
    for s in segments {
        if let Some(p) = prev
            && s.first_seq <= p.last_seq
        {
            let what = if (s.first_seq, s.last_seq) == (p.first_seq, p.last_seq) {
                "duplicate"
            } else {
                "overlap"
            };
            out.push((
                format!(
                    "{what}: two segments claim seqs {}..={}",
                    s.first_seq,
                    s.last_seq.min(p.last_seq)
                ),
                vec![seg_name(p), seg_name(s)],
            ));
        }
        if prev.is_none_or(|p| s.last_seq > p.last_seq) {
            prev = Some(s);
        }
    }
    out
}

/// Segments of the view whose `prev_sha256` names no segment ending right
/// before them, and links that name the wrong one.
#[must_use]
pub fn broken_links(segments: &[SegmentEntry]) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for s in segments {
        let Some(prev) = &s.prev_sha256 else { continue };
        match segments.iter().find(|p| &p.sha256 == prev) {
            None => {
                // Name the missing seqs: after the nearest segment before it.
                let from = segments
                    .iter()
                    .filter(|p| p.last_seq < s.first_seq)
                    .map(|p| p.last_seq.saturating_add(1))
                    .max()
                    .unwrap_or(1);
                let missing = if from < s.first_seq {
                    format!(
                        "gap: events {from}..={} are missing: ",
                        s.first_seq.saturating_sub(1)
                    )
                } else {
                    String::new()
                };
                out.push((
                    format!(
                        "{missing}segment {} names a previous segment (sha256 {prev}) that is not in the store",
                        s.first_seq
                    ),
                    vec![seg_name(s)],
                ));
            }
            Some(p) if p.last_seq.saturating_add(1) != s.first_seq => out.push((
                format!(
                    "segment {}..={} names a previous segment that ends at seq {}",
                    s.first_seq, s.last_seq, p.last_seq
                ),
                vec![seg_name(p), seg_name(s)],
            )),
            Some(_) => {}
        }
    }
    out
}

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    /// The empty state, before seq 1: the segments must start at seq 1.
    Empty,
    /// A snapshot consistent at `seq`, taken at `time_ms`.
    Snapshot {
        /// Its seq.
        seq: u64,
        /// Time of that seq, Unix ms.
        time_ms: i64,
        /// Its lineage (`None`: written before lineages).
        lineage: Option<String>,
    },
}

impl Base {
    fn seq(&self) -> u64 {
        match self {
            Self::Empty => 0,
            Self::Snapshot { seq, .. } => *seq,
        }
    }

    /// The base of a snapshot entry.
    #[must_use]
    pub fn of(s: &SnapshotEntry) -> Self {
        Self::Snapshot {
            seq: s.seq,
            time_ms: s.time_ms,
            lineage: s.lineage.clone(),
        }
    }
}

/// Whether `s` may follow `prev` (the previous segment of the chain, or
/// `None` right after `base`): the digest link when `s` names one, else
/// only the same lineage's snapshot (a lineage's first segment after its
/// start never continues another history's state).
fn links(
    s: &SegmentEntry,
    prev: Option<&SegmentEntry>,
    base: &Base,
    forks: &[ForkInfo],
) -> std::result::Result<(), String> {
    match (&s.prev_sha256, prev) {
        (Some(h), Some(p)) if *h == p.sha256 => Ok(()),
        (Some(h), Some(p)) => Err(format!(
            "segment {} names previous sha256 {h}, but the segment before it is {}",
            s.catalog_key(),
            p.catalog_key()
        )),
        // After a snapshot the previous segment is not in the chain; the
        // link is checked by `broken_links` over the whole view.
        (Some(_), None) => Ok(()),
        (None, _) if s.lineage.is_none() => Ok(()),
        (None, Some(p)) if p.lineage == s.lineage => Err(format!(
            "segment {} of lineage {} does not name the segment before it ({})",
            s.catalog_key(),
            lineage_of(s.lineage.as_ref()),
            p.catalog_key()
        )),
        (None, None) if matches!(base, Base::Snapshot { lineage, .. } if *lineage == s.lineage) => {
            Ok(())
        }
        // A root lineage starts from the empty state.
        (None, None)
            if *base == Base::Empty
                && !forks.iter().any(|f| Some(&f.child) == s.lineage.as_ref()) =>
        {
            Ok(())
        }
        (None, _) => Err(String::new()),
    }
}

/// The segments to fold after `base`, with the first seq to take from
/// each. `segments` are one [`View`]'s (no overlaps); `forks` its forks,
/// for errors. Errors, never a silently wrong state:
/// - the start of a lineage that does not continue the chain so far (a
///   child before its first snapshot, [`PitError::Fork`]), when the point
///   may lie beyond it; a segment whose digest link names another file
///   ([`PitError::Lineage`]);
/// - a gap in the seqs before the point ([`PitError::Gap`]); for a time,
///   also a gap right after the last event at or before it, since the
///   missing events may be at or before that time;
/// - a point before the first recorded event, from the empty base
///   ([`PitError::BeforeWindow`]);
/// - a seq after the newest recorded one ([`PitError::AfterWindow`]).
pub fn chain(
    segments: &[SegmentEntry],
    forks: &[ForkInfo],
    base: &Base,
    until: Until,
) -> Result<Vec<(SegmentEntry, u64)>> {
    let mut next = base.seq().saturating_add(1);
    // Time of the last event taken so far (the base's, for a snapshot).
    let mut reached_time = match base {
        Base::Empty => None,
        Base::Snapshot { time_ms, .. } => Some(*time_ms),
    };
    if *base == Base::Empty {
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
    let mut out: Vec<(SegmentEntry, u64)> = Vec::new();
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
        // A segment may start before `next` only when a snapshot inside its
        // range is the base; two segments never share a seq.
        if s.first_seq < next
            && let Some((p, _)) = out.last()
        {
            return Err(lineage_err(
                format!(
                    "overlap: two segments claim seqs {}..={}",
                    s.first_seq, p.last_seq
                ),
                vec![seg_name(p), seg_name(s)],
            ));
        }
        // Whether the point may lie at or after this segment.
        let matters = match (until.seq, until.time_ms) {
            (Some(u), _) => u >= next,
            (None, Some(t)) => reached_time.is_none_or(|r| r <= t),
            (None, None) => true,
        };
        if let Err(why) = links(s, out.last().map(|(p, _)| p), base, forks) {
            if !matters {
                break;
            }
            if !why.is_empty() {
                return Err(lineage_err(why, vec![seg_name(s)]));
            }
            return Err(fork_error(s, forks, next));
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

/// The error for a point past a lineage's start that the chain cannot
/// cross: the child's events after the fork need the child's first
/// snapshot as their base.
fn fork_error(s: &SegmentEntry, forks: &[ForkInfo], next: u64) -> PitError {
    let child = lineage_of(s.lineage.as_ref()).to_owned();
    match forks.iter().find(|f| f.child == child) {
        Some(f) => PitError::Fork {
            parent: f.parent.clone(),
            fork_seq: f.fork_seq,
            child,
            first_snapshot: f
                .first_snapshot
                .map_or_else(|| "none yet".into(), |s| format!("seq {s}")),
        },
        None => PitError::Fork {
            parent: "(none)".into(),
            fork_seq: next.saturating_sub(1),
            child,
            first_snapshot: "none before this point".into(),
        },
    }
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
            lineage: None,
            prev_sha256: None,
        }
    }

    #[test]
    fn chain_refuses_overlaps_and_finds_gaps() {
        let segs = [seg(1, 10), seg(5, 20), seg(21, 30), seg(35, 40)];
        let err = chain(&segs, &[], &Base::Empty, Until::default().with_seq(25)).unwrap_err();
        assert!(
            matches!(&err, PitError::Lineage { candidates, .. } if candidates.len() == 2),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("overlap: two segments claim seqs 5..=10"),
            "{err}"
        );
        let segs = [seg(1, 10), seg(11, 20), seg(21, 30), seg(35, 40)];
        // A snapshot inside a segment's range: the rest of it is taken.
        let c = chain(
            &segs,
            &[],
            &Base::Snapshot {
                seq: 12,
                time_ms: 120,
                lineage: None,
            },
            Until::default().with_seq(30),
        )
        .unwrap();
        let got: Vec<_> = c.iter().map(|(s, f)| (s.first_seq, *f)).collect();
        assert_eq!(got, vec![(11, 13), (21, 21)]);
        assert!(matches!(
            chain(&segs, &[], &Base::Empty, Until::default()),
            Err(PitError::Gap { from: 31, to: 34 })
        ));
        assert!(matches!(
            chain(&segs, &[], &Base::Empty, Until::default().with_seq(36)),
            Err(PitError::Gap { from: 31, to: 34 })
        ));
        assert!(matches!(
            chain(&segs[..3], &[], &Base::Empty, Until::default().with_seq(31)),
            Err(PitError::AfterWindow {
                requested: 31,
                newest: 30
            })
        ));
        assert!(matches!(
            chain(&segs[1..], &[], &Base::Empty, Until::default().with_seq(3)),
            Err(PitError::Gap { from: 1, to: 10 })
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
            chain(&segs, &[], &Base::Empty, until(5)),
            Err(PitError::BeforeWindow { .. })
        ));
        let err = chain(&segs, &[], &Base::Empty, Until::default().with_seq(0)).unwrap_err();
        assert!(
            err.to_string()
                .contains("seq 1 at 1970-01-01T00:00:00.01Z (ms:10)"),
            "{err}"
        );
        // At the first event's time the state holds that event.
        assert_eq!(chain(&segs, &[], &Base::Empty, until(10)).unwrap().len(), 1);
        // From a snapshot the window starts at the snapshot.
        assert!(
            chain(
                &segs,
                &[],
                &Base::Snapshot {
                    seq: 10,
                    time_ms: 100,
                    lineage: None,
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
            chain(&segs, &[], &Base::Empty, until(150)),
            Err(PitError::Gap { from: 11, to: 20 })
        ));
        assert!(matches!(
            chain(&segs, &[], &Base::Empty, until(100)),
            Err(PitError::Gap { from: 11, to: 20 })
        ));
        let c = chain(&segs, &[], &Base::Empty, until(50)).unwrap();
        assert_eq!(c.len(), 1);
        assert!(matches!(
            chain(
                &segs,
                &[],
                &Base::Snapshot {
                    seq: 10,
                    time_ms: 100,
                    lineage: None,
                },
                until(150)
            ),
            Err(PitError::Gap { from: 11, to: 20 })
        ));
    }

    use crate::store::lineage::{CreatedBy, ForkPoint, LINEAGE_VERSION};

    const P: &str = "11111111111111111111111111111111";
    const C: &str = "22222222222222222222222222222222";
    const D: &str = "33333333333333333333333333333333";

    fn rec(id: &str, parent: Option<(&str, u64)>, cluster: &str) -> LineageRecord {
        LineageRecord {
            version: LINEAGE_VERSION,
            id: id.into(),
            parent: parent.map(|(l, f)| ForkPoint {
                lineage: l.into(),
                fork_seq: f,
            }),
            cluster_uid: cluster.into(),
            created_by: CreatedBy::default(),
            created_at_ms: 0,
            first_seq: parent.map_or(1, |(_, f)| f + 1),
        }
    }

    /// A segment of `lineage`, hashed by its range and lineage, linked to
    /// `prev` when given.
    fn lseg(lineage: &str, first: u64, last: u64, prev: Option<&SegmentEntry>) -> SegmentEntry {
        let mut s = seg(first, last);
        s.lineage = Some(lineage.into());
        s.sha256 = format!("{lineage}-{first}-{last}");
        s.id = crate::store::layout::segment_id(first, last, &s.sha256);
        s.prev_sha256 = prev.map(|p| p.sha256.clone());
        s
    }

    fn lsnap(lineage: &str, seq: u64) -> SnapshotEntry {
        SnapshotEntry {
            version: 1,
            id: crate::store::layout::snapshot_id(seq, &format!("{lineage}-{seq}")),
            seq,
            time_ms: i64::try_from(seq).unwrap() * 10,
            objects: 1,
            size: 1,
            sha256: format!("{lineage}-{seq}"),
            label: None,
            encrypted: false,
            stored_at_ms: 0,
            resource_set: None,
            lineage: Some(lineage.into()),
        }
    }

    /// Parent P: 1..=10, 11..=20 and a snapshot at 10. Child C forked at
    /// 20 (the journal was wiped): 21..=25 (no link: a new start),
    /// 26..=30, and its first snapshot at 25.
    fn store() -> (Vec<LineageRecord>, Vec<SnapshotEntry>, Vec<SegmentEntry>) {
        let p1 = lseg(P, 1, 10, None);
        let p2 = lseg(P, 11, 20, Some(&p1));
        let c1 = lseg(C, 21, 25, None);
        let c2 = lseg(C, 26, 30, Some(&c1));
        (
            vec![rec(P, None, "uid"), rec(C, Some((P, 20)), "uid")],
            vec![lsnap(P, 10), lsnap(C, 25)],
            vec![p1, p2, c1, c2],
        )
    }

    fn plan_at(
        l: &[LineageRecord],
        snaps: &[SnapshotEntry],
        segs: &[SegmentEntry],
        choice: Option<&str>,
        until: Until,
    ) -> Result<(Option<u64>, Vec<u64>)> {
        let v = view(l, snaps, segs, choice)?;
        let (bases, until) = bases(&v.snapshots, &point_of(until))?;
        // The newest eligible base, as a reader whose files all decode.
        let b = bases.first().copied();
        let base = b.map_or(Base::Empty, Base::of);
        chain(&v.segments, &v.forks, &base, until).map(|c| {
            (
                b.map(|b| b.seq),
                c.iter().map(|(s, _)| s.first_seq).collect(),
            )
        })
    }

    fn point_of(until: Until) -> Point {
        match (until.seq, until.time_ms) {
            (Some(s), _) => Point::Seq(s),
            (None, Some(t)) => Point::Time(t),
            (None, None) => Point::Latest,
        }
    }

    #[test]
    fn a_child_is_read_from_its_own_snapshot_and_the_parent_up_to_the_fork() {
        let (l, snaps, segs) = store();
        let v = view(&l, &snaps, &segs, None).unwrap();
        assert_eq!(v.path, vec![P.to_owned(), C.to_owned()]);
        // In the parent, before the fork: the parent's files.
        assert_eq!(
            plan_at(&l, &snaps, &segs, None, Until::default().with_seq(15)).unwrap(),
            (Some(10), vec![11])
        );
        // In the child after its first snapshot: that snapshot, never the
        // parent's state.
        assert_eq!(
            plan_at(&l, &snaps, &segs, None, Until::default().with_seq(28)).unwrap(),
            (Some(25), vec![26])
        );
        assert_eq!(
            plan_at(&l, &snaps, &segs, None, Until::default()).unwrap(),
            (Some(25), vec![26])
        );
    }

    #[test]
    fn a_point_between_the_fork_and_the_childs_first_snapshot_is_refused() {
        let (l, snaps, segs) = store();
        for until in [
            Until::default().with_seq(22),
            Until {
                seq: None,
                time_ms: Some(220),
            },
        ] {
            let err = plan_at(&l, &snaps, &segs, None, until).unwrap_err();
            assert!(
                matches!(&err, PitError::Fork { parent, fork_seq: 20, child, first_snapshot }
                    if parent == P && child == C && first_snapshot == "seq 25"),
                "{err}"
            );
        }
        // The parent's own later files (it went on after the fork: two
        // recorders) are never part of the child's view.
        let (l, snaps, mut segs) = store();
        let p2 = segs.get(1).unwrap().clone();
        segs.push(lseg(P, 21, 22, Some(&p2)));
        segs.sort_by_key(|s| s.first_seq);
        let v = view(&l, &snaps, &segs, Some(C)).unwrap();
        assert!(
            v.segments
                .iter()
                .all(|s| s.lineage.as_deref() != Some(P) || s.last_seq <= 20)
        );
        // Read in the parent, they are its history.
        assert_eq!(
            plan_at(&l, &snaps, &segs, Some(P), Until::default()).unwrap(),
            (Some(10), vec![11, 21])
        );
    }

    #[test]
    fn a_child_that_names_the_parents_last_segment_continues_it() {
        let (mut l, snaps, mut segs) = store();
        let p2 = segs.get(1).unwrap().clone();
        segs.push(lseg(D, 21, 24, Some(&p2)));
        l.push(rec(D, Some((P, 20)), "uid"));
        // Two children of one fork point.
        let err = view(&l, &snaps, &segs, None).unwrap_err();
        assert!(
            err.to_string().contains("two children fork lineage"),
            "{err}"
        );
        assert!(
            err.to_string().contains(C) && err.to_string().contains(D),
            "{err}"
        );
        // Without the other child, D continues P with no snapshot.
        l.retain(|r| r.id != C);
        segs.retain(|s| s.lineage.as_deref() != Some(C));
        let snaps: Vec<_> = snaps
            .into_iter()
            .filter(|s| s.lineage.as_deref() != Some(C))
            .collect();
        assert_eq!(
            plan_at(&l, &snaps, &segs, None, Until::default().with_seq(23)).unwrap(),
            (Some(10), vec![11, 21])
        );
    }

    #[test]
    fn foreign_unknown_duplicate_and_unlinked_files_are_named() {
        // A file of a lineage with no record.
        let (l, snaps, mut segs) = store();
        segs.push(lseg(D, 31, 31, None));
        let err = view(&l, &snaps, &segs, None).unwrap_err();
        assert!(err.to_string().contains("no record in lineages/"), "{err}");
        assert!(err.to_string().contains(D), "{err}");
        // A lineage of another cluster.
        let (mut l, snaps, segs) = store();
        l.push(rec(D, None, "other-uid"));
        let err = view(&l, &snaps, &segs, None).unwrap_err();
        assert!(err.to_string().contains("cluster other-uid"), "{err}");
        // A child of another cluster's tree (a store adopted after a
        // rebuild) is one history.
        let (mut l, snaps, segs) = store();
        if let Some(c) = l.iter_mut().find(|r| r.id == C) {
            c.cluster_uid = "rebuilt-uid".into();
        }
        assert!(view(&l, &snaps, &segs, None).is_ok());
        // The same range twice in one lineage.
        let (l, snaps, mut segs) = store();
        let mut dup = segs.get(3).unwrap().clone();
        dup.sha256 = "other".into();
        dup.id = crate::store::layout::segment_id(26, 30, "other");
        segs.push(dup.clone());
        segs.sort_by_key(|s| s.first_seq);
        let err = view(&l, &snaps, &segs, None).unwrap_err();
        assert!(
            err.to_string()
                .contains("duplicate: two segments claim seqs 26..=30"),
            "{err}"
        );
        assert!(err.to_string().contains(&dup.catalog_key()), "{err}");
        // A link to no file.
        let (l, snaps, mut segs) = store();
        if let Some(s) = segs.get_mut(3) {
            s.prev_sha256 = Some("missing".into());
        }
        let v = view(&l, &snaps, &segs, None).unwrap();
        let broken = broken_links(&v.segments);
        assert_eq!(broken.len(), 1, "{broken:?}");
        assert!(broken[0].0.contains("not in the store"), "{broken:?}");
        // A link to the wrong file, inside a chain.
        let (l, _, mut segs) = store();
        if let Some(s) = segs.get_mut(1) {
            s.prev_sha256 = Some("wrong".into());
        }
        let err = plan_at(&l, &[], &segs, Some(P), Until::default().with_seq(15)).unwrap_err();
        assert!(
            err.to_string().contains("names previous sha256 wrong"),
            "{err}"
        );
    }

    #[test]
    fn a_lineage_is_chosen_by_id_or_prefix() {
        let (l, _, _) = store();
        assert_eq!(find_lineage(&l, &C[..8]).unwrap().id, C);
        assert!(find_lineage(&l, "2222").is_err());
        assert!(find_lineage(&l, "44444444").is_err());
    }

    proptest::proptest! {
        /// Any order of a lineage's files in the catalog and any point: a
        /// plan either fails or uses one whole chain of one history, every
        /// segment linked to the one before it, and never a parent's
        /// segment after the fork.
        #[test]
        fn plans_never_splice(seq in 0u64..40, drop in proptest::option::of(0usize..4)) {
            let (l, snaps, mut segs) = store();
            if let Some(i) = drop && i < segs.len() {
                segs.remove(i);
            }
            if let Ok((base, firsts)) = plan_at(&l, &snaps, &segs, None, Until::default().with_seq(seq)) {
                let mut next = base.map_or(1, |b| b + 1);
                let mut prev: Option<&SegmentEntry> = None;
                for f in firsts {
                    let s = segs.iter().find(|s| s.first_seq == f).unwrap();
                    proptest::prop_assert!(s.first_seq <= next && s.last_seq >= next);
                    if let Some(p) = prev {
                        proptest::prop_assert_eq!(s.prev_sha256.as_ref(), Some(&p.sha256));
                    }
                    if base.is_some_and(|b| b > 20) || seq > 20 {
                        proptest::prop_assert!(s.lineage.as_deref() == Some(C));
                    }
                    next = s.last_seq + 1;
                    prev = Some(s);
                }
                proptest::prop_assert!(seq < next);
                proptest::prop_assert!(!(21..25).contains(&seq));
            }
        }
    }
}
