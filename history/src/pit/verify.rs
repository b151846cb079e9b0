//! `rewind verify`: every file of a store checked offline, and the chain of
//! segments checked for gaps. Reports exactly what is damaged: the file,
//! and the block and the check that failed when the file can be framed.
//!
//! The store's lineages are checked as a whole too ([`super::plan`]'s
//! rules): files of an unknown lineage, lineages of several clusters, two
//! children of one fork point, overlaps and duplicates, digest links that
//! name no file, a parent that went on past its fork point, and gaps
//! within each lineage.
//!
//! Data objects are read raw (not through the catalog check) so that a file
//! whose hash is wrong is still decoded far enough to name the damaged
//! block; a file holding another catalog entry's bytes is called out as
//! swapped.

use std::collections::HashMap;

use rewind_format::crypto::Identity;
use rewind_format::{ErrorKind, FileKind, Limits, verify_file};
use serde::Serialize;

use super::{Result, blocking, plan};
use crate::store::lineage::LEGACY;
use crate::store::{SegmentEntry, Store, StoreError};

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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Gap {
    /// First missing seq.
    pub from: u64,
    /// Last missing seq.
    pub to: u64,
    /// The lineage the gap is in; `None` for entries without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lineage: Option<String>,
}

/// A problem with the store's lineages, and the files or lineages it
/// concerns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineageProblem {
    /// What is wrong.
    pub reason: String,
    /// The files or lineages involved.
    pub candidates: Vec<String>,
}

/// The result of checking a whole store.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Every catalogued file.
    pub files: Vec<FileCheck>,
    /// Gaps in each lineage's segment chain after its oldest snapshot (or
    /// its start).
    pub gaps: Vec<Gap>,
    /// Problems of the lineages as a whole.
    pub lineages: Vec<LineageProblem>,
}

impl VerifyReport {
    /// Whether anything is damaged or missing.
    #[must_use]
    pub fn is_damaged(&self) -> bool {
        !self.gaps.is_empty()
            || !self.lineages.is_empty()
            || self.files.iter().any(|f| !f.problems.is_empty())
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
                "GAP events {}..={} are missing from the segment chain of lineage {}",
                g.from,
                g.to,
                g.lineage.as_deref().unwrap_or(LEGACY)
            );
        }
        for p in &self.lineages {
            let _ = writeln!(s, "LINEAGE {}: {}", p.reason, p.candidates.join(", "));
        }
        let damaged = self.files.iter().filter(|f| !f.problems.is_empty()).count();
        let _ = writeln!(
            s,
            "{} files checked, {damaged} damaged, {} gaps, {} lineage problems",
            self.files.len(),
            self.gaps.len(),
            self.lineages.len()
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
    let lineages = store.list_lineages().await?;
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
    let mut problems: Vec<LineageProblem> = plan::store_problems(&lineages, &snapshots, &segments)
        .into_iter()
        .map(|(reason, candidates)| LineageProblem { reason, candidates })
        .collect();
    let mut all_gaps = Vec::new();
    let mut ids: Vec<Option<String>> = vec![None];
    ids.extend(lineages.iter().map(|l| Some(l.id.clone())));
    for id in ids {
        let own: Vec<SegmentEntry> = segments
            .iter()
            .filter(|s| s.lineage == id)
            .cloned()
            .collect();
        let own_snaps: Vec<u64> = snapshots
            .iter()
            .filter(|s| s.lineage == id)
            .map(|s| s.seq)
            .collect();
        let record = id
            .as_ref()
            .and_then(|i| lineages.iter().find(|l| &l.id == i));
        // Links may name the parent's last segment before the fork.
        let mut linked = own.clone();
        if let Some(p) = record.and_then(|r| r.parent.as_ref()) {
            let parent = (p.lineage != LEGACY).then(|| p.lineage.clone());
            linked.extend(
                segments
                    .iter()
                    .filter(|s| s.lineage == parent && s.last_seq <= p.fork_seq)
                    .cloned(),
            );
            let past: Vec<String> = segments
                .iter()
                .filter(|s| s.lineage == parent && s.last_seq > p.fork_seq)
                .map(SegmentEntry::catalog_key)
                .collect();
            if !past.is_empty() {
                problems.push(LineageProblem {
                    reason: format!(
                        "lineage {} went on past seq {}, where lineage {} forked from it (two recorders shipped at once)",
                        p.lineage,
                        p.fork_seq,
                        record.map_or("", |r| r.id.as_str())
                    ),
                    candidates: past,
                });
            }
        }
        for (reason, candidates) in
            plan::overlaps(&own)
                .into_iter()
                .chain(plan::broken_links(&linked).into_iter().filter(|(_, c)| {
                    c.iter()
                        .any(|n| own.iter().any(|s| n.starts_with(&s.catalog_key())))
                }))
        {
            problems.push(LineageProblem { reason, candidates });
        }
        let start = match (own_snaps.iter().min(), record) {
            (Some(s), _) => s.saturating_add(1),
            (None, Some(r)) => r.first_seq,
            (None, None) => 1,
        };
        all_gaps.extend(
            gaps(own.iter().map(|s| (s.first_seq, s.last_seq)), start)
                .into_iter()
                .map(|g| Gap {
                    lineage: id.clone(),
                    ..g
                }),
        );
    }
    for p in &problems {
        tracing::error!(reason = %p.reason, candidates = ?p.candidates, "lineage problem in the store");
    }
    Ok(VerifyReport {
        files,
        gaps: all_gaps,
        lineages: problems,
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
                lineage: None,
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
            vec![
                Gap {
                    from: 11,
                    to: 14,
                    lineage: None
                },
                Gap {
                    from: 21,
                    to: 29,
                    lineage: None
                }
            ]
        );
        assert_eq!(
            gaps([(5, 10)], 1),
            vec![Gap {
                from: 1,
                to: 4,
                lineage: None
            }]
        );
        assert_eq!(gaps([(1, 10), (11, 20)], 15), vec![]);
    }
}
