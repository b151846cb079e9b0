//! The benchmark suite behind
//! `cargo run --release -p rewind-tests --bin bench-suite`: runs every
//! benchmark the issues name, each of which measures its own baseline in the
//! same run, reads the figures out of their printed tables, and writes
//! `docs/BENCHMARKS.md`. The raw output of each bench goes into the page too,
//! so a figure can always be checked against what the bench printed.

use std::fmt::Write as _;
use std::time::Duration;

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
}

/// One figure of the summary table.
#[derive(Debug, Clone, Default)]
pub struct Figure {
    /// What was measured.
    pub what: String,
    /// The figure.
    pub value: String,
    /// The baseline measured in the same run.
    pub baseline: String,
    /// value / baseline, as the bench prints it.
    pub ratio: String,
    /// The target from the issue.
    pub target: String,
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
            target: "size <= 0.6x tar.gz and <= 1.15x zstd -19 --long; encode >= 100 MB/s, decode >= 400 MB/s (one core)",
            extract: extract_format,
        },
        Bench {
            name: "ingest",
            setup: &[],
            cargo: &["bench", "-p", "rewind-daemon", "--bench", "ingest"],
            env: &[],
            target: ">= 50,000 events/s durable, 2 KB objects, one core",
            extract: extract_ingest,
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
            env: &[],
            target: "a snapshot must not stop ingestion for longer than one batch",
            extract: extract_snapshot,
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
            env: &[],
            target: ">= 10x kubectl apply of the same exported YAML",
            extract: extract_restore,
        },
        Bench {
            name: "reconstruct",
            setup: &[],
            cargo: &["bench", "-p", "rewind-tests", "--bench", "reconstruct"],
            env: &[],
            target: "<= 3 s: state at any point from a snapshot + 1,000,000 events, 100,000 objects",
            extract: extract_reconstruct,
        },
        Bench {
            name: "record_latency",
            setup: &[],
            cargo: &["bench", "-p", "rewind-daemon", "--bench", "record_latency"],
            env: &[],
            target: "p99 API write -> durable <= 100 ms; daemon RSS <= 150 MB recording 100,000 objects",
            extract: extract_latency,
        },
        Bench {
            name: "scale",
            setup: &[],
            cargo: &["bench", "-p", "rewind-tests", "--bench", "scale"],
            env: &[
                ("REWIND_SCALE_SIZES", "10000,30000,100000"),
                ("REWIND_SCALE_SVG", "docs/scale.svg"),
            ],
            target: "growth of ingestion, snapshot, reconstruction and restore times and daemon memory with size (plot: docs/scale.svg)",
            extract: extract_scale,
        },
    ]
}

/// Columns of a whitespace-separated row, with a fixed-width name first.
fn row(line: &str, name_width: usize) -> Option<(String, Vec<String>)> {
    let name = line.get(..name_width)?.trim().to_owned();
    let rest = line.get(name_width..)?;
    Some((name, rest.split_whitespace().map(str::to_owned).collect()))
}

/// Rows after the header line that contains `header`, up to a blank line.
fn table<'a>(out: &'a str, header: &str) -> Vec<&'a str> {
    out.lines()
        .skip_while(|l| !l.contains(header))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .collect()
}

fn extract_ingest(out: &str) -> Vec<Figure> {
    let rows: Vec<(String, Vec<String>)> = table(out, "vs raw 1 tree")
        .into_iter()
        .filter_map(|l| row(l, 36))
        .collect();
    let baseline = rows
        .iter()
        .find(|(n, _)| n.starts_with("raw sled, 1 tree"))
        .and_then(|(_, c)| c.first().cloned())
        .unwrap_or_default();
    rows.iter()
        .filter(|(n, _)| n.starts_with("journal"))
        .map(|(n, c)| Figure {
            what: match (c.get(2), c.get(3)) {
                (Some(cpu), Some(r)) if r.ends_with('x') => format!(
                    "ingestion, {n} (events/s; CPU {cpu} us/event, {r} of raw sled's events per CPU-second)"
                ),
                _ => format!("ingestion, {n} (events/s)"),
            },
            value: c.first().cloned().unwrap_or_default(),
            baseline: format!("{baseline} (raw sled, 1 tree)"),
            ratio: c.get(1).cloned().unwrap_or_default(),
            target: ">= 50,000 events/s".into(),
        })
        .collect()
}

