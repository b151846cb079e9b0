//! Cleaning up after test processes that died without running `Drop`.
//!
//! A test binary killed by a timeout or SIGKILL cannot stop its etcd and
//! kube-apiserver, which would then run (and eat CPU and memory) for the rest of
//! a CI run. So every control plane writes its owner's pid into its temp dir,
//! and every new control plane first looks for `rewind-cp-*` dirs whose owner
//! is gone, kills the processes whose command line names that dir, and removes
//! it. Dirs without an owner file, or whose owner lives, are never touched.

use std::path::Path;

const OWNER_FILE: &str = "owner.pid";

/// Records this process as the owner of `dir`.
pub fn write_owner(dir: &Path) -> std::io::Result<()> {
    std::fs::write(dir.join(OWNER_FILE), std::process::id().to_string())
}

fn alive(pid: &str) -> bool {
    Path::new("/proc").join(pid).exists()
}

/// Kills leftovers of control planes whose owner process has died. Best effort.
pub fn reap_orphans() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for dir in entries.filter_map(|e| e.ok().map(|e| e.path())) {
        let is_ours = dir
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("rewind-cp-"));
        if !is_ours {
            continue;
        }
        let Ok(owner) = std::fs::read_to_string(dir.join(OWNER_FILE)) else {
            continue;
        };
        let owner = owner.trim();
        if owner.is_empty() || alive(owner) {
            continue;
        }
        let killed = kill_users_of(&dir);
        tracing::info!(dir = %dir.display(), owner, killed, "reaped an orphaned control plane");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// SIGKILLs every process whose command line mentions `dir`; returns how many.
fn kill_users_of(dir: &Path) -> usize {
    let needle = dir.display().to_string();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut killed = 0;
    for entry in procs.filter_map(Result::ok) {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmdline).contains(&needle) {
            let status = std::process::Command::new("kill")
                .args(["-KILL", pid])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
            if status.is_ok_and(|s| s.success()) {
                killed += 1;
            }
        }
    }
    killed
}
