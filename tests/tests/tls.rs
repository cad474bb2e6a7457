//! Native TLS of `ownership serve` (the real binary), against a throwaway CA made for each
//! test: clients that trust the CA get answers and see the client address limits apply,
//! clients that trust nothing and plain HTTP are refused; SIGHUP swaps the certificate
//! for new connections while an open connection keeps working; a broken replacement is
//! refused and the previous certificate kept; a bad certificate or key at start stops the
//! server with one `error:` line naming the file.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ownership_tests::pg::PgCluster;
use ownership_tests::serve::{Serve, run_to_end, serve_command, start_command};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// How long the server may take to act on a signal.
const SIGNAL_TIMEOUT: Duration = Duration::from_secs(30);

/// A server certificate and its key, issued by the test CA.
struct Leaf {
    cert_pem: String,
    key_pem: String,
    der: CertificateDer<'static>,
}

/// A throwaway CA and two server certificates for `localhost` and `127.0.0.1` signed by
/// it, in a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
    ca_pem: String,
    ca_der: CertificateDer<'static>,
    first: Leaf,
    second: Leaf,
}

impl Pki {
    fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "ownership test CA");
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let leaf = |name: &str| {
            let mut params =
                CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                    .unwrap();
            params.distinguished_name.push(DnType::CommonName, name);
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            params.use_authority_key_identifier_extension = true;
            let key = KeyPair::generate().unwrap();
            let cert = params.signed_by(&key, &ca).unwrap();
            Leaf {
                cert_pem: cert.pem(),
                key_pem: key.serialize_pem(),
                der: cert.der().clone(),
            }
        };
        Self {
            dir: tempfile::tempdir().unwrap(),
            ca_pem: ca.pem(),
            ca_der: ca.der().clone(),
            first: leaf("first"),
            second: leaf("second"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `leaf` as `cert.pem` and `key.pem` (the key with `key_mode`), each replaced
    /// by a rename, as an operator's deployment would.
    fn install(&self, leaf: &Leaf, key_mode: u32) {
        install_file(&self.path("cert.pem"), leaf.cert_pem.as_bytes(), 0o644);
        install_file(&self.path("key.pem"), leaf.key_pem.as_bytes(), key_mode);
    }
}

fn install_file(path: &Path, contents: &[u8], mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    let staged = path.with_extension("new");
    std::fs::write(&staged, contents).unwrap();
    std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(mode)).unwrap();
    std::fs::rename(&staged, path).unwrap();
}

/// `ownership serve` on `database_url` with `cert_file` and `key_file`.
fn tls_command(database_url: &str, cert_file: &Path, key_file: &Path) -> Command {
    let mut cmd = serve_command(database_url);
    cmd.arg("--tls-cert-file")
        .arg(cert_file)
        .arg("--tls-key-file")
        .arg(key_file);
    cmd
}

/// Where `serve` is told about its certificate: flags, a configuration file, or the
/// environment (the three layers of the configuration).
#[derive(Debug, Clone, Copy)]
enum Via {
    Flags,
    File,
    Env,
}

fn start_tls(pki: &Pki, database_url: &str, via: Via) -> Serve {
    let (cert, key) = (pki.path("cert.pem"), pki.path("key.pem"));
    let cmd = match via {
        Via::Flags => tls_command(database_url, &cert, &key),
        Via::File => {
            let file = pki.path("ownership.toml");
            std::fs::write(
                &file,
                format!(
                    "[tls]\ncert_file = {:?}\nkey_file = {:?}\n",
                    cert.display().to_string(),
                    key.display().to_string()
                ),
            )
            .unwrap();
            let mut cmd = serve_command(database_url);
            cmd.arg("--config").arg(file);
            cmd
        }
        Via::Env => {
            let mut cmd = serve_command(database_url);
            cmd.env("OWNERSHIP_TLS__CERT_FILE", &cert)
                .env("OWNERSHIP_TLS__KEY_FILE", &key);
            cmd
        }
    };
    let serve = start_command(cmd, true);
    assert!(
        serve.base.starts_with("https://127.0.0.1:"),
        "the server announces an https URL: {}",
        serve.base
    );
    serve
}

