//! Point-in-time reading of a store: the state at any recorded point, the
//! history of one object, and an offline check of every file.
//!
//! The state at a point is the newest snapshot at or before it plus the
//! segments after it, folded up to the point (`docs/FORMAT.md` §14):
//!
//! 1. [`plan`]: from the catalog alone, the candidate bases (newest first)
//!    and the chain of segments each needs, within one lineage and its
//!    ancestors up to their fork points; a gap, an overlap, a broken digest
//!    link or a point between a fork and the child's first snapshot is an
//!    error naming the files.
//! 2. The base is fetched (size and SHA-256 checked against the catalog),
//!    decrypted when needed, and decoded on every core. A base that fails
//!    is skipped for the next older one (or the empty state, when the
//!    segments reach back to seq 1), with a warning and a
//!    [`Fallback`] in the result: restoring from an older base plus more
//!    events gives the same state, only slower.
//! 3. [`fold`]: the segments' blocks decode on every core; each worker
//!    reduces its run of events to one change per object, and the changes
//!    merge in log order.
//!
//! Nothing here opens the daemon's journal: by the time a restore runs the
//! daemon may be dead.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use rewind_history::pit::StoreSource;
//! use rewind_history::Point;
//! let src = StoreSource::open_url("/var/lib/rewind/store", None, &[]).await?;
//! let pit = src.load(&Point::Seq(5000)).await?;
//! for f in &pit.fallbacks {
//!     eprintln!("warning: snapshot {} skipped: {}", f.snapshot, f.reason);
//! }
//! println!("{} objects at seq {}", pit.state.objects.len(), pit.state.seq);
//! # Ok(()) }
//! ```

pub mod fold;
#[cfg(test)]
mod fold_tests;
pub mod history;
pub mod plan;
mod reduce;
pub mod verify;

use std::path::Path;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use rewind_format::crypto::Identity;
use rewind_format::{FormatError, Limits, State};

use crate::from_format::{FromFormatError, desired_from_format};
use crate::source::{Point, SourceError, StateSource};
use crate::state::DesiredState;
use crate::store::{SegmentEntry, SnapshotEntry, Store, StoreConfig, StoreError};

pub use fold::Until;

/// Errors reading a point in time.
#[derive(Debug, thiserror::Error)]
pub enum PitError {
    /// The store failed (or a file does not match its catalog entry).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A file does not decode.
    #[error("{file}: {source}")]
    Format {
        /// Store key of the file.
        file: String,
        /// What is wrong, with the block.
        source: FormatError,
    },
    /// `snapshot:NAME` names no snapshot.
    #[error("no snapshot in the store matches {0:?} (see `rewind list`)")]
    UnknownSnapshot(String),
    /// Events are missing between two segments.
    #[error("gap in the segment chain: events {from}..={to} are missing from the store")]
    Gap {
        /// First missing seq.
        from: u64,
        /// Last missing seq.
        to: u64,
    },
    /// The point is before the oldest recorded state the store can rebuild.
    #[error(
        "{point} is before the recorded window (the oldest recorded point is {oldest}; see `rewind list`)"
    )]
    BeforeWindow {
        /// The requested point.
        point: String,
        /// The oldest point the store reaches.
        oldest: String,
    },
    /// The store holds no snapshot and no segment.
    #[error("the store holds no recorded history (no snapshot, no segment)")]
    EmptyStore,
    /// The point is after the newest recorded event.
    #[error("seq {requested} is after the recorded window (newest recorded seq is {newest})")]
    AfterWindow {
        /// Requested seq.
        requested: u64,
        /// Newest seq the store reaches.
        newest: u64,
    },
    /// The point lies after a lineage's fork point and before the child's
    /// first snapshot: what happened there was not recorded.
    #[error(
        "lineage {child} forked from lineage {parent} at seq {fork_seq}: the events after seq {fork_seq} are not recorded until the child's first snapshot ({first_snapshot}); pick a point up to the fork (in the parent) or from that snapshot on (see `rewind list`)"
    )]
    Fork {
        /// The parent lineage.
        parent: String,
        /// The parent's last seq the child continues from.
        fork_seq: u64,
        /// The child lineage.
        child: String,
        /// The child's first snapshot, or "none yet".
        first_snapshot: String,
    },
    /// The store's lineages or files do not form one history: a gap, an
    /// overlap, a duplicate, a broken digest link, a foreign file or two
    /// children of one fork point. Lists the files involved.
    #[error("the store does not hold one history: {reason}: {}; run `rewind verify` and see docs/MANUAL.md, \"Lineages\"", candidates.join(", "))]
    Lineage {
        /// What is wrong.
        reason: String,
        /// The files or lineages involved.
        candidates: Vec<String>,
    },
    /// No snapshot is usable and the segments do not reach back to seq 1.
    #[error("no usable base for {point}: {reason}")]
    NoBase {
        /// The requested point.
        point: String,
        /// Why each candidate failed.
        reason: String,
    },
    /// An identity file could not be read or parsed.
    #[error("identity file {path}: {reason}")]
    Identity {
        /// The file.
        path: String,
        /// What was wrong.
        reason: String,
    },
    /// A decoding thread panicked (a bug, never outside data).
    #[error("a decoding thread failed")]
    Worker,
    /// The folded state does not convert to a desired state.
    #[error(transparent)]
    Convert(#[from] FromFormatError),
}

