//! The journal writer: group commit on a dedicated thread.
//!
//! It takes the first message, then keeps taking until the batch holds
//! `flush_max_events`, or `flush_interval` has passed since the first, or
//! the queue stayed empty for [`LINGER`]; runs the batch through the
//! [`Ingestor`], and commits it (see [`crate::journal::commit`], then
//! `fdatasync`). Only then are the batch's memory permits released, so the byte
//! budget covers the queue and the batch being written.
//!
//! Closing a batch once the queue runs dry, instead of always waiting out
//! `flush_interval`, is what keeps the time from API write to durable low
//! when changes trickle in; under load the queue does not run dry, and
//! batches grow while the previous commit fsyncs (classic group commit).
//!
//! A failed commit (full disk, I/O error) is not lost: the batch is kept,
//! the journal is reopened (it refuses writes after an I/O error), and
//! the same batch is prepared and committed again with backoff. Meanwhile
//! nothing is acknowledged, the status says why, and the watchers block on
//! the full queue: backpressure instead of unbounded memory.
//!
//! The writer publishes the durable position on a `tokio::sync::watch`
//! channel it owns ([`Writer::publishing_durable_seq`]): one past the last
//! event of the last batch whose commit returned (synced to disk). The
//! journal's own `next_seq` record is written just before the sync, so only this
//! figure tells what a crash can no longer take back; sealing reads it.
//!
//! Journal commits block (fsync), so this runs on its own OS thread rather than
//! on the async runtime. Every turn of its loop (idle ones, at least once a
//! second, and each retry of a failing commit) beats the board's writer
//! [`crate::status::Heartbeat`], and returning stops it: readiness,
//! `/healthz` and the systemd watchdog read it to tell a stuck or dead
//! writer from a quiet cluster.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rewind_format::EventBlockEncoder;
use tokio::runtime::Handle;
use tokio::sync::{broadcast, mpsc, watch};
use tracing::{debug, error, info, warn};

use crate::ingest::Ingestor;
use crate::journal::{
    self, Journal, JournalOptions, LogReader, ObjectKey, PreparedBatch, type_key,
};
use crate::status::Board;
use crate::watch::Msg;
use rewind_history::now_ms;

/// Free space the journal volume keeps beyond twice the next batch's bytes:
/// room for the journal to finish a write it began, to clean segments, and to
/// reopen. Without it a full disk fails the journal part way through a
/// write, and it then refuses every write until it is reopened.
const MIN_FREE_BYTES: u64 = 8 << 20;

/// Overrides [`MIN_FREE_BYTES`]; `0` turns the check off. Only for tests of
/// the path behind the check (the journal failing on a full disk, then
/// reopened).
const MIN_FREE_ENV: &str = "REWIND_JOURNAL_MIN_FREE_BYTES";

fn min_free_bytes() -> u64 {
    std::env::var(MIN_FREE_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(MIN_FREE_BYTES)
}

/// How often an idle writer refreshes the journal's size on the status board.
const SIZE_REFRESH: Duration = Duration::from_secs(1);

/// How long the writer waits for more messages once the queue is empty
/// before it commits the batch it has.
pub const LINGER: Duration = Duration::from_millis(2);

/// Bytes of object JSON an observation carries.
fn json_bytes(obs: &crate::ingest::Observation) -> usize {
    use crate::ingest::Observation;
    match obs {
        Observation::Applied { object, .. } | Observation::Deleted { object, .. } => {
            object.json.len()
        }
        Observation::ResyncBegin { .. }
        | Observation::ResyncEnd { .. }
        | Observation::TypeGone { .. }
        | Observation::OutOfScope { .. } => 0,
    }
}

/// A durable batch, for observers (tests, latency measurement).
#[derive(Debug, Clone)]
pub struct CommitNotice {
    /// Seq of the first record.
    pub first_seq: u64,
    /// One past the last record.
    pub next_seq: u64,
    /// Objects recorded, with their resourceVersions.
    pub touched: Vec<(ObjectKey, String)>,
    /// When the commit returned.
    pub at: Instant,
}

/// Group commit settings.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// Longest wait after a batch's first message.
    pub flush_interval: Duration,
    /// Largest batch.
    pub max_events: usize,
}

