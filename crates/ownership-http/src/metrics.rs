//! Prometheus metrics: what the service records, and the exposition.
//!
//! Recording goes through the [`metrics`] facade, here and in `ownership-store`
//! (cache, store calls, the invalidation listener); [`install`] puts the Prometheus
//! recorder behind it once per process, and [`router`] serves the text exposition at
//! `GET /metrics`, meant for a listener of its own (`[metrics] listen`), never the public
//! one. Until [`install`] runs, every recording is a no-op.
//!
//! No label carries a value a client chooses or a secret: routes are the router's
//! templates (`/v1/admin/users/{user_id}`, or `unmatched`), methods and outcomes are fixed
//! words, statuses are the three-digit codes. docs/metrics.md lists every series.
//!
//! Install before opening the store: the store makes its handles when it is opened, and a
//! handle made before the recorder exists records nothing.

use std::future::Future;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use ::metrics::{
    Counter, counter, describe_counter, describe_gauge, describe_histogram, histogram,
};
use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use ownership_core::Error;
use ownership_core::authz::Principal;
use ownership_core::ports::TokenStore;
use ownership_core::service::{self, Refusal};

pub use metrics_exporter_prometheus::PrometheusHandle;

/// Buckets of `ownership_http_request_duration_seconds`: 1 ms to 10 s.
pub const HTTP_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Buckets of `ownership_store_operation_duration_seconds`: 100 µs to 5 s.
pub const STORE_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// How often [`run_upkeep`] drains the recorder's histogram buffers.
pub const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The recorder could not be installed.
#[derive(Debug)]
pub struct MetricsError(String);

impl std::fmt::Display for MetricsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot install the metrics recorder: {}", self.0)
    }
}

impl std::error::Error for MetricsError {}

static HANDLE: Mutex<Option<PrometheusHandle>> = Mutex::new(None);

/// Installs the Prometheus recorder as the process's global recorder and returns the
/// handle that renders it. Idempotent: later calls return the same handle. Fails when
/// another recorder was installed first (by something other than this function).
pub fn install() -> Result<PrometheusHandle, MetricsError> {
    let mut slot = HANDLE.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(handle) = &*slot {
        return Ok(handle.clone());
    }
    let err = |e: metrics_exporter_prometheus::BuildError| MetricsError(e.to_string());
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("ownership_http_request_duration_seconds".into()),
            HTTP_BUCKETS,
        )
        .map_err(err)?
        .set_buckets_for_metric(
            Matcher::Full("ownership_store_operation_duration_seconds".into()),
            STORE_BUCKETS,
        )
        .map_err(err)?
        .install_recorder()
        .map_err(err)?;
    describe();
    let auth = AuthOutcome::ALL.map(|o| {
        let c = counter!("ownership_auth_attempts_total", "outcome" => o.as_str());
        // Present from the start, at zero: a rate over a series that does not exist yet
        // is no rate at all.
        c.increment(0);
        c
    });
    let _ = AUTH.set(auth);
    for result in ["created", "existing"] {
        counter!("ownership_pairing_requests_total", "result" => result).increment(0);
    }
    for name in [
        "ownership_pairing_redemptions_total",
        "ownership_pairing_failures_total",
        "ownership_pairing_burns_total",
        "ownership_pairing_codes_burned_total",
    ] {
        counter!(name).increment(0);
    }
    for outcome in ["delivered", "retry", "failed"] {
        counter!("ownership_webhook_deliveries_total", "outcome" => outcome).increment(0);
    }
    *slot = Some(handle.clone());
    Ok(handle)
}

/// HELP text for every series (Prometheus' linter wants one on each).
fn describe() {
    describe_counter!(
        "ownership_http_requests_total",
        "HTTP requests answered, by method, route template and status code."
    );
    describe_histogram!(
        "ownership_http_request_duration_seconds",
        "Time to answer an HTTP request (until the response head), by method and route template."
    );
    describe_counter!(
        "ownership_auth_attempts_total",
        "Bearer-token authentication attempts by outcome."
    );
    describe_counter!(
        "ownership_cache_hits_total",
        "Cached lookups answered from memory, by cache."
    );
    describe_counter!(
        "ownership_cache_misses_total",
        "Cached lookups that read the store, by cache."
    );
    describe_counter!(
        "ownership_cache_evictions_total",
        "Cache entries dropped to stay within capacity, by cache."
    );
    describe_gauge!("ownership_cache_entries", "Entries held, by cache.");
    describe_histogram!(
        "ownership_store_operation_duration_seconds",
        "Store call latency by backend and kind of operation."
    );
    describe_counter!(
        "ownership_store_errors_total",
        "Store calls that failed (store unreachable, failed statement, unreadable row), by backend."
    );
    describe_counter!(
        "ownership_pairing_requests_total",
        "Pairing codes asked for by channel adapters: created anew or the pending one returned."
    );
    describe_counter!(
        "ownership_pairing_redemptions_total",
        "Pairing codes redeemed (self-claim or approval): chat accounts linked."
    );
    describe_counter!(
        "ownership_pairing_failures_total",
        "Pairing redemptions refused for a wrong or expired code."
    );
    describe_counter!(
        "ownership_pairing_burns_total",
        "Times a channel's failure budget ran out and its pending codes were burned."
    );
    describe_counter!(
        "ownership_pairing_codes_burned_total",
        "Pending pairing codes burned when a channel's failure budget ran out."
    );
    describe_counter!(
        "ownership_webhook_deliveries_total",
        "Webhook delivery attempts by outcome (delivered, retry, failed)."
    );
    describe_gauge!(
        "ownership_webhook_due_deliveries",
        "Deliveries the webhook worker found due when it last looked (at most its batch size)."
    );
    describe_gauge!(
        "ownership_webhook_circuits",
        "Webhook endpoints whose circuit breaker is open or half-open in this process, by state."
    );
    describe_counter!(
        "ownership_webhook_circuit_opened_total",
        "Times an endpoint's circuit breaker opened (after repeated failures or a failed trial)."
    );
    describe_counter!(
        "ownership_cache_invalidations_received_total",
        "Cache invalidations received from other processes (PostgreSQL NOTIFY), by kind."
    );
    describe_counter!(
        "ownership_invalidation_listener_reconnects_total",
        "Times the invalidation listener connected again after losing its connection."
    );
    describe_gauge!(
        "ownership_invalidation_listener_up",
        "1 while the invalidation listener is connected, else 0."
    );
}

