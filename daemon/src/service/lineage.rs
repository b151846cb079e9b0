//! Which lineage this recorder writes, decided at start before anything is
//! watched, by comparing the journal with the store
//! (`rewind_history::store::lineage`, `docs/MANUAL.md`, "Lineages"):
//!
//! - the journal's lineage is in the store, no other lineage took over
//!   from it, and the journal is at or past the lineage's newest stored
//!   seq → **continue**;
//! - a journal from before lineages, over a store holding only entries
//!   without a lineage that it is not behind → **adopt**: a new lineage
//!   that continues that history from the last shipped seq (its first
//!   segment names the last stored one), the journal kept;
//! - anything else (a new or wiped journal over a non-empty store, a
//!   journal behind the store, on a lineage the store does not know, or
//!   one another recorder took over from) → a **child** lineage of the
//!   lineage of the store's newest file, forked at that file's seq: the
//!   journal and the compactor's files are moved aside (kept, never
//!   deleted), a new journal starts at `fork_seq + 1` (no sequence number
//!   is used twice), and the child ships a full snapshot before anything
//!   else. Over an empty store, a **root** lineage from seq 1.
//!
//! With a leader Lease (`[leader]`) the decision waits until this recorder
//! holds it. A standby's journal (recorded without a lineage) then becomes
//! the child lineage itself, its numbers shifted past the fork point, and
//! the child's first snapshot is cut at or before the parent's newest
//! stored event ([`cut_point`]): the events the standby kept are shipped
//! and no time between the two histories goes unanswered. Before a
//! recorder records as a standby, a journal whose lineage another recorder
//! forked is moved aside ([`prepare_standby`]). Without a Lease, a child
//! of a lineage another recorder stored a file of within [`ACTIVE_WITHIN`]
//! is refused ([`refuse_if_active`]).
//!
//! A store whose lineages name another cluster is refused unless
//! `cluster.adopt_store` (`--adopt-store true`) is set, which makes a child
//! anyway.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::compact::Ledger;
use crate::config::Config;
use crate::daemon::Recorder;
use crate::status::LineageStatus;
use rewind_history::store::lineage::{self, LEGACY, LINEAGE_VERSION};
use rewind_history::store::{
    CreatedBy, ForkPoint, LineageRecord, SegmentEntry, SnapshotEntry, Store, StoreError,
};

/// Errors deciding or setting up the lineage.
#[derive(Debug, thiserror::Error)]
pub enum LineageError {
    /// The store could not be read or written.
    #[error("lineage check: {0}")]
    Store(#[from] StoreError),
    /// The journal could not be read or given its lineage.
    #[error("lineage check: {0}")]
    Journal(#[from] crate::journal::Error),
    /// The store holds another cluster's history.
    #[error(
        "the store holds the history of cluster {theirs} (lineages {lineages}), but this recorder records cluster {ours}: two clusters must not share a store prefix. Point [store] at another prefix, or, if this really is the same cluster rebuilt, set cluster.adopt_store = true (or --adopt-store true) to continue the store in a new child lineage"
    )]
    ForeignCluster {
        /// This recorder's cluster id.
        ours: String,
        /// The store's other cluster ids.
        theirs: String,
        /// Their lineages.
        lineages: String,
    },
    /// The recorder could not be reopened on the new journal.
    #[error(transparent)]
    Recorder(#[from] crate::daemon::Error),
    /// The compactor's progress could not be read or set.
    #[error("lineage check: {0}")]
    Compact(#[from] crate::compact::CompactError),
    /// Another recorder ships into this store prefix and this one has no
    /// Lease to coordinate with it.
    #[error(
        "another recorder ships into this store: lineage {lineage} (created by host {host}, data dir {data_dir}) stored a file {ago_s} s ago, and this recorder's journal does not continue it. Two recorders on one prefix need a [leader] lease on both; otherwise give this one another prefix (or stop the other and wait {} s)",
        ACTIVE_WITHIN.as_secs()
    )]
    AnotherRecorder {
        /// The lineage the other recorder ships.
        lineage: String,
        /// Its creator's host.
        host: String,
        /// Its creator's data directory.
        data_dir: String,
        /// Seconds since it last stored a file.
        ago_s: i64,
    },
    /// Moving the old journal or local files aside failed.
    #[error("cannot move {} aside to {}: {source}", from.display(), to.display())]
    Aside {
        /// What was moved.
        from: PathBuf,
        /// Where to.
        to: PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
}

/// What the journal says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalView {
    /// Its lineage, if it has one.
    pub lineage: Option<String>,
    /// The seq its next event gets.
    pub next_seq: u64,
    /// Whether it never recorded anything.
    pub is_new: bool,
    /// The compactor's `shipped_upto`.
    pub shipped_upto: u64,
    /// Whether the recorder runs with a leader Lease: a journal without a
    /// lineage was then kept by a standby that now takes over.
    pub leased: bool,
}

/// What the store holds, by lineage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreView {
    /// Every lineage record.
    pub lineages: Vec<LineageRecord>,
    /// Newest seq of each lineage's files ([`LEGACY`] for entries without
    /// one).
    pub newest: BTreeMap<String, u64>,
    /// When each lineage last stored a file, Unix ms.
    pub stored_at: BTreeMap<String, i64>,
    /// The time of each lineage's newest recorded event in the store (of
    /// its file with the newest seq), Unix ms.
    pub newest_time: BTreeMap<String, i64>,
}

