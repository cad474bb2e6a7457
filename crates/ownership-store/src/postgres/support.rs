//! What every area of the adapter shares: error mapping, row decoding, the serialized
//! write transaction and the audit append.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use ownership_core::audit::{
    AuditEvent, ChainHash, ChainHead, ChainKeys, NewAuditEvent, truncate_to_micros,
};
use ownership_core::ids::OwnerId;
use ownership_core::ports::{Clock, Sealed};
use ownership_core::{Error, Result};
use sqlx::postgres::PgArguments;
use sqlx::postgres::{PgConnection, PgRow};
use sqlx::query::{Query, QueryScalar};
use sqlx::{PgPool, Postgres, Row, SqlSafeStr, Transaction};
use time::OffsetDateTime;

use super::INVALIDATION_CHANNEL;
use crate::cache::Invalidation;
use crate::invalidate::invalidation_of;
use crate::metrics::Op;

/// Whether statements are sent unnamed (see [`query`]).
static UNNAMED: AtomicBool = AtomicBool::new(false);

/// From now on, every statement of this process's PostgreSQL stores is sent as an unnamed
/// statement. Called when a store connects through a transaction-pooling PgBouncer
/// ([`super::Pooler::Transaction`]), which hands each transaction to whichever server
/// connection is free, so a named statement prepared in one transaction is missing (or
/// another client's) in the next. (A direct store in the same process then also re-parses
/// its statements: slower, never wrong.)
pub(super) fn send_unnamed_statements() {
    UNNAMED.store(true, Ordering::Relaxed);
}

/// `sqlx::query`, as a named (cached, prepared once per connection) statement, or an
/// unnamed one after [`send_unnamed_statements`]. Every statement of the adapter is built
/// here or in [`query_scalar`].
#[allow(
    clippy::disallowed_methods,
    reason = "the one place that calls sqlx::query"
)]
pub(super) fn query<'a>(sql: impl SqlSafeStr) -> Query<'a, Postgres, PgArguments> {
    sqlx::query(sql).persistent(!UNNAMED.load(Ordering::Relaxed))
}

/// `sqlx::query_scalar`, named or unnamed as [`query`].
pub(super) fn query_scalar<'a, O>(sql: impl SqlSafeStr) -> QueryScalar<'a, Postgres, O, PgArguments>
where
    (O,): for<'r> sqlx::FromRow<'r, PgRow>,
{
    #[allow(
        clippy::disallowed_methods,
        reason = "the one place that calls sqlx::query_scalar"
    )]
    sqlx::query_scalar(sql).persistent(!UNNAMED.load(Ordering::Relaxed))
}

/// Logs a driver error and answers the generic, client-safe [`Error::Unavailable`].
pub(super) fn unavailable(e: sqlx::Error) -> Error {
    tracing::error!(error = %e, "postgres store error");
    crate::metrics::store_error("postgres");
    Error::Unavailable("store unavailable".into())
}

/// Whether `e` is a unique-constraint violation (SQLSTATE 23505).
pub(super) fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|code| code == "23505")
}

/// A driver error, or `conflict` when it is a unique violation (which the use case
/// expects and documents).
pub(super) fn unique_or_unavailable(e: sqlx::Error, conflict: &str) -> Error {
    if is_unique_violation(&e) {
        Error::Conflict(conflict.to_owned())
    } else {
        unavailable(e)
    }
}

/// A stored value that does not parse back into its domain type.
pub(super) fn integrity(what: &'static str) -> Error {
    tracing::error!(what, "a stored row does not parse");
    crate::metrics::store_error("postgres");
    Error::Integrity(format!("a stored {what} does not parse"))
}

/// One column of a row, decoded; a value that does not decode is [`Error::Integrity`].
pub(super) fn col<'r, T>(row: &'r PgRow, name: &'static str) -> Result<T>
where
    T: sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>,
{
    row.try_get::<T, _>(name).map_err(|e| {
        tracing::error!(error = %e, column = name, "a stored value does not decode");
        Error::Integrity("a stored row does not parse".into())
    })
}

