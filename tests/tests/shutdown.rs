//! Bounded graceful shutdown of the real `ownership serve` binary (issue 23, item 2), on
//! a libSQL file and on PostgreSQL:
//!
//! - SIGTERM with three open event streams and two slow in-flight requests (bodies sent
//!   slowly by hand): every stream gets its final `shutdown` event, the request whose body
//!   is finished during the drain is answered, the one never finished is cut off at the
//!   drain deadline, the process exits 0 within the drain timeout plus 1 s, and the
//!   `last_used_at` stamped just before the signal (not yet written behind) is in the
//!   store afterwards.
//! - A second signal during the drain ends the process at once, with status 143.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::process::Command;
use std::time::{Duration, Instant};

use ownership_tests::http::{client, try_call};
use ownership_tests::pg::PgCluster;
use ownership_tests::serve::{Serve, operator_command, run_to_end, serve_command, start_command};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// The drain timeout the tests configure.
const DRAIN: Duration = Duration::from_secs(3);

/// How long a condition polled for may take (debug build, loaded machine).
const PATIENCE: Duration = Duration::from_secs(60);

/// `ownership serve` on `url` with a drain timeout of [`DRAIN`] (or `drain_seconds`) and a
/// write-behind that never flushes by itself during the test.
fn start(url: &str, drain_seconds: u64) -> Serve {
    let mut cmd = serve_command(url);
    cmd.env(
        "OWNERSHIP_HTTP__DRAIN_TIMEOUT_SECONDS",
        drain_seconds.to_string(),
    )
    .env("OWNERSHIP_CACHE__LAST_USED_FLUSH_SECONDS", "3600")
    .env("OWNERSHIP_HTTP__EVENTS_POLL_MS", "200");
    start_command(cmd, true)
}

fn signal(serve: &Serve, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(serve.child.id().to_string())
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{name} failed");
}

