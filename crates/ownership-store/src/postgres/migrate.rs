//! The migration runner: this crate's `migrations/postgres/*.sql`, in order, each in its own
//! transaction, recorded in `schema_migrations` with its checksum.
//!
//! Two processes may migrate at once: each migration's transaction takes a transaction
//! advisory lock and re-reads what is applied before running anything, so the second
//! process waits, then finds the work done and skips it.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::PgConnection;

use super::PgStore;
use super::support::{query, query_scalar};
use crate::Migrator;
use crate::migrations::{self, AppliedMigration, Migration, MigrationError};

/// The `pg_advisory_xact_lock` key of migrations ("ownmigr" in ASCII).
const MIGRATION_LOCK: i64 = 0x006f_776e_6d69_6772;

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version    BIGINT PRIMARY KEY,
    name       TEXT NOT NULL,
    checksum   TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL
)";

fn unreachable_store(e: sqlx::Error) -> MigrationError {
    tracing::error!(error = %e, "postgres store error while migrating");
    MigrationError::Unavailable("cannot reach the database (see the log)".into())
}

fn failed(m: &Migration, e: &sqlx::Error) -> MigrationError {
    tracing::error!(error = %e, version = m.version, name = m.name, "migration failed");
    let reason = match e.as_database_error() {
        Some(db) => db.message().to_owned(),
        None => "the database connection failed".to_owned(),
    };
    MigrationError::Failed {
        version: m.version,
        name: m.name,
        reason,
    }
}

/// Lifts [`super::SESSION_SETTINGS`]' statement limit for the rest of the transaction.
async fn no_statement_limit(conn: &mut PgConnection) -> Result<(), MigrationError> {
    query("SET LOCAL statement_timeout = 0")
        .execute(conn)
        .await
        .map(|_| ())
        .map_err(unreachable_store)
}

async fn lock(conn: &mut PgConnection) -> Result<(), MigrationError> {
    query("SELECT pg_advisory_xact_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(conn)
        .await
        .map(|_| ())
        .map_err(unreachable_store)
}

/// What `schema_migrations` records (nothing when the table does not exist yet).
async fn read_applied(conn: &mut PgConnection) -> Result<Vec<AppliedMigration>, MigrationError> {
    let exists: bool = query_scalar("SELECT to_regclass('schema_migrations') IS NOT NULL")
        .fetch_one(&mut *conn)
        .await
        .map_err(unreachable_store)?;
    if !exists {
        return Ok(Vec::new());
    }
    let rows = query("SELECT version, checksum FROM schema_migrations ORDER BY version")
        .fetch_all(&mut *conn)
        .await
        .map_err(unreachable_store)?;
    rows.iter()
        .map(|row| {
            Ok(AppliedMigration {
                version: row.try_get("version").map_err(unreachable_store)?,
                checksum: row.try_get("checksum").map_err(unreachable_store)?,
            })
        })
        .collect()
}

impl PgStore {
    /// Applies `m` in its own transaction unless another process applied it meanwhile.
    /// Returns whether this call applied it.
    async fn apply_one(&self, m: &Migration, target: Option<i64>) -> Result<bool, MigrationError> {
        let mut tx = self.pool.begin().await.map_err(unreachable_store)?;
        // A migration may rewrite a large table, or wait for another process's.
        no_statement_limit(&mut tx).await?;
        lock(&mut tx).await?;
        // Re-check under the lock: another process may have applied it, or changed what
        // is applied, since we planned.
        let applied = read_applied(&mut tx).await?;
        let still_pending = migrations::plan(migrations::POSTGRES, &applied, target)?
            .iter()
            .any(|p| p.version == m.version);
        if !still_pending {
            return Ok(false);
        }
        sqlx::raw_sql(m.sql)
            .execute(&mut *tx)
            .await
            .map_err(|e| failed(m, &e))?;
        query(
            "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES ($1, $2, $3, now())",
        )
        .bind(m.version)
        .bind(m.name)
        .bind(m.checksum())
        .execute(&mut *tx)
        .await
        .map_err(|e| failed(m, &e))?;
        tx.commit().await.map_err(|e| failed(m, &e))?;
        tracing::info!(version = m.version, name = m.name, "migration applied");
        Ok(true)
    }
}

#[async_trait]
impl Migrator for PgStore {
    async fn applied_migrations(&self) -> Result<Vec<AppliedMigration>, MigrationError> {
        let mut conn = self.reads().acquire().await.map_err(unreachable_store)?;
        read_applied(&mut conn).await
    }

    async fn migrate_to(&self, target: Option<i64>) -> Result<usize, MigrationError> {
        // Refuse a changed or unknown file before touching anything.
        let planned = migrations::plan(
            migrations::POSTGRES,
            &self.applied_migrations().await?,
            target,
        )?;
        if planned.is_empty() {
            return Ok(0);
        }
        {
            let mut tx = self.pool.begin().await.map_err(unreachable_store)?;
            // Another process may hold the lock through a long migration: wait for it.
            no_statement_limit(&mut tx).await?;
            lock(&mut tx).await?;
            query(CREATE_TABLE)
                .execute(&mut *tx)
                .await
                .map_err(unreachable_store)?;
            tx.commit().await.map_err(unreachable_store)?;
        }
        let mut applied = 0;
        for m in planned {
            if self.apply_one(m, target).await? {
                applied += 1;
            }
        }
        Ok(applied)
    }

    async fn pending_migrations(&self) -> Result<usize, MigrationError> {
        let applied = self.applied_migrations().await?;
        Ok(migrations::plan(migrations::POSTGRES, &applied, None)?.len())
    }
}
