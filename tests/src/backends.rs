//! Fresh, migrated stores of every backend, each with its own manual clock.

use std::sync::Arc;

use ownership_core::ports::Clock;
use ownership_store::libsql::LibsqlStore;
use ownership_store::postgres::{PgOptions, PgStore, Pooler};
use ownership_store::{ManualClock, Migrator};
use time::macros::datetime;

use crate::pg::PgCluster;
use crate::pgbouncer::PgBouncer;

/// A manual clock at a fixed, microsecond-aligned start.
pub fn manual_clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(datetime!(2026-01-01 12:00:00 UTC)))
}

/// A fresh in-memory libSQL store, migrated.
pub async fn libsql_memory(clock: Arc<ManualClock>) -> LibsqlStore {
    let store = LibsqlStore::open_memory(clock as Arc<dyn Clock>)
        .await
        .expect("open libsql memory");
    store.migrate_to(None).await.expect("migrate libsql");
    store
}

/// A fresh libSQL file store in its own temporary directory, migrated. The directory
/// lives as long as the returned guard.
pub async fn libsql_file(clock: Arc<ManualClock>) -> (LibsqlStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = LibsqlStore::open_file(&dir.path().join("ownership.db"), clock as Arc<dyn Clock>)
        .await
        .expect("open libsql file");
    store.migrate_to(None).await.expect("migrate libsql file");
    (store, dir)
}

/// A fresh PostgreSQL database on the shared throwaway cluster, migrated. Fails (never
/// skips) when PostgreSQL cannot be started.
pub async fn postgres(clock: Arc<ManualClock>) -> PgStore {
    let cluster = PgCluster::shared().unwrap_or_else(|e| panic!("PostgreSQL is required: {e}"));
    let url = cluster
        .fresh_database_url()
        .unwrap_or_else(|e| panic!("fresh database: {e}"));
    let store = PgStore::connect(&url, clock as Arc<dyn Clock>)
        .await
        .expect("connect postgres");
    store.migrate_to(None).await.expect("migrate postgres");
    store
}

/// A fresh PostgreSQL database on the shared cluster, reached through the shared
/// PgBouncer in transaction mode ([`Pooler::Transaction`]), migrated through it.
pub async fn postgres_pooled(clock: Arc<ManualClock>) -> PgStore {
    let cluster = PgCluster::shared().unwrap_or_else(|e| panic!("PostgreSQL is required: {e}"));
    let direct = cluster
        .fresh_database_url()
        .unwrap_or_else(|e| panic!("fresh database: {e}"));
    let url = PgBouncer::shared().url_for(&direct);
    let options = PgOptions {
        pooler: Pooler::Transaction,
        ..PgOptions::default()
    };
    let store = PgStore::connect_with(&url, clock as Arc<dyn Clock>, options)
        .await
        .expect("connect postgres through PgBouncer");
    store
        .migrate_to(None)
        .await
        .expect("migrate postgres through PgBouncer");
    store
}

/// The audit chain keys of a test master key (version 1): the keys a server with that
/// master key links its events under.
pub fn test_chain_keys() -> ownership_core::audit::ChainKeys {
    let master = ownership_core::crypto::MasterKey::new(1, [0x5a; 32]).expect("master key");
    ownership_core::audit::ChainKeys::from_master(&ownership_core::crypto::MasterKeys::single(
        master,
    ))
}
