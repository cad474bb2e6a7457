//! Focused tests of the libSQL adapter; the full behaviour is the shared conformance suite.

use std::sync::Arc;
use std::time::Duration;

use ownership_core::audit::ChainVerdict;
use ownership_core::authz::{
    AdminScope, ChannelScope, MintPermit, OwnerScope, Principal, Rotator, SystemScope,
};
use ownership_core::ids::{Label, PairingRequestId, SecretName, TokenId};
use ownership_core::pairing::{CodeHash, PairingSeed};
use ownership_core::ports::{
    AuditFilter, AuditLog, FreshToken, Health, NewToken, PageRequest, PairingCandidate,
    PairingPolicy, PairingStore, Sealed, SecretStore, TokenStore, UserStore,
};
use ownership_core::token::{TokenFamily, TokenSecret};
use ownership_core::{
    ChannelKey, ChannelName, Error, ExternalId, OwnerId, TokenKind, TokenKinds, UserRole,
    UserStatus,
};
use time::OffsetDateTime;

use super::LibsqlStore;
use crate::migrations::{LIBSQL, MigrationError};
use crate::{ManualClock, Migrator, OsRandom};

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(
        OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap(),
    ))
}

async fn store_with(clock: Arc<ManualClock>) -> LibsqlStore {
    let store = LibsqlStore::open_memory(clock).await.unwrap();
    store.migrate_to(None).await.unwrap();
    store
}

async fn store() -> (LibsqlStore, Arc<ManualClock>) {
    let clock = clock();
    (store_with(clock.clone()).await, clock)
}

fn secret() -> TokenSecret {
    TokenSecret::generate(TokenFamily::User, &mut OsRandom)
}

fn fresh(secret: &TokenSecret) -> FreshToken {
    FreshToken {
        id: TokenId::generate(&mut OsRandom),
        digest: secret.digest(),
        display_prefix: secret.display_prefix(),
    }
}

fn new_token(secret: &TokenSecret) -> NewToken {
    NewToken {
        fresh: fresh(secret),
        label: Label::parse("first").ok(),
        expires_at: None,
    }
}

fn id(raw: &str) -> OwnerId {
    OwnerId::parse(raw).unwrap()
}

fn sealed(byte: u8) -> Sealed {
    Sealed {
        nonce: [byte; 12],
        ciphertext: vec![byte; 24],
        key_version: 1,
    }
}

#[tokio::test]
async fn migrations_apply_on_an_empty_database_and_are_idempotent() {
    let store = LibsqlStore::open_memory(clock()).await.unwrap();
    assert_eq!(store.pending_migrations().await.unwrap(), LIBSQL.len());
    assert!(store.applied_migrations().await.unwrap().is_empty());
    assert_eq!(store.migrate_to(None).await.unwrap(), LIBSQL.len());
    assert_eq!(store.migrate_to(None).await.unwrap(), 0);
    assert_eq!(Migrator::migrate_to(&store, None).await.unwrap(), 0);
    assert_eq!(store.pending_migrations().await.unwrap(), 0);
    let applied = store.applied_migrations().await.unwrap();
    assert_eq!(applied.len(), LIBSQL.len());
    for (a, m) in applied.iter().zip(LIBSQL) {
        assert_eq!(
            (a.version, a.checksum.as_str()),
            (m.version, m.checksum().as_str())
        );
    }
    assert_eq!(
        store
            .query_count_for_tests("SELECT seq FROM audit_head WHERE id = 1")
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .query_count_for_tests("SELECT COUNT(*) FROM audit_head WHERE hash = zeroblob(32)")
            .await
            .unwrap(),
        1
    );
    store.ping().await.unwrap();
    assert_eq!(
        store.verify_chain().await.unwrap(),
        ChainVerdict::Intact { events: 0 }
    );
}

