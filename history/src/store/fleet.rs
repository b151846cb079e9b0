//! A fleet in one store: many clusters under one bucket and prefix, each
//! in its own **place** (see `docs/STORE.md`, "Many clusters in one store").
//!
//! ```text
//! clusters/<cluster-key>/segments/ snapshots/ catalog/ lineages/   one cluster's history
//! segments/ snapshots/ catalog/ lineages/                          the flat layout: one cluster's history at the root
//! ```
//!
//! A cluster's key is its identity, the string its lineage records carry
//! as `cluster_uid`: `cluster.id` when configured, else the `kube-system`
//! namespace's uid. It is used as it is (so people can read it), and must
//! be path and URL safe: 1 to [`MAX_KEY_LEN`] ASCII letters, digits, `-`,
//! `_` or `.`, beginning with a letter or digit ([`check_key`]).
//!
//! The **flat** layout (today's single-cluster store, directly under the
//! prefix) is never moved: readers list it as one member of the store, and
//! [`place_recorder`] keeps a recorder on it when it holds that cluster's
//! history, a history from before lineages (which names no cluster), or
//! when the recorder is told to adopt the store. Every other recorder
//! writes its own `clusters/<key>/` place, so clusters sharing a bucket and
//! prefix never touch each other's files.

use super::error::StoreError;
use super::layout;
use super::{Store, StoreConfig};

/// Prefix of the cluster places.
pub const CLUSTERS: &str = "clusters/";

/// Longest cluster key.
pub const MAX_KEY_LEN: usize = 128;

/// How people name the flat layout's history when it has no lineage
/// record (entries written before lineages name no cluster).
pub const FLAT_LEGACY: &str = "legacy";

/// Errors placing or choosing a cluster in a store.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// A cluster key that cannot name a place in a store.
    #[error(
        "cluster key {key:?} cannot name a place in the store: {reason} (a cluster key is 1 to {MAX_KEY_LEN} ASCII letters, digits, '-', '_' or '.', beginning with a letter or digit; set cluster.id to one)"
    )]
    BadKey {
        /// The key.
        key: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The store holds several clusters and none was named.
    #[error("the store holds {} clusters; name one with --cluster: {}", clusters.len(), clusters.join(", "))]
    Ambiguous {
        /// The clusters, by name.
        clusters: Vec<String>,
    },
    /// The named cluster is not in the store.
    #[error("cluster {name:?} is not in the store; it holds: {}", if known.is_empty() { "no cluster".to_owned() } else { known.join(", ") })]
    Unknown {
        /// The name asked for.
        name: String,
        /// The clusters the store holds, by name.
        known: Vec<String>,
    },
    /// The named cluster matches more than one place.
    #[error("cluster {name:?} names more than one place in the store: {}", places.join(", "))]
    TwoPlaces {
        /// The name asked for.
        name: String,
        /// The places it names.
        places: Vec<String>,
    },
    /// The store has no history at all.
    #[error("the store holds no recorded history (no cluster)")]
    Empty,
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks that `key` can name a cluster's place (see the module doc).
pub fn check_key(key: &str) -> Result<(), FleetError> {
    let bad = |reason| FleetError::BadKey {
        key: key.to_owned(),
        reason,
    };
    if key.is_empty() {
        return Err(bad("empty"));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(bad("too long"));
    }
    if !key
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric())
    {
        return Err(bad("it must begin with a letter or digit"));
    }
    if !key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(bad(
            "it holds a character other than letters, digits, '-', '_' and '.'",
        ));
    }
    Ok(())
}

/// Where one cluster's history lives in a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// The flat layout directly under the store's root.
    Flat,
    /// `clusters/<key>/`.
    Cluster(String),
}

impl Place {
    /// The key prefix of the place, relative to the store's root, without
    /// a trailing `/` (empty for the flat layout).
    #[must_use]
    pub fn sub(&self) -> String {
        match self {
            Self::Flat => String::new(),
            Self::Cluster(key) => format!("{CLUSTERS}{key}"),
        }
    }

    /// The settings of the store rooted at the place.
    #[must_use]
    pub fn config(&self, root: &StoreConfig) -> StoreConfig {
        match self {
            Self::Flat => root.clone(),
            Self::Cluster(_) => root.within(&self.sub()),
        }
    }

