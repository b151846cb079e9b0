//! The parallel fold: a snapshot's blocks and the segments' blocks decode on
//! every core, and each worker reduces its contiguous run of events to one
//! change per object (newest first, borrowing from the decompressed blocks:
//! see [`super::reduce`]), so the final merge touches each object a few
//! times instead of once per event.
//!
//! The reduction applies `rewind_format`'s transition, as `State::apply`
//! does one event at a time (the model tests check the two agree).

use std::collections::BTreeMap;

use rewind_format::segment::SegmentScanner;
use rewind_format::{Limits, ObjectKey, SnapshotReader, State, StateObject};

use super::reduce::Reduced;
use super::{PitError, Result};

/// Where a fold stops: after `seq`, or before the first event observed
/// after `time_ms`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Until {
    /// Last sequence number to apply.
    pub seq: Option<u64>,
    /// Stop at the first event observed after this time (Unix ms).
    pub time_ms: Option<i64>,
}

impl Until {
    /// This stop point, ending after `seq`.
    #[must_use]
    pub fn with_seq(mut self, seq: u64) -> Self {
        self.seq = Some(seq);
        self
    }
}

/// One segment to fold: its plain bytes, and the first seq to take from it
/// (earlier events are in the base or in an overlapping earlier segment).
#[derive(Debug, Clone, Copy)]
pub struct SegmentInput<'a> {
    /// Store key, for error messages.
    pub name: &'a str,
    /// Decrypted bytes.
    pub plain: &'a [u8],
    /// Events below this seq are skipped.
    pub from_seq: u64,
}

/// Number of workers: the machine's parallelism.
fn workers() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// Splits `weights` into at most `n` contiguous ranges of similar weight.
fn split(weights: &[u64], n: usize) -> Vec<std::ops::Range<usize>> {
    let total: u64 = weights.iter().sum();
    let n = n.max(1);
    let target = total.div_ceil(u64::try_from(n).unwrap_or(1)).max(1);
    let mut out = Vec::new();
    let (mut start, mut acc) = (0, 0u64);
    for (i, w) in weights.iter().enumerate() {
        acc += w;
        if acc >= target && out.len() + 1 < n {
            out.push(start..i + 1);
            start = i + 1;
            acc = 0;
        }
    }
    if start < weights.len() {
        out.push(start..weights.len());
    }
    out
}

fn join<T>(h: std::thread::ScopedJoinHandle<'_, Result<T>>) -> Result<T> {
    h.join().map_err(|_| PitError::Worker)?
}

/// Decodes a whole snapshot (plain bytes) into a state, its blocks spread
/// over every core.
pub fn decode_snapshot(plain: &[u8], name: &str, limits: Limits) -> Result<State> {
    let fmt = |source| PitError::Format {
        file: name.to_owned(),
        source,
    };
    let reader = SnapshotReader::open(plain, Some(name), limits).map_err(fmt)?;
    let header = reader.header().clone();
    let weights: Vec<u64> = reader
        .index()
        .blocks
        .iter()
        .map(|b| u64::from(b.count))
        .collect();
    let ranges = split(&weights, workers());
    let parts = std::thread::scope(|s| {
        let handles: Vec<_> = ranges
            .into_iter()
            .map(|range| {
                let header = &header;
                s.spawn(move || -> Result<Vec<(ObjectKey, StateObject)>> {
                    let mut r = SnapshotReader::open(plain, Some(name), limits).map_err(fmt)?;
                    let mut out = Vec::new();
                    for i in range {
                        let t = r
                            .index()
                            .blocks
                            .get(i)
                            .and_then(|b| usize::try_from(b.type_index).ok())
                            .and_then(|t| header.types.get(t))
                            .map(|t| (t.rtype.group.clone(), t.rtype.resource.clone()));
                        let objects = r.read_block(i).map_err(fmt)?;
                        let Some((group, resource)) = t else {
                            continue;
                        };
                        out.extend(objects.into_iter().map(|o| {
                            (
                                ObjectKey {
                                    group: group.clone(),
                                    resource: resource.clone(),
                                    namespace: o.namespace,
                                    name: o.name,
                                },
                                StateObject {
                                    uid: o.uid,
                                    resource_version: o.resource_version,
                                    object: o.object,
                                },
                            )
                        }));
                    }
                    Ok(out)
                })
            })
            .collect();
        handles.into_iter().map(join).collect::<Result<Vec<_>>>()
    })?;
    // Blocks are in key order and the parts are contiguous runs of them, so
    // the concatenation is sorted and the map is built in one pass.
    let objects: BTreeMap<ObjectKey, StateObject> = parts.into_iter().flatten().collect();
    Ok(State {
        cluster_id: header.cluster_id.clone(),
        seq: header.seq,
        time_ms: header.time_ms,
        types: header
            .types
            .iter()
            .map(|t| ((t.rtype.group.clone(), t.rtype.resource.clone()), t.clone()))
            .collect(),
        objects,
    })
}

/// One block to fold.
#[derive(Debug, Clone, Copy)]
struct Unit {
    /// Index into the segments.
    segment: usize,
    /// Block number in that segment.
    block: usize,
    /// First seq to take from it (earlier ones are in the base or an
    /// overlapping earlier segment).
    from: u64,
    /// Seq of its first event.
    first: u64,
    /// Its event count: the work it weighs.
    count: u64,
}