#[cfg(unix)]
#[tokio::test]
async fn new_database_files_are_private_to_their_owner() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ownership.db");
    let store = LibsqlStore::open_file(&path, clock()).await.unwrap();
    store.migrate_to(None).await.unwrap();
    store
        .bootstrap_owner(&id("alice"), new_token(&secret()))
        .await
        .unwrap();
    let mut seen = 0;
    for name in ["ownership.db", "ownership.db-wal", "ownership.db-shm"] {
        if let Ok(meta) = std::fs::metadata(dir.path().join(name)) {
            seen += 1;
            let mode = meta.permissions().mode() & 0o777;
            assert_eq!(mode & 0o077, 0, "{name} has mode {mode:o}");
        }
    }
    assert!(seen >= 2, "the database and its WAL exist");
    drop(store);
    // An existing file keeps the mode its owner gave it.
    let shared = dir.path().join("shared.db");
    std::fs::write(&shared, b"").unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o640)).unwrap();
    let store = LibsqlStore::open_file(&shared, clock()).await.unwrap();
    store.migrate_to(None).await.unwrap();
    let mode = std::fs::metadata(&shared).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
}

#[tokio::test]
async fn each_memory_database_is_independent() {
    let (a, _) = store().await;
    let b = LibsqlStore::open_memory(clock()).await.unwrap();
    assert_eq!(b.pending_migrations().await.unwrap(), LIBSQL.len());
    a.bootstrap_owner(&id("alice"), new_token(&secret()))
        .await
        .unwrap();
    b.migrate_to(None).await.unwrap();
    assert!(!b.has_owner().await.unwrap());
    assert!(a.has_owner().await.unwrap());
}

#[tokio::test]
async fn migrating_in_steps_keeps_earlier_rows() {
    let store = LibsqlStore::open_memory(clock()).await.unwrap();
    let head = LIBSQL.last().unwrap().version;
    assert_eq!(
        store.migrate_to(Some(head - 1)).await.unwrap(),
        LIBSQL.len() - 1
    );
    store
        .execute_batch_for_tests(
            "INSERT INTO users (id, role, status, created_at, updated_at) VALUES ('alice', 'owner', 'active', 1, 1);
             INSERT INTO tokens (id, owner_id, digest, kinds, display_prefix, origin, created_at)
                 VALUES ('tok_00000000000000000000', 'alice', zeroblob(32), 'api,manage', 'own_u_abcd', 'issued', 1);",
        )
        .await
        .unwrap();
    assert_eq!(store.migrate_to(None).await.unwrap(), 1);
    assert_eq!(
        store
            .query_count_for_tests("SELECT COUNT(*) FROM tokens")
            .await
            .unwrap(),
        1
    );
    assert!(matches!(
        store.migrate_to(Some(head + 1)).await,
        Err(MigrationError::Unknown { .. })
    ));
}

#[tokio::test]
async fn a_changed_migration_is_refused() {
    let (store, _) = store().await;
    store
        .execute_batch_for_tests("UPDATE schema_migrations SET checksum = 'x' WHERE version = 2")
        .await
        .unwrap();
    assert!(matches!(
        store.migrate_to(None).await,
        Err(MigrationError::Changed { version: 2, .. })
    ));
    assert!(matches!(
        store.pending_migrations().await,
        Err(MigrationError::Changed { version: 2, .. })
    ));
}

#[tokio::test]
async fn a_file_database_persists_and_uses_wal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ownership.db");
    {
        let store = LibsqlStore::open_file(&path, clock()).await.unwrap();
        assert_eq!(store.migrate_to(None).await.unwrap(), LIBSQL.len());
        store
            .bootstrap_owner(&id("alice"), new_token(&secret()))
            .await
            .unwrap();
    }
    let store = LibsqlStore::open_file(&path, clock()).await.unwrap();
    assert_eq!(store.pending_migrations().await.unwrap(), 0);
    assert!(store.has_owner().await.unwrap());
    assert!(dir.path().join("ownership.db-wal").exists());
    assert!(store.verify_chain().await.unwrap().is_intact());
}

