//! One kube watcher per resource type, feeding the journal writer.
//!
//! kube's `watcher` (default `ListWatch`, `MostRecent` lists) does the
//! list/watch protocol, 410 relists, and reconnects; [`backoff`] spaces out
//! retries. This task adds what a recorder needs on top:
//! - `Init`/`InitDone` become `ResyncBegin`/`ResyncEnd`, so the writer can
//!   infer deletions missed during a gap (see [`crate::ingest::relist`]).
//!   kube does not expose the list's resourceVersion, so at `InitDone` we
//!   read the collection's current resourceVersion (a `limit=1` list): an
//!   upper bound of the list's, which is what "deleted at or before" needs.
//! - Selection, evaluated here (in parallel across types), never as a
//!   watch selector.
//! - Objects are watched as [`RawObject`]s (raw JSON pieces, see
//!   [`rewind_history::raw`]), so an object nested deeper than serde_json's limit is
//!   recorded like any other instead of failing its type's LIST.
//! - Each object is written once, with `apiVersion`/`kind` filled in
//!   (list items lack them), and sent with a permit from the byte budget
//!   that bounds memory between watchers and the journal.
//!
//! Resuming after a restart: kube's watcher always starts with a LIST, and
//! that relist is diffed against the journal's state (dedup on
//! `(uid, resourceVersion)`, uid check, inferred deletes). So a restart
//! neither duplicates nor misses anything, whether or not the stored
//! resourceVersions are still within the etcd compaction window.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::Client;
use kube::api::{Api, ApiResource, ListMeta, ListParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use rewind_format::ResourceType;
use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::ingest::{Observation, ObservedObject};
use crate::journal::type_key;
use crate::status::{Board, WatchState};
use rewind_history::KubeType;
use rewind_history::now_ms;
use rewind_history::select::{ObjectView, TypeSelection};

use super::fields;
use rewind_history::raw::RawObject;

/// The cap of the doubling wait between two watch retries; jitter adds up
/// to as much again, so a wait is at most twice this. kube's default cap is
/// 30 s (waits up to 60 s), reset only after 120 s without an error, so an
/// apiserver that restarts repeatedly drives the waits to the cap and the
/// recorder lags far behind the last restart (`docs/BENCHMARKS.md`,
/// "Design measurements"). A recorder's lag is its recovery point; 100
/// watchers retrying every 4-8 s are about 15 requests a second.
const BACKOFF_MAX: Duration = Duration::from_secs(4);

/// Longer than the longest backoff plus a request.
const RECOVERED_AFTER: Duration = Duration::from_secs(15);

/// The retry schedule of every watch: kube's default (doubling from
/// 800 ms, jittered, reset after 120 s without an error) with the cap
/// [`BACKOFF_MAX`].
#[must_use]
pub fn backoff() -> impl kube::runtime::utils::Backoff {
    kube::runtime::utils::ResetTimerBackoff::new(
        watcher::ExponentialBackoff::from(
            backon::ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(800))
                .with_max_delay(BACKOFF_MAX)
                .with_factor(2.0)
                .with_jitter()
                .without_max_times(),
        ),
        Duration::from_secs(120),
    )
}

/// A message to the journal writer: an observation and the memory budget it
/// holds until its batch is durable.
pub struct Msg {
    /// What was observed.
    pub obs: Observation,
    /// Released when the writer drops the message.
    pub permit: Option<OwnedSemaphorePermit>,
}

/// What every watcher shares.
#[derive(Clone)]
pub struct WatchCtx {
    /// API client.
    pub client: Client,
    /// To the journal writer.
    pub tx: mpsc::Sender<Msg>,
    /// Byte budget of object JSON in flight.
    pub budget: Arc<Semaphore>,
    /// Total permits of `budget`.
    pub budget_total: u32,
    /// Status.
    pub board: Board,
}

/// A LIST's `metadata`; its items are skipped unparsed (serde_json skips
/// without a depth limit), so no object can make this fail.
#[derive(serde::Deserialize)]
struct ListRv {
    #[serde(default)]
    metadata: ListMeta,
}

/// A metadata-only `limit=1` LIST of a collection: the cheapest request
/// that says whether a type is served and what its resourceVersion is.
pub fn first_page_request(
    ar: &ApiResource,
) -> Result<axum::http::Request<Vec<u8>>, kube::core::request::Error> {
    let url = <RawObject as kube::Resource>::url_path(ar, None);
    kube::core::Request::new(url).list_metadata(&ListParams::default().limit(1))
}

