//! The real `ownership serve` binary as a child process: started on a store, its address
//! and first Owner's token read from what it prints, killed (SIGKILL) when dropped.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::bin::ownership_bin;

/// How long a server may take to start serving (debug build, loaded machine).
pub const START_TIMEOUT: Duration = Duration::from_secs(120);

/// `ownership serve` on `database_url`, on an ephemeral loopback port, with JSON logs, the
/// environment's secrets removed, stdout and stderr piped.
pub fn serve_command(database_url: &str) -> Command {
    serve_command_via(&[], database_url)
}

/// [`serve_command`] run through `wrapper` (a program and its arguments that ends by
/// executing the command line after it, such as `prlimit --fsize=N --` or `setpriv …
/// --`): the wrapper must `exec`, so the child's pid is the server's.
pub fn serve_command_via(wrapper: &[&OsStr], database_url: &str) -> Command {
    let mut cmd = match wrapper.split_first() {
        Some((program, args)) => {
            let mut cmd = Command::new(program);
            cmd.args(args).arg(ownership_bin());
            cmd
        }
        None => Command::new(ownership_bin()),
    };
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .arg("--database-url")
        .arg(database_url)
        .env_remove("DATABASE_URL")
        .env_remove("OWNERSHIP_MASTER_KEY")
        .env_remove("OWNERSHIP_PAIRING_KEY")
        .env_remove("OWNERSHIP_BOOTSTRAP_TOKEN")
        .env_remove("OWNERSHIP_LEGACY_TOKEN")
        .env_remove("OWNERSHIP_USER_TOKENS")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// A running `ownership serve`, killed when dropped.
pub struct Serve {
    /// The process.
    pub child: Child,
    /// `http://127.0.0.1:PORT`, or `https://127.0.0.1:PORT` when it serves TLS.
    pub base: String,
    /// The first Owner's token, when this process created them.
    pub token: Option<String>,
    log: Arc<Mutex<Vec<String>>>,
}

impl std::fmt::Debug for Serve {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Serve")
            .field("pid", &self.child.id())
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl Serve {
    /// SIGKILL (`Child::kill`), then reaps the process.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Every line the server wrote to stderr so far (its log).
    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.kill();
        // No secret in the server's log (`crate::logcheck`); stdout's token is expected.
        if !std::thread::panicking() {
            crate::logcheck::assert_serve_log_clean(self.token.as_deref(), &self.log());
        }
    }
}

enum Seen {
    Token(String),
    Address(String),
    Closed,
}

/// Starts `ownership serve` on `database_url` and waits for its address (and, with
/// `first`, for the first Owner's token it prints).
pub fn start(database_url: &str, first: bool) -> Serve {
    start_command(serve_command(database_url), first)
}

/// Starts `cmd` (from [`serve_command`] or [`serve_command_via`]) and waits for its
/// address (and, with `first`, for the first Owner's token it prints). WARN and ERROR
/// log lines are echoed to the test's stderr.
pub fn start_command(mut cmd: Command, first: bool) -> Serve {
    let mut child = cmd.spawn().expect("ownership serve starts");
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    let tx_out = tx.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(token) = line.strip_prefix("token: ") {
                let _ = tx_out.send(Seen::Token(token.trim().to_owned()));
            }
        }
        let _ = tx_out.send(Seen::Closed);
    });
    let stderr = child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let log_in = Arc::clone(&log);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            log_in.lock().unwrap().push(line.clone());
            let Ok(event) = serde_json::from_str::<Value>(&line) else {
                eprintln!("serve: {line}");
                continue;
            };
            let level = event["level"].as_str().unwrap_or("");
            if level == "WARN" || level == "ERROR" {
                eprintln!("serve: {line}");
            }
            if event["fields"]["message"] == "serving"
                && let Some(address) = event["fields"]["address"].as_str()
            {
                // `https://…` when the server serves TLS.
                let base = match event["fields"]["url"].as_str() {
                    Some(url) => url.to_owned(),
                    None => format!("http://{address}"),
                };
                let _ = tx.send(Seen::Address(base));
            }
        }
        let _ = tx.send(Seen::Closed);
    });
    let (mut token, mut address) = (None, None);
    while (first && token.is_none()) || address.is_none() {
        match rx.recv_timeout(START_TIMEOUT) {
            Ok(Seen::Token(t)) => token = Some(t),
            Ok(Seen::Address(a)) => address = Some(a),
            Ok(Seen::Closed) | Err(_) => {
                let status = child.try_wait().ok().flatten();
                let _ = child.kill();
                let _ = child.wait();
                let log = log.lock().unwrap().join("\n");
                panic!("serve stopped or stalled before it was serving ({status:?}):\n{log}");
            }
        }
    }
    Serve {
        child,
        base: address.unwrap(),
        token,
        log,
    }
}

/// Runs `cmd` to completion (killed after a minute); returns its exit code and its
/// stdout followed by its stderr.
pub fn run_to_end(mut cmd: Command) -> (Option<i32>, String) {
    let mut child = cmd.spawn().expect("ownership runs");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = Arc::new(Mutex::new(String::new()));
    let readers = [
        {
            let out = Arc::clone(&out);
            std::thread::spawn(move || {
                let mut s = String::new();
                let _ = stdout.read_to_string(&mut s);
                out.lock().unwrap().push_str(&s);
            })
        },
        {
            let out = Arc::clone(&out);
            std::thread::spawn(move || {
                let mut s = String::new();
                let _ = stderr.read_to_string(&mut s);
                out.lock().unwrap().push_str(&s);
            })
        },
    ];
    let start = Instant::now();
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the command did not stop: {}", out.lock().unwrap());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    for r in readers {
        r.join().unwrap();
    }
    let out = out.lock().unwrap().clone();
    (code, out)
}

/// An operator command of the `ownership` binary (`args`, then `--database-url`), with the
/// environment's store and secrets removed and its output piped, for [`run_to_end`].
pub fn operator_command(args: &[&str], database_url: &str) -> Command {
    let mut cmd = Command::new(ownership_bin());
    cmd.args(args)
        .arg("--database-url")
        .arg(database_url)
        .env_remove("DATABASE_URL")
        .env_remove("OWNERSHIP_MASTER_KEY")
        .env_remove("OWNERSHIP_PAIRING_KEY")
        .env("USER", "tester")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}
