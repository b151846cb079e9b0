//! `bench-suite --check`, end to end through the binary: a page written by
//! the suite from kept outputs, then the same outputs checked against it
//! (passes), then a worse ratio checked against it (fails, naming the
//! ratio). `--reuse` re-reads the kept outputs, so no bench runs.

use std::path::Path;
use std::process::{Command, Output};

/// The ingest bench's table with the journal at `ratio` of raw sled.
fn ingest_output(ratio: &str) -> String {
    format!(
        "ingest bench: 100000 events, average object 2008 bytes, allocator jemalloc\n\
variant                                  events/s vs raw 1 tree   CPU us/event vs raw 1 tree\n\
raw sled, 1 tree, flush/1000               145717      1.00x            9.4      1.00x  \n\
journal, batch 1000                         90527      {ratio}           12.5      0.75x  prepare 54%, commit+fsync 46%\n"
    )
}

fn keep(dir: &Path, ratio: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("ingest.out"), ingest_output(ratio)).unwrap();
    std::fs::write(dir.join("ingest.meta"), "true 40.000\n").unwrap();
}

fn suite(page: &Path, kept: &Path, check: bool) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bench-suite"));
    cmd.args(["--reuse", "--only", "ingest", "--out"])
        .arg(page)
        .arg("--outputs")
        .arg(kept)
        .env_remove("REWIND_BENCH_FAST");
    if check {
        cmd.arg("--check");
    }
    cmd.output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn check_passes_on_an_unchanged_run_and_fails_naming_a_regressed_ratio() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("BENCHMARKS.md");
    let kept = dir.path().join("kept");
    keep(&kept, "0.62x");
    let out = suite(&page, &kept, false);
    assert!(out.status.success(), "{}", text(&out));
    let written = std::fs::read_to_string(&page).unwrap();
    assert!(
        written.contains("| ingest | journal, batch 1000 |"),
        "{written}"
    );
    assert!(
        written.contains("missed: P1 journal / raw sled by 17%"),
        "{written}"
    );

    // The same figures: passes, and leaves the page as it was.
    let out = suite(&page, &kept, true);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("--check passed"), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(&page).unwrap(), written);

    // Within the tolerance (15%): passes.
    keep(&kept, "0.56x");
    let out = suite(&page, &kept, true);
    assert!(out.status.success(), "{}", text(&out));

    // 35% worse: fails, naming the ratio.
    keep(&kept, "0.40x");
    let out = suite(&page, &kept, true);
    assert!(!out.status.success(), "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("REGRESSED: ingest / journal, batch 1000 / ratio of raw sled: 0.62x -> 0.40x"),
        "{t}"
    );
    assert!(
        t.contains(
            "regressed past their tolerance: ingest / journal, batch 1000 / ratio of raw sled"
        ),
        "{t}"
    );
    assert_eq!(std::fs::read_to_string(&page).unwrap(), written);
}

#[test]
fn check_refuses_a_missing_previous_page() {
    let dir = tempfile::tempdir().unwrap();
    let kept = dir.path().join("kept");
    keep(&kept, "0.62x");
    let out = suite(&dir.path().join("none.md"), &kept, true);
    assert!(!out.status.success());
    assert!(text(&out).contains("no previous page at"), "{}", text(&out));
}
