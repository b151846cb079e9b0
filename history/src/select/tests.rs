//! Selection against Rancher's real default ResourceSet.

use std::collections::BTreeMap;

use rewind_format::ResourceType;
use serde_json::{Value, json};

use super::preset::{RANCHER_FILES, RANCHER_REFERENCES, preset, rancher_selectors};
use super::*;

fn secrets() -> ResourceType {
    ResourceType::new("", "v1", "secrets", "Secret", true)
}
fn namespaces() -> ResourceType {
    ResourceType::new("", "v1", "namespaces", "Namespace", false)
}
fn tokens() -> ResourceType {
    ResourceType::new("management.cattle.io", "v3", "tokens", "Token", false)
}

/// Whether the set selects an object of `t` with these fields.
fn selects(
    set: &ResourceSet,
    t: &ResourceType,
    ns: &str,
    name: &str,
    labels: &[(&str, &str)],
    obj: Value,
) -> bool {
    let labels: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let view = ObjectView {
        name,
        namespace: ns,
        labels: &labels,
        object: &obj,
    };
    set.for_type(t).is_some_and(|s| s.selects(&view))
}

#[test]
fn every_preset_file_parses_completely() {
    let sels = rancher_selectors().unwrap();
    let expected: usize = RANCHER_FILES
        .iter()
        .map(|(_, text)| {
            text.lines()
                .filter(|l| l.trim_start().starts_with("- apiVersion"))
                .count()
        })
        .sum();
    assert_eq!(sels.len(), expected);
    assert!(sels.len() > 60);
    let set = preset("rancher").unwrap();
    assert_eq!(set.len(), expected);
    assert!(preset("nope").is_err());
}

#[test]
fn the_rancher_reference_rules_parse_and_name_types_the_preset_records() {
    use super::preset::{GroupKind, rancher_references};
    let rules = rancher_references().unwrap();
    let rule_count = RANCHER_REFERENCES
        .lines()
        .filter(|l| l.starts_with("- referenced:"))
        .count();
    assert_eq!(rules.len(), rule_count);
    let gk = |group: &str, kind: &str| GroupKind {
        group: group.into(),
        kind: kind.into(),
    };
    let names = |a: GroupKind, b: GroupKind| {
        rules
            .iter()
            .any(|r| r.referenced == a && r.referencing.contains(&b))
    };
    let m = "management.cattle.io";
    assert!(names(gk(m, "GlobalRole"), gk(m, "GlobalRoleBinding")));
    assert!(names(
        gk(m, "RoleTemplate"),
        gk(m, "ClusterRoleTemplateBinding")
    ));
    assert!(names(
        gk(m, "RoleTemplate"),
        gk(m, "ProjectRoleTemplateBinding")
    ));
    assert!(names(gk(m, "Cluster"), gk(m, "Project")));
    assert!(names(gk(m, "Project"), gk(m, "ProjectRoleTemplateBinding")));
    assert!(
        rules
            .iter()
            .all(|r| !r.because.is_empty() && !r.referencing.is_empty())
    );
}

#[test]
fn management_types_except_excluded_kinds() {
    let set = preset("rancher").unwrap();
    let clusters = ResourceType::new("management.cattle.io", "v3", "clusters", "Cluster", false);
    assert!(selects(&set, &clusters, "", "c-abcde", &[], json!({})));
    // Excluded by `excludeKinds` in the "." selector, and not named by the
    // tokens selector: never watched.
    let notif = ResourceType::new(
        "management.cattle.io",
        "v3",
        "rancherusernotifications",
        "RancherUserNotification",
        false,
    );
    assert!(set.for_type(&notif).is_none());
    // Another version of the group is not covered.
    let v4 = ResourceType::new("management.cattle.io", "v4", "clusters", "Cluster", false);
    assert!(set.for_type(&v4).is_none());
}

#[test]
fn tokens_follow_their_label_selector() {
    let set = preset("rancher").unwrap();
    assert!(selects(&set, &tokens(), "", "token-1", &[], json!({})));
    assert!(selects(
        &set,
        &tokens(),
        "",
        "token-2",
        &[("authn.management.cattle.io/kind", "session")],
        json!({})
    ));
    assert!(!selects(
        &set,
        &tokens(),
        "",
        "token-3",
        &[("authn.management.cattle.io/kind", "provisioning")],
        json!({})
    ));
}

