use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use ownership_core::authz::Rotator;
use ownership_core::ids::Label;
use ownership_core::ids::TokenId;
use ownership_core::ports::AuditFilter;
use ownership_core::service::{self, TokenRequest};
use ownership_core::{ChannelKey, ExternalId, TokenKind, TokenKinds};

use super::{CREATED, channel, page};
use crate::api_doc::*;
use crate::auth::{Authenticated, ClientAddr, Manage, RequireKind, Verify};
use crate::error::ApiError;
use crate::state::AppState;
use crate::wire::*;

fn kinds(raw: &[String]) -> Result<TokenKinds, ApiError> {
    Ok(TokenKinds::new(
        raw.iter()
            .map(|k| TokenKind::parse(k))
            .collect::<Result<Vec<_>, _>>()?,
    )?)
}

/// The longest lifetime a minted token may ask for: 100 years of 365.25 days.
const MAX_EXPIRES_IN_SECONDS: u64 = 3_155_760_000;

/// Who is calling.
///
/// The caller's user and the token they called with. Any valid token.
#[utoipa::path(get, path = "/v1/me", tag = "me",
    responses((status = 200, description = "The caller and the token they called with.", body = Me), AuthErrors))]
pub async fn me(Authenticated(p): Authenticated) -> ApiJson<Me> {
    ApiJson(Me {
        user_id: p.identity().owner_id().to_string(),
        role: p.identity().role().to_string(),
        token: MeToken {
            id: p.token_id().to_string(),
            kinds: p.kinds().iter().map(ToString::to_string).collect(),
            expires_at: p.expires_at().map(ownership_core::audit::rfc3339),
        },
    })
}

/// List the caller's tokens.
///
/// The caller's tokens, newest first; never their values. Needs a `manage` token.
#[utoipa::path(get, path = "/v1/me/tokens", tag = "tokens",
    responses(
        (status = 200, description = "The caller's tokens, newest first.", body = TokenList),
        AuthErrors, (status = 403, response = Forbidden)))]
pub async fn list_tokens(
    State(state): State<AppState>,
    caller: RequireKind<Manage>,
) -> Result<ApiJson<TokenList>, ApiError> {
    let tokens = state.store.list_tokens(&caller.scope()).await?;
    Ok(ApiJson(TokenList {
        tokens: tokens.iter().map(TokenView::from).collect(),
    }))
}

/// Mint a token.
///
/// Mints a token with a subset of the calling token's kinds, an optional label and
/// lifetime; its value is shown once. Needs a `manage` token. 409 `quota_exceeded` when
/// the caller already holds as many live tokens as their quota allows.
#[utoipa::path(post, path = "/v1/me/tokens", tag = "tokens", request_body = CreateTokenRequest,
    responses(
        (status = 201, description = "The new token, with its value (shown once).", body = NewTokenView),
        JsonBodyErrors, AuthErrors, (status = 403, response = Forbidden), (status = 409, response = Conflict)))]
pub async fn create_token(
    State(state): State<AppState>,
    caller: RequireKind<Manage>,
    ApiJson(body): ApiJson<CreateTokenRequest>,
) -> Result<(StatusCode, ApiJson<NewTokenView>), ApiError> {
    let request = TokenRequest {
        kinds: kinds(&body.kinds)?,
        label: Label::parse_optional(body.label.as_deref())?,
        expires_in: match body.expires_in_seconds {
            Some(secs) if secs > MAX_EXPIRES_IN_SECONDS => {
                return Err(ownership_core::Error::invalid(
                    "expires_in_seconds",
                    "must be at most 100 years (3155760000)",
                )
                .into());
            }
            secs => secs.map(Duration::from_secs),
        },
    };
    let now = state.clock.now();
    let (record, secret) =
        service::issue_token(&*state.store, &caller.0, request, now, &mut state.rng()).await?;
    Ok((
        CREATED,
        ApiJson(NewTokenView {
            meta: TokenView::from(&record),
            token: secret.expose().to_owned(),
        }),
    ))
}

/// Rotate a token.
///
/// Replaces one of the caller's tokens with a new one of the same kinds; the old one is
/// revoked now, or after `grace_seconds` (at most 30 days). The body is optional. Needs a
/// `manage` token.
#[utoipa::path(post, path = "/v1/me/tokens/{id}/rotate", tag = "tokens",
    request_body(content = Option<RotateRequest>, description = "Optional: an empty body means no grace."),
    params(TokenIdPath),
    responses(
        (status = 201, description = "The replacement token, with its value (shown once).", body = NewTokenView),
        (status = 400, response = BadRequest), (status = 413, response = PayloadTooLarge), AuthErrors,
        (status = 403, response = Forbidden), (status = 404, response = NotFound)))]
pub async fn rotate_token(
    State(state): State<AppState>,
    caller: RequireKind<Manage>,
    ApiPath(TokenIdPath { id }): ApiPath<TokenIdPath>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, ApiJson<NewTokenView>), ApiError> {
    let id = TokenId::parse(&id).map_err(|_| ApiError::not_found())?;
    // The body is optional: empty means "no grace".
    let body: RotateRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RotateRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid body: {e}")))?
    };
    let grace = body.grace_seconds.map(Duration::from_secs);
    let (record, secret) = service::rotate_token(
        &*state.store,
        &Rotator::Holder(caller.0.clone()),
        &id,
        grace,
        &mut state.rng(),
    )
    .await?;
    Ok((
        CREATED,
        ApiJson(NewTokenView {
            meta: TokenView::from(&record),
            token: secret.expose().to_owned(),
        }),
    ))
}

