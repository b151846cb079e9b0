//! Prometheus metrics, `/healthz` and `/readyz` on a loopback address.
//!
//! The registry is built at each scrape from the live figures (the status
//! board of the watchers and journal, and the compactor's counters), so no
//! metric can go stale or drift from what `rewindd status` shows.
//!
//! - `/healthz`: liveness: 200 while the process serves and the journal
//!   writer thread runs and turns its loop; 503 with the reason once the
//!   writer stopped or is stuck (see [`crate::status::Heartbeat`]).
//! - `/readyz`: 200 `ready` when the daemon records: every problem of
//!   [`crate::status::StatusFile::problems`] absent (apiserver answers,
//!   discovery of every group in the record set succeeds, every selected
//!   type listed and watching, the journal commits, the writer alive) and
//!   the local disk budget not exceeded; otherwise 503 with one
//!   `not ready: …` line per problem.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use crate::compact::CompactStats;
use crate::status::{Beat, Board, WRITER_STUCK_AFTER, WatchState};

/// Errors of the metrics endpoint.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The address is not a loopback address.
    #[error("metrics address {0} is not a loopback address; expose metrics through a proxy")]
    NotLoopback(SocketAddr),
    /// Binding failed.
    #[error("metrics address {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// What the endpoint reads.
#[derive(Clone)]
pub struct Sources {
    /// Watchers and journal.
    pub board: Option<Board>,
    /// Sealing, snapshots, store.
    pub compact: Option<Arc<CompactStats>>,
    /// The disk budget, for the gauge.
    pub disk_budget_bytes: u64,
}

type Labels = Vec<(String, String)>;

fn gauge(reg: &mut Registry, name: &str, help: &str, v: i64) {
    let g: Gauge = Gauge::default();
    g.set(v);
    reg.register(name, help, g);
}

fn fgauge(reg: &mut Registry, name: &str, help: &str, v: f64) {
    let g: Gauge<f64, std::sync::atomic::AtomicU64> = Gauge::default();
    g.set(v);
    reg.register(name, help, g);
}

fn counter(reg: &mut Registry, name: &str, help: &str, v: u64) {
    let c: Counter = Counter::default();
    c.inc_by(v);
    reg.register(name, help, c);
}

