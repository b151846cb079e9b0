//! Running cargo from inside a process that cargo started.
//!
//! The drill, the bench suite and the scenario tests build `rewindd` and
//! `rewind` themselves. They run under `cargo run`/`cargo test`, which set
//! per-package variables (`CARGO_MANIFEST_DIR`, `CARGO_PKG_NAME`, ...) for
//! *their* process. Passed on to a child `cargo build`, those variables
//! reach build scripts that ask to rerun when they change (ring's does, for
//! `CARGO_MANIFEST_DIR`, `CARGO_PKG_NAME` and `OUT_DIR`), so every child
//! build recompiled ring and everything above it (rustls, kube, reqwest,
//! object_store), and the next ordinary build recompiled them again: a
//! "warm" drill spent minutes compiling.

use std::process::Command;

/// A `cargo` command (the one running us, else `cargo` on PATH) in the
/// workspace root, without the per-package variables cargo set for us.
#[must_use]
pub fn command() -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(set_for_our_package) {
            cmd.env_remove(&name);
        }
    }
    cmd.current_dir(crate::controlplane::workspace_root());
    cmd
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

    /// Regression: the drill's and the tests' child builds inherited
    /// `CARGO_MANIFEST_DIR` and `CARGO_PKG_NAME` from `cargo run`/`cargo
    /// test`, and ring's build script reran on every alternation.
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
}
