//! Raw command-line flags. Validation into library options happens in the
//! command modules, so the flags stay a plain description of the interface.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use rewind_history::Point;

/// How listings are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned columns for people.
    Table,
    /// One JSON document for scripts.
    Json,
}

/// Top-level command line.
#[derive(Debug, Parser)]
#[command(
    name = "rewind",
    version,
    about = "Rebuild a Kubernetes management plane at any point in time, safely and fast",
    long_about = "Rewind records every change to a management plane (rewindd) and rebuilds it \
at any point in the recorded window with `rewind`.\n\n\
Typical 3 a.m. session:\n  \
rewind list                                  # what is recorded, and the window\n  \
rewind diff --from ms:1764100000000 --to latest  # what changed before the crash\n  \
rewind restore --at latest --to ~/.kube/new --dry-run   # the plan, nothing written\n  \
rewind restore --at latest --to ~/.kube/new --preset rancher\n\n\
Points (--at, --from, --to): `latest`, `seq:N` (a recorded sequence number), \
`ms:UNIX_MILLIS` (a time), or `snapshot:NAME`.\n\n\
Any command that reads state also takes --from-dir DIR: a directory of JSON/YAML manifests \
(what `rewind export` writes, or `kubectl get -o yaml` output) used instead of the store."
)]
pub struct Cli {
    /// The store to read: a directory or an s3:// URL.
    #[arg(long, global = true, env = "REWIND_STORE")]
    pub store: Option<String>,
    /// age identity file (`AGE-SECRET-KEY-1…`) to read an encrypted store.
    #[arg(long, global = true, env = "REWIND_IDENTITY", value_name = "FILE")]
    pub identity: Option<PathBuf>,
    /// S3 endpoint for `--store s3://…` (default: AWS); credentials from
    /// AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
    #[arg(long, global = true, env = "REWIND_S3_ENDPOINT", value_name = "URL")]
    pub s3_endpoint: Option<String>,
    /// The lineage to read points in (an id from `rewind list`, a prefix of
    /// at least 8 digits, or `legacy`); default: the lineage of the newest
    /// recorded file, followed back through its parents.
    #[arg(long, global = true, env = "REWIND_LINEAGE", value_name = "ID")]
    pub lineage: Option<String>,
    /// The cluster to read when the store holds several (a key or cluster
    /// id from `rewind list`); required then, never guessed. With one
    /// cluster in the store it is read without this.
    #[arg(long, global = true, env = "REWIND_CLUSTER", value_name = "CLUSTER")]
    pub cluster: Option<String>,
    /// Log filter (tracing syntax), e.g. `info` or `rewind_restore=debug`.
    #[arg(long, global = true, env = "REWIND_LOG", default_value = "warn")]
    pub log: String,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the snapshots in a store and the point-in-time window; over a
    /// store of several clusters without --cluster, list the clusters.
    List(ListArgs),
    /// Summarise the state at a point, per type.
    #[command(
        long_about = "Summarise the state at a point: object counts per type.\n\n\
Examples:\n  rewind show --at latest\n  rewind show --at seq:1200 --type clusters.management.cattle.io\n  \
rewind show --from-dir ./export --namespace fleet-default --output json"
    )]
    Show(ShowArgs),
    /// Every recorded version of one object, with who changed it.
    #[command(
        long_about = "Every recorded version of one object in the window: time, \
resourceVersion, the field manager that made it, and a diff against the previous version.\n\n\
Example:\n  rewind history clusters.management.cattle.io/c-m-abc123\n  \
rewind history secrets/cattle-system/tls-rancher"
    )]
    History(HistoryArgs),
    /// What changed between two points (added, removed, changed, per type).
    #[command(
        long_about = "What changed in the management plane between two points.\n\n\
Example: the hour before a crash\n  rewind diff --from ms:1764096400000 --to ms:1764100000000"
    )]
    Diff(DiffArgs),
    /// Write the state at a point as YAML manifests that kubectl accepts.
    #[command(
        long_about = "Write the state at a point as one YAML file per object, server \
fields and status stripped, ownerReferences dropped (their UIDs belong to the old cluster).\n\n\
Layout: OUT/00-crds, OUT/01-namespaces, OUT/02-objects/<group>_<resource>/<namespace>/<name>.yaml\n\n\
Example:\n  rewind export --at latest --out ./plane\n  \
kubectl apply -R -f ./plane/00-crds && kubectl wait --for condition=Established crd --all\n  \
kubectl apply -R -f ./plane/01-namespaces -f ./plane/02-objects"
    )]
    Export(ExportArgs),
    /// Restore the state at a point into a cluster: plan, confirm, apply.
    #[command(long_about = "Restore the state at a point into a cluster.\n\n\
