//! The transaction port on PostgreSQL: [`PgTx`] is a [`SqlTx`] on a write transaction
//! holding the writes lock and its chain's head, a read connection or a snapshot, and [`PgStore`] opens
//! them ([`Transactions`]). The rows are the shared row layer's ([`crate::sql`]).

use std::sync::Arc;
use std::time::Instant;

use ownership_core::db::{Body, Committed, Lane, Transactions};
use ownership_core::pairing::{ChannelAuth, PairingDatabase};
use ownership_core::resources::{ResourceAuth, ResourceDatabase};
use ownership_core::token::TokenDigest;
use ownership_core::tokens::{TokenAuth, TokenDatabase};
use ownership_core::{ChannelKey, OwnerId, Result};
use time::OffsetDateTime;

use super::PgStore;
use super::support::{Pg, query, unavailable};
use crate::metrics::Op;
use crate::sql::driver::integrity;
use crate::sql::{SqlTx, head, lock_lane, pairing, resources, tokens};

/// A transaction on PostgreSQL.
pub type PgTx = SqlTx<Pg>;

/// How a write transaction begins: the limits of [`super::SESSION_SETTINGS`], for this
/// transaction, and the writes lock (the advisory transaction lock 0x6f776e657273 =
/// "owners"), in the same round trip as `BEGIN`: exclusive for a system write, shared for
/// an owner's ([`OWNER_WRITE_BEGIN`]), so a system write runs alone and owners' writes run
/// side by side.
const WRITE_BEGIN: &str = "BEGIN; SET LOCAL statement_timeout = '30s'; \
     SET LOCAL idle_in_transaction_session_timeout = '60s'; \
     SELECT pg_advisory_xact_lock(122511586554483)";

/// [`WRITE_BEGIN`] of an owner's write, or of an unowned one: the writes lock shared.
const OWNER_WRITE_BEGIN: &str = "BEGIN; SET LOCAL statement_timeout = '30s'; \
     SET LOCAL idle_in_transaction_session_timeout = '60s'; \
     SELECT pg_advisory_xact_lock_shared(122511586554483)";

/// How many queues the owners' writes of one process are spread over ([`Lanes`]).
const OWNER_QUEUES: usize = 256;

/// This process's queues in front of the database's write locks, taken in the same order
/// (the writes lock, then a chain's head): a write waits here, holding no connection,
/// until the locks it will take in the database are free of this process's other
/// writes. Without them a burst of writes behind one lock (sixteen rotations of one
/// owner's token, or every pairing request of a busy channel) would hold every pooled
/// connection while it waits, and the reads and other owners' writes that could run
/// would wait for a connection instead, up to the pool's acquire timeout. Across
/// processes the database's locks still decide; these only keep one process's waiting
/// writes off its pool.
#[derive(Debug)]
pub(crate) struct Lanes {
    /// The writes lock: exclusive for a write alone, shared beside others. Fair: a
    /// waiting write alone is not overtaken by later shared ones.
    writes: tokio::sync::RwLock<()>,
    /// The system chain's head: writes of no owner's rows.
    system: tokio::sync::Mutex<()>,
    /// Owners' chain heads, by a hash of the owner (two owners may share a queue).
    owners: Box<[tokio::sync::Mutex<()>]>,
}

impl Default for Lanes {
    fn default() -> Self {
        Self {
            writes: tokio::sync::RwLock::new(()),
            system: tokio::sync::Mutex::new(()),
            owners: (0..OWNER_QUEUES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
        }
    }
}

impl Lanes {
    /// The queue of `owner`'s writes.
    fn owner(&self, owner: &OwnerId) -> &tokio::sync::Mutex<()> {
        use std::hash::{BuildHasher, BuildHasherDefault};
        let hash = BuildHasherDefault::<std::hash::DefaultHasher>::default().hash_one(owner);
        let i = usize::try_from(hash % OWNER_QUEUES as u64).unwrap_or(0);
        // Always in range; were it not, the system chain's queue is a coarser one that
        // still takes one queue after the writes lock.
        self.owners.get(i).unwrap_or(&self.system)
    }
}

impl PgStore {
    /// A write transaction begun with `begin` (the limits, the writes lock). The limits
    /// are set for this transaction too: through a transaction pooler the connection's
    /// session settings may belong to another server connection.
    async fn begin_write(&self, begin: &'static str) -> Result<Pg> {
        let t = self.pool.begin_with(begin).await.map_err(unavailable)?;
        Ok(Pg::Tx(t))
    }

