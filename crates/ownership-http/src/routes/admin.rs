use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::StatusCode;
use ownership_core::ids::Label;
use ownership_core::ports::AuditFilter;
use ownership_core::service;
use ownership_core::token::digest_of;
use ownership_core::{OwnerId, TokenKind, TokenKinds, UserRole, UserStatus};

use super::{CREATED, owner_id, page};
use crate::api_doc::*;
use crate::auth::{ClientAddr, RequireAdmin, bearer_from};
use crate::error::ApiError;
use crate::state::AppState;
use crate::wire::*;

/// A user id in a path that cannot name a user is simply not found.
fn target(raw: &str) -> Result<OwnerId, ApiError> {
    OwnerId::parse(raw).map_err(|_| ApiError::not_found())
}

/// Create the first Owner.
///
/// Creates the first Owner with the configured bootstrap secret (sent as the bearer
/// token), once: 409 after. No bearer token is 401; 404 when the server has no bootstrap
/// secret. A wrong secret is 401, and 429 once the client address has failed too often.
#[utoipa::path(post, path = "/v1/bootstrap", tag = "users", request_body = BootstrapRequest,
    responses(
        (status = 201, description = "The first Owner, with their first token (shown once).", body = UserWithToken),
        JsonBodyErrors, AuthErrors,
        (status = 404, response = NotFound), (status = 409, response = Conflict)))]
pub async fn bootstrap(
    State(state): State<AppState>,
    ClientAddr(ip): ClientAddr,
    headers: HeaderMap,
    ApiJson(body): ApiJson<BootstrapRequest>,
) -> Result<(StatusCode, ApiJson<UserWithToken>), ApiError> {
    // No bearer token at all is 401 (the header is required), before anything tells
    // whether this server has a bootstrap secret.
    let Some(presented) = bearer_from(&headers) else {
        return Err(ApiError::unauthenticated());
    };
    let Some(expected) = state.bootstrap else {
        return Err(ApiError::not_found());
    };
    // Constant-time comparison of digests (`TokenDigest`'s equality is `subtle`'s). The
    // right secret works from any address; a wrong one counts against the address and
    // is answered 429 once it has failed too often.
    if digest_of(presented) != expected {
        tracing::info!(client = ?ip, "bootstrap refused: wrong secret");
        return Err(state.auth.failure(ip, ApiError::unauthenticated()));
    }
    let id = owner_id(&body.user_id)?;
    let (user, secret) = service::bootstrap_owner(&*state.store, &id, &mut state.rng()).await?;
    Ok((
        CREATED,
        ApiJson(UserWithToken {
            user_id: user.id.to_string(),
            role: user.role.to_string(),
            status: user.status.to_string(),
            token: secret.expose().to_owned(),
        }),
    ))
}

/// Create a user.
///
/// Creates a user (default role `member`) and returns their first token, once. Needs a
/// `manage` token of an Admin or Owner; only Owners create Admins and Owners.
#[utoipa::path(post, path = "/v1/admin/users", tag = "users", request_body = CreateUserRequest,
    responses(
        (status = 201, description = "The new user, with their first token (shown once).", body = UserWithToken),
        JsonBodyErrors, AuthErrors,
        (status = 403, response = Forbidden), (status = 409, response = Conflict)))]
pub async fn create_user(
    State(state): State<AppState>,
    admin: RequireAdmin,
    ApiJson(body): ApiJson<CreateUserRequest>,
) -> Result<(StatusCode, ApiJson<UserWithToken>), ApiError> {
    let id = owner_id(&body.user_id)?;
    let role = body
        .role
        .as_deref()
        .map(UserRole::parse)
        .transpose()?
        .unwrap_or_default();
    let (user, secret) =
        service::create_user(&*state.store, &admin.scope, &id, role, &mut state.rng()).await?;
    Ok((
        CREATED,
        ApiJson(UserWithToken {
            user_id: user.id.to_string(),
            role: user.role.to_string(),
            status: user.status.to_string(),
            token: secret.expose().to_owned(),
        }),
    ))
}

/// List users.
///
/// Users, by id, a page at a time. Needs a `manage` token of an Admin or Owner.
#[utoipa::path(get, path = "/v1/admin/users", tag = "users", params(PageQuery),
    responses(
        (status = 200, description = "A page of users, by id.", body = UserList),
        (status = 400, response = BadRequest), AuthErrors, (status = 403, response = Forbidden)))]
pub async fn list_users(
    State(state): State<AppState>,
    admin: RequireAdmin,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<ApiJson<UserList>, ApiError> {
    // The cursor is the last user id of the previous page: what cannot be a user id is no
    // cursor (a NUL, say, which PostgreSQL refuses in text: a 503 instead of a 400).
    if q.after
        .as_deref()
        .is_some_and(|a| OwnerId::parse(a).is_err())
    {
        return Err(
            ownership_core::Error::invalid("cursor", "not a cursor from a previous page").into(),
        );
    }
    let p = state.store.list_users(&admin.scope, &page(q)?).await?;
    Ok(ApiJson(UserList {
        users: p.items.iter().map(UserView::from).collect(),
        next: p.next,
    }))
}

/// Get a user.
///
/// One user. Needs a `manage` token of an Admin or Owner.
#[utoipa::path(get, path = "/v1/admin/users/{id}", tag = "users", params(UserIdPath),
    responses(
        (status = 200, description = "The user.", body = UserView),
        (status = 400, response = BadRequest), AuthErrors,
        (status = 403, response = Forbidden), (status = 404, response = NotFound)))]
