//! Restore actions per type: what the restore leaves out of, or changes in,
//! a recorded object before writing it, because the target cluster
//! allocates, owns or regenerates it. The plan applies them (so the plan
//! shows what will really be written) and the comparison applies them to
//! both sides (so a value the target allocated is not a difference).
//!
//! Modelled on Velero's restore item actions; `docs/MANUAL.md` §4 has the
//! table, with where and why Rewind differs.
//!
//! - [`skip_reason`]: objects never written (Nodes, Events, Leases,
//!   controller-made Endpoints and EndpointSlices, controller-owned, mirror
//!   and finished Pods, completed Jobs, auto-generated service-account
//!   token Secrets, APIServices the apiserver manages).
//! - [`adjust`]: fields removed before writing (a Service's allocated
//!   `clusterIP`s and `nodePort`s, a Job's controller-uid selector and
//!   labels, a Pod's node binding, a token Secret's token data, volume
//!   binding fields).
//! - [`carry_over`]: for an update, those fields are taken from the live
//!   object instead, since most of them are immutable once set (and a CRD
//!   keeps the versions the live one still stores objects at).
//! - [`writes_last`]: admission webhooks and policies and APIServices are
//!   written after every other object, so one whose backend is not back yet
//!   cannot reject the rest of the restore.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::fields::{Seg, owned};
use crate::plan::SkipReason;
use rewind_history::state::{DesiredState, ResourceType, TypedKey};

/// A change a restore action made to an object before writing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Adjustment {
    /// A Service's allocated `clusterIP`/`clusterIPs`, `nodePort`s and
    /// `healthCheckNodePort` left for the target to allocate.
    ServiceAllocated,
    /// A Job's `controller-uid` selector and template labels dropped: they
    /// embed the recorded Job's UID.
    JobControllerUid,
    /// A Pod's `spec.nodeName` and `spec.priority` dropped: the scheduler
    /// and the priority admission set them in the target.
    PodBinding,
    /// A service-account token Secret's `service-account.uid` annotation,
    /// `token`, `ca.crt` and `namespace` dropped: the token controller
    /// fills them.
    TokenData,
    /// A PersistentVolume's `claimRef.uid`/`resourceVersion` or a claim's
    /// bind annotations dropped: the volume controller binds again.
    VolumeBinding,
}

impl Adjustment {
    /// The change as the plan summary prints it.
    #[must_use]
    pub fn describe(self) -> &'static str {
        match self {
            Self::ServiceAllocated => "services without their allocated clusterIPs/nodePorts",
            Self::JobControllerUid => "jobs without their controller-uid selector and labels",
            Self::PodBinding => "pods without nodeName/priority",
            Self::TokenData => "token secrets without token data (the token controller fills it)",
            Self::VolumeBinding => "volumes and claims without their binding uid/annotations",
        }
    }
}

fn is(rtype: &ResourceType, group: &str, resource: &str) -> bool {
    rtype.group == group && rtype.resource == resource
}

/// Types never written: their objects belong to the cluster they were
/// recorded in, or to controllers that make them anew.
const NEVER_WRITTEN: &[(&str, &str)] = &[
    ("", "nodes"),
    ("", "events"),
    ("events.k8s.io", "events"),
    ("coordination.k8s.io", "leases"),
];

/// Types written after every other object.
const WRITTEN_LAST: &[(&str, &str)] = &[
    (
        "admissionregistration.k8s.io",
        "validatingwebhookconfigurations",
    ),
    (
        "admissionregistration.k8s.io",
        "mutatingwebhookconfigurations",
    ),
    (
        "admissionregistration.k8s.io",
        "validatingadmissionpolicies",
    ),
    (
        "admissionregistration.k8s.io",
        "validatingadmissionpolicybindings",
    ),
    ("admissionregistration.k8s.io", "mutatingadmissionpolicies"),
    (
        "admissionregistration.k8s.io",
        "mutatingadmissionpolicybindings",
    ),
    ("apiregistration.k8s.io", "apiservices"),
];

