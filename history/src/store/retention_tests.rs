//! Retention against an independent model, with a fake clock.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;
use crate::store::layout::{segment_id, snapshot_id};

/// The fake clock's "now": a fixed instant, so calendar buckets are stable.
const NOW: i64 = 1_767_225_600_000 + 5 * HOUR_MS + 17 * 60_000; // 2026-01-01T05:17Z

fn snap(seq: u64, time_ms: i64, label: Option<&str>) -> SnapshotEntry {
    let sha = format!("{seq:064x}");
    SnapshotEntry {
        version: 1,
        id: snapshot_id(seq, &sha),
        seq,
        time_ms,
        objects: 1,
        size: 1,
        sha256: sha,
        label: label.map(str::to_owned),
        encrypted: false,
        stored_at_ms: time_ms,
        resource_set: None,
        lineage: None,
    }
}

fn seg(first: u64, last: u64) -> SegmentEntry {
    let sha = format!("{first:032x}{last:032x}");
    SegmentEntry {
        version: 1,
        id: segment_id(first, last, &sha),
        first_seq: first,
        last_seq: last,
        first_time_ms: 0,
        last_time_ms: 0,
        events: last - first + 1,
        size: 1,
        sha256: sha,
        encrypted: false,
        stored_at_ms: 0,
        resource_set: None,
        lineage: None,
        prev_sha256: None,
    }
}

/// Builds snapshots from ages (ms before NOW); seq grows with time.
fn history(ages: &[(i64, bool)]) -> (Vec<SnapshotEntry>, Vec<SegmentEntry>) {
    let mut times: Vec<(i64, bool)> = ages.iter().map(|&(a, l)| (NOW - a, l)).collect();
    times.sort_unstable();
    let snaps: Vec<_> = times
        .iter()
        .enumerate()
        .map(|(i, &(t, l))| snap((i as u64 + 1) * 10, t, l.then_some("manual")))
        .collect();
    let max = snaps.last().map_or(0, |s| s.seq) + 25;
    let segs = (0..max / 7 + 1)
        .map(|i| seg(i * 7 + 1, i * 7 + 7))
        .collect();
    (snaps, segs)
}

fn newest_key(s: &SnapshotEntry) -> (i64, u64, String) {
    (s.time_ms, s.seq, s.id.clone())
}

/// The model: each rule computed on its own, by grouping, then united.
fn model(p: &RetentionPolicy, snaps: &[SnapshotEntry], now: i64) -> BTreeSet<String> {
    let mut sorted: Vec<_> = snaps.to_vec();
    sorted.sort_by_key(|s| std::cmp::Reverse(newest_key(s)));
    if p.is_empty() {
        return sorted.iter().map(|s| s.id.clone()).collect();
    }
    let mut keep = BTreeSet::new();
    for s in sorted.iter().filter(|s| s.label.is_some()) {
        keep.insert(s.id.clone());
    }
    for s in sorted.iter().take(p.keep_last as usize) {
        keep.insert(s.id.clone());
    }
    let rules: [(u32, Bucket); 5] = [
        (p.keep_hourly, hour_bucket),
        (p.keep_daily, day_bucket),
        (p.keep_weekly, week_bucket),
        (p.keep_monthly, month_bucket),
        (p.keep_yearly, year_bucket),
    ];
    for (n, bucket) in rules {
        let mut newest: BTreeMap<i64, &SnapshotEntry> = BTreeMap::new();
        for s in &sorted {
            let e = newest.entry(bucket(s.time_ms)).or_insert(s);
            if newest_key(s) > newest_key(e) {
                *e = s;
            }
        }
        for s in newest.values().rev().take(n as usize) {
            keep.insert(s.id.clone());
        }
    }
    if p.point_in_time_ms > 0 {
        let start = now - p.point_in_time_ms;
        for s in sorted.iter().filter(|s| s.time_ms > start) {
            keep.insert(s.id.clone());
        }
        if let Some(base) = sorted.iter().find(|s| s.time_ms <= start) {
            keep.insert(base.id.clone());
        }
    }
    keep
}

fn policy() -> impl Strategy<Value = RetentionPolicy> {
    (
        0u32..4,
        0u32..6,
        0u32..8,
        0u32..5,
        0u32..4,
        0u32..3,
        prop_oneof![Just(0i64), 1i64..20 * DAY_MS],
    )
        .prop_map(|(l, h, d, w, m, y, pit)| RetentionPolicy {
            keep_last: l,
            keep_hourly: h,
            keep_daily: d,
            keep_weekly: w,
            keep_monthly: m,
            keep_yearly: y,
            point_in_time_ms: pit,
        })
}

