//! Format benchmark: a generated Rancher-like state of 100,000 objects written
//! as a Rewind snapshot, compared in the same run with two tar.gz of one JSON
//! file per object and `zstd -19 --long` of the concatenated JSON (near the
//! practical limit):
//! - `tar.gz`: the objects as the API returns them, in directory order;
//! - `BRO-faithful tar.gz`: what Rancher Backups (backup-restore-operator)
//!   writes: its collector (`pkg/resourcesets/collector.go`) deletes
//!   `metadata.uid`, `resourceVersion`, `creationTimestamp`,
//!   `deletionTimestamp` and `selfLink`, writes each object with Go's
//!   `json.Marshal` (object keys sorted; `<`, `>`, `&` escaped) to
//!   `<resource>.<group>#<version>/[<namespace>/]<name>.json`, and the
//!   backup is a tar of that tree walked in lexical order (`filepath.Walk`),
//!   gzipped at Go's default level (6). The P3 target is judged on it.
//!
//! Run: `cargo run --release -p rewind-format --example format_bench -- [OBJECTS] [--strip] [--jsonl [LABEL=]FILE]...`
//! - `OBJECTS`: how many objects to generate (default 100,000);
//! - `--strip`: drop the fields the API server adds (uid, resourceVersion,
//!   creationTimestamp, managedFields), i.e. objects as created: much less
//!   per-object entropy, which is what limits the ratio to tar.gz;
//! - `--jsonl [LABEL=]FILE`: measure on this input instead, one JSON object
//!   per line; repeat it to measure several inputs in one run, each after a
//!   line `Input: LABEL (FILE)` (LABEL defaults to the file's stem);
//! - `--no-baselines`: skip tar.gz and zstd (throughput only);
//! - `--snapshot-version N`: write snapshots in format version N (default:
//!   the newest, 3, columnar; 2 stores records row by row; 1 also repeats
//!   name, namespace, uid and resourceVersion beside the JSON);
//! - `--no-dup-fields`: leave uid and resourceVersion out of the records
//!   (an experiment: they duplicate fields of the JSON);
//! - `--default-only`: measure only the default [`WriteOptions`];
//! - `--zstd-params`: also raw zstd with window/long-distance settings;
//! - `--no-dict`: skip the dictionary experiment;
//! - `--no-previous`: skip the previous format version at the default
//!   settings (measured by default, in the same run, for comparison).
//!
//! The issue's input (a generated Rancher-like plane of 100,000 objects as
//! the API returns them) comes from the test fixtures' generator:
//!
//! ```text
//! cargo run --release -p rewind-tests --example plane_jsonl -- 100000 /tmp/plane.jsonl
//! cargo run --release -p rewind-tests --example plane_jsonl -- 100000 /tmp/ref.jsonl --reference-mix
//! cargo run --release -p rewind-format --example format_bench -- \
//!     --jsonl new-plane=/tmp/plane.jsonl --jsonl reference-mix=/tmp/ref.jsonl
//! ```
//!
//! The first is `PlaneSpec::new`'s plane (4 RoleBindings per cluster, a
//! management Cluster with 1.1 to 2.6 KB of uniform random base64 as its
//! `caCert` every 20 objects); the second `PlaneSpec::reference_mix`,
//! calibrated to `shared/reference/rancher/README.md` (RoleBindings
//! dominant, real-shaped CA certificates).
//!
//! Throughput is the best of 3 encodes and 5 decodes, to damp the noise of a
//! shared machine.
//!
//! Needs GNU `tar` (for `--sort=name`), `gzip` and `zstd` on PATH for the
//! baselines.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap,
    reason = "figures are approximate"
)]

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;

use rewind_format::snapshot::{SnapshotHeader, SnapshotObject, TypeEntry};
use rewind_format::{
    EventBlockEncoder, EventKind, EventRecord, Limits, ResourceType, SnapshotReader,
    SnapshotWriter, WriteOptions, decode_block,
};
use serde_json::{Value, json};

/// xorshift64*: deterministic input without a rand dependency.
/// Interior mutability so that one call can take several random values.
struct Rng(std::cell::Cell<u64>, std::cell::Cell<u64>);
impl Rng {
    fn new(seed: u64) -> Self {
        Self(
            std::cell::Cell::new(seed),
            std::cell::Cell::new(1_735_689_600),
        )
    }
    fn next(&self) -> u64 {
        let mut x = self.0.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&self, n: u64) -> u64 {
        self.next() % n
    }
    fn hex(&self, n: usize) -> String {
        (0..n)
            .map(|_| char::from_digit(self.below(16) as u32, 16).unwrap())
            .collect()
    }
    fn uid(&self) -> String {
        format!(
            "{}-{}-{}-{}-{}",
            self.hex(8),
            self.hex(4),
            self.hex(4),
            self.hex(4),
            self.hex(12)
        )
    }
    fn alnum(&self, n: usize) -> String {
        const A: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        (0..n)
            .map(|_| A[self.below(A.len() as u64) as usize] as char)
            .collect()
    }
    /// Timestamps advance like a real control plane's: objects are created
    /// and updated in bursts, so neighbours share most of their timestamp.
    fn time(&self) -> String {
        let t = self.1.get() + self.below(20);
        self.1.set(t);
        let (d, rem) = (t / 86_400, t % 86_400);
        let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
        let (month, day) = (1 + (d - 20_089) / 30, 1 + (d - 20_089) % 30);
        format!("2025-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z")
    }
    fn b64(&self, n: usize) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        (0..n).map(|_| A[self.below(64) as usize] as char).collect()
    }
}

fn meta(r: &Rng, name: &str, ns: Option<&str>, labels: Value, annotations: Value) -> Value {
    let mut m = json!({
        "name": name, "uid": r.uid(), "resourceVersion": (1_000_000 + r.below(9_000_000)).to_string(),
        "generation": 1 + r.below(60), "creationTimestamp": r.time(),
        "labels": labels, "annotations": annotations,
        "managedFields": [
            {"manager": "rancher", "operation": "Update", "apiVersion": "management.cattle.io/v3", "time": r.time(),
             "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:annotations": {".": {}}, "f:labels": {".": {}}}, "f:spec": {".": {}}}},
            {"manager": "rancher", "operation": "Update", "apiVersion": "management.cattle.io/v3", "time": r.time(), "subresource": "status",
             "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {".": {}, "f:conditions": {}}}},
        ],
    });
    if let Some(ns) = ns {
        m["namespace"] = json!(ns);
    }
    m
}

