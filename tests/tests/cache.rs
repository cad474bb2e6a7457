//! The cache decorator in front of real stores: warm lookups make zero store reads, and
//! every mutation through it is visible on the very next lookup.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

use std::sync::Arc;
use std::time::Duration;

use ownership_core::ports::{Clock, PairingStore, TokenStore, UserStore};
use ownership_core::{ChannelKey, UserRole, UserStatus};
use ownership_store::cache::{CacheConfig, Cached};
use ownership_tests::backends;
use ownership_tests::conformance::support::*;
use ownership_tests::counting::Counting;

type Store = Cached<Counting<ownership_store::libsql::LibsqlStore>>;

async fn cached() -> (Store, Arc<ownership_store::ManualClock>) {
    let clock = backends::manual_clock();
    let counting = Counting::new(backends::libsql_memory(Arc::clone(&clock)).await);
    let cache = Cached::new(
        counting,
        clock.clone() as Arc<dyn Clock>,
        CacheConfig::default(),
    );
    (cache, clock)
}

#[tokio::test]
async fn warm_token_lookup_reads_nothing() {
    let (s, _) = cached().await;
    let root = boot(&s).await; // one authenticate: now warm
    let before = s.inner().calls();
    for _ in 0..100 {
        let p = s
            .authenticate(&root.secret.digest())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(*p.identity().owner_id(), oid("root"));
    }
    assert_eq!(
        s.inner().calls(),
        before,
        "warm authentications reached the store"
    );
}

/// The request path: shape, digest, cache; the checksum only on a miss, and a token whose
/// checksum fails never reaches the store, whether another token is warm or not.
#[tokio::test]
async fn the_warm_path_serves_hits_and_a_bad_checksum_never_reaches_the_store() {
    use ownership_core::service::{Refusal, check_token};
    let (s, _) = cached().await;
    let root = boot(&s).await;
    let raw = root.secret.expose();
    let before = s.inner().calls();
    for _ in 0..10 {
        let p = check_token(&s, raw, false).await.unwrap().unwrap();
        assert_eq!(*p.identity().owner_id(), oid("root"));
    }
    assert_eq!(s.inner().calls(), before, "warm checks reached the store");
    let last = if raw.ends_with('A') { 'B' } else { 'A' };
    let wrong = format!("{}{last}", &raw[..raw.len() - 1]);
    assert_eq!(
        check_token(&s, &wrong, false).await.unwrap().unwrap_err(),
        Refusal::Malformed
    );
    assert_eq!(
        s.inner().calls(),
        before,
        "a bad checksum reached the store"
    );
}

#[tokio::test]
async fn warm_identity_resolution_reads_nothing() {
    let (s, _) = cached().await;
    let root = boot(&s).await;
    let tg = channel_scope(&s, &root, "telegram").await;
    let (_, code) = request(&s, &tg, "42").await;
    s.redeem_pairing(
        &root.scope(),
        &channel("telegram"),
        &pairing_key().hash(&code),
    )
    .await
    .unwrap();
    assert!(s.resolve_identity(&tg, &ext("42")).await.unwrap().is_some());
    let before = s.inner().calls();
    for _ in 0..100 {
        assert_eq!(
            s.resolve_identity(&tg, &ext("42"))
                .await
                .unwrap()
                .unwrap()
                .owner_id(),
            &oid("root")
        );
    }
    assert_eq!(
        s.inner().calls(),
        before,
        "warm resolutions reached the store"
    );
}

#[tokio::test]
async fn mutations_evict_before_they_return() {
    let (s, _) = cached().await;
    let root = boot(&s).await;
    let alice = add_user(&s, &root, "alice", UserRole::Member).await;
    let (api, id) = issue(&s, &alice, "api").await;
    assert!(s.authenticate(&api.digest()).await.unwrap().is_some());
    s.revoke_token(&alice.scope(), &id, None).await.unwrap();
    assert!(
        s.authenticate(&api.digest()).await.unwrap().is_none(),
        "revoked token served from cache"
    );

    let tg = channel_scope(&s, &root, "telegram").await;
    let (_, code) = request(&s, &tg, "42").await;
    s.redeem_pairing(
        &alice.scope(),
        &channel("telegram"),
        &pairing_key().hash(&code),
    )
    .await
    .unwrap();
    assert_eq!(
        s.resolve_identity(&tg, &ext("42"))
            .await
            .unwrap()
            .unwrap()
            .role(),
        UserRole::Member
    );
    s.set_role(&root.admin(), &oid("alice"), UserRole::Admin)
        .await
        .unwrap();
    assert_eq!(
        s.resolve_identity(&tg, &ext("42"))
            .await
            .unwrap()
            .unwrap()
            .role(),
        UserRole::Admin
    );
    assert_eq!(
        s.authenticate(&alice.secret.digest())
            .await
            .unwrap()
            .unwrap()
            .identity()
            .role(),
        UserRole::Admin
    );

    s.set_status(&root.admin(), &oid("alice"), UserStatus::Suspended)
        .await
        .unwrap();
    assert!(
        s.authenticate(&alice.secret.digest())
            .await
            .unwrap()
            .is_none()
    );
    assert!(s.resolve_identity(&tg, &ext("42")).await.unwrap().is_none());
    s.set_status(&root.admin(), &oid("alice"), UserStatus::Active)
        .await
        .unwrap();
    assert!(s.resolve_identity(&tg, &ext("42")).await.unwrap().is_some());

    s.unlink_identity(
        &alice.scope(),
        &ChannelKey::new(channel("telegram"), ext("42")),
    )
    .await
    .unwrap();
    assert!(s.resolve_identity(&tg, &ext("42")).await.unwrap().is_none());

    s.delete_user(&root.admin(), &oid("alice")).await.unwrap();
    assert!(
        s.authenticate(&alice.secret.digest())
            .await
            .unwrap()
            .is_none()
    );
}

