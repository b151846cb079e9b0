//! Lineages: the identity of one unbroken recorded history in a store.
//!
//! ```text
//! lineages/<id>.json      one record per lineage, written once
//! ```
//!
//! A lineage is a run of sequence numbers that one journal assigned without
//! a break. Its record names a random id (128 bits from the operating
//! system's CSPRNG, never a counter, so two recorders can never pick the
//! same one), the cluster it records (`cluster_uid`, the `kube-system`
//! namespace's uid), who created it, its first sequence number and, for a
//! lineage that took over from another, the **parent** and the **fork
//! point** (the parent's last sealed seq in the store when the child
//! began). A child never reuses its parent's sequence numbers: it starts at
//! `fork_seq + 1`.
//!
//! Catalog entries name their lineage ([`super::SegmentEntry::lineage`],
//! [`super::SnapshotEntry::lineage`]); entries without one were written
//! before lineages existed and read as the one [`LEGACY`] lineage.
//!
//! **Lineage records are a contract like catalog entries: fields may be
//! added with `#[serde(default)]`, never removed or renamed.**

use serde::{Deserialize, Serialize};

use super::error::{Result, StoreError};

/// Prefix of lineage records.
pub const LINEAGES: &str = "lineages/";

/// Lineage record version this code writes and reads.
pub const LINEAGE_VERSION: u32 = 1;

/// How people and errors name the entries written before lineages existed
/// (entries without a `lineage` field).
pub const LEGACY: &str = "legacy";

/// Where a child lineage leaves its parent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForkPoint {
    /// The parent's id ([`LEGACY`] for the entries without a lineage).
    pub lineage: String,
    /// The parent's last sealed seq in the store when the child began; the
    /// child's sequence numbers start after it.
    pub fork_seq: u64,
}

/// Who created a lineage, for people reading the store.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedBy {
    /// Host name of the recorder.
    pub host: String,
    /// `rewindd` version.
    pub version: String,
    /// The recorder's data directory.
    pub data_dir: String,
}

/// One lineage's record, `lineages/<id>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineageRecord {
    /// Record version, [`LINEAGE_VERSION`].
    pub version: u32,
    /// 32 lowercase hex digits.
    pub id: String,
    /// The lineage this one forked from; `None` for a root.
    pub parent: Option<ForkPoint>,
    /// The recorded cluster's identity (the `kube-system` namespace's uid,
    /// or the configured `cluster.id`).
    pub cluster_uid: String,
    /// Who created it.
    pub created_by: CreatedBy,
    /// When it was created, Unix milliseconds.
    pub created_at_ms: i64,
    /// The first sequence number the lineage assigns.
    pub first_seq: u64,
}

impl LineageRecord {
    /// Key of the record.
    #[must_use]
    pub fn key(&self) -> String {
        lineage_key(&self.id)
    }

    /// Short id for people: the first 8 hex digits.
    #[must_use]
    pub fn short_id(&self) -> &str {
        self.id.get(..8).unwrap_or(&self.id)
    }
}

/// Key of a lineage record.
#[must_use]
pub fn lineage_key(id: &str) -> String {
    format!("{LINEAGES}{id}.json")
}

/// A new lineage id: 128 random bits from the operating system, as 32
/// lowercase hex digits.
pub fn new_id() -> Result<String> {
    use std::fmt::Write;
    let mut raw = [0u8; 16];
    getrandom::fill(&mut raw).map_err(|e| {
        StoreError::io(
            "draw a random lineage id",
            "",
            std::io::Error::other(e.to_string()),
        )
    })?;
    let mut out = String::with_capacity(32);
    for b in raw {
        let _ = write!(out, "{b:02x}");
    }
    Ok(out)
}

/// Whether `id` looks like a lineage id (32 lowercase hex digits).
#[must_use]
pub fn is_valid_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Parses a lineage record and checks it against its key.
pub fn parse_lineage(key: &str, bytes: &[u8]) -> Result<LineageRecord> {
    let bad = |reason: String| StoreError::Catalog {
        key: key.to_owned(),
        reason,
    };
    if u64::try_from(bytes.len()).map_or(true, |n| n > super::layout::MAX_CATALOG_ENTRY_BYTES) {
        return Err(bad(format!(
            "{} bytes, too large for a lineage record",
            bytes.len()
        )));
    }
    let rec: LineageRecord = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
    if rec.version != LINEAGE_VERSION {
        return Err(bad(format!(
            "unsupported lineage record version {} (this build reads {LINEAGE_VERSION})",
            rec.version
        )));
    }
    if !is_valid_id(&rec.id) || rec.key() != key {
        return Err(bad("the id does not match the key".into()));
    }
    if let Some(p) = &rec.parent
        && p.fork_seq.saturating_add(1) != rec.first_seq
    {
        return Err(bad(format!(
            "first_seq {} does not follow the fork point {}",
            rec.first_seq, p.fork_seq
        )));
    }
    Ok(rec)
}

/// The name of the host this runs on, for [`CreatedBy`].
#[must_use]
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_random_hex_and_records_round_trip() {
        let a = new_id().unwrap();
        let b = new_id().unwrap();
        assert_ne!(a, b);
        assert!(is_valid_id(&a), "{a}");
        let rec = LineageRecord {
            version: LINEAGE_VERSION,
            id: a.clone(),
            parent: Some(ForkPoint {
                lineage: b,
                fork_seq: 41,
            }),
            cluster_uid: "uid-1".into(),
            created_by: CreatedBy::default(),
            created_at_ms: 5,
            first_seq: 42,
        };
        let json = serde_json::to_vec(&rec).unwrap();
        assert_eq!(parse_lineage(&rec.key(), &json).unwrap(), rec);
        assert!(parse_lineage("lineages/other.json", &json).is_err());
        let mut wrong = rec.clone();
        wrong.first_seq = 7;
        let json = serde_json::to_vec(&wrong).unwrap();
        let err = parse_lineage(&rec.key(), &json).unwrap_err();
        assert!(
            err.to_string().contains("does not follow the fork point"),
            "{err}"
        );
    }
}