impl StoreView {
    /// Reads the store's lineages and the newest seq of each.
    pub async fn read(store: &Store) -> Result<Self, StoreError> {
        let lineages = store.list_lineages().await?;
        let segments = store.list_segments().await?;
        let snapshots = store.list_snapshots().await?;
        Ok(Self::of(lineages, &segments, &snapshots))
    }

    /// The view of listed records and entries.
    #[must_use]
    pub fn of(
        lineages: Vec<LineageRecord>,
        segments: &[SegmentEntry],
        snapshots: &[SnapshotEntry],
    ) -> Self {
        let mut newest: BTreeMap<String, u64> = BTreeMap::new();
        let mut stored_at: BTreeMap<String, i64> = BTreeMap::new();
        let mut newest_time: BTreeMap<String, i64> = BTreeMap::new();
        let files = segments
            .iter()
            .map(|s| {
                (
                    s.lineage.as_deref(),
                    s.last_seq,
                    s.stored_at_ms,
                    s.last_time_ms,
                )
            })
            .chain(
                snapshots
                    .iter()
                    .map(|s| (s.lineage.as_deref(), s.seq, s.stored_at_ms, s.time_ms)),
            );
        for (l, seq, at, time) in files {
            let l = l.unwrap_or(LEGACY).to_owned();
            let t = stored_at.entry(l.clone()).or_insert(at);
            *t = (*t).max(at);
            let e = newest.entry(l.clone()).or_default();
            if seq >= *e {
                let nt = newest_time.entry(l).or_insert(time);
                *nt = if seq > *e { time } else { (*nt).max(time) };
                *e = seq;
            }
        }
        Self {
            lineages,
            newest,
            stored_at,
            newest_time,
        }
    }

    /// The lineage of the newest file and its seq.
    fn newest(&self) -> Option<(&str, u64)> {
        self.newest
            .iter()
            .max_by_key(|(_, seq)| **seq)
            .map(|(l, s)| (l.as_str(), *s))
    }
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Go on recording the journal's lineage.
    Continue {
        /// The lineage.
        lineage: String,
    },
    /// Keep the journal and record it under a new lineage that continues
    /// the store's entries without a lineage.
    Adopt {
        /// The new lineage.
        record: LineageRecord,
    },
    /// Start a new journal as a new lineage (a child, or a root over an
    /// empty store).
    Fresh {
        /// The new lineage.
        record: LineageRecord,
        /// Why, for the log and the status.
        why: String,
    },
}

