//! The store the global flags name (`--store`, `--identity`,
//! `--s3-endpoint`, `--cluster`), for every command that reads history.
//!
//! A store may hold several clusters, each in its own place
//! (`rewind_history::store::fleet`): the one `--cluster` names is read, or
//! the only one; several and none named is an error listing them.
//!
//! [`StoreArgs`] is built once from the command line and handed to each
//! command that opens the store.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use rewind_history::pit::{PitState, StoreSource, read_identity};
use rewind_history::select::ResourceSet;
use rewind_history::store::fleet;
use rewind_history::{DesiredState, Point};
use rewind_restore::scope;

use super::args::Cli;

/// What the global flags say about the store.
#[derive(Debug, Clone, Default)]
pub struct StoreArgs {
    /// `--store`: a directory or `s3://bucket/prefix`.
    url: Option<String>,
    /// `--identity`: age identity file for encrypted stores.
    identity: Option<PathBuf>,
    /// `--s3-endpoint`: the S3 endpoint (None: AWS).
    endpoint: Option<String>,
    /// `--lineage`: the lineage points are read in (None: the newest).
    lineage: Option<String>,
    /// `--cluster`: the cluster read in a store of several (None: the only
    /// one).
    cluster: Option<String>,
}

/// The files a state was read from: the base snapshot (`None`: folded from
/// the empty state) and the newest seq folded.
#[derive(Debug, Clone)]
pub struct Files {
    /// Id of the base snapshot.
    pub base: Option<String>,
    /// Seq of the state.
    pub seq: u64,
}

impl StoreArgs {
    /// The store flags of `cli`.
    pub fn from_cli(cli: &Cli) -> Self {
        Self {
            url: cli.store.clone(),
            identity: cli.identity.clone(),
            endpoint: cli.s3_endpoint.clone(),
            lineage: cli.lineage.clone(),
            cluster: cli.cluster.clone(),
        }
    }

    /// Whether `--cluster` names a cluster.
    pub fn names_cluster(&self) -> bool {
        self.cluster.is_some()
    }

    /// Opens the store the flags name, rooted at the cluster `--cluster`
    /// names, or the only one (see the module doc).
    pub async fn open(&self) -> Result<StoreSource> {
        let (root, members) = self.open_root().await?;
        if members.is_empty() && self.cluster.is_none() {
            // Nothing recorded: the readers' own errors say so.
            return Ok(root);
        }
        let member = fleet::choose(&members, self.cluster.as_deref())?;
        let store = member.place.open(root.store())?;
        tracing::debug!(cluster = %member.name(), place = %member.place, "reading one cluster of the store");
        Ok(StoreSource::new(store, root.identities().to_vec()).with_lineage(self.lineage.clone()))
    }

    /// Opens the store's root and lists the clusters it holds.
    pub async fn open_root(&self) -> Result<(StoreSource, Vec<fleet::Member>)> {
        let root = self.open_url().await?;
        let members = fleet::members(root.store())
            .await
            .context("listing the clusters in the store")?;
        Ok((root, members))
    }

    /// Opens the store's root the flags name.
    async fn open_url(&self) -> Result<StoreSource> {
        let Some(url) = self.url.as_deref() else {
            bail!(
                "no store: pass --store DIR or --store s3://BUCKET/PREFIX (or set REWIND_STORE), or read manifests with --from-dir"
            );
        };
        let identities = match &self.identity {
            Some(path) => vec![read_identity(path)?],
            None => Vec::new(),
        };
        StoreSource::open_url(url, self.endpoint.as_deref(), &identities)
            .await
            .map(|s| s.with_lineage(self.lineage.clone()))
            .with_context(|| format!("opening the store {url}"))
    }

    /// The folded state at `point`, with a warning line for every damaged
    /// snapshot skipped.
    pub async fn load(&self, point: &Point) -> Result<PitState> {
        let src = self.open().await?;
        let pit = src
            .load(point)
            .await
            .with_context(|| format!("reading the state at {point} from the store"))?;
        for f in &pit.fallbacks {
            eprintln!(
                "warning: snapshot {} is damaged ({}); using an earlier snapshot plus segments instead",
                f.snapshot, f.reason
            );
        }
        Ok(pit)
    }

    /// The desired state at `point` (see [`StoreArgs::load`]).
    pub async fn desired_at(&self, point: &Point) -> Result<DesiredState> {
        let pit = self.load(point).await?;
        Ok(rewind_history::from_format::desired_from_format(
            &pit.state,
        )?)
    }

    /// The desired state at `point` and the files it was read from.
    pub async fn desired_and_files_at(&self, point: &Point) -> Result<(DesiredState, Files)> {
        let pit = self.load(point).await?;
        let files = Files {
            base: pit.base.clone(),
            seq: pit.state.seq,
        };
        let state = rewind_history::from_format::desired_from_format(&pit.state)?;
        Ok((state, files))
    }

    /// The resource set recorded with the newest of `files` (see
    /// `rewind_restore::scope`), with the file's id; `None` when it has none.
    pub async fn recorded_scope(&self, files: &Files) -> Result<Option<(String, ResourceSet)>> {
        let src = self.open().await?;
        let snapshots = src.store().list_snapshots().await?;
        let segments = src.store().list_segments().await?;
        let file = scope::recorded_set(&snapshots, &segments, files.base.as_deref(), files.seq)
            .map(|(file, _)| file.to_owned());
        let set = scope::recorded_scope(&snapshots, &segments, files.base.as_deref(), files.seq)?;
        Ok(file.zip(set))
    }
}
