//! Store settings, as they appear in `rewindd.toml` under `[store]` and in
//! the restore tool's flags (`--store`, `--s3-endpoint`: [`StoreConfig::from_url`]).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::{Result, StoreError};

/// Where snapshots and segments go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum StoreConfig {
    /// A directory on a local (or mounted) filesystem.
    Local {
        /// Root directory; created 0700 when missing.
        path: PathBuf,
    },
    /// S3-compatible object storage.
    S3(S3Config),
}

impl StoreConfig {
    /// The default store: `<data_dir>/store`.
    #[must_use]
    pub fn default_local(data_dir: &std::path::Path) -> Self {
        Self::Local {
            path: data_dir.join("store"),
        }
    }

    /// The store a `--store` value names: a directory, or
    /// `s3://bucket[/prefix]` with `endpoint` (None: AWS). Plain http is
    /// allowed to loopback endpoints only (see [`S3Config::validate`]);
    /// credentials come from the environment, and so does the region
    /// (`AWS_REGION`, else `us-east-1`).
    pub fn from_url(url: &str, endpoint: Option<&str>) -> Result<Self> {
        let url_err = |reason: String| StoreError::Url {
            url: url.to_owned(),
            reason,
        };
        let Some(rest) = url.strip_prefix("s3://") else {
            if url.is_empty() {
                return Err(url_err("empty".into()));
            }
            return Ok(Self::Local { path: url.into() });
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let cfg = Self::S3(S3Config {
            endpoint: endpoint.map(str::to_owned),
            bucket: bucket.to_owned(),
            prefix: prefix.trim_end_matches('/').to_owned(),
            region: std::env::var("AWS_REGION").unwrap_or_else(|_| default_region()),
            credentials_file: None,
            ca_file: None,
            allow_http: endpoint.is_some_and(|e| e.starts_with("http://")),
            path_style: true,
        });
        cfg.validate().map_err(|e| url_err(e.to_string()))?;
        Ok(cfg)
    }

    /// The same store rooted at `sub` (a relative key prefix without a
    /// trailing `/`, such as one cluster's place `clusters/<key>`): the
    /// directory below a local root, or the prefix extended on S3.
    #[must_use]
    pub fn within(&self, sub: &str) -> Self {
        let sub = sub.trim_matches('/');
        match self {
            Self::Local { path } => Self::Local {
                path: path.join(sub),
            },
            Self::S3(s3) => {
                let mut s3 = s3.clone();
                s3.prefix = match s3.prefix.trim_matches('/') {
                    "" => sub.to_owned(),
                    p => format!("{p}/{sub}"),
                };
                Self::S3(s3)
            }
        }
    }

    /// Checks every setting, naming the first one that is wrong.
    pub fn validate(&self) -> Result<()> {
        match self {
            Self::Local { path } => {
                if path.as_os_str().is_empty() {
                    return Err(config("store.path", "must not be empty"));
                }
                Ok(())
            }
            Self::S3(s3) => s3.validate(),
        }
    }
}

/// Settings of an S3-compatible store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// Endpoint URL, e.g. `https://s3.example.com`; `None` means AWS itself.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Bucket name.
    pub bucket: String,
    /// Key prefix inside the bucket, so several clusters can share one bucket.
    #[serde(default)]
    pub prefix: String,
    /// Region; Garage uses `garage`, MinIO accepts anything.
    #[serde(default = "default_region")]
    pub region: String,
    /// File holding credentials (`access_key_id = ...`,
    /// `secret_access_key = ...`; the AWS `credentials` file format works
    /// too). Without it, `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` are
    /// read from the environment.
    #[serde(default)]
    pub credentials_file: Option<PathBuf>,
    /// PEM file with extra CA certificates to trust for the endpoint.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Allow plain `http://` endpoints. Only honoured for loopback
    /// addresses: credentials and data must not cross a network in clear.
    #[serde(default)]
    pub allow_http: bool,
    /// Use path-style URLs (`endpoint/bucket/key`); most self-hosted
    /// servers (Garage, MinIO) want this.
    #[serde(default = "default_true")]
    pub path_style: bool,
}

fn default_region() -> String {
    "us-east-1".to_owned()
}

fn default_true() -> bool {
    true
}

