//! The local-directory backend.
//!
//! Directories are created 0700 and files 0600: snapshots hold Secrets. A
//! write goes to a temporary file in the target directory, is fsynced,
//! renamed over the final name, and the directory is fsynced, so a crash
//! leaves either the old state or the complete new object, never a torn one.
//! Temporary files start with `.tmp-` and are never listed; a crash can
//! leave one behind, and [`LocalDir::temp_files`] finds them for garbage
//! collection.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::ObjectInfo;
use super::error::{Result, StoreError};

/// A store rooted at a local directory.
#[derive(Debug, Clone)]
pub struct LocalDir {
    /// Root directory; every key is a relative path below it.
    root: PathBuf,
}

/// Distinguishes temporary files of concurrent writers in one process.
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl LocalDir {
    /// Opens (and creates, 0700) the root directory.
    pub fn open(root: &Path) -> Result<Self> {
        create_dirs(root)?;
        Ok(Self {
            root: root.to_owned(),
        })
    }

    /// The same store rooted at the directory `sub` (a relative key
    /// prefix without a trailing `/`) below this root. Nothing is created:
    /// the first write creates it.
    pub fn within(&self, sub: &str) -> Result<Self> {
        Ok(Self {
            root: self.path(sub)?,
        })
    }

    fn path(&self, key: &str) -> Result<PathBuf> {
        // Keys come from our own layout, but a catalog read from disk could
        // be crafted: refuse anything that could escape the root.
        if key.is_empty()
            || key.starts_with('/')
            || key
                .split('/')
                .any(|c| c.is_empty() || c == "." || c == "..")
        {
            return Err(StoreError::Catalog {
                key: key.to_owned(),
                reason: "not a valid object key".into(),
            });
        }
        Ok(self.root.join(key))
    }

    /// Writes `bytes` at `key` atomically and durably.
    pub fn put(&self, key: &str, bytes: &[u8]) -> Result<()> {
        let path = self.path(key)?;
        let dir = path.parent().unwrap_or(&self.root).to_owned();
        create_dirs(&dir)?;
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".tmp-{}-{n}", std::process::id()));
        let result = write_durable(&tmp, bytes)
            .and_then(|()| fs::rename(&tmp, &path).map_err(|e| StoreError::io("rename", &path, e)));
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result?;
        sync_dir(&dir)
    }

    /// Writes `bytes` at `key` only if no object is there: the file is
    /// written aside and hard-linked into place, which fails when the name
    /// exists. Returns whether it was created.
    pub fn put_new(&self, key: &str, bytes: &[u8]) -> Result<bool> {
        let path = self.path(key)?;
        let dir = path.parent().unwrap_or(&self.root).to_owned();
        create_dirs(&dir)?;
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".tmp-{}-{n}", std::process::id()));
        let result = write_durable(&tmp, bytes).and_then(|()| match fs::hard_link(&tmp, &path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(StoreError::io("link", &path, e)),
        });
        let _ = fs::remove_file(&tmp);
        let created = result?;
        sync_dir(&dir)?;
        Ok(created)
    }

    /// Reads the object at `key` with its version for [`LocalDir::swap`]
    /// (the SHA-256 of its bytes), or `None` when there is none.
    pub fn get_versioned(&self, key: &str) -> Result<Option<(Vec<u8>, String)>> {
        let path = self.path(key)?;
        match fs::read(&path) {
            Ok(bytes) => {
                let version = super::layout::sha256_hex(&bytes);
                Ok(Some((bytes, version)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io("read", &path, e)),
        }
    }

    /// A compare-and-swap: writes `bytes` at `key` (atomically and
    /// durably, as [`LocalDir::put`]) only if the object there now has the
    /// version `expected` ([`LocalDir::get_versioned`]), or, with `None`,
    /// only if there is none. Writers on this host serialise on an
    /// exclusive `flock` of the key's directory, so of two swaps from one
    /// version exactly one succeeds. Returns the new version, or `None`
    /// when the object was not as expected (nothing written).
    pub fn swap(&self, key: &str, expected: Option<&str>, bytes: &[u8]) -> Result<Option<String>> {
        let path = self.path(key)?;
        let dir = path.parent().unwrap_or(&self.root).to_owned();
        create_dirs(&dir)?;
        let lock = File::open(&dir).map_err(|e| StoreError::io("open directory", &dir, e))?;
        lock.lock()
            .map_err(|e| StoreError::io("lock directory", &dir, e))?;
        let current = self.get_versioned(key)?.map(|(_, v)| v);
        if current.as_deref() != expected {
            return Ok(None);
        }
        self.put(key, bytes)?;
        // The lock is released when `lock` is dropped, after the rename and
        // the directory's fsync.
        drop(lock);
        Ok(Some(super::layout::sha256_hex(bytes)))
    }

    /// Size of the object at `key`, or `None` when there is none.
    pub fn size(&self, key: &str) -> Result<Option<u64>> {
        let path = self.path(key)?;
        match fs::metadata(&path) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io("stat", &path, e)),
        }
    }

    /// Writes the object at `key` atomically and durably from a stream:
    /// `write` gets a buffered file and returns it when done (or its own
    /// error, which wins). The object appears only once complete, so a
    /// large file never has to be held in memory.
    pub fn put_with<E>(
        &self,
        key: &str,
        write: impl FnOnce(std::io::BufWriter<File>) -> std::result::Result<std::io::BufWriter<File>, E>,
    ) -> std::result::Result<(), E>
    where
        E: From<StoreError>,
    {
        let path = self.path(key)?;
        let dir = path.parent().unwrap_or(&self.root).to_owned();
        create_dirs(&dir)?;
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".tmp-{}-{n}", std::process::id()));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| StoreError::io("create", &tmp, e))?;
        let finish = |w: std::io::BufWriter<File>| -> Result<()> {
            let file = w
                .into_inner()
                .map_err(|e| StoreError::io("write", &tmp, e.into_error()))?;
            file.sync_all()
                .map_err(|e| StoreError::io("fsync", &tmp, e))?;
            fs::rename(&tmp, &path).map_err(|e| StoreError::io("rename", &path, e))
        };
        let result = match write(std::io::BufWriter::with_capacity(1 << 20, file)) {
            Ok(w) => finish(w).map_err(E::from),
            Err(e) => Err(e),
        };
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result?;
        Ok(sync_dir(&dir)?)
    }

    /// Reads the object at `key`.
    pub fn get(&self, key: &str) -> Result<Vec<u8>> {
        let path = self.path(key)?;
        fs::read(&path).map_err(|e| not_found_or(key, "read", &path, e))
    }

    /// Deletes the object at `key`; a missing object is not an error.
    pub fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key)?;
        match fs::remove_file(&path) {
            Ok(()) => sync_dir(path.parent().unwrap_or(&self.root)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io("delete", &path, e)),
        }
    }

    /// The names of the directories directly below `prefix` (ending in `/`,
    /// or empty for the root), sorted; temporary files and plain files are
    /// not directories and are left out.
    pub fn list_dirs(&self, prefix: &str) -> Result<Vec<String>> {
        let dir = match prefix.trim_end_matches('/') {
            "" => self.root.clone(),
            p => self.path(p)?,
        };
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StoreError::io("list", &dir, e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| StoreError::io("list", &dir, e))?;
            let is_dir = entry
                .file_type()
                .map_err(|e| StoreError::io("stat", entry.path(), e))?
                .is_dir();
            if let (true, Some(name)) = (is_dir, entry.file_name().to_str()) {
                out.push(name.to_owned());
            }
        }
        out.sort();
        Ok(out)
    }

    /// Lists every object whose key starts with `prefix` (which ends in `/`).
    pub fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let dir = self.root.join(prefix.trim_end_matches('/'));
        let mut out = Vec::new();
        walk(&self.root, &dir, &mut out)?;
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// Temporary files of writes that never finished (a crash between
    /// create and rename), anywhere under the root. Their keys are relative
    /// paths like any other, for [`LocalDir::delete`].
    pub fn temp_files(&self) -> Result<Vec<ObjectInfo>> {
        let mut out = Vec::new();
        walk_filtered(&self.root, &self.root, &mut out, true)?;
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<ObjectInfo>) -> Result<()> {
    walk_filtered(root, dir, out, false)
}