    /// The store rooted at the place, on `root`'s client.
    pub fn open(&self, root: &Store) -> Result<Store, FleetError> {
        match self {
            Self::Flat => Ok(root.clone()),
            Self::Cluster(key) => {
                check_key(key)?;
                Ok(root.within(&self.sub())?)
            }
        }
    }
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Flat => f.write_str("the store's root (flat layout)"),
            Self::Cluster(key) => write!(f, "{CLUSTERS}{key}/"),
        }
    }
}

/// One cluster's history found in a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Where it is.
    pub place: Place,
    /// The cluster identities its lineage records name, oldest record
    /// first (several when a rebuilt cluster adopted the history); empty
    /// when it holds only entries from before lineages.
    pub cluster_uids: Vec<String>,
}

impl Member {
    /// The name people pass to `--cluster`: the place's key, or for the
    /// flat layout the identity of its newest lineage ([`FLAT_LEGACY`] when
    /// it has none).
    #[must_use]
    pub fn name(&self) -> String {
        match &self.place {
            Place::Cluster(key) => key.clone(),
            Place::Flat => self
                .cluster_uids
                .last()
                .cloned()
                .unwrap_or_else(|| FLAT_LEGACY.to_owned()),
        }
    }

    /// Whether `name` names this member: its name, or for the flat layout
    /// any cluster identity its lineages carry.
    #[must_use]
    pub fn matches(&self, name: &str) -> bool {
        self.name() == name
            || (self.place == Place::Flat && self.cluster_uids.iter().any(|u| u == name))
    }
}

/// Whether the store rooted at `store` holds any history: a lineage record
/// or a catalog entry.
async fn holds_history(store: &Store) -> Result<bool, StoreError> {
    for prefix in [
        super::lineage::LINEAGES,
        layout::CATALOG_SNAPSHOTS,
        layout::CATALOG_SEGMENTS,
    ] {
        if !store.list(prefix).await?.is_empty() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The distinct cluster identities of `store`'s lineage records, oldest
/// record first.
async fn cluster_uids(store: &Store) -> Result<Vec<String>, StoreError> {
    let mut out: Vec<String> = Vec::new();
    for rec in store.list_lineages().await? {
        if !out.contains(&rec.cluster_uid) {
            out.push(rec.cluster_uid);
        }
    }
    Ok(out)
}

/// Every cluster history in the store rooted at `root`: the flat layout
/// (when it holds history) first, then each `clusters/<key>/` place that
/// holds history, by key. A directory under `clusters/` whose name is not a
/// cluster key is logged and skipped.
pub async fn members(root: &Store) -> Result<Vec<Member>, FleetError> {
    let top = root.list_dirs("").await?;
    let mut out = Vec::new();
    if top.iter().any(|d| d == "catalog" || d == "lineages") && holds_history(root).await? {
        out.push(Member {
            place: Place::Flat,
            cluster_uids: cluster_uids(root).await?,
        });
    }
    if top.iter().any(|d| format!("{d}/") == CLUSTERS) {
        for key in root.list_dirs(CLUSTERS).await? {
            if let Err(e) = check_key(&key) {
                tracing::warn!(dir = %key, error = %e, "skipping a directory under clusters/ that is not a cluster key");
                continue;
            }
            let place = Place::Cluster(key);
            let store = place.open(root)?;
            if holds_history(&store).await? {
                out.push(Member {
                    cluster_uids: cluster_uids(&store).await?,
                    place,
                });
            }
        }
    }
    Ok(out)
}

/// The member a reader reads: the one `name` names, else the only one.
/// Several members and no name, an unknown name, and an empty store are
/// errors listing what the store holds; a reader never guesses.
pub fn choose<'a>(members: &'a [Member], name: Option<&str>) -> Result<&'a Member, FleetError> {
    let names = || members.iter().map(Member::name).collect::<Vec<_>>();
    match name {
        Some(name) => {
            let found: Vec<&Member> = members.iter().filter(|m| m.matches(name)).collect();
            match found.as_slice() {
                [one] => Ok(one),
                [] => Err(FleetError::Unknown {
                    name: name.to_owned(),
                    known: names(),
                }),
                many => Err(FleetError::TwoPlaces {
                    name: name.to_owned(),
                    places: many.iter().map(|m| m.place.to_string()).collect(),
                }),
            }
        }
        None => match members {
            [one] => Ok(one),
            [] => Err(FleetError::Empty),
            _ => Err(FleetError::Ambiguous { clusters: names() }),
        },
    }
}

