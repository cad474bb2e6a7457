use std::time::Duration;

use ownership_core::authz::SystemScope;
use ownership_core::pairing::{PairingCode, PairingKey};
use ownership_core::ports::{PairingPolicy, Store};
use ownership_core::{ChannelKey, Error, UserRole, UserStatus};

use super::Ctx;
use super::support::*;

pub async fn request_is_idempotent_per_sender<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let tg = channel_scope(s, &root, "telegram").await;
    let (first, code1) = request(s, &tg, "42").await;
    assert!(first.created);
    let (second, code2) = request(s, &tg, "42").await;
    assert!(!second.created);
    assert_eq!(first.id, second.id);
    assert_eq!(code1, code2, "the still-pending code is returned");
    assert_eq!(first.expires_at, second.expires_at);
    assert_eq!(
        first.expires_at,
        cx.clock_now() + Duration::from_secs(600),
        "ten-minute default"
    );
    let (other, _) = request(s, &tg, "43").await;
    assert!(other.created && other.id != first.id);
}

pub async fn redeem_binds_the_sender_and_consumes_the_code<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let alice = add_user(s, &root, "alice", UserRole::Member).await;
    let tg = channel_scope(s, &root, "telegram").await;
    let (_, code) = request(s, &tg, "42").await;
    let hash = pairing_key().hash(&code);
    let b = s
        .redeem_pairing(&alice.scope(), &channel("telegram"), &hash)
        .await
        .unwrap();
    assert_eq!(
        (
            b.key.channel.as_str(),
            b.key.external_id.as_str(),
            b.owner_id.as_str()
        ),
        ("telegram", "42", "alice")
    );
    assert_not_found(
        s.redeem_pairing(&alice.scope(), &channel("telegram"), &hash)
            .await,
    );
    let who = s.resolve_identity(&tg, &ext("42")).await.unwrap().unwrap();
    assert_eq!(
        (who.owner_id(), who.role()),
        (&oid("alice"), UserRole::Member)
    );
    assert_eq!(s.list_identities(&alice.scope()).await.unwrap().len(), 1);
    assert!(
        s.list_pending(&root.admin(), &channel("telegram"))
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn expired_codes_are_not_found<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let tg = channel_scope(s, &root, "telegram").await;
    let (_, code) = request(s, &tg, "42").await;
    cx.clock.advance(Duration::from_secs(601));
    assert_not_found(
        s.redeem_pairing(
            &root.scope(),
            &channel("telegram"),
            &pairing_key().hash(&code),
        )
        .await,
    );
    // An expired request is not handed out again: the sender gets a new one.
    let (again, _) = request(s, &tg, "42").await;
    assert!(again.created);
}

pub async fn unknown_and_wrong_channel_codes_are_not_found<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let tg = channel_scope(s, &root, "telegram").await;
    let (_, code) = request(s, &tg, "42").await;
    let hash = pairing_key().hash(&code);
    assert_not_found(
        s.redeem_pairing(&root.scope(), &channel("slack"), &hash)
            .await,
    );
    let other = PairingKey::from_bytes([8; 32]).hash(&code);
    assert_not_found(
        s.redeem_pairing(&root.scope(), &channel("telegram"), &other)
            .await,
    );
    // Still redeemable on its own channel.
    s.redeem_pairing(&root.scope(), &channel("telegram"), &hash)
        .await
        .unwrap();
}

pub async fn binding_to_another_owner_is_a_conflict_that_consumes_nothing<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let alice = add_user(s, &root, "alice", UserRole::Member).await;
    let bob = add_user(s, &root, "bob", UserRole::Member).await;
    let tg = channel_scope(s, &root, "telegram").await;
    let (_, c1) = request(s, &tg, "42").await;
    s.redeem_pairing(
        &alice.scope(),
        &channel("telegram"),
        &pairing_key().hash(&c1),
    )
    .await
    .unwrap();
    // The bound sender asks again (to move the account); bob claims it: refused.
    let (_, c2) = request(s, &tg, "42").await;
    let h2 = pairing_key().hash(&c2);
    assert_conflict(
        s.redeem_pairing(&bob.scope(), &channel("telegram"), &h2)
            .await,
    );
    assert_conflict(
        s.approve_pairing(&root.admin(), &channel("telegram"), &h2, &oid("bob"))
            .await,
    );
    assert_eq!(
        s.resolve_identity(&tg, &ext("42"))
            .await
            .unwrap()
            .unwrap()
            .owner_id(),
        &oid("alice")
    );
    assert_eq!(
        s.list_pending(&root.admin(), &channel("telegram"))
            .await
            .unwrap()
            .len(),
        1,
        "nothing consumed"
    );
    // Once alice unlinks, the same code moves it.
    s.unlink_identity(
        &alice.scope(),
        &ChannelKey::new(channel("telegram"), ext("42")),
    )
    .await
    .unwrap();
    s.redeem_pairing(&bob.scope(), &channel("telegram"), &h2)
        .await
        .unwrap();
    assert_eq!(
        s.resolve_identity(&tg, &ext("42"))
            .await
            .unwrap()
            .unwrap()
            .owner_id(),
        &oid("bob")
    );
    // Approving for the owner it is already bound to succeeds.
    let (_, c3) = request(s, &tg, "42").await;
    let b = s
        .approve_pairing(
            &root.admin(),
            &channel("telegram"),
            &pairing_key().hash(&c3),
            &oid("bob"),
        )
        .await
        .unwrap();
    assert_eq!(b.owner_id, oid("bob"));
}

