//! "No secret in the logs" (docs/tokens.md, docs/security.md#errors-and-logs): every path that hands out or takes a
//! secret — bootstrap, user creation, minting, rotation, service tokens, pairing codes
//! (redeemed and approved), token verification, a query-string token, stored secrets,
//! resource credentials, webhook signing secrets (set, rotated, used to sign a real
//! delivery), a console sign-in and session, a legacy token and a provisioned user-token table — is driven on the real
//! server with the most verbose logging an operator could enable
//! ([`logcheck::VERBOSE_FILTER`]), on libSQL and on PostgreSQL. The whole captured log
//! must then be non-empty (the request log and the store's statements are there: the
//! capture works) and hold none of the values (`TestApp::stop`, see `tests/src/logcheck.rs`).
//!
//! Negative controls prove the checker finds a planted token, pairing code (displayed or
//! normalized), secret value and unrecorded token-shaped string, and masks it in its
//! report.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ownership_tests::app::{Backend, TestApp, spawn_app_with};
use ownership_tests::logcheck::{self, Kind, LogBuffer, Secrets};
use serde_json::{Value, json};

const BOOTSTRAP: &str = "log-check-bootstrap-secret-0123456789";
const MASTER: [u8; 32] = [42; 32];
const LEGACY: &str = "legacy-token-for-the-log-check-9876543210";
const PROVISIONED: &str = "provisioned-token-for-the-log-check-abcdef";
const STORED_VALUE: &str = "s3cr3t-stored-value-for-the-log-check";

/// Polls `check` until it yields a value (at most 60 s: a loaded machine is slow).
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A webhook receiver on a loopback port answering 200, keeping the bodies.
async fn receiver() -> (String, Arc<Mutex<Vec<String>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&got);
    let router = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: String| {
            let kept = Arc::clone(&kept);
            async move {
                kept.lock().unwrap().push(body);
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    (format!("http://{addr}/hook"), got)
}

fn string(v: &Value, key: &str) -> String {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("`{key}` in {v}"))
        .to_owned()
}

async fn put(app: &TestApp, path: &str, token: &str, body: Value) -> Value {
    let r = app.call("PUT", path, Some(token), Some(body)).await;
    assert!(r.status == 200 || r.status == 201, "PUT {path}: {}", r.text);
    r.body
}

async fn created(app: &TestApp, path: &str, token: &str, body: Value) -> Value {
    let r = app.post(path, token, body).await;
    assert!(
        r.status == 200 || r.status == 201,
        "POST {path}: {}",
        r.text
    );
    r.body
}

