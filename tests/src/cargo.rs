//! Running cargo from inside a process that cargo started, and building the
//! binaries the drill drives without rebuilding what cargo just built.
//!
//! The drill, the bench suite and the scenario tests build `rewindd` and
//! `rewind` themselves. They run under `cargo run`/`cargo test`, which set
//! per-package variables (`CARGO_MANIFEST_DIR`, `CARGO_PKG_NAME`, ...) for
//! *their* process. Passed on to a child `cargo build`, those variables
//! reach build scripts that ask to rerun when they change (ring's does, for
//! `CARGO_MANIFEST_DIR`, `CARGO_PKG_NAME` and `OUT_DIR`), so every child
//! build would recompile ring and everything above it (rustls, kube,
//! reqwest, object_store), and the next ordinary build would recompile them
//! again. [`command`] removes them.
//!
//! [`rewind_binaries`] builds `rewindd` and `rewind` in the profile the
//! running executable was built with and with the features
//! `cargo run -p rewind-tests` resolved, so after
//! `cargo run --release -p rewind-tests --bin dr-drill` only the two binary
//! targets compile (every library is reused), and a second run compiles
//! nothing. Stable cargo cannot make `cargo run` build another package's
//! binaries (artifact dependencies are unstable), so this nested build
//! stays.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Errors building or locating the binaries the drill drives.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The running executable or its directory could not be found.
    #[error("locating the running executable: {0}")]
    Exe(String),
    /// Cargo could not be started.
    #[error("running {command}: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Cargo failed (its own output, above, says why).
    #[error("{command} exited with {status}")]
    Build {
        /// The command line.
        command: String,
        /// Its exit status.
        status: std::process::ExitStatus,
    },
    /// A binary is not where the build puts it.
    #[error(
        "{0} is missing: start the drill with `cargo run --release -p rewind-tests --bin dr-drill`, \
         or build it with `cargo build --release -p rewind-daemon -p rewind-restore`"
    )]
    Missing(String),
}

/// The packages the nested build selects. Cargo unifies features over the
/// selected packages; `rewind-tests` depends on both binaries' packages with
/// their default features, so with it selected the union is by construction
/// what `cargo run -p rewind-tests` resolved (whatever features its own
/// dependencies add to shared ones such as rustls, ring or tokio), and every
/// library is reused. A test checks this with `cargo tree`.
pub const NESTED_PACKAGES: [&str; 3] = ["rewind-tests", "rewind-daemon", "rewind-restore"];

/// The binaries the drill drives: the recorder and the restore tool.
pub const DRIVEN_BINS: [&str; 2] = ["rewindd", "rewind"];

/// A cargo profile, as found from a build output directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Profile {
    /// `dev` (`target/debug`).
    Dev,
    /// `release` (`target/release`, also where `bench` puts its output).
    Release,
    /// A custom profile, whose output directory has its name.
    Named(String),
}

impl Profile {
    /// The profile whose output directory is `dir` (`target/<dir>`).
    #[must_use]
    pub fn of_dir(dir: &Path) -> Self {
        match dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => Self::Dev,
            Some("release") => Self::Release,
            Some(other) => Self::Named(other.to_owned()),
        }
    }

    /// The `cargo build` arguments that select it.
    #[must_use]
    pub fn args(&self) -> Vec<String> {
        match self {
            Self::Dev => Vec::new(),
            Self::Release => vec!["--release".to_owned()],
            Self::Named(name) => vec!["--profile".to_owned(), name.clone()],
        }
    }

    /// Its name, as cargo prints it.
    #[must_use]
    pub fn name(&self) -> &str {
        match self {
            Self::Dev => "dev",
            Self::Release => "release",
            Self::Named(name) => name,
        }
    }
}

/// The build output directory of the running executable: its own directory,
/// or the parent of `deps/` for test and bench executables.
pub fn exe_dir() -> Result<PathBuf, Error> {
    let exe = std::env::current_exe().map_err(|e| Error::Exe(e.to_string()))?;
    let dir = exe
        .parent()
        .ok_or_else(|| Error::Exe(format!("{} has no parent directory", exe.display())))?;
    Ok(if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent().unwrap_or(dir).to_path_buf()
    } else {
        dir.to_path_buf()
    })
}

/// The `cargo build` arguments of the nested build for `profile`.
#[must_use]
pub fn nested_build_args(profile: &Profile) -> Vec<String> {
    let mut args = vec!["build".to_owned()];
    for p in NESTED_PACKAGES {
        args.extend(["-p".to_owned(), p.to_owned()]);
    }
    for b in DRIVEN_BINS {
        args.extend(["--bin".to_owned(), b.to_owned()]);
    }
    args.extend(profile.args());
    args
}

/// Paths of `rewindd` and `rewind`.
#[derive(Debug, Clone)]
pub struct RewindBinaries {
    /// The recorder.
    pub rewindd: PathBuf,
    /// The restore tool.
    pub rewind: PathBuf,
}

/// `rewindd` and `rewind` in `dir` (a build output directory), brought up
/// to date first when this process runs under cargo (`CARGO` is set), so a
/// stale binary never runs. The build uses `dir`'s profile and
/// [`NESTED_PACKAGES`]; cargo's own output shows its progress, framed by a
/// start and an end line prefixed with `tag`.
pub fn rewind_binaries(dir: &Path, tag: &str) -> Result<RewindBinaries, Error> {
    if std::env::var_os("CARGO").is_some() {
        let profile = Profile::of_dir(dir);
        let args = nested_build_args(&profile);
        let line = format!("cargo {}", args.join(" "));
        eprintln!(
            "{tag} building rewindd and rewind with the `{}` profile and the features this \
             build resolved: {line} (reuses every library; a few seconds when nothing changed, \
             about 1-2 min to compile and link the two binaries after a release build)",
            profile.name()
        );
        let started = Instant::now();
        let status = command()
            .args(&args)
            .status()
            .map_err(|source| Error::Spawn {
                command: line.clone(),
                source,
            })?;
        if !status.success() {
            return Err(Error::Build {
                command: line,
                status,
            });
        }
        eprintln!(
            "{tag} rewindd and rewind are up to date ({})",
            crate::progress::elapsed(started.elapsed())
        );
    }
    let bins = RewindBinaries {
        rewindd: dir.join("rewindd"),
        rewind: dir.join("rewind"),
    };
    for p in [&bins.rewindd, &bins.rewind] {
        if !p.is_file() {
            return Err(Error::Missing(p.display().to_string()));
        }
    }
    Ok(bins)
}

