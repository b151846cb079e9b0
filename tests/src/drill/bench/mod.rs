//! The benchmark suite behind
//! `cargo run --release -p rewind-tests --bin bench-suite`: runs every
//! benchmark the issues name, each of which measures its own baseline in the
//! same run, reads the figures out of their printed tables ([`extract`]),
//! judges each against its target ([`targets`]), and writes
//! `docs/BENCHMARKS.md`. The raw output of each bench goes into the page too,
//! so a figure can always be checked against what the bench printed.
//! [`check`] compares a run's same-run ratios with an earlier page's.

pub mod check;
mod extract;
pub mod targets;

use std::fmt::Write as _;
use std::time::Duration;

use extract::{
    extract_format, extract_ingest, extract_latency, extract_reconstruct, extract_restore,
    extract_scale, extract_snapshot,
};

/// One benchmark of the suite.
#[derive(Debug, Clone)]
pub struct Bench {
    /// Short name (`--only` uses it).
    pub name: &'static str,
    /// Cargo commands (arguments of each) run first, in order, to make its
    /// inputs (none: no setup).
    pub setup: &'static [&'static [&'static str]],
    /// The cargo arguments that run it.
    pub cargo: &'static [&'static str],
    /// Environment for it (sizes).
    pub env: &'static [(&'static str, &'static str)],
    /// What the issues ask of it.
    pub target: &'static str,
    /// Reads its figures from its output.
    pub extract: fn(&str) -> Vec<Figure>,
    /// How it runs in fast mode (`bench-suite --fast`), if it does: a bench
    /// without same-run ratios has nothing for `--check` to compare and is
    /// left out of it.
    pub fast: Option<Fast>,
}

/// A bench's fast form: the same bench at a small size.
#[derive(Debug, Clone, Copy)]
pub struct Fast {
    /// Replaces [`Bench::setup`].
    pub setup: &'static [&'static [&'static str]],
    /// Replaces [`Bench::cargo`].
    pub cargo: &'static [&'static str],
    /// Replaces [`Bench::env`].
    pub env: &'static [(&'static str, &'static str)],
}

impl Bench {
    /// This bench in its fast form, if it has one.
    #[must_use]
    pub fn fast(&self) -> Option<Self> {
        let f = self.fast?;
        Some(Self {
            setup: f.setup,
            cargo: f.cargo,
            env: f.env,
            fast: None,
            ..self.clone()
        })
    }
}

/// The benches of fast mode, in their fast form: a few minutes in all
/// (warm build), for CI's `bench-suite --check --fast`.
#[must_use]
pub fn fast_suite() -> Vec<Bench> {
    suite().iter().filter_map(Bench::fast).collect()
}

/// One figure of the summary table.
#[derive(Debug, Clone, Default)]
pub struct Figure {
    /// Names the figure within its bench from run to run (the setting or
    /// row it comes from, never a measured number): `--check` pairs the
    /// figures of two runs by it.
    pub id: String,
    /// What was measured.
    pub what: String,
    /// The figure.
    pub value: String,
    /// The baseline measured in the same run.
    pub baseline: String,
    /// value / baseline for each baseline, as the bench prints them.
    pub ratios: Vec<Ratio>,
    /// The targets it is judged against.
    pub checks: Vec<targets::Check>,
    /// Why it has no target, when `checks` is empty.
    pub no_target: String,
}

