//! STARTTLS: a rustls server configuration from the config's PEM files, or
//! a self-signed certificate generated at start (the embedded default).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

/// Why TLS cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file cannot be read or holds nothing usable.
    #[error("TLS {what} {path}: {message}")]
    Pem {
        /// `certificate` or `key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// rustls refuses the certificate/key pair.
    #[error("TLS configuration: {0}")]
    Config(String),
    /// The self-signed certificate cannot be generated.
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(String),
}

/// An acceptor from PEM files (`cert` chain and `key`).
pub fn from_pem(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    let pem = |what, path: &Path, message: String| TlsError::Pem { what, path: path.to_path_buf(), message };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| pem("certificate", cert, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| pem("certificate", cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(pem("certificate", cert, "no certificate in the file".into()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| pem("key", key, e.to_string()))?;
    acceptor(chain, key)
}

/// An acceptor with a fresh self-signed certificate for `hostname`.
pub fn self_signed(hostname: &str) -> Result<TlsAcceptor, TlsError> {
    let generated = rcgen::generate_simple_self_signed(vec![hostname.to_string()])
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(generated.signing_key.serialize_der()));
    acceptor(vec![generated.cert.der().clone()], key)
}

fn acceptor(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Result<TlsAcceptor, TlsError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_builds_and_missing_pem_is_named() {
        assert!(self_signed("mx.example.test").is_ok());
        let Err(err) = from_pem(Path::new("/nonexistent/cert.pem"), Path::new("/nonexistent/key.pem")) else {
            panic!("a missing file must be an error");
        };
        assert!(err.to_string().contains("/nonexistent/cert.pem"), "{err}");
    }
}