/// The writer thread's state.
pub struct Writer {
    journal: Option<Journal>,
    dir: std::path::PathBuf,
    jopts: JournalOptions,
    ingestor: Ingestor,
    encoder: EventBlockEncoder,
    opts: WriterOptions,
    board: Board,
    commits: Option<broadcast::Sender<Arc<CommitNotice>>>,
    last_size_check: Option<Instant>,
    /// Free space kept on the journal volume ([`MIN_FREE_BYTES`]).
    min_free: u64,
    /// The journal's reader handed to other tasks: detached before a
    /// reopen (the journal's directory stays locked while any reader holds
    /// it), attached after.
    reader: Option<LogReader>,
    /// Where the durable position goes: one past the last fsynced event.
    durable: Option<watch::Sender<u64>>,
}

impl Writer {
    /// A writer over an open journal.
    pub fn new(
        journal: Journal,
        ingestor: Ingestor,
        opts: WriterOptions,
        board: Board,
        commits: Option<broadcast::Sender<Arc<CommitNotice>>>,
    ) -> journal::Result<Self> {
        let jopts = journal.options().clone();
        Ok(Self {
            dir: journal.dir().to_path_buf(),
            encoder: EventBlockEncoder::new(jopts.zstd_level)?,
            journal: Some(journal),
            jopts,
            ingestor,
            opts,
            board,
            commits,
            last_size_check: None,
            min_free: min_free_bytes(),
            reader: None,
            durable: None,
        })
    }

    /// Lets the writer detach `reader` before it reopens the journal and
    /// attach it to the reopened one.
    #[must_use]
    pub fn with_log_reader(mut self, reader: LogReader) -> Self {
        self.reader = Some(reader);
        self
    }

    /// Publishes on `durable` one past the last durable event: the
    /// journal's position when the writer starts, then after every commit.
    #[must_use]
    pub fn publishing_durable_seq(mut self, durable: watch::Sender<u64>) -> Self {
        self.durable = Some(durable);
        self
    }

    /// Publishes that every event below `next_seq` is durable: the
    /// acknowledgement. The debug line right after it is what a test of the
    /// order of syscalls (fdatasync before acknowledgement) looks for.
    fn publish_durable(&self, next_seq: u64) {
        if let Some(tx) = &self.durable {
            tx.send_replace(next_seq);
        }
        debug!(next_seq, "journal durable");
    }