pub async fn approve_for_a_missing_or_suspended_owner_is_not_found<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    add_user(s, &root, "alice", UserRole::Member).await;
    s.set_status(&root.admin(), &oid("alice"), UserStatus::Suspended)
        .await
        .unwrap();
    let tg = channel_scope(s, &root, "telegram").await;
    let (_, code) = request(s, &tg, "42").await;
    let hash = pairing_key().hash(&code);
    assert_not_found(
        s.approve_pairing(&root.admin(), &channel("telegram"), &hash, &oid("ghost"))
            .await,
    );
    assert_not_found(
        s.approve_pairing(&root.admin(), &channel("telegram"), &hash, &oid("alice"))
            .await,
    );
    s.approve_pairing(&root.admin(), &channel("telegram"), &hash, &oid("root"))
        .await
        .unwrap();
}

pub async fn pending_requests_are_capped_per_channel<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let tg = channel_scope(s, &root, "telegram").await;
    let policy = PairingPolicy {
        ttl: Duration::from_secs(600),
        max_pending_per_channel: 3,
    };
    for sender in ["1", "2", "3"] {
        s.request_pairing(&tg, &ext(sender), None, &candidates(2), &policy)
            .await
            .unwrap();
    }
    let r = s
        .request_pairing(&tg, &ext("4"), None, &candidates(2), &policy)
        .await;
    assert!(matches!(r, Err(Error::RateLimited { .. })), "got {r:?}");
    // A sender already holding a code still gets it back.
    assert!(
        !s.request_pairing(&tg, &ext("2"), None, &candidates(2), &policy)
            .await
            .unwrap()
            .created
    );
    // Other channels are not affected.
    let sl = channel_scope(s, &root, "slack").await;
    s.request_pairing(&sl, &ext("4"), None, &candidates(2), &policy)
        .await
        .unwrap();
    // Expired requests free the room.
    cx.clock.advance(Duration::from_secs(601));
    assert!(
        s.request_pairing(&tg, &ext("4"), None, &candidates(2), &policy)
            .await
            .unwrap()
            .created
    );
}

pub async fn pending_list_is_per_channel_and_holds_no_codes<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let tg = channel_scope(s, &root, "telegram").await;
    let sl = channel_scope(s, &root, "slack").await;
    let (a, code_a) = request(s, &tg, "1").await;
    cx.clock.advance(Duration::from_secs(1));
    let (b, _) = request(s, &tg, "2").await;
    request(s, &sl, "3").await;
    let list = s
        .list_pending(&root.admin(), &channel("telegram"))
        .await
        .unwrap();
    assert_eq!(
        list.iter().map(|p| p.id.clone()).collect::<Vec<_>>(),
        vec![a.id, b.id],
        "oldest first"
    );
    assert_eq!(list[0].meta.as_deref(), Some("{\"name\":\"x\"}"));
    let text = format!("{list:?}");
    assert!(!text.contains(code_a.as_str()) && !text.contains(&code_a.display()));
}

