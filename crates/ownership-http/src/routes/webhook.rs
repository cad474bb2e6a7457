//! `/v1/me/webhook`: the caller's one signed-webhook endpoint, its signing secret and its
//! delivery log (docs/webhooks.md; `docs/webhooks.md`). These are account settings: `manage`
//! tokens only.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use ownership_core::Error;
use ownership_core::crypto::MasterKeys;
use ownership_core::service;

use super::{CREATED, page};
use crate::api_doc::*;
use crate::auth::{Manage, RequireKind};
use crate::error::ApiError;
use crate::state::AppState;
use crate::wire::*;

/// The master keys (signing secrets are stored sealed under them), or 503
/// `webhooks_disabled`.
fn webhook_keys(state: &AppState) -> Result<Arc<MasterKeys>, ApiError> {
    state
        .master_keys
        .clone()
        .ok_or_else(|| Error::Disabled("webhooks").into())
}

/// Set the webhook endpoint.
///
/// Sets the caller's endpoint (201 when new, 200 when replaced) with a new signing secret,
/// shown once. Setting it again starts anew: new secret, and only events from now on. The
/// URL must be `https://` on a public host, without user information. Needs a `manage`
/// token and a server with a master key (else 503 `webhooks_disabled`).
#[utoipa::path(put, path = "/v1/me/webhook", tag = "webhooks", request_body = WebhookRequest,
    responses(
        (status = 201, description = "Set (new), with its signing secret (shown once).", body = NewWebhookView),
        (status = 200, description = "Replaced, with a new signing secret (shown once).", body = NewWebhookView),
        JsonBodyErrors, AuthErrors, (status = 403, response = Forbidden)))]
pub async fn put_webhook(
    State(state): State<AppState>,
    caller: RequireKind<Manage>,
    ApiJson(body): ApiJson<WebhookRequest>,
) -> Result<(StatusCode, ApiJson<NewWebhookView>), ApiError> {
    let keys = webhook_keys(&state)?;
    let url =
        ownership_webhooks::check_endpoint_url(&body.url, state.config.allow_private_webhooks)
            .await?;
    let scope = caller.scope();
    let existed = state.store.get_endpoint(&scope).await?.is_some();
    let (endpoint, secret) =
        service::set_webhook(&*state.store, &keys, &scope, &url, &mut state.rng()).await?;
    let status = if existed { StatusCode::OK } else { CREATED };
    Ok((
        status,
        ApiJson(NewWebhookView {
            url: endpoint.url.as_str().to_owned(),
            created_at: ownership_core::audit::rfc3339(endpoint.created_at),
            secret: secret.expose().to_owned(),
        }),
    ))
}

/// Get the webhook endpoint.
///
/// The caller's endpoint, never its signing secret; 404 when none is set. Needs a
/// `manage` token.
#[utoipa::path(get, path = "/v1/me/webhook", tag = "webhooks",
    responses(
        (status = 200, description = "The endpoint.", body = WebhookView),
        AuthErrors, (status = 403, response = Forbidden), (status = 404, response = NotFound)))]
pub async fn get_webhook(
    State(state): State<AppState>,
    caller: RequireKind<Manage>,
) -> Result<ApiJson<WebhookView>, ApiError> {
    webhook_keys(&state)?;
    let endpoint = state
        .store
        .get_endpoint(&caller.scope())
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(ApiJson(WebhookView::from(&endpoint)))
}

/// Remove the webhook endpoint.
///
/// Removes the caller's endpoint; nothing more is sent to it. Needs a `manage` token.
#[utoipa::path(delete, path = "/v1/me/webhook", tag = "webhooks",
    responses(
        (status = 204, description = "Removed."),
        AuthErrors, (status = 403, response = Forbidden), (status = 404, response = NotFound)))]
pub async fn delete_webhook(
    State(state): State<AppState>,
    caller: RequireKind<Manage>,
) -> Result<StatusCode, ApiError> {
    webhook_keys(&state)?;
    state.store.delete_endpoint(&caller.scope()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Rotate the webhook signing secret.
///
/// Gives the endpoint a new signing secret, shown once. With `grace_seconds`, the old
/// secret keeps signing beside the new one until then (receivers switch without losing a
/// message); without, it stops at once. The body is optional. Needs a `manage` token.
#[utoipa::path(post, path = "/v1/me/webhook/rotate-secret", tag = "webhooks",
    request_body(content = Option<RotateWebhookRequest>, description = "Optional: an empty body means no grace."),
    responses(
        (status = 200, description = "The new signing secret (shown once).", body = RotatedWebhookSecret),
        (status = 400, response = BadRequest), (status = 413, response = PayloadTooLarge), AuthErrors,
        (status = 403, response = Forbidden), (status = 404, response = NotFound)))]
pub async fn rotate_webhook_secret(
    State(state): State<AppState>,
    caller: RequireKind<Manage>,
    body: axum::body::Bytes,
) -> Result<ApiJson<RotatedWebhookSecret>, ApiError> {
    let keys = webhook_keys(&state)?;
    // The body is optional: empty means "no grace".
    let body: RotateWebhookRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RotateWebhookRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|_| {
            ApiError::bad_request("invalid body: expected {\"grace_seconds\"?: integer}")
        })?
    };
    let grace = Duration::from_secs(body.grace_seconds.unwrap_or(0));
    let now = state.clock.now();
    let (endpoint, secret) = service::rotate_webhook_secret(
        &*state.store,
        &keys,
        &caller.scope(),
        grace,
        now,
        &mut state.rng(),
    )
    .await?;
    Ok(ApiJson(RotatedWebhookSecret {
        secret: secret.expose().to_owned(),
        previous_secret_expires_at: endpoint
            .previous_secret
            .as_ref()
            .map(|(_, until)| ownership_core::audit::rfc3339(*until)),
    }))
}

/// List webhook deliveries.
///
/// The caller's delivery log, newest first, a page at a time. Needs a `manage` token.
#[utoipa::path(get, path = "/v1/me/webhook/deliveries", tag = "webhooks", params(PageQuery),
    responses(
        (status = 200, description = "A page of deliveries, newest first.", body = DeliveryList),
        (status = 400, response = BadRequest), AuthErrors, (status = 403, response = Forbidden)))]
pub async fn list_deliveries(
    State(state): State<AppState>,
    caller: RequireKind<Manage>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<ApiJson<DeliveryList>, ApiError> {
    webhook_keys(&state)?;
    let p = state
        .store
        .list_deliveries(&caller.scope(), &page(q)?)
        .await?;
    Ok(ApiJson(DeliveryList {
        deliveries: p.items.iter().map(DeliveryView::from).collect(),
        next: p.next,
    }))
}
