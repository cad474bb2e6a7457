//! The ports of `ownership-core` on PostgreSQL (feature `postgres`), with sqlx.
//!
//! [`PgStore`] implements every port and [`Migrator`](crate::Migrator). The contract is
//! `docs/storage.md`; the points that matter here:
//!
//! - **One transaction per use case, serialized on the audit head.** Every mutating
//!   transaction first runs `SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE`.
//!   That row lock serializes mutations, so the audit chain never forks and each use
//!   case's read-check-write (the last Owner, one live pairing code per sender, exactly
//!   one winner of a redemption or rotation) cannot race. The isolation level stays READ
//!   COMMITTED: once the lock is held, every later statement of the transaction sees what
//!   earlier lock holders committed.
//! - **Not the caller's = not found.** Owner-scoped statements carry `owner_id = $n` in
//!   their `WHERE` clause; zero rows is [`Error::NotFound`].
//! - **Errors.** A unique violation a use case expects becomes its documented error; any
//!   other driver error (pool timeout and refused connection included) is logged with
//!   `tracing::error!` and returned as `Error::Unavailable("store unavailable")`. A row
//!   that does not parse back into the domain types is [`Error::Integrity`].
//! - **Cross-process invalidation.** A use case that changes what a cache may hold (a
//!   token, a user, an identity binding, a resource) also runs `pg_notify` on
//!   [`INVALIDATION_CHANNEL`] inside its transaction, so the notification goes out on commit
//!   only; [`listen_invalidations`] applies them in every server process.
//! - **Times** are truncated to microseconds before they are written, so what is read
//!   back equals what was written. A mutation's time is read once the audit-head lock is
//!   held (`Write::begin` reads the clock, `Write::now` gives it), never before: a
//!   transaction that waited for the lock is never stamped earlier than one committed
//!   before it (a rotation would otherwise find a just-revoked token still live).
//! - **Who acts is re-read under the lock.** Changes under an `AdminScope` re-read the
//!   acting user (`AdminScope::recheck`) and minting re-reads the token's owner
//!   (`MintPermit::recheck`) inside the transaction, so a demotion committed while a
//!   request was in flight counts.

mod audit;
mod listen;
mod migrate;
mod pairing;
mod provision;
mod recheck;
mod resources;
mod secrets;
mod support;
mod tokens;
mod transfer;
mod users;
mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ownership_core::audit::truncate_to_micros;
use ownership_core::ports::{Clock, Health};
use ownership_core::{Error, Result};
use sqlx::postgres::PgPoolOptions;
use sqlx::{AssertSqlSafe, PgPool, Row};
use time::OffsetDateTime;

pub use self::listen::{RECONNECT_MAX, RECONNECT_MIN, listen_invalidations};
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

/// Every port of `ownership-core` on one PostgreSQL database.
///
/// Cloning is cheap: clones share the connection pool.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    clock: Arc<dyn Clock>,
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
        crate::metrics::backend_opened("postgres");
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
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
            .map_err(|e| match e {
                sqlx::Error::Configuration(_) => {
                    Error::invalid("database_url", "not a valid PostgreSQL connection URL")
                }
                other => unavailable(other),
            })?;
        Ok(Self::from_pool(pool, clock))
    }

    /// A store on an existing pool (its settings are the caller's).
    pub fn from_pool(pool: PgPool, clock: Arc<dyn Clock>) -> Self {
        Self { pool, clock }
    }

    /// The connection pool (for the cache's `LISTEN/NOTIFY` and for tests).
    pub fn pool(&self) -> &PgPool {
        &self.pool
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
        let row = sqlx::query(AssertSqlSafe(sql.to_owned()))
            .fetch_one(&self.pool)
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
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }
}
