//! Certificates, keys and the static token file of a throwaway control plane.
//!
//! A throwaway CA signs the apiserver's serving certificate (SANs 127.0.0.1,
//! localhost and the in-cluster names), so clients verify TLS for real instead
//! of skipping verification. Identities are bearer tokens from
//! `--token-auth-file`: the simplest way to have users without a
//! controller-manager. The caller decides which users exist.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// Errors while generating or writing key material.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// rcgen refused the parameters or failed to sign.
    #[error("generating {what}: {source}")]
    Generate {
        /// What was being generated.
        what: &'static str,
        /// The cause.
        source: rcgen::Error,
    },
    /// Writing a file failed.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// Result alias for this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Paths of everything written for one control plane.
#[derive(Debug, Clone)]
pub struct Pki {
    /// CA certificate (PEM) that clients trust.
    pub ca_cert: PathBuf,
    /// The CA certificate's PEM text, embedded in kubeconfigs.
    pub ca_pem: String,
    /// The apiserver's serving certificate (PEM).
    pub serving_cert: PathBuf,
    /// The apiserver's serving key (PEM, PKCS#8).
    pub serving_key: PathBuf,
    /// Service-account token signing key (PEM, PKCS#8 ECDSA P-256).
    pub sa_key: PathBuf,
    /// Its public half (PEM), which the apiserver verifies tokens with.
    pub sa_pub: PathBuf,
    /// The static token file (`token,user,uid,"groups"`).
    pub token_file: PathBuf,
}

/// Generates keys and certificates into `dir`, and writes `token_file` (lines of
/// `token,user,uid[,"group1,group2"]`) as the static token file.
pub fn generate(dir: &Path, token_file: &str) -> Result<Pki> {
    let gen_err = |what| move |source| Error::Generate { what, source };

    let ca_key = KeyPair::generate().map_err(gen_err("CA key"))?;
    let mut ca_params =
        CertificateParams::new(Vec::<String>::new()).map_err(gen_err("CA params"))?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "rewind-throwaway-ca");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params
        .self_signed(&ca_key)
        .map_err(gen_err("CA certificate"))?;
    let issuer = Issuer::new(ca_params, ca_key);

    let serving_key = KeyPair::generate().map_err(gen_err("serving key"))?;
    let sans: Vec<String> = [
        "127.0.0.1",
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "10.0.0.1",
    ]
    .iter()
    .map(|s| (*s).to_string())
    .collect();
    let mut params = CertificateParams::new(sans).map_err(gen_err("serving params"))?;
    params
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    let serving_cert = params
        .signed_by(&serving_key, &issuer)
        .map_err(gen_err("serving certificate"))?;

    let sa_key = KeyPair::generate().map_err(gen_err("service-account key"))?;

    let pki = Pki {
        ca_cert: dir.join("ca.crt"),
        ca_pem: ca_cert.pem(),
        serving_cert: dir.join("apiserver.crt"),
        serving_key: dir.join("apiserver.key"),
        sa_key: dir.join("sa.key"),
        sa_pub: dir.join("sa.pub"),
        token_file: dir.join("tokens.csv"),
    };
    write(&pki.ca_cert, &pki.ca_pem)?;
    write(&pki.serving_cert, &serving_cert.pem())?;
    write(&pki.serving_key, &serving_key.serialize_pem())?;
    write(&pki.sa_key, &sa_key.serialize_pem())?;
    write(&pki.sa_pub, &sa_key.public_key_pem())?;
    write(&pki.token_file, token_file)?;
    Ok(pki)
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|source| Error::Write {
        path: path.display().to_string(),
        source,
    })
}
