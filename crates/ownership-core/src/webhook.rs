//! Webhook signatures (docs/webhooks.md; header formats in `docs/tokens.md`).
//!
//! Every delivery carries two signatures so receivers can use either family's stock
//! verifier:
//!
//! - [Standard Webhooks](https://www.standardwebhooks.com/): `webhook-id`,
//!   `webhook-timestamp` and `webhook-signature: v1,<base64>`, the HMAC-SHA256 of
//!   `<id>.<timestamp>.<body>` keyed with the base64-decoded part of the `whsec_` secret
//!   ([`standard_sign`], [`standard_verify`]);
//! - Stripe style: `Ownership-Signature: t=<unix>,v1=<hex>`, the HMAC-SHA256 of
//!   `<t>.<body>` keyed (as Stripe does) with the whole secret string, prefix included
//!   ([`stripe_sign`], [`stripe_verify`]).
//!
//! During a signing-secret rotation both secrets sign ([`sign_headers`]) and a verifier
//! accepts a match with any secret it is given. Comparisons are constant-time. Time is a
//! parameter: verification takes the receiver's clock as `now_unix`.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use crate::RandomSource;
use crate::audit::AuditEvent;
use crate::authz::{AdminScope, OwnerScope, SystemScope};
use crate::crypto::{self, MasterKeys, Sealed};
use crate::db::{self, Transactions, Tx};
use crate::error::{Error, Result};
use crate::events;
use crate::ids::{DeliveryId, OwnerId};
use crate::paging::{Page, PageRequest};
use crate::secrets::active_owner;
use crate::token::hmac_sha256;
use crate::tokens::check_grace;
use crate::users::UserStore;

/// Default timestamp tolerance of the verifiers, in seconds, either way.
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;

/// The prefix of a signing secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// Random bytes in a generated secret.
pub const SECRET_BYTES: usize = 32;

/// Fewest key bytes a parsed secret may decode to (the Standard Webhooks examples use 24).
pub const SECRET_MIN_BYTES: usize = 24;

/// Most key bytes a parsed secret may decode to.
pub const SECRET_MAX_BYTES: usize = 64;

/// Standard base64 that accepts the key with or without `=` padding.
const LENIENT_STANDARD: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A webhook signing secret, `whsec_<base64 of the key>`. Secret: `Debug` is redacted,
/// equality is constant-time, and the value is shown once on creation or rotation.
#[derive(Clone)]
pub struct WebhookSecret {
    /// The whole secret string (the Stripe-style key).
    text: String,
    /// The decoded part after the prefix (the Standard Webhooks key).
    key: Vec<u8>,
}

impl WebhookSecret {
    /// A new secret of 32 random bytes: `whsec_` and 44 characters of padded base64.
    pub fn generate(rng: &mut dyn RandomSource) -> Self {
        let mut key = vec![0_u8; SECRET_BYTES];
        rng.fill(&mut key);
        let text = format!("{SECRET_PREFIX}{}", STANDARD.encode(&key));
        Self { text, key }
    }

    /// Parses `whsec_<base64>` whose key decodes to 24 to 64 bytes (padding optional).
    /// Errors never echo the input.
    pub fn parse(raw: &str) -> Result<Self> {
        let encoded = raw
            .strip_prefix(SECRET_PREFIX)
            .ok_or_else(|| Error::invalid("webhook_secret", "must start with `whsec_`"))?;
        let key = LENIENT_STANDARD
            .decode(encoded)
            .map_err(|_| Error::invalid("webhook_secret", "must be `whsec_` followed by base64"))?;
        if !(SECRET_MIN_BYTES..=SECRET_MAX_BYTES).contains(&key.len()) {
            return Err(Error::invalid(
                "webhook_secret",
                format!("key must be {SECRET_MIN_BYTES} to {SECRET_MAX_BYTES} bytes"),
            ));
        }
        Ok(Self {
            text: raw.to_owned(),
            key,
        })
    }

    /// Seals this secret for `owner` under `master` (the current master key), for storage.
    pub fn seal(
        &self,
        master: &crypto::MasterKey,
        owner: &OwnerId,
        rng: &mut dyn RandomSource,
    ) -> Result<Sealed> {
        crypto::seal_webhook_secret(master, owner, self.text.as_bytes(), rng)
    }

    /// Opens `owner`'s stored secret with the master key version it was sealed under.
    /// [`Error::Integrity`] when that version is not held or the secret does not open or
    /// parse.
    pub fn open(keys: &MasterKeys, owner: &OwnerId, sealed: &Sealed) -> Result<Self> {
        let text = crypto::open_webhook_secret(keys, owner, sealed)?;
        Self::parse(&text)
            .map_err(|_| Error::Integrity("the webhook signing secret does not parse".into()))
    }

    /// The whole secret string, to show once or to encrypt for storage. Never log it.
    pub fn expose(&self) -> &str {
        &self.text
    }

    /// The HMAC key of the Standard Webhooks scheme: the decoded part after `whsec_`.
    pub fn key_bytes(&self) -> Vec<u8> {
        self.key.clone()
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(****)")
    }
}

impl PartialEq for WebhookSecret {
    fn eq(&self, other: &Self) -> bool {
        self.text.as_bytes().ct_eq(other.text.as_bytes()).into()
    }
}

impl Eq for WebhookSecret {}

/// Why a webhook signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// A header is missing its parts or its timestamp is not a plain integer.
    #[error("malformed webhook signature headers")]
    Malformed,
    /// The timestamp is further from the receiver's clock than the tolerance.
    #[error("webhook timestamp outside the tolerance")]
    Timestamp,
    /// No `v1` signature matches any of the secrets.
    #[error("no matching webhook signature")]
    Signature,
}

/// The Standard Webhooks signature of one message: `v1,<base64 of
/// HMAC-SHA256(key_bytes, "{msg_id}.{timestamp}.{body}")>`.
pub fn standard_sign(secret: &WebhookSecret, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let mac = standard_mac(secret, msg_id, &timestamp.to_string(), body);
    format!("v1,{}", STANDARD.encode(mac))
}

/// Verifies a Standard Webhooks delivery.
///
/// `signature_header` holds one or more space-separated `<version>,<signature>` entries;
/// entries of other versions are ignored. It succeeds when any `v1` entry matches any of
/// `secrets`. Errors, checked in this order: [`WebhookError::Malformed`] when the
/// timestamp is not a plain decimal integer, `msg_id` is empty or the header holds no
/// `<version>,<signature>` entry; [`WebhookError::Timestamp`] when the timestamp is more
/// than `tolerance_secs` from `now_unix` either way; [`WebhookError::Signature`]
/// otherwise.
pub fn standard_verify(
    secrets: &[&WebhookSecret],
    msg_id: &str,
    timestamp_header: &str,
    signature_header: &str,
    body: &[u8],
    now_unix: i64,
    tolerance_secs: i64,
) -> Result<(), WebhookError> {
    let timestamp = parse_timestamp(timestamp_header)?;
    let entries: Vec<(&str, &str)> = signature_header
        .split_ascii_whitespace()
        .filter_map(|entry| entry.split_once(','))
        .collect();
    if msg_id.is_empty() || entries.is_empty() {
        return Err(WebhookError::Malformed);
    }
    check_timestamp(timestamp, now_unix, tolerance_secs)?;
    let presented: Vec<Vec<u8>> = entries
        .iter()
        .filter(|(version, _)| *version == "v1")
        .filter_map(|(_, signature)| STANDARD.decode(signature).ok())
        .collect();
    let matched = secrets.iter().any(|secret| {
        let expected = standard_mac(secret, msg_id, timestamp_header, body);
        presented
            .iter()
            .any(|p| bool::from(p.as_slice().ct_eq(&expected)))
    });
    if matched {
        Ok(())
    } else {
        Err(WebhookError::Signature)
    }
}

