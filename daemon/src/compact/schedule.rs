//! A cron subset for snapshot schedules: five fields (minute, hour, day of
//! month, month, day of week; UTC), each `*`, `N`, `A-B`, `*/S`, `A-B/S`
//! or a comma list of those. Day of month and day of week combine as in
//! cron: when both are restricted, either may match.
//!
//! Why not a crate: the `cron`/`croner` crates pull in `chrono` while the
//! tree already has `jiff`; a snapshot schedule needs nothing beyond this
//! subset (no seconds, no `L`/`W`/`#`, no time zones), and it is small
//! enough to test exhaustively against brute force.

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    dom_star: bool,
    dow_star: bool,
}

fn field(text: &str, min: u32, max: u32, name: &str) -> Result<(u64, bool), String> {
    let mut mask = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let s: u32 = s.parse().map_err(|_| format!("{name}: bad step `{s}`"))?;
                if s == 0 {
                    return Err(format!("{name}: step must be positive"));
                }
                (r, s)
            }
            None => (part, 1),
        };
        let (lo, hi) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            let a: u32 = a.parse().map_err(|_| format!("{name}: bad value `{a}`"))?;
            let b: u32 = b.parse().map_err(|_| format!("{name}: bad value `{b}`"))?;
            (a, b)
        } else {
            let v: u32 = range
                .parse()
                .map_err(|_| format!("{name}: bad value `{range}`"))?;
            (v, if step > 1 { max } else { v })
        };
        if lo < min || hi > max || lo > hi {
            return Err(format!("{name}: `{part}` is outside {min}-{max}"));
        }
        let mut v = lo;
        while v <= hi {
            mask |= 1u64 << v;
            v += step;
        }
    }
    Ok((mask, text == "*"))
}

impl Schedule {
    /// Parses `min hour dom month dow`; `@hourly`, `@daily`, `@weekly`
    /// and `@monthly` are accepted too. Day of week 7 is Sunday, like 0.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = match text.trim() {
            "@hourly" => "0 * * * *",
            "@daily" | "@midnight" => "0 0 * * *",
            "@weekly" => "0 0 * * 0",
            "@monthly" => "0 0 1 * *",
            t => t,
        };
        let f: Vec<&str> = text.split_whitespace().collect();
        let [mi, h, dom, mo, dow] = f.as_slice() else {
            return Err(format!("expected 5 fields, got {}", f.len()));
        };
        let (minutes, _) = field(mi, 0, 59, "minute")?;
        let (hours, _) = field(h, 0, 23, "hour")?;
        let (days, dom_star) = field(dom, 1, 31, "day of month")?;
        let (months, _) = field(mo, 1, 12, "month")?;
        let (mut weekdays, dow_star) = field(dow, 0, 7, "day of week")?;
        if weekdays & (1 << 7) != 0 {
            weekdays |= 1;
        }
        Ok(Self {
            minutes,
            hours,
            days,
            months,
            weekdays,
            dom_star,
            dow_star,
        })
    }

    fn day_matches(&self, dt: DateTime) -> bool {
        let dom = self.days & bit(dt.day()) != 0;
        let dow = self.weekdays & bit(dt.weekday().to_sunday_zero_offset()) != 0;
        match (self.dom_star, self.dow_star) {
            (true, true) => true,
            (false, true) => dom,
            (true, false) => dow,
            (false, false) => dom || dow,
        }
    }

    /// Whether the minute starting at `dt` is scheduled.
    #[must_use]
    pub fn matches(&self, dt: DateTime) -> bool {
        self.months & bit(dt.month()) != 0
            && self.day_matches(dt)
            && self.hours & bit(dt.hour()) != 0
            && self.minutes & bit(dt.minute()) != 0
    }

    /// The first scheduled minute strictly after `after_ms` (Unix ms), as
    /// Unix ms; `None` if none within eight years (e.g. `0 0 31 2 *`).
    #[must_use]
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        let ts = Timestamp::from_millisecond(after_ms).ok()?;
        let start = ts.to_zoned(TimeZone::UTC).datetime();
        // Next whole minute.
        let mut dt = start
            .with()
            .second(0)
            .subsec_nanosecond(0)
            .build()
            .ok()?
            .checked_add(1.minute())
            .ok()?;
        let limit = dt.checked_add(8.years()).ok()?;
        while dt < limit {
            if self.months & bit(dt.month()) == 0 {
                dt = dt
                    .first_of_month()
                    .checked_add(1.month())
                    .ok()?
                    .start_of_day();
            } else if !self.day_matches(dt) {
                dt = dt.start_of_day().checked_add(1.day()).ok()?;
            } else if self.hours & bit(dt.hour()) == 0 {
                dt = dt
                    .with()
                    .minute(0)
                    .build()
                    .ok()?
                    .checked_add(1.hour())
                    .ok()?;
            } else if self.minutes & bit(dt.minute()) == 0 {
                dt = dt.checked_add(1.minute()).ok()?;
            } else {
                return dt
                    .to_zoned(TimeZone::UTC)
                    .ok()
                    .map(|z| z.timestamp().as_millisecond());
            }
        }
        None
    }
}

fn bit(v: impl Into<i64>) -> u64 {
    u32::try_from(v.into())
        .ok()
        .and_then(|s| 1u64.checked_shl(s))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        s.parse::<Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn next_matches_brute_force() {
        let exprs = [
            "0 * * * *",
            "*/15 * * * *",
            "30 2 * * *",
            "0 */6 * * *",
            "5 4 * * 0",
            "0 0 1,15 * *",
            "0 12 * * 1-5",
            "0 0 13 * 5",
            "59 23 31 12 *",
            "0 0 29 2 *",
            "@weekly",
        ];
        let starts = [
            "2026-01-01T00:00:00Z",
            "2026-02-27T23:59:30Z",
            "2027-12-31T23:00:00Z",
        ];
        for e in exprs {
            let s = Schedule::parse(e).unwrap();
            for start in starts {
                let from = ms(start);
                // Brute force: walk minute by minute.
                let mut t = (from / 60_000 + 1) * 60_000;
                let expected = loop {
                    let dt = Timestamp::from_millisecond(t)
                        .unwrap()
                        .to_zoned(TimeZone::UTC)
                        .datetime();
                    if s.matches(dt) {
                        break t;
                    }
                    t += 60_000;
                    assert!(t < from + 5 * 366 * 86_400_000, "{e}");
                };
                assert_eq!(s.next_after(from), Some(expected), "{e} after {start}");
            }
        }
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "* * * *",
            "60 * * * *",
            "* 24 * * *",
            "*/0 * * * *",
            "a * * * *",
            "5-2 * * * *",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Schedule::parse("0 0 31 2 *").unwrap().next_after(0), None);
    }
}
