//! `cargo run --release -p rewind-tests --bin bench-suite`: runs every
//! benchmark the issues name, each against its baseline in the same run,
//! judges each figure against its target, and writes `docs/BENCHMARKS.md`
//! (see `rewind_tests::drill::bench`). `--check` compares the run's
//! same-run ratios with the previous page's and exits non-zero on a
//! regression; `--fast` runs the benches at a small size against their own
//! baseline, `docs/bench-fast-baseline.md`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use rewind_tests::drill::bench::{self, Outcome, check};

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
    /// Compare this run's same-run ratios with the previous page's summary
    /// table (`--out`, or `--fast-baseline` with `--fast`) and exit non-zero
    /// naming each ratio that regressed past its tolerance
    /// (`tests/src/drill/bench/check.rs`). The committed page is left as it
    /// is: the new one goes to `--outputs`.
    #[arg(long)]
    check: bool,
    /// Run the benches that have a fast form (same-run ratios that stay
    /// meaningful at a small size; `Bench::fast`) at a small size (a few
    /// minutes in all) and write `--fast-baseline` instead of the page; with
    /// `--check`, compare against that baseline. Outputs are kept in
    /// `--outputs` + `-fast`.
    #[arg(long, env = "REWIND_BENCH_FAST", value_parser = clap::builder::BoolishValueParser::new())]
    fast: bool,
    /// The fast-mode baseline.
    #[arg(long, default_value = "docs/bench-fast-baseline.md")]
    fast_baseline: PathBuf,
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
    let (benches, outputs) = if args.fast {
        let mut dir = args.outputs.clone().into_os_string();
        dir.push("-fast");
        (bench::fast_suite(), PathBuf::from(dir))
    } else {
        (bench::suite(), args.outputs.clone())
    };
    for b in benches {
        let saved = root.join(&outputs);
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
        // The commit measured, for a page rendered later from these outputs.
        let name = outcome.bench.name;
        std::fs::write(saved.join(format!("{name}.commit")), &commit)
            .with_context(|| format!("writing the commit of {name} in {}", saved.display()))?;
        outcomes.push(outcome);
    }
    let load_after = std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    // Figures re-read from kept outputs were measured at the commits those
    // outputs name, not at the one rendering the page.
    let kept_commits: std::collections::BTreeSet<String> = if args.reuse {
        outcomes
            .iter()
            .map(|o| {
                std::fs::read_to_string(
                    root.join(&outputs).join(format!("{}.commit", o.bench.name)),
                )
                .map_or_else(|_| "unknown".to_owned(), |c| c.trim().to_owned())
            })
            .collect()
    } else {
        std::collections::BTreeSet::new()
    };
    let commit_now = commit.clone();
    let kept_list: Vec<String> = kept_commits.iter().cloned().collect();
    let commit_row = if args.reuse {
        format!(
            "{} (measured, from the kept outputs); page rendered at {commit}",
            kept_list.join(", ")
        )
    } else {
        commit
    };
    let mut extra = vec![
        ("rustc".to_owned(), rustc),
        ("commit".to_owned(), commit_row),
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
                outputs.display()
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
    if args.fast {
        extra.push(("mode".to_owned(), "fast (small sizes)".to_owned()));
    }
    // The page a plain run rewrites, and the one --check compares with.
    let committed = root.join(if args.fast {
        &args.fast_baseline
    } else {
        &args.out
    });
    let old_page = std::fs::read_to_string(&committed).unwrap_or_default();
    // A page rendered again from kept outputs (all of them) keeps the
    // earlier page's machine table: the machine, load and commit of the run
    // that measured the figures, not of this rendering.
    let measured = bench::machine_table(&old_page);
    // Only when the kept outputs are that page's run: all measured at the
    // commit its machine table names.
    let page_commit = measured
        .iter()
        .find(|(k, _)| k == "commit")
        .and_then(|(_, v)| v.split_whitespace().next())
        .unwrap_or_default();
    let reused_whole = args.reuse
        && args.only.is_empty()
        && !measured.is_empty()
        && kept_list.len() == 1
        && kept_list.first().is_some_and(|c| c == page_commit);
    // The commit the figures were measured at: the earlier page's when it is
    // rendered again from kept outputs, else this run's.
    let measured_commit = if reused_whole {
        measured
            .iter()
            .find(|(k, _)| k == "commit")
            .map_or_else(|| commit_now.clone(), |(_, v)| v.clone())
    } else {
        commit_now.clone()
    };
    let mut page = if args.fast {
        extra.push(("load average at end".to_owned(), load_after));
        bench::fast_page(&outcomes, &machine, &extra)
    } else if reused_whole {
        let load_end = measured
            .iter()
            .find(|(k, _)| k == "load average at end")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let rows: Vec<(String, String)> = measured
            .into_iter()
            .filter(|(k, _)| k != "load average at end" && k != "rendered again")
            .collect();
        let rendered = vec![(
            "rendered again".to_owned(),
            format!(
                "by `bench-suite --reuse` at commit {commit_now} from the outputs kept in `{}`; the rows above are the measuring run's",
                outputs.display()
            ),
        )];
        bench::markdown(&outcomes, &rows, &load_end, &rendered)
    } else {
        bench::markdown(&outcomes, &machine, &load_after, &extra)
    };
    // The hand-kept section survives a rewrite of the page.
    if let Some(notes) = bench::design_notes(&old_page) {
        page.push('\n');
        page.push_str(notes);
    }
    let path = if args.check {
        let name = committed
            .file_name()
            .map_or_else(|| "BENCHMARKS.md".into(), std::ffi::OsStr::to_os_string);
        root.join(&outputs).join(name)
    } else {
        committed.clone()
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&path, page).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("[bench-suite] wrote {}", path.display());
    if args.check {
        return check_against(&committed, &old_page, &outcomes, args.fast);
    }
    if !args.fast && args.out == std::path::Path::new("docs/BENCHMARKS.md") {
        update_manual(&root.join("docs/MANUAL.md"), &outcomes, &measured_commit)?;
    }
    Ok(())
}