impl Figure {
    /// The ratio column: `VALUE of BASELINE`, comma-separated
    /// ([`Ratio::parse_cell`] reads it back).
    #[must_use]
    pub fn ratio_text(&self) -> String {
        self.ratios
            .iter()
            .map(|r| format!("{} of {}", r.value, r.of))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The target column: each target's id, what and limit.
    #[must_use]
    pub fn target_text(&self) -> String {
        if self.checks.is_empty() {
            return "-".to_owned();
        }
        self.checks
            .iter()
            .map(|c| {
                format!(
                    "{}: {} {}",
                    c.target.id,
                    c.target.what,
                    c.target.limit_text()
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The verdict column ([`targets::verdict`]).
    #[must_use]
    pub fn verdict(&self) -> String {
        targets::verdict(&self.checks, &self.no_target)
    }
}

/// A same-run ratio of a figure to one of its baselines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ratio {
    /// As the bench printed it (`0.579`, `13.1x`).
    pub value: String,
    /// The baseline's name (no `, ` and no ` of ` in it).
    pub of: String,
}

impl Ratio {
    /// The ratios of a summary table's ratio cell, as [`Figure::ratio_text`]
    /// wrote them; parts that are not `VALUE of BASELINE` are skipped.
    #[must_use]
    pub fn parse_cell(cell: &str) -> Vec<Self> {
        cell.split(", ")
            .filter_map(|part| {
                let (value, of) = part.trim().split_once(" of ")?;
                targets::number(value)?;
                Some(Self {
                    value: value.to_owned(),
                    of: of.to_owned(),
                })
            })
            .collect()
    }
}

/// A bench's run.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The bench.
    pub bench: Bench,
    /// Whether it exited 0.
    pub ok: bool,
    /// Its stdout (the table).
    pub stdout: String,
    /// Wall time.
    pub elapsed: Duration,
}

/// Keeps a bench's output in `dir` (`NAME.out`, `NAME.meta`).
pub fn save_outcome(o: &Outcome, dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(format!("{}.out", o.bench.name)), &o.stdout)?;
    std::fs::write(
        dir.join(format!("{}.meta", o.bench.name)),
        format!("{} {:.3}\n", o.ok, o.elapsed.as_secs_f64()),
    )
}

/// Reads back what [`save_outcome`] kept.
pub fn load_outcome(bench: Bench, dir: &std::path::Path) -> std::io::Result<Outcome> {
    let stdout = std::fs::read_to_string(dir.join(format!("{}.out", bench.name)))?;
    let meta = std::fs::read_to_string(dir.join(format!("{}.meta", bench.name)))?;
    let mut parts = meta.split_whitespace();
    let ok = parts.next() == Some("true");
    let secs = parts
        .next()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0)
        .unwrap_or(0.0);
    Ok(Outcome {
        bench,
        ok,
        stdout,
        elapsed: Duration::from_secs_f64(secs),
    })
}

/// Every benchmark the issues name.
#[must_use]
pub fn suite() -> Vec<Bench> {
    vec![
        Bench {
            name: "format",
            // Two generated Rancher-like planes of 100,000 objects, shaped
            // like API output (uid, resourceVersion, managedFields, ...),
            // measured one after the other in one run: `new-plane` is
            // `PlaneSpec::new`'s (the input of the earlier figures);
            // `reference-mix` is `PlaneSpec::reference_mix`, calibrated to
            // shared/reference/rancher/README.md (RoleBindings dominant,
            // real-shaped CA certificates).
            setup: &[
                &[
                    "run",
                    "--release",
                    "-p",
                    "rewind-tests",
                    "--example",
                    "plane_jsonl",
                    "--",
                    "100000",
                    "target/bench-plane-100k.jsonl",
                ],
                &[
                    "run",
                    "--release",
                    "-p",
                    "rewind-tests",
                    "--example",
                    "plane_jsonl",
                    "--",
                    "100000",
                    "target/bench-reference-100k.jsonl",
                    "--reference-mix",
                ],
            ],
            cargo: &[
                "run",
                "--release",
                "-p",
                "rewind-format",
                "--example",
                "format_bench",
                "--",
                "--jsonl",
                "new-plane=target/bench-plane-100k.jsonl",
                "--jsonl",
                "reference-mix=target/bench-reference-100k.jsonl",
            ],
            env: &[],
            target: "size <= 0.6x the BRO-faithful tar.gz (reference mix) and <= 0.8x zstd -19 --long; encode >= 100 MB/s, decode >= 400 MB/s (one core)",
            extract: extract_format,
            fast: Some(Fast {
                setup: &[
                    &[
                        "run",
                        "--release",
                        "-p",
                        "rewind-tests",
                        "--example",
                        "plane_jsonl",
                        "--",
                        "3000",
                        "target/bench-plane-fast.jsonl",
                    ],
                    &[
                        "run",
                        "--release",
                        "-p",
                        "rewind-tests",
                        "--example",
                        "plane_jsonl",
                        "--",
                        "3000",
                        "target/bench-reference-fast.jsonl",
                        "--reference-mix",
                    ],
                ],
                cargo: &[
                    "run",
                    "--release",
                    "-p",
                    "rewind-format",
                    "--example",
                    "format_bench",
                    "--",
                    "--no-dict",
                    "--jsonl",
                    "new-plane=target/bench-plane-fast.jsonl",
                    "--jsonl",
                    "reference-mix=target/bench-reference-fast.jsonl",
                ],
                env: &[],
            }),
        },
        Bench {
            name: "ingest",
            setup: &[],
            cargo: &["bench", "-p", "rewind-daemon", "--bench", "ingest"],
            // P1 is a one-core figure: the bench pins itself (and sled's
            // threads) to CPU 0.
            env: &[("REWIND_BENCH_CPU", "0")],
            target: "P1: >= 80,000 events/s pinned to one core with the journal's real sync, >= 0.75x raw sled with the same sync (2 KB objects)",
            extract: extract_ingest,
            fast: Some(Fast {
                setup: &[],
                cargo: &["bench", "-p", "rewind-daemon", "--bench", "ingest"],
                env: &[("REWIND_BENCH_EVENTS", "20000")],
            }),
        },
        Bench {
            name: "snapshot_while_ingesting",
            setup: &[],
            cargo: &[
                "bench",
                "-p",
                "rewind-daemon",
                "--bench",
                "snapshot_while_ingesting",
            ],
            // P8 names a million objects.
            env: &[("REWIND_BENCH_OBJECTS", "1000000")],
            target: "P8: a snapshot of 1,000,000 objects while recording in <= 15 s, no ingestion stall over 100 ms (this bench: 1,000,000 objects in the journal and the compactor in one process, not the whole rewindd; a stall is the time between two commits of 1,000 events)",
            extract: extract_snapshot,
            // At a small size its ratio is noise (see check::RULES).
            fast: None,
        },
        Bench {
            name: "restore_vs_kubectl",
            setup: &[],
            cargo: &[
                "bench",
                "-p",
                "rewind-tests",
                "--bench",
                "restore_vs_kubectl",
            ],
            env: &[("REWIND_BENCH_STORE_OBJECTS", "100000")],
            target: "P6: >= 2x parallel kubectl apply --server-side (16 processes, each a 16th of the files) and >= 0.8x the apiserver's write ceiling (the fastest of plain parallel creates of the same objects by 16, 64 and 256 writers), 100,000 objects from the store (the second table; the first restores about 1,400 objects from memory against serial kubectl too)",
            extract: extract_restore,
            fast: Some(Fast {
                setup: &[],
                cargo: &[
                    "bench",
                    "-p",
                    "rewind-tests",
                    "--bench",
                    "restore_vs_kubectl",
                ],
                env: &[
                    ("REWIND_BENCH_CLUSTERS", "20"),
                    ("REWIND_BENCH_STORE_OBJECTS", "0"),
                ],
            }),
        },
        Bench {
            name: "reconstruct",
            setup: &[],
            cargo: &["bench", "-p", "rewind-tests", "--bench", "reconstruct"],
            env: &[
                ("REWIND_BENCH_P5_OBJECTS", "1000000"),
                ("REWIND_BENCH_P5_EVENTS", "2000000"),
            ],
            target: "<= 3 s: state at any point from a snapshot + 1,000,000 events, 100,000 objects; P5 at 1,000,000 objects + 2,000,000 mixed events (creates, content updates, deletes), points over the whole history, cold cache, local store and Garage: <= 15 s",
            extract: extract_reconstruct,
            fast: Some(Fast {
                setup: &[],
                cargo: &["bench", "-p", "rewind-tests", "--bench", "reconstruct"],
                env: &[
                    ("REWIND_BENCH_OBJECTS", "10000"),
                    ("REWIND_BENCH_EVENTS", "100000"),
                    ("REWIND_BENCH_P5_OBJECTS", "0"),
                ],
            }),
        },
        Bench {
            name: "record_latency",
            setup: &[],
            cargo: &["bench", "-p", "rewind-daemon", "--bench", "record_latency"],
            env: &[],
            target: "P2: p99 API write -> durable <= 50 ms while other types take the heaviest sustained write load and during a snapshot (this bench: an idle apiserver, then 64 writers of Secrets the recorder records too; no snapshot); daemon RSS <= 150 MB recording 100,000 objects",
            extract: extract_latency,
            fast: None,
        },
        Bench {
            name: "scale",
            setup: &[],
            cargo: &["bench", "-p", "rewind-tests", "--bench", "scale"],
            env: &[
                ("REWIND_SCALE_SIZES", "10000,100000,300000,1000000"),
                ("REWIND_SCALE_UPDATES_MAX", "100000"),
                ("REWIND_SCALE_RESTORE_MAX", "300000"),
                ("REWIND_SETTLE_SECS", "1800"),
                ("REWIND_SCALE_SVG", "docs/scale.svg"),
            ],
            target: "growth of ingestion, snapshot, reconstruction and restore times and daemon memory with size (plot: docs/scale.svg); P7 and P8 judge a 1,000,000-object row",
            extract: extract_scale,
            fast: None,
        },
    ]
}

/// The machine, from /proc (Linux).
#[must_use]
pub fn machine() -> Vec<(String, String)> {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let field = |text: &str, key: &str| {
        text.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split(':').nth(1))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| "unknown".into())
    };
    let cpuinfo = read("/proc/cpuinfo");
    let meminfo = read("/proc/meminfo");
    vec![
        (
            "CPUs (available parallelism)".into(),
            std::thread::available_parallelism()
                .map_or_else(|_| "unknown".into(), |n| n.to_string()),
        ),
        ("CPU model".into(), field(&cpuinfo, "model name")),
        ("memory".into(), field(&meminfo, "MemTotal")),
        (
            "load average at start (1, 5, 15 min)".into(),
            read("/proc/loadavg")
                .split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" "),
        ),
        (
            "kernel".into(),
            read("/proc/sys/kernel/osrelease").trim().to_owned(),
        ),
    ]
}

