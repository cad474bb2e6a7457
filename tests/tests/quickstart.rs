//! The README's Quickstart, run as it stands: the first ```sh block under `## Quickstart`
//! must be the command that starts the server; the freshly built `ownership` binary is
//! started that way (on a free port and a fresh libSQL file), then the second block runs in
//! `bash` with the README's `BASE=` and `OWNER_TOKEN=` lines pointed at that server and the
//! token it printed. Each step (a paragraph of the block) must succeed and print what the
//! README says it prints. Then the server is stopped with SIGTERM (a graceful shutdown,
//! exit 0), `ownership audit verify` finds the chain intact, and after one audit row is
//! edited in the file it names exactly that row and exits non-zero.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use ownership_store::SystemClock;
use ownership_store::libsql::LibsqlStore;

use ownership_tests::bin::ownership_bin;
use ownership_tests::logcheck;

/// The ```sh blocks of the README's `## Quickstart` section.
fn quickstart_blocks() -> Vec<String> {
    let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let text = std::fs::read_to_string(&readme).expect("README.md");
    let section = text
        .split("\n## ")
        .find(|s| s.starts_with("Quickstart\n"))
        .expect("README.md has a `## Quickstart` section");
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in section.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), l) => {
                block.push_str(l);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    assert!(
        current.is_none(),
        "an unclosed ```sh block in the Quickstart"
    );
    blocks
}

/// A running `ownership serve`, killed if the test fails before stopping it.
struct Server {
    child: Child,
    base: String,
    owner_token: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

enum Seen {
    Token(String),
    Address(String),
    Closed,
}

fn start_server(db: &Path, serve_args: &[&str]) -> Server {
    let mut child = Command::new(ownership_bin())
        .args(serve_args)
        .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
        .arg("--database-url")
        .arg(db)
        .env_remove("DATABASE_URL")
        .env_remove("OWNERSHIP_MASTER_KEY")
        .env_remove("OWNERSHIP_PAIRING_KEY")
        .env_remove("OWNERSHIP_BOOTSTRAP_TOKEN")
        .env_remove("OWNERSHIP_LEGACY_TOKEN")
        .env("RUST_LOG", logcheck::VERBOSE_FILTER)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ownership serve starts");
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
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            logcheck::process_line(&line);
            let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else {
                eprintln!("serve: {line}");
                continue;
            };
            if event["fields"]["message"] == "serving"
                && let Some(address) = event["fields"]["address"].as_str()
            {
                let _ = tx.send(Seen::Address(address.to_owned()));
            }
        }
        let _ = tx.send(Seen::Closed);
    });
    let (mut token, mut address) = (None, None);
    while token.is_none() || address.is_none() {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Seen::Token(t)) => token = Some(t),
            Ok(Seen::Address(a)) => address = Some(a),
            Ok(Seen::Closed) | Err(_) => {
                let status = child.try_wait().ok().flatten();
                let _ = child.kill();
                panic!(
                    "serve stopped or stalled before printing its token and address ({status:?})"
                );
            }
        }
    }
    Server {
        child,
        base: format!("http://{}", address.unwrap()),
        owner_token: token.unwrap(),
    }
}

fn run_ownership(db: &Path, args: &[&str]) -> Output {
    Command::new(ownership_bin())
        .args(args)
        .arg("--database-url")
        .arg(db)
        .env_remove("DATABASE_URL")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("ownership runs")
}

const STEP_MARK: &str = "@@quickstart-step-done@@";

