//! Every port of `ownership-core` on libSQL, the embedded SQLite fork: a file (the default
//! deployment) or a private in-memory database (tests).
//!
//! All database work runs on one dedicated thread (see `conn`); every mutation is one
//! `BEGIN IMMEDIATE` transaction that appends its audit event (see `audit`), which makes
//! mutations serial: the audit chain cannot fork and the read-check-write of each use case
//! cannot race. Inside that transaction each use case reads the clock, and a change under
//! an `AdminScope` or a `MintPermit` re-reads who acts (`AdminScope::recheck`,
//! `MintPermit::recheck`), so a demotion committed while a request was in flight counts.
//! The schema and the rules of each use case are in `docs/storage.md`.

mod conn;
mod db;
mod migrate;
mod transfer;
mod watch;

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use ownership_core::quotas::Limits;

use async_trait::async_trait;
use ownership_core::audit::ChainKeys;
use ownership_core::ports::{Clock, Health};
use ownership_core::{Error, Result};

pub use self::db::LibsqlTx;
pub use self::watch::watch_external_changes;

use self::conn::{Lite, Target, Worker};
use crate::sql::driver::{int, query_one};

async fn query_i64(conn: &::libsql::Connection, sql: &str) -> Result<i64> {
    int(
        &query_one(&mut Lite::new(conn.clone()), sql, &[], "integer").await?,
        0,
    )
}

/// The libSQL store. Cheap to clone: clones share one database thread, which ends when the
/// last clone is dropped.
#[derive(Clone)]
pub struct LibsqlStore {
    worker: Worker,
    clock: Arc<dyn Clock>,
    /// The audit chain keys, once set ([`LibsqlStore::set_chain_keys`]).
    chain_keys: Arc<std::sync::OnceLock<ChainKeys>>,
    limits: Limits,
}

impl fmt::Debug for LibsqlStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LibsqlStore")
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl LibsqlStore {
    /// A fresh in-memory database, independent of every other (each call is a new one).
    /// It has no schema yet: run the migrations ([`crate::Migrator::migrate_to`]).
    pub async fn open_memory(clock: Arc<dyn Clock>) -> Result<Self> {
        Ok(Self {
            worker: Worker::start(Target::Memory).await?,
            clock,
            chain_keys: Arc::default(),
            limits: Limits::default(),
        })
    }

    /// Opens (or creates) a database file, in WAL mode with a 5 s busy timeout and foreign
    /// keys on. It is not migrated here: run the migrations ([`crate::Migrator::migrate_to`]).
    pub async fn open_file(path: &Path, clock: Arc<dyn Clock>) -> Result<Self> {
        Ok(Self {
            worker: Worker::start(Target::File(path.to_path_buf())).await?,
            clock,
            chain_keys: Arc::default(),
            limits: Limits::default(),
        })
    }

    /// Keys the audit chain: from now on every event this store (and its clones) appends
    /// is linked under `keys`' current chain key, and verification checks keyed links.
    /// Set once; a second call changes nothing and returns `false`.
    pub fn set_chain_keys(&self, keys: ChainKeys) -> bool {
        self.chain_keys.set(keys).is_ok()
    }

    /// The store with these quotas and budgets instead of the defaults.
    #[must_use]
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Whether the database can be written: commits a write that changes nothing (the
    /// header's `user_version`, which we do not use, set to its own value). A read-only
    /// file or directory fails here, at start, rather than at the first request that
    /// writes. Taking the write lock alone is not enough: SQLite grants it on a read-only
    /// file in WAL mode and fails only when the commit writes.
    pub async fn check_writable(&self) -> Result<()> {
        self.worker
            .run(move |conn| async move {
                let version = query_i64(&conn, "PRAGMA user_version").await?;
                conn.execute_batch(&format!("PRAGMA user_version = {version}"))
                    .await
                    .map_err(conn::db_err)?;
                Ok(())
            })
            .await
    }

    /// **Test support.** Runs raw SQL statements (fixture rows for the migration tests on
    /// populated databases) outside any use case: no audit event, no checks. Never call it
    /// from application code.
    pub async fn execute_batch_for_tests(&self, sql: &str) -> Result<(), Error> {
        let sql = sql.to_owned();
        self.worker
            .run(move |conn| async move {
                conn.execute_batch(&sql).await.map_err(conn::db_err)?;
                Ok(())
            })
            .await
    }

    /// **Test support.** Runs a query whose first column of its first row is an integer
    /// (`SELECT COUNT(*) FROM …`) and returns it. Never call it from application code.
    pub async fn query_count_for_tests(&self, sql: &str) -> Result<i64, Error> {
        let sql = sql.to_owned();
        self.worker
            .run(move |conn| async move { query_i64(&conn, &sql).await })
            .await
    }
}

#[async_trait]
impl Health for LibsqlStore {
    async fn ping(&self) -> Result<()> {
        self.worker
            .run(move |conn| async move {
                let one = query_i64(&conn, "SELECT 1").await?;
                if one == 1 {
                    Ok(())
                } else {
                    Err(conn::unavailable())
                }
            })
            .await
    }
}

#[cfg(test)]
mod tests;