/// The rows of a page's machine table (`## Machine`), in order; empty if
/// it has none. A page rendered again from kept outputs keeps these: they
/// describe the machine and the run that measured the figures.
#[must_use]
pub fn machine_table(page: &str) -> Vec<(String, String)> {
    page.lines()
        .skip_while(|l| l.trim() != "## Machine")
        .skip(1)
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .filter_map(|l| {
            let inner = l.trim().trim_start_matches('|').trim_end_matches('|');
            let (k, v) = inner.split_once('|')?;
            let (k, v) = (k.trim(), v.trim());
            (!k.is_empty() && !k.starts_with("---")).then(|| (k.to_owned(), v.to_owned()))
        })
        .collect()
}

/// Opens the block of `docs/MANUAL.md` §7 that the suite writes.
pub const MANUAL_BEGIN: &str =
    "<!-- bench-suite: begin (written from docs/BENCHMARKS.md by bench-suite; do not edit) -->";
/// Closes it.
pub const MANUAL_END: &str = "<!-- bench-suite: end -->";

/// The figures `docs/MANUAL.md` §7 quotes, as the page has them: the
/// default snapshot's size against the tarballs and zstd, and the restore
/// against kubectl, with their verdicts and the commit measured.
#[must_use]
pub fn manual_block(outcomes: &[Outcome], commit: &str) -> String {
    let mut s = format!(
        "{MANUAL_BEGIN}\n\nFrom `docs/BENCHMARKS.md` (measured at commit {commit}); the page has the baselines' sizes and every other figure.\n\n\
         | figure (bench / id) | value | baseline (same run) | ratio | verdict |\n| --- | --- | --- | --- | --- |\n"
    );
    for o in outcomes {
        let wanted = |f: &Figure| match o.bench.name {
            "format" => f.id.ends_with("(default)"),
            "restore_vs_kubectl" => true,
            _ => false,
        };
        for f in (o.bench.extract)(&o.stdout).into_iter().filter(wanted) {
            let unit = if o.bench.name == "format" {
                " bytes"
            } else {
                " objects/s"
            };
            let _ = writeln!(
                s,
                "| {} / {} | {}{unit} | {} | {} | {} |",
                o.bench.name,
                cell(&f.id),
                cell(&f.value),
                cell(&f.baseline),
                cell(&f.ratio_text()),
                cell(&f.verdict())
            );
        }
    }
    s.push('\n');
    s.push_str(MANUAL_END);
    s
}

