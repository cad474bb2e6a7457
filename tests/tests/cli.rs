//! The `ownership` binary, driven as an operator drives it, on libSQL and on PostgreSQL:
//! every operator command's success and failure paths, `--json` output, exit codes
//! (0 success, 1 failure, 2 bad command line, 3 broken audit chain), one-line errors that
//! never echo a secret, migrations, `serve --no-migrate`, and the CLI's work seen by a
//! running server on the same store.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ownership_cli::backend::Location;
use ownership_store::SystemClock;
use ownership_store::libsql::LibsqlStore;
use ownership_tests::app::{Backend, spawn_app_with};
use ownership_tests::logcheck;
use ownership_tests::pg::PgCluster;
use serde_json::{Value, json};

use ownership_tests::bin::ownership_bin;

/// How long one command may take before the test calls it hung.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// What a command did.
#[derive(Debug)]
struct Run {
    args: Vec<String>,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Asserts exit 0.
    #[track_caller]
    fn ok(self) -> Self {
        assert_eq!(
            self.code,
            Some(0),
            "`ownership {}` failed: {self:#?}",
            self.args.join(" ")
        );
        self
    }

    /// Asserts the exit code, nothing on stdout, and exactly one `error: …` line on
    /// stderr containing `needle`.
    #[track_caller]
    fn fails(self, code: i32, needle: &str) -> Self {
        assert_eq!(
            self.code,
            Some(code),
            "`ownership {}` should exit {code}: {self:#?}",
            self.args.join(" ")
        );
        assert_eq!(self.stdout, "", "a failure prints no data: {self:#?}");
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one error line: {self:#?}");
        assert!(lines[0].starts_with("error: "), "{self:#?}");
        assert!(
            lines[0].contains(needle),
            "expected `{needle}` in the error: {self:#?}"
        );
        self
    }

    /// Stdout as JSON.
    #[track_caller]
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:#?}"))
    }

    /// Stdout trimmed.
    fn out(&self) -> &str {
        self.stdout.trim()
    }
}

/// A store for the CLI: a libSQL file in a temporary directory, or a fresh PostgreSQL
/// database. Not migrated until a test runs `migrate`.
struct Db {
    backend: Backend,
    url: String,
    path: Option<PathBuf>,
    _dir: Option<tempfile::TempDir>,
}

impl Db {
    fn new(backend: Backend) -> Self {
        match backend {
            Backend::Libsql => {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("cli.db");
                Self {
                    backend,
                    url: path.display().to_string(),
                    path: Some(path),
                    _dir: Some(dir),
                }
            }
            Backend::Postgres => {
                let cluster =
                    PgCluster::shared().unwrap_or_else(|e| panic!("PostgreSQL is required: {e}"));
                Self {
                    backend,
                    url: cluster.fresh_database_url().unwrap(),
                    path: None,
                    _dir: None,
                }
            }
        }
    }

    /// A migrated store with an Owner `root`.
    fn ready(backend: Backend) -> Self {
        let db = Self::new(backend);
        db.run(&["migrate"]).ok();
        db.run(&["users", "add", "root", "--role", "owner"]).ok();
        db
    }

    fn location(&self) -> Location {
        Location::parse(&self.url).unwrap()
    }

    fn run(&self, args: &[&str]) -> Run {
        self.run_env(args, &[])
    }

    /// Runs `ownership ARGS --database-url URL` as the OS user `tester`, with a clean
    /// environment for everything the binary reads, and a timeout.
    fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = Command::new(ownership_bin());
        cmd.args(args).arg("--database-url").arg(&self.url);
        for var in [
            "DATABASE_URL",
            "RUST_LOG",
            "OWNERSHIP_MASTER_KEY",
            "OWNERSHIP_PAIRING_KEY",
            "OWNERSHIP_BOOTSTRAP_TOKEN",
            "OWNERSHIP_LEGACY_TOKEN",
            "OWNERSHIP_MASTER_KEY_FILE",
            "OWNERSHIP_PAIRING_KEY_FILE",
            "OWNERSHIP_BOOTSTRAP_TOKEN_FILE",
            "OWNERSHIP_LEGACY_TOKEN_FILE",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("USER", "tester");
        for (k, v) in env {
            // Secrets given through the environment must not come back on stderr either.
            logcheck::global().record_config(logcheck::Kind::KeyMaterial, v);
            cmd.env(k, v);
        }
        run_with_timeout(cmd, args)
    }

    /// Runs SQL behind the application's back.
    async fn tamper(&self, sql: &str) {
        match self.backend {
            Backend::Libsql => {
                let store = LibsqlStore::open_file(
                    self.path.as_ref().unwrap(),
                    std::sync::Arc::new(SystemClock),
                )
                .await
                .unwrap();
                store.execute_batch_for_tests(sql).await.unwrap();
            }
            Backend::Postgres => {
                PgCluster::shared().unwrap().psql(&self.url, sql).unwrap();
            }
        }
    }
}

fn run_with_timeout(mut cmd: Command, args: &[&str]) -> Run {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ownership starts");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > COMMAND_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "`ownership {}` did not finish in {COMMAND_TIMEOUT:?}",
                args.join(" ")
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let run = Run {
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        code: status.code(),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    };
    // A token is revealed once, on stdout; stderr (errors, warnings, logs) never holds a
    // secret: not one printed now, nor one seen earlier in this test binary.
    logcheck::global().record_text(&run.stdout);
    for arg in args {
        logcheck::global().record_text(arg);
    }
    logcheck::assert_text_clean(
        &format!("the stderr of `ownership {}`", args.join(" ")),
        &run.stderr,
    );
    run
}

