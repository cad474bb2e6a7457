//! The transaction port on libSQL: [`LibsqlTx`] is a transaction on the database thread,
//! and [`LibsqlStore`] opens them ([`Transactions`]). The use cases are core's; each area's
//! module here implements its row trait for [`LibsqlTx`], and its point read for
//! [`LibsqlStore`].

use ::libsql::Connection;
use async_trait::async_trait;
use std::sync::{Arc, OnceLock};

use ownership_core::audit::{AuditEvent, ChainKeys, NewAuditEvent};
use ownership_core::authz::ActorState;
use ownership_core::db::{Body, Committed, Transactions, Tx};
use ownership_core::{OwnerId, Result, UserRole, UserStatus};
use time::OffsetDateTime;

use super::LibsqlStore;
use super::conn::now_of;
use super::conn::{args, int, integrity, parsed, query_opt};

/// A transaction on the database thread: the connection (inside `BEGIN IMMEDIATE` for a
/// write, `BEGIN DEFERRED` for a read), its time, and the events it appended.
#[derive(Debug)]
pub struct LibsqlTx {
    pub(super) conn: Connection,
    now: OffsetDateTime,
    appended: Vec<AuditEvent>,
    keys: Arc<OnceLock<ChainKeys>>,
}

#[async_trait]
impl Tx for LibsqlTx {
    fn now(&self) -> OffsetDateTime {
        self.now
    }

    async fn append(&mut self, event: NewAuditEvent) -> Result<()> {
        let linked = super::audit::append_audit(&self.conn, event, self.keys.get()).await?;
        self.appended.push(linked);
        Ok(())
    }

    fn chain_keys(&self) -> Option<&ChainKeys> {
        self.keys.get()
    }

    async fn actor_state(&mut self, user: &OwnerId) -> Result<Option<ActorState>> {
        actor_state(&self.conn, user).await
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

    async fn write<R, F>(&self, body: F) -> Result<Committed<R>>
    where
        R: Send + 'static,
        F: Body<LibsqlTx, R>,
    {
        let clock = self.clock.clone();
        let keys = Arc::clone(&self.chain_keys);
        self.worker
            .write(async move |c: &Connection| {
                // Inside BEGIN IMMEDIATE: the write lock is held, so the time is read now.
                let mut tx = LibsqlTx {
                    conn: c.clone(),
                    now: now_of(clock.as_ref()),
                    appended: Vec::new(),
                    keys,
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
        let keys = Arc::clone(&self.chain_keys);
        self.worker
            .read(async move |c: &Connection| {
                let mut tx = LibsqlTx {
                    conn: c.clone(),
                    now: now_of(clock.as_ref()),
                    appended: Vec::new(),
                    keys,
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

    fn rng(&self) -> Box<dyn ownership_core::RandomSource + Send> {
        Box::new(crate::OsRandom)
    }
}

/// A nullable key version column.
pub(super) fn key_version(row: &[::libsql::Value], i: usize) -> Result<Option<u32>> {
    match row.get(i) {
        Some(::libsql::Value::Null) => Ok(None),
        _ => u32::try_from(int(row, i)?)
            .map(Some)
            .map_err(|_| integrity("audit key version")),
    }
}

/// A user's role and status, as [`AdminScope::recheck`](ownership_core::authz::AdminScope::recheck) and
/// [`ownership_core::authz::MintPermit::recheck`] read them; `None` when there is no such
/// user.
async fn actor_state(conn: &Connection, id: &OwnerId) -> Result<Option<ActorState>> {
    query_opt(
        conn,
        "SELECT role, status FROM users WHERE id = ?1",
        args![id.as_str()],
    )
    .await?
    .map(|row| {
        Ok(ActorState {
            role: parsed(&row, 0, "user role", UserRole::parse)?,
            status: parsed(&row, 1, "user status", UserStatus::parse)?,
        })
    })
    .transpose()
}
