use axum::extract::State;
use axum::http::StatusCode;
use ownership_core::authz::ChannelScope;
use ownership_core::ports::ChannelBinding;
use ownership_core::{ChannelName, Error, ExternalId, service};

use super::{CREATED, channel, owner_id};
use crate::api_doc::*;
use crate::auth::{Authenticated, Manage, RequireAdmin, RequireKind};
use crate::error::ApiError;
use crate::state::AppState;
use crate::wire::*;

/// Largest adapter `meta` kept with a pairing request, in bytes of JSON.
const META_MAX_BYTES: usize = 2048;

fn channel_scope(
    caller: &Authenticated,
    ch: &str,
) -> Result<(ChannelName, ChannelScope), ApiError> {
    let name = channel(ch)?;
    let scope = ChannelScope::authorize(&caller.0, &name)?;
    Ok((name, scope))
}

/// Request a pairing code.
///
/// A channel adapter (a `channel:<name>` token for this channel) asks for a code for an
/// unknown sender: a new one (201) or the one still pending (200). Past the channel's
/// limit of pending codes, 429.
#[utoipa::path(post, path = "/v1/channels/{channel}/pairing-requests", tag = "pairing", request_body = PairingRequestBody,
    params(ChannelPath),
    responses(
        (status = 201, description = "A new code.", body = PairingCodeView),
        (status = 200, description = "The sender's code still pending.", body = PairingCodeView),
        JsonBodyErrors, AuthErrors, (status = 403, response = Forbidden)))]
pub async fn request_code(
    State(state): State<AppState>,
    caller: Authenticated,
    ApiPath(ChannelPath { channel: ch }): ApiPath<ChannelPath>,
    ApiJson(body): ApiJson<PairingRequestBody>,
) -> Result<(StatusCode, ApiJson<PairingCodeView>), ApiError> {
    let (_, scope) = channel_scope(&caller, &ch)?;
    let external_id = ExternalId::parse(&body.external_id)?;
    let meta = body.meta.map(|m| m.to_string());
    if meta.as_ref().is_some_and(|m| m.len() > META_MAX_BYTES) {
        return Err(ApiError::bad_request(format!(
            "invalid meta: at most {META_MAX_BYTES} bytes of JSON"
        )));
    }
    let (issue, code) = service::request_pairing(
        &*state.store,
        &scope,
        &state.pairing_key,
        &external_id,
        meta.as_deref(),
        &state.config.pairing,
        &mut state.rng(),
    )
    .await?;
    crate::metrics::pairing_requested(issue.created);
    let status = if issue.created {
        CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        ApiJson(PairingCodeView {
            code: code.display(),
            expires_at: ownership_core::audit::rfc3339(issue.expires_at),
            created: issue.created,
        }),
    ))
}

/// Resolve a chat account.
///
/// The owner a chat account is bound to (404 if none), for the channel's adapter (a
/// `channel:<name>` token for this channel).
#[utoipa::path(get, path = "/v1/channels/{channel}/identities/{external_id}", tag = "pairing",
    params(IdentityPath),
    responses(
        (status = 200, description = "The owner the chat account is bound to.", body = ResolvedIdentity),
        (status = 400, response = BadRequest), AuthErrors,
        (status = 403, response = Forbidden), (status = 404, response = NotFound)))]