/// `manual` with its suite-written block replaced by `block`; `None` when
/// it has no such block (both markers, in order).
#[must_use]
pub fn splice_manual(manual: &str, block: &str) -> Option<String> {
    let start = manual.find(MANUAL_BEGIN)?;
    let end = manual.get(start..)?.find(MANUAL_END)? + start + MANUAL_END.len();
    Some(format!(
        "{}{block}{}",
        manual.get(..start)?,
        manual.get(end..)?
    ))
}

/// Heading of the page's hand-kept section: measurements behind design
/// choices (block sizes, budgets, layouts) that no bench of the suite
/// re-runs. The suite keeps this section as it is when it rewrites the page.
pub const DESIGN_NOTES_HEADING: &str = "## Design measurements (kept by hand)";

/// The hand-kept section of an earlier page (from its heading to the end),
/// if it has one.
#[must_use]
pub fn design_notes(old_page: &str) -> Option<&str> {
    let start = old_page.find(DESIGN_NOTES_HEADING)?;
    old_page.get(start..)
}

/// Heading of the summary table ([`check::read_summary`] finds it).
pub const SUMMARY_HEADING: &str = "## Summary";

/// The summary table: one row per figure, with its id, same-run ratios,
/// targets and verdict.
#[must_use]
pub fn summary(outcomes: &[Outcome]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{SUMMARY_HEADING}\n\n| bench | id | figure | value | baseline (same run) | ratio | target | verdict |\n| --- | --- | --- | --- | --- | --- | --- | --- |"
    );
    for o in outcomes {
        // A bench that failed after printing its table still shows its
        // figures; its section says it failed.
        let figs = (o.bench.extract)(&o.stdout);
        if figs.is_empty() {
            let why = if o.ok {
                "no figures parsed: see its output below"
            } else {
                "FAILED: see its output below"
            };
            let _ = writeln!(
                s,
                "| {} | - | {why} | | | | {} | not judged |",
                o.bench.name, o.bench.target
            );
        }
        for f in figs {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                o.bench.name,
                cell(&f.id),
                cell(&f.what),
                cell(&f.value),
                cell(&f.baseline),
                cell(&f.ratio_text()),
                cell(&f.target_text()),
                cell(&f.verdict())
            );
        }
    }
    s.push('\n');
    s
}