#[tokio::test]
async fn bootstrap_authenticate_rotate_revoke() {
    let (store, clock) = store().await;
    let alice = id("alice");
    let first = secret();
    let token = new_token(&first);
    let first_id = token.fresh.id.clone();
    let user = store.bootstrap_owner(&alice, token).await.unwrap();
    assert_eq!(
        (user.role, user.status),
        (UserRole::Owner, UserStatus::Active)
    );
    assert!(matches!(
        store
            .bootstrap_owner(&id("bob"), new_token(&secret()))
            .await,
        Err(Error::Conflict(_))
    ));

    let principal = store.authenticate(&first.digest()).await.unwrap().unwrap();
    assert_eq!(*principal.identity().owner_id(), alice);
    assert_eq!(*principal.token_id(), first_id);
    assert_eq!(*principal.kinds(), TokenKinds::manage_api());
    assert_eq!(principal.expires_at(), None);
    assert!(
        store
            .authenticate(&secret().digest())
            .await
            .unwrap()
            .is_none()
    );

    // Rotation with grace: the old token works until the grace ends.
    let scope = OwnerScope::own(principal.identity());
    let second = secret();
    let rotated = store
        .rotate_token(
            &Rotator::Holder(principal.clone()),
            &first_id,
            fresh(&second),
            Some(Duration::from_secs(60)),
        )
        .await
        .unwrap();
    assert_eq!(rotated.kinds, TokenKinds::manage_api());
    assert_eq!(rotated.label.as_deref(), Some("first"));
    let grace_end = clock.now_truncated() + Duration::from_secs(60);
    let old = store.authenticate(&first.digest()).await.unwrap().unwrap();
    assert_eq!(old.expires_at(), Some(grace_end));
    // A token already rotated is not rotated again.
    assert_eq!(
        store
            .rotate_token(
                &Rotator::Holder(principal.clone()),
                &first_id,
                fresh(&secret()),
                None
            )
            .await,
        Err(Error::NotFound)
    );
    clock.advance(Duration::from_secs(61));
    assert!(store.authenticate(&first.digest()).await.unwrap().is_none());
    let new = store.authenticate(&second.digest()).await.unwrap().unwrap();
    assert_eq!(*new.token_id(), rotated.id);

    // Kind-verified revoke: asking to revoke a `verify` token by a manage token's id fails.
    assert!(matches!(
        store
            .revoke_token(&scope, &rotated.id, Some(&TokenKind::Verify))
            .await,
        Err(Error::Conflict(_))
    ));
    assert!(
        store
            .authenticate(&second.digest())
            .await
            .unwrap()
            .is_some()
    );
    let revoked = store
        .revoke_token(&scope, &rotated.id, Some(&TokenKind::Api))
        .await
        .unwrap();
    assert!(revoked.revoked_at.is_some());
    assert!(
        store
            .authenticate(&second.digest())
            .await
            .unwrap()
            .is_none()
    );
    let events_before = store
        .query_count_for_tests("SELECT COUNT(*) FROM audit_events")
        .await
        .unwrap();
    let again = store.revoke_token(&scope, &rotated.id, None).await.unwrap();
    assert_eq!(again, revoked);
    let events_after = store
        .query_count_for_tests("SELECT COUNT(*) FROM audit_events")
        .await
        .unwrap();
    assert_eq!(
        events_before, events_after,
        "a repeated revoke is not audited"
    );

    // Another owner's token is not found.
    let bob = id("bob");
    store
        .create_user(
            &AdminScope::operator("root"),
            &bob,
            UserRole::Member,
            new_token(&secret()),
        )
        .await
        .unwrap();
    let bob_scope = OwnerScope::own(&ownership_core::Identity::for_tests(bob, UserRole::Member));
    assert_eq!(
        store.get_token(&bob_scope, &first_id).await,
        Err(Error::NotFound)
    );
    assert_eq!(
        store.revoke_token(&bob_scope, &first_id, None).await,
        Err(Error::NotFound)
    );
    assert_eq!(store.list_tokens(&scope).await.unwrap().len(), 2);
    assert!(store.verify_chain().await.unwrap().is_intact());
}

