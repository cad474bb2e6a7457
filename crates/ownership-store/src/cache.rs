//! The cache decorator: the same ports, served from memory on the warm path.
//!
//! [`Cached`] wraps any [`Store`] and caches three lookups: token digest → [`Principal`],
//! `(channel, external_id)` → [`Identity`], and resource-token digest → resource. Capacity
//! and time-to-live are bounded ([`CacheConfig`]). Every mutation through the decorator
//! evicts what it invalidates before it returns, and [`Cached::apply`] lets another process's
//! invalidations (PostgreSQL `LISTEN/NOTIFY`) do the same.
//!
//! A lookup that races a mutation never re-inserts stale data: every invalidation bumps an
//! epoch; a lookup inserts only if the epoch did not move while it read the store, and
//! removes its own insert if the epoch moved while it inserted.
//!
//! `last_used_at` is written behind: a hit stamps its cache entry (one relaxed atomic), and
//! the stamps are collected and flushed in batches by a background task
//! ([`CacheConfig::last_used_flush`]) and by [`Cached::flush`] at shutdown, never on a
//! request's path.
//!
//! The entries live in a sharded map of our own (`ttl_map`), not moka: a warm token
//! check is one lookup, and a moka hit alone cost several times the whole target
//! (docs/benchmarks.md). Time-to-live is measured with the store's [`Clock`], the same
//! clock that decides token expiry.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use ownership_core::audit::{AuditEvent, ChainVerdict};
use ownership_core::authz::{
    AdminScope, ChannelScope, MintPermit, OwnerScope, Principal, SystemScope,
};
use ownership_core::ids::{
    ChannelKey, ChannelName, DeliveryId, ExternalId, ResourceId, SecretName, TokenId,
};
use ownership_core::pairing::{CodeHash, PairingKey};
use ownership_core::ports::{
    AuditFilter, AuditLog, ChannelBinding, Clock, Delivery, DeliveryState, FreshToken, Health,
    LegacyOutcome, NewResource, NewToken, Page, PageRequest, PairingCandidate, PairingIssue,
    PairingPolicy, PairingStore, PendingPairing, ProvisionStore, ResourceRecord, ResourceStore,
    Sealed, SecretMeta, SecretStore, Store, TokenLookup, TokenRecord, TokenStore, User, UserStore,
    WebhookEndpoint, WebhookStore,
};
use ownership_core::provision::{ProvisionPlan, ProvisionTable};
use ownership_core::token::TokenDigest;
use ownership_core::{Error, Identity, OwnerId, Result, TokenKind, UserRole, UserStatus};
use time::OffsetDateTime;

use crate::metrics::CacheCounters;
use crate::ttl_map::{DigestKeys, TtlMap};

/// Bounds of the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// Most entries per cached lookup.
    pub capacity: u64,
    /// How long an entry may be served before it is read again (bounds staleness if an
    /// invalidation is ever lost).
    pub ttl: Duration,
    /// How often `last_used_at` is flushed.
    pub last_used_flush: Duration,
    /// How often a libSQL server checks whether another process (the `ownership` CLI)
    /// committed to its file (`libsql::watch_external_changes`); it bounds how long
    /// such a change goes unseen.
    pub external_poll: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            capacity: 100_000,
            ttl: Duration::from_secs(30),
            last_used_flush: Duration::from_secs(10),
            external_poll: Duration::from_millis(200),
        }
    }
}

/// What a mutation invalidates, here or (broadcast) in another process.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Invalidation {
    /// One token (revoked, rotated).
    Token(TokenId),
    /// Everything cached for an owner (deleted, suspended, resumed, role changed).
    Owner(OwnerId),
    /// One chat account (unlinked).
    Identity(ChannelKey),
    /// One resource (revoked).
    Resource(ResourceId),
    /// Everything (a lost notification channel, a replaced legacy token).
    All,
}

