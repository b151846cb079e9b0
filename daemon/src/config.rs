//! Configuration: a TOML file (default `/etc/rewind/rewindd.toml`), every
//! setting also a flag with an environment variable; flags and variables win
//! over the file. [`Settings`] holds the raw values (file or flags), and
//! [`Config::from_settings`] validates them into a [`Config`], with errors
//! that name the setting.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use serde::Deserialize;

use crate::ingest::IgnoreRule;
use crate::journal::JournalOptions;
use rewind_history::select::{self, ResourceSelector, ResourceSet};

/// Default config file.
pub const DEFAULT_CONFIG: &str = "/etc/rewind/rewindd.toml";
/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/rewind";

/// Default sled page cache, MiB (see [`crate::journal::DEFAULT_CACHE_CAPACITY_MB`]).
pub const DEFAULT_CACHE_CAPACITY_MB: u64 = crate::journal::DEFAULT_CACHE_CAPACITY_MB;

/// Default budget of object JSON between the watchers and the journal, MiB.
/// The queue also holds at most `flush_max_events` messages (at least
/// 1,024), so with objects of a few KB the count binds first (2,000 2 KB
/// objects: about 4 MB) and this budget matters for large objects. It is
/// free once the queue drains: the daemon recording 100,000 objects settles
/// at about 115 MB with it (`benches/record_latency.rs`), so 32 is kept.
pub const DEFAULT_QUEUE_MB: u64 = 32;

/// Errors of configuration.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file cannot be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (names the key).
        message: String,
    },
    /// A setting has an invalid value.
    #[error("setting `{setting}`: {message}")]
    Invalid {
        /// The setting, as written in the file.
        setting: String,
        /// What is wrong.
        message: String,
    },
}

/// Result alias of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn invalid(setting: &str, message: impl Into<String>) -> Error {
    Error::Invalid {
        setting: setting.to_owned(),
        message: message.into(),
    }
}

/// Which cluster, as flags. Every field overrides the file's.
#[derive(Debug, Clone, Default, Args)]
pub struct Settings {
    /// Config file [default: /etc/rewind/rewindd.toml, if present].
    #[arg(long, env = "REWIND_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Data directory (journal, status file) [default: /var/lib/rewind].
    #[arg(long, env = "REWIND_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// kubeconfig file of the cluster to record [default: $KUBECONFIG or ~/.kube/config].
    #[arg(long, env = "REWIND_KUBECONFIG", global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// kubeconfig context.
    #[arg(long, env = "REWIND_CONTEXT", global = true)]
    pub context: Option<String>,
    /// Use the pod's service account instead of a kubeconfig.
    #[arg(long, env = "REWIND_IN_CLUSTER", global = true)]
    pub in_cluster: Option<bool>,
    /// Cluster id written into every record [default: uid of kube-system].
    #[arg(long, env = "REWIND_CLUSTER_ID", global = true)]
    pub cluster_id: Option<String>,
    /// Built-in resource sets to record (`rancher`, `everything`), comma-separated.
    #[arg(long, env = "REWIND_PRESETS", value_delimiter = ',', global = true)]
    pub presets: Option<Vec<String>>,
    /// Group commit: flush at most this many ms after the first event of a batch.
    #[arg(long, env = "REWIND_FLUSH_INTERVAL_MS", global = true)]
    pub flush_interval_ms: Option<u64>,
    /// Group commit: flush once a batch has this many events.
    #[arg(long, env = "REWIND_FLUSH_MAX_EVENTS", global = true)]
    pub flush_max_events: Option<usize>,
    /// sled page cache, MiB.
    #[arg(long, env = "REWIND_CACHE_CAPACITY_MB", global = true)]
    pub cache_capacity_mb: Option<u64>,
    /// zstd level of journal blocks and state values.
    #[arg(long, env = "REWIND_ZSTD_LEVEL", global = true)]
    pub zstd_level: Option<i32>,
    /// Memory between watchers and the journal, MiB of object JSON.
    #[arg(long, env = "REWIND_QUEUE_MB", global = true)]
    pub queue_mb: Option<u64>,
    /// Rediscover resource types at least this often, seconds.
    #[arg(long, env = "REWIND_DISCOVERY_INTERVAL_S", global = true)]
    pub discovery_interval_s: Option<u64>,
    /// Write the status file this often, ms.
    #[arg(long, env = "REWIND_STATUS_INTERVAL_MS", global = true)]
    pub status_interval_ms: Option<u64>,
}

