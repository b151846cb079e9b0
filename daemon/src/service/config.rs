//! The `[store]`, `[compact]`, `[retention]`, `[encryption]` and
//! `[service]` sections of `rewindd.toml` (see `deploy/rewindd.toml`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use rewind_history::store::retention::parse_duration_ms;
use rewind_history::store::{RetentionPolicy, StoreConfig};

use crate::compact::{CompactConfig, CompactError, Settings};

/// `[retention]` as written in the file (durations as text).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionFile {
    /// Keep the N newest snapshots.
    pub keep_last: u32,
    /// Newest snapshot of each of the last N hours.
    pub keep_hourly: u32,
    /// ... days.
    pub keep_daily: u32,
    /// ... ISO weeks.
    pub keep_weekly: u32,
    /// ... months.
    pub keep_monthly: u32,
    /// ... years.
    pub keep_yearly: u32,
    /// Point-in-time window, e.g. `72h`; empty disables it.
    pub point_in_time: String,
    /// Prune the store by this policy every 10 minutes while running.
    pub auto_prune: bool,
}

impl RetentionFile {
    /// The policy, or an error naming the bad setting.
    pub fn policy(&self) -> Result<RetentionPolicy, CompactError> {
        let point_in_time_ms = if self.point_in_time.trim().is_empty() {
            0
        } else {
            parse_duration_ms(&self.point_in_time).ok_or_else(|| CompactError::Config {
                setting: "retention.point_in_time",
                reason: format!("`{}` is not a duration like 72h or 7d", self.point_in_time),
            })?
        };
        Ok(RetentionPolicy {
            keep_last: self.keep_last,
            keep_hourly: self.keep_hourly,
            keep_daily: self.keep_daily,
            keep_weekly: self.keep_weekly,
            keep_monthly: self.keep_monthly,
            keep_yearly: self.keep_yearly,
            point_in_time_ms,
        })
    }
}

/// `[encryption]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EncryptionFile {
    /// age X25519 public keys (`age1...`).
    pub recipients: Vec<String>,
    /// Files with one recipient per line (`#` comments allowed).
    pub recipients_files: Vec<PathBuf>,
}

/// `[service]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceFile {
    /// The admin socket.
    pub admin_socket: PathBuf,
    /// Group that owns the admin socket (mode 0660); `None` keeps the
    /// daemon's group.
    pub admin_group: Option<String>,
    /// Loopback address of `/metrics`, `/healthz`, `/readyz`; empty disables.
    pub metrics_addr: String,
}

impl Default for ServiceFile {
    fn default() -> Self {
        Self {
            admin_socket: PathBuf::from(DEFAULT_SOCKET),
            admin_group: None,
            metrics_addr: "127.0.0.1:9464".into(),
        }
    }
}

/// Where `rewindd snapshot` looks for the daemon by default.
pub const DEFAULT_SOCKET: &str = "/run/rewind/rewindd.sock";

/// The sections this module reads, all optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Sections {
    /// `[store]`; default: a local directory `<data_dir>/store`.
    pub store: Option<StoreConfig>,
    /// `[compact]`.
    pub compact: CompactConfig,
    /// `[retention]`.
    pub retention: RetentionFile,
    /// `[encryption]`.
    pub encryption: EncryptionFile,
    /// `[service]`.
    pub service: ServiceFile,
}

/// Validated service settings.
#[derive(Debug, Clone)]
pub struct ServiceSettings {
    /// Compaction, store and retention.
    pub compact: Settings,
    /// Admin socket.
    pub admin_socket: PathBuf,
    /// Its group.
    pub admin_group: Option<String>,
    /// Metrics address.
    pub metrics_addr: Option<SocketAddr>,
    /// Prune after stored snapshots.
    pub auto_prune: bool,
}

impl Sections {
    /// Reads the sections from the config file at `path` (other sections
    /// are the journal's; they are ignored here). A missing default file
    /// means all defaults.
    pub fn load(path: Option<&Path>) -> Result<Self, CompactError> {
        let (path, explicit) = match path {
            Some(p) => (p.to_owned(), true),
            None => (PathBuf::from("/etc/rewind/rewindd.toml"), false),
        };
        if !explicit && !path.exists() {
            return Ok(Self::default());
        }
        let text = std::fs::read_to_string(&path).map_err(|e| CompactError::Config {
            setting: "config",
            reason: format!("{}: {e}", path.display()),
        })?;
        Self::parse(&text)
    }

    /// Parses the sections out of a whole config file.
    pub fn parse(text: &str) -> Result<Self, CompactError> {
        #[derive(Deserialize)]
        struct Whole {
            #[serde(default)]
            store: Option<StoreConfig>,
            #[serde(default)]
            compact: CompactConfig,
            #[serde(default)]
            retention: RetentionFile,
            #[serde(default)]
            encryption: EncryptionFile,
            #[serde(default)]
            service: ServiceFile,
        }
        let w: Whole = toml::from_str(text).map_err(|e| CompactError::Config {
            setting: "config",
            reason: e.to_string(),
        })?;
        Ok(Self {
            store: w.store,
            compact: w.compact,
            retention: w.retention,
            encryption: w.encryption,
            service: w.service,
        })
    }