    /// Runs until every sender is gone and the queue is drained; returns the
    /// journal (flushed).
    pub fn run(mut self, rt: Handle, mut rx: mpsc::Receiver<Msg>) -> Option<Journal> {
        // Timers are created on this thread: they need the runtime's context.
        let _context = rt.enter();
        // Every turn of the loop beats, idle or not; returning (or
        // unwinding) stops the heartbeat. The watchdog and readiness read it.
        let heartbeat = self.board.writer_heartbeat();
        let _stop = crate::status::StopOnDrop(Arc::clone(&heartbeat));
        heartbeat.beat();
        if let Some(j) = &self.journal {
            let next = j.next_seq();
            self.board.update(|s| s.journal.next_seq = next);
            self.publish_durable(next);
        }
        self.update_size(true);
        loop {
            heartbeat.beat();
            // An idle journal still refreshes its size: the last commit's
            // size check may have run before the journal wrote the batch out, and
            // `journal_bytes` must not stay stale while nothing changes.
            let first = match rt.block_on(tokio::time::timeout(SIZE_REFRESH, rx.recv())) {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(_) => {
                    self.update_size(false);
                    continue;
                }
            };
            let deadline = tokio::time::Instant::now() + self.opts.flush_interval;
            let mut msgs = vec![first];
            let mut closed = false;
            while msgs.len() < self.opts.max_events {
                // Take what is queued without waiting, then wait for more.
                match rx.try_recv() {
                    Ok(m) => {
                        msgs.push(m);
                        continue;
                    }
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        closed = true;
                        break;
                    }
                    Err(mpsc::error::TryRecvError::Empty) => {}
                }
                let until = deadline.min(tokio::time::Instant::now() + LINGER);
                match rt.block_on(tokio::time::timeout_at(until, rx.recv())) {
                    Ok(Some(m)) => msgs.push(m),
                    Ok(None) => {
                        closed = true;
                        break;
                    }
                    Err(_) => break,
                }
            }
            self.commit_until_durable(&rt, &msgs);
            drop(msgs);
            if closed {
                break;
            }
        }
        if let Some(j) = &mut self.journal
            && let Err(e) = j.flush()
        {
            error!(error = %e, "final journal flush failed");
        }
        self.journal
    }

    fn prepare(&mut self, msgs: &[Msg]) -> journal::Result<PreparedBatch> {
        let j = self
            .journal
            .as_ref()
            .ok_or_else(|| journal::Error::Corrupt("journal is not open".into()))?;
        let mut b = j.batch().track_touched(self.commits.is_some());
        for m in msgs {
            self.ingestor.apply(&mut b, &m.obs)?;
        }
        b.finish(&mut self.encoder)
    }

    fn commit_until_durable(&mut self, rt: &Handle, msgs: &[Msg]) {
        let mut backoff = Duration::from_millis(100);
        let mut logged: Option<String> = None;
        let heartbeat = self.board.writer_heartbeat();
        loop {
            // A retry is progress too: the writer is alive and working on
            // the journal, which a restart would not fix faster.
            heartbeat.beat();
            let started = Instant::now();
            let result = self
                .check_space(msgs)
                .and_then(|()| self.prepare(msgs))
                .and_then(|p| {
                    let j = self
                        .journal
                        .as_mut()
                        .ok_or_else(|| journal::Error::Corrupt("journal is not open".into()))?;
                    j.commit(&p).map(|()| p)
                });
            match result {
                Ok(p) => {
                    self.ingestor.committed();
                    if logged.is_some() {
                        info!("journal writes succeed again");
                    }
                    self.after_commit(msgs, &p, started.elapsed());
                    return;
                }
                Err(e) => {
                    self.ingestor.rolled_back();
                    let msg = e.to_string();
                    if logged.as_deref() != Some(msg.as_str()) {
                        // Nothing is acknowledged until this clears: an
                        // operator may have to free disk space.
                        error!(error = %msg, events = msgs.len(), "journal commit failed; keeping the batch and retrying");
                        logged = Some(msg.clone());
                    }
                    self.board.update(|s| {
                        s.journal.healthy = false;
                        s.journal.error = Some(msg);
                    });
                    rt.block_on(tokio::time::sleep(backoff));
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    if matches!(
                        e,
                        journal::Error::Storage(_)
                            | journal::Error::NeedsReopen
                            | journal::Error::Sync { .. }
                    ) || self.journal.is_none()
                    {
                        self.reopen(rt);
                    }
                }
            }
        }
    }

    /// Refuses a batch the journal volume has no room for; see
    /// [`MIN_FREE_BYTES`]. A volume whose free space cannot be read is left
    /// to the journal's own errors.
    fn check_space(&self, msgs: &[Msg]) -> journal::Result<()> {
        if self.min_free == 0 {
            return Ok(());
        }
        let Ok(st) = rustix::fs::statvfs(&self.dir) else {
            return Ok(());
        };
        let free = st.f_bavail.saturating_mul(st.f_frsize);
        let batch: u64 = msgs
            .iter()
            .map(|m| u64::try_from(json_bytes(&m.obs)).unwrap_or(u64::MAX))
            .fold(0, u64::saturating_add);
        let need = self.min_free.saturating_add(batch.saturating_mul(2));
        if free < need {
            return Err(journal::Error::NoSpace { free, need });
        }
        Ok(())
    }

    /// The journal refuses every write after an I/O error: start from disk
    /// again.
    fn reopen(&mut self, rt: &Handle) {
        if let Some(reader) = &self.reader {
            reader.detach();
        }
        self.journal = None;
        for _ in 0..50 {
            match Journal::open(&self.dir, &self.jopts) {
                Ok(j) => {
                    if let Some(reader) = &self.reader {
                        reader.attach(&j);
                    }
                    self.journal = Some(j);
                    return;
                }
                Err(e) => {
                    warn!(error = %e, "reopening the journal failed; retrying");
                    rt.block_on(tokio::time::sleep(Duration::from_millis(100)));
                }
            }
        }
    }

    fn after_commit(&mut self, msgs: &[Msg], p: &PreparedBatch, took: Duration) {
        let now = now_ms();
        let next_seq = p.next_seq;
        let took_ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
        // Per type: newest observation now durable. Watchers share one
        // `Arc` per type and a batch holds few types, so a short list
        // compared by pointer beats formatting a type key per message.
        let mut newest: Vec<(&Arc<rewind_format::ResourceType>, i64)> = Vec::new();
        for m in msgs {
            let (rtype, at) = match &m.obs {
                crate::ingest::Observation::Applied { rtype, object, .. }
                | crate::ingest::Observation::Deleted { rtype, object } => {
                    (rtype, object.observed_at_ms)
                }
                crate::ingest::Observation::ResyncBegin { rtype, at_ms }
                | crate::ingest::Observation::ResyncEnd { rtype, at_ms, .. }
                | crate::ingest::Observation::TypeGone { rtype, at_ms, .. }
                | crate::ingest::Observation::OutOfScope { rtype, at_ms } => (rtype, *at_ms),
            };
            match newest
                .iter_mut()
                .find(|(t, _)| Arc::ptr_eq(t, rtype) || **t == *rtype)
            {
                Some((_, a)) => *a = (*a).max(at),
                None => newest.push((rtype, at)),
            }
        }
        let mut durable: std::collections::HashMap<String, (i64, String, String, String)> =
            std::collections::HashMap::new();
        for (rtype, at) in newest {
            let e = durable
                .entry(type_key(rtype))
                .or_insert_with(|| (at, rtype.api_version(), rtype.kind.clone(), String::new()));
            e.0 = e.0.max(at);
        }
        for (tk, (at, av, kind, _)) in durable {
            let n = p
                .type_counts
                .iter()
                .find(|(t, _)| *t == tk)
                .map_or(0, |(_, n)| *n);
            self.board.update_type(&tk, &av, &kind, |t| {
                t.durable_through_ms = Some(t.durable_through_ms.map_or(at, |d| d.max(at)));
                if n > 0 {
                    t.events = t.events.saturating_add(n);
                    t.last_event_ms = Some(at);
                }
            });
        }
        self.board.update(|s| {
            s.journal.healthy = true;
            s.journal.error = None;
            s.journal.next_seq = next_seq;
            s.journal.last_commit_ms = Some(now);
            s.journal.last_commit_duration_ms = took_ms;
            s.journal.events = s.journal.events.saturating_add(p.len());
        });
        self.publish_durable(next_seq);
        self.update_size(false);
        if let Some(tx) = &self.commits {
            let _ = tx.send(Arc::new(CommitNotice {
                first_seq: p.first_seq,
                next_seq,
                touched: p.touched.clone(),
                at: Instant::now(),
            }));
        }
    }

    fn update_size(&mut self, force: bool) {
        let due = self
            .last_size_check
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
        if !force && !due {
            return;
        }
        self.last_size_check = Some(Instant::now());
        if let Some(j) = &self.journal
            && let Ok(size) = j.size_on_disk()
        {
            self.board.update(|s| s.journal.size_bytes = size);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use rewind_format::{EventKind, ResourceType};

    use super::*;
    use crate::ingest::{Observation, ObservedObject};

    fn obs(name: &str, rv: u64) -> Msg {
        Msg {
            obs: Observation::Applied {
                rtype: Arc::new(ResourceType {
                    group: String::new(),
                    version: "v1".into(),
                    resource: "configmaps".into(),
                    kind: "ConfigMap".into(),
                    namespaced: true,
                }),
                object: ObservedObject {
                    namespace: "ns".into(),
                    name: name.into(),
                    uid: format!("u-{name}"),
                    resource_version: rv.to_string(),
                    json: format!("{{\"rv\":{rv}}}").into_bytes(),
                    selected: true,
                    observed_at_ms: 1,
                },
                relist: false,
            },
            permit: None,
        }
    }

    #[test]
    fn group_commit_acknowledges_every_event_in_order() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path(), &JournalOptions::default()).unwrap();
        let (ctx, mut crx) = broadcast::channel(1024);
        let board = Board::new();
        let (durable_tx, durable) = watch::channel(0);
        let w = Writer::new(
            j,
            Ingestor::new("c".into(), HashMap::new()).unwrap(),
            WriterOptions {
                flush_interval: Duration::from_millis(5),
                max_events: 7,
            },
            board.clone(),
            Some(ctx),
        )
        .unwrap()
        .publishing_durable_seq(durable_tx);
        let (tx, rx) = mpsc::channel(4);
        let handle = rt.handle().clone();
        let thread = std::thread::spawn(move || w.run(handle, rx));
        rt.block_on(async {
            for i in 0..50u64 {
                tx.send(obs(&format!("o{}", i % 10), i + 1)).await.unwrap();
            }
        });
        drop(tx);
        let j = thread.join().unwrap().unwrap();
        assert_eq!(j.next_seq(), 51);
        let recs: Vec<_> = j.records_from(1).map(Result::unwrap).collect();
        assert!(recs.iter().all(|r| r.kind == EventKind::Applied));
        let rvs: Vec<String> = recs.iter().map(|r| r.resource_version.clone()).collect();
        let want: Vec<String> = (1..=50).map(|i: u64| i.to_string()).collect();
        assert_eq!(rvs, want);
        // Batches were bounded and every one was announced.
        let mut announced = 0;
        while let Ok(n) = crx.try_recv() {
            assert!(n.next_seq - n.first_seq <= 7);
            announced += n.next_seq - n.first_seq;
        }
        assert_eq!(announced, 50);
        let s = board.snapshot();
        assert!(s.journal.healthy);
        assert_eq!(s.journal.next_seq, 51);
        assert_eq!(*durable.borrow(), 51, "every event published durable");
        assert_eq!(s.types["configmaps"].events, 50);
    }

    #[test]
    fn an_idle_writer_keeps_beating_and_stops_its_heartbeat_on_return() {
        use crate::status::Beat;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path(), &JournalOptions::default()).unwrap();
        let board = Board::new();
        let hb = board.writer_heartbeat();
        assert_eq!(hb.state(), Beat::NotStarted);
        let w = Writer::new(
            j,
            Ingestor::new("c".into(), HashMap::new()).unwrap(),
            WriterOptions {
                flush_interval: Duration::from_millis(5),
                max_events: 7,
            },
            board.clone(),
            None,
        )
        .unwrap();
        let (tx, rx) = mpsc::channel::<Msg>(4);
        let handle = rt.handle().clone();
        let thread = std::thread::spawn(move || w.run(handle, rx));
        // Nothing arrives for three idle periods: the writer still turns.
        for _ in 0..6 {
            std::thread::sleep(SIZE_REFRESH / 2);
            match hb.state() {
                Beat::Alive(age) => {
                    assert!(age <= SIZE_REFRESH * 2, "idle writer silent for {age:?}")
                }
                other => panic!("writer not beating: {other:?}"),
            }
        }
        drop(tx);
        thread.join().unwrap().unwrap();
        assert_eq!(hb.state(), Beat::Stopped);
        assert!(board.snapshot().journal.writer_stopped);
    }
}