/// Decides from the journal and the store; `cluster_uid` is this
/// recorder's cluster, `adopt` the `cluster.adopt_store` setting.
pub fn decide(
    journal: &JournalView,
    store: &StoreView,
    cluster_uid: &str,
    adopt: bool,
    created_by: CreatedBy,
) -> Result<Decision, LineageError> {
    // Another cluster's lineages, but for the ancestors of ours (a store
    // adopted after a rebuild continues the old cluster's history).
    let mut ancestors = std::collections::BTreeSet::new();
    for l in store
        .lineages
        .iter()
        .filter(|l| l.cluster_uid == cluster_uid)
    {
        let mut at = l.parent.as_ref();
        while let Some(p) = at
            && ancestors.insert(p.lineage.clone())
        {
            at = store
                .lineages
                .iter()
                .find(|r| r.id == p.lineage)
                .and_then(|r| r.parent.as_ref());
        }
    }
    let foreign: Vec<&LineageRecord> = store
        .lineages
        .iter()
        .filter(|l| l.cluster_uid != cluster_uid && !ancestors.contains(&l.id))
        .collect();
    if !foreign.is_empty() && !adopt {
        let mut theirs: Vec<&str> = foreign.iter().map(|l| l.cluster_uid.as_str()).collect();
        theirs.dedup();
        return Err(LineageError::ForeignCluster {
            ours: cluster_uid.to_owned(),
            theirs: theirs.join(", "),
            lineages: foreign
                .iter()
                .map(|l| l.id.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    let last = journal.next_seq.saturating_sub(1);
    let record =
        |parent: Option<ForkPoint>, first_seq: u64| -> Result<LineageRecord, LineageError> {
            Ok(LineageRecord {
                version: LINEAGE_VERSION,
                id: lineage::new_id()?,
                parent,
                cluster_uid: cluster_uid.to_owned(),
                created_by: created_by.clone(),
                created_at_ms: rewind_history::now_ms(),
                first_seq,
            })
        };
    let fresh = |why: String| -> Result<Decision, LineageError> {
        let (parent, first) = match store.newest() {
            Some((l, seq)) => (
                Some(ForkPoint {
                    lineage: l.to_owned(),
                    fork_seq: seq,
                }),
                seq.saturating_add(1),
            ),
            None => (None, 1),
        };
        Ok(Decision::Fresh {
            record: record(parent, first)?,
            why,
        })
    };
    if !foreign.is_empty() {
        return fresh(format!(
            "adopting a store recorded as cluster {}",
            foreign.first().map_or("", |l| l.cluster_uid.as_str())
        ));
    }
    match &journal.lineage {
        Some(l) => {
            if !store.lineages.iter().any(|r| &r.id == l) {
                return fresh(format!("the journal's lineage {l} is not in the store"));
            }
            if let Some(child) = store.lineages.iter().find(|r| {
                r.parent.as_ref().is_some_and(|p| &p.lineage == l)
                    && store.newest.contains_key(&r.id)
            }) {
                return fresh(format!(
                    "lineage {} took over from the journal's lineage {l}",
                    child.id
                ));
            }
            let pos = store.newest.get(l).copied().unwrap_or(0);
            if last >= pos {
                Ok(Decision::Continue { lineage: l.clone() })
            } else {
                fresh(format!(
                    "the journal ends at seq {last}, behind the store's seq {pos} of lineage {l}"
                ))
            }
        }
        None if journal.is_new => {
            if store.newest.is_empty() {
                fresh("a new journal and an empty store".into())
            } else {
                fresh("a new (or wiped) journal over a store that holds history".into())
            }
        }
        None if journal.leased => fresh(
            "taking over as the holder of the leader Lease: the journal this recorder kept as a standby does not continue the store".into(),
        ),
        None => {
            let legacy = store.newest.get(LEGACY).copied();
            let only_legacy = store.lineages.is_empty() && store.newest.len() <= 1;
            match legacy {
                Some(pos) if only_legacy && last >= pos => Ok(Decision::Adopt {
                    record: record(
                        Some(ForkPoint {
                            lineage: LEGACY.into(),
                            fork_seq: journal.shipped_upto,
                        }),
                        journal.shipped_upto.saturating_add(1),
                    )?,
                }),
                None if store.newest.is_empty() && journal.shipped_upto == 0 => {
                    Ok(Decision::Adopt {
                        record: record(None, 1)?,
                    })
                }
                _ => fresh(format!(
                    "a journal from before lineages (at seq {last}) that does not continue the store"
                )),
            }
        }
    }
}

/// How recently a lineage must have stored a file for a recorder without
/// a Lease to count it as shipped by a running recorder.
pub const ACTIVE_WITHIN: Duration = Duration::from_secs(120);

/// Refuses a child of `parent` when another recorder (another host or data
/// directory than `ours`) stored a file of it within [`ACTIVE_WITHIN`]:
/// without a Lease, two recorders on one prefix would fork it silently.
pub fn refuse_if_active(
    view: &StoreView,
    parent: &str,
    ours: &CreatedBy,
) -> Result<(), LineageError> {
    let Some(at) = view.stored_at.get(parent).copied() else {
        return Ok(());
    };
    let age_ms = rewind_history::now_ms().saturating_sub(at);
    let window = i64::try_from(ACTIVE_WITHIN.as_millis()).unwrap_or(i64::MAX);
    if age_ms >= window {
        return Ok(());
    }
    let by = view
        .lineages
        .iter()
        .find(|l| l.id == parent)
        .map(|l| l.created_by.clone())
        .unwrap_or_default();
    if by.host == ours.host && by.data_dir == ours.data_dir {
        return Ok(());
    }
    Err(LineageError::AnotherRecorder {
        lineage: parent.to_owned(),
        host: by.host,
        data_dir: by.data_dir,
        ago_s: age_ms / 1000,
    })
}

/// Who this recorder is, for a new lineage's record.
#[must_use]
pub fn created_by(data_dir: &Path) -> CreatedBy {
    CreatedBy {
        host: lineage::host_name(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        data_dir: data_dir.display().to_string(),
    }
}

/// The status file's account of a decision about lineage `id`.
#[must_use]
pub fn status_of(decision: &Decision, parent: Option<&ForkPoint>, id: &str) -> LineageStatus {
    let (kind, reason) = match decision {
        Decision::Continue { .. } => ("continue", None),
        Decision::Adopt { .. } => ("adopt", None),
        Decision::Fresh { why, .. } => ("fresh", Some(why.clone())),
    };
    LineageStatus {
        id: id.to_owned(),
        parent: parent.map(|p| p.lineage.clone()),
        fork_seq: parent.map(|p| p.fork_seq),
        decision: kind.into(),
        reason,
    }
}

/// Moves `path` (if it exists) into `aside`, keeping its name.
pub fn move_aside(path: &Path, aside: &Path) -> Result<(), LineageError> {
    if !path.exists() {
        return Ok(());
    }
    let to = aside.join(path.file_name().unwrap_or_default());
    let err = |source| LineageError::Aside {
        from: path.to_owned(),
        to: to.clone(),
        source,
    };
    std::fs::create_dir_all(aside).map_err(err)?;
    std::fs::rename(path, &to).map_err(err)?;
    tracing::warn!(from = %path.display(), to = %to.display(), "moved aside for a new lineage (kept; delete it once the new lineage is verified)");
    Ok(())
}

/// The lineage the recorder was set up to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Established {
    /// Its id.
    pub id: String,
    /// Where it forked, if it did.
    pub parent: Option<ForkPoint>,
    /// Whether it starts fresh (a new journal at `parent.fork_seq + 1`,
    /// a snapshot first).
    pub fresh: bool,
    /// For the status file.
    pub status: LineageStatus,
    /// For a standby's journal that became a child lineage: the seq (in
    /// the lineage's numbers) of its first snapshot, the last point at or
    /// before the parent's newest stored event at which the standby's
    /// state was whole ([`cut_point`]). Sealed and snapshotted there
    /// before anything else, and nothing before it is shipped.
    pub first_snapshot: Option<u64>,
    /// For a standby's journal that became a child lineage and had been
    /// bounded by its window ([`super::bounded`]): the standby's directory
    /// (moved aside) whose base snapshot the first snapshot is folded
    /// from, and the seq offset between the journal's numbers and the
    /// lineage's.
    pub standby_base: Option<(PathBuf, u64)>,
}

/// Decides the lineage for `recorder` (open, not yet running) against
/// `store`, writes a new lineage's record before anything else of it, and
/// sets the journal up: continued, adopted, or replaced by a new one
/// (the old one moved aside). Returns the recorder to run.
pub async fn establish(
    config: &Config,
    cluster_uid: &str,
    store: &Store,
    mut recorder: Recorder,
) -> Result<(Recorder, Established), LineageError> {
    let compact_dir = config.data_dir.join("compact");
    let progress = read_progress(&compact_dir);
    let (lineage, next_seq, is_new) = recorder.journal_lineage()?;
    let journal = JournalView {
        lineage,
        next_seq,
        is_new,
        shipped_upto: progress.as_ref().map_or(0, |p| p.shipped_upto),
        leased: config.leader.is_some(),
    };
    let view = match StoreView::read(store).await {
        Ok(v) => v,
        Err(e) => match &journal.lineage {
            // Recording must not wait for the store: a journal that has a
            // lineage goes on; shipping checks names as it writes.
            Some(l) => {
                tracing::warn!(error = %e, lineage = %l, "cannot read the store's lineages; continuing the journal's lineage unchecked");
                let decision = Decision::Continue { lineage: l.clone() };
                let status = status_of(&decision, None, l);
                return Ok((
                    recorder,
                    Established {
                        id: l.clone(),
                        parent: None,
                        fresh: false,
                        status,
                        first_snapshot: None,
                        standby_base: None,
                    },
                ));
            }
            None => return Err(e.into()),
        },
    };
    let decision = decide(
        &journal,
        &view,
        cluster_uid,
        config.adopt_store,
        created_by(&config.data_dir),
    )?;
    let established = match &decision {
        Decision::Continue { lineage } => {
            let parent = view
                .lineages
                .iter()
                .find(|r| &r.id == lineage)
                .and_then(|r| r.parent.clone());
            tracing::info!(lineage = %lineage, next_seq, "continuing the journal's lineage");
            Established {
                id: lineage.clone(),
                status: status_of(&decision, parent.as_ref(), lineage),
                parent,
                fresh: false,
                first_snapshot: None,
                standby_base: None,
            }
        }
        Decision::Adopt { record } => {
            store.put_lineage(record).await?;
            recorder.set_lineage(&record.id)?;
            tracing::info!(lineage = %record.id, parent = ?record.parent, "a journal from before lineages continues the store as a new lineage");
            Established {
                id: record.id.clone(),
                status: status_of(&decision, record.parent.as_ref(), &record.id),
                parent: record.parent.clone(),
                fresh: false,
                first_snapshot: None,
                standby_base: None,
            }
        }
        Decision::Fresh { record, why } => {
            if config.leader.is_none()
                && let Some(p) = &record.parent
            {
                refuse_if_active(&view, &p.lineage, &record.created_by)?;
            }
            store.put_lineage(record).await?;
            let aside = config
                .data_dir
                .join(format!("aside-{}", rewind_history::now_ms()));
            if journal.leased && journal.lineage.is_none() && !is_new {
                return take_standby_journal(
                    config,
                    &view,
                    record,
                    why,
                    recorder,
                    progress.is_some(),
                    &aside,
                )
                .await;
            }
            if !is_new {
                drop(recorder);
                move_aside(&config.journal_dir(), &aside)?;
                move_standby_aside(&config.data_dir, &aside)?;
                recorder = reopen(config).await?;
            }
            if progress.is_some() {
                move_aside(&compact_dir, &aside)?;
            }
            recorder.begin_lineage(&record.id, record.first_seq)?;
            tracing::warn!(
                lineage = %record.id,
                parent = ?record.parent.as_ref().map(|p| &p.lineage),
                fork_seq = ?record.parent.as_ref().map(|p| p.fork_seq),
                first_seq = record.first_seq,
                reason = %why,
                "starting a new lineage: the journal does not continue the store"
            );
            Established {
                id: record.id.clone(),
                status: status_of(&decision, record.parent.as_ref(), &record.id),
                parent: record.parent.clone(),
                fresh: true,
                first_snapshot: None,
                standby_base: None,
            }
        }
    };
    recorder
        .board()
        .update(|s| s.lineage = Some(established.status.clone()));
    Ok((recorder, established))
}

/// A takeover by a standby: its journal (recorded without a lineage, from
/// seq 1, trimmed to its window below its base snapshot, see
/// [`super::bounded`]) becomes the child lineage `record`'s, numbered
/// from the fork point on (the journal's seq `s` is the lineage's
/// `s + fork_seq`), so the events it kept are shipped. The child's first
/// snapshot is cut at the last point at or before the parent's newest
/// stored event at which the standby's state was whole ([`cut_point`]),
/// so every point after the parent's last event is answered by the child.
async fn take_standby_journal(
    config: &Config,
    view: &StoreView,
    record: &LineageRecord,
    why: &str,
    mut recorder: Recorder,
    has_progress: bool,
    aside: &Path,
) -> Result<(Recorder, Established), LineageError> {
    let offset = record.first_seq.saturating_sub(1);
    let t0 = record
        .parent
        .as_ref()
        .and_then(|p| view.newest_time.get(&p.lineage).copied());
    // A standby bounded by its window cuts from its base snapshot: the
    // journal before it may be trimmed.
    let standby = super::bounded::standby_dir(&config.data_dir);
    let base = super::bounded::base_in(&standby)?
        .map(|(b, _)| (b.seq, b.time_ms))
        .filter(|&(seq, _)| seq < recorder.journal_lineage().map_or(0, |(_, n, _)| n));
    let cut = match t0 {
        Some(t0) => {
            let log = recorder.log_reader();
            tokio::task::spawn_blocking(move || cut_in_journal(&log, t0, base))
                .await
                .map_err(|e| {
                    LineageError::Journal(crate::journal::Error::Corrupt(format!(
                        "reading the standby's journal failed: {e}"
                    )))
                })??
        }
        None => None,
    };
    if has_progress {
        move_aside(&config.data_dir.join("compact"), aside)?;
    }
    let standby_base = if base.is_some() {
        move_aside(&standby, aside)?;
        Some((aside.join("standby"), offset))
    } else {
        move_standby_aside(&config.data_dir, aside)?;
        None
    };
    recorder.take_lineage_at(&record.id, offset)?;
    let first_snapshot = cut.map(|k| k.saturating_add(offset));
    tracing::warn!(
        lineage = %record.id,
        parent = ?record.parent.as_ref().map(|p| &p.lineage),
        fork_seq = ?record.parent.as_ref().map(|p| p.fork_seq),
        first_seq = record.first_seq,
        parent_newest_event_ms = ?t0,
        first_snapshot = ?first_snapshot,
        reason = %why,
        "taking over: the standby's journal becomes a child lineage, its first snapshot at or before the parent's newest stored event"
    );
    let decision = Decision::Fresh {
        record: record.clone(),
        why: why.to_owned(),
    };
    let established = Established {
        id: record.id.clone(),
        status: status_of(&decision, record.parent.as_ref(), &record.id),
        parent: record.parent.clone(),
        fresh: true,
        first_snapshot,
        standby_base,
    };
    recorder
        .board()
        .update(|s| s.lineage = Some(established.status.clone()));
    Ok((recorder, established))
}

/// Seals a taken-over standby journal up to `cut` (the lineage's seq),
/// folds the child's first snapshot there, and marks everything up to it
/// as needing no shipping: the snapshot stands for it. Blocking.
pub fn snapshot_at_cut(
    compactor: &crate::compact::Compactor,
    cut: u64,
    set: rewind_history::store::layout::RecordedResourceSet,
    standby_base: Option<&(PathBuf, u64)>,
) -> Result<(), LineageError> {
    compactor.ledger().update(|p| {
        p.set_from(p.sealed_upto.saturating_add(1), set);
    })?;
    let imported = match standby_base {
        Some((dir, offset)) => import_base(compactor, dir, *offset)?,
        None => None,
    };
    compactor.sealer().seal_through(cut)?;
    let sealed = compactor.ledger().progress().sealed_upto;
    if sealed != cut {
        tracing::warn!(
            cut,
            sealed,
            "the standby's journal ends before the cut; the first snapshot follows the first seal"
        );
        return Ok(());
    }
    let snap = compactor.snapshotter().snapshot(None)?;
    compactor.ledger().update(|p| p.shipped_upto = cut)?;
    if let Some(base) = imported.filter(|b| b.key() != snap.key()) {
        // Only the snapshot at the cut starts the child: the base it was
        // folded from is never shipped.
        compactor
            .ledger()
            .update(|p| p.snapshots.retain(|s| s.key() != base.key()))?;
        compactor.ledger().files().delete(&base.key())?;
    }
    tracing::info!(
        seq = snap.seq,
        time_ms = snap.time_ms,
        objects = snap.objects,
        "the child lineage's first snapshot, at the cut"
    );
    Ok(())
}

/// Makes a standby's base snapshot (in `dir`, in the journal's numbers) the
/// compactor's base in the lineage's (`offset` added): the same objects,
/// its header at `seq + offset`, and sealed up to there. Returns it, or
/// `None` when `dir` holds no base. Blocking.
fn import_base(
    compactor: &crate::compact::Compactor,
    dir: &Path,
    offset: u64,
) -> Result<Option<crate::compact::local::LocalSnapshot>, LineageError> {
    use crate::compact::fold;
    let Some((base, bytes)) = super::bounded::base_in(dir)? else {
        return Ok(None);
    };
    let reader = rewind_format::SnapshotReader::open(
        &bytes,
        Some("standby base snapshot"),
        rewind_format::Limits::default(),
    )
    .map_err(crate::compact::CompactError::from)?;
    let mut header = reader.header().clone();
    header.seq = header.seq.saturating_add(offset);
    let delta = fold::Delta::new(Some(&header));
    let key = crate::compact::local::snapshot_key(header.seq, None);
    let level = compactor.settings().zstd_level;
    let mut folded = None;
    compactor.ledger().files().put_with(&key, |w| {
        let (f, counted) = fold::fold(
            Some(&bytes),
            &[],
            &delta,
            &header.cluster_id,
            &rewind_format::WriteOptions::snapshot(level),
            crate::compact::local::Counting::new(w),
        )?;
        folded = Some((f, counted.count()));
        Ok(counted.into_inner())
    })?;
    let Some((f, size)) = folded else {
        return Ok(None);
    };
    let snap = crate::compact::local::LocalSnapshot {
        seq: f.seq,
        time_ms: f.time_ms,
        objects: f.objects,
        size,
        label: None,
        stored_id: None,
    };
    compactor.ledger().update(|p| {
        p.sealed_upto = snap.seq;
        p.snapshots.retain(|s| s.key() != snap.key());
        p.snapshots.push(snap.clone());
    })?;
    tracing::info!(
        standby_seq = base.seq,
        seq = snap.seq,
        time_ms = snap.time_ms,
        objects = snap.objects,
        "the standby's base snapshot is the first snapshot's fold base"
    );
    Ok(Some(snap))
}

/// Moves a standby's directory ([`super::bounded::standby_dir`]) aside
/// with the journal it belongs to, if there is one.
fn move_standby_aside(data_dir: &Path, aside: &Path) -> Result<(), LineageError> {
    let dir = super::bounded::standby_dir(data_dir);
    if dir.exists() {
        move_aside(&dir, aside)?;
    }
    Ok(())
}

/// Before a recorder with a Lease records as a standby: a journal whose
/// lineage another recorder has since forked (this one was the leader and
/// was deposed, or stopped and replaced) cannot be continued; it and the
/// local files are moved aside, and the standby records into a new
/// journal without a lineage, which a takeover can make a child lineage
/// of the store's newest whole. A journal the store has not moved past is
/// kept: taking the Lease again continues it.
pub async fn prepare_standby(
    config: &Config,
    store: &Store,
    recorder: Recorder,
) -> Result<Recorder, LineageError> {
    let (lineage, _, _) = recorder.journal_lineage()?;
    let Some(l) = lineage else {
        return Ok(recorder);
    };
    let lineages = match store.list_lineages().await {
        Ok(ls) => ls,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the store's lineages; the standby keeps its journal");
            return Ok(recorder);
        }
    };
    let Some(child) = lineages
        .iter()
        .find(|r| r.parent.as_ref().is_some_and(|p| p.lineage == l))
    else {
        return Ok(recorder);
    };
    let aside = config
        .data_dir
        .join(format!("aside-{}", rewind_history::now_ms()));
    tracing::warn!(lineage = %l, child = %child.id, "another recorder took over from this journal's lineage: the standby starts a new journal");
    drop(recorder);
    move_aside(&config.journal_dir(), &aside)?;
    move_aside(&config.data_dir.join("compact"), &aside)?;
    move_standby_aside(&config.data_dir, &aside)?;
    reopen(config).await
}

/// [`cut_point`] over the journal `log`, read in order: from seq 1, or,
/// when the standby folded a base snapshot (`base`: its seq and time, see
/// [`super::bounded`]), from just after it, the base counting as a point
/// where the state was whole (the journal before it may be trimmed).
fn cut_in_journal(
    log: &dyn crate::compact::EventLog,
    t0: i64,
    base: Option<(u64, i64)>,
) -> Result<Option<u64>, crate::journal::Error> {
    let mut cut = Cut::default();
    let mut next = 1;
    if let Some((seq, time_ms)) = base {
        cut.listed = true;
        cut.first_whole = Some(seq);
        cut.best = (time_ms <= t0).then_some(seq);
        next = seq.saturating_add(1);
    }
    walk(log, next, &mut cut, t0)?;
    Ok(cut.point())
}

/// The last seq of the journal `log` (read from seq 1) observed at or
/// before `t` at which the state was whole (see [`cut_point`]); `None`
/// when there is none yet.
pub(crate) fn last_whole_before(
    log: &dyn crate::compact::EventLog,
    t: i64,
) -> Result<Option<u64>, crate::journal::Error> {
    let mut cut = Cut::default();
    walk(log, 1, &mut cut, t)?;
    Ok(cut.best)
}

/// Feeds `cut` the events of `log` from `next` on until it needs no more.
fn walk(
    log: &dyn crate::compact::EventLog,
    mut next: u64,
    cut: &mut Cut,
    t0: i64,
) -> Result<(), crate::journal::Error> {
    loop {
        let events = log.read_from(next, 1 << 20)?;
        let Some(last) = events.last().map(|e| e.seq) else {
            return Ok(());
        };
        for e in &events {
            if !cut.push(e, t0) {
                return Ok(());
            }
        }
        next = last.saturating_add(1);
    }
}

/// Where a standby's journal is cut for its first snapshot; see
/// [`cut_point`].
#[derive(Debug, Default)]
struct Cut {
    /// Types in the middle of a list.
    listing: std::collections::BTreeSet<(String, String)>,
    /// Whether any list completed.
    listed: bool,
    /// The first seq at which the state was whole.
    first_whole: Option<u64>,
    /// The last seq at or before `t0` at which it was whole.
    best: Option<u64>,
}

impl Cut {
    /// Takes one event; returns whether later events may still matter.
    fn push(&mut self, e: &rewind_format::EventRecord, t0: i64) -> bool {
        let key = (e.rtype.group.clone(), e.rtype.resource.clone());
        match &e.kind {
            rewind_format::EventKind::ResyncBegin { .. } => {
                self.listing.insert(key);
            }
            rewind_format::EventKind::ResyncEnd { .. } => {
                self.listing.remove(&key);
                self.listed = true;
            }
            _ => {}
        }
        let whole = self.listed && self.listing.is_empty();
        if whole {
            self.first_whole.get_or_insert(e.seq);
            if e.observed_at_ms <= t0 {
                self.best = Some(e.seq);
            }
        }
        !(e.observed_at_ms > t0 && self.first_whole.is_some())
    }

    fn point(&self) -> Option<u64> {
        self.best.or(self.first_whole)
    }
}

/// The seq of a standby's journal (`events`, in seq order from its first)
/// at which a child lineage's first snapshot is cut: the last event
/// observed at or before `t0` (the parent's newest stored event) at which
/// the standby's state was whole (a list completed, and no type in the
/// middle of one); when its first list completed only after `t0`, the end
/// of that list (the points in between are refused, not guessed). `None`
/// when no list ever completed.
#[must_use]
pub fn cut_point<'a>(
    events: impl IntoIterator<Item = &'a rewind_format::EventRecord>,
    t0: i64,
) -> Option<u64> {
    let mut cut = Cut::default();
    for e in events {
        if !cut.push(e, t0) {
            break;
        }
    }
    cut.point()
}

/// Points the compactor's progress at the lineage: a fresh one starts at
/// its fork point with a snapshot first; a continued one learns the digest
/// of its last stored segment when the progress lacks it.
pub async fn apply_to_ledger(
    ledger: &Ledger,
    store: &Store,
    est: &Established,
) -> Result<(), LineageError> {
    if est.fresh {
        let fork = est.parent.as_ref().map_or(0, |p| p.fork_seq);
        ledger.update(|p| {
            p.lineage = Some(est.id.clone());
            p.sealed_upto = fork;
            p.shipped_upto = fork;
            p.prev_sha256 = None;
            p.snapshot_first = est.parent.is_some();
        })?;
        return Ok(());
    }
    let p = ledger.progress();
    let mut prev = p.prev_sha256.clone();
    if prev.is_none() && p.shipped_upto > 0 {
        // The segment ending at `shipped_upto`: ours, or the history an
        // adopted lineage continues.
        let parent = est.parent.as_ref().map(|f| f.lineage.as_str());
        let ok = |s: &SegmentEntry| match s.lineage.as_deref() {
            Some(l) => l == est.id || Some(l) == parent,
            None => parent == Some(LEGACY),
        };
        match store.list_segments().await {
            Ok(segs) => {
                prev = segs
                    .iter()
                    .find(|s| s.last_seq == p.shipped_upto && ok(s))
                    .map(|s| s.sha256.clone());
            }
            Err(e) => tracing::warn!(error = %e, "cannot list the store to link the next segment"),
        }
    }
    ledger.update(|p| {
        p.lineage = Some(est.id.clone());
        p.prev_sha256.clone_from(&prev);
    })?;
    Ok(())
}

/// The compactor's progress, if it has any on disk.
fn read_progress(dir: &Path) -> Option<crate::compact::local::Progress> {
    let bytes = std::fs::read(dir.join("progress.json")).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Opens the recorder again after its journal was moved aside, or after
/// a standby's run; sled may hold the directory's lock for a moment after
/// the last handle.
pub async fn reopen(config: &Config) -> Result<Recorder, LineageError> {
    let mut last = None;
    for _ in 0..50 {
        match Recorder::open(config.clone()) {
            Ok(r) => return Ok(r),
            Err(e) => {
                last = Some(e);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    match last {
        Some(e) => Err(e.into()),
        None => Ok(Recorder::open(config.clone())?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "11111111111111111111111111111111";

    fn rec(id: &str, parent: Option<(&str, u64)>, cluster: &str) -> LineageRecord {
        LineageRecord {
            version: LINEAGE_VERSION,
            id: id.into(),
            parent: parent.map(|(l, f)| ForkPoint {
                lineage: l.into(),
                fork_seq: f,
            }),
            cluster_uid: cluster.into(),
            created_by: CreatedBy::default(),
            created_at_ms: 0,
            first_seq: parent.map_or(1, |(_, f)| f + 1),
        }
    }

    fn journal(lineage: Option<&str>, next_seq: u64) -> JournalView {
        JournalView {
            lineage: lineage.map(Into::into),
            next_seq,
            is_new: next_seq == 1 && lineage.is_none(),
            shipped_upto: next_seq.saturating_sub(1),
            leased: false,
        }
    }

    fn store(lineages: Vec<LineageRecord>, newest: &[(&str, u64)]) -> StoreView {
        StoreView {
            lineages,
            newest: newest.iter().map(|(l, s)| ((*l).to_owned(), *s)).collect(),
            stored_at: BTreeMap::new(),
            newest_time: BTreeMap::new(),
        }
    }

    fn decide_(j: &JournalView, s: &StoreView) -> Result<Decision, LineageError> {
        decide(j, s, "uid", false, CreatedBy::default())
    }

    #[test]
    fn the_journal_continues_only_at_or_past_the_store() {
        let s = store(vec![rec(P, None, "uid")], &[(P, 100)]);
        assert_eq!(
            decide_(&journal(Some(P), 101), &s).unwrap(),
            Decision::Continue { lineage: P.into() }
        );
        assert_eq!(
            decide_(&journal(Some(P), 150), &s).unwrap(),
            Decision::Continue { lineage: P.into() }
        );
        // Behind the store, wiped, or unknown: a child forked at 100.
        for j in [
            journal(Some(P), 60),
            journal(None, 1),
            journal(Some("ab"), 500),
        ] {
            let Decision::Fresh { record, .. } = decide_(&j, &s).unwrap() else {
                panic!("{j:?}");
            };
            assert_eq!(
                record.parent,
                Some(ForkPoint {
                    lineage: P.into(),
                    fork_seq: 100
                })
            );
            assert_eq!(record.first_seq, 101);
            assert!(lineage::is_valid_id(&record.id));
        }
        // Someone else took over from our lineage: fork from theirs.
        let c = "22222222222222222222222222222222";
        let s = store(
            vec![rec(P, None, "uid"), rec(c, Some((P, 100)), "uid")],
            &[(P, 100), (c, 180)],
        );
        let Decision::Fresh { record, .. } = decide_(&journal(Some(P), 150), &s).unwrap() else {
            panic!()
        };
        assert_eq!(record.parent.unwrap().lineage, c);
        assert_eq!(record.first_seq, 181);
    }

    fn ev(
        seq: u64,
        at: i64,
        kind: rewind_format::EventKind,
        resource: &str,
    ) -> rewind_format::EventRecord {
        rewind_format::EventRecord {
            seq,
            observed_at_ms: at,
            cluster_id: "c".into(),
            rtype: rewind_format::ResourceType {
                group: String::new(),
                version: "v1".into(),
                resource: resource.into(),
                kind: "K".into(),
                namespaced: true,
            },
            namespace: Some("n".into()),
            name: format!("o{seq}"),
            uid: String::new(),
            resource_version: seq.to_string(),
            kind,
            object: b"{}".to_vec(),
        }
    }

    #[test]
    fn a_standby_journal_is_cut_at_its_last_whole_point_before_the_parents_last_event() {
        use rewind_format::EventKind::{Applied, ResyncBegin, ResyncEnd};
        let begin = || ResyncBegin { list_rv: None };
        let end = || ResyncEnd {
            list_rv: "1".into(),
        };
        let j = vec![
            ev(1, 100, begin(), "configmaps"),
            ev(2, 100, Applied, "configmaps"),
            ev(3, 101, end(), "configmaps"),
            ev(4, 200, Applied, "configmaps"),
            // A second type's list, in the middle of which the state is
            // not whole.
            ev(5, 300, begin(), "secrets"),
            ev(6, 300, Applied, "secrets"),
            ev(7, 301, end(), "secrets"),
            ev(8, 400, Applied, "configmaps"),
        ];
        assert_eq!(
            cut_point(&j, 250),
            Some(4),
            "the last event at or before t0"
        );
        assert_eq!(cut_point(&j, 300), Some(4), "never inside a list");
        assert_eq!(cut_point(&j, 301), Some(7));
        assert_eq!(cut_point(&j, 10_000), Some(8));
        assert_eq!(
            cut_point(&j, 50),
            Some(3),
            "a first list completed after t0: its end (the points before are refused)"
        );
        assert_eq!(cut_point(&j[..2], 1_000), None, "no list completed");
    }

    #[test]
    fn new_stores_legacy_stores_and_foreign_clusters() {
        let Decision::Fresh { record, .. } =
            decide_(&journal(None, 1), &StoreView::default()).unwrap()
        else {
            panic!()
        };
        assert_eq!((record.parent, record.first_seq), (None, 1));
        // A journal from before lineages, not behind the legacy entries.
        let s = store(vec![], &[(LEGACY, 90)]);
        let Decision::Adopt { record } = decide_(&journal(None, 91), &s).unwrap() else {
            panic!()
        };
        assert_eq!(record.parent.unwrap().fork_seq, 90);
        assert!(matches!(
            decide_(&journal(None, 50), &s).unwrap(),
            Decision::Fresh { .. }
        ));
        // Another cluster's store: refused, naming both, unless adopted.
        let s = store(vec![rec(P, None, "other")], &[(P, 10)]);
        let err = decide_(&journal(None, 1), &s).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("cluster other") && text.contains("records cluster uid"),
            "{text}"
        );
        assert!(text.contains("adopt_store"), "{text}");
        let Decision::Fresh { record, .. } =
            decide(&journal(None, 1), &s, "uid", true, CreatedBy::default()).unwrap()
        else {
            panic!()
        };
        assert_eq!(record.first_seq, 11);
        assert_eq!(record.cluster_uid, "uid");
        // Once adopted, the old cluster's lineage is an ancestor: the next
        // start continues without the setting.
        let s = store(
            vec![rec(P, None, "other"), rec(&record.id, Some((P, 10)), "uid")],
            &[(P, 10), (record.id.as_str(), 40)],
        );
        assert_eq!(
            decide_(&journal(Some(&record.id), 41), &s).unwrap(),
            Decision::Continue {
                lineage: record.id.clone()
            }
        );
    }
}