/// The Stripe-style signature header for one secret: `t=<timestamp>,v1=<lower hex
/// HMAC-SHA256 keyed with the whole secret string, over "{timestamp}.{body}">`.
pub fn stripe_sign(secret: &WebhookSecret, timestamp: i64, body: &[u8]) -> String {
    let mac = stripe_mac(secret, &timestamp.to_string(), body);
    format!("t={timestamp},v1={}", hex::encode(mac))
}

/// Verifies a Stripe-style `Ownership-Signature` header.
///
/// The header is comma-separated `key=value` items: exactly one `t=<unix>` and any
/// number of `v1=<hex>` (other keys are ignored). It succeeds when any `v1` matches any
/// of `secrets`. Errors, checked in this order: [`WebhookError::Malformed`] when `t` is
/// missing, repeated or not a plain decimal integer, or an item has no `=`;
/// [`WebhookError::Timestamp`] when `t` is more than `tolerance_secs` from `now_unix`
/// either way; [`WebhookError::Signature`] otherwise (including a header without `v1`).
pub fn stripe_verify(
    secrets: &[&WebhookSecret],
    header: &str,
    body: &[u8],
    now_unix: i64,
    tolerance_secs: i64,
) -> Result<(), WebhookError> {
    let mut timestamp_text = None;
    let mut presented = Vec::new();
    for item in header.split(',') {
        let (key, value) = item.trim().split_once('=').ok_or(WebhookError::Malformed)?;
        match key {
            "t" if timestamp_text.is_none() => timestamp_text = Some(value),
            "t" => return Err(WebhookError::Malformed),
            "v1" => {
                if let Ok(signature) = hex::decode(value) {
                    presented.push(signature);
                }
            }
            _ => {}
        }
    }
    let timestamp_text = timestamp_text.ok_or(WebhookError::Malformed)?;
    let timestamp = parse_timestamp(timestamp_text)?;
    check_timestamp(timestamp, now_unix, tolerance_secs)?;
    let matched = secrets.iter().any(|secret| {
        let expected = stripe_mac(secret, timestamp_text, body);
        presented
            .iter()
            .any(|p| bool::from(p.as_slice().ct_eq(&expected)))
    });
    if matched {
        Ok(())
    } else {
        Err(WebhookError::Signature)
    }
}

/// The signature headers of one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeaders {
    /// `webhook-id`: the message id, the same across retries.
    pub webhook_id: String,
    /// `webhook-timestamp`: unix seconds of this attempt.
    pub webhook_timestamp: String,
    /// `webhook-signature`: one `v1,<base64>` per secret, space-separated.
    pub webhook_signature: String,
    /// `Ownership-Signature`: `t=<unix>` then one `,v1=<hex>` per secret.
    pub ownership_signature: String,
}

/// Signs one delivery with every secret in `secrets` (the current one, and the previous
/// one during a rotation's grace period), in both schemes.
pub fn sign_headers(
    secrets: &[&WebhookSecret],
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> SignatureHeaders {
    let webhook_signature = secrets
        .iter()
        .map(|secret| standard_sign(secret, msg_id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ");
    let mut ownership_signature = format!("t={timestamp}");
    for secret in secrets {
        ownership_signature.push_str(",v1=");
        ownership_signature.push_str(&hex::encode(stripe_mac(
            secret,
            &timestamp.to_string(),
            body,
        )));
    }
    SignatureHeaders {
        webhook_id: msg_id.to_owned(),
        webhook_timestamp: timestamp.to_string(),
        webhook_signature,
        ownership_signature,
    }
}

fn standard_mac(secret: &WebhookSecret, msg_id: &str, timestamp: &str, body: &[u8]) -> [u8; 32] {
    hmac_sha256(
        &secret.key,
        &[msg_id.as_bytes(), b".", timestamp.as_bytes(), b".", body],
    )
}

fn stripe_mac(secret: &WebhookSecret, timestamp: &str, body: &[u8]) -> [u8; 32] {
    hmac_sha256(secret.text.as_bytes(), &[timestamp.as_bytes(), b".", body])
}

/// A timestamp header must be the canonical decimal form of an `i64` (what the signer
/// wrote), so the signed text and the parsed value cannot disagree.
fn parse_timestamp(text: &str) -> Result<i64, WebhookError> {
    let value: i64 = text.parse().map_err(|_| WebhookError::Malformed)?;
    if value.to_string() == text {
        Ok(value)
    } else {
        Err(WebhookError::Malformed)
    }
}

fn check_timestamp(timestamp: i64, now_unix: i64, tolerance_secs: i64) -> Result<(), WebhookError> {
    let tolerance = u64::try_from(tolerance_secs).unwrap_or(0);
    if now_unix.abs_diff(timestamp) > tolerance {
        Err(WebhookError::Timestamp)
    } else {
        Ok(())
    }
}

/// Longest accepted endpoint URL, in bytes.
pub const URL_MAX_BYTES: usize = 2048;

/// A well-formed webhook endpoint URL: at most 2048 bytes, no whitespace or control
/// characters, absolute, `https` or `http`, a non-empty host, no user information, no
/// fragment. This is the shape only. Which destinations are allowed (public addresses only,
/// plain `http` only to loopback with the private-webhooks setting) is a server policy: the
/// `ownership-webhooks` crate checks it when an endpoint is registered and again at every
/// connection, so a URL read back from the store is parsed here and checked there before it
/// is used. Errors are `Invalid` on `url` and never echo the URL.
#[derive(Clone, PartialEq, Eq)]
pub struct EndpointUrl(url::Url);

impl EndpointUrl {
    /// Parses and checks the shape of an endpoint URL.
    pub fn parse(raw: &str) -> Result<Self> {
        let refuse = |reason: &str| Error::invalid("url", reason.to_owned());
        if raw.len() > URL_MAX_BYTES {
            return Err(refuse("must be at most 2048 bytes"));
        }
        if raw.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(refuse("must not contain whitespace or control characters"));
        }
        let url = url::Url::parse(raw).map_err(|_| refuse("is not an absolute URL"))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(refuse("must not carry user information"));
        }
        if url.fragment().is_some() {
            return Err(refuse("must not have a fragment"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(refuse("must name a host"));
        }
        if !matches!(url.scheme(), "https" | "http") {
            return Err(refuse("must use https"));
        }
        Ok(Self(url))
    }

    /// The URL as text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The parsed URL.
    pub fn url(&self) -> &url::Url {
        &self.0
    }
}

/// Shown redacted ([`crate::ids::redacted_url`]): receivers often carry a secret in the query.
impl fmt::Debug for EndpointUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "EndpointUrl({})",
            crate::ids::redacted_url(self.as_str())
        )
    }
}

