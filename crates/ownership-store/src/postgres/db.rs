//! The transaction port on PostgreSQL: [`PgTx`] is a [`SqlTx`] on a write transaction
//! holding the audit-head lock, a read connection or a snapshot, and [`PgStore`] opens
//! them ([`Transactions`]). The rows are the shared row layer's ([`crate::sql`]).

use std::sync::Arc;
use std::time::Instant;

use ownership_core::db::{Body, Committed, Transactions};
use ownership_core::pairing::{ChannelAuth, PairingDatabase};
use ownership_core::resources::{ResourceAuth, ResourceDatabase};
use ownership_core::token::TokenDigest;
use ownership_core::tokens::{TokenAuth, TokenDatabase};
use ownership_core::{ChannelKey, Result};
use time::OffsetDateTime;

use super::PgStore;
use super::support::{Pg, query, unavailable};
use crate::metrics::Op;
use crate::sql::driver::integrity;
use crate::sql::{SqlTx, head, pairing, resources, tokens};

/// A transaction on PostgreSQL.
pub type PgTx = SqlTx<Pg>;

/// How a write transaction begins: the limits of [`super::SESSION_SETTINGS`], for this
/// transaction (in the same round trip as `BEGIN`).
const WRITE_BEGIN: &str = "BEGIN; SET LOCAL statement_timeout = '30s'; \
     SET LOCAL idle_in_transaction_session_timeout = '60s'";

impl Transactions for PgStore {
    type Tx = PgTx;

    fn now(&self) -> OffsetDateTime {
        PgStore::now(self)
    }

    fn limits(&self) -> ownership_core::quotas::Limits {
        self.limits
    }

    /// Begins a transaction, locks the audit head (`FOR UPDATE`), which serializes it
    /// after every other mutation, and only then reads the clock: a transaction that
    /// waited for the lock is never stamped earlier than one committed before it.
    async fn write<R, F>(&self, body: F) -> Result<Committed<R>>
    where
        R: Send + 'static,
        F: Body<PgTx, R>,
    {
        let started = Instant::now();
        // The limits are set for this transaction too: through a transaction pooler the
        // connection's session settings may belong to another server connection.
        let t = self
            .pool
            .begin_with(WRITE_BEGIN)
            .await
            .map_err(unavailable)?;
        let mut d = Pg::Tx(t);
        let head = head(&mut d, true).await?;
        let mut tx = SqlTx::new(
            d,
            PgStore::now(self),
            Arc::clone(&self.chain_keys),
            Some(head),
        );
        let value = body(&mut tx).await?;
        let (Pg::Tx(t), events) = tx.into_parts() else {
            return Err(integrity("write transaction"));
        };
        let result = t.commit().await.map_err(unavailable);
        crate::metrics::store_call_latency("postgres", Op::Write, started);
        result.map(|()| Committed { value, events })
    }

    async fn read<R, F>(&self, body: F) -> Result<R>
    where
        R: Send + 'static,
        F: Body<PgTx, R>,
    {
        crate::metrics::timed("postgres", Op::Read, async {
            let conn = self.reads().acquire().await.map_err(unavailable)?;
            let keys = Arc::clone(&self.chain_keys);
            body(&mut SqlTx::new(
                Pg::Read(conn),
                PgStore::now(self),
                keys,
                None,
            ))
            .await
        })
        .await
    }

    async fn snapshot<R, F>(&self, body: F) -> Result<R>
    where
        R: Send + 'static,
        F: Body<PgTx, R>,
    {
        crate::metrics::timed("postgres", Op::Read, async {
            let mut t = self.pool.begin().await.map_err(unavailable)?;
            query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .execute(&mut *t)
                .await
                .map_err(unavailable)?;
            let keys = Arc::clone(&self.chain_keys);
            let mut tx = SqlTx::new(Pg::Tx(t), PgStore::now(self), keys, None);
            let value = body(&mut tx).await?;
            if let (Pg::Tx(t), _) = tx.into_parts() {
                t.commit().await.map_err(unavailable)?;
            }
            Ok(value)
        })
        .await
    }

    fn rng(&self) -> Box<dyn ownership_core::RandomSource + Send> {
        Box::new(crate::OsRandom)
    }
}

impl PgStore {
    /// The driver of a point read: the read pool itself.
    fn point(&self) -> Pg {
        Pg::Pool(self.reads().clone())
    }
}

impl TokenDatabase for PgStore {
    async fn token_auth(&self, digest: &TokenDigest) -> Result<Option<TokenAuth>> {
        let mut d = self.point();
        let read = tokens::token_auth(&mut d, digest.as_bytes().as_slice());
        crate::metrics::timed("postgres", Op::Read, read).await
    }
}

impl PairingDatabase for PgStore {
    async fn identity_of(&self, key: &ChannelKey) -> Result<Option<ChannelAuth>> {
        let mut d = self.point();
        let read = pairing::identity_of(&mut d, key);
        crate::metrics::timed("postgres", Op::Read, read).await
    }
}

impl ResourceDatabase for PgStore {
    async fn resource_by_digest(&self, digest: &TokenDigest) -> Result<Option<ResourceAuth>> {
        let mut d = self.point();
        let read = resources::resource_by_digest(&mut d, digest.as_bytes().as_slice());
        crate::metrics::timed("postgres", Op::Read, read).await
    }
}