/// Declares the test once per backend.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod libsql {
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $name() {
                    super::$name(super::Backend::Libsql).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $name() {
                    super::$name(super::Backend::Postgres).await;
                }
            )*
        }
    };
}

on_both!(
    migrate_applies_once,
    unmigrated_stores_are_refused,
    users_commands,
    last_owner_is_protected,
    tokens_commands,
    audit_commands,
    pairing_and_tokens_with_a_running_server,
    weak_static_secrets_are_refused,
    keyed_chain_export_and_independent_verifier,
    deleting_an_owners_newest_event_is_detected,
);

/// Provisioned, legacy and bootstrap tokens under 128 bits are refused: a table names the
/// entry's index, a setting its key, and neither the value.
async fn weak_static_secrets_are_refused(backend: Backend) {
    let db = Db::ready(backend);
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("users.json");
    std::fs::write(
        &table,
        json!([
            {"token": "Kq7Zp2Xw9Rt4Vb8LmN3c5dYh", "user_id": "fine"},
            {"token": "weak-Table-1", "user_id": "weak"},
        ])
        .to_string(),
    )
    .unwrap();
    let table = table.display().to_string();
    for dry in [true, false] {
        let mut args = vec!["users", "import", table.as_str()];
        if dry {
            args.push("--dry-run");
        }
        let run = db.run(&args).fails(1, "entry 1: the token is too weak");
        assert!(!run.stderr.contains("weak-Table-1"), "{run:#?}");
    }
    // Nothing was written.
    db.run(&["users", "show", "fine"]).fails(1, "not found");
    for (var, key, value) in [
        (
            "OWNERSHIP_LEGACY_TOKEN",
            "keys.legacy_token",
            "weak-Legacy-2",
        ),
        (
            "OWNERSHIP_BOOTSTRAP_TOKEN",
            "keys.bootstrap_token",
            "weak-Bootstrap-3",
        ),
    ] {
        let run = db
            .run_env(&["serve", "--listen", "127.0.0.1:0"], &[(var, value)])
            .fails(1, key);
        assert!(run.stderr.contains("too weak"), "{run:#?}");
        assert!(!run.stderr.contains(value), "{run:#?}");
    }
    // A strong legacy token is accepted (the server starts: `config check` says so).
    db.run_env(
        &["config", "check"],
        &[("OWNERSHIP_LEGACY_TOKEN", "Kq7Zp2Xw9Rt4Vb8LmN3c5dYhLegacy")],
    )
    .ok();
}

async fn migrate_applies_once(backend: Backend) {
    let db = Db::new(backend);
    let first = db.run(&["--json", "migrate"]).ok().json();
    assert!(first["applied"].as_u64().unwrap() > 0, "{first}");
    let second = db.run(&["migrate"]).ok();
    assert!(
        second.out().starts_with("0 migration(s) applied to "),
        "{second:#?}"
    );
    assert_eq!(db.run(&["migrate", "--json"]).ok().json()["applied"], 0);
}

async fn unmigrated_stores_are_refused(backend: Backend) {
    let db = Db::new(backend);
    if backend == Backend::Libsql {
        // No file: nothing is created behind the operator's back.
        db.run(&["users", "list"]).fails(1, "no database at");
        db.run(&["serve", "--no-migrate", "--listen", "127.0.0.1:0"])
            .fails(1, "no database at");
        assert!(!db.path.as_ref().unwrap().exists());
        // An empty database file.
        LibsqlStore::open_file(db.path.as_ref().unwrap(), std::sync::Arc::new(SystemClock))
            .await
            .unwrap();
    }
    db.run(&["serve", "--no-migrate", "--listen", "127.0.0.1:0"])
        .fails(1, "migration(s); run `ownership migrate`");
    db.run(&["users", "list"])
        .fails(1, "run `ownership migrate` first");
    db.run(&["audit", "verify"])
        .fails(1, "run `ownership migrate` first");
    // The refusals changed nothing: the first migrate still has everything to do.
    assert!(
        db.run(&["--json", "migrate"]).ok().json()["applied"]
            .as_u64()
            .unwrap()
            > 0
    );
    db.run(&["users", "list"]).ok();
}

