//! A validating admission webhook that checks Rancher references the way
//! rancher-webhook does, served by the test process on 127.0.0.1 over TLS.
//!
//! The checks (rancher/webhook, `pkg/resources/management.cattle.io/v3/`;
//! `shared/reference/restore-semantics.md` §5.1), each answered with the
//! same 400 denial rancher-webhook gives:
//! - a GlobalRoleBinding (create and update) needs the GlobalRole its
//!   `globalRoleName` names;
//! - a ClusterRoleTemplateBinding (create) needs its RoleTemplate and the
//!   management Cluster its `clusterName` names, which must equal its
//!   namespace;
//! - a ProjectRoleTemplateBinding (create) needs its RoleTemplate and the
//!   Project its `projectName` (`cluster:project`) names, whose
//!   `spec.clusterName` must match.
//!
//! Objects being deleted are not checked, as in rancher-webhook. Lookups go
//! to the apiserver at the time of the call (rancher-webhook reads its
//! informer caches, which can only lag behind that).
//!
//! [`Webhook::fail_every`] makes every n-th call fail: alternately an HTTP
//! 500 and an admission response whose status carries code 500, the two
//! ways a failing webhook answers. With `failurePolicy: Fail` the apiserver
//! turns both into a 500 for the writing client. [`Webhook::stats`] counts
//! what was answered.
//!
//! The TLS certificate is signed by a CA made for this webhook alone; the
//! configuration [`Webhook::install`] creates carries it as `caBundle` with
//! a `url` client config, so no Service or Pod is needed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, PostParams};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// The webhook configuration's name.
pub const CONFIGURATION: &str = "rewind-test-rancher-references";

/// Errors of starting or installing the webhook.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Making the CA or the serving certificate failed.
    #[error("generating the webhook's {what}: {source}")]
    Certificate {
        /// Which part.
        what: &'static str,
        /// The cause.
        source: rcgen::Error,
    },
    /// rustls refused the certificate or key.
    #[error("configuring the webhook's TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// Binding the loopback listener failed.
    #[error("binding the webhook's listener: {0}")]
    Bind(std::io::Error),
    /// An API call failed.
    #[error("{what}: {source}")]
    Kube {
        /// What was being done.
        what: &'static str,
        /// The cause.
        source: kube::Error,
    },
    /// The apiserver did not call the webhook within 30 s of installing it.
    #[error("the apiserver does not call the webhook (last probe: {last})")]
    NotCalled {
        /// What the last probe write got.
        last: String,
    },
    /// The configuration did not parse as a ValidatingWebhookConfiguration.
    #[error("building the webhook configuration: {0}")]
    Configuration(serde_json::Error),
}

/// Result alias for this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What the webhook answered so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Admission reviews received.
    pub calls: usize,
    /// Calls answered with HTTP 500.
    pub failed_http: usize,
    /// Calls answered with an admission response carrying code 500.
    pub failed_review: usize,
    /// Calls denied for a missing reference.
    pub denied: usize,
    /// Calls allowed.
    pub allowed: usize,
}

#[derive(Default)]
struct Counters {
    calls: AtomicUsize,
    failed_http: AtomicUsize,
    failed_review: AtomicUsize,
    denied: AtomicUsize,
    allowed: AtomicUsize,
    fail_every: AtomicUsize,
}

struct Shared {
    /// Reads the objects a reference names.
    client: kube::Client,
    counters: Counters,
    /// The denials, as `resource ns/name: message`.
    denials: Mutex<Vec<String>>,
}

/// A running webhook; stops serving when dropped.
pub struct Webhook {
    addr: SocketAddr,
    ca_pem: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("addr", &self.addr)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A CA and a serving certificate for 127.0.0.1 signed by it: (CA PEM,
/// certificate DER, key).
fn certificates() -> Result<(String, CertificateDer<'static>, PrivateKeyDer<'static>)> {
    let err = |what| move |source| Error::Certificate { what, source };
    let ca_key = KeyPair::generate().map_err(err("CA key"))?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(err("CA parameters"))?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "rewind-test-webhook-ca");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).map_err(err("CA certificate"))?;
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().map_err(err("serving key"))?;
    let mut params =
        CertificateParams::new(vec!["127.0.0.1".to_owned()]).map_err(err("serving parameters"))?;
    params
        .distinguished_name
        .push(DnType::CommonName, "rewind-test-webhook");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(err("serving certificate"))?;
    Ok((
        ca_cert.pem(),
        cert.der().clone(),
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    ))
}

