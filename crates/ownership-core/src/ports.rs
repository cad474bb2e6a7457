//! The port traits the stores implement, in domain types only.
//!
//! They are coarse where atomicity matters: "approve this pairing code for this owner" is
//! one call that an adapter makes one transaction (consume the request, write the identity,
//! append the audit event), not three calls a caller must sequence. Every mutation appends
//! its audit event inside its own transaction.
//!
//! Owner-scoped operations take an [`OwnerScope`], user management an [`AdminScope`],
//! channel adapters a [`ChannelScope`] and background work a [`SystemScope`]: the proof
//! values of [`crate::authz`]. A store is built with a [`Clock`]; callers pass no times
//! except where the time is the request itself.
//!
//! Two rules every adapter keeps inside each mutating transaction, once it holds the lock
//! that serializes mutations: it reads its clock there (never before waiting for the
//! lock, so no change is stamped earlier than one committed before it), and it re-reads
//! the acting user of an [`AdminScope`] ([`AdminScope::recheck`]) and the owner of a
//! [`MintPermit`] ([`MintPermit::recheck`]), so a user demoted, suspended or deleted after
//! their request was authenticated acts with what they have now.

use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::audit::{AuditEvent, ChainVerdict};
use crate::authz::{AdminScope, ChannelScope, MintPermit, OwnerScope, Principal, SystemScope};
use crate::error::Result;
use crate::identity::{Identity, UserRole, UserStatus};
use crate::ids::{
    ChannelKey, ChannelName, DeliveryId, ExternalId, OwnerId, PairingRequestId, ResourceId,
    SecretName, TokenId,
};
use crate::kinds::{TokenKind, TokenKinds};
use crate::pairing::{CodeHash, PairingKey, PairingSeed};
use crate::provision::{ProvisionPlan, ProvisionTable};
use crate::token::TokenDigest;

/// The current time, supplied to stores so tests control it.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now, in UTC.
    fn now(&self) -> OffsetDateTime;
}

/// A page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// The opaque cursor of the previous page's `next`, if any.
    pub after: Option<String>,
    /// At most this many items (stores clamp it to 1..=500).
    pub limit: u32,
}

impl Default for PageRequest {
    fn default() -> Self {
        Self {
            after: None,
            limit: 100,
        }
    }
}

impl PageRequest {
    /// The limit clamped to 1..=500.
    pub fn clamped_limit(&self) -> u32 {
        self.limit.clamp(1, 500)
    }
}

/// One page of results and the cursor for the next, if there is more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The items, in the listing's order.
    pub items: Vec<T>,
    /// Pass as [`PageRequest::after`] to get the next page.
    pub next: Option<String>,
}

/// A user account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The account's owner id.
    pub id: OwnerId,
    /// Its role.
    pub role: UserRole,
    /// Whether it may authenticate.
    pub status: UserStatus,
    /// When it was created.
    pub created_at: OffsetDateTime,
}

impl User {
    /// The identity the account acts as.
    pub fn identity(&self) -> Identity {
        Identity::new(self.id.clone(), self.role)
    }
}

/// Where a stored token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenOrigin {
    /// Issued by us (prefixed, checksummed).
    Issued,
    /// From a static user-token table (may lack our prefix).
    Provisioned,
    /// The grandfathered `OWNERSHIP_LEGACY_TOKEN` (may lack our prefix).
    Legacy,
}

impl TokenOrigin {
    /// Storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Issued => "issued",
            Self::Provisioned => "provisioned",
            Self::Legacy => "legacy",
        }
    }

    /// Parses the storage name.
    pub fn parse(raw: &str) -> Result<Self> {
        match raw {
            "issued" => Ok(Self::Issued),
            "provisioned" => Ok(Self::Provisioned),
            "legacy" => Ok(Self::Legacy),
            _ => Err(crate::Error::Integrity("unknown token origin".into())),
        }
    }
}

