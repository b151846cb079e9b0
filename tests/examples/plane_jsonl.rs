//! Writes a generated Rancher-like plane as JSON lines, one object per line,
//! shaped like the API server returns it: the input of the format benchmark
//! (`rewind-format`'s `format_bench --jsonl`).
//!
//! ```text
//! cargo run --release -p rewind-tests --example plane_jsonl -- 100000 /tmp/plane.jsonl
//! cargo run --release -p rewind-tests --example plane_jsonl -- 100000 /tmp/ref.jsonl --reference-mix
//! cargo run --release -p rewind-tests --example plane_jsonl -- 5000 /tmp/api.jsonl --api
//! ```
//!
//! - `--reference-mix`: the plane of [`PlaneSpec::reference_mix_with_object_target`]
//!   (calibrated to `shared/reference/rancher/README.md`: RoleBindings
//!   dominant, 10 nodes and 5 users per cluster, real CA certificates)
//!   instead of [`PlaneSpec::with_object_target`]; combines with `--api`.
//! - Default: the plane of [`PlaneSpec::with_object_target`] with the fields
//!   the API server adds on create filled in the way it fills them: a random
//!   `uid`, a global increasing `resourceVersion` (one etcd revision per write,
//!   two when the status is written separately), `creationTimestamp` from a
//!   bulk load, `generation` for custom resources, and `managedFields` with
//!   the FieldsV1 set of each write. No cluster needed, so it is fast and
//!   reproducible.
//! - `--api`: load the plane into a real local control plane and write what a
//!   LIST returns. Slow (hundreds of objects per second); use it on a few
//!   thousand objects to check that the default output compresses like real
//!   API output.

use std::collections::BTreeSet;
use std::io::Write;

use anyhow::Context as _;
use rewind_tests::fixtures::{self, GeneratedObject, PlaneSpec, Rng};
use serde_json::{Map, Value, json};

/// The FieldsV1 set of `v`, as structured-merge-diff writes it for
/// schemaless objects: every map key is `f:<key>`, a nested map also owns
/// itself (`.`), lists and scalars are leaves.
fn field_set(v: &Map<String, Value>, nested: bool) -> Value {
    let mut out = Map::new();
    if nested {
        out.insert(".".into(), json!({}));
    }
    for (k, child) in v {
        let sub = match child {
            Value::Object(m) if !m.is_empty() => field_set(m, true),
            _ => json!({}),
        };
        out.insert(format!("f:{k}"), sub);
    }
    Value::Object(out)
}

