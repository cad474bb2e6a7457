//! End-to-end tests of encrypted secrets, resource credentials and signed webhooks (docs/secrets.md,
//! docs/webhooks.md, docs/security.md), on the real server (`ownership_cli::server`)
//! over HTTP. Every scenario is an `async fn(Backend)` run on a fresh libSQL file and on a
//! fresh PostgreSQL database (`scenario::libsql`, `scenario::postgres`).
//!
//! Webhook deliveries go to a small axum receiver on a loopback port inside the test
//! (the server runs with `allow_private_webhooks`), which checks every message with the
//! verifiers of `ownership-core` *and* with two verifiers written here from the published
//! schemes alone: Standard Webhooks (HMAC-SHA256 over `id.timestamp.body`, keyed with the
//! base64-decoded part after `whsec_`) and Stripe's `t=…,v1=…` (HMAC-SHA256 over
//! `t.body`, keyed with the whole secret string).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU16, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use hmac::{Hmac, KeyInit as _, Mac as _};
use ownership_cli::backend::Location;
use ownership_cli::server::{self, ServerConfig};
use ownership_core::ports::Clock;
use ownership_core::service::RetryPolicy;
use ownership_core::token::{TokenFamily, TokenSecret};
use ownership_core::webhook::{WebhookSecret, standard_verify, stripe_verify};
use ownership_store::SystemClock;
use ownership_store::libsql::LibsqlStore;
use ownership_store::postgres::PgStore;
use ownership_tests::app::{Backend, Reply, TestApp, spawn_app_with};
use ownership_tests::pg::PgCluster;
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::oneshot;

/// Declares each named `async fn scenario(backend: Backend)` as two tests,
/// `scenario::libsql` and `scenario::postgres`.
macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn libsql() {
                super::$scenario(ownership_tests::app::Backend::Libsql).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$scenario(ownership_tests::app::Backend::Postgres).await;
            }
        }
    )*};
}

on_both_backends!(
    secrets_are_written_listed_and_deleted_without_ever_showing_values,
    two_owners_keep_same_named_secrets_apart,
    a_ciphertext_copied_to_another_owner_does_not_decrypt,
    every_credentials_failure_is_the_same_403,
    without_a_master_key_secrets_and_webhooks_are_off_and_nothing_else,
    endpoint_urls_must_be_public_https,
    deliveries_verify_with_core_and_independent_receivers,
    rotation_signs_with_both_secrets_during_grace_then_only_the_new,
    a_failed_delivery_is_retried_with_backoff_until_it_succeeds_or_gives_up,
    a_restart_between_enqueue_and_delivery_loses_nothing,
    the_master_key_rotates_without_downtime,
    no_secret_or_signing_key_appears_in_audit_or_listings,
);

/// The master key of the test servers.
const MASTER: [u8; 32] = [7; 32];

/// The one answer of every refused credentials request.
const DENIED: &str = r#"{"error":{"code":"forbidden","message":"access denied"}}"#;

/// Webhook settings that make the tests quick.
fn fast_webhooks(config: &mut ServerConfig) {
    config.secrets.master_key = Some(MASTER);
    config.service.allow_private_webhooks = true;
    config.service.webhooks.poll_interval = Duration::from_millis(50);
    config.service.webhooks.retry = RetryPolicy {
        max_attempts: 4,
        base: Duration::from_millis(200),
        max_delay: Duration::from_millis(400),
    };
}

/// A server with secrets and (loopback) webhooks on.
async fn app(backend: Backend) -> TestApp {
    spawn_app_with(backend, fast_webhooks).await
}

async fn put(app: &TestApp, path: &str, token: &str, body: Value) -> Reply {
    app.call("PUT", path, Some(token), Some(body)).await
}

async fn delete(app: &TestApp, path: &str, token: &str) -> Reply {
    app.call("DELETE", path, Some(token), None).await
}

/// Stores a secret and checks the answer carries metadata only.
async fn put_secret(app: &TestApp, token: &str, name: &str, value: &str) -> Reply {
    let r = put(
        app,
        &format!("/v1/me/secrets/{name}"),
        token,
        json!({"value": value}),
    )
    .await;
    assert!(
        r.status == 201 || r.status == 200,
        "put secret {name}: {}",
        r.text
    );
    assert!(!r.text.contains(value), "the value came back: {}", r.text);
    assert_eq!(r.body["name"], name);
    r
}

