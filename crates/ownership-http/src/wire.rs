//! Request and response bodies of docs/api.md, and the extractors that give bad input the
//! same JSON error as everything else.

use axum::extract::{FromRequest, FromRequestParts};
use ownership_core::audit::AuditEvent;
use ownership_core::ports::{ChannelBinding, PendingPairing, TokenRecord, User};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::error::ApiError;

/// `Json` whose rejections are [`ApiError`]s.
#[derive(Debug, Clone, Copy, Default, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

impl<T: Serialize> axum::response::IntoResponse for ApiJson<T> {
    fn into_response(self) -> axum::response::Response {
        axum::Json(self.0).into_response()
    }
}

/// `Path` whose rejections are [`ApiError`]s.
#[derive(Debug, Clone, Copy, Default, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// `Query` whose rejections are [`ApiError`]s.
#[derive(Debug, Clone, Copy, Default, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

fn rfc3339(t: OffsetDateTime) -> String {
    ownership_core::audit::rfc3339(t)
}

/// `POST /v1/bootstrap`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BootstrapRequest {
    /// The first Owner's id.
    #[schema(example = "owner", value_type = UserIdText)]
    pub user_id: String,
}

/// A user and their one-time token.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserWithToken {
    /// The user's id.
    #[schema(example = "alice")]
    pub user_id: String,
    /// Their role.
    #[schema(example = "member")]
    pub role: String,
    /// Their status.
    #[schema(example = "active")]
    pub status: String,
    /// Their first token: shown once, never again.
    #[schema(example = "own_u_4Tq9ZcW2mYkL8xRv3bN6pJd1sHf7aG0eQ5uI2oK9wXyCt3Vb")]
    pub token: String,
}

/// A user.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    /// Id.
    #[schema(example = "alice")]
    pub user_id: String,
    /// Role.
    #[schema(example = "member")]
    pub role: String,
    /// `active` or `suspended`.
    #[schema(example = "active")]
    pub status: String,
    /// When created (RFC 3339).
    #[schema(format = DateTime, example = "2026-01-02T03:04:05Z")]
    pub created_at: String,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        Self {
            user_id: u.id.to_string(),
            role: u.role.to_string(),
            status: u.status.to_string(),
            created_at: rfc3339(u.created_at),
        }
    }
}

/// `GET /v1/admin/users`.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserList {
    /// Users, by id.
    pub users: Vec<UserView>,
    /// Cursor for the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "alice")]
    pub next: Option<String>,
}

/// `POST /v1/admin/users`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    /// The new user's id.
    #[schema(example = "alice", value_type = UserIdText)]
    pub user_id: String,
    /// Their role (default `member`): `owner`, `admin` or `member`.
    #[schema(example = "member", pattern = "^(owner|admin|member)$")]
    pub role: Option<String>,
}

/// `PUT /v1/admin/users/{id}/role`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleRequest {
    /// `owner`, `admin` or `member`.
    #[schema(example = "admin", pattern = "^(owner|admin|member)$")]
    pub role: String,
}

/// `PUT /v1/admin/users/{id}/status`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusRequest {
    /// `active` or `suspended`.
    #[schema(example = "suspended", pattern = "^(active|suspended)$")]
    pub status: String,
}

/// The token behind a request.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeToken {
    /// Its id.
    #[schema(example = "tok_0123456789abcdef0123")]
    pub id: String,
    /// Its kinds.
    #[schema(example = json!(["manage"]))]
    pub kinds: Vec<String>,
    /// When it stops working, if ever.
    #[schema(format = DateTime, example = "2026-02-01T00:00:00Z")]
    pub expires_at: Option<String>,
}

/// `GET /v1/me`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    /// The caller's id.
    #[schema(example = "alice")]
    pub user_id: String,
    /// Their role.
    #[schema(example = "member")]
    pub role: String,
    /// The token used.
    pub token: MeToken,
}

