//! The store the global flags name (`--store`, `--identity`,
//! `--s3-endpoint`), for every command that reads history.
//!
//! The flags are recorded once at start ([`init`]) so that the state
//! loaders shared with restore/export/drill/diff need no new parameters.

use std::path::PathBuf;
use std::sync::OnceLock;

use anyhow::{Context, Result, bail};
use rewind_history::pit::{PitState, StoreSource, read_identity};
use rewind_history::select::ResourceSet;
use rewind_history::{DesiredState, Point};
use rewind_restore::scope;

use super::args::Cli;

/// What the global flags say about the store.
#[derive(Debug, Clone, Default)]
struct StoreFlags {
    /// `--store`: a directory or `s3://bucket/prefix`.
    url: Option<String>,
    /// `--identity`: age identity file for encrypted stores.
    identity: Option<PathBuf>,
    /// `--s3-endpoint`: the S3 endpoint (None: AWS).
    endpoint: Option<String>,
}

static FLAGS: OnceLock<StoreFlags> = OnceLock::new();

/// Records the global store flags; called once before the command runs.
pub fn init(cli: &Cli) {
    let _ = FLAGS.set(StoreFlags {
        url: cli.store.clone(),
        identity: cli.identity.clone(),
        endpoint: cli.s3_endpoint.clone(),
    });
}

/// Opens the store the flags name.
pub async fn open() -> Result<StoreSource> {
    let flags = FLAGS.get().cloned().unwrap_or_default();
    let Some(url) = flags.url.as_deref() else {
        bail!(
            "no store: pass --store DIR or --store s3://BUCKET/PREFIX (or set REWIND_STORE), or read manifests with --from-dir"
        );
    };
    let identities = match &flags.identity {
        Some(path) => vec![read_identity(path)?],
        None => Vec::new(),
    };
    StoreSource::open_url(url, flags.endpoint.as_deref(), &identities)
        .await
        .with_context(|| format!("opening the store {url}"))
}

/// The state at `point`, with a warning line for every damaged snapshot
/// skipped.
pub async fn load(point: &Point) -> Result<PitState> {
    let src = open().await?;
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

/// The folded state at `point`, for callers that are not async (the state
/// loaders shared with show/restore/export/drill/diff). Runs on a thread of
/// its own with its own runtime, so it works inside or outside tokio.
pub fn folded_at(point: &Point) -> Result<PitState> {
    std::thread::scope(|s| {
        s.spawn(|| -> Result<PitState> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(load(point))
        })
        .join()
        .map_err(|_| anyhow::anyhow!("reading the store: thread panicked"))?
    })
}

/// The desired state at `point` (see [`folded_at`]).
pub fn desired_at(point: &Point) -> Result<DesiredState> {
    Ok(desired_and_files_at(point)?.0)
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

/// The desired state at `point` and the files it was read from.
pub fn desired_and_files_at(point: &Point) -> Result<(DesiredState, Files)> {
    let pit = folded_at(point)?;
    let files = Files {
        base: pit.base.clone(),
        seq: pit.state.seq,
    };
    let state = rewind_history::from_format::desired_from_format(&pit.state)?;
    Ok((state, files))
}

/// The resource set recorded with the newest of `files` (see
/// `rewind_restore::scope`), with the file's id; `None` when it has none.
pub async fn recorded_scope(files: &Files) -> Result<Option<(String, ResourceSet)>> {
    let src = open().await?;
    let snapshots = src.store().list_snapshots().await?;
    let segments = src.store().list_segments().await?;
    let file = scope::recorded_set(&snapshots, &segments, files.base.as_deref(), files.seq)
        .map(|(file, _)| file.to_owned());
    let set = scope::recorded_scope(&snapshots, &segments, files.base.as_deref(), files.seq)?;
    Ok(file.zip(set))
}
