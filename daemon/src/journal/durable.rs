//! Making the files sled wrote durable: what sled 0.34's flush leaves
//! undone.
//!
//! sled 0.34.7 writes these files in the journal directory:
//! - `db`: its log and page segments. `Db::flush` writes them with `pwrite`
//!   and then calls `sync_file_range`, which starts and waits for the
//!   writeback of those pages but flushes neither the drive's write cache
//!   nor the file's size (an appended segment is lost with its size), so a
//!   power loss can take back a flushed write. sled calls `sync_all` only
//!   from its periodic flusher, which the journal turns off
//!   (`flush_every_ms(None)`: it would add fsyncs at random moments).
//! - `conf`: its storage parameters, written once when the database is
//!   created, never synced.
//! - `blobs/<lsn>`: one file per log entry larger than a quarter of a
//!   segment (128 KiB), written when sled reserves the entry (before the
//!   flush that writes the log entry pointing at it), never synced; the
//!   `blobs/` directory is created on open.
//! - `snap.<lsn>`: its page table, every million operations, written as
//!   `snap.<lsn>.generating`, synced, renamed, and older ones removed; the
//!   rename and removals are not synced.
//!
//! [`Files`] keeps the handles it needs open (the `db` file, the journal
//! directory, `blobs/`) and completes a commit's flush:
//! 1. before sled's flush: `fdatasync` each blob file created since the last
//!    commit, then `fsync` `blobs/` (the log entries pointing at them become
//!    durable only after);
//! 2. after sled's flush: `fdatasync` `db` (its data and its size);
//! 3. `fsync` the journal directory when a new `snap.*` name appeared.
//!
//! [`Files::open`] does the same for what opening created: `fdatasync` of
//! `conf` and `db`, `fsync` of `blobs/`, the journal directory and its
//! parent (which holds the journal directory's own entry).

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};

use tracing::debug;

use super::{Error, Result};

/// sled's main file in the journal directory.
const DB_FILE: &str = "db";
/// sled's storage parameters file.
const CONF_FILE: &str = "conf";
/// sled's directory of blob files.
const BLOBS_DIR: &str = "blobs";
/// Prefix of sled's snapshot files.
const SNAP_PREFIX: &str = "snap.";
/// Suffix of a snapshot sled is still writing.
const SNAP_GENERATING: &str = ".generating";

/// Open handles on the files sled writes, and what of them is known
/// durable.
pub(crate) struct Files {
    /// The journal directory.
    dir_path: PathBuf,
    /// `db`, opened read-only: `fdatasync` needs no write access.
    db: File,
    /// The journal directory itself.
    dir: File,
    /// `blobs/`.
    blobs: File,
    /// Newest blob file (named by its log sequence number) known synced;
    /// `None` until the first commit, which syncs them all.
    pub(crate) blobs_synced: Option<i64>,
    /// Names of the `snap.*` files whose directory entry is synced.
    snaps: BTreeSet<String>,
}

fn sync_error<'a>(path: &'a Path, what: &'static str) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Sync {
        what,
        path: path.to_path_buf(),
        source,
    }
}

fn open_read(path: &Path) -> Result<File> {
    File::open(path).map_err(sync_error(path, "open"))
}

fn fdatasync(f: &File, path: &Path) -> Result<()> {
    f.sync_data().map_err(sync_error(path, "fdatasync"))
}

fn fsync(f: &File, path: &Path) -> Result<()> {
    f.sync_all().map_err(sync_error(path, "fsync"))
}

impl Files {
    /// Opens the handles on the journal in `dir` (sled opened it already)
    /// and makes what opening wrote durable.
    pub(crate) fn open(dir: &Path) -> Result<Self> {
        let db_path = dir.join(DB_FILE);
        let blobs_path = dir.join(BLOBS_DIR);
        let conf_path = dir.join(CONF_FILE);
        let db = open_read(&db_path)?;
        let dir_file = open_read(dir)?;
        let blobs = open_read(&blobs_path)?;
        match File::open(&conf_path) {
            Ok(conf) => fdatasync(&conf, &conf_path)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(sync_error(&conf_path, "open")(e)),
        }
        fdatasync(&db, &db_path)?;
        fsync(&blobs, &blobs_path)?;
        fsync(&dir_file, dir)?;
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            fsync(&open_read(parent)?, parent)?;
        }
        let mut files = Self {
            dir_path: dir.to_path_buf(),
            db,
            dir: dir_file,
            blobs,
            blobs_synced: None,
            snaps: BTreeSet::new(),
        };
        // The directory was synced just now: every snapshot in it is.
        files.snaps = files.snap_names()?;
        Ok(files)
    }

    /// Step 1: syncs the blob files sled created since the last commit,
    /// and `blobs/` when there were any.
    pub(crate) fn sync_new_blobs(&mut self) -> Result<()> {
        let dir = self.dir_path.join(BLOBS_DIR);
        let entries = std::fs::read_dir(&dir).map_err(sync_error(&dir, "list"))?;
        let done = self.blobs_synced;
        let mut newest = done;
        for entry in entries {
            let entry = entry.map_err(sync_error(&dir, "list"))?;
            let Some(lsn) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i64>().ok())
            else {
                continue;
            };
            if done.is_some_and(|d| lsn <= d) {
                continue;
            }
            let path = entry.path();
            match File::open(&path) {
                Ok(f) => fdatasync(&f, &path)?,
                // sled removed it meanwhile (a superseded node).
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(sync_error(&path, "open")(e)),
            }
            newest = Some(newest.map_or(lsn, |n| n.max(lsn)));
        }
        if newest != done {
            fsync(&self.blobs, &dir)?;
            debug!(newest_blob = ?newest, "synced new sled blob files");
            self.blobs_synced = newest;
        }
        Ok(())
    }

    /// Steps 2 and 3: after sled's flush, syncs `db` and, when sled
    /// renamed a new snapshot into place, the journal directory.
    pub(crate) fn sync_after_flush(&mut self) -> Result<()> {
        fdatasync(&self.db, &self.dir_path.join(DB_FILE))?;
        let snaps = self.snap_names()?;
        if !snaps.is_subset(&self.snaps) {
            fsync(&self.dir, &self.dir_path)?;
            debug!(snapshots = ?snaps, "synced the journal directory after a sled snapshot");
        }
        self.snaps = snaps;
        Ok(())
    }

    /// Names of the finished `snap.*` files in the journal directory.
    fn snap_names(&self) -> Result<BTreeSet<String>> {
        let entries =
            std::fs::read_dir(&self.dir_path).map_err(sync_error(&self.dir_path, "list"))?;
        let mut out = BTreeSet::new();
        for entry in entries {
            let entry = entry.map_err(sync_error(&self.dir_path, "list"))?;
            if let Ok(name) = entry.file_name().into_string()
                && name.starts_with(SNAP_PREFIX)
                && !name.ends_with(SNAP_GENERATING)
            {
                out.insert(name);
            }
        }
        Ok(out)
    }
}