fn conditions(r: &Rng, types: &[&str]) -> Value {
    types
        .iter()
        .map(|t| json!({"type": t, "status": "True", "lastUpdateTime": r.time(), "lastTransitionTime": r.time()}))
        .collect()
}

fn mgmt_cluster(r: &Rng, id: &str) -> Value {
    let spec = json!({
        "displayName": format!("prod-{}", r.alnum(6)), "description": "", "internal": false,
        "dockerRootDir": "/var/lib/docker", "enableNetworkPolicy": false, "fleetWorkspaceName": "fleet-default",
        "localClusterAuthEndpoint": {"enabled": false},
        "agentImageOverride": "", "desiredAgentImage": "rancher/rancher-agent:v2.9.2", "desiredAuthImage": "",
        "rke2Config": {"kubernetesVersion": "v1.28.10+rke2r1", "upgradeStrategy": {"drainServerNodes": false, "drainWorkerNodes": false, "serverConcurrency": 1, "workerConcurrency": 1}},
        "clusterSecrets": {"privateRegistrySecret": "", "privateRegistryURL": ""},
    });
    let conds = conditions(
        r,
        &[
            "Pending",
            "Provisioned",
            "Waiting",
            "BackingNamespaceCreated",
            "DefaultProjectCreated",
            "SystemProjectCreated",
            "InitialRolesPopulated",
            "CreatorMadeOwner",
            "NoDiskPressure",
            "NoMemoryPressure",
            "SecretsMigrated",
            "ServiceAccountSecretsMigrated",
            "RKESecretsMigrated",
            "ACISecretsMigrated",
            "GlobalAdminsSynced",
            "SystemAccountCreated",
            "AgentDeployed",
            "Connected",
            "Ready",
            "Updated",
        ],
    );
    let cpu = 8 + r.below(500);
    json!({"apiVersion": "management.cattle.io/v3", "kind": "Cluster",
        "metadata": meta(r, id, None,
            json!({"provider.cattle.io": "rke2", "cattle.io/creator": "norman", "provisioning.cattle.io/management-cluster-name": id}),
            json!({"authz.management.cattle.io/creator-role-bindings": "{\"created\":[\"cluster-owner\"],\"required\":[\"cluster-owner\"]}",
                "field.cattle.io/creatorId": format!("u-{}", r.alnum(5)), "lifecycle.cattle.io/create.cluster-agent-controller-cleanup": "true",
                "lifecycle.cattle.io/create.cluster-provisioner-controller": "true", "lifecycle.cattle.io/create.cluster-scoped-gc": "true",
                "lifecycle.cattle.io/create.mgmt-cluster-rbac-remove": "true", "management.cattle.io/current-cluster-controllers-version": "v1.28.10+rke2r1"})),
        "spec": spec.clone(),
        "status": {"appliedSpec": spec, "conditions": conds, "driver": "rke2", "provider": "rke2", "version": {"gitVersion": "v1.28.10+rke2r1", "major": "1", "minor": "28", "platform": "linux/amd64"},
            "agentImage": "rancher/rancher-agent:v2.9.2", "apiEndpoint": format!("https://10.{}.{}.{}:6443", r.below(255), r.below(255), r.below(255)),
            "caCert": r.b64(1100 + r.below(1500) as usize), "serviceAccountTokenSecret": format!("cluster-serviceaccounttoken-{}", r.alnum(5)),
            "capacity": {"cpu": cpu.to_string(), "memory": format!("{}Ki", cpu * 4_000_000), "pods": (cpu * 14).to_string()},
            "allocatable": {"cpu": cpu.to_string(), "memory": format!("{}Ki", cpu * 3_900_000), "pods": (cpu * 14).to_string()},
            "requested": {"cpu": format!("{}m", r.below(cpu * 1000)), "memory": format!("{}Mi", r.below(cpu * 4000)), "pods": r.below(cpu * 14).to_string()},
            "nodeCount": 3 + r.below(50), "linuxWorkerCount": r.below(50), "limits": {"cpu": "0", "memory": "0"}}})
}

fn mgmt_node(r: &Rng, cluster: &str, name: &str) -> Value {
    let host = format!("ip-10-{}-{}-{}", r.below(255), r.below(255), r.below(255));
    let zone = format!("us-east-1{}", ["a", "b", "c"][r.below(3) as usize]);
    json!({"apiVersion": "management.cattle.io/v3", "kind": "Node",
        "metadata": meta(r, name, Some(cluster),
            json!({"cattle.io/creator": "norman", "management.cattle.io/nodename": host}),
            json!({"lifecycle.cattle.io/create.node-controller": "true", "management.cattle.io/nodesyncer": "true"})),
        "spec": {"clusterName": cluster, "controlPlane": r.below(5) == 0, "etcd": r.below(5) == 0, "worker": true, "requestedHostname": host, "desiredNodeUnschedulable": "", "imported": true},
        "status": {"nodeName": host, "requested": {"cpu": format!("{}m", r.below(8000)), "memory": format!("{}Mi", r.below(30000)), "pods": r.below(110).to_string()},
            "limits": {"cpu": format!("{}m", r.below(8000)), "memory": format!("{}Mi", r.below(30000))},
            "nodeLabels": {"beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux", "kubernetes.io/hostname": host, "node-role.kubernetes.io/worker": "true",
                "topology.kubernetes.io/region": "us-east-1", "topology.kubernetes.io/zone": zone, "node.kubernetes.io/instance-type": "m5.2xlarge"},
            "nodeAnnotations": {"rke2.io/node-args": "[\"server\",\"--cni\",\"calico\"]", "projectcalico.org/IPv4Address": format!("10.{}.{}.{}/20", r.below(255), r.below(255), r.below(255)),
                "rke2.io/node-config-hash": r.b64(52), "volumes.kubernetes.io/controller-managed-attach-detach": "true"},
            "internalNodeStatus": {"addresses": [{"type": "InternalIP", "address": format!("10.{}.{}.{}", r.below(255), r.below(255), r.below(255))}, {"type": "Hostname", "address": host}],
                "allocatable": {"cpu": "8", "ephemeral-storage": "98497780Ki", "memory": "32211924Ki", "pods": "110"},
                "capacity": {"cpu": "8", "ephemeral-storage": "101430960Ki", "memory": "32314324Ki", "pods": "110"},
                "conditions": conditions(r, &["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"]),
                "nodeInfo": {"architecture": "amd64", "bootID": r.uid(), "containerRuntimeVersion": "containerd://1.7.17-k3s1", "kernelVersion": "5.15.0-1063-aws",
                    "kubeProxyVersion": "v1.28.10+rke2r1", "kubeletVersion": "v1.28.10+rke2r1", "machineID": r.hex(32), "operatingSystem": "linux",
                    "osImage": "Ubuntu 22.04.4 LTS", "systemUUID": r.uid()}},
            "conditions": conditions(r, &["Initialized", "Provisioned", "Registered", "Ready"])}})
}

