//! A throwaway PostgreSQL server for tests.
//!
//! [`PgCluster::shared`] starts one cluster per test process, the first time a test asks,
//! and every test then takes its own empty database from
//! [`fresh_database_url`](PgCluster::fresh_database_url). The PostgreSQL tests never skip:
//! when no server can be had, `shared` returns an error that names the cause, and the
//! test that asked fails.
//!
//! A test that stops and restarts the server takes a [`PgCluster::private`] cluster of its
//! own instead (never the shared one), with [`stop`](PgCluster::stop) and
//! [`start_again`](PgCluster::start_again) on the same port.
//!
//! # Where the server comes from
//!
//! - `DATABASE_URL=postgres://…` (or `postgresql://…`): that server is used and no
//!   cluster is started. Databases are created on it with `CREATE DATABASE` and left
//!   there (they are named `t_<n>_<pid>_<nanos>`); drop them when you are done.
//! - Otherwise a cluster is created with `initdb` in a new temporary directory and started
//!   with `pg_ctl` on a free loopback port, trust authentication, user `postgres`, and
//!   durability switched off (`fsync`, `synchronous_commit`, `full_page_writes`): it
//!   holds test data only.
//!
//! The server binaries are looked for in `$OWNERSHIP_PG_BINDIR` (set by
//! `cargo xtask test`), then `pg_config --bindir`, then the newest
//! `/usr/lib/postgresql/<version>/bin` (Debian keeps them off `PATH`). `initdb` refuses
//! to run as root, so as root the directory is given to the `postgres` user and `initdb`
//! and `pg_ctl` run through `runuser -u postgres --`.
//!
//! # Teardown
//!
//! Statics are never dropped, so the cluster cannot stop itself when the tests end.
//! Instead a small `sh` watchdog is started beside it, in its own process group, whose
//! stdin is a pipe this process holds open for its whole life. When the test process
//! exits — normally, by panic or by a signal — the kernel closes that pipe, the
//! watchdog's `read` sees end of file, and it runs `pg_ctl stop -m immediate` and removes
//! the directory. A cluster outlives its test process by milliseconds.
//!
//! The SQL is sent with `psql`, so this harness needs no async runtime or driver of its
//! own.

use std::env;
use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The variable `cargo xtask test` sets to the server binary directory.
pub const BINDIR_VAR: &str = "OWNERSHIP_PG_BINDIR";

/// Attempts at starting on a free port: another process may take the port between our
/// probe and the server's `bind`.
const START_ATTEMPTS: u32 = 3;

/// Lines of the server log quoted in an error.
const LOG_TAIL_LINES: usize = 40;

/// Waits for the test process to close the pipe on stdin, then stops the cluster and
/// removes its directory. Arguments: root dir, data dir, then the `pg_ctl` command
/// (possibly behind `runuser -u postgres --`).
const WATCHDOG: &str = r#"
root=$1; data=$2; shift 2
cd /
while read -r line; do :; done
"$@" -D "$data" stop -m immediate >/dev/null 2>&1
rm -rf "$root"
"#;

/// A PostgreSQL server for tests: a throwaway cluster this process started, or the server
/// named by `DATABASE_URL`.
pub struct PgCluster {
    bindir: PathBuf,
    base_url: String,
    server: Server,
}

enum Server {
    /// Started here; the watchdog holds the other end of `_watchdog` (see the module docs).
    Owned {
        root: PathBuf,
        _watchdog: ChildStdin,
        /// What [`PgCluster::start_again`] needs to start it again on the same port.
        restart: Restart,
    },
    /// The server from `DATABASE_URL`.
    External,
}

impl fmt::Debug for PgCluster {
    /// Leaves out `DATABASE_URL`, which may hold a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("PgCluster");
        debug.field("bindir", &self.bindir);
        if let Server::Owned { .. } = self.server {
            debug.field("base_url", &self.base_url);
        }
        debug.field("server", &self.server).finish()
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Owned { root, restart, .. } => f
                .debug_struct("Owned")
                .field("root", root)
                .field("port", &restart.port)
                .finish(),
            Self::External => f.write_str("External"),
        }
    }
}

