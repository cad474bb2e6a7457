use ownership_core::authz::AdminScope;
use ownership_core::ports::{LegacyOutcome, NewToken, PageRequest, Store};
use ownership_core::token::TokenFamily;
use ownership_core::{Error, Identity, TokenKind, UserRole, UserStatus};

use super::Ctx;
use super::support::*;

pub async fn bootstrap_creates_the_first_owner_once<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    assert!(!s.has_owner().await.unwrap());
    let root = boot(s).await;
    assert!(s.has_owner().await.unwrap());
    assert_eq!(
        *root.principal.identity(),
        Identity::for_tests(oid("root"), UserRole::Owner)
    );
    assert!(
        root.principal.has_kind(&TokenKind::Manage) && root.principal.has_kind(&TokenKind::Api)
    );
    let (_, again) = new_token(None);
    assert_conflict(s.bootstrap_owner(&oid("other"), again).await);
}

pub async fn legacy_token_is_idempotent_and_replaced_when_changed<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let legacy = |v: &str| NewToken {
        fresh: ownership_core::ports::FreshToken {
            id: ownership_core::ids::TokenId::generate(&mut ownership_store::OsRandom),
            digest: ownership_core::token::digest_of(v),
            display_prefix: ownership_core::token::DisplayPrefix::parse("lega…").unwrap(),
        },
        label: Some(ownership_core::ids::Label::parse("legacy").unwrap()),
        expires_at: None,
    };
    assert_eq!(
        s.install_legacy_token(&oid("root"), legacy("legacy-one"))
            .await
            .unwrap(),
        LegacyOutcome::Installed
    );
    let p = s
        .authenticate(&ownership_core::token::digest_of("legacy-one"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p.identity().role(), UserRole::Owner);
    let events = s
        .list_events(
            ownership_core::ports::AuditFilter::All(&AdminScope::operator("t")),
            &PageRequest::default(),
        )
        .await
        .unwrap()
        .items
        .len();
    assert_eq!(
        s.install_legacy_token(&oid("root"), legacy("legacy-one"))
            .await
            .unwrap(),
        LegacyOutcome::Unchanged
    );
    let after = s
        .list_events(
            ownership_core::ports::AuditFilter::All(&AdminScope::operator("t")),
            &PageRequest::default(),
        )
        .await
        .unwrap()
        .items
        .len();
    assert_eq!(
        events, after,
        "an unchanged legacy token writes no audit event"
    );
    assert_eq!(
        s.install_legacy_token(&oid("root"), legacy("legacy-two"))
            .await
            .unwrap(),
        LegacyOutcome::Replaced
    );
    assert!(
        s.authenticate(&ownership_core::token::digest_of("legacy-one"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.authenticate(&ownership_core::token::digest_of("legacy-two"))
            .await
            .unwrap()
            .is_some()
    );
}

pub async fn create_user_issues_a_working_first_token<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let alice = add_user(s, &root, "alice", UserRole::Member).await;
    assert_eq!(
        *alice.principal.identity(),
        Identity::for_tests(oid("alice"), UserRole::Member)
    );
    let user = s.get_user(&root.admin(), &oid("alice")).await.unwrap();
    assert_eq!(
        (user.role, user.status),
        (UserRole::Member, UserStatus::Active)
    );
    let tokens = s.list_tokens(&alice.scope()).await.unwrap();
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0].kinds.to_csv(), "manage,api");
}

pub async fn duplicate_user_is_a_conflict<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    add_user(s, &root, "alice", UserRole::Member).await;
    let (_, t) = new_token(None);
    assert_conflict(
        s.create_user(&root.admin(), &oid("alice"), UserRole::Admin, t)
            .await,
    );
    let (_, t) = new_token(None);
    assert_conflict(
        s.create_user(&root.admin(), &oid("root"), UserRole::Member, t)
            .await,
    );
}

