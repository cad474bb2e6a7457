//! Per-owner quotas and the wrong-pairing-code budgets, enforced inside the write
//! transaction: sequentially at their bounds, and under concurrent writers that must never
//! take an owner past them.

use std::time::Duration;

use ownership_core::authz::MintPermit;
use ownership_core::ids::SecretName;
use ownership_core::ports::{NewToken, Sealed, Store};
use ownership_core::quotas::{Limits, PairingBudget, Quotas};
use ownership_core::token::TokenFamily;
use ownership_core::{Error, TokenKinds, UserRole};

use super::Ctx;
use super::resources::resource;
use super::support::*;
use super::users::sealed;

/// The small bounds these cases run under.
pub fn small() -> Limits {
    Limits {
        quotas: Quotas {
            secrets: 3,
            secret_bytes: 100,
            resources: 2,
            tokens: 4,
        },
        pairing: PairingBudget {
            per_user: 3,
            user_window: Duration::from_secs(300),
            per_channel: 5,
            channel_window: Duration::from_secs(600),
        },
    }
}

fn name(s: &str) -> SecretName {
    SecretName::parse(s).unwrap()
}

/// A sealed value of `len` bytes as written (the ciphertext adds a 16-byte tag).
fn sealed_of(tag: u8, len: usize) -> Sealed {
    Sealed {
        ciphertext: vec![tag; len + 16],
        ..sealed(tag)
    }
}

fn assert_quota<T: std::fmt::Debug>(r: Result<T, Error>, what: &str, limit: u64) {
    match r {
        Err(Error::QuotaExceeded { what: w, limit: l }) if w == what && l == limit => {}
        other => panic!("expected the {what} quota ({limit}), got {other:?}"),
    }
}

fn is_quota<T>(r: &Result<T, Error>) -> bool {
    matches!(r, Err(Error::QuotaExceeded { .. }))
}

async fn mint<S: Store>(
    s: &S,
    who: &Signed,
    expires_at: Option<time::OffsetDateTime>,
) -> Result<ownership_core::ports::TokenRecord, Error> {
    let permit = MintPermit::for_self(&who.principal, TokenKinds::parse_csv("api").unwrap())?;
    let (_, token) = new_token(None);
    s.issue_token(
        &permit,
        NewToken {
            expires_at,
            ..token
        },
    )
    .await
}

async fn live_tokens<S: Store>(cx: &Ctx<S>, who: &Signed) -> usize {
    let now = cx.clock_now();
    cx.store
        .list_tokens(&who.scope())
        .await
        .unwrap()
        .iter()
        .filter(|t| t.is_live(now))
        .count()
}

/// Alice's first token counts: three more reach the quota of four. Revoked and expired
/// tokens do not count; rotation is never refused (it replaces one).
pub async fn minting_stops_at_the_token_quota<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let limit = cx.limits.quotas.tokens;
    let root = boot(s).await;
    let alice = add_user(s, &root, "alice", UserRole::Member).await;
    let mut minted = Vec::new();
    for _ in 0..3 {
        minted.push(mint(s, &alice, None).await.unwrap());
    }
    assert_quota(mint(s, &alice, None).await, "tokens", limit);
    assert_eq!(live_tokens(&cx, &alice).await, 4);
    // Another owner's quota is their own.
    mint(s, &root, None).await.unwrap();

    s.revoke_token(&alice.scope(), &minted[0].id, None)
        .await
        .unwrap();
    let soon = cx.clock_now() + Duration::from_secs(60);
    mint(s, &alice, Some(soon)).await.unwrap();
    assert_quota(mint(s, &alice, None).await, "tokens", limit);
    cx.clock.advance(Duration::from_secs(61));
    mint(s, &alice, None).await.unwrap();
    assert_eq!(live_tokens(&cx, &alice).await, 4);

    // At the quota, a rotation (even with a grace period) still goes through.
    s.rotate_token(
        &alice.rotator(),
        &minted[1].id,
        fresh(TokenFamily::User).1,
        Some(Duration::from_secs(3600)),
    )
    .await
    .unwrap();
    assert_eq!(live_tokens(&cx, &alice).await, 5);
    assert_quota(mint(s, &alice, None).await, "tokens", limit);
}

/// Service tokens an Admin or Owner mints are theirs, and count against their quota.
pub async fn service_tokens_count_against_their_owners_quota<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    for name in ["a", "b", "c"] {
        channel_scope(s, &root, name).await;
    }
    let permit = MintPermit::service(
        &root.principal,
        &root.admin(),
        TokenKinds::parse_csv("channel:d").unwrap(),
    )
    .unwrap();
    let (_, fresh) = fresh(TokenFamily::Service);
    let r = s
        .issue_token(
            &permit,
            NewToken {
                fresh,
                label: None,
                expires_at: None,
            },
        )
        .await;
    assert_quota(r, "tokens", cx.limits.quotas.tokens);
}