/// Result alias for this module.
pub type Result<T, E = PitError> = std::result::Result<T, E>;

/// A snapshot that could not serve as the base, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Fallback {
    /// Its catalog id.
    pub snapshot: String,
    /// What was wrong with it.
    pub reason: String,
}

/// The state at a point, and how it was built.
#[derive(Debug, Clone)]
pub struct PitState {
    /// The folded state.
    pub state: State,
    /// Id of the snapshot used as base; `None` when folded from empty.
    pub base: Option<String>,
    /// Snapshots skipped because they were damaged, newest first.
    pub fallbacks: Vec<Fallback>,
    /// Segments read.
    pub segments: usize,
    /// Events applied on top of the base.
    pub events: u64,
}

/// Reads states at points in time from a store. Implements [`StateSource`].
#[derive(Clone)]
pub struct StoreSource {
    /// The store.
    store: Store,
    /// Identities for encrypted files.
    identities: Vec<Identity>,
    /// Reader limits.
    limits: Limits,
    /// The lineage points are read in; `None`: the newest.
    lineage: Option<String>,
}

impl std::fmt::Debug for StoreSource {
    // Identities are secret keys: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreSource")
            .field("store", &self.store)
            .field("identities", &self.identities.len())
            .field("lineage", &self.lineage)
            .finish_non_exhaustive()
    }
}