/// The current resourceVersion of a collection (a metadata-only `limit=1`
/// LIST).
pub async fn collection_rv(client: &Client, ar: &ApiResource) -> Option<String> {
    let req = match first_page_request(ar) {
        Ok(r) => r,
        Err(e) => {
            debug!(error = %e, "building the resourceVersion request failed");
            return None;
        }
    };
    match client.request::<ListRv>(req).await {
        Ok(list) => list.metadata.resource_version.filter(|rv| !rv.is_empty()),
        Err(e) => {
            debug!(error = %e, "reading the collection's resourceVersion failed");
            None
        }
    }
}

/// Whether the type's selection selects `obj`. Only a type with field
/// selectors looks past name, namespace and labels, and then only at the
/// paths they name (see [`fields`]). An object those paths cannot be read
/// from is recorded: one object too many can be dropped later, a missing
/// one cannot be brought back.
fn selects(
    rtype: &ResourceType,
    av: &str,
    sel: &TypeSelection,
    obj: &RawObject,
    name: &str,
    namespace: &str,
) -> bool {
    let mut paths = sel.field_paths().peekable();
    let object = if paths.peek().is_none() {
        Value::Null
    } else {
        match fields::view(obj, av, &rtype.kind, paths) {
            Ok(v) => v,
            Err(e) => {
                warn!(rtype = %type_key(rtype), %namespace, %name, error = %e,
                    "field selectors cannot be evaluated on this object; recording it");
                return true;
            }
        }
    };
    let empty = BTreeMap::new();
    sel.selects(&ObjectView {
        name,
        namespace,
        labels: obj.metadata().labels.as_ref().unwrap_or(&empty),
        object: &object,
    })
}

/// Serializes an object for the journal; `None` (logged) if it cannot be
/// keyed or serialized.
fn observe(
    rtype: &ResourceType,
    av: &str,
    sel: &TypeSelection,
    obj: &RawObject,
) -> Option<ObservedObject> {
    let meta = obj.metadata();
    let Some(name) = meta.name.clone().filter(|n| !n.is_empty()) else {
        warn!(rtype = %type_key(rtype), "object without a name, skipped");
        return None;
    };
    let namespace = meta.namespace.clone().unwrap_or_default();
    let selected = selects(rtype, av, sel, obj, &name, &namespace);
    let json = match obj.to_json(av, &rtype.kind) {
        Ok(j) => j,
        Err(e) => {
            warn!(rtype = %type_key(rtype), %namespace, %name, error = %e, "object does not serialize, skipped");
            return None;
        }
    };
    Some(ObservedObject {
        namespace,
        name,
        uid: meta.uid.clone().unwrap_or_default(),
        resource_version: meta.resource_version.clone().unwrap_or_default(),
        json,
        selected,
        observed_at_ms: now_ms(),
    })
}

impl WatchCtx {
    async fn send_applied(
        &self,
        rtype: &Arc<ResourceType>,
        object: ObservedObject,
        relist: bool,
        cancel: &CancellationToken,
    ) -> bool {
        let n = object.json.len();
        let obs = Observation::Applied {
            rtype: rtype.clone(),
            object,
            relist,
        };
        self.send(obs, n, cancel).await
    }

    /// Sends to the writer, waiting for budget; `false` when cancelled or
    /// the writer is gone.
    async fn send(&self, obs: Observation, bytes: usize, cancel: &CancellationToken) -> bool {
        let want = u32::try_from(bytes)
            .unwrap_or(u32::MAX)
            .clamp(1, self.budget_total.max(1));
        let permit = tokio::select! {
            () = cancel.cancelled() => return false,
            p = self.budget.clone().acquire_many_owned(want) => match p {
                Ok(p) => p,
                Err(_) => return false,
            },
        };
        let msg = Msg {
            obs,
            permit: Some(permit),
        };
        tokio::select! {
            () = cancel.cancelled() => false,
            r = self.tx.send(msg) => r.is_ok(),
        }
    }
}