/// A token, never its value.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    /// Id.
    #[schema(example = "tok_0123456789abcdef0123")]
    pub id: String,
    /// Kinds.
    #[schema(example = json!(["api"]))]
    pub kinds: Vec<String>,
    /// Label.
    #[schema(example = "deploy bot")]
    pub label: Option<String>,
    /// The first characters of the value.
    #[schema(example = "own_u_4Tq9")]
    pub display_prefix: String,
    /// `issued`, `provisioned` or `legacy`.
    #[schema(example = "issued")]
    pub origin: String,
    /// When made.
    #[schema(format = DateTime, example = "2026-01-02T03:04:05Z")]
    pub created_at: String,
    /// When it stops working, if ever.
    #[schema(format = DateTime, example = "2026-02-01T00:00:00Z")]
    pub expires_at: Option<String>,
    /// When revoked (or, during a rotation grace, when it will be).
    #[schema(format = DateTime, example = json!(null))]
    pub revoked_at: Option<String>,
    /// When last used.
    #[schema(format = DateTime, example = "2026-01-03T10:00:00Z")]
    pub last_used_at: Option<String>,
}

impl From<&TokenRecord> for TokenView {
    fn from(t: &TokenRecord) -> Self {
        Self {
            id: t.id.to_string(),
            kinds: t.kinds.iter().map(ToString::to_string).collect(),
            label: t.label.as_deref().map(str::to_owned),
            display_prefix: t.display_prefix.to_string(),
            origin: t.origin.as_str().to_owned(),
            created_at: rfc3339(t.created_at),
            expires_at: t.expires_at.map(rfc3339),
            revoked_at: t.revoked_at.map(rfc3339),
            last_used_at: t.last_used_at.map(rfc3339),
        }
    }
}

/// A token with its value, shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct NewTokenView {
    /// The token's metadata.
    #[serde(flatten)]
    pub meta: TokenView,
    /// The value: shown once, never again.
    #[schema(example = "own_u_4Tq9ZcW2mYkL8xRv3bN6pJd1sHf7aG0eQ5uI2oK9wXyCt3Vb")]
    pub token: String,
}

/// `GET /v1/me/tokens`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenList {
    /// Tokens, newest first.
    pub tokens: Vec<TokenView>,
}

/// A token kind: `manage`, `api`, `verify` or `channel:<name>` (the channel name
/// case-insensitive, 1–32 of `a-z 0-9 _ -` starting with a letter).
#[derive(Debug, ToSchema)]
#[schema(
    example = "api",
    pattern = "^(manage|api|verify|channel:[A-Za-z][A-Za-z0-9_-]{0,31})$"
)]
pub struct KindName(#[allow(dead_code, reason = "a schema only")] String);

/// A service token's kind: `verify` or `channel:<name>`.
#[derive(Debug, ToSchema)]
#[schema(
    example = "channel:telegram",
    pattern = "^(verify|channel:[A-Za-z][A-Za-z0-9_-]{0,31})$"
)]
pub struct ServiceKindName(#[allow(dead_code, reason = "a schema only")] String);

/// A user id: 1–128 bytes with no whitespace, control or format (Unicode `Cf`) character,
/// and not one of the reserved `default`, `system`, `<unset>`.
#[derive(Debug, ToSchema)]
#[schema(
    example = "alice",
    min_length = 1,
    max_length = 128,
    pattern = "^(?!(default|system|<unset>)$)[^\\s\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u0600-\\u0605\\u061c\\u06dd\\u070f\\u0890\\u0891\\u08e2\\u180e\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u206f\\ufeff\\ufff9-\\ufffb]+$"
)]
pub struct UserIdText(#[allow(dead_code, reason = "a schema only")] String);

/// A secret's name: 1–128 of `A-Z a-z 0-9 _ - .`, not starting with `.`.
#[derive(Debug, ToSchema)]
#[schema(
    example = "github_token",
    pattern = "^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$"
)]
pub struct SecretNameText(#[allow(dead_code, reason = "a schema only")] String);

/// One Server-Sent Event of `GET /v1/me/events`, as the OpenAPI document describes a
/// `text/event-stream` item (schema only: axum writes the fields).
#[derive(Debug, ToSchema)]
pub struct StreamEvent {
    /// The event's `seq` (absent on the final `shutdown` event).
    #[schema(example = "42")]
    pub id: Option<String>,
    /// The audit action (`token.issued`, …), or `shutdown`.
    #[schema(example = "token.issued")]
    pub event: Option<String>,
    /// The event as JSON (an `EventView`), or the shutdown notice.
    #[schema(example = "{\"seq\":42,\"action\":\"token.issued\"}")]
    pub data: String,
    /// On `shutdown`: how long to wait before reconnecting, in milliseconds.
    #[schema(example = 1000)]
    pub retry: Option<u64>,
}

/// `POST /v1/me/tokens`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTokenRequest {
    /// Kinds, a subset of the calling token's: `manage`, `api`, `verify` or
    /// `channel:<name>`.
    #[schema(example = json!(["api"]), min_items = 1)]
    #[schema(value_type = Vec<KindName>)]
    pub kinds: Vec<String>,
    /// Optional label: at most 100 characters, no control characters.
    #[schema(
        example = "deploy bot",
        max_length = 100,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    pub label: Option<String>,
    /// Optional lifetime in seconds: 1 to 100 years (3,155,760,000).
    #[schema(example = 2592000, minimum = 1, maximum = 3155760000u64)]
    pub expires_in_seconds: Option<u64>,
}