/// Three secrets of 24 bytes each: a fourth name is over the count. Replacing a value
/// gives back its old length; growing one past 100 bytes in all is over the size.
pub async fn secrets_stop_at_their_count_and_bytes<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let q = cx.limits.quotas;
    let root = boot(s).await;
    let alice = add_user(s, &root, "alice", UserRole::Member).await;
    let scope = alice.scope();
    s.put_secret(&scope, &name("A"), sealed(1), Some(sealed(9)))
        .await
        .unwrap();
    s.put_secret(&scope, &name("B"), sealed(2), None)
        .await
        .unwrap();
    s.put_secret(&scope, &name("C"), sealed(3), None)
        .await
        .unwrap();
    assert_quota(
        s.put_secret(&scope, &name("D"), sealed(4), None).await,
        "secrets",
        q.secrets,
    );
    // 72 − 24 + 52 = 100 bytes: exactly the quota.
    s.put_secret(&scope, &name("A"), sealed_of(5, 52), None)
        .await
        .unwrap();
    // 100 − 24 + 25 = 101: one byte over, and nothing changes.
    assert_quota(
        s.put_secret(&scope, &name("B"), sealed_of(6, 25), None)
            .await,
        "secret bytes",
        q.secret_bytes,
    );
    assert_eq!(
        s.get_secret(&scope, &name("B")).await.unwrap(),
        Some(sealed(2))
    );
    s.delete_secret(&scope, &name("C")).await.unwrap();
    s.put_secret(&scope, &name("D"), sealed(4), None)
        .await
        .unwrap();
    // Bob's quota is his own.
    let bob = add_user(s, &root, "bob", UserRole::Member).await;
    s.put_secret(&bob.scope(), &name("A"), sealed(7), Some(sealed(8)))
        .await
        .unwrap();
}

/// Two live resource credentials; a revoked one no longer counts.
pub async fn resources_stop_at_their_quota<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let alice = add_user(s, &root, "alice", UserRole::Member).await;
    let (_, first) = resource(s, &alice, &[]).await.unwrap();
    resource(s, &alice, &[]).await.unwrap();
    assert_quota(
        resource(s, &alice, &[]).await,
        "resource credentials",
        cx.limits.quotas.resources,
    );
    s.revoke_resource(&alice.scope(), &first).await.unwrap();
    resource(s, &alice, &[]).await.unwrap();
    assert_quota(
        resource(s, &alice, &[]).await,
        "resource credentials",
        cx.limits.quotas.resources,
    );
    assert_eq!(s.list_resources(&alice.scope()).await.unwrap().len(), 3);
}

/// How many writers race in the concurrent cases.
const WRITERS: usize = 24;

/// Splits concurrent outcomes into successes and quota refusals; anything else fails.
fn tally<T: std::fmt::Debug>(results: Vec<Result<T, Error>>) -> usize {
    let mut ok = 0;
    for r in results {
        match r {
            Ok(_) => ok += 1,
            r if is_quota(&r) => {}
            other => panic!("a racing write failed otherwise: {other:?}"),
        }
    }
    ok
}

async fn race<S, T, F, Fut>(cx: &Ctx<S>, write: F) -> Vec<Result<T, Error>>
where
    S: Store + 'static,
    T: Send + 'static,
    F: Fn(Ctx<S>) -> Fut,
    Fut: std::future::Future<Output = Result<T, Error>> + Send + 'static,
{
    let tasks: Vec<_> = (0..WRITERS)
        .map(|_| tokio::spawn(write(cx.clone())))
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("writer task"));
    }
    out
}

/// Twenty-four concurrent mints for an owner holding one token, quota four: exactly three
/// succeed, the others are refused by the quota.
pub async fn concurrent_mints_never_exceed_the_token_quota<S: Store + 'static>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let alice = add_user(s, &root, "alice", UserRole::Member).await;
    let who = alice.clone();
    let results = race(&cx, move |cx| {
        let who = who.clone();
        async move { mint(&*cx.store, &who, None).await }
    })
    .await;
    assert_eq!(tally(results), 3);
    assert_eq!(live_tokens(&cx, &alice).await, 4);
}

/// Twenty-four concurrent writes of new names for an owner holding one secret, quota
/// three: exactly two succeed.
pub async fn concurrent_secret_writes_never_exceed_the_quota<S: Store + 'static>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let alice = add_user(s, &root, "alice", UserRole::Member).await;
    s.put_secret(&alice.scope(), &name("FIRST"), sealed(1), Some(sealed(9)))
        .await
        .unwrap();
    let scope = alice.scope();
    let counter = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let results = race(&cx, move |cx| {
        let scope = scope.clone();
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async move {
            cx.store
                .put_secret(&scope, &name(&format!("S{n}")), sealed(2), None)
                .await
        }
    })
    .await;
    assert_eq!(tally(results), 2);
    assert_eq!(s.list_secrets(&alice.scope()).await.unwrap().len(), 3);
}

