//! rewindd's configuration: one TOML file (default [`DEFAULT_CONFIG`]) and
//! the command-line flags, each with an environment variable, that override
//! the file's recorder settings ([`Settings`]).
//!
//! - [`FileConfig`] is the file's schema: one struct per section, every
//!   default in its `Default` impl. Unknown keys are errors. The `[store]`
//!   and `[compact]` sections are the types of the code that uses them
//!   ([`StoreConfig`], [`CompactConfig`]).
//! - [`Settings::load`] reads the file once, parses it into a
//!   [`FileConfig`] and validates flags over file into one [`Config`]:
//!   `rewindd run` starts from it, and a SIGHUP reload
//!   ([`crate::service::reload`]) builds the next one the same way.
//! - Every validation error names the setting as written in the file.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use serde::Deserialize;

use crate::compact::{CompactConfig, CompactError, Settings as CompactSettings};
use crate::ingest::IgnoreRule;
use crate::journal::JournalOptions;
use rewind_format::crypto::Recipient;
use rewind_history::select::{self, ResourceSelector, ResourceSet};
use rewind_history::store::layout::RecordedResourceSet;
use rewind_history::store::retention::parse_duration_ms;
use rewind_history::store::{RetentionPolicy, StoreConfig};

/// Default config file.
pub const DEFAULT_CONFIG: &str = "/etc/rewind/rewindd.toml";
/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/rewind";
/// Default admin socket; where `rewindd snapshot` looks for the daemon.
pub const DEFAULT_SOCKET: &str = "/run/rewind/rewindd.sock";
/// Default address of `/metrics`, `/healthz` and `/readyz`.
pub const DEFAULT_METRICS_ADDR: &str = "127.0.0.1:9464";

/// Default sled page cache, MiB (see [`crate::journal::DEFAULT_CACHE_CAPACITY_MB`]).
pub const DEFAULT_CACHE_CAPACITY_MB: u64 = crate::journal::DEFAULT_CACHE_CAPACITY_MB;

/// Default budget of object JSON between the watchers and the journal, MiB.
/// The queue also holds at most `flush_max_events` messages (at least
/// 1,024), so with objects of a few KB the count binds first (2,000 2 KB
/// objects: about 4 MB) and this budget matters for large objects. It is
/// free once the queue drains (the settled RSS with it: `docs/BENCHMARKS.md`,
/// "Design measurements").
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

/// The compactor's validation names its setting the same way.
fn from_compact(e: CompactError) -> Error {
    match e {
        CompactError::Config { setting, reason } => invalid(setting, reason),
        other => invalid("compact", other.to_string()),
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
    /// Record into a store whose lineages name another cluster id, as a new
    /// child lineage (after a cluster was rebuilt with a new kube-system uid).
    #[arg(long, env = "REWIND_ADOPT_STORE", global = true)]
    pub adopt_store: Option<bool>,
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

/// The config file's schema, every section optional. Unknown keys are
/// errors (typos must not be silently ignored in a backup tool).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileConfig {
    /// Data directory (journal, status file, local files of the store).
    pub data_dir: PathBuf,
    /// `[cluster]`: which cluster.
    pub cluster: FileCluster,
    /// `[record]`: what to record.
    pub record: FileRecord,
    /// `[journal]`: group commit and storage.
    pub journal: FileJournal,
    /// `[discovery]`.
    pub discovery: FileDiscovery,
    /// `[status]`.
    pub status: FileStatus,
    /// `[store]`: where segments and snapshots go; `None`: a local
    /// directory `<data_dir>/store`.
    pub store: Option<StoreConfig>,
    /// `[compact]`: sealing and snapshots.
    pub compact: CompactConfig,
    /// `[retention]`: what to keep in the store.
    pub retention: FileRetention,
    /// `[encryption]`: who may read what is stored.
    pub encryption: FileEncryption,
    /// `[service]`: admin socket and metrics.
    pub service: FileService,
    /// `[leader]`: leadership by a Lease when two recorders share a store.
    pub leader: FileLeader,
}

impl Default for FileConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            cluster: FileCluster::default(),
            record: FileRecord::default(),
            journal: FileJournal::default(),
            discovery: FileDiscovery::default(),
            status: FileStatus::default(),
            store: None,
            compact: CompactConfig::default(),
            retention: FileRetention::default(),
            encryption: FileEncryption::default(),
            service: FileService::default(),
            leader: FileLeader::default(),
        }
    }
}

