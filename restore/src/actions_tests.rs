//! Each restore action on the shapes it meets: what is skipped, what is
//! removed before writing, and what an update takes from the live object.

use super::*;
use serde_json::json;

fn t(group: &str, version: &str, resource: &str, kind: &str, namespaced: bool) -> ResourceType {
    ResourceType {
        group: group.into(),
        version: version.into(),
        resource: resource.into(),
        kind: kind.into(),
        namespaced,
    }
}

fn key(rtype: ResourceType, name: &str) -> TypedKey {
    let namespace = rtype.namespaced.then(|| "ns".to_owned());
    TypedKey {
        rtype,
        namespace,
        name: name.into(),
    }
}

fn core(resource: &str, kind: &str) -> ResourceType {
    let namespaced = !matches!(resource, "nodes" | "persistentvolumes");
    t("", "v1", resource, kind, namespaced)
}

fn none() -> DesiredState {
    DesiredState::new()
}

#[test]
fn nodes_events_and_leases_are_never_written() {
    for rtype in [
        core("nodes", "Node"),
        core("events", "Event"),
        t("events.k8s.io", "v1", "events", "Event", true),
        t("coordination.k8s.io", "v1", "leases", "Lease", true),
    ] {
        let k = key(rtype, "x");
        assert_eq!(
            skip_reason(&k, &json!({"metadata": {"name": "x"}}), &none()),
            Some(SkipReason::NeverWritten),
            "{k}"
        );
    }
}

