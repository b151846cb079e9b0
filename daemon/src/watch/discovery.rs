//! Discovery of resource types, one API group at a time.
//!
//! kube's `Discovery::run` fails as a whole when any group version fails
//! (an aggregated API that is down, a CRD being deleted). A recorder must
//! keep recording the other groups, so each group version is fetched on its
//! own and failures are reported per group.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResourceList;
use kube::Client;
use rewind_format::ResourceType;

use super::gone::{Readiness, readiness};

/// Errors of discovery.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The group list itself (`/api` or `/apis`) failed: nothing is known.
    #[error("listing API groups failed: {0}")]
    Groups(#[source] kube::Error),
}

/// Result alias of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What one discovery pass found.
#[derive(Debug, Clone, Default)]
pub struct Discovered {
    /// Listable and watchable resource types, every served version; within
    /// a group, the preferred version first.
    pub types: Vec<ResourceType>,
    /// Groups the server lists (`""` is the core group).
    pub listed_groups: BTreeSet<String>,
    /// Groups for which every version was fetched.
    pub complete_groups: BTreeSet<String>,
    /// Groups with a failing version, with the error.
    pub failed_groups: BTreeMap<String, String>,
    /// Failing group versions (`group/version`, `v1` for core), with the
    /// error.
    pub failed_versions: BTreeMap<String, String>,
    /// What `/readyz` said just before the group list was read. Asked
    /// first: a server ready before the list lists every group.
    pub ready: Readiness,
}

impl Discovered {
    /// Whether discovery misses `t`'s resource in every version: its group
    /// is not listed, or all of its group's versions were fetched and none
    /// serves it. A failing group misses nothing. Not proof on its own: a
    /// starting API server lists almost no group (see [`super::gone`]).
    #[must_use]
    pub fn misses(&self, t: &ResourceType) -> bool {
        if !self.listed_groups.contains(&t.group) {
            return true;
        }
        self.complete_groups.contains(&t.group)
            && !self
                .types
                .iter()
                .any(|d| d.group == t.group && d.resource == t.resource)
    }
}

fn push_resources(out: &mut Vec<ResourceType>, group: &str, version: &str, list: &APIResourceList) {
    for r in &list.resources {
        if r.name.contains('/') {
            continue; // subresource
        }
        let can = |v: &str| r.verbs.iter().any(|x| x == v);
        if !can("list") || !can("watch") {
            continue;
        }
        out.push(ResourceType {
            group: group.to_owned(),
            version: version.to_owned(),
            resource: r.name.clone(),
            kind: r.kind.clone(),
            namespaced: r.namespaced,
        });
    }
}

/// Runs one discovery pass.
pub async fn discover(client: &Client) -> Result<Discovered> {
    let mut d = Discovered {
        ready: readiness(client).await,
        ..Discovered::default()
    };
    let core = client
        .list_core_api_versions()
        .await
        .map_err(Error::Groups)?;
    let groups = client.list_api_groups().await.map_err(Error::Groups)?;

    d.listed_groups.insert(String::new());
    let mut core_ok = true;
    for v in &core.versions {
        match client.list_core_api_resources(v).await {
            Ok(list) => push_resources(&mut d.types, "", v, &list),
            Err(e) => {
                core_ok = false;
                d.failed_groups
                    .insert("core".to_owned(), format!("{v}: {e}"));
                d.failed_versions.insert(v.clone(), e.to_string());
            }
        }
    }
    if core_ok {
        d.complete_groups.insert(String::new());
    }

    for g in &groups.groups {
        d.listed_groups.insert(g.name.clone());
        if g.versions.is_empty() {
            // Never ask for a group without versions (kube's EmptyApiGroup).
            d.complete_groups.insert(g.name.clone());
            continue;
        }
        let preferred = g.preferred_version.as_ref().map(|p| p.version.clone());
        let mut versions: Vec<&str> = g.versions.iter().map(|v| v.version.as_str()).collect();
        if let Some(p) = &preferred {
            versions.sort_by_key(|v| *v != p.as_str());
        }
        let mut ok = true;
        for v in versions {
            let gv = format!("{}/{v}", g.name);
            match client.list_api_group_resources(&gv).await {
                Ok(list) => push_resources(&mut d.types, &g.name, v, &list),
                Err(e) => {
                    ok = false;
                    d.failed_groups.insert(g.name.clone(), format!("{gv}: {e}"));
                    d.failed_versions.insert(gv, e.to_string());
                }
            }
        }
        if ok {
            d.complete_groups.insert(g.name.clone());
        }
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(group: &str, resource: &str) -> ResourceType {
        ResourceType {
            group: group.into(),
            version: "v1".into(),
            resource: resource.into(),
            kind: "K".into(),
            namespaced: true,
        }
    }

    #[test]
    fn only_a_complete_group_misses_a_type() {
        let mut d = Discovered::default();
        d.listed_groups
            .extend(["".to_owned(), "a.io".to_owned(), "b.io".to_owned()]);
        d.complete_groups.insert("a.io".to_owned());
        d.failed_groups.insert("b.io".into(), "503".into());
        d.types.push(t("a.io", "kept"));
        assert!(!d.misses(&t("a.io", "kept")));
        assert!(d.misses(&t("a.io", "dropped")));
        assert!(
            !d.misses(&t("b.io", "unknown")),
            "a failing group proves nothing"
        );
        assert!(
            d.misses(&t("c.io", "x")),
            "a vanished group proves its types gone"
        );
    }
}