/// A UTC timestamp in RFC 3339 seconds, as metadata uses.
fn rfc3339(unix: u64) -> String {
    let (days, rem) = (unix / 86_400, unix % 86_400);
    let (year, month, day) = fixtures::civil(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Adds what the API server adds on create (and on the status write).
fn as_api_returns(o: &mut GeneratedObject, rng: &mut Rng, rv: &mut u64, clock: &mut u64) {
    let api_version = o.api_version();
    let custom = !o.group.is_empty() && !o.group.ends_with("k8s.io");
    let Some(obj) = o.json.as_object_mut() else {
        return;
    };
    // A bulk load: a few objects per second, in generation order.
    *clock += rng.below(2);
    let created = rfc3339(*clock);
    let status = obj.get("status").cloned();
    let mut body = obj.clone();
    body.remove("status");
    body.remove("apiVersion");
    body.remove("kind");
    if let Some(Value::Object(md)) = body.get_mut("metadata") {
        md.remove("name");
        md.remove("namespace");
    }
    let mut managed = vec![json!({
        "apiVersion": api_version, "fieldsType": "FieldsV1", "fieldsV1": field_set(&body, false),
        "manager": "rancher", "operation": "Update", "time": created,
    })];
    *rv += 1 + rng.below(3);
    if let (Some(Value::Object(s)), true) = (&status, custom) {
        // Custom resources take their status through the subresource: a
        // second write, a second revision.
        let st = json!({ "status": s.clone() });
        let set = st
            .as_object()
            .map(|m| field_set(m, false))
            .unwrap_or_default();
        managed.push(json!({
            "apiVersion": api_version, "fieldsType": "FieldsV1", "fieldsV1": set,
            "manager": "rancher", "operation": "Update", "subresource": "status", "time": created,
        }));
        *rv += 1;
    }
    let Some(Value::Object(md)) = obj.get_mut("metadata") else {
        return;
    };
    md.insert("uid".into(), json!(rng.uuid()));
    md.insert("resourceVersion".into(), json!(rv.to_string()));
    md.insert("creationTimestamp".into(), json!(created));
    if custom {
        md.insert("generation".into(), json!(1));
    }
    md.insert("managedFields".into(), Value::Array(managed));
}

/// The generated plane, decorated like API output.
fn offline(spec: &PlaneSpec) -> Vec<Value> {
    let mut objects = fixtures::generate(spec);
    let mut rng = Rng::new(spec.seed ^ 0xA11_5E4E4);
    let (mut rv, mut clock) = (184_467_u64, 1_767_225_600_u64); // 2026-01-01
    for o in &mut objects {
        as_api_returns(o, &mut rng, &mut rv, &mut clock);
    }
    objects.into_iter().map(|o| o.json).collect()
}

/// The generated plane, created in a real control plane and listed back.
async fn through_api(spec: &PlaneSpec) -> anyhow::Result<Vec<Value>> {
    let cp = rewind_tests::ControlPlane::start().await?;
    let client = cp.admin_client();
    fixtures::install_rancher_crds(&client).await?;
    let objects = fixtures::generate(spec);
    let report = fixtures::load(&client, &objects, 32).await?;
    eprintln!(
        "loaded {} objects in {:.1} s",
        report.created,
        report.elapsed.as_secs_f64()
    );
    let mut types = BTreeSet::new();
    let mut firsts = Vec::new();
    for o in &objects {
        if types.insert((o.group.clone(), o.resource.clone())) {
            firsts.push(o);
        }
    }
    let wanted: BTreeSet<(Option<String>, String, String)> = objects
        .iter()
        .map(|o| (o.namespace.clone(), o.name.clone(), o.describe()))
        .collect();
    let mut out = Vec::new();
    for first in firsts {
        let api = fixtures::list_api_for(&client, first);
        let list = api
            .list(&kube::api::ListParams::default())
            .await
            .with_context(|| format!("listing {}", first.resource))?;
        for item in list.items {
            let mut v = serde_json::to_value(&item)?;
            // A LIST drops apiVersion/kind from items; a GET or watch has them.
            if let Some(m) = v.as_object_mut() {
                m.insert("apiVersion".into(), json!(first.api_version()));
                m.insert("kind".into(), json!(first.kind));
            }
            let key = GeneratedObject {
                namespace: item.metadata.namespace.clone(),
                name: item.metadata.name.clone().unwrap_or_default(),
                ..first.clone()
            };
            // Only the plane's objects, not what the server made by itself.
            if wanted.contains(&(key.namespace.clone(), key.name.clone(), key.describe())) {
                out.push(v);
            }
        }
    }
    Ok(out)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    const USAGE: &str = "usage: plane_jsonl OBJECTS OUT.jsonl [--reference-mix] [--api]";
    let n: usize = args.first().and_then(|a| a.parse().ok()).context(USAGE)?;
    let path = args.get(1).context(USAGE)?;
    let spec = if args.iter().any(|a| a == "--reference-mix") {
        PlaneSpec::reference_mix_with_object_target(n)
    } else {
        PlaneSpec::with_object_target(n)
    };
    eprintln!(
        "plane: {} clusters, {} nodes/cluster, {} users, {} tokens/user, {} RoleBindings{}",
        spec.clusters,
        spec.nodes_per_cluster,
        spec.users,
        spec.tokens_per_user,
        spec.role_binding_count(),
        if spec.reference.is_some() {
            " (reference mix)"
        } else {
            ""
        }
    );
    let objects = if args.iter().any(|a| a == "--api") {
        through_api(&spec).await?
    } else {
        offline(&spec)
    };
    let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut bytes = 0;
    for o in &objects {
        let line = serde_json::to_vec(o)?;
        bytes += line.len();
        w.write_all(&line)?;
        w.write_all(b"\n")?;
    }
    w.flush()?;
    eprintln!(
        "wrote {} objects, {:.1} MB of JSON, to {path}",
        objects.len(),
        bytes as f64 / 1e6
    );
    Ok(())
}
