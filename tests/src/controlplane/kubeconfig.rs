//! Kubeconfig files and `kube::Client`s for the control plane's identities.
//!
//! Every client is built by reading back the kubeconfig file we wrote, so the
//! file that kubectl, the daemon and the restore tool get is the one the tests
//! have exercised.

use std::path::{Path, PathBuf};

use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};

/// Errors while writing a kubeconfig or building a client from it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Writing the file failed.
    #[error("writing kubeconfig {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    /// kube could not read or interpret the kubeconfig.
    #[error("loading kubeconfig {path}: {source}")]
    Load {
        path: String,
        source: KubeconfigError,
    },
    /// kube could not build a client from the config.
    #[error("building a client from {path}: {source}")]
    Client { path: String, source: kube::Error },
}

/// Result alias for this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A user's credentials as a kubeconfig file plus a ready client.
#[derive(Clone)]
pub struct Identity {
    /// The Kubernetes user name (as RBAC subjects name it).
    pub user: String,
    /// Bearer token from the static token file.
    pub token: String,
    /// A kubeconfig file for this user (context `rewind`).
    pub kubeconfig: PathBuf,
    /// A client built from that kubeconfig.
    pub client: kube::Client,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("user", &self.user)
            .field("kubeconfig", &self.kubeconfig)
            .finish_non_exhaustive()
    }
}

/// The text of a kubeconfig for `server` with a bearer token.
pub fn render(server: &str, ca_pem: &str, user: &str, token: &str) -> String {
    rewind_restore::localplane::render_kubeconfig(server, ca_pem, user, token)
}

/// Writes a kubeconfig to `path` and returns the identity with its client.
pub async fn write_identity(
    path: &Path,
    server: &str,
    ca_pem: &str,
    user: &str,
    token: &str,
) -> Result<Identity> {
    let text = render(server, ca_pem, user, token);
    std::fs::write(path, text).map_err(|source| Error::Write {
        path: path.display().to_string(),
        source,
    })?;
    let client = client_from_file(path).await?;
    Ok(Identity {
        user: user.to_string(),
        token: token.to_string(),
        kubeconfig: path.to_path_buf(),
        client,
    })
}

/// Builds a client from a kubeconfig file (its current context).
pub async fn client_from_file(path: &Path) -> Result<kube::Client> {
    rewind_history::install_tls_provider();
    let display = path.display().to_string();
    let kubeconfig = Kubeconfig::read_from(path).map_err(|source| Error::Load {
        path: display.clone(),
        source,
    })?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|source| Error::Load {
            path: display.clone(),
            source,
        })?;
    kube::Client::try_from(config).map_err(|source| Error::Client {
        path: display,
        source,
    })
}
