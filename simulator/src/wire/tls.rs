//! TLS for device connections: the service's CA, and optionally a client
//! certificate per device (or one for all), as rustls client configurations
//! with the `ring` provider.
//!
//! A device with a client certificate publishes under rumqttd's tenant
//! prefix `/tenants/<device id>/`: Geoward's broker takes the certificate's
//! Organization (the device id, see `geoward pki`) as the tenant and confines
//! the connection to that prefix.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use thiserror::Error;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

/// TLS could not be set up.
#[derive(Debug, Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("reading {path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// A PEM file holds no certificate.
    #[error("{0}: no PEM certificate found")]
    NoCertificate(String),
    /// A PEM file holds no private key.
    #[error("{0}: no PEM private key found")]
    NoKey(String),
    /// rustls refused the material (bad key, unsupported algorithm, ...).
    #[error("{path}: {message}")]
    Rejected {
        /// The file or device concerned.
        path: String,
        /// rustls's reason.
        message: String,
    },
}

impl TlsError {
    /// Stable low-cardinality code.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Io { .. } => "io",
            Self::NoCertificate(_) => "no_certificate",
            Self::NoKey(_) => "no_key",
            Self::Rejected { .. } => "rejected",
        }
    }
}

/// Which client certificate a device presents.
#[derive(Debug, Clone)]
pub enum ClientIdentity {
    /// None: server authentication only.
    None,
    /// The same certificate for every device (PEM chain and key).
    Shared {
        /// Certificate chain, leaf first.
        certs: Vec<CertificateDer<'static>>,
        /// Its private key.
        key: Arc<PrivateKeyDer<'static>>,
    },
    /// One per device, read from this directory: `<id>.crt` and `<id>.key`,
    /// or `<id>/cert.pem` and `<id>/key.pem` (`<id>.pem` is also accepted
    /// for the certificate).
    PerDevice(PathBuf),
}

/// TLS settings of a run.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    roots: Arc<RootCertStore>,
    identity: ClientIdentity,
    /// Built once when every device shares it.
    shared: Option<Arc<ClientConfig>>,
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

fn certs_from(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(path.display().to_string()));
    }
    Ok(certs)
}

fn key_from(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|_| TlsError::NoKey(path.display().to_string()))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TlsSettings {
    /// Reads the CA file (PEM, one or more roots) and the client identity.
    pub fn new(ca: &Path, identity: ClientIdentity) -> Result<Self, TlsError> {
        let mut roots = RootCertStore::empty();
        let (added, _) = roots.add_parsable_certificates(certs_from(ca)?);
        if added == 0 {
            return Err(TlsError::NoCertificate(ca.display().to_string()));
        }
        let mut s = Self {
            roots: Arc::new(roots),
            identity,
            shared: None,
        };
        if !matches!(s.identity, ClientIdentity::PerDevice(_)) {
            s.shared = Some(s.build(ca.display().to_string(), None)?);
        }
        Ok(s)
    }

    /// Reads a shared client certificate chain and key (PEM).
    pub fn shared_identity(cert: &Path, key: &Path) -> Result<ClientIdentity, TlsError> {
        Ok(ClientIdentity::Shared {
            certs: certs_from(cert)?,
            key: Arc::new(key_from(key)?),
        })
    }

    /// Whether devices present a client certificate (and so publish under
    /// their tenant prefix).
    pub fn has_client_identity(&self) -> bool {
        !matches!(self.identity, ClientIdentity::None)
    }

    /// The client configuration of `device`.
    pub fn client_config(&self, device: &str) -> Result<Arc<ClientConfig>, TlsError> {
        if let Some(c) = &self.shared {
            return Ok(c.clone());
        }
        let ClientIdentity::PerDevice(dir) = &self.identity else {
            return self.build(device.to_string(), None);
        };
        let flat = (
            dir.join(format!("{device}.crt")),
            dir.join(format!("{device}.key")),
        );
        let (cert, key) = if flat.0.exists() {
            flat
        } else if dir.join(format!("{device}.pem")).exists() {
            (dir.join(format!("{device}.pem")), flat.1)
        } else {
            (
                dir.join(device).join("cert.pem"),
                dir.join(device).join("key.pem"),
            )
        };
        let certs = certs_from(&cert)?;
        let key = key_from(&key)?;
        self.build(cert.display().to_string(), Some((certs, key)))
    }

    fn build(
        &self,
        what: String,
        own: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    ) -> Result<Arc<ClientConfig>, TlsError> {
        let rejected = |e: rustls::Error| TlsError::Rejected {
            path: what.clone(),
            message: e.to_string(),
        };
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(rejected)?
            .with_root_certificates(self.roots.clone());
        let identity = match (own, &self.identity) {
            (Some(pair), _) => Some(pair),
            (None, ClientIdentity::Shared { certs, key }) => Some((certs.clone(), key.clone_key())),
            (None, _) => None,
        };
        let config = match identity {
            Some((certs, key)) => builder
                .with_client_auth_cert(certs, key)
                .map_err(rejected)?,
            None => builder.with_no_client_auth(),
        };
        Ok(Arc::new(config))
    }
}