/// The secret-free parts of a freshly generated token value: what a store keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreshToken {
    /// Its public id.
    pub id: TokenId,
    /// SHA-256 of the value.
    pub digest: TokenDigest,
    /// The first characters, to tell tokens apart in listings.
    pub display_prefix: String,
}

/// A token to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewToken {
    /// Id, digest and display prefix.
    pub fresh: FreshToken,
    /// Free text the owner chose.
    pub label: Option<String>,
    /// When it stops working, if ever.
    pub expires_at: Option<OffsetDateTime>,
}

/// A stored token, never its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// Public id.
    pub id: TokenId,
    /// Whose token it is.
    pub owner_id: OwnerId,
    /// What it may do.
    pub kinds: TokenKinds,
    /// Free text.
    pub label: Option<String>,
    /// The first characters of the value.
    pub display_prefix: String,
    /// Where it came from.
    pub origin: TokenOrigin,
    /// When it was made.
    pub created_at: OffsetDateTime,
    /// When it stops working, if ever.
    pub expires_at: Option<OffsetDateTime>,
    /// When it was (or will be, at the end of a rotation grace) revoked.
    pub revoked_at: Option<OffsetDateTime>,
    /// When it was last used (written behind, so a little behind).
    pub last_used_at: Option<OffsetDateTime>,
}

impl TokenRecord {
    /// Whether the token works at `now`.
    pub fn is_live(&self, now: OffsetDateTime) -> bool {
        self.revoked_at.is_none_or(|at| at > now) && self.expires_at.is_none_or(|at| at > now)
    }
}

/// What installing the configured legacy token did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegacyOutcome {
    /// The same value was already installed: nothing written.
    Unchanged,
    /// Installed for the first time (the Owner was created if missing).
    Installed,
    /// A different value was installed before: the old row was revoked, the new installed.
    Replaced,
}

/// Users: creation, roles, status, deletion, and the first Owner.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Creates the first Owner with a `manage`+`api` token, once. [`crate::Error::Conflict`]
    /// when any Owner exists.
    async fn bootstrap_owner(&self, owner: &OwnerId, token: NewToken) -> Result<User>;

    /// Installs the grandfathered legacy token for `owner` (created as an Owner if missing),
    /// with kinds `manage`+`api`. Idempotent; a changed value revokes the old row.
    async fn install_legacy_token(&self, owner: &OwnerId, token: NewToken)
    -> Result<LegacyOutcome>;

    /// Whether any Owner exists.
    async fn has_owner(&self) -> Result<bool>;

    /// Creates a user with a first `manage`+`api` token, under the rules of
    /// [`crate::authz::check_create`]. Conflict if the id is taken.
    async fn create_user(
        &self,
        scope: &AdminScope,
        id: &OwnerId,
        role: UserRole,
        first_token: NewToken,
    ) -> Result<User>;

    /// One user, for an admin.
    async fn get_user(&self, scope: &AdminScope, id: &OwnerId) -> Result<User>;

    /// Users by id, for an admin.
    async fn list_users(&self, scope: &AdminScope, page: &PageRequest) -> Result<Page<User>>;

    /// Changes a role under [`crate::authz::check_role_change`].
    async fn set_role(&self, scope: &AdminScope, id: &OwnerId, role: UserRole) -> Result<User>;

    /// Suspends or resumes under [`crate::authz::check_status_change`].
    async fn set_status(
        &self,
        scope: &AdminScope,
        id: &OwnerId,
        status: UserStatus,
    ) -> Result<User>;

    /// Deletes under [`crate::authz::check_delete`]: revokes every token, removes every
    /// channel identity and pending pairing, revokes resources, destroys the data key and
    /// secrets and the webhook endpoint, all in one transaction.
    async fn delete_user(&self, scope: &AdminScope, id: &OwnerId) -> Result<()>;

    /// Applies a static user-token table (docs/tokens.md) in one transaction: reads what the
    /// table touches, plans with [`crate::provision::plan`] (the operator's scope only;
    /// Conflict, nothing written, when a table token is stored as a token that was not
    /// provisioned, as another user's, or revoked; the last Owner is never demoted), then
    /// creates the missing users, changes roles, adds the missing tokens (origin
    /// `provisioned`, digest only), updates changed kinds and labels in place and revokes
    /// the provisioned tokens whose digest left the table, auditing each change under the
    /// scope's actor. Applying the same table again writes nothing, not even an audit
    /// event. With `dry_run` the plan is computed the same way and nothing is written.
    async fn provision(
        &self,
        scope: &AdminScope,
        table: &ProvisionTable,
        dry_run: bool,
    ) -> Result<ProvisionPlan>;
}