/// An owner's webhook endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEndpoint {
    /// Whose.
    pub owner_id: OwnerId,
    /// Where deliveries go.
    pub url: EndpointUrl,
    /// The signing secret, sealed.
    pub secret: Sealed,
    /// The previous secret and when its grace ends, during a rotation.
    pub previous_secret: Option<(Sealed, OffsetDateTime)>,
    /// When set.
    pub created_at: OffsetDateTime,
}

/// The state of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// Waiting for its next attempt.
    Pending,
    /// Answered with a 2xx.
    Delivered,
    /// Out of attempts.
    Failed,
}

impl DeliveryState {
    /// Storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    /// Parses the storage name.
    pub fn parse(raw: &str) -> Result<Self> {
        match raw {
            "pending" => Ok(Self::Pending),
            "delivered" => Ok(Self::Delivered),
            "failed" => Ok(Self::Failed),
            _ => Err(crate::Error::Integrity("unknown delivery state".into())),
        }
    }
}

/// A webhook delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Public id (also the `webhook-id` header).
    pub id: DeliveryId,
    /// Whose.
    pub owner_id: OwnerId,
    /// The event type (`token.revoked`).
    pub event_type: String,
    /// The JSON body sent.
    pub payload: String,
    /// State.
    pub state: DeliveryState,
    /// Attempts so far.
    pub attempts: u32,
    /// When the next attempt is due.
    pub next_attempt_at: OffsetDateTime,
    /// The last HTTP status or error, short.
    pub last_result: Option<String>,
    /// When enqueued.
    pub created_at: OffsetDateTime,
}

/// Webhook endpoints and their delivery log.
#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Sets (or replaces) the owner's endpoint with a new signing secret.
    async fn put_endpoint(
        &self,
        scope: &OwnerScope,
        url: &EndpointUrl,
        secret: Sealed,
    ) -> Result<WebhookEndpoint>;
    /// The owner's endpoint.
    async fn get_endpoint(&self, scope: &OwnerScope) -> Result<Option<WebhookEndpoint>>;
    /// Removes it. [`crate::Error::NotFound`] if none.
    async fn delete_endpoint(&self, scope: &OwnerScope) -> Result<()>;
    /// Rotates the signing secret; the old one keeps signing until `grace_until`.
    async fn rotate_endpoint_secret(
        &self,
        scope: &OwnerScope,
        secret: Sealed,
        grace_until: OffsetDateTime,
    ) -> Result<WebhookEndpoint>;
    /// Queues a delivery for an owner with an endpoint; `None` if they have none.
    async fn enqueue_delivery(
        &self,
        scope: &SystemScope,
        owner: &OwnerId,
        id: DeliveryId,
        event_type: &str,
        payload: &str,
    ) -> Result<Option<Delivery>>;
    /// Pending deliveries due at or before now, with their endpoints, taken fairly: at
    /// most `per_owner` of each owner (their oldest), in turns (every owner's oldest, by
    /// age, then every owner's second oldest, …), at most `limit` in all. One owner with a
    /// long queue takes `per_owner` places, whatever its backlog.
    async fn due_deliveries(
        &self,
        scope: &SystemScope,
        limit: u32,
        per_owner: u32,
    ) -> Result<Vec<(Delivery, WebhookEndpoint)>>;
    /// Holds the owner's pending deliveries due before `until` back until then, without
    /// counting an attempt (the worker's circuit breaker, while an endpoint is failing);
    /// their `last_result` says so ([`HELD_BACK`]). How many were held.
    async fn defer_deliveries(
        &self,
        scope: &SystemScope,
        owner: &OwnerId,
        until: OffsetDateTime,
    ) -> Result<u64>;
    /// Records an attempt's outcome and the next state.
    async fn record_attempt(
        &self,
        scope: &SystemScope,
        id: &DeliveryId,
        state: DeliveryState,
        next_attempt_at: OffsetDateTime,
        result: &str,
    ) -> Result<()>;
    /// The owner's deliveries, newest first.
    async fn list_deliveries(
        &self,
        scope: &OwnerScope,
        page: &PageRequest,
    ) -> Result<Page<Delivery>>;
}

impl WebhookEndpoint {
    /// The endpoint as it stands at `now`: the previous secret only while its grace lasts.
    pub fn at(mut self, now: OffsetDateTime) -> Self {
        if self
            .previous_secret
            .as_ref()
            .is_some_and(|(_, until)| *until <= now)
        {
            self.previous_secret = None;
        }
        self
    }
}

/// An endpoint's previous secret from its four stored columns (nonce, ciphertext, key
/// version, end of grace): all set, or none; anything else is [`Error::Integrity`].
pub fn previous_secret_of(
    nonce: Option<Vec<u8>>,
    ciphertext: Option<Vec<u8>>,
    key_version: Option<i64>,
    until: Option<OffsetDateTime>,
) -> Result<Option<(Sealed, OffsetDateTime)>> {
    let damaged = || Error::Integrity("webhook previous secret".into());
    match (nonce, ciphertext, key_version, until) {
        (Some(nonce), Some(ciphertext), Some(version), Some(until)) => Ok(Some((
            Sealed {
                nonce: <[u8; 12]>::try_from(nonce.as_slice()).map_err(|_| damaged())?,
                ciphertext,
                key_version: u32::try_from(version).map_err(|_| damaged())?,
            },
            until,
        ))),
        (None, None, None, None) => Ok(None),
        _ => Err(damaged()),
    }
}

/// The `last_result` of a delivery held back while its endpoint's circuit is open (its
/// `next_attempt_at` says until when).
pub const HELD_BACK: &str = "circuit open: waiting for the endpoint's cool-down";

/// Where a delivery listing stands: the `created_at` and id of the last item shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryCursor {
    /// When the last item was enqueued.
    pub created_at: OffsetDateTime,
    /// Its id (ties on `created_at` are ordered by id).
    pub id: DeliveryId,
}

impl DeliveryCursor {
    /// The cursor after `d`: `<created_at in unix microseconds>:<id>`.
    pub fn after(d: &Delivery) -> String {
        format!("{}:{}", d.created_at.unix_timestamp_nanos() / 1_000, d.id)
    }

    /// Parses a cursor of [`DeliveryCursor::after`]; anything else is an invalid `cursor`.
    pub fn parse(raw: &str) -> Result<Self> {
        let bad = || Error::invalid("cursor", "not a cursor from a previous page");
        let (micros, id) = raw.split_once(':').ok_or_else(bad)?;
        let micros: i128 = micros.parse().map_err(|_| bad())?;
        let created_at = micros
            .checked_mul(1_000)
            .and_then(|nanos| OffsetDateTime::from_unix_timestamp_nanos(nanos).ok())
            .ok_or_else(bad)?;
        let id = DeliveryId::parse(id).map_err(|_| bad())?;
        Ok(Self { created_at, id })
    }
}

