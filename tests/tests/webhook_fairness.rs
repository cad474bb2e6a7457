//! Webhook deliveries are served fairly between owners, and a failing endpoint is set
//! aside by its circuit breaker (docs/webhooks.md, "Fairness and the circuit breaker"), on
//! the real server over HTTP, on a fresh libSQL file and a fresh PostgreSQL database.
//!
//! Receivers are real HTTP servers on loopback ports inside the test (the server runs with
//! `allow_private_webhooks`): one accepts connections and never answers (a hanging
//! endpoint), one answers 500 or 200 as the test says and notes when each request came.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use ownership_cli::backend::Location;
use ownership_cli::server::{self, ServerConfig};
use ownership_core::service::RetryPolicy;
use ownership_core::webhook::HELD_BACK;
use ownership_tests::app::{Backend, TestApp, spawn_app_with};
use ownership_tests::logcheck;
use serde_json::{Value, json};

ownership_tests::on_both_backends!(
    a_hanging_endpoint_does_not_delay_another_owner,
    a_failing_endpoint_is_set_aside_then_tried_once_then_served,
);

/// Webhooks on, to loopback, polled often.
fn webhooks_on(config: &mut ServerConfig) {
    config.secrets.master_key = Some([9; 32]);
    config.service.allow_private_webhooks = true;
    config.service.webhooks.poll_interval = Duration::from_millis(50);
}

/// Polls `check` until it yields a value, for at most `within`.
async fn within<T>(within: Duration, what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sets the caller's webhook to `url`.
async fn set_webhook(app: &TestApp, token: &str, url: &str) {
    let r = app
        .call(
            "PUT",
            "/v1/me/webhook",
            Some(token),
            Some(json!({"url": url})),
        )
        .await;
    assert_eq!(r.status, 201, "set webhook: {}", r.text);
}

/// Stores a secret: one `secret.put` event, so one delivery.
async fn put_secret(app: &TestApp, token: &str, name: &str) {
    let r = app
        .call(
            "PUT",
            &format!("/v1/me/secrets/{name}"),
            Some(token),
            Some(json!({"value": "not-a-real-value"})),
        )
        .await;
    assert!(r.status == 201 || r.status == 200, "put secret: {}", r.text);
}

/// The caller's delivery log (at most 100, newest first).
async fn deliveries(app: &TestApp, token: &str) -> Vec<Value> {
    let r = app.get("/v1/me/webhook/deliveries?limit=100", token).await;
    assert_eq!(r.status, 200, "deliveries: {}", r.text);
    r.body["deliveries"].as_array().unwrap().clone()
}

// ---------------------------------------------------------------------------------------
// Receivers

/// Accepts TCP connections and never answers: an endpoint that hangs.
#[derive(Clone, Default)]
struct Hanging {
    accepted: Arc<AtomicUsize>,
    held: Arc<Mutex<Vec<tokio::net::TcpStream>>>,
    /// Released: connections are closed as they come.
    released: Arc<AtomicBool>,
}

impl Hanging {
    async fn start() -> (Self, String) {
        let hanging = Hanging::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let h = hanging.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                h.accepted.fetch_add(1, Ordering::SeqCst);
                if !h.released.load(Ordering::SeqCst) {
                    h.held.lock().unwrap().push(socket);
                }
            }
        });
        (hanging, format!("http://{addr}/hook"))
    }

    /// Closes the connections it holds and those still to come (attempts fail at once,
    /// so the server stops without waiting for them).
    fn release(&self) {
        self.released.store(true, Ordering::SeqCst);
        self.held.lock().unwrap().clear();
    }
}

/// One request a [`Recorder`] got.
#[derive(Debug, Clone)]
struct Request {
    at: Instant,
    id: String,
    target: String,
    answered: u16,
}

/// Answers 500 while `failing`, else 200, and notes every request.
#[derive(Clone, Default)]
struct Recorder {
    got: Arc<Mutex<Vec<Request>>>,
    failing: Arc<AtomicBool>,
}

