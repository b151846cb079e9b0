//! Finding (and on first use, building) kube-apiserver, etcd, kubectl and,
//! for the tests that ask for controllers, kube-controller-manager.
//!
//! Order of precedence for each binary: the environment variable
//! (`REWIND_KUBE_APISERVER`, `REWIND_ETCD`, `REWIND_KUBECTL`,
//! `REWIND_KUBE_CONTROLLER_MANAGER`), else
//! `<target>/controlplane/bin/<name>`, where `<target>` is `CARGO_TARGET_DIR`
//! or the workspace's `target/`. Unless all three variables are set,
//! `tests/controlplane/build.sh` runs once per process ([`crate::setup`]).
//! It takes an exclusive file lock, so parallel test binaries (and `.ci/run`,
//! which starts it in the background) never run two Go builds at once, and
//! returns at once when the binaries are already built for the pinned
//! versions. A build shows on stderr: what it builds, at which version, about
//! how long, where the log is, then its elapsed time. kube-controller-manager
//! is looked up only by [`controller_manager`], which runs the script again
//! (a no-op when it is built) unless its variable is set.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::progress::{Display, Sink};
use crate::setup;

/// Errors while locating or building the control-plane binaries.
#[derive(Debug, thiserror::Error, Clone)]
pub enum Error {
    /// The build script failed; the message carries its last lines, with
    /// the tail of its log.
    #[error("building the control plane: {0}")]
    Build(#[from] setup::Error),
    /// A binary is not where it should be after the build.
    #[error("{name} not found at {path} (set {var} to an existing binary)")]
    Missing {
        name: &'static str,
        path: String,
        var: &'static str,
    },
}

/// Result alias for this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// kube-controller-manager, built by the same script from the same
/// `k8s.io/kubernetes` module and version as kube-apiserver, or the binary
/// `REWIND_KUBE_CONTROLLER_MANAGER` names. Cached per process.
pub fn controller_manager() -> Result<PathBuf> {
    static CACHE: OnceLock<Result<PathBuf>> = OnceLock::new();
    CACHE
        .get_or_init(|| {
            const VAR: &str = "REWIND_KUBE_CONTROLLER_MANAGER";
            let target = target_dir();
            if std::env::var_os(VAR).is_none() {
                let mut cmd = build_command();
                cmd.env("CARGO_TARGET_DIR", &target);
                build(cmd, Display::for_stderr(), &crate::progress::stderr())?;
            }
            resolve(
                "kube-controller-manager",
                VAR,
                &target.join("controlplane").join("bin"),
            )
        })
        .clone()
}

/// Paths of the three binaries a control plane needs.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// kube-apiserver, built from k8s.io/kubernetes at the pinned release.
    pub kube_apiserver: PathBuf,
    /// etcd server, built from go.etcd.io/etcd/server/v3.
    pub etcd: PathBuf,
    /// kubectl: the machine's, or one named by `REWIND_KUBECTL`.
    pub kubectl: PathBuf,
}

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .map_or_else(|| manifest.to_path_buf(), Path::to_path_buf)
}

/// The cargo target directory the control plane is built into.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                workspace_root().join(dir)
            }
        }
        None => workspace_root().join("target"),
    }
}

/// Locates the binaries, building them first if needed. Cached per process.
pub fn locate() -> Result<Binaries> {
    static CACHE: OnceLock<Result<Binaries>> = OnceLock::new();
    CACHE.get_or_init(locate_uncached).clone()
}

fn locate_uncached() -> Result<Binaries> {
    let vars = ["REWIND_KUBE_APISERVER", "REWIND_ETCD", "REWIND_KUBECTL"];
    let all_given = vars.iter().all(|v| std::env::var_os(v).is_some());
    let target = target_dir();
    let bin_dir = target.join("controlplane").join("bin");
    if !all_given {
        let mut cmd = build_command();
        cmd.env("CARGO_TARGET_DIR", &target);
        build(cmd, Display::for_stderr(), &crate::progress::stderr())?;
    }
    Ok(Binaries {
        kube_apiserver: resolve("kube-apiserver", "REWIND_KUBE_APISERVER", &bin_dir)?,
        etcd: resolve("etcd", "REWIND_ETCD", &bin_dir)?,
        kubectl: resolve("kubectl", "REWIND_KUBECTL", &bin_dir)?,
    })
}

fn resolve(name: &'static str, var: &'static str, bin_dir: &Path) -> Result<PathBuf> {
    let path = std::env::var_os(var).map_or_else(|| bin_dir.join(name), PathBuf::from);
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::Missing {
            name,
            path: path.display().to_string(),
            var,
        })
    }
}

/// `bash tests/controlplane/build.sh`.
fn build_command() -> Command {
    setup::command(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("controlplane")
            .join("build.sh"),
    )
}