impl Invalidation {
    /// The kind of invalidation, a fixed word (`token`, `owner`, `identity`, `resource`,
    /// `all`) that names no id: the metrics label.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Token(_) => "token",
            Self::Owner(_) => "owner",
            Self::Identity(_) => "identity",
            Self::Resource(_) => "resource",
            Self::All => "all",
        }
    }

    /// A compact text form, for a `NOTIFY` payload: `token:<id>`, `owner:<id>`,
    /// `identity:<channel>/<external_id>`, `resource:<id>` or `all`.
    pub fn encode(&self) -> String {
        match self {
            Self::Token(id) => format!("token:{}", id.as_str()),
            Self::Owner(id) => format!("owner:{}", id.as_str()),
            Self::Identity(key) => format!(
                "identity:{}/{}",
                key.channel.as_str(),
                key.external_id.as_str()
            ),
            Self::Resource(id) => format!("resource:{}", id.as_str()),
            Self::All => "all".to_owned(),
        }
    }

    /// Reads [`Invalidation::encode`]'s form back; anything else is `None` (a receiver
    /// that cannot read a payload should flush everything).
    pub fn decode(raw: &str) -> Option<Self> {
        if raw == "all" {
            return Some(Self::All);
        }
        let (kind, rest) = raw.split_once(':')?;
        match kind {
            "token" => TokenId::parse(rest).ok().map(Self::Token),
            "owner" => OwnerId::parse(rest).ok().map(Self::Owner),
            "resource" => ResourceId::parse(rest).ok().map(Self::Resource),
            "identity" => channel_key(rest).map(Self::Identity),
            _ => None,
        }
    }
}

/// Reads `channel/external_id` (the audit target of a chat account) back; `None` when it
/// does not parse. A channel name holds no `/`; an external id may.
pub(crate) fn channel_key(raw: &str) -> Option<ChannelKey> {
    let (channel, external) = raw.split_once('/')?;
    Some(ChannelKey::new(
        ChannelName::parse(channel).ok()?,
        ExternalId::parse(external).ok()?,
    ))
}

struct Shared<S> {
    inner: S,
    clock: Arc<dyn Clock>,
    /// Token digest → principal; the entries carry the last-use stamps.
    principals: TtlMap<TokenDigest, Principal, DigestKeys>,
    /// Token id → digest, to evict one token's principal without a scan.
    token_digests: TtlMap<TokenId, TokenDigest>,
    identities: TtlMap<ChannelKey, Identity>,
    resources: TtlMap<TokenDigest, ResourceRecord, DigestKeys>,
    /// Time-to-live in nanoseconds.
    ttl: i64,
    epoch: AtomicU64,
    /// Hits and misses of each cached lookup (metrics).
    principal_counts: CacheCounters,
    identity_counts: CacheCounters,
    resource_counts: CacheCounters,
}

/// A [`Store`] decorated with the cache. Cheap to clone.
pub struct Cached<S> {
    shared: Arc<Shared<S>>,
}

impl<S> Clone for Cached<S> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S> std::fmt::Debug for Cached<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cached")
            .field("principals", &self.shared.principals.len())
            .field("identities", &self.shared.identities.len())
            .finish_non_exhaustive()
    }
}

/// `at` in Unix nanoseconds, saturated to `i64` (good until the year 2262).
fn nanos(at: OffsetDateTime) -> i64 {
    let n = at.unix_timestamp_nanos();
    i64::try_from(n).unwrap_or(if n < 0 { i64::MIN } else { i64::MAX })
}

