use ownership_core::audit::{AuditAction, ChainVerdict};
use ownership_core::authz::{Actor, AdminScope};
use ownership_core::ports::{AuditFilter, PageRequest, Store};
use ownership_core::{ChannelKey, Error, UserRole, UserStatus};

use super::Ctx;
use super::support::*;

pub async fn every_mutation_is_audited_in_order<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let alice = add_user(s, &root, "alice", UserRole::Member).await;
    let (_, id) = issue(s, &alice, "api").await;
    s.revoke_token(&alice.scope(), &id, None).await.unwrap();
    let tg = channel_scope(s, &root, "telegram").await;
    let (_, code) = request(s, &tg, "42").await;
    s.redeem_pairing(
        &alice.scope(),
        &channel("telegram"),
        &pairing_key().hash(&code),
    )
    .await
    .unwrap();
    s.unlink_identity(
        &alice.scope(),
        &ChannelKey::new(channel("telegram"), ext("42")),
    )
    .await
    .unwrap();
    s.set_role(&root.admin(), &oid("alice"), UserRole::Admin)
        .await
        .unwrap();
    s.set_status(&root.admin(), &oid("alice"), UserStatus::Suspended)
        .await
        .unwrap();
    s.set_status(&root.admin(), &oid("alice"), UserStatus::Active)
        .await
        .unwrap();
    s.delete_user(&root.admin(), &oid("alice")).await.unwrap();
    let page = s
        .list_events(
            AuditFilter::All(&root.admin()),
            &PageRequest {
                after: None,
                limit: 500,
            },
        )
        .await
        .unwrap();
    let mut actions: Vec<_> = page.items.iter().map(|e| e.action).collect();
    actions.reverse();
    assert_eq!(
        actions,
        vec![
            AuditAction::OwnerBootstrapped,
            AuditAction::UserCreated,
            AuditAction::TokenIssued,
            AuditAction::TokenRevoked,
            AuditAction::TokenIssued, // the channel adapter's service token
            AuditAction::PairingRequested,
            AuditAction::PairingApproved,
            AuditAction::IdentityUnlinked,
            AuditAction::UserRoleChanged,
            AuditAction::UserSuspended,
            AuditAction::UserResumed,
            AuditAction::UserDeleted,
        ]
    );
    let seqs: Vec<_> = page.items.iter().map(|e| e.seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] == w[1] + 1),
        "newest first, no gaps: {seqs:?}"
    );
    let deleted = &page.items[0];
    assert_eq!(deleted.actor, Actor::User(oid("root")));
    assert_eq!(deleted.owner, Some(oid("alice")));
    assert_eq!(deleted.target, "alice");
    let text = format!("{:?}", page.items);
    assert!(
        !text.contains(alice.secret.expose()) && !text.contains(code.as_str()),
        "no secrets in the audit log"
    );
    assert_chain(s).await;
}

pub async fn owners_read_their_own_events_and_admins_read_all<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let alice = add_user(s, &root, "alice", UserRole::Member).await;
    let bob = add_user(s, &root, "bob", UserRole::Member).await;
    for _ in 0..3 {
        issue(s, &alice, "api").await;
    }
    issue(s, &bob, "api").await;
    let mine = s
        .list_events(AuditFilter::Owner(&alice.scope()), &PageRequest::default())
        .await
        .unwrap();
    assert!(
        mine.items
            .iter()
            .all(|e| e.owner.as_ref() == Some(alice.id()))
    );
    assert_eq!(mine.items.len(), 4, "created + 3 issued");
    // Paging, newest first.
    let first = s
        .list_events(
            AuditFilter::All(&AdminScope::operator("t")),
            &PageRequest {
                after: None,
                limit: 2,
            },
        )
        .await
        .unwrap();
    assert_eq!(first.items.len(), 2);
    let next = first.next.clone().expect("more pages");
    let second = s
        .list_events(
            AuditFilter::All(&root.admin()),
            &PageRequest {
                after: Some(next),
                limit: 2,
            },
        )
        .await
        .unwrap();
    assert!(second.items[0].seq < first.items[1].seq);
    let _ = bob;
}

/// Drift fix: libSQL refused a cursor of 0 or below and PostgreSQL accepted it; the one
/// rule now lives in `ownership_core::audit::parse_cursor`.
pub async fn a_cursor_that_no_page_returned_is_refused<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let alice = add_user(s, &root, "alice", UserRole::Member).await;
    let (mine, all) = (alice.scope(), root.admin());
    for bad in ["0", "-1", "x", "1.5"] {
        let page = PageRequest {
            after: Some(bad.to_owned()),
            limit: 2,
        };
        for filter in [AuditFilter::Owner(&mine), AuditFilter::All(&all)] {
            let got = s.list_events(filter, &page).await;
            assert!(
                matches!(
                    got,
                    Err(Error::Invalid {
                        field: "cursor",
                        ..
                    })
                ),
                "cursor {bad:?}: {got:?}"
            );
        }
    }
}

