//! The bodies of docs/api.md, as the client reads and sends them. Ids, names, roles and
//! kinds are `ownership-core`'s validated types, so an answer that does not parse is an
//! [`Error::Unexpected`](crate::Error::Unexpected), never a silently wrong value; times
//! are [`OffsetDateTime`]s read from RFC 3339.

use std::collections::BTreeMap;
use std::fmt;

use ownership_core::ids::{DeliveryId, PairingRequestId, ResourceId, SecretName, TokenId};
use ownership_core::{ChannelName, ExternalId, OwnerId, TokenKind, UserRole, UserStatus};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// A value shown once (a token, a signing secret, a secret's value). `Debug` never shows
/// it; [`Secret::expose`] does.
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(****)")
    }
}

/// A user and their first token (`POST /v1/bootstrap`, `POST /v1/admin/users`).
#[derive(Debug, Clone, Deserialize)]
pub struct UserWithToken {
    /// The user's id.
    pub user_id: OwnerId,
    /// Their role.
    pub role: UserRole,
    /// Their status.
    pub status: UserStatus,
    /// Their first token: shown once.
    pub token: Secret,
}

/// A user.
#[derive(Debug, Clone, Deserialize)]
pub struct User {
    /// Id.
    pub user_id: OwnerId,
    /// Role.
    pub role: UserRole,
    /// Status.
    pub status: UserStatus,
    /// When created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// A page of `GET /v1/admin/users`.
#[derive(Debug, Clone, Deserialize)]
pub struct UserPage {
    /// Users, by id.
    pub users: Vec<User>,
    /// The cursor of the next page; `None` on the last.
    pub next: Option<String>,
}

/// The token behind a request (`GET /v1/me`).
#[derive(Debug, Clone, Deserialize)]
pub struct MeToken {
    /// Its id.
    pub id: TokenId,
    /// Its kinds.
    pub kinds: Vec<TokenKind>,
    /// When it stops working, if ever.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

/// `GET /v1/me`.
#[derive(Debug, Clone, Deserialize)]
pub struct Me {
    /// The caller's id.
    pub user_id: OwnerId,
    /// Their role.
    pub role: UserRole,
    /// The token used.
    pub token: MeToken,
}

/// A token, never its value.
#[derive(Debug, Clone, Deserialize)]
pub struct Token {
    /// Id.
    pub id: TokenId,
    /// Kinds.
    pub kinds: Vec<TokenKind>,
    /// Label.
    pub label: Option<String>,
    /// The first characters of the value.
    pub display_prefix: String,
    /// `issued`, `provisioned` or `legacy`.
    pub origin: String,
    /// When made.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it stops working, if ever.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// When revoked (or, during a rotation's grace, when it will be).
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    /// When last used.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
}

/// A new token with its value, shown once.
#[derive(Debug, Clone, Deserialize)]
pub struct NewToken {
    /// The token's metadata.
    #[serde(flatten)]
    pub meta: Token,
    /// The value: shown once.
    pub token: Secret,
}

#[derive(Deserialize)]
pub(crate) struct TokenList {
    pub(crate) tokens: Vec<Token>,
}

/// `POST /v1/me/tokens`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CreateToken {
    /// Kinds, a subset of the calling token's.
    pub kinds: Vec<TokenKind>,
    /// Optional label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Optional lifetime in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in_seconds: Option<u64>,
}

/// A bound chat account.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Identity {
    /// Channel.
    pub channel: ChannelName,
    /// The sender's id on it.
    pub external_id: ExternalId,
    /// Its owner.
    pub owner_id: OwnerId,
}

#[derive(Deserialize)]
pub(crate) struct IdentityList {
    pub(crate) identities: Vec<Identity>,
}

