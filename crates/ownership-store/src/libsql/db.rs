//! The transaction port on libSQL: [`LibsqlTx`] is a [`SqlTx`] on the database thread's
//! connection, and [`LibsqlStore`] opens them ([`Transactions`]). The rows are the shared
//! row layer's ([`crate::sql`]); the point reads run on reader connections.

use ::libsql::Connection;
use std::sync::Arc;

use ownership_core::db::{Body, Committed, Lane, Transactions};
use ownership_core::pairing::{ChannelAuth, PairingDatabase};
use ownership_core::resources::{ResourceAuth, ResourceDatabase};
use ownership_core::token::TokenDigest;
use ownership_core::tokens::{TokenAuth, TokenDatabase};
use ownership_core::{ChannelKey, Result};
use time::OffsetDateTime;

use super::LibsqlStore;
use super::conn::{Lite, now_of};
use crate::sql::{SqlTx, pairing, resources, tokens};

/// A transaction on the database thread (inside `BEGIN IMMEDIATE` for a write,
/// `BEGIN DEFERRED` for a read).
pub type LibsqlTx = SqlTx<Lite>;

impl LibsqlStore {
    /// A transaction on the database thread's connection `c` at the store's time now.
    fn tx(&self, c: &Connection) -> LibsqlTx {
        SqlTx::new(
            self.worker.on_thread(c.clone()),
            now_of(self.clock.as_ref()),
            Arc::clone(&self.chain_keys),
            None,
        )
    }
}

impl Transactions for LibsqlStore {
    type Tx = LibsqlTx;

    fn now(&self) -> OffsetDateTime {
        now_of(self.clock.as_ref())
    }

    fn limits(&self) -> ownership_core::quotas::Limits {
        self.limits
    }

    /// Every lane is the one writer's: libSQL serializes all writes anyway.
    async fn write_in<R, F>(&self, _lane: Lane<'_>, body: F) -> Result<Committed<R>>
    where
        R: Send + 'static,
        F: Body<LibsqlTx, R>,
    {
        let store = self.clone();
        self.worker
            .write(async move |c: &Connection| {
                // Inside BEGIN IMMEDIATE: the write lock is held, so the time is read now.
                let mut tx = store.tx(c);
                let value = body(&mut tx).await?;
                let (_, events) = tx.into_parts();
                Ok(Committed { value, events })
            })
            .await
    }

    async fn read<R, F>(&self, body: F) -> Result<R>
    where
        R: Send + 'static,
        F: Body<LibsqlTx, R>,
    {
        let store = self.clone();
        self.worker
            .read(async move |c: &Connection| body(&mut store.tx(c)).await)
            .await
    }

    async fn snapshot<R, F>(&self, body: F) -> Result<R>
    where
        R: Send + 'static,
        F: Body<LibsqlTx, R>,
    {
        // A read transaction is already one snapshot (and writes wait on this thread).
        self.read(body).await
    }

    fn rng(&self) -> Box<dyn ownership_core::RandomSource + Send> {
        Box::new(crate::OsRandom)
    }
}

impl TokenDatabase for LibsqlStore {
    async fn token_auth(&self, digest: &TokenDigest) -> Result<Option<TokenAuth>> {
        let digest = *digest;
        let read = async move |d: &mut Lite| tokens::token_auth(d, digest.as_bytes()).await;
        self.worker.point(read).await
    }
}

impl PairingDatabase for LibsqlStore {
    async fn identity_of(&self, key: &ChannelKey) -> Result<Option<ChannelAuth>> {
        let key = key.clone();
        let read = async move |d: &mut Lite| pairing::identity_of(d, &key).await;
        self.worker.point(read).await
    }
}

impl ResourceDatabase for LibsqlStore {
    async fn resource_by_digest(&self, digest: &TokenDigest) -> Result<Option<ResourceAuth>> {
        let digest = *digest;
        let read =
            async move |d: &mut Lite| resources::resource_by_digest(d, digest.as_bytes()).await;
        self.worker.point(read).await
    }
}
