//! The migration runner: this crate's `migrations/libsql/*.sql`, in order, each in its own
//! transaction, recorded in `schema_migrations` with its checksum; a changed applied file
//! is refused.

use ::libsql::Connection;
use async_trait::async_trait;

use super::LibsqlStore;
use super::conn::{Lite, rollback};
use crate::Migrator;
use crate::migrations::{self, AppliedMigration, Migration, MigrationError};
use crate::sql::driver::{args, exec, int, micros, query_all, text};
use time::OffsetDateTime;

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (\
    version INTEGER PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL, applied_at INTEGER NOT NULL)";

fn store_down(e: ownership_core::Error) -> MigrationError {
    // The cause was logged where it happened.
    MigrationError::Unavailable(e.to_string())
}

/// What `schema_migrations` records (empty when the table does not exist yet).
async fn applied(conn: &Connection) -> ownership_core::Result<Vec<AppliedMigration>> {
    let d = &mut Lite::new(conn.clone());
    let has_table = query_all(
        d,
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'",
        &[],
    )
    .await?;
    if has_table.is_empty() {
        return Ok(Vec::new());
    }
    query_all(
        d,
        "SELECT version, checksum FROM schema_migrations ORDER BY version",
        &[],
    )
    .await?
    .iter()
    .map(|row| {
        Ok(AppliedMigration {
            version: int(row, 0)?,
            checksum: text(row, 1)?,
        })
    })
    .collect()
}

impl LibsqlStore {
    /// Applies pending migrations up to `target` (all when `None`), each in its own
    /// transaction; returns how many were applied. Refuses when an applied file changed or
    /// the database knows a version this build lacks. The same as
    /// [`Migrator::migrate_to`], callable without importing the trait.
    pub async fn migrate_to(&self, target: Option<i64>) -> Result<usize, MigrationError> {
        self.worker
            .run(move |conn| async move { Ok(run_migrations(&conn, target).await) })
            .await
            .map_err(store_down)?
    }
}

async fn run_migrations(conn: &Connection, target: Option<i64>) -> Result<usize, MigrationError> {
    exec(&mut Lite::new(conn.clone()), CREATE_TABLE, &[])
        .await
        .map_err(store_down)?;
    let done = applied(conn).await.map_err(store_down)?;
    let plan = migrations::plan(migrations::LIBSQL, &done, target)?;
    let mut count = 0;
    for m in plan {
        exec(&mut Lite::new(conn.clone()), "BEGIN IMMEDIATE", &[])
            .await
            .map_err(store_down)?;
        match apply_one(conn, m).await {
            Ok(applied) => {
                if let Err(e) = conn.execute("COMMIT", ()).await {
                    rollback(conn).await;
                    return Err(MigrationError::Failed {
                        version: m.version,
                        name: m.name,
                        reason: e.to_string(),
                    });
                }
                if applied {
                    count += 1;
                }
            }
            Err(e) => {
                rollback(conn).await;
                return Err(e);
            }
        }
    }
    Ok(count)
}

/// Applies one migration inside the caller's transaction; `false` when another process
/// applied it first (the write lock is ours now, so the check holds).
async fn apply_one(conn: &Connection, m: &Migration) -> Result<bool, MigrationError> {
    let again = query_all(
        &mut Lite::new(conn.clone()),
        "SELECT 1 FROM schema_migrations WHERE version = $1",
        args![m.version],
    )
    .await
    .map_err(store_down)?;
    if !again.is_empty() {
        return Ok(false);
    }
    let failed = |reason: String| MigrationError::Failed {
        version: m.version,
        name: m.name,
        reason,
    };
    conn.execute_batch(m.sql)
        .await
        .map_err(|e| failed(e.to_string()))?;
    let now = micros(OffsetDateTime::now_utc()).map_err(store_down)?;
    conn.execute(
        "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (?1, ?2, ?3, ?4)",
        ::libsql::params![m.version, m.name, m.checksum(), now],
    )
    .await
    .map_err(|e| failed(e.to_string()))?;
    Ok(true)
}

#[async_trait]
impl Migrator for LibsqlStore {
    async fn applied_migrations(&self) -> Result<Vec<AppliedMigration>, MigrationError> {
        self.worker
            .run(move |conn| async move { applied(&conn).await })
            .await
            .map_err(store_down)
    }

    async fn migrate_to(&self, target: Option<i64>) -> Result<usize, MigrationError> {
        LibsqlStore::migrate_to(self, target).await
    }

    async fn pending_migrations(&self) -> Result<usize, MigrationError> {
        let done = self.applied_migrations().await?;
        Ok(migrations::plan(migrations::LIBSQL, &done, None)?.len())
    }
}
