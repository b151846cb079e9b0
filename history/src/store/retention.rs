//! Retention: which snapshots and segments to keep. Pure: no IO, the clock
//! is a parameter.
//!
//! Snapshot rules follow restic's `forget`: snapshots are walked newest
//! first; `keep_last` keeps the first N; each calendar rule (hourly, daily,
//! weekly, monthly, yearly; UTC, ISO weeks) keeps the newest snapshot of
//! each of the N most recent periods that have one. A snapshot is kept if
//! any rule keeps it. Labelled (on-demand) snapshots are always kept, and a
//! policy with no rule at all keeps everything rather than nothing.
//!
//! The point-in-time window keeps every snapshot newer than `now - window`
//! plus the newest snapshot at or before that instant (the *base*), so any
//! instant in the window can be restored from a kept snapshot and the
//! segments after it. Segments are kept when they hold any event after the
//! base's seq; with no window, after the newest snapshot's seq. When no
//! snapshot is old enough to be a base, every segment is kept.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::layout::{SegmentEntry, SnapshotEntry};

/// What to keep. Counts of 0 disable a rule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionPolicy {
    /// Keep the N newest snapshots.
    pub keep_last: u32,
    /// Keep the newest snapshot of each of the last N hours that have one.
    pub keep_hourly: u32,
    /// ... of each of the last N days.
    pub keep_daily: u32,
    /// ... of each of the last N ISO weeks.
    pub keep_weekly: u32,
    /// ... of each of the last N months.
    pub keep_monthly: u32,
    /// ... of each of the last N years.
    pub keep_yearly: u32,
    /// Point-in-time window in milliseconds: any instant in
    /// `[now - window, now]` stays restorable. 0 disables it.
    pub point_in_time_ms: i64,
}

/// Why a snapshot is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum KeepReason {
    /// Among the `keep_last` newest.
    Last,
    /// Newest of its hour.
    Hourly,
    /// Newest of its day.
    Daily,
    /// Newest of its ISO week.
    Weekly,
    /// Newest of its month.
    Monthly,
    /// Newest of its year.
    Yearly,
    /// Taken inside the point-in-time window.
    Window,
    /// The base the point-in-time window restores from.
    WindowBase,
    /// Labelled on demand; kept until deleted by hand.
    Labelled,
    /// The policy has no rule, so nothing is removed.
    NoPolicy,
}

/// The result of applying a policy: what stays and what goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionPlan {
    /// Kept snapshots (newest first) with every reason that keeps them.
    pub keep: Vec<(SnapshotEntry, Vec<KeepReason>)>,
    /// Snapshots to remove, newest first.
    pub remove: Vec<SnapshotEntry>,
    /// Kept segments, by first seq.
    pub keep_segments: Vec<SegmentEntry>,
    /// Segments to remove, by first seq.
    pub remove_segments: Vec<SegmentEntry>,
}

