//! Following the API: discovery, one watcher per selected type, and the
//! loop that keeps the set of watchers in line with what the server serves.
//!
//! The supervisor rediscovers every `discovery_interval`, and soon after any
//! CRD event (a dedicated CRD watch only pokes it). A newly served type
//! that the resource set covers gets a watcher. A type whose CRD is deleted
//! gets its watcher stopped (after the deletions the watch delivered), then
//! a `TypeGone` so that objects whose deletion was not seen are recorded as
//! deleted; discovery alone never proves that (see [`gone`]). Types the
//! journal knows from an earlier run are checked the same way at start. A
//! group whose discovery fails leaves its watchers alone. A type the
//! resource set stops covering (a reload, or a start with a narrower set)
//! is taken out of the record with an `OutOfScope` observation.

pub mod discovery;
pub mod fields;
pub mod gone;
pub mod watcher;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::Api;
use kube::runtime::watcher as kwatcher;
use rewind_format::ResourceType;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::ingest::Observation;
use crate::journal::type_key;
use crate::status::WatchState;
use discovery::Discovered;
use rewind_history::select::ResourceSet;
use rewind_history::{KubeType, now_ms};
pub use watcher::{Msg, WatchCtx};

struct Running {
    rtype: Arc<ResourceType>,
    cancel: CancellationToken,
    handle: JoinHandle<()>,
}

/// Picks, per group/resource, the first served version (preferred first)
/// that the set covers.
#[must_use]
pub fn choose_types(
    d: &Discovered,
    set: &ResourceSet,
) -> BTreeMap<String, (ResourceType, rewind_history::select::TypeSelection)> {
    let mut out = BTreeMap::new();
    for t in &d.types {
        let tk = type_key(t);
        if out.contains_key(&tk) {
            continue;
        }
        if let Some(sel) = set.for_type(t) {
            out.insert(tk, (t.clone(), sel));
        }
    }
    out
}

/// Splits the group versions discovery failed on into the groups `set`
/// covers (their types go unrecorded: not ready) and the others, each
/// keyed by group (`core` for the core group) with `group/version: error`.
#[must_use]
pub fn failing_groups(
    d: &Discovered,
    set: &ResourceSet,
) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let mut covered = BTreeMap::new();
    let mut other = BTreeMap::new();
    for (gv, e) in &d.failed_versions {
        let group = gv.split_once('/').map_or("core", |(g, _)| g).to_owned();
        let line = format!("{gv}: {e}");
        if set.covers_api_version(gv) {
            other.remove(&group);
            covered.insert(group, line);
        } else if !covered.contains_key(&group) {
            other.insert(group, line);
        }
    }
    (covered, other)
}

/// The supervisor of all watchers.
pub struct Supervisor {
    ctx: WatchCtx,
    set: ResourceSet,
    interval: Duration,
    running: HashMap<String, Running>,
    /// Types recorded by earlier runs that have no watcher yet.
    known: HashMap<String, ResourceType>,
    poke: Arc<Notify>,
    /// New resource sets from a configuration reload (SIGHUP).
    updates: Option<tokio::sync::watch::Receiver<ResourceSet>>,
    /// Types discovery misses, waiting to be proven gone.
    gone: gone::GoneCheck,
}

impl Supervisor {
    /// A supervisor; `known` are the journal's type records.
    #[must_use]
    pub fn new(
        ctx: WatchCtx,
        set: ResourceSet,
        interval: Duration,
        known: Vec<ResourceType>,
    ) -> Self {
        Self {
            ctx,
            set,
            interval,
            running: HashMap::new(),
            known: known.into_iter().map(|t| (type_key(&t), t)).collect(),
            poke: Arc::new(Notify::new()),
            updates: None,
            gone: gone::GoneCheck::default(),
        }
    }

    /// Takes new resource sets from `updates` while running: watchers of
    /// types the new set no longer covers stop and their recorded objects
    /// are recorded as out of scope ([`Observation::OutOfScope`]), so later
    /// states no longer hold them; every other watcher restarts with the new
    /// selection (one relist each). An object that only stops matching a
    /// selector of a type still covered stays recorded, as leaving a
    /// selector never looks like a delete.
    #[must_use]
    pub fn with_updates(mut self, updates: tokio::sync::watch::Receiver<ResourceSet>) -> Self {
        self.updates = Some(updates);
        self
    }

    async fn next_update(
        updates: &mut Option<tokio::sync::watch::Receiver<ResourceSet>>,
    ) -> Option<ResourceSet> {
        let rx = updates.as_mut()?;
        match rx.changed().await {
            Ok(()) => Some(rx.borrow_and_update().clone()),
            Err(_) => {
                // The sender is gone: no more reloads, keep running.
                *updates = None;
                None
            }
        }
    }