fn namespace(r: &Rng, name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": meta(r, name, None, json!({"kubernetes.io/metadata.name": name, "field.cattle.io/projectId": format!("p-{}", r.alnum(5))}),
            json!({"field.cattle.io/projectId": format!("c-{}:p-{}", r.alnum(5), r.alnum(5)), "lifecycle.cattle.io/create.namespace-auth": "true"})),
        "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})
}

fn role_binding(r: &Rng, ns: &str, name: &str) -> Value {
    let user = format!("u-{}", r.alnum(5));
    let role = ["project-member", "project-owner", "read-only", "edit"][r.below(4) as usize];
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": meta(r, name, Some(ns), json!({"authz.cluster.cattle.io/rtb-owner-updated": format!("{ns}_{}", r.alnum(10))}),
            json!({"cattle.io/creator": "norman"})),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]})
}

fn token(r: &Rng, name: &str) -> Value {
    json!({"apiVersion": "management.cattle.io/v3", "kind": "Token",
        "metadata": meta(r, name, None, json!({"authn.management.cattle.io/token-userId": format!("u-{}", r.alnum(5)), "authn.management.cattle.io/kind": "session"}),
            json!({})),
        "authProvider": "local", "current": false, "description": "", "expired": false, "expiresAt": r.time(), "isDerived": r.below(2) == 0,
        "lastUsedAt": r.time(), "token": r.alnum(54), "ttl": 57_600_000, "userId": format!("u-{}", r.alnum(5)),
        "userPrincipal": {"displayName": "Default Admin", "loginName": "admin", "principalType": "user", "provider": "local", "me": true}})
}

fn secret(r: &Rng, ca: &str, ns: &str, name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
        "metadata": meta(r, name, Some(ns), json!({"cattle.io/service-account.name": name}), json!({"kubernetes.io/service-account.name": name, "kubernetes.io/service-account.uid": r.uid()})),
        "data": {"ca.crt": ca, "namespace": b64(ns.as_bytes()), "token": b64(jwt(r, ns, name).as_bytes())}})
}

