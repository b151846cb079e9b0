//! Where in the store this recorder writes: its cluster's place
//! (`clusters/<cluster-key>/`) or the flat layout of a single-cluster
//! store, decided at start by `rewind_history::store::fleet::place_recorder`
//! once the cluster's identity is known (`docs/STORE.md`, "Many clusters in
//! one store").
//!
//! The decision is remembered in `<data_dir>/store-place` (first line: the
//! place's key prefix, empty for the flat layout; second line: the store it
//! is in), and a later start on the same store takes the remembered place
//! without asking the store again: a store unreachable at start does not
//! delay or stop recording, and `rewindd prune`, which runs without the
//! cluster, prunes the same place. A different store is decided afresh.

use std::path::{Path, PathBuf};

use rewind_history::store::fleet::{self, FleetError, Place};
use rewind_history::store::{RetryPolicy, Store, StoreConfig, StoreError};

/// Name of the file, in the data directory, that remembers the place.
pub const PLACE_FILE: &str = "store-place";

/// Errors placing the recorder in the store.
#[derive(Debug, thiserror::Error)]
pub enum PlacementError {
    /// The store could not be read to decide, and no place is remembered.
    #[error(
        "cannot decide where in the store cluster {cluster} is recorded (the store cannot be read, and {} remembers no place): {source}",
        file.display()
    )]
    Undecided {
        /// The cluster key.
        cluster: String,
        /// The file that would remember the place.
        file: PathBuf,
        /// Why the store could not be read.
        #[source]
        source: FleetError,
    },
    /// The cluster cannot be placed (a key that cannot name a place).
    #[error(transparent)]
    Fleet(#[from] FleetError),
    /// The store could not be opened.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The remembered place could not be read or written.
    #[error("{}: {reason}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// How `store-place` names the store a place is in.
#[must_use]
pub fn store_id(root: &StoreConfig) -> String {
    match root {
        StoreConfig::Local { path } => format!("local:{}", path.display()),
        StoreConfig::S3(s3) => format!(
            "s3:{}/{}/{}",
            s3.endpoint.as_deref().unwrap_or("aws"),
            s3.bucket,
            s3.prefix.trim_matches('/')
        ),
    }
}

/// The place remembered in `data_dir` for the store `root`, if any.
pub fn remembered_for(
    data_dir: &Path,
    root: &StoreConfig,
) -> Result<Option<Place>, PlacementError> {
    let path = data_dir.join(PLACE_FILE);
    let place = remembered(data_dir)?;
    let same = std::fs::read_to_string(&path)
        .ok()
        .is_some_and(|t| t.lines().nth(1) == Some(store_id(root).as_str()));
    Ok(place.filter(|_| same))
}

/// The place remembered in `data_dir`, if any, in whichever store.
pub fn remembered(data_dir: &Path) -> Result<Option<Place>, PlacementError> {
    let path = data_dir.join(PLACE_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(PlacementError::File {
                path,
                reason: e.to_string(),
            });
        }
    };
    let sub = text.lines().next().unwrap_or_default().trim();
    if sub.is_empty() {
        return Ok(Some(Place::Flat));
    }
    let key = sub
        .strip_prefix(fleet::CLUSTERS)
        .ok_or_else(|| PlacementError::File {
            path: path.clone(),
            reason: format!(
                "holds {sub:?}, not a place (empty, or {}<cluster-key>)",
                fleet::CLUSTERS
            ),
        })?;
    fleet::check_key(key).map_err(|e| PlacementError::File {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    Ok(Some(Place::Cluster(key.to_owned())))
}

fn remember(data_dir: &Path, place: &Place, root: &StoreConfig) -> Result<(), PlacementError> {
    let path = data_dir.join(PLACE_FILE);
    let tmp = data_dir.join(format!("{PLACE_FILE}.tmp"));
    let err = |e: std::io::Error| PlacementError::File {
        path: path.clone(),
        reason: e.to_string(),
    };
    std::fs::write(&tmp, format!("{}\n{}\n", place.sub(), store_id(root))).map_err(err)?;
    std::fs::rename(&tmp, &path).map_err(err)
}

/// Where the recorder of cluster `key` writes in the store `root`
/// (`adopt`: `cluster.adopt_store`): the place remembered for this store;
/// else decided against the store and remembered; when the store cannot be
/// read, a data directory that shipped before places recorded the flat
/// layout. Returns the settings of the store rooted at the place.
pub async fn resolve(
    data_dir: &Path,
    root: &StoreConfig,
    retry: RetryPolicy,
    key: &str,
    adopt: bool,
) -> Result<StoreConfig, PlacementError> {
    if let Some(place) = remembered_for(data_dir, root)? {
        tracing::info!(cluster = %key, place = %place, "recording into the place this data directory recorded into before");
        return Ok(place.config(root));
    }
    let store = Store::open_with(root, retry).await?;
    let before = remembered(data_dir)?;
    let place = match fleet::place_recorder(&store, key, adopt).await {
        Ok(p) => {
            tracing::info!(cluster = %key, place = %p.place, reason = %p.reason, "recording into the store");
            p.place
        }
        Err(FleetError::Store(e)) => {
            // A data directory that already shipped, from before places.
            let recalled = (before.is_none()
                && data_dir.join("compact").join("progress.json").exists())
            .then_some(Place::Flat);
            let Some(place) = recalled else {
                return Err(PlacementError::Undecided {
                    cluster: key.to_owned(),
                    file: data_dir.join(PLACE_FILE),
                    source: FleetError::Store(e),
                });
            };
            tracing::warn!(cluster = %key, place = %place, error = %e, "cannot read the store to place the recorder; using the place it recorded into before");
            place
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(b) = before.as_ref().filter(|b| **b != place) {
        tracing::info!(cluster = %key, before = %b, now = %place, "placed in another store than before");
    }
    remember(data_dir, &place, root)?;
    Ok(place.config(root))
}

/// The store settings `rewindd prune` works on: the place the recorder
/// remembered; else, with `cluster.id` set, the place a recorder of it
/// would take; else the store's root (a recorder that never ran here).
pub async fn for_prune(
    data_dir: &Path,
    root: &StoreConfig,
    retry: RetryPolicy,
    cluster_id: Option<&str>,
    adopt: bool,
) -> Result<StoreConfig, PlacementError> {
    if let Some(place) = remembered_for(data_dir, root)? {
        return Ok(place.config(root));
    }
    let Some(key) = cluster_id else {
        return Ok(root.clone());
    };
    let store = Store::open_with(root, retry).await?;
    Ok(fleet::place_recorder(&store, key, adopt)
        .await?
        .place
        .config(root))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The remembered place round-trips for its store only, an empty first
    /// line is the flat layout, and a file holding something else is an
    /// error naming it.
    #[test]
    fn the_place_is_remembered() {
        let tmp = tempfile::tempdir().unwrap();
        let root = StoreConfig::Local {
            path: "/srv/store".into(),
        };
        let other = StoreConfig::Local {
            path: "/srv/other".into(),
        };
        assert_eq!(remembered(tmp.path()).unwrap(), None);
        let place = Place::Cluster("d6b2c0a4-1f3e".into());
        remember(tmp.path(), &place, &root).unwrap();
        assert_eq!(remembered(tmp.path()).unwrap(), Some(place.clone()));
        assert_eq!(remembered_for(tmp.path(), &root).unwrap(), Some(place));
        assert_eq!(remembered_for(tmp.path(), &other).unwrap(), None);
        remember(tmp.path(), &Place::Flat, &root).unwrap();
        assert_eq!(
            remembered_for(tmp.path(), &root).unwrap(),
            Some(Place::Flat)
        );
        std::fs::write(tmp.path().join(PLACE_FILE), "../elsewhere\n").unwrap();
        let err = remembered(tmp.path()).unwrap_err().to_string();
        assert!(
            err.contains("store-place") && err.contains("not a place"),
            "{err}"
        );
    }
}