/// Where a recorder of cluster `key` writes, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The place.
    pub place: Place,
    /// Why, for the log.
    pub reason: String,
}

/// Where the recorder of cluster `key` writes in the store rooted at
/// `root`; `adopt` is `cluster.adopt_store`.
///
/// 1. Its own place `clusters/<key>/` when that holds history.
/// 2. The flat layout when it holds history and its lineage records name
///    this cluster, or it has none (a store from before lineages names no
///    cluster: it is continued, as before), or `adopt` is set (the
///    lineage decision then refuses or adopts another cluster's history
///    exactly as for a single-cluster store).
/// 3. Else its own place (a new store, or a flat history of other
///    clusters only: they are not touched).
pub async fn place_recorder(root: &Store, key: &str, adopt: bool) -> Result<Placement, FleetError> {
    let own = Place::Cluster(key.to_owned());
    let key_ok = check_key(key);
    if key_ok.is_ok() && holds_history(&own.open(root)?).await? {
        return Ok(Placement {
            reason: format!("{own} holds this cluster's history"),
            place: own,
        });
    }
    if holds_history(root).await? {
        let uids = cluster_uids(root).await?;
        let reason = if uids.is_empty() {
            Some(
                "the flat layout holds a history from before lineages (it names no cluster)"
                    .to_owned(),
            )
        } else if uids.iter().any(|u| u == key) {
            Some("the flat layout holds this cluster's history".to_owned())
        } else if adopt {
            Some(format!(
                "cluster.adopt_store is set: the flat layout of cluster {} is continued",
                uids.join(", ")
            ))
        } else {
            tracing::warn!(cluster = %key, flat_clusters = %uids.join(", "), "the store's flat layout holds other clusters' history; recording into this cluster's own place (set cluster.adopt_store to continue the flat history instead)");
            None
        };
        if let Some(reason) = reason {
            return Ok(Placement {
                place: Place::Flat,
                reason,
            });
        }
    }
    key_ok?;
    Ok(Placement {
        reason: format!("{own} is this cluster's place"),
        place: own,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::lineage::{self, LINEAGE_VERSION};
    use crate::store::{Chain, CreatedBy, LineageRecord, SnapshotMeta};
    use bytes::Bytes;

    async fn record(store: &Store, cluster: &str, seq: u64) {
        let rec = LineageRecord {
            version: LINEAGE_VERSION,
            id: lineage::new_id().unwrap(),
            parent: None,
            cluster_uid: cluster.into(),
            created_by: CreatedBy::default(),
            created_at_ms: 1,
            first_seq: 1,
        };
        store.put_lineage(&rec).await.unwrap();
        let meta = SnapshotMeta {
            seq,
            time_ms: 1,
            objects: 0,
            label: None,
            encrypted: false,
            resource_set: None,
        };
        let chain = Chain {
            lineage: Some(rec.id),
            prev_sha256: None,
        };
        store
            .put_snapshot_in(meta, Bytes::from(cluster.to_owned()), chain)
            .await
            .unwrap();
    }

    #[test]
    fn keys_are_path_safe() {
        check_key("d6b2c0a4-1f3e-4c8b-9a7d-0e5f6a7b8c9d").unwrap();
        check_key("rancher-prod.eu_1").unwrap();
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "a/b",
            "a b",
            "ü",
            "-x",
            &"a".repeat(129),
        ] {
            assert!(check_key(bad).is_err(), "{bad:?}");
        }
        let err = check_key("a/b").unwrap_err().to_string();
        assert!(
            err.contains("\"a/b\"") && err.contains("cluster.id"),
            "{err}"
        );
    }

    /// Two clusters in their places and a flat history beside them are
    /// three members; a reader must name one, by key or (flat) by its
    /// cluster identity; an unknown name lists the known ones.
    #[tokio::test]
    async fn members_are_listed_and_a_reader_never_guesses() {
        let tmp = tempfile::tempdir().unwrap();
        let root = Store::open(&StoreConfig::Local {
            path: tmp.path().join("store"),
        })
        .await
        .unwrap();
        assert!(members(&root).await.unwrap().is_empty());
        assert!(matches!(choose(&[], None), Err(FleetError::Empty)));
        let a = Place::Cluster("cluster-a".into()).open(&root).unwrap();
        record(&a, "cluster-a", 5).await;
        let only = members(&root).await.unwrap();
        assert_eq!(choose(&only, None).unwrap().name(), "cluster-a");
        record(&root, "old-uid", 7).await;
        let b = Place::Cluster("cluster-b".into()).open(&root).unwrap();
        record(&b, "cluster-b", 9).await;
        // An empty place and a stray directory are no members.
        std::fs::create_dir_all(tmp.path().join("store/clusters/empty/catalog")).unwrap();
        std::fs::create_dir_all(tmp.path().join("store/clusters/.junk/catalog")).unwrap();
        let all = members(&root).await.unwrap();
        let names: Vec<String> = all.iter().map(Member::name).collect();
        assert_eq!(names, ["old-uid", "cluster-a", "cluster-b"]);
        assert_eq!(all[0].place, Place::Flat);
        let err = choose(&all, None).unwrap_err().to_string();
        assert!(
            err.contains("3 clusters") && err.contains("old-uid, cluster-a, cluster-b"),
            "{err}"
        );
        assert_eq!(
            choose(&all, Some("cluster-b")).unwrap().place,
            Place::Cluster("cluster-b".into())
        );
        assert_eq!(choose(&all, Some("old-uid")).unwrap().place, Place::Flat);
        let err = choose(&all, Some("cluster-c")).unwrap_err().to_string();
        assert!(
            err.contains("\"cluster-c\"") && err.contains("cluster-a"),
            "{err}"
        );
        // Each place reads only its own files.
        let snaps = all[2]
            .place
            .open(&root)
            .unwrap()
            .list_snapshots()
            .await
            .unwrap();
        assert_eq!(snaps.iter().map(|s| s.seq).collect::<Vec<_>>(), [9]);
        assert_eq!(root.list_snapshots().await.unwrap().len(), 1);
    }

    /// A recorder continues its own place, continues a flat history of its
    /// own cluster or from before lineages, adopts a flat history only when
    /// told, and otherwise writes its own place.
    #[tokio::test]
    async fn a_recorder_is_placed_without_re_rooting_an_existing_history() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = StoreConfig::Local {
            path: tmp.path().join("store"),
        };
        let root = Store::open(&cfg).await.unwrap();
        let at = |p: Placement| p.place;
        // An empty store: the own place.
        assert_eq!(
            at(place_recorder(&root, "uid-a", false).await.unwrap()),
            Place::Cluster("uid-a".into())
        );
        // A flat history from before lineages is continued.
        root.put_snapshot(
            SnapshotMeta {
                seq: 3,
                time_ms: 1,
                objects: 0,
                label: None,
                encrypted: false,
                resource_set: None,
            },
            Bytes::from_static(b"legacy"),
        )
        .await
        .unwrap();
        assert_eq!(
            at(place_recorder(&root, "uid-a", false).await.unwrap()),
            Place::Flat
        );
        // Once it names cluster uid-a: uid-a stays, uid-b goes to its own
        // place unless it adopts.
        record(&root, "uid-a", 4).await;
        assert_eq!(
            at(place_recorder(&root, "uid-a", false).await.unwrap()),
            Place::Flat
        );
        assert_eq!(
            at(place_recorder(&root, "uid-b", false).await.unwrap()),
            Place::Cluster("uid-b".into())
        );
        assert_eq!(
            at(place_recorder(&root, "uid-b", true).await.unwrap()),
            Place::Flat
        );
        // Once uid-b's place holds history, it is continued even with adopt.
        let b = Place::Cluster("uid-b".into()).open(&root).unwrap();
        record(&b, "uid-b", 2).await;
        assert_eq!(
            at(place_recorder(&root, "uid-b", true).await.unwrap()),
            Place::Cluster("uid-b".into())
        );
        assert_eq!(
            Place::Cluster("uid-b".into()).config(&cfg),
            StoreConfig::Local {
                path: tmp.path().join("store/clusters/uid-b")
            }
        );
        // A key that cannot name a place is an error naming it, unless the
        // flat history is that cluster's.
        let err = place_recorder(&root, "a/b", false).await.unwrap_err();
        assert!(matches!(err, FleetError::BadKey { .. }), "{err}");
    }
}
