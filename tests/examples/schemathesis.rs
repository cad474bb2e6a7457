//! The API against its own OpenAPI document: Schemathesis (`st run`, every check, every
//! phase including stateful) against a fresh real `ownership serve` per store (a libSQL
//! file and a throwaway PostgreSQL database) and per caller (the first Owner, then a
//! Member). Run by `cargo xtask schemathesis` (and `cargo xtask ci`), which installs the
//! pinned Schemathesis and passes its `st` program in `OWNERSHIP_SCHEMATHESIS`.
//!
//! Each server gets a configuration file whose rate limits are lifted (so 429s do not hide
//! the API) and a master key (so the secret, resource and webhook routes are on). The hooks
//! in `tests/schemathesis/ownership_hooks.py` keep the run from revoking its own token and
//! drop only the refusals no schema can express (they say which). Each run's full output
//! is written to `<OWNERSHIP_SCHEMATHESIS_DIR>/<store>-<role>.log`; its summary is printed.
//! Exits non-zero when any run reports a failure or an error.
//!
//! `OWNERSHIP_SCHEMATHESIS_EXAMPLES` sets `--max-examples` (default 10 per operation, which keeps the four runs to a few minutes in `cargo xtask ci`; raise it for a deeper search).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a test program that reports on its output"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use ownership_tests::pg::PgCluster;
use ownership_tests::serve::{Serve, serve_command, start_command};
use serde_json::{Value, json};

/// A fixed master key (base64 of 32 bytes): the secret, resource and webhook routes need
/// one on every store.
const MASTER_KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";

/// The server's configuration: every budget so large that no request is refused for the
/// rate of a fuzzer (the limits themselves are tested elsewhere).
const CONFIG: &str = "\
[limits]
identity_per_second = 1000000
identity_burst = 1000000
failed_auth_per_address = 1000000
redeem_failures_per_user = 1000000
channel_failure_budget = 1000000
leak_reports_per_address = 1000000
event_streams_per_user = 1000000
event_streams_total = 1000000
";

fn main() -> ExitCode {
    let Some(st) = std::env::var_os("OWNERSHIP_SCHEMATHESIS").map(PathBuf::from) else {
        eprintln!(
            "OWNERSHIP_SCHEMATHESIS must name Schemathesis's `st` program; \
             `cargo xtask schemathesis` installs it and sets it"
        );
        return ExitCode::FAILURE;
    };
    if !st.is_file() {
        eprintln!(
            "{} does not exist; run `cargo xtask schemathesis`",
            st.display()
        );
        return ExitCode::FAILURE;
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf();
    let out = std::env::var_os("OWNERSHIP_SCHEMATHESIS_DIR")
        .map_or_else(|| workspace.join("target/schemathesis"), PathBuf::from);
    std::fs::create_dir_all(&out).unwrap();
    let examples =
        std::env::var("OWNERSHIP_SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| "10".to_owned());
    let runtime = tokio::runtime::Runtime::new().unwrap();

    let mut failed = Vec::new();
    for store in ["libsql", "postgres"] {
        for role in ["owner", "member"] {
            let name = format!("{store}-{role}");
            let scratch = tempfile::tempdir_in(&out).unwrap();
            let url = match store {
                "libsql" => scratch.path().join("ownership.db").display().to_string(),
                _ => PgCluster::shared()
                    .unwrap_or_else(|e| panic!("PostgreSQL: {e}"))
                    .fresh_database_url()
                    .unwrap(),
            };
            let config = scratch.path().join("ownership.toml");
            std::fs::write(&config, CONFIG).unwrap();
            let mut cmd = serve_command(&url);
            cmd.arg("--config")
                .arg(&config)
                .env("OWNERSHIP_MASTER_KEY", MASTER_KEY)
                .env("RUST_LOG", "warn,ownership_cli=info");
            let serve = start_command(cmd, true);
            let (token, token_id) = runtime.block_on(caller(&serve, role));
            let log = out.join(format!("{name}.log"));
            println!(
                "\n==> schemathesis as the {role} on {store} (full output: {})",
                log.display()
            );
            let passed = run_schemathesis(
                &st,
                &workspace,
                &serve.base,
                &token,
                &token_id,
                &examples,
                scratch.path(),
                &log,
            );
            if !passed {
                failed.push(name);
            }
            drop(serve);
        }
    }
    if failed.is_empty() {
        println!("\nschemathesis: no failures in any of the 4 runs (2 stores x Owner, Member)");
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "\nschemathesis: failures in {} (see {}/<run>.log)",
            failed.join(", "),
            out.display()
        );
        ExitCode::FAILURE
    }
}

/// The token a run calls with, and its id: the first Owner's, or a new Member's.
async fn caller(serve: &Serve, role: &str) -> (String, String) {
    let owner = serve.token.clone().expect("the first Owner's token");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let token = if role == "owner" {
        owner
    } else {
        let r = http
            .post(format!("{}/v1/admin/users", serve.base))
            .bearer_auth(&owner)
            .json(&json!({"user_id": "member", "role": "member"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "creating the Member");
        r.json::<Value>().await.unwrap()["token"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let me: Value = http
        .get(format!("{}/v1/me", serve.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = me["token"]["id"].as_str().unwrap().to_owned();
    (token, id)
}

/// One `st run`; prints its summary; true when it found nothing.
#[allow(
    clippy::too_many_arguments,
    reason = "one call site, every value named"
)]
fn run_schemathesis(
    st: &Path,
    workspace: &Path,
    base: &str,
    token: &str,
    token_id: &str,
    examples: &str,
    cwd: &Path,
    log: &Path,
) -> bool {
    let output = Command::new(st)
        .arg("run")
        .arg(format!("{base}/v1/openapi.json"))
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--checks", "all"])
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        .args(["--max-examples", examples])
        .args(["--workers", "1", "--no-color"])
        .env("SCHEMATHESIS_HOOKS", "ownership_hooks")
        .env("PYTHONPATH", workspace.join("tests/schemathesis"))
        .env("OWNERSHIP_ST_TOKEN_ID", token_id)
        // No `__pycache__` beside the hooks: a run leaves the source tree as it was.
        .env("PYTHONDONTWRITEBYTECODE", "1")
        // Its report folder and Hypothesis's example database stay in the scratch folder.
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .expect("st runs");
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    std::fs::write(log, &text).unwrap();
    let summary = text
        .find("SUMMARY")
        .and_then(|at| text[..at].rfind('\n').map(|line| &text[line + 1..]))
        .unwrap_or(&text);
    println!("{}", summary.trim_end());
    if !output.status.success() {
        // What failed, in full, so CI output alone is enough to start fixing it.
        if let Some(at) = text.find("FAILURES") {
            let end = text.find("SUMMARY").unwrap_or(text.len());
            eprintln!("{}", &text[at..end]);
        }
    }
    output.status.success()
}