pub async fn all_pending_is_every_channel_newest_first<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let tg = channel_scope(s, &root, "telegram").await;
    let sl = channel_scope(s, &root, "slack").await;
    assert!(s.list_all_pending(&root.admin()).await.unwrap().is_empty());
    let (a, code_a) = request(s, &tg, "1").await;
    cx.clock.advance(Duration::from_secs(1));
    let (b, _) = request(s, &sl, "2").await;
    cx.clock.advance(Duration::from_secs(1));
    let (c, code_c) = request(s, &tg, "3").await;
    let list = s.list_all_pending(&root.admin()).await.unwrap();
    assert_eq!(
        list.iter().map(|p| p.id.clone()).collect::<Vec<_>>(),
        vec![c.id.clone(), b.id.clone(), a.id],
        "every channel, newest first"
    );
    assert_eq!(list[1].key, ChannelKey::new(channel("slack"), ext("2")));
    let text = format!("{list:?}");
    assert!(!text.contains(code_a.as_str()) && !text.contains(&code_a.display()));
    // A redeemed request and an expired one are no longer pending.
    let alice = add_user(s, &root, "alice", UserRole::Member).await;
    s.redeem_pairing(
        &alice.scope(),
        &channel("telegram"),
        &pairing_key().hash(&code_c),
    )
    .await
    .unwrap();
    let list = s.list_all_pending(&root.admin()).await.unwrap();
    assert_eq!(list.len(), 2, "the redeemed request is gone");
    // The first request's 10 minutes are up; the second has a second left.
    cx.clock.advance(Duration::from_secs(598));
    let list = s.list_all_pending(&root.admin()).await.unwrap();
    assert_eq!(
        list.iter().map(|p| p.id.clone()).collect::<Vec<_>>(),
        vec![b.id],
        "the first request expired"
    );
}

pub async fn burning_a_channel_deletes_its_pending_codes<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let tg = channel_scope(s, &root, "telegram").await;
    let sl = channel_scope(s, &root, "slack").await;
    let (_, c1) = request(s, &tg, "1").await;
    request(s, &tg, "2").await;
    let (_, c3) = request(s, &sl, "3").await;
    assert_eq!(
        s.burn_pending(&SystemScope::background(), &channel("telegram"))
            .await
            .unwrap(),
        2
    );
    assert_not_found(
        s.redeem_pairing(
            &root.scope(),
            &channel("telegram"),
            &pairing_key().hash(&c1),
        )
        .await,
    );
    s.redeem_pairing(&root.scope(), &channel("slack"), &pairing_key().hash(&c3))
        .await
        .unwrap();
    assert_eq!(
        s.burn_pending(&SystemScope::background(), &channel("telegram"))
            .await
            .unwrap(),
        0
    );
}

pub async fn unlink_only_reaches_the_callers_accounts<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let alice = add_user(s, &root, "alice", UserRole::Member).await;
    let tg = channel_scope(s, &root, "telegram").await;
    let (_, code) = request(s, &tg, "42").await;
    s.redeem_pairing(
        &alice.scope(),
        &channel("telegram"),
        &pairing_key().hash(&code),
    )
    .await
    .unwrap();
    let key = ChannelKey::new(channel("telegram"), ext("42"));
    assert_not_found(s.unlink_identity(&root.scope(), &key).await);
    assert!(s.resolve_identity(&tg, &ext("42")).await.unwrap().is_some());
    s.unlink_identity(&alice.scope(), &key).await.unwrap();
    assert!(s.resolve_identity(&tg, &ext("42")).await.unwrap().is_none());
    assert_not_found(s.unlink_identity(&alice.scope(), &key).await);
}

pub async fn suspended_owners_do_not_resolve<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let alice = add_user(s, &root, "alice", UserRole::Member).await;
    let tg = channel_scope(s, &root, "telegram").await;
    let (_, code) = request(s, &tg, "42").await;
    s.redeem_pairing(
        &alice.scope(),
        &channel("telegram"),
        &pairing_key().hash(&code),
    )
    .await
    .unwrap();
    s.set_status(&root.admin(), &oid("alice"), UserStatus::Suspended)
        .await
        .unwrap();
    assert!(s.resolve_identity(&tg, &ext("42")).await.unwrap().is_none());
}

pub async fn blank_codes_are_rejected_before_the_store<S: Store>(_cx: Ctx<S>) {
    for blank in ["", "   ", " - - ", "\t"] {
        assert!(
            matches!(PairingCode::parse(blank), Err(Error::Invalid { .. })),
            "{blank:?} accepted"
        );
    }
}

pub async fn the_stored_pairing_key_is_kept_once<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let a = PairingKey::from_bytes([1; 32]);
    let b = PairingKey::from_bytes([2; 32]);
    let first = s
        .stored_pairing_key(&SystemScope::background(), &a)
        .await
        .unwrap();
    let second = s
        .stored_pairing_key(&SystemScope::background(), &b)
        .await
        .unwrap();
    assert_eq!(first.as_bytes(), a.as_bytes());
    assert_eq!(second.as_bytes(), a.as_bytes(), "the first key is kept");
}