/// Waits until the server's log has a JSON line whose message starts with `message`;
/// returns it.
async fn logged(serve: &Serve, message: &str) -> Value {
    let start = Instant::now();
    loop {
        let found = serve
            .log()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|e| {
                e["fields"]["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with(message))
            });
        if let Some(event) = found {
            return event;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "no `{message}` in the log:\n{}",
            serve.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls the process until it exits or `within` has passed since `since`.
async fn exit_status(serve: &mut Serve, since: Instant, within: Duration) -> Option<i32> {
    loop {
        if let Some(status) = serve.child.try_wait().unwrap() {
            return status.code();
        }
        assert!(
            since.elapsed() <= within,
            "still running {within:?} after the signal:\n{}",
            serve.log()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A `POST /v1/me/tokens` whose headers and first half of the body are sent now; the rest
/// is sent by [`finish_slow_request`] (or never).
async fn slow_request(base: &str, token: &str) -> (TcpStream, Vec<u8>) {
    let address = base.trim_start_matches("http://");
    let body = json!({ "kinds": ["api"], "label": "slow" }).to_string();
    let (first, rest) = body.as_bytes().split_at(body.len() / 2);
    let mut stream = TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST /v1/me/tokens HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(first).await.unwrap();
    stream.flush().await.unwrap();
    (stream, rest.to_vec())
}

/// Everything the server sends on `stream` until it closes it.
async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Opens `GET /v1/me/events` and collects what it sends until the server ends it.
async fn open_stream(base: &str, token: &str) -> tokio::task::JoinHandle<String> {
    let response = client()
        .get(format!("{base}/v1/me/events"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    tokio::spawn(async move {
        let mut response = response;
        let mut text = String::new();
        while let Ok(Some(chunk)) = response.chunk().await {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
        text
    })
}

async fn sigterm_drains_streams_and_requests_and_flushes(url: &str) {
    let mut serve = start(url, DRAIN.as_secs());
    let owner = serve.token.clone().unwrap();
    let http = client();
    let base = serve.base.clone();

    // A token used once long before (its first use is cached) and once just before the
    // signal: the second stamp is only in the write-behind buffer when SIGTERM comes.
    let minted = try_call(
        &http,
        &base,
        "POST",
        "/v1/me/tokens",
        Some(&owner),
        Some(json!({ "kinds": ["api"], "label": "stamped" })),
    )
    .await
    .unwrap();
    assert_eq!(minted.status, 201, "{minted:?}");
    let (id, secret) = (
        minted.body["id"].as_str().unwrap().to_owned(),
        minted.body["token"].as_str().unwrap().to_owned(),
    );
    let me = |http: reqwest::Client, base: String, secret: String| async move {
        let r = try_call(&http, &base, "GET", "/v1/me", Some(&secret), None)
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{r:?}");
    };
    me(http.clone(), base.clone(), secret.clone()).await;

    let streams = [
        open_stream(&base, &owner).await,
        open_stream(&base, &owner).await,
        open_stream(&base, &secret).await,
    ];
    let (mut finished, rest) = slow_request(&base, &owner).await;
    let (mut abandoned, _) = slow_request(&base, &owner).await;
    // Let the server take both requests into their handlers (they wait for the body).
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let stamped_after = OffsetDateTime::now_utc();
    me(http.clone(), base.clone(), secret.clone()).await;
    let signalled = Instant::now();
    signal(&serve, "TERM");

    // During the drain the first slow request gets its body and is answered.
    let draining = logged(&serve, "draining").await;
    assert!(
        draining["fields"]["in_flight"].as_u64().unwrap() >= 2,
        "{draining}"
    );
    finished.write_all(&rest).await.unwrap();
    let answer = read_to_close(&mut finished).await;
    assert!(
        answer.starts_with("HTTP/1.1 201"),
        "the request finished during the drain was not answered: {answer}"
    );

    let code = exit_status(&mut serve, signalled, DRAIN + Duration::from_secs(1)).await;
    assert_eq!(code, Some(0), "{}", serve.log());

    // The one never finished was cut off, without an answer.
    let cut = read_to_close(&mut abandoned).await;
    assert!(!cut.contains("HTTP/1.1 2"), "answered: {cut}");

    for stream in streams {
        let text = tokio::time::timeout(PATIENCE, stream)
            .await
            .unwrap()
            .unwrap();
        let last = text
            .split("\n\n")
            .filter(|e| !e.trim().is_empty() && !e.starts_with(':'))
            .last()
            .unwrap_or("");
        assert!(
            last.contains("event: shutdown") && last.contains("server_shutdown"),
            "the stream's last event is not the shutdown event: {text:?}"
        );
    }

    let done = logged(&serve, "shutdown complete").await;
    assert_eq!(done["fields"]["streams_closed"], 3, "{done}");
    assert_eq!(done["fields"]["requests_aborted"], 1, "{done}");
    assert!(
        done["fields"]["flush"]
            .as_str()
            .unwrap()
            .ends_with("last-used times written"),
        "{done}"
    );

    // The stamp from just before the signal was written by the final flush.
    let (code, out) = run_to_end(operator_command(
        &["--json", "tokens", "list", "--user", "owner"],
        url,
    ));
    assert_eq!(code, Some(0), "{out}");
    let list: Value = serde_json::from_str(&out).unwrap();
    let token = list["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id.as_str())
        .unwrap_or_else(|| panic!("minted token not listed: {list}"));
    let last_used = token["last_used_at"]
        .as_str()
        .unwrap_or_else(|| panic!("no last_used_at: {token}"));
    let last_used = OffsetDateTime::parse(last_used, &Rfc3339).unwrap();
    assert!(
        last_used + Duration::from_millis(5) >= stamped_after,
        "last_used_at {last_used} is older than the use just before the signal ({stamped_after})"
    );
}

async fn a_second_signal_exits_at_once(url: &str) {
    // A drain that would take half a minute, held open by a request that never finishes.
    let mut serve = start(url, 30);
    let owner = serve.token.clone().unwrap();
    let (_held, _) = slow_request(&serve.base, &owner).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    signal(&serve, "TERM");
    logged(&serve, "draining").await;
    let second = Instant::now();
    signal(&serve, "TERM");
    let code = exit_status(&mut serve, second, Duration::from_secs(5)).await;
    assert_eq!(code, Some(143), "{}", serve.log());
}

fn pg_url() -> String {
    PgCluster::shared()
        .expect("a PostgreSQL cluster for the tests")
        .fresh_database_url()
        .expect("a fresh database")
}

/// A libSQL file in a new temporary directory (kept as long as the guard).
fn libsql_url() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().join("ownership.db").display().to_string();
    (dir, url)
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_and_flushes_on_libsql() {
    let (_dir, url) = libsql_url();
    sigterm_drains_streams_and_requests_and_flushes(&url).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_and_flushes_on_postgres() {
    sigterm_drains_streams_and_requests_and_flushes(&pg_url()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_signal_exits_at_once_on_libsql() {
    let (_dir, url) = libsql_url();
    a_second_signal_exits_at_once(&url).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_signal_exits_at_once_on_postgres() {
    a_second_signal_exits_at_once(&pg_url()).await;
}