/// Rewrites the suite's block of `docs/MANUAL.md` §7 from this page's
/// figures (a manual without the block is left alone, and said so).
fn update_manual(path: &std::path::Path, outcomes: &[Outcome], commit: &str) -> Result<()> {
    let manual =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    match bench::splice_manual(&manual, &bench::manual_block(outcomes, commit)) {
        Some(updated) => {
            std::fs::write(path, updated).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("[bench-suite] wrote the figures of {} §7", path.display());
        }
        None => eprintln!(
            "[bench-suite] {} has no block between `{}` and `{}`: its figures were not updated",
            path.display(),
            bench::MANUAL_BEGIN,
            bench::MANUAL_END
        ),
    }
    Ok(())
}

/// `--check`: this run's ratios against the previous page's; an error
/// naming every regression, missing ratio and failed bench.
fn check_against(
    page: &std::path::Path,
    old_page: &str,
    outcomes: &[Outcome],
    fast: bool,
) -> Result<()> {
    if old_page.is_empty() {
        anyhow::bail!(
            "--check: no previous page at {} to compare with{}",
            page.display(),
            if fast {
                " (write the fast-mode baseline first: bench-suite --fast)"
            } else {
                ""
            }
        );
    }
    let previous = check::read_summary(old_page)
        .with_context(|| format!("--check: reading the summary table of {}", page.display()))?;
    let ran: Vec<&str> = outcomes.iter().map(|o| o.bench.name).collect();
    let report = check::compare(&previous, &check::rows_of(outcomes), &ran, fast);
    println!("\n[bench-suite] --check against {}:", page.display());
    print!("{}", report.render());
    let failed: Vec<&str> = outcomes
        .iter()
        .filter(|o| !o.ok)
        .map(|o| o.bench.name)
        .collect();
    let regressed: Vec<String> = report
        .compared
        .iter()
        .filter(|c| c.regressed())
        .map(|c| format!("{} / {} / ratio of {}", c.bench, c.id, c.of))
        .chain(report.missing.iter().map(|m| format!("{m} (missing)")))
        .collect();
    if !failed.is_empty() || report.failed() {
        anyhow::bail!(
            "--check failed: {}{}",
            if failed.is_empty() {
                String::new()
            } else {
                format!("benches that exited non-zero: {}; ", failed.join(", "))
            },
            if regressed.is_empty() {
                "no regressed ratio".to_owned()
            } else {
                format!("regressed past their tolerance: {}", regressed.join("; "))
            }
        );
    }
    println!("[bench-suite] --check passed");
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
