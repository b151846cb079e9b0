//! Executing a [`RestorePlan`]: ordered, parallel, resumable.
//!
//! 1. Quiesce: named Deployments are scaled to zero (original replicas go to
//!    the journal first, so a crash cannot lose them).
//! 2. CRDs, by server-side apply; the live `storedVersions` are merged back
//!    (as BRO does) so versions still stored in etcd stay listed; then each
//!    written CRD is awaited until `Established`.
//! 3. Namespaces, then every other object level by level (see
//!    [`order`](crate::order)), each level in parallel with bounded
//!    concurrency, ownerReference UIDs rewired to the owners' new UIDs;
//!    admission webhooks and policies and APIServices last.
//! 4. Status through `/status` where the type has a status subresource.
//! 5. Prune deletions, then Deployments scaled back.
//!
//! A new object is created by server-side apply with Rewind's field
//! manager; an existing one that differs is replaced (PUT) at its live
//! resourceVersion, so the result equals the recorded object even where
//! other managers added fields since (server-side apply would keep those).
//! Transient failures are retried with backoff, and objects rejected for
//! a reference are tried once more after their level ([`retry`]). One bad
//! object never stops the rest: it is reported with the API's reason.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use indicatif::{ProgressBar, ProgressStyle};
use kube::Client;
use serde::Serialize;
use serde_json::Value;

use crate::live::ApiFailure;
use crate::order::{DroppedRef, OwnerIndex, phases, rewire_owner_refs};
use crate::plan::{Action, PlanItem, RestorePlan, StatusMode, write_parts};
use crate::quiesce;
use crate::resume::{Entry, Journal, JournalError};
use rewind_history::state::TypedKey;

pub mod retry;
mod write;

pub(crate) use write::recorded_version;
use write::{Job, Update, Writer, delete_one, failure, wait_established, write_one};

/// Pause before the second try of the objects of a level rejected for a
/// reference.
const DEFERRED_PAUSE: Duration = Duration::from_secs(1);

/// Errors that stop a restore (per-object failures do not: they are in the
/// [`ApplyReport`]).
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The journal could not be read or written.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// A Deployment could not be scaled down.
    #[error("cannot quiesce deployment {namespace}/{name}: {failure}")]
    Quiesce {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The API's answer.
        failure: ApiFailure,
    },
}

/// Result alias for this module.
pub type Result<T, E = ApplyError> = std::result::Result<T, E>;

/// Options for [`apply`].
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Objects written at once within a level.
    pub concurrency: usize,
    /// How long to wait for each CRD to become Established.
    pub crd_timeout: Duration,
    /// Server-side apply field manager.
    pub field_manager: String,
    /// Deployments (`namespace`, `name`) scaled to zero during the restore.
    pub quiesce: Vec<(String, String)>,
    /// Where the journal lives; `None` runs without one (no resume).
    pub state_dir: Option<PathBuf>,
    /// Continue the interrupted restore of the same plan.
    pub resume: bool,
    /// Show a progress bar (only on a terminal).
    pub progress: bool,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        Self {
            concurrency: 16,
            crd_timeout: Duration::from_secs(60),
            field_manager: "rewind".into(),
            quiesce: Vec::new(),
            state_dir: None,
            resume: false,
            progress: false,
        }
    }
}

/// One object the restore could not write.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    /// The object.
    pub object: String,
    /// What was being done: `apply`, `status`, `establish`, `delete`.
    pub step: &'static str,
    /// The API's answer.
    #[serde(flatten)]
    pub failure: ApiFailure,
    /// Whether this is the answer to a second try after its level (the
    /// first was rejected for a reference).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub retried_after_level: bool,
}

/// What a restore did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ApplyReport {
    /// The plan applied.
    pub plan_id: String,
    /// Objects written (created or updated).
    pub written: usize,
    /// Status subresources written.
    pub status_written: usize,
    /// Objects deleted by prune.
    pub deleted: usize,
    /// Objects skipped because the journal says they were already done.
    pub resumed: usize,
    /// Objects that failed, with the API's reason.
    pub failures: Vec<Failure>,
    /// Requests sent again after a transient failure (429, 5xx, timeout,
    /// connection reset); see [`retry`].
    pub retries: usize,
    /// Objects tried again after their level because their first write was
    /// rejected for a reference (admission, missing namespace).
    pub deferred_retries: usize,
    /// ownerReferences dropped because the owner is not restored.
    pub dropped_owner_refs: Vec<DroppedRef>,
    /// Objects in an ownership cycle (written, order among them arbitrary).
    pub ownership_cycles: Vec<String>,
    /// Deployments quiesced, with the replicas they were given back.
    pub quiesced: Vec<(String, String, i32)>,
    /// Wall time of the restore, milliseconds.
    pub elapsed_ms: u128,
}