async fn users_commands(backend: Backend) {
    let db = Db::ready(backend);

    // add: the token alone on stdout (for `$(…)`), the warning on stderr.
    let added = db.run(&["users", "add", "bob"]).ok();
    assert!(added.out().starts_with("own_u_"), "{added:#?}");
    assert_eq!(added.stdout.lines().count(), 1);
    assert!(added.stderr.contains("shown once"), "{added:#?}");
    let alice = db
        .run(&["--json", "users", "add", "alice", "--role", "Admin"])
        .ok()
        .json();
    assert_eq!(alice["user_id"], "alice");
    assert_eq!(alice["role"], "admin");
    assert_eq!(alice["status"], "active");
    assert!(alice["token"].as_str().unwrap().starts_with("own_u_"));

    db.run(&["users", "add", "alice"])
        .fails(1, "user `alice` already exists");
    db.run(&["users", "add", "system"])
        .fails(1, "invalid user id `system`");
    db.run(&["users", "add", "carol", "--role", "boss"])
        .fails(2, "'boss'")
        .fails(2, "owner, admin, member");
    db.run(&["users", "frobnicate"]).fails(2, "frobnicate");

    // list
    let list = db.run(&["users", "list"]).ok();
    let lines: Vec<&str> = list.stdout.lines().collect();
    assert!(lines[0].starts_with("USER"), "{list:#?}");
    assert_eq!(lines.len(), 4, "header, alice, bob, root: {list:#?}");
    assert!(lines[1].starts_with("alice ") && lines[1].contains("admin"));
    let list = db.run(&["users", "list", "--json"]).ok().json();
    let ids: Vec<&str> = list["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["user_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["alice", "bob", "root"]);

    // show
    db.run(&["users", "show", "ghost"])
        .fails(1, "user `ghost` not found");
    let shown = db.run(&["users", "show", "bob"]).ok();
    assert!(shown.stdout.contains("role:"), "{shown:#?}");
    assert!(shown.stdout.contains("1 live"), "{shown:#?}");
    let shown = db.run(&["--json", "users", "show", "bob"]).ok().json();
    assert_eq!(shown["user_id"], "bob");
    assert_eq!(shown["role"], "member");
    assert_eq!(shown["live_tokens"], 1);
    assert_eq!(shown["identities"], json!([]));

    // role
    let r = db.run(&["users", "role", "bob", "admin"]).ok();
    assert_eq!(r.out(), "user `bob` is now admin");
    let r = db
        .run(&["--json", "users", "role", "bob", "MEMBER"])
        .ok()
        .json();
    assert_eq!(r["role"], "member");
    db.run(&["users", "role", "ghost", "admin"])
        .fails(1, "user `ghost` not found");
    db.run(&["users", "role", "bob"]).fails(2, "ROLE");

    // suspend, resume
    let s = db.run(&["users", "suspend", "bob"]).ok();
    assert!(s.out().starts_with("user `bob` is suspended"), "{s:#?}");
    assert_eq!(
        db.run(&["--json", "users", "show", "bob"]).ok().json()["status"],
        "suspended"
    );
    let s = db.run(&["--json", "users", "resume", "bob"]).ok().json();
    assert_eq!(s["status"], "active");
    db.run(&["users", "suspend", "ghost"])
        .fails(1, "user `ghost` not found");

    // remove
    let removed = db.run(&["users", "remove", "bob"]).ok();
    assert!(
        removed.out().starts_with("removed user `bob`"),
        "{removed:#?}"
    );
    db.run(&["users", "show", "bob"])
        .fails(1, "user `bob` not found");
    db.run(&["tokens", "list", "--user", "bob"])
        .fails(1, "user `bob` not found");
    db.run(&["users", "remove", "bob"])
        .fails(1, "user `bob` not found");
    let r = db.run(&["--json", "users", "remove", "alice"]).ok().json();
    assert_eq!(r, json!({"user_id": "alice", "removed": true}));

    // Every change is audited with the operator as the actor.
    let events = db
        .run(&["--json", "audit", "tail", "--limit", "100"])
        .ok()
        .json();
    let by_operator: Vec<(&str, &str)> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor"] == "operator:tester")
        .map(|e| (e["action"].as_str().unwrap(), e["target"].as_str().unwrap()))
        .collect();
    for expected in [
        ("user.created", "bob"),
        ("user.created", "alice"),
        ("user.role_changed", "bob"),
        ("user.suspended", "bob"),
        ("user.resumed", "bob"),
        ("user.deleted", "bob"),
        ("user.deleted", "alice"),
    ] {
        assert!(
            by_operator.contains(&expected),
            "{expected:?} in {by_operator:?}"
        );
    }
}

async fn last_owner_is_protected(backend: Backend) {
    let db = Db::ready(backend);
    db.run(&["users", "remove", "root"])
        .fails(1, "the last Owner cannot be deleted");
    db.run(&["users", "suspend", "root"])
        .fails(1, "the last Owner cannot be suspended");
    db.run(&["users", "role", "root", "admin"])
        .fails(1, "the last Owner cannot be demoted");
    assert_eq!(
        db.run(&["--json", "users", "show", "root"]).ok().json()["role"],
        "owner"
    );
    // With a second Owner, the first may go; then the second is the last.
    db.run(&["users", "add", "root2", "--role", "owner"]).ok();
    db.run(&["users", "role", "root", "member"]).ok();
    db.run(&["users", "remove", "root2"])
        .fails(1, "the last Owner cannot be deleted");
    db.run(&["users", "remove", "root"]).ok();
}

fn token_ids(db: &Db, user: &str) -> Vec<Value> {
    db.run(&["--json", "tokens", "list", "--user", user])
        .ok()
        .json()["tokens"]
        .as_array()
        .unwrap()
        .clone()
}

