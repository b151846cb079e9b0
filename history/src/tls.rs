//! The process's TLS crypto provider.

/// Installs rustls' ring crypto provider for this process, once; later
/// calls do nothing. kube enables ring and the S3 store's HTTP client
/// enables aws-lc-rs; with both, rustls refuses to choose and every TLS
/// client creation panics. Call this before creating a `kube::Client` or an
/// S3 store.
pub fn install_tls_provider() {
    // Err means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