/// A text column parsed through a validated newtype's `parse`.
pub(super) fn parsed<T>(
    row: &PgRow,
    name: &'static str,
    parse: impl FnOnce(&str) -> Result<T>,
) -> Result<T> {
    let raw: String = col(row, name)?;
    parse(&raw).map_err(|_| integrity(name))
}

/// A nullable text column parsed through a validated newtype's `parse`.
pub(super) fn parsed_opt<T>(
    row: &PgRow,
    name: &'static str,
    parse: impl FnOnce(&str) -> Result<T>,
) -> Result<Option<T>> {
    let raw: Option<String> = col(row, name)?;
    raw.map(|raw| parse(&raw).map_err(|_| integrity(name)))
        .transpose()
}

/// An owner id column.
pub(super) fn owner_col(row: &PgRow, name: &'static str) -> Result<OwnerId> {
    parsed(row, name, OwnerId::parse)
}

/// A `BYTEA` column of exactly `N` bytes.
pub(super) fn bytes_col<const N: usize>(row: &PgRow, name: &'static str) -> Result<[u8; N]> {
    let raw: Vec<u8> = col(row, name)?;
    <[u8; N]>::try_from(raw.as_slice()).map_err(|_| integrity(name))
}

/// A non-negative `INTEGER`/`BIGINT` count or version column as an unsigned number.
pub(super) fn u32_col(row: &PgRow, name: &'static str) -> Result<u32> {
    let raw: i32 = col(row, name)?;
    u32::try_from(raw).map_err(|_| integrity(name))
}

/// A nullable `INTEGER` version as `u32`.
pub(super) fn opt_u32_col(row: &PgRow, name: &'static str) -> Result<Option<u32>> {
    let raw: Option<i32> = col(row, name)?;
    raw.map(|v| u32::try_from(v).map_err(|_| integrity(name)))
        .transpose()
}

/// A `BIGINT` count as `u64`.
pub(super) fn count_col(row: &PgRow, name: &'static str) -> Result<u64> {
    let raw: i64 = col(row, name)?;
    u64::try_from(raw).map_err(|_| integrity(name))
}

/// A `count(*)` query's answer as `u64`.
pub(super) async fn fetch_count<'q>(
    conn: &mut PgConnection,
    query: QueryScalar<'q, Postgres, i64, PgArguments>,
    what: &'static str,
) -> Result<u64> {
    let n = query.fetch_one(conn).await.map_err(unavailable)?;
    u64::try_from(n).map_err(|_| integrity(what))
}

/// A sealed value from three columns.
pub(super) fn sealed_cols(
    row: &PgRow,
    nonce: &'static str,
    ciphertext: &'static str,
    version: &'static str,
) -> Result<Sealed> {
    Ok(Sealed {
        nonce: bytes_col::<12>(row, nonce)?,
        ciphertext: col(row, ciphertext)?,
        key_version: u32_col(row, version)?,
    })
}

/// A key or generation version as PostgreSQL's `INTEGER`.
pub(super) fn version_param(version: u32) -> Result<i32> {
    i32::try_from(version).map_err(|_| Error::invalid("key_version", "must be below 2^31"))
}

/// How a write transaction begins: the limits of [`super::SESSION_SETTINGS`], for this
/// transaction (in the same round trip as `BEGIN`).
const WRITE_BEGIN: &str = "BEGIN; SET LOCAL statement_timeout = '30s'; \
     SET LOCAL idle_in_transaction_session_timeout = '60s'";

/// A mutating transaction that holds the audit-head lock. Dropping it without
/// [`commit`](Self::commit) rolls everything back.
pub(super) struct Write {
    tx: Transaction<'static, Postgres>,
    /// The recorded head of the audit chain, as locked by this transaction.
    head: ChainHead,
    now: OffsetDateTime,
    /// When it began, for the store-call latency.
    started: Instant,
}