/// Standard base64, as Kubernetes stores Secret data.
fn b64(data: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A service-account JWT: constant header, claims naming the account, random signature.
fn jwt(r: &Rng, ns: &str, name: &str) -> String {
    let claims = format!(
        "{{\"iss\":\"kubernetes/serviceaccount\",\"kubernetes.io/serviceaccount/namespace\":\"{ns}\",\"kubernetes.io/serviceaccount/secret.name\":\"{name}\",\"kubernetes.io/serviceaccount/service-account.name\":\"{name}\",\"kubernetes.io/serviceaccount/service-account.uid\":\"{}\",\"sub\":\"system:serviceaccount:{ns}:{name}\"}}",
        r.uid()
    );
    let sig = r.b64(342).replace('+', "-").replace('/', "_");
    format!(
        "eyJhbGciOiJSUzI1NiIsImtpZCI6IkpXVDJ3TnBCTUFhb0FfZGNSZ1pMZ0Q2VE5PLVVyMkZfN1R3VUk4bGxYQ2sifQ.{}.{sig}",
        b64(claims.as_bytes()).trim_end_matches('=')
    )
}

/// Objects of one type before encoding: (namespace, name, JSON).
type RawObjects = Vec<(Option<String>, String, Value)>;

/// The generated state: per type, objects sorted by (namespace, name).
fn generate(total: usize) -> Vec<TypeObjects> {
    let r = Rng::new(0x5EED_1234_ABCD_0001);
    let clusters = (total / 100).max(1);
    let nodes = total / 20;
    let nss = total / 25;
    let tokens = total / 5;
    let secrets = total / 10;
    let rbs = total.saturating_sub(clusters + nodes + nss + tokens + secrets);
    // Service-account secrets of one cluster all carry its CA certificate.
    let ca = r.b64(1500);
    let cluster_ids: Vec<String> = (0..clusters).map(|_| format!("c-{}", r.alnum(5))).collect();
    let ns_names: Vec<String> = (0..nss).map(|i| format!("p-{}-{i}", r.alnum(5))).collect();
    let mut out: Vec<(ResourceType, RawObjects)> = vec![
        (
            ResourceType::new("", "v1", "namespaces", "Namespace", false),
            ns_names
                .iter()
                .map(|n| (None, n.clone(), namespace(&r, n)))
                .collect(),
        ),
        (
            ResourceType::new("", "v1", "secrets", "Secret", true),
            (0..secrets)
                .map(|_| {
                    let ns = ns_names[r.below(nss as u64) as usize].clone();
                    let name = format!("sa-{}-token-{}", r.alnum(6), r.alnum(5));
                    let v = secret(&r, &ca, &ns, &name);
                    (Some(ns), name, v)
                })
                .collect(),
        ),
        (
            ResourceType::new("management.cattle.io", "v3", "clusters", "Cluster", false),
            cluster_ids
                .iter()
                .map(|c| (None, c.clone(), mgmt_cluster(&r, c)))
                .collect(),
        ),
        (
            ResourceType::new("management.cattle.io", "v3", "nodes", "Node", true),
            (0..nodes)
                .map(|_| {
                    let c = cluster_ids[r.below(clusters as u64) as usize].clone();
                    let name = format!("m-{}", r.alnum(5));
                    let v = mgmt_node(&r, &c, &name);
                    (Some(c), name, v)
                })
                .collect(),
        ),
        (
            ResourceType::new("management.cattle.io", "v3", "tokens", "Token", false),
            (0..tokens)
                .map(|_| {
                    let name = format!("token-{}", r.alnum(5));
                    let v = token(&r, &name);
                    (None, name, v)
                })
                .collect(),
        ),
        (
            ResourceType::new(
                "rbac.authorization.k8s.io",
                "v1",
                "rolebindings",
                "RoleBinding",
                true,
            ),
            (0..rbs)
                .map(|_| {
                    let ns = ns_names[r.below(nss as u64) as usize].clone();
                    let name = format!("rb-{}", r.alnum(10));
                    let v = role_binding(&r, &ns, &name);
                    (Some(ns), name, v)
                })
                .collect(),
        ),
    ];
    out.iter_mut()
        .map(|(t, objs)| {
            objs.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
            objs.dedup_by(|a, b| (&a.0, &a.1) == (&b.0, &b.1));
            let objs = objs
                .drain(..)
                .map(|(namespace, name, v)| SnapshotObject {
                    uid: v["metadata"]["uid"].as_str().unwrap().to_owned(),
                    resource_version: v["metadata"]["resourceVersion"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                    object: serde_json::to_vec(&v).unwrap(),
                    namespace,
                    name,
                })
                .collect();
            (t.clone(), objs)
        })
        .collect()
}

fn encode(state: &[TypeObjects], opts: &WriteOptions) -> Vec<u8> {
    let header = SnapshotHeader {
        cluster_id: "local".into(),
        seq: 1,
        time_ms: 0,
        crd_type: None,
        types: state
            .iter()
            .map(|(t, _)| TypeEntry {
                rtype: t.clone(),
                list_rv: "1".into(),
            })
            .collect(),
    };
    let version = SNAPSHOT_VERSION.load(std::sync::atomic::Ordering::Relaxed);
    let mut w =
        SnapshotWriter::with_version(Vec::with_capacity(64 << 20), header, opts, version).unwrap();
    for (i, (_, objs)) in state.iter().enumerate() {
        for o in objs {
            w.push(i, o).unwrap();
        }
    }
    w.finish().unwrap()
}

fn decode(bytes: &[u8]) -> usize {
    let mut r = SnapshotReader::open(bytes, None, Limits::default()).unwrap();
    r.iter().map(|o| o.unwrap().1.object.len()).sum()
}

/// Best of `n` runs, in seconds.
/// CPU time this process has run, in seconds (Linux `/proc/self/schedstat`).
/// On a shared machine wall time mostly measures the neighbours; CPU time
/// of this single-threaded run is the "one core" figure.
fn cpu_seconds() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/schedstat").ok()?;
    let ns: u64 = s.split_whitespace().next()?.parse().ok()?;
    Some(ns as f64 / 1e9)
}

/// Best of `n` runs: (wall seconds, CPU seconds, result).
fn best<T>(n: usize, mut f: impl FnMut() -> T) -> (f64, f64, T) {
    let mut out = None;
    let (mut wall, mut cpu) = (f64::MAX, f64::MAX);
    for _ in 0..n {
        let t = Instant::now();
        let c = cpu_seconds();
        let v = f();
        wall = wall.min(t.elapsed().as_secs_f64());
        if let (Some(a), Some(b)) = (c, cpu_seconds()) {
            cpu = cpu.min(b - a);
        }
        out = Some(v);
    }
    (wall, cpu, out.unwrap())
}

fn tar_gz_size(state: &[TypeObjects]) -> Option<u64> {
    let dir = tempfile::tempdir().ok()?;
    for (t, objs) in state {
        for o in objs {
            let d = dir
                .path()
                .join(format!("{}#{}", t.group_resource(), t.version))
                .join(o.namespace.as_deref().unwrap_or("_cluster"));
            std::fs::create_dir_all(&d).ok()?;
            std::fs::write(d.join(format!("{}.json", o.name)), &o.object).ok()?;
        }
    }
    let out = dir.path().with_extension("tgz");
    let ok = Command::new("tar")
        .arg("czf")
        .arg(&out)
        .arg("-C")
        .arg(dir.path())
        .arg(".")
        .status()
        .ok()?
        .success();
    let len = ok
        .then(|| std::fs::metadata(&out).ok().map(|m| m.len()))
        .flatten();
    let _ = std::fs::remove_file(&out);
    len
}

/// The size of Rancher Backups' tarball of `state` (see the module doc):
/// the five fields its collector deletes are gone, keys are sorted and HTML
/// characters escaped as Go's `json.Marshal` does, the layout is
/// `<resource>.<group>#<version>/[<namespace>/]<name>.json`, walked in
/// lexical order (GNU tar's `--sort=name`, as `filepath.Walk`), gzip -6.
/// BRO's tarball also holds its ResourceSet's filters (a few KB), left out.
fn bro_tar_gz_size(state: &[TypeObjects]) -> Option<u64> {
    let dir = tempfile::tempdir().ok()?;
    let mut top = std::collections::BTreeSet::new();
    for (t, objs) in state {
        let resource_dir = format!("{}.{}#{}", t.resource, t.group, t.version);
        for o in objs {
            let mut d = dir.path().join(&resource_dir);
            if let Some(ns) = o.namespace.as_deref() {
                d = d.join(ns);
            }
            std::fs::create_dir_all(&d).ok()?;
            let mut v: Value = serde_json::from_slice(&o.object).ok()?;
            if let Some(md) = v.get_mut("metadata").and_then(Value::as_object_mut) {
                for f in [
                    "uid",
                    "creationTimestamp",
                    "deletionTimestamp",
                    "selfLink",
                    "resourceVersion",
                ] {
                    md.remove(f);
                }
            }
            let mut json = String::with_capacity(o.object.len());
            go_json(&v, &mut json);
            std::fs::write(d.join(format!("{}.json", o.name)), json).ok()?;
        }
        top.insert(resource_dir);
    }
    let out = dir.path().with_extension("bro.tgz");
    let ok = Command::new("tar")
        .args(["--sort=name", "--use-compress-program", "gzip -6", "-cf"])
        .arg(&out)
        .arg("-C")
        .arg(dir.path())
        .args(&top)
        .status()
        .ok()?
        .success();
    let len = ok
        .then(|| std::fs::metadata(&out).ok().map(|m| m.len()))
        .flatten();
    let _ = std::fs::remove_file(&out);
    len
}

/// JSON as Go's `encoding/json` marshals a `map[string]interface{}`:
/// compact, object keys in sorted order, and `<`, `>`, `&`, U+2028 and
/// U+2029 escaped inside strings.
fn go_json(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                go_string(k, out);
                out.push(':');
                go_json(&m[k], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                go_json(x, out);
            }
            out.push(']');
        }
        Value::String(s) => go_string(s, out),
        other => out.push_str(&other.to_string()),
    }
}

