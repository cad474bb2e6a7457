//! `/v1/me/resources` (an owner registers resources with grants to their secrets) and
//! `/v1/resource/credentials` (a resource fetches its granted secrets with its token),
//! docs/secrets.md.
//!
//! The credentials route reads only from the resource creator's scope, built from the
//! resolved record; it has exactly two answers: 200 with the secrets, or one fixed 403
//! body for every failure — malformed, unknown or user token, revoked resource, creator
//! suspended or deleted, a granted secret missing or not decrypting, secrets switched off,
//! a store error — so that the answer is no oracle.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse as _;
use ownership_core::Error;
use ownership_core::authz::OwnerScope;
use ownership_core::ids::{ResourceId, SecretName};
use ownership_core::service::{self, ResourceRequest};

use super::CREATED;
use super::secrets::{require_manage_or_api, secret_keys};
use crate::api_doc::*;
use crate::auth::{Authenticated, ClientAddr, bearer_from};
use crate::error::ApiError;
use crate::state::AppState;
use crate::wire::*;

/// The one answer to every refused credentials request.
pub fn credentials_denied() -> ApiError {
    ApiError::forbidden("access denied")
}

/// Register a resource.
///
/// Registers a resource with grants to some of the caller's secrets (each must exist);
/// its resource token is shown once. Needs a `manage` or `api` token and a server with a
/// master key (else 503 `secrets_disabled`). 409 `quota_exceeded` when the caller already
/// holds as many live resource credentials as their quota allows.
#[utoipa::path(post, path = "/v1/me/resources", tag = "secrets", request_body = CreateResourceRequest,
    responses(
        (status = 201, description = "The resource, with its resource token (shown once).", body = NewResourceView),
        JsonBodyErrors, AuthErrors, (status = 403, response = Forbidden), (status = 409, response = Conflict)))]
pub async fn create_resource(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    ApiJson(body): ApiJson<CreateResourceRequest>,
) -> Result<(StatusCode, ApiJson<NewResourceView>), ApiError> {
    require_manage_or_api(&p)?;
    secret_keys(&state)?;
    let grants = body
        .grants
        .iter()
        .map(|g| SecretName::parse(g))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| Error::invalid("grants", "each grant must be a valid secret name"))?;
    let request = ResourceRequest {
        kind: body.kind,
        external_ref: body.external_ref,
        grants,
    };
    let (record, token) = service::create_resource(
        &*state.store,
        &OwnerScope::own(p.identity()),
        request,
        &mut state.rng(),
    )
    .await?;
    Ok((
        CREATED,
        ApiJson(NewResourceView {
            meta: ResourceView::from(&record),
            token: token.expose().to_owned(),
        }),
    ))
}

/// Get a resource.
///
/// One of the caller's resources (404 when absent or another owner's). Needs a `manage` or
/// `api` token.
#[utoipa::path(get, path = "/v1/me/resources/{id}", tag = "secrets", params(ResourceIdPath),
    responses(
        (status = 200, description = "The resource.", body = ResourceView),
        (status = 400, response = BadRequest), AuthErrors,
        (status = 403, response = Forbidden), (status = 404, response = NotFound)))]
pub async fn get_resource(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    ApiPath(ResourceIdPath { id }): ApiPath<ResourceIdPath>,
) -> Result<ApiJson<ResourceView>, ApiError> {
    require_manage_or_api(&p)?;
    secret_keys(&state)?;
    let id = ResourceId::parse(&id).map_err(|_| ApiError::not_found())?;
    let record = state
        .store
        .get_resource(&OwnerScope::own(p.identity()), &id)
        .await?;
    Ok(ApiJson(ResourceView::from(&record)))
}

/// List resources.
///
/// The caller's resources, newest first, never their tokens. Needs a `manage` or `api`
/// token.
#[utoipa::path(get, path = "/v1/me/resources", tag = "secrets",
    responses(
        (status = 200, description = "The caller's resources, newest first.", body = ResourceList),
        AuthErrors, (status = 403, response = Forbidden)))]