/// Both stores refuse a taken id with the same message (the HTTP API shows it), and the
/// refusal writes nothing: the existing user keeps their role and their one token.
pub async fn a_taken_user_id_is_refused_alike<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let alice = add_user(s, &root, "alice", UserRole::Member).await;
    let before = s
        .list_users(&root.admin(), &PageRequest::default())
        .await
        .unwrap();
    let (_, t) = new_token(None);
    match s
        .create_user(&root.admin(), &oid("alice"), UserRole::Admin, t)
        .await
    {
        Err(Error::Conflict(m)) => assert_eq!(m, "user `alice` already exists"),
        other => panic!("expected Conflict, got {other:?}"),
    }
    let after = s
        .list_users(&root.admin(), &PageRequest::default())
        .await
        .unwrap();
    assert_eq!(before, after);
    assert_eq!(s.list_tokens(&alice.scope()).await.unwrap().len(), 1);
}

pub async fn admin_cannot_create_or_manage_admins<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let admin = add_user(s, &root, "adm", UserRole::Admin).await;
    add_user(s, &root, "adm2", UserRole::Admin).await;
    add_user(s, &root, "mem", UserRole::Member).await;
    let (_, t) = new_token(None);
    assert_forbidden(
        s.create_user(&admin.admin(), &oid("x"), UserRole::Admin, t)
            .await,
    );
    assert_forbidden(
        s.set_role(&admin.admin(), &oid("adm2"), UserRole::Member)
            .await,
    );
    assert_forbidden(
        s.set_status(&admin.admin(), &oid("root"), UserStatus::Suspended)
            .await,
    );
    assert_forbidden(s.delete_user(&admin.admin(), &oid("adm2")).await);
    assert_forbidden(
        s.set_role(&admin.admin(), &oid("mem"), UserRole::Admin)
            .await,
    );
    // Admins do manage Members.
    s.set_status(&admin.admin(), &oid("mem"), UserStatus::Suspended)
        .await
        .unwrap();
    s.delete_user(&admin.admin(), &oid("mem")).await.unwrap();
    assert_not_found(s.get_user(&root.admin(), &oid("mem")).await);
}

pub async fn missing_users_are_not_found<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let a = root.admin();
    assert_not_found(s.get_user(&a, &oid("ghost")).await);
    assert_not_found(s.set_role(&a, &oid("ghost"), UserRole::Admin).await);
    assert_not_found(s.set_status(&a, &oid("ghost"), UserStatus::Suspended).await);
    assert_not_found(s.delete_user(&a, &oid("ghost")).await);
}

pub async fn users_are_listed_in_pages<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    for id in ["e", "b", "d", "a", "c"] {
        add_user(s, &root, id, UserRole::Member).await;
    }
    let mut seen = Vec::new();
    let mut page = PageRequest {
        after: None,
        limit: 2,
    };
    loop {
        let p = s.list_users(&root.admin(), &page).await.unwrap();
        assert!(p.items.len() <= 2);
        seen.extend(p.items.iter().map(|u| u.id.to_string()));
        match p.next {
            Some(next) => page.after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, ["a", "b", "c", "d", "e", "root"]);
}

pub async fn last_owner_is_never_demoted_suspended_or_deleted<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let _root = boot(s).await;
    let op = AdminScope::operator("tester");
    assert_conflict(s.set_role(&op, &oid("root"), UserRole::Admin).await);
    assert_conflict(s.set_status(&op, &oid("root"), UserStatus::Suspended).await);
    assert_conflict(s.delete_user(&op, &oid("root")).await);
    // With a second Owner, the first may go.
    let (_, t) = new_token(None);
    s.create_user(&op, &oid("second"), UserRole::Owner, t)
        .await
        .unwrap();
    s.set_role(&op, &oid("root"), UserRole::Admin)
        .await
        .unwrap();
    assert_conflict(s.delete_user(&op, &oid("second")).await);
    s.set_role(&op, &oid("root"), UserRole::Owner)
        .await
        .unwrap();
    s.delete_user(&op, &oid("second")).await.unwrap();
    let root = s.get_user(&op, &oid("root")).await.unwrap();
    assert_eq!(root.role, UserRole::Owner);
}

pub async fn nobody_changes_their_own_role<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let (_, t) = new_token(None);
    s.create_user(&root.admin(), &oid("o2"), UserRole::Owner, t)
        .await
        .unwrap();
    assert_forbidden(
        s.set_role(&root.admin(), &oid("root"), UserRole::Member)
            .await,
    );
    assert_forbidden(
        s.set_status(&root.admin(), &oid("root"), UserStatus::Suspended)
            .await,
    );
    assert_forbidden(s.delete_user(&root.admin(), &oid("root")).await);
}