/// The metrics service: `GET /metrics`, the Prometheus text exposition of `handle`.
/// Serve it on a listener of its own (it has no authentication).
pub fn router(handle: PrometheusHandle) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let handle = handle.clone();
            async move {
                handle.run_upkeep();
                (
                    [(
                        header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    handle.render(),
                )
                    .into_response()
            }
        }),
    )
}

/// Drains the recorder's histogram buffers every [`UPKEEP_EVERY`] until `shutdown`
/// resolves, so memory stays bounded between scrapes. Run it beside [`router`].
pub async fn run_upkeep(handle: PrometheusHandle, shutdown: impl Future<Output = ()>) {
    let upkeep = async {
        let mut tick = tokio::time::interval(UPKEEP_EVERY);
        loop {
            tick.tick().await;
            handle.run_upkeep();
        }
    };
    tokio::select! {
        () = upkeep => {}
        () = shutdown => {}
    }
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Middleware: counts each request by method, route template and status, and records
/// its latency. Add it with `Router::layer` (so it runs after routing and sees the
/// [`MatchedPath`]); a request no route matched is labelled `unmatched`.
pub async fn track_http(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(req.method());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    histogram!("ownership_http_request_duration_seconds", "method" => method, "route" => route.clone())
        .record(started.elapsed().as_secs_f64());
    counter!("ownership_http_requests_total", "method" => method, "route" => route, "status" => status)
        .increment(1);
    response
}

/// How an authentication attempt ended (the `outcome` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthOutcome {
    /// Authenticated and within the identity's rate.
    Ok,
    /// No token presented.
    Missing,
    /// Refused offline: not a well-formed token (or a kind not accepted here).
    Malformed,
    /// Well-formed, but unknown to the store.
    Unknown,
    /// Revoked.
    Revoked,
    /// Expired.
    Expired,
    /// Its owner is suspended.
    Inactive,
    /// Refused by a limiter: the client address is blocked after failures, or the
    /// identity is over its request rate.
    RateLimited,
}

impl AuthOutcome {
    const ALL: [Self; 8] = [
        Self::Ok,
        Self::Missing,
        Self::Malformed,
        Self::Unknown,
        Self::Revoked,
        Self::Expired,
        Self::Inactive,
        Self::RateLimited,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Missing => "missing",
            Self::Malformed => "malformed",
            Self::Unknown => "unknown",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
            Self::Inactive => "inactive",
            Self::RateLimited => "rate_limited",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl From<Refusal> for AuthOutcome {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Malformed => Self::Malformed,
            Refusal::Unknown => Self::Unknown,
            Refusal::Revoked => Self::Revoked,
            Refusal::Expired => Self::Expired,
            Refusal::Inactive => Self::Inactive,
        }
    }
}

/// One counter per outcome, made by [`install`]: counting an attempt is one atomic add.
static AUTH: OnceLock<[Counter; 8]> = OnceLock::new();

/// Counts an authentication attempt.
pub fn auth(outcome: AuthOutcome) {
    if let Some(c) = AUTH.get().and_then(|all| all.get(outcome.index())) {
        c.increment(1);
    }
}

/// [`service::authenticate`], counting each refusal by its reason. Every refusal is still
/// the same [`Error::Unauthenticated`].
pub async fn counted_authenticate<S: TokenStore + ?Sized>(
    store: &S,
    raw: &str,
    foreign_allowed: bool,
) -> Result<Principal, Error> {
    match service::check_token(store, raw, foreign_allowed).await? {
        Ok(p) => Ok(p),
        Err(refusal) => {
            auth(refusal.into());
            Err(Error::Unauthenticated)
        }
    }
}

/// Counts a pairing code asked for: `created` anew, or the pending one returned.
pub fn pairing_requested(created: bool) {
    let result = if created { "created" } else { "existing" };
    counter!("ownership_pairing_requests_total", "result" => result).increment(1);
}

/// Counts a redeemed pairing code (a chat account linked).
pub fn pairing_redeemed() {
    counter!("ownership_pairing_redemptions_total").increment(1);
}

/// Counts a redemption refused for a wrong or expired code.
pub fn pairing_failed() {
    counter!("ownership_pairing_failures_total").increment(1);
}