async fn tokens_commands(backend: Backend) {
    let db = Db::ready(backend);
    let bob_first = db.run(&["users", "add", "bob"]).ok().out().to_owned();
    db.run(&["users", "add", "eve"]).ok();

    // issue: failures
    db.run(&["tokens", "issue", "--user", "ghost", "--kinds", "api"])
        .fails(1, "user `ghost` not found");
    db.run(&["tokens", "issue", "--user", "bob", "--kinds", "root"])
        .fails(1, "invalid kinds");
    db.run(&["tokens", "issue", "--user", "bob", "--kinds", ""])
        .fails(1, "at least one kind");
    db.run(&[
        "tokens",
        "issue",
        "--user",
        "bob",
        "--kinds",
        "manage,channel:telegram",
    ])
    .fails(1, "not both");
    db.run(&[
        "tokens",
        "issue",
        "--user",
        "bob",
        "--kinds",
        "api",
        "--expires-in",
        "0",
    ])
    .fails(1, "--expires-in must be positive");
    db.run(&[
        "tokens",
        "issue",
        "--user",
        "bob",
        "--kinds",
        "api",
        "--expires-in",
        "soon",
    ])
    .fails(2, "--expires-in");
    db.run(&["tokens", "issue", "--user", "bob"])
        .fails(2, "--kinds");
    let long_label = "x".repeat(101);
    db.run(&[
        "tokens",
        "issue",
        "--user",
        "bob",
        "--kinds",
        "api",
        "--label",
        &long_label,
    ])
    .fails(1, "invalid label");

    // issue: successes
    let api = db
        .run(&[
            "--json",
            "tokens",
            "issue",
            "--user",
            "bob",
            "--kinds",
            "api",
            "--label",
            "ci",
            "--expires-in",
            "3600",
        ])
        .ok()
        .json();
    assert_eq!(api["kinds"], json!(["api"]));
    assert_eq!(api["label"], "ci");
    assert!(api["expires_at"].is_string());
    assert_eq!(api["revoked_at"], Value::Null);
    let api_value = api["token"].as_str().unwrap().to_owned();
    assert!(api_value.starts_with("own_u_"));
    let api_id = api["id"].as_str().unwrap().to_owned();
    let verify = db
        .run(&["tokens", "issue", "--user", "bob", "--kinds", "verify"])
        .ok();
    assert!(
        verify.out().starts_with("own_s_"),
        "a service token: {verify:#?}"
    );
    assert_eq!(verify.stdout.lines().count(), 1);

    // list: never a value
    let listed = db.run(&["tokens", "list", "--user", "bob"]).ok();
    assert_eq!(
        listed.stdout.lines().count(),
        4,
        "header and 3 tokens: {listed:#?}"
    );
    assert!(listed.stdout.lines().next().unwrap().starts_with("ID "));
    let listed_json = db.run(&["--json", "tokens", "list", "--user", "bob"]).ok();
    for secret in [&bob_first, &api_value, &verify.out().to_owned()] {
        assert!(!listed.stdout.contains(secret.as_str()));
        assert!(!listed_json.stdout.contains(secret.as_str()));
    }
    let tokens = listed_json.json()["tokens"].as_array().unwrap().clone();
    assert_eq!(tokens.len(), 3);
    assert_eq!(tokens[1]["id"], api_id.as_str(), "newest first");
    db.run(&["tokens", "list", "--user", "ghost"])
        .fails(1, "user `ghost` not found");

    // revoke: the kind guard, unknown ids, other owners' tokens, pasted values
    db.run(&[
        "tokens", "revoke", "--user", "bob", &api_id, "--kind", "manage",
    ])
    .fails(1, "does not hold kind `manage`");
    assert_eq!(
        token_ids(&db, "bob")[1]["revoked_at"],
        Value::Null,
        "a refused revocation changes nothing"
    );
    db.run(&[
        "tokens", "revoke", "--user", "bob", &api_id, "--kind", "bogus",
    ])
    .fails(1, "invalid kinds");
    db.run(&[
        "tokens",
        "revoke",
        "--user",
        "bob",
        "tok_00000000000000000000",
    ])
    .fails(1, "has no token `tok_00000000000000000000`");
    db.run(&["tokens", "revoke", "--user", "eve", &api_id])
        .fails(1, "user `eve` has no token");
    let pasted = db
        .run(&["tokens", "revoke", "--user", "bob", &api_value])
        .fails(1, "not its value");
    assert!(
        !pasted.stderr.contains(&api_value),
        "a secret is never echoed"
    );
    db.run(&["tokens", "revoke", "--user", "bob", "not-an-id"])
        .fails(1, "invalid TOKEN_ID");
    db.run(&["tokens", "revoke", "--user", "bob"])
        .fails(2, "TOKEN_ID");

    // rotate
    db.run(&["tokens", "rotate", "--user", "eve", &api_id])
        .fails(1, "user `eve` has no live token");
    // The 30-day cap is core's, so the CLI honours it as the API does (it had none).
    db.run(&[
        "tokens", "rotate", "--user", "bob", &api_id, "--grace", "2592001",
    ])
    .fails(1, "at most 30 days");
    let rotated = db
        .run(&[
            "--json", "tokens", "rotate", "--user", "bob", &api_id, "--grace", "300",
        ])
        .ok()
        .json();
    let new_id = rotated["id"].as_str().unwrap().to_owned();
    assert_ne!(new_id, api_id);
    assert_eq!(rotated["replaces"], api_id.as_str());
    assert_eq!(rotated["kinds"], json!(["api"]));
    assert_eq!(rotated["label"], "ci");
    assert!(rotated["token"].as_str().unwrap().starts_with("own_u_"));
    let human = db.run(&["tokens", "list", "--user", "bob"]).ok();
    assert!(human.stdout.contains("grace until"), "{human:#?}");
    db.run(&["tokens", "rotate", "--user", "bob", &api_id])
        .fails(1, "has no live token");

    // revoke
    let revoked = db
        .run(&[
            "--json", "tokens", "revoke", "--user", "bob", &new_id, "--kind", "api",
        ])
        .ok()
        .json();
    assert_eq!(revoked["id"], new_id.as_str());
    assert!(revoked["revoked_at"].is_string());
    let human = db.run(&["tokens", "revoke", "--user", "bob", &new_id]).ok();
    assert!(human.out().starts_with("revoked token "), "{human:#?}");
    db.run(&["tokens", "rotate", "--user", "bob", &new_id])
        .fails(1, "has no live token");

    // Issued by the operator, in the audit log.
    let events = db
        .run(&["--json", "audit", "tail", "--limit", "50"])
        .ok()
        .json();
    assert!(
        events["events"].as_array().unwrap().iter().any(|e| {
            e["action"] == "token.issued"
                && e["target"] == api_id.as_str()
                && e["actor"] == "operator:tester"
                && e["owner_id"] == "bob"
        }),
        "{events:#}"
    );
    assert!(
        !events.to_string().contains("own_u_"),
        "the log holds no secret"
    );
}