/// The config file's schema. Unknown keys are errors (typos must not be
/// silently ignored in a backup tool).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Data directory.
    pub data_dir: Option<PathBuf>,
    /// Which cluster.
    #[serde(default)]
    pub cluster: FileCluster,
    /// What to record.
    #[serde(default)]
    pub record: FileRecord,
    /// Group commit and storage.
    #[serde(default)]
    pub journal: FileJournal,
    /// Discovery.
    #[serde(default)]
    pub discovery: FileDiscovery,
    /// Status reporting.
    #[serde(default)]
    pub status: FileStatus,
    /// `[store]`, `[compact]`, `[retention]`, `[encryption]`, `[service]`:
    /// parsed and validated by [`crate::service::Sections`].
    #[serde(default)]
    pub store: Option<toml::Value>,
    /// See `store`.
    #[serde(default)]
    pub compact: Option<toml::Value>,
    /// See `store`.
    #[serde(default)]
    pub retention: Option<toml::Value>,
    /// See `store`.
    #[serde(default)]
    pub encryption: Option<toml::Value>,
    /// See `store`.
    #[serde(default)]
    pub service: Option<toml::Value>,
}

/// `[cluster]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileCluster {
    /// kubeconfig path.
    pub kubeconfig: Option<PathBuf>,
    /// kubeconfig context.
    pub context: Option<String>,
    /// Use the service account.
    pub in_cluster: Option<bool>,
    /// Cluster id.
    pub id: Option<String>,
}

/// `[record]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRecord {
    /// Built-in sets.
    pub presets: Option<Vec<String>>,
    /// Extra selectors, in ResourceSet shape (`[[record.selectors]]`).
    #[serde(default)]
    pub selectors: Vec<ResourceSelector>,
    /// Ignore rules (`[[record.ignore]]`).
    #[serde(default)]
    pub ignore: Vec<FileIgnore>,
}

/// `[[record.ignore]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileIgnore {
    /// `resource.group` (e.g. `tokens.management.cattle.io`), or `resource`
    /// for the core group.
    #[serde(rename = "type")]
    pub rtype: String,
    /// Dotted field paths.
    #[serde(default)]
    pub fields: Vec<String>,
    /// Ignore status-only updates.
    #[serde(default)]
    pub status_only: bool,
}

/// `[journal]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileJournal {
    /// See [`Settings::flush_interval_ms`].
    pub flush_interval_ms: Option<u64>,
    /// See [`Settings::flush_max_events`].
    pub flush_max_events: Option<usize>,
    /// See [`Settings::cache_capacity_mb`].
    pub cache_capacity_mb: Option<u64>,
    /// See [`Settings::zstd_level`].
    pub zstd_level: Option<i32>,
    /// See [`Settings::queue_mb`].
    pub queue_mb: Option<u64>,
}

/// `[discovery]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDiscovery {
    /// See [`Settings::discovery_interval_s`].
    pub interval_s: Option<u64>,
}

/// `[status]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileStatus {
    /// See [`Settings::status_interval_ms`].
    pub interval_ms: Option<u64>,
}

/// Where the cluster's credentials come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterSource {
    /// A kubeconfig (`None`: kube's default lookup) and optional context.
    Kubeconfig {
        /// The file.
        path: Option<PathBuf>,
        /// The context.
        context: Option<String>,
    },
    /// The pod's service account.
    InCluster,
}

/// Validated configuration of the daemon.
#[derive(Debug, Clone)]
pub struct Config {
    /// Which cluster.
    pub cluster: ClusterSource,
    /// Cluster id for records; `None`: the uid of `kube-system`.
    pub cluster_id: Option<String>,
    /// Data directory; the journal lives in `data_dir/journal`.
    pub data_dir: PathBuf,
    /// What to record.
    pub resource_set: ResourceSet,
    /// Presets in use (for status).
    pub presets: Vec<String>,
    /// Ignore rules by type key.
    pub ignore: HashMap<String, IgnoreRule>,
    /// Longest wait before a batch is flushed.
    pub flush_interval: Duration,
    /// Largest batch.
    pub flush_max_events: usize,
    /// Journal storage options.
    pub journal: JournalOptions,
    /// Bytes of object JSON allowed between watchers and journal.
    pub queue_bytes: usize,
    /// Rediscovery period.
    pub discovery_interval: Duration,
    /// Status file period.
    pub status_interval: Duration,
}

fn range<T: PartialOrd + std::fmt::Display + Copy>(setting: &str, v: T, lo: T, hi: T) -> Result<T> {
    if v < lo || v > hi {
        return Err(invalid(setting, format!("{v} is out of range {lo}..={hi}")));
    }
    Ok(v)
}

impl Settings {
    /// Reads the config file named by `--config`, or the default one if it
    /// exists.
    pub fn load_file(&self) -> Result<FileConfig> {
        let (path, explicit) = match &self.config {
            Some(p) => (p.clone(), true),
            None => (PathBuf::from(DEFAULT_CONFIG), false),
        };
        if !explicit && !path.exists() {
            return Ok(FileConfig::default());
        }
        let text = std::fs::read_to_string(&path).map_err(|source| Error::Read {
            path: path.clone(),
            source,
        })?;
        parse_file(&path, &text)
    }