impl PgCluster {
    /// The server for this test process, started on first use. Every later call returns
    /// the same server, or the same error.
    pub fn shared() -> Result<&'static PgCluster, String> {
        static SHARED: OnceLock<Result<PgCluster, String>> = OnceLock::new();
        SHARED
            .get_or_init(Self::start)
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The directory holding the PostgreSQL binaries (`psql`, and `initdb`/`pg_ctl` when
    /// the cluster is ours).
    pub fn bindir(&self) -> &Path {
        &self.bindir
    }

    /// A URL for the server's maintenance database (`postgres`), or `DATABASE_URL` as
    /// given. Tests should use [`fresh_database_url`](Self::fresh_database_url).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The data directory's parent when the cluster was started here; `None` for
    /// `DATABASE_URL`. The server log is `log` in it.
    pub fn directory(&self) -> Option<&Path> {
        match &self.server {
            Server::Owned { root, .. } => Some(root),
            Server::External => None,
        }
    }

    /// Creates a new, empty database and returns a URL for it.
    pub fn fresh_database_url(&self) -> Result<String, String> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "t_{}_{}_{}",
            COUNTER.fetch_add(1, Ordering::Relaxed),
            std::process::id(),
            now_nanos()
        );
        self.psql(&self.base_url, &format!("CREATE DATABASE {name}"))?;
        with_database(&self.base_url, &name)
    }

    /// Runs `sql` with `psql` against `database_url` and returns what it printed, unaligned
    /// and without headers (`select 1` gives `"1"`), trimmed. Stops at the first error.
    pub fn psql(&self, database_url: &str, sql: &str) -> Result<String, String> {
        let mut command = Command::new(self.bindir.join("psql"));
        command.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d"]);
        command.arg(database_url).arg("-c").arg(sql);
        let output = run(&mut command, "psql")?;
        String::from_utf8(output.stdout)
            .map(|text| text.trim().to_owned())
            .map_err(|_| "psql printed invalid UTF-8".to_owned())
    }

    fn start() -> Result<Self, String> {
        match env::var("DATABASE_URL") {
            Ok(url) if url.starts_with("postgres") => Self::external(url),
            _ => Self::owned(),
        }
    }

    fn external(url: String) -> Result<Self, String> {
        let bindir = find_bindir(&["psql"])?;
        let cluster = Self {
            bindir,
            base_url: url,
            server: Server::External,
        };
        cluster
            .psql(&cluster.base_url, "select 1")
            .map_err(|error| format!("the server in DATABASE_URL does not answer: {error}"))?;
        Ok(cluster)
    }

    fn owned() -> Result<Self, String> {
        let bindir = find_bindir(&["initdb", "pg_ctl", "psql"])?;
        let root = env::temp_dir().join(format!(
            "ownership-pg-{}-{}",
            std::process::id(),
            now_nanos()
        ));
        let root_text = root
            .to_str()
            .filter(|text| !text.contains(['\'', '"', '\\']))
            .ok_or_else(|| format!("unusable temporary directory {}", root.display()))?
            .to_owned();
        fs::create_dir(&root).map_err(|error| format!("cannot create {root_text}: {error}"))?;

        let as_root = is_root();
        if as_root {
            run(
                Command::new("chown").arg("postgres:postgres").arg(&root),
                "chown to the postgres user (initdb refuses to run as root)",
            )?;
        }
        let as_owner = |program: &str| -> Command {
            let binary = bindir.join(program);
            let mut command = if as_root {
                let mut command = Command::new("runuser");
                command.args(["-u", "postgres", "--"]).arg(binary);
                command
            } else {
                Command::new(binary)
            };
            command.current_dir(&root);
            command
        };

        // From here on the watchdog removes the directory when this process ends, whether
        // the cluster starts or not.
        let pg_ctl = as_owner("pg_ctl");
        let mut pg_ctl_argv: Vec<OsString> = vec![pg_ctl.get_program().to_owned()];
        pg_ctl_argv.extend(pg_ctl.get_args().map(ToOwned::to_owned));
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("ownership-pg-watchdog")
            .arg(&root)
            .arg(root.join("data"))
            .args(&pg_ctl_argv)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|error| format!("cannot start the cleanup watchdog: {error}"))?
            .stdin
            .ok_or("the cleanup watchdog has no stdin")?;

        let data = root.join("data");
        run(
            as_owner("initdb")
                .arg("-D")
                .arg(&data)
                .args(["-U", "postgres", "--auth=trust", "-E", "UTF8"])
                .args(["--locale=C", "--no-sync"]),
            "initdb",
        )?;

        let log = root.join("log");
        let mut attempt = 1;
        let port = loop {
            let port = free_port()?;
            let options = server_options(port, &root_text);
            let started = run(
                as_owner("pg_ctl")
                    .arg("-D")
                    .arg(&data)
                    .arg("-o")
                    .arg(options)
                    .arg("-l")
                    .arg(&log)
                    .args(["-w", "-t", "60", "start"]),
                "pg_ctl start",
            );
            match started {
                Ok(_) => break port,
                Err(error) => {
                    let tail = log_tail(&log);
                    let port_taken =
                        tail.contains("could not bind") || tail.contains("Address already in use");
                    if port_taken && attempt < START_ATTEMPTS {
                        attempt += 1;
                        continue;
                    }
                    return Err(format!(
                        "{error}\n--- last lines of {} ---\n{tail}",
                        log.display()
                    ));
                }
            }
        };

        let restart = Restart {
            port,
            as_root,
            data,
            log,
            options: server_options(port, &root_text),
        };
        Ok(Self {
            bindir,
            base_url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            server: Server::Owned {
                root,
                _watchdog: watchdog,
                restart,
            },
        })
    }
}

