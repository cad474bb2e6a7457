//! The configuration as an operator meets it, through the real `ownership serve` binary:
//!
//! - a fresh directory with no environment serves secrets and webhooks from the first start
//!   (the embedded store's master key is generated beside the database, mode 0600);
//! - the rate limit set in the file, then overridden by the environment, is the one the
//!   server applies, on both stores;
//! - an unknown key, in the file or the environment, stops the start with its name (and
//!   the file's line);
//! - on PostgreSQL nothing is generated: without a key the start says so and the secret
//!   routes answer 503.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use ownership_tests::bin::ownership_bin;
use ownership_tests::pg::PgCluster;
use ownership_tests::serve::{Serve, run_to_end, serve_command, start_command};
use serde_json::json;

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// `ownership serve` in `dir` with an empty environment (only `PATH`), on an ephemeral
/// port with JSON logs, and `extra` arguments.
fn bare_serve(dir: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(ownership_bin());
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

async fn status(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: &str,
    body: Option<serde_json::Value>,
) -> u16 {
    let mut req = http.request(method, url).bearer_auth(token);
    if let Some(body) = body {
        req = req.json(&body);
    }
    req.send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fresh_directory_serves_secrets_and_webhooks_from_the_first_start() {
    let dir = tempfile::tempdir().unwrap();
    let http = http();
    let server = start_command(bare_serve(dir.path(), &[]), true);
    let token = server.token.clone().unwrap();
    let key_file = dir.path().join("ownership.db.master-key");
    assert!(
        key_file.exists(),
        "the key is generated beside the database"
    );
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "readable by its owner only");
    assert!(
        server.log().contains("generated a master key"),
        "the start says it generated a key: {}",
        server.log()
    );
    let put = |base: String, name: &'static str| {
        let http = http.clone();
        let url = format!("{base}/v1/me/secrets/{name}");
        let token = token.clone();
        async move {
            status(
                &http,
                reqwest::Method::PUT,
                url,
                &token,
                Some(json!({"value": "s3cret"})),
            )
            .await
        }
    };
    let code = put(server.base.clone(), "x").await;
    assert!((200..300).contains(&code), "PUT secret: {code}");
    let code = status(
        &http,
        reqwest::Method::PUT,
        format!("{}/v1/me/webhook", server.base),
        &token,
        Some(json!({"url": "https://93.184.215.14/hooks/ownership"})),
    )
    .await;
    assert!((200..300).contains(&code), "PUT webhook: {code}");
    let key_before = std::fs::read(&key_file).unwrap();
    drop(server);

    // The second start reads the same key: the sealed secret is still there, and it is
    // not generated again.
    let server = start_command(bare_serve(dir.path(), &[]), false);
    assert_eq!(std::fs::read(&key_file).unwrap(), key_before);
    assert!(!server.log().contains("generated a master key"));
    let list: serde_json::Value = http
        .get(format!("{}/v1/me/secrets", server.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(list.to_string().contains("\"x\""), "{list}");
    assert!((200..300).contains(&put(server.base.clone(), "y").await));

    // The operator commands find the same configuration.
    let out = Command::new(ownership_bin())
        .current_dir(dir.path())
        .env_clear()
        .args(["config", "check"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

/// Requests `/v1/me` until one is refused; the number that passed.
async fn allowed_before_429(http: &reqwest::Client, server: &Serve, token: &str) -> usize {
    for n in 0..100 {
        let code = status(
            http,
            reqwest::Method::GET,
            format!("{}/v1/me", server.base),
            token,
            None,
        )
        .await;
        if code == 429 {
            return n;
        }
        assert_eq!(code, 200);
    }
    panic!("no request was refused");
}

async fn the_rate_limit_comes_from_the_file_then_the_environment(database_url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("limits.toml");
    // One request a minute after the burst: the burst is what a quick test sees.
    std::fs::write(
        &file,
        "[limits]\nidentity_per_second = 1\nidentity_burst = 4\n",
    )
    .unwrap();
    let http = http();

    let mut cmd = serve_command(database_url);
    cmd.arg("--config").arg(&file);
    let server = start_command(cmd, true);
    let token = server.token.clone().unwrap();
    let allowed = allowed_before_429(&http, &server, &token).await;
    assert!(
        (4..=5).contains(&allowed),
        "burst 4 from the file (plus at most one refill): {allowed}"
    );
    drop(server);

    let mut cmd = serve_command(database_url);
    cmd.arg("--config")
        .arg(&file)
        .env("OWNERSHIP_LIMITS__IDENTITY_BURST", "9");
    let server = start_command(cmd, false);
    let allowed = allowed_before_429(&http, &server, &token).await;
    assert!(
        (9..=10).contains(&allowed),
        "burst 9 from the environment over the file's 4: {allowed}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_rate_limit_comes_from_the_file_then_the_environment_on_libsql() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ownership.db");
    the_rate_limit_comes_from_the_file_then_the_environment(db.to_str().unwrap()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_rate_limit_comes_from_the_file_then_the_environment_on_postgres() {
    let url = PgCluster::shared().unwrap().fresh_database_url().unwrap();
    the_rate_limit_comes_from_the_file_then_the_environment(&url).await;
}

#[test]
fn an_unknown_key_stops_the_start_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("ownership.toml"),
        "listen = \"127.0.0.1:0\"\n\n[limits]\nidentity_per_secnd = 7\n",
    )
    .unwrap();
    let (code, out) = run_to_end(bare_serve(dir.path(), &[]));
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("ownership.toml line 4: unknown field `identity_per_secnd`"),
        "{out}"
    );
    assert!(!dir.path().join("ownership.db").exists(), "nothing created");

    let other = tempfile::tempdir().unwrap();
    let mut cmd = bare_serve(other.path(), &[]);
    cmd.env("OWNERSHIP_LIMITS__IDENTITY_BRUST", "9");
    let (code, out) = run_to_end(cmd);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("OWNERSHIP_LIMITS__IDENTITY_BRUST"), "{out}");
    assert!(
        !other.path().join("ownership.db").exists(),
        "nothing created"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_without_a_key_says_so_and_generates_nothing() {
    let url = PgCluster::shared().unwrap().fresh_database_url().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = serve_command(&url);
    cmd.current_dir(dir.path());
    let server = start_command(cmd, true);
    let token = server.token.clone().unwrap();
    assert!(server.log().contains("no master key"), "{}", server.log());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    let code = status(
        &http(),
        reqwest::Method::PUT,
        format!("{}/v1/me/secrets/x", server.base),
        &token,
        Some(json!({"value": "v"})),
    )
    .await;
    assert_eq!(code, 503);
}
