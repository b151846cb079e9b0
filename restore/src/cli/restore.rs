//! `rewind restore`: plan, print, confirm, apply, report.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use kube::config::{KubeConfigOptions, Kubeconfig};
use rewind_restore::{
    ApplyOptions, ApplyReport, PlanOptions, ProtectedSet, RestorePlan, apply, plan,
};
use serde_json::json;

use super::args::{Output, Preset, RestoreArgs};
use super::store::StoreArgs;
use super::{filter, load_with_files, resource_set};

/// A client for the cluster the kubeconfig at `path` names.
pub async fn client_for(path: &std::path::Path, context: Option<String>) -> Result<kube::Client> {
    let kc = Kubeconfig::read_from(path)
        .with_context(|| format!("reading kubeconfig {}", path.display()))?;
    let opts = KubeConfigOptions {
        context,
        ..KubeConfigOptions::default()
    };
    let config = kube::Config::from_custom_kubeconfig(kc, &opts)
        .await
        .with_context(|| format!("loading kubeconfig {}", path.display()))?;
    Ok(kube::Client::try_from(config)?)
}

fn default_state_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("XDG_STATE_HOME") {
        return PathBuf::from(d).join("rewind");
    }
    match std::env::var_os("HOME") {
        Some(h) => PathBuf::from(h).join(".local/state/rewind"),
        None => PathBuf::from(".rewind"),
    }
}

fn confirm(plan: &RestorePlan) -> Result<bool> {
    if !std::io::stdin().is_terminal() {
        bail!("refusing to write without confirmation: stdin is not a terminal (pass --yes)");
    }
    let deletes = plan.count(rewind_restore::Action::Delete);
    eprint!(
        "apply this plan ({} create, {} update, {deletes} delete{})? [y/N] ",
        plan.count(rewind_restore::Action::Create),
        plan.count(rewind_restore::Action::Update),
        if deletes > 0 {
            ": the live objects listed above as `delete` are removed"
        } else {
            ""
        }
    );
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes"))
}

fn print_report(plan: &RestorePlan, r: &ApplyReport, output: Output) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if output == Output::Json {
        serde_json::to_writer_pretty(&mut out, &json!({"plan": plan, "report": r}))?;
        writeln!(out)?;
        return Ok(());
    }
    let secs = r.elapsed_ms as f64 / 1000.0;
    writeln!(
        out,
        "restored plan {}: {} written, {} status, {} deleted, {} already done, {} failed in {secs:.1} s ({} requests retried, {} objects tried again after their level)",
        r.plan_id,
        r.written,
        r.status_written,
        r.deleted,
        r.resumed,
        r.failures.len(),
        r.retries,
        r.deferred_retries
    )?;
    for d in &r.dropped_owner_refs {
        writeln!(
            out,
            "dropped ownerReference: {} -> {} (owner not restored)",
            d.object, d.owner
        )?;
    }
    for c in &r.ownership_cycles {
        writeln!(out, "ownership cycle: {c}")?;
    }
    for f in &r.failures {
        writeln!(out, "FAILED {} {}: {}", f.step, f.object, f.failure)?;
    }
    Ok(())
}

/// The Deployment `--preset rancher` quiesces: the Rancher server, whose
/// controllers would act on a half-restored plane (Rancher Backups scales
/// the same one, its ResourceSet's `controllerReferences`).
pub const RANCHER_SERVER: (&str, &str) = ("cattle-system", "rancher");

/// The Deployments to quiesce: `--quiesce`, and with `--preset rancher`
/// the Rancher server.
fn quiesce_list(a: &RestoreArgs) -> Result<Vec<(String, String)>> {
    let mut list = parse_quiesce(&a.quiesce)?;
    let (ns, name) = RANCHER_SERVER;
    if a.preset == Some(Preset::Rancher) && !list.iter().any(|(n, m)| n == ns && m == name) {
        list.push((ns.to_owned(), name.to_owned()));
    }
    Ok(list)
}

fn parse_quiesce(items: &[String]) -> Result<Vec<(String, String)>> {
    items
        .iter()
        .map(|s| match s.split_once('/') {
            Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
                Ok((ns.to_owned(), name.to_owned()))
            }
            _ => bail!("--quiesce {s:?}: expected NAMESPACE/NAME"),
        })
        .collect()
}

