//! The changes the drill makes to the management plane, as an operator,
//! Rancher and its agents would: tokens come and go, clusters and settings
//! change, a project is removed, and a downstream cluster is scaled to zero
//! (the incident in `../shared/reference/rancher/README.md`).

use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::fixtures::GeneratedObject;

use super::{Result, step};

fn mgmt(kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: "management.cattle.io".into(),
        version: "v3".into(),
        api_version: "management.cattle.io/v3".into(),
        kind: kind.into(),
        plural: plural.into(),
    }
}

fn names(objects: &[GeneratedObject], resource: &str) -> Vec<(Option<String>, String)> {
    objects
        .iter()
        .filter(|o| o.group == "management.cattle.io" && o.resource == resource)
        .map(|o| (o.namespace.clone(), o.name.clone()))
        .collect()
}

/// Applies changes to the generated plane.
pub struct Changes {
    admin: kube::Client,
    clusters: Vec<String>,
    settings: Vec<String>,
    projects: Vec<(Option<String>, String)>,
    tokens: Vec<String>,
    /// Changes made so far.
    pub made: usize,
}

impl Changes {
    /// Changes to `objects`, made as the admin.
    #[must_use]
    pub fn new(admin: kube::Client, objects: &[GeneratedObject]) -> Self {
        Self {
            admin,
            clusters: names(objects, "clusters")
                .into_iter()
                .map(|(_, n)| n)
                .collect(),
            settings: names(objects, "settings")
                .into_iter()
                .map(|(_, n)| n)
                .collect(),
            projects: names(objects, "projects"),
            tokens: Vec::new(),
            made: 0,
        }
    }

    fn all(&self, ar: &ApiResource) -> Api<DynamicObject> {
        Api::all_with(self.admin.clone(), ar)
    }

    /// The incident: the first downstream cluster scaled to zero. Its
    /// management nodes (in namespace `c-…`, the cluster's name) are
    /// deleted, its node count, capacity and allocatable vanish from status
    /// (omitempty), and the cluster itself stays, Ready.
    pub async fn scale_first_cluster_to_zero(
        &mut self,
        objects: &[GeneratedObject],
    ) -> Result<String> {
        let cluster = self.clusters.first().cloned().unwrap_or_default();
        let nodes = mgmt("Node", "nodes");
        let api: Api<DynamicObject> = Api::namespaced_with(self.admin.clone(), &cluster, &nodes);
        for n in objects.iter().filter(|o| {
            o.resource == "nodes"
                && o.group == "management.cattle.io"
                && o.namespace.as_deref() == Some(cluster.as_str())
        }) {
            api.delete(&n.name, &DeleteParams::default())
                .await
                .map_err(step("deleting a node of the scaled-down cluster"))?;
            self.made += 1;
        }
        let patch = json!({"status": {"nodeCount": null, "capacity": null, "allocatable": null,
            "conditions": [{"type": "Ready", "status": "True"}]}});
        self.all(&mgmt("Cluster", "clusters"))
            .patch(&cluster, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(step("scaling a cluster to zero"))?;
        self.made += 1;
        Ok(cluster)
    }

    /// `n` rounds of ordinary churn; `round` keeps names unique across calls.
    pub async fn churn(&mut self, round: &str, n: usize) -> Result<()> {
        for i in 0..n {
            let token = format!("token-drill-{round}-{i}");
            let obj: DynamicObject = serde_json::from_value(json!({
                "apiVersion": "management.cattle.io/v3", "kind": "Token",
                "metadata": {"name": token, "labels": {"authn.management.cattle.io/kind": "session"}},
                "userId": "user-drill", "token": format!("secret-{round}-{i}"), "ttl": 0
            }))
            .map_err(step("building a token"))?;
            self.all(&mgmt("Token", "tokens"))
                .create(&PostParams::default(), &obj)
                .await
                .map_err(step("creating a token"))?;
            self.tokens.push(token);
            // Every other round, the oldest token is revoked.
            if i % 2 == 1 && !self.tokens.is_empty() {
                let old = self.tokens.remove(0);
                self.all(&mgmt("Token", "tokens"))
                    .delete(&old, &DeleteParams::default())
                    .await
                    .map_err(step("deleting a token"))?;
            }
            if let Some(c) = self
                .clusters
                .get(1 + i % self.clusters.len().saturating_sub(1).max(1))
            {
                let patch = json!({"metadata": {"annotations": {"rewind.drill/round": format!("{round}-{i}")}}});
                self.all(&mgmt("Cluster", "clusters"))
                    .patch(c, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map_err(step("annotating a cluster"))?;
            }
            if let Some(s) = self.settings.get(i % self.settings.len().max(1)) {
                let patch = json!({"value": format!("drill-{round}-{i}")});
                self.all(&mgmt("Setting", "settings"))
                    .patch(s, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map_err(step("changing a setting"))?;
            }
            self.made += 4;
        }
        if let Some((Some(ns), p)) = self.projects.pop() {
            let api: Api<DynamicObject> =
                Api::namespaced_with(self.admin.clone(), &ns, &mgmt("Project", "projects"));
            api.delete(&p, &DeleteParams::default())
                .await
                .map_err(step("deleting a project"))?;
            self.made += 1;
        }
        Ok(())
    }
}
