//! `rewind drill`: restore into a throwaway cluster, compare, report. A
//! state with nothing to compare (empty, or every object skipped) fails the
//! drill.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rewind_history::{DirSource, StateSource};
use rewind_restore::compare::{self, Difference};
use rewind_restore::localplane::{Binaries, LocalPlane};
use rewind_restore::{Action, ApplyOptions, PlanOptions, ProtectedSet, StatusMode, apply, plan};
use serde_json::json;

use super::args::DrillArgs;
use super::restore::client_for;
use super::store::StoreArgs;

/// Runs `rewind drill`.
pub async fn run(a: DrillArgs, store: &StoreArgs) -> Result<()> {
    let state = match &a.from_dir {
        Some(dir) => DirSource::new(dir)
            .state_at(&a.at)
            .await
            .with_context(|| format!("reading the state from {}", dir.display()))?,
        None => store.desired_at(&a.at).await?,
    };
    // A drill that compares nothing proves nothing: refuse before starting
    // a control plane.
    if state.is_empty() {
        let source = a
            .from_dir
            .as_ref()
            .map_or_else(|| "the store".to_owned(), |d| d.display().to_string());
        bail!(
            "drill failed: the state at {} read from {source} holds no objects \
             (nothing recorded at that point, or an empty directory); nothing to compare",
            a.at
        );
    }
    let rpo_ms = match &a.from_dir {
        Some(_) => None,
        None => Some(newest_event_age_ms(store).await?),
    };
    // The local plane lives until the drill returns; dropping it stops it.
    let mut local = None;
    let (client, target) = match &a.to {
        Some(to) => (
            client_for(to, a.context.clone()).await?,
            to.display().to_string(),
        ),
        None => {
            let bins = Binaries::locate(a.etcd.as_deref(), a.kube_apiserver.as_deref())?;
            eprintln!("starting a throwaway control plane (etcd + kube-apiserver on 127.0.0.1)");
            let plane = LocalPlane::start(&bins, Duration::from_secs(60))
                .await
                .context("starting the local control plane")?;
            eprintln!(
                "control plane ready at {} in {:.1} s",
                plane.server(),
                plane.startup().as_secs_f64()
            );
            let client = plane.client().clone();
            let target = format!("local control plane {}", plane.server());
            local = Some(plane);
            (client, target)
        }
    };
    let outcome = drill(&a, &state, &client, &target, rpo_ms).await;
    if a.keep
        && let Some(dir) = local.as_mut().and_then(LocalPlane::keep)
    {
        eprintln!("kept the local control plane's files in {}", dir.display());
    }
    drop(local);
    outcome
}

/// Age of the newest event the store holds (segments and snapshots).
async fn newest_event_age_ms(store: &StoreArgs) -> Result<i64> {
    let src = store.open().await?;
    let store = src.store();
    let segments = store.list_segments().await.context("listing segments")?;
    let snapshots = store.list_snapshots().await.context("listing snapshots")?;
    let newest = segments
        .iter()
        .map(|s| s.last_time_ms)
        .chain(snapshots.iter().map(|s| s.time_ms))
        .max()
        .unwrap_or(0);
    let now = jiff::Timestamp::now().as_millisecond();
    Ok(now.saturating_sub(newest))
}

async fn drill(
    a: &DrillArgs,
    state: &rewind_history::DesiredState,
    client: &kube::Client,
    target: &str,
    rpo_ms: Option<i64>,
) -> Result<()> {
    let protected = ProtectedSet::with_defaults(&[])?;
    let opts = PlanOptions {
        protected: protected.clone(),
        ..PlanOptions::default()
    };

    let start = Instant::now();
    let p = plan(state, client, &opts)
        .await
        .context("planning the drill")?;
    let apply_opts = ApplyOptions {
        concurrency: a.concurrency,
        ..ApplyOptions::default()
    };
    let report = apply(client, &p, &apply_opts).await.context("restoring")?;
    let rto = start.elapsed();

    // What the drill must find: the state less what it was told to skip.
    let mut want = p.state.clone();
    for i in p.items.iter().filter(|i| i.action == Action::Skip) {
        want.remove(&i.key);
    }
    if want.is_empty() {
        bail!(
            "drill failed: every one of the {} objects at {} is skipped by the plan \
             (protected, being deleted, or never written); nothing to compare",
            p.state.len(),
            a.at
        );
    }
    let types: Vec<_> = want.types().into_iter().collect();
    let mut got = compare::record(client, &types)
        .await
        .context("reading the result back")?;
    // The throwaway cluster's own objects (kube-system, default RBAC, …) are
    // not differences.
    let own: Vec<_> = got
        .iter()
        .filter(|(k, _)| want.get(k).is_none() && !protected.may_prune(k))
        .map(|(k, _)| k.clone())
        .collect();
    for k in own {
        got.remove(&k);
    }
    // Status the restore does not write (built-in types: their controllers
    // own it) is not compared.
    for state in [&mut want, &mut got] {
        for (k, o) in state.iter_mut() {
            if p.modes.get(&k.rtype).is_none_or(|m| *m == StatusMode::Skip)
                && let Some(m) = o.as_object_mut()
            {
                m.remove("status");
            }
        }
    }
    let diffs: Vec<Difference> = compare::compare(&want, &got);
    let doc = json!({
        "point": a.at.to_string(),
        "objects": want.len(),
        "objects_restored": report.written,
        "failures": report.failures,
        "differences": diffs,
        "target": target,
        "rto_ms": rto.as_millis(),
        "rpo_ms": rpo_ms,
        "passed": diffs.is_empty() && report.failures.is_empty(),
    });
    if let Some(path) = &a.report {
        std::fs::write(path, serde_json::to_vec_pretty(&doc)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "drill at {} into {target}: {} objects",
        a.at,
        want.len()
    )?;
    writeln!(out, "  restored     {}", report.written)?;
    writeln!(out, "  failed       {}", report.failures.len())?;
    writeln!(out, "  differences  {}", diffs.len())?;
    writeln!(out, "  RTO          {:.1} s", rto.as_secs_f64())?;
    match rpo_ms {
        Some(ms) => writeln!(
            out,
            "  RPO          {:.1} s (age of the newest recorded event)",
            ms as f64 / 1000.0
        )?,
        None => writeln!(out, "  RPO          n/a (state read from a directory)")?,
    }
    for f in &report.failures {
        writeln!(out, "FAILED {} {}: {}", f.step, f.object, f.failure)?;
    }
    for d in &diffs {
        writeln!(out, "{d}")?;
    }
    if !diffs.is_empty() || !report.failures.is_empty() {
        bail!(
            "drill failed: {} differences, {} failed objects",
            diffs.len(),
            report.failures.len()
        );
    }
    Ok(())
}
