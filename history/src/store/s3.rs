//! The S3-compatible backend, on the `object_store` crate.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::stream::FuturesUnordered;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{
    BackoffConfig, Certificate, ClientOptions, MultipartUpload, ObjectStore, ObjectStoreExt,
    PutPayload, RetryConfig,
};
use tracing::{debug, warn};

use super::ObjectInfo;
use super::config::{Credentials, S3Config, config};
use super::error::{Result, StoreError};

/// Objects at least this large are uploaded in parts: one PUT of a large
/// snapshot is one long request that a flaky link restarts from zero, and
/// servers cap single PUTs (5 GiB on AWS).
pub const MULTIPART_THRESHOLD: usize = 8 << 20;

/// Size of each part but the last (S3 wants at least 5 MiB).
pub const MULTIPART_PART_SIZE: usize = 8 << 20;

/// Parts in flight at once per upload.
const MULTIPART_CONCURRENCY: usize = 4;

/// A bucket (and key prefix) on an S3-compatible server.
#[derive(Debug, Clone)]
pub struct S3 {
    /// The client; shared, it pools connections.
    client: Arc<dyn ObjectStore>,
    /// Key prefix with a trailing `/`, or empty.
    prefix: String,
    /// Multipart uploads completed, for tests and metrics.
    multipart_uploads: Arc<AtomicU64>,
}