trait Truncated {
    fn now_truncated(&self) -> OffsetDateTime;
}

impl Truncated for ManualClock {
    fn now_truncated(&self) -> OffsetDateTime {
        ownership_core::audit::truncate_to_micros(ownership_core::ports::Clock::now(self))
    }
}

#[tokio::test]
async fn the_last_owner_is_protected_and_deletion_cascades() {
    let (store, _) = store().await;
    let op = AdminScope::operator("root");
    let alice = id("alice");
    store
        .bootstrap_owner(&alice, new_token(&secret()))
        .await
        .unwrap();
    assert!(matches!(
        store.set_role(&op, &alice, UserRole::Admin).await,
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        store.set_status(&op, &alice, UserStatus::Suspended).await,
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        store.delete_user(&op, &alice).await,
        Err(Error::Conflict(_))
    ));
    assert_eq!(
        store.delete_user(&op, &id("nobody")).await,
        Err(Error::NotFound)
    );

    let bob = id("bob");
    let bobs = secret();
    store
        .create_user(&op, &bob, UserRole::Member, new_token(&bobs))
        .await
        .unwrap();
    assert!(matches!(
        store
            .create_user(&op, &bob, UserRole::Member, new_token(&secret()))
            .await,
        Err(Error::Conflict(_))
    ));
    let bob_scope = OwnerScope::own(&ownership_core::Identity::for_tests(
        bob.clone(),
        UserRole::Member,
    ));
    let name = SecretName::parse("API_KEY").unwrap();
    assert!(matches!(
        store.put_secret(&bob_scope, &name, sealed(1), None).await,
        Err(Error::Conflict(_))
    ));
    store
        .put_secret(&bob_scope, &name, sealed(1), Some(sealed(9)))
        .await
        .unwrap();
    assert!(matches!(
        store
            .put_secret(&bob_scope, &name, sealed(2), Some(sealed(9)))
            .await,
        Err(Error::Conflict(_))
    ));
    store
        .put_secret(&bob_scope, &name, sealed(2), None)
        .await
        .unwrap();
    assert_eq!(
        store.get_secret(&bob_scope, &name).await.unwrap(),
        Some(sealed(2))
    );

    store
        .set_status(&op, &bob, UserStatus::Suspended)
        .await
        .unwrap();
    assert!(store.authenticate(&bobs.digest()).await.unwrap().is_none());
    store
        .set_status(&op, &bob, UserStatus::Active)
        .await
        .unwrap();
    assert!(store.authenticate(&bobs.digest()).await.unwrap().is_some());
    store.delete_user(&op, &bob).await.unwrap();
    assert!(store.authenticate(&bobs.digest()).await.unwrap().is_none());
    assert_eq!(store.data_key(&bob_scope).await.unwrap(), None);
    assert_eq!(
        store
            .query_count_for_tests("SELECT COUNT(*) FROM secrets")
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .query_count_for_tests(
                "SELECT COUNT(*) FROM audit_events WHERE action = 'user.deleted'"
            )
            .await
            .unwrap(),
        1
    );
    assert!(store.verify_chain().await.unwrap().is_intact());
}

fn channel_principal(owner: &OwnerId, channel: &ChannelName) -> Principal {
    Principal::for_tests(
        ownership_core::Identity::for_tests(owner.clone(), UserRole::Owner),
        TokenId::generate(&mut OsRandom),
        TokenKinds::new([TokenKind::Channel(channel.clone())]).unwrap(),
        None,
    )
}

fn candidate(byte: u8) -> PairingCandidate {
    PairingCandidate {
        id: PairingRequestId::generate(&mut OsRandom),
        seed: PairingSeed::from_bytes([byte; 16]),
        code_hash: CodeHash::from_bytes([byte; 32]),
    }
}

