//! kube-controller-manager beside the apiserver, for tests that need a
//! cluster whose controllers act on what is written: the garbage collector,
//! the namespace controller, the service-account and token controllers, and
//! the endpoints controllers.
//!
//! It runs as its own identity, `system:kube-controller-manager` (a bearer
//! token from the harness's token file, bound by the apiserver's bootstrap
//! RBAC), and with `--use-service-account-credentials` each controller then
//! works under its own `kube-system` ServiceAccount, as in a kubeadm
//! cluster. The token controller signs with the apiserver's service-account
//! key, so the tokens it issues verify. Ready means the service-account
//! controller has made the `default` ServiceAccount in `default`: the
//! controllers are not only started but acting.

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::ServiceAccount;
use kube::Api;

use super::pki;

/// The controllers the harness starts (kube-controller-manager's names).
pub const CONTROLLERS: &[&str] = &[
    "garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "root-ca-certificate-publisher-controller",
    "endpoints-controller",
    "endpointslice-controller",
];

/// The controller-manager's user (bound by bootstrap RBAC to the
/// `system:kube-controller-manager` ClusterRole).
pub const USER: &str = "system:kube-controller-manager";

/// The controller-manager's bearer token in the harness's token file.
pub fn token() -> String {
    pki::token_for("kube-controller-manager")
}

/// kube-controller-manager's arguments: the controllers above only, no
/// leader election, no serving port, keys shared with the apiserver.
pub fn args(kubeconfig: &Path, pki: &pki::Pki) -> Vec<String> {
    vec![
        format!("--kubeconfig={}", kubeconfig.display()),
        format!("--controllers={}", CONTROLLERS.join(",")),
        "--use-service-account-credentials=true".into(),
        format!(
            "--service-account-private-key-file={}",
            pki.sa_key.display()
        ),
        format!("--root-ca-file={}", pki.ca_cert.display()),
        "--leader-elect=false".into(),
        "--secure-port=0".into(),
        // The garbage collector and the namespace controller act within a
        // second or two instead of the production resync periods.
        "--concurrent-gc-syncs=5".into(),
        "--concurrent-namespace-syncs=5".into(),
        "--namespace-sync-period=10s".into(),
        "--min-resync-period=10s".into(),
        "--v=1".into(),
    ]
}

/// Ready once the service-account controller has made `default/default`.
pub async fn ready(admin: &kube::Client) -> Result<(), String> {
    let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), "default");
    match tokio::time::timeout(Duration::from_secs(5), sas.get_opt("default")).await {
        Ok(Ok(Some(_))) => Ok(()),
        Ok(Ok(None)) => Err("no ServiceAccount default/default yet".into()),
        Ok(Err(e)) => Err(format!("reading ServiceAccount default/default: {e}")),
        Err(_) => Err("reading ServiceAccount default/default timed out".into()),
    }
}