fn ages() -> impl Strategy<Value = Vec<(i64, bool)>> {
    // Up to 400 days back, with clusters inside one hour to exercise buckets.
    prop::collection::vec(
        (
            prop_oneof![0i64..400 * DAY_MS, 0i64..3 * HOUR_MS],
            prop::bool::weighted(0.1),
        ),
        0..60,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn keeps_exactly_what_the_model_keeps(p in policy(), ages in ages()) {
        let (snaps, segs) = history(&ages);
        let plan = p.plan(&snaps, &segs, NOW);
        let kept: BTreeSet<String> = plan.keep.iter().map(|(s, _)| s.id.clone()).collect();
        prop_assert_eq!(&kept, &model(&p, &snaps, NOW));
        prop_assert_eq!(plan.keep.len() + plan.remove.len(), snaps.len());
        prop_assert_eq!(plan.keep_segments.len() + plan.remove_segments.len(), segs.len());
        for (s, why) in &plan.keep {
            prop_assert!(!why.is_empty());
            if s.label.is_some() { prop_assert!(why.contains(&KeepReason::Labelled)); }
        }
    }

    #[test]
    fn every_instant_in_the_window_stays_restorable(p in policy(), ages in ages()) {
        let (snaps, segs) = history(&ages);
        let plan = p.plan(&snaps, &segs, NOW);
        let kept_segs: BTreeSet<u64> = plan.keep_segments.iter().map(|s| s.first_seq).collect();
        let all_segs_kept = plan.remove_segments.is_empty();
        // The newest snapshot and everything after it: current state.
        if let Some(newest) = snaps.iter().max_by_key(|s| newest_key(s)) {
            prop_assert!(plan.keep.iter().any(|(s, _)| s.id == newest.id));
        }
        if p.point_in_time_ms <= 0 { return Ok(()); }
        let start = NOW - p.point_in_time_ms;
        let mut instants: Vec<i64> = snaps.iter().map(|s| s.time_ms).filter(|&t| t >= start).collect();
        instants.extend([start, NOW]);
        for t in instants {
            let base = plan.keep.iter().map(|(s, _)| s).filter(|s| s.time_ms <= t)
                .max_by_key(|s| newest_key(s));
            match base {
                Some(b) => {
                    for s in &segs {
                        if s.last_seq > b.seq {
                            prop_assert!(kept_segs.contains(&s.first_seq),
                                "segment {}-{} needed after base {} for t={}", s.first_seq, s.last_seq, b.seq, t);
                        }
                    }
                }
                // No snapshot that old: restore replays from the start.
                None => prop_assert!(all_segs_kept),
            }
        }
    }
}

#[test]
fn restic_style_daily_keeps_newest_of_each_day() {
    let snaps = vec![
        snap(1, NOW - 2 * DAY_MS - HOUR_MS, None),
        snap(2, NOW - 2 * DAY_MS, None),
        snap(3, NOW - DAY_MS - 2 * HOUR_MS, None),
        snap(4, NOW - DAY_MS - HOUR_MS, None),
        snap(5, NOW - 60_000, None),
        snap(0, NOW - 8 * DAY_MS, Some("before-upgrade")),
    ];
    let p = RetentionPolicy {
        keep_daily: 2,
        ..RetentionPolicy::default()
    };
    let plan = p.plan(&snaps, &[seg(1, 3), seg(4, 6), seg(7, 9)], NOW);
    let kept: Vec<u64> = plan.keep.iter().map(|(s, _)| s.seq).collect();
    assert_eq!(kept, vec![5, 4, 0]);
    let removed: Vec<u64> = plan.remove.iter().map(|s| s.seq).collect();
    assert_eq!(removed, vec![3, 2, 1]);
    // No window: only events after the newest snapshot (seq 5) are needed.
    let kept_segs: Vec<u64> = plan.keep_segments.iter().map(|s| s.first_seq).collect();
    // 4..=6 straddles seq 5, so it stays.
    assert_eq!(kept_segs, vec![4, 7]);
}

#[test]
fn empty_policy_removes_nothing() {
    let snaps = vec![snap(1, NOW - DAY_MS, None), snap(2, NOW, None)];
    let plan = RetentionPolicy::default().plan(&snaps, &[seg(1, 2)], NOW);
    assert!(plan.remove.is_empty());
    assert!(plan.remove_segments.is_empty());
}

#[test]
fn durations_parse() {
    assert_eq!(parse_duration_ms("72h"), Some(72 * HOUR_MS));
    assert_eq!(parse_duration_ms("7d"), Some(7 * DAY_MS));
    assert_eq!(parse_duration_ms("90"), Some(90_000));
    assert_eq!(parse_duration_ms("250ms"), Some(250));
    assert_eq!(parse_duration_ms("x"), None);
    assert_eq!(parse_duration_ms("5y"), None);
}