/// Evictions find their entries by the tags held inline (no index by token id): exactly
/// the token revoked, or the tokens of the owner changed, leave the cache; every other
/// entry stays warm.
#[tokio::test]
async fn evictions_take_exactly_the_token_or_the_owner_named() {
    let (s, _) = cached().await;
    let root = boot(&s).await;
    let alice = add_user(&s, &root, "alice", UserRole::Member).await;
    let mut tokens = Vec::new();
    for _ in 0..20 {
        tokens.push(issue(&s, &alice, "api").await.0);
    }
    let (revoked, revoked_id) = issue(&s, &alice, "api").await;
    let warm = |digests: Vec<ownership_core::token::TokenDigest>| {
        let s = &s;
        async move {
            let mut roles = Vec::new();
            for d in digests {
                roles.push(
                    s.authenticate(&d)
                        .await
                        .unwrap()
                        .map(|p| p.identity().role()),
                );
            }
            roles
        }
    };
    let alices: Vec<_> = tokens.iter().map(|t| t.digest()).collect();
    let everyone: Vec<_> = alices
        .iter()
        .copied()
        .chain([revoked.digest(), root.secret.digest()])
        .collect();
    assert!(warm(everyone).await.iter().all(Option::is_some));

    s.revoke_token(&alice.scope(), &revoked_id, None)
        .await
        .unwrap();
    let before = s.inner().calls();
    let others: Vec<_> = alices
        .iter()
        .copied()
        .chain([root.secret.digest()])
        .collect();
    assert!(warm(others).await.iter().all(Option::is_some));
    assert_eq!(
        s.inner().calls(),
        before,
        "a revocation evicted other tokens"
    );
    assert_eq!(warm(vec![revoked.digest()]).await, vec![None]);

    s.set_role(&root.admin(), &oid("alice"), UserRole::Admin)
        .await
        .unwrap();
    let before = s.inner().calls();
    assert!(warm(vec![root.secret.digest()]).await[0].is_some());
    assert_eq!(
        s.inner().calls(),
        before,
        "alice's role change evicted root's token"
    );
    let roles = warm(alices).await;
    assert_eq!(roles, vec![Some(UserRole::Admin); tokens.len()]);
    assert!(
        s.inner().calls() > before,
        "alice's tokens were served from the cache after her role changed"
    );
}

#[tokio::test]
async fn an_expiring_token_is_not_served_past_its_expiry() {
    let (s, clock) = cached().await;
    let root = boot(&s).await;
    let (old, id) = issue(&s, &root, "api").await;
    let (_, f) = fresh(ownership_core::token::TokenFamily::User);
    s.rotate_token(&root.rotator(), &id, f, Some(Duration::from_secs(60)))
        .await
        .unwrap();
    assert!(
        s.authenticate(&old.digest()).await.unwrap().is_some(),
        "inside grace"
    );
    clock.advance(Duration::from_secs(61));
    assert!(
        s.authenticate(&old.digest()).await.unwrap().is_none(),
        "grace over, even from the cache"
    );
}

#[tokio::test]
async fn last_used_is_written_behind_on_flush() {
    let (s, _) = cached().await;
    let root = boot(&s).await;
    let (api, id) = issue(&s, &root, "api").await;
    s.authenticate(&api.digest()).await.unwrap().unwrap();
    assert!(
        s.get_token(&root.scope(), &id)
            .await
            .unwrap()
            .last_used_at
            .is_none(),
        "not on the request path"
    );
    s.flush().await.unwrap();
    assert!(
        s.get_token(&root.scope(), &id)
            .await
            .unwrap()
            .last_used_at
            .is_some()
    );
}
