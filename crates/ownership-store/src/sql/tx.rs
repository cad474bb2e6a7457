//! [`SqlTx`]: a transaction on any [`Driver`], with its time and the audit events it
//! appended. It implements core's [`Tx`]; each area's module implements its row trait.

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use ownership_core::audit::{AuditEvent, ChainHash, ChainHead, ChainKeys, NewAuditEvent};

use super::chain::{Lane, Writing};
use ownership_core::authz::ActorState;
use ownership_core::db::Tx;
use ownership_core::{OwnerId, Result, UserRole, UserStatus};
use time::OffsetDateTime;

use super::driver::{Driver, args, bytes, int, integrity, opt_u32, parsed, query_opt};

/// A transaction: the driver it runs on, its time and the events it appended.
#[derive(Debug)]
pub struct SqlTx<D> {
    pub(crate) d: D,
    pub(super) now: OffsetDateTime,
    appended: Vec<AuditEvent>,
    keys: Arc<OnceLock<ChainKeys>>,
    /// The system chain's head, once read (a PostgreSQL system write reads and locks it
    /// first).
    head: Option<ChainHead>,
    /// An owner's write: the owner's chain, its head locked (PostgreSQL).
    lane: Option<Lane>,
    /// A write of no owner's rows beside owners' writes (PostgreSQL).
    unowned: bool,
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
            lane: None,
            unowned: false,
        }
    }

    /// The transaction as a write of no owner's rows beside owners' writes, holding the
    /// system chain's head: its events go into the system chain.
    pub(crate) fn unowned(mut self) -> Self {
        self.unowned = true;
        self
    }

    /// The transaction as a write of one owner's objects, holding `lane` (its chain's
    /// head, locked): its events go into that chain.
    pub(crate) fn with_lane(mut self, lane: Lane) -> Self {
        self.lane = Some(lane);
        self
    }

    /// The driver and the events appended, once the body is done.
    pub(crate) fn into_parts(self) -> (D, Vec<AuditEvent>) {
        (self.d, self.appended)
    }
}

/// The recorded head of the system chain; with `lock`, locked `FOR UPDATE` on PostgreSQL
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

    /// Links `event` after its chain's head, inserts it, moves the head and tells the
    /// driver.
    async fn append(&mut self, event: NewAuditEvent) -> Result<()> {
        let writing = match (self.lane.as_mut(), self.unowned) {
            (Some(lane), _) => Writing::Owner(lane),
            (None, true) => Writing::Unowned,
            (None, false) => Writing::Alone,
        };
        let keys = self.keys.get();
        let linked =
            super::chain::append(&mut self.d, &mut self.head, writing, event, keys).await?;
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
