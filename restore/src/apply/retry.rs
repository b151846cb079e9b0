//! When a failed write is tried again.
//!
//! - *Transient* failures (429, any 5xx, a timeout, a connection reset or
//!   refused before the API answered) are retried at once, up to
//!   [`ATTEMPTS`] tries, with exponential backoff from [`BASE_DELAY`]
//!   capped at [`MAX_DELAY`]. Every write a restore makes is idempotent
//!   (an apply, a replace at a resourceVersion, a delete), so a request
//!   whose answer was lost can be sent again.
//! - A rejection that names something not there yet (an admission webhook
//!   or policy refusing a reference, the namespace not found) is
//!   [`deferred`]: the object is tried once more after the rest of its
//!   level, which may write what it refers to.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::live::ApiFailure;

/// Tries of one request, the first included.
pub const ATTEMPTS: u32 = 5;
/// Wait before the first retry; doubled for each next one.
pub const BASE_DELAY: Duration = Duration::from_millis(200);
/// Longest wait between two tries.
pub const MAX_DELAY: Duration = Duration::from_secs(3);

/// Whether `e` may succeed if the same request is sent again.
#[must_use]
pub fn is_transient(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => s.code == 429 || (500..600).contains(&s.code),
        // No answer: the connection was reset, refused or timed out.
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

/// Runs `op` until it succeeds, fails for a reason that is not transient,
/// or has been tried [`ATTEMPTS`] times; each retry is counted in
/// `retries`.
pub async fn transient<T, F, Fut>(retries: &AtomicUsize, mut op: F) -> kube::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = kube::Result<T>>,
{
    let mut delay = BASE_DELAY;
    let mut attempt = 1;
    loop {
        match op().await {
            Err(e) if attempt < ATTEMPTS && is_transient(&e) => {
                tracing::debug!(attempt, error = %e, delay_ms = delay.as_millis(), "transient failure; retrying");
                retries.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(delay).await;
                delay = delay.saturating_mul(2).min(MAX_DELAY);
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Whether a write that failed with `f` is worth one more try after the
/// rest of its level: an admission webhook or policy refused it (most
/// check that what the object names exists), or its namespace was not
/// found.
#[must_use]
pub fn deferred(f: &ApiFailure) -> bool {
    let admission = (400..500).contains(&f.code)
        && (f.message.contains("admission webhook") || f.message.contains("AdmissionPolicy"));
    let namespace_missing = f.code == 404 && f.message.starts_with("namespaces \"");
    admission || namespace_missing
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    fn api(code: u16) -> kube::Error {
        kube::Error::Api(Status::failure("x", "y").with_code(code).boxed())
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_are_retried_with_capped_backoff() {
        let retries = AtomicUsize::new(0);
        let mut answers = vec![
            Err(api(429)),
            Err(api(503)),
            Err(api(500)),
            Err(kube::Error::Service(Box::new(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "reset",
            )))),
            Ok(7),
        ]
        .into_iter();
        let start = tokio::time::Instant::now();
        let r = transient(&retries, || {
            let a = answers.next();
            async move { a.unwrap_or(Ok(0)) }
        })
        .await;
        assert_eq!(r.unwrap(), 7);
        assert_eq!(retries.load(Ordering::Relaxed), 4);
        // 200 + 400 + 800 + 1600 ms.
        assert_eq!(start.elapsed(), Duration::from_millis(3000));
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_failures_and_exhausted_tries_stop() {
        let retries = AtomicUsize::new(0);
        let mut calls = 0;
        let r: kube::Result<()> = transient(&retries, || {
            calls += 1;
            async { Err(api(422)) }
        })
        .await;
        assert!(r.is_err());
        assert_eq!((calls, retries.load(Ordering::Relaxed)), (1, 0));

        let start = tokio::time::Instant::now();
        let mut calls = 0;
        let r: kube::Result<()> = transient(&retries, || {
            calls += 1;
            async { Err(api(503)) }
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls, ATTEMPTS);
        assert_eq!(retries.load(Ordering::Relaxed), 4);
        assert_eq!(start.elapsed(), Duration::from_millis(3000));
    }

    #[test]
    fn delay_is_capped() {
        let mut d = BASE_DELAY;
        for _ in 0..10 {
            d = d.saturating_mul(2).min(MAX_DELAY);
        }
        assert_eq!(d, MAX_DELAY);
    }

    #[test]
    fn reference_rejections_are_deferred() {
        let f = |code: u16, message: &str| ApiFailure {
            code,
            reason: String::new(),
            message: message.into(),
        };
        assert!(deferred(&f(
            400,
            "admission webhook \"rancher.cattle.io.globalrolebindings\" denied the request: globalRoleName: Not found"
        )));
        assert!(deferred(&f(
            403,
            "configmaps \"a\" is forbidden: ValidatingAdmissionPolicy 'p' with binding 'b' denied request: no params found"
        )));
        assert!(deferred(&f(404, "namespaces \"gone\" not found")));
        assert!(!deferred(&f(422, "spec.size: Invalid value")));
        assert!(!deferred(&f(403, "user cannot patch")));
        // A webhook that cannot be called is a 500: retried as transient.
        assert!(!deferred(&f(500, "failed calling webhook")));
    }
}
