//! Retries with exponential backoff and full jitter.
//!
//! Full jitter (a delay drawn uniformly from zero to the current cap) keeps
//! many daemons that lost the same store from hammering it in step when it
//! comes back.

use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::config::RetryPolicy;
use super::error::{Result, StoreError};

/// Runs `op` until it succeeds, fails with a permanent error, or the policy's
/// attempts are used up.
pub async fn with_retry<T, F, Fut>(
    policy: &RetryPolicy,
    what: &str,
    retries: &AtomicU64,
    mut op: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let attempts = policy.max_attempts.max(1);
    let mut cap = policy.initial;
    let mut attempt = 1;
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if !e.is_transient() => return Err(e),
            Err(e) if attempt >= attempts => {
                return Err(StoreError::Unavailable {
                    attempts: attempt,
                    last: Box::new(e),
                });
            }
            Err(e) => {
                retries.fetch_add(1, Ordering::Relaxed);
                let delay = jitter(cap);
                tracing::warn!(
                    op = what,
                    attempt,
                    delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    error = %e,
                    "store operation failed, retrying"
                );
                tokio::time::sleep(delay).await;
                cap = (cap * 2).min(policy.max);
                attempt += 1;
            }
        }
    }
}

/// A delay drawn uniformly from `[cap/2, cap]`: half is fixed so retries
/// still back off, half is random so clients spread out.
pub fn jitter(cap: Duration) -> Duration {
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let half = cap / 2;
    let span = u64::try_from(half.as_micros()).unwrap_or(u64::MAX).max(1);
    half + Duration::from_micros(random % span)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU32;

    use super::*;

    fn transient() -> StoreError {
        StoreError::io("write", "/x", std::io::Error::other("reset"))
    }

    #[tokio::test(start_paused = true)]
    async fn retries_transient_then_gives_up() {
        let policy = RetryPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            max_attempts: 4,
        };
        let calls = AtomicU32::new(0);
        let start = tokio::time::Instant::now();
        let r: Result<()> = with_retry(&policy, "test", &AtomicU64::new(0), || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err(transient()) }
        })
        .await;
        assert!(matches!(
            r,
            Err(StoreError::Unavailable { attempts: 4, .. })
        ));
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        // Three sleeps with caps 100, 200 and 400 ms, each at least half its cap.
        assert!(start.elapsed() >= Duration::from_millis(350));
        assert!(start.elapsed() <= Duration::from_millis(700));
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_errors_are_not_retried_and_success_stops() {
        let policy = RetryPolicy::default();
        let calls = AtomicU32::new(0);
        let r: Result<()> = with_retry(&policy, "test", &AtomicU64::new(0), || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err(StoreError::NotFound { key: "k".into() }) }
        })
        .await;
        assert!(matches!(r, Err(StoreError::NotFound { .. })));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let calls = AtomicU32::new(0);
        let r = with_retry(&policy, "test", &AtomicU64::new(0), || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move { if n < 2 { Err(transient()) } else { Ok(n) } }
        })
        .await;
        assert_eq!(r.unwrap(), 2);
    }

    #[test]
    fn jitter_stays_within_bounds() {
        for _ in 0..1000 {
            let d = jitter(Duration::from_millis(1000));
            assert!(d >= Duration::from_millis(500) && d <= Duration::from_millis(1000));
        }
    }
}
