//! # ownership-http
//!
//! The axum adapter of `ownership`, twice over:
//!
//! - **for your own routes**: the extractors [`auth::Authenticated`], [`auth::RequireKind`]
//!   and [`auth::RequireAdmin`], which need an [`auth::AuthState`] in your router's state;
//! - **as a service**: [`router`], the `/v1` REST routes of the specification with their
//!   OpenAPI document at `/v1/openapi.json`.
//! - **for people**: the web console under `/console` ([`console`]), mounted by [`router`].
//! - **in the background**: the webhook delivery worker lives in its own crate,
//!   `ownership-webhooks`; start its `run_worker` beside the router with
//!   [`AppState::webhook_worker_deps`], as `ownership serve` does.
//!
//! Architecture invariant: this crate knows no database. It speaks the ports of
//! `ownership-core`; the binary (or your app) hands it a store. It is also the only place
//! that knows HTTP status codes and the JSON error body ([`error`]).

mod api_doc;
pub mod auth;
pub mod console;
pub mod drain;
pub mod error;
pub mod github;
pub mod limits;
pub mod metrics;
pub mod passkey_settings;
pub mod proxy;
mod routes;
pub mod state;
pub mod wire;

use axum::Router;
use axum::http::{HeaderName, Request};
use axum::routing::get;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;

use crate::api_doc::ApiDoc;

pub use auth::{AuthState, Authenticated, RequireAdmin, RequireKind};
pub use error::ApiError;
pub use state::{AppState, OidcConfig, ServiceConfig};

/// The OpenAPI document of every route [`router`] serves.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, api) = routes::api().split_for_parts();
    let mut doc = ApiDoc::openapi();
    doc.merge(api);
    api_doc::finish(&mut doc);
    doc
}

/// [`openapi`] as the checked-in `docs/openapi.json` holds it: pretty-printed JSON (two
/// spaces, keys in the document's own order) ending in a newline.
pub fn openapi_json() -> String {
    let mut text = serde_json::to_string_pretty(&openapi())
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    text.push('\n');
    text
}

/// The REST service: every route, `GET /v1/openapi.json`, the web console under
/// `/console` ([`console::router`]; `/` redirects there), and the [`standard_layers`].
pub fn router(state: AppState) -> Router {
    let (api, _) = routes::api().split_for_parts();
    let doc = std::sync::Arc::new(openapi());
    let config = state.config.clone();
    let drain = state.drain.clone();
    let routes = api.merge(console::router(&state)).route(
        "/v1/openapi.json",
        get(move || {
            let doc = std::sync::Arc::clone(&doc);
            async move { axum::Json((*doc).clone()) }
        }),
    );
    service_layers(routes, &config, drain).with_state(state)
}

/// Every layer [`router`] runs its routes under: the [`standard_layers`], then
/// `Cache-Control: no-store`, the HTTP metrics and the in-flight count `drain` keeps for
/// a graceful shutdown. Public so that the benchmarks' baseline runs under exactly the
/// service's stack, and differs from it by the authentication alone.
pub fn service_layers<S>(
    routes: Router<S>,
    config: &ServiceConfig,
    drain: drain::Drain,
) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    standard_layers(routes, config)
        .layer(axum::middleware::map_response(no_store))
        .layer(axum::middleware::from_fn(metrics::track_http))
        .layer(axum::middleware::from_fn(move |req, next| {
            drain::count_in_flight(drain.clone(), req, next)
        }))
}

/// `Cache-Control: no-store` on every response that does not set its own: API answers
/// carry tokens (minting, rotation, new users, resources), signing secrets, pairing codes,
/// secret values and audit details, and none of them may be kept by a browser or a shared
/// cache. One layer for all, so a new route cannot forget it.
async fn no_store(mut response: axum::response::Response) -> axum::response::Response {
    response
        .headers_mut()
        .entry(axum::http::header::CACHE_CONTROL)
        .or_insert(axum::http::HeaderValue::from_static("no-store"));
    response
}

/// The layers every route of [`router`] runs under: body limit, timeout, request ids,
/// tracing that records no credentials, and JSON errors for everything but the console's
/// own HTML pages. Public so that routes of your own (and the benchmarks' baseline) can
/// run under exactly the same stack.
pub fn standard_layers<S>(routes: Router<S>, config: &ServiceConfig) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let request_id = HeaderName::from_static("x-request-id");
    routes
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            config.request_timeout,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(config.body_limit))
        .layer(axum::middleware::from_fn(error::log_errors))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                // Method and path only: never headers, query strings or bodies, which may
                // carry tokens, codes or secrets.
                let id = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-")
                    .to_owned();
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
            }),
        )
        .layer(SetSensitiveRequestHeadersLayer::new([
            axum::http::header::AUTHORIZATION,
            axum::http::header::COOKIE,
        ]))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}