/// `[leader]`: leadership by a `coordination.k8s.io/v1` Lease in the
/// recorded cluster. Without `lease` the recorder always ships (one
/// recorder per store).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileLeader {
    /// `namespace/name` of the Lease; empty: no leader election.
    pub lease: String,
    /// How long a holder's lease lasts after its last renewal
    /// (`leaseDurationSeconds`).
    pub duration_s: u64,
    /// How long the holder goes on shipping after its last successful
    /// renewal, by its own monotonic clock; shorter than the duration, the
    /// difference being the safety margin against a standby taking over.
    pub renew_deadline_ms: u64,
    /// Pause between two attempts to take or renew the Lease.
    pub retry_ms: u64,
}

impl Default for FileLeader {
    fn default() -> Self {
        Self {
            lease: String::new(),
            duration_s: 15,
            renew_deadline_ms: 10_000,
            retry_ms: 2_000,
        }
    }
}

/// `[cluster]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileCluster {
    /// kubeconfig path; `None`: `$KUBECONFIG` or `~/.kube/config`.
    pub kubeconfig: Option<PathBuf>,
    /// kubeconfig context.
    pub context: Option<String>,
    /// Use the service account.
    pub in_cluster: bool,
    /// Cluster id; `None`: the uid of `kube-system`.
    pub id: Option<String>,
    /// Record into a store whose lineages name another cluster id (as a
    /// new child lineage) instead of refusing to start.
    pub adopt_store: bool,
}

/// `[record]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileRecord {
    /// Built-in sets.
    pub presets: Vec<String>,
    /// Extra selectors, in ResourceSet shape (`[[record.selectors]]`).
    pub selectors: Vec<ResourceSelector>,
    /// Ignore rules (`[[record.ignore]]`).
    pub ignore: Vec<FileIgnore>,
}

impl Default for FileRecord {
    fn default() -> Self {
        Self {
            presets: vec!["rancher".to_owned()],
            selectors: Vec::new(),
            ignore: Vec::new(),
        }
    }
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
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileJournal {
    /// See [`Settings::flush_interval_ms`].
    pub flush_interval_ms: u64,
    /// See [`Settings::flush_max_events`].
    pub flush_max_events: usize,
    /// See [`Settings::cache_capacity_mb`].
    pub cache_capacity_mb: u64,
    /// See [`Settings::zstd_level`].
    pub zstd_level: i32,
    /// See [`Settings::queue_mb`].
    pub queue_mb: u64,
}

impl Default for FileJournal {
    fn default() -> Self {
        Self {
            flush_interval_ms: 20,
            flush_max_events: 2_000,
            cache_capacity_mb: DEFAULT_CACHE_CAPACITY_MB,
            zstd_level: JournalOptions::default().zstd_level,
            queue_mb: DEFAULT_QUEUE_MB,
        }
    }
}

/// `[discovery]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileDiscovery {
    /// See [`Settings::discovery_interval_s`].
    pub interval_s: u64,
}

impl Default for FileDiscovery {
    fn default() -> Self {
        Self { interval_s: 30 }
    }
}

/// `[status]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileStatus {
    /// See [`Settings::status_interval_ms`].
    pub interval_ms: u64,
}

impl Default for FileStatus {
    fn default() -> Self {
        Self { interval_ms: 1000 }
    }
}

/// `[retention]` (durations as text).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileRetention {
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