First the plan: what will be created, updated, left alone, and (only with --prune) deleted. \
Then, after confirmation (--yes for scripts), the apply: CRDs first (waiting until Established), \
then Namespaces, then everything else with owners before dependents, objects of one level in \
parallel. New objects are created by server-side apply with field manager `rewind`; an \
existing object that differs is replaced with the recorded one (fields others added since are \
removed); status goes through the status subresource where the CRD has one. One bad object never stops the rest: failures are \
listed with the API's reason at the end, and the exit code is non-zero.\n\n\
An interrupted restore continues with the same command plus --resume (the journal in \
--state-dir records what was done, and the original replicas of quiesced Deployments).\n\n\
Examples:\n  rewind restore --at latest --to new.kubeconfig --dry-run\n  \
rewind restore --at seq:5000 --to new.kubeconfig --preset rancher --yes\n  \
rewind restore --from-dir ./plane --to new.kubeconfig --type secrets --namespace fleet-default\n  \
rewind restore --at latest --to new.kubeconfig --resume --yes")]
    Restore(RestoreArgs),
    /// Check every file in a store offline: checksums, segment chain, snapshots.
    Verify(VerifyArgs),
    /// Disaster-recovery drill: restore into a throwaway control plane and compare.
    #[command(
        long_about = "Disaster-recovery drill: restore the state at a point into a \
throwaway cluster, compare the result object by object with the state, and report objects \
restored, differences, RPO (age of the newest recorded event) and RTO (how long the restore \
took). Exits non-zero on any difference or failed object; --report writes the JSON report.\n\n\
Without --to, the drill starts its own throwaway control plane on 127.0.0.1 (etcd and \
kube-apiserver from --etcd/--kube-apiserver, $REWIND_ETCD/$REWIND_KUBE_APISERVER, or PATH) \
and removes it afterwards. Never point --to at a cluster you care about: the drill writes the \
whole state into it.\n\n\
Examples:\n  rewind --store /var/lib/rewind/store drill --at latest --report drill.json\n  \
rewind drill --from-dir ./plane --to /tmp/throwaway.kubeconfig"
    )]
    Drill(DrillArgs),
    /// Print shell completions.
    #[command(long_about = "Print a completion script.\n\nExample:\n  \
rewind completions bash > /etc/bash_completion.d/rewind")]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// Where the state comes from, and which part of it.
#[derive(Debug, Args)]
pub struct StateArgs {
    /// The point in time (`latest`, `seq:N`, `ms:UNIX_MILLIS`, `snapshot:NAME`).
    #[arg(long, default_value = "latest")]
    pub at: Point,
    /// Read the state from a directory of JSON/YAML manifests instead of the store.
    #[arg(long, value_name = "DIR")]
    pub from_dir: Option<PathBuf>,
    /// Only these types (kind, plural or resource.group); repeatable.
    #[arg(long = "type", value_name = "TYPE")]
    pub types: Vec<String>,
    /// Only these namespaces; repeatable.
    #[arg(long = "namespace", short = 'n')]
    pub namespaces: Vec<String>,
    /// Only these names (a trailing `*` matches a prefix); repeatable.
    #[arg(long = "name")]
    pub names: Vec<String>,
    /// Only what a built-in resource set selects (`rancher`: Rancher
    /// Backups' default set; `everything`); repeatable, combined with
    /// --resource-set as one set.
    #[arg(long = "resource-preset", value_name = "NAME")]
    pub presets: Vec<String>,
    /// Only what the resourceSelectors in this YAML file select (a list of
    /// Rancher Backups ResourceSet selectors: apiVersion, kinds/kindsRegexp,
    /// resourceNames/resourceNameRegexp, namespaces/namespaceRegexp,
    /// labelSelectors, excludeKinds, ...); repeatable.
    #[arg(long = "resource-set", value_name = "FILE")]
    pub resource_sets: Vec<PathBuf>,
}

/// `rewind list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Output format.
    #[arg(long, short, value_enum, default_value = "table")]
    pub output: Output,
}

/// `rewind show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// State selection.
    #[command(flatten)]
    pub state: StateArgs,
    /// Output format.
    #[arg(long, short, value_enum, default_value = "table")]
    pub output: Output,
}

/// `rewind history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// `resource.group/namespace/name` or `resource.group/name`.
    pub object: String,
    /// Output format.
    #[arg(long, short, value_enum, default_value = "table")]
    pub output: Output,
}

/// `rewind diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The earlier point.
    #[arg(long, default_value = "latest")]
    pub from: Point,
    /// The later point.
    #[arg(long, default_value = "latest")]
    pub to: Point,
    /// Read the earlier state from a directory of manifests instead of the store.
    #[arg(long, value_name = "DIR", requires = "to_dir")]
    pub from_dir: Option<PathBuf>,
    /// Read the later state from a directory of manifests instead of the store.
    #[arg(long, value_name = "DIR", requires = "from_dir")]
    pub to_dir: Option<PathBuf>,
    /// Output format.
    #[arg(long, short, value_enum, default_value = "table")]
    pub output: Output,
}

