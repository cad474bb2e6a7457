use std::sync::Arc;

use ownership_core::audit::ChainVerdict;
use ownership_core::ports::{PairingPolicy, Store};
use ownership_core::token::TokenFamily;
use ownership_core::{Error, UserRole};
use tokio::task::JoinSet;

use super::Ctx;
use super::support::*;

pub async fn one_code_redeemed_by_32_clients_binds_once<S: Store + 'static>(cx: Ctx<S>) {
    let s = Arc::clone(&cx.store);
    let root = boot(&*s).await;
    let mut users = Vec::new();
    for i in 0..32 {
        users.push(add_user(&*s, &root, &format!("u{i}"), UserRole::Member).await);
    }
    let tg = channel_scope(&*s, &root, "telegram").await;
    let (_, code) = request(&*s, &tg, "42").await;
    let hash = pairing_key().hash(&code);
    let mut set = JoinSet::new();
    for u in users {
        let s = Arc::clone(&s);
        set.spawn(async move {
            s.redeem_pairing(&u.scope(), &channel("telegram"), &hash)
                .await
        });
    }
    let mut wins = Vec::new();
    while let Some(r) = set.join_next().await {
        match r.unwrap() {
            Ok(b) => wins.push(b.owner_id),
            Err(Error::NotFound) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(wins.len(), 1, "exactly one redemption wins");
    let owner = s
        .resolve_identity(&tg, &ext("42"))
        .await
        .unwrap()
        .unwrap()
        .owner_id;
    assert_eq!(owner, wins[0]);
    let mut rows = 0;
    for i in 0..32 {
        let who = oid(&format!("u{i}"));
        rows += s
            .list_identities(&ownership_core::authz::OwnerScope::own(
                &ownership_core::Identity::new(who, UserRole::Member),
            ))
            .await
            .unwrap()
            .len();
    }
    assert_eq!(rows, 1, "exactly one identity row");
}

pub async fn thirty_two_requests_for_one_sender_share_one_code<S: Store + 'static>(cx: Ctx<S>) {
    let s = Arc::clone(&cx.store);
    let root = boot(&*s).await;
    let tg = channel_scope(&*s, &root, "telegram").await;
    let mut set = JoinSet::new();
    for _ in 0..32 {
        let s = Arc::clone(&s);
        let tg = tg.clone();
        set.spawn(async move {
            s.request_pairing(
                &tg,
                &ext("42"),
                None,
                &candidates(3),
                &PairingPolicy::default(),
            )
            .await
        });
    }
    let mut issues = Vec::new();
    while let Some(r) = set.join_next().await {
        issues.push(r.unwrap().unwrap());
    }
    assert_eq!(
        issues.iter().filter(|i| i.created).count(),
        1,
        "one request created"
    );
    assert!(
        issues
            .iter()
            .all(|i| i.id == issues[0].id && i.seed == issues[0].seed),
        "one live code"
    );
    assert_eq!(
        s.list_pending(&root.admin(), &channel("telegram"))
            .await
            .unwrap()
            .len(),
        1
    );
}

pub async fn sixteen_rotations_of_one_token_leave_one_successor<S: Store + 'static>(cx: Ctx<S>) {
    let s = Arc::clone(&cx.store);
    let root = boot(&*s).await;
    let (old, id) = issue(&*s, &root, "api").await;
    let mut set = JoinSet::new();
    for _ in 0..16 {
        let s = Arc::clone(&s);
        let scope = root.scope();
        let id = id.clone();
        set.spawn(async move {
            let (secret, f) = fresh(TokenFamily::User);
            s.rotate_token(&scope, &id, f, None)
                .await
                .map(|rec| (secret, rec))
        });
    }
    let mut winners = Vec::new();
    while let Some(r) = set.join_next().await {
        match r.unwrap() {
            Ok(w) => winners.push(w),
            Err(Error::NotFound) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one rotation wins");
    assert!(s.authenticate(&old.digest()).await.unwrap().is_none());
    assert!(
        s.authenticate(&winners[0].0.digest())
            .await
            .unwrap()
            .is_some()
    );
    let now = cx.clock_now();
    let live_api: Vec<_> = s
        .list_tokens(&root.scope())
        .await
        .unwrap()
        .into_iter()
        .filter(|t| t.is_live(now) && t.kinds.to_csv() == "api")
        .collect();
    assert_eq!(live_api.len(), 1, "exactly one new live token");
}

pub async fn concurrent_mutations_never_fork_the_chain<S: Store + 'static>(cx: Ctx<S>) {
    let s = Arc::clone(&cx.store);
    let root = boot(&*s).await;
    let mut set = JoinSet::new();
    for i in 0..32 {
        let s = Arc::clone(&s);
        let root = root.clone();
        set.spawn(async move {
            let u = add_user(&*s, &root, &format!("c{i}"), UserRole::Member).await;
            let (_, id) = issue(&*s, &u, "api").await;
            s.revoke_token(&u.scope(), &id, None).await.unwrap();
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
    assert_eq!(
        s.verify_chain().await.unwrap(),
        ChainVerdict::Intact { events: 1 + 32 * 3 }
    );
}