/// Runs the build script, showing its long steps as `display` says.
fn build(cmd: Command, display: Display, sink: &Sink) -> Result<()> {
    setup::run_on(cmd, "tests/controlplane/build.sh", display, sink)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::progress::tests::Captured;

    fn write_exe(path: &Path, body: &str) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// build.sh with a fake `go` (each `go build` logs its package, takes a
    /// second and writes a stub) and a fake `kubectl` on PATH, into a temp
    /// target directory.
    fn fake_build(dir: &Path) -> Command {
        let calls = dir.join("go-builds");
        write_exe(
            &dir.join("path/go"),
            &format!(
                "#!/bin/bash\n\
                 case \"$1\" in\n\
                 env) echo go1.99.0 ;;\n\
                 build) for a in \"$@\"; do last=\"$a\"; done\n\
                   echo \"$last\" >> {calls}\n\
                   echo \"go: downloading $last\"\n\
                   sleep 1\n\
                   while [ $# -gt 0 ]; do [ \"$1\" = -o ] && out=\"$2\"; shift; done\n\
                   printf '#!/bin/sh\\n' > \"$out\"; chmod +x \"$out\" ;;\n\
                 esac\n",
                calls = calls.display()
            ),
        );
        write_exe(&dir.join("path/kubectl"), "#!/bin/sh\n");
        let mut cmd = build_command();
        for var in [
            "REWIND_KUBE_APISERVER",
            "REWIND_ETCD",
            "REWIND_KUBECTL",
            "REWIND_KUBE_CONTROLLER_MANAGER",
            "GOTOOLCHAIN",
        ] {
            cmd.env_remove(var);
        }
        cmd.env(
            "PATH",
            format!("{}:/usr/bin:/bin", dir.join("path").display()),
        )
        .env("CARGO_TARGET_DIR", dir.join("target"));
        cmd
    }

    #[test]
    fn parallel_first_uses_build_once_under_the_lock_and_say_so() {
        let dir = tempfile::tempdir().unwrap();
        let out = Captured::default();
        let plain = Display::Plain {
            every: Duration::from_millis(200),
        };
        std::thread::scope(|s| {
            let runs: Vec<_> = (0..3)
                .map(|_| s.spawn(|| build(fake_build(dir.path()), plain, &out.sink())))
                .collect();
            for r in runs {
                r.join().unwrap().unwrap();
            }
        });
        let builds = std::fs::read_to_string(dir.path().join("go-builds")).unwrap();
        let mut built: Vec<&str> = builds.lines().collect();
        built.sort_unstable();
        assert_eq!(
            built,
            [
                "go.etcd.io/etcd/server/v3",
                "k8s.io/kubernetes/cmd/kube-apiserver",
                "k8s.io/kubernetes/cmd/kube-controller-manager"
            ],
            "each binary is built once"
        );
        let bin = dir.path().join("target/controlplane/bin");
        for name in [
            "etcd",
            "kube-apiserver",
            "kube-controller-manager",
            "kubectl",
        ] {
            assert!(bin.join(name).exists(), "{name}");
        }
        let text = out.text();
        let log = dir.path().join("target/controlplane/build.log");
        for want in [
            "controlplane: building etcd v3.6.4 from go.etcd.io/etcd/server/v3 with Go (about 1-3 min on 2 cores with empty Go caches); log: ",
            "controlplane: building kube-apiserver v1.34.4 from k8s.io/kubernetes/cmd/kube-apiserver",
            "controlplane: built etcd v3.6.4 in ",
            "controlplane: built kube-apiserver v1.34.4 in ",
            "controlplane: building kube-controller-manager v1.34.4 from k8s.io/kubernetes/cmd/kube-controller-manager",
        ] {
            assert!(text.contains(want), "{want:?} not in:\n{text}");
        }
        assert!(text.contains(&format!("log: {}", log.display())), "{text}");
        // Go's own output is in the log, not on the screen.
        assert!(!text.contains("go: downloading"), "{text}");
        assert!(
            std::fs::read_to_string(&log)
                .unwrap()
                .contains("go: downloading")
        );

        // Up to date: nothing built, nothing shown.
        let again = Captured::default();
        build(fake_build(dir.path()), plain, &again.sink()).unwrap();
        assert_eq!(again.text(), "");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("go-builds"))
                .unwrap()
                .lines()
                .count(),
            3
        );
    }

    #[test]
    fn a_failed_go_build_is_an_error_with_the_log_tail() {
        let dir = tempfile::tempdir().unwrap();
        write_exe(
            &dir.path().join("path/go"),
            "#!/bin/bash\ncase \"$1\" in env) echo go1.99.0 ;; build) echo 'compile: no space left'; exit 2 ;; esac\n",
        );
        let mut cmd = build_command();
        for var in [
            "REWIND_KUBE_APISERVER",
            "REWIND_ETCD",
            "REWIND_KUBECTL",
            "REWIND_KUBE_CONTROLLER_MANAGER",
            "GOTOOLCHAIN",
        ] {
            cmd.env_remove(var);
        }
        cmd.env(
            "PATH",
            format!("{}:/usr/bin:/bin", dir.path().join("path").display()),
        )
        .env("CARGO_TARGET_DIR", dir.path().join("target"));
        let out = Captured::default();
        let err = Error::from(
            setup::run_on(
                cmd,
                "tests/controlplane/build.sh",
                Display::Plain {
                    every: Duration::from_secs(5),
                },
                &out.sink(),
            )
            .unwrap_err(),
        )
        .to_string();
        assert!(err.contains("building etcd failed"), "{err}");
        assert!(err.contains("compile: no space left"), "{err}");
        assert!(err.contains("build.log"), "{err}");
    }
}