    /// A write of the system chain: the writes lock (exclusive, or shared for a write
    /// `beside` owners' writes), then the chain's head (`FOR UPDATE`), then the clock.
    async fn write_system_chain<R, F>(&self, beside: bool, body: F) -> Result<Committed<R>>
    where
        R: Send + 'static,
        F: Body<PgTx, R>,
    {
        let started = Instant::now();
        let begin = if beside {
            OWNER_WRITE_BEGIN
        } else {
            WRITE_BEGIN
        };
        let mut d = self.begin_write(begin).await?;
        let head = head(&mut d, true).await?;
        let keys = Arc::clone(&self.chain_keys);
        let tx = SqlTx::new(d, PgStore::now(self), keys, Some(head));
        let tx = if beside { tx.unowned() } else { tx };
        self.run_write(tx, body, started).await
    }

    /// Runs `body` in the write `tx` (begun at `started`) and commits it.
    async fn run_write<R, F>(&self, mut tx: PgTx, body: F, started: Instant) -> Result<Committed<R>>
    where
        R: Send + 'static,
        F: Body<PgTx, R>,
    {
        let value = body(&mut tx).await?;
        let (Pg::Tx(t), events) = tx.into_parts() else {
            return Err(integrity("write transaction"));
        };
        let result = t.commit().await.map_err(unavailable);
        crate::metrics::store_call_latency("postgres", Op::Write, started);
        result.map(|()| Committed { value, events })
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

    /// Begins a transaction on `lane`, and only once its locks are held reads the clock
    /// (a transaction that waited is never stamped earlier than one committed before it):
    /// - [`Lane::Alone`]: the writes lock exclusively and the system chain's head
    ///   (`FOR UPDATE`), which serializes it after every other mutation;
    /// - [`Lane::Owner`]: the writes lock shared (no alone write runs meanwhile) and the
    ///   head of the owner's chain (writes of the same owner queue there, other owners' do
    ///   not); with no such owner, whatever the body does (most likely refuse) runs alone;
    /// - [`Lane::Unowned`]: the writes lock shared (owners' writes run meanwhile) and the
    ///   system chain's head, which serializes it after the other writes of that chain.
    async fn write_in<R, F>(&self, lane: Lane<'_>, body: F) -> Result<Committed<R>>
    where
        R: Send + 'static,
        F: Body<PgTx, R>,
    {
        let lanes = Arc::clone(&self.lanes);
        let owner = match lane {
            Lane::Alone => {
                let _alone = lanes.writes.write().await;
                return self.write_system_chain(false, body).await;
            }
            Lane::Unowned => {
                let _beside = lanes.writes.read().await;
                let _system = lanes.system.lock().await;
                return self.write_system_chain(true, body).await;
            }
            Lane::Owner(owner) => owner,
        };
        let beside = lanes.writes.read().await;
        let queued = lanes.owner(owner).lock().await;
        let started = Instant::now();
        let mut d = self.begin_write(OWNER_WRITE_BEGIN).await?;
        let Some(lane) = lock_lane(&mut d, owner).await? else {
            if let Pg::Tx(t) = d {
                t.rollback().await.map_err(unavailable)?;
            }
            drop((queued, beside));
            let _alone = lanes.writes.write().await;
            return self.write_system_chain(false, body).await;
        };
        let keys = Arc::clone(&self.chain_keys);
        let tx = SqlTx::new(d, PgStore::now(self), keys, None).with_lane(lane);
        self.run_write(tx, body, started).await
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