/// `POST /v1/me/tokens/{id}/rotate`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateRequest {
    /// Keep the old token working this many seconds (default 0: revoked now; at most 30
    /// days).
    #[schema(example = 3600, minimum = 0, maximum = 2592000)]
    pub grace_seconds: Option<u64>,
}

/// `DELETE /v1/me/tokens/{id}?kind=…`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RevokeQuery {
    /// When given, the token must hold this kind (`manage`, `api`, `verify`,
    /// `channel:<name>`) or nothing is revoked (409).
    #[param(nullable = false, example = "api", value_type = Option<KindName>)]
    pub kind: Option<String>,
}

/// `POST /v1/admin/service-tokens`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceTokenRequest {
    /// `channel:<name>` and/or `verify`.
    #[schema(example = json!(["channel:telegram"]), min_items = 1)]
    #[schema(value_type = Vec<ServiceKindName>)]
    pub kinds: Vec<String>,
    /// Optional label: at most 100 characters, no control characters.
    #[schema(
        example = "telegram adapter",
        max_length = 100,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    pub label: Option<String>,
}

/// A bound chat account.
#[derive(Debug, Serialize, ToSchema)]
pub struct IdentityView {
    /// Channel.
    #[schema(example = "telegram")]
    pub channel: String,
    /// The sender's id on it.
    #[schema(example = "12345678")]
    pub external_id: String,
    /// Its owner.
    #[schema(example = "alice")]
    pub owner_id: String,
}

impl From<&ChannelBinding> for IdentityView {
    fn from(b: &ChannelBinding) -> Self {
        Self {
            channel: b.key.channel.to_string(),
            external_id: b.key.external_id.to_string(),
            owner_id: b.owner_id.to_string(),
        }
    }
}

/// `GET /v1/me/identities`.
#[derive(Debug, Serialize, ToSchema)]
pub struct IdentityList {
    /// The caller's chat accounts.
    pub identities: Vec<IdentityView>,
}

/// An audit event.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    /// Position in the chain.
    #[schema(example = 42)]
    pub seq: i64,
    /// When.
    #[schema(format = DateTime, example = "2026-01-02T03:04:05Z")]
    pub at: String,
    /// Who acted.
    #[schema(example = "alice")]
    pub actor: String,
    /// Whose object.
    #[schema(example = "alice")]
    pub owner_id: Option<String>,
    /// What happened.
    #[schema(example = "token.issued")]
    pub action: String,
    /// Which object.
    #[schema(example = "tok_0123456789abcdef0123")]
    pub target: String,
    /// Details (JSON).
    #[schema(value_type = Object, example = json!({"kinds": ["api"]}))]
    pub details: serde_json::Value,
    /// This event's link in the audit chain: 64 lower-case hex digits (an HMAC-SHA-256
    /// under the chain key for keyed events, a SHA-256 for older unkeyed ones).
    #[schema(
        pattern = "^[0-9a-f]{64}$",
        example = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    )]
    pub hash: String,
    /// The link of the event before it in the chain (all zeros for the first event).
    #[schema(
        pattern = "^[0-9a-f]{64}$",
        example = "0000000000000000000000000000000000000000000000000000000000000000"
    )]
    pub prev_hash: String,
}

impl From<&AuditEvent> for EventView {
    fn from(e: &AuditEvent) -> Self {
        Self {
            seq: e.seq,
            at: rfc3339(e.at),
            actor: e.actor.to_string(),
            owner_id: e.owner.as_ref().map(ToString::to_string),
            action: e.action.as_str().to_owned(),
            target: e.target.clone(),
            details: serde_json::from_str(&e.details).unwrap_or(serde_json::Value::Null),
            hash: e.hash.to_hex(),
            prev_hash: e.prev_hash.to_hex(),
        }
    }
}

