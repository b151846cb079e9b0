//! Golden-file mechanics shared by the tests of every format version: where
//! the files live, blessing, the `MANIFEST` of content names and the test
//! key. What each version's files must hold stays in that version's test
//! file (`golden*.rs`), frozen there: only the mechanics are shared.

use std::path::PathBuf;

use rewind_format::crypto::{self, Identity};
use rewind_format::naming::{content_name, verify_content_name};

/// `tests/golden`.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// Whether missing golden files are to be written (`REWIND_BLESS_GOLDEN`).
pub fn bless() -> bool {
    std::env::var_os("REWIND_BLESS_GOLDEN").is_some()
}

/// The throwaway identity of `golden/v1/test-identity.txt`.
pub fn test_identity() -> Identity {
    let text = std::fs::read_to_string(root().join("v1/test-identity.txt")).unwrap();
    crypto::parse_identity(&text).unwrap()
}

/// Reads golden file `name` of directory `version` (`v2`, ...), or writes
/// it first when blessing and it does not exist yet.
pub fn golden(version: &str, name: &str, make: impl FnOnce() -> Vec<u8>) -> Vec<u8> {
    let dir = root().join(version);
    let path = dir.join(name);
    if bless() && !path.exists() {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(&path, make()).unwrap();
    }
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Checks `bytes` against the content name recorded for `name` in the
/// directory's `MANIFEST` (recording it first when blessing): the golden
/// bytes themselves are frozen, so a changed file is a bug.
pub fn manifest_check(version: &str, name: &str, bytes: &[u8]) {
    let manifest = root().join(version).join("MANIFEST");
    let line = format!("{name} {}", content_name(bytes).unwrap());
    if bless() {
        let mut text = std::fs::read_to_string(&manifest).unwrap_or_default();
        if !text.lines().any(|l| l.starts_with(&format!("{name} "))) {
            text.push_str(&line);
            text.push('\n');
            std::fs::write(&manifest, text).unwrap();
        }
    }
    let text = std::fs::read_to_string(&manifest).unwrap();
    let recorded = text
        .lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .unwrap();
    verify_content_name(recorded.split(' ').nth(1).unwrap(), bytes).unwrap();
}
