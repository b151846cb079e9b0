//! Reading the target cluster: live objects per type, live CRDs, and the
//! API's error reasons in a form a report can carry.

use kube::Client;
use kube::api::{Api, DynamicObject, ListParams};
use serde::Serialize;
use serde_json::Value;

use rewind_history::raw::RawObject;

use rewind_history::state::{KubeType, ResourceType};

/// Page size for listing live objects: large pages, few round trips.
const PAGE: u32 = 500;

/// Why the API refused a request, as a report shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiFailure {
    /// HTTP status code; 0 when the request never got an answer.
    pub code: u16,
    /// The API's machine-readable reason (`Invalid`, `Forbidden`, …), or
    /// `ClientError` for failures before or after the API answered.
    pub reason: String,
    /// The API's message.
    pub message: String,
}

impl From<kube::Error> for ApiFailure {
    fn from(e: kube::Error) -> Self {
        match e {
            kube::Error::Api(s) => {
                // Answers that are not a Status (a plain "404 page not found"
                // for a type the server does not serve) or have no reason
                // (server-side apply's conversion errors are bare 500s) get
                // the reason their HTTP code stands for.
                let reason = if s.reason.is_empty() || s.reason.contains(' ') {
                    reason_for(s.code).to_owned()
                } else {
                    s.reason.clone()
                };
                let message = if s.code == 404 && s.message.contains("page not found") {
                    "the target does not serve this type (is its CRD missing?)".to_owned()
                } else {
                    s.message.clone()
                };
                Self {
                    code: s.code,
                    reason,
                    message,
                }
            }
            other => Self {
                code: 0,
                reason: "ClientError".to_owned(),
                message: other.to_string(),
            },
        }
    }
}

/// The Kubernetes StatusReason an HTTP code stands for.
fn reason_for(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        409 => "Conflict",
        410 => "Expired",
        413 => "RequestEntityTooLarge",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "Unknown",
    }
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.reason, self.code, self.message)
    }
}

impl std::error::Error for ApiFailure {}

/// The dynamic API for `rtype`, cluster-wide or in one namespace.
#[must_use]
pub fn api_for(
    client: &Client,
    rtype: &ResourceType,
    namespace: Option<&str>,
) -> Api<DynamicObject> {
    let ar = rtype.api_resource();
    match namespace {
        Some(ns) if rtype.namespaced => Api::namespaced_with(client.clone(), ns, &ar),
        _ => Api::all_with(client.clone(), &ar),
    }
}

/// The API for `rtype` with objects kept as raw JSON ([`RawObject`]): for
/// reads and writes whose objects may nest deeper than serde_json's limit.
#[must_use]
pub fn raw_api_for(
    client: &Client,
    rtype: &ResourceType,
    namespace: Option<&str>,
) -> Api<RawObject> {
    let ar = rtype.api_resource();
    match namespace {
        Some(ns) if rtype.namespaced => Api::namespaced_with(client.clone(), ns, &ar),
        _ => Api::all_with(client.clone(), &ar),
    }
}

/// Every live object of `rtype` in all namespaces, as JSON (as the API
/// sent it: items carry no `apiVersion`/`kind`). Objects of any depth up to
/// [`rewind_history::deep::MAX_DEPTH`] are read. `Ok(None)` when the target does
/// not serve the type (no CRD for it yet).
pub async fn list_all(
    client: &Client,
    rtype: &ResourceType,
) -> Result<Option<Vec<Value>>, ApiFailure> {
    let api = raw_api_for(client, rtype, None);
    let mut out = Vec::new();
    let mut params = ListParams::default().limit(PAGE);
    loop {
        let page = match api.list(&params).await {
            Ok(p) => p,
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let next = page.metadata.continue_.clone().filter(|c| !c.is_empty());
        for item in page.items {
            out.push(item.to_value().map_err(|e| ApiFailure {
                code: 0,
                reason: "ClientError".into(),
                message: format!("cannot read a listed {rtype}: {e}"),
            })?);
        }
        match next {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(Some(out)),
        }
    }
}

/// The CRD type, for listing live CRDs.
#[must_use]
pub fn crd_type() -> ResourceType {
    ResourceType {
        group: "apiextensions.k8s.io".into(),
        version: "v1".into(),
        resource: "customresourcedefinitions".into(),
        kind: "CustomResourceDefinition".into(),
        namespaced: false,
    }
}

/// The Namespace type.
#[must_use]
pub fn namespace_type() -> ResourceType {
    ResourceType {
        group: String::new(),
        version: "v1".into(),
        resource: "namespaces".into(),
        kind: "Namespace".into(),
        namespaced: false,
    }
}