/// Every secret-issuing and secret-taking path on one server.
async fn every_secret_path(backend: Backend) {
    let mut app = spawn_app_with(backend, |c| {
        c.secrets.bootstrap_token = Some(BOOTSTRAP.into());
        c.secrets.master_key = Some(MASTER);
        c.service.allow_private_webhooks = true;
        c.service.webhooks.poll_interval = Duration::from_millis(50);
    })
    .await;
    assert!(app.owner_token.is_empty(), "no Owner before bootstrap");

    // Bootstrap: the first Owner's token.
    let r = app
        .call(
            "POST",
            "/v1/bootstrap",
            Some(BOOTSTRAP),
            Some(json!({"user_id": "root"})),
        )
        .await;
    assert_eq!(r.status, 201, "bootstrap: {}", r.text);
    let owner = string(&r.body, "token");
    app.owner_token.clone_from(&owner);
    // A wrong bootstrap secret: refused, and not logged either.
    let r = app
        .call(
            "POST",
            "/v1/bootstrap",
            Some("wrong-bootstrap-secret-0000"),
            Some(json!({"user_id": "root2"})),
        )
        .await;
    assert!(r.status == 401 || r.status == 409, "{}", r.text);

    // A user, their minted token, its rotation (with grace), a revocation.
    let alice = app.create_user("alice", "member").await;
    let minted = created(
        &app,
        "/v1/me/tokens",
        &alice,
        json!({"kinds": ["api"], "label": "ci", "expires_in_seconds": 3600}),
    )
    .await;
    let minted_id = string(&minted, "id");
    let rotated = created(
        &app,
        &format!("/v1/me/tokens/{minted_id}/rotate"),
        &alice,
        json!({"grace_seconds": 60}),
    )
    .await;
    assert_ne!(string(&rotated, "token"), string(&minted, "token"));

    // Service tokens: a channel adapter and a verifier.
    let bot = string(
        &created(
            &app,
            "/v1/admin/service-tokens",
            &owner,
            json!({"kinds": ["channel:telegram"], "label": "bot"}),
        )
        .await,
        "token",
    );
    let verifier = string(
        &created(
            &app,
            "/v1/admin/service-tokens",
            &owner,
            json!({"kinds": ["verify"]}),
        )
        .await,
        "token",
    );
    let r = app
        .post("/v1/tokens/verify", &verifier, json!({"token": alice}))
        .await;
    assert_eq!(
        (r.status, &r.body["valid"]),
        (200, &json!(true)),
        "{}",
        r.text
    );
    let r = app
        .post(
            "/v1/tokens/verify",
            &verifier,
            json!({"token": format!("own_u_{}", "Z".repeat(49))}),
        )
        .await;
    assert_eq!(r.body["valid"], json!(false), "{}", r.text);

    // Pairing: a code redeemed by the person, then one approved by the Owner; a wrong
    // code in between.
    let asked = created(
        &app,
        "/v1/channels/telegram/pairing-requests",
        &bot,
        json!({"external_id": "1001", "meta": {"name": "Alice"}}),
    )
    .await;
    let code = string(&asked, "code");
    let again = created(
        &app,
        "/v1/channels/telegram/pairing-requests",
        &bot,
        json!({"external_id": "1001"}),
    )
    .await;
    assert_eq!(string(&again, "code"), code, "the same code, re-derived");
    let r = app
        .post(
            "/v1/pairing/telegram/redeem",
            &alice,
            json!({"code": "ZZZZ-ZZZZ"}),
        )
        .await;
    assert!(r.status >= 400, "a wrong code fails: {}", r.text);
    let r = app
        .post(
            "/v1/pairing/telegram/redeem",
            &alice,
            json!({"code": code.to_lowercase().replace('-', " ")}),
        )
        .await;
    assert_eq!(r.status, 200, "redeem: {}", r.text);
    let second = string(
        &created(
            &app,
            "/v1/channels/telegram/pairing-requests",
            &bot,
            json!({"external_id": "1002"}),
        )
        .await,
        "code",
    );
    let r = app
        .post(
            "/v1/admin/pairing/telegram/approve",
            &owner,
            json!({"code": second, "owner_id": "alice"}),
        )
        .await;
    assert_eq!(r.status, 200, "approve: {}", r.text);
    assert_eq!(
        app.get("/v1/channels/telegram/identities/1002", &bot)
            .await
            .status,
        200
    );

    // Stored secrets and a resource's credentials; a refused credentials request.
    put(
        &app,
        "/v1/me/secrets/DB_PASSWORD",
        &alice,
        json!({"value": STORED_VALUE}),
    )
    .await;
    let resource = created(
        &app,
        "/v1/me/resources",
        &alice,
        json!({"kind": "job", "external_ref": "build-1", "grants": ["DB_PASSWORD"]}),
    )
    .await;
    let resource_token = string(&resource, "token");
    let r = app
        .call(
            "GET",
            "/v1/resource/credentials",
            Some(&resource_token),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "credentials: {}", r.text);
    assert_eq!(r.body["secrets"]["DB_PASSWORD"], STORED_VALUE);
    let r = app
        .call("GET", "/v1/resource/credentials", Some(&alice), None)
        .await;
    assert_eq!(r.status, 403, "a user token gets no credentials");

    // A webhook: its signing secret, a rotation with grace, and a real signed delivery.
    let (url, got) = receiver().await;
    let hook = put(&app, "/v1/me/webhook", &alice, json!({"url": url})).await;
    assert!(string(&hook, "secret").starts_with("whsec_"));
    let rotated_hook = created(
        &app,
        "/v1/me/webhook/rotate-secret",
        &alice,
        json!({"grace_seconds": 60}),
    )
    .await;
    assert_ne!(string(&rotated_hook, "secret"), string(&hook, "secret"));
    let r = app
        .call(
            "DELETE",
            &format!("/v1/me/tokens/{minted_id}"),
            Some(&alice),
            None,
        )
        .await;
    assert!(r.status == 200 || r.status == 204, "revoke: {}", r.text);
    eventually("a delivered webhook", || {
        let app = &app;
        let alice = &alice;
        async move {
            let r = app.get("/v1/me/webhook/deliveries", alice).await;
            r.body["deliveries"]
                .as_array()
                .is_some_and(|d| d.iter().any(|d| d["state"] == "delivered"))
                .then_some(())
        }
    })
    .await;
    assert!(!got.lock().unwrap().is_empty(), "the receiver got it");

    // A token in a query string (accepted on the SSE route only, and never one holding
    // `manage`): the stream opens with an `api` token, and refuses alice's own.
    let minted = app
        .post("/v1/me/tokens", &alice, json!({"kinds": ["api"]}))
        .await;
    assert_eq!(minted.status, 201, "{}", minted.text);
    let api = minted.body["token"].as_str().unwrap().to_owned();
    app.secrets.record(Kind::Token, &api);
    for (token, status) in [(api.as_str(), 200), (alice.as_str(), 403)] {
        let res = app
            .http
            .get(format!("{}/v1/me/events?access_token={token}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), status, "the event stream with a query token");
        drop(res);
    }
    app.secrets.record(Kind::Token, &alice);

    // The console: a sign-in with the token in a form, a session cookie, a page.
    console_sign_in(&app, &alice).await;

    // A bad token and a tampered one: refused.
    // The last character is changed to another one (never to itself).
    let last = if alice.ends_with('x') { 'y' } else { 'x' };
    let tampered = format!("{}{last}", &alice[..alice.len() - 1]);
    assert_eq!(app.get("/v1/me", &tampered).await.status, 401);
    assert_eq!(
        app.get("/v1/me", "not-a-real-token-at-all").await.status,
        401
    );

    // Everything of interest was recorded ...
    for (kind, at_least) in [
        (Kind::Token, 10),
        (Kind::PairingCode, 4),
        (Kind::SecretValue, 1),
        (Kind::SigningSecret, 2),
        (Kind::KeyMaterial, 4),
    ] {
        assert!(
            app.secrets.count(kind) >= at_least,
            "at least {at_least} {} recorded: {}",
            kind.name(),
            app.secrets.count(kind)
        );
    }
    // ... and the capture saw this server's requests, in both formats, at TRACE/DEBUG.
    let log = logcheck::capture().text_since(app.log_from);
    for needle in [
        "/v1/bootstrap",
        "/v1/pairing/telegram/redeem",
        "/v1/resource/credentials",
        "/v1/me/webhook/rotate-secret",
        "started processing request",
        "finished processing request",
        "authenticated",
        "resource credentials served",
        "\"level\":\"DEBUG\"",
        " DEBUG ",
    ] {
        assert!(
            log.contains(needle),
            "the captured log has `{needle}` ({} bytes)",
            log.len()
        );
    }
    if backend == Backend::Postgres {
        assert!(
            log.contains("sqlx::query"),
            "sqlx's statement log is captured"
        );
    }
    app.assert_logs_clean();
    app.stop().await;
}

/// Signs in to the web console with `token` (raw requests, as a browser would send
/// them) and opens a page with the session; records the cookies and the CSRF value.
async fn console_sign_in(app: &TestApp, token: &str) {
    let raw = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let form = raw
        .get(format!("{}/console/login", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 200);
    app.secrets.record_set_cookies(form.headers());
    let login_cookie = form.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let html = form.text().await.unwrap();
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    app.secrets.record(Kind::ConsoleSession, &csrf);
    app.secrets.record(Kind::Token, token);
    let res = raw
        .post(format!("{}/console/login", app.base))
        .header("cookie", &login_cookie)
        .header("origin", &app.base)
        .form(&[("csrf", csrf.as_str()), ("access_token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303, "console sign-in");
    app.secrets.record_set_cookies(res.headers());
    let session = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.contains("session="))
        .expect("the session cookie")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let page = raw
        .get(format!("{}/console", app.base))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200, "a console page with the session");
    // The sign-in cookie (which may double as the CSRF value) and the session cookie.
    let recorded = app.secrets.count(Kind::ConsoleSession);
    assert!(recorded >= 2, "console values recorded: {recorded}");
}

/// A legacy token and a provisioned user-token table (configuration secrets).
async fn configured_tokens(backend: Backend) {
    let table = json!([
        {"token": PROVISIONED, "user_id": "carol", "role": "admin"},
    ])
    .to_string();
    let mut app = spawn_app_with(backend, |c| {
        c.secrets.legacy_token = Some(LEGACY.into());
        c.secrets.user_tokens = Some(table);
    })
    .await;
    assert!(app.secrets.snapshot().iter().any(|(_, s)| s == PROVISIONED));
    for token in [LEGACY, PROVISIONED] {
        let r = app.get("/v1/me", token).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let log = logcheck::capture().text_since(app.log_from);
    assert!(
        log.contains("user-token table provisioned"),
        "{}",
        log.len()
    );
    app.assert_logs_clean();
    app.stop().await;
}

/// A user revokes their own configured tokens (the provisioned one and the legacy one):
/// the next start with the same configuration keeps the revocations, logs what the
/// operator must do, and serves (a user's action never stops the server).
async fn a_user_revoking_a_configured_token_never_stops_a_start(backend: Backend) {
    let table = json!([
        {"token": PROVISIONED, "user_id": "carol", "role": "admin"},
    ])
    .to_string();
    let configure = |c: &mut ownership_cli::server::ServerConfig| {
        c.secrets.legacy_token = Some(LEGACY.into());
        c.secrets.user_tokens = Some(table.clone());
    };
    let app = spawn_app_with(backend, configure).await;
    for token in [LEGACY, PROVISIONED] {
        let me = app.get("/v1/me", token).await;
        assert_eq!(me.status, 200, "{}", me.text);
        let id = me.body["token"]["id"].as_str().unwrap().to_owned();
        let revoked = app
            .call("DELETE", &format!("/v1/me/tokens/{id}"), Some(token), None)
            .await;
        assert!(revoked.status < 300, "{} {}", revoked.status, revoked.text);
        assert_eq!(app.get("/v1/me", token).await.status, 401);
    }
    let mut app = app.restart(configure).await;
    for token in [LEGACY, PROVISIONED] {
        assert_eq!(app.get("/v1/me", token).await.status, 401, "stays revoked");
    }
    let health = app.call("GET", "/healthz", None, None).await;
    assert_eq!(health.status, 200, "the server serves");
    let log = logcheck::capture().text_since(app.log_from);
    assert!(log.contains("the configured legacy token was revoked by its user"));
    assert!(log.contains("this entry's token was revoked; it stays revoked"));
    app.assert_logs_clean();
    app.stop().await;
}

macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn libsql() {
                super::$scenario(super::Backend::Libsql).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$scenario(super::Backend::Postgres).await;
            }
        }
    )*};
}

/// End to end through the process-wide capture: a value the test sent the server (a
/// stored secret's) that then shows up in the log fails `TestApp`'s check.
async fn a_leak_fails_the_app_check(backend: Backend) {
    let mut app = spawn_app_with(backend, |c| c.secrets.master_key = Some(MASTER)).await;
    let owner = app.owner_token.clone();
    // Unique to this test, and not shaped like a token: no other server's check can trip
    // over the planted line.
    let planted = format!(
        "planted-{}-{}",
        std::process::id(),
        backend == Backend::Libsql
    );
    put(
        &app,
        "/v1/me/secrets/PLANTED",
        &owner,
        json!({"value": planted}),
    )
    .await;
    app.assert_logs_clean();
    tracing::warn!(target: "ownership_http::routes::secrets", value = %planted, "a careless log line");
    let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| app.assert_logs_clean()))
        .expect_err("the planted secret fails the check");
    let message = failed.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains("secret value"), "{message}");
    assert!(message.contains("a careless log line"), "{message}");
    assert!(!message.contains(&planted), "masked: {message}");
    // Dropped, not stopped: `stop` would check (and fail) again; a checked app's drop
    // does not.
    drop(app);
}