#[tokio::test]
async fn pairing_requests_redeem_and_refuse_rebinding() {
    let (store, clock) = store().await;
    let alice = id("alice");
    store
        .bootstrap_owner(&alice, new_token(&secret()))
        .await
        .unwrap();
    let telegram = ChannelName::parse("telegram").unwrap();
    let scope = ChannelScope::authorize(&channel_principal(&alice, &telegram), &telegram).unwrap();
    let sender = ExternalId::parse("12345").unwrap();
    let policy = PairingPolicy {
        ttl: Duration::from_secs(600),
        max_pending_per_channel: 2,
    };

    let first = store
        .request_pairing(&scope, &sender, None, &[candidate(1)], &policy)
        .await
        .unwrap();
    assert!(first.created);
    let again = store
        .request_pairing(&scope, &sender, None, &[candidate(2)], &policy)
        .await
        .unwrap();
    assert_eq!((again.id.clone(), again.created), (first.id.clone(), false));
    // A colliding code hash is skipped for the next candidate.
    let other = ExternalId::parse("777").unwrap();
    let second = store
        .request_pairing(
            &scope,
            &other,
            Some("{}"),
            &[candidate(1), candidate(3)],
            &policy,
        )
        .await
        .unwrap();
    assert_eq!(second.seed, PairingSeed::from_bytes([3; 16]));
    // The cap: a third sender waits until the oldest expires.
    let third = ExternalId::parse("999").unwrap();
    match store
        .request_pairing(&scope, &third, None, &[candidate(4)], &policy)
        .await
    {
        Err(Error::RateLimited { retry_after }) => {
            assert_eq!(retry_after, Duration::from_secs(600))
        }
        other => panic!("expected rate limiting, got {other:?}"),
    }
    let op = AdminScope::operator("root");
    assert_eq!(store.list_pending(&op, &telegram).await.unwrap().len(), 2);

    let alice_scope = OwnerScope::own(&ownership_core::Identity::for_tests(
        alice.clone(),
        UserRole::Owner,
    ));
    let bound = store
        .redeem_pairing(&alice_scope, &telegram, &CodeHash::from_bytes([1; 32]))
        .await
        .unwrap();
    assert_eq!(bound.key, ChannelKey::new(telegram.clone(), sender.clone()));
    assert_eq!(
        store
            .redeem_pairing(&alice_scope, &telegram, &CodeHash::from_bytes([1; 32]))
            .await,
        Err(Error::NotFound)
    );
    // A bound sender may ask again (to move the account), but another owner cannot take it.
    store
        .request_pairing(&scope, &sender, None, &[candidate(5)], &policy)
        .await
        .unwrap();
    let bob_probe = OwnerScope::own(&ownership_core::Identity::for_tests(
        id("carol"),
        UserRole::Member,
    ));
    assert_eq!(
        store
            .redeem_pairing(&bob_probe, &telegram, &CodeHash::from_bytes([5; 32]))
            .await,
        Err(Error::NotFound),
        "an owner that does not exist is not found"
    );
    let same = store
        .redeem_pairing(&alice_scope, &telegram, &CodeHash::from_bytes([5; 32]))
        .await
        .unwrap();
    assert_eq!(
        same, bound,
        "redeeming for the same owner consumes and keeps the binding"
    );
    assert_eq!(
        store
            .resolve_identity(&scope, &sender)
            .await
            .unwrap()
            .map(|i| i.owner_id().clone()),
        Some(alice.clone())
    );

    // A sender bound to another owner is never moved, and the code is not consumed.
    let bob = id("bob");
    store
        .create_user(&op, &bob, UserRole::Member, new_token(&secret()))
        .await
        .unwrap();
    store
        .execute_batch_for_tests(
            "INSERT INTO channel_identities (channel, external_id, owner_id, created_at) VALUES ('telegram', '777', 'bob', 1)",
        )
        .await
        .unwrap();
    assert!(matches!(
        store
            .redeem_pairing(&alice_scope, &telegram, &CodeHash::from_bytes([3; 32]))
            .await,
        Err(Error::Conflict(_))
    ));
    assert_eq!(store.list_pending(&op, &telegram).await.unwrap().len(), 1);
    store
        .approve_pairing(&op, &telegram, &CodeHash::from_bytes([3; 32]), &bob)
        .await
        .unwrap();
    assert!(store.list_pending(&op, &telegram).await.unwrap().is_empty());

    // Expired codes are not found, and are deleted.
    let late = ExternalId::parse("555").unwrap();
    store
        .request_pairing(&scope, &late, None, &[candidate(6)], &policy)
        .await
        .unwrap();
    clock.advance(Duration::from_secs(601));
    assert_eq!(
        store
            .redeem_pairing(&alice_scope, &telegram, &CodeHash::from_bytes([6; 32]))
            .await,
        Err(Error::NotFound)
    );
    assert_eq!(
        store
            .query_count_for_tests("SELECT COUNT(*) FROM pairing_requests")
            .await
            .unwrap(),
        0
    );

    store
        .request_pairing(&scope, &late, None, &[candidate(7)], &policy)
        .await
        .unwrap();
    assert_eq!(
        store
            .burn_pending(&SystemScope::background(), &telegram)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .burn_pending(&SystemScope::background(), &telegram)
            .await
            .unwrap(),
        0
    );

    store
        .unlink_identity(&alice_scope, &bound.key)
        .await
        .unwrap();
    assert_eq!(
        store.unlink_identity(&alice_scope, &bound.key).await,
        Err(Error::NotFound)
    );
    assert!(store.verify_chain().await.unwrap().is_intact());
}

