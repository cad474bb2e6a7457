//! Smoke tests of the PostgreSQL adapter on its own (the shared behaviour is the
//! conformance suite's): migrations, the token round trip, the audit chain against
//! tampering, and failing closed when the server cannot be reached.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use ownership_core::audit::ChainVerdict;
use ownership_core::authz::OwnerScope;
use ownership_core::ports::{AuditLog, Clock, TokenStore, UserStore};
use ownership_core::token::TokenFamily;
use ownership_core::{Error, TokenKind, UserRole};
use ownership_store::migrations::POSTGRES;
use ownership_store::postgres::PgStore;
use ownership_store::{ManualClock, MigrationError, Migrator};
use ownership_tests::backends::manual_clock;
use ownership_tests::conformance::support::{add_user, boot, fresh, new_token, oid};
use ownership_tests::pg::PgCluster;

fn fresh_url() -> String {
    PgCluster::shared()
        .unwrap_or_else(|e| panic!("PostgreSQL is required: {e}"))
        .fresh_database_url()
        .unwrap()
}

async fn unmigrated(clock: Arc<ManualClock>) -> PgStore {
    PgStore::connect(&fresh_url(), clock as Arc<dyn Clock>)
        .await
        .unwrap()
}

async fn migrated(clock: Arc<ManualClock>) -> PgStore {
    let store = unmigrated(clock).await;
    store.migrate_to(None).await.unwrap();
    store
}

#[tokio::test]
async fn migrations_apply_in_order_and_are_idempotent() {
    let store = unmigrated(manual_clock()).await;
    assert!(store.applied_migrations().await.unwrap().is_empty());
    assert_eq!(store.pending_migrations().await.unwrap(), POSTGRES.len());

    assert_eq!(store.migrate_to(Some(2)).await.unwrap(), 2);
    assert_eq!(
        store.pending_migrations().await.unwrap(),
        POSTGRES.len() - 2
    );
    assert_eq!(store.migrate_to(None).await.unwrap(), POSTGRES.len() - 2);
    assert_eq!(store.migrate_to(None).await.unwrap(), 0);
    assert_eq!(store.pending_migrations().await.unwrap(), 0);

    let applied = store.applied_migrations().await.unwrap();
    assert_eq!(applied.len(), POSTGRES.len());
    for (a, m) in applied.iter().zip(POSTGRES) {
        assert_eq!((a.version, &a.checksum), (m.version, &m.checksum()));
    }
    // The head row is seeded: 0 events, genesis hash.
    assert_eq!(
        store
            .query_count_for_tests(
                "SELECT count(*) FROM audit_head WHERE id = 1 AND seq = 0 AND hash = '\\x0000000000000000000000000000000000000000000000000000000000000000'::bytea"
            )
            .await
            .unwrap(),
        1
    );
    assert!(matches!(
        store.migrate_to(Some(99)).await,
        Err(MigrationError::Unknown { version: 99 })
    ));
}

#[tokio::test]
async fn concurrent_migrations_apply_each_file_once() {
    let url = fresh_url();
    let stores: Vec<PgStore> = {
        let mut v = Vec::new();
        for _ in 0..4 {
            v.push(
                PgStore::connect(&url, manual_clock() as Arc<dyn Clock>)
                    .await
                    .unwrap(),
            );
        }
        v
    };
    let tasks: Vec<_> = stores
        .iter()
        .cloned()
        .map(|s| tokio::spawn(async move { s.migrate_to(None).await }))
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap().unwrap();
    }
    assert_eq!(total, POSTGRES.len(), "each migration applied exactly once");
    assert_eq!(
        stores[0]
            .query_count_for_tests("SELECT count(*) FROM schema_migrations")
            .await
            .unwrap(),
        i64::try_from(POSTGRES.len()).unwrap()
    );
}

#[tokio::test]
async fn a_changed_migration_is_refused() {
    let store = migrated(manual_clock()).await;
    store
        .execute_batch_for_tests(
            "UPDATE schema_migrations SET checksum = 'edited' WHERE version = 2",
        )
        .await
        .unwrap();
    assert!(matches!(
        store.pending_migrations().await,
        Err(MigrationError::Changed { version: 2, .. })
    ));
    assert!(matches!(
        store.migrate_to(None).await,
        Err(MigrationError::Changed { version: 2, .. })
    ));
}