/// What `--prune` may delete: the resource set recorded with the files the
/// state was read from, else the one `--resource-preset`/`--resource-set`
/// name; `None` when neither (planning then refuses to prune).
async fn prune_scope(
    a: &RestoreArgs,
    files: Option<&super::store::Files>,
    store: &StoreArgs,
) -> Result<Option<rewind_history::select::ResourceSet>> {
    if let Some(files) = files
        && let Some((file, set)) = store.recorded_scope(files).await?
    {
        eprintln!("prune: limited to the resource set recorded with {file}");
        return Ok(Some(set));
    }
    let named = resource_set(&a.state)?;
    if named.is_some() {
        eprintln!("prune: limited to the resource set --resource-preset/--resource-set name");
    }
    Ok(named)
}

/// Runs `rewind restore`.
pub async fn run(a: RestoreArgs, store: &StoreArgs) -> Result<()> {
    let (state, files) = load_with_files(&a.state, store).await?;
    let prune_scope = if a.prune {
        prune_scope(&a, files.as_ref(), store).await?
    } else {
        None
    };
    let client = client_for(&a.to, a.context.clone()).await?;
    let protected = if a.no_default_protect {
        ProtectedSet::empty(&a.protect)?
    } else {
        ProtectedSet::with_defaults(&a.protect)?
    };
    let opts = PlanOptions {
        filter: filter(&a.state),
        prune: a.prune,
        protected,
        rancher: a.preset == Some(Preset::Rancher),
        include_deleting: a.include_deleting,
        prune_scope,
    };
    let plan = plan(&state, &client, &opts)
        .await
        .context("planning the restore")?;
    match a.output {
        Output::Json if a.dry_run => {
            serde_json::to_writer_pretty(std::io::stdout().lock(), &json!({"plan": plan}))?;
            println!();
        }
        Output::Json => {}
        Output::Table => print!("{}", plan.to_table()),
    }
    if a.dry_run {
        return Ok(());
    }
    let quiesce = quiesce_list(&a)?;
    if !plan.has_work() && !a.resume && a.quiesce.is_empty() {
        eprintln!("nothing to do: the target already matches the state");
        return Ok(());
    }
    if !a.yes && !confirm(&plan)? {
        bail!("restore cancelled");
    }
    let apply_opts = ApplyOptions {
        concurrency: a.concurrency,
        crd_timeout: Duration::from_secs(a.crd_timeout),
        field_manager: "rewind".into(),
        quiesce,
        state_dir: Some(a.state_dir.clone().unwrap_or_else(default_state_dir)),
        resume: a.resume,
        progress: a.output == Output::Table,
    };
    let report = apply(&client, &plan, &apply_opts)
        .await
        .context("applying the restore")?;
    print_report(&plan, &report, a.output)?;
    if !report.failures.is_empty() {
        bail!(
            "{} of the planned objects were not restored (see above)",
            report.failures.len()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn restore_args(extra: &[&str]) -> RestoreArgs {
        let mut argv = vec!["rewind", "restore", "--to", "kc"];
        argv.extend_from_slice(extra);
        match super::super::args::Cli::try_parse_from(argv)
            .unwrap()
            .command
        {
            super::super::args::Command::Restore(a) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_rancher_preset_quiesces_the_rancher_server() {
        let server = ("cattle-system".to_owned(), "rancher".to_owned());
        assert!(quiesce_list(&restore_args(&[])).unwrap().is_empty());
        assert_eq!(
            quiesce_list(&restore_args(&["--preset", "rancher"])).unwrap(),
            vec![server.clone()]
        );
        // Named as well: once.
        assert_eq!(
            quiesce_list(&restore_args(&[
                "--preset",
                "rancher",
                "--quiesce",
                "cattle-system/rancher",
                "--quiesce",
                "cattle-fleet-system/fleet-controller"
            ]))
            .unwrap(),
            vec![
                server,
                (
                    "cattle-fleet-system".to_owned(),
                    "fleet-controller".to_owned()
                )
            ]
        );
    }
}