/// Accepts TCP connections and completes their TLS handshake; a failed or
/// stalled handshake drops that connection only.
struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, peer) = match self.tcp.accept().await {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "webhook accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            match tokio::time::timeout(Duration::from_secs(5), self.acceptor.accept(stream)).await {
                Ok(Ok(tls)) => return (tls, peer),
                Ok(Err(e)) => tracing::warn!(%peer, error = %e, "webhook TLS handshake failed"),
                Err(_) => tracing::warn!(%peer, "webhook TLS handshake timed out"),
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

impl Webhook {
    /// Starts serving on a free loopback port; `client` reads the objects
    /// references name (the cluster the webhook guards).
    pub async fn start(client: kube::Client) -> Result<Self> {
        let (ca_pem, cert, key) = certificates()?;
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)?;
        let tcp = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(Error::Bind)?;
        let addr = tcp.local_addr().map_err(Error::Bind)?;
        let listener = TlsListener {
            tcp,
            acceptor: TlsAcceptor::from(Arc::new(config)),
        };
        let shared = Arc::new(Shared {
            client,
            counters: Counters::default(),
            denials: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route("/validate", post(review))
            .with_state(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "webhook server stopped");
            }
        });
        tracing::info!(%addr, "admission webhook serving");
        Ok(Self {
            addr,
            ca_pem,
            shared,
            task,
        })
    }

    /// `https://127.0.0.1:<port>/validate`.
    pub fn url(&self) -> String {
        format!("https://{}/validate", self.addr)
    }

    /// Makes every `n`-th call from now on fail (0: none).
    pub fn fail_every(&self, n: usize) {
        self.shared.counters.fail_every.store(n, Ordering::SeqCst);
    }

    /// What was answered so far.
    pub fn stats(&self) -> Stats {
        let c = &self.shared.counters;
        Stats {
            calls: c.calls.load(Ordering::SeqCst),
            failed_http: c.failed_http.load(Ordering::SeqCst),
            failed_review: c.failed_review.load(Ordering::SeqCst),
            denied: c.denied.load(Ordering::SeqCst),
            allowed: c.allowed.load(Ordering::SeqCst),
        }
    }

    /// The denials so far, as `resource namespace/name: message`.
    pub fn denials(&self) -> Vec<String> {
        self.shared
            .denials
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The configuration that sends the three binding types' writes here:
    /// `failurePolicy: Fail`, as rancher-webhook registers itself.
    pub fn configuration(&self) -> Value {
        let ca = base64::engine::general_purpose::STANDARD.encode(&self.ca_pem);
        let hook = |name: &str, resource: &str, operations: &[&str]| {
            json!({
                "name": format!("{name}.rewind.test"),
                "clientConfig": {"url": self.url(), "caBundle": ca},
                "rules": [{
                    "apiGroups": ["management.cattle.io"], "apiVersions": ["v3"],
                    "operations": operations, "resources": [resource],
                    "scope": "*",
                }],
                "failurePolicy": "Fail",
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "timeoutSeconds": 5,
            })
        };
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": CONFIGURATION},
            "webhooks": [
                hook("globalrolebindings", "globalrolebindings", &["CREATE", "UPDATE"]),
                hook("clusterroletemplatebindings", "clusterroletemplatebindings", &["CREATE"]),
                hook("projectroletemplatebindings", "projectroletemplatebindings", &["CREATE"]),
            ],
        })
    }

    /// Creates the configuration in the cluster `client` talks to and waits
    /// until the apiserver calls the webhook (its configuration is read
    /// through an informer, so the first writes after the create may pass
    /// unchecked otherwise).
    pub async fn install(&self, client: &kube::Client) -> Result<()> {
        let api: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
        let config: ValidatingWebhookConfiguration =
            serde_json::from_value(self.configuration()).map_err(Error::Configuration)?;
        api.create(&PostParams::default(), &config)
            .await
            .map_err(|source| Error::Kube {
                what: "creating the webhook configuration",
                source,
            })?;
        // A dry-run create of a binding whose role does not exist is denied
        // once the apiserver calls the webhook.
        let grbs = binding_api(client, "GlobalRoleBinding", "globalrolebindings", None);
        let probe: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "management.cattle.io/v3", "kind": "GlobalRoleBinding",
            "metadata": {"name": "rewind-webhook-probe"},
            "globalRoleName": "rewind-webhook-probe-missing", "userName": "nobody",
        }))
        .map_err(Error::Configuration)?;
        let dry = PostParams {
            dry_run: true,
            ..PostParams::default()
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let last = match grbs.create(&dry, &probe).await {
                Err(kube::Error::Api(s)) if s.message.contains("globalRoleName: Not found") => {
                    return Ok(());
                }
                Err(e) => e.to_string(),
                Ok(_) => "the probe was allowed".to_owned(),
            };
            if tokio::time::Instant::now() > deadline {
                return Err(Error::NotCalled { last });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Deletes the configuration again.
    pub async fn uninstall(&self, client: &kube::Client) -> Result<()> {
        let api: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
        api.delete(CONFIGURATION, &DeleteParams::default())
            .await
            .map_err(|source| Error::Kube {
                what: "deleting the webhook configuration",
                source,
            })?;
        Ok(())
    }
}

fn binding_api(
    client: &kube::Client,
    kind: &str,
    plural: &str,
    namespace: Option<&str>,
) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("management.cattle.io", "v3", kind),
        plural,
    );
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    }
}