impl RetentionPolicy {
    /// Whether no rule is set.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.keep_last == 0
            && self.keep_hourly == 0
            && self.keep_daily == 0
            && self.keep_weekly == 0
            && self.keep_monthly == 0
            && self.keep_yearly == 0
            && self.point_in_time_ms <= 0
    }

    /// Applies the policy at `now_ms`.
    #[must_use]
    pub fn plan(
        &self,
        snapshots: &[SnapshotEntry],
        segments: &[SegmentEntry],
        now_ms: i64,
    ) -> RetentionPlan {
        let mut sorted: Vec<&SnapshotEntry> = snapshots.iter().collect();
        // Newest first; seq breaks ties in time, id breaks ties in seq.
        sorted.sort_by(|a, b| (b.time_ms, b.seq, &b.id).cmp(&(a.time_ms, a.seq, &a.id)));

        let mut reasons: Vec<BTreeSet<KeepReason>> = vec![BTreeSet::new(); sorted.len()];
        let rules: [(u32, KeepReason, Bucket); 5] = [
            (self.keep_hourly, KeepReason::Hourly, hour_bucket),
            (self.keep_daily, KeepReason::Daily, day_bucket),
            (self.keep_weekly, KeepReason::Weekly, week_bucket),
            (self.keep_monthly, KeepReason::Monthly, month_bucket),
            (self.keep_yearly, KeepReason::Yearly, year_bucket),
        ];
        let mut left: Vec<u32> = rules.iter().map(|r| r.0).collect();
        let mut last_bucket: Vec<Option<i64>> = vec![None; rules.len()];
        let mut last_left = self.keep_last;
        let window_start = now_ms.saturating_sub(self.point_in_time_ms);
        let mut base_found = false;

        for (i, snap) in sorted.iter().enumerate() {
            let Some(r) = reasons.get_mut(i) else {
                continue;
            };
            if snap.label.is_some() {
                r.insert(KeepReason::Labelled);
            }
            if last_left > 0 {
                r.insert(KeepReason::Last);
                last_left -= 1;
            }
            for ((rule, left), last) in rules.iter().zip(&mut left).zip(&mut last_bucket) {
                let bucket = (rule.2)(snap.time_ms);
                if *left > 0 && *last != Some(bucket) {
                    r.insert(rule.1);
                    *left -= 1;
                    *last = Some(bucket);
                }
            }
            if self.point_in_time_ms > 0 {
                if snap.time_ms > window_start {
                    r.insert(KeepReason::Window);
                } else if !base_found {
                    r.insert(KeepReason::WindowBase);
                    base_found = true;
                }
            }
            if self.is_empty() {
                r.insert(KeepReason::NoPolicy);
            }
        }

        let mut plan = RetentionPlan::default();
        for (snap, why) in sorted.iter().zip(reasons) {
            if why.is_empty() {
                plan.remove.push((*snap).clone());
            } else {
                plan.keep.push(((*snap).clone(), why.into_iter().collect()));
            }
        }

        // Segments after this seq are needed; None keeps them all.
        let needed_after: Option<u64> = if self.is_empty() {
            None
        } else if self.point_in_time_ms > 0 {
            plan.keep
                .iter()
                .find(|(_, why)| why.contains(&KeepReason::WindowBase))
                .map(|(s, _)| s.seq)
        } else {
            plan.keep.iter().map(|(s, _)| s.seq).max()
        };
        let mut segs: Vec<&SegmentEntry> = segments.iter().collect();
        segs.sort_by(|a, b| (a.first_seq, &a.id).cmp(&(b.first_seq, &b.id)));
        for seg in segs {
            match needed_after {
                Some(s) if seg.last_seq <= s => plan.remove_segments.push(seg.clone()),
                _ => plan.keep_segments.push(seg.clone()),
            }
        }
        plan
    }
}

/// Maps a time (Unix ms) to its calendar period.
type Bucket = fn(i64) -> i64;

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

fn hour_bucket(ms: i64) -> i64 {
    ms.div_euclid(HOUR_MS)
}

fn day_bucket(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS)
}

fn civil(ms: i64) -> Option<jiff::civil::Date> {
    jiff::Timestamp::from_millisecond(ms)
        .ok()
        .map(|t| t.to_zoned(jiff::tz::TimeZone::UTC).date())
}

fn week_bucket(ms: i64) -> i64 {
    civil(ms).map_or(i64::MIN, |d| {
        let w = d.iso_week_date();
        i64::from(w.year()) * 100 + i64::from(w.week())
    })
}

fn month_bucket(ms: i64) -> i64 {
    civil(ms).map_or(i64::MIN, |d| {
        i64::from(d.year()) * 12 + i64::from(d.month())
    })
}

fn year_bucket(ms: i64) -> i64 {
    civil(ms).map_or(i64::MIN, |d| i64::from(d.year()))
}

/// Parses a duration such as `90s`, `15m`, `72h`, `7d` or `2w` (a bare
/// number is seconds) into milliseconds.
pub fn parse_duration_ms(text: &str) -> Option<i64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    let n: i64 = num.parse().ok()?;
    let mult = match unit.trim() {
        "" | "s" => 1_000,
        "ms" => 1,
        "m" => 60_000,
        "h" => HOUR_MS,
        "d" => DAY_MS,
        "w" => 7 * DAY_MS,
        _ => return None,
    };
    n.checked_mul(mult)
}

#[cfg(test)]
#[path = "retention_tests.rs"]
mod tests;
