//! A real nginx as a TLS-terminating reverse proxy, for tests: a throwaway instance with its
//! own prefix, configuration, pid, logs and temp directories in a temporary directory,
//! `daemon off` and `master_process off` (one process, so killing it leaves nothing
//! behind), listening on an ephemeral loopback port with a throwaway self-signed
//! certificate made by `openssl req -x509`. It forwards to one upstream with
//! `X-Forwarded-For: $proxy_add_x_forwarded_for` and `X-Forwarded-Proto: $scheme`, drops
//! a client's own `Forwarded` (as docs/operations.md advises), and keeps the client's
//! `Host` (so the console's same-origin check sees the proxy's origin).
//!
//! nginx is `$OWNERSHIP_NGINX` or Debian's `/usr/sbin/nginx` (`cargo xtask test` installs
//! `nginx-light` when it is missing). Without it the test fails, saying so.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long nginx may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The nginx binary, or a panic that says how to get it.
pub fn nginx_bin() -> PathBuf {
    let path = std::env::var_os("OWNERSHIP_NGINX")
        .map_or_else(|| PathBuf::from("/usr/sbin/nginx"), PathBuf::from);
    assert!(
        path.is_file(),
        "nginx is required for the reverse-proxy test and {} does not exist: install Debian's \
         `nginx-light` (`cargo xtask test` does, as root) or set OWNERSHIP_NGINX",
        path.display()
    );
    path
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// A running nginx; killed (and its directory removed) when dropped.
pub struct Nginx {
    child: Child,
    /// The port it listens on (HTTPS, 127.0.0.1).
    pub port: u16,
    /// The certificate it presents (PEM), self-signed for `IP:127.0.0.1`.
    pub cert_pem: Vec<u8>,
    dir: tempfile::TempDir,
}

impl std::fmt::Debug for Nginx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nginx")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl Nginx {
    /// Starts nginx terminating TLS on 127.0.0.1:`port` (another free port if that one
    /// is taken by then) and proxying to `upstream` (`127.0.0.1:PORT`).
    pub fn start_tls_proxy(port: u16, upstream: &str) -> Self {
        let bin = nginx_bin();
        let dir = tempfile::tempdir().expect("temp dir");
        let (cert, key) = self_signed(dir.path());
        let cert_pem = std::fs::read(&cert).expect("certificate");
        let mut port = port;
        for attempt in 0..3 {
            let conf = write_conf(dir.path(), port, upstream, &cert, &key);
            let error_log = dir.path().join("error.log");
            let mut child = Command::new(&bin)
                .arg("-p")
                .arg(dir.path())
                .arg("-c")
                .arg(&conf)
                .arg("-e")
                .arg(&error_log)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("{} does not start: {e}", bin.display()));
            let deadline = Instant::now() + START_TIMEOUT;
            loop {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Self {
                        child,
                        port,
                        cert_pem,
                        dir,
                    };
                }
                if let Some(status) = child.try_wait().expect("nginx status") {
                    let log = std::fs::read_to_string(&error_log).unwrap_or_default();
                    if attempt < 2 && log.contains("Address already in use") {
                        port = free_port();
                        break;
                    }
                    panic!("nginx exited ({status}) before listening:\n{log}");
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    let log = std::fs::read_to_string(&error_log).unwrap_or_default();
                    panic!("nginx did not listen on {port} within {START_TIMEOUT:?}:\n{log}");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("nginx found no free port");
    }

    /// `https://127.0.0.1:PORT`.
    pub fn base(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// nginx's access log so far (one line per request, with the client address and the
    /// `X-Forwarded-For` it sent on).
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A throwaway self-signed certificate for `IP:127.0.0.1` (not a CA: a leaf that a client
/// trusts directly) and its key, by `openssl req -x509`.
fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let cnf = dir.join("req.cnf");
    std::fs::write(
        &cnf,
        "[req]\nprompt = no\ndistinguished_name = dn\nx509_extensions = ext\n\
         [dn]\nCN = 127.0.0.1\n\
         [ext]\nbasicConstraints = critical, CA:FALSE\n\
         keyUsage = critical, digitalSignature\nextendedKeyUsage = serverAuth\n\
         subjectAltName = IP:127.0.0.1\n",
    )
    .expect("openssl config");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .arg("ec_paramgen_curve:prime256v1")
        .args(["-nodes", "-days", "2", "-config"])
        .arg(&cnf)
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "`openssl` is required to make the proxy's throwaway certificate ({e}): \
                 install Debian's `openssl` (`cargo xtask test` does, as root)"
            )
        });
    assert!(
        out.status.success(),
        "openssl req failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

/// nginx.conf: everything under `dir`, TLS on `port`, everything proxied to `upstream`.
fn write_conf(dir: &Path, port: u16, upstream: &str, cert: &Path, key: &Path) -> PathBuf {
    let d = dir.display();
    let conf = format!(
        r#"daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{
    worker_connections 256;
}}
http {{
    log_format forwarded '$remote_addr "$http_x_forwarded_for" $status "$request"';
    access_log {d}/access.log forwarded;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        location / {{
            proxy_pass http://{upstream};
            proxy_http_version 1.1;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header Forwarded "";
        }}
    }}
}}
"#,
        cert = cert.display(),
        key = key.display(),
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).expect("nginx.conf");
    path
}