/// `rewind export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// State selection.
    #[command(flatten)]
    pub state: StateArgs,
    /// Output directory (created; existing files are overwritten).
    #[arg(long)]
    pub out: PathBuf,
}

/// `rewind restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// State selection.
    #[command(flatten)]
    pub state: StateArgs,
    /// Kubeconfig of the target cluster.
    #[arg(long, env = "REWIND_TO", value_name = "KUBECONFIG")]
    pub to: PathBuf,
    /// Context in the kubeconfig (default: its current context).
    #[arg(long)]
    pub context: Option<String>,
    /// Print the plan and stop; nothing is written.
    #[arg(long)]
    pub dry_run: bool,
    /// Also delete live objects of the restored types that the state lacks,
    /// limited to what the resource set recorded at the point selects (or,
    /// when the store recorded none, the set --resource-preset or
    /// --resource-set names; without one, prune is refused).
    #[arg(long)]
    pub prune: bool,
    /// Also restore objects that were being deleted at the point (they have
    /// a deletionTimestamp in the state and are skipped by default).
    #[arg(long)]
    pub include_deleting: bool,
    /// Never write nor delete objects matching TYPE/NAMESPACE/NAME or TYPE/NAME; repeatable.
    #[arg(long, value_name = "PATTERN")]
    pub protect: Vec<String>,
    /// Drop the default protected set (Rancher server, kube-system, default namespaces...).
    #[arg(long)]
    pub no_default_protect: bool,
    /// Apply a product's restore preset: `rancher` applies the fixes Rancher
    /// Backups applies and quiesces cattle-system/rancher during the restore
    /// (what is restored is what was recorded; narrow it with
    /// --resource-preset).
    #[arg(long, value_enum)]
    pub preset: Option<Preset>,
    /// Scale this Deployment (NAMESPACE/NAME) to zero during the restore; repeatable.
    #[arg(long, value_name = "NAMESPACE/NAME")]
    pub quiesce: Vec<String>,
    /// Objects written at once.
    #[arg(long, default_value_t = 16, env = "REWIND_CONCURRENCY")]
    pub concurrency: usize,
    /// Seconds to wait for each CRD to become Established.
    #[arg(long, default_value_t = 60)]
    pub crd_timeout: u64,
    /// Do not ask for confirmation.
    #[arg(long, short)]
    pub yes: bool,
    /// Continue an interrupted restore of the same plan.
    #[arg(long)]
    pub resume: bool,
    /// Where restore journals are kept.
    #[arg(long, env = "REWIND_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Output format of the plan and the report.
    #[arg(long, short, value_enum, default_value = "table")]
    pub output: Output,
}

/// Restore presets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Preset {
    /// Rancher's known restore fixes (as the backup-restore-operator applies
    /// them), and cattle-system/rancher scaled to zero during the restore.
    Rancher,
}

/// `rewind verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Output format.
    #[arg(long, short, value_enum, default_value = "table")]
    pub output: Output,
}

/// `rewind drill`.
#[derive(Debug, Args)]
pub struct DrillArgs {
    /// The point to drill.
    #[arg(long, default_value = "latest")]
    pub at: Point,
    /// Read the state from a directory of JSON/YAML manifests instead of the store.
    #[arg(long, value_name = "DIR")]
    pub from_dir: Option<PathBuf>,
    /// Kubeconfig of a throwaway cluster to restore into. Without it, the
    /// drill starts its own control plane on 127.0.0.1 from the etcd and
    /// kube-apiserver binaries, and removes it afterwards.
    #[arg(long, value_name = "KUBECONFIG")]
    pub to: Option<PathBuf>,
    /// The etcd binary for the local control plane (default: $REWIND_ETCD,
    /// then PATH).
    #[arg(long, value_name = "PATH", conflicts_with = "to")]
    pub etcd: Option<PathBuf>,
    /// The kube-apiserver binary for the local control plane (default:
    /// $REWIND_KUBE_APISERVER, then PATH).
    #[arg(long, value_name = "PATH", conflicts_with = "to")]
    pub kube_apiserver: Option<PathBuf>,
    /// Keep the local control plane's directory (logs, etcd data,
    /// kubeconfig) for a post-mortem.
    #[arg(long, conflicts_with = "to")]
    pub keep: bool,
    /// Context in the kubeconfig.
    #[arg(long)]
    pub context: Option<String>,
    /// Objects written at once.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Where to write the JSON report (for schedulers).
    #[arg(long)]
    pub report: Option<PathBuf>,
}