impl std::fmt::Debug for Write {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Write")
            .field("head", &self.head)
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

impl Write {
    /// Begins a transaction, locks the audit head (`FOR UPDATE`), which serializes it
    /// after every other mutation, and only then reads `clock`: the transaction's
    /// [`now`](Self::now). Read after the lock, it is never earlier than the time of a
    /// mutation committed before this one, so times (a revocation, an audit event) never
    /// go backwards along the serialization order however long the lock was waited for.
    pub(super) async fn begin(pool: &PgPool, clock: &dyn Clock) -> Result<Self> {
        let started = Instant::now();
        // The limits are set for this transaction too: through a transaction pooler the
        // connection's session settings may belong to another server connection.
        let mut tx = pool.begin_with(WRITE_BEGIN).await.map_err(unavailable)?;
        let row = query("SELECT seq, hash, key_version FROM audit_head WHERE id = 1 FOR UPDATE")
            .fetch_optional(&mut *tx)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| integrity("audit head"))?;
        let head = ChainHead {
            seq: col(&row, "seq")?,
            hash: ChainHash::from_bytes(bytes_col::<32>(&row, "hash")?),
            key_version: opt_u32_col(&row, "key_version")?,
        };
        let now = truncate_to_micros(clock.now());
        Ok(Self {
            tx,
            head,
            now,
            started,
        })
    }

    /// The transaction's time: the clock as read once the audit-head lock was held,
    /// truncated to microseconds (what PostgreSQL keeps).
    pub(super) fn now(&self) -> OffsetDateTime {
        self.now
    }

    /// The transaction's connection, for the use case's statements.
    pub(super) fn conn(&mut self) -> &mut PgConnection {
        &mut self.tx
    }

    /// Links `event` after the head, inserts it, moves the head and publishes what it
    /// invalidates ([`invalidation_of`], the mapping the libSQL watcher uses too).
    pub(super) async fn audit(
        &mut self,
        event: NewAuditEvent,
        keys: Option<&ChainKeys>,
    ) -> Result<AuditEvent> {
        // The immutable identity of the owner's account as it is in this transaction.
        let uid: Option<String> = match &event.owner {
            Some(owner) => query_scalar("SELECT uid FROM users WHERE id = $1")
                .bind(owner.as_str())
                .fetch_optional(&mut *self.tx)
                .await
                .map_err(unavailable)?,
            None => None,
        };
        let event = self.head.link_next(event, uid, keys)?;
        let key_version = event.key_version.map(version_param).transpose()?;
        query(
            "INSERT INTO audit_events (seq, at, actor, owner_id, action, target, details, prev_hash, hash, owner_uid, key_version)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(event.seq)
        .bind(event.at)
        .bind(event.actor.to_string())
        .bind(event.owner.as_ref().map(OwnerId::as_str))
        .bind(event.action.as_str())
        .bind(&event.target)
        .bind(&event.details)
        .bind(event.prev_hash.as_bytes().as_slice())
        .bind(event.hash.as_bytes().as_slice())
        .bind(event.owner_uid.as_deref())
        .bind(key_version)
        .execute(&mut *self.tx)
        .await
        .map_err(unavailable)?;
        query("UPDATE audit_head SET seq = $1, hash = $2, key_version = $3 WHERE id = 1")
            .bind(event.seq)
            .bind(event.hash.as_bytes().as_slice())
            .bind(key_version)
            .execute(&mut *self.tx)
            .await
            .map_err(unavailable)?;
        self.head = ChainHead {
            seq: event.seq,
            hash: event.hash,
            key_version: event.key_version,
        };
        // What the event invalidates goes to every listening process on commit.
        if let Some(inv) = invalidation_of(&event) {
            self.notify(&inv).await?;
        }
        Ok(event)
    }

    /// Publishes `inv` to every process that listens on [`INVALIDATION_CHANNEL`]
    /// (`pg_notify` inside this transaction, so it is delivered on commit and never if the
    /// transaction rolls back).
    async fn notify(&mut self, inv: &Invalidation) -> Result<()> {
        query("SELECT pg_notify($1, $2)")
            .bind(INVALIDATION_CHANNEL)
            .bind(inv.encode())
            .execute(&mut *self.tx)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Commits.
    pub(super) async fn commit(self) -> Result<()> {
        let result = self.tx.commit().await.map_err(unavailable);
        crate::metrics::store_call_latency("postgres", Op::Write, self.started);
        result
    }
}
