//! SIGHUP: re-read the whole configuration, validate all of it, apply what
//! can change while running, and name what needs a restart.
//!
//! The new configuration is built exactly as at start, by
//! [`crate::config::Settings::load`] (the file read once, then `REWIND_*`
//! env and the command-line flags the daemon was started with, which still
//! win). If any part is invalid, nothing is applied and the
//! running configuration stays, with one ERROR line naming the setting.
//!
//! Applied at once:
//! - `[record]`: the resource sets/presets (the events recorded so far are
//!   sealed under the old set and files from then on name the new one;
//!   watchers restart with the new selection, one relist each; types the
//!   new set no longer covers leave the record) and the ignore rules;
//! - `[compact]`: seal interval and size, snapshot schedule and threshold,
//!   disk budget, local window, zstd levels, fold memory;
//! - `[encryption]` recipients (files stored from then on);
//! - `[retention]`, including `auto_prune`.
//!
//! Needs a restart (logged as a WARN naming each setting, and otherwise
//! ignored): the cluster and its id, the data directory, `[journal]`,
//! queue and discovery/status intervals, `[store]` (the catalog and what is
//! recorded as shipped belong to one store), `[service]` (the socket
//! and the metrics listener are bound once), and `[leader]` (the Lease is
//! taken once, at start).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use rewind_history::store::RetentionPolicy;

use crate::compact::Compactor;
use crate::config::{Config, Settings};
use crate::daemon::LiveRecorder;

/// What a reload changes, split by whether it applies now.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    /// Settings applied while running.
    pub applied: Vec<&'static str>,
    /// Settings that changed but take effect only after a restart.
    pub need_restart: Vec<&'static str>,
}

/// Compares two configurations setting by setting. The sections without
/// flags are compared as written in the file.
#[must_use]
pub fn diff(a: &Config, b: &Config) -> Changes {
    let mut c = Changes::default();
    let mut restart = |changed: bool, name: &'static str| {
        if changed {
            c.need_restart.push(name);
        }
    };
    restart(a.cluster != b.cluster, "cluster");
    restart(a.cluster_id != b.cluster_id, "cluster.id");
    restart(a.data_dir != b.data_dir, "data_dir");
    restart(
        format!("{:?}", a.journal) != format!("{:?}", b.journal),
        "journal",
    );
    restart(
        a.flush_interval != b.flush_interval,
        "journal.flush_interval",
    );
    restart(
        a.flush_max_events != b.flush_max_events,
        "journal.flush_max_events",
    );
    restart(a.queue_bytes != b.queue_bytes, "journal.queue");
    restart(
        a.discovery_interval != b.discovery_interval,
        "discovery.interval",
    );
    restart(a.status_interval != b.status_interval, "status.interval");
    restart(a.file.store != b.file.store, "store");
    restart(a.file.service != b.file.service, "service");
    restart(a.file.leader != b.file.leader, "leader");
    let mut apply = |changed: bool, name: &'static str| {
        if changed {
            c.applied.push(name);
        }
    };
    // Resource sets hold compiled selectors without equality; their
    // debug form names every selector and pattern.
    apply(
        a.presets != b.presets
            || format!("{:?}", a.resource_set) != format!("{:?}", b.resource_set),
        "record.resource_sets",
    );
    apply(a.ignore != b.ignore, "record.ignore");
    apply(a.file.compact != b.file.compact, "compact");
    apply(a.file.encryption != b.file.encryption, "encryption");
    apply(a.file.retention != b.file.retention, "retention");
    c
}

/// What a reload acts on.
#[derive(Clone)]
pub struct Targets {
    /// Sealing, snapshot and encryption settings.
    pub compactor: Arc<Compactor>,
    /// The recorder's resource set and ignore rules (`None`: a reload
    /// changes nothing in the recorder).
    pub live: Option<LiveRecorder>,
    /// The retention policy the prune loop uses.
    pub policy: Arc<RwLock<RetentionPolicy>>,
    /// Whether the prune loop prunes.
    pub auto_prune: Arc<AtomicBool>,
}