/// Audit listings.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventList {
    /// Events, newest first.
    pub events: Vec<EventView>,
    /// Cursor for the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "42")]
    pub next: Option<String>,
}

/// The `{id}` of `/v1/admin/users/{id}…`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct UserIdPath {
    /// The user's id. One that cannot name a user is simply not found (404).
    #[param(example = "alice")]
    pub id: String,
}

/// The `{id}` of `/v1/me/tokens/{id}…`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TokenIdPath {
    /// The token's id (`id` in its listing; never its value).
    #[param(example = "tok_3q2mzx7kq5r1vd0f")]
    pub id: String,
}

/// The `{id}` of `/v1/me/resources/{id}`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ResourceIdPath {
    /// The resource's id.
    #[param(example = "res_8w1cz4n0bq7yj2kd")]
    pub id: String,
}

/// The `{name}` of `/v1/me/secrets/{name}`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SecretNamePath {
    /// 1–128 of `A-Z a-z 0-9 _ - .`, not starting with `.`.
    #[param(
        example = "github_token",
        pattern = "^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$"
    )]
    pub name: String,
}

/// The `{channel}` of the pairing routes.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ChannelPath {
    /// The channel: 1–32 of `a-z 0-9 _ -`, starting with a letter (case-insensitive).
    #[param(example = "telegram", pattern = "^[A-Za-z][A-Za-z0-9_-]{0,31}$")]
    pub channel: String,
}

/// The `{channel}/{external_id}` of a chat account.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct IdentityPath {
    /// The channel: 1–32 of `a-z 0-9 _ -`, starting with a letter (case-insensitive).
    #[param(example = "telegram", pattern = "^[A-Za-z][A-Za-z0-9_-]{0,31}$")]
    pub channel: String,
    /// The sender's id on that channel.
    #[param(example = "12345678")]
    pub external_id: String,
}

/// Paging of listings: `?limit=` and `?after=`, both optional.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// The `next` of the previous page, as it was given (an opaque cursor); absent for the
    /// first page. Anything that is no cursor of this listing is refused (400).
    #[param(nullable = false)]
    pub after: Option<String>,
    /// Page size: 1–500, default 100. Outside that range the request is refused (400),
    /// not clamped.
    #[param(
        nullable = false,
        minimum = 1,
        maximum = 500,
        default = 100,
        example = 100
    )]
    pub limit: Option<u32>,
}

/// `POST /v1/channels/{channel}/pairing-requests`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PairingRequestBody {
    /// The sender's id on the channel.
    #[schema(example = "12345678")]
    pub external_id: String,
    /// Optional adapter data (a display name, say), kept as JSON.
    #[schema(value_type = Option<Object>, required = false, example = json!({"display_name": "Alice"}))]
    pub meta: Option<serde_json::Value>,
}

/// A pairing code for a sender.
#[derive(Debug, Serialize, ToSchema)]
pub struct PairingCodeView {
    /// The code, shown as `ABCD-EFGH`.
    #[schema(example = "K7QM-4XPD")]
    pub code: String,
    /// When it expires.
    #[schema(format = DateTime, example = "2026-01-02T03:19:05Z")]
    pub expires_at: String,
    /// True when made by this call.
    #[schema(example = true)]
    pub created: bool,
}

/// `GET /v1/channels/{channel}/identities/{external_id}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResolvedIdentity {
    /// The owner the chat account is bound to.
    #[schema(example = "alice")]
    pub owner_id: String,
    /// Their role.
    #[schema(example = "member")]
    pub role: String,
}

/// `POST /v1/pairing/{channel}/redeem`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedeemRequest {
    /// The code the chat bot showed (8 symbols of `ABCDEFGHJKLMNPQRSTUVWXYZ23456789`, any case; spaces and dashes do not matter).
    #[schema(
        example = "K7QM-4XPD",
        pattern = "^[ \\t\\n\\f\\r-]*([A-HJ-NP-Za-hj-np-z2-9][ \\t\\n\\f\\r-]*){8}$"
    )]
    pub code: String,
}

