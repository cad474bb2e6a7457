//! Native TLS for `ownership serve`: rustls with the `ring` provider (no OpenSSL), a
//! certificate chain and private key read from PEM files, and a reload of both on SIGHUP
//! that changes what new handshakes present without touching open connections.
//!
//! The certificate sits behind a resolver that every handshake asks; a reload builds and
//! checks a new [`CertifiedKey`] first and swaps it in only when it is complete, so a bad
//! new file is reported and the previous certificate stays in use. Handshakes run in
//! their own tasks (a slow client never holds up the others) and hand finished streams to
//! [`TlsListener`], which `axum::serve` accepts from like from a `TcpListener`, graceful
//! shutdown included.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// How long a client may take to complete its TLS handshake before the connection is
/// dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshaken connections waiting for the server to accept them.
const ACCEPT_QUEUE: usize = 64;

/// Where the certificate chain and its private key are (`[tls] cert_file`, `key_file`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM: the server's certificate first, then any intermediates.
    pub cert_file: PathBuf,
    /// PEM: the certificate's private key (PKCS#8, PKCS#1 RSA or SEC1 EC), unencrypted.
    pub key_file: PathBuf,
}

/// The crypto provider the server uses: `ring`, named explicitly so rustls never has to
/// pick one.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read the TLS {what} `{}`: {e}", path.display()))
}

/// Reads and checks the certificate chain and key: both parse, the key is one the
/// provider can sign with, and it belongs to the first certificate. Every error names the
/// file and what is wrong with it.
pub fn load(files: &TlsFiles, provider: &CryptoProvider) -> Result<CertifiedKey, String> {
    let cert_path = files.cert_file.display();
    let key_path = files.key_file.display();
    let cert_pem = read(&files.cert_file, "certificate file")?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("the TLS certificate file `{cert_path}` is not valid PEM: {e}"))?;
    if chain.is_empty() {
        return Err(format!(
            "the TLS certificate file `{cert_path}` holds no certificate (expected PEM \
             `-----BEGIN CERTIFICATE-----` blocks, the server's certificate first)"
        ));
    }

    let key_pem = read(&files.key_file, "key file")?;
    let key = match PrivateKeyDer::from_pem_slice(&key_pem) {
        Ok(key) => key,
        Err(rustls_pki_types::pem::Error::NoItemsFound) => {
            let text = String::from_utf8_lossy(&key_pem);
            let hint = if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
                "it is encrypted; give the key unencrypted and protect the file instead"
            } else if text.contains("-----BEGIN CERTIFICATE-----") {
                "it holds a certificate: are the certificate and key files swapped?"
            } else {
                "expected a PEM `PRIVATE KEY`, `RSA PRIVATE KEY` or `EC PRIVATE KEY` block"
            };
            return Err(format!(
                "the TLS key file `{key_path}` holds no private key ({hint})"
            ));
        }
        Err(e) => {
            return Err(format!(
                "the TLS key file `{key_path}` is not valid PEM: {e}"
            ));
        }
    };
    let signing_key = provider.key_provider.load_private_key(key).map_err(|e| {
        format!("the TLS key file `{key_path}` holds a private key that cannot be used: {e}")
    })?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok(certified)
        }
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(format!(
                "the TLS key file `{key_path}` does not match the certificate in `{cert_path}` \
                 (the first certificate must be the server's own, issued for this key)"
            ))
        }
        Err(e) => Err(format!(
            "the first certificate in the TLS certificate file `{cert_path}` cannot be \
             parsed: {e}"
        )),
    }
}

/// Hands every handshake the current certificate.
#[derive(Debug)]
struct CurrentCertificate(RwLock<Arc<CertifiedKey>>);

impl CurrentCertificate {
    fn get(&self) -> Arc<CertifiedKey> {
        // A poisoned lock still holds a complete certificate: swaps only assign an `Arc`.
        Arc::clone(
            &self
                .0
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    fn set(&self, key: Arc<CertifiedKey>) {
        *self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = key;
    }
}

impl ResolvesServerCert for CurrentCertificate {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }
}

/// The server's TLS: its files, the certificate in use and the acceptor built on it.
/// Cheap to clone; clones share the certificate.
#[derive(Clone)]
pub struct Tls {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    current: Arc<CurrentCertificate>,
    acceptor: TlsAcceptor,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Loads the certificate and key ([`load`]) and builds the server configuration:
    /// TLS 1.2 and 1.3 with rustls' safe defaults, no client certificates, HTTP/1.1.
    pub fn new(files: TlsFiles) -> Result<Self, String> {
        let provider = provider();
        let key = load(&files, &provider)?;
        let current = Arc::new(CurrentCertificate(RwLock::new(Arc::new(key))));
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS configuration: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&current) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            files,
            provider,
            current,
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// The files this server reads.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// Reads the files again and, when they hold a usable certificate and key, presents
    /// them to every new handshake. Open connections keep the certificate they were
    /// made with. On error nothing changes.
    pub fn reload(&self) -> Result<(), String> {
        let key = load(&self.files, &self.provider)?;
        self.current.set(Arc::new(key));
        Ok(())
    }