/// How an owned cluster was started, to start it again after [`PgCluster::stop`].
struct Restart {
    port: u16,
    as_root: bool,
    data: PathBuf,
    log: PathBuf,
    options: String,
}

/// The `pg_ctl -o` options of an owned cluster.
fn server_options(port: u16, root_text: &str) -> String {
    format!(
        "-c listen_addresses=127.0.0.1 -p {port} -c fsync=off -c synchronous_commit=off \
         -c full_page_writes=off -c unix_socket_directories='{root_text}' \
         -c max_connections=300"
    )
}

impl PgCluster {
    /// A cluster of the caller's own, started now (never the shared one, and never the
    /// server in `DATABASE_URL`): for tests that stop and start the server. It has the same
    /// watchdog teardown as [`shared`](Self::shared), and is also stopped and removed when
    /// dropped.
    pub fn private() -> Result<PgCluster, String> {
        Self::owned()
    }

    /// Stops the server (`pg_ctl stop -m fast`: connections are ended, no new one is
    /// accepted) and waits until it is down. Only for a cluster started here.
    pub fn stop(&self) -> Result<(), String> {
        let restart = self.restart()?;
        run(
            self.pg_ctl(restart)
                .arg("-D")
                .arg(&restart.data)
                .args(["-m", "fast", "-w", "-t", "60", "stop"]),
            "pg_ctl stop",
        )
        .map(|_| ())
    }

    /// Starts a server stopped with [`stop`](Self::stop) again, on the same port with the
    /// same data, and waits until it accepts connections.
    pub fn start_again(&self) -> Result<(), String> {
        let restart = self.restart()?;
        run(
            self.pg_ctl(restart)
                .arg("-D")
                .arg(&restart.data)
                .arg("-o")
                .arg(&restart.options)
                .arg("-l")
                .arg(&restart.log)
                .args(["-w", "-t", "60", "start"]),
            "pg_ctl start",
        )
        .map(|_| ())
        .map_err(|error| {
            format!(
                "{error}\n--- last lines of {} ---\n{}",
                restart.log.display(),
                log_tail(&restart.log)
            )
        })
    }

    fn restart(&self) -> Result<&Restart, String> {
        match &self.server {
            Server::Owned { restart, .. } => Ok(restart),
            Server::External => Err("the server in DATABASE_URL is not ours to stop".to_owned()),
        }
    }

    /// `pg_ctl`, behind `runuser -u postgres --` as root.
    fn pg_ctl(&self, restart: &Restart) -> Command {
        let binary = self.bindir.join("pg_ctl");
        let mut command = if restart.as_root {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(binary);
            command
        } else {
            Command::new(binary)
        };
        command.current_dir("/");
        command
    }
}