impl FileRetention {
    /// The policy, or an error naming the bad setting.
    pub fn policy(&self) -> Result<RetentionPolicy> {
        let point_in_time_ms = if self.point_in_time.trim().is_empty() {
            0
        } else {
            parse_duration_ms(&self.point_in_time).ok_or_else(|| {
                invalid(
                    "retention.point_in_time",
                    format!("`{}` is not a duration like 72h or 7d", self.point_in_time),
                )
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

/// `[encryption]`: the only place recipients are configured.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileEncryption {
    /// age X25519 public keys (`age1...`).
    pub recipients: Vec<String>,
    /// Files with one recipient per line (`#` comments allowed).
    pub recipients_files: Vec<PathBuf>,
}

impl FileEncryption {
    /// Every recipient, inline ones first, then each file's in order.
    /// Reads the files.
    pub fn parse(&self) -> Result<Vec<Recipient>> {
        let mut texts = self.recipients.clone();
        for f in &self.recipients_files {
            let text = std::fs::read_to_string(f).map_err(|e| {
                invalid(
                    "encryption.recipients_files",
                    format!("{}: {e}", f.display()),
                )
            })?;
            texts.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(str::to_owned),
            );
        }
        texts
            .iter()
            .map(|r| rewind_format::crypto::parse_recipient(r))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| invalid("encryption.recipients", e.to_string()))
    }
}

/// `[service]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileService {
    /// The admin socket.
    pub admin_socket: PathBuf,
    /// Group that owns the admin socket (mode 0660); `None` keeps the
    /// daemon's group.
    pub admin_group: Option<String>,
    /// Loopback address of `/metrics`, `/healthz`, `/readyz`; empty disables.
    pub metrics_addr: String,
}

impl Default for FileService {
    fn default() -> Self {
        Self {
            admin_socket: PathBuf::from(DEFAULT_SOCKET),
            admin_group: None,
            metrics_addr: DEFAULT_METRICS_ADDR.to_owned(),
        }
    }
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

/// Validated configuration of the whole daemon.
#[derive(Debug, Clone)]
pub struct Config {
    /// Which cluster.
    pub cluster: ClusterSource,
    /// Cluster id for records; `None`: the uid of `kube-system`.
    pub cluster_id: Option<String>,
    /// Whether a store of another cluster id may be continued.
    pub adopt_store: bool,
    /// Data directory; the journal lives in `data_dir/journal`.
    pub data_dir: PathBuf,
    /// What to record.
    pub resource_set: ResourceSet,
    /// The same set as the configuration names it (presets by name,
    /// selectors as written): stored with every segment and snapshot so a
    /// restore's prune knows what was recorded.
    pub recorded_set: RecordedResourceSet,
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
    /// `[store]`, `[compact]`, `[encryption]`, `[retention]`, `[service]`.
    pub service: ServiceSettings,
    /// `[leader]`; `None`: no leader election, this recorder ships.
    pub leader: Option<crate::leader::LeaderSettings>,
    /// The file as parsed, before flags. Reload compares the sections that
    /// have no flags (`[store]`, `[compact]`, `[encryption]`,
    /// `[retention]`, `[service]`) as written; everything else reads the
    /// validated fields above.
    pub file: FileConfig,
}

/// Validated `[store]`, `[compact]`, `[encryption]`, `[retention]` and
/// `[service]`: what the service around the recorder needs.
#[derive(Debug, Clone)]
pub struct ServiceSettings {
    /// Sealing, snapshots, store, encryption and retention.
    pub compact: CompactSettings,
    /// Admin socket.
    pub admin_socket: PathBuf,
    /// Its group.
    pub admin_group: Option<String>,
    /// Metrics address; `None`: no metrics endpoint.
    pub metrics_addr: Option<SocketAddr>,
    /// Prune after stored snapshots.
    pub auto_prune: bool,
}

fn range<T: PartialOrd + std::fmt::Display + Copy>(setting: &str, v: T, lo: T, hi: T) -> Result<T> {
    if v < lo || v > hi {
        return Err(invalid(setting, format!("{v} is out of range {lo}..={hi}")));
    }
    Ok(v)
}

impl Settings {
    /// Reads and parses the config file named by `--config`, or the default
    /// one if it exists (none: every default).
    pub fn read_file(&self) -> Result<FileConfig> {
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

    /// The whole configuration: the file read once, parsed, and validated
    /// with these flags over it.
    pub fn load(&self) -> Result<Config> {
        Config::from_settings(self, &self.read_file()?)
    }

    /// The data directory of `file` with these flags over it.
    #[must_use]
    pub fn data_dir_in(&self, file: &FileConfig) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| file.data_dir.clone())
    }