fn go_string(s: &str, out: &mut String) {
    let quoted = serde_json::to_string(s).unwrap();
    for c in quoted.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
}

fn zstd_long_size(json: &[u8]) -> Option<u64> {
    let mut child = Command::new("zstd")
        .args(["-19", "--long=27", "-T1", "-c", "-q"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .ok()?;
    let mut stdin = child.stdin.take()?;
    let data = json.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().ok()?;
    feeder.join().ok()?.ok()?;
    Some(out.stdout.len() as u64)
}

fn dictionary_experiment(state: &[TypeObjects]) {
    // Journal-style event blocks: a group commit of a few events each.
    let events: Vec<EventRecord> = state
        .iter()
        .flat_map(|(t, objs)| objs.iter().step_by(7).map(move |o| (t, o)))
        .enumerate()
        .map(|(i, (t, o))| EventRecord {
            seq: i as u64 + 1,
            observed_at_ms: 1_700_000_000_000 + i as i64,
            cluster_id: "local".into(),
            rtype: t.clone(),
            namespace: o.namespace.clone(),
            name: o.name.clone(),
            uid: o.uid.clone(),
            resource_version: o.resource_version.clone(),
            kind: EventKind::Applied,
            object: o.object.clone(),
        })
        .collect();
    // Interleave types, as a live event stream would.
    let mut events = events;
    let r = Rng::new(7);
    for i in (1..events.len()).rev() {
        events.swap(i, r.below(i as u64 + 1) as usize);
    }
    for (i, e) in events.iter_mut().enumerate() {
        e.seq = i as u64 + 1;
    }
    let (train, test) = events.split_at(events.len() / 2);
    let samples: Vec<Vec<u8>> = train
        .iter()
        .take(5000)
        .map(|e| rewind_format::encode_record(e).unwrap())
        .collect();
    let dict = rewind_format::codec::train_dictionary(&samples, 110 << 10).unwrap();
    let json: usize = test.iter().map(|e| e.object.len()).sum();
    println!(
        "\nDictionary experiment: {} events ({:.1} MB JSON), event stream order, zstd level 3, dict {} KiB",
        test.len(),
        json as f64 / 1e6,
        dict.len() >> 10
    );
    println!(
        "{:>18} {:>14} {:>14} {:>10}",
        "events per block", "plain bytes", "dict bytes", "dict/plain"
    );
    for per in [1usize, 4, 16, 64, 256] {
        let mut plain = EventBlockEncoder::new(3).unwrap();
        let mut with = zstd::bulk::Compressor::with_dictionary(3, &dict).unwrap();
        let (mut a, mut b) = (0usize, 0usize);
        for chunk in test.chunks(per) {
            let blk = plain.encode(chunk).unwrap();
            assert_eq!(
                decode_block(&blk, &Limits::default()).unwrap().len(),
                chunk.len()
            );
            a += blk.len();
            let raw: Vec<u8> = chunk
                .iter()
                .flat_map(|e| rewind_format::encode_record(e).unwrap())
                .collect();
            b += with.compress(&raw).unwrap().len() + 24;
        }
        println!("{per:>18} {a:>14} {b:>14} {:>10.3}", b as f64 / a as f64);
    }
    // Snapshot blocks: the dictionary is trained on objects of the first
    // half of every type (stored once in the file, counted in its size).
    let samples: Vec<Vec<u8>> = state
        .iter()
        .flat_map(|(_, v)| v.iter().step_by(2).take(800))
        .map(|o| o.object.clone())
        .collect();
    let dict = rewind_format::codec::train_dictionary(&samples, 110 << 10).unwrap();
    let level = WriteOptions::default().level;
    println!(
        "\nDictionary on snapshot blocks: whole state, zstd level {level}, dict {} KiB (inside the file)",
        dict.len() >> 10
    );
    println!(
        "{:>10} {:>12} {:>12} {:>10} {:>12} {:>12}",
        "block", "plain bytes", "dict bytes", "dict/plain", "plain enc", "dict enc"
    );
    let mb = state
        .iter()
        .flat_map(|(_, v)| v.iter())
        .map(|o| o.object.len())
        .sum::<usize>() as f64
        / 1e6;
    for block in [16usize << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20] {
        let plain = WriteOptions {
            level,
            block_bytes: block,
            dictionary: None,
        };
        let with = WriteOptions {
            dictionary: Some(dict.clone()),
            ..plain.clone()
        };
        let (_, pc, a) = best(1, || encode(state, &plain));
        let (_, dc, b) = best(1, || encode(state, &with));
        assert_eq!(decode(&b), decode(&a));
        println!(
            "{:>9}K {:>12} {:>12} {:>10.3} {:>12.0} {:>12.0}",
            block >> 10,
            a.len(),
            b.len(),
            b.len() as f64 / a.len() as f64,
            mb / pc,
            mb / dc
        );
    }
}

/// Raw zstd on the snapshot-ordered JSON, cut into blocks like the writer
/// cuts them, with parameters `WriteOptions` does not expose: what a longer
/// window or long-distance matching would buy. Size in bytes, encode MB/s (CPU).
fn zstd_param_experiment(json_by_type: &[Vec<u8>]) {
    use zstd::zstd_safe::CParameter;
    let total: usize = json_by_type.iter().map(Vec::len).sum();
    println!("\nRaw zstd experiment (no record framing), per-type blocks:");
    println!(
        "{:>5} {:>8} {:>6} {:>4} {:>12} {:>9}",
        "level", "block", "wlog", "ldm", "bytes", "enc cpu"
    );
    for (level, block, wlog, ldm) in [
        (9, 1usize << 20, 0u32, false),
        (9, 4 << 20, 0, false),
        (9, 4 << 20, 0, true),
        (9, 16 << 20, 0, false),
        (9, 16 << 20, 24, false),
        (9, 16 << 20, 24, true),
        (12, 4 << 20, 0, false),
        (12, 16 << 20, 24, false),
        (15, 4 << 20, 0, false),
    ] {
        let mut c = zstd::bulk::Compressor::new(level).unwrap();
        if wlog > 0 {
            c.set_parameter(CParameter::WindowLog(wlog)).unwrap();
        }
        c.set_parameter(CParameter::EnableLongDistanceMatching(ldm))
            .unwrap();
        let (_, cpu, bytes) = best(1, || {
            json_by_type
                .iter()
                .flat_map(|t| t.chunks(block))
                .map(|chunk| c.compress(chunk).unwrap().len())
                .sum::<usize>()
        });
        println!(
            "{level:>5} {:>7}K {wlog:>6} {:>4} {bytes:>12} {:>9.0}",
            block >> 10,
            if ldm { "on" } else { "off" },
            total as f64 / 1e6 / cpu
        );
    }
}

/// A type and its objects, sorted like a snapshot.
type TypeObjects = (ResourceType, Vec<SnapshotObject>);

/// Groups JSON lines into types, sorted like a snapshot.
fn load_jsonl(path: &str) -> Vec<TypeObjects> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut types: std::collections::BTreeMap<(String, String), TypeObjects> = Default::default();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).unwrap();
        let api = v["apiVersion"].as_str().unwrap_or("v1");
        let (group, version) = api.rsplit_once('/').unwrap_or(("", api));
        let kind = v["kind"].as_str().unwrap_or("Unknown").to_owned();
        let md = &v["metadata"];
        let namespace = md["namespace"].as_str().map(str::to_owned);
        let resource = format!("{}s", kind.to_lowercase());
        let entry = types
            .entry((group.to_owned(), resource.clone()))
            .or_insert_with(|| {
                (
                    ResourceType {
                        group: group.into(),
                        version: version.into(),
                        resource,
                        kind,
                        namespaced: namespace.is_some(),
                    },
                    Vec::new(),
                )
            });
        entry.1.push(SnapshotObject {
            name: md["name"].as_str().unwrap_or_default().to_owned(),
            uid: md["uid"].as_str().unwrap_or_default().to_owned(),
            resource_version: md["resourceVersion"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            object: serde_json::to_vec(&v).unwrap(),
            namespace: if entry.0.namespaced {
                Some(namespace.unwrap_or_default())
            } else {
                None
            },
        });
    }
    types
        .into_values()
        .map(|(t, mut v)| {
            v.sort_by(|a, b| a.key().cmp(&b.key()));
            v.dedup_by(|a, b| a.key() == b.key());
            (t, v)
        })
        .collect()
}

