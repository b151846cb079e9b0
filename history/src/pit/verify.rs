//! `rewind verify`: every file of a store checked offline, and the chain of
//! segments checked for gaps. Reports exactly what is damaged: the file,
//! and the block and the check that failed when the file can be framed.
//!
//! Data objects are read raw (not through the catalog check) so that a file
//! whose hash is wrong is still decoded far enough to name the damaged
//! block; a file holding another catalog entry's bytes is called out as
//! swapped.

use std::collections::HashMap;

use rewind_format::crypto::Identity;
use rewind_format::{ErrorKind, FileKind, Limits, verify_file};
use serde::Serialize;

use super::{Result, blocking};
use crate::store::{Store, StoreError};

/// What was found about one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileCheck {
    /// Data key in the store.
    pub key: String,
    /// `snapshot` or `segment`.
    pub kind: &'static str,
    /// Everything that is wrong; empty when the file is sound.
    pub problems: Vec<String>,
    /// Set when the file could not be checked in full (encrypted, no identity).
    pub unchecked: Option<String>,
    /// Objects (snapshot) or events (segment) found.
    pub records: Option<u64>,
}

/// A run of missing sequence numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Gap {
    /// First missing seq.
    pub from: u64,
    /// Last missing seq.
    pub to: u64,
}

/// The result of checking a whole store.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Every catalogued file.
    pub files: Vec<FileCheck>,
    /// Gaps in the segment chain after the oldest snapshot (or seq 1).
    pub gaps: Vec<Gap>,
}

impl VerifyReport {
    /// Whether anything is damaged or missing.
    #[must_use]
    pub fn is_damaged(&self) -> bool {
        !self.gaps.is_empty() || self.files.iter().any(|f| !f.problems.is_empty())
    }

    /// One line per problem, for people.
    #[must_use]
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        for f in &self.files {
            for p in &f.problems {
                let _ = writeln!(s, "DAMAGED {}: {p}", f.key);
            }
            if let Some(u) = &f.unchecked {
                let _ = writeln!(s, "unchecked {}: {u}", f.key);
            }
        }
        for g in &self.gaps {
            let _ = writeln!(
                s,
                "GAP events {}..={} are missing from the segment chain",
                g.from, g.to
            );
        }
        let damaged = self.files.iter().filter(|f| !f.problems.is_empty()).count();
        let _ = writeln!(
            s,
            "{} files checked, {damaged} damaged, {} gaps",
            self.files.len(),
            self.gaps.len()
        );
        s
    }
}

/// What the catalog promises about a file.
struct Expect {
    key: String,
    kind: FileKind,
    size: u64,
    sha256: String,
    seq: (u64, u64),
    records: u64,
}

/// Checks every catalogued file of `store`, and the segment chain.
pub async fn verify_store(store: &Store, identities: &[Identity]) -> Result<VerifyReport> {
    let snapshots = store.list_snapshots().await?;
    let segments = store.list_segments().await?;
    let mut expect: Vec<Expect> = snapshots
        .iter()
        .map(|s| Expect {
            key: s.data_key(),
            kind: FileKind::Snapshot,
            size: s.size,
            sha256: s.sha256.clone(),
            seq: (s.seq, s.seq),
            records: s.objects,
        })
        .collect();
    expect.extend(segments.iter().map(|s| Expect {
        key: s.data_key(),
        kind: FileKind::Segment,
        size: s.size,
        sha256: s.sha256.clone(),
        seq: (s.first_seq, s.last_seq),
        records: s.events,
    }));
    let by_hash: HashMap<String, String> = expect
        .iter()
        .map(|e| (e.sha256.clone(), e.key.clone()))
        .collect();
    let mut files = Vec::with_capacity(expect.len());
    for e in expect {
        let bytes = match store.get_object(&e.key).await {
            Ok(b) => b,
            Err(StoreError::NotFound { .. }) => {
                files.push(check(&e, vec!["data object is missing".into()], None, None));
                continue;
            }
            Err(err) => return Err(err.into()),
        };
        let ids = identities.to_vec();
        let by_hash = by_hash.clone();
        let c = blocking(move || Ok(check_bytes(&e, &bytes, &ids, &by_hash))).await?;
        if !c.problems.is_empty() {
            tracing::error!(key = %c.key, problems = ?c.problems, "damaged file in the store");
        }
        files.push(c);
    }
    let start = snapshots.first().map_or(1, |s| s.seq.saturating_add(1));
    Ok(VerifyReport {
        files,
        gaps: gaps(segments.iter().map(|s| (s.first_seq, s.last_seq)), start),
    })
}

fn check(
    e: &Expect,
    problems: Vec<String>,
    unchecked: Option<String>,
    records: Option<u64>,
) -> FileCheck {
    FileCheck {
        key: e.key.clone(),
        kind: match e.kind {
            FileKind::Snapshot => "snapshot",
            FileKind::Segment => "segment",
        },
        problems,
        unchecked,
        records,
    }
}

fn check_bytes(
    e: &Expect,
    bytes: &[u8],
    ids: &[Identity],
    by_hash: &HashMap<String, String>,
) -> FileCheck {
    let mut problems = Vec::new();
    let size = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if size != e.size {
        problems.push(format!("size {size}, catalog says {}", e.size));
    }
    let sha = crate::store::layout::sha256_hex(bytes);
    if sha != e.sha256 {
        match by_hash.get(&sha) {
            Some(other) => problems.push(format!(
                "holds the bytes of {other} (files swapped or overwritten)"
            )),
            None => problems.push(format!("sha256 {sha}, catalog says {}", e.sha256)),
        }
    }
    let mut unchecked = None;
    let mut records = None;
    match verify_file(bytes, None, ids, &Limits::default()) {
        Ok(sum) => {
            records = Some(sum.records);
            if sum.kind != e.kind {
                problems.push(format!("is a {:?} file", sum.kind));
            } else if sum.seq != e.seq || sum.records != e.records {
                problems.push(format!(
                    "holds seq {:?} and {} records, catalog says {:?} and {}",
                    sum.seq, sum.records, e.seq, e.records
                ));
            }
        }
        Err(err) if matches!(err.kind, ErrorKind::EncryptedNeedsIdentity) => {
            unchecked = Some("encrypted: pass --identity to check its blocks".into());
        }
        Err(err) => problems.push(err.to_string()),
    }
    check(e, problems, unchecked, records)
}

/// Runs of seqs from `start` on that no segment holds.
pub fn gaps(segments: impl IntoIterator<Item = (u64, u64)>, start: u64) -> Vec<Gap> {
    let mut segs: Vec<(u64, u64)> = segments.into_iter().collect();
    segs.sort_unstable();
    let mut next = start;
    let mut out = Vec::new();
    for (first, last) in segs {
        if last < next {
            continue;
        }
        if first > next {
            out.push(Gap {
                from: next,
                to: first.saturating_sub(1),
            });
        }
        next = last.saturating_add(1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_between_overlapping_segments() {
        assert_eq!(gaps([(1, 10), (5, 12), (13, 20)], 1), vec![]);
        assert_eq!(
            gaps([(1, 10), (15, 20), (30, 31)], 1),
            vec![Gap { from: 11, to: 14 }, Gap { from: 21, to: 29 }]
        );
        assert_eq!(gaps([(5, 10)], 1), vec![Gap { from: 1, to: 4 }]);
        assert_eq!(gaps([(1, 10), (11, 20)], 15), vec![]);
    }
}