impl<S: Store + 'static> Cached<S> {
    /// Wraps `inner`. When called inside a tokio runtime, starts the write-behind task for
    /// `last_used_at` (it stops when the last clone is dropped).
    pub fn new(inner: S, clock: Arc<dyn Clock>, config: CacheConfig) -> Self {
        let shared = Arc::new(Shared {
            inner,
            clock,
            principals: TtlMap::with_hasher(config.capacity, DigestKeys::new())
                .instrumented("principals"),
            token_digests: TtlMap::new(config.capacity),
            identities: TtlMap::new(config.capacity).instrumented("identities"),
            resources: TtlMap::with_hasher(config.capacity, DigestKeys::new())
                .instrumented("resources"),
            ttl: i64::try_from(config.ttl.as_nanos()).unwrap_or(i64::MAX),
            epoch: AtomicU64::new(0),
            principal_counts: CacheCounters::new("principals"),
            identity_counts: CacheCounters::new("identities"),
            resource_counts: CacheCounters::new("resources"),
        });
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let weak = Arc::downgrade(&shared);
            handle.spawn(write_behind(weak, config.last_used_flush));
        }
        Self { shared }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.shared.inner
    }

    /// Writes collected `last_used_at` values now (call at shutdown); returns how many
    /// tokens' times were written.
    pub async fn flush(&self) -> Result<usize> {
        flush_uses(&self.shared).await
    }

    /// Applies an invalidation (a local mutation's, or one received from another process).
    pub fn apply(&self, inv: &Invalidation) {
        let s = &self.shared;
        s.epoch.fetch_add(1, Ordering::SeqCst);
        match inv {
            Invalidation::Token(id) => {
                // The id → digest entry finds it at once; the scan covers an entry whose
                // id → digest entry was evicted first.
                if let Some(digest) = s.token_digests.get(id, i64::MIN) {
                    s.principals.remove(&digest);
                }
                s.token_digests.remove(id);
                s.principals.remove_if(|p| p.token_id == *id);
            }
            Invalidation::Owner(owner) => {
                s.principals.remove_if(|p| p.identity.owner_id == *owner);
                s.identities.remove_if(|i| i.owner_id == *owner);
                s.resources.remove_if(|r| r.owner_id == *owner);
            }
            Invalidation::Identity(key) => s.identities.remove(key),
            Invalidation::Resource(id) => s.resources.remove_if(|r| r.id == *id),
            Invalidation::All => {
                s.principals.clear();
                s.token_digests.clear();
                s.identities.clear();
                s.resources.clear();
            }
        }
        s.epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// Applies a local mutation's invalidation. (Other processes learn of it from the
    /// store: PostgreSQL publishes inside the mutation's own transaction.)
    fn invalidate(&self, inv: Invalidation) {
        self.apply(&inv);
    }

    /// Inserts `value`, served until `deadline`, unless an invalidation ran since `epoch`
    /// was read; removes it again if one ran while inserting. Whether it was inserted.
    fn insert_if_current<K, V, H>(
        &self,
        map: &TtlMap<K, V, H>,
        epoch: u64,
        key: K,
        value: V,
        deadline: i64,
    ) -> bool
    where
        K: std::hash::Hash + Eq + Clone,
        V: Clone,
        H: std::hash::BuildHasher + Clone,
    {
        let s = &self.shared;
        if s.epoch.load(Ordering::SeqCst) != epoch {
            return false;
        }
        map.insert(key.clone(), value, deadline);
        if s.epoch.load(Ordering::SeqCst) != epoch {
            map.remove(&key);
            return false;
        }
        true
    }

    /// When an entry read at `now` stops being served.
    fn deadline(&self, now: i64) -> i64 {
        now.saturating_add(self.shared.ttl)
    }
}

async fn write_behind<S: Store + 'static>(shared: Weak<Shared<S>>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(s) = shared.upgrade() else { return };
        if let Err(e) = flush_uses(&s).await {
            tracing::warn!(error = %e, "writing last_used_at failed; will retry");
        }
    }
}

async fn flush_uses<S: Store>(s: &Shared<S>) -> Result<usize> {
    let taken = s.principals.take_uses();
    if taken.is_empty() {
        return Ok(0);
    }
    // One row per token, its latest use (a token may have been cached more than once).
    let mut latest: HashMap<&TokenId, i64> = HashMap::with_capacity(taken.len());
    for (p, at) in &taken {
        latest
            .entry(&p.token_id)
            .and_modify(|t| *t = (*t).max(*at))
            .or_insert(*at);
    }
    let batch: Vec<(TokenId, OffsetDateTime)> = latest
        .into_iter()
        .filter_map(|(id, at)| {
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(at))
                .ok()
                .map(|at| (id.clone(), at))
        })
        .collect();
    let result = s
        .inner
        .record_last_used(&SystemScope::background(), &batch)
        .await;
    if result.is_err() {
        // Put them back so a store outage loses nothing.
        s.principals.restore_uses(taken);
    }
    result.map(|()| batch.len())
}