/// Reads `age` identities (one `AGE-SECRET-KEY-1…` line, comments allowed)
/// from a file.
pub fn read_identity(path: &Path) -> Result<Identity> {
    let err = |reason: String| PitError::Identity {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    rewind_format::crypto::parse_identity(&text).map_err(|e| err(e.to_string()))
}

impl StoreSource {
    /// A source over an open store.
    #[must_use]
    pub fn new(store: Store, identities: Vec<Identity>) -> Self {
        Self {
            store,
            identities,
            limits: Limits::default(),
            lineage: None,
        }
    }

    /// Reads points in `lineage` (a full id, an unambiguous prefix of at
    /// least 8 digits, or `legacy`) and its ancestors instead of the
    /// lineage of the newest file.
    #[must_use]
    pub fn with_lineage(mut self, lineage: Option<String>) -> Self {
        self.lineage = lineage;
        self
    }

    /// The files points of the chosen lineage may use (see
    /// [`plan::view`]), after checking the store's lineages and every
    /// digest link among them. A named snapshot picks its own lineage when
    /// none is chosen.
    pub async fn view(&self, point: &Point) -> Result<plan::View> {
        let lineages = self.store.list_lineages().await?;
        let snapshots = self.store.list_snapshots().await?;
        let segments = self.store.list_segments().await?;
        if snapshots.is_empty() && segments.is_empty() {
            return Err(PitError::EmptyStore);
        }
        let mut choice = self.lineage.clone();
        if choice.is_none()
            && let Point::Snapshot(q) = point
            && let Some(named) = snapshots
                .iter()
                .rev()
                .find(|s| s.matches(q) || s.label.as_deref() == Some(q.as_str()))
        {
            choice = Some(
                named
                    .lineage
                    .clone()
                    .unwrap_or_else(|| crate::store::lineage::LEGACY.into()),
            );
        }
        let view = plan::view(&lineages, &snapshots, &segments, choice.as_deref())?;
        if let Some((reason, candidates)) = plan::broken_links(&view.segments).into_iter().next() {
            return Err(PitError::Lineage { reason, candidates });
        }
        tracing::debug!(path = ?view.path, snapshots = view.snapshots.len(), segments = view.segments.len(), "lineage view");
        Ok(view)
    }

    /// Opens the store a `--store` value names (see
    /// [`StoreConfig::from_url`]) for reading. A local store must already
    /// be a readable directory: a reader never creates one, so a mistyped
    /// path is an error naming it rather than an empty history.
    pub async fn open_url(
        url: &str,
        endpoint: Option<&str>,
        identities: &[Identity],
    ) -> Result<Self> {
        let config = StoreConfig::from_url(url, endpoint)?;
        if let StoreConfig::Local { path } = &config {
            let path = path.clone();
            blocking(move || readable_dir(&path).map_err(PitError::Store)).await?;
        }
        let store = Store::open(&config).await?;
        Ok(Self::new(store, identities.to_vec()))
    }

    /// The store.
    #[must_use]
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Identities for encrypted files.
    #[must_use]
    pub fn identities(&self) -> &[Identity] {
        &self.identities
    }

    /// The state at `point`.
    pub async fn load(&self, point: &Point) -> Result<PitState> {
        let view = self.view(point).await?;
        let (snapshots, segments) = (&view.snapshots, &view.segments);
        let (bases, until) = plan::bases(snapshots, point)?;
        let mut fallbacks = Vec::new();
        for entry in bases {
            match self.base(entry).await {
                Ok(state) => {
                    return self
                        .fold(state, Some(entry), fallbacks, segments, &view.forks, until)
                        .await;
                }
                Err(e) => {
                    tracing::warn!(snapshot = %entry.id, error = %e,
                        "snapshot is damaged; falling back to an earlier snapshot plus segments");
                    fallbacks.push(Fallback {
                        snapshot: entry.id.clone(),
                        reason: e.to_string(),
                    });
                }
            }
        }
        // No snapshot: the whole log, when the store still holds it.
        match self
            .fold(
                State::new(String::new()),
                None,
                fallbacks.clone(),
                segments,
                &view.forks,
                until,
            )
            .await
        {
            Ok(s) if s.events > 0 || fallbacks.is_empty() => Ok(s),
            Ok(_) => Err(no_base(point, &fallbacks, "and no events from seq 1")),
            Err(PitError::Gap { from: 1, to }) => Err(no_base(
                point,
                &fallbacks,
                &format!("and the segments start at seq {}", to.saturating_add(1)),
            )),
            Err(e) => Err(e),
        }
    }

    /// Fetches, decrypts and decodes one snapshot.
    async fn base(&self, entry: &SnapshotEntry) -> Result<State> {
        let bytes = self.store.get_snapshot(entry).await?;
        let key = entry.data_key();
        let (ids, limits) = (self.identities.clone(), self.limits);
        blocking(move || {
            let plain = open_plain(&bytes, &key, &ids, &limits)?;
            fold::decode_snapshot(&plain, &key, limits)
        })
        .await
    }

    async fn fold(
        &self,
        mut state: State,
        base: Option<&SnapshotEntry>,
        fallbacks: Vec<Fallback>,
        segments: &[SegmentEntry],
        forks: &[plan::ForkInfo],
        until: Until,
    ) -> Result<PitState> {
        let from = match base {
            Some(entry) => plan::Base::Snapshot {
                seq: state.seq,
                time_ms: state.time_ms,
                lineage: entry.lineage.clone(),
            },
            None => plan::Base::Empty,
        };
        let base = base.map(|e| e.id.clone());
        let chain = plan::chain(segments, forks, &from, until)?;
        let files: Vec<(SegmentEntry, u64, Bytes)> = futures::stream::iter(chain)
            .map(|(entry, from)| async move {
                let bytes = self.store.get_segment(&entry).await?;
                Ok::<_, PitError>((entry, from, bytes))
            })
            .buffered(8)
            .try_collect()
            .await?;
        let (ids, limits) = (self.identities.clone(), self.limits);
        let count = files.len();
        let (state, events) = blocking(move || {
            let mut plains = Vec::with_capacity(files.len());
            for (entry, from, bytes) in &files {
                let key = entry.data_key();
                let plain = open_plain(bytes, &key, &ids, &limits)?;
                plains.push((key, *from, plain));
            }
            let inputs: Vec<fold::SegmentInput<'_>> = plains
                .iter()
                .map(|(key, from, plain)| fold::SegmentInput {
                    name: key,
                    plain: plain.as_ref(),
                    from_seq: *from,
                })
                .collect();
            let events = fold::fold_segments(&mut state, &inputs, until, limits)?;
            Ok((state, events))
        })
        .await?;
        tracing::debug!(base = ?base, segments = count, events, seq = state.seq, "state folded");
        Ok(PitState {
            state,
            base,
            fallbacks,
            segments: count,
            events,
        })
    }
}

fn no_base(point: &Point, fallbacks: &[Fallback], tail: &str) -> PitError {
    let mut reason: Vec<String> = fallbacks
        .iter()
        .map(|f| format!("snapshot {} is damaged ({})", f.snapshot, f.reason))
        .collect();
    if reason.is_empty() {
        reason.push("no snapshot".into());
    }
    PitError::NoBase {
        point: point.to_string(),
        reason: format!("{} {tail}", reason.join("; ")),
    }
}

/// Plain bytes of a stored file: borrowed `Bytes` when clear, decrypted
/// when encrypted.
enum Plain {
    Clear(Bytes),
    Decrypted(Vec<u8>),
}

impl AsRef<[u8]> for Plain {
    fn as_ref(&self) -> &[u8] {
        match self {
            Self::Clear(b) => b,
            Self::Decrypted(v) => v,
        }
    }
}

impl std::ops::Deref for Plain {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_ref()
    }
}

