//! `rewind history TYPE/[NAMESPACE/]NAME`: every recorded version of one
//! object, who made it, and what changed.

use std::io::Write;

use anyhow::{Context, Result, anyhow};
use rewind_history::pit::history::ObjectSpec;

use super::args::{HistoryArgs, Output};
use super::list::time;
use super::store::StoreArgs;

fn short(v: Option<&serde_json::Value>) -> String {
    let s = v.map_or_else(|| "(none)".to_owned(), ToString::to_string);
    if s.chars().count() > 60 {
        format!("{}…", s.chars().take(60).collect::<String>())
    } else {
        s
    }
}

/// Runs `rewind history`.
pub async fn run(a: &HistoryArgs, store: &StoreArgs) -> Result<()> {
    let spec: ObjectSpec = a.object.parse().map_err(|e: String| anyhow!(e))?;
    let src = store.open().await?;
    let versions = src
        .history(&spec)
        .await
        .with_context(|| format!("reading the history of {}", a.object))?;
    let mut out = std::io::stdout().lock();
    match a.output {
        Output::Json => {
            serde_json::to_writer_pretty(&mut out, &versions)?;
            writeln!(out)?;
        }
        Output::Table => {
            if versions.is_empty() {
                writeln!(out, "no recorded version of {} in the window", a.object)?;
            }
            writeln!(
                out,
                "{:>10} {:<25} {:<9} {:>12} {:<20} CHANGES",
                "SEQ", "TIME", "EVENT", "RV", "MANAGER"
            )?;
            for v in &versions {
                writeln!(
                    out,
                    "{:>10} {:<25} {:<9} {:>12} {:<20} {}",
                    v.seq,
                    time(v.time_ms),
                    v.event,
                    v.resource_version,
                    v.manager.as_deref().unwrap_or("-"),
                    v.changes.len()
                )?;
                for c in &v.changes {
                    writeln!(
                        out,
                        "{:>12}{}: {} -> {}",
                        "",
                        c.path,
                        short(c.before.as_ref()),
                        short(c.after.as_ref())
                    )?;
                }
            }
        }
    }
    Ok(())
}