/// Watches one type until cancelled.
pub async fn watch_type(
    ctx: WatchCtx,
    rtype: Arc<ResourceType>,
    sel: TypeSelection,
    cancel: CancellationToken,
) {
    let tk = type_key(&rtype);
    let av = rtype.api_version();
    let ar = rtype.api_resource();
    let api: Api<RawObject> = Api::all_with(ctx.client.clone(), &ar);
    let set_state = |state: WatchState, reason: Option<String>| {
        ctx.board.update_type(&tk, &av, &rtype.kind, |t| {
            t.state = state;
            t.reason = reason;
        });
    };
    set_state(WatchState::Starting, None);
    // A new watcher (start, reload, a changed version) lists first.
    ctx.board
        .update_type(&tk, &av, &rtype.kind, |t| t.listed = false);
    info!(rtype = %tk, version = %rtype.version, selectors = sel.selector_count(), "watching");
    let stream = watcher::watcher(api.clone(), watcher::Config::default()).backoff(backoff());
    let mut stream = std::pin::pin!(stream);
    let mut last_error: Option<String> = None;
    let mut max_relist_rv: u64 = 0;
    let mut relisting = false;
    let mut listed = false;
    loop {
        let ev = tokio::select! {
            () = cancel.cancelled() => break,
            ev = stream.next() => ev,
            // kube's watcher reports errors but not a successful retry of a
            // watch start; a quiet type would look failed forever. No new
            // error for longer than the longest backoff means the retry held.
            () = tokio::time::sleep(RECOVERED_AFTER), if last_error.is_some() => {
                info!(rtype = %tk, "watch recovered");
                last_error = None;
                set_state(if relisting { WatchState::Relisting } else { WatchState::Watching }, None);
                continue;
            }
        };
        let Some(ev) = ev else { break };
        let ev = match ev {
            Ok(ev) => ev,
            Err(e) => {
                let msg = e.to_string();
                if last_error.as_deref() != Some(msg.as_str()) {
                    warn!(rtype = %tk, error = %msg, "watch failed; retrying with backoff");
                    last_error = Some(msg.clone());
                }
                set_state(WatchState::Failing, Some(msg));
                continue;
            }
        };
        if last_error.take().is_some() {
            info!(rtype = %tk, "watch recovered");
            set_state(
                if relisting {
                    WatchState::Relisting
                } else {
                    WatchState::Watching
                },
                None,
            );
        }
        let now = now_ms();
        ctx.board
            .update_type(&tk, &av, &rtype.kind, |t| t.last_observed_ms = Some(now));
        let sent = match ev {
            Event::Init => {
                relisting = true;
                set_state(WatchState::Relisting, None);
                if std::mem::replace(&mut listed, true) {
                    ctx.board
                        .update_type(&tk, &av, &rtype.kind, |t| t.relists += 1);
                }
                max_relist_rv = 0;
                ctx.send(
                    Observation::ResyncBegin {
                        rtype: rtype.clone(),
                        at_ms: now,
                    },
                    0,
                    &cancel,
                )
                .await
            }
            Event::InitApply(obj) => {
                let Some(o) = observe(&rtype, &av, &sel, &obj) else {
                    continue;
                };
                if let Ok(rv) = o.resource_version.parse::<u64>() {
                    max_relist_rv = max_relist_rv.max(rv);
                }
                ctx.send_applied(&rtype, o, true, &cancel).await
            }
            Event::Apply(obj) => {
                let Some(o) = observe(&rtype, &av, &sel, &obj) else {
                    continue;
                };
                ctx.send_applied(&rtype, o, false, &cancel).await
            }
            Event::Delete(obj) => {
                let Some(o) = observe(&rtype, &av, &sel, &obj) else {
                    continue;
                };
                let n = o.json.len();
                ctx.send(
                    Observation::Deleted {
                        rtype: rtype.clone(),
                        object: o,
                    },
                    n,
                    &cancel,
                )
                .await
            }
            Event::InitDone => {
                let list_rv = match collection_rv(&ctx.client, &ar).await {
                    Some(rv) => rv,
                    None => {
                        warn!(rtype = %tk, "cannot read the list's resourceVersion; using the newest listed object's");
                        max_relist_rv.to_string()
                    }
                };
                let sent = ctx
                    .send(
                        Observation::ResyncEnd {
                            rtype: rtype.clone(),
                            list_rv,
                            at_ms: now_ms(),
                        },
                        0,
                        &cancel,
                    )
                    .await;
                relisting = false;
                set_state(WatchState::Watching, None);
                ctx.board
                    .update_type(&tk, &av, &rtype.kind, |t| t.listed = true);
                sent
            }
        };
        if !sent {
            break;
        }
    }
    debug!(rtype = %tk, "watcher stopped");
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::utils::Backoff as _;

    #[test]
    fn watch_retries_wait_at_most_twice_the_cap_and_reach_it() {
        let mut b = backoff();
        let waits: Vec<Duration> = (0..40).filter_map(|_| b.next()).collect();
        assert_eq!(waits.len(), 40, "the backoff never gives up");
        assert!(waits.iter().all(|w| *w <= BACKOFF_MAX * 2), "{waits:?}");
        assert!(waits[0] < Duration::from_secs(2), "{waits:?}");
        assert!(
            waits[10..].iter().all(|w| *w >= BACKOFF_MAX),
            "grows to the cap: {waits:?}"
        );
        b.reset();
        assert!(b.next().is_some_and(|w| w < Duration::from_secs(2)));
    }
}