impl S3Config {
    /// Checks every setting, naming the first one that is wrong.
    pub fn validate(&self) -> Result<()> {
        if self.bucket.is_empty() {
            return Err(config("store.bucket", "must not be empty"));
        }
        if self.region.is_empty() {
            return Err(config("store.region", "must not be empty"));
        }
        if self.prefix.starts_with('/') || self.prefix.contains("//") {
            return Err(config(
                "store.prefix",
                "must be relative, without empty components",
            ));
        }
        if let Some(endpoint) = &self.endpoint {
            if !endpoint.starts_with("https://") && !endpoint.starts_with("http://") {
                return Err(config("store.endpoint", "must start with https://"));
            }
            let url = url::Url::parse(endpoint)
                .map_err(|e| config("store.endpoint", format!("not a URL: {e}")))?;
            if !url.username().is_empty() || url.password().is_some() {
                return Err(config(
                    "store.endpoint",
                    "must not carry credentials (use credentials_file or the AWS_* variables)",
                ));
            }
            match url.scheme() {
                "https" => {}
                "http" => {
                    if !self.allow_http {
                        return Err(config(
                            "store.endpoint",
                            "plain http needs allow_http = true (loopback only)",
                        ));
                    }
                    if !is_loopback_host(&url) {
                        return Err(config(
                            "store.allow_http",
                            "plain http is only allowed to a loopback address",
                        ));
                    }
                }
                _ => return Err(config("store.endpoint", "must start with https://")),
            }
        }
        Ok(())
    }
}

/// Whether a URL's host, as an HTTP client would connect to it, is a
/// loopback address (or `localhost`).
fn is_loopback_host(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// How the store retries failed operations.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// First delay.
    #[serde(with = "millis", rename = "initial_backoff_ms")]
    pub initial: Duration,
    /// Longest delay between two attempts.
    #[serde(with = "millis", rename = "max_backoff_ms")]
    pub max: Duration,
    /// Attempts in all, including the first; at least 1.
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(30),
            max_attempts: 8,
        }
    }
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// Credentials read from a file: accepts `key = value` lines with
/// `access_key_id`/`aws_access_key_id`, `secret_access_key`/
/// `aws_secret_access_key` and optional `session_token`/`aws_session_token`;
/// `[section]` lines and `#` comments are ignored. Values may be quoted.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Access key id.
    pub access_key_id: String,
    /// Secret key.
    pub secret_access_key: String,
    /// Session token, for temporary credentials.
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// Parses the content of a credentials file.
    pub fn parse(text: &str) -> Result<Self> {
        let (mut id, mut secret, mut token) = (None, None, None);
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with('[') {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let value = value.trim().trim_matches('"').to_owned();
            match key.trim() {
                "access_key_id" | "aws_access_key_id" => id = Some(value),
                "secret_access_key" | "aws_secret_access_key" => secret = Some(value),
                "session_token" | "aws_session_token" => token = Some(value),
                _ => {}
            }
        }
        match (id, secret) {
            (Some(access_key_id), Some(secret_access_key))
                if !access_key_id.is_empty() && !secret_access_key.is_empty() =>
            {
                Ok(Self {
                    access_key_id,
                    secret_access_key,
                    session_token: token,
                })
            }
            _ => Err(config(
                "store.credentials_file",
                "needs access_key_id and secret_access_key",
            )),
        }
    }
}

