//! Leadership by a `coordination.k8s.io/v1` Lease in the recorded cluster,
//! for two (or more) recorders sharing one store (`[leader] lease =
//! "namespace/name"`). Only the holder ships; the others are standbys that
//! record into their own journals and write nothing to the store.
//!
//! - **Identity**: the host name and 32 random bits ([`identity`]), new on
//!   every start, so a restarted recorder never mistakes its previous
//!   run's Lease for its own.
//! - **Taking the Lease** ([`run`]): a missing Lease is created; a Lease
//!   with no holder, or whose holder has not renewed it for
//!   `leaseDurationSeconds` as this recorder observed it (the record's
//!   `resourceVersion` unchanged for that long by the standby's monotonic
//!   clock, or `renewTime` older than twice the duration by the wall
//!   clock, for a Lease long abandoned), is updated to name this recorder,
//!   `leaseTransitions` + 1. Every write carries the `resourceVersion` read
//!   just before: of two standbys only one update succeeds (409 Conflict
//!   for the other).
//! - **Renewing**: every `retry`, the holder reads the Lease and updates its
//!   `renewTime`, again against the `resourceVersion`. Another holder named
//!   in it deposes this recorder at once.
//! - **Shipping only while surely the holder** ([`Leadership::may_ship`]):
//!   until `renew_deadline` after the start of the last successful renewal,
//!   by this process's monotonic clock. `renew_deadline` is shorter than the
//!   duration, so a leader that was paused (SIGSTOP, a VM freeze) or cut
//!   off from the apiserver stops shipping before any standby could see
//!   its Lease expire. A Lease is not a fencing token (a write already
//!   sent when the pause began lands late); what the store does about that
//!   is the shipper's check (`compact::ship`) and the write-once names.
//! - **Release**: on a clean stop, after the last ship, the holder clears
//!   `holderIdentity` ([`release`]), so a standby takes over at once
//!   instead of after the duration.
//!
//! The [`Leadership`] handle is what the rest of the daemon sees: its
//! [`Role`], the epoch (`leaseTransitions` when it took the Lease), when
//! it last took over, and the shipping gate.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Client;
use kube::api::{Api, PostParams};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Validated `[leader]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderSettings {
    /// The Lease's namespace.
    pub namespace: String,
    /// The Lease's name.
    pub name: String,
    /// `leaseDurationSeconds`.
    pub duration: Duration,
    /// How long the holder ships after the start of its last successful
    /// renewal (shorter than `duration`).
    pub renew_deadline: Duration,
    /// Pause between attempts.
    pub retry: Duration,
}

impl LeaderSettings {
    /// `namespace/name`, for messages.
    #[must_use]
    pub fn lease(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// Errors of leader election.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// Another recorder holds the Lease this one held.
    #[error(
        "deposed: Lease {lease} is now held by {holder}; this recorder stopped shipping (restart it to run as a standby)"
    )]
    Deposed {
        /// The Lease.
        lease: String,
        /// Its holder now.
        holder: String,
    },
    /// The Lease could not be renewed within the renew deadline.
    #[error(
        "deposed: Lease {lease} not renewed for {after:?} (renew deadline): this recorder stopped shipping before another could take it over; last error: {last}"
    )]
    RenewDeadline {
        /// The Lease.
        lease: String,
        /// Time since the last successful renewal.
        after: Duration,
        /// The last renewal error.
        last: String,
    },
    /// A Lease request did not answer within the renew deadline.
    #[error("Lease {lease}: no answer within {after:?}")]
    Timeout {
        /// The Lease.
        lease: String,
        /// How long it waited.
        after: Duration,
    },
    /// The apiserver refused or failed a Lease request.
    #[error("Lease {lease}: {action}: {source}")]
    Kube {
        /// The Lease.
        lease: String,
        /// What was tried.
        action: &'static str,
        /// The client's error.
        source: kube::Error,
    },
}

/// What this recorder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// No `[leader]` section: the only recorder of its store, always ships.
    Unconfigured,
    /// Records, does not ship: another recorder holds the Lease (or nobody
    /// yet, and this one is still waiting for it to expire).
    Standby,
    /// Holds the Lease: ships.
    Leader,
    /// Held the Lease and lost it: ships nothing any more.
    Deposed,
}

impl Role {
    /// The name used in the status file and `/metrics`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unconfigured => "unconfigured",
            Self::Standby => "standby",
            Self::Leader => "leader",
            Self::Deposed => "deposed",
        }
    }
}

/// The status file's account of leadership.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderStatus {
    /// `unconfigured`, `standby`, `leader` or `deposed`.
    pub role: String,
    /// `namespace/name` of the Lease, when configured.
    pub lease: Option<String>,
    /// This recorder's holder identity.
    pub identity: Option<String>,
    /// The holder last seen in the Lease.
    pub holder: Option<String>,
    /// `leaseTransitions` when this recorder took the Lease.
    pub epoch: Option<u64>,
    /// When this recorder last took the Lease, Unix ms.
    pub last_takeover_ms: Option<i64>,
    /// What fences a deposed writer in the store: the conditional writes
    /// the store honours, probed when this recorder starts shipping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_writes: Option<String>,
}

#[derive(Debug)]
struct State {
    role: Role,
    /// Start of the last successful take or renewal.
    renewed: Option<Instant>,
    epoch: Option<u64>,
    holder: Option<String>,
    last_takeover_ms: Option<i64>,
    store_writes: Option<String>,
}

#[derive(Debug)]
struct Inner {
    identity: Option<String>,
    lease: Option<String>,
    deadline: Duration,
    state: Mutex<State>,
    tx: watch::Sender<Role>,
}

/// Shared view of this recorder's leadership; cheap to clone.
#[derive(Debug, Clone)]
pub struct Leadership {
    inner: Arc<Inner>,
}

impl Leadership {
    fn with(
        role: Role,
        identity: Option<String>,
        lease: Option<String>,
        deadline: Duration,
    ) -> Self {
        let (tx, _) = watch::channel(role);
        Self {
            inner: Arc::new(Inner {
                identity,
                lease,
                deadline,
                state: Mutex::new(State {
                    role,
                    renewed: None,
                    epoch: None,
                    holder: None,
                    last_takeover_ms: None,
                    store_writes: None,
                }),
                tx,
            }),
        }
    }

    /// No leader election: always ships.
    #[must_use]
    pub fn unconfigured() -> Self {
        Self::with(Role::Unconfigured, None, None, Duration::ZERO)
    }

    /// A standby named `identity` for `settings`' Lease.
    #[must_use]
    pub fn standby(identity: String, settings: &LeaderSettings) -> Self {
        Self::with(
            Role::Standby,
            Some(identity),
            Some(settings.lease()),
            settings.renew_deadline,
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        match self.inner.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn set(&self, f: impl FnOnce(&mut State)) {
        let role = {
            let mut s = self.lock();
            f(&mut s);
            s.role
        };
        self.inner.tx.send_replace(role);
    }

    /// Whether this recorder may write to the store now: always without a
    /// Lease; with one, only as its holder and before `renew_deadline` has
    /// passed since the start of the last successful renewal.
    #[must_use]
    pub fn may_ship(&self) -> bool {
        let s = self.lock();
        match s.role {
            Role::Unconfigured => true,
            Role::Leader => s
                .renewed
                .is_some_and(|at| at.elapsed() < self.inner.deadline),
            Role::Standby | Role::Deposed => false,
        }
    }

    /// The role now.
    #[must_use]
    pub fn role(&self) -> Role {
        self.lock().role
    }

    /// The epoch (`leaseTransitions` when this recorder took the Lease).
    #[must_use]
    pub fn epoch(&self) -> Option<u64> {
        self.lock().epoch
    }

    /// This recorder's identity in the Lease.
    #[must_use]
    pub fn identity(&self) -> Option<&str> {
        self.inner.identity.as_deref()
    }

    /// For the status file.
    #[must_use]
    pub fn status(&self) -> LeaderStatus {
        let s = self.lock();
        LeaderStatus {
            role: s.role.as_str().into(),
            lease: self.inner.lease.clone(),
            identity: self.inner.identity.clone(),
            holder: s.holder.clone(),
            epoch: s.epoch,
            last_takeover_ms: s.last_takeover_ms,
            store_writes: s.store_writes.clone(),
        }
    }

    /// Records what the store's conditional writes are, for the status.
    pub fn set_store_writes(&self, what: String) {
        self.set(|s| s.store_writes = Some(what));
    }

    /// Follows role changes.
    #[must_use]
    pub fn watch(&self) -> watch::Receiver<Role> {
        self.inner.tx.subscribe()
    }

    /// Marks this recorder deposed: it ships nothing from now on.
    pub fn depose(&self, holder: Option<String>) {
        self.set(|s| {
            if s.role == Role::Leader {
                s.role = Role::Deposed;
            }
            if holder.is_some() {
                s.holder = holder;
            }
        });
    }
}

/// A new holder identity: the host name and 8 random hex digits.
pub fn identity() -> Result<String, rewind_history::store::StoreError> {
    let random = rewind_history::store::lineage::new_id()?;
    let host = rewind_history::store::lineage::host_name();
    Ok(format!("{host}-{}", random.get(..8).unwrap_or(&random)))
}

fn micro_now() -> Option<MicroTime> {
    jiff::Timestamp::from_millisecond(rewind_history::now_ms())
        .ok()
        .map(MicroTime)
}

/// The Lease's holder, if it names one.
fn holder_of(l: &Lease) -> Option<String> {
    l.spec
        .as_ref()
        .and_then(|s| s.holder_identity.clone())
        .filter(|h| !h.is_empty())
}

fn transitions_of(l: &Lease) -> u64 {
    l.spec
        .as_ref()
        .and_then(|s| s.lease_transitions)
        .and_then(|t| u64::try_from(t).ok())
        .unwrap_or(0)
}

/// Whether a Lease's holder let it lapse by the wall clock: `renewTime`
/// older than twice the duration (twice: clocks of two hosts differ).
fn lapsed_by_wall_clock(l: &Lease, duration: Duration) -> bool {
    let Some(renewed) = l
        .spec
        .as_ref()
        .and_then(|s| s.renew_time.as_ref().or(s.acquire_time.as_ref()))
    else {
        return true;
    };
    let age_ms = rewind_history::now_ms().saturating_sub(renewed.0.as_millisecond());
    let limit = i64::try_from(duration.as_millis().saturating_mul(2)).unwrap_or(i64::MAX);
    age_ms > limit
}

/// Takes, keeps and loses the Lease.
struct Elector {
    api: Api<Lease>,
    settings: LeaderSettings,
    leadership: Leadership,
    identity: String,
    /// The Lease's `resourceVersion` as first seen, and when.
    observed: Option<(String, Instant)>,
}

/// How one attempt went.
enum Outcome {
    /// This recorder holds the Lease (taken or renewed) as of the start of
    /// the attempt.
    Held { epoch: u64, took: bool },
    /// Someone else holds it; `holder` is who.
    Other { holder: Option<String> },
    /// The Lease changed between this recorder's read and its write (409
    /// Conflict): who holds it now needs another read.
    Conflict,
}

impl Elector {
    fn err(&self, action: &'static str) -> impl FnOnce(kube::Error) -> LeaderError + '_ {
        move |source| LeaderError::Kube {
            lease: self.settings.lease(),
            action,
            source,
        }
    }

    fn spec(&self, transitions: u64, acquire: bool, old: Option<&LeaseSpec>) -> LeaseSpec {
        let now = micro_now();
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: i32::try_from(self.settings.duration.as_secs()).ok(),
            acquire_time: if acquire {
                now.clone()
            } else {
                old.and_then(|o| o.acquire_time.clone())
            },
            renew_time: now,
            lease_transitions: i32::try_from(transitions).ok(),
            ..LeaseSpec::default()
        }
    }

    /// Who holds the Lease now, read again after a conflict; `None` when
    /// it names nobody or cannot be read.
    async fn holder_now(&self) -> Option<String> {
        match self.api.get_opt(&self.settings.name).await {
            Ok(Some(l)) => holder_of(&l),
            _ => None,
        }
    }

    /// One attempt to take or renew the Lease.
    async fn attempt(&mut self) -> Result<Outcome, LeaderError> {
        let current = self
            .api
            .get_opt(&self.settings.name)
            .await
            .map_err(self.err("read"))?;
        let Some(mut lease) = current else {
            let new = Lease {
                metadata: ObjectMeta {
                    name: Some(self.settings.name.clone()),
                    namespace: Some(self.settings.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.spec(0, true, None)),
            };
            return match self.api.create(&PostParams::default(), &new).await {
                Ok(_) => Ok(Outcome::Held {
                    epoch: 0,
                    took: true,
                }),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(Outcome::Conflict),
                Err(e) => Err(self.err("create")(e)),
            };
        };
        let holder = holder_of(&lease);
        let transitions = transitions_of(&lease);
        let mine = holder.as_deref() == Some(self.identity.as_str());
        if !mine && self.leadership.role() == Role::Leader {
            return Ok(Outcome::Other { holder });
        }
        if !mine && holder.is_some() {
            let rv = lease.metadata.resource_version.clone().unwrap_or_default();
            let since = match &self.observed {
                Some((seen, at)) if *seen == rv => *at,
                _ => {
                    let now = Instant::now();
                    self.observed = Some((rv, now));
                    now
                }
            };
            let lapsed = since.elapsed() >= self.settings.duration
                || lapsed_by_wall_clock(&lease, self.settings.duration);
            if !lapsed {
                return Ok(Outcome::Other { holder });
            }
            tracing::warn!(lease = %self.settings.lease(), holder = ?holder, "the Lease's holder stopped renewing it: taking it over");
        }
        let (epoch, took) = if mine {
            (transitions, false)
        } else {
            (transitions.saturating_add(1), true)
        };
        lease.spec = Some(self.spec(epoch, took, lease.spec.as_ref()));
        // `replace` sends the resourceVersion read above: a concurrent
        // update by anyone else makes this one fail with 409.
        match self
            .api
            .replace(&self.settings.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(Outcome::Held { epoch, took }),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(Outcome::Conflict),
            Err(e) => Err(self.err("update")(e)),
        }
    }
}

/// Takes the Lease as soon as it is free, then keeps renewing it, until
/// `stop` (returns `Ok`) or until deposed (returns the reason; the
/// [`Leadership`] is already marked deposed and ships nothing).
pub async fn run(
    client: Client,
    settings: LeaderSettings,
    leadership: Leadership,
    stop: CancellationToken,
) -> Result<(), LeaderError> {
    let identity = leadership.identity().unwrap_or_default().to_owned();
    let mut e = Elector {
        api: Api::namespaced(client, &settings.namespace),
        settings: settings.clone(),
        leadership: leadership.clone(),
        identity,
        observed: None,
    };
    let mut logged_error = false;
    let mut last_error = String::from("none");
    loop {
        let started = Instant::now();
        let was_leader = leadership.role() == Role::Leader;
        let attempt = tokio::time::timeout(settings.renew_deadline, e.attempt())
            .await
            .unwrap_or_else(|_| {
                Err(LeaderError::Timeout {
                    lease: settings.lease(),
                    after: settings.renew_deadline,
                })
            });
        match attempt {
            Ok(Outcome::Held { epoch, took }) => {
                logged_error = false;
                leadership.set(|s| {
                    s.role = Role::Leader;
                    s.renewed = Some(started);
                    s.epoch = Some(epoch);
                    s.holder = Some(e.identity.clone());
                    if took || !was_leader {
                        s.last_takeover_ms = Some(rewind_history::now_ms());
                    }
                });
                if !was_leader {
                    tracing::info!(lease = %settings.lease(), identity = %e.identity, epoch, "took the Lease: this recorder ships");
                }
            }
            Ok(Outcome::Other { holder }) if was_leader => {
                let holder = holder.unwrap_or_else(|| "(a concurrent update)".into());
                leadership.depose(Some(holder.clone()));
                tracing::error!(lease = %settings.lease(), holder = %holder, "another recorder holds the Lease: stopped shipping");
                return Err(LeaderError::Deposed {
                    lease: settings.lease(),
                    holder,
                });
            }
            Ok(Outcome::Other { holder }) => {
                if holder.is_some() {
                    leadership.set(|s| s.holder.clone_from(&holder));
                }
            }
            Ok(Outcome::Conflict) if was_leader => {
                // Updated by someone between this recorder's read and
                // write: deposed if another holder is named now; else
                // (its own earlier update, whose answer was lost) the
                // next round renews, within the deadline.
                match e.holder_now().await {
                    Some(h) if h == e.identity => {
                        last_error = "the Lease changed between read and update".into();
                    }
                    other => {
                        let holder = other.unwrap_or_else(|| "nobody".into());
                        leadership.depose(Some(holder.clone()));
                        tracing::error!(lease = %settings.lease(), holder = %holder, "another recorder updated the Lease: stopped shipping");
                        return Err(LeaderError::Deposed {
                            lease: settings.lease(),
                            holder,
                        });
                    }
                }
            }
            Ok(Outcome::Conflict) => {}
            Err(err) => {
                if was_leader {
                    tracing::warn!(lease = %settings.lease(), error = %err, "renewing the Lease failed; retrying");
                    last_error = err.to_string();
                } else if !std::mem::replace(&mut logged_error, true) {
                    tracing::warn!(lease = %settings.lease(), error = %err, "cannot read or take the Lease; retrying");
                }
            }
        }
        if was_leader && leadership.role() == Role::Leader {
            let after = leadership
                .lock()
                .renewed
                .map_or(Duration::MAX, |at| at.elapsed());
            if after >= settings.renew_deadline {
                leadership.depose(None);
                tracing::error!(lease = %settings.lease(), last_error = %last_error, "Lease not renewed within the renew deadline: stopped shipping");
                return Err(LeaderError::RenewDeadline {
                    lease: settings.lease(),
                    after,
                    last: last_error,
                });
            }
        }
        // A holder that cannot renew stops shipping at its deadline even
        // while this loop waits on a slow request.
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            () = tokio::time::sleep(settings.retry) => {}
        }
    }
}

/// Gives the Lease up after the last ship of a clean stop, so a standby
/// takes over at once. Does nothing unless this recorder holds it.
pub async fn release(client: Client, settings: &LeaderSettings, leadership: &Leadership) {
    if leadership.role() != Role::Leader {
        return;
    }
    let api: Api<Lease> = Api::namespaced(client, &settings.namespace);
    let identity = leadership.identity().unwrap_or_default().to_owned();
    leadership.set(|s| s.role = Role::Standby);
    let result = async {
        let Some(mut lease) = api.get_opt(&settings.name).await? else {
            return Ok(());
        };
        if holder_of(&lease).as_deref() != Some(identity.as_str()) {
            return Ok(());
        }
        if let Some(spec) = lease.spec.as_mut() {
            spec.holder_identity = None;
            spec.lease_duration_seconds = Some(1);
            spec.renew_time = micro_now();
        }
        api.replace(&settings.name, &PostParams::default(), &lease)
            .await
            .map(|_| ())
    }
    .await;
    match result {
        Ok(()) => tracing::info!(lease = %settings.lease(), "released the Lease"),
        Err(e) => {
            tracing::warn!(lease = %settings.lease(), error = %e, "cannot release the Lease; a standby takes over once it expires")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> LeaderSettings {
        LeaderSettings {
            namespace: "ns".into(),
            name: "l".into(),
            duration: Duration::from_secs(3),
            renew_deadline: Duration::from_millis(200),
            retry: Duration::from_millis(50),
        }
    }

    #[test]
    fn a_leader_ships_only_until_its_renew_deadline() {
        assert!(Leadership::unconfigured().may_ship());
        let l = Leadership::standby("me".into(), &settings());
        assert!(!l.may_ship(), "a standby never ships");
        l.set(|s| {
            s.role = Role::Leader;
            s.renewed = Some(Instant::now());
        });
        assert!(l.may_ship());
        std::thread::sleep(Duration::from_millis(250));
        assert!(
            !l.may_ship(),
            "past the renew deadline without a renewal: no shipping, whatever the loop does"
        );
        l.set(|s| s.renewed = Some(Instant::now()));
        assert!(l.may_ship());
        l.depose(Some("other".into()));
        assert_eq!(l.role(), Role::Deposed);
        assert!(!l.may_ship());
        assert_eq!(l.status().holder.as_deref(), Some("other"));
    }

    #[test]
    fn identities_differ_between_starts() {
        let a = identity().unwrap();
        let b = identity().unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with(&rewind_history::store::lineage::host_name()));
    }
}
