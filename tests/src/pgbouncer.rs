//! A real PgBouncer in transaction pooling mode in front of the throwaway PostgreSQL
//! cluster ([`crate::pg::PgCluster`]), for tests.
//!
//! It listens on a free loopback port with `pool_mode = transaction` and a wildcard
//! database entry, so every database of the cluster is reached through it under its own
//! name ([`PgBouncer::url_for`]). Its configuration, user list and log live in a temporary
//! directory. PgBouncer refuses to run as root, so as root the directory is given to the
//! `postgres` user and it runs as that user through `setpriv` (which executes it in its
//! place, so killing the child kills PgBouncer).
//!
//! PgBouncer is `$OWNERSHIP_PGBOUNCER` or Debian's `/usr/sbin/pgbouncer` (`cargo xtask
//! test` installs `pgbouncer` when it is missing). Without it the test fails, saying so.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::pg::PgCluster;

/// How long PgBouncer may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Server connections PgBouncer keeps per database and user: fewer than the clients
/// (the processes' pools), so transactions really do change hands.
pub const POOL_SIZE: u32 = 4;

/// The PgBouncer binary, or a panic that says how to get it.
pub fn pgbouncer_bin() -> PathBuf {
    let path = std::env::var_os("OWNERSHIP_PGBOUNCER")
        .map_or_else(|| PathBuf::from("/usr/sbin/pgbouncer"), PathBuf::from);
    assert!(
        path.is_file(),
        "PgBouncer is required for the pooling tests and {} does not exist: install Debian's \
         `pgbouncer` (`cargo xtask test` does, as root) or set OWNERSHIP_PGBOUNCER",
        path.display()
    );
    path
}

/// Waits for the test process to close the pipe on stdin, then stops PgBouncer (`$0`):
/// a static is never dropped, so this is how the shared instance ends with its process.
const WATCHDOG: &str = r#"
while read -r line; do :; done
kill "$0" 2>/dev/null
"#;

/// A running PgBouncer; killed (and its directory removed) when dropped.
pub struct PgBouncer {
    child: Child,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    dir: tempfile::TempDir,
}

impl std::fmt::Debug for PgBouncer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgBouncer")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

/// `host:port` of a `postgres://user@host:port/db` URL.
fn host_port(url: &str) -> (String, u16) {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.split_once('@').map_or(rest, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    let (host, port) = authority.rsplit_once(':').unwrap_or((authority, "5432"));
    (
        host.to_owned(),
        port.parse().expect("a port in the database URL"),
    )
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.status.success() && o.stdout.trim_ascii() == b"0")
}

fn write_ini(dir: &Path, port: u16, upstream: &(String, u16)) -> PathBuf {
    let users = dir.join("userlist.txt");
    std::fs::write(&users, "\"postgres\" \"\"\n").expect("user list");
    let ini = dir.join("pgbouncer.ini");
    let conf = format!(
        "[databases]\n\
         * = host={host} port={upstream_port}\n\
         \n\
         [pgbouncer]\n\
         listen_addr = 127.0.0.1\n\
         listen_port = {port}\n\
         unix_socket_dir =\n\
         auth_type = trust\n\
         auth_file = {users}\n\
         pool_mode = transaction\n\
         default_pool_size = {POOL_SIZE}\n\
         max_client_conn = 1000\n\
         ignore_startup_parameters = extra_float_digits,options,search_path\n\
         logfile = {log}\n\
         pidfile = {pid}\n",
        host = upstream.0,
        upstream_port = upstream.1,
        users = users.display(),
        log = dir.join("pgbouncer.log").display(),
        pid = dir.join("pgbouncer.pid").display(),
    );
    std::fs::write(&ini, conf).expect("pgbouncer.ini");
    ini
}

impl PgBouncer {
    /// Starts PgBouncer in transaction mode in front of the server at `base_url` (the
    /// cluster's [`base_url`](crate::pg::PgCluster::base_url)).
    pub fn start(base_url: &str) -> Self {
        let bin = pgbouncer_bin();
        let upstream = host_port(base_url);
        let dir = tempfile::tempdir().expect("temp dir");
        let root = is_root();
        if root {
            let status = Command::new("chown")
                .arg("-R")
                .arg("postgres")
                .arg(dir.path())
                .status()
                .expect("chown runs");
            assert!(
                status.success(),
                "cannot give the PgBouncer directory to postgres"
            );
        }
        for _attempt in 0..3 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free loopback port")
                .port();
            let ini = write_ini(dir.path(), port, &upstream);
            if root {
                let _ = Command::new("chown")
                    .arg("-R")
                    .arg("postgres")
                    .arg(dir.path())
                    .status();
            }
            let mut command = if root {
                // `setpriv` executes PgBouncer in its place, so killing the child kills it.
                let mut c = Command::new("setpriv");
                c.args([
                    "--reuid=postgres",
                    "--regid=postgres",
                    "--init-groups",
                    "--",
                ])
                .arg(&bin);
                c
            } else {
                Command::new(&bin)
            };
            let mut child = command
                .arg(&ini)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("pgbouncer starts");
            let deadline = Instant::now() + START_TIMEOUT;
            while Instant::now() < deadline {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Self { child, port, dir };
                }
                if child.try_wait().ok().flatten().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let log = std::fs::read_to_string(dir.path().join("pgbouncer.log")).unwrap_or_default();
        panic!("PgBouncer did not start listening:\n{log}");
    }

    /// One PgBouncer for this test process, in front of the shared cluster, started on
    /// first use; it stops when the process exits.
    pub fn shared() -> &'static PgBouncer {
        static SHARED: OnceLock<(PgBouncer, Option<ChildStdin>)> = OnceLock::new();
        let (bouncer, _watchdog) = SHARED.get_or_init(|| {
            let cluster =
                PgCluster::shared().unwrap_or_else(|e| panic!("PostgreSQL is required: {e}"));
            let bouncer = PgBouncer::start(cluster.base_url());
            let watchdog = Command::new("sh")
                .arg("-c")
                .arg(WATCHDOG)
                .arg(bouncer.child.id().to_string())
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .ok()
                .and_then(|mut c| c.stdin.take());
            (bouncer, watchdog)
        });
        bouncer
    }

    /// `database_url` (a URL of the cluster behind it) rewritten to go through PgBouncer.
    pub fn url_for(&self, database_url: &str) -> String {
        let (host, port) = host_port(database_url);
        database_url.replacen(
            &format!("{host}:{port}"),
            &format!("127.0.0.1:{}", self.port),
            1,
        )
    }

    /// What PgBouncer logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pgbouncer.log")).unwrap_or_default()
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