/// The webhook rows a transaction reads and writes: SQL and row mapping, no decisions.
#[async_trait]
pub trait WebhookRows: Tx {
    /// Inserts or replaces the owner's endpoint (no previous secret), set `at`.
    async fn upsert_endpoint(
        &mut self,
        owner: &OwnerId,
        url: &EndpointUrl,
        secret: &Sealed,
        at: OffsetDateTime,
    ) -> Result<()>;
    /// The owner's endpoint, its previous secret as stored (whatever its grace).
    async fn endpoint(&mut self, owner: &OwnerId) -> Result<Option<WebhookEndpoint>>;
    /// Deletes the owner's endpoint. Whether there was one.
    async fn remove_endpoint(&mut self, owner: &OwnerId) -> Result<bool>;
    /// Makes the current secret the previous one (kept until `until`) and `secret` the
    /// current one, updated `at`. Whether the owner has an endpoint.
    async fn shift_endpoint_secret(
        &mut self,
        owner: &OwnerId,
        secret: &Sealed,
        until: OffsetDateTime,
        at: OffsetDateTime,
    ) -> Result<bool>;
    /// Inserts a delivery. A taken id is [`Error::Conflict`].
    async fn insert_delivery(&mut self, delivery: &Delivery) -> Result<()>;
    /// Pending deliveries due at or before `at`, with their endpoints (previous secrets as
    /// stored): each owner's `per_owner` oldest (by `created_at`, then id), ordered by
    /// their rank in their owner's queue, then `created_at`, then id; at most `limit`.
    async fn due_at(
        &mut self,
        at: OffsetDateTime,
        limit: u32,
        per_owner: u32,
    ) -> Result<Vec<(Delivery, WebhookEndpoint)>>;
    /// Sets `next_attempt_at` to `until` and `last_result` to `note` on the owner's pending
    /// deliveries due before `until`, attempts unchanged. How many rows changed.
    async fn defer_pending(
        &mut self,
        owner: &OwnerId,
        until: OffsetDateTime,
        note: &str,
    ) -> Result<u64>;
    /// Sets a delivery's state, next attempt and last result, and counts one attempt.
    /// Whether the delivery exists.
    async fn update_delivery(
        &mut self,
        id: &DeliveryId,
        state: DeliveryState,
        next_attempt_at: OffsetDateTime,
        result: &str,
    ) -> Result<bool>;
    /// At most `limit` of the owner's deliveries, newest first (ties by id, descending),
    /// strictly after `before` in that order when given.
    async fn deliveries_of(
        &mut self,
        owner: &OwnerId,
        before: Option<&DeliveryCursor>,
        limit: u32,
    ) -> Result<Vec<Delivery>>;
}

/// Every database keeps webhooks: each use case once, over [`WebhookRows`].
#[async_trait]
impl<D> WebhookStore for D
where
    D: Transactions,
    D::Tx: WebhookRows,
{
    async fn put_endpoint(
        &self,
        scope: &OwnerScope,
        url: &EndpointUrl,
        secret: Sealed,
    ) -> Result<WebhookEndpoint> {
        let (scope, url) = (scope.clone(), url.clone());
        db::write(self, move |tx| {
            Box::pin(async move {
                let now = tx.now();
                let owner = active_owner(tx, &scope).await?;
                tx.upsert_endpoint(owner, &url, &secret, now).await?;
                tx.append(events::webhook_set(now, scope.actor(), owner, url.as_str()))
                    .await?;
                Ok(WebhookEndpoint {
                    owner_id: owner.clone(),
                    url,
                    secret,
                    previous_secret: None,
                    created_at: now,
                })
            })
        })
        .await
    }

    async fn get_endpoint(&self, scope: &OwnerScope) -> Result<Option<WebhookEndpoint>> {
        let owner = scope.owner().clone();
        self.read(move |tx| {
            Box::pin(async move {
                let now = tx.now();
                Ok(tx.endpoint(&owner).await?.map(|e| e.at(now)))
            })
        })
        .await
    }

    async fn delete_endpoint(&self, scope: &OwnerScope) -> Result<()> {
        let scope = scope.clone();
        db::write(self, move |tx| {
            Box::pin(async move {
                let now = tx.now();
                let owner = scope.owner();
                if !tx.remove_endpoint(owner).await? {
                    return Err(Error::NotFound);
                }
                tx.append(events::webhook_deleted(now, scope.actor(), owner))
                    .await
            })
        })
        .await
    }

    async fn rotate_endpoint_secret(
        &self,
        scope: &OwnerScope,
        secret: Sealed,
        grace_until: OffsetDateTime,
    ) -> Result<WebhookEndpoint> {
        let until = crate::audit::truncate_to_micros(grace_until);
        let scope = scope.clone();
        db::write(self, move |tx| {
            Box::pin(async move {
                let now = tx.now();
                let owner = scope.owner();
                if !tx.shift_endpoint_secret(owner, &secret, until, now).await? {
                    return Err(Error::NotFound);
                }
                tx.append(events::webhook_secret_rotated(
                    now,
                    scope.actor(),
                    owner,
                    until,
                ))
                .await?;
                let endpoint = tx.endpoint(owner).await?.ok_or(Error::NotFound)?;
                Ok(endpoint.at(now))
            })
        })
        .await
    }

    async fn enqueue_delivery(
        &self,
        _scope: &SystemScope,
        owner: &OwnerId,
        id: DeliveryId,
        event_type: &str,
        payload: &str,
    ) -> Result<Option<Delivery>> {
        let (owner, event_type, payload) =
            (owner.clone(), event_type.to_owned(), payload.to_owned());
        db::write(self, move |tx| {
            Box::pin(async move {
                let now = tx.now();
                if tx.endpoint(&owner).await?.is_none() {
                    return Ok(None);
                }
                let delivery = Delivery {
                    id,
                    owner_id: owner,
                    event_type,
                    payload,
                    state: DeliveryState::Pending,
                    attempts: 0,
                    next_attempt_at: now,
                    last_result: None,
                    created_at: now,
                };
                tx.insert_delivery(&delivery).await?;
                Ok(Some(delivery))
            })
        })
        .await
    }

    async fn due_deliveries(
        &self,
        _scope: &SystemScope,
        limit: u32,
        per_owner: u32,
    ) -> Result<Vec<(Delivery, WebhookEndpoint)>> {
        let limit = limit.clamp(1, 500);
        let per_owner = per_owner.clamp(1, limit);
        self.read(move |tx| {
            Box::pin(async move {
                let now = tx.now();
                let due = tx.due_at(now, limit, per_owner).await?;
                Ok(due.into_iter().map(|(d, e)| (d, e.at(now))).collect())
            })
        })
        .await
    }

    async fn defer_deliveries(
        &self,
        _scope: &SystemScope,
        owner: &OwnerId,
        until: OffsetDateTime,
    ) -> Result<u64> {
        let until = crate::audit::truncate_to_micros(until);
        let owner = owner.clone();
        db::write(self, move |tx| {
            Box::pin(async move { tx.defer_pending(&owner, until, HELD_BACK).await })
        })
        .await
    }

    async fn record_attempt(
        &self,
        _scope: &SystemScope,
        id: &DeliveryId,
        state: DeliveryState,
        next_attempt_at: OffsetDateTime,
        result: &str,
    ) -> Result<()> {
        let next = crate::audit::truncate_to_micros(next_attempt_at);
        let (id, result) = (id.clone(), result.to_owned());
        db::write(self, move |tx| {
            Box::pin(async move {
                if !tx.update_delivery(&id, state, next, &result).await? {
                    return Err(Error::NotFound);
                }
                Ok(())
            })
        })
        .await
    }

    async fn list_deliveries(
        &self,
        scope: &OwnerScope,
        page: &PageRequest,
    ) -> Result<Page<Delivery>> {
        let cursor = page
            .after
            .as_deref()
            .map(DeliveryCursor::parse)
            .transpose()?;
        let limit = page.clamped_limit();
        let owner = scope.owner().clone();
        let mut items = self
            .read(move |tx| {
                Box::pin(async move { tx.deliveries_of(&owner, cursor.as_ref(), limit + 1).await })
            })
            .await?;
        let wanted = usize::try_from(limit).unwrap_or(usize::MAX);
        let more = items.len() > wanted;
        items.truncate(wanted);
        let next = more
            .then(|| items.last().map(DeliveryCursor::after))
            .flatten();
        Ok(Page { items, next })
    }
}