/// `POST /v1/admin/pairing/{channel}/approve`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveRequest {
    /// The code the person reads out (8 symbols of `ABCDEFGHJKLMNPQRSTUVWXYZ23456789`, any case; spaces and dashes do not matter).
    #[schema(
        example = "K7QM-4XPD",
        pattern = "^[ \\t\\n\\f\\r-]*([A-HJ-NP-Za-hj-np-z2-9][ \\t\\n\\f\\r-]*){8}$"
    )]
    pub code: String,
    /// Whom to bind the chat account to.
    #[schema(example = "alice", value_type = UserIdText)]
    pub owner_id: String,
}

/// A pending request, never its code.
#[derive(Debug, Serialize, ToSchema)]
pub struct PendingView {
    /// Its id.
    #[schema(example = "pair_0123456789abcdef0123")]
    pub id: String,
    /// The sender.
    #[schema(example = "12345678")]
    pub external_id: String,
    /// Adapter data.
    #[schema(value_type = Object, example = json!({"display_name": "Alice"}))]
    pub meta: Option<serde_json::Value>,
    /// When asked.
    #[schema(format = DateTime, example = "2026-01-02T03:04:05Z")]
    pub created_at: String,
    /// When it expires.
    #[schema(format = DateTime, example = "2026-01-02T03:19:05Z")]
    pub expires_at: String,
}

impl From<&PendingPairing> for PendingView {
    fn from(p: &PendingPairing) -> Self {
        Self {
            id: p.id.to_string(),
            external_id: p.key.external_id.to_string(),
            meta: p.meta.as_deref().and_then(|m| serde_json::from_str(m).ok()),
            created_at: rfc3339(p.created_at),
            expires_at: rfc3339(p.expires_at),
        }
    }
}

/// `GET /v1/admin/pairing/{channel}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PendingList {
    /// Pending requests, oldest first.
    pub requests: Vec<PendingView>,
}

/// `POST /v1/tokens/verify`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// The token to check.
    #[schema(example = "own_u_4Tq9ZcW2mYkL8xRv3bN6pJd1sHf7aG0eQ5uI2oK9wXyCt3Vb")]
    pub token: String,
}

/// The verdict on a token.
#[derive(Debug, Serialize, ToSchema)]
pub struct VerifyResponse {
    /// Whether it is valid now.
    #[schema(example = true)]
    pub valid: bool,
    /// Its owner, when valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "alice")]
    pub owner_id: Option<String>,
    /// Their role, when valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "member")]
    pub role: Option<String>,
    /// Its kinds, when valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = json!(["api"]))]
    pub kinds: Option<Vec<String>>,
}

/// `GET /healthz` and `GET /readyz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` or `unavailable`.
    #[schema(example = "ok")]
    pub status: &'static str,
}

// ---------------------------------------------------------------------------------------
// Secrets, resources and webhooks (docs/secrets.md, docs/webhooks.md)

/// `PUT /v1/me/secrets/{name}`. `Debug` never shows the value.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutSecretRequest {
    /// The value (at most 32 KiB). Stored encrypted; never shown again.
    #[schema(example = "ghp_example-value")]
    pub value: String,
}

impl std::fmt::Debug for PutSecretRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PutSecretRequest { value: **** }")
    }
}

/// A secret's metadata: never its value.
#[derive(Debug, Serialize, ToSchema)]
pub struct SecretView {
    /// Its name.
    #[schema(example = "github_token")]
    pub name: String,
    /// When first written.
    #[schema(format = DateTime, example = "2026-01-02T03:04:05Z")]
    pub created_at: String,
    /// When last written.
    #[schema(format = DateTime, example = "2026-01-02T03:04:05Z")]
    pub updated_at: String,
}

impl From<&ownership_core::ports::SecretMeta> for SecretView {
    fn from(m: &ownership_core::ports::SecretMeta) -> Self {
        Self {
            name: m.name.to_string(),
            created_at: rfc3339(m.created_at),
            updated_at: rfc3339(m.updated_at),
        }
    }
}

/// `GET /v1/me/secrets`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SecretList {
    /// The caller's secrets, by name (metadata only).
    pub secrets: Vec<SecretView>,
}