impl S3 {
    /// Builds a client from validated settings. Makes no request.
    pub fn open(cfg: &S3Config) -> Result<Self> {
        cfg.validate()?;
        // Both rustls providers are linked (kube: ring, this client:
        // aws-lc-rs); without a chosen default, TLS setup would panic.
        crate::install_tls_provider();
        let creds = match &cfg.credentials_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| StoreError::io("read credentials", path, e))?;
                Credentials::parse(&text)?
            }
            None => from_env()?,
        };
        let mut options = ClientOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            .with_timeout(Duration::from_secs(120))
            .with_allow_http(cfg.allow_http);
        if let Some(ca) = &cfg.ca_file {
            let pem = std::fs::read(ca).map_err(|e| StoreError::io("read CA file", ca, e))?;
            let certs = Certificate::from_pem_bundle(&pem)
                .map_err(|e| config("store.ca_file", e.to_string()))?;
            for cert in certs {
                options = options.with_root_certificate(cert);
            }
        }
        // Our own retry loop (with jitter, and typed errors) sits above this
        // one; keep the client's short so the two don't multiply.
        let retry = RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(1),
                base: 2.0,
            },
            max_retries: 1,
            retry_timeout: Duration::from_secs(10),
        };
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&cfg.bucket)
            .with_region(&cfg.region)
            .with_access_key_id(creds.access_key_id)
            .with_secret_access_key(creds.secret_access_key)
            .with_allow_http(cfg.allow_http)
            .with_virtual_hosted_style_request(!cfg.path_style)
            .with_client_options(options)
            .with_retry(retry);
        if let Some(token) = creds.session_token {
            builder = builder.with_token(token);
        }
        if let Some(endpoint) = &cfg.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        let client = builder
            .build()
            .map_err(|e| config("store", e.to_string()))?;
        let prefix = match cfg.prefix.trim_matches('/') {
            "" => String::new(),
            p => format!("{p}/"),
        };
        Ok(Self {
            client: Arc::new(client),
            prefix,
            multipart_uploads: Arc::new(AtomicU64::new(0)),
        })
    }

    /// The same bucket and client with the key prefix `sub/` appended (a
    /// relative key prefix without a trailing `/`).
    #[must_use]
    pub fn within(&self, sub: &str) -> Self {
        Self {
            client: Arc::clone(&self.client),
            prefix: format!("{}{}/", self.prefix, sub.trim_matches('/')),
            multipart_uploads: Arc::clone(&self.multipart_uploads),
        }
    }

    fn path(&self, key: &str) -> ObjectPath {
        ObjectPath::from(format!("{}{key}", self.prefix))
    }

    /// Uploads `bytes` at `key`: one PUT below [`MULTIPART_THRESHOLD`], a
    /// multipart upload above it. Either way S3 makes the object visible
    /// whole or not at all (a multipart upload only on completion), so the
    /// data-then-catalog order still holds.
    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<()> {
        if bytes.len() >= MULTIPART_THRESHOLD {
            return self.put_multipart(key, bytes).await;
        }
        self.client
            .put(&self.path(key), PutPayload::from(bytes))
            .await
            .map(|_| ())
            .map_err(|e| StoreError::remote("put", key, e))
    }

    /// Uploads `bytes` at `key` only if no object is there, with a
    /// conditional PUT (`If-None-Match: *`). Servers that ignore or reject
    /// the condition (Garage answers conditional PUTs as plain ones) are
    /// covered by a HEAD first; callers use it for names no other writer
    /// can pick, so the HEAD-then-put window is harmless. Returns whether
    /// it was created.
    pub async fn put_new(&self, key: &str, bytes: Bytes) -> Result<bool> {
        if self.size(key).await?.is_some() {
            return Ok(false);
        }
        let opts = object_store::PutOptions::from(object_store::PutMode::Create);
        match self
            .client
            .put_opts(&self.path(key), PutPayload::from(bytes.clone()), opts)
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(
                object_store::Error::NotImplemented { .. }
                | object_store::Error::NotSupported { .. },
            ) => self.put(key, bytes).await.map(|()| true),
            Err(e) => Err(StoreError::remote("put", key, e)),
        }
    }

    /// Which conditional writes the server honours, found by trying them
    /// under `probes/<token>` (removed afterwards): a create-only PUT
    /// (`If-None-Match: *`) of an existing key must fail, and an `If-Match`
    /// PUT must succeed with the stored ETag and fail both on an existing
    /// key with another ETag and on a missing key (some servers write
    /// there regardless).
    pub async fn probe_conditional(&self, token: &str) -> Result<super::ConditionalWrites> {
        use object_store::{PutMode, PutOptions, UpdateVersion};
        let key = format!("probes/{token}");
        let missing = format!("probes/{token}-missing");
        let create = || PutOptions::from(PutMode::Create);
        let if_match = || {
            PutOptions::from(PutMode::Update(UpdateVersion {
                e_tag: Some("\"rewind-probe-never-an-etag\"".into()),
                version: None,
            }))
        };
        let unsupported = |e: &object_store::Error| {
            matches!(
                e,
                object_store::Error::NotImplemented { .. }
                    | object_store::Error::NotSupported { .. }
            )
        };
        let put = |k: &str, opts: PutOptions| {
            let path = self.path(k);
            async move {
                self.client
                    .put_opts(&path, PutPayload::from_static(b"probe"), opts)
                    .await
            }
        };
        let create_only = match put(&key, create()).await {
            Ok(_) => match put(&key, create()).await {
                Err(object_store::Error::AlreadyExists { .. }) => true,
                Ok(_) => false,
                Err(e) if unsupported(&e) => false,
                Err(e) => return Err(StoreError::remote("put", &key, e)),
            },
            Err(e) if unsupported(&e) => {
                self.put(&key, Bytes::from_static(b"probe")).await?;
                false
            }
            Err(e) => return Err(StoreError::remote("put", &key, e)),
        };
        // The same condition with the stored ETag must succeed.
        let mut compare_and_swap = match self.get_versioned(&key).await {
            Ok(Some((_, e_tag))) => {
                let opts = PutOptions::from(PutMode::Update(UpdateVersion {
                    e_tag: Some(e_tag),
                    version: None,
                }));
                match put(&key, opts).await {
                    Ok(_) => true,
                    Err(e) if unsupported(&e) => false,
                    Err(object_store::Error::Precondition { .. }) => false,
                    Err(e) => return Err(StoreError::remote("put", &key, e)),
                }
            }
            Ok(None) | Err(StoreError::Catalog { .. }) => false,
            Err(e) => return Err(e),
        };
        for k in [&key, &missing] {
            match put(k, if_match()).await {
                Err(
                    object_store::Error::Precondition { .. } | object_store::Error::NotFound { .. },
                ) => {}
                Ok(_) => compare_and_swap = false,
                Err(e) if unsupported(&e) => compare_and_swap = false,
                Err(e) => return Err(StoreError::remote("put", k, e)),
            }
        }
        for k in [&key, &missing] {
            if let Err(e) = self.delete(k).await {
                tracing::warn!(key = %k, error = %e, "cannot remove a conditional-write probe");
            }
        }
        Ok(super::ConditionalWrites {
            create_only,
            compare_and_swap,
        })
    }

    /// Size of the object at `key` (a HEAD), or `None` when there is none.
    pub async fn size(&self, key: &str) -> Result<Option<u64>> {
        match self.client.head(&self.path(key)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(StoreError::remote("head", key, e)),
        }
    }

    /// A multipart upload of `bytes` in [`MULTIPART_PART_SIZE`] parts, at
    /// most [`MULTIPART_CONCURRENCY`] in flight. An upload that does not
    /// complete, on an error or because this future is dropped part way (a
    /// timeout, shutdown), is aborted by a task [`PendingUpload`] spawns,
    /// which retries for a while: the error may be the network's, and the
    /// caller's own retry (a new upload) need not wait for it. So the
    /// server keeps no parts unless it stays out of reach for longer.
    async fn put_multipart(&self, key: &str, bytes: Bytes) -> Result<()> {
        let upload = self
            .client
            .put_multipart(&self.path(key))
            .await
            .map_err(|e| StoreError::remote("start multipart upload", key, e))?;
        let mut pending = PendingUpload {
            upload: Some(upload),
            key: key.to_owned(),
        };
        let sent = match pending.upload.as_mut() {
            Some(upload) => send_parts(upload.as_mut(), bytes).await,
            None => Ok(()),
        };
        if let Err(e) = sent {
            drop(pending);
            return Err(StoreError::remote("upload part", key, e));
        }
        let completed = match pending.upload.as_mut() {
            Some(upload) => upload.complete().await.map(|_| ()),
            None => Ok(()),
        };
        match completed {
            Ok(()) => {
                pending.upload = None;
                self.multipart_uploads.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                drop(pending);
                Err(StoreError::remote("complete multipart upload", key, e))
            }
        }
    }

    /// Multipart uploads completed by this client.
    #[must_use]
    pub fn multipart_uploads(&self) -> u64 {
        self.multipart_uploads.load(Ordering::Relaxed)
    }

    /// Downloads the object at `key`.
    pub async fn get(&self, key: &str) -> Result<Bytes> {
        let result = self
            .client
            .get(&self.path(key))
            .await
            .map_err(|e| StoreError::remote("get", key, e))?;
        result
            .bytes()
            .await
            .map_err(|e| StoreError::remote("get", key, e))
    }

    /// Reads the object at `key` with its `ETag`, or `None` when there is
    /// none. An answer without an `ETag` is an error: a compare-and-swap
    /// needs it.
    pub async fn get_versioned(&self, key: &str) -> Result<Option<(Bytes, String)>> {
        let result = match self.client.get(&self.path(key)).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(StoreError::remote("get", key, e)),
        };
        let Some(e_tag) = result.meta.e_tag.clone() else {
            return Err(StoreError::Catalog {
                key: key.to_owned(),
                reason: "the server sent no ETag".into(),
            });
        };
        let bytes = result
            .bytes()
            .await
            .map_err(|e| StoreError::remote("get", key, e))?;
        Ok(Some((bytes, e_tag)))
    }

    /// A compare-and-swap: a PUT of `bytes` at `key` with `If-Match:
    /// <expected>`, or with `If-None-Match: *` when `expected` is `None`.
    /// Returns the new `ETag`, or `None` when the object was not as
    /// expected (the server refused the condition; nothing was written).
    /// Only for servers whose probe found compare-and-swap.
    pub async fn swap(
        &self,
        key: &str,
        expected: Option<&str>,
        bytes: Bytes,
    ) -> Result<Option<String>> {
        use object_store::{PutMode, PutOptions, UpdateVersion};
        let mode = match expected {
            None => PutMode::Create,
            Some(e_tag) => PutMode::Update(UpdateVersion {
                e_tag: Some(e_tag.to_owned()),
                version: None,
            }),
        };
        match self
            .client
            .put_opts(
                &self.path(key),
                PutPayload::from(bytes),
                PutOptions::from(mode),
            )
            .await
        {
            Ok(r) => match r.e_tag {
                Some(e_tag) => Ok(Some(e_tag)),
                None => Err(StoreError::Catalog {
                    key: key.to_owned(),
                    reason: "the server sent no ETag for a conditional PUT".into(),
                }),
            },
            Err(
                object_store::Error::Precondition { .. }
                | object_store::Error::AlreadyExists { .. }
                | object_store::Error::NotFound { .. },
            ) => Ok(None),
            Err(e) => Err(StoreError::remote("put", key, e)),
        }
    }

    /// Deletes the object at `key`; a missing object is not an error.
    pub async fn delete(&self, key: &str) -> Result<()> {
        match self.client.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(StoreError::remote("delete", key, e)),
        }
    }

    /// The names of the "directories" directly below `prefix` (ending in
    /// `/`, or empty for the root): the common prefixes of a delimited
    /// listing, sorted.
    pub async fn list_dirs(&self, prefix: &str) -> Result<Vec<String>> {
        let full = format!("{}{}", self.prefix, prefix.trim_end_matches('/'));
        let at = match full.trim_end_matches('/') {
            "" => None,
            p => Some(ObjectPath::from(p)),
        };
        let listed = self
            .client
            .list_with_delimiter(at.as_ref())
            .await
            .map_err(|e| StoreError::remote("list", prefix, e))?;
        let mut out: Vec<String> = listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_owned))
            .collect();
        out.sort();
        Ok(out)
    }

    /// Lists every object under `prefix` (which ends in `/`).
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let full = self.path(prefix.trim_end_matches('/'));
        let metas: Vec<_> = self
            .client
            .list(Some(&full))
            .try_collect()
            .await
            .map_err(|e| StoreError::remote("list", prefix, e))?;
        let mut out: Vec<ObjectInfo> = metas
            .into_iter()
            .filter_map(|m| {
                let key = m.location.as_ref().strip_prefix(&self.prefix)?.to_owned();
                Some(ObjectInfo {
                    key,
                    size: m.size,
                    modified_ms: m.last_modified.timestamp_millis(),
                })
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }
}

