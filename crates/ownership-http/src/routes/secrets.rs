//! `/v1/me/secrets`: the caller's encrypted secrets (docs/secrets.md). Values go in and never come
//! out here: listings and answers carry names and times only. Values are read back only
//! by the caller's resources, through `/v1/resource/credentials`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use ownership_core::authz::{OwnerScope, Principal};
use ownership_core::crypto::MasterKeys;
use ownership_core::ids::SecretName;
use ownership_core::service;
use ownership_core::{Error, TokenKind};

use super::CREATED;
use crate::api_doc::*;
use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::state::AppState;
use crate::wire::*;

/// Secret and resource routes take a `manage` token or an `api` token (the owner's
/// programs register resources and store their secrets).
pub(crate) fn require_manage_or_api(p: &Principal) -> Result<(), ApiError> {
    if p.has_kind(&TokenKind::Manage) || p.has_kind(&TokenKind::Api) {
        Ok(())
    } else {
        Err(ApiError::forbidden("token kind `manage` or `api` required"))
    }
}

/// The master keys, or 503 `secrets_disabled`.
pub(crate) fn secret_keys(state: &AppState) -> Result<Arc<MasterKeys>, ApiError> {
    state
        .master_keys
        .clone()
        .ok_or_else(|| Error::Disabled("secrets").into())
}

/// Store a secret.
///
/// Stores a secret (201 when new, 200 when replaced); the answer never carries the value.
/// Needs a `manage` or `api` token and a server with a master key (else 503
/// `secrets_disabled`). 409 `quota_exceeded` when the write would take the caller past
/// their quota of secrets or of bytes of secret values.
#[utoipa::path(put, path = "/v1/me/secrets/{name}", tag = "secrets", request_body = PutSecretRequest,
    params(SecretNamePath),
    responses(
        (status = 201, description = "Stored (new).", body = SecretView),
        (status = 200, description = "Stored (replaced).", body = SecretView),
        JsonBodyErrors, AuthErrors, (status = 403, response = Forbidden), (status = 409, response = Conflict)))]
pub async fn put_secret(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    ApiPath(SecretNamePath { name }): ApiPath<SecretNamePath>,
    ApiJson(body): ApiJson<PutSecretRequest>,
) -> Result<(StatusCode, ApiJson<SecretView>), ApiError> {
    require_manage_or_api(&p)?;
    let keys = secret_keys(&state)?;
    let name = SecretName::parse(&name)?;
    let scope = OwnerScope::own(p.identity());
    let meta = service::put_secret(
        &*state.store,
        &keys,
        &scope,
        &name,
        &body.value,
        &mut state.rng(),
    )
    .await?;
    let status = if meta.created_at == meta.updated_at {
        CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, ApiJson(SecretView::from(&meta))))
}

/// Delete a secret.
///
/// Deletes a secret; resources granted it can no longer fetch their credentials. Needs a
/// `manage` or `api` token.
#[utoipa::path(delete, path = "/v1/me/secrets/{name}", tag = "secrets", params(SecretNamePath),
    responses(
        (status = 204, description = "Deleted."),
        (status = 400, response = BadRequest), AuthErrors,
        (status = 403, response = Forbidden), (status = 404, response = NotFound)))]
pub async fn delete_secret(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    ApiPath(SecretNamePath { name }): ApiPath<SecretNamePath>,
) -> Result<StatusCode, ApiError> {
    require_manage_or_api(&p)?;
    secret_keys(&state)?;
    // A malformed name cannot name a secret: the same 404 as an absent one.
    let name = SecretName::parse(&name).map_err(|_| ApiError::not_found())?;
    state
        .store
        .delete_secret(&OwnerScope::own(p.identity()), &name)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// List secrets.
///
/// The caller's secrets: names and times, never values. Needs a `manage` or `api` token.
#[utoipa::path(get, path = "/v1/me/secrets", tag = "secrets",
    responses(
        (status = 200, description = "The caller's secrets: names and times.", body = SecretList),
        AuthErrors, (status = 403, response = Forbidden)))]
pub async fn list_secrets(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
) -> Result<ApiJson<SecretList>, ApiError> {
    require_manage_or_api(&p)?;
    secret_keys(&state)?;
    let list = state
        .store
        .list_secrets(&OwnerScope::own(p.identity()))
        .await?;
    Ok(ApiJson(SecretList {
        secrets: list.iter().map(SecretView::from).collect(),
    }))
}