fn as_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Renders the metrics in the Prometheus text format.
#[must_use]
pub fn render(src: &Sources) -> String {
    let mut reg = Registry::with_prefix("rewind");
    if let Some(board) = &src.board {
        let s = board.snapshot();
        let events: Family<Labels, Counter> = Family::default();
        let lag: Family<Labels, Gauge<f64, std::sync::atomic::AtomicU64>> = Family::default();
        let state: Family<Labels, Gauge> = Family::default();
        let relists: Family<Labels, Counter> = Family::default();
        for (name, t) in &s.types {
            let l = vec![("type".to_owned(), name.clone())];
            events.get_or_create(&l).inc_by(t.events);
            relists.get_or_create(&l).inc_by(t.relists);
            #[expect(clippy::cast_precision_loss, reason = "lag in seconds for display")]
            lag.get_or_create(&l).set(t.lag_ms as f64 / 1000.0);
            for st in [
                WatchState::Starting,
                WatchState::Relisting,
                WatchState::Watching,
                WatchState::Failing,
                WatchState::Stopped,
            ] {
                let mut l = l.clone();
                l.push(("state".to_owned(), format!("{st:?}").to_lowercase()));
                state.get_or_create(&l).set(i64::from(t.state == st));
            }
        }
        reg.register(
            "events_recorded",
            "Events recorded, per resource type",
            events,
        );
        reg.register(
            "watch_lag_seconds",
            "Time from an event's observation to its durability, per type",
            lag,
        );
        reg.register(
            "relists",
            "Relists per resource type since start (lists after the first: 410 Gone, broken watches)",
            relists,
        );
        reg.register(
            "watcher_state",
            "1 for the current state of each type's watcher",
            state,
        );
        let role: Family<Labels, Gauge> = Family::default();
        let leader = s.leader.clone().unwrap_or_default();
        for r in [
            crate::leader::Role::Unconfigured,
            crate::leader::Role::Standby,
            crate::leader::Role::Leader,
            crate::leader::Role::Deposed,
        ] {
            role.get_or_create(&vec![("role".to_owned(), r.as_str().to_owned())])
                .set(i64::from(leader.role == r.as_str()));
        }
        reg.register(
            "leader_role",
            "1 for this recorder's role: leader (ships), standby or deposed (ship nothing), unconfigured (no Lease: always ships)",
            role,
        );
        gauge(
            &mut reg,
            "leader_epoch",
            "leaseTransitions of the Lease when this recorder took it (-1: never)",
            leader.epoch.map_or(-1, as_i64),
        );
        #[expect(clippy::cast_precision_loss, reason = "a timestamp in seconds")]
        fgauge(
            &mut reg,
            "leader_last_takeover_timestamp_seconds",
            "When this recorder last took the Lease, Unix seconds (0: never)",
            leader.last_takeover_ms.unwrap_or(0) as f64 / 1000.0,
        );
        if let Some(l) = &s.lineage {
            // The lineage being recorded and the cluster (the key of its
            // place in a store shared by several clusters), as labels.
            let info: Family<Labels, Gauge> = Family::default();
            info.get_or_create(&vec![
                ("lineage".to_owned(), l.id.clone()),
                ("cluster".to_owned(), s.cluster_id.clone()),
                ("decision".to_owned(), l.decision.clone()),
            ])
            .set(1);
            reg.register(
                "lineage",
                "1 for the store lineage being recorded, with its cluster and how it was chosen at start (continue, adopt, fresh)",
                info,
            );
        }
        gauge(
            &mut reg,
            "journal_bytes",
            "Journal size on disk",
            as_i64(s.journal.size_bytes),
        );
        gauge(
            &mut reg,
            "journal_healthy",
            "1 while the journal commits",
            i64::from(s.journal.healthy),
        );
        gauge(
            &mut reg,
            "journal_next_seq",
            "Sequence number of the next event",
            as_i64(s.journal.next_seq),
        );
        gauge(
            &mut reg,
            "failing_groups",
            "API groups in the record set whose discovery fails",
            as_i64(u64::try_from(s.failing_groups.len()).unwrap_or(0)),
        );
    }
    if let Some(c) = &src.compact {
        let g = CompactStats::get;
        counter(
            &mut reg,
            "segments_sealed",
            "Segments sealed since start",
            g(&c.segments_sealed),
        );
        counter(
            &mut reg,
            "segments_stored",
            "Segments stored since start",
            g(&c.segments_shipped),
        );
        counter(
            &mut reg,
            "snapshots",
            "Snapshots made since start",
            g(&c.snapshots),
        );
        counter(
            &mut reg,
            "store_errors",
            "Store operations that failed after retries",
            g(&c.store_errors),
        );
        gauge(
            &mut reg,
            "store_up",
            "0 when the last store attempt failed",
            i64::from(!c.store_down.load(std::sync::atomic::Ordering::Relaxed)),
        );
        gauge(
            &mut reg,
            "sealed_seq",
            "Every event up to this seq is sealed",
            as_i64(g(&c.sealed_upto)),
        );
        gauge(
            &mut reg,
            "stored_seq",
            "Every segment up to this seq is stored",
            as_i64(g(&c.shipped_upto)),
        );
        let t = c
            .last_snapshot_time_ms
            .load(std::sync::atomic::Ordering::Relaxed);
        #[expect(
            clippy::cast_precision_loss,
            reason = "Unix seconds as a float, as Prometheus expects"
        )]
        fgauge(
            &mut reg,
            "last_snapshot_timestamp_seconds",
            "Time the last snapshot is consistent at",
            t as f64 / 1000.0,
        );
        gauge(
            &mut reg,
            "last_snapshot_bytes",
            "Size of the last snapshot",
            as_i64(g(&c.last_snapshot_bytes)),
        );
        gauge(
            &mut reg,
            "last_snapshot_objects",
            "Objects in the last snapshot",
            as_i64(g(&c.last_snapshot_objects)),
        );
        #[expect(clippy::cast_precision_loss, reason = "seconds as a float")]
        fgauge(
            &mut reg,
            "last_snapshot_duration_seconds",
            "How long the last snapshot took",
            g(&c.last_snapshot_duration_ms) as f64 / 1000.0,
        );
        gauge(
            &mut reg,
            "journal_trimmed_below_seq",
            "The journal has dropped its events below this seq (sealed, stored, older than the local window)",
            as_i64(g(&c.trimmed_below)),
        );
        gauge(
            &mut reg,
            "local_bytes",
            "Bytes kept locally: journal plus files not yet stored",
            as_i64(g(&c.local_bytes)),
        );
        gauge(
            &mut reg,
            "disk_budget_bytes",
            "The configured disk budget",
            as_i64(match g(&c.disk_budget_bytes) {
                0 => src.disk_budget_bytes,
                reloaded => reloaded,
            }),
        );
        gauge(
            &mut reg,
            "disk_budget_exceeded",
            "1 when local bytes passed the budget",
            i64::from(c.over_budget.load(std::sync::atomic::Ordering::Relaxed)),
        );
    }
    let mut out = String::new();
    if encode(&mut out, &reg).is_err() {
        out.clear();
    }
    out
}

/// Every reason the daemon is not ready; empty when it is.
#[must_use]
pub fn readiness(src: &Sources) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(board) = &src.board {
        let s = board.snapshot();
        out.extend(s.problems(s.written_at_ms));
    }
    if let Some(c) = &src.compact
        && c.over_budget.load(std::sync::atomic::Ordering::Relaxed)
    {
        out.push("disk budget exceeded: the store is not taking data".into());
    }
    out
}

