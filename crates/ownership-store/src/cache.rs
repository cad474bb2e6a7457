//! The cache decorator: the same database, its three point reads served from memory on the
//! warm path.
//!
//! [`Cached`] wraps any [`Database`] and is one itself, so every port (core's use cases) runs
//! on it unchanged. It caches the three point reads behind every authenticated request:
//! token digest → principal ([`TokenDatabase::token_auth`]), `(channel, external_id)` →
//! identity ([`PairingDatabase::identity_of`]) and resource-token digest → resource
//! ([`ResourceDatabase::resource_by_digest`]), and only while core's rule says they are live.
//! Capacity and time-to-live are bounded ([`CacheConfig`]). What a write changed is read
//! from the audit events it committed ([`Committed::events`]) through
//! [`invalidation_of`], the same mapping other processes apply: one source for what
//! changed. [`Cached::apply`] lets another process's invalidations (PostgreSQL
//! `LISTEN/NOTIFY`, the libSQL watcher) do the same.
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
use ownership_core::authz::{Principal, SystemScope};
use ownership_core::db::{Body, Committed, Lane, Transactions};
use ownership_core::ids::{ChannelKey, TokenId};
use ownership_core::pairing::{ChannelAuth, PairingDatabase};
use ownership_core::ports::{Clock, Database, Health, ResourceRecord, TokenStore};
use ownership_core::resources::{ResourceAuth, ResourceDatabase};
use ownership_core::token::TokenDigest;
use ownership_core::tokens::{TokenAuth, TokenDatabase, TokenLookup};
use ownership_core::{Error, Identity, Result, UserStatus};
use time::OffsetDateTime;

pub use crate::invalidate::Invalidation;
use crate::invalidate::invalidation_of;
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