fn socket_addr(serve: &Serve) -> SocketAddr {
    serve
        .base
        .strip_prefix("https://")
        .unwrap()
        .parse()
        .unwrap()
}

/// Log events (JSON lines) whose message is `message`.
fn events(serve: &Serve, message: &str) -> Vec<Value> {
    serve
        .log()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["fields"]["message"] == message)
        .collect()
}

/// Waits until the server has logged `message` `count` times; returns the last such event.
fn wait_for_event(serve: &Serve, message: &str, count: usize) -> Value {
    let start = Instant::now();
    loop {
        let found = events(serve, message);
        if found.len() >= count {
            return found.last().unwrap().clone();
        }
        assert!(
            start.elapsed() < SIGNAL_TIMEOUT,
            "no {count}x `{message}` after {SIGNAL_TIMEOUT:?}:\n{}",
            serve.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn send_signal(serve: &Serve, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &serve.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {signal}");
}

/// A reqwest client that trusts only `roots` (PEM), nothing built in.
fn client_trusting(roots: &[&str]) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .timeout(Duration::from_secs(30));
    for root in roots {
        builder =
            builder.add_root_certificate(reqwest::Certificate::from_pem(root.as_bytes()).unwrap());
    }
    builder.build().unwrap()
}

/// A TLS connection (rustls with ring) to `addr` that trusts only `ca`, with the
/// certificate the server presented.
async fn connect(
    addr: SocketAddr,
    ca: &CertificateDer<'static>,
) -> (TlsStream<TcpStream>, CertificateDer<'static>) {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let stream = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("TLS handshake with a client that trusts the test CA");
    let presented = stream.get_ref().1.peer_certificates().unwrap()[0].clone();
    (stream, presented)
}

/// Sends `GET /healthz` on an open HTTP/1.1 connection and reads the whole answer
/// (keeping the connection open); returns the status and the body.
async fn healthz(stream: &mut TlsStream<TcpStream>) -> (u16, String) {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    let (head_end, status, length) = loop {
        let n = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut chunk))
            .await
            .expect("an answer within 30 s")
            .unwrap();
        assert!(n > 0, "the connection closed before an answer");
        received.extend_from_slice(&chunk[..n]);
        if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&received[..end]).to_string();
            let status = head.split(' ').nth(1).unwrap().parse::<u16>().unwrap();
            let length = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().unwrap())
                })
                .expect("a content-length");
            assert!(
                !head.to_ascii_lowercase().contains("connection: close"),
                "the server keeps the connection open: {head}"
            );
            break (end + 4, status, length);
        }
    };
    while received.len() < head_end + length {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the connection closed inside the body");
        received.extend_from_slice(&chunk[..n]);
    }
    (
        status,
        String::from_utf8_lossy(&received[head_end..head_end + length]).to_string(),
    )
}

/// What every TLS server must do: answer a client that trusts the CA (the app itself,
/// not only the health check), refuse one that trusts nothing, refuse plain HTTP.
async fn check_basic_tls(serve: &Serve, pki: &Pki) {
    let trusting = client_trusting(&[&pki.ca_pem]);
    let health = trusting
        .get(format!("{}/healthz", serve.base))
        .send()
        .await
        .expect("a client that trusts the CA connects");
    assert_eq!(health.status(), 200);
    let me = trusting
        .get(format!("{}/v1/me", serve.base))
        .bearer_auth(serve.token.as_deref().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200, "{:?}", me.text().await);

    let trusting_nothing = client_trusting(&[]);
    let refused = trusting_nothing
        .get(format!("{}/healthz", serve.base))
        .send()
        .await;
    let error = refused.expect_err("a client that trusts no CA fails the handshake");
    assert!(error.is_connect(), "{error:?}");

    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
        .get(format!("http://{}/healthz", socket_addr(serve)))
        .send()
        .await;
    assert!(
        plain.is_err(),
        "plain HTTP to the TLS port gets no answer: {plain:?}"
    );
}

