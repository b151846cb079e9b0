//! What prune may delete: live objects that the resource set recorded at
//! the point selects and the state lacks, never more. Objects outside that
//! set (another product's namespace, a CNI's roles) were never recorded, so
//! their absence from the state says nothing about them.
//!
//! The set comes from the store: each catalog entry may carry the resource
//! set rewindd recorded with ([`RecordedResourceSet`]); the one in force at
//! a point is that of the newest file the point's state was read from.
//! When that file carries none, the caller must name the set
//! (`--resource-preset`, `--resource-set`), and prune refuses to run
//! without one ([`PlanError::NoPruneScope`](crate::plan::PlanError)).

use rewind_history::select::ResourceSet;
use rewind_history::store::layout::RecordedResourceSet;
use rewind_history::store::{SegmentEntry, SnapshotEntry};

/// Errors reading a recorded resource set.
#[derive(Debug, thiserror::Error)]
pub enum ScopeError {
    /// The set recorded with a file does not compile.
    #[error("the resource set recorded with {file} is not valid: {source}")]
    Invalid {
        /// The catalog id of the file.
        file: String,
        /// Why.
        source: rewind_history::select::Error,
    },
}

/// The resource set in force at a state folded from the snapshot `base`
/// (`None`: from the empty state) up to `seq`, with the id of the file it
/// was recorded with: the set of the newest file read (the last segment
/// applied, else the base snapshot). `None` when that file carries no set.
#[must_use]
pub fn recorded_set<'a>(
    snapshots: &'a [SnapshotEntry],
    segments: &'a [SegmentEntry],
    base: Option<&str>,
    seq: u64,
) -> Option<(&'a str, &'a RecordedResourceSet)> {
    let base = base.and_then(|id| snapshots.iter().find(|s| s.id == id));
    let after = base.map_or(0, |b| b.seq);
    let newest_segment = segments
        .iter()
        .filter(|s| seq > after && s.last_seq > after && s.first_seq <= seq)
        .max_by_key(|s| (s.first_seq, s.last_seq));
    match (newest_segment, base) {
        (Some(s), _) => s.resource_set.as_ref().map(|r| (s.id.as_str(), r)),
        (None, Some(b)) => b.resource_set.as_ref().map(|r| (b.id.as_str(), r)),
        (None, None) => None,
    }
}

/// [`recorded_set`], compiled.
pub fn recorded_scope(
    snapshots: &[SnapshotEntry],
    segments: &[SegmentEntry],
    base: Option<&str>,
    seq: u64,
) -> Result<Option<ResourceSet>, ScopeError> {
    recorded_set(snapshots, segments, base, seq)
        .map(|(file, set)| {
            set.compile().map_err(|source| ScopeError::Invalid {
                file: file.to_owned(),
                source,
            })
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rewind_history::select::ResourceSelector;

    fn set(ns: &str) -> RecordedResourceSet {
        RecordedResourceSet {
            presets: Vec::new(),
            selectors: vec![ResourceSelector {
                api_version: "v1".into(),
                namespaces: vec![ns.into()],
                ..ResourceSelector::default()
            }],
        }
    }

    fn seg(first: u64, last: u64, rs: Option<RecordedResourceSet>) -> SegmentEntry {
        SegmentEntry {
            version: 1,
            id: format!("seg-{first}-{last}"),
            first_seq: first,
            last_seq: last,
            first_time_ms: 0,
            last_time_ms: 0,
            events: last - first + 1,
            size: 1,
            sha256: String::new(),
            encrypted: false,
            stored_at_ms: 0,
            resource_set: rs,
            lineage: None,
            prev_sha256: None,
        }
    }

    fn snap(seq: u64, rs: Option<RecordedResourceSet>) -> SnapshotEntry {
        SnapshotEntry {
            version: 1,
            id: format!("snap-{seq}"),
            seq,
            time_ms: 0,
            objects: 1,
            size: 1,
            sha256: String::new(),
            label: None,
            encrypted: false,
            stored_at_ms: 0,
            resource_set: rs,
            lineage: None,
        }
    }

    #[test]
    fn the_newest_file_read_names_the_set() {
        let segments = vec![
            seg(1, 100, Some(set("old"))),
            seg(101, 200, Some(set("new"))),
            seg(201, 300, None),
        ];
        let snapshots = vec![snap(150, Some(set("snap")))];
        // From the empty state up to 150: the segment holding 150.
        let (file, s) = recorded_set(&snapshots, &segments, None, 150).unwrap();
        assert_eq!((file, s), ("seg-101-200", &set("new")));
        // Up to 50: the first segment.
        assert_eq!(
            recorded_set(&snapshots, &segments, None, 50).unwrap().1,
            &set("old")
        );
        // The snapshot alone (no segment after it up to its seq).
        assert_eq!(
            recorded_set(&snapshots, &segments, Some("snap-150"), 150).unwrap(),
            ("snap-150", &set("snap"))
        );
        // The newest file read has none: no recorded set, whatever older
        // files say.
        assert!(recorded_set(&snapshots, &segments, Some("snap-150"), 250).is_none());
        assert!(recorded_set(&[], &[], None, 0).is_none());
    }

    #[test]
    fn a_recorded_set_compiles_or_names_its_file() {
        let segments = vec![seg(1, 10, Some(set("a")))];
        let scope = recorded_scope(&[], &segments, None, 10).unwrap().unwrap();
        assert_eq!(scope.len(), 1);
        let bad = RecordedResourceSet {
            presets: vec!["nonesuch".into()],
            selectors: Vec::new(),
        };
        let segments = vec![seg(1, 10, Some(bad))];
        let err = recorded_scope(&[], &segments, None, 10).unwrap_err();
        assert!(err.to_string().contains("seg-1-10"), "{err}");
    }
}
