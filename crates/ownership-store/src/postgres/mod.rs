//! The ports of `ownership-core` on PostgreSQL (feature `postgres`), with sqlx.
//!
//! [`PgStore`] implements every port and [`Migrator`](crate::Migrator). The contract is
//! `docs/storage.md`; the points that matter here:
//!
//! - **One transaction per use case, serialized on the writes lock and its chain's head.**
//!   A system write takes the writes lock (an advisory transaction lock) exclusively, then
//!   `SELECT … FROM audit_head WHERE id = 1 FOR UPDATE`: it runs alone, so each use case's
//!   read-check-write that spans owners (the last Owner, one live pairing code per sender,
//!   exactly one winner of a redemption or rotation) cannot race. An owner's token or
//!   secret write ([`Lane::Owner`](ownership_core::db::Lane::Owner))
//!   takes the writes lock shared and that owner's `audit_chains` row `FOR UPDATE`, so
//!   different owners' writes run at once. No audit chain forks. The isolation level stays
//!   READ COMMITTED: once the locks are held, every later statement of the transaction sees
//!   what earlier lock holders committed.
//! - **Not the caller's = not found.** Owner-scoped statements carry `owner_id = $n` in
//!   their `WHERE` clause; zero rows is [`Error::NotFound`].
//! - **Errors.** A unique violation a use case expects becomes its documented error; any
//!   other driver error (pool timeout and refused connection included) is logged with
//!   `tracing::error!` and returned as `Error::Unavailable("store unavailable")`. A row
//!   that does not parse back into the domain types is [`Error::Integrity`].
//! - **Cross-process invalidation.** Appending an audit event also runs `pg_notify` on
//!   [`INVALIDATION_CHANNEL`] with what the event invalidates
//!   ([`invalidation_of`](crate::invalidate::invalidation_of)), inside the use case's
//!   transaction, so the notification goes out on commit only; [`listen_invalidations`]
//!   applies them in every server process.
//! - **Times** are truncated to microseconds before they are written, so what is read
//!   back equals what was written. A mutation's time is read once the audit-head lock is
//!   held (the write transaction reads the clock after `head`), never before: a
//!   transaction that waited for the lock is never stamped earlier than one committed
//!   before it (a rotation would otherwise find a just-revoked token still live).
//! - **Who acts is re-read under the lock.** Changes under an `AdminScope` re-read the
//!   acting user (`AdminScope::recheck`) and minting re-reads the token's owner
//!   (`MintPermit::recheck`) inside the transaction, so a demotion committed while a
//!   request was in flight counts.

mod db;
mod listen;
mod migrate;
mod support;
mod transfer;

use std::sync::Arc;

use ownership_core::quotas::Limits;
use std::time::Duration;

use async_trait::async_trait;
use ownership_core::audit::truncate_to_micros;
use ownership_core::ports::{Clock, Health};
use ownership_core::{Error, Result};
use sqlx::postgres::PgPoolOptions;
use sqlx::{AssertSqlSafe, PgPool, Row};
use time::OffsetDateTime;

pub use self::db::PgTx;
pub use self::listen::{RECONNECT_MAX, RECONNECT_MIN, listen_invalidations};
use self::support::query;
use self::support::unavailable;

/// The `LISTEN/NOTIFY` channel on which every mutating transaction publishes what it
/// invalidates ([`Invalidation::encode`](crate::cache::Invalidation::encode)); see
/// [`listen_invalidations`].
pub const INVALIDATION_CHANNEL: &str = "ownership_invalidate";

/// Most connections the pool opens.
pub const MAX_CONNECTIONS: u32 = 16;