#[tokio::test]
async fn bootstrap_authenticate_rotate_revoke_round_trip() {
    let clock = manual_clock();
    let s = migrated(clock.clone()).await;
    let root = boot(&s).await;
    assert_eq!(root.principal.identity().role(), UserRole::Owner);
    assert!(s.has_owner().await.unwrap());
    let scope = OwnerScope::own(root.principal.identity());
    let old_id = root.principal.token_id().clone();

    // Rotate with a minute of grace: both authenticate, the old one until the grace ends.
    let (new_secret, new_fresh) = fresh(TokenFamily::User);
    let grace = Duration::from_secs(60);
    let new_rec = s
        .rotate_token(
            &ownership_core::authz::Rotator::Holder(root.principal.clone()),
            &old_id,
            new_fresh,
            Some(grace),
        )
        .await
        .unwrap();
    let old_p = s
        .authenticate(&root.secret.digest())
        .await
        .unwrap()
        .expect("old works in grace");
    assert_eq!(old_p.expires_at(), Some(clock.now() + grace));
    let new_p = s
        .authenticate(&new_secret.digest())
        .await
        .unwrap()
        .expect("new works");
    assert_eq!(*new_p.token_id(), new_rec.id);
    assert_eq!(new_p.kinds(), root.principal.kinds());
    // A token already rotated is not rotated again, even inside its grace.
    let (_, again) = fresh(TokenFamily::User);
    assert!(matches!(
        s.rotate_token(
            &ownership_core::authz::Rotator::Holder(root.principal.clone()),
            &old_id,
            again,
            None
        )
        .await,
        Err(Error::NotFound)
    ));

    clock.advance(grace);
    assert!(
        s.authenticate(&root.secret.digest())
            .await
            .unwrap()
            .is_none()
    );

    // Kind-verified revocation: naming a `manage` token as a `verify` one changes nothing.
    assert!(matches!(
        s.revoke_token(&scope, &new_rec.id, Some(&TokenKind::Verify))
            .await,
        Err(Error::Conflict(_))
    ));
    assert!(
        s.authenticate(&new_secret.digest())
            .await
            .unwrap()
            .is_some()
    );
    let revoked = s
        .revoke_token(&scope, &new_rec.id, Some(&TokenKind::Manage))
        .await
        .unwrap();
    assert_eq!(revoked.revoked_at, Some(clock.now()));
    assert!(
        s.authenticate(&new_secret.digest())
            .await
            .unwrap()
            .is_none()
    );

    // Another owner's token is not found.
    let alice = add_user(&s, &root, "alice", UserRole::Member).await;
    assert!(matches!(
        s.get_token(&scope, alice.principal.token_id()).await,
        Err(Error::NotFound)
    ));
    assert!(s.verify_chain().await.unwrap().is_intact());
}

#[tokio::test]
async fn the_audit_chain_detects_edits_and_a_deleted_newest_row() {
    let s = migrated(manual_clock()).await;
    let root = boot(&s).await;
    add_user(&s, &root, "alice", UserRole::Member).await;
    add_user(&s, &root, "bob", UserRole::Admin).await;
    assert_eq!(
        s.verify_chain().await.unwrap(),
        ChainVerdict::Intact { events: 3 }
    );

    s.execute_batch_for_tests("UPDATE audit_events SET target = 'x' WHERE seq = 1")
        .await
        .unwrap();
    assert!(matches!(
        s.verify_chain().await.unwrap(),
        ChainVerdict::Broken { seq: 1, .. }
    ));

    let s = migrated(manual_clock()).await;
    let root = boot(&s).await;
    add_user(&s, &root, "alice", UserRole::Member).await;
    s.execute_batch_for_tests("DELETE FROM audit_events WHERE seq = 2")
        .await
        .unwrap();
    assert!(matches!(
        s.verify_chain().await.unwrap(),
        ChainVerdict::Broken { seq: 2, .. }
    ));

    // A row edited into something that no longer parses is a break at that row.
    let s = migrated(manual_clock()).await;
    let root = boot(&s).await;
    add_user(&s, &root, "alice", UserRole::Member).await;
    s.execute_batch_for_tests("UPDATE audit_events SET actor = 'nobody' WHERE seq = 2")
        .await
        .unwrap();
    assert!(matches!(
        s.verify_chain().await.unwrap(),
        ChainVerdict::Broken { seq: 2, .. }
    ));
}

