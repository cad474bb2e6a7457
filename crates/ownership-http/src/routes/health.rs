use axum::extract::State;
use axum::http::StatusCode;

use crate::state::AppState;
use crate::wire::{ApiJson, Health};

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "health", security(()), responses((status = 200, body = Health)))]
pub async fn healthz() -> ApiJson<Health> {
    ApiJson(Health { status: "ok" })
}

/// The store answers (else 503).
#[utoipa::path(get, path = "/readyz", tag = "health", security(()), responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, ApiJson<Health>) {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, ApiJson(Health { status: "ok" })),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                ApiJson(Health {
                    status: "unavailable",
                }),
            )
        }
    }
}