#[async_trait]
impl<S: Store + 'static> UserStore for Cached<S> {
    async fn bootstrap_owner(&self, owner: &OwnerId, token: NewToken) -> Result<User> {
        self.shared.inner.bootstrap_owner(owner, token).await
    }

    async fn install_legacy_token(
        &self,
        owner: &OwnerId,
        token: NewToken,
    ) -> Result<LegacyOutcome> {
        let out = self.shared.inner.install_legacy_token(owner, token).await?;
        if out == LegacyOutcome::Replaced {
            self.invalidate(Invalidation::All);
        }
        Ok(out)
    }

    async fn has_owner(&self) -> Result<bool> {
        self.shared.inner.has_owner().await
    }

    async fn create_user(
        &self,
        scope: &AdminScope,
        id: &OwnerId,
        role: UserRole,
        first_token: NewToken,
    ) -> Result<User> {
        self.shared
            .inner
            .create_user(scope, id, role, first_token)
            .await
    }

    async fn get_user(&self, scope: &AdminScope, id: &OwnerId) -> Result<User> {
        self.shared.inner.get_user(scope, id).await
    }

    async fn list_users(&self, scope: &AdminScope, page: &PageRequest) -> Result<Page<User>> {
        self.shared.inner.list_users(scope, page).await
    }

    async fn set_role(&self, scope: &AdminScope, id: &OwnerId, role: UserRole) -> Result<User> {
        let out = self.shared.inner.set_role(scope, id, role).await;
        self.invalidate(Invalidation::Owner(id.clone()));
        out
    }

    async fn set_status(
        &self,
        scope: &AdminScope,
        id: &OwnerId,
        status: UserStatus,
    ) -> Result<User> {
        let out = self.shared.inner.set_status(scope, id, status).await;
        self.invalidate(Invalidation::Owner(id.clone()));
        out
    }

    async fn delete_user(&self, scope: &AdminScope, id: &OwnerId) -> Result<()> {
        let out = self.shared.inner.delete_user(scope, id).await;
        self.invalidate(Invalidation::Owner(id.clone()));
        out
    }
}

#[async_trait]
impl<S: Store + 'static> ProvisionStore for Cached<S> {
    async fn provision(
        &self,
        scope: &AdminScope,
        table: &ProvisionTable,
        dry_run: bool,
    ) -> Result<ProvisionPlan> {
        let out = self.shared.inner.provision(scope, table, dry_run).await;
        match &out {
            // A revoked or changed token and a changed role are evicted; added tokens and
            // new users were never cached. A dry run changed nothing.
            Ok(plan) if !dry_run => {
                for t in &plan.tokens_revoked {
                    self.invalidate(Invalidation::Token(t.token_id.clone()));
                }
                for t in &plan.tokens_updated {
                    self.invalidate(Invalidation::Token(t.token_id.clone()));
                }
                for r in &plan.roles_changed {
                    self.invalidate(Invalidation::Owner(r.user_id.clone()));
                }
            }
            Ok(_) => {}
            // Refused before anything was written: nothing to evict.
            Err(Error::Conflict(_) | Error::Forbidden(_) | Error::Invalid { .. }) => {}
            // Whether the transaction committed is unknown (a lost connection, say).
            Err(_) if !dry_run => self.invalidate(Invalidation::All),
            Err(_) => {}
        }
        out
    }
}