pub(crate) fn config(setting: &'static str, reason: impl Into<String>) -> StoreError {
    StoreError::Config {
        setting,
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3(endpoint: &str, allow_http: bool) -> S3Config {
        S3Config {
            endpoint: Some(endpoint.to_owned()),
            bucket: "b".into(),
            prefix: String::new(),
            region: "garage".into(),
            credentials_file: None,
            ca_file: None,
            allow_http,
            path_style: true,
        }
    }

    #[test]
    fn http_only_to_loopback_and_only_when_allowed() {
        assert!(s3("http://127.0.0.1:3900", true).validate().is_ok());
        assert!(s3("http://[::1]:3900/", true).validate().is_ok());
        assert!(s3("http://localhost:3900", true).validate().is_ok());
        assert!(s3("http://127.0.0.1:3900", false).validate().is_err());
        assert!(s3("http://10.0.0.1:3900", true).validate().is_err());
        assert!(
            s3("http://127.0.0.1.evil.com:3900", true)
                .validate()
                .is_err()
        );
        assert!(s3("https://s3.example.com", false).validate().is_ok());
        assert!(s3("ftp://x", true).validate().is_err());
    }

    /// The part before `@` is user information, not the host: a check that
    /// split the authority at `:` took these for loopback.
    #[test]
    fn http_loopback_check_is_not_fooled_by_user_information() {
        for endpoint in [
            "http://localhost:80@evil.example",
            "http://127.0.0.1@evil.example:3900",
            "http://[::1]@evil.example/",
            "http://localhost@127.0.0.1.evil.example",
        ] {
            let err = s3(endpoint, true).validate().unwrap_err().to_string();
            assert!(
                err.contains("store.endpoint") || err.contains("store.allow_http"),
                "{endpoint}: {err}"
            );
        }
        // Credentials in the URL are refused even over https.
        let err = s3("https://key:secret@s3.example.com", false)
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.contains("credentials"), "{err}");
        assert!(
            !err.contains("secret@"),
            "the error must not echo the URL's secret: {err}"
        );
        // Upper-case localhost is still loopback.
        assert!(s3("http://LOCALHOST:3900", true).validate().is_ok());
    }

    #[test]
    fn credentials_file_formats() {
        let aws = "[default]\naws_access_key_id = AK\naws_secret_access_key = \"SK\"\n";
        let c = Credentials::parse(aws).unwrap();
        assert_eq!(
            (c.access_key_id.as_str(), c.secret_access_key.as_str()),
            ("AK", "SK")
        );
        assert!(Credentials::parse("access_key_id = AK\n").is_err());
        assert!(!format!("{c:?}").contains("SK"));
    }

    #[test]
    fn store_urls() {
        assert_eq!(
            StoreConfig::from_url("/var/lib/rewind/store", None).unwrap(),
            StoreConfig::Local {
                path: "/var/lib/rewind/store".into()
            }
        );
        // `s3:` without the slashes is a directory name, as any other.
        assert!(matches!(
            StoreConfig::from_url("s3:x", None).unwrap(),
            StoreConfig::Local { .. }
        ));
        let StoreConfig::S3(c) =
            StoreConfig::from_url("s3://b/team/a/", Some("http://127.0.0.1:3900")).unwrap()
        else {
            panic!("not s3");
        };
        assert_eq!(
            (c.bucket.as_str(), c.prefix.as_str(), c.endpoint.as_deref()),
            ("b", "team/a", Some("http://127.0.0.1:3900"))
        );
        assert!(c.allow_http && c.path_style);
        let StoreConfig::S3(c) = StoreConfig::from_url("s3://b", None).unwrap() else {
            panic!("not s3");
        };
        assert_eq!((c.bucket.as_str(), c.prefix.as_str()), ("b", ""));
        assert_eq!(c.endpoint, None);

        let err = |url: &str, endpoint: Option<&str>| {
            StoreConfig::from_url(url, endpoint)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(err("", None), r#"store "": empty"#);
        assert_eq!(
            err("s3:///p", None),
            "store \"s3:///p\": store setting `store.bucket`: must not be empty"
        );
        assert_eq!(
            err("s3://b//p", None),
            "store \"s3://b//p\": store setting `store.prefix`: must be relative, without empty components"
        );
        // Plain http only to a loopback endpoint.
        assert_eq!(
            err("s3://b", Some("http://10.0.0.1:3900")),
            "store \"s3://b\": store setting `store.allow_http`: plain http is only allowed to a loopback address"
        );
        assert!(matches!(
            StoreConfig::from_url("s3://b", Some("ftp://x")),
            Err(StoreError::Url { .. })
        ));
    }

    #[test]
    fn toml_shapes() {
        let local: StoreConfig = serde_json::from_str(r#"{"kind":"local","path":"/x"}"#).unwrap();
        assert_eq!(local, StoreConfig::Local { path: "/x".into() });
        let s3: StoreConfig =
            serde_json::from_str(r#"{"kind":"s3","bucket":"b","endpoint":"https://e"}"#).unwrap();
        assert!(matches!(s3, StoreConfig::S3(ref c) if c.region == "us-east-1" && c.path_style));
        assert!(
            serde_json::from_str::<StoreConfig>(r#"{"kind":"s3","bucket":"b","x":1}"#).is_err()
        );
    }
}
