//! Shared by the daemon scenarios: the comparison of the journal with a
//! fresh LIST, the log checks, and the mutation stream.
#![allow(
    dead_code,
    reason = "shared by several test binaries, each using part of it"
)]

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use rewind_daemon::journal::{Journal, JournalOptions};
use rewind_daemon::watch::{choose_types, discovery};
use rewind_format::EventKind;
use rewind_history::KubeType;
use rewind_history::deep;
use rewind_history::select::ResourceSet;
use rewind_tests::drill::capture::{list_raw, selects};
use rewind_tests::fixtures::{self, GeneratedObject};
use serde_json::{Value, json};

/// A number from the environment (long forms), else `default`.
pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `(type_key, namespace, name)`.
pub type Key = (String, String, String);

/// What a side holds for one object: uid, resourceVersion, JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub uid: String,
    pub rv: String,
    pub json: Value,
}

/// Every object the set selects, listed now, keyed like the journal, with
/// `apiVersion`/`kind` from the type as rewindd records them. Listed as raw
/// JSON ([`rewind_tests::drill::capture::list_raw`]), so a plane holding
/// objects nested deeper than serde_json's 128 levels can be checked.
pub async fn live_selected(client: &kube::Client, set: &ResourceSet) -> BTreeMap<Key, Seen> {
    let d = discovery::discover(client).await.unwrap();
    let mut out = BTreeMap::new();
    for (tk, (t, sel)) in choose_types(&d, set) {
        let ar = t.api_resource();
        let listed = list_raw(client, &ar)
            .await
            .unwrap_or_else(|e| panic!("listing {tk}: {e}"));
        for o in listed {
            let bytes = o.to_json(&t.api_version(), &t.kind).unwrap();
            let json = deep::parse(&bytes).unwrap();
            if !selects(&sel, &o, &json) {
                continue;
            }
            let meta = o.metadata();
            out.insert(
                (
                    tk.clone(),
                    meta.namespace.clone().unwrap_or_default(),
                    meta.name.clone().unwrap(),
                ),
                Seen {
                    uid: meta.uid.clone().unwrap_or_default(),
                    rv: meta.resource_version.clone().unwrap_or_default(),
                    json,
                },
            );
        }
    }
    out
}

/// Opens a journal, retrying while sled still holds the lock of a daemon
/// that just stopped.
pub fn open_journal(dir: &Path) -> Journal {
    let mut last = String::new();
    for _ in 0..300 {
        match Journal::open(dir, &JournalOptions::default()) {
            Ok(j) => return j,
            Err(e) => {
                last = e.to_string();
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    panic!("journal at {} does not open: {last}", dir.display());
}

/// The journal's current state.
pub fn journal_state(j: &Journal) -> BTreeMap<Key, Seen> {
    j.state()
        .map(|e| {
            let e = e.unwrap();
            // Any depth: objects nested deeper than 128 levels are recorded.
            let json = deep::parse(&e.object_json().unwrap()).unwrap();
            (
                (
                    e.key.group_resource(),
                    e.key.namespace.clone().unwrap_or_default(),
                    e.key.name.clone(),
                ),
                Seen {
                    uid: e.uid,
                    rv: e.resource_version,
                    json,
                },
            )
        })
        .collect()
}

/// Differences between the journal and the live LIST, readable.
pub fn differences(journal: &BTreeMap<Key, Seen>, live: &BTreeMap<Key, Seen>) -> Vec<String> {
    let mut out = Vec::new();
    for (k, l) in live {
        match journal.get(k) {
            None => out.push(format!("missing from journal: {k:?} rv {}", l.rv)),
            Some(j) if j.uid != l.uid || j.rv != l.rv => {
                out.push(format!(
                    "stale in journal: {k:?} journal {}/{} live {}/{}",
                    j.uid, j.rv, l.uid, l.rv
                ));
            }
            Some(j) if j.json != l.json => out.push(format!("content differs: {k:?} rv {}", l.rv)),
            Some(_) => {}
        }
    }
    for k in journal.keys() {
        if !live.contains_key(k) {
            out.push(format!("in journal but not live: {k:?}"));
        }
    }
    out
}

/// Log checks: gap-free seqs, replay equals state, no (uid, rv) recorded
/// twice as Applied. Returns the number of records.
pub fn check_log(j: &Journal) -> u64 {
    let records = j.records_from(1).map(Result::unwrap);
    let n = check_records(records, &journal_state(j));
    assert_eq!(j.next_seq(), n + 1);
    n
}

/// [`check_log`]'s checks on `records` (from seq 1: a trimmed journal's
/// stored segments, then its log) against the journal's `state`. Returns
/// the number of records.
pub fn check_records(
    records: impl IntoIterator<Item = rewind_format::EventRecord>,
    state: &BTreeMap<Key, Seen>,
) -> u64 {
    let mut replay: BTreeMap<Key, (String, String)> = BTreeMap::new();
    let mut applied = HashSet::new();
    let mut expect = 1;
    for r in records {
        assert_eq!(r.seq, expect, "seq gap");
        expect += 1;
        let key = (
            r.rtype.group_resource(),
            r.namespace.clone().unwrap_or_default(),
            r.name.clone(),
        );
        match &r.kind {
            EventKind::Applied => {
                assert!(
                    applied.insert((r.uid.clone(), r.resource_version.clone())),
                    "recorded twice: {key:?} uid {} rv {}",
                    r.uid,
                    r.resource_version
                );
                replay.insert(key, (r.uid.clone(), r.resource_version.clone()));
            }
            EventKind::Deleted | EventKind::DeletedInferred { .. }
                if replay.get(&key).is_some_and(|(u, _)| *u == r.uid) =>
            {
                replay.remove(&key);
            }
            _ => {}
        }
    }
    let state: BTreeMap<Key, (String, String)> = state
        .iter()
        .map(|(k, s)| (k.clone(), (s.uid.clone(), s.rv.clone())))
        .collect();
    assert_eq!(replay, state, "the log does not replay to the state");
    expect - 1
}

/// The rewindd binary, built if missing.
pub fn rewindd_bin() -> PathBuf {
    rewind_tests::daemon::rewindd_bin().unwrap()
}

fn find<'a>(
    objects: &'a [GeneratedObject],
    resource: &str,
    group: &str,
) -> Vec<&'a GeneratedObject> {
    objects
        .iter()
        .filter(|o| o.resource == resource && o.group == group)
        .collect()
}

fn ar(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: if group.is_empty() {
            version.into()
        } else {
            format!("{group}/{version}")
        },
        kind: kind.into(),
        plural: plural.into(),
    }
}

