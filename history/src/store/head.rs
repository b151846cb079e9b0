//! The head: one small object per place that names the lineage shipping
//! into it now and the epoch of its writer, replaced only by a
//! compare-and-swap. On a store that honours compare-and-swap (a local
//! directory; S3 servers with `If-Match` on PUT) it is a real fence: a
//! recorder swaps the head before every file it writes, so once a newer
//! writer has swapped it, an older one cannot write another file, however
//! late its clock or its Lease renewal tells it so.
//!
//! ```text
//! head.json   {"version": 1, "lineage": "…", "epoch": 7, "holder": "…", "updated_at_ms": …}
//! ```
//!
//! Who may replace a head ([`may_replace`]): the writer of the lineage it
//! names (a recorder continuing), or the writer of a child of that lineage
//! (a takeover, or a new lineage after a wiped journal). Anything else is
//! a [`Refusal`]: the head names a lineage this writer neither ships nor
//! descends from, because another recorder took over from it.
//!
//! The fencing token is the lineage, not the epoch: every takeover starts a
//! new lineage with a fresh random id, so a deposed writer's lineage can
//! never again be the head's or its parent, while a Lease's
//! `leaseTransitions` restarts at 0 when the Lease is deleted and made
//! again. The head records the epoch and the holder for people.
//!
//! A store without compare-and-swap (Garage 2.x) has no head: there the
//! Lease's renew deadline, the lineage check before each round and the
//! write-once names are the fence (`docs/STORE.md`).
//!
//! **The head is a contract like catalog entries: fields may be added with
//! `#[serde(default)]`, never removed or renamed.**

use serde::{Deserialize, Serialize};

use super::error::{Result, StoreError};

/// Key of the head, at the root of a place.
pub const HEAD: &str = "head.json";

/// Head version this code writes and reads.
pub const HEAD_VERSION: u32 = 1;

/// The largest head read (a head is about 200 bytes).
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// What `head.json` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// [`HEAD_VERSION`].
    pub version: u32,
    /// The lineage that ships into the place now.
    pub lineage: String,
    /// Its writer's epoch, for people: the Lease's `leaseTransitions` when
    /// it took the Lease, 0 without a Lease.
    pub epoch: u64,
    /// Its writer's identity (host name and random digits).
    pub holder: String,
    /// When the writer last swapped it, Unix milliseconds.
    pub updated_at_ms: i64,
}

/// The stored head's version, for a compare-and-swap: the S3 `ETag`, or
/// the SHA-256 of a local file's bytes. Opaque.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadVersion(pub(crate) String);

/// What a compare-and-swap did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Swap {
    /// The head was as expected and is replaced; its new version.
    Swapped(HeadVersion),
    /// The head was not as expected (another writer swapped it, or it
    /// appeared or disappeared): nothing was written.
    Lost,
}

/// Why a writer may not replace the head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The head names a lineage this writer neither ships nor descends
    /// from.
    OtherLineage,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::OtherLineage => {
                "it names a lineage this recorder neither ships nor descends from"
            }
        })
    }
}

/// Whether the writer of `lineage` (a child of `parent`, if any) may
/// replace `current`.
///
/// # Errors
/// The [`Refusal`] when it may not.
pub fn may_replace(
    current: &Head,
    lineage: &str,
    parent: Option<&str>,
) -> std::result::Result<(), Refusal> {
    if current.lineage == lineage || parent.is_some_and(|p| current.lineage == p) {
        Ok(())
    } else {
        Err(Refusal::OtherLineage)
    }
}

/// Parses a stored head; `key` names it in errors.
///
/// # Errors
/// [`StoreError::Catalog`] for a head that is too large, not JSON, or of a
/// version this code does not read.
pub fn parse_head(key: &str, bytes: &[u8]) -> Result<Head> {
    let bad = |reason: String| StoreError::Catalog {
        key: key.to_owned(),
        reason,
    };
    if bytes.len() > MAX_HEAD_BYTES {
        return Err(bad(format!(
            "{} bytes, more than a head may hold ({MAX_HEAD_BYTES})",
            bytes.len()
        )));
    }
    let head: Head = serde_json::from_slice(bytes).map_err(|e| bad(format!("not a head: {e}")))?;
    if head.version != HEAD_VERSION {
        return Err(bad(format!(
            "head version {} (this rewind reads {HEAD_VERSION})",
            head.version
        )));
    }
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(lineage: &str, epoch: u64) -> Head {
        Head {
            version: HEAD_VERSION,
            lineage: lineage.into(),
            epoch,
            holder: "h".into(),
            updated_at_ms: 1,
        }
    }

    /// The table of who may replace a head.
    #[test]
    fn who_may_replace_a_head() {
        let cur = head("p", 3);
        // The same lineage continuing, whatever the epoch (a Lease made
        // again restarts its transitions at 0).
        assert_eq!(may_replace(&cur, "p", None), Ok(()));
        assert_eq!(may_replace(&cur, "p", Some("q")), Ok(()));
        // A child taking over, or a new lineage after a wiped journal.
        assert_eq!(may_replace(&cur, "c", Some("p")), Ok(()));
        // The parent once its child holds the head, a sibling, a stranger.
        let child = head("c", 4);
        assert_eq!(may_replace(&child, "p", None), Err(Refusal::OtherLineage));
        assert_eq!(
            may_replace(&child, "d", Some("p")),
            Err(Refusal::OtherLineage)
        );
        assert_eq!(
            may_replace(&child, "x", Some("y")),
            Err(Refusal::OtherLineage)
        );
    }

    #[test]
    fn a_bad_head_is_an_error_naming_it() {
        let err = parse_head("head.json", b"{").unwrap_err();
        assert!(err.to_string().contains("head.json"), "{err}");
        let mut h = head("p", 1);
        h.version = 9;
        let err = parse_head("head.json", &serde_json::to_vec(&h).unwrap()).unwrap_err();
        assert!(err.to_string().contains("head version 9"), "{err}");
        let big = vec![b' '; MAX_HEAD_BYTES + 1];
        assert!(parse_head("head.json", &big).is_err());
        let ok = head("p", 1);
        assert_eq!(
            parse_head("head.json", &serde_json::to_vec(&ok).unwrap()).unwrap(),
            ok
        );
    }
}