/// An audit event.
#[derive(Debug, Clone, Deserialize)]
pub struct Event {
    /// Position in the chain.
    pub seq: i64,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Who acted.
    pub actor: String,
    /// Whose object.
    pub owner_id: Option<OwnerId>,
    /// What happened (`user.created`, `token.minted`, …).
    pub action: String,
    /// Which object.
    pub target: String,
    /// Details.
    pub details: serde_json::Value,
    /// This event's link in the audit chain (64 hex digits).
    pub hash: String,
    /// The link of the event before it (64 hex digits).
    pub prev_hash: String,
}

/// A page of an audit listing.
#[derive(Debug, Clone, Deserialize)]
pub struct EventPage {
    /// Events, newest first.
    pub events: Vec<Event>,
    /// The cursor of the next page; `None` on the last.
    pub next: Option<String>,
}

/// A pairing code for a sender.
#[derive(Debug, Clone, Deserialize)]
pub struct PairingCode {
    /// The code, `ABCD-EFGH`: shown to the person, who redeems it.
    pub code: Secret,
    /// When it expires.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// True when this call made it (201), false when the account's code was still
    /// pending (200).
    pub created: bool,
}

/// `GET /v1/channels/{channel}/identities/{external_id}`.
#[derive(Debug, Clone, Deserialize)]
pub struct ResolvedIdentity {
    /// The owner the chat account is bound to.
    pub owner_id: OwnerId,
    /// Their role.
    pub role: UserRole,
}

