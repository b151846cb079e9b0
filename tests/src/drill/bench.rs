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

/// Every benchmark the issues name.
#[must_use]
pub fn suite() -> Vec<Bench> {
    vec![
        Bench {
            name: "format",
            cargo: &[
                "run",
                "--release",
                "-p",
                "rewind-format",
                "--example",
                "format_bench",
            ],
            env: &[],
            target: "size <= 0.6x tar.gz and <= 1.15x zstd -19 --long; encode >= 100 MB/s, decode >= 400 MB/s (one core)",
            extract: extract_format,
        },
        Bench {
            name: "ingest",
            cargo: &["bench", "-p", "rewind-daemon", "--bench", "ingest"],
            env: &[],
            target: ">= 50,000 events/s durable, 2 KB objects, one core",
            extract: extract_ingest,
        },
        Bench {
            name: "snapshot_while_ingesting",
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
            cargo: &["bench", "-p", "rewind-tests", "--bench", "reconstruct"],
            env: &[],
            target: "<= 3 s: state at any point from a snapshot + 1,000,000 events, 100,000 objects",
            extract: extract_lines_with_seconds,
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
            what: format!("ingestion, {n} (events/s)"),
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
        if let [round, objects, snap_s, _mbs, size, alone, during, ratio] = c.as_slice() {
            figs.push(Figure {
                what: format!("round {round}: snapshot of {objects} objects ({snap_s} s, {size} MB); ingestion during it (events/s)"),
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

fn extract_format(out: &str) -> Vec<Figure> {
    let baselines = out
        .lines()
        .find(|l| l.starts_with("Baselines:"))
        .unwrap_or_default()
        .trim_start_matches("Baselines:")
        .trim()
        .to_owned();
    table(out, "/zstd-19L")
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
        .collect()
}

/// For benches without a parser yet: every output line that names seconds.
fn extract_lines_with_seconds(out: &str) -> Vec<Figure> {
    out.lines()
        .filter(|l| l.contains(" s") || l.contains("ratio") || l.contains('x'))
        .take(8)
        .map(|l| Figure {
            what: l.trim().to_owned(),
            ..Figure::default()
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
         do not edit by hand). Each bench measures its baseline in the same run; the figures below are \
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
        let figs = if o.ok {
            (o.bench.extract)(&o.stdout)
        } else {
            Vec::new()
        };
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
        let _ = writeln!(
            s,
            "Reproduce: `{}cargo {}` ({}, {:.0} s)\n",
            env.concat(),
            o.bench.cargo.join(" "),
            if o.ok { "exit 0" } else { "FAILED" },
            o.elapsed.as_secs_f64()
        );
        let _ = writeln!(s, "```\n{}\n```\n", o.stdout.trim_end());
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
    fn snapshot_rounds_are_parsed() {
        let out = "round  objects   snap s     MB/s   size MB   alone ev/s  during ev/s   ratio\n\
1        100000     2.00     50.0     20.00        40000        30000    0.75\n";
        let f = extract_snapshot(out);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].value, "30000");
        assert_eq!(f[0].ratio, "0.75");
    }
}