/// EndpointSlice managers that are controllers of the cluster.
const SLICE_CONTROLLERS: &[&str] = &[
    "endpointslice-controller.k8s.io",
    "endpointslicemirroring-controller.k8s.io",
];

const CONTROLLER_UID_LABELS: &[&str] = &["controller-uid", "batch.kubernetes.io/controller-uid"];
const TOKEN_TYPE: &str = "kubernetes.io/service-account-token";
const SA_NAME: &str = "kubernetes.io/service-account.name";
const SA_UID: &str = "kubernetes.io/service-account.uid";
/// The data keys the token controller writes into a token Secret: the
/// token, the cluster's CA and the ServiceAccount's namespace. It writes all
/// three together, so a recorded Secret holding only some of them (recorded
/// before the controller filled it, or written by hand) is no different
/// from the filled one.
const TOKEN_KEYS: &[&str] = &["token", "ca.crt", "namespace"];
const PV_BIND_ANNOTATIONS: &[&str] = &[
    "pv.kubernetes.io/bind-completed",
    "pv.kubernetes.io/bound-by-controller",
];
const PVC_BIND_ANNOTATIONS: &[&str] = &[
    "pv.kubernetes.io/bind-completed",
    "pv.kubernetes.io/bound-by-controller",
    "volume.kubernetes.io/storage-provisioner",
    "volume.beta.kubernetes.io/storage-provisioner",
];

/// Whether objects of `rtype` are written after every other level.
#[must_use]
pub fn writes_last(rtype: &ResourceType) -> bool {
    WRITTEN_LAST.iter().any(|(g, r)| is(rtype, g, r))
}

fn label<'a>(obj: &'a Value, name: &str) -> Option<&'a str> {
    obj.pointer("/metadata/labels")
        .and_then(|l| l.get(name))
        .and_then(Value::as_str)
}

fn annotation<'a>(obj: &'a Value, name: &str) -> Option<&'a str> {
    obj.pointer("/metadata/annotations")
        .and_then(|l| l.get(name))
        .and_then(Value::as_str)
}

/// Why `obj` (recorded, or live when deciding what prune may delete) is
/// never written, if it is not. `state` is the state being restored: an
/// Endpoints object is written only when its Service there has no selector
/// (no controller makes it then).
#[must_use]
pub fn skip_reason(key: &TypedKey, obj: &Value, state: &DesiredState) -> Option<SkipReason> {
    let t = &key.rtype;
    if NEVER_WRITTEN.iter().any(|(g, r)| is(t, g, r)) {
        return Some(SkipReason::NeverWritten);
    }
    if is(t, "", "endpoints") {
        let service = TypedKey {
            rtype: ResourceType {
                group: String::new(),
                version: "v1".into(),
                resource: "services".into(),
                kind: "Service".into(),
                namespaced: true,
            },
            namespace: key.namespace.clone(),
            name: key.name.clone(),
        };
        let selectorless = state.get(&service).is_some_and(|svc| {
            svc.pointer("/spec/selector")
                .and_then(Value::as_object)
                .is_none_or(Map::is_empty)
        });
        return (!selectorless).then_some(SkipReason::NeverWritten);
    }
    if is(t, "discovery.k8s.io", "endpointslices") {
        let managed_by = label(obj, "endpointslice.kubernetes.io/managed-by");
        return managed_by
            .is_some_and(|m| SLICE_CONTROLLERS.contains(&m))
            .then_some(SkipReason::NeverWritten);
    }
    if is(t, "", "pods") {
        if annotation(obj, "kubernetes.io/config.mirror").is_some() {
            return Some(SkipReason::MirrorPod);
        }
        let controlled = obj
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|r| r.get("controller").and_then(Value::as_bool) == Some(true));
        if controlled {
            return Some(SkipReason::ControllerOwned);
        }
        let phase = obj.pointer("/status/phase").and_then(Value::as_str);
        if matches!(phase, Some("Succeeded" | "Failed")) {
            return Some(SkipReason::Finished);
        }
        return None;
    }
    if is(t, "batch", "jobs") {
        return obj
            .pointer("/status/completionTime")
            .is_some_and(|c| !c.is_null())
            .then_some(SkipReason::Finished);
    }
    if is(t, "", "secrets") && obj.get("type").and_then(Value::as_str) == Some(TOKEN_TYPE) {
        let auto = annotation(obj, SA_NAME)
            .is_some_and(|sa| key.name.starts_with(&format!("{sa}-token-")));
        return auto.then_some(SkipReason::ServiceAccountToken);
    }
    if is(t, "apiregistration.k8s.io", "apiservices")
        && label(obj, "kube-aggregator.kubernetes.io/automanaged").is_some()
    {
        return Some(SkipReason::ServerManaged);
    }
    None
}