async fn audit_commands(backend: Backend) {
    let db = Db::ready(backend);
    db.run(&["users", "add", "bob"]).ok();
    db.run(&["tokens", "issue", "--user", "bob", "--kinds", "api"])
        .ok();

    let tail = db.run(&["audit", "tail"]).ok();
    let lines: Vec<&str> = tail.stdout.lines().collect();
    assert!(lines[0].starts_with("SEQ"), "{tail:#?}");
    assert!(lines[1].starts_with("3 "), "newest first: {tail:#?}");
    assert!(lines[1].contains("token.issued"), "{tail:#?}");
    let two = db
        .run(&["--json", "audit", "tail", "--limit", "2"])
        .ok()
        .json();
    let seqs: Vec<i64> = two["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, [3, 2]);
    db.run(&["audit", "tail", "--limit", "0"])
        .fails(2, "--limit");

    let ok = db.run(&["audit", "verify"]).ok();
    assert_eq!(ok.out(), "audit chain intact (3 events)");
    assert_eq!(
        db.run(&["--json", "audit", "verify"]).ok().json(),
        json!({"state": "intact", "events": 3})
    );

    db.tamper("UPDATE audit_events SET target = 'x' WHERE seq = 2")
        .await;
    let broken = db.run(&["audit", "verify"]);
    assert_eq!(broken.code, Some(3), "{broken:#?}");
    assert!(
        broken.out().starts_with("audit chain broken at event 2: "),
        "{broken:#?}"
    );
    let broken = db.run(&["--json", "audit", "verify"]);
    assert_eq!(broken.code, Some(3), "{broken:#?}");
    let verdict = broken.json();
    assert_eq!(verdict["state"], "broken");
    assert_eq!(verdict["seq"], 2);
}

async fn pairing_and_tokens_with_a_running_server(backend: Backend) {
    let db = Db::ready(backend);
    let bob = db.run(&["users", "add", "bob"]).ok().out().to_owned();
    let bot = db
        .run(&[
            "--json",
            "tokens",
            "issue",
            "--user",
            "root",
            "--kinds",
            "channel:telegram",
            "--label",
            "bot",
        ])
        .ok()
        .json();
    let bot = bot["token"].as_str().unwrap().to_owned();
    assert!(bot.starts_with("own_s_"));

    // The real server, on the same store, beside the operator.
    let location = db.location();
    let app = spawn_app_with(backend, move |c| c.location = location).await;

    let asked = app
        .post(
            "/v1/channels/telegram/pairing-requests",
            &bot,
            json!({"external_id": "12345", "meta": {"name": "Bob"}}),
        )
        .await;
    assert_eq!(asked.status, 201, "{}", asked.text);
    let code = asked.body["code"].as_str().unwrap().to_owned();

    // list: who asked, never the code
    let list = db.run(&["pairing", "list", "telegram"]).ok();
    assert!(list.stdout.lines().next().unwrap().starts_with("ID "));
    assert!(list.stdout.contains("12345"), "{list:#?}");
    assert!(!list.stdout.contains(&code));
    let list = db.run(&["--json", "pairing", "list", "TELEGRAM"]).ok();
    assert!(!list.stdout.contains(&code));
    let list = list.json();
    assert_eq!(list["requests"][0]["external_id"], "12345");
    assert_eq!(list["requests"][0]["meta"], json!({"name": "Bob"}));
    let empty = db.run(&["pairing", "list", "slack"]).ok();
    assert_eq!(empty.out(), "no pending pairing requests on `slack`");
    db.run(&["pairing", "list", "no such channel"])
        .fails(1, "invalid channel");

    // approve: failures consume nothing
    db.run(&["pairing", "approve", "telegram", &code, "--user", "ghost"])
        .fails(1, "user `ghost` not found");
    let bad = db
        .run(&[
            "pairing",
            "approve",
            "telegram",
            "!!!!-!!!!",
            "--user",
            "bob",
        ])
        .fails(1, "invalid code");
    assert!(!bad.stderr.contains("!!!!"), "a code is never echoed");
    let other_key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    db.run_env(
        &["pairing", "approve", "telegram", &code, "--user", "bob"],
        &[("OWNERSHIP_MASTER_KEY", other_key)],
    )
    .fails(1, "give this command the same");
    db.run_env(
        &["pairing", "approve", "telegram", &code, "--user", "bob"],
        &[("OWNERSHIP_MASTER_KEY", "not base64!")],
    )
    .fails(1, "OWNERSHIP_MASTER_KEY");
    db.run(&["users", "suspend", "bob"]).ok();
    db.run(&["pairing", "approve", "telegram", &code, "--user", "bob"])
        .fails(1, "user `bob` is suspended");
    db.run(&["users", "resume", "bob"]).ok();

    // approve: as typed by a person (case, no dash)
    let typed = code.replace('-', "").to_lowercase();
    let bound = db
        .run(&[
            "--json", "pairing", "approve", "Telegram", &typed, "--user", "bob",
        ])
        .ok()
        .json();
    assert_eq!(
        bound,
        json!({"channel": "telegram", "external_id": "12345", "owner_id": "bob"})
    );
    db.run(&["pairing", "approve", "telegram", &code, "--user", "bob"])
        .fails(1, "not valid");
    assert_eq!(
        db.run(&["--json", "pairing", "list", "telegram"])
            .ok()
            .json()["requests"],
        json!([])
    );
    let resolved = app
        .get("/v1/channels/telegram/identities/12345", &bot)
        .await;
    assert_eq!(resolved.status, 200, "{}", resolved.text);
    assert_eq!(resolved.body, json!({"owner_id": "bob", "role": "member"}));
    let shown = db.run(&["--json", "users", "show", "bob"]).ok().json();
    assert_eq!(
        shown["identities"],
        json!([{"channel": "telegram", "external_id": "12345", "owner_id": "bob"}])
    );
    let events = db.run(&["--json", "audit", "tail"]).ok().json();
    assert!(
        events["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| { e["action"] == "pairing.approved" && e["actor"] == "operator:tester" }),
        "{events:#}"
    );

    // Tokens the operator issues work at the server; revoked ones do not.
    let me = app.get("/v1/me", &bob).await;
    assert_eq!(me.status, 200, "{}", me.text);
    let issued = db
        .run(&[
            "--json",
            "tokens",
            "issue",
            "--user",
            "bob",
            "--kinds",
            "api",
            "--expires-in",
            "600",
        ])
        .ok()
        .json();
    let api = issued["token"].as_str().unwrap().to_owned();
    let me = app.get("/v1/me", &api).await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.body["user_id"], "bob");
    assert_eq!(me.body["token"]["kinds"], json!(["api"]));
    assert!(me.body["token"]["expires_at"].is_string());

    let rotated = db
        .run(&[
            "--json",
            "tokens",
            "rotate",
            "--user",
            "bob",
            issued["id"].as_str().unwrap(),
            "--grace",
            "300",
        ])
        .ok()
        .json();
    let new_value = rotated["token"].as_str().unwrap().to_owned();
    assert_eq!(
        app.get("/v1/me", &api).await.status,
        200,
        "inside the grace"
    );
    // Revoked before the server ever saw it: refused (nothing cached to go stale).
    db.run(&[
        "tokens",
        "revoke",
        "--user",
        "bob",
        rotated["id"].as_str().unwrap(),
    ])
    .ok();
    assert_eq!(app.get("/v1/me", &new_value).await.status, 401);
    app.stop().await;
}

#[test]
fn completions_are_printed_for_each_shell() {
    let db = Db::new(Backend::Libsql);
    for shell in ["bash", "zsh", "fish"] {
        let out = db.run(&["completions", shell]).ok();
        assert!(out.stdout.contains("ownership"), "{shell}");
        assert!(out.stdout.contains("tokens"), "{shell}");
    }
    db.run(&["completions", "tcsh"]).fails(2, "tcsh");
}

#[test]
fn bad_command_lines_are_one_line_errors() {
    let db = Db::new(Backend::Libsql);
    db.run(&["frobnicate"]).fails(2, "frobnicate");
    db.run(&["users", "add"]).fails(2, "<ID>");
    db.run(&["--json", "users", "role", "x", "boss"])
        .fails(2, "boss");
    let help = db.run(&["--help"]).ok();
    for command in [
        "serve",
        "migrate",
        "users",
        "tokens",
        "pairing",
        "audit",
        "completions",
    ] {
        assert!(help.stdout.contains(command), "{command} in --help");
    }
    let version = db.run(&["--version"]).ok();
    assert!(version.out().starts_with("ownership "));
}

#[test]
fn an_unreachable_store_is_one_line_without_its_password() {
    let run = run_with_timeout(
        {
            let mut cmd = Command::new(ownership_bin());
            cmd.args([
                "users",
                "list",
                "--database-url",
                "postgres://op:hunter2@127.0.0.1:1/ownership",
            ])
            .env_remove("DATABASE_URL")
            .env_remove("RUST_LOG");
            cmd
        },
        &["users", "list"],
    )
    .fails(
        1,
        "cannot connect to postgres://op:***@127.0.0.1:1/ownership",
    );
    assert!(!run.stderr.contains("hunter2"));
    let bad_url = run_with_timeout(
        {
            let mut cmd = Command::new(ownership_bin());
            cmd.args(["users", "list", "--database-url", "mysql://h/db"])
                .env_remove("DATABASE_URL");
            cmd
        },
        &["users", "list"],
    );
    bad_url.fails(1, "unsupported database URL scheme");
}

/// The master key of the keyed-chain tests (the base64 of 32 bytes of 0x5a).
const CHAIN_MASTER_KEY: &str = "WlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlo=";

/// `docs/verify_audit.py`, the independent verifier, run with the machine's python3.
fn python_verify(export: &std::path::Path, keys: Option<&std::path::Path>) -> (i32, String) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/verify_audit.py");
    let mut cmd = Command::new("python3");
    cmd.arg(&script).arg(export);
    if let Some(keys) = keys {
        cmd.arg("--keys").arg(keys);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("python3 is required to run docs/verify_audit.py: {e}"));
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
        .trim()
        .to_owned(),
    )
}