pub async fn events_after_streams_oldest_first<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let alice = add_user(s, &root, "alice", UserRole::Member).await;
    let created = s.events_after(&alice.scope(), 0, 100).await.unwrap();
    assert_eq!(created.len(), 1);
    let last = created[0].seq;
    issue(s, &root, "api").await;
    issue(s, &alice, "api").await;
    issue(s, &alice, "api").await;
    let later = s.events_after(&alice.scope(), last, 100).await.unwrap();
    assert_eq!(later.len(), 2);
    assert!(
        later[0].seq < later[1].seq && later.iter().all(|e| e.owner.as_ref() == Some(alice.id()))
    );
    assert_eq!(
        s.events_after(&alice.scope(), last, 1).await.unwrap().len(),
        1
    );
}

pub async fn an_edited_chain_is_detected<S: Store>(cx: Ctx<S>) {
    // The stores' own tests edit rows directly; here: the verdict counts every event.
    let s = &*cx.store;
    let root = boot(s).await;
    issue(s, &root, "api").await;
    assert_eq!(
        s.verify_chain().await.unwrap(),
        ChainVerdict::Intact { events: 2 }
    );
}

/// A check resumed from a checkpoint covers what was appended since, and ends where a whole
/// walk does.
pub async fn a_resumed_check_covers_what_was_appended<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let (whole, cp) = s.verify_chain_from(None).await.unwrap();
    assert_eq!(whole, ChainVerdict::Intact { events: 1 });
    let cp = cp.expect("an intact chain has a checkpoint");
    assert_eq!((cp.seq, cp.events), (1, 1));
    issue(s, &root, "api").await;
    issue(s, &root, "api").await;
    let (resumed, next) = s.verify_chain_from(Some(cp)).await.unwrap();
    assert_eq!(resumed, ChainVerdict::Intact { events: 3 });
    assert_eq!(next.map(|c| (c.seq, c.events)), Some((3, 3)));
    assert_eq!(
        s.verify_chain_from(next).await.unwrap().0,
        ChainVerdict::Intact { events: 3 },
        "nothing new"
    );
    assert_eq!(
        s.verify_chain().await.unwrap(),
        resumed,
        "a whole walk agrees"
    );
    // A checkpoint that does not match the chain (here: a made-up hash) is a break.
    let forged = ownership_core::audit::ChainCheckpoint {
        hash: ownership_core::audit::ChainHash::from_bytes([9; 32]),
        ..cp
    };
    assert!(matches!(
        s.verify_chain_from(Some(forged)).await.unwrap().0,
        ChainVerdict::Broken { seq: 2, .. }
    ));
}

/// A user id reused after its account was deleted does not inherit the deleted account's
/// audit trail: member reads (the listing and the event stream) follow the account's
/// immutable identity; admin reads still see everything.
pub async fn a_recreated_user_does_not_inherit_the_audit_trail<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let old_bob = add_user(s, &root, "bob", UserRole::Member).await;
    let (_, old_token) = issue(s, &old_bob, "api").await;
    let old_events = s.events_after(&old_bob.scope(), 0, 100).await.unwrap();
    assert_eq!(old_events.len(), 2, "created + issued");
    let old_uid = old_events[0].owner_uid.clone();
    assert!(old_uid.is_some(), "events record the account's identity");
    s.delete_user(&root.admin(), &oid("bob")).await.unwrap();
    let new_bob = add_user(s, &root, "bob", UserRole::Member).await;
    let mine = s
        .list_events(
            AuditFilter::Owner(&new_bob.scope()),
            &PageRequest::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        mine.items.iter().map(|e| e.action).collect::<Vec<_>>(),
        vec![AuditAction::UserCreated],
        "the new bob sees only his own creation"
    );
    assert_ne!(mine.items[0].owner_uid, old_uid, "a new identity");
    let streamed = s.events_after(&new_bob.scope(), 0, 100).await.unwrap();
    assert_eq!(streamed.len(), 1);
    assert!(
        streamed
            .iter()
            .all(|e| e.target != old_token.to_string() && e.owner_uid != old_uid)
    );
    // An admin still reads the old account's events.
    let all = s
        .list_events(AuditFilter::All(&root.admin()), &PageRequest::default())
        .await
        .unwrap();
    assert!(
        all.items
            .iter()
            .any(|e| e.action == AuditAction::TokenIssued && e.target == old_token.to_string()),
        "the admin listing keeps the old bob's events"
    );
    assert!(
        all.items
            .iter()
            .any(|e| e.action == AuditAction::UserDeleted)
    );
}

/// The recorded head an export starts from is read in a read-only snapshot and names the
/// last event of the chain, linked under the key version of that event.
pub async fn the_recorded_head_names_the_last_event<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    add_user(s, &root, "alice", UserRole::Member).await;
    let head = s.recorded_head(&root.admin()).await.unwrap();
    let rows = s.chain_page(&root.admin(), 0, 500).await.unwrap();
    let last = rows.last().unwrap().as_ref().unwrap();
    assert_eq!((head.seq, head.hash), (last.seq, last.hash));
    assert_eq!(head.key_version, last.key_version);
}
