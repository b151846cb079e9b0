//! One object's writes: server-side apply, stale ownerReference cleanup,
//! CRD storedVersions merge, status; prune deletes; CRD establishment.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use kube::Client;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::{Value, json};

use super::Failure;
use crate::live::{self, ApiFailure, api_for, raw_api_for};
use crate::order::without_stale_refs;
use rewind_history::state::TypedKey;

/// A prepared write.
pub(super) struct Job {
    pub(super) key: TypedKey,
    pub(super) body: Value,
    pub(super) status: Option<Value>,
    /// For CRDs: the recorded `storedVersions`.
    pub(super) stored_versions: Vec<String>,
}

pub(super) type JobResult = (TypedKey, std::result::Result<Option<String>, Failure>, bool);

pub(super) fn failure(key: &TypedKey, step: &'static str, f: impl Into<ApiFailure>) -> Failure {
    Failure {
        object: key.to_string(),
        step,
        failure: f.into(),
    }
}

/// Server-side applies one object (and its status); returns its UID in the
/// target and whether status was written.
pub(super) async fn write_one(client: &Client, fm: &str, job: Job) -> JobResult {
    let Job {
        key,
        body,
        status,
        stored_versions,
    } = job;
    // Raw objects: the API answers each write with the whole object, which
    // may nest deeper than a `DynamicObject` can be parsed.
    let api = raw_api_for(client, &key.rtype, key.namespace.as_deref());
    let pp = PatchParams::apply(fm).force();
    let written = match api.patch(&key.name, &pp, &Patch::Apply(&body)).await {
        Ok(o) => o,
        Err(e) => return (key.clone(), Err(failure(&key, "apply", e)), false),
    };
    let uid = written.metadata().uid.clone();
    let live_refs: Vec<Value> = written
        .metadata()
        .owner_references
        .iter()
        .flatten()
        .filter_map(|r| serde_json::to_value(r).ok())
        .collect();
    if let Some(refs) = without_stale_refs(&body, &live_refs) {
        // A merge patch replaces the whole list, dropping the references
        // to the owners' old UIDs that the original creator still owns.
        let patch = json!({"metadata": {"ownerReferences": refs}});
        if let Err(e) = api
            .patch(
                &key.name,
                &PatchParams {
                    field_manager: Some(fm.to_owned()),
                    ..PatchParams::default()
                },
                &Patch::Merge(&patch),
            )
            .await
        {
            return (key.clone(), Err(failure(&key, "apply", e)), false);
        }
    }
    let mut status_done = false;
    if key.rtype.is_crd() && !stored_versions.is_empty() {
        let status = written
            .field("status")
            .and_then(|raw| rewind_history::deep::parse(raw.get().as_bytes()).ok());
        let live: Vec<String> = status
            .as_ref()
            .and_then(|s| s.get("storedVersions"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect();
        let served: HashSet<&str> = body
            .pointer("/spec/versions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|v| v.get("name").and_then(Value::as_str))
            .collect();
        let mut merged = live.clone();
        for v in stored_versions {
            if served.contains(v.as_str()) && !merged.contains(&v) {
                merged.push(v);
            }
        }
        if merged != live {
            let patch = json!({"status": {"storedVersions": merged}});
            if let Err(e) = api
                .patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                return (key.clone(), Err(failure(&key, "status", e)), false);
            }
        }
    }
    if let Some(st) = status {
        let mut obj = json!({
            "apiVersion": key.rtype.api_version(),
            "kind": key.rtype.kind,
            "metadata": {"name": key.name},
            "status": st,
        });
        if let (Some(ns), Some(m)) = (
            &key.namespace,
            obj.pointer_mut("/metadata").and_then(Value::as_object_mut),
        ) {
            m.insert("namespace".into(), Value::String(ns.clone()));
        }
        if let Err(e) = api.patch_status(&key.name, &pp, &Patch::Apply(&obj)).await {
            return (key.clone(), Err(failure(&key, "status", e)), false);
        }
        status_done = true;
    }
    (key, Ok(uid), status_done)
}

/// Deletes one object (prune); an object already gone is a success.
pub(super) async fn delete_one(
    client: &Client,
    key: TypedKey,
) -> (String, std::result::Result<(), Failure>) {
    let shown = format!("delete {key}");
    let api = raw_api_for(client, &key.rtype, key.namespace.as_deref());
    // kube's `Api::delete` parses the answer (the deleted object, for some
    // types) into a `Value` first, which fails past 128 levels: send the
    // request and read only the status code.
    let req = kube::core::Request::new(api.resource_url())
        .delete(&key.name, &DeleteParams::background())
        .map_err(kube::Error::BuildRequest);
    let r = match req {
        Ok(req) => client.request_text(req).await.map(drop),
        Err(e) => Err(e),
    };
    let r = match r {
        Ok(()) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(failure(&key, "delete", e)),
    };
    (shown, r)
}

/// Waits until the CRD `name` reports `Established=True`.
pub(super) async fn wait_established(
    client: &Client,
    name: &str,
    timeout: Duration,
) -> std::result::Result<(), ApiFailure> {
    let api = api_for(client, &live::crd_type(), None);
    let deadline = Instant::now() + timeout;
    loop {
        let crd = api.get(name).await?;
        let established = crd
            .data
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|c| {
                c.get("type").and_then(Value::as_str) == Some("Established")
                    && c.get("status").and_then(Value::as_str) == Some("True")
            });
        if established {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(ApiFailure {
                code: 0,
                reason: "Timeout".into(),
                message: format!("not Established after {} s", timeout.as_secs()),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