pub async fn get_user(
    State(state): State<AppState>,
    admin: RequireAdmin,
    ApiPath(UserIdPath { id }): ApiPath<UserIdPath>,
) -> Result<ApiJson<UserView>, ApiError> {
    let user = state.store.get_user(&admin.scope, &target(&id)?).await?;
    Ok(ApiJson(UserView::from(&user)))
}

/// Delete a user.
///
/// Deletes a user: their tokens, chat accounts, secrets and data key go with them. Needs a
/// `manage` token: Admins delete Members, Owners anyone; nobody themselves; never the
/// last Owner (409).
#[utoipa::path(delete, path = "/v1/admin/users/{id}", tag = "users", params(UserIdPath),
    responses(
        (status = 204, description = "Deleted."),
        (status = 400, response = BadRequest), AuthErrors, (status = 403, response = Forbidden),
        (status = 404, response = NotFound), (status = 409, response = Conflict)))]
pub async fn delete_user(
    State(state): State<AppState>,
    admin: RequireAdmin,
    ApiPath(UserIdPath { id }): ApiPath<UserIdPath>,
) -> Result<StatusCode, ApiError> {
    state.store.delete_user(&admin.scope, &target(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Change a user's role.
///
/// Only Owners touch Admins and Owners; nobody changes their own role; the last Owner
/// stays one (409). Needs a `manage` token of an Admin or Owner.
#[utoipa::path(put, path = "/v1/admin/users/{id}/role", tag = "users", request_body = RoleRequest, params(UserIdPath),
    responses(
        (status = 200, description = "The user with their new role.", body = UserView),
        JsonBodyErrors, AuthErrors, (status = 403, response = Forbidden),
        (status = 404, response = NotFound), (status = 409, response = Conflict)))]
pub async fn set_role(
    State(state): State<AppState>,
    admin: RequireAdmin,
    ApiPath(UserIdPath { id }): ApiPath<UserIdPath>,
    ApiJson(body): ApiJson<RoleRequest>,
) -> Result<ApiJson<UserView>, ApiError> {
    let role = UserRole::parse(&body.role)?;
    let user = state
        .store
        .set_role(&admin.scope, &target(&id)?, role)
        .await?;
    Ok(ApiJson(UserView::from(&user)))
}

/// Suspend or resume a user.
///
/// A suspended user's tokens stop working at once. Needs a `manage` token: Admins for
/// Members, Owners for anyone; nobody their own status; never the last Owner (409).
#[utoipa::path(put, path = "/v1/admin/users/{id}/status", tag = "users", request_body = StatusRequest, params(UserIdPath),
    responses(
        (status = 200, description = "The user with their new status.", body = UserView),
        JsonBodyErrors, AuthErrors, (status = 403, response = Forbidden),
        (status = 404, response = NotFound), (status = 409, response = Conflict)))]
pub async fn set_status(
    State(state): State<AppState>,
    admin: RequireAdmin,
    ApiPath(UserIdPath { id }): ApiPath<UserIdPath>,
    ApiJson(body): ApiJson<StatusRequest>,
) -> Result<ApiJson<UserView>, ApiError> {
    let status = UserStatus::parse(&body.status)?;
    let user = state
        .store
        .set_status(&admin.scope, &target(&id)?, status)
        .await?;
    Ok(ApiJson(UserView::from(&user)))
}

/// Mint a service token.
///
/// Mints a service token (`channel:<name>`, `verify`) owned by the calling Admin or Owner
/// (`manage` token); its value is shown once. 409 `quota_exceeded` when the caller
/// already holds as many live tokens as their quota allows.
#[utoipa::path(post, path = "/v1/admin/service-tokens", tag = "tokens", request_body = ServiceTokenRequest,
    responses(
        (status = 201, description = "The service token, with its value (shown once).", body = NewTokenView),
        JsonBodyErrors, AuthErrors, (status = 403, response = Forbidden), (status = 409, response = Conflict)))]
pub async fn service_token(
    State(state): State<AppState>,
    admin: RequireAdmin,
    ApiJson(body): ApiJson<ServiceTokenRequest>,
) -> Result<(StatusCode, ApiJson<NewTokenView>), ApiError> {
    let kinds = TokenKinds::new(
        body.kinds
            .iter()
            .map(|k| TokenKind::parse(k))
            .collect::<Result<Vec<_>, _>>()?,
    )?;
    let (record, secret) = service::issue_service_token(
        &*state.store,
        &admin.principal,
        &admin.scope,
        kinds,
        Label::parse_optional(body.label.as_deref())?,
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

/// List everyone's audit events.
///
/// Everyone's audit events, newest first, a page at a time. Needs a `manage` token of an
/// Admin or Owner.
#[utoipa::path(get, path = "/v1/admin/audit", tag = "audit", params(PageQuery),
    responses(
        (status = 200, description = "A page of everyone's events, newest first.", body = EventList),
        (status = 400, response = BadRequest), AuthErrors, (status = 403, response = Forbidden)))]
pub async fn all_audit(
    State(state): State<AppState>,
    admin: RequireAdmin,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<ApiJson<EventList>, ApiError> {
    let p = state
        .store
        .list_events(AuditFilter::All(&admin.scope), &page(q)?)
        .await?;
    Ok(ApiJson(EventList {
        events: p.items.iter().map(EventView::from).collect(),
        next: p.next,
    }))
}
