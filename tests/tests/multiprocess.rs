//! Several `ownership serve` processes (the real binary) on one PostgreSQL database: a
//! change made through one is honoured by the others within the bound (cache invalidation
//! over `LISTEN/NOTIFY`), a lost listening connection flushes the cache, and libSQL refuses
//! a second server on one file.
//!
//! Every check first warms the other processes' caches with a successful request, so what
//! is shown is invalidation, not a cold miss (the cache TTL, 30 s, is far above the 5 s
//! bound).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    reason = "tests; the propagation times are printed"
)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ownership_tests::bin::ownership_bin;
use ownership_tests::pg::PgCluster;
use ownership_tests::pgbouncer::PgBouncer;
use ownership_tests::serve::{Serve, run_to_end, serve_command, start, start_command};
use serde_json::{Value, json};

/// How long another process may take to honour a change.
const BOUND: Duration = Duration::from_secs(5);

/// An HTTP reply.
#[derive(Debug)]
struct Reply {
    status: u16,
    body: Value,
}

async fn call(
    http: &reqwest::Client,
    node: &Serve,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Reply {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = http.request(method, format!("{}{path}", node.base));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request sent");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Reply { status, body }
}

async fn get(http: &reqwest::Client, node: &Serve, path: &str, token: &str) -> u16 {
    call(http, node, "GET", path, Some(token), None)
        .await
        .status
}

/// Polls until `path` answers `want` on `node`, at most [`BOUND`]; returns how long it took.
async fn eventually(
    http: &reqwest::Client,
    node: &Serve,
    path: &str,
    token: &str,
    want: u16,
    what: &str,
) -> Duration {
    let start = Instant::now();
    loop {
        let status = get(http, node, path, token).await;
        if status == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < BOUND,
            "{what}: {} still answers {status} for {path}, not {want}, after {BOUND:?}",
            node.base
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Waits until every node's `/readyz` answers 200 (the listener is connected).
async fn ready(http: &reqwest::Client, nodes: &[&Serve]) {
    for node in nodes {
        let start = Instant::now();
        loop {
            let r = call(http, node, "GET", "/readyz", None, None).await;
            if r.status == 200 {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{} never got ready: {r:?}",
                node.base
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The same request answers `want` on every node now (a warm-up, or a precondition).
async fn answers(
    http: &reqwest::Client,
    nodes: &[&Serve],
    path: &str,
    token: &str,
    want: u16,
    what: &str,
) {
    for node in nodes {
        assert_eq!(
            get(http, node, path, token).await,
            want,
            "{what} on {}",
            node.base
        );
    }
}

async fn mint(http: &reqwest::Client, node: &Serve, token: &str) -> (String, String) {
    let r = call(
        http,
        node,
        "POST",
        "/v1/me/tokens",
        Some(token),
        Some(json!({ "kinds": ["api"] })),
    )
    .await;
    assert_eq!(r.status, 201, "mint: {r:?}");
    (
        r.body["id"].as_str().unwrap().to_owned(),
        r.body["token"].as_str().unwrap().to_owned(),
    )
}

/// Revokes token `id` through `node` as its owner (`token`); `what` names the step.
async fn revoke(http: &reqwest::Client, node: &Serve, token: &str, id: &str, what: &str) {
    let r = call(
        http,
        node,
        "DELETE",
        &format!("/v1/me/tokens/{id}"),
        Some(token),
        None,
    )
    .await;
    assert!(r.status == 200 || r.status == 204, "{what}: {r:?}");
}

async fn add_user(http: &reqwest::Client, node: &Serve, owner: &str, id: &str) -> String {
    let r = call(
        http,
        node,
        "POST",
        "/v1/admin/users",
        Some(owner),
        Some(json!({ "user_id": id })),
    )
    .await;
    assert_eq!(r.status, 201, "add user: {r:?}");
    r.body["token"].as_str().unwrap().to_owned()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn pg_url() -> (&'static PgCluster, String) {
    let cluster = PgCluster::shared().expect("a PostgreSQL cluster for the tests");
    let url = cluster.fresh_database_url().expect("a fresh database");
    (cluster, url)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_change_through_one_process_is_honoured_by_the_others() {
    let (_, url) = pg_url();
    let a = start(&url, true);
    let b = start(&url, false);
    let c = start(&url, false);
    let http = reqwest::Client::new();
    ready(&http, &[&a, &b, &c]).await;
    let owner = a.token.clone().expect("A created the first Owner");
    let others = [&b, &c];
    let alice = add_user(&http, &a, &owner, "alice").await;

    // Revoke.
    let (id, t) = mint(&http, &a, &alice).await;
    answers(&http, &others, "/v1/me", &t, 200, "warm").await;
    revoke(&http, &a, &alice, &id, "revoke").await;
    for node in others {
        eventually(&http, node, "/v1/me", &t, 401, "revoke").await;
    }

    // Revoked as leaked, by value, through A: every process refuses it.
    let (_, t) = mint(&http, &a, &alice).await;
    answers(&http, &others, "/v1/me", &t, 200, "warm").await;
    let r = call(
        &http,
        &a,
        "POST",
        "/v1/tokens/revoke-leaked",
        None,
        Some(json!({ "tokens": [t, "not-a-token"] })),
    )
    .await;
    assert_eq!(r.status, 202, "revoke-leaked: {r:?}");
    assert_eq!(r.body, json!({ "received": 2 }));
    for node in [&a, &b, &c] {
        eventually(&http, node, "/v1/me", &t, 401, "revoked as leaked").await;
    }

    // Rotate (no grace): the old value stops working everywhere.
    let (id, t) = mint(&http, &a, &alice).await;
    answers(&http, &others, "/v1/me", &t, 200, "warm").await;
    let r = call(
        &http,
        &a,
        "POST",
        &format!("/v1/me/tokens/{id}/rotate"),
        Some(&alice),
        Some(json!({})),
    )
    .await;
    assert_eq!(r.status, 201, "rotate: {r:?}");
    let rotated = r.body["token"].as_str().unwrap().to_owned();
    for node in others {
        eventually(&http, node, "/v1/me", &t, 401, "rotate").await;
        assert_eq!(get(&http, node, "/v1/me", &rotated).await, 200);
    }

    // Role change: a cached Member becomes an Admin everywhere.
    answers(&http, &others, "/v1/me", &alice, 200, "warm").await;
    answers(&http, &others, "/v1/admin/users", &alice, 403, "a member").await;
    let r = call(
        &http,
        &a,
        "PUT",
        "/v1/admin/users/alice/role",
        Some(&owner),
        Some(json!({ "role": "admin" })),
    )
    .await;
    assert_eq!(r.status, 200, "role: {r:?}");
    for node in others {
        eventually(&http, node, "/v1/admin/users", &alice, 200, "role change").await;
    }

    // Unlink: a cached identity stops resolving everywhere.
    let r = call(
        &http,
        &a,
        "POST",
        "/v1/admin/service-tokens",
        Some(&owner),
        Some(json!({ "kinds": ["channel:telegram"], "label": "adapter" })),
    )
    .await;
    assert_eq!(r.status, 201, "service token: {r:?}");
    let telegram = r.body["token"].as_str().unwrap().to_owned();
    let r = call(
        &http,
        &a,
        "POST",
        "/v1/channels/telegram/pairing-requests",
        Some(&telegram),
        Some(json!({ "external_id": "42" })),
    )
    .await;
    assert_eq!(r.status, 201, "pairing request: {r:?}");
    let code = r.body["code"].as_str().unwrap().to_owned();
    let r = call(
        &http,
        &a,
        "POST",
        "/v1/pairing/telegram/redeem",
        Some(&alice),
        Some(json!({ "code": code })),
    )
    .await;
    assert_eq!(r.status, 200, "redeem: {r:?}");
    let identity = "/v1/channels/telegram/identities/42";
    answers(&http, &others, identity, &telegram, 200, "warm identity").await;
    let r = call(
        &http,
        &a,
        "DELETE",
        "/v1/me/identities/telegram/42",
        Some(&alice),
        None,
    )
    .await;
    assert_eq!(r.status, 204, "unlink: {r:?}");
    for node in others {
        eventually(&http, node, identity, &telegram, 404, "unlink").await;
    }

    // Suspend, then resume.
    answers(&http, &others, "/v1/me", &alice, 200, "warm").await;
    let status = |s: &str| Some(json!({ "status": s }));
    let r = call(
        &http,
        &a,
        "PUT",
        "/v1/admin/users/alice/status",
        Some(&owner),
        status("suspended"),
    )
    .await;
    assert_eq!(r.status, 200, "suspend: {r:?}");
    for node in others {
        eventually(&http, node, "/v1/me", &alice, 401, "suspend").await;
    }
    let r = call(
        &http,
        &a,
        "PUT",
        "/v1/admin/users/alice/status",
        Some(&owner),
        status("active"),
    )
    .await;
    assert_eq!(r.status, 200, "resume: {r:?}");
    for node in others {
        eventually(&http, node, "/v1/me", &alice, 200, "resume").await;
    }

    // Delete.
    let bob = add_user(&http, &a, &owner, "bob").await;
    answers(&http, &others, "/v1/me", &bob, 200, "warm").await;
    let r = call(
        &http,
        &a,
        "DELETE",
        "/v1/admin/users/bob",
        Some(&owner),
        None,
    )
    .await;
    assert!(r.status == 200 || r.status == 204, "delete: {r:?}");
    for node in others {
        eventually(&http, node, "/v1/me", &bob, 401, "delete").await;
    }
}

/// Whether `token` is valid, asked of `node` through `POST /v1/tokens/verify` (so a
/// refused token is not a failed authentication of the caller's address).
async fn verified(http: &reqwest::Client, node: &Serve, verifier: &str, token: &str) -> bool {
    let r = call(
        http,
        node,
        "POST",
        "/v1/tokens/verify",
        Some(verifier),
        Some(json!({ "token": token })),
    )
    .await;
    assert_eq!(r.status, 200, "verify: {r:?}");
    r.body["valid"].as_bool().expect("valid")
}

#[tokio::test(flavor = "multi_thread")]
async fn propagation_time_of_a_hundred_revocations() {
    let (_, url) = pg_url();
    // A hundred revoked tokens are verified from one address, and `valid: false` answers
    // count against the caller's address: raise that budget (tested in `http_e2e`).
    let start = |first| {
        let mut cmd = serve_command(&url);
        cmd.env("OWNERSHIP_LIMITS__FAILED_AUTH_PER_ADDRESS", "1000000");
        start_command(cmd, first)
    };
    let a = start(true);
    let b = start(false);
    let http = reqwest::Client::new();
    ready(&http, &[&a, &b]).await;
    let owner = a.token.clone().expect("A created the first Owner");
    let r = call(
        &http,
        &a,
        "POST",
        "/v1/admin/service-tokens",
        Some(&owner),
        Some(json!({ "kinds": ["verify"], "label": "verifier" })),
    )
    .await;
    assert_eq!(r.status, 201, "service token: {r:?}");
    let verifier = r.body["token"].as_str().unwrap().to_owned();

    let mut tokens = Vec::new();
    for _ in 0..100 {
        tokens.push(mint(&http, &a, &owner).await);
    }
    for (_, t) in &tokens {
        assert!(verified(&http, &b, &verifier, t).await, "warm on B");
        // Stay inside the per-identity rate limit (50/s).
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let mut times = Vec::new();
    for (id, t) in &tokens {
        revoke(&http, &a, &owner, id, "revoke").await;
        // From the revocation's commit (A answered) to B refusing the token.
        let start = Instant::now();
        while verified(&http, &b, &verifier, t).await {
            assert!(
                start.elapsed() < BOUND,
                "B still accepts a token revoked {BOUND:?} ago"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        times.push(start.elapsed());
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    times.sort();
    println!(
        "propagation of 100 revocations from A to B: p50 {:?}, p99 {:?}, max {:?}",
        percentile(&times, 50.0),
        percentile(&times, 99.0),
        times[times.len() - 1]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_listener_connection_flushes_the_cache() {
    let (cluster, url) = pg_url();
    let a = start(&url, true);
    let b = start(&url, false);
    let http = reqwest::Client::new();
    ready(&http, &[&a, &b]).await;
    let owner = a.token.clone().expect("A created the first Owner");

    // A revocation whose notification is lost: written behind the service's back, so
    // nothing is published. B keeps serving its cached principal.
    let (lost_id, lost) = mint(&http, &a, &owner).await;
    let (id, t) = mint(&http, &a, &owner).await;
    answers(&http, &[&b], "/v1/me", &lost, 200, "warm").await;
    answers(&http, &[&b], "/v1/me", &t, 200, "warm").await;
    cluster
        .psql(
            &url,
            &format!(
                "UPDATE tokens SET revoked_at = now() - interval '1 second' WHERE id = '{lost_id}'"
            ),
        )
        .unwrap();
    assert_eq!(
        get(&http, &b, "/v1/me", &lost).await,
        200,
        "B serves the revoked token from its cache (no notification was sent)"
    );

    // Kill every listening connection; revoke through A during the outage.
    let killed = cluster
        .psql(
            &url,
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE datname = current_database() AND query LIKE 'LISTEN%'
               AND pid <> pg_backend_pid()",
        )
        .unwrap();
    assert!(
        killed.parse::<u32>().unwrap() >= 2,
        "both listeners were killed: {killed}"
    );
    revoke(&http, &a, &owner, &id, "revoke").await;

    // Once B listens again its cache was flushed: both revocations are honoured.
    eventually(&http, &b, "/v1/me", &t, 401, "revoked during the outage").await;
    eventually(
        &http,
        &b,
        "/v1/me",
        &lost,
        401,
        "cache flushed on reconnect",
    )
    .await;
    let start = Instant::now();
    loop {
        let r = call(&http, &b, "GET", "/readyz", None, None).await;
        if r.status == 200 {
            assert_eq!(r.body, json!({ "status": "ok" }));
            break;
        }
        assert_eq!(r.body, json!({ "status": "unavailable" }));
        assert!(start.elapsed() < BOUND, "B's /readyz stays {r:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // And the listener works again: a new revocation reaches B.
    let (id, t) = mint(&http, &a, &owner).await;
    answers(&http, &[&b], "/v1/me", &t, 200, "warm").await;
    revoke(&http, &a, &owner, &id, "revoke").await;
    eventually(&http, &b, "/v1/me", &t, 401, "revoked after the reconnect").await;
}

#[test]
fn a_second_serve_on_one_libsql_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ownership.db");
    let db_arg = db.to_str().unwrap().to_owned();
    let first = start(&db_arg, true);

    let (code, out) = run_to_end(serve_command(&db_arg));
    assert_eq!(code, Some(1), "{out}");
    let expected = format!(
        "another `ownership serve` is already using {}; libSQL is single-process: use \
         PostgreSQL to run several",
        db.display()
    );
    assert!(out.contains(&expected), "{out}");

    // Operator commands still work while the server runs.
    let mut list = Command::new(ownership_bin());
    list.args(["users", "list", "--database-url", &db_arg])
        .env_remove("DATABASE_URL")
        .env("USER", "tester")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let (code, out) = run_to_end(list);
    assert_eq!(code, Some(0), "{out}");

    // Once the first server is gone, a new one starts.
    drop(first);
    let again = start(&db_arg, false);
    drop(again);
}

/// `ownership serve` on `url` through a transaction-pooling PgBouncer, with its
/// invalidation listener connected directly to PostgreSQL at `direct`.
fn start_pooled(url: &str, direct: &str, first: bool) -> Serve {
    let mut cmd = serve_command(url);
    cmd.env("OWNERSHIP_DATABASE_POOLER", "transaction")
        .env("OWNERSHIP_DATABASE_LISTEN_URL", direct)
        .env("OWNERSHIP_DATABASE_MAX_CONNECTIONS", "8")
        // The bursts below are load, not abuse.
        .env("OWNERSHIP_LIMITS__IDENTITY_PER_SECOND", "100000")
        .env("OWNERSHIP_LIMITS__IDENTITY_BURST", "100000");
    start_command(cmd, first)
}

#[tokio::test(flavor = "multi_thread")]
async fn two_processes_through_pgbouncer_in_transaction_mode() {
    let (cluster, direct) = pg_url();
    let bouncer = PgBouncer::start(cluster.base_url());
    let pooled = bouncer.url_for(&direct);
    assert_ne!(pooled, direct);
    let a = start_pooled(&pooled, &direct, true);
    let b = start_pooled(&pooled, &direct, false);
    let http = reqwest::Client::new();
    ready(&http, &[&a, &b]).await;
    let owner = a.token.clone().expect("A created the first Owner");
    let alice = add_user(&http, &a, &owner, "alice").await;

    let mut took = Vec::new();
    for round in 0..20 {
        let (id, t) = mint(&http, &a, &alice).await;
        answers(&http, &[&b], "/v1/me", &t, 200, "warm").await;
        // Many transactions at once on both processes, so PgBouncer's few server
        // connections change hands between them (a named statement would then be missing
        // or another client's).
        let burst: Vec<_> = (0..16)
            .map(|i| {
                let http = http.clone();
                let node = if i % 2 == 0 {
                    a.base.clone()
                } else {
                    b.base.clone()
                };
                let alice = alice.clone();
                tokio::spawn(async move {
                    http.get(format!("{node}/v1/me/tokens"))
                        .bearer_auth(alice)
                        .send()
                        .await
                        .map(|r| r.status().as_u16())
                })
            })
            .collect();
        revoke(&http, &a, &alice, &id, &format!("revoke {round}")).await;
        took.push(eventually(&http, &b, "/v1/me", &t, 401, "revoke through PgBouncer").await);
        for request in burst {
            assert_eq!(
                request.await.unwrap().unwrap(),
                200,
                "a read through PgBouncer"
            );
        }
    }
    took.sort();
    println!(
        "through PgBouncer (transaction mode), revoke on A refused on B after: median {:?}, max {:?}",
        percentile(&took, 50.0),
        took.last().unwrap()
    );
    let log = bouncer.log();
    assert!(
        !log.contains("prepared statement"),
        "PgBouncer saw prepared-statement errors:\n{log}"
    );
    for node in [&a, &b] {
        // (A 503 from `/readyz` before the listener connected is logged as an error too.)
        assert!(
            !node.log().contains("postgres store error"),
            "{} logged store errors:\n{}",
            node.base,
            node.log()
        );
    }
}

// ---- console sessions ----------------------------------------------------------------

/// A client that follows no redirects: the console's answers are read as sent.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Signs in to the console of `node` with `token` as a browser would (the sign-in form's
/// double-submit cookie, then the form); returns the session cookie (`name=value`).
async fn console_sign_in(http: &reqwest::Client, node: &Serve, token: &str) -> String {
    let page = http
        .get(format!("{}/console/login", node.base))
        .send()
        .await
        .unwrap();
    let login_cookie = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .find(|c| c.starts_with("ownership_login="))
        .expect("the sign-in form's cookie");
    let csrf = login_cookie
        .trim_start_matches("ownership_login=")
        .to_owned();
    let r = http
        .post(format!("{}/console/login", node.base))
        .header("cookie", &login_cookie)
        .form(&[("access_token", token), ("csrf", &csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303, "sign-in on {}", node.base);
    r.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .find(|c| c.starts_with("ownership_session=") && c.len() > "ownership_session=".len())
        .expect("a session cookie")
}

/// What `GET /console` answers `node` for this session cookie: 200 signed in, 303 to the
/// sign-in page when the session is over.
async fn console_home(http: &reqwest::Client, node: &Serve, session: &str) -> u16 {
    http.get(format!("{}/console", node.base))
        .header("cookie", session)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Polls until every node refuses the session (303 to sign in), at most [`BOUND`].
async fn session_ends_everywhere(
    http: &reqwest::Client,
    nodes: &[&Serve],
    session: &str,
    what: &str,
) {
    for node in nodes {
        let start = Instant::now();
        loop {
            let status = console_home(http, node, session).await;
            if status == 303 {
                println!(
                    "{what}: {} refused the session after {:?}",
                    node.base,
                    start.elapsed()
                );
                break;
            }
            assert!(
                start.elapsed() < BOUND,
                "{what}: {} still answers {status} for the session after {BOUND:?}",
                node.base
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Sets `user`'s status through `node` as the Owner.
async fn set_status(api: &reqwest::Client, node: &Serve, owner: &str, user: &str, to: &str) {
    let r = call(
        api,
        node,
        "PUT",
        &format!("/v1/admin/users/{user}/status"),
        Some(owner),
        Some(json!({ "status": to })),
    )
    .await;
    assert_eq!(r.status, 200, "status {to}: {r:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_console_session_is_shared_and_ended_everywhere() {
    let (_, url) = pg_url();
    let a = start(&url, true);
    let b = start(&url, false);
    let api = reqwest::Client::new();
    ready(&api, &[&a, &b]).await;
    let owner = a.token.clone().expect("A created the first Owner");
    let http = browser();

    // A session made on A is honoured on B (and on A).
    let alice = add_user(&api, &a, &owner, "alice").await;
    let session = console_sign_in(&http, &a, &alice).await;
    for node in [&a, &b] {
        assert_eq!(
            console_home(&http, node, &session).await,
            200,
            "{}",
            node.base
        );
    }
    // Revoking the token it was started with (through B) ends it on both.
    let me = call(&api, &b, "GET", "/v1/me", Some(&alice), None).await;
    let signed_with = me.body["token"]["id"].as_str().unwrap().to_owned();
    revoke(&api, &b, &alice, &signed_with, "revoke the session's token").await;
    session_ends_everywhere(&http, &[&a, &b], &session, "revoke").await;

    // Suspending the user (through A) ends a session made on B, on both.
    let bob = add_user(&api, &a, &owner, "bob").await;
    let session = console_sign_in(&http, &b, &bob).await;
    for node in [&a, &b] {
        assert_eq!(
            console_home(&http, node, &session).await,
            200,
            "{}",
            node.base
        );
    }
    set_status(&api, &a, &owner, "bob", "suspended").await;
    session_ends_everywhere(&http, &[&a, &b], &session, "suspend").await;
    // Resuming the user does not revive it.
    set_status(&api, &a, &owner, "bob", "active").await;
    for node in [&a, &b] {
        assert_eq!(
            console_home(&http, node, &session).await,
            303,
            "{}",
            node.base
        );
    }

    // Signing out on B ends it on A.
    let session = console_sign_in(&http, &a, &owner).await;
    assert_eq!(console_home(&http, &b, &session).await, 200);
    let csrf_page = http
        .get(format!("{}/console", b.base))
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = csrf_page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a CSRF field on the page")
        .to_owned();
    let r = http
        .post(format!("{}/console/logout", b.base))
        .header("cookie", &session)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(
        console_home(&http, &a, &session).await,
        303,
        "signed out everywhere"
    );
}
