//! Wall-clock time as Rewind records it: Unix milliseconds.

use std::time::{SystemTime, UNIX_EPOCH};

/// Wall-clock now, in Unix milliseconds. A clock set before 1970 reads as 0;
/// one past `i64::MAX` ms reads as `i64::MAX`.
#[must_use]
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