pub async fn a_colliding_candidate_falls_through_to_the_next<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let tg = channel_scope(s, &root, "telegram").await;
    let first = candidates(1);
    s.request_pairing(&tg, &ext("1"), None, &first, &PairingPolicy::default())
        .await
        .unwrap();
    let mut next = candidates(1);
    next.insert(0, first[0].clone());
    let issue = s
        .request_pairing(&tg, &ext("2"), None, &next, &PairingPolicy::default())
        .await
        .unwrap();
    assert!(issue.created);
    assert_eq!(issue.seed, next[1].seed);
    // A candidate whose request id is taken (its code hash free) is skipped the same way.
    let mut next = candidates(2);
    next[0].id = first[0].id.clone();
    let issue = s
        .request_pairing(&tg, &ext("4"), None, &next, &PairingPolicy::default())
        .await
        .unwrap();
    assert_eq!((issue.id, issue.seed), (next[1].id.clone(), next[1].seed));
    // Every candidate colliding is an error, not a shared code.
    let r = s
        .request_pairing(&tg, &ext("3"), None, &first, &PairingPolicy::default())
        .await;
    assert!(
        matches!(r, Err(Error::Unavailable(_)) | Err(Error::Conflict(_))),
        "got {r:?}"
    );
}

/// Past the per-channel cap, the wait is until the oldest live code expires, rounded up to
/// whole seconds and never zero, on every backend.
pub async fn the_cap_asks_to_wait_whole_seconds_until_the_oldest_code_expires<S: Store>(
    cx: Ctx<S>,
) {
    let s = &*cx.store;
    let root = boot(s).await;
    let tg = channel_scope(s, &root, "telegram").await;
    let policy = PairingPolicy {
        ttl: Duration::from_secs(600),
        max_pending_per_channel: 1,
    };
    s.request_pairing(&tg, &ext("1"), None, &candidates(1), &policy)
        .await
        .unwrap();
    let wait = async || match s
        .request_pairing(&tg, &ext("2"), None, &candidates(1), &policy)
        .await
    {
        Err(Error::RateLimited { retry_after }) => retry_after,
        other => panic!("expected RateLimited, got {other:?}"),
    };
    assert_eq!(wait().await, Duration::from_secs(600));
    cx.clock.advance(Duration::from_millis(1_500));
    assert_eq!(wait().await, Duration::from_secs(599));
    cx.clock.advance(Duration::from_millis(598_250));
    assert_eq!(wait().await, Duration::from_secs(1));
}

/// An approval made under an Admin's scope after that Admin was demoted to Member is
/// Forbidden and consumes nothing: the code still works for an Admin who still is one.
pub async fn approval_by_a_demoted_admin_is_forbidden<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let adm = add_user(s, &root, "adm", UserRole::Admin).await;
    add_user(s, &root, "bob", UserRole::Member).await;
    let tg = channel_scope(s, &root, "telegram").await;
    let (_, code) = request(s, &tg, "42").await;
    let hash = pairing_key().hash(&code);
    let stale = adm.admin();
    s.set_role(&root.admin(), &oid("adm"), UserRole::Member)
        .await
        .unwrap();
    assert_forbidden(
        s.approve_pairing(&stale, &channel("telegram"), &hash, &oid("bob"))
            .await,
    );
    assert!(s.resolve_identity(&tg, &ext("42")).await.unwrap().is_none());
    let b = s
        .approve_pairing(&root.admin(), &channel("telegram"), &hash, &oid("bob"))
        .await
        .unwrap();
    assert_eq!(b.owner_id, oid("bob"));
}

/// An Admin binds chat accounts to Members and to themself; only an Owner binds one to an
/// Admin or an Owner (a chat account acts as its user, so binding is managing). A refused
/// approval consumes nothing.
pub async fn an_admin_binds_chat_accounts_only_to_those_they_manage<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let adm = add_user(s, &root, "adm", UserRole::Admin).await;
    add_user(s, &root, "adm2", UserRole::Admin).await;
    add_user(s, &root, "bob", UserRole::Member).await;
    let tg = channel_scope(s, &adm, "telegram").await;
    let tele = channel("telegram");
    for (sender, target) in [("999", "root"), ("998", "adm2")] {
        let (_, code) = request(s, &tg, sender).await;
        let hash = pairing_key().hash(&code);
        assert_forbidden(
            s.approve_pairing(&adm.admin(), &tele, &hash, &oid(target))
                .await,
        );
        assert!(
            s.resolve_identity(&tg, &ext(sender))
                .await
                .unwrap()
                .is_none()
        );
        // Not consumed: the Owner may still approve the same code.
        let b = s
            .approve_pairing(&root.admin(), &tele, &hash, &oid(target))
            .await
            .unwrap();
        assert_eq!(b.owner_id, oid(target));
    }
    for (sender, target) in [("997", "bob"), ("996", "adm")] {
        let (_, code) = request(s, &tg, sender).await;
        let hash = pairing_key().hash(&code);
        let b = s
            .approve_pairing(&adm.admin(), &tele, &hash, &oid(target))
            .await
            .unwrap();
        assert_eq!(b.owner_id, oid(target));
    }
}
