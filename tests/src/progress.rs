//! Progress of long first-use steps: building the control plane, installing
//! Garage, building the binaries the drill drives.
//!
//! A [`Step`] prints one line when it starts (what, which version, about how
//! long, where the log is: the caller's text), then its elapsed time while it
//! runs, and ends with one line. The elapsed time is an `indicatif` spinner
//! when stderr is a terminal and a plain line every 20 s otherwise (CI logs,
//! pipes); `REWIND_PROGRESS=plain` forces plain lines.
//!
//! Lines are written to the process's stderr handle directly, not through
//! `eprintln!`: `cargo test` captures what tests print with the macros, and a
//! newcomer's first `cargo test` must show what it is waiting for.

use std::io::{IsTerminal, Write};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How often a plain progress line is printed while a step runs.
pub const PLAIN_EVERY: Duration = Duration::from_secs(20);

/// Where progress lines go: shared, so a ticker thread can write too.
pub type Sink = Arc<Mutex<dyn Write + Send>>;

/// How a running step shows its elapsed time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Display {
    /// An `indicatif` spinner with the elapsed time, redrawn in place.
    Spinner,
    /// A plain line every `every`.
    Plain {
        /// The interval between two lines.
        every: Duration,
    },
}

impl Display {
    /// A spinner when stderr is a terminal and `REWIND_PROGRESS` is not
    /// `plain`; plain lines every [`PLAIN_EVERY`] otherwise.
    #[must_use]
    pub fn for_stderr() -> Self {
        let forced_plain = std::env::var_os("REWIND_PROGRESS").is_some_and(|v| v == "plain");
        if !forced_plain && std::io::stderr().is_terminal() {
            Self::Spinner
        } else {
            Self::Plain { every: PLAIN_EVERY }
        }
    }
}

/// The process's stderr as a [`Sink`].
#[must_use]
pub fn stderr() -> Sink {
    Arc::new(Mutex::new(std::io::stderr()))
}

/// Writes one line to `sink`. Progress is best effort: a closed stderr must
/// not fail the step it describes.
pub fn line(sink: &Sink, text: &str) {
    let mut w = sink.lock().unwrap_or_else(PoisonError::into_inner);
    let _ = writeln!(w, "{text}");
    let _ = w.flush();
}

/// A long step in progress; dropping it without [`Step::finish`] stops the
/// elapsed-time display without a final line.
pub struct Step {
    /// The start line, for the plain progress lines.
    what: String,
    /// When the step started.
    started: Instant,
    /// Where lines go.
    sink: Sink,
    /// The spinner, in [`Display::Spinner`] mode.
    spinner: Option<ProgressBar>,
    /// The plain ticker thread and the channel that stops it.
    ticker: Option<(mpsc::Sender<()>, JoinHandle<()>)>,
}

impl Step {
    /// Starts a step on stderr, shown the way [`Display::for_stderr`] picks.
    #[must_use]
    pub fn start(what: impl Into<String>) -> Self {
        Self::start_on(what, Display::for_stderr(), stderr())
    }

    /// Starts a step: prints `what`, then shows the elapsed time as `display`
    /// says. [`Display::Spinner`] draws on stderr whatever `sink` is.
    #[must_use]
    pub fn start_on(what: impl Into<String>, display: Display, sink: Sink) -> Self {
        let what = what.into();
        line(&sink, &what);
        let started = Instant::now();
        let mut step = Self {
            what,
            started,
            sink,
            spinner: None,
            ticker: None,
        };
        match display {
            Display::Spinner => {
                let bar = ProgressBar::new_spinner();
                if let Ok(style) = ProgressStyle::with_template("  {spinner} {elapsed} {wide_msg}")
                {
                    bar.set_style(style);
                }
                bar.set_message(short(&step.what).to_owned());
                bar.enable_steady_tick(Duration::from_millis(200));
                step.spinner = Some(bar);
            }
            Display::Plain { every } => {
                let (stop, stopped) = mpsc::channel::<()>();
                let sink = Arc::clone(&step.sink);
                let what = short(&step.what).to_owned();
                let handle = std::thread::spawn(move || {
                    while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                        line(
                            &sink,
                            &format!("  ... {what}: {} so far", elapsed(started.elapsed())),
                        );
                    }
                });
                step.ticker = Some((stop, handle));
            }
        }
        step
    }

    /// How long the step has run.
    #[must_use]
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Ends the step with `done` (which should say how it ended).
    pub fn finish(mut self, done: &str) {
        self.stop();
        line(&self.sink, done);
    }

    /// Ends the step with `done` and the elapsed time.
    pub fn finish_timed(self, done: &str) {
        let took = elapsed(self.elapsed());
        self.finish(&format!("{done} ({took})"));
    }

    fn stop(&mut self) {
        if let Some(bar) = self.spinner.take() {
            bar.finish_and_clear();
        }
        if let Some((stop, handle)) = self.ticker.take() {
            let _ = stop.send(());
            let _ = handle.join();
        }
    }
}

impl Drop for Step {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The part of a start line a progress line repeats: up to the first
/// parenthesis or semicolon (the details after it were printed once).
fn short(what: &str) -> &str {
    let end = what.find([';', '(']).unwrap_or(what.len());
    what.get(..end).unwrap_or(what).trim_end()
}

/// `42 s`, `3 min 05 s`.
#[must_use]
pub fn elapsed(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        format!("{s} s")
    } else {
        format!("{} min {:02} s", s / 60, s % 60)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A sink that keeps what was written, for assertions.
    #[derive(Clone, Default)]
    pub(crate) struct Captured(pub(crate) Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        pub(crate) fn sink(&self) -> Sink {
            Arc::new(Mutex::new(self.clone()))
        }
        pub(crate) fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
        }
    }

    #[test]
    fn a_plain_step_prints_its_start_then_elapsed_lines_then_its_end() {
        let out = Captured::default();
        let step = Step::start_on(
            "building x v1 (about 3 min on 2 cores); log: /tmp/x.log",
            Display::Plain {
                every: Duration::from_millis(40),
            },
            out.sink(),
        );
        std::thread::sleep(Duration::from_millis(150));
        step.finish("built x in 0 s");
        let text = out.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines.first().copied(),
            Some("building x v1 (about 3 min on 2 cores); log: /tmp/x.log")
        );
        assert_eq!(lines.last().copied(), Some("built x in 0 s"));
        let ticks: Vec<&&str> = lines
            .iter()
            .filter(|l| l.starts_with("  ... building x v1: "))
            .collect();
        assert!(ticks.len() >= 2, "expected elapsed lines: {text}");
        assert!(ticks.iter().all(|l| l.ends_with(" s so far")), "{text}");
        // Nothing is printed after the end.
        let len = text.len();
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(out.text().len(), len);
    }

    #[test]
    fn a_dropped_step_stops_its_ticker_without_a_final_line() {
        let out = Captured::default();
        let step = Step::start_on(
            "waiting",
            Display::Plain {
                every: Duration::from_millis(10),
            },
            out.sink(),
        );
        drop(step);
        let len = out.text().len();
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(out.text().len(), len);
        assert!(out.text().starts_with("waiting\n"));
    }

    #[test]
    fn elapsed_and_short_forms() {
        assert_eq!(elapsed(Duration::from_secs(42)), "42 s");
        assert_eq!(elapsed(Duration::from_secs(185)), "3 min 05 s");
        assert_eq!(short("a b (c; d)"), "a b");
        assert_eq!(short("a b; log: x"), "a b");
        assert_eq!(short("plain"), "plain");
    }
}