/// Configured by flags this time.
#[tokio::test(flavor = "multi_thread")]
async fn serves_https_on_libsql_with_the_client_address_and_warns_of_an_open_key() {
    let pki = Pki::new();
    // A key file others may read: served, with a warning.
    pki.install(&pki.first, 0o644);
    let db = tempfile::tempdir().unwrap();
    let url = db.path().join("ownership.db").display().to_string();
    let serve = start_tls(&pki, &url, Via::Flags);
    let serving = wait_for_event(&serve, "serving", 1);
    assert_eq!(serving["fields"]["tls"], true, "{serving}");
    let warned = serve.log().lines().any(|l| {
        l.contains("\"WARN\"") && l.contains("TLS key file can be read by its group or by others")
    });
    assert!(
        warned,
        "a warning about the key file's mode:\n{}",
        serve.log()
    );

    check_basic_tls(&serve, &pki).await;

    // The client address reaches the limits through TLS: failed authentications from
    // 127.0.0.1 are counted and, past the budget (30 by default), refused with 429.
    let http = client_trusting(&[&pki.ca_pem]);
    let mut statuses = Vec::new();
    for _ in 0..40 {
        let r = http
            .get(format!("{}/v1/me", serve.base))
            .bearer_auth("not-a-token-at-all")
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            break;
        }
    }
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    assert!(statuses.len() > 10, "{statuses:?}");
    assert!(
        statuses[..statuses.len() - 1].iter().all(|s| *s == 401),
        "{statuses:?}"
    );
}

/// Configured by the file's `[tls]` section this time.
#[tokio::test(flavor = "multi_thread")]
async fn serves_https_on_postgres() {
    let pki = Pki::new();
    pki.install(&pki.first, 0o600);
    let cluster = PgCluster::shared().unwrap_or_else(|e| panic!("PostgreSQL is required: {e}"));
    let url = cluster.fresh_database_url().unwrap();
    let serve = start_tls(&pki, &url, Via::File);
    check_basic_tls(&serve, &pki).await;
    assert!(
        !serve.log().contains("TLS key file can be read"),
        "no warning for a key only its owner reads:\n{}",
        serve.log()
    );
    let (mut stream, presented) = connect(socket_addr(&serve), &pki.ca_der).await;
    assert_eq!(presented, pki.first.der);
    assert_eq!(healthz(&mut stream).await.0, 200);
}

/// Configured through `OWNERSHIP_TLS__CERT_FILE` / `OWNERSHIP_TLS__KEY_FILE` this time.
#[tokio::test(flavor = "multi_thread")]
async fn sighup_swaps_the_certificate_for_new_connections_and_keeps_open_ones() {
    let pki = Pki::new();
    pki.install(&pki.first, 0o600);
    let db = tempfile::tempdir().unwrap();
    let mut serve = start_tls(
        &pki,
        &db.path().join("ownership.db").display().to_string(),
        Via::Env,
    );
    let addr = socket_addr(&serve);

    let (mut old, old_presented) = connect(addr, &pki.ca_der).await;
    assert_eq!(
        old_presented, pki.first.der,
        "the first certificate at start"
    );
    assert_eq!(healthz(&mut old).await.0, 200);

    // The second certificate, then SIGHUP.
    pki.install(&pki.second, 0o600);
    send_signal(&serve, "-HUP");
    let reloaded = wait_for_event(&serve, "TLS certificate reloaded", 1);
    assert_eq!(reloaded["level"], "INFO", "{reloaded}");

    let (mut new, new_presented) = connect(addr, &pki.ca_der).await;
    assert_eq!(
        new_presented, pki.second.der,
        "a new connection gets the new certificate"
    );
    assert_eq!(healthz(&mut new).await.0, 200);
    // The connection opened before the reload still answers, on the same socket.
    assert_eq!(healthz(&mut old).await.0, 200);
    assert_eq!(
        old.get_ref().1.peer_certificates().unwrap()[0],
        pki.first.der
    );

    // A broken replacement: refused, logged with the file, the second certificate kept.
    install_file(
        &pki.path("cert.pem"),
        b"-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n",
        0o644,
    );
    send_signal(&serve, "-HUP");
    let failed = wait_for_event(
        &serve,
        "TLS certificate reload failed; still serving the previous certificate",
        1,
    );
    assert_eq!(failed["level"], "WARN", "{failed}");
    let reason = failed["fields"]["error"].as_str().unwrap();
    assert!(
        reason.contains(&pki.path("cert.pem").display().to_string()),
        "the warning names the file: {reason}"
    );
    // A key that belongs to another certificate: refused as well.
    pki.install(&pki.first, 0o600);
    install_file(&pki.path("key.pem"), pki.second.key_pem.as_bytes(), 0o600);
    send_signal(&serve, "-HUP");
    let failed = wait_for_event(
        &serve,
        "TLS certificate reload failed; still serving the previous certificate",
        2,
    );
    let reason = failed["fields"]["error"].as_str().unwrap();
    assert!(reason.contains("does not match"), "{reason}");
    assert_eq!(events(&serve, "TLS certificate reloaded").len(), 1);

    let (mut after, after_presented) = connect(addr, &pki.ca_der).await;
    assert_eq!(
        after_presented, pki.second.der,
        "the previous certificate is kept"
    );
    assert_eq!(healthz(&mut after).await.0, 200);
    assert_eq!(healthz(&mut old).await.0, 200);
    assert_eq!(healthz(&mut new).await.0, 200);
    assert!(serve.child.try_wait().unwrap().is_none(), "still running");

    // Graceful shutdown with TLS connections open (idle between requests): the server
    // closes them and exits cleanly.
    send_signal(&serve, "-TERM");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = serve.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < SIGNAL_TIMEOUT,
            "no exit after SIGTERM:\n{}",
            serve.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}\n{}", serve.log());
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), old.read_to_end(&mut rest)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "the open connection is closed: {closed:?} {rest:?}"
    );
    serve.kill();
}

