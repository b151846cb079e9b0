//! Finding (and on first use, building) kube-apiserver, etcd and kubectl.
//!
//! Order of precedence for each binary: the environment variable
//! (`REWIND_KUBE_APISERVER`, `REWIND_ETCD`, `REWIND_KUBECTL`), else
//! `<target>/controlplane/bin/<name>`, where `<target>` is `CARGO_TARGET_DIR`
//! or the workspace's `target/`. Unless all three variables are set,
//! `tests/controlplane/build.sh` runs once per process under an exclusive file
//! lock, so parallel test binaries never run two Go builds at once; it returns
//! at once when the binaries are already built for the pinned versions.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// Errors while locating or building the control-plane binaries.
#[derive(Debug, thiserror::Error, Clone)]
pub enum Error {
    /// The build script failed; the message carries the tail of its log.
    #[error("building the control plane with {script} failed ({status}); see {log}:\n{tail}")]
    Build {
        script: String,
        status: String,
        log: String,
        tail: String,
    },
    /// A binary is not where it should be after the build.
    #[error("{name} not found at {path} (set {var} to an existing binary)")]
    Missing {
        name: &'static str,
        path: String,
        var: &'static str,
    },
    /// Filesystem or process error around the build.
    #[error("{what}: {message}")]
    Io { what: String, message: String },
}

/// Result alias for this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

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

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |e| Error::Io {
        what,
        message: e.to_string(),
    }
}

fn locate_uncached() -> Result<Binaries> {
    let vars = ["REWIND_KUBE_APISERVER", "REWIND_ETCD", "REWIND_KUBECTL"];
    let all_given = vars.iter().all(|v| std::env::var_os(v).is_some());
    let bin_dir = target_dir().join("controlplane").join("bin");
    if !all_given {
        run_build_script(&bin_dir)?;
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

fn run_build_script(bin_dir: &Path) -> Result<()> {
    let cp_dir = bin_dir.parent().unwrap_or(bin_dir);
    fs::create_dir_all(cp_dir).map_err(io_err(format!("creating {}", cp_dir.display())))?;
    let lock_path = cp_dir.join("build.lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io_err(format!("opening {}", lock_path.display())))?;
    // Blocks while another test process builds; released when `lock` drops.
    lock.lock()
        .map_err(io_err(format!("locking {}", lock_path.display())))?;

    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("controlplane")
        .join("build.sh");
    let log_path = cp_dir.join("build.log");
    let log =
        File::create(&log_path).map_err(io_err(format!("creating {}", log_path.display())))?;
    let log_err = log
        .try_clone()
        .map_err(io_err(format!("opening {}", log_path.display())))?;
    tracing::info!(script = %script.display(), log = %log_path.display(),
        "preparing the control plane binaries (a cold Go build takes several minutes)");
    let status = Command::new("bash")
        .arg(&script)
        .env("CARGO_TARGET_DIR", target_dir())
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .status()
        .map_err(io_err(format!("running {}", script.display())))?;
    drop(lock);
    if status.success() {
        return Ok(());
    }
    Err(Error::Build {
        script: script.display().to_string(),
        status: status.to_string(),
        log: log_path.display().to_string(),
        tail: super::process::tail_of_file(&log_path, 30),
    })
}