struct Shared<D> {
    inner: D,
    clock: Arc<dyn Clock>,
    /// Token digest → principal; the entries carry the last-use stamps.
    principals: TtlMap<TokenDigest, CachedPrincipal, DigestKeys>,
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

/// A [`Database`] decorated with the cache. Cheap to clone.
pub struct Cached<D> {
    shared: Arc<Shared<D>>,
}

impl<D> Clone for Cached<D> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<D> std::fmt::Debug for Cached<D> {
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

impl<D: Database> Cached<D> {
    /// Wraps `inner`. When called inside a tokio runtime, starts the write-behind task for
    /// `last_used_at` (it stops when the last clone is dropped).
    pub fn new(inner: D, clock: Arc<dyn Clock>, config: CacheConfig) -> Self {
        let shared = Arc::new(Shared {
            inner,
            clock,
            principals: TtlMap::with_hasher(config.capacity, DigestKeys::new())
                .instrumented("principals"),
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

    /// Writes collected `last_used_at` values now (call at shutdown); returns how many
    /// tokens' times were written.
    pub async fn flush(&self) -> Result<usize> {
        flush_uses(&self.shared).await
    }
}

impl<D> Cached<D> {
    /// The wrapped database.
    pub fn inner(&self) -> &D {
        &self.shared.inner
    }

    /// Applies an invalidation (a local write's, or one received from another process).
    pub fn apply(&self, inv: &Invalidation) {
        let s = &self.shared;
        s.epoch.fetch_add(1, Ordering::SeqCst);
        match inv {
            Invalidation::Token(id) => {
                // A scan over the entries' inline tags: an exact index by token id cost
                // more memory per entry than the whole target allows (docs/benchmarks.md).
                let tag = tag_of(id);
                s.principals
                    .remove_if(|c| c.token == tag && c.principal.token_id() == id);
            }
            Invalidation::Owner(owner) => {
                let tag = tag_of(owner);
                s.principals
                    .remove_if(|c| c.owner == tag && c.principal.identity().owner_id() == owner);
                s.identities.remove_if(|i| i.owner_id() == owner);
                s.resources.remove_if(|r| r.owner_id == *owner);
            }
            Invalidation::Identity(key) => s.identities.remove(key),
            Invalidation::Resource(id) => s.resources.remove_if(|r| r.id == *id),
            Invalidation::All => {
                s.principals.clear();
                s.identities.clear();
                s.resources.clear();
            }
        }
        s.epoch.fetch_add(1, Ordering::SeqCst);
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

impl<D: Database> Cached<D> {
    /// Evicts what a write's committed audit events name ([`invalidation_of`]); a write
    /// whose outcome is unknown (the store failed, perhaps at commit) flushes everything.
    fn committed<R>(&self, out: &Result<Committed<R>>) {
        match out {
            Ok(committed) => {
                for event in &committed.events {
                    crate::metrics::pairing_burned(event);
                    if let Some(inv) = invalidation_of(event) {
                        self.apply(&inv);
                    }
                }
            }
            Err(Error::Unavailable(_) | Error::Integrity(_)) => self.apply(&Invalidation::All),
            Err(_) => {}
        }
    }
}

impl<D: Database> Transactions for Cached<D> {
    type Tx = D::Tx;

    fn now(&self) -> OffsetDateTime {
        self.shared.inner.now()
    }

    fn limits(&self) -> ownership_core::quotas::Limits {
        self.shared.inner.limits()
    }

    /// The write, then the evictions its committed audit events name
    /// ([`invalidation_of`]). A write whose outcome is unknown (the store failed, perhaps
    /// at commit) flushes everything.
    async fn write_in<R, F>(&self, lane: Lane<'_>, body: F) -> Result<Committed<R>>
    where
        R: Send + 'static,
        F: Body<D::Tx, R>,
    {
        let out = self.shared.inner.write_in(lane, body).await;
        self.committed(&out);
        out
    }

    async fn read<R, F>(&self, body: F) -> Result<R>
    where
        R: Send + 'static,
        F: Body<D::Tx, R>,
    {
        self.shared.inner.read(body).await
    }

    async fn snapshot<R, F>(&self, body: F) -> Result<R>
    where
        R: Send + 'static,
        F: Body<D::Tx, R>,
    {
        self.shared.inner.snapshot(body).await
    }

    fn rng(&self) -> Box<dyn ownership_core::RandomSource + Send> {
        self.shared.inner.rng()
    }
}

impl<D: Database> TokenDatabase for Cached<D> {
    /// The warm path: one map lookup (the entry's deadline is never past its token's
    /// expiry) and a copy of the principal held in the entry, made under the shard's read
    /// lock. The copy allocates nothing and writes no shared counter (its ids are held
    /// inline), where handing out an `Arc` would bounce its reference count between the
    /// cores serving one hot token; and the principal inline in the entry is one memory
    /// access less per hit than one behind a pointer (docs/benchmarks.md, row 1).
    fn cached_principal(&self, digest: &TokenDigest) -> Option<Principal> {
        let s = &self.shared;
        let principal = s
            .principals
            .read_and_touch(digest, nanos(s.clock.now()), |c| c.principal.clone())?;
        s.principal_counts.hits.increment(1);
        Some(principal)
    }

    /// From the cache while the principal is live; an entry is never served past its
    /// token's expiry: its deadline is the earlier of that and the time-to-live.
    async fn token_auth(&self, digest: &TokenDigest) -> Result<Option<TokenAuth>> {
        let s = &self.shared;
        let now_at = s.clock.now();
        let now = nanos(now_at);
        if let Some(p) = s
            .principals
            .read_and_touch(digest, now, |c| live_auth(&c.principal))
        {
            s.principal_counts.hits.increment(1);
            return Ok(Some(p));
        }
        s.principal_counts.misses.increment(1);
        let epoch = s.epoch.load(Ordering::SeqCst);
        let found = s.inner.token_auth(digest).await?;
        if let Some(TokenLookup::Live(p)) = found.clone().map(|a| a.decide(now_at)) {
            let deadline = p
                .expires_at()
                .map_or(self.deadline(now), |at| self.deadline(now).min(nanos(at)));
            let entry = CachedPrincipal::new(p);
            if !self.insert_if_current(&s.principals, epoch, *digest, entry.clone(), deadline)
                || s.principals.read_and_touch(digest, now, |_| ()).is_none()
            {
                // Not cached (an invalidation raced it): the use is still recorded.
                s.principals.restore_uses(vec![(entry, now)]);
            }
        }
        Ok(found)
    }
}

impl<D: Database> PairingDatabase for Cached<D> {
    async fn identity_of(&self, key: &ChannelKey) -> Result<Option<ChannelAuth>> {
        let s = &self.shared;
        let now = nanos(s.clock.now());
        if let Some(identity) = s.identities.get(key, now) {
            s.identity_counts.hits.increment(1);
            return Ok(Some(ChannelAuth {
                owner: identity.owner_id().clone(),
                role: identity.role(),
                status: UserStatus::Active,
            }));
        }
        s.identity_counts.misses.increment(1);
        let epoch = s.epoch.load(Ordering::SeqCst);
        let found = s.inner.identity_of(key).await?;
        if let Some(identity) = found.as_ref().and_then(ChannelAuth::identity) {
            let deadline = self.deadline(now);
            self.insert_if_current(&s.identities, epoch, key.clone(), identity, deadline);
        }
        Ok(found)
    }
}

impl<D: Database> ResourceDatabase for Cached<D> {
    async fn resource_by_digest(&self, digest: &TokenDigest) -> Result<Option<ResourceAuth>> {
        let s = &self.shared;
        let now = nanos(s.clock.now());
        if let Some(record) = s.resources.get(digest, now) {
            s.resource_counts.hits.increment(1);
            return Ok(Some(ResourceAuth {
                record,
                status: UserStatus::Active,
            }));
        }
        s.resource_counts.misses.increment(1);
        let epoch = s.epoch.load(Ordering::SeqCst);
        let found = s.inner.resource_by_digest(digest).await?;
        if let Some(record) = found.clone().and_then(ResourceAuth::decide) {
            let deadline = self.deadline(now);
            self.insert_if_current(&s.resources, epoch, *digest, record, deadline);
        }
        Ok(found)
    }
}

/// A cached live principal as the row it was decided from: the decision reached again
/// gives the same principal (its `expires_at` already the earlier of expiry and pending
/// revocation, and the entry is never served past it).
fn live_auth(p: &Principal) -> TokenAuth {
    TokenAuth {
        id: p.token_id().clone(),
        owner: p.identity().owner_id().clone(),
        role: p.identity().role(),
        status: UserStatus::Active,
        kinds: p.kinds().clone(),
        expires_at: p.expires_at(),
        revoked_at: None,
    }
}

/// A cached principal, held inline in the map's entry, with 32-bit tags of its token id
/// and owner id beside it, so that evicting a token or an owner compares a tag first and
/// the ids only on a matching tag.
#[derive(Clone)]
struct CachedPrincipal {
    principal: Principal,
    token: u32,
    owner: u32,
}

impl CachedPrincipal {
    fn new(principal: Principal) -> Self {
        Self {
            token: tag_of(principal.token_id()),
            owner: tag_of(principal.identity().owner_id()),
            principal,
        }
    }
}

/// A 32-bit tag of an id: equal ids have equal tags; a collision only costs a pointer
/// read (the ids themselves are compared before anything is evicted).
fn tag_of(id: &impl std::hash::Hash) -> u32 {
    // Fixed keys: the tags must agree between inserts and evictions, and an id chosen to
    // collide gains nothing but a slower scan.
    let full = std::hash::BuildHasher::hash_one(
        &std::hash::BuildHasherDefault::<std::hash::DefaultHasher>::default(),
        id,
    );
    u32::try_from(full & u64::from(u32::MAX)).unwrap_or_default()
}

#[async_trait]
impl<D: Health> Health for Cached<D> {
    async fn ping(&self) -> Result<()> {
        self.shared.inner.ping().await
    }
}

async fn write_behind<D: Database>(shared: Weak<Shared<D>>, every: Duration) {
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

async fn flush_uses<D: Database>(s: &Shared<D>) -> Result<usize> {
    let taken = s.principals.take_uses();
    if taken.is_empty() {
        return Ok(0);
    }
    // One row per token, its latest use (a token may have been cached more than once).
    let mut latest: HashMap<&TokenId, i64> = HashMap::with_capacity(taken.len());
    for (c, at) in &taken {
        latest
            .entry(c.principal.token_id())
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