    async fn stop_all(&mut self) {
        for (_, r) in self.running.drain() {
            r.cancel.cancel();
            let _ = r.handle.await;
        }
    }

    /// Runs until `cancel`, then stops every watcher and returns.
    pub async fn run(mut self, cancel: CancellationToken) {
        let crd_watch = tokio::spawn(watch_crds(
            self.ctx.client.clone(),
            self.poke.clone(),
            cancel.clone(),
        ));
        let mut last_group_error = String::new();
        let mut updates = self.updates.take();
        while !cancel.is_cancelled() {
            match discovery::discover(&self.ctx.client).await {
                Ok(d) => {
                    let (covered, other) = failing_groups(&d, &self.set);
                    for (g, e) in &covered {
                        warn!(group = %g, error = %e, "discovery of a recorded group fails; its types are not recorded");
                    }
                    self.ctx.board.update(|s| {
                        s.apiserver = None;
                        s.failing_groups = covered;
                        s.other_failing_groups = other;
                    });
                    self.reconcile(&d, &cancel).await;
                    // After reconcile put every selected type on the board:
                    // a discovered plane never looks ready with no types.
                    self.ctx
                        .board
                        .update(|s| s.discovered_at_ms = Some(now_ms()));
                    last_group_error.clear();
                }
                Err(e) => {
                    let discovery::Error::Groups(source) = &e;
                    let problem = crate::status::apiserver_problem(source);
                    if problem != last_group_error {
                        warn!(error = %problem, "discovery failed; retrying");
                        last_group_error.clone_from(&problem);
                    }
                    self.ctx.board.update(|s| s.apiserver = Some(problem));
                }
            }
            let has_updates = updates.is_some();
            let poke = Arc::clone(&self.poke);
            // A type suspected gone is looked at again soon: its second pass
            // decides (see `gone`).
            let next = if self.gone.pending() {
                self.interval.min(gone::CONFIRM_AFTER)
            } else {
                self.interval
            };
            let reloaded = tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(next) => None,
                Some(set) = Self::next_update(&mut updates), if has_updates => Some(set),
                () = poke.notified() => {
                    // Let a burst of CRD events settle (Established follows creation).
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    None
                }
            };
            if let Some(set) = reloaded {
                info!(
                    running = self.running.len(),
                    "resource set reloaded; restarting watchers with the new selection"
                );
                self.set = set;
                let stopped: Vec<Arc<ResourceType>> =
                    self.running.values().map(|r| r.rtype.clone()).collect();
                self.stop_all().await;
                // Types the new set still selects restart at the next
                // reconcile (just below) and say so themselves.
                for t in stopped {
                    self.ctx
                        .board
                        .update_type(&type_key(&t), &t.api_version(), &t.kind, |s| {
                            s.state = WatchState::Stopped;
                            s.reason = Some("not in the reloaded resource set".into());
                        });
                    // After the stopped watcher's last observations (one
                    // channel, in order).
                    if self.set.for_type(&t).is_none() {
                        self.out_of_scope(&t, &cancel).await;
                    }
                }
            }
        }
        self.stop_all().await;
        crd_watch.abort();
        let _ = crd_watch.await;
    }

    async fn reconcile(&mut self, d: &Discovered, cancel: &CancellationToken) {
        let desired = choose_types(d, &self.set);
        // Types discovery misses, running or recorded earlier; a partial
        // discovery (a starting API server) must not count as their end.
        let candidates: Vec<(String, ResourceType)> = self
            .running
            .iter()
            .map(|(tk, r)| (tk.clone(), (*r.rtype).clone()))
            .chain(self.known.iter().map(|(tk, t)| (tk.clone(), t.clone())))
            .filter(|(_, t)| d.misses(t))
            .collect::<BTreeMap<_, _>>()
            .into_iter()
            .collect();
        let proven = self
            .gone
            .confirm(&self.ctx.client, &d.ready, &candidates)
            .await;
        // Stop watchers of types that are gone or whose served version changed.
        let keys: Vec<String> = self.running.keys().cloned().collect();
        for tk in keys {
            let Some(r) = self.running.get(&tk) else {
                continue;
            };
            let gone = proven.contains(&tk);
            let moved = desired
                .get(&tk)
                .is_some_and(|(t, _)| t.version != r.rtype.version);
            if !gone && !moved {
                continue;
            }
            if let Some(r) = self.running.remove(&tk) {
                r.cancel.cancel();
                let _ = r.handle.await;
                if gone {
                    info!(rtype = %tk, "type no longer served; watcher stopped");
                    self.type_gone(&r.rtype, cancel).await;
                }
            }
        }
        // Types recorded by an earlier run and gone since.
        let known: Vec<ResourceType> = self.known.values().cloned().collect();
        for t in known {
            let tk = type_key(&t);
            if proven.contains(&tk) {
                self.known.remove(&tk);
                info!(rtype = %tk, "type recorded earlier is no longer served");
                self.type_gone(&Arc::new(t), cancel).await;
            } else if desired.contains_key(&tk) {
                self.known.remove(&tk);
            } else if self.set.for_type(&t).is_none() {
                self.known.remove(&tk);
                info!(rtype = %tk, "type recorded earlier is outside the resource set");
                self.out_of_scope(&Arc::new(t), cancel).await;
            }
        }
        for (tk, (t, sel)) in desired {
            if self.running.contains_key(&tk) {
                continue;
            }
            let rtype = Arc::new(t);
            // On the board before its task runs: not listed yet.
            self.ctx
                .board
                .update_type(&tk, &rtype.api_version(), &rtype.kind, |s| {
                    s.state = WatchState::Starting;
                    s.listed = false;
                });
            let child = cancel.child_token();
            let handle = tokio::spawn(watcher::watch_type(
                self.ctx.clone(),
                rtype.clone(),
                sel,
                child.clone(),
            ));
            self.running.insert(
                tk,
                Running {
                    rtype,
                    cancel: child,
                    handle,
                },
            );
        }
    }

    /// Takes a type the resource set no longer covers out of the record
    /// ([`Observation::OutOfScope`]).
    async fn out_of_scope(&self, rtype: &Arc<ResourceType>, cancel: &CancellationToken) {
        let obs = Observation::OutOfScope {
            rtype: rtype.clone(),
            at_ms: now_ms(),
        };
        tokio::select! {
            () = cancel.cancelled() => {}
            _ = self.ctx.tx.send(Msg { obs, permit: None }) => {}
        }
    }

    async fn type_gone(&self, rtype: &Arc<ResourceType>, cancel: &CancellationToken) {
        let tk = type_key(rtype);
        let ns = KubeType::api_resource(&ResourceType {
            group: String::new(),
            version: "v1".into(),
            resource: "namespaces".into(),
            kind: "Namespace".into(),
            namespaced: false,
        });
        // Any collection's current resourceVersion is the cluster's (one
        // etcd revision), so it bounds when the type disappeared.
        let list_rv = watcher::collection_rv(&self.ctx.client, &ns)
            .await
            .unwrap_or_default();
        self.ctx
            .board
            .update_type(&tk, &rtype.api_version(), &rtype.kind, |t| {
                t.state = WatchState::Stopped;
                t.reason = Some("no longer served".into());
            });
        let obs = Observation::TypeGone {
            rtype: rtype.clone(),
            list_rv,
            at_ms: now_ms(),
        };
        tokio::select! {
            () = cancel.cancelled() => {}
            _ = self.ctx.tx.send(Msg { obs, permit: None }) => {}
        }
    }
}