/// What a store knows of a presented token digest ([`TokenStore::lookup`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenLookup {
    /// Live: the principal.
    Live(Principal),
    /// No token has this digest.
    Unknown,
    /// Revoked (and past any rotation grace).
    Revoked,
    /// Past its expiry.
    Expired,
    /// Its owner's account is not active (suspended).
    Inactive,
}

impl TokenLookup {
    /// The principal when live.
    pub fn live(self) -> Option<Principal> {
        match self {
            Self::Live(p) => Some(p),
            _ => None,
        }
    }

    /// Decides a token row the way every store does: refused when revoked (at or before
    /// `now`), expired (at or before `now`) or its owner inactive, in that order; else
    /// live with `principal`.
    pub fn decide(
        now: OffsetDateTime,
        revoked_at: Option<OffsetDateTime>,
        expires_at: Option<OffsetDateTime>,
        owner_status: UserStatus,
        principal: impl FnOnce() -> Principal,
    ) -> Self {
        if revoked_at.is_some_and(|at| at <= now) {
            Self::Revoked
        } else if expires_at.is_some_and(|at| at <= now) {
            Self::Expired
        } else if owner_status != UserStatus::Active {
            Self::Inactive
        } else {
            Self::Live(principal())
        }
    }
}

/// Bearer tokens.
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// The principal for a token digest: found by digest (an index lookup, never a scan),
    /// not revoked (or inside its rotation grace), not expired, owner active. `None` for
    /// anything else, whatever the reason.
    async fn authenticate(&self, digest: &TokenDigest) -> Result<Option<Principal>>;

    /// [`TokenStore::authenticate`] with the reason of a refusal, for counting outcomes
    /// (metrics). Callers must refuse every non-[`TokenLookup::Live`] answer alike: the
    /// reason is never shown to the client. The default knows no reasons (every refusal is
    /// [`TokenLookup::Unknown`]); the stores override it.
    async fn lookup(&self, digest: &TokenDigest) -> Result<TokenLookup> {
        Ok(self
            .authenticate(digest)
            .await?
            .map_or(TokenLookup::Unknown, TokenLookup::Live))
    }

    /// Stores a new token under a [`MintPermit`], re-checked ([`MintPermit::recheck`])
    /// against its owner's account inside the transaction: [`crate::Error::NotFound`] when
    /// the owner is gone or suspended, [`crate::Error::Forbidden`] for a service token
    /// whose minter is no longer an Admin or Owner.
    async fn issue_token(&self, permit: &MintPermit, token: NewToken) -> Result<TokenRecord>;

    /// The owner's tokens, newest first, revoked ones included.
    async fn list_tokens(&self, scope: &OwnerScope) -> Result<Vec<TokenRecord>>;

    /// One of the owner's tokens. [`crate::Error::NotFound`] when absent or another owner's.
    async fn get_token(&self, scope: &OwnerScope, id: &TokenId) -> Result<TokenRecord>;

    /// Replaces a live token with `new` (same kinds, label and expiry); the old one is
    /// revoked now, or at the end of `grace`. Exactly one of many concurrent rotations of a
    /// token succeeds; the others get [`crate::Error::NotFound`] (the token they named is
    /// no longer live).
    async fn rotate_token(
        &self,
        scope: &OwnerScope,
        id: &TokenId,
        new: FreshToken,
        grace: Option<Duration>,
    ) -> Result<TokenRecord>;

    /// Revokes a token now. With `expected_kind`, the token must hold that kind or the call
    /// fails with [`crate::Error::Conflict`] and changes nothing.
    async fn revoke_token(
        &self,
        scope: &OwnerScope,
        id: &TokenId,
        expected_kind: Option<&TokenKind>,
    ) -> Result<TokenRecord>;

    /// Records uses batched by the write-behind (never on a request's path).
    async fn record_last_used(
        &self,
        scope: &SystemScope,
        uses: &[(TokenId, OffsetDateTime)],
    ) -> Result<()>;

    /// Whether any live token lacks our prefix (provisioned or legacy). When false, an
    /// unprefixed token is refused without a store read.
    async fn has_foreign_tokens(&self) -> Result<bool>;
}