async fn record(State(r): State<Recorder>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let at = Instant::now();
    let answered = if r.failing.load(Ordering::SeqCst) {
        500
    } else {
        200
    };
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    r.got.lock().unwrap().push(Request {
        at,
        id: headers
            .get("webhook-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        target: json["data"]["target"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        answered,
    });
    StatusCode::from_u16(answered).unwrap()
}

impl Recorder {
    async fn start() -> (Self, String) {
        let recorder = Recorder::default();
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(record))
            .with_state(recorder.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (recorder, format!("http://{addr}/hook"))
    }

    fn all(&self) -> Vec<Request> {
        self.got.lock().unwrap().clone()
    }

    /// Waits for the `n`th request (1-based) and returns it.
    async fn nth(&self, n: usize, wait: Duration) -> Request {
        within(wait, &format!("request {n} at the receiver"), async || {
            self.all().get(n - 1).cloned()
        })
        .await
    }
}

// ---------------------------------------------------------------------------------------
// Scenarios

/// Alice's endpoint accepts connections and never answers; her queue holds 20 deliveries.
/// Bob's delivery still arrives within 5 s (a global FIFO queue sends it after Alice's 20,
/// 8 at a time, each waiting for its timeout). Alice's endpoint sees at most
/// `concurrency_per_owner` (2) connections meanwhile.
async fn a_hanging_endpoint_does_not_delay_another_owner(backend: Backend) {
    let app = spawn_app_with(backend, hanging_allowed).await;
    a_hanging_owner_and_another(&app, 1).await;
    app.stop().await;
}

/// The same with two server processes on one PostgreSQL database, both running the
/// worker: fairness holds in each, so Alice's endpoint sees at most 2 connections per
/// process and Bob's delivery still arrives within 5 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_database_stay_fair() {
    let app = spawn_app_with(Backend::Postgres, hanging_allowed).await;
    let mut config = ServerConfig::new(Location::Postgres(app.database_url.clone())).unwrap();
    hanging_allowed(&mut config);
    let prepared = server::prepare(&config)
        .await
        .expect("second process prepares");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let second = tokio::spawn(server::serve(prepared, listener, async move {
        let _ = stopped.await;
    }));
    a_hanging_owner_and_another(&app, 2).await;
    let _ = stop.send(());
    second.await.unwrap().unwrap();
    app.stop().await;
}

/// Webhooks on, with a request timeout longer than the test: no hanging attempt times
/// out and frees its slot.
fn hanging_allowed(config: &mut ServerConfig) {
    webhooks_on(config);
    config.service.webhooks.request_timeout = Duration::from_secs(60);
}

/// Alice's endpoint hangs with 20 deliveries queued; Bob's delivery arrives within 5 s,
/// and Alice's endpoint holds at most 2 connections per worker (`processes`).
async fn a_hanging_owner_and_another(app: &TestApp, processes: usize) {
    let alice = app.create_user("alice", "member").await;
    let bob = app.create_user("bob", "member").await;
    let (hanging, hanging_url) = Hanging::start().await;
    let (recorder, recorder_url) = Recorder::start().await;
    set_webhook(app, &alice, &hanging_url).await;
    set_webhook(app, &bob, &recorder_url).await;
    for i in 0..20 {
        put_secret(app, &alice, &format!("ALICE_{i}")).await;
    }
    within(
        Duration::from_secs(15),
        "alice's endpoint is hanging",
        async || (hanging.accepted.load(Ordering::SeqCst) >= 1).then_some(()),
    )
    .await;
    within(
        Duration::from_secs(15),
        "alice's 20 deliveries queued",
        async || {
            let log = deliveries(app, &alice).await;
            (log.iter().filter(|d| d["state"] == "pending").count() >= 20).then_some(())
        },
    )
    .await;

    put_secret(app, &bob, "BOB_SECRET").await;
    let got = within(Duration::from_secs(5), "bob's delivery", async || {
        recorder
            .all()
            .into_iter()
            .find(|r| r.target == "BOB_SECRET" && r.answered == 200)
    })
    .await;
    assert!(!got.id.is_empty());
    let connections = hanging.accepted.load(Ordering::SeqCst);
    assert!(
        connections <= 2 * processes,
        "alice's hanging endpoint holds {connections} connections, more than her share of 2 \
         per process ({processes})"
    );
    hanging.release();
}