/// Pokes the supervisor on every CRD change, so new types are picked up in
/// about a second rather than at the next periodic discovery.
async fn watch_crds(client: kube::Client, poke: Arc<Notify>, cancel: CancellationToken) {
    let api: Api<CustomResourceDefinition> = Api::all(client);
    let stream = kwatcher::watcher(api, kwatcher::Config::default());
    let mut stream = std::pin::pin!(kube::runtime::WatchStreamExt::backoff(
        stream,
        watcher::backoff()
    ));
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            ev = stream.next() => match ev {
                None => return,
                Some(Ok(kwatcher::Event::Apply(_) | kwatcher::Event::Delete(_) | kwatcher::Event::InitDone)) => poke.notify_one(),
                Some(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rewind_history::select::ResourceSelector;

    #[test]
    fn only_failing_groups_the_set_covers_count() {
        let set = ResourceSet::compile(
            &[ResourceSelector {
                api_version: "metrics.k8s.io/v1beta1".into(),
                ..ResourceSelector::default()
            }],
            "test",
        )
        .unwrap();
        let mut d = Discovered::default();
        d.failed_versions
            .insert("metrics.k8s.io/v1beta1".into(), "503".into());
        d.failed_versions
            .insert("custom.metrics.k8s.io/v1beta2".into(), "503".into());
        let (covered, other) = failing_groups(&d, &set);
        assert_eq!(
            covered.keys().collect::<Vec<_>>(),
            ["metrics.k8s.io"],
            "{covered:?}"
        );
        assert!(covered["metrics.k8s.io"].contains("503"));
        assert_eq!(other.keys().collect::<Vec<_>>(), ["custom.metrics.k8s.io"]);
        let (all, none) = failing_groups(&d, &ResourceSet::everything());
        assert_eq!(all.len(), 2);
        assert!(none.is_empty());
    }
}