/// The store's events, oldest first, read behind the binary's back.
async fn stored_events(db: &Db) -> Vec<ownership_core::audit::AuditEvent> {
    use ownership_core::authz::AdminScope;
    use ownership_core::ports::{AuditFilter, AuditLog as _, PageRequest};
    let page = PageRequest {
        after: None,
        limit: 500,
    };
    let scope = AdminScope::operator("test");
    let mut events = match backend_store(db).await {
        Opened::Libsql(s) => s.list_events(AuditFilter::All(&scope), &page).await,
        Opened::Postgres(s) => s.list_events(AuditFilter::All(&scope), &page).await,
    }
    .unwrap()
    .items;
    events.reverse();
    events
}

enum Opened {
    Libsql(LibsqlStore),
    Postgres(ownership_store::postgres::PgStore),
}

async fn backend_store(db: &Db) -> Opened {
    let clock = std::sync::Arc::new(SystemClock);
    match db.backend {
        Backend::Libsql => Opened::Libsql(
            LibsqlStore::open_file(db.path.as_ref().unwrap(), clock)
                .await
                .unwrap(),
        ),
        Backend::Postgres => Opened::Postgres(
            ownership_store::postgres::PgStore::connect(&db.url, clock)
                .await
                .unwrap(),
        ),
    }
}