fn open_plain(bytes: &Bytes, key: &str, ids: &[Identity], limits: &Limits) -> Result<Plain> {
    let fmt = |source: FormatError| PitError::Format {
        file: key.to_owned(),
        source,
    };
    if rewind_format::crypto::is_encrypted(bytes).map_err(fmt)? {
        if ids.is_empty() {
            return Err(fmt(FormatError::new(
                rewind_format::ErrorKind::EncryptedNeedsIdentity,
            )));
        }
        Ok(Plain::Decrypted(
            rewind_format::crypto::decrypt(bytes, ids, limits).map_err(fmt)?,
        ))
    } else {
        Ok(Plain::Clear(bytes.clone()))
    }
}

/// Checks that a local store's root exists, is a directory and can be
/// listed.
fn readable_dir(path: &std::path::Path) -> std::result::Result<(), StoreError> {
    let url_error = |reason: String| StoreError::Url {
        url: path.display().to_string(),
        reason,
    };
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => std::fs::read_dir(path)
            .map(|_| ())
            .map_err(|e| url_error(format!("cannot read the directory: {e}"))),
        Ok(_) => Err(url_error("not a directory".into())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(url_error(
            "no such directory (a store is read, never created, by `rewind`)".into(),
        )),
        Err(e) => Err(url_error(format!("cannot read: {e}"))),
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| PitError::Worker)?
}

impl StateSource for StoreSource {
    /// [`StoreSource::load`], with a warning logged for every damaged
    /// snapshot skipped, converted to a desired state.
    async fn state_at(&self, point: &Point) -> crate::source::Result<DesiredState> {
        let desired = async {
            let pit = self.load(point).await?;
            for f in &pit.fallbacks {
                tracing::warn!(snapshot = %f.snapshot, reason = %f.reason, "snapshot skipped");
            }
            blocking(move || Ok(desired_from_format(&pit.state)?)).await
        };
        desired.await.map_err(|e| SourceError::Unsupported {
            source_name: format!("store ({})", self.store.kind()),
            point: point.to_string(),
            reason: e.to_string(),
        })
    }
}