fn strip_server_fields(state: &mut [TypeObjects]) {
    for o in state.iter_mut().flat_map(|(_, v)| v.iter_mut()) {
        let mut v: Value = serde_json::from_slice(&o.object).unwrap();
        if let Some(md) = v["metadata"].as_object_mut() {
            for f in [
                "uid",
                "resourceVersion",
                "creationTimestamp",
                "managedFields",
                "generation",
            ] {
                md.remove(f);
            }
        }
        o.object = serde_json::to_vec(&v).unwrap();
        o.uid.clear();
        o.resource_version.clear();
    }
}

/// The base64-looking strings of 40 or more characters in some JSON (token
/// values such as `$3:1:<salt>:<hash>` included).
#[derive(Default, Clone, Copy)]
struct Blobs {
    /// Their characters.
    chars: u64,
    /// How many.
    count: u64,
    /// How many of them decode to a PEM certificate (a `caCert`).
    pem: u64,
    /// The DER bytes of those certificates.
    der: u64,
    /// Their information if random: 6 bits per character, except that a
    /// PEM certificate counts as its DER bytes (8 bits each: an upper
    /// estimate, since DER is mostly structure around a random key and
    /// signature, but far below 6 bits per character of base64 of base64).
    bits: u64,
}

impl std::ops::Add for Blobs {
    type Output = Self;
    fn add(self, o: Self) -> Self {
        Self {
            chars: self.chars + o.chars,
            count: self.count + o.count,
            pem: self.pem + o.pem,
            der: self.der + o.der,
            bits: self.bits + o.bits,
        }
    }
}

/// Standard base64 (padding and line breaks allowed); `None` if it is not.
fn unbase64(s: &str) -> Option<Vec<u8>> {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let (mut acc, mut n, mut out) = (0u32, 0u32, Vec::with_capacity(s.len() * 3 / 4));
    for c in s.bytes().filter(|c| !matches!(c, b'=' | b'\n' | b'\r')) {
        acc = (acc << 6) | A.iter().position(|a| *a == c)? as u32;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((acc >> n) as u8);
        }
    }
    Some(out)
}

/// The DER bytes of the PEM certificates `s` (base64 of PEM) holds, if any.
fn pem_der_bytes(s: &str) -> Option<u64> {
    // "LS0t" is base64 of "---": skip decoding everything else.
    if !s.starts_with("LS0t") {
        return None;
    }
    let pem = String::from_utf8(unbase64(s)?).ok()?;
    if !pem.starts_with("-----BEGIN CERTIFICATE-----") {
        return None;
    }
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    Some(unbase64(&body)?.len() as u64)
}