#[tokio::test(flavor = "multi_thread")]
async fn the_readme_quickstart_works_as_written() {
    let blocks = quickstart_blocks();
    assert_eq!(
        blocks.len(),
        2,
        "the Quickstart has two ```sh blocks: the server, then the session"
    );
    let serve_words: Vec<&str> = blocks[0].split_whitespace().collect();
    assert_eq!(
        serve_words,
        ["cargo", "run", "-p", "ownership-cli", "--", "serve"],
        "the first block starts the server"
    );

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("quickstart.db");
    let server = start_server(&db, &serve_words[5..]);
    assert!(server.owner_token.starts_with("own_u_"));

    // The session, with the README's two placeholders pointed at this server.
    let mut placeholders = 0;
    let session: String = blocks[1]
        .lines()
        .map(|line| {
            if line.starts_with("BASE=") {
                placeholders += 1;
                format!("BASE={}", server.base)
            } else if line.starts_with("OWNER_TOKEN=") {
                placeholders += 1;
                format!("OWNER_TOKEN={}", server.owner_token)
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(placeholders, 2, "the session sets BASE= and OWNER_TOKEN=");

    // Steps are the block's paragraphs; a marker after each shows how far it got.
    let steps: Vec<&str> = session
        .split("\n\n")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let mut script = String::from("set -euo pipefail\n");
    for step in &steps {
        script.push_str(step);
        script.push_str(&format!("\nprintf '\\n%s\\n' '{STEP_MARK}'\n"));
    }
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .stdin(Stdio::null())
        .output()
        .expect("bash runs (and curl is installed)");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let outputs: Vec<&str> = stdout.split(STEP_MARK).map(str::trim).collect();
    let done = outputs.len() - 1;
    assert!(
        out.status.success() && done == steps.len(),
        "Quickstart step {} failed:\n{}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        done + 1,
        steps.get(done).unwrap_or(&"?"),
    );

    // What each step prints.
    let mut checked = 0;
    for (step, output) in steps.iter().zip(&outputs) {
        if step.contains("/pairing-requests") {
            let code = output
                .strip_prefix("the bot shows: ")
                .unwrap_or_else(|| panic!("the pairing step prints the code: {output:?}"));
            assert!(
                code.len() == 9 && code.as_bytes()[4] == b'-',
                "a code looks like ABCD-EFGH: {code:?}"
            );
            logcheck::global().record(logcheck::Kind::PairingCode, code);
            checked += 1;
        } else if step.contains("/redeem") {
            let reply: serde_json::Value = serde_json::from_str(output).unwrap();
            assert_eq!(
                reply,
                serde_json::json!({"channel": "telegram", "external_id": "12345", "owner_id": "alice"})
            );
            checked += 1;
        } else if step.contains("/identities/") {
            let reply: serde_json::Value = serde_json::from_str(output).unwrap();
            assert_eq!(
                reply,
                serde_json::json!({"owner_id": "alice", "role": "member"})
            );
            checked += 1;
        } else {
            assert_eq!(*output, "", "a step that prints nothing: {step}");
        }
    }
    assert_eq!(
        checked, 3,
        "the pairing, redeem and resolve steps were all found"
    );
    assert!(
        !stdout.contains("own_u_") && !stdout.contains("own_s_"),
        "the session never prints a token"
    );

    // A graceful stop: SIGTERM, in-flight work finishes, exit 0.
    let mut server = server;
    let pid = server.child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let status = server.child.wait().unwrap();
    assert!(status.success(), "serve exits 0 on SIGTERM: {status:?}");
    // Its whole log, at the most verbose level, holds no token (the Owner's, printed
    // once on stdout, or any made in the session) and no pairing code.
    logcheck::global().record(logcheck::Kind::Token, &server.owner_token);
    assert!(
        logcheck::process_log()
            .text_since(0)
            .contains("/v1/pairing/telegram/redeem"),
        "the server's request log was captured"
    );
    logcheck::assert_process_logs_clean();
    drop(server);

    // The chain holds ...
    let verify = run_ownership(&db, &["audit", "verify"]);
    let text = String::from_utf8_lossy(&verify.stdout);
    assert!(verify.status.success(), "{text}");
    assert!(
        text.trim_start().starts_with("audit chain intact ("),
        "{text}"
    );
    let events: u64 = text
        .trim()
        .trim_start_matches("audit chain intact (")
        .trim_end_matches(" events)")
        .parse()
        .unwrap();
    assert!(
        events >= 5,
        "owner, user, service token, pairing request, redemption: {events}"
    );

    // ... until one row is edited behind its back.
    let store = LibsqlStore::open_file(&db, std::sync::Arc::new(SystemClock))
        .await
        .unwrap();
    store
        .execute_batch_for_tests("UPDATE audit_events SET target='x' WHERE seq=2")
        .await
        .unwrap();
    drop(store);
    let verify = run_ownership(&db, &["audit", "verify"]);
    let text = String::from_utf8_lossy(&verify.stdout);
    assert_eq!(verify.status.code(), Some(3), "{text}");
    assert!(
        text.trim().starts_with("audit chain broken at event 2: "),
        "{text}"
    );
}