/// A candidate for a new pairing request: the code is derived from `seed` under the
/// pairing key, and only its keyed hash is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairingCandidate {
    /// The request's public id.
    pub id: PairingRequestId,
    /// The seed the code is derived from.
    pub seed: PairingSeed,
    /// The keyed hash of the derived code.
    pub code_hash: CodeHash,
}

/// Limits on pending pairing requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PairingPolicy {
    /// How long a code lives (default 10 minutes).
    pub ttl: Duration,
    /// At most this many live requests per channel.
    pub max_pending_per_channel: u32,
}

impl Default for PairingPolicy {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(600),
            max_pending_per_channel: 1_000,
        }
    }
}

/// The live request a sender holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairingIssue {
    /// Its public id.
    pub id: PairingRequestId,
    /// The seed to re-derive the code from.
    pub seed: PairingSeed,
    /// When the code expires.
    pub expires_at: OffsetDateTime,
    /// True when made by this call, false when an earlier live request was returned.
    pub created: bool,
}

/// A pending request as admins see it: never its code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingPairing {
    /// Public id.
    pub id: PairingRequestId,
    /// The sender.
    pub key: ChannelKey,
    /// Adapter-supplied JSON (a display name, say).
    pub meta: Option<String>,
    /// When asked.
    pub created_at: OffsetDateTime,
    /// When the code expires.
    pub expires_at: OffsetDateTime,
}

/// A chat account bound to an owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelBinding {
    /// The chat account.
    pub key: ChannelKey,
    /// Its owner.
    pub owner_id: OwnerId,
    /// When it was bound.
    pub created_at: OffsetDateTime,
}

/// Pairing chat accounts to owners.
#[async_trait]
pub trait PairingStore: Send + Sync {
    /// The sender's live request, or a new one from the first candidate whose code hash is
    /// free. One live request per sender, however many concurrent calls. Expired requests
    /// of the channel are purged first; past the per-channel cap,
    /// [`crate::Error::RateLimited`]. A sender already bound may ask (to move the chat
    /// account); approving that for another owner is refused until the binding is removed.
    async fn request_pairing(
        &self,
        scope: &ChannelScope,
        external_id: &ExternalId,
        meta: Option<&str>,
        candidates: &[PairingCandidate],
        policy: &PairingPolicy,
    ) -> Result<PairingIssue>;

    /// Live requests of a channel, oldest first, for admins.
    async fn list_pending(
        &self,
        scope: &AdminScope,
        channel: &ChannelName,
    ) -> Result<Vec<PendingPairing>>;

    /// Self-claim: binds the sender of the live request with this code hash to the caller.
    /// One transaction; of concurrent redemptions exactly one succeeds. Unknown, expired
    /// or used codes are all [`crate::Error::NotFound`]; a sender bound to another owner is
    /// [`crate::Error::Conflict`] and consumes nothing.
    async fn redeem_pairing(
        &self,
        scope: &OwnerScope,
        channel: &ChannelName,
        code_hash: &CodeHash,
    ) -> Result<ChannelBinding>;