fn base64_strings(v: &Value) -> Blobs {
    match v {
        Value::String(s)
            if s.len() >= 40
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+/=$:".contains(&b)) =>
        {
            let chars = s.len() as u64;
            match pem_der_bytes(s) {
                Some(der) => Blobs {
                    chars,
                    count: 1,
                    pem: 1,
                    der,
                    bits: der * 8,
                },
                None => Blobs {
                    chars,
                    count: 1,
                    bits: chars * 6,
                    ..Blobs::default()
                },
            }
        }
        Value::Array(a) => a
            .iter()
            .map(base64_strings)
            .fold(Blobs::default(), |x, y| x + y),
        Value::Object(m) => m
            .values()
            .map(base64_strings)
            .fold(Blobs::default(), |x, y| x + y),
        _ => Blobs::default(),
    }
}

/// Distinct random identifiers: UUIDs (122 random bits each) and hex runs
/// of 16+ digits (4 bits per digit: instance, subnet, AMI and machine ids,
/// hashes). Counted once each, since a repeat can be a back-reference.
#[derive(Default)]
struct Identifiers {
    uuids: std::collections::HashSet<String>,
    hex: std::collections::HashSet<String>,
}

impl Identifiers {
    fn walk(&mut self, v: &Value) {
        match v {
            Value::String(s) => self.scan(s),
            Value::Array(a) => a.iter().for_each(|x| self.walk(x)),
            Value::Object(m) => m.values().for_each(|x| self.walk(x)),
            _ => {}
        }
    }

    fn scan(&mut self, s: &str) {
        if s.len() >= 40 && base64_strings(&Value::String(s.to_owned())).count == 1 {
            return; // already counted as a blob
        }
        let is_uuid = |t: &str| {
            t.len() == 36
                && t.bytes().enumerate().all(|(i, b)| match i {
                    8 | 13 | 18 | 23 => b == b'-',
                    _ => b.is_ascii_hexdigit(),
                })
        };
        for run in s.split(|c: char| !c.is_ascii_alphanumeric() && c != '-') {
            if is_uuid(run) {
                self.uuids.insert(run.to_owned());
                continue;
            }
            for part in run.split('-') {
                if part.len() >= 16 && part.bytes().all(|b| b.is_ascii_hexdigit()) {
                    self.hex.insert(part.to_owned());
                }
            }
        }
    }

    fn floor_bytes(&self) -> u64 {
        let hex_digits: u64 = self.hex.iter().map(|h| h.len() as u64).sum();
        (self.uuids.len() as u64 * 122 + hex_digits * 4) / 8
    }
}

/// `--snapshot-version`: the format version `encode` writes.
static SNAPSHOT_VERSION: std::sync::atomic::AtomicU16 =
    std::sync::atomic::AtomicU16::new(rewind_format::header::SNAPSHOT_VERSION);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(w) = args.windows(2).find(|w| w[0] == "--snapshot-version") {
        let v: u16 = w[1].parse().expect("--snapshot-version takes a number");
        SNAPSHOT_VERSION.store(v, std::sync::atomic::Ordering::Relaxed);
        println!("Snapshot format version {v}");
    }
    let total: usize = args
        .iter()
        .enumerate()
        .filter(|&(i, _)| i == 0 || args[i - 1] != "--snapshot-version")
        .find_map(|(_, a)| a.parse().ok())
        .unwrap_or(100_000);
    // `--jsonl [LABEL=]FILE`, repeatable: each input is measured in turn,
    // in this one run, under an `Input:` line naming it.
    let inputs: Vec<(String, String)> = args
        .windows(2)
        .filter(|w| w[0] == "--jsonl")
        .map(|w| match w[1].split_once('=') {
            Some((label, file)) => (label.to_owned(), file.to_owned()),
            None => (
                std::path::Path::new(&w[1])
                    .file_stem()
                    .map_or_else(|| w[1].clone(), |s| s.to_string_lossy().into_owned()),
                w[1].clone(),
            ),
        })
        .collect();
    if inputs.is_empty() {
        let t = Instant::now();
        measure(&args, generate(total), t);
    }
    for (i, (label, file)) in inputs.iter().enumerate() {
        if i > 0 {
            println!();
        }
        println!("Input: {label} ({file})");
        let t = Instant::now();
        measure(&args, load_jsonl(file), t);
    }
}

