//! A database wrapper that counts every call reaching the real database underneath (each
//! transaction and each point read), so tests can prove the cache serves warm lookups with
//! zero store reads.

use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use ownership_core::db::{Body, Committed, Lane, Transactions};
use ownership_core::pairing::{ChannelAuth, PairingDatabase};
use ownership_core::ports::{Database, Health};
use ownership_core::resources::{ResourceAuth, ResourceDatabase};
use ownership_core::token::TokenDigest;
use ownership_core::tokens::{TokenAuth, TokenDatabase};
use ownership_core::{ChannelKey, RandomSource, Result};
use time::OffsetDateTime;

/// Wraps a database and counts the calls that reach it.
#[derive(Debug)]
pub struct Counting<D> {
    inner: D,
    calls: AtomicU64,
}

impl<D> Counting<D> {
    /// Wraps `inner`.
    pub fn new(inner: D) -> Self {
        Self {
            inner,
            calls: AtomicU64::new(0),
        }
    }

    /// Calls so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    fn hit(&self) -> &D {
        self.calls.fetch_add(1, Ordering::SeqCst);
        &self.inner
    }
}

impl<D: Database> Transactions for Counting<D> {
    type Tx = D::Tx;

    fn now(&self) -> OffsetDateTime {
        self.inner.now()
    }

    fn limits(&self) -> ownership_core::quotas::Limits {
        self.inner.limits()
    }

    async fn write_in<R, F>(&self, lane: Lane<'_>, body: F) -> Result<Committed<R>>
    where
        R: Send + 'static,
        F: Body<D::Tx, R>,
    {
        self.hit().write_in(lane, body).await
    }

    async fn read<R, F>(&self, body: F) -> Result<R>
    where
        R: Send + 'static,
        F: Body<D::Tx, R>,
    {
        self.hit().read(body).await
    }

    async fn snapshot<R, F>(&self, body: F) -> Result<R>
    where
        R: Send + 'static,
        F: Body<D::Tx, R>,
    {
        self.hit().snapshot(body).await
    }

    fn rng(&self) -> Box<dyn RandomSource + Send> {
        self.inner.rng()
    }
}

impl<D: Database> TokenDatabase for Counting<D> {
    async fn token_auth(&self, digest: &TokenDigest) -> Result<Option<TokenAuth>> {
        self.hit().token_auth(digest).await
    }
}

impl<D: Database> PairingDatabase for Counting<D> {
    async fn identity_of(&self, key: &ChannelKey) -> Result<Option<ChannelAuth>> {
        self.hit().identity_of(key).await
    }
}

impl<D: Database> ResourceDatabase for Counting<D> {
    async fn resource_by_digest(&self, digest: &TokenDigest) -> Result<Option<ResourceAuth>> {
        self.hit().resource_by_digest(digest).await
    }
}

#[async_trait]
impl<D: Health> Health for Counting<D> {
    async fn ping(&self) -> Result<()> {
        self.hit().ping().await
    }
}