/// Sends `bytes` as parts of `upload`, [`MULTIPART_CONCURRENCY`] at a time;
/// the first failure ends it (the parts still in flight are dropped).
async fn send_parts(
    upload: &mut dyn MultipartUpload,
    mut rest: Bytes,
) -> std::result::Result<(), object_store::Error> {
    let mut in_flight = FuturesUnordered::new();
    while !rest.is_empty() {
        while in_flight.len() >= MULTIPART_CONCURRENCY {
            if let Some(r) = in_flight.next().await {
                r?;
            }
        }
        let part = rest.split_to(rest.len().min(MULTIPART_PART_SIZE));
        // Parts are numbered in the order `put_part` is called.
        in_flight.push(upload.put_part(PutPayload::from(part)));
    }
    while let Some(r) = in_flight.next().await {
        r?;
    }
    Ok(())
}

/// Attempts at aborting an upload, with [`ABORT_BACKOFF`] doubling up to
/// [`ABORT_BACKOFF_MAX`] between them: about two minutes in all.
const ABORT_ATTEMPTS: u32 = 16;
/// First wait between abort attempts.
const ABORT_BACKOFF: Duration = Duration::from_millis(250);
/// Longest wait between abort attempts.
const ABORT_BACKOFF_MAX: Duration = Duration::from_secs(10);