/// Text for a table cell: a `|` would split it.
fn cell(text: &str) -> String {
    text.replace('|', "/")
}

/// The targets the verdicts are judged against ([`targets::TARGETS`]).
#[must_use]
pub fn targets_table() -> String {
    let mut s = String::from(
        "## Targets\n\nEach verdict above holds a figure against these (kept in `tests/src/drill/bench/targets.rs`). \
         A figure the benches do not measure yet shows as \"not measured\" in the rows it belongs to; \
         where a bench measures under other conditions than the target names (size, load, cache), its row says what it measured.\n\n\
         | id | what | limit | as the target asks it |\n| --- | --- | --- | --- |\n",
    );
    for t in targets::TARGETS {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |",
            t.id,
            t.what,
            t.limit_text(),
            t.scope
        );
    }
    s
}

/// The fast-mode baseline (`docs/bench-fast-baseline.md`): the machine
/// and the summary table of a `bench-suite --fast` run, which
/// `bench-suite --check --fast` compares its ratios with.
#[must_use]
pub fn fast_page(
    outcomes: &[Outcome],
    machine: &[(String, String)],
    extra: &[(String, String)],
) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Benchmarks at a small size (fast-mode baseline)\n");
    let _ = writeln!(
        s,
        "Generated by `cargo run --release -p rewind-tests --bin bench-suite -- --fast` (do not edit it by hand). \
         CI runs `bench-suite --check --fast`, which compares its same-run ratios with this table's and fails on a regression past \
         each ratio's tolerance (`tests/src/drill/bench/check.rs`). The sizes are small, so the figures and verdicts here say little \
         about the targets: `docs/BENCHMARKS.md` has the full-size run.\n"
    );
    let _ = writeln!(s, "## Machine\n\n| | |\n| --- | --- |");
    for (k, v) in machine.iter().chain(extra) {
        let _ = writeln!(s, "| {k} | {v} |");
    }
    s.push('\n');
    s.push_str(&summary(outcomes));
    s
}