/// A pending pairing request, never its code.
#[derive(Debug, Clone, Deserialize)]
pub struct PendingPairing {
    /// Its id.
    pub id: PairingRequestId,
    /// The sender.
    pub external_id: ExternalId,
    /// Adapter data.
    pub meta: Option<serde_json::Value>,
    /// When asked.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it expires.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

#[derive(Deserialize)]
pub(crate) struct PendingList {
    pub(crate) requests: Vec<PendingPairing>,
}

/// A stream ticket (`POST /v1/me/events/ticket`).
#[derive(Debug, Clone, Deserialize)]
pub struct StreamTicket {
    /// The ticket: works once.
    pub ticket: Secret,
    /// When it stops working.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// Seconds until then.
    pub expires_in_seconds: i64,
}

/// The receipt of a leaked-token report (`POST /v1/tokens/revoke-leaked`).
#[derive(Debug, Clone, Deserialize)]
pub struct LeakReceipt {
    /// How many values the report carried.
    pub received: usize,
}

/// GitHub's feedback on one match (`POST /v1/secret-scanning/github`).
#[derive(Debug, Clone, Deserialize)]
pub struct GitHubLabel {
    /// SHA-256 of the value, in hex.
    pub token_hash: String,
    /// The secret type GitHub sent.
    pub token_type: String,
    /// `true_positive` or `false_positive`.
    pub label: String,
}

/// The verdict on a token (`POST /v1/tokens/verify`).
#[derive(Debug, Clone, Deserialize)]
pub struct Verdict {
    /// Whether it is valid now.
    pub valid: bool,
    /// Its owner, when valid.
    pub owner_id: Option<OwnerId>,
    /// Their role, when valid.
    pub role: Option<UserRole>,
    /// Its kinds, when valid.
    pub kinds: Option<Vec<TokenKind>>,
}

/// `GET /healthz`, `GET /readyz`.
#[derive(Debug, Clone, Deserialize)]
pub struct Health {
    /// `ok` or `unavailable`.
    pub status: String,
}

/// A secret's metadata, never its value.
#[derive(Debug, Clone, Deserialize)]
pub struct SecretMeta {
    /// Its name.
    pub name: SecretName,
    /// When first written.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When last written.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

#[derive(Deserialize)]
pub(crate) struct SecretList {
    pub(crate) secrets: Vec<SecretMeta>,
}

/// `POST /v1/me/resources`.
#[derive(Debug, Clone, Serialize)]
pub struct CreateResource {
    /// What it is (`job`, say): 1–64 bytes.
    pub kind: String,
    /// Your own id for it (at most 256 bytes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_ref: Option<String>,
    /// Names of your secrets it may fetch.
    pub grants: Vec<SecretName>,
}

/// A registered resource (never its token).
#[derive(Debug, Clone, Deserialize)]
pub struct Resource {
    /// Its id.
    pub id: ResourceId,
    /// What it is.
    pub kind: String,
    /// Your own id for it.
    pub external_ref: Option<String>,
    /// The secret names it may fetch.
    pub grants: Vec<SecretName>,
    /// When registered.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When revoked, if it was.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

/// A new resource with its token, shown once.
#[derive(Debug, Clone, Deserialize)]
pub struct NewResource {
    /// The resource.
    #[serde(flatten)]
    pub meta: Resource,
    /// Its resource token: shown once.
    pub token: Secret,
}

#[derive(Deserialize)]
pub(crate) struct ResourceList {
    pub(crate) resources: Vec<Resource>,
}

/// `GET /v1/resource/credentials`: the granted secrets by name.
#[derive(Debug, Clone, Deserialize)]
pub struct Credentials {
    /// Name → value.
    pub secrets: BTreeMap<SecretName, Secret>,
}

/// The caller's webhook endpoint (never its signing secret).
#[derive(Debug, Clone, Deserialize)]
pub struct Webhook {
    /// The endpoint URL.
    pub url: String,
    /// When it was set.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// While a rotation's grace lasts, when the previous secret stops signing.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub previous_secret_expires_at: Option<OffsetDateTime>,
}

/// The endpoint with its new signing secret, shown once.
#[derive(Debug, Clone, Deserialize)]
pub struct NewWebhook {
    /// The endpoint URL.
    pub url: String,
    /// When it was set.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// The signing secret (`whsec_…`): shown once.
    pub secret: Secret,
}

/// A rotated signing secret, shown once.
#[derive(Debug, Clone, Deserialize)]
pub struct RotatedWebhookSecret {
    /// The new signing secret.
    pub secret: Secret,
    /// When the previous secret stops signing (absent when it stopped at once).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub previous_secret_expires_at: Option<OffsetDateTime>,
}

/// One webhook delivery.
#[derive(Debug, Clone, Deserialize)]
pub struct Delivery {
    /// Its id (the `webhook-id` header).
    pub id: DeliveryId,
    /// The event type (`token.revoked`).
    pub event_type: String,
    /// `pending`, `delivered` or `failed`.
    pub state: String,
    /// Attempts so far.
    pub attempts: u32,
    /// When the next attempt is due (meaningful while pending).
    #[serde(with = "time::serde::rfc3339")]
    pub next_attempt_at: OffsetDateTime,
    /// The last attempt's outcome (`HTTP 200`, `timeout`, …).
    pub last_result: Option<String>,
    /// When it was queued.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// The JSON body sent.
    pub payload: serde_json::Value,
}

/// A page of `GET /v1/me/webhook/deliveries`.
#[derive(Debug, Clone, Deserialize)]
pub struct DeliveryPage {
    /// Deliveries, newest first.
    pub deliveries: Vec<Delivery>,
    /// The cursor of the next page; `None` on the last.
    pub next: Option<String>,
}

/// A page of a listing that pages (`?after=&limit=`).
pub trait Page: serde::de::DeserializeOwned + Send + 'static {
    /// One row.
    type Item: Send + 'static;
    /// The rows and the cursor of the next page.
    fn split(self) -> (Vec<Self::Item>, Option<String>);
}

impl Page for UserPage {
    type Item = User;
    fn split(self) -> (Vec<User>, Option<String>) {
        (self.users, self.next)
    }
}

impl Page for EventPage {
    type Item = Event;
    fn split(self) -> (Vec<Event>, Option<String>) {
        (self.events, self.next)
    }
}

impl Page for DeliveryPage {
    type Item = Delivery;
    fn split(self) -> (Vec<Delivery>, Option<String>) {
        (self.deliveries, self.next)
    }
}