fn progress_bar(show: bool, total: usize) -> ProgressBar {
    if !show || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(u64::try_from(total).unwrap_or(u64::MAX));
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} {msg:<14} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Writes `jobs[i]`, answering with `i` too (to try it again). `None` for
/// an index out of range (never: the caller passes its own indices).
async fn write_at(w: Writer<'_>, jobs: &[Job], i: usize) -> Option<(usize, write::JobResult)> {
    Some((i, write_one(w, jobs.get(i)?).await))
}

/// Applies `plan` to the cluster `client` talks to.
pub async fn apply(
    client: &Client,
    plan: &RestorePlan,
    opts: &ApplyOptions,
) -> Result<ApplyReport> {
    let start = Instant::now();
    let mut report = ApplyReport {
        plan_id: plan.id.clone(),
        ..ApplyReport::default()
    };
    let (mut journal, progress) = match (&opts.state_dir, opts.resume) {
        (Some(dir), true) => {
            let (j, p) = Journal::resume(dir, &plan.id)?;
            (Some(j), p)
        }
        (Some(dir), false) => (Some(Journal::create(dir, &plan.id)?), Default::default()),
        (None, _) => (None, Default::default()),
    };
    if opts.resume {
        tracing::info!(plan = %plan.id, done = progress.done.len(), "resuming restore");
    }

    let quiesced = quiesce::scale_down(client, &opts.quiesce, journal.as_mut(), &progress).await?;
    // A quiesced Deployment the restore also writes is written with zero
    // replicas and scaled to its restored value at the end.
    let scale_back = quiesce::scale_back_values(plan, &quiesced);

    let items: HashMap<&TypedKey, &PlanItem> = plan
        .items
        .iter()
        .filter(|i| i.action != Action::Delete)
        .map(|i| (&i.key, i))
        .collect();
    let mut new_uids: HashMap<TypedKey, String> = plan
        .items
        .iter()
        .filter(|i| i.action != Action::Delete)
        .filter_map(|i| i.live_uid.clone().map(|u| (i.key.clone(), u)))
        .collect();
    let retries = AtomicUsize::new(0);
    let w = Writer {
        client,
        fm: &opts.field_manager,
        retries: &retries,
    };
    let order = phases(&plan.state);
    report.ownership_cycles = order.cycles.iter().map(ToString::to_string).collect();
    let idx = OwnerIndex::new(&plan.state);
    let total = plan
        .items
        .iter()
        .filter(|i| matches!(i.action, Action::Create | Action::Update | Action::Delete))
        .count();
    let bar = progress_bar(opts.progress, total);

    let mut batches: Vec<(&str, &[TypedKey])> =
        vec![("crds", &order.crds), ("namespaces", &order.namespaces)];
    batches.extend(order.levels.iter().map(|l| ("objects", l.as_slice())));
    batches.push(("admission", &order.last));
    for (label, keys) in batches {
        bar.set_message(label);
        let mut jobs = Vec::new();
        for key in keys {
            let Some(item) = items
                .get(key)
                .filter(|i| matches!(i.action, Action::Create | Action::Update))
            else {
                continue;
            };
            let shown = key.to_string();
            if let Some(uid) = progress.done.get(&shown) {
                if let Some(u) = uid {
                    new_uids.insert(key.clone(), u.clone());
                }
                report.resumed += 1;
                bar.inc(1);
                continue;
            }
            let Some(obj) = plan.state.get(key) else {
                continue;
            };
            let mode = plan
                .modes
                .get(&key.rtype)
                .copied()
                .unwrap_or(StatusMode::Skip);
            let (mut body, status) = write_parts(obj, mode);
            if let Some(m) = body.as_object_mut() {
                // At the version the object was recorded at (write_one
                // addresses the API by it).
                let version = recorded_version(&key.rtype, obj);
                m.insert("apiVersion".into(), Value::String(version.api_version()));
                m.insert("kind".into(), Value::String(key.rtype.kind.clone()));
            }
            report
                .dropped_owner_refs
                .extend(rewire_owner_refs(key, &mut body, &idx, &new_uids));
            if key.rtype == quiesce::deployment_type()
                && let Some(ns) = &key.namespace
                && scale_back.contains_key(&(ns.clone(), key.name.clone()))
                && let Some(spec) = body.get_mut("spec").and_then(Value::as_object_mut)
            {
                spec.insert("replicas".into(), Value::from(0));
            }
            let stored_versions = if key.rtype.is_crd() {
                obj.pointer("/status/storedVersions")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            } else {
                Vec::new()
            };
            let update = (item.action == Action::Update).then(|| Update {
                resource_version: item.live_resource_version.clone(),
                live: item.live_object.clone(),
            });
            jobs.push(Job {
                key: key.clone(),
                body,
                status,
                stored_versions,
                update,
            });
        }
        let mut written_crds = Vec::new();
        let mut pending: Vec<usize> = (0..jobs.len()).collect();
        let jobs = jobs.as_slice();
        let mut second_round = false;
        loop {
            let mut results = stream::iter(pending)
                .map(|i| write_at(w, jobs, i))
                .buffer_unordered(opts.concurrency.max(1))
                .filter_map(futures::future::ready);
            let mut again = Vec::new();
            while let Some((i, (key, result, status_done))) = results.next().await {
                match result {
                    Ok(uid) => {
                        bar.inc(1);
                        report.written += 1;
                        report.status_written += usize::from(status_done);
                        if key.rtype.is_crd() {
                            written_crds.push(key.clone());
                        }
                        if let Some(u) = &uid {
                            new_uids.insert(key.clone(), u.clone());
                        }
                        if let Some(j) = journal.as_mut() {
                            j.append(&Entry::Done {
                                key: key.to_string(),
                                uid,
                            })?;
                        }
                    }
                    Err(f) if !second_round && retry::deferred(&f.failure) => {
                        tracing::info!(object = %f.object, reason = %f.failure.reason, message = %f.failure.message, "rejected for a reference; trying again after its level");
                        again.push(i);
                    }
                    Err(mut f) => {
                        bar.inc(1);
                        f.retried_after_level = second_round;
                        tracing::warn!(object = %f.object, step = f.step, reason = %f.failure.reason, message = %f.failure.message, "object not restored");
                        report.failures.push(f);
                    }
                }
            }
            drop(results);
            if again.is_empty() || second_round {
                break;
            }
            report.deferred_retries += again.len();
            // Admission webhooks check references against their caches,
            // which lag the writes they have just seen.
            tokio::time::sleep(DEFERRED_PAUSE).await;
            pending = again;
            second_round = true;
        }
        for key in written_crds {
            if let Err(f) = wait_established(w, &key.name, opts.crd_timeout).await {
                report.failures.push(failure(&key, "establish", f));
            }
        }
        if let Some(j) = journal.as_mut() {
            j.sync()?;
        }
    }

    // Prune, after every write: a dependent is never left without the owner
    // the restore was about to write.
    let mut deletes = Vec::new();
    for i in plan.items.iter().filter(|i| i.action == Action::Delete) {
        if progress.done.contains_key(&format!("delete {}", i.key)) {
            report.resumed += 1;
            bar.inc(1);
        } else {
            deletes.push(i.key.clone());
        }
    }
    bar.set_message("prune");
    let mut results = stream::iter(deletes)
        .map(|key| delete_one(w, key))
        .buffer_unordered(opts.concurrency.max(1));
    while let Some((shown, r)) = results.next().await {
        bar.inc(1);
        match r {
            Ok(()) => {
                report.deleted += 1;
                if let Some(j) = journal.as_mut() {
                    j.append(&Entry::Done {
                        key: shown,
                        uid: None,
                    })?;
                }
            }
            Err(f) => report.failures.push(f),
        }
    }
    drop(results);

    report.failures.extend(
        quiesce::scale_up(client, &quiesced, &scale_back, journal.as_mut(), &progress).await?,
    );
    report.quiesced = quiesced
        .iter()
        .map(|(ns, name, r)| {
            let to = scale_back
                .get(&(ns.clone(), name.clone()))
                .copied()
                .unwrap_or(*r);
            (ns.clone(), name.clone(), to)
        })
        .collect();
    if let Some(j) = journal.as_mut() {
        j.append(&Entry::Finished)?;
        j.sync()?;
    }
    bar.finish_and_clear();
    report.retries = retries.load(Ordering::Relaxed);
    report.elapsed_ms = start.elapsed().as_millis();
    tracing::info!(plan = %plan.id, written = report.written, failed = report.failures.len(), elapsed_ms = report.elapsed_ms, "restore applied");
    Ok(report)
}
