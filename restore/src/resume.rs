//! The restore journal: what an interrupted restore already did, so
//! `rewind restore --resume` continues instead of starting over.
//!
//! # Format
//! One file per plan, `<state dir>/restore-<plan id>.jsonl`, one JSON
//! [`Entry`] per line: `begin` first, then `quiesced` for each Deployment
//! scaled down (with its original replicas: on resume the live value is
//! already 0, so the journal is the only place the original survives),
//! `done` for each object the API confirmed, `unquiesced`, and `finished`.
//!
//! # Durability
//! Entries are buffered and written in chunks, each followed by `fsync`;
//! `quiesced` is synced before the Deployment is touched. A crash loses at
//! most the last chunk: those objects are written again on resume, which a
//! server-side apply makes harmless. A torn last line (a crash mid-write) is
//! recognised, ignored and truncated away; a damaged line before the last is
//! an error, never silently skipped.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Errors reading or writing the journal.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// Filesystem error.
    #[error("restore journal {path}: {source}")]
    Io {
        /// The journal file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A line before the last does not parse.
    #[error("restore journal {path} is damaged at line {line}: {reason}")]
    Corrupt {
        /// The journal file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// Parser message.
        reason: String,
    },
    /// `--resume` without a journal for this plan.
    #[error(
        "no restore journal for plan {plan_id} in {dir}: nothing to resume (was the state or the options different?)"
    )]
    NothingToResume {
        /// The plan.
        plan_id: String,
        /// The state directory.
        dir: PathBuf,
    },
    /// A fresh restore over an unfinished one.
    #[error(
        "an interrupted restore of this plan exists ({path}); rerun with --resume, or delete the file to start over"
    )]
    Unfinished {
        /// The journal file.
        path: PathBuf,
    },
    /// The journal belongs to another plan.
    #[error("restore journal {path} is for plan {found}, not {expected}")]
    WrongPlan {
        /// The journal file.
        path: PathBuf,
        /// The plan being applied.
        expected: String,
        /// The plan in the file.
        found: String,
    },
}

/// Result alias for this module.
pub type Result<T, E = JournalError> = std::result::Result<T, E>;

/// One journal line. Do not rename variants or fields: old journals must
/// stay readable by a newer `rewind --resume`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "entry", rename_all = "snake_case")]
pub enum Entry {
    /// A restore of `plan_id` started.
    Begin {
        /// The plan's id.
        plan_id: String,
    },
    /// A Deployment was scaled to zero; `replicas` is what it had.
    Quiesced {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// Replicas before the restore.
        replicas: i32,
    },
    /// An object was written (or deleted); `uid` is its UID in the target.
    Done {
        /// The object's key as displayed.
        key: String,
        /// The object's UID in the target, for rewiring dependents.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        uid: Option<String>,
    },
    /// A quiesced Deployment was scaled back.
    Unquiesced {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// The restore completed.
    Finished,
}

/// What a journal says was already done.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// Completed objects and their target UIDs.
    pub done: HashMap<String, Option<String>>,
    /// Deployments scaled down, with original replicas, in order.
    pub quiesced: Vec<(String, String, i32)>,
    /// Deployments already scaled back.
    pub unquiesced: Vec<(String, String)>,
    /// Whether the restore finished.
    pub finished: bool,
}

/// An open restore journal.
#[derive(Debug)]
pub struct Journal {
    /// Path of the file.
    path: PathBuf,
    /// The file, opened for append.
    file: File,
    /// Entries not yet written.
    pending: Vec<u8>,
    /// Number of entries in `pending`.
    pending_count: usize,
    /// Entries per fsync'd chunk.
    chunk: usize,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> JournalError + '_ {
    move |source| JournalError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The journal path for `plan_id` in `dir`.
#[must_use]
pub fn journal_path(dir: &Path, plan_id: &str) -> PathBuf {
    dir.join(format!("restore-{plan_id}.jsonl"))
}

/// Reads a journal, truncating a torn last line.
pub fn read(path: &Path) -> Result<(String, Progress)> {
    let file = File::open(path).map_err(io(path))?;
    let mut lines = Vec::new();
    let mut reader = BufReader::new(file);
    let mut buf = Vec::new();
    let mut good_len: u64 = 0;
    let mut torn = false;
    loop {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf).map_err(io(path))?;
        if n == 0 {
            break;
        }
        if buf.last() != Some(&b'\n') {
            // No newline: the write was cut short.
            torn = true;
            break;
        }
        lines.push((serde_json::from_slice::<Entry>(&buf), buf.len()));
    }
    let total = lines.len();
    let mut plan_id = None;
    let mut p = Progress::default();
    for (i, (entry, len)) in lines.into_iter().enumerate() {
        let entry = match entry {
            Ok(e) => e,
            Err(e) if i + 1 == total => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring a torn last journal line");
                torn = true;
                break;
            }
            Err(e) => {
                return Err(JournalError::Corrupt {
                    path: path.to_owned(),
                    line: i + 1,
                    reason: e.to_string(),
                });
            }
        };
        good_len += u64::try_from(len).unwrap_or(u64::MAX);
        match entry {
            Entry::Begin { plan_id: id } => plan_id = Some(id),
            Entry::Quiesced {
                namespace,
                name,
                replicas,
            } => p.quiesced.push((namespace, name, replicas)),
            Entry::Done { key, uid } => {
                p.done.insert(key, uid);
            }
            Entry::Unquiesced { namespace, name } => p.unquiesced.push((namespace, name)),
            Entry::Finished => p.finished = true,
        }
    }
    if torn {
        let f = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(io(path))?;
        f.set_len(good_len).map_err(io(path))?;
        f.sync_all().map_err(io(path))?;
    }
    let plan_id = plan_id.ok_or_else(|| JournalError::Corrupt {
        path: path.to_owned(),
        line: 1,
        reason: "no begin entry".into(),
    })?;
    Ok((plan_id, p))
}