/// A stream of creates, updates and deletes across Rancher types.
pub struct Mutator {
    admin: kube::Client,
    clusters: Vec<String>,
    settings: Vec<String>,
    tokens: Vec<String>,
    projects: Vec<(String, String)>,
    configmaps: Vec<String>,
    step: usize,
}

impl Mutator {
    pub fn new(admin: kube::Client, objects: &[GeneratedObject]) -> Self {
        Self {
            admin,
            clusters: find(objects, "clusters", "management.cattle.io")
                .iter()
                .map(|o| o.name.clone())
                .collect(),
            settings: find(objects, "settings", "management.cattle.io")
                .iter()
                .map(|o| o.name.clone())
                .collect(),
            tokens: find(objects, "tokens", "management.cattle.io")
                .iter()
                .map(|o| o.name.clone())
                .collect(),
            projects: find(objects, "projects", "management.cattle.io")
                .iter()
                .map(|o| (o.namespace.clone().unwrap_or_default(), o.name.clone()))
                .collect(),
            configmaps: Vec::new(),
            step: 0,
        }
    }

    fn api(&self, a: &ApiResource, ns: Option<&str>) -> Api<DynamicObject> {
        match ns {
            Some(ns) => Api::namespaced_with(self.admin.clone(), ns, a),
            None => Api::all_with(self.admin.clone(), a),
        }
    }

