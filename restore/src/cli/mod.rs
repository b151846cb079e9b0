//! The `rewind` commands: flags in [`args`], one function per command.

pub mod args;
mod drill;
mod history;
mod list;
mod restore;
mod store;
mod verify;

use std::io::Write;

use anyhow::{Context, Result};
use clap::CommandFactory;
use rewind_history::select::{self, ResourceSelector, ResourceSet};
use rewind_history::{DesiredState, DirSource, Filter, StateSource};
use rewind_restore::export;
use rewind_restore::summary::Summary;
use serde_json::json;

use args::{Cli, Command, Output, StateArgs};
use store::StoreArgs;

/// Runs one command.
pub async fn run(cli: Cli) -> Result<()> {
    let store = StoreArgs::from_cli(&cli);
    match cli.command {
        Command::List(a) => list::run(&a, &store).await,
        Command::History(a) => history::run(&a, &store).await,
        Command::Diff(a) => diff(&a, &store).await,
        Command::Verify(a) => verify::run(&a, &store).await,
        Command::Drill(a) => drill::run(a, &store).await,
        Command::Show(a) => show(&summary(&a.state, &store).await?, a.output),
        Command::Export(a) => {
            let state = load(&a.state, &store).await?;
            let r = export(&state, &a.out)
                .with_context(|| format!("exporting to {}", a.out.display()))?;
            eprintln!(
                "wrote {} files to {} ({} objects lost their ownerReferences)",
                r.files,
                a.out.display(),
                r.owner_refs_dropped
            );
            Ok(())
        }
        Command::Restore(a) => restore::run(a, &store).await,
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "rewind", &mut std::io::stdout());
            Ok(())
        }
    }
}

/// The filter the state flags describe.
pub fn filter(a: &StateArgs) -> Filter {
    Filter {
        types: a.types.clone(),
        namespaces: a.namespaces.clone(),
        names: a.names.clone(),
    }
}

/// The selected part of the state the flags name.
pub async fn load(a: &StateArgs, store: &StoreArgs) -> Result<DesiredState> {
    Ok(load_with_files(a, store).await?.0)
}

/// [`load`], and the store files the state was read from (`None` for a
/// directory of manifests).
pub async fn load_with_files(
    a: &StateArgs,
    store: &StoreArgs,
) -> Result<(DesiredState, Option<store::Files>)> {
    let set = resource_set(a)?;
    let (state, files) = match &a.from_dir {
        None => {
            let (state, files) = store.desired_and_files_at(&a.at).await?;
            (state, Some(files))
        }
        Some(dir) => (
            DirSource::new(dir)
                .state_at(&a.at)
                .await
                .with_context(|| format!("reading the state from {}", dir.display()))?,
            None,
        ),
    };
    let mut state = state.into_filtered(&filter(a));
    if let Some(set) = set {
        state.retain_selected(&set);
    }
    Ok((state, files))
}

/// The counts `rewind show` prints. From a store without resource-set
/// selectors (which may read any field) they come straight from the folded
/// state: the desired state's objects are never built.
async fn summary(a: &StateArgs, store: &StoreArgs) -> Result<Summary> {
    if a.from_dir.is_some() || !a.presets.is_empty() || !a.resource_sets.is_empty() {
        return Ok(Summary::of(&load(a, store).await?));
    }
    let pit = store.load(&a.at).await?;
    Ok(Summary::from_format(&pit.state, &filter(a))?)
}

/// The resource set `--resource-preset` and `--resource-set` name, if any.
pub fn resource_set(a: &StateArgs) -> Result<Option<ResourceSet>> {
    if a.presets.is_empty() && a.resource_sets.is_empty() {
        return Ok(None);
    }
    let mut set = ResourceSet::default();
    for p in &a.presets {
        set.extend(
            select::preset::preset(p.trim()).with_context(|| format!("--resource-preset {p}"))?,
        );
    }
    for path in &a.resource_sets {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {origin}"))?;
        let selectors: Vec<ResourceSelector> = serde_saphyr::from_str(&text)
            .with_context(|| format!("{origin}: not a YAML list of resource selectors"))?;
        set.extend(ResourceSet::compile(&selectors, &origin).with_context(|| origin.clone())?);
    }
    Ok(Some(set))
}

async fn diff(a: &args::DiffArgs, store: &StoreArgs) -> Result<()> {
    let (Some(from_dir), Some(to_dir)) = (&a.from_dir, &a.to_dir) else {
        let from = store.desired_at(&a.from).await?;
        let to = store.desired_at(&a.to).await?;
        return print_diff(&rewind_restore::diff::diff(&from, &to), a.output);
    };
    let read = async |dir: &std::path::Path, at: &rewind_history::Point| {
        DirSource::new(dir)
            .state_at(at)
            .await
            .with_context(|| format!("reading the state from {}", dir.display()))
    };
    let from = read(from_dir, &a.from).await?;
    let to = read(to_dir, &a.to).await?;
    let d = rewind_restore::diff::diff(&from, &to);
    print_diff(&d, a.output)
}

fn print_diff(d: &rewind_restore::diff::StateDiff, output: Output) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match output {
        Output::Json => {
            serde_json::to_writer_pretty(&mut out, d)?;
            writeln!(out)?;
        }
        Output::Table => write!(out, "{}", d.to_table())?,
    }
    Ok(())
}

fn show(summary: &Summary, output: Output) -> Result<()> {
    // Thousands of namespaces make thousands of small writes.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match output {
        Output::Json => {
            let types: Vec<_> = summary
                .types
                .iter()
                .map(|(t, n)| json!({"type": t.group_resource(), "version": t.version, "kind": t.kind, "objects": n}))
                .collect();
            serde_json::to_writer_pretty(
                &mut out,
                &json!({"objects": summary.objects, "types": types, "namespaces": summary.namespaces}),
            )?;
            writeln!(out)?;
        }
        Output::Table => {
            writeln!(out, "{:<60} {:<12} {:>8}", "TYPE", "VERSION", "OBJECTS")?;
            for (t, n) in &summary.types {
                writeln!(out, "{:<60} {:<12} {:>8}", t.group_resource(), t.version, n)?;
            }
            writeln!(out, "{:<60} {:<12} {:>8}", "TOTAL", "", summary.objects)?;
        }
    }
    out.flush()?;
    Ok(())
}