impl Journal {
    /// Starts the journal of a new restore of `plan_id` in `dir`. Fails when
    /// an unfinished journal of the same plan exists: resuming it is the
    /// safe choice (it holds the quiesced Deployments' original replicas).
    pub fn create(dir: &Path, plan_id: &str) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let path = journal_path(dir, plan_id);
        if path.exists() {
            let (_, p) = read(&path)?;
            if !p.finished {
                return Err(JournalError::Unfinished { path });
            }
        }
        let file = File::create(&path).map_err(io(&path))?;
        // The new file's name must survive a crash too.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        let mut j = Self {
            path,
            file,
            pending: Vec::new(),
            pending_count: 0,
            chunk: 64,
        };
        j.append(&Entry::Begin {
            plan_id: plan_id.to_owned(),
        })?;
        j.sync()?;
        Ok(j)
    }

    /// Opens the journal of an interrupted restore of `plan_id` to continue it.
    pub fn resume(dir: &Path, plan_id: &str) -> Result<(Self, Progress)> {
        let path = journal_path(dir, plan_id);
        if !path.exists() {
            return Err(JournalError::NothingToResume {
                plan_id: plan_id.to_owned(),
                dir: dir.to_owned(),
            });
        }
        let (found, progress) = read(&path)?;
        if found != plan_id {
            return Err(JournalError::WrongPlan {
                path,
                expected: plan_id.to_owned(),
                found,
            });
        }
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        Ok((
            Self {
                path,
                file,
                pending: Vec::new(),
                pending_count: 0,
                chunk: 64,
            },
            progress,
        ))
    }

    /// The journal's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Buffers `entry`; writes and syncs when a chunk is full.
    pub fn append(&mut self, entry: &Entry) -> Result<()> {
        serde_json::to_writer(&mut self.pending, entry).map_err(|e| JournalError::Io {
            path: self.path.clone(),
            source: std::io::Error::other(e),
        })?;
        self.pending.push(b'\n');
        self.pending_count += 1;
        if self.pending_count >= self.chunk {
            self.sync()?;
        }
        Ok(())
    }

    /// Writes buffered entries and fsyncs them.
    pub fn sync(&mut self) -> Result<()> {
        if !self.pending.is_empty() {
            self.file.write_all(&self.pending).map_err(io(&self.path))?;
            self.pending.clear();
            self.pending_count = 0;
        }
        self.file.sync_data().map_err(io(&self.path))
    }
}

impl Drop for Journal {
    /// A cancelled restore keeps what it had confirmed (best effort: the
    /// entries are only hints, a lost one means one extra apply on resume).
    fn drop(&mut self) {
        let _ = self.sync();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_resume() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::create(dir.path(), "p1").unwrap();
        j.append(&Entry::Quiesced {
            namespace: "ns".into(),
            name: "d".into(),
            replicas: 3,
        })
        .unwrap();
        j.append(&Entry::Done {
            key: "a".into(),
            uid: Some("u".into()),
        })
        .unwrap();
        drop(j);
        assert!(matches!(
            Journal::create(dir.path(), "p1"),
            Err(JournalError::Unfinished { .. })
        ));
        let (mut j, p) = Journal::resume(dir.path(), "p1").unwrap();
        assert_eq!(p.quiesced, vec![("ns".into(), "d".into(), 3)]);
        assert_eq!(p.done.get("a"), Some(&Some("u".to_owned())));
        assert!(!p.finished);
        j.append(&Entry::Finished).unwrap();
        drop(j);
        let (_, p) = read(&journal_path(dir.path(), "p1")).unwrap();
        assert!(p.finished);
        // A finished journal may be replaced by a new restore of the same plan.
        assert!(Journal::create(dir.path(), "p1").is_ok());
        assert!(matches!(
            Journal::resume(dir.path(), "other"),
            Err(JournalError::NothingToResume { .. })
        ));
    }

    #[test]
    fn torn_tail_is_ignored_and_truncated_but_middle_damage_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::create(dir.path(), "p").unwrap();
        j.append(&Entry::Done {
            key: "a".into(),
            uid: None,
        })
        .unwrap();
        drop(j);
        let path = journal_path(dir.path(), "p");
        let good = std::fs::read(&path).unwrap();
        let mut torn = good.clone();
        torn.extend_from_slice(b"{\"entry\":\"done\",\"key\":\"b");
        std::fs::write(&path, &torn).unwrap();
        let (_, p) = read(&path).unwrap();
        assert_eq!(p.done.len(), 1);
        assert_eq!(std::fs::read(&path).unwrap(), good, "torn tail truncated");

        let mut garbage_line = good.clone();
        garbage_line.extend_from_slice(b"garbage\n");
        std::fs::write(&path, &garbage_line).unwrap();
        assert_eq!(
            read(&path).unwrap().1.done.len(),
            1,
            "a bad complete last line is a torn write too"
        );

        let mut middle = good;
        middle.extend_from_slice(b"garbage\n{\"entry\":\"finished\"}\n");
        std::fs::write(&path, &middle).unwrap();
        assert!(matches!(
            read(&path),
            Err(JournalError::Corrupt { line: 3, .. })
        ));
    }
}