#[async_trait]
impl<S: Store + 'static> TokenStore for Cached<S> {
    async fn authenticate(&self, digest: &TokenDigest) -> Result<Option<Principal>> {
        self.lookup(digest).await.map(TokenLookup::live)
    }

    async fn lookup(&self, digest: &TokenDigest) -> Result<TokenLookup> {
        let s = &self.shared;
        let now = nanos(s.clock.now());
        // An entry is never served past its token's expiry: its deadline is the earlier
        // of that and the time-to-live, and a lookup after it reads the store again.
        if let Some(p) = s.principals.get_and_touch(digest, now) {
            s.principal_counts.hits.increment(1);
            return Ok(TokenLookup::Live(p));
        }
        s.principal_counts.misses.increment(1);
        let epoch = s.epoch.load(Ordering::SeqCst);
        let found = s.inner.lookup(digest).await?;
        if let TokenLookup::Live(p) = &found {
            let deadline = p
                .expires_at
                .map_or(self.deadline(now), |at| self.deadline(now).min(nanos(at)));
            self.insert_if_current(
                &s.token_digests,
                epoch,
                p.token_id.clone(),
                *digest,
                deadline,
            );
            if !self.insert_if_current(&s.principals, epoch, *digest, p.clone(), deadline)
                || s.principals.get_and_touch(digest, now).is_none()
            {
                // Not cached (an invalidation raced it): the use is still recorded.
                s.principals.restore_uses(vec![(p.clone(), now)]);
            }
        }
        Ok(found)
    }

    async fn issue_token(&self, permit: &MintPermit, token: NewToken) -> Result<TokenRecord> {
        self.shared.inner.issue_token(permit, token).await
    }

    async fn list_tokens(&self, scope: &OwnerScope) -> Result<Vec<TokenRecord>> {
        self.shared.inner.list_tokens(scope).await
    }

    async fn get_token(&self, scope: &OwnerScope, id: &TokenId) -> Result<TokenRecord> {
        self.shared.inner.get_token(scope, id).await
    }

    async fn rotate_token(
        &self,
        scope: &ownership_core::authz::Rotator,
        id: &TokenId,
        new: FreshToken,
        grace: Option<Duration>,
    ) -> Result<TokenRecord> {
        let out = self.shared.inner.rotate_token(scope, id, new, grace).await;
        self.invalidate(Invalidation::Token(id.clone()));
        out
    }

    async fn revoke_token(
        &self,
        scope: &OwnerScope,
        id: &TokenId,
        expected_kind: Option<&TokenKind>,
    ) -> Result<TokenRecord> {
        let out = self
            .shared
            .inner
            .revoke_token(scope, id, expected_kind)
            .await;
        self.invalidate(Invalidation::Token(id.clone()));
        out
    }

    async fn record_last_used(
        &self,
        scope: &SystemScope,
        uses: &[(TokenId, OffsetDateTime)],
    ) -> Result<()> {
        self.shared.inner.record_last_used(scope, uses).await
    }

    async fn has_foreign_tokens(&self) -> Result<bool> {
        self.shared.inner.has_foreign_tokens().await
    }
}

#[async_trait]
impl<S: Store + 'static> PairingStore for Cached<S> {
    async fn request_pairing(
        &self,
        scope: &ChannelScope,
        external_id: &ExternalId,
        meta: Option<&str>,
        candidates: &[PairingCandidate],
        policy: &PairingPolicy,
    ) -> Result<PairingIssue> {
        self.shared
            .inner
            .request_pairing(scope, external_id, meta, candidates, policy)
            .await
    }

    async fn list_pending(
        &self,
        scope: &AdminScope,
        channel: &ChannelName,
    ) -> Result<Vec<PendingPairing>> {
        self.shared.inner.list_pending(scope, channel).await
    }

    async fn list_all_pending(&self, scope: &AdminScope) -> Result<Vec<PendingPairing>> {
        self.shared.inner.list_all_pending(scope).await
    }

    async fn redeem_pairing(
        &self,
        scope: &OwnerScope,
        channel: &ChannelName,
        code_hash: &CodeHash,
    ) -> Result<ChannelBinding> {
        let out = self
            .shared
            .inner
            .redeem_pairing(scope, channel, code_hash)
            .await?;
        self.invalidate(Invalidation::Identity(out.key.clone()));
        Ok(out)
    }

    async fn approve_pairing(
        &self,
        scope: &AdminScope,
        channel: &ChannelName,
        code_hash: &CodeHash,
        owner: &OwnerId,
    ) -> Result<ChannelBinding> {
        let out = self
            .shared
            .inner
            .approve_pairing(scope, channel, code_hash, owner)
            .await?;
        self.invalidate(Invalidation::Identity(out.key.clone()));
        Ok(out)
    }

    async fn burn_pending(&self, scope: &SystemScope, channel: &ChannelName) -> Result<u64> {
        self.shared.inner.burn_pending(scope, channel).await
    }

    async fn resolve_identity(
        &self,
        scope: &ChannelScope,
        external_id: &ExternalId,
    ) -> Result<Option<Identity>> {
        let s = &self.shared;
        let key = ChannelKey::new(scope.channel().clone(), external_id.clone());
        let now = nanos(s.clock.now());
        if let Some(identity) = s.identities.get(&key, now) {
            s.identity_counts.hits.increment(1);
            return Ok(Some(identity));
        }
        s.identity_counts.misses.increment(1);
        let epoch = s.epoch.load(Ordering::SeqCst);
        let found = s.inner.resolve_identity(scope, external_id).await?;
        if let Some(identity) = &found {
            let deadline = self.deadline(now);
            self.insert_if_current(&s.identities, epoch, key, identity.clone(), deadline);
        }
        Ok(found)
    }

    async fn stored_pairing_key(
        &self,
        scope: &SystemScope,
        candidate: &PairingKey,
    ) -> Result<PairingKey> {
        self.shared.inner.stored_pairing_key(scope, candidate).await
    }

    async fn list_identities(&self, scope: &OwnerScope) -> Result<Vec<ChannelBinding>> {
        self.shared.inner.list_identities(scope).await
    }

    async fn unlink_identity(&self, scope: &OwnerScope, key: &ChannelKey) -> Result<()> {
        let out = self.shared.inner.unlink_identity(scope, key).await;
        self.invalidate(Invalidation::Identity(key.clone()));
        out
    }
}