/// `POST /v1/me/resources`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateResourceRequest {
    /// What it is (`job`, say): 1–64 bytes, no control characters.
    #[schema(
        example = "job",
        min_length = 1,
        max_length = 64,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    pub kind: String,
    /// Your own id for it (at most 256 bytes, no control characters).
    #[schema(
        example = "nightly-build",
        max_length = 256,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    pub external_ref: Option<String>,
    /// Names of your secrets it may fetch (each 1–128 of `A-Z a-z 0-9 _ - .`, not starting
    /// with `.`).
    #[schema(example = json!(["github_token"]), value_type = Vec<SecretNameText>)]
    pub grants: Vec<String>,
}

/// A registered resource (never its token).
#[derive(Debug, Serialize, ToSchema)]
pub struct ResourceView {
    /// Its id.
    #[schema(example = "res_0123456789abcdef0123")]
    pub id: String,
    /// What it is.
    #[schema(example = "job")]
    pub kind: String,
    /// Your own id for it.
    #[schema(example = "nightly-build")]
    pub external_ref: Option<String>,
    /// The secret names it may fetch.
    #[schema(example = json!(["github_token"]))]
    pub grants: Vec<String>,
    /// When registered.
    #[schema(format = DateTime, example = "2026-01-02T03:04:05Z")]
    pub created_at: String,
    /// When revoked, if it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime, example = "2026-01-05T00:00:00Z")]
    pub revoked_at: Option<String>,
}

impl From<&ownership_core::ports::ResourceRecord> for ResourceView {
    fn from(r: &ownership_core::ports::ResourceRecord) -> Self {
        Self {
            id: r.id.to_string(),
            kind: r.kind.clone(),
            external_ref: r.external_ref.clone(),
            grants: r.grants.iter().map(ToString::to_string).collect(),
            created_at: rfc3339(r.created_at),
            revoked_at: r.revoked_at.map(rfc3339),
        }
    }
}

/// A new resource with its token, shown once. `Debug` never shows the token.
#[derive(Serialize, ToSchema)]
pub struct NewResourceView {
    /// The resource.
    #[serde(flatten)]
    pub meta: ResourceView,
    /// Its resource token: shown once, never again.
    #[schema(example = "own_r_8Hk2LmN4pQ6rS8tU0vW2xY4zA6bC8dE0fG2hJ4kM6nP8qR0sT2u")]
    pub token: String,
}

impl std::fmt::Debug for NewResourceView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewResourceView")
            .field("meta", &self.meta)
            .finish_non_exhaustive()
    }
}

/// `GET /v1/me/resources`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResourceList {
    /// The caller's resources, newest first.
    pub resources: Vec<ResourceView>,
}

/// `GET /v1/resource/credentials`: the granted secrets by name. `Debug` never shows them.
#[derive(Serialize, ToSchema)]
pub struct Credentials {
    /// Name → value.
    #[schema(example = json!({"github_token": "ghp_example-value"}))]
    pub secrets: std::collections::BTreeMap<String, String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("names", &self.secrets.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// `PUT /v1/me/webhook`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookRequest {
    /// The endpoint: `https://`, a public host, no user information, no fragment, at most
    /// 2048 bytes. The host must resolve to public addresses only (else 400).
    #[schema(
        example = "https://hooks.example.org/ownership",
        max_length = 2048,
        pattern = "^https://([A-Za-z0-9-]+[.])*[A-Za-z][A-Za-z0-9-]*(:[0-9]{1,4})?(/[^\\s\\u0000-\\u001f\\u007f-\\u009f#]*)?([?][^\\s\\u0000-\\u001f\\u007f-\\u009f#]*)?$"
    )]
    pub url: String,
}

/// The caller's endpoint (never its signing secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookView {
    /// The endpoint URL.
    #[schema(example = "https://hooks.example.org/ownership")]
    pub url: String,
    /// When it was set.
    #[schema(format = DateTime, example = "2026-01-02T03:04:05Z")]
    pub created_at: String,
    /// While a rotation's grace lasts, when the previous secret stops signing.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime, example = "2026-01-03T03:04:05Z")]
    pub previous_secret_expires_at: Option<String>,
}

impl From<&ownership_core::ports::WebhookEndpoint> for WebhookView {
    fn from(e: &ownership_core::ports::WebhookEndpoint) -> Self {
        Self {
            url: e.url.as_str().to_owned(),
            created_at: rfc3339(e.created_at),
            previous_secret_expires_at: e
                .previous_secret
                .as_ref()
                .map(|(_, until)| rfc3339(*until)),
        }
    }
}

