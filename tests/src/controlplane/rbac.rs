//! RBAC for the test identities: the read-only role and roles granted on demand.
//!
//! The RBAC authorizer reads roles through informers, so a fresh binding takes
//! a moment to count. Every grant therefore waits until a SubjectAccessReview,
//! answered by the same authorizer, says the rule is in force.

use std::time::{Duration, Instant};

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};

/// Errors while granting RBAC.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("{what}: {source}")]
    Kube { what: String, source: kube::Error },
    /// The authorizer did not pick the grant up in time.
    #[error("RBAC for user {user} not in force after {secs} s")]
    NotInForce { user: String, secs: u64 },
}

/// Result alias for this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

const FIELD_MANAGER: &str = "rewind-tests";

/// The rule set of the least-privilege identity: read everything, write nothing.
pub fn read_only_rules() -> Vec<PolicyRule> {
    vec![
        PolicyRule {
            api_groups: Some(vec!["*".into()]),
            resources: Some(vec!["*".into()]),
            verbs: vec!["get".into(), "list".into(), "watch".into()],
            ..PolicyRule::default()
        },
        PolicyRule {
            non_resource_urls: Some(vec!["*".into()]),
            verbs: vec!["get".into()],
            ..PolicyRule::default()
        },
    ]
}

fn kube_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let what = what.into();
    move |source| Error::Kube { what, source }
}

fn user_subject(user: &str) -> Subject {
    Subject {
        kind: "User".into(),
        api_group: Some("rbac.authorization.k8s.io".into()),
        name: user.into(),
        namespace: None,
    }
}

/// Grants `rules` cluster-wide to `user` (ClusterRole + ClusterRoleBinding named
/// `rewind-test:<user>`, replacing an earlier grant) and waits until it counts.
pub async fn grant_cluster(admin: &kube::Client, user: &str, rules: Vec<PolicyRule>) -> Result<()> {
    let name = format!("rewind-test:{user}");
    let role = ClusterRole {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            ..ObjectMeta::default()
        },
        rules: Some(rules.clone()),
        ..ClusterRole::default()
    };
    let binding = ClusterRoleBinding {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            ..ObjectMeta::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: name.clone(),
        },
        subjects: Some(vec![user_subject(user)]),
    };
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    Api::<ClusterRole>::all(admin.clone())
        .patch(&name, &pp, &Patch::Apply(&role))
        .await
        .map_err(kube_err(format!("applying ClusterRole {name}")))?;
    Api::<ClusterRoleBinding>::all(admin.clone())
        .patch(&name, &pp, &Patch::Apply(&binding))
        .await
        .map_err(kube_err(format!("applying ClusterRoleBinding {name}")))?;
    wait_in_force(admin, user, None, &rules).await
}

/// Grants `rules` to `user` in one namespace (Role + RoleBinding) and waits.
pub async fn grant_namespaced(
    admin: &kube::Client,
    user: &str,
    namespace: &str,
    rules: Vec<PolicyRule>,
) -> Result<()> {
    let name = format!("rewind-test:{user}");
    let meta = ObjectMeta {
        name: Some(name.clone()),
        namespace: Some(namespace.into()),
        ..ObjectMeta::default()
    };
    let role = Role {
        metadata: meta.clone(),
        rules: Some(rules.clone()),
    };
    let binding = RoleBinding {
        metadata: meta,
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: name.clone(),
        },
        subjects: Some(vec![user_subject(user)]),
    };
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    Api::<Role>::namespaced(admin.clone(), namespace)
        .patch(&name, &pp, &Patch::Apply(&role))
        .await
        .map_err(kube_err(format!("applying Role {namespace}/{name}")))?;
    Api::<RoleBinding>::namespaced(admin.clone(), namespace)
        .patch(&name, &pp, &Patch::Apply(&binding))
        .await
        .map_err(kube_err(format!("applying RoleBinding {namespace}/{name}")))?;
    wait_in_force(admin, user, Some(namespace), &rules).await
}

/// Polls a SubjectAccessReview for the first resource rule until it is allowed.
async fn wait_in_force(
    admin: &kube::Client,
    user: &str,
    namespace: Option<&str>,
    rules: &[PolicyRule],
) -> Result<()> {
    let Some(rule) = rules.iter().find(|r| r.resources.is_some()) else {
        return Ok(());
    };
    let first = |v: &Option<Vec<String>>| {
        v.as_ref()
            .and_then(|v| v.first().cloned())
            .unwrap_or_default()
    };
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.into()),
            resource_attributes: Some(ResourceAttributes {
                group: Some(first(&rule.api_groups)),
                resource: Some(first(&rule.resources)),
                verb: rule.verbs.first().cloned(),
                namespace: namespace.map(str::to_string),
                // A rule limited to names grants only those.
                name: rule
                    .resource_names
                    .as_ref()
                    .and_then(|n| n.first().cloned()),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    };
    let api = Api::<SubjectAccessReview>::all(admin.clone());
    let limit = Duration::from_secs(10);
    let start = Instant::now();
    loop {
        let answer = api
            .create(&PostParams::default(), &review)
            .await
            .map_err(kube_err(format!("reviewing access of {user}")))?;
        if answer.status.is_some_and(|s| s.allowed) {
            return Ok(());
        }
        if start.elapsed() > limit {
            return Err(Error::NotInForce {
                user: user.into(),
                secs: limit.as_secs(),
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
