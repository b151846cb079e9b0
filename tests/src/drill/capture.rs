//! What "recorded" means, read straight from a cluster: every object the
//! daemon's resource set selects, listed now. The drill captures this right
//! before the snapshot and right before the crash, and compares each restore
//! with it; so the check does not trust the daemon or the store.

use std::collections::BTreeMap;

use kube::api::{Api, ApiResource, ListParams};
use rewind_daemon::watch::{choose_types, discovery};
use rewind_history::raw::RawObject;
use rewind_history::select::preset::preset;
use rewind_history::select::{ObjectView, ResourceSet};
use rewind_history::{DesiredState, KubeType, ResourceType};
use serde_json::Value;

use super::{DrillError, Result, step};

/// The resource set of the drill's daemon (`presets = ["rancher"]`).
pub fn rancher_set() -> Result<ResourceSet> {
    preset("rancher").map_err(step("compiling the rancher preset"))
}

/// Every live object of `ar`, in pages, as raw JSON pieces: a
/// `DynamicObject` parses each item into a `Value` and serde_json stops at
/// 128 levels, so one deep object would fail its whole type's LIST (as it
/// did rewindd's, see `rewind_history::raw`). A type that is not served
/// (gone between discovery and list) has no objects.
pub async fn list_raw(client: &kube::Client, ar: &ApiResource) -> kube::Result<Vec<RawObject>> {
    let api: Api<RawObject> = Api::all_with(client.clone(), ar);
    let mut out = Vec::new();
    let mut lp = ListParams::default().limit(500);
    loop {
        let page = match api.list(&lp).await {
            Ok(p) => p,
            Err(kube::Error::Api(e)) if e.code == 404 => return Ok(out),
            Err(e) => return Err(e),
        };
        out.extend(page.items);
        match page.metadata.continue_ {
            Some(c) if !c.is_empty() => lp = lp.continue_token(&c),
            _ => return Ok(out),
        }
    }
}

/// Whether `sel` selects the listed object `o`, whose JSON is `json`.
pub fn selects(sel: &rewind_history::select::TypeSelection, o: &RawObject, json: &Value) -> bool {
    let meta = o.metadata();
    let empty = BTreeMap::new();
    sel.selects(&ObjectView {
        name: meta.name.as_deref().unwrap_or_default(),
        namespace: meta.namespace.as_deref().unwrap_or_default(),
        labels: meta.labels.as_ref().unwrap_or(&empty),
        object: json,
    })
}

/// Every object of `set`, listed from `client` now, as the API sent it
/// (LIST items of built-in types carry no `apiVersion`/`kind`), whatever
/// its depth.
pub async fn capture(client: &kube::Client, set: &ResourceSet) -> Result<DesiredState> {
    let d = discovery::discover(client)
        .await
        .map_err(step("discovering resource types"))?;
    let mut out = DesiredState::new();
    for (tk, (t, sel)) in choose_types(&d, set) {
        let listed = list_raw(client, &t.api_resource())
            .await
            .map_err(|e| DrillError::Step {
                step: "listing a recorded type",
                reason: format!("{tk}: {e}"),
            })?;
        for o in listed {
            let json = o.to_value().map_err(step("reading a listed object"))?;
            if !selects(&sel, &o, &json) {
                continue;
            }
            out.insert(&t, json)
                .map_err(step("keying a listed object"))?;
        }
    }
    Ok(out)
}

/// Drops `status` of the types the restore does not write status for: types
/// no CRD in `want` defines (built-in types, whose controllers own status;
/// no controllers run in the throwaway cluster).
pub fn drop_builtin_status(want: &mut DesiredState, got: &mut DesiredState) {
    let crd_types: std::collections::BTreeSet<ResourceType> = want
        .crds()
        .flat_map(|(_, crd)| rewind_history::state::crd_types(crd))
        .collect();
    for s in [want, got] {
        for (k, o) in s.iter_mut() {
            if !crd_types.contains(&k.rtype)
                && let Some(m) = o.as_object_mut()
            {
                m.remove("status");
            }
        }
    }
}

/// Removes from `want` what a restore does not write by design: objects
/// being deleted at the point (`metadata.deletionTimestamp`) and those the
/// restore actions skip (`rewind_restore::actions::skip_reason`: Events,
/// Leases, controller-owned Pods, …).
pub fn drop_not_restored(want: &mut DesiredState) {
    let skipped: Vec<_> = want
        .iter()
        .filter(|(k, o)| {
            o.pointer("/metadata/deletionTimestamp").is_some()
                || rewind_restore::actions::skip_reason(k, o, want).is_some()
        })
        .map(|(k, _)| k.clone())
        .collect();
    for k in skipped {
        want.remove(&k);
    }
}

/// Removes from `got` the objects the target cluster had before the restore
/// and `want` does not name (kube-system, default RBAC, …): those are the
/// cluster's own, not differences. Extras the restore created stay.
pub fn drop_preexisting(want: &DesiredState, got: &mut DesiredState, before: &DesiredState) {
    let own: Vec<_> = got
        .iter()
        .filter(|(k, _)| want.get(k).is_none() && before.get(k).is_some())
        .map(|(k, _)| k.clone())
        .collect();
    for k in own {
        got.remove(&k);
    }
}

/// Object counts per type, for the report.
pub fn counts(s: &DesiredState) -> BTreeMap<String, usize> {
    s.counts()
        .into_iter()
        .map(|(t, n)| (t.group_resource(), n))
        .collect()
}

/// The JSON of one object, for messages.
pub fn describe(v: &Value) -> String {
    v.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_owned()
}