/// A multipart upload begun and not completed: aborted on drop, by a task
/// on the current runtime.
struct PendingUpload {
    /// `None` once completed or aborted.
    upload: Option<Box<dyn MultipartUpload>>,
    /// The object's key, for logs.
    key: String,
}

impl Drop for PendingUpload {
    fn drop(&mut self) {
        let Some(upload) = self.upload.take() else {
            return;
        };
        let key = std::mem::take(&mut self.key);
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(abort_upload(upload, key));
            }
            Err(_) => warn!(
                key = %key,
                "an interrupted multipart upload could not be aborted (no async runtime); \
                 its parts stay on the server until a lifecycle rule removes them"
            ),
        }
    }
}

/// Aborts `upload`, retrying: the failure that interrupted it may be the
/// network's, and parts left behind cost storage until the bucket's
/// lifecycle rule (`AbortIncompleteMultipartUpload`) removes them.
async fn abort_upload(mut upload: Box<dyn MultipartUpload>, key: String) {
    let mut wait = ABORT_BACKOFF;
    for attempt in 1..=ABORT_ATTEMPTS {
        match upload.abort().await {
            Ok(()) => {
                debug!(key = %key, "aborted an interrupted multipart upload");
                return;
            }
            Err(e) if attempt == ABORT_ATTEMPTS => {
                warn!(
                    key = %key,
                    error = %e,
                    attempts = attempt,
                    "could not abort an interrupted multipart upload; its parts stay on the \
                     server until a lifecycle rule (AbortIncompleteMultipartUpload) removes them"
                );
            }
            Err(_) => {
                tokio::time::sleep(wait).await;
                wait = wait.saturating_mul(2).min(ABORT_BACKOFF_MAX);
            }
        }
    }
}

fn from_env() -> Result<Credentials> {
    let id = std::env::var("AWS_ACCESS_KEY_ID").ok();
    let secret = std::env::var("AWS_SECRET_ACCESS_KEY").ok();
    match (id, secret) {
        (Some(access_key_id), Some(secret_access_key)) => Ok(Credentials {
            access_key_id,
            secret_access_key,
            session_token: std::env::var("AWS_SESSION_TOKEN").ok(),
        }),
        _ => Err(config(
            "store.credentials_file",
            "no credentials: set credentials_file, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
        )),
    }
}
