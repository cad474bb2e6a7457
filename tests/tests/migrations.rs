//! Every migration, on both backends, applied to a database that already holds rows in
//! every table of every earlier version (the sources lost production to a migration that
//! passed on an empty database and failed on a populated one).
//!
//! For each migration k: migrate a fresh database to k−1, load the fixture rows of
//! versions 1..k−1 (`tests/fixtures/migrations/<backend>/NNNN.sql`), migrate to head, and
//! check that every row is still there and the store still reads them.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::path::PathBuf;
use std::sync::Arc;

use ownership_core::authz::{AdminScope, OwnerScope};
use ownership_core::ports::{AuditFilter, Clock, PageRequest, Store};
use ownership_core::token::digest_of;
use ownership_core::{Identity, OwnerId, UserRole};
use ownership_store::libsql::LibsqlStore;
use ownership_store::migrations::{LIBSQL, Migration, POSTGRES};
use ownership_store::postgres::PgStore;
use ownership_store::{MigrationError, Migrator};
use ownership_tests::backends::manual_clock;
use ownership_tests::pg::PgCluster;

/// The tables each version adds.
const TABLES: &[(i64, &[&str])] = &[
    (1, &["users", "tokens", "settings"]),
    (2, &["channel_identities", "pairing_requests"]),
    (3, &["audit_events"]),
    (
        4,
        &[
            "owner_keys",
            "secrets",
            "resources",
            "resource_grants",
            "webhook_endpoints",
            "webhook_deliveries",
        ],
    ),
    // Columns only: the account identity and the keyed chain's key versions.
    (5, &[]),
    (6, &["pairing_failures", "stream_tickets"]),
    (7, &["console_sessions", "oidc_links"]),
    (8, &["passkeys"]),
    (9, &["audit_chains"]),
    // Indexes only.
    (10, &[]),
];

fn fixture(backend: &str, version: i64) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("fixtures/migrations/{backend}/{version:04}.sql"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "every migration needs fixture rows for the migration tests: {} ({e})",
            path.display()
        )
    })
}

#[async_trait::async_trait]
trait TestDb: Store + Migrator {
    async fn exec(&self, sql: &str);
    async fn count(&self, table: &str) -> i64;
}

#[async_trait::async_trait]
impl TestDb for LibsqlStore {
    async fn exec(&self, sql: &str) {
        self.execute_batch_for_tests(sql)
            .await
            .expect("fixture applies");
    }
    async fn count(&self, table: &str) -> i64 {
        self.query_count_for_tests(&format!("SELECT COUNT(*) FROM {table}"))
            .await
            .expect("count")
    }
}

#[async_trait::async_trait]
impl TestDb for PgStore {
    async fn exec(&self, sql: &str) {
        self.execute_batch_for_tests(sql)
            .await
            .expect("fixture applies");
    }
    async fn count(&self, table: &str) -> i64 {
        self.query_count_for_tests(&format!("SELECT COUNT(*) FROM {table}"))
            .await
            .expect("count")
    }
}

async fn populated_upgrade<D: TestDb>(
    backend: &str,
    all: &[Migration],
    fresh: impl AsyncFn() -> D,
) {
    assert_eq!(
        TABLES.len(),
        all.len(),
        "add the new migration's tables to TABLES and a fixture per backend"
    );
    // The versions as they are (a branch may hold a gap until its migration is renumbered).
    let versions: Vec<i64> = all.iter().map(|m| m.version).collect();
    let head = versions.last().copied().unwrap_or(0);
    for (i, &k) in versions.iter().enumerate() {
        let below = i
            .checked_sub(1)
            .and_then(|j| versions.get(j).copied())
            .unwrap_or(0);
        let db = fresh().await;
        db.migrate_to(Some(below)).await.unwrap();
        let mut expected = Vec::new();
        for &v in versions.iter().take(i) {
            db.exec(&fixture(backend, v)).await;
            for (tv, tables) in TABLES {
                if *tv == v {
                    for t in *tables {
                        let n = db.count(t).await;
                        assert!(n > 0, "{backend}: fixture {v:04} left `{t}` empty");
                        expected.push((*t, n));
                    }
                }
            }
        }
        assert_eq!(db.pending_migrations().await.unwrap(), versions.len() - i);
        db.migrate_to(None).await.unwrap_or_else(|e| {
            panic!("{backend}: migrating from {below:04} with rows failed: {e}")
        });
        for (t, n) in &expected {
            assert_eq!(
                db.count(t).await,
                *n,
                "{backend}: rows of `{t}` lost migrating from {below:04}"
            );
        }
        // Once every fixture is in, the store reads them through its ports.
        if k == head {
            db.exec(&fixture(backend, head)).await;
            read_checks(&db, backend).await;
        }
        println!(
            "{backend}: migration {k:04} on a populated database: ok ({} tables checked)",
            expected.len()
        );
    }
}

