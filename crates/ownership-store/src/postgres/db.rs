//! The transaction port on PostgreSQL: [`PgTx`] is a write transaction holding the audit-
//! head lock ([`Write`]) or a read connection, and [`PgStore`] opens them
//! ([`Transactions`]). The use cases are core's; each area's module here implements its row
//! trait for [`PgTx`], and its point read for [`PgStore`].

use async_trait::async_trait;
use std::sync::{Arc, OnceLock};

use ownership_core::audit::{AuditEvent, ChainKeys, NewAuditEvent};
use ownership_core::authz::ActorState;
use ownership_core::db::{Body, Committed, Transactions, Tx};
use ownership_core::{OwnerId, Result, UserRole, UserStatus};
use sqlx::pool::PoolConnection;
use sqlx::postgres::PgConnection;
use sqlx::{Postgres, Transaction};
use time::OffsetDateTime;

use super::PgStore;
use super::support::{Write, integrity, parsed, query, unavailable};
use crate::metrics::Op;

/// What a [`PgTx`] runs on.
enum Conn {
    /// A write transaction, holding the audit-head lock.
    Write(Write),
    /// A connection of the read pool.
    Read(PoolConnection<Postgres>),
    /// A read-only, repeatable-read transaction: one snapshot.
    Snapshot(Transaction<'static, Postgres>),
}

/// A transaction: its connection, its time, and the events it appended.
pub struct PgTx {
    conn: Conn,
    now: OffsetDateTime,
    appended: Vec<AuditEvent>,
    keys: Arc<OnceLock<ChainKeys>>,
}

impl std::fmt::Debug for PgTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTx")
            .field("now", &self.now)
            .field("write", &matches!(self.conn, Conn::Write(_)))
            .finish_non_exhaustive()
    }
}

impl PgTx {
    /// The connection, for the area's statements.
    pub(super) fn conn(&mut self) -> &mut PgConnection {
        match &mut self.conn {
            Conn::Write(w) => w.conn(),
            Conn::Read(c) => c,
            Conn::Snapshot(t) => t,
        }
    }
}

#[async_trait]
impl Tx for PgTx {
    fn now(&self) -> OffsetDateTime {
        self.now
    }

    async fn append(&mut self, event: NewAuditEvent) -> Result<()> {
        let Conn::Write(w) = &mut self.conn else {
            return Err(integrity("audit append outside a write"));
        };
        let linked = w.audit(event, self.keys.get()).await?;
        self.appended.push(linked);
        Ok(())
    }

    fn chain_keys(&self) -> Option<&ChainKeys> {
        self.keys.get()
    }

    async fn actor_state(&mut self, user: &OwnerId) -> Result<Option<ActorState>> {
        actor_state(self.conn(), user).await
    }
}

impl Transactions for PgStore {
    type Tx = PgTx;

    fn now(&self) -> OffsetDateTime {
        PgStore::now(self)
    }

    fn limits(&self) -> ownership_core::quotas::Limits {
        self.limits
    }

    async fn write<R, F>(&self, body: F) -> Result<Committed<R>>
    where
        R: Send + 'static,
        F: Body<PgTx, R>,
    {
        let w = Write::begin(&self.pool, self.clock.as_ref()).await?;
        let now = w.now();
        let mut tx = PgTx {
            conn: Conn::Write(w),
            now,
            appended: Vec::new(),
            keys: Arc::clone(&self.chain_keys),
        };
        let value = body(&mut tx).await?;
        let Conn::Write(w) = tx.conn else {
            return Err(integrity("write transaction"));
        };
        w.commit().await?;
        Ok(Committed {
            value,
            events: tx.appended,
        })
    }

    async fn read<R, F>(&self, body: F) -> Result<R>
    where
        R: Send + 'static,
        F: Body<PgTx, R>,
    {
        crate::metrics::timed("postgres", Op::Read, async {
            let conn = self.reads().acquire().await.map_err(unavailable)?;
            let mut tx = PgTx {
                conn: Conn::Read(conn),
                now: PgStore::now(self),
                appended: Vec::new(),
                keys: Arc::clone(&self.chain_keys),
            };
            body(&mut tx).await
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
            let mut tx = PgTx {
                conn: Conn::Snapshot(t),
                now: PgStore::now(self),
                appended: Vec::new(),
                keys: Arc::clone(&self.chain_keys),
            };
            let value = body(&mut tx).await?;
            if let Conn::Snapshot(t) = tx.conn {
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

/// A user's role and status, as [`AdminScope::recheck`](ownership_core::authz::AdminScope::recheck) and
/// [`ownership_core::authz::MintPermit::recheck`] read them; `None` when there is no such
/// user.
async fn actor_state(conn: &mut PgConnection, id: &OwnerId) -> Result<Option<ActorState>> {
    query("SELECT role, status FROM users WHERE id = $1")
        .bind(id.as_str())
        .fetch_optional(conn)
        .await
        .map_err(unavailable)?
        .map(|row| {
            Ok(ActorState {
                role: parsed(&row, "role", UserRole::parse)?,
                status: parsed(&row, "status", UserStatus::parse)?,
            })
        })
        .transpose()
}