    /// Admin approval for a named active owner; otherwise as [`Self::redeem_pairing`].
    async fn approve_pairing(
        &self,
        scope: &AdminScope,
        channel: &ChannelName,
        code_hash: &CodeHash,
        owner: &OwnerId,
    ) -> Result<ChannelBinding>;

    /// Burns every live request of a channel (its failure budget ran out). Returns how many.
    async fn burn_pending(&self, scope: &SystemScope, channel: &ChannelName) -> Result<u64>;

    /// The identity bound to a chat account, if its owner is active.
    async fn resolve_identity(
        &self,
        scope: &ChannelScope,
        external_id: &ExternalId,
    ) -> Result<Option<Identity>>;

    /// The pairing-code key kept in the store (used when no master key is configured):
    /// stores `candidate` if none is kept yet, and returns the kept one either way.
    async fn stored_pairing_key(
        &self,
        scope: &SystemScope,
        candidate: &PairingKey,
    ) -> Result<PairingKey>;

    /// The owner's bound chat accounts.
    async fn list_identities(&self, scope: &OwnerScope) -> Result<Vec<ChannelBinding>>;

    /// Unbinds one of the owner's chat accounts. [`crate::Error::NotFound`] if not theirs.
    async fn unlink_identity(&self, scope: &OwnerScope, key: &ChannelKey) -> Result<()>;
}

/// Which events to read.
#[derive(Debug, Clone)]
pub enum AuditFilter<'a> {
    /// One owner's events.
    Owner(&'a OwnerScope),
    /// Everyone's, for admins.
    All(&'a AdminScope),
}

/// The audit log. Appends happen inside each mutation's own transaction.
#[async_trait]
pub trait AuditLog: Send + Sync {
    /// Events newest first. Cursor: the `seq` of the last item.
    async fn list_events(
        &self,
        filter: AuditFilter<'_>,
        page: &PageRequest,
    ) -> Result<Page<AuditEvent>>;

    /// The owner's events with `seq > after`, oldest first (for the event stream).
    async fn events_after(
        &self,
        scope: &OwnerScope,
        after: i64,
        limit: u32,
    ) -> Result<Vec<AuditEvent>>;

    /// Checks the whole chain, and that its head matches the recorded head.
    async fn verify_chain(&self) -> Result<ChainVerdict>;
}

/// An AES-256-GCM ciphertext with what is needed to open it.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    /// The 96-bit nonce.
    pub nonce: [u8; 12],
    /// Ciphertext and tag.
    pub ciphertext: Vec<u8>,
    /// The version of the key it was sealed under (master key version for data keys; the
    /// data key generation for values).
    pub key_version: u32,
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealed")
            .field("key_version", &self.key_version)
            .field("len", &self.ciphertext.len())
            .finish_non_exhaustive()
    }
}

/// A secret's metadata: never its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretMeta {
    /// Its name.
    pub name: SecretName,
    /// When first written.
    pub created_at: OffsetDateTime,
    /// When last written.
    pub updated_at: OffsetDateTime,
}

/// Per-owner encrypted secrets. Encryption happens outside the store; it keeps sealed bytes.
#[async_trait]
pub trait SecretStore: Send + Sync {
    /// The owner's wrapped data key, if one exists.
    async fn data_key(&self, scope: &OwnerScope) -> Result<Option<Sealed>>;

    /// Writes a secret. `new_data_key` is stored only when the owner has none yet (in the
    /// same transaction); if another writer installed one first, [`crate::Error::Conflict`]
    /// and nothing is written, so the caller re-reads the key and retries.
    async fn put_secret(
        &self,
        scope: &OwnerScope,
        name: &SecretName,
        value: Sealed,
        new_data_key: Option<Sealed>,
    ) -> Result<SecretMeta>;

