//! Running the first-use setup scripts: `tests/controlplane/build.sh` (the
//! Go control plane) and `tests/garage/install.sh` (Garage), with what they
//! do shown as progress.
//!
//! Each script is the one implementation of its job: the harness runs it
//! here, `.ci/run` runs it directly in the background at its start. A script
//! takes its own file lock in the target directory (`flock`), so parallel
//! test binaries and CI do the work once and the others wait; it sends the
//! slow tool's output (`go build`, `cargo install`) to its own log and
//! writes short status lines on stderr. A status line starting with
//! `start: ` begins a long step (what, which version, about how long on 2
//! cores, where the log is), which lasts until the script's next status
//! line. Here those steps are shown with [`crate::progress`] (start line,
//! elapsed time, end line); the other status lines are kept for the error
//! message if the script fails. What the script prints on stdout is its
//! answer (for example the path of the binary).

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

use crate::progress::{Display, Sink, Step};

/// How many of a failed script's last status lines its error carries.
const KEEP_LINES: usize = 40;

/// Errors running a setup script.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The script could not be started or read.
    #[error("running {script}: {message}")]
    Spawn {
        /// The script.
        script: String,
        /// What went wrong.
        message: String,
    },
    /// The script exited unsuccessfully; `output` holds its last status
    /// lines, which name its log.
    #[error("{script} failed ({status}):\n{output}")]
    Failed {
        /// The script.
        script: String,
        /// Its exit status.
        status: String,
        /// Its last status lines.
        output: String,
    },
}

/// Result alias for this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A command running `script` with bash in the workspace root, without the
/// per-package variables cargo set for this process (a script may run
/// cargo itself).
#[must_use]
pub fn command(script: &std::path::Path) -> Command {
    let mut cmd = Command::new("bash");
    cmd.arg(script)
        .current_dir(crate::controlplane::workspace_root());
    crate::cargo::remove_package_vars(&mut cmd);
    cmd
}

/// Runs `cmd` (a setup script; `name` names it in errors), showing its long
/// steps on `sink` as `display` says (on stderr: [`Display::for_stderr`] and
/// [`crate::progress::stderr`]), and returns its stdout.
pub fn run_on(mut cmd: Command, name: &str, display: Display, sink: &Sink) -> Result<String> {
    let spawn_err = |message: String| Error::Spawn {
        script: name.to_owned(),
        message,
    };
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| spawn_err(e.to_string()))?;
    let (Some(mut stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(spawn_err("no pipes to the script".to_owned()));
    };
    // Read stdout beside stderr, so neither pipe fills up and blocks the script.
    let answer = std::thread::spawn(move || {
        let mut buf = Vec::new();
        stdout.read_to_end(&mut buf).map(|_| buf)
    });
    let mut kept: std::collections::VecDeque<String> = std::collections::VecDeque::new();
    let mut step: Option<Step> = None;
    let mut reader = BufReader::new(stderr);
    let mut raw = Vec::new();
    loop {
        raw.clear();
        match reader.read_until(b'\n', &mut raw) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(spawn_err(format!("reading its stderr: {e}")));
            }
        }
        let text = String::from_utf8_lossy(&raw).trim_end().to_owned();
        if let Some(what) = text.strip_prefix("start: ") {
            // A step ends at the next status line, also another start.
            drop(step.take());
            step = Some(Step::start_on(what, display, sink.clone()));
        } else if let Some(s) = step.take() {
            s.finish(&text);
        }
        if kept.len() == KEEP_LINES {
            kept.pop_front();
        }
        kept.push_back(text);
    }
    drop(step);
    let status = child
        .wait()
        .map_err(|e| spawn_err(format!("waiting for it: {e}")))?;
    let out = answer
        .join()
        .map_err(|_| spawn_err("the stdout reader panicked".to_owned()))?
        .map_err(|e| spawn_err(format!("reading its stdout: {e}")))?;
    if !status.success() {
        return Err(Error::Failed {
            script: name.to_owned(),
            status: status.to_string(),
            output: Vec::from(kept).join("\n"),
        });
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::progress::tests::Captured;

    fn script(body: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sh");
        std::fs::write(&path, body).unwrap();
        (dir, path)
    }

    const PLAIN: Display = Display::Plain {
        every: Duration::from_millis(30),
    };

    #[test]
    fn long_steps_are_shown_and_stdout_is_the_answer() {
        let (_d, path) = script(
            "echo 'x: up to date' >&2\n\
             echo 'start: building x v1 (about 1 min); log: /l' >&2\n\
             sleep 0.2\n\
             echo 'built x in 0 s' >&2\n\
             echo /path/to/x\n",
        );
        let out = Captured::default();
        let answer = run_on(command(&path), "s.sh", PLAIN, &out.sink()).unwrap();
        assert_eq!(answer.trim(), "/path/to/x");
        let text = out.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines.first().copied(),
            Some("building x v1 (about 1 min); log: /l")
        );
        assert_eq!(lines.last().copied(), Some("built x in 0 s"));
        assert!(
            lines.iter().any(|l| l.starts_with("  ... building x v1: ")),
            "{text}"
        );
        // Status lines outside a long step are not shown.
        assert!(!text.contains("up to date"), "{text}");
    }

    #[test]
    fn a_failed_script_is_an_error_with_its_last_lines() {
        let (_d, path) = script(
            "echo 'start: installing y' >&2\n\
             echo 'installing y failed; see /var/log/y.log' >&2\n\
             echo 'error: boom' >&2\n\
             exit 3\n",
        );
        let out = Captured::default();
        let err = run_on(command(&path), "s.sh", PLAIN, &out.sink()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("s.sh failed"), "{msg}");
        assert!(msg.contains("see /var/log/y.log"), "{msg}");
        assert!(msg.contains("error: boom"), "{msg}");
        assert!(
            out.text()
                .contains("installing y failed; see /var/log/y.log")
        );
    }

    #[test]
    fn the_script_runs_without_our_package_variables() {
        let (_d, path) = script("echo \"[${CARGO_MANIFEST_DIR:-unset}]\"\n");
        let out = Captured::default();
        let answer = run_on(command(&path), "s.sh", PLAIN, &out.sink()).unwrap();
        assert_eq!(answer.trim(), "[unset]");
    }
}
