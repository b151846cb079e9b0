//! `cargo run --release -p rewind-tests --bin bench-suite`: runs every
//! benchmark the issues name, each against its baseline in the same run,
//! and writes `docs/BENCHMARKS.md` (see `rewind_tests::drill::bench`).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use rewind_tests::drill::bench::{self, Outcome};

/// Run the benchmark suite and write docs/BENCHMARKS.md.
#[derive(Debug, Parser)]
#[command(name = "bench-suite", version)]
struct Args {
    /// Only these benches (format, ingest, snapshot_while_ingesting,
    /// restore_vs_kubectl, reconstruct, record_latency, scale); repeatable.
    #[arg(long)]
    only: Vec<String>,
    /// Where to write the page.
    #[arg(long, default_value = "docs/BENCHMARKS.md")]
    out: PathBuf,
    /// Where each bench's output is kept (`NAME.out`, and `NAME.meta`:
    /// exit status and seconds), so the page can be rendered again.
    #[arg(long, default_value = "target/bench-suite")]
    outputs: PathBuf,
    /// Render the page from the outputs a previous run kept in `--outputs`
    /// instead of running the benches (after a fix to a figure parser).
    #[arg(long)]
    reuse: bool,
    /// With `--only`: put the other benches on the page too, re-read from
    /// the outputs an earlier run kept (the page names them), so one bench
    /// can be re-measured without the 30-minute whole.
    #[arg(long, requires = "only")]
    merge: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let root = rewind_tests::controlplane::workspace_root();
    let machine = bench::machine();
    let rustc = std::process::Command::new("rustc")
        .arg("-V")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(&root)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let mut outcomes = Vec::new();
    let mut reread = Vec::new();
    for b in bench::suite() {
        let saved = root.join(&args.outputs);
        if !args.only.is_empty() && !args.only.iter().any(|o| o == b.name) {
            if args.merge {
                let name = b.name;
                let kept = bench::load_outcome(b, &saved).with_context(|| {
                    format!("--merge: no kept output of {name} in {}", saved.display())
                })?;
                reread.push(kept_at(name, &saved));
                outcomes.push(kept);
            }
            continue;
        }
        if args.reuse {
            reread.push(kept_at(b.name, &saved));
            outcomes.push(bench::load_outcome(b, &saved)?);
            continue;
        }
        eprintln!("[bench-suite] {}: cargo {}", b.name, b.cargo.join(" "));
        let t = Instant::now();
        for step in b.setup {
            eprintln!("[bench-suite] {} setup: cargo {}", b.name, step.join(" "));
            let st = rewind_tests::cargo::command()
                .args(*step)
                .current_dir(&root)
                .status()
                .with_context(|| format!("running the setup of {}", b.name))?;
            if !st.success() {
                anyhow::bail!("the setup of {} failed: {st}", b.name);
            }
        }
        let out = rewind_tests::cargo::command()
            .args(b.cargo)
            .envs(b.env.iter().copied())
            .current_dir(&root)
            .stderr(std::process::Stdio::inherit())
            .output()
            .with_context(|| format!("running {}", b.name))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        print!("{stdout}");
        let outcome = Outcome {
            bench: b,
            ok: out.status.success(),
            stdout,
            elapsed: t.elapsed(),
        };
        bench::save_outcome(&outcome, &saved)?;
        outcomes.push(outcome);
    }
    let load_after = std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    let mut extra = vec![
        ("rustc".to_owned(), rustc),
        ("commit".to_owned(), commit),
        (
            "date (UTC)".to_owned(),
            rewind_history::now_ms().to_string() + " ms since the epoch",
        ),
    ];
    if args.reuse {
        // The machine rows above describe the machine now; the figures come
        // from the run that kept these outputs.
        extra.push((
            "outputs".to_owned(),
            format!(
                "re-read from `{}` (kept by an earlier run of the suite); load figures are at rendering time",
                args.outputs.display()
            ),
        ));
    }
    if !reread.is_empty() {
        let rest = if args.reuse {
            ""
        } else {
            "; the other benches ran in this run"
        };
        extra.push((
            "re-read from an earlier run".to_owned(),
            format!("{}{rest}", reread.join(", ")),
        ));
    }
    let mut page = bench::markdown(&outcomes, &machine, &load_after, &extra);
    let path = root.join(&args.out);
    // The hand-kept section survives a rewrite of the page.
    let old_page = std::fs::read_to_string(&path).unwrap_or_default();
    if let Some(notes) = bench::design_notes(&old_page) {
        page.push('\n');
        page.push_str(notes);
    }
    std::fs::write(&path, page).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("[bench-suite] wrote {}", path.display());
    Ok(())
}

/// "NAME (kept at T ms since the epoch)": when a kept output was written,
/// so a page rendered from kept outputs still says when each was measured.
fn kept_at(name: &str, saved: &std::path::Path) -> String {
    let at = std::fs::metadata(saved.join(format!("{name}.out")))
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or_else(|| "unknown".to_owned(), |d| d.as_millis().to_string());
    format!("{name} (kept at {at} ms since the epoch)")
}