fn remove_keys(obj: &mut Value, pointer: &str, keys: &[&str]) -> bool {
    let Some(m) = obj.pointer_mut(pointer).and_then(Value::as_object_mut) else {
        return false;
    };
    let mut changed = false;
    for k in keys {
        changed |= m.remove(*k).is_some();
    }
    changed
}

fn remove_empty(obj: &mut Value, parent: &str, field: &str) {
    if let Some(m) = obj.pointer_mut(parent).and_then(Value::as_object_mut)
        && m.get(field)
            .is_some_and(|v| v.as_object().is_some_and(Map::is_empty))
    {
        m.remove(field);
    }
}

/// Whether `obj`'s managedFields or last-applied configuration show that a
/// client set the port's `nodePort` (as opposed to the server allocating it).
fn explicit_node_port(obj: &Value, index: usize) -> bool {
    let path = [
        Seg::Key("spec"),
        Seg::Key("ports"),
        Seg::Index(index),
        Seg::Key("nodePort"),
    ];
    if owned(obj, &path) {
        return true;
    }
    let Some(port) = obj.pointer("/spec/ports").and_then(|p| p.get(index)) else {
        return false;
    };
    last_applied(obj)
        .as_ref()
        .and_then(|l| l.pointer("/spec/ports"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|p| {
            p.get("nodePort")
                .is_some_and(|n| n.as_u64().is_some_and(|n| n > 0))
                && match port
                    .get("name")
                    .and_then(Value::as_str)
                    .filter(|n| !n.is_empty())
                {
                    Some(name) => p.get("name").and_then(Value::as_str) == Some(name),
                    None => p.get("nodePort") == port.get("nodePort"),
                }
        })
}

fn last_applied(obj: &Value) -> Option<Value> {
    annotation(obj, "kubectl.kubernetes.io/last-applied-configuration")
        .and_then(|s| serde_json::from_str(s).ok())
}

fn adjust_service(obj: &mut Value) -> bool {
    let mut changed = false;
    let headless = obj.pointer("/spec/clusterIP").and_then(Value::as_str) == Some("None");
    if !headless {
        changed |= remove_keys(obj, "/spec", &["clusterIP", "clusterIPs"]);
    }
    if obj.pointer("/spec/type").and_then(Value::as_str) == Some("ExternalName") {
        return changed;
    }
    let ports = obj
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let allocated: Vec<usize> = (0..ports)
        .filter(|&i| !explicit_node_port(obj, i))
        .collect();
    for i in allocated {
        if let Some(p) = obj
            .pointer_mut("/spec/ports")
            .and_then(|p| p.get_mut(i))
            .and_then(Value::as_object_mut)
        {
            changed |= p.remove("nodePort").is_some();
        }
    }
    let hc_explicit = owned(obj, &[Seg::Key("spec"), Seg::Key("healthCheckNodePort")])
        || last_applied(obj)
            .and_then(|l| l.pointer("/spec/healthCheckNodePort").cloned())
            .is_some_and(|n| n.as_u64().is_some_and(|n| n > 0));
    if !hc_explicit {
        changed |= remove_keys(obj, "/spec", &["healthCheckNodePort"]);
    }
    changed
}

fn adjust_job(obj: &mut Value) -> bool {
    let a = remove_keys(obj, "/spec/selector/matchLabels", CONTROLLER_UID_LABELS);
    let b = remove_keys(obj, "/spec/template/metadata/labels", CONTROLLER_UID_LABELS);
    a || b
}

/// Removes from `obj` what the target allocates or controllers fill, and
/// says what was removed. Applied to recorded objects before writing, and
/// to both sides of a comparison.
pub fn adjust(key: &TypedKey, obj: &mut Value) -> Option<Adjustment> {
    let t = &key.rtype;
    let (changed, adjustment) = if is(t, "", "services") {
        (adjust_service(obj), Adjustment::ServiceAllocated)
    } else if is(t, "batch", "jobs") {
        (adjust_job(obj), Adjustment::JobControllerUid)
    } else if is(t, "", "pods") {
        (
            remove_keys(obj, "/spec", &["nodeName", "priority"]),
            Adjustment::PodBinding,
        )
    } else if is(t, "", "secrets") && obj.get("type").and_then(Value::as_str) == Some(TOKEN_TYPE) {
        let a = remove_keys(obj, "/metadata/annotations", &[SA_UID]);
        let b = remove_keys(obj, "/data", TOKEN_KEYS);
        remove_empty(obj, "/metadata", "annotations");
        remove_empty(obj, "", "data");
        (a || b, Adjustment::TokenData)
    } else if is(t, "", "persistentvolumes") {
        let a = remove_keys(obj, "/spec/claimRef", &["uid", "resourceVersion"]);
        let b = remove_keys(obj, "/metadata/annotations", PV_BIND_ANNOTATIONS);
        remove_empty(obj, "/metadata", "annotations");
        (a || b, Adjustment::VolumeBinding)
    } else if is(t, "", "persistentvolumeclaims") {
        let changed = remove_keys(obj, "/metadata/annotations", PVC_BIND_ANNOTATIONS);
        remove_empty(obj, "/metadata", "annotations");
        (changed, Adjustment::VolumeBinding)
    } else {
        return None;
    };
    changed.then_some(adjustment)
}

/// Whether [`carry_over`] takes anything from `live`, an object of
/// `rtype`.
#[must_use]
pub fn has_carry_over(rtype: &ResourceType, live: &Value) -> bool {
    if is(rtype, "", "secrets") {
        return live.get("type").and_then(Value::as_str) == Some(TOKEN_TYPE);
    }
    [
        ("", "services"),
        ("batch", "jobs"),
        ("", "pods"),
        ("", "persistentvolumes"),
        ("", "persistentvolumeclaims"),
        ("apiextensions.k8s.io", "customresourcedefinitions"),
    ]
    .iter()
    .any(|(g, r)| is(rtype, g, r))
}

/// Copies `keys` of the map at `pointer` from `live` into `body` where the
/// body has none (creating the map).
fn copy_keys(body: &mut Value, live: &Value, pointer: &str, keys: &[&str]) {
    let Some(from) = live.pointer(pointer).and_then(Value::as_object) else {
        return;
    };
    let picked: Vec<(String, Value)> = keys
        .iter()
        .filter_map(|k| from.get(*k).map(|v| ((*k).to_owned(), v.clone())))
        .collect();
    if picked.is_empty() {
        return;
    }
    let Some(to) = ensure_map(body, pointer) else {
        return;
    };
    for (k, v) in picked {
        to.entry(k).or_insert(v);
    }
}

/// The map at `pointer` in `obj`, created (with its parents) if absent.
fn ensure_map<'a>(obj: &'a mut Value, pointer: &str) -> Option<&'a mut Map<String, Value>> {
    let mut cur = obj;
    for part in pointer.split('/').skip(1) {
        let m = cur.as_object_mut()?;
        cur = m
            .entry(part.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    cur.as_object_mut()
}

/// For an update of an existing object: puts back into `body` the fields
/// [`adjust`] removed, from the live object. Most are immutable once set
/// (a Service's clusterIP, a Job's selector, a Pod's node), and the others
/// are the target's own (token data, volume binding).
pub fn carry_over(key: &TypedKey, body: &mut Value, live: &Value) {
    let t = &key.rtype;
    if is(t, "", "services") {
        copy_keys(
            body,
            live,
            "/spec",
            &["clusterIP", "clusterIPs", "healthCheckNodePort"],
        );
        let live_ports: Vec<&Value> = live
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .map(|p| p.iter().collect())
            .unwrap_or_default();
        if let Some(ports) = body
            .pointer_mut("/spec/ports")
            .and_then(Value::as_array_mut)
        {
            for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                if p.contains_key("nodePort") {
                    continue;
                }
                let same = |l: &&&Value| {
                    l.get("port") == p.get("port")
                        && l.get("protocol").and_then(Value::as_str).unwrap_or("TCP")
                            == p.get("protocol").and_then(Value::as_str).unwrap_or("TCP")
                };
                if let Some(np) = live_ports.iter().find(same).and_then(|l| l.get("nodePort")) {
                    p.insert("nodePort".into(), np.clone());
                }
            }
        }
    } else if is(t, "batch", "jobs") {
        if let Some(sel) = live.pointer("/spec/selector")
            && let Some(spec) = body.get_mut("spec").and_then(Value::as_object_mut)
        {
            spec.insert("selector".into(), sel.clone());
        }
        copy_keys(
            body,
            live,
            "/spec/template/metadata/labels",
            CONTROLLER_UID_LABELS,
        );
    } else if is(t, "", "pods") {
        copy_keys(body, live, "/spec", &["nodeName", "priority"]);
    } else if is(t, "", "secrets") && body.get("type").and_then(Value::as_str) == Some(TOKEN_TYPE) {
        copy_keys(body, live, "/metadata/annotations", &[SA_UID]);
        copy_keys(body, live, "/data", TOKEN_KEYS);
    } else if is(t, "", "persistentvolumes") {
        let same_claim = ["namespace", "name"].iter().all(|f| {
            body.pointer(&format!("/spec/claimRef/{f}"))
                == live.pointer(&format!("/spec/claimRef/{f}"))
        });
        if same_claim && body.pointer("/spec/claimRef").is_some() {
            copy_keys(body, live, "/spec/claimRef", &["uid", "resourceVersion"]);
        }
        copy_keys(body, live, "/metadata/annotations", PV_BIND_ANNOTATIONS);
    } else if is(t, "", "persistentvolumeclaims") {
        copy_keys(body, live, "/metadata/annotations", PVC_BIND_ANNOTATIONS);
    } else if is(t, "apiextensions.k8s.io", "customresourcedefinitions") {
        keep_stored_versions(body, live);
    }
}

/// A CRD update may not drop a version the live CRD still has objects
/// stored at (`status.storedVersions`): such versions are kept from the
/// live CRD, as non-storage versions, as Rancher Backups does.
fn keep_stored_versions(body: &mut Value, live: &Value) {
    let stored: Vec<&str> = live
        .pointer("/status/storedVersions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let Some(versions) = body
        .pointer_mut("/spec/versions")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    let present: Vec<String> = versions
        .iter()
        .filter_map(|v| v.get("name").and_then(Value::as_str).map(str::to_owned))
        .collect();
    let kept = live
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|v| {
            v.get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| stored.contains(&n) && !present.iter().any(|p| p == n))
        });
    for v in kept {
        let mut v = v.clone();
        if let Some(m) = v.as_object_mut() {
            m.insert("storage".into(), Value::Bool(false));
        }
        versions.push(v);
    }
}

#[cfg(test)]
#[path = "actions_tests.rs"]
mod tests;