/// Owners whose webhook signing secret (or, during a rotation's grace, previous secret) is
/// still sealed under a master key version other than `current_version`, with that
/// version. Signing secrets are sealed under the master key itself, and the ports offer no
/// way for the operator to re-seal them in place: the previous master key must stay
/// configured until this list is empty (an owner re-seals by rotating the secret or
/// setting the webhook again). `ownership secrets rewrap` reports it.
pub async fn stale_webhook_secrets<S: UserStore + WebhookStore + ?Sized>(
    store: &S,
    admin: &AdminScope,
    current_version: u32,
) -> Result<Vec<(OwnerId, u32)>> {
    let mut stale = Vec::new();
    let mut page = crate::paging::PageRequest {
        after: None,
        limit: 500,
    };
    loop {
        let users = store.list_users(admin, &page).await?;
        for user in &users.items {
            let scope = OwnerScope::for_operator(admin, user.id.clone())?;
            let Some(endpoint) = store.get_endpoint(&scope).await? else {
                continue;
            };
            let versions = std::iter::once(endpoint.secret.key_version)
                .chain(endpoint.previous_secret.iter().map(|(s, _)| s.key_version));
            if let Some(old) = versions.into_iter().find(|v| *v != current_version) {
                stale.push((user.id.clone(), old));
            }
        }
        match users.next {
            Some(next) => page.after = Some(next),
            None => return Ok(stale),
        }
    }
}

/// Sets (or replaces) the owner's webhook endpoint with a new signing secret, sealed under
/// the current master key; returns the endpoint and the secret, to show once. The caller
/// checks the destination policy first (`ownership_webhooks::check_endpoint_url`).
pub async fn set_webhook<S: WebhookStore + ?Sized>(
    store: &S,
    keys: &MasterKeys,
    scope: &OwnerScope,
    url: &EndpointUrl,
    rng: &mut (dyn RandomSource + Send),
) -> Result<(WebhookEndpoint, WebhookSecret)> {
    let secret = WebhookSecret::generate(rng);
    let sealed = secret.seal(keys.current(), scope.owner(), rng)?;
    let endpoint = store.put_endpoint(scope, url, sealed).await?;
    Ok((endpoint, secret))
}

/// Gives the owner's endpoint a new signing secret; the old one keeps signing until
/// `now + grace` (both sign meanwhile). Returns the endpoint and the new secret, to show
/// once. [`Error::NotFound`] when the owner has no endpoint.
pub async fn rotate_webhook_secret<S: WebhookStore + ?Sized>(
    store: &S,
    keys: &MasterKeys,
    scope: &OwnerScope,
    grace: Duration,
    now: OffsetDateTime,
    rng: &mut (dyn RandomSource + Send),
) -> Result<(WebhookEndpoint, WebhookSecret)> {
    let grace = check_grace(grace)?;
    let until = now
        .checked_add(
            time::Duration::try_from(grace)
                .map_err(|_| Error::invalid("grace_seconds", "too large"))?,
        )
        .ok_or_else(|| Error::invalid("grace_seconds", "too large"))?;
    let secret = WebhookSecret::generate(rng);
    let sealed = secret.seal(keys.current(), scope.owner(), rng)?;
    let endpoint = store.rotate_endpoint_secret(scope, sealed, until).await?;
    Ok((endpoint, secret))
}

/// The secrets that sign a delivery to `endpoint` at `now`: the current one, and the
/// previous one while its grace lasts.
pub fn signing_secrets(
    keys: &MasterKeys,
    endpoint: &WebhookEndpoint,
    now: OffsetDateTime,
) -> Result<Vec<WebhookSecret>> {
    let mut secrets = vec![WebhookSecret::open(
        keys,
        &endpoint.owner_id,
        &endpoint.secret,
    )?];
    if let Some((sealed, until)) = &endpoint.previous_secret
        && *until > now
    {
        secrets.push(WebhookSecret::open(keys, &endpoint.owner_id, sealed)?);
    }
    Ok(secrets)
}

/// The delivery id of the webhook message for audit event `seq`: `msg_` and the sequence
/// number as 20 hex digits. Deriving it makes enqueueing idempotent (a second enqueue of
/// the same event is a conflict, not a second message) and lets a restarted worker tell
/// how far it got from the delivery log alone.
pub fn event_delivery_id(seq: i64) -> Result<DeliveryId> {
    let seq = u64::try_from(seq).map_err(|_| Error::invalid("seq", "must not be negative"))?;
    DeliveryId::parse(&format!("{}{seq:020x}", DeliveryId::PREFIX))
}

/// The audit sequence number a delivery id was derived from ([`event_delivery_id`]).
pub fn delivery_event_seq(id: &DeliveryId) -> Option<i64> {
    let hex = id.as_str().strip_prefix(DeliveryId::PREFIX)?;
    u64::from_str_radix(hex, 16)
        .ok()
        .and_then(|v| i64::try_from(v).ok())
}

/// Whether `event` goes to `endpoint`: it is the endpoint owner's and happened while the
/// endpoint existed (setting an endpoint again starts it anew).
pub fn event_is_for(event: &AuditEvent, endpoint: &WebhookEndpoint) -> bool {
    event.owner.as_ref() == Some(&endpoint.owner_id) && event.at >= endpoint.created_at
}

/// The JSON body of the webhook message for an audit event, in the Standard Webhooks
/// shape: `{"type", "timestamp", "data"}`, where `data` is the event as `GET
/// /v1/me/audit` shows it (details never hold secret values).
pub fn event_payload(event: &AuditEvent) -> String {
    let details: serde_json::Value =
        serde_json::from_str(&event.details).unwrap_or(serde_json::Value::Null);
    serde_json::json!({
        "type": event.action.as_str(),
        "timestamp": crate::audit::rfc3339(event.at),
        "data": {
            "seq": event.seq,
            "at": crate::audit::rfc3339(event.at),
            "actor": event.actor.to_string(),
            "owner_id": event.owner.as_ref().map(OwnerId::as_str),
            "action": event.action.as_str(),
            "target": event.target,
            "details": details,
        }
    })
    .to_string()
}

/// Retry schedule of webhook deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts before a delivery is marked failed (at least 1).
    pub max_attempts: u32,
    /// Wait after the first failed attempt; it doubles after each further one.
    pub base: Duration,
    /// The longest wait between two attempts.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 10,
            base: Duration::from_secs(30),
            max_delay: Duration::from_secs(6 * 3600),
        }
    }
}