/// The endpoint with its new signing secret, shown once. `Debug` never shows the secret.
#[derive(Serialize, ToSchema)]
pub struct NewWebhookView {
    /// The endpoint URL.
    #[schema(example = "https://hooks.example.org/ownership")]
    pub url: String,
    /// When it was set.
    #[schema(format = DateTime, example = "2026-01-02T03:04:05Z")]
    pub created_at: String,
    /// The signing secret (`whsec_…`): shown once, never again.
    #[schema(example = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]
    pub secret: String,
}

impl std::fmt::Debug for NewWebhookView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewWebhookView")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// `POST /v1/me/webhook/rotate-secret`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateWebhookRequest {
    /// Keep the old secret signing beside the new one this many seconds (default 0, at
    /// most 30 days).
    #[schema(example = 86400, minimum = 0, maximum = 2592000)]
    pub grace_seconds: Option<u64>,
}

/// A rotated signing secret, shown once. `Debug` never shows it.
#[derive(Serialize, ToSchema)]
pub struct RotatedWebhookSecret {
    /// The new signing secret (`whsec_…`): shown once, never again.
    #[schema(example = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD")]
    pub secret: String,
    /// When the previous secret stops signing (absent when it stopped at once).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime, example = "2026-01-03T03:04:05Z")]
    pub previous_secret_expires_at: Option<String>,
}

impl std::fmt::Debug for RotatedWebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotatedWebhookSecret")
            .finish_non_exhaustive()
    }
}

/// One webhook delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    /// Its id (the `webhook-id` header).
    #[schema(example = "msg_0123456789abcdef0123")]
    pub id: String,
    /// The event type (`token.revoked`).
    #[schema(example = "token.revoked")]
    pub event_type: String,
    /// `pending`, `delivered` or `failed`.
    #[schema(example = "delivered")]
    pub state: String,
    /// Attempts so far.
    #[schema(example = 1)]
    pub attempts: u32,
    /// When the next attempt is due (meaningful while pending).
    #[schema(format = DateTime, example = "2026-01-02T03:04:05Z")]
    pub next_attempt_at: String,
    /// The last attempt's outcome (`HTTP 200`, `timeout`, …).
    #[schema(example = "HTTP 200")]
    pub last_result: Option<String>,
    /// When it was queued.
    #[schema(format = DateTime, example = "2026-01-02T03:04:05Z")]
    pub created_at: String,
    /// The JSON body sent.
    #[schema(value_type = Object, example = json!({"type": "token.revoked", "timestamp": "2026-01-02T03:04:05Z", "data": {"seq": 43, "action": "token.revoked", "target": "tok_0123456789abcdef0123"}}))]
    pub payload: serde_json::Value,
}

impl From<&ownership_core::ports::Delivery> for DeliveryView {
    fn from(d: &ownership_core::ports::Delivery) -> Self {
        Self {
            id: d.id.to_string(),
            event_type: d.event_type.clone(),
            state: d.state.as_str().to_owned(),
            attempts: d.attempts,
            next_attempt_at: rfc3339(d.next_attempt_at),
            last_result: d.last_result.clone(),
            created_at: rfc3339(d.created_at),
            payload: serde_json::from_str(&d.payload).unwrap_or(serde_json::Value::Null),
        }
    }
}

/// `GET /v1/me/webhook/deliveries`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    /// Deliveries, newest first.
    pub deliveries: Vec<DeliveryView>,
    /// Cursor for the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "1767323045000000:17")]
    pub next: Option<String>,
}

/// `POST /v1/me/events/ticket`: a single-use ticket for the event stream.
#[derive(Debug, Serialize, ToSchema)]
pub struct StreamTicketView {
    /// The ticket, for `GET /v1/me/events?ticket=…`: works once; shown once.
    #[schema(example = "ticket_9f2c4e6a8b0d1f3e5a7c9b1d3f5e7a9c0b2d4f6e8a1c3e5b7d9f0a2c4e6b8d0f")]
    pub ticket: String,
    /// When it stops working.
    #[schema(format = DateTime, example = "2026-01-01T12:01:00Z")]
    pub expires_at: String,
    /// Seconds until then (60, or less when the calling token expires sooner).
    #[schema(example = 60)]
    pub expires_in_seconds: i64,
}
