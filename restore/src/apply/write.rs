//! One object's writes. A new object is created by server-side apply; an
//! existing one that differs is replaced (PUT) at the live
//! resourceVersion, so fields other managers added since the recorded
//! point are removed and the object equals the recorded one (a conflict
//! re-reads it and tries again). Then the CRD storedVersions merge and
//! status (applied for a new object, replaced for an existing one); prune
//! deletes; CRD establishment.

use std::collections::HashSet;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, core::Request};
use serde_json::{Value, json};

use super::Failure;
use super::retry::transient;
use crate::actions;
use crate::live::{self, ApiFailure, api_for, raw_api_for};
use crate::order::without_stale_refs;
use rewind_history::raw::RawObject;
use rewind_history::state::{ResourceType, TypedKey};

/// Attempts of a replace that keeps meeting a newer resourceVersion.
const CONFLICT_ATTEMPTS: usize = 5;

/// The target, and how every request to it is made.
#[derive(Clone, Copy)]
pub(super) struct Writer<'a> {
    pub(super) client: &'a Client,
    /// Field manager of every write.
    pub(super) fm: &'a str,
    /// Transient failures retried so far (see [`transient`]).
    pub(super) retries: &'a AtomicUsize,
}

/// What an update of an existing object starts from.
#[derive(Clone)]
pub(super) struct Update {
    /// The live resourceVersion when planned.
    pub(super) resource_version: Option<String>,
    /// The live object when planned, for the fields carried over from it;
    /// read when needed and absent.
    pub(super) live: Option<Value>,
}

/// A prepared write.
pub(super) struct Job {
    pub(super) key: TypedKey,
    pub(super) body: Value,
    pub(super) status: Option<Value>,
    /// For CRDs: the recorded `storedVersions`.
    pub(super) stored_versions: Vec<String>,
    /// `Some` for an object that exists (replaced), `None` for a new one
    /// (applied).
    pub(super) update: Option<Update>,
}

pub(super) type JobResult = (TypedKey, std::result::Result<Option<String>, Failure>, bool);

pub(super) fn failure(key: &TypedKey, step: &'static str, f: impl Into<ApiFailure>) -> Failure {
    Failure {
        object: key.to_string(),
        step,
        failure: f.into(),
        retried_after_level: false,
    }
}

fn api_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

/// PUTs `body` as `name` (or its status), answering with the raw object.
async fn replace_raw(
    w: Writer<'_>,
    api: &Api<RawObject>,
    name: &str,
    body: &Value,
    status: bool,
) -> kube::Result<RawObject> {
    let pp = PostParams {
        field_manager: Some(w.fm.to_owned()),
        ..PostParams::default()
    };
    let bytes = serde_json::to_vec(body).map_err(kube::Error::SerdeError)?;
    transient(w.retries, || {
        let url = Request::new(api.resource_url());
        let req = if status {
            url.replace_subresource("status", name, &pp, bytes.clone())
        } else {
            url.replace(name, &pp, bytes.clone())
        }
        .map_err(kube::Error::BuildRequest);
        async move { w.client.request::<RawObject>(req?).await }
    })
    .await
}