/// Every figure for one input: baselines, floor, the snapshot at each
/// setting, and the experiments `args` ask for.
fn measure(args: &[String], mut state: Vec<TypeObjects>, t: Instant) {
    if args.iter().any(|a| a == "--strip") {
        strip_server_fields(&mut state);
    }
    if args.iter().any(|a| a == "--no-dup-fields") {
        // Experiment: how much do uid and resourceVersion cost when stored
        // beside the JSON that already holds them?
        for o in state.iter_mut().flat_map(|(_, v)| v.iter_mut()) {
            o.uid.clear();
            o.resource_version.clear();
        }
    }
    let n: usize = state.iter().map(|(_, v)| v.len()).sum();
    let json: Vec<u8> = state
        .iter()
        .flat_map(|(_, v)| {
            v.iter()
                .flat_map(|o| o.object.iter().copied().chain([b'\n']))
        })
        .collect();
    let mb = (json.len() - n) as f64 / 1e6;
    println!(
        "Generated {n} objects, {mb:.1} MB of JSON in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    for (t, v) in &state {
        let b: usize = v.iter().map(|o| o.object.len()).sum();
        println!(
            "  {:<40} {:>7} objects, avg {:>6} B",
            t.group_resource(),
            v.len(),
            b / v.len().max(1)
        );
    }
    println!(
        "Load average at start: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    let baselines = !args.iter().any(|a| a == "--no-baselines");
    let tgz = if baselines { tar_gz_size(&state) } else { None };
    let bro = if baselines {
        bro_tar_gz_size(&state)
    } else {
        None
    };
    let zl = if baselines {
        zstd_long_size(&json)
    } else {
        None
    };
    println!(
        "\nBaselines: tar.gz {} bytes, BRO-faithful tar.gz {} bytes, zstd -19 --long {} bytes",
        tgz.map_or("n/a".into(), |v| v.to_string()),
        bro.map_or("n/a".into(), |v| v.to_string()),
        zl.map_or("n/a".into(), |v| v.to_string())
    );
    println!(
        "  tar.gz: objects as the API returns them, directory order; BRO-faithful: Rancher Backups' layout, \
         uid/resourceVersion/creationTimestamp/deletionTimestamp/selfLink removed, keys sorted, name order, gzip -6{}",
        match (tgz, bro) {
            (Some(t), Some(b)) => format!(" ({:.3}x of the tar.gz)", b as f64 / t as f64),
            _ => String::new(),
        }
    );
    // What no lossless format can squeeze: long base64 strings (CA certs,
    // Wrangler's gzip+base64 `applied` annotations, keys, token hashes) carry
    // up to 6 bits of information per character. In the test generator they
    // are uniformly random, so this is a hard floor there; on real data it
    // is an upper estimate of that floor.
    let blobs = state
        .iter()
        .flat_map(|(_, v)| v.iter())
        .filter_map(|o| serde_json::from_slice::<Value>(&o.object).ok())
        .map(|v| base64_strings(&v))
        .fold(Blobs::default(), |a, b| a + b);
    let floor = blobs.bits / 8;
    let pem = if blobs.pem > 0 {
        format!(
            " ({} of them PEM certificates, counted as their {} DER bytes)",
            blobs.pem, blobs.der
        )
    } else {
        String::new()
    };
    println!(
        "Floor: {} base64 strings of 40+ characters, {} characters{pem}: at least {floor} bytes if random{}",
        blobs.count,
        blobs.chars,
        tgz.map_or(String::new(), |t| format!(
            ", {:.3}x tar.gz by themselves",
            floor as f64 / t as f64
        ))
    );
    let mut ids = Identifiers::default();
    for o in state.iter().flat_map(|(_, v)| v.iter()) {
        if let Ok(v) = serde_json::from_slice::<Value>(&o.object) {
            ids.walk(&v);
        }
    }
    let id_floor = ids.floor_bytes();
    println!(
        "       {} distinct UUIDs and {} distinct hex ids of 16+ digits: at least {id_floor} bytes more{}",
        ids.uuids.len(),
        ids.hex.len(),
        tgz.map_or(String::new(), |t| {
            let both = floor + id_floor;
            let room = (t * 6 / 10).saturating_sub(both);
            format!(
                "; blobs and ids {both} bytes = {:.3}x tar.gz, leaving {room} bytes ({} per object) \
                 for every name, timestamp, resourceVersion and all structure at 0.6x tar.gz",
                both as f64 / t as f64,
                room / (n as u64).max(1)
            )
        })
    );
    println!(
        "\n{:>5} {:>8} {:>12} {:>8} {:>9} {:>10} {:>9} {:>9} {:>9} {:>9}",
        "level",
        "block",
        "bytes",
        "/tar.gz",
        "/BRO-tgz",
        "/zstd-19L",
        "enc wall",
        "enc cpu",
        "dec wall",
        "dec cpu"
    );
    let default = WriteOptions::snapshot(rewind_format::DEFAULT_LEVEL);
    let mut configs = vec![(default.level, default.block_bytes)];
    if !args.iter().any(|a| a == "--default-only") {
        for c in [
            (3, 1 << 20),
            (9, 1 << 20),
            (7, 4 << 20),
            (9, 4 << 20),
            (7, 16 << 20),
            (9, 16 << 20),
            (12, 16 << 20),
        ] {
            if !configs.contains(&c) {
                configs.push(c);
            }
        }
    }
    for (level, block) in configs {
        let opts = WriteOptions {
            level,
            block_bytes: block,
            dictionary: None,
        };
        let (enc_s, enc_cpu, bytes) = best(3, || encode(&state, &opts));
        let (dec_s, dec_cpu, decoded) = best(5, || decode(&bytes));
        assert_eq!(decoded, json.len() - n);
        let ratio = |b: Option<u64>| {
            b.map_or("n/a".into(), |b| {
                format!("{:.3}", bytes.len() as f64 / b as f64)
            })
        };
        println!(
            "{level:>5} {:>7}K {:>12} {:>8} {:>9} {:>10} {:>9.0} {:>9.0} {:>9.0} {:>9.0}",
            block >> 10,
            bytes.len(),
            ratio(tgz),
            ratio(bro),
            ratio(zl),
            mb / enc_s,
            mb / enc_cpu,
            mb / dec_s,
            mb / dec_cpu
        );
    }
    println!(
        "MB/s of object JSON; wall = elapsed, cpu = per CPU-second of this one thread.\nTargets: <= 0.6x the BRO-faithful tar.gz (reference mix), <= 0.8x zstd-19-long, encode >= 100 MB/s, decode >= 400 MB/s (one core)"
    );
    // The previous version at the default settings, in this same run, so the
    // gain of the current one is measured against it on the same machine
    // state.
    let current = SNAPSHOT_VERSION.load(std::sync::atomic::Ordering::Relaxed);
    if current > 1 && !args.iter().any(|a| a == "--no-previous") {
        let previous = current - 1;
        SNAPSHOT_VERSION.store(previous, std::sync::atomic::Ordering::Relaxed);
        let (enc_s, enc_cpu, bytes) = best(3, || encode(&state, &default));
        let (dec_s, dec_cpu, decoded) = best(5, || decode(&bytes));
        SNAPSHOT_VERSION.store(current, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(decoded, json.len() - n);
        let mine = encode(&state, &default).len();
        println!(
            "Previous format (version {previous}) at the default settings: {} bytes (this version {:.3}x of it); encode {:.0} MB/s ({:.0} cpu), decode {:.0} MB/s ({:.0} cpu)",
            bytes.len(),
            mine as f64 / bytes.len() as f64,
            mb / enc_s,
            mb / enc_cpu,
            mb / dec_s,
            mb / dec_cpu
        );
    }
    if args.iter().any(|a| a == "--zstd-params") {
        let by_type: Vec<Vec<u8>> = state
            .iter()
            .map(|(_, v)| v.iter().flat_map(|o| o.object.iter().copied()).collect())
            .collect();
        zstd_param_experiment(&by_type);
    }
    if !args.iter().any(|a| a == "--no-dict") {
        dictionary_experiment(&state);
    }
}
