//! [`Tls`]: HTTPS for the serving recipe (feature `tls`): rustls, a certificate chain and key
//! from PEM, ALPN `h2` and `http/1.1`, and a certificate reload without a restart.

use rustls_pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
use std::{
    fmt,
    path::{Path, PathBuf},
    sync::{Arc, PoisonError, RwLock},
};
use tokio_rustls::rustls::{
    self,
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};

/// A server certificate for [`Server::tls`](super::Server::tls): browsers speak HTTP/2 only
/// over TLS, so this is what lets a page open more than six event streams to one origin.
///
/// The certificate chain and its private key are PEM (the files `certbot`, `mkcert` or
/// `openssl req -x509` write). Clones share the certificate: [`reload`](Tls::reload) swaps it
/// for every connection accepted afterwards (connections already open keep theirs).
///
/// ```no_run
/// # fn main() -> Result<(), tower_push::serve::TlsError> {
/// use tower_push::{drain::Drain, serve::{Server, Tls}};
///
/// let tls = Tls::from_pem_files("cert.pem", "key.pem")?;
/// let _server = Server::new(&Drain::new()).tls(tls.clone());
/// // Later, on SIGHUP or when the files change:
/// tls.reload()?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Tls {
    resolver: Arc<Resolver>,
}

/// Why a certificate could not be loaded.
#[derive(Debug)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing of the expected kind.
    Pem {
        /// `"certificate"` or `"private key"`.
        what: &'static str,
        /// The file, when read from one.
        path: Option<PathBuf>,
        /// What went wrong.
        reason: String,
    },
    /// rustls refused the key (an unsupported algorithm, say) or the chain.
    Rustls(rustls::Error),
    /// [`Tls::reload`] on a certificate that was not read from files.
    NotFromFiles,
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pem { what, path, reason } => match path {
                Some(path) => write!(f, "TLS {what} from {}: {reason}", path.display()),
                None => write!(f, "TLS {what}: {reason}"),
            },
            Self::Rustls(error) => write!(f, "TLS certificate refused: {error}"),
            Self::NotFromFiles => f.write_str("TLS: this certificate was not read from files"),
        }
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Rustls(error) => Some(error),
            _ => None,
        }
    }
}

struct Resolver {
    current: RwLock<Arc<CertifiedKey>>,
    files: Option<(PathBuf, PathBuf)>,
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolver")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        )
    }
}

fn pem_error(what: &'static str, path: Option<&Path>, reason: impl fmt::Display) -> TlsError {
    TlsError::Pem {
        what,
        path: path.map(Path::to_path_buf),
        reason: reason.to_string(),
    }
}

/// The certified key from PEM bytes (`paths` only name them in errors).
fn certified_key(
    cert: &[u8],
    key: &[u8],
    paths: Option<(&Path, &Path)>,
) -> Result<CertifiedKey, TlsError> {
    let (cert_path, key_path) = paths.unzip();
    let chain = CertificateDer::pem_slice_iter(cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error("certificate", cert_path, e))?;
    if chain.is_empty() {
        return Err(pem_error("certificate", cert_path, "no CERTIFICATE block"));
    }
    let key =
        PrivateKeyDer::from_pem_slice(key).map_err(|e| pem_error("private key", key_path, e))?;
    let provider = rustls::crypto::ring::default_provider();
    CertifiedKey::from_der(chain, key, &provider).map_err(TlsError::Rustls)
}

/// The certified key from the PEM files `cert` and `key`.
fn load(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let read = |what, path: &Path| std::fs::read(path).map_err(|e| pem_error(what, Some(path), e));
    certified_key(
        &read("certificate", cert)?,
        &read("private key", key)?,
        Some((cert, key)),
    )
}

impl Tls {
    /// A certificate chain and its private key (PKCS#8, PKCS#1 or SEC1), PEM, from memory.
    ///
    /// # Errors
    ///
    /// When either is not PEM of its kind, or rustls refuses the key or does not find it
    /// matches the certificate.
    pub fn from_pem(cert_chain: &[u8], private_key: &[u8]) -> Result<Self, TlsError> {
        Ok(Self::new(
            certified_key(cert_chain, private_key, None)?,
            None,
        ))
    }

    /// A certificate chain and its private key from PEM files; [`reload`](Tls::reload) reads
    /// them again.
    ///
    /// # Errors
    ///
    /// As [`from_pem`](Tls::from_pem), and when a file cannot be read.
    pub fn from_pem_files(
        cert_chain: impl AsRef<Path>,
        private_key: impl AsRef<Path>,
    ) -> Result<Self, TlsError> {
        let (cert, key) = (cert_chain.as_ref(), private_key.as_ref());
        let certified = load(cert, key)?;
        Ok(Self::new(
            certified,
            Some((cert.to_path_buf(), key.to_path_buf())),
        ))
    }

    fn new(certified: CertifiedKey, files: Option<(PathBuf, PathBuf)>) -> Self {
        Self {
            resolver: Arc::new(Resolver {
                current: RwLock::new(Arc::new(certified)),
                files,
            }),
        }
    }

    /// Reads the PEM files again and serves the new certificate to every connection accepted
    /// from now on. On an error the current certificate stays.
    ///
    /// # Errors
    ///
    /// [`TlsError::NotFromFiles`] for a [`from_pem`](Tls::from_pem) certificate; otherwise as
    /// [`from_pem_files`](Tls::from_pem_files).
    pub fn reload(&self) -> Result<(), TlsError> {
        let (cert, key) = self.resolver.files.as_ref().ok_or(TlsError::NotFromFiles)?;
        let certified = load(cert, key)?;
        *self
            .resolver
            .current
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(certified);
        tracing::info!(cert = %cert.display(), "TLS certificate reloaded");
        Ok(())
    }

    /// The acceptor: ALPN `h2` then `http/1.1` (only `http/1.1` when `http2` is off).
    pub(super) fn acceptor(&self, http2: bool) -> tokio_rustls::TlsAcceptor {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .with_no_client_auth()
            .with_cert_resolver(self.resolver.clone());
        config.alpn_protocols = if http2 {
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        } else {
            vec![b"http/1.1".to_vec()]
        };
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    }
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("files", &self.resolver.files)
            .finish_non_exhaustive()
    }
}