    /// One sealed value from the owner's scope only.
    async fn get_secret(&self, scope: &OwnerScope, name: &SecretName) -> Result<Option<Sealed>>;

    /// Names and metadata.
    async fn list_secrets(&self, scope: &OwnerScope) -> Result<Vec<SecretMeta>>;

    /// Deletes one. [`crate::Error::NotFound`] if absent.
    async fn delete_secret(&self, scope: &OwnerScope, name: &SecretName) -> Result<()>;

    /// Every owner's wrapped data key (for rewrapping).
    async fn all_data_keys(&self, scope: &SystemScope) -> Result<Vec<(OwnerId, Sealed)>>;

    /// Replaces wrapped data keys (the rewrapped forms), each only if it still equals the
    /// one read. Returns how many were replaced.
    async fn replace_data_keys(
        &self,
        scope: &SystemScope,
        keys: &[(OwnerId, Sealed, Sealed)],
    ) -> Result<u64>;
}

/// A resource to register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewResource {
    /// Its public id.
    pub id: ResourceId,
    /// What it is (`job`, say): free text up to 64 bytes.
    pub kind: String,
    /// An id in the caller's own system.
    pub external_ref: Option<String>,
    /// Secret names it may fetch.
    pub grants: Vec<SecretName>,
    /// Its token (family `resource`).
    pub token: FreshToken,
}

/// A registered resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceRecord {
    /// Public id.
    pub id: ResourceId,
    /// Its creator, whose scope it reads.
    pub owner_id: OwnerId,
    /// What it is.
    pub kind: String,
    /// The caller's own id for it.
    pub external_ref: Option<String>,
    /// Granted secret names.
    pub grants: Vec<SecretName>,
    /// When registered.
    pub created_at: OffsetDateTime,
    /// When revoked.
    pub revoked_at: Option<OffsetDateTime>,
}

/// Resources that fetch their creator's granted secrets.
#[async_trait]
pub trait ResourceStore: Send + Sync {
    /// Registers a resource.
    async fn create_resource(&self, scope: &OwnerScope, new: NewResource)
    -> Result<ResourceRecord>;
    /// One of the owner's resources.
    async fn get_resource(&self, scope: &OwnerScope, id: &ResourceId) -> Result<ResourceRecord>;
    /// The owner's resources.
    async fn list_resources(&self, scope: &OwnerScope) -> Result<Vec<ResourceRecord>>;
    /// Revokes one (its token stops working).
    async fn revoke_resource(&self, scope: &OwnerScope, id: &ResourceId) -> Result<()>;
    /// The live resource for a resource-token digest whose creator is active; `None` for
    /// anything else.
    async fn resolve_resource(&self, digest: &TokenDigest) -> Result<Option<ResourceRecord>>;
}

/// An owner's webhook endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEndpoint {
    /// Whose.
    pub owner_id: OwnerId,
    /// The HTTPS URL, validated by the caller.
    pub url: String,
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
        url: &str,
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
    /// Pending deliveries due at or before now, oldest first, with their endpoints.
    async fn due_deliveries(
        &self,
        scope: &SystemScope,
        limit: u32,
    ) -> Result<Vec<(Delivery, WebhookEndpoint)>>;
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

/// Health of the backing store.
#[async_trait]
pub trait Health: Send + Sync {
    /// Ok when the store answers a trivial query.
    async fn ping(&self) -> Result<()>;
}

/// Every port at once: what the HTTP layer and the CLI are generic over.
pub trait Store:
    UserStore
    + TokenStore
    + PairingStore
    + AuditLog
    + SecretStore
    + ResourceStore
    + WebhookStore
    + Health
{
}

impl<T> Store for T where
    T: UserStore
        + TokenStore
        + PairingStore
        + AuditLog
        + SecretStore
        + ResourceStore
        + WebhookStore
        + Health
{
}