    /// Validates everything, naming the first wrong setting.
    pub fn validate(&self, data_dir: &Path) -> Result<ServiceSettings, CompactError> {
        let store = self
            .store
            .clone()
            .unwrap_or_else(|| StoreConfig::default_local(data_dir));
        let mut compact = self.compact.clone();
        compact
            .recipients
            .extend(self.encryption.recipients.iter().cloned());
        for f in &self.encryption.recipients_files {
            let text = std::fs::read_to_string(f).map_err(|e| CompactError::Config {
                setting: "encryption.recipients_files",
                reason: format!("{}: {e}", f.display()),
            })?;
            compact.recipients.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(str::to_owned),
            );
        }
        let settings = compact.validate(store, self.retention.policy()?)?;
        let metrics_addr = if self.service.metrics_addr.trim().is_empty() {
            None
        } else {
            let addr: SocketAddr =
                self.service
                    .metrics_addr
                    .parse()
                    .map_err(|e| CompactError::Config {
                        setting: "service.metrics_addr",
                        reason: format!("`{}`: {e}", self.service.metrics_addr),
                    })?;
            if !addr.ip().is_loopback() {
                return Err(CompactError::Config {
                    setting: "service.metrics_addr",
                    reason: "must be a loopback address".into(),
                });
            }
            Some(addr)
        };
        Ok(ServiceSettings {
            compact: settings,
            admin_socket: self.service.admin_socket.clone(),
            admin_group: self.service.admin_group.clone(),
            metrics_addr,
            auto_prune: self.retention.auto_prune,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example in `deploy/` must stay valid for both parsers.
    #[test]
    fn deploy_example_parses_and_validates() {
        let text = include_str!("../../../deploy/rewindd.toml");
        let journal = crate::config::parse_file(Path::new("rewindd.toml"), text).unwrap();
        assert_eq!(
            journal.data_dir.as_deref(),
            Some(Path::new("/var/lib/rewind"))
        );
        let s = Sections::parse(text).unwrap();
        let v = s.validate(Path::new("/var/lib/rewind")).unwrap();
        assert_eq!(v.compact.retention.keep_daily, 7);
        assert_eq!(v.compact.retention.point_in_time_ms, 72 * 3_600_000);
        assert_eq!(v.compact.seal_interval, std::time::Duration::from_secs(10));
        assert!(v.compact.schedule.is_some());
        assert_eq!(v.admin_group.as_deref(), Some("rewind-admin"));
        assert!(v.compact.recipients.is_empty());
    }

    /// Regression: the example says "the values shown are the defaults", but
    /// its `[journal]` showed a 50 ms flush interval, 4,096 events per batch
    /// and a 64 MiB queue (defaults 20, 2,000 and 32), so a daemon installed
    /// from it held twice the queue memory that docs/MANUAL.md measured.
    #[test]
    fn regression_deploy_example_journal_values_are_the_defaults() {
        let text = include_str!("../../../deploy/rewindd.toml");
        let file = crate::config::parse_file(Path::new("rewindd.toml"), text).unwrap();
        // The example's kubeconfig path need not exist here.
        let kubeconfig = tempfile::NamedTempFile::new().unwrap();
        let s = crate::config::Settings {
            kubeconfig: Some(kubeconfig.path().to_owned()),
            data_dir: Some("/var/lib/rewind".into()),
            ..crate::config::Settings::default()
        };
        let example = crate::config::Config::from_settings(&s, &file).unwrap();
        let builtin =
            crate::config::Config::from_settings(&s, &crate::config::FileConfig::default())
                .unwrap();
        assert_eq!(
            example.journal.cache_capacity,
            builtin.journal.cache_capacity
        );
        assert_eq!(example.journal.zstd_level, builtin.journal.zstd_level);
        assert_eq!(example.journal.block_bytes, builtin.journal.block_bytes);
        assert_eq!(example.queue_bytes, builtin.queue_bytes);
        assert_eq!(example.flush_interval, builtin.flush_interval);
        assert_eq!(example.flush_max_events, builtin.flush_max_events);
    }

    #[test]
    fn errors_name_the_setting() {
        let bad = [
            (
                "[compact]\nseal_interval = \"soon\"",
                "compact.seal_interval",
            ),
            (
                "[compact]\nsnapshot_schedule = \"61 * * * *\"",
                "compact.snapshot_schedule",
            ),
            (
                "[encryption]\nrecipients = [\"age1nope\"]",
                "encryption.recipients",
            ),
            (
                "[retention]\npoint_in_time = \"3 fortnights\"",
                "retention.point_in_time",
            ),
            (
                "[service]\nmetrics_addr = \"0.0.0.0:9464\"",
                "service.metrics_addr",
            ),
            (
                "[store]\nkind = \"s3\"\nbucket = \"b\"\nendpoint = \"http://10.1.2.3\"",
                "store",
            ),
        ];
        for (text, setting) in bad {
            let err = Sections::parse(text)
                .and_then(|s| s.validate(Path::new("/d")))
                .unwrap_err()
                .to_string();
            assert!(err.contains(setting), "{text}: {err}");
        }
    }
}