pub async fn list_resources(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
) -> Result<ApiJson<ResourceList>, ApiError> {
    require_manage_or_api(&p)?;
    secret_keys(&state)?;
    let list = state
        .store
        .list_resources(&OwnerScope::own(p.identity()))
        .await?;
    Ok(ApiJson(ResourceList {
        resources: list.iter().map(ResourceView::from).collect(),
    }))
}

/// Revoke a resource.
///
/// Revokes one of the caller's resources: its token stops working at once. Needs a
/// `manage` or `api` token.
#[utoipa::path(delete, path = "/v1/me/resources/{id}", tag = "secrets", params(ResourceIdPath),
    responses(
        (status = 204, description = "Revoked."),
        (status = 400, response = BadRequest), AuthErrors,
        (status = 403, response = Forbidden), (status = 404, response = NotFound)))]
pub async fn revoke_resource(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    ApiPath(ResourceIdPath { id }): ApiPath<ResourceIdPath>,
) -> Result<StatusCode, ApiError> {
    require_manage_or_api(&p)?;
    secret_keys(&state)?;
    let id = ResourceId::parse(&id).map_err(|_| ApiError::not_found())?;
    state
        .store
        .revoke_resource(&OwnerScope::own(p.identity()), &id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Why a credentials request was refused, for the server's log only.
fn denial_reason(e: &Error) -> &'static str {
    match e {
        Error::Unauthenticated => "no live resource for this token, or its creator is not active",
        Error::NotFound => "a granted secret or the data key is missing",
        Error::Integrity(_) => "a granted secret does not decrypt",
        Error::Unavailable(_) => "store unavailable",
        Error::Disabled(_) => "secrets are disabled",
        _ => "refused",
    }
}

/// Fetch a resource's credentials.
///
/// A resource fetches its granted secrets with its resource token (`Authorization:
/// Bearer own_r_…`), read from its creator's scope only. A request without a bearer
/// token is 401; every failure of a token presented, whatever its cause, is the same 403;
/// an address refused too often gets 429.
#[utoipa::path(get, path = "/v1/resource/credentials", tag = "secrets",
    responses(
        (status = 200, description = "The granted secrets, by name (sent with `Cache-Control: no-store`).", body = Credentials),
        (status = 401, response = Unauthenticated), (status = 403, response = Forbidden),
        (status = 429, response = RateLimited)))]
pub async fn credentials(
    State(state): State<AppState>,
    ClientAddr(ip): ClientAddr,
    headers: HeaderMap,
) -> Result<axum::response::Response, ApiError> {
    // No bearer token at all is the one 401 (the header is required; nothing was
    // guessed, so nothing is counted). Every refusal of a token presented is the same 403.
    let Some(raw) = bearer_from(&headers) else {
        return Err(ApiError::unauthenticated());
    };
    let outcome = match &state.master_keys {
        Some(keys) => service::resource_credentials(&*state.store, keys, raw).await,
        None => Err(Error::Disabled("secrets")),
    };
    match outcome {
        Ok((record, values)) => {
            tracing::info!(resource = %record.id, owner = %record.owner_id, granted = values.len(), "resource credentials served");
            let body = Credentials {
                secrets: values
                    .iter()
                    .map(|(name, value)| (name.to_string(), value.expose().to_owned()))
                    .collect::<BTreeMap<_, _>>(),
            };
            Ok((
                [(axum::http::header::CACHE_CONTROL, "no-store")],
                ApiJson(body),
            )
                .into_response())
        }
        Err(e) => {
            let reason = denial_reason(&e);
            if matches!(e, Error::Unavailable(_) | Error::Integrity(_)) {
                tracing::warn!(client = ?ip, reason, "resource credentials denied");
            } else {
                tracing::info!(client = ?ip, reason, "resource credentials denied");
            }
            // Every refusal spends from the address's failure budget alike, so the
            // budget tells nothing about why either. Only refusals are counted and
            // refused: a live resource token is served from any address.
            Err(state.auth.failure(ip, credentials_denied()))
        }
    }
}
