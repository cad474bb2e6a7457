use axum::extract::State;
use axum::http::StatusCode;

use crate::state::AppState;
use crate::wire::{ApiJson, Health};

/// Liveness.
///
/// The process is up. Takes no token.
#[utoipa::path(get, path = "/healthz", tag = "health", security(()),
    responses((status = 200, description = "Up.", body = Health)))]
pub async fn healthz() -> ApiJson<Health> {
    ApiJson(Health { status: "ok" })
}

/// Readiness.
///
/// The store answers and, on PostgreSQL, the cache-invalidation listener is connected;
/// else 503. Takes no token.
#[utoipa::path(get, path = "/readyz", tag = "health", security(()),
    responses(
        (status = 200, description = "Ready.", body = Health),
        (status = 503, description = "Not ready: the store does not answer, or the invalidation listener is reconnecting.", body = Health,
            example = json!({"status": "unavailable"}))))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, ApiJson<Health>) {
    let unavailable = (
        StatusCode::SERVICE_UNAVAILABLE,
        ApiJson(Health {
            status: "unavailable",
        }),
    );
    if let Err(e) = state.store.ping().await {
        tracing::warn!(error = %e, "readiness check failed");
        return unavailable;
    }
    if !state.extra_ready() {
        tracing::warn!("readiness check failed: the cache-invalidation listener is reconnecting");
        return unavailable;
    }
    (StatusCode::OK, ApiJson(Health { status: "ok" }))
}