fn extract_snapshot(out: &str) -> Vec<Figure> {
    let mut figs = Vec::new();
    for l in table(out, "during ev/s") {
        let c: Vec<&str> = l.split_whitespace().collect();
        // Older output had no RSS columns.
        let (row, rss) = match c.as_slice() {
            [row @ .., rss, peak] if c.len() == 10 => {
                (row, format!("; daemon RSS {rss} MB, peak {peak} MB"))
            }
            row => (row, String::new()),
        };
        if let [round, objects, snap_s, mbs, size, alone, during, ratio] = row {
            figs.push(Figure {
                what: format!("round {round}: snapshot of {objects} objects ({snap_s} s, {mbs} MB/s, {size} MB{rss}); ingestion during it (events/s)"),
                value: (*during).to_owned(),
                baseline: format!("{alone} (ingestion alone)"),
                ratio: (*ratio).to_owned(),
                target: "no stall longer than one batch".into(),
            });
        }
    }
    figs
}

fn extract_restore(out: &str) -> Vec<Figure> {
    let rows: Vec<(String, Vec<String>)> = table(out, "vs kubectl")
        .into_iter()
        .filter_map(|l| row(l, 34))
        .collect();
    let baseline = rows
        .iter()
        .find(|(n, _)| n == "kubectl apply")
        .and_then(|(_, c)| c.get(2).cloned())
        .unwrap_or_default();
    rows.iter()
        .filter(|(n, _)| !n.starts_with("kubectl"))
        .map(|(n, c)| Figure {
            what: format!(
                "restore, {n} (objects/s; {} objects)",
                c.first().map_or("?", String::as_str)
            ),
            value: c.get(2).cloned().unwrap_or_default(),
            baseline: format!("{baseline} (kubectl apply)"),
            ratio: c.get(3).cloned().unwrap_or_default(),
            target: ">= 10x".into(),
        })
        .collect()
}

/// The format bench's figures, for each input it measured (its output has
/// an `Input: LABEL (FILE)` line before each; older output has none).
fn extract_format(out: &str) -> Vec<Figure> {
    let mut sections: Vec<(Option<&str>, String)> = vec![(None, String::new())];
    for line in out.lines() {
        if let Some(input) = line.strip_prefix("Input: ") {
            let label = input.split(" (").next().unwrap_or(input);
            sections.push((Some(label), String::new()));
        } else if let Some((_, text)) = sections.last_mut() {
            text.push_str(line);
            text.push('\n');
        }
    }
    sections
        .iter()
        .flat_map(|(label, text)| {
            extract_format_input(text).into_iter().map(move |mut f| {
                if let Some(label) = label {
                    f.what = format!("input {label}: {}", f.what);
                }
                f
            })
        })
        .collect()
}