/// Registers a resource and returns `(id, token)`.
async fn resource(app: &TestApp, token: &str, grants: &[&str]) -> (String, String) {
    let r = app
        .post(
            "/v1/me/resources",
            token,
            json!({"kind": "job", "external_ref": "build-42", "grants": grants}),
        )
        .await;
    assert_eq!(r.status, 201, "create resource: {}", r.text);
    let token = r.body["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("own_r_"));
    (r.body["id"].as_str().unwrap().to_owned(), token)
}

/// `GET /v1/resource/credentials` with an optional bearer token.
async fn credentials(app: &TestApp, token: Option<&str>) -> Reply {
    app.call("GET", "/v1/resource/credentials", token, None)
        .await
}

/// Asserts the uniform denial, byte for byte.
fn assert_denied(r: &Reply, what: &str) {
    assert_eq!(r.status, 403, "{what}: {}", r.text);
    assert_eq!(r.text, DENIED, "{what}");
    assert!(
        r.headers.get("www-authenticate").is_none(),
        "{what}: no 401 challenge"
    );
}

/// Polls `check` until it yields a value (at most 15 s).
async fn eventually<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------------------
// Direct database access (to tamper with rows the way an attacker with the database would)

enum Raw {
    Libsql(LibsqlStore),
    Postgres(PgStore),
}

impl Raw {
    async fn open(backend: Backend, database_url: &str) -> Self {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        match backend {
            Backend::Libsql => Raw::Libsql(
                LibsqlStore::open_file(&PathBuf::from(database_url), clock)
                    .await
                    .unwrap(),
            ),
            Backend::Postgres => {
                Raw::Postgres(PgStore::connect(database_url, clock).await.unwrap())
            }
        }
    }

    /// Links this store's audit appends under the chain keys of `keys`, as the operator
    /// commands do.
    fn key_chain(&self, keys: &ownership_core::crypto::MasterKeys) {
        let chain = ownership_core::audit::ChainKeys::from_master(keys);
        match self {
            Raw::Libsql(s) => s.set_chain_keys(chain),
            Raw::Postgres(s) => s.set_chain_keys(chain),
        };
    }

    async fn exec(&self, sql: &str) {
        match self {
            Raw::Libsql(s) => s.execute_batch_for_tests(sql).await.unwrap(),
            Raw::Postgres(s) => s.execute_batch_for_tests(sql).await.unwrap(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// A webhook receiver

#[derive(Debug, Clone)]
struct Received {
    id: String,
    timestamp: String,
    signature: String,
    ownership_signature: String,
    body: Vec<u8>,
    answered: u16,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    fn event_type(&self) -> String {
        self.json()["type"].as_str().unwrap_or_default().to_owned()
    }

    fn target(&self) -> String {
        self.json()["data"]["target"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
    /// Answer this status (0: 200).
    status: Arc<AtomicU16>,
    /// Answer 500 to this many requests first.
    fail_next: Arc<AtomicU32>,
}

async fn hook(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let answered = if r
        .fail_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        500
    } else {
        match r.status.load(Ordering::SeqCst) {
            0 => 200,
            s => s,
        }
    };
    assert_eq!(header("content-type"), "application/json");
    r.got.lock().unwrap().push(Received {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        ownership_signature: header("ownership-signature"),
        body: body.to_vec(),
        answered,
    });
    StatusCode::from_u16(answered).unwrap()
}

impl Receiver {
    /// Starts a receiver on a loopback port; returns it and its URL.
    async fn start() -> (Self, String) {
        let receiver = Receiver::default();
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(hook))
            .with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (receiver, format!("http://{addr}/hook"))
    }

    fn all(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Waits for a message answered 2xx with this type and target.
    async fn delivered(&self, event_type: &str, target: &str) -> Received {
        eventually(&format!("a delivered {event_type} {target}"), async || {
            self.all()
                .into_iter()
                .find(|m| m.answered < 300 && m.event_type() == event_type && m.target() == target)
        })
        .await
    }
}

// ---------------------------------------------------------------------------------------
// Two verifiers written from the published schemes, without ownership-core

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Standard Webhooks: `v1,<base64 HMAC-SHA256(base64decode(secret after "whsec_"),
/// "{id}.{timestamp}.{body}")>` among the space-separated signatures; timestamp within
/// five minutes.
fn standard_webhooks_receiver(secret: &str, m: &Received) -> bool {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut signed = format!("{}.{}.", m.id, m.timestamp).into_bytes();
    signed.extend_from_slice(&m.body);
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(hmac_sha256(&key, &signed))
    );
    let fresh = m
        .timestamp
        .parse::<i64>()
        .is_ok_and(|t| (now_unix() - t).abs() <= 300);
    fresh && m.signature.split(' ').any(|s| s == expected)
}

/// Stripe: `t=<unix>,v1=<hex HMAC-SHA256(whole secret string, "{t}.{body}")>`, any `v1`
/// matching; timestamp within five minutes.
fn stripe_receiver(secret: &str, m: &Received) -> bool {
    let mut t = None;
    let mut candidates = Vec::new();
    for item in m.ownership_signature.split(',') {
        match item.split_once('=') {
            Some(("t", v)) => t = Some(v.to_owned()),
            Some(("v1", v)) => candidates.push(v.to_owned()),
            _ => {}
        }
    }
    let Some(t) = t else { return false };
    let mut signed = format!("{t}.").into_bytes();
    signed.extend_from_slice(&m.body);
    let expected = hex::encode(hmac_sha256(secret.as_bytes(), &signed));
    let fresh = t
        .parse::<i64>()
        .is_ok_and(|t| (now_unix() - t).abs() <= 300);
    fresh && candidates.contains(&expected)
}

/// The verifiers of `ownership-core`, for a receiver holding `secret` only.
fn core_verifies(secret: &str, m: &Received) -> bool {
    let secret = WebhookSecret::parse(secret).unwrap();
    let standard = standard_verify(
        &[&secret],
        &m.id,
        &m.timestamp,
        &m.signature,
        &m.body,
        now_unix(),
        300,
    );
    let stripe = stripe_verify(&[&secret], &m.ownership_signature, &m.body, now_unix(), 300);
    standard.is_ok() && stripe.is_ok()
}

/// All four verifiers accept `m` under `secret`.
fn assert_verifies(secret: &str, m: &Received) {
    assert!(core_verifies(secret, m), "core verifiers refused {}", m.id);
    assert!(
        standard_webhooks_receiver(secret, m),
        "Standard Webhooks receiver refused {}",
        m.id
    );
    assert!(
        stripe_receiver(secret, m),
        "Stripe-style receiver refused {}",
        m.id
    );
}

/// No verifier accepts `m` under `secret`.
fn assert_rejected(secret: &str, m: &Received) {
    assert!(
        !core_verifies(secret, m),
        "core verifiers accepted {}",
        m.id
    );
    assert!(
        !standard_webhooks_receiver(secret, m),
        "Standard Webhooks receiver accepted {}",
        m.id
    );
    assert!(
        !stripe_receiver(secret, m),
        "Stripe-style receiver accepted {}",
        m.id
    );
}

/// Sets the caller's webhook and returns its secret.
async fn set_webhook(app: &TestApp, token: &str, url: &str, expect: u16) -> String {
    let r = put(app, "/v1/me/webhook", token, json!({"url": url})).await;
    assert_eq!(r.status, expect, "set webhook: {}", r.text);
    let secret = r.body["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    assert_eq!(r.body["url"], url);
    secret
}

/// The caller's delivery log.
async fn deliveries(app: &TestApp, token: &str) -> Vec<Value> {
    let r = app.get("/v1/me/webhook/deliveries", token).await;
    assert_eq!(r.status, 200, "deliveries: {}", r.text);
    r.body["deliveries"].as_array().unwrap().clone()
}

/// The delivery of the caller's event of this type and target, once it is in `state`.
async fn delivery_in_state(
    app: &TestApp,
    token: &str,
    event_type: &str,
    target: &str,
    state: &str,
) -> Value {
    eventually(&format!("{event_type} {target} {state}"), async || {
        deliveries(app, token).await.into_iter().find(|d| {
            d["event_type"] == event_type
                && d["payload"]["data"]["target"] == target
                && d["state"] == state
        })
    })
    .await
}

// ---------------------------------------------------------------------------------------
// Scenarios

async fn secrets_are_written_listed_and_deleted_without_ever_showing_values(backend: Backend) {
    let app = app(backend).await;
    let owner = app.owner_token.clone();

    let first = put_secret(&app, &owner, "OPENAI_KEY", "sk-first-value-1").await;
    assert_eq!(first.status, 201);
    assert_eq!(first.body["created_at"], first.body["updated_at"]);
    let second = put_secret(&app, &owner, "OPENAI_KEY", "sk-second-value-2").await;
    assert_eq!(second.status, 200, "replacing answers 200");
    assert_eq!(second.body["created_at"], first.body["created_at"]);
    put_secret(&app, &owner, "db.password", "hunter2-db").await;

    let list = app.get("/v1/me/secrets", &owner).await;
    assert_eq!(list.status, 200);
    let names: Vec<&str> = list.body["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["OPENAI_KEY", "db.password"]);
    for s in list.body["secrets"].as_array().unwrap() {
        let mut keys: Vec<&String> = s.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(keys, ["created_at", "name", "updated_at"]);
    }
    for value in ["sk-first-value-1", "sk-second-value-2", "hunter2-db"] {
        assert!(!list.text.contains(value));
    }

    // Names are validated; values are bounded.
    let bad = put(
        &app,
        "/v1/me/secrets/.hidden",
        &owner,
        json!({"value": "x"}),
    )
    .await;
    assert_eq!(bad.status, 400, "{}", bad.text);
    let big = put(
        &app,
        "/v1/me/secrets/BIG",
        &owner,
        json!({"value": "x".repeat(33 * 1024)}),
    )
    .await;
    assert_eq!(big.status, 400, "{}", big.text);
    let wrong = put(&app, "/v1/me/secrets/X", &owner, json!({"value": 5})).await;
    assert_eq!(wrong.status, 400);

    // A token without `manage` or `api` may not touch secrets.
    let svc = app
        .post(
            "/v1/admin/service-tokens",
            &owner,
            json!({"kinds": ["verify"]}),
        )
        .await;
    assert_eq!(svc.status, 201, "{}", svc.text);
    let verify_only = svc.body["token"].as_str().unwrap();
    assert_eq!(app.get("/v1/me/secrets", verify_only).await.status, 403);
    assert_eq!(
        app.get("/v1/me/secrets", "own_u_nonsense").await.status,
        401
    );
    // An `api` token may.
    let api = app
        .post("/v1/me/tokens", &owner, json!({"kinds": ["api"]}))
        .await;
    let api = api.body["token"].as_str().unwrap();
    assert_eq!(app.get("/v1/me/secrets", api).await.status, 200);

    assert_eq!(
        delete(&app, "/v1/me/secrets/db.password", &owner)
            .await
            .status,
        204
    );
    let again = delete(&app, "/v1/me/secrets/db.password", &owner).await;
    assert_eq!(again.status, 404);
    let malformed = delete(&app, "/v1/me/secrets/.hidden", &owner).await;
    assert_eq!(malformed.status, 404);
    assert_eq!(malformed.text, again.text);
    let list = app.get("/v1/me/secrets", &owner).await;
    assert_eq!(list.body["secrets"].as_array().unwrap().len(), 1);

    // The values are only ever readable by a resource: the latest write wins.
    let (_, token) = resource(&app, &owner, &["OPENAI_KEY"]).await;
    let creds = credentials(&app, Some(&token)).await;
    assert_eq!(creds.status, 200, "{}", creds.text);
    assert_eq!(
        creds.body,
        json!({"secrets": {"OPENAI_KEY": "sk-second-value-2"}})
    );
    assert_eq!(
        creds
            .headers
            .get("cache-control")
            .unwrap()
            .to_str()
            .unwrap(),
        "no-store"
    );
    app.stop().await;
}

async fn two_owners_keep_same_named_secrets_apart(backend: Backend) {
    let app = app(backend).await;
    let alice = app.create_user("alice", "member").await;
    let bob = app.create_user("bob", "member").await;
    put_secret(&app, &alice, "API_KEY", "alice-api-key").await;
    put_secret(&app, &bob, "API_KEY", "bob-api-key").await;
    let (alice_res, alice_token) = resource(&app, &alice, &["API_KEY"]).await;
    let (_bob_res, bob_token) = resource(&app, &bob, &["API_KEY"]).await;

    let a = credentials(&app, Some(&alice_token)).await;
    assert_eq!(a.body, json!({"secrets": {"API_KEY": "alice-api-key"}}));
    let b = credentials(&app, Some(&bob_token)).await;
    assert_eq!(b.body, json!({"secrets": {"API_KEY": "bob-api-key"}}));

    // Each sees only their own secrets and resources; the other's are 404 like absent ones.
    let alice_list = app.get("/v1/me/resources", &alice).await;
    assert_eq!(alice_list.body["resources"].as_array().unwrap().len(), 1);
    assert_eq!(alice_list.body["resources"][0]["id"], alice_res.as_str());
    assert!(alice_list.body["resources"][0].get("token").is_none());
    let mine = app
        .get(&format!("/v1/me/resources/{alice_res}"), &alice)
        .await;
    assert_eq!(mine.status, 200);
    assert_eq!(mine.body["grants"], json!(["API_KEY"]));
    let theirs = app
        .get(&format!("/v1/me/resources/{alice_res}"), &bob)
        .await;
    let absent = app
        .get("/v1/me/resources/res_00000000000000000000", &bob)
        .await;
    assert_eq!(theirs.status, 404);
    assert_eq!(theirs.text, absent.text);
    let revoke_theirs = delete(&app, &format!("/v1/me/resources/{alice_res}"), &bob).await;
    assert_eq!(revoke_theirs.status, 404);
    assert_eq!(revoke_theirs.text, absent.text);
    // Bob cannot grant a secret he does not hold, even though Alice holds one by that name.
    put_secret(&app, &alice, "ONLY_ALICE", "x").await;
    let grant = app
        .post(
            "/v1/me/resources",
            &bob,
            json!({"kind": "job", "grants": ["ONLY_ALICE"]}),
        )
        .await;
    assert_eq!(grant.status, 400, "{}", grant.text);
    // Alice's resource still works after Bob's attempt.
    assert_eq!(credentials(&app, Some(&alice_token)).await.status, 200);
    app.stop().await;
}

async fn a_ciphertext_copied_to_another_owner_does_not_decrypt(backend: Backend) {
    let app = app(backend).await;
    let alice = app.create_user("alice", "member").await;
    let bob = app.create_user("bob", "member").await;
    put_secret(&app, &alice, "API_KEY", "alice-only-value").await;
    put_secret(&app, &bob, "API_KEY", "bob-own-value").await;
    let (_, alice_token) = resource(&app, &alice, &["API_KEY"]).await;
    let (_, bob_token) = resource(&app, &bob, &["API_KEY"]).await;
    assert_eq!(credentials(&app, Some(&bob_token)).await.status, 200);

    let raw = Raw::open(backend, &app.database_url).await;
    // Alice's sealed value, copied over Bob's row of the same name.
    raw.exec(
        "UPDATE secrets SET \
           nonce = (SELECT nonce FROM secrets WHERE owner_id = 'alice' AND name = 'API_KEY'), \
           ciphertext = (SELECT ciphertext FROM secrets WHERE owner_id = 'alice' AND name = 'API_KEY') \
         WHERE owner_id = 'bob' AND name = 'API_KEY'",
    )
    .await;
    let r = credentials(&app, Some(&bob_token)).await;
    assert_denied(&r, "copied ciphertext");
    assert!(!r.text.contains("alice-only-value") && !r.text.contains("bob-own-value"));

    // Copying Alice's wrapped data key too does not help: it is bound to Alice.
    raw.exec(
        "UPDATE owner_keys SET \
           nonce = (SELECT nonce FROM owner_keys WHERE owner_id = 'alice'), \
           wrapped = (SELECT wrapped FROM owner_keys WHERE owner_id = 'alice'), \
           key_version = (SELECT key_version FROM owner_keys WHERE owner_id = 'alice') \
         WHERE owner_id = 'bob'",
    )
    .await;
    assert_denied(
        &credentials(&app, Some(&bob_token)).await,
        "copied data key and ciphertext",
    );

    // A copy under another name of Alice's own fails too: the name is bound.
    raw.exec(
        "INSERT INTO secrets (owner_id, name, nonce, ciphertext, key_version, created_at, updated_at) \
         SELECT owner_id, 'RENAMED', nonce, ciphertext, key_version, created_at, updated_at \
         FROM secrets WHERE owner_id = 'alice' AND name = 'API_KEY'",
    )
    .await;
    let (_, renamed) = resource(&app, &alice, &["RENAMED"]).await;
    assert_denied(
        &credentials(&app, Some(&renamed)).await,
        "renamed ciphertext",
    );

    // Alice's own secret is untouched.
    let a = credentials(&app, Some(&alice_token)).await;
    assert_eq!(a.body, json!({"secrets": {"API_KEY": "alice-only-value"}}));
    app.stop().await;
}

async fn every_credentials_failure_is_the_same_403(backend: Backend) {
    let app = app(backend).await;
    let owner = app.owner_token.clone();
    let carol = app.create_user("carol", "member").await;
    let dave = app.create_user("dave", "member").await;
    let erin = app.create_user("erin", "member").await;
    for (token, name) in [
        (&carol, "S1"),
        (&carol, "S2"),
        (&carol, "CORRUPT"),
        (&carol, "OTHER"),
    ] {
        put_secret(&app, token, name, &format!("value-of-{name}")).await;
    }
    put_secret(&app, &dave, "S1", "dave-s1").await;
    put_secret(&app, &erin, "S1", "erin-s1").await;
    let (_, ok) = resource(&app, &carol, &["S1"]).await;
    let (_, missing) = resource(&app, &carol, &["S1", "S2"]).await;
    let (revoked_id, revoked) = resource(&app, &carol, &["S1"]).await;
    let (_, corrupt) = resource(&app, &carol, &["CORRUPT"]).await;
    let (_, suspended) = resource(&app, &dave, &["S1"]).await;
    let (_, deleted) = resource(&app, &erin, &["S1"]).await;
    let (_, no_grants) = resource(&app, &carol, &[]).await;

    // Each works before anything happens (the resolved owner is now cached).
    for token in [&ok, &missing, &revoked, &corrupt, &suspended, &deleted] {
        assert_eq!(credentials(&app, Some(token)).await.status, 200);
    }
    assert_eq!(
        credentials(&app, Some(&no_grants)).await.body,
        json!({"secrets": {}})
    );

    assert_eq!(delete(&app, "/v1/me/secrets/S2", &carol).await.status, 204);
    assert_eq!(
        delete(&app, &format!("/v1/me/resources/{revoked_id}"), &carol)
            .await
            .status,
        204
    );
    let listed = app
        .get(&format!("/v1/me/resources/{revoked_id}"), &carol)
        .await;
    assert!(listed.body["revoked_at"].is_string());
    let suspend = put(
        &app,
        "/v1/admin/users/dave/status",
        &owner,
        json!({"status": "suspended"}),
    )
    .await;
    assert_eq!(suspend.status, 200, "{}", suspend.text);
    assert_eq!(
        delete(&app, "/v1/admin/users/erin", &owner).await.status,
        204
    );
    let raw = Raw::open(backend, &app.database_url).await;
    raw.exec(
        "UPDATE secrets SET nonce = (SELECT nonce FROM secrets WHERE owner_id = 'carol' AND name = 'OTHER') \
         WHERE owner_id = 'carol' AND name = 'CORRUPT'",
    )
    .await;

    let mut rng = |buf: &mut [u8]| buf.fill(0x5a);
    let unknown = TokenSecret::generate(TokenFamily::Resource, &mut rng);
    let mut bad_checksum = ok.clone();
    bad_checksum.pop();
    bad_checksum.push(if ok.ends_with('A') { 'B' } else { 'A' });
    // No bearer token at all is the 401 of a missing credential (nothing was guessed);
    // every token presented, whatever is wrong with it, gets the one 403.
    for (what, token) in [("no token", None), ("an empty bearer token", Some(""))] {
        let anonymous = credentials(&app, token).await;
        assert_eq!(anonymous.status, 401, "{what}: {}", anonymous.text);
        assert!(anonymous.headers.get("www-authenticate").is_some());
    }
    let cases: Vec<(&str, Option<&str>)> = vec![
        ("garbage", Some("nope")),
        ("bad checksum", Some(&bad_checksum)),
        ("unknown well-formed resource token", Some(unknown.expose())),
        ("a user token", Some(&carol)),
        ("the owner's manage token", Some(&owner)),
        ("revoked resource", Some(&revoked)),
        ("owner suspended", Some(&suspended)),
        ("owner deleted", Some(&deleted)),
        ("granted secret missing", Some(&missing)),
        ("secret does not decrypt", Some(&corrupt)),
    ];
    for (what, token) in cases {
        assert_denied(&credentials(&app, token).await, what);
    }
    let basic = app
        .http
        .get(format!("{}/v1/resource/credentials", app.base))
        .header("authorization", format!("Basic {ok}"))
        .send()
        .await
        .unwrap();
    // Another scheme carries no bearer token: the 401 of a missing credential.
    assert_eq!(basic.status(), 401);

    // Resuming the owner brings the resource back: the denial was not a stale cache.
    let resume = put(
        &app,
        "/v1/admin/users/dave/status",
        &owner,
        json!({"status": "active"}),
    )
    .await;
    assert_eq!(resume.status, 200);
    assert_eq!(credentials(&app, Some(&suspended)).await.status, 200);

    // A store error is the same denial (never 503).
    assert_eq!(credentials(&app, Some(&ok)).await.status, 200);
    raw.exec("ALTER TABLE secrets RENAME TO secrets_gone").await;
    assert_denied(&credentials(&app, Some(&ok)).await, "store error");
    app.stop().await;
}

async fn without_a_master_key_secrets_and_webhooks_are_off_and_nothing_else(backend: Backend) {
    let app = spawn_app_with(backend, |c| c.service.allow_private_webhooks = true).await;
    let owner = app.owner_token.clone();
    let secrets_off = |r: &Reply, what: &str| {
        assert_eq!(r.status, 503, "{what}: {}", r.text);
        assert_eq!(r.body["error"]["code"], "secrets_disabled", "{what}");
    };
    secrets_off(&app.get("/v1/me/secrets", &owner).await, "list secrets");
    secrets_off(
        &put(&app, "/v1/me/secrets/K", &owner, json!({"value": "v"})).await,
        "put secret",
    );
    secrets_off(
        &delete(&app, "/v1/me/secrets/K", &owner).await,
        "delete secret",
    );
    secrets_off(&app.get("/v1/me/resources", &owner).await, "list resources");
    secrets_off(
        &app.post(
            "/v1/me/resources",
            &owner,
            json!({"kind": "job", "grants": []}),
        )
        .await,
        "create resource",
    );
    secrets_off(
        &app.get("/v1/me/resources/res_00000000000000000000", &owner)
            .await,
        "get resource",
    );
    let webhook = put(
        &app,
        "/v1/me/webhook",
        &owner,
        json!({"url": "https://8.8.8.8/"}),
    )
    .await;
    assert_eq!(webhook.status, 503);
    assert_eq!(webhook.body["error"]["code"], "webhooks_disabled");
    // The resource route keeps its one answer.
    assert_denied(
        &credentials(&app, Some("own_r_whatever")).await,
        "secrets off",
    );
    // Authentication still comes first.
    assert_eq!(app.get("/v1/me/secrets", "nope").await.status, 401);
    // Everything else works.
    assert_eq!(app.get("/v1/me", &owner).await.status, 200);
    assert_eq!(app.get("/v1/me/tokens", &owner).await.status, 200);
    assert_eq!(app.get("/v1/me/audit", &owner).await.status, 200);
    assert_eq!(
        app.post("/v1/admin/users", &owner, json!({"user_id": "zed"}))
            .await
            .status,
        201
    );
    app.stop().await;
}

async fn endpoint_urls_must_be_public_https(backend: Backend) {
    // The default policy: public HTTPS destinations only. The delivery worker is off, so
    // the public address accepted below is never contacted.
    let app = spawn_app_with(backend, |c| {
        c.secrets.master_key = Some(MASTER);
        c.service.webhooks.worker = false;
    })
    .await;
    let owner = app.owner_token.clone();
    for bad in [
        "http://8.8.8.8/hook",
        "https://127.0.0.1/hook",
        "https://[::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        // IPv4-mapped and NAT64 forms of private addresses.
        "https://[::ffff:10.0.0.1]/hook",
        "https://[::ffff:a9fe:a9fe]/latest/meta-data",
        "https://[64:ff9b::a00:1]/hook",
        "https://[64:ff9b::7f00:1]/hook",
        "https://[64:ff9b::c0a8:101]/hook",
        "https://10.0.0.1/hook",
        "https://172.16.5.4/hook",
        "https://192.168.1.1/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://100.64.0.1/hook",
        "https://0.0.0.0/hook",
        "https://localhost/hook",
        "https://user:secret@8.8.8.8/hook",
        "not a url",
        "ftp://8.8.8.8/",
    ] {
        let r = put(&app, "/v1/me/webhook", &owner, json!({"url": bad})).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
        assert_eq!(r.body["error"]["code"], "invalid_request");
    }
    // A name that does not exist is refused with the one message a name resolving to an
    // internal address gets, so registration does not tell which internal names exist.
    let r = put(
        &app,
        "/v1/me/webhook",
        &owner,
        json!({"url": "https://no-such-host.invalid/hook"}),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(
        r.body["error"]["message"],
        "invalid url: the host does not resolve to public addresses only"
    );
    assert_eq!(app.get("/v1/me/webhook", &owner).await.status, 404);
    let ok = put(
        &app,
        "/v1/me/webhook",
        &owner,
        json!({"url": "https://8.8.8.8:8443/in"}),
    )
    .await;
    assert_eq!(ok.status, 201, "a public address: {}", ok.text);
    assert_eq!(delete(&app, "/v1/me/webhook", &owner).await.status, 204);
    app.stop().await;
}

async fn deliveries_verify_with_core_and_independent_receivers(backend: Backend) {
    let app = app(backend).await;
    let owner = app.owner_token.clone();
    let (receiver, url) = Receiver::start().await;

    let first_secret = set_webhook(&app, &owner, &url, 201).await;
    let view = app.get("/v1/me/webhook", &owner).await;
    assert_eq!(view.status, 200);
    assert_eq!(view.body["url"], url.as_str());
    assert!(!view.text.contains(&first_secret));
    // Setting it again answers 200 with a new secret.
    let secret = set_webhook(&app, &owner, &url, 200).await;
    assert_ne!(secret, first_secret);

    put_secret(&app, &owner, "DELIVERED", "the-delivered-value").await;
    let m = receiver.delivered("secret.put", "DELIVERED").await;
    assert_verifies(&secret, &m);
    assert_rejected(&first_secret, &m);
    assert!(m.id.starts_with("msg_"));
    let body = m.json();
    assert_eq!(body["data"]["owner_id"], "owner");
    assert_eq!(body["data"]["action"], "secret.put");
    assert!(body["timestamp"].is_string());
    assert!(!String::from_utf8_lossy(&m.body).contains("the-delivered-value"));

    // Every message received verifies, in both schemes, with every verifier.
    let token = app
        .post(
            "/v1/me/tokens",
            &owner,
            json!({"kinds": ["api"], "label": "ci"}),
        )
        .await;
    let token_id = token.body["id"].as_str().unwrap().to_owned();
    let m = receiver.delivered("token.issued", &token_id).await;
    assert_verifies(&secret, &m);
    // (A message of the first endpoint may have gone out before it was replaced.)
    for m in receiver.all() {
        if core_verifies(&first_secret, &m) {
            assert_verifies(&first_secret, &m);
        } else {
            assert_verifies(&secret, &m);
        }
    }
    // The message ids are unique.
    let mut ids: Vec<String> = receiver.all().into_iter().map(|m| m.id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), receiver.all().len());

    // The delivery log shows them delivered.
    let d = delivery_in_state(&app, &owner, "secret.put", "DELIVERED", "delivered").await;
    assert_eq!(d["attempts"], 1);
    assert_eq!(d["last_result"], "HTTP 200");

    // Another owner's events never reach this endpoint.
    let other = app.create_user("other", "member").await;
    put_secret(&app, &other, "OTHERS", "others-value").await;
    put_secret(&app, &owner, "AFTER", "after-value").await;
    receiver.delivered("secret.put", "AFTER").await;
    assert!(
        receiver
            .all()
            .iter()
            .all(|m| m.json()["data"]["owner_id"] == "owner"),
        "only the owner's events"
    );

    // Removing the endpoint stops deliveries.
    assert_eq!(delete(&app, "/v1/me/webhook", &owner).await.status, 204);
    assert_eq!(delete(&app, "/v1/me/webhook", &owner).await.status, 404);
    assert_eq!(app.get("/v1/me/webhook", &owner).await.status, 404);
    let before = receiver.all().len();
    put_secret(&app, &owner, "GONE", "gone-value").await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(receiver.all().len(), before, "nothing after removal");
    app.stop().await;
}

async fn rotation_signs_with_both_secrets_during_grace_then_only_the_new(backend: Backend) {
    let app = app(backend).await;
    let owner = app.owner_token.clone();
    let (receiver, url) = Receiver::start().await;
    let old = set_webhook(&app, &owner, &url, 201).await;

    let rotated = app
        .post(
            "/v1/me/webhook/rotate-secret",
            &owner,
            json!({"grace_seconds": 3600}),
        )
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    let new = rotated.body["secret"].as_str().unwrap().to_owned();
    assert!(new.starts_with("whsec_") && new != old);
    assert!(rotated.body["previous_secret_expires_at"].is_string());
    let view = app.get("/v1/me/webhook", &owner).await;
    assert!(view.body["previous_secret_expires_at"].is_string());
    assert!(!view.text.contains(&new) && !view.text.contains(&old));

    put_secret(&app, &owner, "DURING", "v").await;
    let during = receiver.delivered("secret.put", "DURING").await;
    assert_eq!(during.signature.split(' ').count(), 2, "two signatures");
    assert_eq!(during.ownership_signature.matches("v1=").count(), 2);
    assert_verifies(&old, &during);
    assert_verifies(&new, &during);

    // A short grace that has run out: only the newest secret signs.
    let short = app
        .post(
            "/v1/me/webhook/rotate-secret",
            &owner,
            json!({"grace_seconds": 1}),
        )
        .await;
    assert_eq!(short.status, 200);
    let newest = short.body["secret"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    put_secret(&app, &owner, "AFTER_GRACE", "v").await;
    let after = receiver.delivered("secret.put", "AFTER_GRACE").await;
    assert_eq!(after.signature.split(' ').count(), 1, "one signature");
    assert_verifies(&newest, &after);
    assert_rejected(&new, &after);
    assert_rejected(&old, &after);

    // No grace: the previous secret stops at once.
    let immediate = app
        .post("/v1/me/webhook/rotate-secret", &owner, json!({}))
        .await;
    assert_eq!(immediate.status, 200);
    assert!(immediate.body.get("previous_secret_expires_at").is_none());
    let last = immediate.body["secret"].as_str().unwrap().to_owned();
    put_secret(&app, &owner, "IMMEDIATE", "v").await;
    let m = receiver.delivered("secret.put", "IMMEDIATE").await;
    assert_verifies(&last, &m);
    assert_rejected(&newest, &m);

    let too_long = app
        .post(
            "/v1/me/webhook/rotate-secret",
            &owner,
            json!({"grace_seconds": 31 * 24 * 3600}),
        )
        .await;
    assert_eq!(too_long.status, 400);
    // Without an endpoint there is nothing to rotate.
    let other = app.create_user("other", "member").await;
    assert_eq!(
        app.post("/v1/me/webhook/rotate-secret", &other, json!({}))
            .await
            .status,
        404
    );
    app.stop().await;
}

async fn a_failed_delivery_is_retried_with_backoff_until_it_succeeds_or_gives_up(backend: Backend) {
    let app = app(backend).await;
    let owner = app.owner_token.clone();
    let (receiver, url) = Receiver::start().await;
    let secret = set_webhook(&app, &owner, &url, 201).await;
    receiver.delivered("webhook.set", "owner").await;

    receiver.fail_next.store(2, Ordering::SeqCst);
    put_secret(&app, &owner, "RETRIED", "v").await;
    let ok = receiver.delivered("secret.put", "RETRIED").await;
    let tries: Vec<Received> = receiver
        .all()
        .into_iter()
        .filter(|m| m.target() == "RETRIED")
        .collect();
    assert_eq!(
        tries.iter().map(|m| m.answered).collect::<Vec<_>>(),
        [500, 500, 200]
    );
    assert!(
        tries.iter().all(|m| m.id == ok.id),
        "one message id across retries"
    );
    for m in &tries {
        assert_verifies(&secret, m);
    }
    let d = delivery_in_state(&app, &owner, "secret.put", "RETRIED", "delivered").await;
    assert_eq!(d["attempts"], 3);
    assert_eq!(d["id"], ok.id.as_str());

    // A receiver that keeps failing: the delivery gives up after the last attempt.
    receiver.status.store(503, Ordering::SeqCst);
    put_secret(&app, &owner, "GIVES_UP", "v").await;
    let d = delivery_in_state(&app, &owner, "secret.put", "GIVES_UP", "failed").await;
    assert_eq!(d["attempts"], 4);
    assert_eq!(d["last_result"], "HTTP 503");
    let sent = receiver
        .all()
        .into_iter()
        .filter(|m| m.target() == "GIVES_UP")
        .count();
    assert_eq!(sent, 4);

    // A redirect is not followed.
    receiver.status.store(302, Ordering::SeqCst);
    put_secret(&app, &owner, "REDIRECTED", "v").await;
    let d = delivery_in_state(&app, &owner, "secret.put", "REDIRECTED", "failed").await;
    assert!(
        d["last_result"]
            .as_str()
            .unwrap()
            .contains("redirects are not followed")
    );
    app.stop().await;
}

/// A server started and stopped by the test, on a location it keeps.
struct Server {
    base: String,
    stop: oneshot::Sender<()>,
    handle: tokio::task::JoinHandle<Result<(), String>>,
}

impl Server {
    async fn start(
        location: &Location,
        tweak: impl FnOnce(&mut ServerConfig),
    ) -> (Self, Option<String>) {
        let mut config = ServerConfig::new(location.clone()).unwrap();
        fast_webhooks(&mut config);
        tweak(&mut config);
        let prepared = server::prepare(&config).await.unwrap();
        let token = prepared
            .first_owner_token
            .as_ref()
            .map(|(_, t)| t.expose().to_owned());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(server::serve(prepared, listener, async move {
            let _ = stopped.await;
        }));
        (Server { base, stop, handle }, token)
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.handle.await.unwrap().unwrap();
    }

    /// Status and body text.
    async fn request(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, String) {
        let client = reqwest::Client::new();
        let mut req = client
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        (res.status().as_u16(), res.text().await.unwrap())
    }

    /// A request that must succeed; its JSON body.
    async fn call(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> Value {
        let (status, text) = self.request(method, path, token, body).await;
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {text}"
        );
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    async fn deliveries(&self, token: &str) -> Vec<Value> {
        self.call("GET", "/v1/me/webhook/deliveries", token, None)
            .await["deliveries"]
            .as_array()
            .unwrap()
            .clone()
    }
}

/// A fresh location that outlives server restarts (and the directory that holds it).
fn fresh_location(backend: Backend) -> (Location, Option<tempfile::TempDir>) {
    match backend {
        Backend::Libsql => {
            let dir = tempfile::tempdir().unwrap();
            (
                Location::LibsqlFile(dir.path().join("ownership.db")),
                Some(dir),
            )
        }
        Backend::Postgres => (
            Location::Postgres(PgCluster::shared().unwrap().fresh_database_url().unwrap()),
            None,
        ),
    }
}

async fn a_restart_between_enqueue_and_delivery_loses_nothing(backend: Backend) {
    let (location, _dir) = fresh_location(backend);
    let (receiver, url) = Receiver::start().await;
    receiver.status.store(500, Ordering::SeqCst);

    // First run: the receiver is failing, so the delivery stays queued.
    let (a, token) = Server::start(&location, |_| {}).await;
    let owner = token.unwrap();
    let put_hook = a
        .call("PUT", "/v1/me/webhook", &owner, Some(json!({"url": url})))
        .await;
    let secret = put_hook["secret"].as_str().unwrap().to_owned();
    a.call(
        "PUT",
        "/v1/me/secrets/QUEUED",
        &owner,
        Some(json!({"value": "v"})),
    )
    .await;
    eventually("the queued delivery to fail once", async || {
        a.deliveries(&owner).await.into_iter().find(|d| {
            d["payload"]["data"]["target"] == "QUEUED"
                && d["state"] == "pending"
                && d["attempts"].as_u64() >= Some(1)
        })
    })
    .await;
    a.stop().await;

    // Second run: a worker that polls once an hour, so an event made now is not queued
    // before the server stops.
    let (b, _) = Server::start(&location, |c| {
        c.service.webhooks.poll_interval = Duration::from_secs(3600);
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    b.call(
        "PUT",
        "/v1/me/secrets/UNQUEUED",
        &owner,
        Some(json!({"value": "v"})),
    )
    .await;
    let queued: Vec<Value> = b.deliveries(&owner).await;
    assert!(
        queued
            .iter()
            .all(|d| d["payload"]["data"]["target"] != "UNQUEUED"),
        "not queued before the stop"
    );
    b.stop().await;

    // Third run, receiver healthy: both arrive, each once, signed with the secret.
    receiver.status.store(200, Ordering::SeqCst);
    let (c, _) = Server::start(&location, |_| {}).await;
    let queued = receiver.delivered("secret.put", "QUEUED").await;
    let unqueued = receiver.delivered("secret.put", "UNQUEUED").await;
    assert_verifies(&secret, &queued);
    assert_verifies(&secret, &unqueued);
    for target in ["QUEUED", "UNQUEUED"] {
        eventually(&format!("{target} delivered"), async || {
            c.deliveries(&owner)
                .await
                .into_iter()
                .find(|d| d["payload"]["data"]["target"] == target && d["state"] == "delivered")
        })
        .await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ok_count = |target: &str| {
        receiver
            .all()
            .iter()
            .filter(|m| m.target() == target && m.answered == 200)
            .count()
    };
    assert_eq!(ok_count("QUEUED"), 1);
    assert_eq!(ok_count("UNQUEUED"), 1);
    // Every event after the endpoint was set went out exactly once; nothing before it.
    let delivered: Vec<String> = c
        .deliveries(&owner)
        .await
        .iter()
        .map(|d| d["event_type"].as_str().unwrap().to_owned())
        .collect();
    assert!(delivered.contains(&"webhook.set".to_owned()));
    assert!(!delivered.contains(&"owner.bootstrapped".to_owned()));
    c.stop().await;
}

async fn no_secret_or_signing_key_appears_in_audit_or_listings(backend: Backend) {
    let app = app(backend).await;
    let owner = app.owner_token.clone();
    let (receiver, url) = Receiver::start().await;
    let values = ["s3cr3t-value-alpha", "s3cr3t-value-beta"];
    put_secret(&app, &owner, "ALPHA", values[0]).await;
    put_secret(&app, &owner, "BETA", values[1]).await;
    let (res_id, res_token) = resource(&app, &owner, &["ALPHA", "BETA"]).await;
    let hook_secret = set_webhook(&app, &owner, &url, 201).await;
    let rotated = app
        .post(
            "/v1/me/webhook/rotate-secret",
            &owner,
            json!({"grace_seconds": 60}),
        )
        .await;
    let rotated = rotated.body["secret"].as_str().unwrap().to_owned();
    let creds = credentials(&app, Some(&res_token)).await;
    assert_eq!(creds.body["secrets"]["ALPHA"], values[0]);
    put_secret(&app, &owner, "LAST", "last-value").await;
    receiver.delivered("secret.put", "LAST").await;

    let never = [
        values[0],
        values[1],
        "last-value",
        hook_secret.as_str(),
        hook_secret.trim_start_matches("whsec_"),
        rotated.as_str(),
        rotated.trim_start_matches("whsec_"),
        res_token.as_str(),
    ];
    let mut pages = Vec::new();
    for path in [
        "/v1/me/audit".to_owned(),
        "/v1/admin/audit".to_owned(),
        "/v1/me/secrets".to_owned(),
        "/v1/me/resources".to_owned(),
        format!("/v1/me/resources/{res_id}"),
        "/v1/me/webhook".to_owned(),
        "/v1/me/webhook/deliveries".to_owned(),
    ] {
        let r = app.get(&path, &owner).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        pages.push((path, r.text));
    }
    for m in receiver.all() {
        pages.push((
            format!("delivery {}", m.id),
            String::from_utf8(m.body).unwrap(),
        ));
    }
    let audit = &pages[0].1;
    for action in [
        "secret.put",
        "resource.created",
        "webhook.set",
        "webhook.secret_rotated",
    ] {
        assert!(audit.contains(action), "the audit log records {action}");
    }
    for (where_, text) in &pages {
        for secret in never {
            assert!(!text.contains(secret), "{where_} shows a secret");
        }
    }
    app.stop().await;
}

/// The second master key of the rotation test.
const NEW_MASTER: [u8; 32] = [9; 32];

async fn the_master_key_rotates_without_downtime(backend: Backend) {
    use ownership_core::authz::{AdminScope, SystemScope};
    use ownership_core::crypto::{MasterKey, MasterKeys};
    use ownership_core::service;

    let (location, _dir) = fresh_location(backend);
    let database_url = match &location {
        Location::LibsqlFile(p) => p.display().to_string(),
        Location::Postgres(url) => url.clone(),
    };
    let (receiver, url) = Receiver::start().await;

    // Version 1.
    let (v1, token) = Server::start(&location, |_| {}).await;
    let owner = token.unwrap();
    v1.call(
        "PUT",
        "/v1/me/secrets/ROT",
        &owner,
        Some(json!({"value": "rot-value"})),
    )
    .await;
    let res = v1
        .call(
            "POST",
            "/v1/me/resources",
            &owner,
            Some(json!({"kind": "job", "grants": ["ROT"]})),
        )
        .await;
    let res_token = res["token"].as_str().unwrap().to_owned();
    let hook = v1
        .call("PUT", "/v1/me/webhook", &owner, Some(json!({"url": url})))
        .await;
    let hook_secret = hook["secret"].as_str().unwrap().to_owned();
    v1.stop().await;

    // Version 2 with version 1 beside it: everything keeps working while keys move.
    let rotating = |c: &mut ServerConfig| {
        c.secrets.master_key = Some(NEW_MASTER);
        c.secrets.master_key_version = Some(2);
        c.secrets.previous_master_key = Some(MASTER);
    };
    let (both, _) = Server::start(&location, rotating).await;
    let creds = both
        .call("GET", "/v1/resource/credentials", &res_token, None)
        .await;
    assert_eq!(creds, json!({"secrets": {"ROT": "rot-value"}}));
    let newbie = both
        .call(
            "POST",
            "/v1/admin/users",
            &owner,
            Some(json!({"user_id": "newbie"})),
        )
        .await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    both.call(
        "PUT",
        "/v1/me/secrets/NEW",
        &newbie,
        Some(json!({"value": "new-value"})),
    )
    .await;
    let newbie_res = both
        .call(
            "POST",
            "/v1/me/resources",
            &newbie,
            Some(json!({"kind": "job", "grants": ["NEW"]})),
        )
        .await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    both.call(
        "PUT",
        "/v1/me/secrets/DURING_ROTATION",
        &owner,
        Some(json!({"value": "v"})),
    )
    .await;
    let m = receiver.delivered("secret.put", "DURING_ROTATION").await;
    assert_verifies(&hook_secret, &m);

    // The rewrap, as `ownership secrets rewrap` runs it, beside the serving process.
    let keys = MasterKeys::new(
        MasterKey::new(2, NEW_MASTER).unwrap(),
        Some(MasterKey::new(1, MASTER).unwrap()),
    )
    .unwrap();
    let raw = Raw::open(backend, &database_url).await;
    // As `ownership secrets rewrap` does: its writes are linked under the chain key of the
    // configured master keys (a process without it may not append to a keyed chain).
    raw.key_chain(&keys);
    let rewrap = async |raw: &Raw| {
        let mut rng = ownership_store::OsRandom;
        let system = SystemScope::background();
        match raw {
            Raw::Libsql(s) => service::rewrap_data_keys(s, &system, &keys, &mut rng).await,
            Raw::Postgres(s) => service::rewrap_data_keys(s, &system, &keys, &mut rng).await,
        }
        .unwrap()
    };
    let report = rewrap(&raw).await;
    assert_eq!(report.examined, 2);
    assert_eq!(report.rewrapped, 1, "{report:?}");
    assert_eq!(
        report.already_current, 1,
        "newbie's key is already version 2"
    );
    assert!(report.failed.is_empty());
    let again = rewrap(&raw).await;
    assert_eq!((again.rewrapped, again.already_current), (0, 2));
    let creds = both
        .call("GET", "/v1/resource/credentials", &res_token, None)
        .await;
    assert_eq!(creds["secrets"]["ROT"], "rot-value");

    // The webhook signing secret is sealed under version 1 until its owner rotates it.
    let admin = AdminScope::operator("test");
    let stale = async |raw: &Raw| match raw {
        Raw::Libsql(s) => service::stale_webhook_secrets(s, &admin, 2).await.unwrap(),
        Raw::Postgres(s) => service::stale_webhook_secrets(s, &admin, 2).await.unwrap(),
    };
    assert_eq!(stale(&raw).await.len(), 1);
    let rotated = both
        .call(
            "POST",
            "/v1/me/webhook/rotate-secret",
            &owner,
            Some(json!({})),
        )
        .await;
    let hook_secret = rotated["secret"].as_str().unwrap().to_owned();
    assert!(stale(&raw).await.is_empty());
    both.stop().await;

    // Version 2 alone.
    let (v2, _) = Server::start(&location, |c| {
        c.secrets.master_key = Some(NEW_MASTER);
        c.secrets.master_key_version = Some(2);
    })
    .await;
    let creds = v2
        .call("GET", "/v1/resource/credentials", &res_token, None)
        .await;
    assert_eq!(creds["secrets"]["ROT"], "rot-value");
    let creds = v2
        .call("GET", "/v1/resource/credentials", &newbie_res, None)
        .await;
    assert_eq!(creds["secrets"]["NEW"], "new-value");
    v2.call(
        "PUT",
        "/v1/me/secrets/AFTER_ROTATION",
        &owner,
        Some(json!({"value": "v"})),
    )
    .await;
    let m = receiver.delivered("secret.put", "AFTER_ROTATION").await;
    assert_verifies(&hook_secret, &m);
    v2.stop().await;

    // The old key alone no longer opens anything: the keys really moved.
    let (old_only, _) = Server::start(&location, |_| {}).await;
    let (status, text) = old_only
        .request("GET", "/v1/resource/credentials", &res_token, None)
        .await;
    assert_eq!((status, text.as_str()), (403, DENIED));
    old_only.stop().await;
}