/// Whether the object `kind`/`plural` named `name` (in `namespace`) exists;
/// `Err` when the lookup itself failed.
async fn exists(
    client: &kube::Client,
    (kind, plural): (&str, &str),
    namespace: Option<&str>,
    name: &str,
) -> Result<Option<DynamicObject>, String> {
    if name.is_empty() {
        return Ok(None);
    }
    match binding_api(client, kind, plural, namespace)
        .get_opt(name)
        .await
    {
        Ok(found) => Ok(found),
        // The type itself not served yet: nothing it names exists.
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
        Err(e) => Err(format!("looking up {plural} {name}: {e}")),
    }
}

/// `None` to allow, `Some(message)` to deny (400).
async fn check(client: &kube::Client, request: &Value) -> Result<Option<String>, String> {
    let object = &request["object"];
    if !object["metadata"]["deletionTimestamp"].is_null() {
        return Ok(None);
    }
    let field = |name: &str| object[name].as_str().unwrap_or_default().to_owned();
    let namespace = request["namespace"].as_str().unwrap_or_default();
    let role_template = |name: String| async move {
        match exists(client, ("RoleTemplate", "roletemplates"), None, &name).await? {
            Some(_) => Ok(None),
            None => Ok(Some(format!(
                "the referenced role template was not found: {name:?}"
            ))),
        }
    };
    match request["resource"]["resource"].as_str().unwrap_or_default() {
        "globalrolebindings" => {
            let role = field("globalRoleName");
            Ok(
                match exists(client, ("GlobalRole", "globalroles"), None, &role).await? {
                    Some(_) => None,
                    None => Some(format!(
                        "globalrolebindings.globalRoleName: Not found: {role:?}"
                    )),
                },
            )
        }
        "clusterroletemplatebindings" => {
            let cluster = field("clusterName");
            if cluster != namespace {
                return Ok(Some(format!(
                    "clusterName {cluster:?} does not match the namespace {namespace:?}"
                )));
            }
            if exists(client, ("Cluster", "clusters"), None, &cluster)
                .await?
                .is_none()
            {
                return Ok(Some(format!("specified cluster {cluster} not found")));
            }
            role_template(field("roleTemplateName")).await
        }
        "projectroletemplatebindings" => {
            let project_name = field("projectName");
            let Some((cluster, project)) = project_name.split_once(':') else {
                return Ok(Some(format!(
                    "projectName {project_name:?} is not cluster:project"
                )));
            };
            let found = exists(client, ("Project", "projects"), Some(cluster), project).await?;
            match found {
                Some(p) if p.data["spec"]["clusterName"].as_str() == Some(cluster) => {}
                _ => {
                    return Ok(Some(format!(
                        "specified cluster/project {project_name} not found"
                    )));
                }
            }
            role_template(field("roleTemplateName")).await
        }
        _ => Ok(None),
    }
}

fn review_response(uid: &Value, allowed: bool, code: u16, message: &str) -> Response {
    let mut response = json!({"uid": uid, "allowed": allowed});
    if !allowed {
        response["status"] = json!({"code": code, "message": message});
    }
    let body = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": response,
    });
    (
        StatusCode::OK,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn review(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let c = &shared.counters;
    let n = c.calls.fetch_add(1, Ordering::SeqCst).saturating_add(1);
    let Ok(review) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "not an AdmissionReview").into_response();
    };
    let request = &review["request"];
    let uid = &request["uid"];
    let every = c.fail_every.load(Ordering::SeqCst);
    if every > 0 && n % every == 0 {
        // Alternate between the two ways a failing webhook answers.
        if (n / every) % 2 == 0 {
            c.failed_http.fetch_add(1, Ordering::SeqCst);
            return (StatusCode::INTERNAL_SERVER_ERROR, "injected failure").into_response();
        }
        c.failed_review.fetch_add(1, Ordering::SeqCst);
        return review_response(uid, false, 500, "injected failure");
    }
    match check(&shared.client, request).await {
        Ok(None) => {
            c.allowed.fetch_add(1, Ordering::SeqCst);
            review_response(uid, true, 200, "")
        }
        Ok(Some(message)) => {
            c.denied.fetch_add(1, Ordering::SeqCst);
            let what = format!(
                "{} {}/{}: {message}",
                request["resource"]["resource"].as_str().unwrap_or_default(),
                request["namespace"].as_str().unwrap_or_default(),
                request["name"].as_str().unwrap_or_default(),
            );
            tracing::info!(denial = %what, "webhook denied");
            shared
                .denials
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(what);
            review_response(uid, false, 400, &message)
        }
        // A lookup that failed is a handler error: 500, as rancher-webhook's
        // `sendError` answers.
        Err(message) => {
            c.failed_http.fetch_add(1, Ordering::SeqCst);
            (StatusCode::INTERNAL_SERVER_ERROR, message).into_response()
        }
    }
}