/// Revoke a token.
///
/// Revokes one of the caller's tokens. With `?kind=`, the token must hold that kind or
/// nothing happens (409). Needs a `manage` token.
#[utoipa::path(delete, path = "/v1/me/tokens/{id}", tag = "tokens", params(TokenIdPath, RevokeQuery),
    responses(
        (status = 204, description = "Revoked (or already revoked)."),
        (status = 400, response = BadRequest), AuthErrors, (status = 403, response = Forbidden),
        (status = 404, response = NotFound), (status = 409, response = Conflict)))]
pub async fn revoke_token(
    State(state): State<AppState>,
    caller: RequireKind<Manage>,
    ApiPath(TokenIdPath { id }): ApiPath<TokenIdPath>,
    ApiQuery(q): ApiQuery<RevokeQuery>,
) -> Result<StatusCode, ApiError> {
    let id = TokenId::parse(&id).map_err(|_| ApiError::not_found())?;
    let kind = q.kind.as_deref().map(TokenKind::parse).transpose()?;
    state
        .store
        .revoke_token(&caller.scope(), &id, kind.as_ref())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// List the caller's chat accounts.
///
/// The chat accounts bound to the caller. Needs a `manage` token.
#[utoipa::path(get, path = "/v1/me/identities", tag = "pairing",
    responses(
        (status = 200, description = "The caller's chat accounts.", body = IdentityList),
        AuthErrors, (status = 403, response = Forbidden)))]
pub async fn list_identities(
    State(state): State<AppState>,
    caller: RequireKind<Manage>,
) -> Result<ApiJson<IdentityList>, ApiError> {
    let list = state.store.list_identities(&caller.scope()).await?;
    Ok(ApiJson(IdentityList {
        identities: list.iter().map(IdentityView::from).collect(),
    }))
}

/// Unlink a chat account.
///
/// Unbinds one of the caller's chat accounts. Needs a `manage` token.
#[utoipa::path(delete, path = "/v1/me/identities/{channel}/{external_id}", tag = "pairing",
    params(IdentityPath),
    responses(
        (status = 204, description = "Unlinked."),
        (status = 400, response = BadRequest), AuthErrors,
        (status = 403, response = Forbidden), (status = 404, response = NotFound)))]
pub async fn unlink_identity(
    State(state): State<AppState>,
    caller: RequireKind<Manage>,
    ApiPath(IdentityPath {
        channel: ch,
        external_id: ext,
    }): ApiPath<IdentityPath>,
) -> Result<StatusCode, ApiError> {
    // A malformed key cannot name one of the caller's accounts: the same 404.
    let key = match (channel(&ch), ExternalId::parse(&ext)) {
        (Ok(c), Ok(e)) => ChannelKey::new(c, e),
        _ => return Err(ApiError::not_found()),
    };
    state.store.unlink_identity(&caller.scope(), &key).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// List the caller's audit events.
///
/// Events about the caller, newest first, a page at a time. Needs a `manage` token.
#[utoipa::path(get, path = "/v1/me/audit", tag = "audit", params(PageQuery),
    responses(
        (status = 200, description = "A page of the caller's events, newest first.", body = EventList),
        (status = 400, response = BadRequest), AuthErrors, (status = 403, response = Forbidden)))]
pub async fn my_audit(
    State(state): State<AppState>,
    caller: RequireKind<Manage>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<ApiJson<EventList>, ApiError> {
    let scope = caller.scope();
    let p = state
        .store
        .list_events(AuditFilter::Owner(&scope), &page(q)?)
        .await?;
    Ok(ApiJson(EventList {
        events: p.items.iter().map(EventView::from).collect(),
        next: p.next,
    }))
}

/// Verify a token.
///
/// Checks a token for a service that cannot link this library (`verify` tokens only). A
/// token that does not check out counts against the caller's address like a failed
/// authentication of its own: once that address has failed too often, such answers are
/// 429 instead of `valid: false` (a valid token is still answered `valid: true`).
#[utoipa::path(post, path = "/v1/tokens/verify", tag = "tokens", request_body = VerifyRequest,
    responses(
        (status = 200, description = "The verdict: `valid` with the owner, role and kinds, or `valid: false`.", body = VerifyResponse),
        JsonBodyErrors, AuthErrors, (status = 403, response = Forbidden)))]
pub async fn verify(
    State(state): State<AppState>,
    _caller: RequireKind<Verify>,
    ClientAddr(ip): ClientAddr,
    ApiJson(body): ApiJson<VerifyRequest>,
) -> Result<ApiJson<VerifyResponse>, ApiError> {
    let allowed = state
        .foreign_allowed
        .load(std::sync::atomic::Ordering::Relaxed);
    match service::authenticate(&*state.store, &body.token, allowed).await {
        Ok(p) => Ok(ApiJson(VerifyResponse {
            valid: true,
            owner_id: Some(p.identity().owner_id().to_string()),
            role: Some(p.identity().role().to_string()),
            kinds: Some(p.kinds().iter().map(ToString::to_string).collect()),
        })),
        Err(ownership_core::Error::Unauthenticated) => {
            tracing::info!(client = ?ip, "verified token is not valid");
            let not_valid = ApiJson(VerifyResponse {
                valid: false,
                owner_id: None,
                role: None,
                kinds: None,
            });
            match ip.and_then(|ip| state.auth.limits().address_failed(ip)) {
                Some(wait) => Err(ApiError::rate_limited(wait)),
                None => Ok(not_valid),
            }
        }
        Err(e) => Err(e.into()),
    }
}
