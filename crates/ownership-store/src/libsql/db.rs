//! The transaction port on libSQL: [`LibsqlTx`] is a transaction on the database thread,
//! and [`LibsqlStore`] opens them ([`Database`]). The use cases are core's; each area's
//! module here implements its row trait for [`LibsqlTx`].

use ::libsql::Connection;
use async_trait::async_trait;
use ownership_core::audit::{AuditEvent, NewAuditEvent};
use ownership_core::authz::ActorState;
use ownership_core::db::{Body, Committed, Database, Tx};
use ownership_core::pairing::ChannelAuth;
use ownership_core::resources::ResourceAuth;
use ownership_core::token::TokenDigest;
use ownership_core::tokens::TokenAuth;
use ownership_core::{ChannelKey, OwnerId, Result};
use time::OffsetDateTime;

use super::LibsqlStore;
use super::audit::append_audit;
use super::conn::now_of;
use super::recheck::actor_state;

/// A transaction on the database thread: the connection (inside `BEGIN IMMEDIATE` for a
/// write, `BEGIN DEFERRED` for a read), its time, and the events it appended.
#[derive(Debug)]
pub struct LibsqlTx {
    pub(super) conn: Connection,
    now: OffsetDateTime,
    appended: Vec<AuditEvent>,
}

#[async_trait]
impl Tx for LibsqlTx {
    fn now(&self) -> OffsetDateTime {
        self.now
    }

    async fn append(&mut self, event: NewAuditEvent) -> Result<()> {
        let linked = append_audit(&self.conn, event).await?;
        self.appended.push(linked);
        Ok(())
    }

    async fn actor_state(&mut self, user: &OwnerId) -> Result<Option<ActorState>> {
        actor_state(&self.conn, user).await
    }
}

impl Database for LibsqlStore {
    type Tx = LibsqlTx;

    fn now(&self) -> OffsetDateTime {
        now_of(self.clock.as_ref())
    }

    async fn write<R, F>(&self, body: F) -> Result<Committed<R>>
    where
        R: Send + 'static,
        F: Body<LibsqlTx, R>,
    {
        let clock = self.clock.clone();
        self.worker
            .write(async move |c: &Connection| {
                // Inside BEGIN IMMEDIATE: the write lock is held, so the time is read now.
                let mut tx = LibsqlTx {
                    conn: c.clone(),
                    now: now_of(clock.as_ref()),
                    appended: Vec::new(),
                };
                let value = body(&mut tx).await?;
                Ok(Committed {
                    value,
                    events: tx.appended,
                })
            })
            .await
    }

    async fn read<R, F>(&self, body: F) -> Result<R>
    where
        R: Send + 'static,
        F: Body<LibsqlTx, R>,
    {
        let clock = self.clock.clone();
        self.worker
            .read(async move |c: &Connection| {
                let mut tx = LibsqlTx {
                    conn: c.clone(),
                    now: now_of(clock.as_ref()),
                    appended: Vec::new(),
                };
                body(&mut tx).await
            })
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

    async fn token_auth(&self, digest: &TokenDigest) -> Result<Option<TokenAuth>> {
        let digest = digest.as_bytes().to_vec();
        self.worker
            .run(move |c| async move { super::tokens::token_auth(&c, digest).await })
            .await
    }

    fn rng(&self) -> Box<dyn ownership_core::RandomSource + Send> {
        Box::new(crate::OsRandom)
    }

    async fn identity_of(&self, key: &ChannelKey) -> Result<Option<ChannelAuth>> {
        let key = key.clone();
        self.worker
            .run(move |c| async move { super::pairing::identity_of(&c, &key).await })
            .await
    }

    async fn resource_by_digest(&self, digest: &TokenDigest) -> Result<Option<ResourceAuth>> {
        let digest = digest.as_bytes().to_vec();
        self.worker
            .run(move |c| async move { super::resources::resource_by_digest(&c, digest).await })
            .await
    }
}
