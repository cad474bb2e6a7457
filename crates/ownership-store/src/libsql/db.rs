//! The transaction port on libSQL: [`LibsqlTx`] is a transaction on the database thread,
//! and [`LibsqlStore`] opens them ([`Transactions`]). The use cases are core's; each area's
//! module here implements its row trait for [`LibsqlTx`], and its point read for
//! [`LibsqlStore`].

use ::libsql::Connection;
use async_trait::async_trait;
use std::sync::{Arc, OnceLock};

use ownership_core::audit::{AuditEvent, ChainHash, ChainHead, ChainKeys, NewAuditEvent};
use ownership_core::authz::ActorState;
use ownership_core::db::{Body, Committed, Transactions, Tx};
use ownership_core::{OwnerId, Result, UserRole, UserStatus};
use time::OffsetDateTime;

use super::LibsqlStore;
use super::conn::now_of;
use super::conn::{args, bytes, exec, int, integrity, micros, parsed, query_opt};

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
        let linked = append_audit(&self.conn, event, self.keys.get()).await?;
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

/// The recorded head: the last event's number, hash and key version.
pub(super) async fn head(conn: &Connection) -> Result<ChainHead> {
    let row = query_opt(
        conn,
        "SELECT seq, hash, key_version FROM audit_head WHERE id = 1",
        Vec::new(),
    )
    .await?
    .ok_or_else(|| integrity("audit head"))?;
    Ok(ChainHead {
        seq: int(&row, 0)?,
        hash: ChainHash::from_bytes(bytes::<32>(&row, 1, "audit head hash")?),
        key_version: key_version(&row, 2)?,
    })
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

/// The immutable identity of `owner`'s account as it is in this transaction.
async fn owner_uid(conn: &Connection, owner: Option<&OwnerId>) -> Result<Option<String>> {
    let Some(owner) = owner else {
        return Ok(None);
    };
    let row = query_opt(
        conn,
        "SELECT uid FROM users WHERE id = ?1",
        args![owner.as_str()],
    )
    .await?;
    match row {
        Some(row) => super::conn::opt_text(&row, 0),
        None => Ok(None),
    }
}

/// Appends `event` to the chain: reads the head, links the event after it (keyed under
/// `keys` when held: core decides), inserts it and moves the head. Call only inside a
/// write transaction (which holds the database lock).
pub(super) async fn append_audit(
    conn: &Connection,
    event: NewAuditEvent,
    keys: Option<&ChainKeys>,
) -> Result<AuditEvent> {
    let head = head(conn).await?;
    let uid = owner_uid(conn, event.owner.as_ref()).await?;
    let linked = head.link_next(event, uid, keys)?;
    exec(
        conn,
        "INSERT INTO audit_events (seq, at, actor, owner_id, action, target, details, prev_hash, hash, owner_uid, key_version) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        args![
            linked.seq,
            micros(linked.at)?,
            linked.actor.to_string(),
            linked.owner.as_ref().map(|o| o.as_str().to_owned()),
            linked.action.as_str(),
            linked.target.as_str(),
            linked.details.as_str(),
            linked.prev_hash.as_bytes().as_slice(),
            linked.hash.as_bytes().as_slice(),
            linked.owner_uid.clone(),
            linked.key_version.map(i64::from),
        ],
    )
    .await?;
    let moved = exec(
        conn,
        "UPDATE audit_head SET seq = ?1, hash = ?2, key_version = ?3 WHERE id = 1 AND seq = ?4",
        args![
            linked.seq,
            linked.hash.as_bytes().as_slice(),
            linked.key_version.map(i64::from),
            head.seq
        ],
    )
    .await?;
    if moved != 1 {
        return Err(integrity("audit head"));
    }
    Ok(linked)
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
