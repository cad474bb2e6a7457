//! The row layer's [`Driver`] on PostgreSQL ([`Pg`]): parameters bound with their types,
//! columns read by their types (`timestamptz` as a time), unique violations (SQLSTATE
//! 23505) told apart, and the `pg_notify` of what each audit event invalidates.

use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use ownership_core::audit::AuditEvent;
use ownership_core::{Error, Result};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgArguments, PgConnection, PgRow};
use sqlx::query::{Query, QueryScalar};
use sqlx::{AssertSqlSafe, Column, PgPool, Postgres, Row as _, SqlSafeStr, Transaction, TypeInfo};
use time::OffsetDateTime;

use super::INVALIDATION_CHANNEL;
use crate::invalidate::invalidation_of;
use crate::sql::driver::{Driver, Fail, Param, Row, Val, integrity};

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

/// A unique violation (SQLSTATE 23505), or [`unavailable`].
fn fail(e: sqlx::Error) -> Fail {
    match e.as_database_error() {
        Some(d) if d.code().is_some_and(|code| code == "23505") => {
            Fail::Unique(d.message().to_owned())
        }
        _ => Fail::Other(unavailable(e)),
    }
}

/// What the row layer runs on: the pool (point reads), a pooled connection (reads), or a
/// transaction (writes, which hold the audit-head lock, and snapshots).
#[derive(Debug)]
pub enum Pg {
    /// The pool itself: each statement on whichever connection is free.
    Pool(PgPool),
    /// One connection of the read pool.
    Read(PoolConnection<Postgres>),
    /// A transaction.
    Tx(Transaction<'static, Postgres>),
}

impl Pg {
    async fn run<T>(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
        go: impl AsyncFnOnce(Query<'_, Postgres, PgArguments>, &mut PgConnection) -> sqlx::Result<T>,
        on_pool: impl AsyncFnOnce(Query<'_, Postgres, PgArguments>, &PgPool) -> sqlx::Result<T>,
    ) -> Result<T, Fail> {
        let mut q = query(AssertSqlSafe(sql));
        for p in params {
            q = match p {
                Param::Text(v) => q.bind(v.as_deref()),
                Param::Int(v) => q.bind(*v),
                Param::Bytes(v) => q.bind(v.as_deref()),
                Param::Time(v) => q.bind(*v),
            };
        }
        match self {
            Self::Pool(pool) => on_pool(q, pool).await,
            Self::Read(c) => go(q, c).await,
            Self::Tx(t) => go(q, t).await,
        }
        .map_err(fail)
    }
}

/// A column by its type: integers widened, `timestamptz` as a time.
fn column(row: &PgRow, i: usize) -> Result<Val> {
    let bad = |e: sqlx::Error| {
        tracing::error!(error = %e, column = i, "a stored value does not decode");
        integrity("row")
    };
    let name = row
        .columns()
        .get(i)
        .map(|c| c.type_info().name())
        .unwrap_or("");
    Ok(match name {
        "INT2" => row
            .try_get::<Option<i16>, _>(i)
            .map_err(bad)?
            .map(i64::from)
            .map_or(Val::Null, Val::Int),
        "INT4" => row
            .try_get::<Option<i32>, _>(i)
            .map_err(bad)?
            .map(i64::from)
            .map_or(Val::Null, Val::Int),
        "INT8" => row
            .try_get::<Option<i64>, _>(i)
            .map_err(bad)?
            .map_or(Val::Null, Val::Int),
        "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" => row
            .try_get::<Option<String>, _>(i)
            .map_err(bad)?
            .map_or(Val::Null, Val::Text),
        "BYTEA" => row
            .try_get::<Option<Vec<u8>>, _>(i)
            .map_err(bad)?
            .map_or(Val::Null, Val::Bytes),
        "TIMESTAMPTZ" => row
            .try_get::<Option<OffsetDateTime>, _>(i)
            .map_err(bad)?
            .map_or(Val::Null, Val::Time),
        "BOOL" => row
            .try_get::<Option<bool>, _>(i)
            .map_err(bad)?
            .map_or(Val::Null, |b| Val::Int(i64::from(b))),
        _ => return Err(integrity("column of an unexpected type")),
    })
}

#[async_trait]
impl Driver for Pg {
    const POSTGRES: bool = true;

    async fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64, Fail> {
        self.run(
            sql,
            params,
            async |q, c| q.execute(c).await.map(|r| r.rows_affected()),
            async |q, p| q.execute(p).await.map(|r| r.rows_affected()),
        )
        .await
    }

    async fn query(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, Fail> {
        let rows = self
            .run(
                sql,
                params,
                async |q, c| q.fetch_all(c).await,
                async |q, p| q.fetch_all(p).await,
            )
            .await?;
        rows.iter()
            .map(|r| (0..r.len()).map(|i| column(r, i)).collect::<Result<Row>>())
            .collect::<Result<Vec<_>>>()
            .map_err(Fail::Other)
    }

    /// Publishes what `event` invalidates to every process that listens on
    /// [`INVALIDATION_CHANNEL`] (`pg_notify` inside this transaction, so it is delivered
    /// on commit and never if the transaction rolls back).
    async fn appended(&mut self, event: &AuditEvent) -> Result<()> {
        if let Some(inv) = invalidation_of(event) {
            let encoded = inv.encode();
            self.execute(
                "SELECT pg_notify($1, $2)",
                &[Param::from(INVALIDATION_CHANNEL), Param::from(encoded)],
            )
            .await?;
        }
        Ok(())
    }
}
