//! [`SqlTx`]: a transaction on any [`Driver`], with its time and the audit events it
//! appended. It implements core's [`Tx`]; each area's module implements its row trait.

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use ownership_core::audit::{AuditEvent, ChainHash, ChainHead, ChainKeys, NewAuditEvent};
use ownership_core::authz::ActorState;
use ownership_core::db::Tx;
use ownership_core::{OwnerId, Result, UserRole, UserStatus};
use time::OffsetDateTime;

use super::driver::{
    Driver, args, bytes, exec, int, integrity, opt_text, opt_u32, parsed, query_opt,
};

/// A transaction: the driver it runs on, its time and the events it appended.
#[derive(Debug)]
pub struct SqlTx<D> {
    pub(crate) d: D,
    pub(super) now: OffsetDateTime,
    appended: Vec<AuditEvent>,
    keys: Arc<OnceLock<ChainKeys>>,
    /// The chain head, once read (a PostgreSQL write reads and locks it first).
    head: Option<ChainHead>,
}

impl<D: Driver> SqlTx<D> {
    /// A transaction on `d` at `now` (read after the write lock was taken, for a write).
    pub(crate) fn new(
        d: D,
        now: OffsetDateTime,
        keys: Arc<OnceLock<ChainKeys>>,
        head: Option<ChainHead>,
    ) -> Self {
        Self {
            d,
            now,
            appended: Vec::new(),
            keys,
            head,
        }
    }

    /// The driver and the events appended, once the body is done.
    pub(crate) fn into_parts(self) -> (D, Vec<AuditEvent>) {
        (self.d, self.appended)
    }
}

/// The recorded head of the audit chain; with `lock`, locked `FOR UPDATE` on PostgreSQL
/// (a write that reads it first is serialized after every other).
pub(crate) async fn head<D: Driver>(d: &mut D, lock: bool) -> Result<ChainHead> {
    let sql = if lock {
        "SELECT seq, hash, key_version FROM audit_head WHERE id = 1 FOR UPDATE"
    } else {
        "SELECT seq, hash, key_version FROM audit_head WHERE id = 1"
    };
    let row = query_opt(d, sql, &[])
        .await?
        .ok_or_else(|| integrity("audit head"))?;
    Ok(ChainHead {
        seq: int(&row, 0)?,
        hash: ChainHash::from_bytes(bytes::<32>(&row, 1, "audit head hash")?),
        key_version: opt_u32(&row, 2, "audit key version")?,
    })
}

#[async_trait]
impl<D: Driver> Tx for SqlTx<D> {
    fn now(&self) -> OffsetDateTime {
        self.now
    }

    /// Links `event` after the head, inserts it, moves the head and tells the driver.
    async fn append(&mut self, event: NewAuditEvent) -> Result<()> {
        let head = match self.head {
            Some(h) => h,
            // libSQL's write lock is already held; PostgreSQL's write read it locked.
            None => head(&mut self.d, false).await?,
        };
        let uid = match event.owner.as_ref() {
            None => None,
            Some(owner) => {
                let sql = "SELECT uid FROM users WHERE id = $1";
                match query_opt(&mut self.d, sql, args![owner.as_str()]).await? {
                    Some(row) => opt_text(&row, 0)?,
                    None => None,
                }
            }
        };
        let linked = head.link_next(event, uid, self.keys.get())?;
        exec(
            &mut self.d,
            "INSERT INTO audit_events (seq, at, actor, owner_id, action, target, details, prev_hash, hash, owner_uid, key_version) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            args![
                linked.seq,
                linked.at,
                linked.actor.to_string(),
                linked.owner.as_ref().map(OwnerId::as_str),
                linked.action.as_str(),
                linked.target.as_str(),
                linked.details.as_str(),
                linked.prev_hash.as_bytes().as_slice(),
                linked.hash.as_bytes().as_slice(),
                linked.owner_uid.as_deref(),
                linked.key_version,
            ],
        )
        .await?;
        let moved = exec(
            &mut self.d,
            "UPDATE audit_head SET seq = $1, hash = $2, key_version = $3 WHERE id = 1 AND seq = $4",
            args![
                linked.seq,
                linked.hash.as_bytes().as_slice(),
                linked.key_version,
                head.seq
            ],
        )
        .await?;
        if moved != 1 {
            return Err(integrity("audit head"));
        }
        self.head = Some(ChainHead {
            seq: linked.seq,
            hash: linked.hash,
            key_version: linked.key_version,
        });
        self.d.appended(&linked).await?;
        self.appended.push(linked);
        Ok(())
    }

    fn chain_keys(&self) -> Option<&ChainKeys> {
        self.keys.get()
    }

    async fn actor_state(&mut self, user: &OwnerId) -> Result<Option<ActorState>> {
        let sql = "SELECT role, status FROM users WHERE id = $1";
        query_opt(&mut self.d, sql, args![user.as_str()])
            .await?
            .map(|row| {
                Ok(ActorState {
                    role: parsed(&row, 0, "user role", UserRole::parse)?,
                    status: parsed(&row, 1, "user status", UserStatus::parse)?,
                })
            })
            .transpose()
    }
}
