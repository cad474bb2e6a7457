//! The REST routes of docs/api.md (secrets, resources and webhooks come with their own
//! module), collected with their OpenAPI descriptions so the document lists exactly what
//! the router serves.

mod admin;
mod events;
mod health;
mod leaks;
mod me;
pub(crate) mod pairing;
pub(crate) mod resources;
mod secrets;
mod webhook;

use axum::http::StatusCode;
use ownership_core::ports::PageRequest;
use ownership_core::{ChannelName, OwnerId};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::state::AppState;
use crate::wire::PageQuery;

/// Every route with its OpenAPI operation.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(admin::bootstrap))
        .routes(routes!(me::me))
        .routes(routes!(me::list_tokens, me::create_token))
        .routes(routes!(me::rotate_token))
        .routes(routes!(me::revoke_token))
        .routes(routes!(leaks::revoke_leaked))
        .routes(routes!(leaks::github_report))
        .routes(routes!(me::list_identities))
        .routes(routes!(me::unlink_identity))
        .routes(routes!(me::my_audit))
        .routes(routes!(events::my_events))
        .routes(routes!(events::stream_ticket))
        .routes(routes!(admin::list_users, admin::create_user))
        .routes(routes!(admin::get_user, admin::delete_user))
        .routes(routes!(admin::set_role))
        .routes(routes!(admin::set_status))
        .routes(routes!(admin::service_token))
        .routes(routes!(admin::all_audit))
        .routes(routes!(pairing::request_code))
        .routes(routes!(pairing::resolve))
        .routes(routes!(pairing::redeem))
        .routes(routes!(pairing::pending))
        .routes(routes!(pairing::approve))
        .routes(routes!(me::verify))
        .routes(routes!(secrets::list_secrets))
        .routes(routes!(secrets::put_secret, secrets::delete_secret))
        .routes(routes!(
            resources::list_resources,
            resources::create_resource
        ))
        .routes(routes!(resources::get_resource, resources::revoke_resource))
        .routes(routes!(resources::credentials))
        .routes(routes!(
            webhook::get_webhook,
            webhook::put_webhook,
            webhook::delete_webhook
        ))
        .routes(routes!(webhook::rotate_webhook_secret))
        .routes(routes!(webhook::list_deliveries))
}

/// The page a listing's query asks for. A `limit` outside 1–500 is refused (400
/// `invalid_request`), not clamped: a client that asked for 1,000 items and silently got
/// 500 would take the short page for the last one. (The stores still clamp, as a
/// defence.) Cursors are checked by each listing, which alone knows their shape.
pub(crate) fn page(q: PageQuery) -> Result<PageRequest, ApiError> {
    let limit = q.limit.unwrap_or(PAGE_LIMIT_DEFAULT);
    if !(1..=PAGE_LIMIT_MAX).contains(&limit) {
        return Err(ownership_core::Error::invalid(
            "limit",
            format!("must be between 1 and {PAGE_LIMIT_MAX}"),
        )
        .into());
    }
    Ok(PageRequest {
        after: q.after,
        limit,
    })
}

/// The page size of a listing that names none.
pub(crate) const PAGE_LIMIT_DEFAULT: u32 = 100;
/// The largest page size (also the `maximum` of `limit` in the OpenAPI document).
pub(crate) const PAGE_LIMIT_MAX: u32 = 500;

pub(crate) fn owner_id(raw: &str) -> Result<OwnerId, ApiError> {
    OwnerId::parse(raw).map_err(ApiError::from)
}

pub(crate) fn channel(raw: &str) -> Result<ChannelName, ApiError> {
    ChannelName::parse(raw).map_err(ApiError::from)
}

/// 201 Created.
pub(crate) const CREATED: StatusCode = StatusCode::CREATED;
