//! Passkey rows: registration, listing, removal, sign-in bookkeeping (counter, last use)
//! and the owner's status, on every backend.

use ownership_core::audit::AuditAction;
use ownership_core::passkeys::{CredentialId, MAX_PER_USER, NewPasskey, PasskeyLabel, PasskeyUse};
use ownership_core::ports::{AuditFilter, PageRequest, Store};
use ownership_core::sessions::{SessionKey, SessionMethod, SessionPolicy};
use ownership_core::{Error, Identity, UserRole, UserStatus};
use ownership_store::OsRandom;

use super::Ctx;
use super::support::*;

fn cred(s: &str) -> CredentialId {
    CredentialId::parse(s).unwrap()
}

fn new_passkey(id: &str, label: &str, count: u32) -> NewPasskey {
    NewPasskey {
        credential_id: cred(id),
        label: PasskeyLabel::parse(label).unwrap(),
        credential: format!("{{\"cred\":\"{id}\",\"count\":{count}}}"),
        sign_count: count,
    }
}

/// Starts a console session for `who` as a passkey sign-in does; its key.
async fn passkey_session<S: Store>(s: &S, who: &Signed) -> SessionKey {
    s.start_session(
        who.id(),
        SessionMethod::Passkey,
        None,
        &SessionPolicy::default(),
        &mut OsRandom,
    )
    .await
    .unwrap()
    .key
}

/// Whether the passkey `id` would be offered to a sign-in.
async fn signs_in<S: Store>(s: &S, id: &str) -> bool {
    s.passkey_for_sign_in(&cred(id)).await.unwrap().is_some()
}

fn used(id: &str, owner: &Signed, count: u32) -> PasskeyUse {
    PasskeyUse {
        credential_id: cred(id),
        owner_id: owner.id().clone(),
        credential: format!("{{\"cred\":\"{id}\",\"count\":{count}}}"),
        sign_count: count,
    }
}

pub async fn passkeys_are_registered_listed_and_removed_per_owner<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let alice = add_user(s, &root, "alice", UserRole::Member).await;
    let bob = add_user(s, &root, "bob", UserRole::Member).await;
    let first = s
        .register_passkey(&alice.scope(), new_passkey("AAAA", "laptop", 0))
        .await
        .unwrap();
    assert_eq!(first.owner_id, *alice.id());
    assert_eq!(first.last_used_at, None);
    cx.clock.advance(std::time::Duration::from_secs(1));
    s.register_passkey(&alice.scope(), new_passkey("BBBB", "phone", 0))
        .await
        .unwrap();
    // A credential id is registered once, whoever asks.
    assert_conflict(
        s.register_passkey(&bob.scope(), new_passkey("AAAA", "mine", 0))
            .await,
    );
    let list = s.list_passkeys(&alice.scope()).await.unwrap();
    assert_eq!(
        list.iter().map(|p| p.label.as_str()).collect::<Vec<_>>(),
        ["phone", "laptop"],
        "newest first"
    );
    assert_eq!(list[1], first, "read back exactly as written");
    assert!(s.list_passkeys(&bob.scope()).await.unwrap().is_empty());
    // Another owner's passkey is not found, and stays.
    assert_not_found(s.remove_passkey(&bob.scope(), &cred("AAAA")).await);
    s.remove_passkey(&alice.scope(), &cred("AAAA"))
        .await
        .unwrap();
    assert_not_found(s.remove_passkey(&alice.scope(), &cred("AAAA")).await);
    assert!(!signs_in(s, "AAAA").await);
    assert_eq!(s.list_passkeys(&alice.scope()).await.unwrap().len(), 1);

    let events = s
        .list_events(AuditFilter::Owner(&alice.scope()), &PageRequest::default())
        .await
        .unwrap()
        .items;
    let actions: Vec<AuditAction> = events.iter().map(|e| e.action).collect();
    assert!(actions.contains(&AuditAction::PasskeyRegistered));
    assert!(actions.contains(&AuditAction::PasskeyRemoved));
    assert_chain(s).await;
}

pub async fn a_user_keeps_a_bounded_number_of_passkeys<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let ids: Vec<String> = (0..=MAX_PER_USER).map(|i| format!("key{i:04}")).collect();
    for id in ids.iter().take(usize::try_from(MAX_PER_USER).unwrap()) {
        s.register_passkey(&root.scope(), new_passkey(id, "k", 0))
            .await
            .unwrap();
    }
    assert_conflict(
        s.register_passkey(&root.scope(), new_passkey(&ids[ids.len() - 1], "k", 0))
            .await,
    );
}