#[test]
fn a_bad_certificate_or_key_at_start_is_one_error_line_naming_the_file() {
    let pki = Pki::new();
    let db = tempfile::tempdir().unwrap();
    let url = db.path().join("ownership.db").display().to_string();
    let good_cert = pki.path("good-cert.pem");
    let good_key = pki.path("good-key.pem");
    install_file(&good_cert, pki.first.cert_pem.as_bytes(), 0o644);
    install_file(&good_key, pki.first.key_pem.as_bytes(), 0o600);
    let other_key = pki.path("other-key.pem");
    install_file(&other_key, pki.second.key_pem.as_bytes(), 0o600);
    let garbage = pki.path("garbage.pem");
    install_file(&garbage, b"this is not PEM\n", 0o600);
    let missing = pki.path("missing.pem");

    let cases: [(&Path, &Path, &Path, &str); 6] = [
        (&missing, &good_key, &missing, "cannot read"),
        (&garbage, &good_key, &garbage, "holds no certificate"),
        (&good_cert, &missing, &missing, "cannot read"),
        (&good_cert, &garbage, &garbage, "holds no private key"),
        (&good_cert, &good_cert, &good_cert, "swapped"),
        (&good_cert, &other_key, &other_key, "does not match"),
    ];
    for (cert, key, named, what) in cases {
        let (code, out) = run_to_end(tls_command(&url, cert, key));
        assert!(
            code.is_some_and(|c| c != 0),
            "{cert:?} {key:?}: exits non-zero ({code:?}):\n{out}"
        );
        let errors: Vec<&str> = out.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(errors.len(), 1, "one error line:\n{out}");
        assert!(
            errors[0].contains(&named.display().to_string()) && errors[0].contains(what),
            "{what} naming {named:?}: {}",
            errors[0]
        );
        assert!(!out.contains("\"serving\""), "it did not serve:\n{out}");
    }
    // Checked before anything is written: no database, no generated master key.
    let written: Vec<_> = std::fs::read_dir(db.path()).unwrap().collect();
    assert!(written.is_empty(), "nothing was written: {written:?}");

    // A certificate without its key is refused, naming the missing setting.
    let mut cmd = serve_command(&url);
    cmd.arg("--tls-cert-file").arg(&good_cert);
    let (code, out) = run_to_end(cmd);
    assert!(code.is_some_and(|c| c != 0), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("error:") && l.contains("tls.key_file")),
        "{out}"
    );
}