impl Drop for PgCluster {
    /// Stops a cluster started here now, rather than when the test process exits (which
    /// the watchdog also does); the shared cluster is a static and is never dropped.
    fn drop(&mut self) {
        if let Ok(restart) = self.restart() {
            let _ = run(
                self.pg_ctl(restart).arg("-D").arg(&restart.data).args([
                    "-m",
                    "immediate",
                    "-w",
                    "-t",
                    "60",
                    "stop",
                ]),
                "pg_ctl stop",
            );
        }
    }
}

/// The first directory holding every one of `programs`: `$OWNERSHIP_PG_BINDIR` (which,
/// when set, must be right), `pg_config --bindir`, then the newest Debian version
/// directory.
fn find_bindir(programs: &[&str]) -> Result<PathBuf, String> {
    let has_all = |dir: &Path| programs.iter().all(|program| dir.join(program).is_file());
    if let Some(dir) = env::var_os(BINDIR_VAR).map(PathBuf::from) {
        return if has_all(&dir) {
            Ok(dir)
        } else {
            Err(format!(
                "{BINDIR_VAR}={} does not hold {}",
                dir.display(),
                programs.join(", ")
            ))
        };
    }
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|output| output.status.success())
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .map(|dir| PathBuf::from(dir.trim()))
        .filter(|dir| has_all(dir));
    if let Some(dir) = from_pg_config {
        return Ok(dir);
    }
    let newest_debian = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name();
            let major: u32 = name.to_str()?.split('.').next()?.parse().ok()?;
            let bin = entry.path().join("bin");
            has_all(&bin).then_some((major, bin))
        })
        .max_by_key(|(major, _)| *major)
        .map(|(_, bin)| bin);
    newest_debian.ok_or_else(|| {
        format!(
            "PostgreSQL binaries ({}) not found in ${BINDIR_VAR}, `pg_config --bindir` or \
             /usr/lib/postgresql/*/bin. Install PostgreSQL (Debian: `apt-get install \
             postgresql`) or run the tests with `cargo xtask test`, which installs it",
            programs.join(", ")
        )
    })
}

/// Runs `command` to completion; an error quotes its output.
fn run(command: &mut Command, what: &str) -> Result<Output, String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|error| format!("{what}: cannot run {:?}: {error}", command.get_program()))?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(format!(
            "{what} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// A loopback port nobody was listening on a moment ago.
fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .map_err(|error| format!("cannot find a free loopback port: {error}"))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| output.status.success() && output.stdout.trim_ascii() == b"0")
}

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos())
}

fn log_tail(log: &Path) -> String {
    match fs::read_to_string(log) {
        Ok(text) => last_lines(&text, LOG_TAIL_LINES),
        Err(error) => format!("(cannot read the log: {error})"),
    }
}

fn last_lines(text: &str, count: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let skip = lines.len().saturating_sub(count);
    lines.into_iter().skip(skip).collect::<Vec<_>>().join("\n")
}

/// `url` with its database (the path) replaced by `database`; user, password, host, port
/// and query parameters are kept.
fn with_database(url: &str, database: &str) -> Result<String, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| "a PostgreSQL URL must look like postgres://user@host:port/db".to_owned())?;
    let (location, query) = match rest.split_once('?') {
        Some((location, query)) => (location, Some(query)),
        None => (rest, None),
    };
    let authority = location
        .split_once('/')
        .map_or(location, |(authority, _)| authority);
    Ok(match query {
        Some(query) => format!("{scheme}://{authority}/{database}?{query}"),
        None => format!("{scheme}://{authority}/{database}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_in_a_url_is_replaced_and_the_rest_kept() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "t_1").unwrap(),
            "postgres://postgres@127.0.0.1:5432/t_1"
        );
        assert_eq!(
            with_database(
                "postgresql://u:p%40ss@db.example:6543/app?sslmode=disable",
                "t_2"
            )
            .unwrap(),
            "postgresql://u:p%40ss@db.example:6543/t_2?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://localhost", "t_3").unwrap(),
            "postgres://localhost/t_3"
        );
        assert!(with_database("localhost:5432", "t_4").is_err());
    }

    #[test]
    fn only_the_last_lines_of_a_log_are_quoted() {
        assert_eq!(last_lines("a\nb\nc\n", 2), "b\nc");
        assert_eq!(last_lines("a\n", 5), "a");
        assert_eq!(last_lines("", 5), "");
    }
}