pub async fn suspension_blocks_every_credential_until_resumed<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let alice = add_user(s, &root, "alice", UserRole::Member).await;
    let (api, _) = issue(s, &alice, "api").await;
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
    assert!(
        s.authenticate(&alice.secret.digest())
            .await
            .unwrap()
            .is_none()
    );
    assert!(s.authenticate(&api.digest()).await.unwrap().is_none());
    assert!(s.resolve_identity(&tg, &ext("42")).await.unwrap().is_none());
    s.set_status(&root.admin(), &oid("alice"), UserStatus::Active)
        .await
        .unwrap();
    assert!(s.authenticate(&api.digest()).await.unwrap().is_some());
    assert_eq!(
        s.resolve_identity(&tg, &ext("42"))
            .await
            .unwrap()
            .map(|i| i.owner_id().clone()),
        Some(oid("alice"))
    );
}

pub async fn role_change_shows_in_the_next_authentication<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let alice = add_user(s, &root, "alice", UserRole::Member).await;
    s.set_role(&root.admin(), &oid("alice"), UserRole::Admin)
        .await
        .unwrap();
    let p = s
        .authenticate(&alice.secret.digest())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p.identity().role(), UserRole::Admin);
}

pub async fn delete_user_removes_tokens_identities_and_secrets<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let alice = add_user(s, &root, "alice", UserRole::Member).await;
    let (api, _) = issue(s, &alice, "api").await;
    let tg = channel_scope(s, &root, "telegram").await;
    let (_, code) = request(s, &tg, "42").await;
    s.redeem_pairing(
        &alice.scope(),
        &channel("telegram"),
        &pairing_key().hash(&code),
    )
    .await
    .unwrap();
    let name = ownership_core::ids::SecretName::parse("KEY").unwrap();
    s.put_secret(&alice.scope(), &name, sealed(1), Some(sealed(9)))
        .await
        .unwrap();
    s.delete_user(&root.admin(), &oid("alice")).await.unwrap();
    assert!(
        s.authenticate(&alice.secret.digest())
            .await
            .unwrap()
            .is_none()
    );
    assert!(s.authenticate(&api.digest()).await.unwrap().is_none());
    assert!(s.resolve_identity(&tg, &ext("42")).await.unwrap().is_none());
    assert!(
        s.data_key(&alice.scope()).await.unwrap().is_none(),
        "data key destroyed"
    );
    assert!(s.get_secret(&alice.scope(), &name).await.unwrap().is_none());
    // The id can be used again, and starts empty.
    let again = add_user(s, &root, "alice", UserRole::Member).await;
    assert_eq!(s.list_tokens(&again.scope()).await.unwrap().len(), 1);
    assert!(s.list_identities(&again.scope()).await.unwrap().is_empty());
    let _ = TokenFamily::User;
}

/// A stand-in sealed value (the store keeps bytes; encryption is not its job).
pub fn sealed(tag: u8) -> ownership_core::ports::Sealed {
    ownership_core::ports::Sealed {
        nonce: [tag; 12],
        ciphertext: vec![tag; 40],
        key_version: 1,
    }
}