/// `docs/BENCHMARKS.md`.
#[must_use]
pub fn markdown(
    outcomes: &[Outcome],
    machine: &[(String, String)],
    load_after: &str,
    extra: &[(String, String)],
) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Benchmarks\n");
    let _ = writeln!(
        s,
        "Generated by `cargo run --release -p rewind-tests --bin bench-suite` (this file is its output; \
         do not edit it by hand, except its last section, which the suite keeps as it is). Each bench measures its baseline in the same run; the figures below are \
         read from the tables the benches print, reproduced in full further down, and each is judged against its target (the verdict column; the targets are listed after the summary).\n"
    );
    let _ = writeln!(s, "## Machine\n\n| | |\n| --- | --- |");
    for (k, v) in machine.iter().chain(extra) {
        let _ = writeln!(s, "| {k} | {v} |");
    }
    let _ = writeln!(s, "| load average at end | {load_after} |\n");
    let _ = writeln!(
        s,
        "The machine is shared (other builds and tests may run at the same time): compare ratios, \
         which are measured within one run, rather than absolute figures across runs.\n"
    );
    s.push_str(&summary(outcomes));
    s.push_str(&targets_table());
    let _ = writeln!(s, "\n## Each bench\n");
    for o in outcomes {
        let env: Vec<String> = o
            .bench
            .env
            .iter()
            .map(|(k, v)| format!("{k}={v} "))
            .collect();
        let _ = writeln!(s, "### {}\n", o.bench.name);
        let _ = writeln!(s, "Target: {}\n", o.bench.target);
        let setup: String = o
            .bench
            .setup
            .iter()
            .map(|step| format!("cargo {} && ", step.join(" ")))
            .collect();
        let took = if o.elapsed.is_zero() {
            String::new()
        } else {
            format!(", {:.0} s", o.elapsed.as_secs_f64())
        };
        let _ = writeln!(
            s,
            "Reproduce: `{setup}{}cargo {}` ({}{took})\n",
            env.concat(),
            o.bench.cargo.join(" "),
            if o.ok {
                "exit 0"
            } else {
                "FAILED: exited non-zero, see its output"
            },
        );
        let _ = writeln!(s, "```\n{}\n```\n", o.stdout.trim_end());
        if let Some((_, svg)) = o.bench.env.iter().find(|(k, _)| *k == "REWIND_SCALE_SVG")
            && o.ok
        {
            let file = svg.rsplit('/').next().unwrap_or(svg);
            let _ = writeln!(s, "![{} curves]({file})\n", o.bench.name);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn design_notes_are_the_hand_kept_section_to_the_end() {
        let page = format!(
            "# Benchmarks\n\n## Summary\n\n| a |\n\n{DESIGN_NOTES_HEADING}\n\nblock size: 4 MiB\n"
        );
        let notes = design_notes(&page).unwrap();
        assert!(notes.starts_with(DESIGN_NOTES_HEADING));
        assert!(notes.ends_with("block size: 4 MiB\n"));
        assert_eq!(design_notes("# Benchmarks\n\n## Summary\n"), None);
    }

    #[test]
    fn the_machine_table_of_a_page_is_read_back() {
        let page = markdown(
            &[],
            &[("CPU model".into(), "Intel(R) Xeon(R) Processor".into())],
            "3.94 3.51 2.82",
            &[("commit".into(), "7b03b2c".into())],
        );
        assert_eq!(
            machine_table(&page),
            [
                (
                    "CPU model".to_owned(),
                    "Intel(R) Xeon(R) Processor".to_owned()
                ),
                ("commit".to_owned(), "7b03b2c".to_owned()),
                (
                    "load average at end".to_owned(),
                    "3.94 3.51 2.82".to_owned()
                ),
            ]
        );
        assert!(machine_table("# Benchmarks\n").is_empty());
    }

    #[test]
    fn the_manual_block_is_replaced_between_its_markers_only() {
        let manual = format!(
            "# Manual\n\n## 7. Comparison\n\n{MANUAL_BEGIN}\nold figures\n{MANUAL_END}\n\nSizes: ...\n"
        );
        let spliced =
            splice_manual(&manual, &format!("{MANUAL_BEGIN}\nnew\n{MANUAL_END}")).unwrap();
        assert_eq!(
            spliced,
            format!(
                "# Manual\n\n## 7. Comparison\n\n{MANUAL_BEGIN}\nnew\n{MANUAL_END}\n\nSizes: ...\n"
            )
        );
        assert_eq!(splice_manual("# Manual\n", "x"), None);
        assert_eq!(
            splice_manual(&format!("{MANUAL_END} {MANUAL_BEGIN}"), "x"),
            None
        );
    }

    #[test]
    fn the_manual_block_quotes_the_default_snapshot_and_the_restore() {
        let format = suite().into_iter().find(|b| b.name == "format").unwrap();
        let out = "Input: reference-mix (b.jsonl)\n\
Baselines: tar.gz 14729242 bytes, BRO-faithful tar.gz 12000000 bytes, zstd -19 --long 9922321 bytes\n\n\
level    block        bytes  /tar.gz  /BRO-tgz  /zstd-19L  enc wall   enc cpu  dec wall   dec cpu\n\
    9    4096K      8530353    0.579     0.711      0.860       207       207       850       857\n\
    3    1024K      9282082    0.630     0.773      0.935       316       316       853       857\n\n";
        let block = manual_block(
            &[Outcome {
                bench: format,
                ok: true,
                stdout: out.into(),
                elapsed: Duration::from_secs(1),
            }],
            "abc1234",
        );
        assert!(block.contains("measured at commit abc1234"), "{block}");
        assert!(
            block.contains("| format / reference-mix: zstd 9, 4096K (default) | 8530353 bytes |"),
            "{block}"
        );
        assert!(!block.contains("1024K"), "only the default row: {block}");
        assert!(
            block.contains("missed: P3 snapshot / BRO-faithful tar.gz by 19%"),
            "{block}"
        );
    }

    #[test]
    fn ratio_cells_read_back_what_figures_wrote() {
        let f = Figure {
            ratios: vec![
                Ratio {
                    value: "0.579".into(),
                    of: "tar.gz".into(),
                },
                Ratio {
                    value: "13.1x".into(),
                    of: "parallel kubectl --server-side".into(),
                },
            ],
            ..Figure::default()
        };
        assert_eq!(Ratio::parse_cell(&f.ratio_text()), f.ratios);
        assert!(Ratio::parse_cell("").is_empty());
        assert!(Ratio::parse_cell("5.00x faster").is_empty());
    }
}
