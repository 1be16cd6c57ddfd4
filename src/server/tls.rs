//! The serving certificate: loaded from PEM files, handed to rustls through a resolver whose
//! key can be swapped atomically, and re-read when the files change.
//!
//! Kubernetes updates a mounted Secret by swapping a `..data` symlink, which file-watch on the
//! file path misses; so this polls and compares content instead. A broken new pair keeps the
//! old one (logged and counted). A certificate chain (leaf first) is accepted.

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use arc_swap::ArcSwap;
use rustls::{
    ServerConfig,
    crypto::CryptoProvider,
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};

use crate::metrics::Metrics;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("{path} holds no usable PEM private key: {reason}")]
    BadKey { path: PathBuf, reason: String },
    #[error("certificate {cert} does not match key {key}: {reason}")]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
    #[error("TLS setup failed: {0}")]
    Setup(#[from] rustls::Error),
}

/// The certificate and key files of the admission listener.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl CertFiles {
    fn read(&self) -> Result<(Vec<u8>, Vec<u8>), TlsError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| TlsError::Read {
                path: path.to_owned(),
                source,
            })
        };
        Ok((read(&self.cert)?, read(&self.key)?))
    }

    fn parse(&self, cert_pem: &[u8], key_pem: &[u8]) -> Result<CertifiedKey, TlsError> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
            .filter_map(Result::ok)
            .collect();
        if chain.is_empty() {
            return Err(TlsError::NoCertificate {
                path: self.cert.clone(),
            });
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::BadKey {
            path: self.key.clone(),
            reason: e.to_string(),
        })?;
        CertifiedKey::from_der(chain, key, &provider()).map_err(|e| TlsError::Mismatch {
            cert: self.cert.clone(),
            key: self.key.clone(),
            reason: e.to_string(),
        })
    }
}

/// When the leaf certificate of a PEM chain expires (Unix seconds), if it parses.
pub fn not_after(cert_pem: &[u8]) -> Option<i64> {
    let leaf = CertificateDer::pem_slice_iter(cert_pem).find_map(Result::ok)?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    Some(cert.validity().not_after.timestamp())
}

/// The crypto provider: ring, the one TLS stack of this binary.
pub fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// Hands rustls the current certificate; swapped by the reloader.
pub struct CertResolver {
    current: ArcSwap<CertifiedKey>,
}

impl fmt::Debug for CertResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CertResolver")
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// The loaded certificate and what is needed to reload it.
pub struct ServingCert {
    files: CertFiles,
    resolver: Arc<CertResolver>,
    seen: std::sync::Mutex<(Vec<u8>, Vec<u8>)>,
    /// Expiry of the certificate in use (Unix seconds; 0 when unknown).
    expiry: std::sync::atomic::AtomicI64,
}

impl ServingCert {
    /// Loads the pair; failing here fails startup.
    pub fn load(files: CertFiles) -> Result<Self, TlsError> {
        let (cert, key) = files.read()?;
        let certified = files.parse(&cert, &key)?;
        Ok(Self {
            files,
            resolver: Arc::new(CertResolver {
                current: ArcSwap::from_pointee(certified),
            }),
            expiry: std::sync::atomic::AtomicI64::new(not_after(&cert).unwrap_or(0)),
            seen: std::sync::Mutex::new((cert, key)),
        })
    }

    /// A rustls server configuration (TLS 1.2 and 1.3, h2 and http/1.1) using this certificate.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let mut config = ServerConfig::builder_with_provider(Arc::new(provider()))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_no_client_auth()
            .with_cert_resolver(self.resolver.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// Re-reads the files; swaps in a changed, valid pair. `Ok(true)` when swapped.
    pub fn reload(&self) -> Result<bool, TlsError> {
        let (cert, key) = self.files.read()?;
        {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            if seen.0 == cert && seen.1 == key {
                return Ok(false);
            }
            // Remember even a broken pair, so it is reported once, not on every poll.
            *seen = (cert.clone(), key.clone());
        }
        let certified = self.files.parse(&cert, &key)?;
        self.resolver.current.store(Arc::new(certified));
        self.expiry.store(
            not_after(&cert).unwrap_or(0),
            std::sync::atomic::Ordering::Relaxed,
        );
        Ok(true)
    }

    /// When the certificate in use expires (Unix seconds; 0 when unknown).
    pub fn expiry(&self) -> i64 {
        self.expiry.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Polls the files every `interval` until the task is dropped.
    pub async fn watch(self: Arc<Self>, interval: Duration, metrics: Arc<Metrics>) {
        metrics.certificate_expiry.set(self.expiry());
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let this = self.clone();
            let result = tokio::task::spawn_blocking(move || this.reload()).await;
            match result {
                Ok(Ok(true)) => {
                    metrics.reload("certificate", true);
                    metrics.certificate_expiry.set(self.expiry());
                    tracing::info!(cert = %self.files.cert.display(), "serving certificate reloaded");
                }
                Ok(Ok(false)) => {}
                Ok(Err(error)) => {
                    metrics.reload("certificate", false);
                    tracing::error!(%error, "new serving certificate rejected; keeping the previous one");
                }
                Err(error) => tracing::error!(%error, "certificate reload task failed"),
            }
        }
    }
}