#[test]
fn secrets_by_namespace_labels_names_and_fields() {
    let set = preset("rancher").unwrap();
    let s = secrets();
    assert!(selects(&set, &s, "cattle-system", "tls-ca", &[], json!({})));
    assert!(!selects(
        &set,
        &s,
        "cattle-system",
        "sh.helm.release.v1",
        &[("owner", "helm")],
        json!({})
    ));
    assert!(!selects(
        &set,
        &s,
        "cattle-system",
        "bootstrap-secret",
        &[],
        json!({})
    ));
    assert!(selects(&set, &s, "c-m-abc", "x", &[], json!({})));
    assert!(!selects(&set, &s, "default", "x", &[], json!({})));
    // Any namespace, with the backup label.
    assert!(selects(
        &set,
        &s,
        "default",
        "x",
        &[("resources.cattle.io/backup", "true")],
        json!({})
    ));
    // fleet-default: by field selector on `type`, or by name regexp.
    let plan = json!({"type": "rke.cattle.io/machine-plan"});
    assert!(selects(&set, &s, "fleet-default", "m1-plan", &[], plan));
    assert!(!selects(
        &set,
        &s,
        "fleet-default",
        "m1",
        &[],
        json!({"type": "Opaque"})
    ));
    assert!(selects(
        &set,
        &s,
        "fleet-default",
        "c1-machine-driver-secret",
        &[],
        json!({"type": "Opaque"})
    ));
    // fleet.yaml: managed secrets in fleet namespaces, but not import tokens.
    let managed = [("fleet.cattle.io/managed", "true")];
    assert!(selects(&set, &s, "fleet-local", "x", &managed, json!({})));
    assert!(!selects(
        &set,
        &s,
        "fleet-local",
        "import-token-x",
        &managed,
        json!({})
    ));
}

#[test]
fn namespaces_by_name_regexp_names_and_labels() {
    let set = preset("rancher").unwrap();
    let n = namespaces();
    assert!(selects(&set, &n, "", "local", &[], json!({})));
    assert!(selects(&set, &n, "", "c-abc12", &[], json!({})));
    assert!(selects(&set, &n, "", "fleet-default", &[], json!({})));
    assert!(!selects(&set, &n, "", "default", &[], json!({})));
    assert!(!selects(&set, &n, "", "kube-system", &[], json!({})));
    assert!(selects(
        &set,
        &n,
        "",
        "apps",
        &[("app.kubernetes.io/managed-by", "rancher")],
        json!({})
    ));
}

#[test]
fn kinds_regexp_is_case_sensitive_against_kind_and_plural() {
    let set = preset("rancher").unwrap();
    // `^ResourceSet$` names the Kind.
    let rs = ResourceType::new(
        "resources.cattle.io",
        "v1",
        "resourcesets",
        "ResourceSet",
        false,
    );
    assert!(set.for_type(&rs).is_some());
    let backups = ResourceType::new("resources.cattle.io", "v1", "backups", "Backup", false);
    assert!(set.for_type(&backups).is_none());
    // elemental.yaml's `^globalrole$` matches neither `GlobalRole` nor
    // `globalroles`: in BRO it selects nothing, and so here.
    let sel = ResourceSelector {
        api_version: "management.cattle.io/v3".into(),
        kinds_regexp: Some("^globalrole$".into()),
        ..ResourceSelector::default()
    };
    let only = ResourceSet::compile(&[sel], "test").unwrap();
    let gr = ResourceType::new(
        "management.cattle.io",
        "v3",
        "globalroles",
        "GlobalRole",
        false,
    );
    assert!(only.for_type(&gr).is_none());
}

#[test]
fn kinds_exact_and_excludes() {
    let sel = ResourceSelector {
        api_version: "v1".into(),
        kinds: vec!["ConfigMap".into(), "secrets".into()],
        exclude_kinds: vec!["Secret".into()],
        ..ResourceSelector::default()
    };
    let set = ResourceSet::compile(&[sel], "test").unwrap();
    assert!(
        set.for_type(&ResourceType::new(
            "",
            "v1",
            "configmaps",
            "ConfigMap",
            true
        ))
        .is_some()
    );
    assert!(set.for_type(&secrets()).is_none());
    assert!(
        set.for_type(&ResourceType::new("", "v1", "pods", "Pod", true))
            .is_none()
    );
}

#[test]
fn namespace_filters_do_not_apply_to_cluster_scoped_types() {
    let sel = ResourceSelector {
        api_version: "rbac.authorization.k8s.io/v1".into(),
        kinds_regexp: Some("^clusterroles$".into()),
        namespaces: vec!["cattle-system".into()],
        ..ResourceSelector::default()
    };
    let set = ResourceSet::compile(&[sel], "test").unwrap();
    let cr = ResourceType::new(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterroles",
        "ClusterRole",
        false,
    );
    assert!(selects(&set, &cr, "", "admin", &[], json!({})));
}

#[test]
fn everything_selects_all() {
    let set = preset("everything").unwrap();
    assert!(selects(&set, &secrets(), "default", "x", &[], json!({})));
    assert!(selects(&set, &tokens(), "", "t", &[], json!({})));
}

#[test]
fn invalid_selectors_name_the_field() {
    let bad = ResourceSelector {
        api_version: "v1".into(),
        resource_name_regexp: Some("(".into()),
        ..ResourceSelector::default()
    };
    let err = ResourceSet::compile(&[bad], "config")
        .unwrap_err()
        .to_string();
    assert!(err.contains("resourceNameRegexp"), "{err}");
    assert!(err.contains("selector #1"), "{err}");
    let no_version = ResourceSelector::default();
    assert!(ResourceSet::compile(&[no_version], "config").is_err());
    let typo: std::result::Result<ResourceSelector, _> =
        serde_saphyr::from_str("apiVersion: v1\nkindRegexp: x\n");
    assert!(typo.is_err(), "unknown fields are rejected");
}