/// A `cargo` command (the one running us, else `cargo` on PATH) in the
/// workspace root, without the per-package variables cargo set for us.
#[must_use]
pub fn command() -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    remove_package_vars(&mut cmd);
    cmd.current_dir(crate::controlplane::workspace_root());
    cmd
}

/// Removes from `cmd`'s environment the per-package variables cargo set for
/// this process, for any child that may run cargo (a setup script, too).
pub fn remove_package_vars(cmd: &mut Command) {
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(set_for_our_package) {
            cmd.env_remove(&name);
        }
    }
}

/// Whether cargo sets `name` for the package it runs (a binary, test or
/// bench), as opposed to configuring cargo itself (`CARGO_HOME`,
/// `CARGO_TARGET_DIR`, `CARGO_TERM_*`, ... stay).
fn set_for_our_package(name: &str) -> bool {
    name.starts_with("CARGO_PKG_")
        || name.starts_with("CARGO_BIN_EXE_")
        || matches!(
            name,
            "CARGO_MANIFEST_DIR"
                | "CARGO_MANIFEST_PATH"
                | "CARGO_MANIFEST_LINKS"
                | "CARGO_CRATE_NAME"
                | "CARGO_BIN_NAME"
                | "CARGO_PRIMARY_PACKAGE"
                | "CARGO_TARGET_TMPDIR"
                | "CARGO_RUSTC_CURRENT_DIR"
                | "OUT_DIR"
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A child build must not see `CARGO_MANIFEST_DIR` or `CARGO_PKG_NAME`
    /// from `cargo run`/`cargo test`: ring's build script would rerun on
    /// every alternation between the child build and an ordinary one.
    #[test]
    fn child_builds_do_not_inherit_our_package_variables() {
        // `cargo test` sets these for this very process.
        assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
        assert!(std::env::var_os("CARGO_PKG_NAME").is_some());
        let cmd = command();
        let removed: Vec<String> = cmd
            .get_envs()
            .filter(|(_, v)| v.is_none())
            .filter_map(|(k, _)| k.to_str().map(str::to_owned))
            .collect();
        for name in ["CARGO_MANIFEST_DIR", "CARGO_PKG_NAME", "CARGO_PKG_VERSION"] {
            assert!(
                removed.iter().any(|r| r == name),
                "{name} kept: {removed:?}"
            );
        }
        assert!(!set_for_our_package("CARGO_HOME"));
        assert!(!set_for_our_package("CARGO_TARGET_DIR"));
        assert!(!set_for_our_package("CARGO"));
    }

    #[test]
    fn the_profile_comes_from_the_output_directory() {
        assert_eq!(Profile::of_dir(Path::new("/t/debug")), Profile::Dev);
        assert_eq!(Profile::of_dir(Path::new("/t/release")), Profile::Release);
        let custom = Profile::of_dir(Path::new("/t/profiling"));
        assert_eq!(custom.args(), ["--profile", "profiling"]);
        assert!(Profile::Dev.args().is_empty());
        assert_eq!(
            nested_build_args(&Profile::Release).join(" "),
            "build -p rewind-tests -p rewind-daemon -p rewind-restore \
             --bin rewindd --bin rewind --release"
        );
        // This test runs from target/<profile>/deps.
        assert_eq!(
            exe_dir().unwrap().parent(),
            Some(crate::controlplane::target_dir().as_path())
        );
    }

    /// Every package with its enabled features, as `cargo tree` resolves
    /// them for a build (normal and build dependencies) selecting `select`.
    fn resolved_features(select: &[&str]) -> std::collections::BTreeSet<String> {
        let out = command()
            .args([
                "tree",
                "--offline",
                "-e",
                "normal,build",
                "--prefix",
                "none",
            ])
            .args(["-f", "{p} [{f}]"])
            .args(select)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim_end_matches(" (*)").to_owned())
            .filter(|l| !l.is_empty())
            .collect()
    }

    /// The nested build must not compile a second copy of any library: it
    /// resolves every package with the same features as
    /// `cargo run -p rewind-tests`, and as a plain `cargo run` in the
    /// workspace (all members selected) for every package they share.
    #[test]
    fn the_nested_build_resolves_the_features_cargo_run_resolved() {
        let mut nested = Vec::new();
        for p in NESTED_PACKAGES {
            nested.extend(["-p", p]);
        }
        let nested = resolved_features(&nested);
        assert_eq!(nested, resolved_features(&["-p", "rewind-tests"]));
        // All members may bring more packages, but no other features for
        // the packages the nested build compiles.
        let workspace = resolved_features(&["--workspace"]);
        let differing: Vec<&String> = nested.difference(&workspace).collect();
        assert!(
            differing.is_empty(),
            "other features with --workspace: {differing:?}"
        );
        assert!(
            nested
                .iter()
                .any(|l| l.starts_with("rewind-daemon ") && l.contains("jemalloc")),
            "rewind-daemon with its default features: {nested:?}"
        );
    }
}