#[test]
fn endpoints_are_written_only_for_services_without_selector() {
    let ep = key(core("endpoints", "Endpoints"), "ext");
    let obj = json!({"metadata": {"name": "ext", "namespace": "ns"}});
    assert_eq!(
        skip_reason(&ep, &obj, &none()),
        Some(SkipReason::NeverWritten)
    );
    let mut state = DesiredState::new();
    state
        .insert(
            &core("services", "Service"),
            json!({"metadata": {"name": "ext", "namespace": "ns"}, "spec": {"ports": [{"port": 80}]}}),
        )
        .unwrap();
    assert_eq!(skip_reason(&ep, &obj, &state), None, "selector-less");
    let mut state = DesiredState::new();
    state
        .insert(
            &core("services", "Service"),
            json!({"metadata": {"name": "ext", "namespace": "ns"}, "spec": {"selector": {"app": "a"}}}),
        )
        .unwrap();
    assert_eq!(
        skip_reason(&ep, &obj, &state),
        Some(SkipReason::NeverWritten)
    );

    let slices = t(
        "discovery.k8s.io",
        "v1",
        "endpointslices",
        "EndpointSlice",
        true,
    );
    let made = json!({"metadata": {"name": "s", "namespace": "ns",
        "labels": {"endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}}});
    let own = json!({"metadata": {"name": "s", "namespace": "ns",
        "labels": {"endpointslice.kubernetes.io/managed-by": "my-operator"}}});
    let k = key(slices, "s");
    assert_eq!(
        skip_reason(&k, &made, &none()),
        Some(SkipReason::NeverWritten)
    );
    assert_eq!(skip_reason(&k, &own, &none()), None);
}

#[test]
fn pods_owned_by_a_controller_mirror_or_finished_are_skipped() {
    let k = key(core("pods", "Pod"), "p");
    let owned = json!({"metadata": {"name": "p", "ownerReferences": [
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u", "controller": true}]}});
    assert_eq!(
        skip_reason(&k, &owned, &none()),
        Some(SkipReason::ControllerOwned)
    );
    let not_controller = json!({"metadata": {"name": "p", "ownerReferences": [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "c", "uid": "u"}]}});
    assert_eq!(skip_reason(&k, &not_controller, &none()), None);
    let mirror =
        json!({"metadata": {"name": "p", "annotations": {"kubernetes.io/config.mirror": "h"}}});
    assert_eq!(
        skip_reason(&k, &mirror, &none()),
        Some(SkipReason::MirrorPod)
    );
    let done = json!({"metadata": {"name": "p"}, "status": {"phase": "Succeeded"}});
    assert_eq!(skip_reason(&k, &done, &none()), Some(SkipReason::Finished));

    let mut standalone = json!({"metadata": {"name": "p"},
        "spec": {"nodeName": "old-node", "priority": 0, "priorityClassName": "x", "containers": []}});
    assert_eq!(adjust(&k, &mut standalone), Some(Adjustment::PodBinding));
    assert!(standalone["spec"].get("nodeName").is_none());
    assert!(standalone["spec"].get("priority").is_none());
    assert_eq!(standalone["spec"]["priorityClassName"], "x");
    let live = json!({"spec": {"nodeName": "n2", "priority": 7}});
    carry_over(&k, &mut standalone, &live);
    assert_eq!(standalone["spec"]["nodeName"], "n2");
    assert_eq!(standalone["spec"]["priority"], 7);
}

#[test]
fn jobs_lose_their_controller_uid_and_completed_ones_are_skipped() {
    let k = key(t("batch", "v1", "jobs", "Job", true), "j");
    let mut job = json!({
        "metadata": {"name": "j", "labels": {"controller-uid": "old", "job-name": "j"}},
        "spec": {
            "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "old", "controller-uid": "old"}},
            "template": {"metadata": {"labels": {
                "batch.kubernetes.io/controller-uid": "old", "controller-uid": "old",
                "batch.kubernetes.io/job-name": "j", "job-name": "j"}}}
        }
    });
    assert_eq!(skip_reason(&k, &job, &none()), None);
    assert_eq!(adjust(&k, &mut job), Some(Adjustment::JobControllerUid));
    assert_eq!(job["spec"]["selector"]["matchLabels"], json!({}));
    assert_eq!(
        job["spec"]["template"]["metadata"]["labels"],
        json!({"batch.kubernetes.io/job-name": "j", "job-name": "j"})
    );
    // The Job's own labels are the user's: left alone, as Velero does.
    assert_eq!(job["metadata"]["labels"]["controller-uid"], "old");
    // An update keeps the live (immutable) selector.
    let live = json!({"spec": {
        "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "new"}},
        "template": {"metadata": {"labels": {"batch.kubernetes.io/controller-uid": "new", "controller-uid": "new"}}}}});
    carry_over(&k, &mut job, &live);
    assert_eq!(job["spec"]["selector"], live["spec"]["selector"]);
    assert_eq!(
        job["spec"]["template"]["metadata"]["labels"]["controller-uid"],
        "new"
    );

    let done =
        json!({"metadata": {"name": "j"}, "status": {"completionTime": "2026-01-01T00:00:00Z"}});
    assert_eq!(skip_reason(&k, &done, &none()), Some(SkipReason::Finished));
}

#[test]
fn token_secrets_auto_generated_skipped_others_without_token_data() {
    let secrets = core("secrets", "Secret");
    let auto = key(secrets.clone(), "builder-token-x7k2p");
    let obj = json!({"metadata": {"name": "builder-token-x7k2p",
        "annotations": {"kubernetes.io/service-account.name": "builder",
                        "kubernetes.io/service-account.uid": "old"}},
        "type": "kubernetes.io/service-account-token", "data": {"token": "dA==", "ca.crt": "Yw==", "namespace": "bnM="}});
    assert_eq!(
        skip_reason(&auto, &obj, &none()),
        Some(SkipReason::ServiceAccountToken)
    );
    let manual = key(secrets.clone(), "builder-long-lived");
    assert_eq!(skip_reason(&manual, &obj, &none()), None);
    let mut body = obj.clone();
    assert_eq!(adjust(&manual, &mut body), Some(Adjustment::TokenData));
    assert_eq!(
        body["metadata"]["annotations"],
        json!({"kubernetes.io/service-account.name": "builder"})
    );
    assert!(body.get("data").is_none(), "{body}");
    let live = json!({"metadata": {"annotations": {"kubernetes.io/service-account.uid": "new"}},
        "data": {"token": "bmV3", "ca.crt": "Yw=="}});
    carry_over(&manual, &mut body, &live);
    assert_eq!(
        body["metadata"]["annotations"]["kubernetes.io/service-account.uid"],
        "new"
    );
    assert_eq!(body["data"]["token"], "bmV3");

    let mut opaque =
        json!({"metadata": {"name": "o"}, "type": "Opaque", "data": {"token": "dA=="}});
    let before = opaque.clone();
    assert_eq!(adjust(&key(secrets, "o"), &mut opaque), None);
    assert_eq!(opaque, before);
}

/// The token controller fills `namespace` with `token` and `ca.crt`; a
/// recorded token Secret without it (recorded before the controller filled
/// it) compared with the filled live one was an `update [data.namespace]`
/// after every restore, while the controller put the key back each time.
#[test]
fn regression_token_secret_namespace_key_is_left_to_the_token_controller() {
    let k = key(core("secrets", "Secret"), "agent-long-lived");
    let mut recorded = json!({"metadata": {"name": "agent-long-lived",
        "annotations": {"kubernetes.io/service-account.name": "agent",
                        "kubernetes.io/service-account.uid": "recorded"}},
        "type": "kubernetes.io/service-account-token", "data": {"token": "dA=="}});
    let mut live = json!({"metadata": {"name": "agent-long-lived",
        "annotations": {"kubernetes.io/service-account.name": "agent",
                        "kubernetes.io/service-account.uid": "live"}},
        "type": "kubernetes.io/service-account-token",
        "data": {"token": "bGl2ZQ==", "ca.crt": "Yw==", "namespace": "Y2F0dGxlLXN5c3RlbQ=="}});
    let filled = live.clone();
    adjust(&k, &mut recorded);
    adjust(&k, &mut live);
    assert_eq!(recorded, live);
    // An update keeps what the controller filled.
    let mut body = recorded.clone();
    carry_over(&k, &mut body, &filled);
    assert_eq!(body["data"], filled["data"]);
}

#[test]
fn services_lose_allocated_ips_and_ports_but_keep_headless_and_explicit() {
    let k = key(core("services", "Service"), "s");
    let mut svc = json!({
        "metadata": {"name": "s", "managedFields": [{"manager": "helm", "operation": "Update", "fieldsV1": {
            "f:spec": {"f:ports": {"k:{\"port\":443,\"protocol\":\"TCP\"}": {"f:nodePort": {}}}}}}]},
        "spec": {"type": "NodePort", "clusterIP": "10.0.0.9", "clusterIPs": ["10.0.0.9"],
                 "ports": [{"port": 80, "protocol": "TCP", "nodePort": 31000},
                           {"port": 443, "protocol": "TCP", "nodePort": 30443},
                           {"name": "m", "port": 9000, "protocol": "TCP", "nodePort": 32000}]}
    });
    assert_eq!(adjust(&k, &mut svc), Some(Adjustment::ServiceAllocated));
    assert!(svc["spec"].get("clusterIP").is_none());
    assert!(svc["spec"].get("clusterIPs").is_none());
    assert!(
        svc["spec"]["ports"][0].get("nodePort").is_none(),
        "allocated"
    );
    assert_eq!(svc["spec"]["ports"][1]["nodePort"], 30443, "set by helm");
    assert!(svc["spec"]["ports"][2].get("nodePort").is_none());

    // kubectl apply's last-applied configuration counts as explicit too.
    let mut applied = json!({
        "metadata": {"name": "s", "annotations": {"kubectl.kubernetes.io/last-applied-configuration":
            "{\"spec\":{\"ports\":[{\"name\":\"m\",\"port\":9000,\"nodePort\":32000}]}}"}},
        "spec": {"type": "NodePort", "ports": [{"name": "m", "port": 9000, "protocol": "TCP", "nodePort": 32000}]}
    });
    adjust(&k, &mut applied);
    assert_eq!(applied["spec"]["ports"][0]["nodePort"], 32000);

    let mut headless =
        json!({"metadata": {"name": "s"}, "spec": {"clusterIP": "None", "clusterIPs": ["None"]}});
    assert_eq!(adjust(&k, &mut headless), None);
    assert_eq!(headless["spec"]["clusterIP"], "None");

    let live = json!({"spec": {"clusterIP": "10.1.1.1", "clusterIPs": ["10.1.1.1"],
        "ports": [{"port": 80, "protocol": "TCP", "nodePort": 31111},
                  {"port": 443, "protocol": "TCP", "nodePort": 30443}]}});
    carry_over(&k, &mut svc, &live);
    assert_eq!(svc["spec"]["clusterIP"], "10.1.1.1");
    assert_eq!(svc["spec"]["ports"][0]["nodePort"], 31111);
    assert_eq!(svc["spec"]["ports"][1]["nodePort"], 30443);
    assert!(svc["spec"]["ports"][2].get("nodePort").is_none());
}

#[test]
fn volumes_and_claims_lose_binding_uids_and_annotations() {
    let pv = key(core("persistentvolumes", "PersistentVolume"), "pv1");
    let mut v = json!({"metadata": {"name": "pv1", "annotations": {
            "pv.kubernetes.io/bound-by-controller": "yes", "pv.kubernetes.io/provisioned-by": "csi"}},
        "spec": {"claimRef": {"kind": "PersistentVolumeClaim", "namespace": "ns", "name": "c",
                              "uid": "old", "resourceVersion": "12"}}});
    assert_eq!(adjust(&pv, &mut v), Some(Adjustment::VolumeBinding));
    assert_eq!(
        v["spec"]["claimRef"],
        json!({"kind": "PersistentVolumeClaim", "namespace": "ns", "name": "c"})
    );
    assert_eq!(
        v["metadata"]["annotations"],
        json!({"pv.kubernetes.io/provisioned-by": "csi"})
    );
    let live = json!({"spec": {"claimRef": {"namespace": "ns", "name": "c", "uid": "new", "resourceVersion": "3"}}});
    carry_over(&pv, &mut v, &live);
    assert_eq!(v["spec"]["claimRef"]["uid"], "new");

    let pvc = key(core("persistentvolumeclaims", "PersistentVolumeClaim"), "c");
    let mut c = json!({"metadata": {"name": "c", "annotations": {
        "pv.kubernetes.io/bind-completed": "yes", "pv.kubernetes.io/bound-by-controller": "yes",
        "volume.kubernetes.io/storage-provisioner": "csi", "volume.beta.kubernetes.io/storage-provisioner": "csi"}},
        "spec": {"volumeName": "pv1"}});
    assert_eq!(adjust(&pvc, &mut c), Some(Adjustment::VolumeBinding));
    assert!(c["metadata"].get("annotations").is_none());
    assert_eq!(c["spec"]["volumeName"], "pv1");
}

#[test]
fn webhooks_policies_and_apiservices_are_written_last() {
    for r in [
        "validatingwebhookconfigurations",
        "mutatingwebhookconfigurations",
        "validatingadmissionpolicies",
        "validatingadmissionpolicybindings",
    ] {
        assert!(writes_last(&t(
            "admissionregistration.k8s.io",
            "v1",
            r,
            "X",
            false
        )));
    }
    let apis = t(
        "apiregistration.k8s.io",
        "v1",
        "apiservices",
        "APIService",
        false,
    );
    assert!(writes_last(&apis));
    assert!(!writes_last(&core("configmaps", "ConfigMap")));
    // The apiserver's own APIServices are not written at all.
    let k = key(apis, "v1.apps");
    let auto = json!({"metadata": {"name": "v1.apps", "labels": {"kube-aggregator.kubernetes.io/automanaged": "onstart"}}});
    assert_eq!(
        skip_reason(&k, &auto, &none()),
        Some(SkipReason::ServerManaged)
    );
    assert_eq!(
        skip_reason(
            &k,
            &json!({"metadata": {"name": "v1beta1.metrics.k8s.io"}}),
            &none()
        ),
        None
    );
}

#[test]
fn crd_update_keeps_versions_still_stored_live() {
    let k = key(
        t(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            false,
        ),
        "things.x.io",
    );
    let mut body = json!({"spec": {"versions": [{"name": "v2", "served": true, "storage": true}]}});
    let live = json!({"spec": {"versions": [
            {"name": "v1", "served": true, "storage": false},
            {"name": "v2", "served": true, "storage": true},
            {"name": "v3", "served": true, "storage": false}]},
        "status": {"storedVersions": ["v1", "v2"]}});
    assert!(has_carry_over(&k.rtype, &live));
    assert!(!has_carry_over(
        &core("secrets", "Secret"),
        &json!({"type": "Opaque"})
    ));
    carry_over(&k, &mut body, &live);
    assert_eq!(
        body["spec"]["versions"],
        json!([{"name": "v2", "served": true, "storage": true},
               {"name": "v1", "served": true, "storage": false}]),
        "v1 still stored: kept; v3 stores nothing: dropped"
    );
}