impl RetryPolicy {
    /// What follows the failure of attempt number `attempt` (1 for the first): `None` when
    /// it was the last, else the wait before the next (`base · 2^(attempt-1)`, capped).
    pub fn after_failure(&self, attempt: u32) -> Option<Duration> {
        if attempt >= self.max_attempts.max(1) {
            return None;
        }
        let factor = 2_u32.saturating_pow(attempt.saturating_sub(1).min(30));
        Some(self.base.saturating_mul(factor).min(self.max_delay))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn an_endpoint_url_is_checked_for_shape_and_debugs_without_its_query() {
        let url = EndpointUrl::parse("https://hooks.example.com/in?token=s3cret").expect("valid");
        assert_eq!(url.as_str(), "https://hooks.example.com/in?token=s3cret");
        let shown = format!("{url:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        for bad in [
            "",
            "hooks.example.com/in",
            "ftp://hooks.example.com/",
            "https://user:pw@hooks.example.com/",
            "https://hooks.example.com/#frag",
            "https://hooks.example.com/ in",
        ] {
            let e = EndpointUrl::parse(bad).expect_err(bad);
            assert!(
                matches!(e, Error::Invalid { field: "url", .. }),
                "{bad}: {e:?}"
            );
        }
        let long = format!("https://h.example.com/{}", "a".repeat(URL_MAX_BYTES));
        assert!(EndpointUrl::parse(&long).is_err());
    }

    #[test]
    fn delivery_cursors_round_trip_and_refuse_garbage() {
        let at = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap()
            + time::Duration::microseconds(123_456);
        let d = Delivery {
            id: DeliveryId::parse("msg_0123456789abcdef0123").unwrap(),
            owner_id: OwnerId::parse("alice").unwrap(),
            event_type: "token.revoked".into(),
            payload: "{}".into(),
            state: DeliveryState::Pending,
            attempts: 0,
            next_attempt_at: at,
            last_result: None,
            created_at: at,
        };
        let back = DeliveryCursor::parse(&DeliveryCursor::after(&d)).unwrap();
        assert_eq!((back.created_at, back.id), (at, d.id));
        for bad in [
            "",
            "1",
            "x:msg_0123456789abcdef0123",
            "1:nope",
            "99999999999999999999999999:msg_0123456789abcdef0123",
        ] {
            assert!(DeliveryCursor::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn delivery_ids_carry_their_event() {
        let id = event_delivery_id(42).unwrap();
        assert_eq!(id.as_str(), "msg_0000000000000000002a");
        assert_eq!(delivery_event_seq(&id), Some(42));
        assert_eq!(
            delivery_event_seq(&event_delivery_id(i64::MAX).unwrap()),
            Some(i64::MAX)
        );
        assert!(event_delivery_id(-1).is_err());
        // Ids from elsewhere that exceed i64 are not mistaken for events.
        let foreign = DeliveryId::parse("msg_ffffffffffffffffffff").unwrap();
        assert_eq!(delivery_event_seq(&foreign), None);
    }

    #[test]
    fn retries_back_off_exponentially_up_to_a_cap() {
        let p = RetryPolicy {
            max_attempts: 5,
            base: Duration::from_secs(10),
            max_delay: Duration::from_secs(60),
        };
        let waits: Vec<_> = (1..=5).map(|a| p.after_failure(a)).collect();
        assert_eq!(
            waits,
            vec![
                Some(Duration::from_secs(10)),
                Some(Duration::from_secs(20)),
                Some(Duration::from_secs(40)),
                Some(Duration::from_secs(60)),
                None
            ]
        );
        let huge = RetryPolicy {
            max_attempts: u32::MAX,
            ..p
        };
        assert_eq!(huge.after_failure(200), Some(Duration::from_secs(60)));
    }

    #[test]
    fn payloads_follow_the_standard_webhooks_shape() {
        let alice = OwnerId::parse("alice").unwrap();
        let event = crate::audit::NewAuditEvent::new(
            OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap(),
            crate::authz::Actor::User(alice.clone()),
            Some(alice),
            crate::audit::AuditAction::SecretPut,
            "API_KEY",
            &serde_json::json!({"name": "API_KEY"}),
        )
        .link(7, crate::audit::ChainHash::GENESIS);
        let body: serde_json::Value = serde_json::from_str(&event_payload(&event)).unwrap();
        assert_eq!(body["type"], "secret.put");
        assert_eq!(body["timestamp"], "2023-11-14T22:13:20Z");
        assert_eq!(body["data"]["seq"], 7);
        assert_eq!(body["data"]["owner_id"], "alice");
        assert_eq!(body["data"]["details"]["name"], "API_KEY");
    }

    const VECTOR_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const VECTOR_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const VECTOR_TS: i64 = 1_614_265_330;
    const VECTOR_BODY: &[u8] = br#"{"test": 2432232314}"#;

    fn secret_from(bytes: [u8; 32]) -> WebhookSecret {
        let mut bytes = bytes.into_iter().cycle();
        WebhookSecret::generate(&mut |buf: &mut [u8]| {
            for b in buf.iter_mut() {
                *b = bytes.next().unwrap();
            }
        })
    }

    #[test]
    fn standard_webhooks_published_vector_reproduces_exactly() {
        // The test vector of the Standard Webhooks reference libraries
        // (standard-webhooks/standard-webhooks, libraries/php/tests/WebhookTest.php
        // `testSignFunctionWorks`; the same vector appears in the svix libraries).
        let secret = WebhookSecret::parse(VECTOR_SECRET).unwrap();
        assert_eq!(secret.key_bytes().len(), 24);
        let signature = standard_sign(&secret, VECTOR_ID, VECTOR_TS, VECTOR_BODY);
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert_eq!(
            standard_verify(
                &[&secret],
                VECTOR_ID,
                "1614265330",
                &signature,
                VECTOR_BODY,
                VECTOR_TS,
                300
            ),
            Ok(())
        );
    }

    #[test]
    fn standard_webhooks_rust_library_vector_reproduces_exactly() {
        // libraries/rust/src/lib.rs `test_sign` in standard-webhooks/standard-webhooks.
        let secret = WebhookSecret::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
        let body = br#"{"email":"test@example.com","username":"test_user"}"#;
        assert_eq!(
            standard_sign(
                &secret,
                "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
                1_649_367_553,
                body
            ),
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
        );
    }

    #[test]
    fn stripe_style_vector_computed_independently() {
        // Python 3:
        //   hmac.new(b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        //            b'1614265330.{"test": 2432232314}', hashlib.sha256).hexdigest()
        // The key is the whole secret string including `whsec_`, as Stripe's libraries
        // key with the endpoint secret as given.
        let secret = WebhookSecret::parse(VECTOR_SECRET).unwrap();
        let header = stripe_sign(&secret, VECTOR_TS, VECTOR_BODY);
        assert_eq!(
            header,
            "t=1614265330,v1=2e37df5d4a028c51a7f3133d64ae1e300d2c2c900f1b1d49d4369ad2530f8964"
        );
        assert_eq!(
            stripe_verify(&[&secret], &header, VECTOR_BODY, VECTOR_TS, 300),
            Ok(())
        );
    }

    #[test]
    fn secrets_parse_only_in_the_documented_form() {
        let generated = secret_from([3; 32]);
        assert!(generated.expose().starts_with("whsec_"));
        assert_eq!(generated.expose().len(), 6 + 44);
        assert_eq!(generated.key_bytes(), vec![3; 32]);
        assert_eq!(WebhookSecret::parse(generated.expose()).unwrap(), generated);
        // Unpadded base64 is accepted too.
        let unpadded = generated.expose().trim_end_matches('=').to_owned();
        assert_eq!(
            WebhookSecret::parse(&unpadded).unwrap().key_bytes(),
            vec![3; 32]
        );

        let too_short = format!("whsec_{}", STANDARD.encode([1; 23]));
        let too_long = format!("whsec_{}", STANDARD.encode([1; 65]));
        let no_prefix = STANDARD.encode([1; 32]);
        for bad in [
            "",
            "whsec_",
            "whsec_not base64!",
            no_prefix.as_str(),
            too_short.as_str(),
            too_long.as_str(),
        ] {
            match WebhookSecret::parse(bad) {
                Err(Error::Invalid {
                    field: "webhook_secret",
                    reason,
                }) => {
                    assert!(bad.len() < 8 || !reason.contains(&bad[6..]));
                }
                other => panic!("expected invalid, got {other:?}"),
            }
        }
        assert!(WebhookSecret::parse(&format!("whsec_{}", STANDARD.encode([1; 24]))).is_ok());
        assert!(WebhookSecret::parse(&format!("whsec_{}", STANDARD.encode([1; 64]))).is_ok());
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let secret = WebhookSecret::parse(VECTOR_SECRET).unwrap();
        assert_eq!(format!("{secret:?}"), "WebhookSecret(****)");
    }

    #[test]
    fn standard_verify_accepts_any_matching_entry_and_ignores_other_versions() {
        let secret = WebhookSecret::parse(VECTOR_SECRET).unwrap();
        let good = standard_sign(&secret, VECTOR_ID, VECTOR_TS, VECTOR_BODY);
        let header = format!(
            "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v2,{} v1,not-base64 {good}",
            &good[3..]
        );
        let verify = |header: &str| {
            standard_verify(
                &[&secret],
                VECTOR_ID,
                "1614265330",
                header,
                VECTOR_BODY,
                VECTOR_TS,
                300,
            )
        };
        assert_eq!(verify(&header), Ok(()));
        assert_eq!(
            verify(&good.replacen("v1,", "v2,", 1)),
            Err(WebhookError::Signature)
        );
        assert_eq!(
            verify("v1,dawfeoifkpqwoekfpqoekf"),
            Err(WebhookError::Signature)
        );
        assert_eq!(verify(""), Err(WebhookError::Malformed));
        assert_eq!(verify("garbage"), Err(WebhookError::Malformed));
    }

    #[test]
    fn standard_verify_reports_malformed_before_timestamp_before_signature() {
        let secret = WebhookSecret::parse(VECTOR_SECRET).unwrap();
        let good = standard_sign(&secret, VECTOR_ID, VECTOR_TS, VECTOR_BODY);
        let verify = |id: &str, ts: &str, sig: &str, now: i64| {
            standard_verify(
                &[&secret],
                id,
                ts,
                sig,
                VECTOR_BODY,
                now,
                DEFAULT_TOLERANCE_SECS,
            )
        };
        for ts in [
            "",
            "abc",
            "1614265330.0",
            "+1614265330",
            "01614265330",
            " 1614265330",
        ] {
            assert_eq!(
                verify(VECTOR_ID, ts, &good, VECTOR_TS),
                Err(WebhookError::Malformed),
                "{ts}"
            );
        }
        assert_eq!(
            verify("", "1614265330", &good, VECTOR_TS),
            Err(WebhookError::Malformed)
        );
        assert_eq!(
            verify(VECTOR_ID, "1614265330", "v1,AAAA", 0),
            Err(WebhookError::Timestamp)
        );
        assert_eq!(
            verify(VECTOR_ID, "1614265330", "v1,AAAA", VECTOR_TS),
            Err(WebhookError::Signature)
        );
        // Both edges of the window are inclusive.
        assert_eq!(
            verify(VECTOR_ID, "1614265330", &good, VECTOR_TS + 300),
            Ok(())
        );
        assert_eq!(
            verify(VECTOR_ID, "1614265330", &good, VECTOR_TS - 300),
            Ok(())
        );
        assert_eq!(
            verify(VECTOR_ID, "1614265330", &good, VECTOR_TS + 301),
            Err(WebhookError::Timestamp)
        );
        assert_eq!(
            verify(VECTOR_ID, "1614265330", &good, VECTOR_TS - 301),
            Err(WebhookError::Timestamp)
        );
        // Extreme clocks do not overflow.
        assert_eq!(
            verify(VECTOR_ID, "1614265330", &good, i64::MIN),
            Err(WebhookError::Timestamp)
        );
        assert_eq!(
            verify(VECTOR_ID, "-9223372036854775808", &good, i64::MAX),
            Err(WebhookError::Timestamp)
        );
    }

    #[test]
    fn stripe_verify_parses_the_header_strictly() {
        let secret = WebhookSecret::parse(VECTOR_SECRET).unwrap();
        let good = stripe_sign(&secret, VECTOR_TS, VECTOR_BODY);
        let verify = |header: &str| stripe_verify(&[&secret], header, VECTOR_BODY, VECTOR_TS, 300);
        let sig = good.split_once(",v1=").unwrap().1;
        assert_eq!(
            verify(&format!("t=1614265330,v0=abc,v1=00ff,v1=zz,v1={sig}")),
            Ok(())
        );
        assert_eq!(verify(&format!("v1={sig}, t=1614265330")), Ok(()));
        assert_eq!(verify(&format!("v1={sig}")), Err(WebhookError::Malformed));
        assert_eq!(
            verify(&format!("t=1614265330,t=1614265330,v1={sig}")),
            Err(WebhookError::Malformed)
        );
        assert_eq!(
            verify(&format!("t=16142653.0,v1={sig}")),
            Err(WebhookError::Malformed)
        );
        assert_eq!(
            verify(&format!("t=1614265330,junk,v1={sig}")),
            Err(WebhookError::Malformed)
        );
        assert_eq!(verify(""), Err(WebhookError::Malformed));
        assert_eq!(verify("t=1614265330"), Err(WebhookError::Signature));
        assert_eq!(
            verify(&format!("t=1614265330,v0={sig}")),
            Err(WebhookError::Signature)
        );
        assert_eq!(
            stripe_verify(&[&secret], &good, VECTOR_BODY, VECTOR_TS + 301, 300),
            Err(WebhookError::Timestamp)
        );
        // Uppercase hex is the same signature.
        assert_eq!(
            verify(
                &good
                    .to_uppercase()
                    .replace("T=", "t=")
                    .replace("V1=", "v1=")
            ),
            Ok(())
        );
    }

    #[test]
    fn both_secrets_sign_during_rotation() {
        let old = secret_from([1; 32]);
        let new = secret_from([2; 32]);
        let third = secret_from([3; 32]);
        let body = b"{\"event\":\"ping\"}";
        let headers = sign_headers(&[&new, &old], "msg_1", 1_700_000_000, body);
        assert_eq!(headers.webhook_id, "msg_1");
        assert_eq!(headers.webhook_timestamp, "1700000000");
        assert_eq!(
            headers.webhook_signature,
            format!(
                "{} {}",
                standard_sign(&new, "msg_1", 1_700_000_000, body),
                standard_sign(&old, "msg_1", 1_700_000_000, body)
            )
        );
        let new_only = stripe_sign(&new, 1_700_000_000, body);
        let old_only = stripe_sign(&old, 1_700_000_000, body);
        assert_eq!(
            headers.ownership_signature,
            format!("{new_only},v1={}", old_only.split_once(",v1=").unwrap().1)
        );
        for receiver in [&old, &new] {
            assert_eq!(
                standard_verify(
                    &[receiver],
                    "msg_1",
                    &headers.webhook_timestamp,
                    &headers.webhook_signature,
                    body,
                    1_700_000_000,
                    300
                ),
                Ok(())
            );
            assert_eq!(
                stripe_verify(
                    &[receiver],
                    &headers.ownership_signature,
                    body,
                    1_700_000_000,
                    300
                ),
                Ok(())
            );
        }
        assert_eq!(
            standard_verify(
                &[&third],
                "msg_1",
                &headers.webhook_timestamp,
                &headers.webhook_signature,
                body,
                1_700_000_000,
                300
            ),
            Err(WebhookError::Signature)
        );
        assert_eq!(
            stripe_verify(
                &[&third],
                &headers.ownership_signature,
                body,
                1_700_000_000,
                300
            ),
            Err(WebhookError::Signature)
        );
        // A receiver holding both secrets accepts a delivery signed by either.
        let single = sign_headers(&[&old], "msg_2", 1_700_000_000, body);
        assert_eq!(
            stripe_verify(
                &[&new, &old],
                &single.ownership_signature,
                body,
                1_700_000_000,
                300
            ),
            Ok(())
        );
    }

    #[test]
    fn no_secrets_never_verify() {
        let secret = WebhookSecret::parse(VECTOR_SECRET).unwrap();
        let headers = sign_headers(&[&secret], VECTOR_ID, VECTOR_TS, VECTOR_BODY);
        assert_eq!(
            standard_verify(
                &[],
                VECTOR_ID,
                &headers.webhook_timestamp,
                &headers.webhook_signature,
                VECTOR_BODY,
                VECTOR_TS,
                300
            ),
            Err(WebhookError::Signature)
        );
        assert_eq!(
            stripe_verify(
                &[],
                &headers.ownership_signature,
                VECTOR_BODY,
                VECTOR_TS,
                300
            ),
            Err(WebhookError::Signature)
        );
    }

    fn message() -> impl Strategy<Value = ([u8; 32], String, i64, Vec<u8>)> {
        (
            any::<[u8; 32]>(),
            "msg_[A-Za-z0-9]{1,32}",
            0_i64..4_000_000_000,
            prop::collection::vec(any::<u8>(), 0..256),
        )
    }

    /// Verifies `headers` in the Standard Webhooks scheme with the default tolerance.
    fn check_standard(
        secrets: &[&WebhookSecret],
        id: &str,
        headers: &SignatureHeaders,
        body: &[u8],
        now: i64,
    ) -> Result<(), WebhookError> {
        let (ts, sig) = (&headers.webhook_timestamp, &headers.webhook_signature);
        standard_verify(secrets, id, ts, sig, body, now, DEFAULT_TOLERANCE_SECS)
    }

    /// Verifies `headers` in the Stripe-style scheme with the default tolerance.
    fn check_stripe(
        secrets: &[&WebhookSecret],
        headers: &SignatureHeaders,
        body: &[u8],
        now: i64,
    ) -> Result<(), WebhookError> {
        let header = &headers.ownership_signature;
        stripe_verify(secrets, header, body, now, DEFAULT_TOLERANCE_SECS)
    }

    proptest! {
        #[test]
        fn verify_accepts_what_sign_produced(
            (key, id, ts, body) in message(),
            skew in -DEFAULT_TOLERANCE_SECS..=DEFAULT_TOLERANCE_SECS,
        ) {
            let secret = secret_from(key);
            let headers = sign_headers(&[&secret], &id, ts, &body);
            prop_assert_eq!(check_standard(&[&secret], &id, &headers, &body, ts + skew), Ok(()));
            prop_assert_eq!(check_stripe(&[&secret], &headers, &body, ts + skew), Ok(()));
            prop_assert_eq!(&headers.ownership_signature, &stripe_sign(&secret, ts, &body));
            prop_assert_eq!(&headers.webhook_signature, &standard_sign(&secret, &id, ts, &body));
        }

        #[test]
        fn any_flipped_body_byte_fails(
            (key, id, ts, body) in message(),
            index in any::<prop::sample::Index>(),
            mask in 1_u8..=255,
        ) {
            prop_assume!(!body.is_empty());
            let secret = secret_from(key);
            let headers = sign_headers(&[&secret], &id, ts, &body);
            let mut tampered = body.clone();
            tampered[index.index(body.len())] ^= mask;
            prop_assert_eq!(
                check_standard(&[&secret], &id, &headers, &tampered, ts),
                Err(WebhookError::Signature)
            );
            prop_assert_eq!(
                check_stripe(&[&secret], &headers, &tampered, ts),
                Err(WebhookError::Signature)
            );
        }

        #[test]
        fn a_wrong_secret_fails((key, id, ts, body) in message(), other in any::<[u8; 32]>()) {
            prop_assume!(key != other);
            let (secret, wrong) = (secret_from(key), secret_from(other));
            let headers = sign_headers(&[&secret], &id, ts, &body);
            prop_assert_eq!(
                check_standard(&[&wrong], &id, &headers, &body, ts),
                Err(WebhookError::Signature)
            );
            prop_assert_eq!(
                check_stripe(&[&wrong], &headers, &body, ts),
                Err(WebhookError::Signature)
            );
        }

        #[test]
        fn another_message_id_fails((key, id, ts, body) in message()) {
            let secret = secret_from(key);
            let headers = sign_headers(&[&secret], &id, ts, &body);
            prop_assert_eq!(
                check_standard(&[&secret], &format!("{id}x"), &headers, &body, ts),
                Err(WebhookError::Signature)
            );
        }

        #[test]
        fn a_stale_or_future_timestamp_fails(
            (key, id, ts, body) in message(),
            beyond in 1_i64..1_000_000,
            future in any::<bool>(),
        ) {
            let secret = secret_from(key);
            let headers = sign_headers(&[&secret], &id, ts, &body);
            let now = if future {
                ts - DEFAULT_TOLERANCE_SECS - beyond
            } else {
                ts + DEFAULT_TOLERANCE_SECS + beyond
            };
            prop_assert_eq!(
                check_standard(&[&secret], &id, &headers, &body, now),
                Err(WebhookError::Timestamp)
            );
            prop_assert_eq!(
                check_stripe(&[&secret], &headers, &body, now),
                Err(WebhookError::Timestamp)
            );
        }

        #[test]
        fn a_changed_timestamp_header_fails(
            (key, id, ts, body) in message(),
            delta in 1_i64..DEFAULT_TOLERANCE_SECS,
        ) {
            let secret = secret_from(key);
            let mut headers = sign_headers(&[&secret], &id, ts, &body);
            let moved = (ts + delta).to_string();
            headers.webhook_timestamp.clone_from(&moved);
            headers.ownership_signature =
                headers.ownership_signature.replacen(&format!("t={ts}"), &format!("t={moved}"), 1);
            prop_assert_eq!(
                check_standard(&[&secret], &id, &headers, &body, ts),
                Err(WebhookError::Signature)
            );
            prop_assert_eq!(
                check_stripe(&[&secret], &headers, &body, ts),
                Err(WebhookError::Signature)
            );
        }
    }
}