async fn audited_store() -> LibsqlStore {
    let (store, _) = store().await;
    let alice = id("alice");
    let first = secret();
    let token = new_token(&first);
    let first_id = token.fresh.id.clone();
    store.bootstrap_owner(&alice, token).await.unwrap();
    let principal = store.authenticate(&first.digest()).await.unwrap().unwrap();
    let scope = OwnerScope::own(principal.identity());
    let permit =
        MintPermit::for_self(&principal, TokenKinds::new([TokenKind::Api]).unwrap()).unwrap();
    store
        .issue_token(&permit, new_token(&secret()))
        .await
        .unwrap();
    store
        .rotate_token(
            &Rotator::Holder(principal.clone()),
            &first_id,
            fresh(&secret()),
            None,
        )
        .await
        .unwrap();
    store
        .create_user(
            &AdminScope::operator("root"),
            &id("bob"),
            UserRole::Member,
            new_token(&secret()),
        )
        .await
        .unwrap();
    store
        .put_secret(
            &scope,
            &SecretName::parse("A").unwrap(),
            sealed(1),
            Some(sealed(2)),
        )
        .await
        .unwrap();
    store
}

#[tokio::test]
async fn the_audit_chain_verifies_and_lists() {
    let store = audited_store().await;
    assert_eq!(
        store.verify_chain().await.unwrap(),
        ChainVerdict::Intact { events: 5 }
    );
    let op = AdminScope::operator("root");
    let page = store
        .list_events(
            AuditFilter::All(&op),
            &PageRequest {
                after: None,
                limit: 2,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        page.items.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![5, 4]
    );
    assert_eq!(page.next.as_deref(), Some("4"));
    let rest = store
        .list_events(
            AuditFilter::All(&op),
            &PageRequest {
                after: page.next.clone(),
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        rest.items.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![3, 2, 1]
    );
    assert_eq!(rest.next, None);
    let alice = OwnerScope::own(&ownership_core::Identity::for_tests(
        id("alice"),
        UserRole::Owner,
    ));
    let mine = store
        .list_events(AuditFilter::Owner(&alice), &PageRequest::default())
        .await
        .unwrap();
    assert_eq!(mine.items.len(), 4);
    assert_eq!(
        store
            .events_after(&alice, 2, 10)
            .await
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect::<Vec<_>>(),
        vec![3, 5]
    );
}

#[tokio::test]
async fn an_edited_event_breaks_the_chain() {
    let store = audited_store().await;
    store
        .execute_batch_for_tests("UPDATE audit_events SET target = 'x' WHERE seq = 1")
        .await
        .unwrap();
    assert!(matches!(
        store.verify_chain().await.unwrap(),
        ChainVerdict::Broken { seq: 1, .. }
    ));
}

#[tokio::test]
async fn a_deleted_newest_event_breaks_the_chain() {
    let store = audited_store().await;
    store
        .execute_batch_for_tests(
            "DELETE FROM audit_events WHERE seq = (SELECT MAX(seq) FROM audit_events)",
        )
        .await
        .unwrap();
    assert!(matches!(
        store.verify_chain().await.unwrap(),
        ChainVerdict::Broken { seq: 5, .. }
    ));
}

#[tokio::test]
async fn an_unparseable_event_breaks_the_chain() {
    let store = audited_store().await;
    store
        .execute_batch_for_tests("UPDATE audit_events SET action = 'bogus' WHERE seq = 3")
        .await
        .unwrap();
    assert!(matches!(
        store.verify_chain().await.unwrap(),
        ChainVerdict::Broken { seq: 3, .. }
    ));
}

#[tokio::test]
async fn driver_errors_are_generic() {
    let (store, _) = store().await;
    let err = store
        .execute_batch_for_tests("SELECT * FROM no_such_table")
        .await
        .unwrap_err();
    assert_eq!(err, Error::Unavailable("store unavailable".into()));
}

/// Writes queued together share one transaction (the group commit), each in a savepoint
/// of its own: a write that fails, by its own error or by a constraint, leaves nothing
/// behind, and the writes beside it are committed and answered with their values.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn grouped_writes_fail_alone_and_commit_together() {
    let dir = tempfile::tempdir().unwrap();
    let store = LibsqlStore::open_file(&dir.path().join("group.db"), clock())
        .await
        .unwrap();
    store
        .execute_batch_for_tests("CREATE TABLE grouped (n INTEGER PRIMARY KEY)")
        .await
        .unwrap();
    let writes: Vec<_> = (0..300_i64)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                let result = store
                    .worker
                    .write(async move |c: &::libsql::Connection| {
                        let insert = "INSERT INTO grouped (n) VALUES (?1)";
                        c.execute(insert, [n]).await.map_err(super::conn::db_err)?;
                        if n % 5 == 0 {
                            // A constraint the write breaks after its first statement.
                            c.execute(insert, [n]).await.map_err(super::conn::db_err)?;
                        }
                        if n % 3 == 0 {
                            return Err(Error::Conflict("refused by the body".into()));
                        }
                        Ok(n * 2)
                    })
                    .await;
                (n, result)
            })
        })
        .collect();
    for write in writes {
        let (n, result) = write.await.unwrap();
        if n % 5 == 0 {
            assert_eq!(
                result,
                Err(Error::Unavailable("store unavailable".into())),
                "{n}"
            );
        } else if n % 3 == 0 {
            assert_eq!(
                result,
                Err(Error::Conflict("refused by the body".into())),
                "{n}"
            );
        } else {
            assert_eq!(result, Ok(n * 2), "{n}");
        }
    }
    let kept: Vec<i64> = store
        .worker
        .read(async |c: &::libsql::Connection| {
            let mut rows = c
                .query("SELECT n FROM grouped ORDER BY n", ())
                .await
                .map_err(super::conn::db_err)?;
            let mut kept = Vec::new();
            while let Some(row) = rows.next().await.map_err(super::conn::db_err)? {
                kept.push(row.get::<i64>(0).map_err(super::conn::db_err)?);
            }
            Ok(kept)
        })
        .await
        .unwrap();
    let expected: Vec<i64> = (0..300).filter(|n| n % 5 != 0 && n % 3 != 0).collect();
    assert_eq!(kept, expected);
}