on_both_backends!(
    every_secret_path,
    configured_tokens,
    a_user_revoking_a_configured_token_never_stops_a_start,
    a_leak_fails_the_app_check
);

// ---------------------------------------------------------------------------------------
// Negative controls: the checker finds what is there.

/// Logs `planted` through the capture's own layers into a private buffer (planting into
/// the process-wide capture would fail the servers of the other tests).
fn planted_log(planted: &str) -> LogBuffer {
    let buffer = LogBuffer::default();
    tracing::subscriber::with_default(logcheck::subscriber(buffer.clone()), || {
        tracing::info!(target: "ownership_http::routes", "request done");
        tracing::debug!(target: "ownership_http::auth", value = %planted, "oops");
    });
    buffer
}

#[test]
fn the_checker_finds_a_planted_token_code_and_value_and_masks_them() {
    let token = format!("own_u_{}", "Ab3".repeat(16) + "C");
    let secrets = Secrets::default();
    secrets.record(Kind::Token, &token);
    secrets.record(Kind::PairingCode, "abcd-efgh");
    secrets.record(Kind::SecretValue, STORED_VALUE);
    let recorded = secrets.snapshot();

    // A log without them passes.
    let clean = planted_log("nothing to see here");
    assert!(!clean.is_empty());
    clean.check_since(0, &recorded).unwrap();

    for (planted, kind) in [
        (token.as_str(), Kind::Token),
        ("ABCD-EFGH", Kind::PairingCode),
        ("ABCDEFGH", Kind::PairingCode),
        (STORED_VALUE, Kind::SecretValue),
    ] {
        let log = planted_log(planted);
        let leak = log
            .check_since(0, &recorded)
            .expect_err("the planted value is found");
        assert_eq!(leak.kind, kind, "{planted}: {leak}");
        let report = leak.to_string();
        assert!(report.contains(kind.name()), "{report}");
        assert!(report.contains("MASKED"), "{report}");
        assert!(!report.contains(planted), "the report masks it: {report}");
    }

    // Part of a longer word is not the value.
    let log = planted_log("xABCDEFGHx");
    log.check_since(0, &recorded).unwrap();
}

#[test]
fn the_checker_finds_an_unrecorded_token_or_signing_secret_by_its_shape() {
    for planted in [
        format!("own_s_{}", "q".repeat(49)),
        format!("whsec_{}", "K".repeat(43) + "="),
    ] {
        let leak = planted_log(&planted)
            .check_since(0, &[])
            .expect_err("found by shape");
        assert_eq!(leak.kind, Kind::TokenShaped, "{leak}");
        assert!(!leak.to_string().contains(&planted), "{leak}");
    }
    // A display prefix (`own_u_AbCd`) is not a token.
    planted_log("own_u_AbCd").check_since(0, &[]).unwrap();
}

#[test]
fn the_process_checks_use_every_recorded_secret() {
    let value = "process-check-secret-value-123456";
    logcheck::global().record(Kind::SecretValue, value);
    let leaked = std::panic::catch_unwind(|| {
        logcheck::assert_text_clean("a process's stderr", &format!("error: {value}\n"));
    });
    let message = leaked.expect_err("the leak panics");
    let message = message
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(message.contains("secret value"), "{message}");
    assert!(!message.contains(value), "{message}");
    logcheck::assert_text_clean("a clean stderr", "error: no such user\n");
}