/// Whether the process is alive: the journal writer thread has not stopped
/// and is not stuck ([`WRITER_STUCK_AFTER`]). A writer not started yet (the
/// recorder waits for the cluster) is alive: restarting would not help.
pub fn liveness(src: &Sources) -> Result<(), String> {
    let Some(board) = &src.board else {
        return Ok(());
    };
    match board.writer_heartbeat().state() {
        Beat::NotStarted => Ok(()),
        Beat::Alive(age) if age <= WRITER_STUCK_AFTER => Ok(()),
        Beat::Alive(age) => Err(format!(
            "journal writer stuck: no progress for {}s",
            age.as_secs()
        )),
        Beat::Stopped => Err("journal writer thread stopped".into()),
    }
}

fn problems_text(problems: &[String]) -> String {
    problems
        .iter()
        .map(|p| format!("not ready: {p}\n"))
        .collect()
}

/// Binds `addr` (loopback only) and serves until `shutdown`.
pub async fn serve(
    addr: SocketAddr,
    src: Sources,
    shutdown: CancellationToken,
) -> Result<(), MetricsError> {
    if !addr.ip().is_loopback() {
        return Err(MetricsError::NotLoopback(addr));
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| MetricsError::Bind { addr, source })?;
    let app = Router::new()
        .route(
            "/metrics",
            get(|State(s): State<Sources>| async move {
                (
                    [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
                    render(&s),
                )
            }),
        )
        .route(
            "/healthz",
            get(|State(s): State<Sources>| async move {
                match liveness(&s) {
                    Ok(()) => (StatusCode::OK, "ok\n".to_owned()),
                    Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
                }
            }),
        )
        .route(
            "/readyz",
            get(|State(s): State<Sources>| async move {
                let problems = readiness(&s);
                if problems.is_empty() {
                    (StatusCode::OK, "ready\n".to_owned())
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, problems_text(&problems))
                }
            }),
        )
        .with_state(src);
    tracing::info!(%addr, "metrics listening");
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
    {
        tracing::warn!(error = %e, "metrics server stopped");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relists_are_rendered_per_type() {
        let board = Board::new();
        board.update_type(
            "clusters.management.cattle.io",
            "management.cattle.io/v3",
            "Cluster",
            |t| {
                t.relists = 2;
                t.events = 5;
            },
        );
        board.update_type("configmaps", "v1", "ConfigMap", |_| {});
        let text = render(&Sources {
            board: Some(board),
            compact: None,
            disk_budget_bytes: 0,
        });
        assert!(
            text.contains("rewind_relists_total{type=\"clusters.management.cattle.io\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("rewind_relists_total{type=\"configmaps\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("rewind_events_recorded_total{type=\"clusters.management.cattle.io\"} 5"),
            "{text}"
        );
    }

    #[test]
    fn the_role_epoch_takeover_and_lineage_are_rendered() {
        let board = Board::new();
        let render_board = |b: &Board| {
            render(&Sources {
                board: Some(b.clone()),
                compact: None,
                disk_budget_bytes: 0,
            })
        };
        let text = render_board(&board);
        assert!(text.contains("rewind_leader_epoch -1"), "{text}");
        board.update(|s| {
            s.leader = Some(crate::leader::LeaderStatus {
                role: "leader".into(),
                epoch: Some(3),
                last_takeover_ms: Some(1_500),
                ..Default::default()
            });
            s.lineage = Some(crate::status::LineageStatus {
                id: "abc".into(),
                decision: "fresh".into(),
                ..Default::default()
            });
        });
        let text = render_board(&board);
        for line in [
            "rewind_leader_role{role=\"leader\"} 1",
            "rewind_leader_role{role=\"standby\"} 0",
            "rewind_leader_epoch 3",
            "rewind_leader_last_takeover_timestamp_seconds 1.5",
            "rewind_lineage{lineage=\"abc\",cluster=\"\",decision=\"fresh\"} 1",
        ] {
            assert!(text.contains(line), "{line}\n{text}");
        }
    }

    /// The lineage being recorded and its cluster are a labelled gauge,
    /// absent until the lineage is decided.
    #[test]
    fn the_lineage_and_cluster_are_a_labelled_gauge() {
        let board = Board::new();
        let src = Sources {
            board: Some(board.clone()),
            compact: None,
            disk_budget_bytes: 0,
        };
        assert!(!render(&src).contains("rewind_lineage"));
        board.update(|s| {
            s.cluster_id = "d6b2c0a4".into();
            s.lineage = Some(crate::status::LineageStatus {
                id: "3f0c".repeat(8),
                decision: "fresh".into(),
                ..Default::default()
            });
        });
        let text = render(&src);
        let want = format!(
            "rewind_lineage{{lineage=\"{}\",cluster=\"d6b2c0a4\",decision=\"fresh\"}} 1",
            "3f0c".repeat(8)
        );
        assert!(text.contains(&want), "{text}");
    }
}