/// Applies the run-time part of `new`. Blocking (a changed resource set
/// seals the journal first).
pub fn apply(t: &Targets, new: &Config, changes: &Changes) {
    let changed = |name| changes.applied.contains(&name);
    if let Some(live) = &t.live {
        if changed("record.ignore") {
            match live.ignore.write() {
                Ok(mut rules) => rules.clone_from(&new.ignore),
                Err(poisoned) => poisoned.into_inner().clone_from(&new.ignore),
            }
        }
        if changed("record.resource_sets") {
            // Files sealed from here on name the new set; the events already
            // journaled are sealed under the old one first.
            if let Err(e) = t.compactor.record_set(new.recorded_set.clone()) {
                tracing::warn!(error = %e, "cannot record the reloaded resource set with the files");
            }
            // Fails only once the supervisor has stopped (shutting down).
            let _ = live.resource_set.send(new.resource_set.clone());
        }
    }
    t.compactor.set_settings(new.service.compact.clone());
    match t.policy.write() {
        Ok(mut p) => *p = new.service.compact.retention,
        Err(poisoned) => *poisoned.into_inner() = new.service.compact.retention,
    }
    t.auto_prune
        .store(new.service.auto_prune, Ordering::Relaxed);
}

/// Handles one SIGHUP: reads the file once and validates it with `flags`
/// over it, as at start ([`Settings::load`]); on success returns the
/// configuration now in force.
pub fn reload(flags: &Settings, running: &Config, targets: &Targets) -> Option<Config> {
    let new = match flags.load() {
        Ok(n) => n,
        Err(e) => {
            tracing::error!(error = %e, "configuration reload failed; keeping the running configuration");
            return None;
        }
    };
    let changes = diff(running, &new);
    apply(targets, &new, &changes);
    if !changes.need_restart.is_empty() {
        tracing::warn!(
            settings = ?changes.need_restart,
            "configuration reload: these settings changed but take effect only after a restart"
        );
    }
    tracing::info!(
        applied = ?changes.applied,
        "configuration reloaded"
    );
    // Keep the settings that were not applied as they run, so the next
    // reload still reports them as needing a restart.
    let mut in_force = new;
    in_force.cluster.clone_from(&running.cluster);
    in_force.cluster_id.clone_from(&running.cluster_id);
    in_force.data_dir.clone_from(&running.data_dir);
    in_force.journal.clone_from(&running.journal);
    in_force.flush_interval = running.flush_interval;
    in_force.flush_max_events = running.flush_max_events;
    in_force.queue_bytes = running.queue_bytes;
    in_force.discovery_interval = running.discovery_interval;
    in_force.status_interval = running.status_interval;
    in_force.file.store.clone_from(&running.file.store);
    in_force.file.service.clone_from(&running.file.service);
    Some(in_force)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loaded(dir: &std::path::Path, name: &str, text: &str) -> Result<Config, String> {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        Settings {
            config: Some(path),
            data_dir: Some(dir.to_owned()),
            ..Settings::default()
        }
        .load()
        .map_err(|e| e.to_string())
    }

    const BASE: &str = r#"
[record]
presets = ["rancher"]

[compact]
seal_interval = "1s"
snapshot_after_events = 0

[retention]
keep_last = 3

[service]
admin_socket = "/tmp/x.sock"
metrics_addr = ""
"#;

    #[test]
    fn each_changed_setting_is_applied_or_named_as_needing_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let a = loaded(dir.path(), "a.toml", BASE).unwrap();
        assert_eq!(diff(&a, &a), Changes::default(), "same file, no change");
        let b = loaded(
            dir.path(),
            "b.toml",
            &BASE
                .replace("snapshot_after_events = 0", "snapshot_after_events = 9")
                .replace("keep_last = 3", "keep_last = 4")
                .replace("\"rancher\"", "\"everything\"")
                .replace("/tmp/x.sock", "/tmp/y.sock")
                .replace(
                    "[compact]",
                    "[journal]\nflush_interval_ms = 7\n\n[[record.ignore]]\ntype = \"configmaps\"\nstatus_only = true\n\n[compact]",
                ),
        )
        .unwrap();
        let c = diff(&a, &b);
        assert_eq!(
            c.applied,
            vec![
                "record.resource_sets",
                "record.ignore",
                "compact",
                "retention"
            ]
        );
        assert_eq!(c.need_restart, vec!["journal.flush_interval", "service"]);
    }

    #[test]
    fn an_invalid_file_names_the_setting_and_is_not_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let err = loaded(
            dir.path(),
            "bad.toml",
            &BASE.replace("seal_interval = \"1s\"", "seal_interval = \"soon\""),
        )
        .unwrap_err();
        assert!(err.contains("compact.seal_interval"), "{err}");
        let err = loaded(dir.path(), "bad2.toml", "[record]\npresets = [\"nope\"]\n").unwrap_err();
        assert!(err.contains("nope"), "{err}");
    }
}