    /// The data directory, without reading anything else (for `status`).
    pub fn data_dir(&self) -> Result<PathBuf> {
        if let Some(d) = &self.data_dir {
            return Ok(d.clone());
        }
        Ok(self
            .load_file()?
            .data_dir
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)))
    }
}

/// Parses a config file's text.
pub fn parse_file(path: &Path, text: &str) -> Result<FileConfig> {
    toml::from_str(text).map_err(|e| Error::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

impl Config {
    /// Validates flags over file values.
    pub fn from_settings(s: &Settings, f: &FileConfig) -> Result<Self> {
        let in_cluster = s.in_cluster.or(f.cluster.in_cluster).unwrap_or(false);
        let kubeconfig = s
            .kubeconfig
            .clone()
            .or_else(|| f.cluster.kubeconfig.clone());
        let context = s.context.clone().or_else(|| f.cluster.context.clone());
        let cluster = if in_cluster {
            if kubeconfig.is_some() || context.is_some() {
                return Err(invalid(
                    "cluster.in_cluster",
                    "cannot be combined with cluster.kubeconfig or cluster.context",
                ));
            }
            ClusterSource::InCluster
        } else {
            if let Some(p) = &kubeconfig
                && !p.is_file()
            {
                return Err(invalid(
                    "cluster.kubeconfig",
                    format!("{} is not a file", p.display()),
                ));
            }
            ClusterSource::Kubeconfig {
                path: kubeconfig,
                context,
            }
        };
        let cluster_id = s.cluster_id.clone().or_else(|| f.cluster.id.clone());
        if cluster_id.as_deref().is_some_and(|id| id.trim().is_empty()) {
            return Err(invalid("cluster.id", "must not be empty"));
        }
        let data_dir = s
            .data_dir
            .clone()
            .or_else(|| f.data_dir.clone())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        if data_dir.as_os_str().is_empty() {
            return Err(invalid("data_dir", "must not be empty"));
        }

        let presets = s
            .presets
            .clone()
            .or_else(|| f.record.presets.clone())
            .unwrap_or_else(|| vec!["rancher".to_owned()]);
        let mut resource_set = ResourceSet::default();
        for p in &presets {
            let set = select::preset::preset(p.trim())
                .map_err(|e| invalid("record.presets", e.to_string()))?;
            resource_set.extend(set);
        }
        let extra = ResourceSet::compile(&f.record.selectors, "record.selectors")
            .map_err(|e| invalid("record.selectors", e.to_string()))?;
        resource_set.extend(extra);
        if resource_set.is_empty() {
            return Err(invalid(
                "record",
                "selects nothing: name a preset in record.presets or add record.selectors",
            ));
        }

        let mut ignore = HashMap::new();
        for (i, rule) in f.record.ignore.iter().enumerate() {
            let setting = format!("record.ignore[{i}]");
            if rule.rtype.is_empty() || rule.rtype.contains('/') {
                return Err(invalid(
                    &setting,
                    format!(
                        "type {:?} must be `resource.group` or `resource`",
                        rule.rtype
                    ),
                ));
            }
            if rule.fields.is_empty() && !rule.status_only {
                return Err(invalid(
                    &setting,
                    "names no fields and status_only is false",
                ));
            }
            if let Some(bad) = rule
                .fields
                .iter()
                .find(|p| p.is_empty() || p.split('.').any(str::is_empty))
            {
                return Err(invalid(&setting, format!("bad field path {bad:?}")));
            }
            if ignore
                .insert(
                    rule.rtype.clone(),
                    IgnoreRule::new(&rule.fields, rule.status_only),
                )
                .is_some()
            {
                return Err(invalid(
                    &setting,
                    format!("type {} has two rules", rule.rtype),
                ));
            }
        }

        let flush_ms = range(
            "journal.flush_interval_ms",
            s.flush_interval_ms
                .or(f.journal.flush_interval_ms)
                .unwrap_or(20),
            1,
            10_000,
        )?;
        let flush_max_events = range(
            "journal.flush_max_events",
            s.flush_max_events
                .or(f.journal.flush_max_events)
                .unwrap_or(2_000),
            1,
            1_000_000,
        )?;
        let cache_mb = range(
            "journal.cache_capacity_mb",
            s.cache_capacity_mb
                .or(f.journal.cache_capacity_mb)
                .unwrap_or(DEFAULT_CACHE_CAPACITY_MB),
            4,
            65_536,
        )?;
        let zstd_level = range(
            "journal.zstd_level",
            s.zstd_level.or(f.journal.zstd_level).unwrap_or(1),
            1,
            19,
        )?;
        let queue_mb = range(
            "journal.queue_mb",
            s.queue_mb
                .or(f.journal.queue_mb)
                .unwrap_or(DEFAULT_QUEUE_MB),
            2,
            4096,
        )?;
        let discovery_s = range(
            "discovery.interval_s",
            s.discovery_interval_s
                .or(f.discovery.interval_s)
                .unwrap_or(30),
            1,
            86_400,
        )?;
        let status_ms = range(
            "status.interval_ms",
            s.status_interval_ms
                .or(f.status.interval_ms)
                .unwrap_or(1000),
            50,
            600_000,
        )?;
        Ok(Self {
            cluster,
            cluster_id,
            data_dir,
            resource_set,
            presets,
            ignore,
            flush_interval: Duration::from_millis(flush_ms),
            flush_max_events,
            journal: JournalOptions {
                cache_capacity: cache_mb << 20,
                zstd_level,
                ..JournalOptions::default()
            },
            queue_bytes: usize::try_from(queue_mb << 20).unwrap_or(usize::MAX),
            discovery_interval: Duration::from_secs(discovery_s),
            status_interval: Duration::from_millis(status_ms),
        })
    }

    /// Where the journal lives.
    #[must_use]
    pub fn journal_dir(&self) -> PathBuf {
        self.data_dir.join("journal")
    }

    /// Where the status file lives.
    #[must_use]
    pub fn status_path(&self) -> PathBuf {
        crate::status::status_path(&self.data_dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> Result<FileConfig> {
        parse_file(Path::new("test.toml"), text)
    }

    #[test]
    fn defaults_record_the_rancher_preset() {
        let c = Config::from_settings(&Settings::default(), &FileConfig::default()).unwrap();
        assert_eq!(c.presets, vec!["rancher"]);
        assert_eq!(c.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert_eq!(c.flush_interval, Duration::from_millis(20));
        assert!(c.resource_set.len() > 60);
    }

    #[test]
    fn flags_override_the_file() {
        let f = file(
            r#"
data_dir = "/data"
[journal]
flush_interval_ms = 50
[record]
presets = ["everything"]
[[record.selectors]]
apiVersion = "v1"
kindsRegexp = "^configmaps$"
[[record.ignore]]
type = "tokens.management.cattle.io"
fields = ["lastUsedAt"]
"#,
        )
        .unwrap();
        let s = Settings {
            flush_interval_ms: Some(7),
            ..Settings::default()
        };
        let c = Config::from_settings(&s, &f).unwrap();
        assert_eq!(c.flush_interval, Duration::from_millis(7));
        assert_eq!(c.data_dir, PathBuf::from("/data"));
        assert_eq!(c.resource_set.len(), 2);
        assert!(c.ignore.contains_key("tokens.management.cattle.io"));
    }

    #[test]
    fn errors_name_the_setting() {
        let cases: &[(&str, &str)] = &[
            (
                "[journal]\nflush_interval_ms = 0\n",
                "journal.flush_interval_ms",
            ),
            ("[record]\npresets = [\"nope\"]\n", "record.presets"),
            (
                "[[record.selectors]]\napiVersion = \"v1\"\nkindsRegexp = \"(\"\n",
                "kindsRegexp",
            ),
            (
                "[[record.ignore]]\ntype = \"tokens.management.cattle.io\"\n",
                "record.ignore[0]",
            ),
            (
                "[cluster]\nin_cluster = true\ncontext = \"x\"\n",
                "cluster.in_cluster",
            ),
            (
                "[cluster]\nkubeconfig = \"/nonexistent/kubeconfig\"\n",
                "cluster.kubeconfig",
            ),
            ("[record]\npresets = []\n", "record"),
        ];
        for (text, setting) in cases {
            let err = Config::from_settings(&Settings::default(), &file(text).unwrap())
                .unwrap_err()
                .to_string();
            assert!(err.contains(setting), "{text:?} gave {err}");
        }
        let typo = file("[journal]\nflush_intervall_ms = 5\n")
            .unwrap_err()
            .to_string();
        assert!(typo.contains("flush_intervall_ms"), "{typo}");
    }

    #[test]
    fn an_explicit_missing_config_file_is_an_error() {
        let s = Settings {
            config: Some(PathBuf::from("/nonexistent/rewindd.toml")),
            ..Settings::default()
        };
        assert!(s.load_file().is_err());
    }
}

#[cfg(test)]
mod example_tests {
    use super::*;

    #[test]
    fn the_example_config_is_valid() {
        let text = include_str!("../rewindd.example.toml");
        let f = parse_file(Path::new("rewindd.example.toml"), text).unwrap();
        let c = Config::from_settings(&Settings::default(), &f).unwrap();
        assert_eq!(c.presets, vec!["rancher"]);
        assert!(c.ignore.contains_key("tokens.management.cattle.io"));
    }
}