/// Lists files below `dir`: the objects, or with `temp` only the
/// temporary files.
fn walk_filtered(root: &Path, dir: &Path, out: &mut Vec<ObjectInfo>, temp: bool) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StoreError::io("list", dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io("list", dir, e))?;
        let path = entry.path();
        let meta = entry
            .metadata()
            .map_err(|e| StoreError::io("stat", &path, e))?;
        if meta.is_dir() {
            walk_filtered(root, &path, out, temp)?;
            continue;
        }
        if entry.file_name().to_string_lossy().starts_with(".tmp-") != temp {
            continue;
        }
        let Ok(rel) = path.strip_prefix(root) else {
            continue;
        };
        let modified_ms = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        out.push(ObjectInfo {
            key: rel.to_string_lossy().into_owned(),
            size: meta.len(),
            modified_ms,
        });
    }
    Ok(())
}

fn write_durable(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| StoreError::io("create", path, e))?;
    file.write_all(bytes)
        .map_err(|e| StoreError::io("write", path, e))?;
    file.sync_all()
        .map_err(|e| StoreError::io("fsync", path, e))
}

fn create_dirs(dir: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| StoreError::io("create directory", dir, e))
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io("fsync directory", dir, e))
}

fn not_found_or(key: &str, op: &'static str, path: &Path, e: std::io::Error) -> StoreError {
    if e.kind() == std::io::ErrorKind::NotFound {
        StoreError::NotFound {
            key: key.to_owned(),
        }
    } else {
        StoreError::io(op, path, e)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn modes_atomicity_and_listing() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("store");
        let dir = LocalDir::open(&root).unwrap();
        dir.put("catalog/snapshots/a.json", b"one").unwrap();
        dir.put("catalog/snapshots/a.json", b"two").unwrap();
        let file = root.join("catalog/snapshots/a.json");
        assert_eq!(
            fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::metadata(root.join("catalog"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o700
        );
        assert_eq!(dir.get("catalog/snapshots/a.json").unwrap(), b"two");
        // A stray temp file from a crashed writer is never listed.
        fs::write(root.join("catalog/snapshots/.tmp-1-1"), b"torn").unwrap();
        let listed = dir.list("catalog/").unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].key, "catalog/snapshots/a.json");
        assert_eq!(listed[0].size, 3);
        assert!(dir.list("nothing/").unwrap().is_empty());
        dir.delete("catalog/snapshots/a.json").unwrap();
        dir.delete("catalog/snapshots/a.json").unwrap();
        assert!(matches!(
            dir.get("catalog/snapshots/a.json"),
            Err(StoreError::NotFound { .. })
        ));
    }

    /// A compare-and-swap writes only over the version it expects; of
    /// many threads swapping from one version, exactly one wins.
    #[test]
    fn a_swap_writes_only_over_the_version_it_expects() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = LocalDir::open(tmp.path()).unwrap();
        let v1 = dir.swap("head.json", None, b"one").unwrap().unwrap();
        assert_eq!(dir.swap("head.json", None, b"again").unwrap(), None);
        assert_eq!(dir.swap("head.json", Some("nope"), b"x").unwrap(), None);
        assert_eq!(dir.get("head.json").unwrap(), b"one");
        let (bytes, v) = dir.get_versioned("head.json").unwrap().unwrap();
        assert_eq!((bytes.as_slice(), &v), (b"one".as_slice(), &v1));
        let v2 = dir.swap("head.json", Some(&v1), b"two").unwrap().unwrap();
        assert_ne!(v1, v2);
        assert_eq!(dir.swap("head.json", Some(&v1), b"late").unwrap(), None);
        assert_eq!(dir.get("head.json").unwrap(), b"two");
        assert_eq!(dir.get_versioned("missing.json").unwrap(), None);

        let won = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for i in 0..8 {
                let (dir, v2, won) = (&dir, &v2, &won);
                s.spawn(move || {
                    let body = format!("writer {i}");
                    if dir
                        .swap("head.json", Some(v2), body.as_bytes())
                        .unwrap()
                        .is_some()
                    {
                        won.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        });
        assert_eq!(won.load(Ordering::Relaxed), 1);
        assert!(dir.get("head.json").unwrap().starts_with(b"writer "));
    }

    #[test]
    fn keys_cannot_escape_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = LocalDir::open(tmp.path()).unwrap();
        for key in ["../x", "/etc/passwd", "a//b", "a/./b", ""] {
            assert!(dir.put(key, b"x").is_err(), "{key}");
        }
    }
}