    /// Warns when the key file can be read by its group or by others (Unix).
    pub fn warn_if_key_exposed(&self) {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            if let Ok(meta) = std::fs::metadata(&self.files.key_file) {
                let mode = meta.permissions().mode();
                if mode & 0o077 != 0 {
                    tracing::warn!(
                        key_file = %self.files.key_file.display(),
                        mode = %format!("{:o}", mode & 0o777),
                        "the TLS key file can be read by its group or by others; make it \
                         readable by the server's user only (chmod 600)"
                    );
                }
            }
        }
    }

    /// Accepts TCP connections on `listener` and shakes hands with each in its own task;
    /// the returned listener yields the connections whose handshake succeeded.
    pub fn listen(&self, listener: TcpListener) -> std::io::Result<TlsListener> {
        let local = listener.local_addr()?;
        let (tx, rx) = mpsc::channel(ACCEPT_QUEUE);
        let acceptor = self.acceptor.clone();
        let task = tokio::spawn(accept_loop(listener, acceptor, tx));
        Ok(TlsListener {
            ready: rx,
            local,
            _accepting: AbortOnDrop(task),
        })
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                accept_error(e).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let ready = ready.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    // Fails only when the server has stopped accepting: the connection is
                    // then dropped, as a plain one would be.
                    let _ = ready.send((stream, peer)).await;
                }
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

/// What `axum::serve` does with accept errors: a connection that went away is skipped;
/// anything else (out of file descriptors) is logged and waited out.
async fn accept_error(e: std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accepting a connection failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

#[derive(Debug)]
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Connections that completed their TLS handshake, for `axum::serve`. Dropping it (which
/// graceful shutdown does first) closes the TCP listener.
#[derive(Debug)]
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    _accepting: AbortOnDrop,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(ready) => ready,
            // The accept loop never ends on its own; if it did, accept nothing more.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// Reloads the certificate on every SIGHUP while it lives (see [`reload_on_hangup`]).
#[derive(Debug)]
pub struct ReloadOnHangup {
    _task: AbortOnDrop,
}

/// Reloads `tls` whenever the process receives SIGHUP, until the returned guard is
/// dropped. The signal handler is installed before this returns, so a SIGHUP sent once
/// the server says it is serving never takes the default action (ending the process).
pub fn reload_on_hangup(tls: Tls) -> Result<ReloadOnHangup, String> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangups = signal(SignalKind::hangup())
            .map_err(|e| format!("cannot listen for SIGHUP (TLS reload): {e}"))?;
        Ok(ReloadOnHangup {
            _task: AbortOnDrop(tokio::spawn(async move {
                while hangups.recv().await.is_some() {
                    match tls.reload() {
                        Ok(()) => tracing::info!(
                            cert_file = %tls.files.cert_file.display(),
                            "TLS certificate reloaded"
                        ),
                        Err(error) => tracing::warn!(
                            %error,
                            "TLS certificate reload failed; still serving the previous certificate"
                        ),
                    }
                }
            })),
        })
    }
    #[cfg(not(unix))]
    {
        let _ = tls;
        Ok(ReloadOnHangup {
            _task: AbortOnDrop(tokio::spawn(async {})),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic, reason = "tests")]

    use super::*;

    fn files(dir: &Path, cert: &[u8], key: &[u8]) -> TlsFiles {
        let files = TlsFiles {
            cert_file: dir.join("cert.pem"),
            key_file: dir.join("key.pem"),
        };
        std::fs::write(&files.cert_file, cert).unwrap();
        std::fs::write(&files.key_file, key).unwrap();
        files
    }

    fn error(files: &TlsFiles) -> String {
        match load(files, &provider()) {
            Ok(_) => panic!("{files:?} was accepted"),
            Err(e) => e,
        }
    }

    #[test]
    fn unreadable_or_empty_files_are_named() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();

        let missing = TlsFiles {
            cert_file: dir.join("absent-cert.pem"),
            key_file: dir.join("absent-key.pem"),
        };
        let e = error(&missing);
        assert!(e.contains("cannot read the TLS certificate file"), "{e}");
        assert!(e.contains("absent-cert.pem"), "{e}");

        let no_cert = files(dir, b"hello\n", b"");
        let e = error(&no_cert);
        assert!(e.contains("holds no certificate"), "{e}");
        assert!(e.contains("cert.pem"), "{e}");

        let bad_pem = files(dir, b"-----BEGIN CERTIFICATE-----\n!!!!\n", b"");
        let e = error(&bad_pem);
        assert!(e.contains("is not valid PEM"), "{e}");

        // A well-formed PEM block whose content is not a certificate: the key is checked
        // first, so give it one that is also not a key.
        let cert = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let e = error(&files(dir, cert, b"nothing"));
        assert!(e.contains("holds no private key"), "{e}");
        assert!(e.contains("key.pem"), "{e}");
        let e = error(&files(dir, cert, cert));
        assert!(e.contains("swapped"), "{e}");
        let e = error(&files(
            dir,
            cert,
            b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
        ));
        assert!(e.contains("encrypted"), "{e}");
        let e = error(&files(
            dir,
            cert,
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        ));
        assert!(e.contains("cannot be used"), "{e}");
    }
}