/// How long a caller waits for a connection before the store answers
/// [`Error::Unavailable`] (so a stopped server fails requests fast, with a 503 upstream).
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Set on every connection [`PgStore::connect`] opens: a statement that runs (or waits
/// for a lock) longer than 30 s fails, so the store answers [`Error::Unavailable`] instead
/// of hanging, and a session idle inside a transaction for a minute is ended, so it cannot
/// hold the audit-head lock that serializes writes. Migrations lift the statement limit
/// for their own transactions.
pub const SESSION_SETTINGS: &str =
    "SET statement_timeout = '30s'; SET idle_in_transaction_session_timeout = '60s'";

/// How the store's connections reach PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pooler {
    /// Directly, or through a pooler in session mode: each connection is one server
    /// session. Statements are prepared once per connection and kept.
    #[default]
    None,
    /// Through a pooler in transaction mode (PgBouncer `pool_mode = transaction`), which
    /// gives each transaction whichever server connection is free. Every statement is
    /// then sent unnamed and runs inside an explicit transaction (reads in one that is
    /// rolled back when the connection returns to the pool); the session settings are
    /// set per write transaction (`SET LOCAL`), and `LISTEN` needs a direct connection
    /// of its own (see [`listen_invalidations`]).
    Transaction,
}

impl Pooler {
    /// Reads `none` or `transaction`.
    pub fn parse(raw: &str) -> Result<Self> {
        match raw {
            "none" => Ok(Self::None),
            "transaction" => Ok(Self::Transaction),
            _ => Err(Error::invalid(
                "database_pooler",
                "must be `none` or `transaction`",
            )),
        }
    }

    /// `none` or `transaction`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Transaction => "transaction",
        }
    }
}

/// How [`PgStore::connect_with`] connects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PgOptions {
    /// Most connections the pool opens (through a transaction pooler: most connections
    /// for reads, and as many again for writes, all to the pooler).
    pub max_connections: u32,
    /// What stands between the store and PostgreSQL.
    pub pooler: Pooler,
}

impl Default for PgOptions {
    fn default() -> Self {
        Self {
            max_connections: MAX_CONNECTIONS,
            pooler: Pooler::None,
        }
    }
}

/// Every port of `ownership-core` on one PostgreSQL database.
///
/// Cloning is cheap: clones share the connection pool.
#[derive(Debug, Clone)]
pub struct PgStore {
    /// Writes and explicit transactions (and everything, without a transaction pooler).
    pool: PgPool,
    /// Reads through a transaction pooler: every connection handed out is inside a
    /// transaction, rolled back when it returns.
    reads: Option<PgPool>,
    clock: Arc<dyn Clock>,
    /// The audit chain keys, once set ([`PgStore::set_chain_keys`]).
    chain_keys: Arc<std::sync::OnceLock<ownership_core::audit::ChainKeys>>,
    limits: Limits,
    /// This process's queues in front of the write locks ([`db::Lanes`]).
    lanes: Arc<db::Lanes>,
}

/// Opens a transaction on a read connection (through a transaction pooler).
const READ_BEGIN: &str = "BEGIN";
/// Ends it when the connection returns to the pool (a read changed nothing).
const READ_END: &str = "ROLLBACK";

fn connect_error(e: sqlx::Error) -> Error {
    match e {
        sqlx::Error::Configuration(_) => {
            Error::invalid("database_url", "not a valid PostgreSQL connection URL")
        }
        other => unavailable(other),
    }
}

impl PgStore {
    /// Connects to `url` (`postgres://user:password@host:port/database`) with a pool of
    /// at most [`MAX_CONNECTIONS`] connections, an acquire timeout of [`ACQUIRE_TIMEOUT`]
    /// and [`SESSION_SETTINGS`] on every connection.
    ///
    /// A URL that does not parse is [`Error::Invalid`] (field `database_url`; the URL,
    /// which may hold a password, is not repeated); a server that cannot be reached is
    /// [`Error::Unavailable`].
    pub async fn connect(url: &str, clock: Arc<dyn Clock>) -> Result<Self> {
        Self::connect_with(url, clock, PgOptions::default()).await
    }