    /// Runs `n` steps, tolerating transient API errors (faults run meanwhile).
    pub async fn run(&mut self, n: usize) -> usize {
        let mut failed = 0;
        for _ in 0..n {
            if self.one().await.is_err() {
                failed += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        failed
    }

    async fn one(&mut self) -> Result<(), kube::Error> {
        let i = self.step;
        self.step += 1;
        let mgmt = |k: &str, p: &str| ar("management.cattle.io", "v3", k, p);
        match i % 6 {
            0 => {
                let name = format!("token-t{i}");
                let obj: DynamicObject = serde_json::from_value(json!({
                    "apiVersion": "management.cattle.io/v3", "kind": "Token",
                    "metadata": {"name": name, "labels": {"authn.management.cattle.io/kind": "session"}},
                    "userId": "user-test", "token": format!("secret-{i}"), "ttl": 0
                }))
                .unwrap();
                self.api(&mgmt("Token", "tokens"), None)
                    .create(&PostParams::default(), &obj)
                    .await?;
                self.tokens.push(name);
            }
            1 => {
                let c = &self.clusters[i % self.clusters.len()];
                let patch = json!({"metadata": {"annotations": {"rewind.test/step": i.to_string()}},
                    "status": {"conditions": [{"type": "Ready", "status": "True", "lastUpdateTime": format!("t{i}")}]}});
                self.api(&mgmt("Cluster", "clusters"), None)
                    .patch(c, &PatchParams::default(), &Patch::Merge(&patch))
                    .await?;
            }
            2 => {
                if !self.tokens.is_empty() {
                    let t = self.tokens.remove(i % self.tokens.len());
                    match self
                        .api(&mgmt("Token", "tokens"), None)
                        .delete(&t, &DeleteParams::default())
                        .await
                    {
                        Ok(_) => {}
                        Err(kube::Error::Api(e)) if e.code == 404 => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            3 => {
                let s = &self.settings[i % self.settings.len()];
                let patch = json!({"value": format!("v{i}")});
                self.api(&mgmt("Setting", "settings"), None)
                    .patch(s, &PatchParams::default(), &Patch::Merge(&patch))
                    .await?;
            }
            4 => {
                let name = format!("cm-{i}");
                let obj: DynamicObject = serde_json::from_value(json!({
                    "apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": name, "namespace": "cattle-system"}, "data": {"i": i.to_string()}
                }))
                .unwrap();
                let cms = self.api(
                    &ar("", "v1", "ConfigMap", "configmaps"),
                    Some("cattle-system"),
                );
                cms.create(&PostParams::default(), &obj).await?;
                self.configmaps.push(name);
                if self.configmaps.len() > 3 {
                    let old = self.configmaps.remove(0);
                    let _ = cms.delete(&old, &DeleteParams::default()).await;
                }
            }
            _ => {
                if let Some((ns, p)) = self.projects.pop() {
                    let _ = self
                        .api(&mgmt("Project", "projects"), Some(&ns))
                        .delete(&p, &DeleteParams::default())
                        .await;
                }
            }
        }
        Ok(())
    }

    /// The newest configmap the stream created and has not deleted.
    pub fn latest_configmap(&self) -> Option<String> {
        self.configmaps.last().cloned()
    }

    /// The incident: a downstream cluster scaled to zero. Its nodes are
    /// deleted and its status fields vanish (omitempty), the cluster stays.
    pub async fn scale_cluster_to_zero(&self, objects: &[GeneratedObject]) -> String {
        let cluster = self.clusters[0].clone();
        let nodes = ar("management.cattle.io", "v3", "Node", "nodes");
        for n in objects
            .iter()
            .filter(|o| o.resource == "nodes" && o.namespace.as_deref() == Some(cluster.as_str()))
        {
            self.api(&nodes, Some(&cluster))
                .delete(&n.name, &DeleteParams::default())
                .await
                .unwrap();
        }
        let patch = json!({"status": {"nodeCount": null, "capacity": null, "allocatable": null}});
        self.api(
            &ar("management.cattle.io", "v3", "Cluster", "clusters"),
            None,
        )
        .patch(&cluster, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
        cluster
    }
}

/// Loads the Rancher CRDs and a generated plane.
pub async fn load_plane(admin: &kube::Client, clusters: usize) -> Vec<GeneratedObject> {
    fixtures::install_rancher_crds(admin).await.unwrap();
    let objects = fixtures::generate(&fixtures::PlaneSpec::new(clusters));
    let t = std::time::Instant::now();
    let report = fixtures::load(admin, &objects, 16).await.unwrap();
    eprintln!(
        "loaded {} objects ({clusters} clusters) in {:?}",
        report.created,
        t.elapsed()
    );
    objects
}

/// Waits until every watcher watches, nothing lags, and the journal has not
/// moved for `quiet` ([`rewind_tests::daemon::wait_settled`], panicking with
/// the watchers that are not ready on a timeout).
pub async fn wait_settled(
    status: impl FnMut() -> Option<rewind_daemon::status::StatusFile>,
    quiet: Duration,
    what: &str,
) {
    rewind_tests::daemon::wait_settled(status, quiet, rewind_tests::daemon::settle_timeout(), what)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

/// What a stopped daemon recorded, checked against the API.
pub struct Recorded {
    /// The journal's state.
    pub state: BTreeMap<Key, Seen>,
    /// A fresh LIST of what the preset selects.
    pub live: BTreeMap<Key, Seen>,
    /// Every record of the log, from seq 1.
    pub records: Vec<rewind_format::EventRecord>,
}

/// After the daemon stopped: the journal's state under `data` (objects
/// included) equals a fresh LIST of `preset_name`. Returns the opened
/// journal, its state and the LIST.
pub async fn check_state(
    client: &kube::Client,
    preset_name: &str,
    data: &Path,
) -> (Journal, BTreeMap<Key, Seen>, BTreeMap<Key, Seen>) {
    let set = rewind_history::select::preset::preset(preset_name).unwrap();
    let live = live_selected(client, &set).await;
    let j = open_journal(&data.join("journal"));
    let state = journal_state(&j);
    let diffs = differences(&state, &live);
    assert!(
        diffs.is_empty(),
        "{} differences:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
    (j, state, live)
}

/// After the daemon stopped: the journal under `data` equals a fresh LIST
/// of `preset_name`, and its log is gap-free, without duplicates and
/// replays to the state ([`check_log`]).
pub async fn check_recorded(client: &kube::Client, preset_name: &str, data: &Path) -> Recorded {
    let (j, state, live) = check_state(client, preset_name, data).await;
    let n = check_log(&j);
    let records: Vec<_> = j.records_from(1).map(Result::unwrap).collect();
    assert_eq!(records.len() as u64, n);
    Recorded {
        state,
        live,
        records,
    }
}