pub async fn resolve(
    State(state): State<AppState>,
    caller: Authenticated,
    ApiPath(IdentityPath {
        channel: ch,
        external_id: ext,
    }): ApiPath<IdentityPath>,
) -> Result<ApiJson<ResolvedIdentity>, ApiError> {
    let (_, scope) = channel_scope(&caller, &ch)?;
    let external_id = ExternalId::parse(&ext).map_err(|_| ApiError::not_found())?;
    let identity = state
        .store
        .resolve_identity(&scope, &external_id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(ApiJson(ResolvedIdentity {
        owner_id: identity.owner_id().to_string(),
        role: identity.role().to_string(),
    }))
}

/// The answer to a redemption or approval. The store counted a wrong code against the
/// submitter's and the channel's budgets in the transaction that evaluated it (and
/// refused it unevaluated, 429, once the submitter's budget was spent).
fn redeem_outcome(
    result: Result<ChannelBinding, Error>,
) -> Result<ApiJson<IdentityView>, ApiError> {
    match result {
        Ok(b) => {
            crate::metrics::pairing_redeemed();
            Ok(ApiJson(IdentityView::from(&b)))
        }
        Err(Error::NotFound) => {
            crate::metrics::pairing_failed();
            Err(ApiError::invalid_code())
        }
        Err(e) => Err(e.into()),
    }
}

/// Redeem a pairing code.
///
/// Self-claim: the signed-in user (`manage` token) redeems the code their chat bot showed
/// them. Failed codes count against the user and the channel (then 429); 409 when the
/// chat account is bound to someone else.
#[utoipa::path(post, path = "/v1/pairing/{channel}/redeem", tag = "pairing", request_body = RedeemRequest,
    params(ChannelPath),
    responses(
        (status = 200, description = "The chat account, now bound to the caller.", body = IdentityView),
        JsonBodyErrors, AuthErrors, (status = 403, response = Forbidden),
        (status = 404, response = InvalidCode), (status = 409, response = Conflict)))]
pub async fn redeem(
    State(state): State<AppState>,
    caller: RequireKind<Manage>,
    ApiPath(ChannelPath { channel: ch }): ApiPath<ChannelPath>,
    ApiJson(body): ApiJson<RedeemRequest>,
) -> Result<ApiJson<IdentityView>, ApiError> {
    let ch = channel(&ch)?;
    let mut gate = state
        .auth
        .limits()
        .pairing_gate(caller.0.identity().owner_id())
        .await
        .map_err(ApiError::rate_limited)?;
    // Blank or malformed codes are refused by the use case before any store read, as 400:
    // they spend no budget.
    let result = service::redeem_pairing(
        &*state.store,
        &caller.scope(),
        &state.pairing_key,
        &ch,
        &body.code,
    )
    .await;
    gate.record(&result);
    redeem_outcome(result)
}

/// List pending pairing requests.
///
/// Pending requests of a channel, oldest first, never their codes. Needs a `manage` token
/// of an Admin or Owner.
#[utoipa::path(get, path = "/v1/admin/pairing/{channel}", tag = "pairing", params(ChannelPath),
    responses(
        (status = 200, description = "The channel's pending requests, oldest first.", body = PendingList),
        (status = 400, response = BadRequest), AuthErrors, (status = 403, response = Forbidden)))]
pub async fn pending(
    State(state): State<AppState>,
    admin: RequireAdmin,
    ApiPath(ChannelPath { channel: ch }): ApiPath<ChannelPath>,
) -> Result<ApiJson<PendingList>, ApiError> {
    let list = state
        .store
        .list_pending(&admin.scope, &channel(&ch)?)
        .await?;
    Ok(ApiJson(PendingList {
        requests: list.iter().map(PendingView::from).collect(),
    }))
}

/// Approve a pairing code.
///
/// An Admin or Owner (`manage` token) approves the code a person reads out, for a named
/// user. Failed codes count as for redeeming.
#[utoipa::path(post, path = "/v1/admin/pairing/{channel}/approve", tag = "pairing", request_body = ApproveRequest,
    params(ChannelPath),
    responses(
        (status = 200, description = "The chat account, now bound to the named user.", body = IdentityView),
        JsonBodyErrors, AuthErrors, (status = 403, response = Forbidden),
        (status = 404, response = InvalidCode), (status = 409, response = Conflict)))]
pub async fn approve(
    State(state): State<AppState>,
    admin: RequireAdmin,
    ApiPath(ChannelPath { channel: ch }): ApiPath<ChannelPath>,
    ApiJson(body): ApiJson<ApproveRequest>,
) -> Result<ApiJson<IdentityView>, ApiError> {
    let ch = channel(&ch)?;
    let owner = owner_id(&body.owner_id)?;
    let mut gate = state
        .auth
        .limits()
        .pairing_gate(admin.principal.identity().owner_id())
        .await
        .map_err(ApiError::rate_limited)?;
    let result = service::approve_pairing(
        &*state.store,
        &admin.scope,
        &state.pairing_key,
        &ch,
        &body.code,
        &owner,
    )
    .await;
    gate.record(&result);
    redeem_outcome(result)
}