async fn read_checks<D: TestDb>(db: &D, backend: &str) {
    let owner = OwnerId::parse("fx-owner").unwrap();
    let p = db
        .authenticate(&digest_of("fixture-token-one"))
        .await
        .unwrap()
        .expect("fixture token authenticates");
    assert_eq!(
        *p.identity(),
        Identity::for_tests(owner.clone(), UserRole::Owner),
        "{backend}"
    );
    let admin = AdminScope::operator("migration-test");
    assert_eq!(
        db.list_users(&admin, &PageRequest::default())
            .await
            .unwrap()
            .items
            .len(),
        2
    );
    let scope = OwnerScope::own(p.identity());
    assert_eq!(db.list_tokens(&scope).await.unwrap().len(), 1);
    assert_eq!(db.list_identities(&scope).await.unwrap().len(), 1);
    assert_eq!(db.list_secrets(&scope).await.unwrap().len(), 1);
    assert!(db.data_key(&scope).await.unwrap().is_some());
    let r = db
        .resolve_resource(&digest_of("fixture-resource-one"))
        .await
        .unwrap()
        .expect("fixture resource");
    assert_eq!(r.grants.len(), 1);
    assert!(db.get_endpoint(&scope).await.unwrap().is_some());
    assert_eq!(db.list_passkeys(&scope).await.unwrap().len(), 1);
    assert_eq!(
        db.list_events(AuditFilter::All(&admin), &PageRequest::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    // The events written before the account identity existed were given the identity of
    // the account holding their owner id, so the owner still reads them.
    assert_eq!(
        db.list_events(AuditFilter::Owner(&scope), &PageRequest::default())
            .await
            .unwrap()
            .items
            .len(),
        1,
        "{backend}: the owner's events after the account-identity migration"
    );
}

async fn changed_file_is_refused<D: TestDb>(db: D) {
    db.migrate_to(None).await.unwrap();
    db.exec("UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1")
        .await;
    assert!(matches!(
        db.pending_migrations().await,
        Err(MigrationError::Changed { version: 1, .. })
    ));
    assert!(matches!(
        db.migrate_to(None).await,
        Err(MigrationError::Changed { version: 1, .. })
    ));
}

fn clock() -> Arc<dyn Clock> {
    manual_clock()
}

async fn pg() -> PgStore {
    let url = PgCluster::shared().unwrap().fresh_database_url().unwrap();
    PgStore::connect(&url, clock()).await.unwrap()
}

#[tokio::test]
async fn libsql_migrations_apply_to_populated_databases() {
    populated_upgrade("libsql", LIBSQL, async || {
        LibsqlStore::open_memory(clock()).await.unwrap()
    })
    .await;
}

#[tokio::test]
async fn postgres_migrations_apply_to_populated_databases() {
    populated_upgrade("postgres", POSTGRES, pg).await;
}

#[tokio::test]
async fn libsql_refuses_a_changed_migration() {
    changed_file_is_refused(LibsqlStore::open_memory(clock()).await.unwrap()).await;
}

#[tokio::test]
async fn postgres_refuses_a_changed_migration() {
    changed_file_is_refused(pg().await).await;
}

#[tokio::test]
async fn migrating_twice_changes_nothing() {
    let db = LibsqlStore::open_memory(clock()).await.unwrap();
    assert_eq!(db.migrate_to(None).await.unwrap(), LIBSQL.len());
    assert_eq!(db.migrate_to(None).await.unwrap(), 0);
    let db = pg().await;
    assert_eq!(db.migrate_to(None).await.unwrap(), POSTGRES.len());
    assert_eq!(db.migrate_to(None).await.unwrap(), 0);
}