    /// The data directory, reading the file only if no flag names it (for
    /// `status`).
    pub fn data_dir(&self) -> Result<PathBuf> {
        if let Some(d) = &self.data_dir {
            return Ok(d.clone());
        }
        Ok(self.read_file()?.data_dir)
    }
}

/// Parses a config file's text.
pub fn parse_file(path: &Path, text: &str) -> Result<FileConfig> {
    toml::from_str(text).map_err(|e| Error::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Validates `[leader]`: `None` when no Lease is named.
fn leader_settings(f: &FileLeader) -> Result<Option<crate::leader::LeaderSettings>> {
    if f.lease.trim().is_empty() {
        return Ok(None);
    }
    let (namespace, name) = f
        .lease
        .split_once('/')
        .filter(|(ns, n)| is_dns_label(ns) && is_dns_subdomain(n))
        .ok_or_else(|| {
            invalid(
                "leader.lease",
                format!(
                    "{:?} is not `namespace/name` (a DNS label, a slash, a DNS subdomain)",
                    f.lease
                ),
            )
        })?;
    let duration_s = range("leader.duration_s", f.duration_s, 2, 3600)?;
    let deadline_ms = range(
        "leader.renew_deadline_ms",
        f.renew_deadline_ms,
        500,
        3_600_000,
    )?;
    if deadline_ms >= duration_s.saturating_mul(1000) {
        return Err(invalid(
            "leader.renew_deadline_ms",
            format!(
                "{deadline_ms} ms must be shorter than leader.duration_s ({duration_s} s): the difference is the margin that keeps a deposed leader from shipping once another may hold the Lease"
            ),
        ));
    }
    let retry_ms = range("leader.retry_ms", f.retry_ms, 50, 600_000)?;
    if retry_ms >= deadline_ms {
        return Err(invalid(
            "leader.retry_ms",
            format!(
                "{retry_ms} ms must be shorter than leader.renew_deadline_ms ({deadline_ms} ms)"
            ),
        ));
    }
    Ok(Some(crate::leader::LeaderSettings {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        duration: Duration::from_secs(duration_s),
        renew_deadline: Duration::from_millis(deadline_ms),
        retry: Duration::from_millis(retry_ms),
    }))
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

impl Config {
    /// Validates flags over file values, naming the first wrong setting.
    pub fn from_settings(s: &Settings, f: &FileConfig) -> Result<Self> {
        let in_cluster = s.in_cluster.unwrap_or(f.cluster.in_cluster);
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
        let data_dir = s.data_dir_in(f);
        if data_dir.as_os_str().is_empty() {
            return Err(invalid("data_dir", "must not be empty"));
        }

        let presets = s
            .presets
            .clone()
            .unwrap_or_else(|| f.record.presets.clone());
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
            s.flush_interval_ms.unwrap_or(f.journal.flush_interval_ms),
            1,
            10_000,
        )?;
        let flush_max_events = range(
            "journal.flush_max_events",
            s.flush_max_events.unwrap_or(f.journal.flush_max_events),
            1,
            1_000_000,
        )?;
        let cache_mb = range(
            "journal.cache_capacity_mb",
            s.cache_capacity_mb.unwrap_or(f.journal.cache_capacity_mb),
            4,
            65_536,
        )?;
        let zstd_level = range(
            "journal.zstd_level",
            s.zstd_level.unwrap_or(f.journal.zstd_level),
            1,
            19,
        )?;
        let queue_mb = range(
            "journal.queue_mb",
            s.queue_mb.unwrap_or(f.journal.queue_mb),
            2,
            4096,
        )?;
        let discovery_s = range(
            "discovery.interval_s",
            s.discovery_interval_s.unwrap_or(f.discovery.interval_s),
            1,
            86_400,
        )?;
        let status_ms = range(
            "status.interval_ms",
            s.status_interval_ms.unwrap_or(f.status.interval_ms),
            50,
            600_000,
        )?;
        let service = ServiceSettings::from_file(f, &data_dir)?;
        let leader = leader_settings(&f.leader)?;
        Ok(Self {
            cluster,
            cluster_id,
            adopt_store: s.adopt_store.unwrap_or(f.cluster.adopt_store),
            data_dir,
            resource_set,
            recorded_set: RecordedResourceSet {
                presets: presets.iter().map(|p| p.trim().to_owned()).collect(),
                selectors: f.record.selectors.clone(),
            },
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
            service,
            leader,
            file: f.clone(),
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

    /// Settings that are valid but weaken what the daemon protects, one
    /// line each; `rewindd run` logs them as warnings at start.
    #[must_use]
    pub fn weak_settings(&self) -> Vec<WeakSetting> {
        let mut out = Vec::new();
        let compact = &self.service.compact;
        if matches!(compact.store, StoreConfig::S3(_)) && compact.recipients.is_empty() {
            out.push(WeakSetting::S3WithoutRecipients);
        }
        if let ClusterSource::Kubeconfig { path, context } = &self.cluster
            && let Some(cluster) =
                kubeconfig_skipping_tls_verify(path.as_deref(), context.as_deref())
        {
            out.push(WeakSetting::InsecureSkipTlsVerify { cluster });
        }
        out
    }

    /// Logs [`Config::weak_settings`] as warnings.
    pub fn warn_weak_settings(&self) {
        for w in self.weak_settings() {
            match &w {
                WeakSetting::S3WithoutRecipients => tracing::warn!(
                    setting = "encryption.recipients",
                    "shipping to S3 without encryption recipients: every recorded Secret \
                     is stored in the bucket readable by anyone who can read the bucket; \
                     set [encryption] recipients"
                ),
                WeakSetting::InsecureSkipTlsVerify { cluster } => tracing::warn!(
                    setting = "cluster.kubeconfig",
                    cluster = %cluster,
                    "the kubeconfig sets insecure-skip-tls-verify: the apiserver's \
                     certificate is not checked, so anyone on the path can read every \
                     recorded object, Secrets included; give the kubeconfig the \
                     cluster's certificate-authority-data instead"
                ),
            }
        }
    }
}

/// A valid setting that weakens what the daemon protects
/// ([`Config::weak_settings`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WeakSetting {
    /// The store is S3 and `[encryption]` has no recipients: Secrets leave
    /// the host in plain text.
    S3WithoutRecipients,
    /// The kubeconfig's cluster sets `insecure-skip-tls-verify: true`.
    InsecureSkipTlsVerify {
        /// The kubeconfig's name of the cluster.
        cluster: String,
    },
}

/// The name of the kubeconfig cluster the daemon will use, if it sets
/// `insecure-skip-tls-verify: true`. A kubeconfig that cannot be read is
/// left to the client, which reports it when it connects.
fn kubeconfig_skipping_tls_verify(path: Option<&Path>, context: Option<&str>) -> Option<String> {
    use kube::config::Kubeconfig;
    let kc = match path {
        Some(p) => Kubeconfig::read_from(p).ok()?,
        None => Kubeconfig::read().ok()?,
    };
    let context = context.map(str::to_owned).or(kc.current_context.clone())?;
    let cluster = kc
        .contexts
        .iter()
        .find(|c| c.name == context)?
        .context
        .as_ref()?
        .cluster
        .clone();
    let named = kc.clusters.iter().find(|c| c.name == cluster)?;
    named
        .cluster
        .as_ref()?
        .insecure_skip_tls_verify
        .unwrap_or(false)
        .then_some(cluster)
}

impl ServiceSettings {
    /// Validates `f`'s `[store]`, `[compact]`, `[encryption]`, `[retention]`
    /// and `[service]`; the default store is `<data_dir>/store`. Reads the
    /// recipient files.
    pub fn from_file(f: &FileConfig, data_dir: &Path) -> Result<Self> {
        let store = f
            .store
            .clone()
            .unwrap_or_else(|| StoreConfig::default_local(data_dir));
        let recipients = f.encryption.parse()?;
        let mut compact = f
            .compact
            .validate(store, f.retention.policy()?)
            .map_err(from_compact)?;
        compact.recipients = recipients;
        let metrics_addr = if f.service.metrics_addr.trim().is_empty() {
            None
        } else {
            let addr: SocketAddr = f.service.metrics_addr.parse().map_err(|e| {
                invalid(
                    "service.metrics_addr",
                    format!("`{}`: {e}", f.service.metrics_addr),
                )
            })?;
            if !addr.ip().is_loopback() {
                return Err(invalid(
                    "service.metrics_addr",
                    "must be a loopback address",
                ));
            }
            Some(addr)
        };
        Ok(Self {
            compact,
            admin_socket: f.service.admin_socket.clone(),
            admin_group: f.service.admin_group.clone(),
            metrics_addr,
            auto_prune: f.retention.auto_prune,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> Result<FileConfig> {
        parse_file(Path::new("test.toml"), text)
    }

    #[test]
    fn weak_settings_name_s3_without_recipients_and_a_kubeconfig_skipping_tls_verify() {
        let dir = tempfile::tempdir().unwrap();
        let kc = dir.path().join("kubeconfig");
        std::fs::write(
            &kc,
            "apiVersion: v1\nkind: Config\nclusters:\n\
             - name: careful\n  cluster:\n    server: https://127.0.0.1:1\n\
             - name: trusting\n  cluster:\n    server: https://127.0.0.1:1\n    insecure-skip-tls-verify: true\n\
             contexts:\n\
             - name: careful\n  context:\n    cluster: careful\n    user: u\n\
             - name: trusting\n  context:\n    cluster: trusting\n    user: u\n\
             current-context: careful\nusers:\n- name: u\n  user:\n    token: t\n",
        )
        .unwrap();
        let creds = dir.path().join("credentials");
        std::fs::write(&creds, "access_key_id = a\nsecret_access_key = b\n").unwrap();
        let text = |context: &str, store: &str| {
            format!(
                "[cluster]\nkubeconfig = {kc:?}\n{context}\n[store]\n{store}\n",
                kc = kc.display().to_string()
            )
        };
        let s3 = format!(
            "kind = \"s3\"\nendpoint = \"http://127.0.0.1:1\"\nbucket = \"b\"\n\
             region = \"r\"\ncredentials_file = {:?}\nallow_http = true\n",
            creds.display().to_string()
        );
        let local = "kind = \"local\"\npath = \"/tmp/rewind-store\"\n";
        let weak = |t: String| {
            Config::from_settings(&Settings::default(), &file(&t).unwrap())
                .unwrap()
                .weak_settings()
        };
        // The current context's cluster checks its certificate; local store.
        assert_eq!(weak(text("", local)), vec![]);
        // The chosen context's cluster does not.
        assert_eq!(
            weak(text("context = \"trusting\"", local)),
            vec![WeakSetting::InsecureSkipTlsVerify {
                cluster: "trusting".into()
            }]
        );
        assert_eq!(weak(text("", &s3)), vec![WeakSetting::S3WithoutRecipients]);
        let key = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";
        let encrypted = format!(
            "{}\n[encryption]\nrecipients = [\"{key}\"]\n",
            text("", &s3)
        );
        assert_eq!(weak(encrypted), vec![]);
    }

    #[test]
    fn the_leader_section_is_off_unless_a_lease_is_named_and_names_each_wrong_value() {
        let c = Config::from_settings(&Settings::default(), &FileConfig::default()).unwrap();
        assert_eq!(c.leader, None, "no [leader]: one recorder, always ships");
        let ok = file("[leader]\nlease = \"rewind-system/rewindd\"\n").unwrap();
        let l = Config::from_settings(&Settings::default(), &ok)
            .unwrap()
            .leader
            .unwrap();
        assert_eq!(
            (l.namespace.as_str(), l.name.as_str()),
            ("rewind-system", "rewindd")
        );
        assert_eq!(l.duration, Duration::from_secs(15));
        assert_eq!(l.renew_deadline, Duration::from_secs(10));
        assert_eq!(l.retry, Duration::from_secs(2));
        for (text, setting) in [
            ("lease = \"rewindd\"", "leader.lease"),
            ("lease = \"Rewind/x\"", "leader.lease"),
            (
                "lease = \"a/b\"\nrenew_deadline_ms = 15000",
                "leader.renew_deadline_ms",
            ),
            ("lease = \"a/b\"\nretry_ms = 10000", "leader.retry_ms"),
            ("lease = \"a/b\"\nduration_s = 1", "leader.duration_s"),
        ] {
            let f = file(&format!("[leader]\n{text}\n")).unwrap();
            let err = Config::from_settings(&Settings::default(), &f).unwrap_err();
            assert!(err.to_string().contains(setting), "{text}: {err}");
        }
    }

    #[test]
    fn defaults_record_the_rancher_preset() {
        let c = Config::from_settings(&Settings::default(), &FileConfig::default()).unwrap();
        assert_eq!(c.presets, vec!["rancher"]);
        assert_eq!(c.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert_eq!(c.flush_interval, Duration::from_millis(20));
        assert!(c.resource_set.len() > 60);
        assert_eq!(c.service.admin_socket, PathBuf::from(DEFAULT_SOCKET));
        assert_eq!(
            c.service.compact.store,
            StoreConfig::default_local(Path::new(DEFAULT_DATA_DIR))
        );
    }

    #[test]
    fn an_empty_file_is_every_default() {
        let empty = Config::from_settings(&Settings::default(), &file("").unwrap()).unwrap();
        let builtin = Config::from_settings(&Settings::default(), &FileConfig::default()).unwrap();
        assert_eq!(format!("{empty:?}"), format!("{builtin:?}"));
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
        assert_eq!(
            c.service.compact.store,
            StoreConfig::default_local(Path::new("/data"))
        );
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
                "[encryption]\nrecipients_files = [\"/nonexistent/recipients\"]",
                "encryption.recipients_files",
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
        let typo = file("[compact]\nseal_intervall = \"5s\"\n")
            .unwrap_err()
            .to_string();
        assert!(typo.contains("seal_intervall"), "{typo}");
    }

    /// Recipients are read from `[encryption]` only: under `[compact]` the
    /// key is unknown, and the error names it.
    #[test]
    fn recipients_are_an_encryption_setting_only() {
        let key = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";
        let err = file(&format!("[compact]\nrecipients = [\"{key}\"]\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("recipients"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let listed = dir.path().join("recipients.txt");
        std::fs::write(&listed, format!("# ops\n\n  {key}  \n")).unwrap();
        let f = file(&format!(
            "[encryption]\nrecipients = [\"{key}\"]\nrecipients_files = [{:?}]\n",
            listed.display().to_string()
        ))
        .unwrap();
        let c = Config::from_settings(&Settings::default(), &f).unwrap();
        assert_eq!(c.service.compact.recipients.len(), 2);
    }

    #[test]
    fn an_explicit_missing_config_file_is_an_error() {
        let s = Settings {
            config: Some(PathBuf::from("/nonexistent/rewindd.toml")),
            ..Settings::default()
        };
        assert!(matches!(s.read_file(), Err(Error::Read { .. })));
        assert!(s.load().is_err());
    }

    #[test]
    fn load_reads_parses_and_validates_the_named_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rewindd.toml");
        std::fs::write(
            &path,
            "data_dir = \"/from-file\"\n[compact]\nsnapshot_after_events = 9\n",
        )
        .unwrap();
        let s = Settings {
            config: Some(path),
            ..Settings::default()
        };
        let c = s.load().unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/from-file"));
        assert_eq!(c.service.compact.snapshot_after_events, 9);
        assert_eq!(s.data_dir().unwrap(), PathBuf::from("/from-file"));
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

    /// The example in `deploy/` parses and validates.
    #[test]
    fn deploy_example_parses_and_validates() {
        let text = include_str!("../../deploy/rewindd.toml");
        let f = parse_file(Path::new("rewindd.toml"), text).unwrap();
        assert_eq!(f.data_dir, Path::new("/var/lib/rewind"));
        // The example's kubeconfig path need not exist here.
        let kubeconfig = tempfile::NamedTempFile::new().unwrap();
        let s = Settings {
            kubeconfig: Some(kubeconfig.path().to_owned()),
            ..Settings::default()
        };
        let v = Config::from_settings(&s, &f).unwrap().service;
        assert_eq!(v.compact.retention.keep_daily, 7);
        assert_eq!(v.compact.retention.point_in_time_ms, 72 * 3_600_000);
        assert_eq!(v.compact.seal_interval, Duration::from_secs(10));
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
        let text = include_str!("../../deploy/rewindd.toml");
        let file = parse_file(Path::new("rewindd.toml"), text).unwrap();
        // The example's kubeconfig path need not exist here.
        let kubeconfig = tempfile::NamedTempFile::new().unwrap();
        let s = Settings {
            kubeconfig: Some(kubeconfig.path().to_owned()),
            data_dir: Some("/var/lib/rewind".into()),
            ..Settings::default()
        };
        let example = Config::from_settings(&s, &file).unwrap();
        let builtin = Config::from_settings(&s, &FileConfig::default()).unwrap();
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
}