/// Twenty-four concurrent registrations, quota two: exactly two succeed.
pub async fn concurrent_resources_never_exceed_the_quota<S: Store + 'static>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let alice = add_user(s, &root, "alice", UserRole::Member).await;
    let who = alice.clone();
    let results = race(&cx, move |cx| {
        let who = who.clone();
        async move { resource(&*cx.store, &who, &[]).await }
    })
    .await;
    assert_eq!(tally(results), 2);
    assert_eq!(s.list_resources(&alice.scope()).await.unwrap().len(), 2);
}

fn wrong_hash() -> ownership_core::pairing::CodeHash {
    let code = ownership_core::pairing::PairingCode::generate(&mut ownership_store::OsRandom);
    pairing_key().hash(&code)
}

/// Three wrong codes spend Alice's budget: the fourth attempt is refused before its code
/// is looked at (even a right one), with the wait until one failure comes back (300 s / 3).
/// Bob's budget is his own.
pub async fn wrong_codes_spend_the_users_budget_then_wait<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let alice = add_user(s, &root, "alice", UserRole::Member).await;
    let bob = add_user(s, &root, "bob", UserRole::Member).await;
    let tg = channel_scope(s, &root, "telegram").await;
    let (_, code) = request(s, &tg, "42").await;
    let right = pairing_key().hash(&code);
    let telegram = channel("telegram");
    for _ in 0..3 {
        assert_not_found(
            s.redeem_pairing(&alice.scope(), &telegram, &wrong_hash())
                .await,
        );
    }
    match s.redeem_pairing(&alice.scope(), &telegram, &right).await {
        Err(Error::RateLimited { retry_after }) => {
            assert_eq!(retry_after, Duration::from_secs(100));
        }
        other => panic!("expected 429 before the code is evaluated, got {other:?}"),
    }
    assert_not_found(
        s.redeem_pairing(&bob.scope(), &telegram, &wrong_hash())
            .await,
    );
    cx.clock.advance(Duration::from_secs(100));
    assert_not_found(
        s.redeem_pairing(&alice.scope(), &telegram, &wrong_hash())
            .await,
    );
    assert!(matches!(
        s.redeem_pairing(&alice.scope(), &telegram, &right).await,
        Err(Error::RateLimited { .. })
    ));
    cx.clock.advance(Duration::from_secs(100));
    let bound = s
        .redeem_pairing(&alice.scope(), &telegram, &right)
        .await
        .unwrap();
    assert_eq!(bound.owner_id, *alice.id());
}

/// Five wrong codes on a channel, from different users, spend its budget: the fifth burns
/// the channel's pending codes (audited), another channel's stay, and the budget is whole
/// again for the codes asked for next.
pub async fn the_channel_budget_burns_pending_codes_once_spent<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let tg = channel_scope(s, &root, "telegram").await;
    let sl = channel_scope(s, &root, "slack").await;
    let (_, before) = request(s, &tg, "1").await;
    let (_, other) = request(s, &sl, "2").await;
    let telegram = channel("telegram");
    let mut users = Vec::new();
    for i in 0..5 {
        users.push(add_user(s, &root, &format!("u{i}"), UserRole::Member).await);
    }
    for u in &users {
        assert_not_found(s.redeem_pairing(&u.scope(), &telegram, &wrong_hash()).await);
    }
    assert_not_found(
        s.redeem_pairing(&root.scope(), &telegram, &pairing_key().hash(&before))
            .await,
    );
    s.redeem_pairing(
        &root.scope(),
        &channel("slack"),
        &pairing_key().hash(&other),
    )
    .await
    .unwrap();
    let (_, after) = request(s, &tg, "1").await;
    for u in &users[..3] {
        assert_not_found(s.redeem_pairing(&u.scope(), &telegram, &wrong_hash()).await);
    }
    s.redeem_pairing(&users[4].scope(), &telegram, &pairing_key().hash(&after))
        .await
        .unwrap();
}

/// Forty concurrent wrong codes from one member: exactly the budget's three are
/// evaluated (answered not found); every other one is refused unevaluated.
pub async fn concurrent_wrong_codes_are_evaluated_at_most_budget_times<S: Store + 'static>(
    cx: Ctx<S>,
) {
    let s = &*cx.store;
    let root = boot(s).await;
    let alice = add_user(s, &root, "alice", UserRole::Member).await;
    let tg = channel_scope(s, &root, "telegram").await;
    request(s, &tg, "7").await;
    let scope = alice.scope();
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let (store, scope) = (std::sync::Arc::clone(&cx.store), scope.clone());
            tokio::spawn(async move {
                store
                    .redeem_pairing(&scope, &channel("telegram"), &wrong_hash())
                    .await
            })
        })
        .collect();
    let (mut evaluated, mut refused) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Err(Error::NotFound) => evaluated += 1,
            Err(Error::RateLimited { .. }) => refused += 1,
            other => panic!("unexpected answer: {other:?}"),
        }
    }
    assert_eq!(
        (evaluated, refused),
        (cx.limits.pairing.per_user as usize, 37)
    );
}