    /// [`PgStore::connect`] with a pool size and, through a transaction pooler, the
    /// behaviour [`Pooler::Transaction`] describes.
    pub async fn connect_with(
        url: &str,
        clock: Arc<dyn Clock>,
        options: PgOptions,
    ) -> Result<Self> {
        crate::metrics::backend_opened("postgres");
        let base = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(ACQUIRE_TIMEOUT);
        if options.pooler == Pooler::None {
            let pool = base
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        sqlx::raw_sql(SESSION_SETTINGS)
                            .execute(conn)
                            .await
                            .map(|_| ())
                    })
                })
                .connect(url)
                .await
                .map_err(connect_error)?;
            return Ok(Self::from_pool(pool, clock));
        }
        support::send_unnamed_statements();
        // Session state would stay on whichever server connection the pooler picked:
        // none is set here (writes set theirs with `SET LOCAL`).
        let pool = base.clone().connect(url).await.map_err(connect_error)?;
        let reads = base
            .after_connect(|conn, _| {
                Box::pin(async move { sqlx::raw_sql(READ_BEGIN).execute(conn).await.map(|_| ()) })
            })
            .before_acquire(|conn, _| {
                Box::pin(async move { sqlx::raw_sql(READ_BEGIN).execute(conn).await.map(|_| true) })
            })
            .after_release(|conn, _| {
                Box::pin(async move { sqlx::raw_sql(READ_END).execute(conn).await.map(|_| true) })
            })
            // Lazily: an eager pool keeps its first connection without releasing it
            // (still inside the transaction `after_connect` began). The write pool above
            // has already shown the server can be reached.
            .connect_lazy(url)
            .map_err(connect_error)?;
        Ok(Self {
            pool,
            reads: Some(reads),
            clock,
            chain_keys: Arc::default(),
            lanes: Arc::default(),
            limits: Limits::default(),
        })
    }

    /// A store on an existing pool (its settings are the caller's).
    pub fn from_pool(pool: PgPool, clock: Arc<dyn Clock>) -> Self {
        Self {
            pool,
            reads: None,
            clock,
            chain_keys: Arc::default(),
            lanes: Arc::default(),
            limits: Limits::default(),
        }
    }

    /// Keys the audit chain: from now on every event this store (and its clones) appends
    /// is linked under `keys`' current chain key, and verification checks keyed links.
    /// Set once; a second call changes nothing and returns `false`.
    pub fn set_chain_keys(&self, keys: ownership_core::audit::ChainKeys) -> bool {
        self.chain_keys.set(keys).is_ok()
    }

    /// The store with these quotas and budgets instead of the defaults.
    #[must_use]
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The connection pool (for the cache's `LISTEN/NOTIFY` and for tests).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The pool reads run on.
    fn reads(&self) -> &PgPool {
        self.reads.as_ref().unwrap_or(&self.pool)
    }

    /// Now, by the store's clock, truncated to microseconds (what PostgreSQL keeps).
    fn now(&self) -> OffsetDateTime {
        truncate_to_micros(self.clock.now())
    }

    /// Test support: runs `sql` (any number of statements, in one implicit transaction)
    /// on the store's database, for tests that set up or damage rows directly.
    ///
    /// Not for production use: the SQL is sent as given, and on failure the database's
    /// message is returned in [`Error::Unavailable`] so the test can show it.
    pub async fn execute_batch_for_tests(&self, sql: &str) -> Result<()> {
        sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(|e| Error::Unavailable(format!("test SQL failed: {e}")))
    }

    /// Test support: runs `sql`, a query returning one row whose first column is an
    /// integer (for example `SELECT count(*) FROM tokens`), and returns that number.
    ///
    /// Not for production use: the SQL is sent as given, and on failure the database's
    /// message is returned in [`Error::Unavailable`] so the test can show it.
    pub async fn query_count_for_tests(&self, sql: &str) -> Result<i64> {
        let fail = |e: sqlx::Error| Error::Unavailable(format!("test SQL failed: {e}"));
        let row = query(AssertSqlSafe(sql.to_owned()))
            .fetch_one(self.reads())
            .await
            .map_err(fail)?;
        row.try_get::<i64, _>(0)
            .or_else(|_| row.try_get::<i32, _>(0).map(i64::from))
            .or_else(|_| row.try_get::<i16, _>(0).map(i64::from))
            .map_err(fail)
    }
}

#[async_trait]
impl Health for PgStore {
    async fn ping(&self) -> Result<()> {
        query("SELECT 1")
            .execute(self.reads())
            .await
            .map(|_| ())
            .map_err(unavailable)
    }
}