/// The live object, parsed; `Ok(None)` when it does not exist.
async fn read_live(
    w: Writer<'_>,
    api: &Api<RawObject>,
    name: &str,
) -> Result<Option<Value>, ApiFailure> {
    match transient(w.retries, || api.get(name)).await {
        Ok(o) => o.to_value().map(Some).map_err(|e| ApiFailure {
            code: 0,
            reason: "ClientError".into(),
            message: format!("cannot read the live object: {e}"),
        }),
        Err(e) if api_code(&e) == Some(404) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn set_resource_version(obj: &mut Value, rv: Option<&str>) {
    if let (Some(rv), Some(meta)) = (rv, obj.get_mut("metadata").and_then(Value::as_object_mut)) {
        meta.insert("resourceVersion".into(), Value::String(rv.to_owned()));
    }
}

/// Replaces an existing object with `body` at the live resourceVersion,
/// carrying over what the restore actions leave to the target. The object
/// as the API answered, or `None` when it is gone (to be created instead).
async fn replace_main(
    w: Writer<'_>,
    api: &Api<RawObject>,
    key: &TypedKey,
    body: &Value,
    update: Update,
) -> Result<Option<RawObject>, Failure> {
    let Update {
        mut resource_version,
        mut live,
    } = update;
    // Read the live object first when fields are carried over from it, and
    // again after a conflict (for its newer resourceVersion).
    let mut read_first = actions::has_carry_over(&key.rtype, body);
    for attempt in 1..=CONFLICT_ATTEMPTS {
        if read_first && live.is_none() {
            match read_live(w, api, &key.name).await {
                Ok(Some(l)) => {
                    resource_version = l
                        .pointer("/metadata/resourceVersion")
                        .and_then(Value::as_str)
                        .map(str::to_owned);
                    live = Some(l);
                }
                Ok(None) => return Ok(None),
                Err(f) => return Err(failure(key, "update", f)),
            }
        }
        let mut b = body.clone();
        if let Some(l) = &live {
            actions::carry_over(key, &mut b, l);
        }
        set_resource_version(&mut b, resource_version.as_deref());
        match replace_raw(w, api, &key.name, &b, false).await {
            Ok(o) => return Ok(Some(o)),
            Err(e) if api_code(&e) == Some(404) => return Ok(None),
            Err(e) if api_code(&e) == Some(409) && attempt < CONFLICT_ATTEMPTS => {
                tracing::debug!(object = %key, attempt, "changed since planned; re-reading");
                live = None;
                read_first = true;
            }
            Err(e) => return Err(failure(key, "update", e)),
        }
    }
    Err(failure(
        key,
        "update",
        ApiFailure {
            code: 409,
            reason: "Conflict".into(),
            message: format!("still changing after {CONFLICT_ATTEMPTS} attempts"),
        },
    ))
}

/// Server-side applies a new object, then drops the references to its
/// owners' old UIDs another manager may still own.
async fn apply_main(
    w: Writer<'_>,
    api: &Api<RawObject>,
    key: &TypedKey,
    body: &Value,
) -> Result<RawObject, Failure> {
    let pp = PatchParams::apply(w.fm).force();
    let patch = Patch::Apply(body);
    let written = transient(w.retries, || api.patch(&key.name, &pp, &patch))
        .await
        .map_err(|e| failure(key, "apply", e))?;
    let live_refs: Vec<Value> = written
        .metadata()
        .owner_references
        .iter()
        .flatten()
        .filter_map(|r| serde_json::to_value(r).ok())
        .collect();
    if let Some(refs) = without_stale_refs(body, &live_refs) {
        // A merge patch replaces the whole list, dropping the references
        // to the owners' old UIDs that the original creator still owns.
        let patch = json!({"metadata": {"ownerReferences": refs}});
        let merge = Patch::Merge(&patch);
        let pp = PatchParams {
            field_manager: Some(w.fm.to_owned()),
            ..PatchParams::default()
        };
        transient(w.retries, || api.patch(&key.name, &pp, &merge))
            .await
            .map_err(|e| failure(key, "apply", e))?;
    }
    Ok(written)
}

/// Replaces the status of an existing object with `status`, starting from
/// `written` (the object as just written).
async fn replace_status(
    w: Writer<'_>,
    api: &Api<RawObject>,
    key: &TypedKey,
    written: &RawObject,
    status: &Value,
) -> Result<(), Failure> {
    let mut obj = written.to_value().map_err(|e| {
        failure(
            key,
            "status",
            ApiFailure {
                code: 0,
                reason: "ClientError".into(),
                message: format!("cannot read the written object: {e}"),
            },
        )
    })?;
    for attempt in 1..=CONFLICT_ATTEMPTS {
        if let Some(m) = obj.as_object_mut() {
            m.insert("status".into(), status.clone());
        }
        match replace_raw(w, api, &key.name, &obj, true).await {
            Ok(_) => return Ok(()),
            Err(e) if api_code(&e) == Some(409) && attempt < CONFLICT_ATTEMPTS => {
                match read_live(w, api, &key.name).await {
                    Ok(Some(l)) => obj = l,
                    Ok(None) => {
                        return Err(failure(
                            key,
                            "status",
                            ApiFailure {
                                code: 404,
                                reason: "NotFound".into(),
                                message: "deleted while its status was written".into(),
                            },
                        ));
                    }
                    Err(f) => return Err(failure(key, "status", f)),
                }
            }
            Err(e) => return Err(failure(key, "status", e)),
        }
    }
    Err(failure(
        key,
        "status",
        ApiFailure {
            code: 409,
            reason: "Conflict".into(),
            message: format!("still changing after {CONFLICT_ATTEMPTS} attempts"),
        },
    ))
}

/// Writes one object (and its status); returns its UID in the target and
/// whether status was written.
pub(super) async fn write_one(w: Writer<'_>, job: &Job) -> JobResult {
    let Job {
        key,
        body,
        status,
        stored_versions,
        update,
    } = job;
    let key = key.clone();
    // Raw objects: the API answers each write with the whole object, which
    // may nest deeper than a `DynamicObject` can be parsed.
    let api = raw_api_for(
        w.client,
        &recorded_version(&key.rtype, body),
        key.namespace.as_deref(),
    );
    let replaced = match update {
        Some(u) => match replace_main(w, &api, &key, body, u.clone()).await {
            Ok(o) => o,
            Err(f) => return (key, Err(f), false),
        },
        None => None,
    };
    let existed = replaced.is_some();
    let written = match replaced {
        Some(o) => o,
        None => match apply_main(w, &api, &key, body).await {
            Ok(o) => o,
            Err(f) => return (key, Err(f), false),
        },
    };
    let uid = written.metadata().uid.clone();
    if key.rtype.is_crd()
        && !stored_versions.is_empty()
        && let Err(f) = merge_stored_versions(w, &api, &key, body, &written, stored_versions).await
    {
        return (key, Err(f), false);
    }
    let mut status_done = false;
    if let Some(st) = status {
        let r = if existed {
            replace_status(w, &api, &key, &written, st).await
        } else {
            apply_status(w, &api, &key, body, st.clone()).await
        };
        if let Err(f) = r {
            return (key, Err(f), false);
        }
        status_done = true;
    }
    (key, Ok(uid), status_done)
}

/// The type to write `body` at: the version its `apiVersion` names. A
/// state holds one version per type (the newest recorded), but an object
/// recorded before the served version moved, and not recorded again yet,
/// still has its old version's body, which only that version accepts.
pub(crate) fn recorded_version(rtype: &ResourceType, body: &Value) -> ResourceType {
    let own = body
        .get("apiVersion")
        .and_then(Value::as_str)
        .map(|av| av.rsplit_once('/').unwrap_or(("", av)));
    match own {
        Some((group, version))
            if group == rtype.group && version != rtype.version && !version.is_empty() =>
        {
            ResourceType {
                version: version.to_owned(),
                ..rtype.clone()
            }
        }
        _ => rtype.clone(),
    }
}

/// Server-side applies the status of a new object.
async fn apply_status(
    w: Writer<'_>,
    api: &Api<RawObject>,
    key: &TypedKey,
    body: &Value,
    status: Value,
) -> Result<(), Failure> {
    let mut obj = json!({
        "apiVersion": recorded_version(&key.rtype, body).api_version(),
        "kind": key.rtype.kind,
        "metadata": {"name": key.name},
        "status": status,
    });
    if let (Some(ns), Some(m)) = (
        &key.namespace,
        obj.pointer_mut("/metadata").and_then(Value::as_object_mut),
    ) {
        m.insert("namespace".into(), Value::String(ns.clone()));
    }
    let apply = Patch::Apply(&obj);
    let pp = PatchParams::apply(w.fm).force();
    transient(w.retries, || api.patch_status(&key.name, &pp, &apply))
        .await
        .map(drop)
        .map_err(|e| failure(key, "status", e))
}

/// Adds the recorded `storedVersions` the written CRD serves to its live
/// ones, so versions whose objects are still in etcd stay listed.
async fn merge_stored_versions(
    w: Writer<'_>,
    api: &Api<RawObject>,
    key: &TypedKey,
    body: &Value,
    written: &RawObject,
    stored_versions: &[String],
) -> Result<(), Failure> {
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
        if served.contains(v.as_str()) && !merged.contains(v) {
            merged.push(v.clone());
        }
    }
    if merged == live {
        return Ok(());
    }
    let patch = json!({"status": {"storedVersions": merged}});
    let merge = Patch::Merge(&patch);
    let pp = PatchParams::default();
    transient(w.retries, || api.patch_status(&key.name, &pp, &merge))
        .await
        .map(drop)
        .map_err(|e| failure(key, "status", e))
}

/// Deletes one object (prune); an object already gone is a success.
pub(super) async fn delete_one(
    w: Writer<'_>,
    key: TypedKey,
) -> (String, std::result::Result<(), Failure>) {
    let shown = format!("delete {key}");
    let api = raw_api_for(w.client, &key.rtype, key.namespace.as_deref());
    // kube's `Api::delete` parses the answer (the deleted object, for some
    // types) into a `Value` first, which fails past 128 levels: send the
    // request and read only the status code.
    let r = transient(w.retries, || {
        let req = kube::core::Request::new(api.resource_url())
            .delete(&key.name, &DeleteParams::background())
            .map_err(kube::Error::BuildRequest);
        async move { w.client.request_text(req?).await.map(drop) }
    })
    .await;
    let r = match r {
        Ok(()) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(failure(&key, "delete", e)),
    };
    (shown, r)
}

/// Waits until the CRD `name` reports `Established=True` and the API
/// serves every version its spec marks served.
///
/// `Established` alone is not enough when a restore changes an existing
/// CRD's served versions: the condition is already true from before, while
/// the apiserver's handler still serves the old set for a moment, and an
/// object written at a newly served version gets a bare 404. Discovery
/// (`/apis/<group>/<version>`) lists the resource from the same cache the
/// handler serves from, so the wait ends when every served version lists
/// the CRD's plural.
pub(super) async fn wait_established(
    w: Writer<'_>,
    name: &str,
    timeout: Duration,
) -> std::result::Result<(), ApiFailure> {
    let api = api_for(w.client, &live::crd_type(), None);
    let deadline = Instant::now() + timeout;
    loop {
        let crd = transient(w.retries, || api.get(name)).await?;
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
        let missing = if established {
            unserved_versions(w.client, &crd.data).await
        } else {
            Vec::new()
        };
        if established && missing.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let message = if established {
                format!(
                    "Established, but versions {} not served after {} s",
                    missing.join(", "),
                    timeout.as_secs()
                )
            } else {
                format!("not Established after {} s", timeout.as_secs())
            };
            return Err(ApiFailure {
                code: 0,
                reason: "Timeout".into(),
                message,
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The versions a CRD's spec marks served whose discovery document does not
/// list its plural yet (a discovery error counts as not yet served).
async fn unserved_versions(client: &Client, crd: &Value) -> Vec<String> {
    let text = |p: &str| crd.pointer(p).and_then(Value::as_str).unwrap_or_default();
    let (group, plural) = (text("/spec/group"), text("/spec/names/plural"));
    let served: Vec<&str> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|v| v.get("served").and_then(Value::as_bool) == Some(true))
        .filter_map(|v| v.get("name").and_then(Value::as_str))
        .collect();
    let mut missing = Vec::new();
    for version in served {
        let gv = format!("{group}/{version}");
        let listed = client
            .list_api_group_resources(&gv)
            .await
            .is_ok_and(|l| l.resources.iter().any(|r| r.name == plural));
        if !listed {
            missing.push(gv);
        }
    }
    missing
}

#[cfg(test)]
mod version_tests {
    use super::*;

    #[test]
    fn an_object_is_written_at_the_version_it_was_recorded_at() {
        let t = ResourceType {
            group: "ex.io".into(),
            version: "v2".into(),
            resource: "widgets".into(),
            kind: "Widget".into(),
            namespaced: true,
        };
        let at = |body: Value| recorded_version(&t, &body).version;
        assert_eq!(at(json!({"apiVersion": "ex.io/v1"})), "v1");
        assert_eq!(at(json!({"apiVersion": "ex.io/v2"})), "v2");
        // Another group, or none named: the state's version.
        assert_eq!(at(json!({"apiVersion": "other.io/v1"})), "v2");
        assert_eq!(at(json!({})), "v2");
        let core = ResourceType {
            group: String::new(),
            version: "v1".into(),
            resource: "configmaps".into(),
            kind: "ConfigMap".into(),
            namespaced: true,
        };
        assert_eq!(recorded_version(&core, &json!({"apiVersion": "v1"})), core);
    }
}