pub async fn sign_in_records_the_counter_and_refuses_a_clone<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let alice = add_user(s, &root, "alice", UserRole::Admin).await;
    s.register_passkey(&alice.scope(), new_passkey("AAAA", "laptop", 1))
        .await
        .unwrap();
    let found = s.passkey_for_sign_in(&cred("AAAA")).await.unwrap().unwrap();
    assert_eq!(found.sign_count, 1);
    let who = s
        .record_passkey_sign_in(used("AAAA", &alice, 2))
        .await
        .unwrap();
    assert_eq!(
        who,
        Identity::for_tests(alice.id().clone(), UserRole::Admin)
    );
    let after = s.passkey_for_sign_in(&cred("AAAA")).await.unwrap().unwrap();
    assert_eq!(after.sign_count, 2);
    assert_eq!(after.credential, used("AAAA", &alice, 2).credential);
    assert_eq!(after.last_used_at, Some(cx.clock_now()));
    // The same counter again is a cloned authenticator (or a replay): refused, unchanged.
    assert!(matches!(
        s.record_passkey_sign_in(used("AAAA", &alice, 2)).await,
        Err(Error::Unauthenticated)
    ));
    // Recorded under someone else: refused.
    assert!(matches!(
        s.record_passkey_sign_in(used("AAAA", &root, 3)).await,
        Err(Error::Unauthenticated)
    ));
    let events = s
        .list_events(AuditFilter::Owner(&alice.scope()), &PageRequest::default())
        .await
        .unwrap()
        .items;
    assert_eq!(
        events
            .iter()
            .filter(|e| e.action == AuditAction::PasskeySignedIn)
            .count(),
        1
    );
    assert_chain(s).await;
}

pub async fn suspended_or_deleted_users_passkeys_do_not_sign_in<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let alice = add_user(s, &root, "alice", UserRole::Member).await;
    s.register_passkey(&alice.scope(), new_passkey("AAAA", "laptop", 0))
        .await
        .unwrap();
    let p = SessionPolicy::default();
    let session = passkey_session(s, &alice).await;
    s.set_status(&root.admin(), alice.id(), UserStatus::Suspended)
        .await
        .unwrap();
    assert!(!signs_in(s, "AAAA").await);
    assert!(matches!(
        s.record_passkey_sign_in(used("AAAA", &alice, 0)).await,
        Err(Error::Unauthenticated)
    ));
    assert!(
        s.live_session(&session, &p).await.unwrap().is_none(),
        "suspension ends the passkey session"
    );
    // A suspended user registers nothing either.
    assert_not_found(
        s.register_passkey(&alice.scope(), new_passkey("BBBB", "phone", 0))
            .await,
    );
    s.set_status(&root.admin(), alice.id(), UserStatus::Active)
        .await
        .unwrap();
    assert!(signs_in(s, "AAAA").await);
    let session = passkey_session(s, &alice).await;
    s.delete_user(&root.admin(), alice.id()).await.unwrap();
    assert!(!signs_in(s, "AAAA").await);
    assert!(
        s.live_session(&session, &p).await.unwrap().is_none(),
        "deletion ends the passkey session"
    );
    // The row went with the user: the credential id is free again.
    s.register_passkey(&root.scope(), new_passkey("AAAA", "reused", 0))
        .await
        .unwrap();
}

pub async fn removing_a_passkey_ends_the_users_passkey_sessions_only<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let alice = add_user(s, &root, "alice", UserRole::Member).await;
    let p = SessionPolicy::default();
    s.register_passkey(&alice.scope(), new_passkey("AAAA", "laptop", 0))
        .await
        .unwrap();
    let by_passkey = passkey_session(s, &alice).await;
    let by_oidc = s
        .start_session(alice.id(), SessionMethod::Oidc, None, &p, &mut OsRandom)
        .await
        .unwrap()
        .key;
    let roots = passkey_session(s, &root).await;
    // Another owner cannot remove it, and nothing ends.
    assert_not_found(s.remove_passkey(&root.scope(), &cred("AAAA")).await);
    assert!(s.live_session(&by_passkey, &p).await.unwrap().is_some());
    s.remove_passkey(&alice.scope(), &cred("AAAA"))
        .await
        .unwrap();
    assert!(
        s.live_session(&by_passkey, &p).await.unwrap().is_none(),
        "the passkey session ended with the passkey"
    );
    assert!(
        s.live_session(&by_oidc, &p).await.unwrap().is_some(),
        "a session started another way stays"
    );
    assert!(
        s.live_session(&roots, &p).await.unwrap().is_some(),
        "another user's passkey session stays"
    );
    let events = s
        .list_events(AuditFilter::Owner(&alice.scope()), &PageRequest::default())
        .await
        .unwrap()
        .items;
    let removed = events
        .iter()
        .find(|e| e.action == AuditAction::PasskeyRemoved)
        .expect("passkey.removed");
    let details: serde_json::Value = serde_json::from_str(&removed.details).unwrap();
    assert_eq!(details["sessions_ended"], serde_json::json!(1));
    assert_chain(s).await;
}