#[async_trait]
impl<S: Store + 'static> AuditLog for Cached<S> {
    async fn list_events(
        &self,
        filter: AuditFilter<'_>,
        page: &PageRequest,
    ) -> Result<Page<AuditEvent>> {
        self.shared.inner.list_events(filter, page).await
    }

    async fn events_after(
        &self,
        scope: &OwnerScope,
        after: i64,
        limit: u32,
    ) -> Result<Vec<AuditEvent>> {
        self.shared.inner.events_after(scope, after, limit).await
    }

    async fn verify_chain(&self) -> Result<ChainVerdict> {
        self.shared.inner.verify_chain().await
    }
}

#[async_trait]
impl<S: Store + 'static> SecretStore for Cached<S> {
    async fn data_key(&self, scope: &OwnerScope) -> Result<Option<Sealed>> {
        self.shared.inner.data_key(scope).await
    }

    async fn put_secret(
        &self,
        scope: &OwnerScope,
        name: &SecretName,
        value: Sealed,
        new_data_key: Option<Sealed>,
    ) -> Result<SecretMeta> {
        self.shared
            .inner
            .put_secret(scope, name, value, new_data_key)
            .await
    }

    async fn get_secret(&self, scope: &OwnerScope, name: &SecretName) -> Result<Option<Sealed>> {
        self.shared.inner.get_secret(scope, name).await
    }

    async fn list_secrets(&self, scope: &OwnerScope) -> Result<Vec<SecretMeta>> {
        self.shared.inner.list_secrets(scope).await
    }

    async fn delete_secret(&self, scope: &OwnerScope, name: &SecretName) -> Result<()> {
        self.shared.inner.delete_secret(scope, name).await
    }

    async fn all_data_keys(&self, scope: &SystemScope) -> Result<Vec<(OwnerId, Sealed)>> {
        self.shared.inner.all_data_keys(scope).await
    }

    async fn replace_data_keys(
        &self,
        scope: &SystemScope,
        keys: &[(OwnerId, Sealed, Sealed)],
    ) -> Result<u64> {
        self.shared.inner.replace_data_keys(scope, keys).await
    }
}