/// Alice's endpoint answers 500. After 3 failures in a row (the threshold) her circuit
/// opens: no request reaches the endpoint for the 2 s cool-down, although her retries are
/// due every 200 ms. Then one trial goes (half-open); it fails and the circuit opens again
/// for 2 s. Meanwhile the delivery log shows the held deliveries as pending with
/// `last_result` saying why. The endpoint recovers, the next trial succeeds, the circuit closes and every
/// delivery arrives: none was failed, dropped, or charged an attempt while it waited.
async fn a_failing_endpoint_is_set_aside_then_tried_once_then_served(backend: Backend) {
    let handle = ownership_http::metrics::install().expect("metrics recorder");
    let cool_down = Duration::from_secs(2);
    let app = spawn_app_with(backend, |c| {
        webhooks_on(c);
        c.service.webhooks.per_owner = 1;
        c.service.webhooks.breaker.threshold = 3;
        c.service.webhooks.breaker.cool_down = cool_down;
        c.service.webhooks.retry = RetryPolicy {
            max_attempts: 10,
            base: Duration::from_millis(200),
            max_delay: Duration::from_millis(200),
        };
    })
    .await;
    let alice = app.create_user("alice", "member").await;
    let (recorder, url) = Recorder::start().await;
    recorder.failing.store(true, Ordering::SeqCst);
    set_webhook(&app, &alice, &url).await;
    for i in 0..5 {
        put_secret(&app, &alice, &format!("ALICE_{i}")).await;
    }
    let wait = Duration::from_secs(15);
    let third = recorder.nth(3, wait).await;
    within(wait, "the circuit opened (warn log)", async || {
        let log = logcheck::capture().text_since(app.log_from);
        log.lines()
            .any(|l| {
                l.contains("WARN") && l.contains("webhook circuit opened") && l.contains("alice")
            })
            .then_some(())
    })
    .await;
    let held = within(wait, "a delivery shown as held back", async || {
        deliveries(&app, &alice)
            .await
            .into_iter()
            .find(|d| d["last_result"] == HELD_BACK)
    })
    .await;
    assert_eq!(held["state"], "pending", "{held}");
    let opened = handle.render();
    assert!(
        opened
            .lines()
            .any(|l| l.starts_with("ownership_webhook_circuit_opened_total ")),
        "the opening is counted: {opened}"
    );
    let trial = recorder.nth(4, wait).await;
    recorder.failing.store(false, Ordering::SeqCst);
    assert!(
        trial.at >= third.at + cool_down,
        "a request reached the endpoint {:?} after the circuit opened, within the cool-down",
        trial.at - third.at
    );
    let second_trial = recorder.nth(5, wait).await;
    assert!(
        second_trial.at >= trial.at + cool_down,
        "the failed trial opened the circuit again: next request {:?} after it",
        second_trial.at - trial.at
    );
    assert_eq!(second_trial.answered, 200);

    let log = within(wait, "every delivery delivered", async || {
        let log = deliveries(&app, &alice).await;
        (log.len() >= 6 && log.iter().all(|d| d["state"] == "delivered")).then_some(log)
    })
    .await;
    let requests = recorder.all();
    for d in &log {
        let id = d["id"].as_str().unwrap();
        assert!(
            requests.iter().any(|r| r.id == id && r.answered == 200),
            "delivery {id} never arrived"
        );
    }
    let attempts: u64 = log.iter().map(|d| d["attempts"].as_u64().unwrap()).sum();
    assert_eq!(
        attempts,
        requests.len() as u64,
        "every counted attempt is a request the endpoint got: waiting charged none"
    );
    assert!(
        requests[..4].iter().all(|r| r.answered == 500),
        "{requests:?}"
    );
    let text = logcheck::capture().text_since(app.log_from);
    assert!(
        text.contains("webhook circuit closed"),
        "the closing is logged"
    );
    app.stop().await;
}