/// Folds `segments` (in chain order) onto `state`, up to `until`, decoding
/// their blocks on every core. Returns the number of events applied.
///
/// The blocks to read come from the segment indexes alone (nothing past the
/// point is decompressed, except the one block a time limit ends in). They
/// are split into one contiguous run per core; each run is reduced newest
/// first (see [`super::reduce`]) and the runs merge in log order.
pub fn fold_segments(
    state: &mut State,
    segments: &[SegmentInput<'_>],
    until: Until,
    limits: Limits,
) -> Result<u64> {
    fold_segments_on(state, segments, until, limits, workers())
}

/// [`fold_segments`] with `threads` workers.
pub(super) fn fold_segments_on(
    state: &mut State,
    segments: &[SegmentInput<'_>],
    until: Until,
    limits: Limits,
    threads: usize,
) -> Result<u64> {
    let base_seq = state.seq;
    let mut units = Vec::new();
    for (si, seg) in segments.iter().enumerate() {
        let s = SegmentScanner::open(seg.plain, Some(seg.name), limits)
            .map_err(|source| fmt_err(seg.name, source))?;
        let from = seg.from_seq.max(base_seq.saturating_add(1));
        for (bi, b) in s.blocks().iter().enumerate() {
            if b.last_seq < from {
                continue;
            }
            if until.seq.is_some_and(|s| b.first_seq > s) {
                break;
            }
            units.push(Unit {
                segment: si,
                block: bi,
                from,
                first: b.first_seq,
                count: u64::from(b.count),
            });
        }
    }
    let last = last_seq(segments, &units, until, limits)?;
    // Nothing after the point is read.
    units.retain(|u| u.first <= last);
    let weights: Vec<u64> = units.iter().map(|u| u.count).collect();
    let ranges = split(&weights, threads);
    let reduced = std::thread::scope(|s| {
        let handles: Vec<_> = ranges
            .into_iter()
            .map(|range| {
                let units = units.get(range).unwrap_or_default();
                s.spawn(move || reduce(segments, units, last, limits))
            })
            .collect();
        handles.into_iter().map(join).collect::<Result<Vec<_>>>()
    })?;
    let mut applied = 0;
    for r in reduced {
        applied += r.events;
        r.apply_to(state);
    }
    Ok(applied)
}

fn fmt_err(name: &str, source: rewind_format::FormatError) -> PitError {
    PitError::Format {
        file: name.to_owned(),
        source,
    }
}

/// The last seq to take. A time limit stops the one-by-one fold at the
/// first event (in log order) observed after it, even when later events
/// carry earlier times, so its block is found from the index and read.
fn last_seq(
    segments: &[SegmentInput<'_>],
    units: &[Unit],
    until: Until,
    limits: Limits,
) -> Result<u64> {
    let by_seq = until.seq.unwrap_or(u64::MAX);
    let Some(t) = until.time_ms else {
        return Ok(by_seq);
    };
    let mut open: Option<(usize, SegmentScanner<'_>)> = None;
    for u in units {
        let Some(seg) = segments.get(u.segment) else {
            continue;
        };
        if open.as_ref().is_none_or(|(i, _)| *i != u.segment) {
            let s = SegmentScanner::open(seg.plain, Some(seg.name), limits)
                .map_err(|e| fmt_err(seg.name, e))?;
            open = Some((u.segment, s));
        }
        let Some((_, s)) = open.as_mut() else {
            continue;
        };
        if s.blocks().get(u.block).is_none_or(|b| b.max_time_ms <= t) {
            continue;
        }
        let stop = s
            .scan_block(u.block, |views| {
                views
                    .iter()
                    .find(|v| v.seq >= u.from && v.seq <= by_seq && v.observed_at_ms > t)
                    .map(|v| v.seq)
            })
            .map_err(|e| fmt_err(seg.name, e))?;
        if let Some(stop) = stop {
            return Ok(stop.saturating_sub(1).min(by_seq));
        }
    }
    Ok(by_seq)
}

/// One worker: decodes its blocks newest first and reduces their events
/// with seq in `from..=last`.
fn reduce(
    segments: &[SegmentInput<'_>],
    units: &[Unit],
    last: u64,
    limits: Limits,
) -> Result<Reduced> {
    let mut out = Reduced::default();
    let mut open: Option<(usize, SegmentScanner<'_>)> = None;
    for u in units.iter().rev() {
        let Some(seg) = segments.get(u.segment) else {
            continue;
        };
        if open.as_ref().is_none_or(|(i, _)| *i != u.segment) {
            let s = SegmentScanner::open(seg.plain, Some(seg.name), limits)
                .map_err(|e| fmt_err(seg.name, e))?;
            open = Some((u.segment, s));
        }
        let Some((_, s)) = open.as_mut() else {
            continue;
        };
        s.scan_block(u.block, |views| {
            for v in views.iter().rev() {
                if v.seq >= u.from && v.seq <= last {
                    out.push_newest_first(v);
                }
            }
        })
        .map_err(|e| fmt_err(seg.name, e))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_contiguous_and_covers_everything() {
        for n in 1..5 {
            let w = [5, 1, 1, 1, 9, 2, 2, 0, 3];
            let r = split(&w, n);
            assert!(r.len() <= n);
            let flat: Vec<usize> = r.iter().flat_map(Clone::clone).collect();
            assert_eq!(flat, (0..w.len()).collect::<Vec<_>>());
        }
        assert!(split(&[], 2).is_empty());
    }
}
