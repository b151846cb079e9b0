//! Quiesce: named Deployments (controllers that would fight a half-written
//! plane, e.g. Rancher itself) are scaled to zero during a restore and back
//! afterwards.
//!
//! The original replicas are journaled and synced *before* the scale-down:
//! after a crash the live value is 0, so the journal is the only place the
//! original survives, and `--resume` takes it from there. A quiesced
//! Deployment that the restore also writes is scaled back to its restored
//! replicas instead, since the restored state is what the operator asked for.

use std::collections::HashMap;

use kube::Client;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

use crate::apply::{ApplyError, Failure};
use crate::live::{ApiFailure, api_for};
use crate::plan::{Action, RestorePlan};
use crate::resume::{Entry, Journal, Progress};
use rewind_history::state::{ResourceType, TypedKey};

/// The Deployment type.
#[must_use]
pub fn deployment_type() -> ResourceType {
    ResourceType {
        group: "apps".into(),
        version: "v1".into(),
        resource: "deployments".into(),
        kind: "Deployment".into(),
        namespaced: true,
    }
}

/// Sets a Deployment's replicas; returns the previous value, `None` when
/// the Deployment does not exist.
async fn scale(
    client: &Client,
    ns: &str,
    name: &str,
    replicas: i32,
) -> Result<Option<i32>, ApiFailure> {
    let api = api_for(client, &deployment_type(), Some(ns));
    let current = match api.get(name).await {
        Ok(d) => d
            .data
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1),
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let patch = json!({"spec": {"replicas": replicas}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(Some(i32::try_from(current).unwrap_or(i32::MAX)))
}

/// Scales `targets` to zero, journaling each original replica count first.
/// Deployments the journal already has (a resumed restore) are kept with
/// their journaled count.
pub async fn scale_down(
    client: &Client,
    targets: &[(String, String)],
    mut journal: Option<&mut Journal>,
    progress: &Progress,
) -> Result<Vec<(String, String, i32)>, ApplyError> {
    let mut quiesced = progress.quiesced.clone();
    for (ns, name) in targets {
        if quiesced.iter().any(|(n, m, _)| n == ns && m == name) {
            continue;
        }
        let api = api_for(client, &deployment_type(), Some(ns));
        let replicas = match api.get(name).await {
            Ok(d) => d
                .data
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1),
            Err(kube::Error::Api(s)) if s.code == 404 => {
                tracing::warn!(namespace = %ns, name = %name, "deployment to quiesce not found");
                continue;
            }
            Err(e) => {
                return Err(ApplyError::Quiesce {
                    namespace: ns.clone(),
                    name: name.clone(),
                    failure: e.into(),
                });
            }
        };
        let replicas = i32::try_from(replicas).unwrap_or(i32::MAX);
        if let Some(j) = journal.as_deref_mut() {
            j.append(&Entry::Quiesced {
                namespace: ns.clone(),
                name: name.clone(),
                replicas,
            })?;
            j.sync()?;
        }
        scale(client, ns, name, 0)
            .await
            .map_err(|failure| ApplyError::Quiesce {
                namespace: ns.clone(),
                name: name.clone(),
                failure,
            })?;
        tracing::info!(namespace = %ns, name = %name, replicas, "deployment quiesced");
        quiesced.push((ns.clone(), name.clone(), replicas));
    }
    Ok(quiesced)
}

/// For quiesced Deployments the plan writes: the replicas to scale back to.
#[must_use]
pub fn scale_back_values(
    plan: &RestorePlan,
    quiesced: &[(String, String, i32)],
) -> HashMap<(String, String), i32> {
    let mut out = HashMap::new();
    for (ns, name, _) in quiesced {
        let key = TypedKey {
            rtype: deployment_type(),
            namespace: Some(ns.clone()),
            name: name.clone(),
        };
        let written = plan
            .items
            .iter()
            .any(|i| i.key == key && matches!(i.action, Action::Create | Action::Update));
        if let (true, Some(obj)) = (written, plan.state.get(&key)) {
            let r = obj
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            out.insert(
                (ns.clone(), name.clone()),
                i32::try_from(r).unwrap_or(i32::MAX),
            );
        }
    }
    out
}

/// Scales quiesced Deployments back; failures are returned, not fatal.
pub async fn scale_up(
    client: &Client,
    quiesced: &[(String, String, i32)],
    scale_back: &HashMap<(String, String), i32>,
    mut journal: Option<&mut Journal>,
    progress: &Progress,
) -> Result<Vec<Failure>, ApplyError> {
    let mut failures = Vec::new();
    for (ns, name, original) in quiesced {
        if progress
            .unquiesced
            .iter()
            .any(|(n, m)| n == ns && m == name)
        {
            continue;
        }
        let to = scale_back
            .get(&(ns.clone(), name.clone()))
            .copied()
            .unwrap_or(*original);
        match scale(client, ns, name, to).await {
            Ok(_) => {
                if let Some(j) = journal.as_deref_mut() {
                    j.append(&Entry::Unquiesced {
                        namespace: ns.clone(),
                        name: name.clone(),
                    })?;
                }
                tracing::info!(namespace = %ns, name = %name, replicas = to, "deployment scaled back");
            }
            Err(failure) => failures.push(Failure {
                object: format!("deployments.apps/{ns}/{name}"),
                step: "unquiesce",
                failure,
                retried_after_level: false,
            }),
        }
    }
    Ok(failures)
}