#[tokio::test]
async fn a_row_that_does_not_parse_is_an_integrity_error() {
    let s = migrated(manual_clock()).await;
    let root = boot(&s).await;
    s.execute_batch_for_tests("UPDATE tokens SET kinds = 'superuser'")
        .await
        .unwrap();
    let scope = OwnerScope::own(root.principal.identity());
    assert!(matches!(
        s.list_tokens(&scope).await,
        Err(Error::Integrity(_))
    ));
    assert!(matches!(
        s.authenticate(&root.secret.digest()).await,
        Err(Error::Integrity(_))
    ));
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable_and_fast() {
    // Nothing listens on port 1.
    let started = Instant::now();
    let r = PgStore::connect(
        "postgres://postgres@127.0.0.1:1/none",
        manual_clock() as Arc<dyn Clock>,
    )
    .await;
    assert!(
        matches!(r, Err(Error::Unavailable(ref m)) if m == "store unavailable"),
        "{r:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));

    assert!(matches!(
        PgStore::connect("not a url", manual_clock() as Arc<dyn Clock>).await,
        Err(Error::Invalid {
            field: "database_url",
            ..
        })
    ));
}

#[tokio::test]
async fn a_server_that_stops_answering_is_unavailable_without_driver_text() {
    let url = fresh_url();
    let s = PgStore::connect(&url, manual_clock() as Arc<dyn Clock>)
        .await
        .unwrap();
    s.migrate_to(None).await.unwrap();
    let root = boot(&s).await;
    let database = url.rsplit('/').next().unwrap().to_owned();

    // Refuse new connections to the database and end the existing ones.
    let cluster = PgCluster::shared().unwrap();
    cluster
        .psql(
            cluster.base_url(),
            &format!(
                "ALTER DATABASE {database} ALLOW_CONNECTIONS false; \
                 SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}'"
            ),
        )
        .unwrap();

    let started = Instant::now();
    let r = s.authenticate(&root.secret.digest()).await;
    assert!(
        matches!(r, Err(Error::Unavailable(ref m)) if m == "store unavailable"),
        "{r:?}"
    );
    let (_, token) = new_token(None);
    let r = s.bootstrap_owner(&oid("someone"), token).await;
    assert!(
        matches!(r, Err(Error::Unavailable(ref m)) if m == "store unavailable"),
        "{r:?}"
    );
    assert!(matches!(s.verify_chain().await, Err(Error::Unavailable(_))));
    assert!(started.elapsed() < Duration::from_secs(30));

    cluster
        .psql(
            cluster.base_url(),
            &format!("ALTER DATABASE {database} ALLOW_CONNECTIONS true"),
        )
        .unwrap();
    // The pool recovers once the server answers again.
    assert!(
        s.authenticate(&root.secret.digest())
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn listings_page_in_a_stable_order() {
    use ownership_core::authz::AdminScope;
    use ownership_core::ports::PageRequest;

    let clock = manual_clock();
    let s = migrated(clock.clone()).await;
    let root = boot(&s).await;
    // Users by id in byte order, whatever the database's collation.
    for id in ["b", "Z", "a", "B"] {
        add_user(&s, &root, id, UserRole::Member).await;
    }
    let admin = AdminScope::operator("smoke");
    let mut seen = Vec::new();
    let mut page = PageRequest {
        after: None,
        limit: 2,
    };
    loop {
        let got = s.list_users(&admin, &page).await.unwrap();
        assert!(got.items.len() <= 2);
        seen.extend(got.items.iter().map(|u| u.id.as_str().to_owned()));
        match got.next {
            Some(next) => page.after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, ["B", "Z", "a", "b", "root"]);

    // Deliveries page newest first, ties by id, on every backend: the conformance case
    // `resources::deliveries_page_newest_first_ties_by_id`.
}