/// An Admin's scope was made when their request was authenticated; the Owner demotes them
/// to Member before their change is applied. The change is refused with the Forbidden a
/// Member gets, and nothing is written: the store re-reads the acting user's role inside
/// the transaction that applies the change.
pub async fn a_demoted_admin_keeps_no_powers<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let adm = add_user(s, &root, "adm", UserRole::Admin).await;
    add_user(s, &root, "mem", UserRole::Member).await;
    let stale = adm.admin();
    s.set_role(&root.admin(), &oid("adm"), UserRole::Member)
        .await
        .unwrap();
    let before = super::provision::events(s).await.len();
    let (_, t) = new_token(None);
    assert_forbidden(
        s.create_user(&stale, &oid("late"), UserRole::Member, t)
            .await,
    );
    assert_forbidden(
        s.set_status(&stale, &oid("mem"), UserStatus::Suspended)
            .await,
    );
    assert_forbidden(s.set_role(&stale, &oid("mem"), UserRole::Member).await);
    assert_forbidden(s.delete_user(&stale, &oid("mem")).await);
    assert_eq!(
        super::provision::events(s).await.len(),
        before,
        "a refused change writes nothing"
    );
    assert_not_found(s.get_user(&root.admin(), &oid("late")).await);
    let mem = s.get_user(&root.admin(), &oid("mem")).await.unwrap();
    assert_eq!(
        (mem.role, mem.status),
        (UserRole::Member, UserStatus::Active)
    );
    // Promoted again, the same stale scope works again: the role held now decides.
    s.set_role(&root.admin(), &oid("adm"), UserRole::Admin)
        .await
        .unwrap();
    s.set_status(&stale, &oid("mem"), UserStatus::Suspended)
        .await
        .unwrap();
}

/// An Owner demoted to Admin acts as an Admin (Members only); demoted to Member, as
/// nobody: in particular they no longer demote the remaining Owners.
pub async fn a_demoted_owner_acts_with_the_role_held_now<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let o2 = add_user(s, &root, "o2", UserRole::Owner).await;
    add_user(s, &root, "o3", UserRole::Owner).await;
    add_user(s, &root, "mem", UserRole::Member).await;
    let stale = o2.admin();
    assert_eq!(stale.role(), UserRole::Owner);
    s.set_role(&root.admin(), &oid("o2"), UserRole::Admin)
        .await
        .unwrap();
    let (_, t) = new_token(None);
    assert_forbidden(s.create_user(&stale, &oid("a2"), UserRole::Admin, t).await);
    assert_forbidden(s.set_role(&stale, &oid("o3"), UserRole::Member).await);
    assert_forbidden(
        s.set_status(&stale, &oid("o3"), UserStatus::Suspended)
            .await,
    );
    assert_forbidden(s.delete_user(&stale, &oid("o3")).await);
    assert_forbidden(s.set_role(&stale, &oid("mem"), UserRole::Admin).await);
    // What an Admin may do, they still may.
    let (_, t) = new_token(None);
    s.create_user(&stale, &oid("m2"), UserRole::Member, t)
        .await
        .unwrap();
    s.set_role(&root.admin(), &oid("o2"), UserRole::Member)
        .await
        .unwrap();
    assert_forbidden(s.set_role(&stale, &oid("root"), UserRole::Member).await);
    assert_forbidden(s.delete_user(&stale, &oid("m2")).await);
    for id in ["root", "o3"] {
        assert_eq!(
            s.get_user(&root.admin(), &oid(id)).await.unwrap().role,
            UserRole::Owner
        );
    }
    let by_o2 = super::provision::events(s)
        .await
        .into_iter()
        .filter(|e| e.actor == ownership_core::authz::Actor::User(oid("o2")))
        .count();
    assert_eq!(by_o2, 1, "only the Member creation as an Admin is o2's");
}

/// A suspended or deleted Admin's scope is refused too; the operator, who has no account,
/// is not affected.
pub async fn a_suspended_or_deleted_admin_keeps_no_powers<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let a1 = add_user(s, &root, "a1", UserRole::Admin).await;
    let a2 = add_user(s, &root, "a2", UserRole::Admin).await;
    add_user(s, &root, "mem", UserRole::Member).await;
    s.set_status(&root.admin(), &oid("a1"), UserStatus::Suspended)
        .await
        .unwrap();
    s.delete_user(&root.admin(), &oid("a2")).await.unwrap();
    for stale in [a1.admin(), a2.admin()] {
        let (_, t) = new_token(None);
        assert_forbidden(
            s.create_user(&stale, &oid("late"), UserRole::Member, t)
                .await,
        );
        assert_forbidden(s.delete_user(&stale, &oid("mem")).await);
    }
    let op = AdminScope::operator("tester");
    s.set_status(&op, &oid("mem"), UserStatus::Suspended)
        .await
        .unwrap();
    let (_, t) = new_token(None);
    s.create_user(&op, &oid("late"), UserRole::Owner, t)
        .await
        .unwrap();
}
