//! Proving that a resource type is no longer served, before its recorded
//! objects are recorded as deleted.
//!
//! Discovery alone is not proof. For a moment after it starts, a
//! kube-apiserver serves `/apis` with only `apiregistration.k8s.io` listed:
//! the aggregator builds that list from APIService objects, which its
//! `autoregister` controller has not created yet (measured on v1.34: one
//! poll in ~200 at 10 ms, with `/readyz` still 500). A recorder that
//! believed it would record every object of every group as deleted, then
//! record them all again. So a type counts as gone only when, in two
//! discovery passes at least [`CONFIRM_AFTER`] apart:
//! - discovery misses it ([`super::discovery::Discovered::misses`]),
//! - the server says it is ready (`/readyz`; `autoregister-completion` and
//!   `crd-informer-synced` are among its checks), or will not say (a
//!   server that forbids `/readyz` is judged on the rest), and
//! - a LIST of the type answers 404 Not Found.
//!
//! Any pass that does not find all three clears the suspicion.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use kube::Client;
use rewind_format::ResourceType;
use rewind_history::KubeType;
use tracing::{debug, info};

use super::watcher::first_page_request;

/// The least time between the two passes that must agree.
pub const CONFIRM_AFTER: Duration = Duration::from_secs(2);

/// What `/readyz` says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Readiness {
    /// 200.
    Ready,
    /// Not asked.
    #[default]
    NotAsked,
    /// The server is starting, failing a check, or unreachable.
    NotReady(String),
    /// The server will not say (401, 403, 404): judged on the other checks.
    Unknown(String),
}

/// Asks `/readyz`.
pub async fn readiness(client: &Client) -> Readiness {
    let req = match axum::http::Request::get("/readyz").body(Vec::new()) {
        Ok(r) => r,
        Err(e) => return Readiness::NotReady(e.to_string()),
    };
    match client.request_text(req).await {
        Ok(_) => Readiness::Ready,
        Err(kube::Error::Api(s)) if matches!(s.code, 401 | 403 | 404) => {
            Readiness::Unknown(format!("/readyz answered {}", s.code))
        }
        Err(e) => Readiness::NotReady(e.to_string()),
    }
}

/// Whether a metadata-only `limit=1` LIST of `t` answers 404 Not Found.
/// Any other answer, an error included, is not proof.
pub async fn list_not_found(client: &Client, t: &ResourceType) -> bool {
    let Ok(req) = first_page_request(&t.api_resource()) else {
        return false;
    };
    matches!(
        client.request_text(req).await,
        Err(kube::Error::Api(s)) if s.code == 404
    )
}

/// What one pass found about one type that discovery misses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Evidence {
    /// `/readyz` was 200 or would not say.
    pub ready_or_unknown: bool,
    /// A LIST of the type answered 404.
    pub list_not_found: bool,
}

/// Types suspected gone, since the first pass that found all the evidence.
#[derive(Debug, Default)]
pub struct GoneCheck {
    suspected: HashMap<String, Instant>,
}

impl GoneCheck {
    /// Whether a type is waiting for its second pass (the supervisor
    /// rediscovers sooner then).
    #[must_use]
    pub fn pending(&self) -> bool {
        !self.suspected.is_empty()
    }

    /// Clears every suspicion not in `still`: a pass whose discovery finds
    /// a type clears it.
    pub fn retain(&mut self, still: &[String]) {
        self.suspected.retain(|k, _| still.contains(k));
    }

    /// One pass's evidence for `tk`, which discovery misses; returns
    /// whether the type is now proven gone.
    pub fn observe(&mut self, tk: &str, e: Evidence, now: Instant) -> bool {
        if !(e.ready_or_unknown && e.list_not_found) {
            self.suspected.remove(tk);
            return false;
        }
        match self.suspected.get(tk) {
            Some(first) if now.saturating_duration_since(*first) >= CONFIRM_AFTER => {
                self.suspected.remove(tk);
                true
            }
            Some(_) => false,
            None => {
                self.suspected.insert(tk.to_owned(), now);
                false
            }
        }
    }

    /// Gathers the evidence for `candidates` (types discovery misses) in a
    /// pass whose `/readyz` answer was `ready`, and returns those now
    /// proven gone.
    pub async fn confirm(
        &mut self,
        client: &Client,
        ready: &Readiness,
        candidates: &[(String, ResourceType)],
    ) -> Vec<String> {
        let keys: Vec<String> = candidates.iter().map(|(k, _)| k.clone()).collect();
        self.retain(&keys);
        if candidates.is_empty() {
            return Vec::new();
        }
        let ready_or_unknown = matches!(ready, Readiness::Ready | Readiness::Unknown(_));
        if !ready_or_unknown {
            info!(types = candidates.len(), readiness = ?ready, "discovery misses types but the API server is not ready; not taking it as proof");
        }
        let mut out = Vec::new();
        for (tk, t) in candidates {
            let list_not_found = ready_or_unknown && list_not_found(client, t).await;
            let e = Evidence {
                ready_or_unknown,
                list_not_found,
            };
            debug!(rtype = %tk, ?e, "type missing from discovery");
            if self.observe(tk, e, Instant::now()) {
                out.push(tk.clone());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: Evidence = Evidence {
        ready_or_unknown: true,
        list_not_found: true,
    };

    #[test]
    fn a_type_is_gone_only_after_two_agreeing_passes_apart() {
        let mut g = GoneCheck::default();
        let t0 = Instant::now();
        assert!(!g.observe("a", ALL, t0), "one pass is not proof");
        assert!(g.pending());
        assert!(
            !g.observe("a", ALL, t0 + Duration::from_millis(500)),
            "too soon"
        );
        assert!(g.observe("a", ALL, t0 + CONFIRM_AFTER));
        assert!(!g.pending());
    }

    #[test]
    fn missing_evidence_clears_the_suspicion() {
        for partial in [
            Evidence {
                ready_or_unknown: false,
                list_not_found: true,
            },
            Evidence {
                ready_or_unknown: true,
                list_not_found: false,
            },
        ] {
            let mut g = GoneCheck::default();
            let t0 = Instant::now();
            assert!(!g.observe("a", ALL, t0));
            assert!(!g.observe("a", partial, t0 + CONFIRM_AFTER));
            assert!(!g.pending(), "{partial:?} clears");
            assert!(
                !g.observe("a", ALL, t0 + CONFIRM_AFTER * 2),
                "{partial:?}: the count starts again"
            );
        }
    }

    #[test]
    fn a_pass_that_finds_the_type_clears_it() {
        let mut g = GoneCheck::default();
        let t0 = Instant::now();
        assert!(!g.observe("a", ALL, t0));
        assert!(!g.observe("b", ALL, t0));
        g.retain(&["b".to_owned()]);
        assert!(!g.observe("a", ALL, t0 + CONFIRM_AFTER), "a starts again");
        assert!(g.observe("b", ALL, t0 + CONFIRM_AFTER));
    }
}