/// A byte string as an SQL literal of the backend.
fn bytes_sql(backend: Backend, bytes: &[u8; 32]) -> String {
    match backend {
        Backend::Libsql => format!("X'{}'", hex::encode(bytes)),
        Backend::Postgres => format!("'\\x{}'::bytea", hex::encode(bytes)),
    }
}

/// What an attacker without the master key can do: edit event `from` and recompute the
/// unkeyed (SHA-256) links of it and of every later event, and move the head.
async fn rewrite_unkeyed_from(db: &Db, from: i64) {
    use ownership_core::audit::{ChainHash, chain_hash};
    let events = stored_events(db).await;
    let mut prev = ChainHash::GENESIS;
    let mut sql = String::new();
    for mut e in events {
        if e.seq < from {
            prev = e.hash;
            continue;
        }
        if e.seq == from {
            e.details = r#"{"forged":true}"#.to_owned();
        }
        let hash = chain_hash(&prev, e.seq, &e.content());
        sql.push_str(&format!(
            "UPDATE audit_events SET details = '{}', prev_hash = {}, hash = {}, key_version = NULL WHERE seq = {};\n",
            e.details,
            bytes_sql(db.backend, prev.as_bytes()),
            bytes_sql(db.backend, hash.as_bytes()),
            e.seq
        ));
        prev = hash;
    }
    sql.push_str(&format!(
        "UPDATE audit_head SET hash = {}, key_version = NULL WHERE id = 1;\n",
        bytes_sql(db.backend, prev.as_bytes())
    ));
    db.tamper(&sql).await;
}

/// The seq a verifier's "… broken at event N: …" line names.
fn broken_at(line: &str) -> i64 {
    line.split("broken at event ")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("not a broken verdict: {line}"))
}

/// A keyed store with four events: root, bob, bob's token, carol (so bob's newest event is
/// not the newest of the chain).
fn keyed_db(backend: Backend) -> Db {
    let db = Db::new(backend);
    let key = [("OWNERSHIP_MASTER_KEY", CHAIN_MASTER_KEY)];
    db.run_env(&["migrate"], &key).ok();
    db.run_env(&["users", "add", "root", "--role", "owner"], &key)
        .ok();
    db.run_env(&["users", "add", "bob"], &key).ok();
    db.run_env(
        &["tokens", "issue", "--user", "bob", "--kinds", "api"],
        &key,
    )
    .ok();
    db.run_env(&["users", "add", "carol"], &key).ok();
    db
}

/// Exports the chain (`extra` arguments: `--owner`, `--since`) and the chain keys into
/// `dir`; returns the export's path and the keys' path.
fn export_to(db: &Db, dir: &std::path::Path, name: &str, extra: &[&str]) -> PathBuf {
    let key = [("OWNERSHIP_MASTER_KEY", CHAIN_MASTER_KEY)];
    let mut args = vec!["audit", "export"];
    args.extend_from_slice(extra);
    let run = db.run_env(&args, &key).ok();
    assert!(
        run.stderr.contains("exported "),
        "progress on stderr: {run:#?}"
    );
    let path = dir.join(name);
    std::fs::write(&path, &run.stdout).unwrap();
    path
}

/// Both verifiers on one export: the CLI's exit code and line, and Python's.
fn both_verdicts(db: &Db, export: &std::path::Path, keys: &std::path::Path) -> [(i32, String); 2] {
    let key = [("OWNERSHIP_MASTER_KEY", CHAIN_MASTER_KEY)];
    let cli = db.run_env(
        &["audit", "verify", "--file", export.to_str().unwrap()],
        &key,
    );
    [
        (cli.code.unwrap_or(-1), cli.out().to_owned()),
        python_verify(export, Some(keys)),
    ]
}