#[async_trait]
impl<S: Store + 'static> ResourceStore for Cached<S> {
    async fn create_resource(
        &self,
        scope: &OwnerScope,
        new: NewResource,
    ) -> Result<ResourceRecord> {
        self.shared.inner.create_resource(scope, new).await
    }

    async fn get_resource(&self, scope: &OwnerScope, id: &ResourceId) -> Result<ResourceRecord> {
        self.shared.inner.get_resource(scope, id).await
    }

    async fn list_resources(&self, scope: &OwnerScope) -> Result<Vec<ResourceRecord>> {
        self.shared.inner.list_resources(scope).await
    }

    async fn revoke_resource(&self, scope: &OwnerScope, id: &ResourceId) -> Result<()> {
        let out = self.shared.inner.revoke_resource(scope, id).await;
        self.invalidate(Invalidation::Resource(id.clone()));
        out
    }

    async fn resolve_resource(&self, digest: &TokenDigest) -> Result<Option<ResourceRecord>> {
        let s = &self.shared;
        let now = nanos(s.clock.now());
        if let Some(r) = s.resources.get(digest, now) {
            s.resource_counts.hits.increment(1);
            return Ok(Some(r));
        }
        s.resource_counts.misses.increment(1);
        let epoch = s.epoch.load(Ordering::SeqCst);
        let found = s.inner.resolve_resource(digest).await?;
        if let Some(r) = &found {
            let deadline = self.deadline(now);
            self.insert_if_current(&s.resources, epoch, *digest, r.clone(), deadline);
        }
        Ok(found)
    }
}

#[async_trait]
impl<S: Store + 'static> WebhookStore for Cached<S> {
    async fn put_endpoint(
        &self,
        scope: &OwnerScope,
        url: &str,
        secret: Sealed,
    ) -> Result<WebhookEndpoint> {
        self.shared.inner.put_endpoint(scope, url, secret).await
    }

    async fn get_endpoint(&self, scope: &OwnerScope) -> Result<Option<WebhookEndpoint>> {
        self.shared.inner.get_endpoint(scope).await
    }

    async fn delete_endpoint(&self, scope: &OwnerScope) -> Result<()> {
        self.shared.inner.delete_endpoint(scope).await
    }

    async fn rotate_endpoint_secret(
        &self,
        scope: &OwnerScope,
        secret: Sealed,
        grace_until: OffsetDateTime,
    ) -> Result<WebhookEndpoint> {
        self.shared
            .inner
            .rotate_endpoint_secret(scope, secret, grace_until)
            .await
    }

    async fn enqueue_delivery(
        &self,
        scope: &SystemScope,
        owner: &OwnerId,
        id: DeliveryId,
        event_type: &str,
        payload: &str,
    ) -> Result<Option<Delivery>> {
        self.shared
            .inner
            .enqueue_delivery(scope, owner, id, event_type, payload)
            .await
    }

    async fn due_deliveries(
        &self,
        scope: &SystemScope,
        limit: u32,
    ) -> Result<Vec<(Delivery, WebhookEndpoint)>> {
        self.shared.inner.due_deliveries(scope, limit).await
    }

    async fn record_attempt(
        &self,
        scope: &SystemScope,
        id: &DeliveryId,
        state: DeliveryState,
        next_attempt_at: OffsetDateTime,
        result: &str,
    ) -> Result<()> {
        self.shared
            .inner
            .record_attempt(scope, id, state, next_attempt_at, result)
            .await
    }

    async fn list_deliveries(
        &self,
        scope: &OwnerScope,
        page: &PageRequest,
    ) -> Result<Page<Delivery>> {
        self.shared.inner.list_deliveries(scope, page).await
    }
}

#[async_trait]
impl<S: Store + 'static> Health for Cached<S> {
    async fn ping(&self) -> Result<()> {
        self.shared.inner.ping().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalidations_round_trip_through_text() {
        let all = [
            Invalidation::Token(TokenId::parse("tok_0123456789abcdef0123").unwrap()),
            Invalidation::Owner(OwnerId::parse("alice").unwrap()),
            Invalidation::Identity(ChannelKey::new(
                ChannelName::parse("telegram").unwrap(),
                ExternalId::parse("a/b:c 1").unwrap(),
            )),
            Invalidation::Resource(ResourceId::parse("res_0123456789abcdef0123").unwrap()),
            Invalidation::All,
        ];
        for inv in all {
            assert_eq!(Invalidation::decode(&inv.encode()), Some(inv.clone()));
        }
        for bad in [
            "",
            "tok",
            "token:nope",
            "identity:telegram",
            "what:x",
            "ALL",
        ] {
            assert_eq!(Invalidation::decode(bad), None, "{bad}");
        }
    }
}