/// The figures of one input's section of the format bench's output.
fn extract_format_input(out: &str) -> Vec<Figure> {
    let baselines = out
        .lines()
        .find(|l| l.starts_with("Baselines:"))
        .unwrap_or_default()
        .trim_start_matches("Baselines:")
        .trim()
        .to_owned();
    let mut figures: Vec<Figure> = table(out, "/zstd-19L")
        .into_iter()
        .filter_map(|l| {
            let c: Vec<&str> = l.split_whitespace().collect();
            match c.as_slice() {
                [level, block, bytes, tgz, zl, enc, _, dec, _] => Some(Figure {
                    what: format!("snapshot size, zstd {level}, {block} blocks (bytes; encode {enc} MB/s, decode {dec} MB/s)"),
                    value: (*bytes).to_owned(),
                    baseline: baselines.clone(),
                    ratio: format!("{tgz} of tar.gz, {zl} of zstd-19L"),
                    target: "<= 0.6 / <= 1.15; >= 100 / >= 400 MB/s".into(),
                }),
                _ => None,
            }
        })
        .collect();
    // The previous format version at the default settings, same run.
    if let Some(prev) = out.lines().find_map(|l| l.strip_prefix("Previous format ")) {
        let bytes = prev
            .split(": ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or_default();
        let ratio = prev
            .split("(this version ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .unwrap_or_default();
        figures.push(Figure {
            what: format!("previous format {prev}"),
            value: bytes.to_owned(),
            baseline: String::new(),
            ratio: format!("this version {ratio} of it"),
            target: "(comparison, no target)".into(),
        });
    }
    // The incompressible part of the input bounds the ratio to tar.gz.
    if let Some(floor) = out.lines().find_map(|l| l.strip_prefix("Floor: ")) {
        let bytes = floor
            .split("at least ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or_default();
        let ratio = floor
            .rsplit(", ")
            .next()
            .filter(|r| r.contains("tar.gz"))
            .unwrap_or_default();
        figures.push(Figure {
            what: format!("incompressible floor of the input: {floor}"),
            value: bytes.to_owned(),
            baseline: baselines,
            ratio: ratio.to_owned(),
            target: "(no target: bounds the 0.6x)".into(),
        });
    }
    figures
}

/// The reconstruct bench's markdown table: the store reader against the
/// naive fold.
fn extract_reconstruct(out: &str) -> Vec<Figure> {
    let cells = |l: &str| -> Vec<String> {
        l.split('|')
            .map(|c| c.trim().to_owned())
            .filter(|c| !c.is_empty())
            .collect()
    };
    let naive = out
        .lines()
        .find(|l| l.starts_with("| naive"))
        .map(cells)
        .and_then(|c| c.get(1).cloned())
        .unwrap_or_default();
    let setup = out
        .lines()
        .find(|l| l.starts_with("store: "))
        .unwrap_or_default()
        .trim_start_matches("store: ");
    out.lines()
        .filter(|l| l.starts_with("| StoreSource"))
        .map(cells)
        .map(|c| Figure {
            what: format!(
                "state at a point, {} (median of rounds; best {}; {setup})",
                c.first().map_or("", String::as_str),
                c.get(2).map_or("", String::as_str)
            ),
            value: c.get(1).cloned().unwrap_or_default(),
            baseline: format!("{naive} (naive single-threaded fold)"),
            ratio: c.get(3).cloned().unwrap_or_default(),
            target: "<= 3 s".into(),
        })
        .collect()
}

/// record_latency: the p99 row, and the memory table.
fn extract_latency(out: &str) -> Vec<Figure> {
    let mut figs = Vec::new();
    let title = out
        .lines()
        .find(|l| l.contains("API write -> durable"))
        .unwrap_or_default()
        .trim()
        .to_owned();
    if let Some(l) = table(out, "p99").first() {
        let c: Vec<&str> = l.split_whitespace().collect();
        if let [p50, p90, p99, max] = c.as_slice() {
            figs.push(Figure {
                what: format!("p99 {title} (p50 {p50}, p90 {p90}, max {max})"),
                value: (*p99).to_owned(),
                baseline: String::new(),
                ratio: String::new(),
                target: "<= 100 ms".into(),
            });
        }
    }
    for l in table(out, "RSS peak") {
        if let Some(f) = memory_row(l) {
            figs.push(f);
        }
    }
    figs
}

/// One row of record_latency's memory table: `SETTINGS… RECORDED SYNC
/// SETTLED MB PEAK MB [ANON MB]`, settings free text; `None` for anything
/// else (the daemon's own log lines can land in between).
fn memory_row(l: &str) -> Option<Figure> {
    let c: Vec<&str> = l.split_whitespace().collect();
    let n = c.len();
    let mb = |i: usize| i < n && c.get(i) == Some(&"MB") && i >= 1;
    // Counted from the end: with the anon column the row ends in three
    // `N MB` pairs, without it in two.
    let pairs = if n >= 9 && mb(n - 1) && mb(n - 3) && mb(n - 5) {
        3
    } else if n >= 7 && mb(n - 1) && mb(n - 3) {
        2
    } else {
        return None;
    };
    let recorded_at = n.checked_sub(2 * pairs + 2)?;
    let get = |i: usize| c.get(i).copied().unwrap_or_default();
    get(recorded_at).parse::<u64>().ok()?;
    let settings = c
        .get(..recorded_at)
        .map(|v| v.join(" "))
        .unwrap_or_default();
    let settled = get(recorded_at + 2);
    let peak = get(recorded_at + 4);
    let anon = if pairs == 3 {
        format!(", anonymous {} MB", get(recorded_at + 6))
    } else {
        String::new()
    };
    Some(Figure {
        what: format!(
            "rewindd RSS recording {} objects, {settings} (settled; initial sync {})",
            get(recorded_at),
            get(recorded_at + 1)
        ),
        value: format!("{settled} MB (peak {peak} MB{anon})"),
        baseline: String::new(),
        ratio: String::new(),
        target: "<= 150 MB".into(),
    })
}

/// scale: one figure per size, with the daemon's RSS peak per phase when
/// the output has them (lines `N objects: A MB / B MB / C MB`).
fn extract_scale(out: &str) -> Vec<Figure> {
    let phases: std::collections::HashMap<&str, &str> = out
        .lines()
        .filter_map(|l| l.trim().split_once(" objects: "))
        .filter(|(n, _)| n.parse::<u64>().is_ok())
        .collect();
    table(out, "ingest/s")
        .into_iter()
        .filter_map(|l| {
            let c: Vec<&str> = l.split_whitespace().collect();
            match c.as_slice() {
                [objects, events, _load, ingest, ingest_rate, rss, _mb, rss_end, _mb2, snap, snap_mb, show, restore, restore_rate]
                    if objects.parse::<u64>().is_ok() =>
                {
                    let by_phase = phases
                        .get(objects)
                        .map(|p| format!("; by phase (first sync / snapshot / updates): {p}"))
                        .unwrap_or_default();
                    Some(Figure {
                        what: format!(
                            "{objects} objects, {events} events: ingest {ingest} s ({ingest_rate}/s), snapshot {snap} s ({snap_mb} MB), reconstruct {show} s, restore {restore} s ({restore_rate}/s)"
                        ),
                        value: format!("RSS peak {rss} MB (end {rss_end} MB{by_phase})"),
                        baseline: String::new(),
                        ratio: String::new(),
                        target: "see the curves".into(),
                    })
                }
                _ => None,
            }
        })
        .collect()
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
         read from the tables the benches print, reproduced in full further down.\n"
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
    let _ = writeln!(
        s,
        "## Summary\n\n| bench | figure | value | baseline (same run) | ratio | target |\n| --- | --- | --- | --- | --- | --- |"
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
            let _ = writeln!(s, "| {} | {why} | | | | {} |", o.bench.name, o.bench.target);
        }
        for f in figs {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} |",
                o.bench.name, f.what, f.value, f.baseline, f.ratio, f.target
            );
        }
    }
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
    fn ingest_rows_become_figures_against_raw_sled() {
        let out = "ingest bench: 100 events\nvariant                                  events/s vs raw 1 tree\n\
raw sled, 1 tree                            30000      1.00x  \n\
journal, batch 1000                         60000      2.00x  ok\n\n";
        let f = extract_ingest(out);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].value, "60000");
        assert_eq!(f[0].ratio, "2.00x");
        assert!(f[0].baseline.starts_with("30000"));
    }

    #[test]
    fn format_rows_and_the_floor_are_parsed() {
        let out = "Baselines: tar.gz 1000 bytes, zstd -19 --long 800 bytes\n\
Floor: 3 base64 strings of 40+ characters, 800 characters: at least 600 bytes if random, 0.600x tar.gz by themselves\n\n\
level    block        bytes  /tar.gz  /zstd-19L  enc wall   enc cpu  dec wall   dec cpu\n\
    9    1024K          900    0.900      1.125       151       152      3094      3204\n\n\
Previous format (version 2) at the default settings: 1100 bytes (this version 0.818x of it); encode 140 MB/s (141 cpu), decode 800 MB/s (801 cpu)\n";
        let f = extract_format(out);
        assert_eq!(f.len(), 3, "{f:?}");
        assert_eq!(f[0].value, "900");
        assert_eq!(f[0].ratio, "0.900 of tar.gz, 1.125 of zstd-19L");
        assert_eq!(f[1].value, "1100");
        assert_eq!(f[1].ratio, "this version 0.818x of it");
        assert_eq!(f[2].value, "600");
        assert_eq!(f[2].ratio, "0.600x tar.gz by themselves");
    }

    #[test]
    fn format_figures_are_labelled_by_input() {
        let section = |tgz: u32, bytes: u32| {
            format!(
                "Baselines: tar.gz {tgz} bytes, zstd -19 --long 800 bytes\n\n\
level    block        bytes  /tar.gz  /zstd-19L  enc wall   enc cpu  dec wall   dec cpu\n\
    9    1024K          {bytes}    0.900      1.125       151       152      3094      3204\n\n"
            )
        };
        let out = format!(
            "Input: new-plane (a.jsonl)\n{}\nInput: reference-mix (b.jsonl)\n{}",
            section(1000, 900),
            section(2000, 700)
        );
        let f = extract_format(&out);
        assert_eq!(f.len(), 2, "{f:?}");
        assert!(
            f[0].what.starts_with("input new-plane: snapshot size"),
            "{}",
            f[0].what
        );
        assert_eq!(f[0].value, "900");
        assert!(f[0].baseline.starts_with("tar.gz 1000 bytes"));
        assert!(
            f[1].what.starts_with("input reference-mix: "),
            "{}",
            f[1].what
        );
        assert_eq!(f[1].value, "700");
        assert!(f[1].baseline.starts_with("tar.gz 2000 bytes"));
    }

    #[test]
    fn restore_rows_compare_with_kubectl() {
        let out = "method                              objects    seconds  objects/s   vs kubectl\n\
kubectl apply                          1000      10.00        100         1.0x\n\
rewind restore                         1000       1.00       1000        10.0x\n";
        let f = extract_restore(out);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].value, "1000");
        assert_eq!(f[0].ratio, "10.0x");
        assert!(f[0].baseline.starts_with("100 "));
    }

    #[test]
    fn reconstruct_table_gives_median_against_naive() {
        let out = "store: 100000 objects (210 MB JSON), snapshot 9.0 MB\n\n\
| method | median | best | vs naive |\n|---|---|---|---|\n\
| StoreSource::load (parallel, reduced) | 2.10 s | 2.00 s | 5.00x faster |\n\
| naive: State::from_snapshot + apply_all, one thread | 10.50 s | 10.00 s | 1.00x |\n";
        let f = extract_reconstruct(out);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].value, "2.10 s");
        assert_eq!(f[0].ratio, "5.00x faster");
        assert!(f[0].baseline.starts_with("10.50 s"));
        assert!(f[0].what.contains("100000 objects"));
    }

    #[test]
    fn latency_and_memory_rows_are_parsed() {
        let out = "\nAPI write -> durable, 2000 creates of 2 KB ConfigMaps, flush interval 20ms\n\
       p50        p90        p99        max\n\
    20.1ms     40.2ms     80.3ms    120.4ms\n\n\
rewindd (x) recording 100000 2 KB objects (loaded in 60s)\n\
settings                                                    recorded  initial sync  RSS settled   RSS peak\n\
2026-11-26T18:51:30Z WARN rewind_daemon::daemon: data directory was readable by others; setting it to 0700 dir=/tmp/x mode=755\n\
defaults                                                      100000         12.3s       120 MB     140 MB\n\
--flush-max-events 2000 --cache-capacity-mb 16                100000         13.0s        90 MB     100 MB\n";
        let f = extract_latency(out);
        assert_eq!(f.len(), 3, "{f:?}");
        assert_eq!(f[0].value, "80.3ms");
        assert_eq!(f[1].value, "120 MB (peak 140 MB)");
        assert!(f[1].what.contains("100000 objects, defaults"));
        assert!(f[2].what.contains("--cache-capacity-mb 16"));
    }

    /// Regression: record_latency's memory table gained an `anon` column,
    /// and the summary then read the object count as the settled RSS and
    /// the settled RSS as the peak ("recording 113 objects … 184 MB (peak
    /// 97 MB)" in docs/BENCHMARKS.md).
    #[test]
    fn regression_memory_rows_with_the_anon_column_are_parsed() {
        let out = "binary and settings                                                     recorded  initial sync  RSS settled   RSS peak       anon\n\
rewindd defaults, as deploy/rewindd.service runs it                       100000          9.3s        91 MB     124 MB      75 MB\n\
rewindd --flush-max-events 2000 --cache-capacity-mb 16 --queue-mb 8       100000          9.9s        90 MB     125 MB      74 MB\n";
        let f = extract_latency(out);
        assert_eq!(f.len(), 2, "{f:?}");
        assert_eq!(f[0].value, "91 MB (peak 124 MB, anonymous 75 MB)");
        assert!(
            f[0].what
                .starts_with("rewindd RSS recording 100000 objects, rewindd defaults, as deploy"),
            "{}",
            f[0].what
        );
        assert!(f[0].what.ends_with("(settled; initial sync 9.3s)"));
        assert_eq!(f[1].value, "90 MB (peak 125 MB, anonymous 74 MB)");
        assert!(f[1].what.contains("--queue-mb 8 (settled"));
    }

    #[test]
    fn scale_rows_are_parsed() {
        let out = "scale run\n\
 objects   events    load s   ingest s   ingest/s   RSS peak    RSS end     snap s     snap MB     show s   restore s  restore/s\n\
   10000    15000      10.0        2.0       5000      80 MB      70 MB       0.50         1.0       0.80         9.0       1111\n";
        let f = extract_scale(out);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].value, "RSS peak 80 MB (end 70 MB)");
        assert!(f[0].what.starts_with("10000 objects, 15000 events"));
    }

    /// The phase heading (14 words, like a row) became a garbage figure
    /// ("rewindd objects, RSS events: ingest by s …" in docs/BENCHMARKS.md).
    #[test]
    fn regression_the_scale_phase_heading_is_not_a_row_and_phases_are_kept() {
        let out = "scale run\n\
 objects   events    load s   ingest s   ingest/s   RSS peak    RSS end     snap s     snap MB     show s   restore s  restore/s\n\
   10000    15000      10.0        2.0       5000      80 MB      70 MB       0.50         1.0       0.80         9.0       1111\n\
rewindd RSS peak by phase (first sync / on-demand snapshot / updates and sealing):\n\
    10000 objects: 60 MB / 80 MB / 75 MB\n";
        let f = extract_scale(out);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(
            f[0].value,
            "RSS peak 80 MB (end 70 MB; by phase (first sync / snapshot / updates): 60 MB / 80 MB / 75 MB)"
        );
    }

    #[test]
    fn snapshot_rounds_are_parsed() {
        let out = "round  objects   snap s     MB/s   size MB   alone ev/s  during ev/s   ratio\n\
1        100000     2.00     50.0     20.00        40000        30000    0.75\n";
        let f = extract_snapshot(out);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].value, "30000");
        assert_eq!(f[0].ratio, "0.75");
    }

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
    fn snapshot_rounds_with_rss_columns_are_parsed() {
        let out = "round   objects    snap s     MB/s   size MB   alone ev/s  during ev/s   ratio     RSS MB    peak MB\n\
0        100000      1.85     56.3      8.23            -            -       -        145        159\n\
1        100000      1.32     79.3      8.28        36184        36259    1.00        149        197\n";
        let f = extract_snapshot(out);
        assert_eq!(f.len(), 2);
        assert_eq!(f[1].value, "36259");
        assert_eq!(f[1].ratio, "1.00");
        assert!(f[1].what.contains("peak 197 MB"), "{}", f[1].what);
    }
}