async fn keyed_chain_export_and_independent_verifier(backend: Backend) {
    let db = keyed_db(backend);
    let key = [("OWNERSHIP_MASTER_KEY", CHAIN_MASTER_KEY)];
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        db.run_env(&["audit", "verify"], &key).ok().out(),
        "audit chain intact (4 events)"
    );
    assert!(
        stored_events(&db)
            .await
            .iter()
            .all(|e| e.key_version == Some(1)),
        "every link is keyed under master key version 1"
    );
    // Without the master key, keyed links cannot be checked, nor can the chain grow.
    let unkeyed = db.run(&["audit", "verify"]);
    assert_eq!(unkeyed.code, Some(3), "{unkeyed:#?}");
    assert!(unkeyed.out().contains("does not hold"), "{unkeyed:#?}");
    db.run(&["users", "add", "dave"])
        .fails(1, "the audit chain is keyed");

    // The chain key: JSON, never the master key.
    let keys = db.run_env(&["audit", "chain-key"], &key).ok();
    let listed = keys.json();
    assert_eq!(listed["keys"][0]["version"], 1);
    assert_eq!(listed["keys"][0]["key"].as_str().unwrap().len(), 64);
    assert!(!keys.stdout.contains(CHAIN_MASTER_KEY));
    let keys_path = dir.path().join("keys.json");
    std::fs::write(&keys_path, &keys.stdout).unwrap();

    // A good export: both verifiers agree it is intact.
    let full = export_to(&db, dir.path(), "full.jsonl", &[]);
    assert_eq!(std::fs::read_to_string(&full).unwrap().lines().count(), 5);
    for (code, line) in both_verdicts(&db, &full, &keys_path) {
        assert_eq!((code, line.as_str()), (0, "audit export intact (4 events)"));
    }
    // Without the chain key, Python cannot vouch for keyed links.
    let (code, line) = python_verify(&full, None);
    assert_eq!(code, 3, "{line}");
    // One owner's events, and the events after a point.
    let bobs = export_to(&db, dir.path(), "bob.jsonl", &["--owner", "bob"]);
    let text = std::fs::read_to_string(&bobs).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .skip(1)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines.iter().all(|e| e["owner_id"] == "bob"));
    for (code, line) in both_verdicts(&db, &bobs, &keys_path) {
        assert_eq!((code, line.as_str()), (0, "audit export intact (2 events)"));
    }
    let tail = export_to(&db, dir.path(), "tail.jsonl", &["--since", "2"]);
    for (code, line) in both_verdicts(&db, &tail, &keys_path) {
        assert_eq!((code, line.as_str()), (0, "audit export intact (2 events)"));
    }

    // A tampered export: an event's details edited in the file.
    let edited = dir.path().join("edited.jsonl");
    std::fs::write(
        &edited,
        std::fs::read_to_string(&full).unwrap().replacen(
            r#""target":"bob""#,
            r#""target":"mallory""#,
            1,
        ),
    )
    .unwrap();
    for (code, line) in both_verdicts(&db, &edited, &keys_path) {
        assert_eq!(code, 3, "{line}");
        assert_eq!(broken_at(&line), 2, "{line}");
    }

    // A tampered store: event 2 rewritten and every later link recomputed the unkeyed
    // way, head included. The store's verifier and both export verifiers find it.
    rewrite_unkeyed_from(&db, 2).await;
    let broken = db.run_env(&["audit", "verify"], &key);
    assert_eq!(broken.code, Some(3), "{broken:#?}");
    assert_eq!(broken_at(broken.out()), 2, "{broken:#?}");
    assert!(broken.out().contains("unkeyed event follows a keyed one"));
    let rewritten = export_to(&db, dir.path(), "rewritten.jsonl", &[]);
    for (code, line) in both_verdicts(&db, &rewritten, &keys_path) {
        assert_eq!(code, 3, "{line}");
        assert_eq!(broken_at(&line), 2, "{line}");
    }
    // The whole chain rewritten unkeyed: nothing keyed is left, but the newest event of a
    // keyed store must be keyed.
    rewrite_unkeyed_from(&db, 1).await;
    let broken = db.run_env(&["audit", "verify"], &key);
    assert_eq!(broken.code, Some(3), "{broken:#?}");
    assert!(
        broken.out().contains("newest event is unkeyed"),
        "{broken:#?}"
    );
    let rewritten = export_to(&db, dir.path(), "rewritten-all.jsonl", &[]);
    for (code, line) in both_verdicts(&db, &rewritten, &keys_path) {
        assert_eq!(code, 3, "{line}");
        assert_eq!(broken_at(&line), 4, "{line}");
    }
}

async fn deleting_an_owners_newest_event_is_detected(backend: Backend) {
    let db = keyed_db(backend);
    let key = [("OWNERSHIP_MASTER_KEY", CHAIN_MASTER_KEY)];
    let dir = tempfile::tempdir().unwrap();
    let keys_path = dir.path().join("keys.json");
    std::fs::write(
        &keys_path,
        db.run_env(&["audit", "chain-key"], &key).ok().stdout,
    )
    .unwrap();
    let events = stored_events(&db).await;
    let bobs_newest = events
        .iter()
        .filter(|e| e.owner.as_ref().is_some_and(|o| o.as_str() == "bob"))
        .map(|e| e.seq)
        .max()
        .unwrap();
    assert!(
        bobs_newest < events.last().unwrap().seq,
        "not the chain's newest"
    );
    db.tamper(&format!(
        "DELETE FROM audit_events WHERE seq = {bobs_newest}"
    ))
    .await;
    let broken = db.run_env(&["audit", "verify"], &key);
    assert_eq!(broken.code, Some(3), "{broken:#?}");
    assert_eq!(broken_at(broken.out()), bobs_newest, "{broken:#?}");
    let export = export_to(&db, dir.path(), "deleted.jsonl", &[]);
    for (code, line) in both_verdicts(&db, &export, &keys_path) {
        assert_eq!(code, 3, "{line}");
        assert_eq!(broken_at(&line), bobs_newest, "{line}");
    }
    // The chain's newest event deleted too (the head left as it was).
    let newest = events.last().unwrap().seq;
    db.tamper(&format!("DELETE FROM audit_events WHERE seq = {newest}"))
        .await;
    let broken = db.run_env(&["audit", "verify"], &key);
    assert_eq!(broken.code, Some(3), "{broken:#?}");
}
