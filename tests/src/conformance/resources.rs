use ownership_core::authz::SystemScope;
use ownership_core::ids::{DeliveryId, ResourceId, SecretName};
use ownership_core::ports::{DeliveryState, NewResource, PageRequest, Store};
use ownership_core::token::TokenFamily;
use ownership_core::webhook::{EndpointUrl, HELD_BACK};
use ownership_core::{Error, UserRole, UserStatus};
use ownership_store::OsRandom;

use super::Ctx;
use super::support::*;
use super::users::sealed;

fn name(s: &str) -> SecretName {
    SecretName::parse(s).unwrap()
}

pub async fn secrets_are_scoped_to_their_owner<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let alice = add_user(s, &root, "alice", UserRole::Member).await;
    let bob = add_user(s, &root, "bob", UserRole::Member).await;
    s.put_secret(
        &alice.scope(),
        &name("OPENAI_KEY"),
        sealed(1),
        Some(sealed(11)),
    )
    .await
    .unwrap();
    s.put_secret(
        &bob.scope(),
        &name("OPENAI_KEY"),
        sealed(2),
        Some(sealed(12)),
    )
    .await
    .unwrap();
    assert_eq!(
        s.get_secret(&alice.scope(), &name("OPENAI_KEY"))
            .await
            .unwrap(),
        Some(sealed(1))
    );
    assert_eq!(
        s.get_secret(&bob.scope(), &name("OPENAI_KEY"))
            .await
            .unwrap(),
        Some(sealed(2))
    );
    assert_eq!(
        s.get_secret(&root.scope(), &name("OPENAI_KEY"))
            .await
            .unwrap(),
        None,
        "no fallback to another scope"
    );
    assert_eq!(s.data_key(&alice.scope()).await.unwrap(), Some(sealed(11)));
    let list = s.list_secrets(&alice.scope()).await.unwrap();
    assert_eq!(
        list.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
        vec!["OPENAI_KEY"]
    );
    // Overwrite keeps created_at, moves updated_at.
    cx.clock.advance(std::time::Duration::from_secs(5));
    let meta = s
        .put_secret(&alice.scope(), &name("OPENAI_KEY"), sealed(3), None)
        .await
        .unwrap();
    assert!(meta.updated_at > meta.created_at);
    assert_eq!(
        s.get_secret(&alice.scope(), &name("OPENAI_KEY"))
            .await
            .unwrap(),
        Some(sealed(3))
    );
    assert_not_found(s.delete_secret(&root.scope(), &name("OPENAI_KEY")).await);
    s.delete_secret(&alice.scope(), &name("OPENAI_KEY"))
        .await
        .unwrap();
    assert_not_found(s.delete_secret(&alice.scope(), &name("OPENAI_KEY")).await);
    assert_eq!(
        s.get_secret(&bob.scope(), &name("OPENAI_KEY"))
            .await
            .unwrap(),
        Some(sealed(2))
    );
}

pub async fn data_key_is_installed_once<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    assert_conflict(
        s.put_secret(&root.scope(), &name("A"), sealed(1), None)
            .await,
    );
    s.put_secret(&root.scope(), &name("A"), sealed(1), Some(sealed(10)))
        .await
        .unwrap();
    assert_conflict(
        s.put_secret(&root.scope(), &name("B"), sealed(2), Some(sealed(20)))
            .await,
    );
    assert_eq!(
        s.get_secret(&root.scope(), &name("B")).await.unwrap(),
        None,
        "nothing written on conflict"
    );
    assert_eq!(s.data_key(&root.scope()).await.unwrap(), Some(sealed(10)));
    let all = s.all_data_keys(&SystemScope::background()).await.unwrap();
    assert_eq!(all, vec![(oid("root"), sealed(10))]);
    // Rewrap replaces only a key that still matches what was read.
    let n = s
        .replace_data_keys(
            &SystemScope::background(),
            &[(oid("root"), sealed(99), sealed(30))],
        )
        .await
        .unwrap();
    assert_eq!(n, 0);
    let n = s
        .replace_data_keys(
            &SystemScope::background(),
            &[(oid("root"), sealed(10), sealed(30))],
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(s.data_key(&root.scope()).await.unwrap(), Some(sealed(30)));
}

/// Registers a resource of `who` granted `grants`.
pub(super) async fn resource<S: Store>(
    s: &S,
    who: &Signed,
    grants: &[&str],
) -> Result<(ownership_core::token::TokenSecret, ResourceId), Error> {
    let (secret, token) = fresh(TokenFamily::Resource);
    let id = ResourceId::generate(&mut OsRandom);
    let new = NewResource {
        id: id.clone(),
        kind: "job".into(),
        external_ref: Some("job-1".into()),
        grants: grants.iter().map(|g| name(g)).collect(),
        token,
    };
    s.create_resource(&who.scope(), new).await?;
    Ok((secret, id))
}

pub async fn resources_resolve_only_while_live<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let alice = add_user(s, &root, "alice", UserRole::Member).await;
    s.put_secret(&alice.scope(), &name("K"), sealed(1), Some(sealed(2)))
        .await
        .unwrap();
    let (secret, id) = resource(s, &alice, &["K"]).await.unwrap();
    let r = s.resolve_resource(&secret.digest()).await.unwrap().unwrap();
    assert_eq!(
        (r.id.clone(), r.owner_id.clone(), r.grants.clone()),
        (id.clone(), oid("alice"), vec![name("K")])
    );
    assert_eq!(s.get_resource(&alice.scope(), &id).await.unwrap(), r);
    assert_eq!(s.list_resources(&alice.scope()).await.unwrap().len(), 1);
    assert_not_found(s.get_resource(&root.scope(), &id).await);
    assert_not_found(s.revoke_resource(&root.scope(), &id).await);
    // A suspended creator's resources stop resolving.
    s.set_status(&root.admin(), &oid("alice"), UserStatus::Suspended)
        .await
        .unwrap();
    assert!(
        s.resolve_resource(&secret.digest())
            .await
            .unwrap()
            .is_none()
    );
    s.set_status(&root.admin(), &oid("alice"), UserStatus::Active)
        .await
        .unwrap();
    s.revoke_resource(&alice.scope(), &id).await.unwrap();
    assert!(
        s.resolve_resource(&secret.digest())
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.get_resource(&alice.scope(), &id)
            .await
            .unwrap()
            .revoked_at
            .is_some()
    );
    // A resource token is not a user token.
    assert!(s.authenticate(&secret.digest()).await.unwrap().is_none());
}

pub async fn resources_need_existing_grants<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let alice = add_user(s, &root, "alice", UserRole::Member).await;
    s.put_secret(&root.scope(), &name("ROOTS"), sealed(1), Some(sealed(2)))
        .await
        .unwrap();
    // Granting a secret that is only in another owner's scope fails.
    let r = resource(s, &alice, &["ROOTS"]).await;
    assert!(
        matches!(
            r,
            Err(Error::Invalid {
                field: "grants",
                ..
            })
        ),
        "got {r:?}"
    );
    assert!(s.list_resources(&alice.scope()).await.unwrap().is_empty());
}

pub async fn webhook_endpoints_and_deliveries<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let alice = add_user(s, &root, "alice", UserRole::Member).await;
    let sys = SystemScope::background();
    assert!(
        s.enqueue_delivery(
            &sys,
            &oid("alice"),
            DeliveryId::generate(&mut OsRandom),
            "token.issued",
            "{}"
        )
        .await
        .unwrap()
        .is_none()
    );
    s.put_endpoint(&alice.scope(), &hook_url(), sealed(1))
        .await
        .unwrap();
    let ep = s.get_endpoint(&alice.scope()).await.unwrap().unwrap();
    assert_eq!(
        (
            ep.url.as_str(),
            ep.secret.clone(),
            ep.previous_secret.clone()
        ),
        ("https://example.com/hook", sealed(1), None)
    );
    assert!(s.get_endpoint(&root.scope()).await.unwrap().is_none());
    let until = cx.clock_now() + std::time::Duration::from_secs(3600);
    let ep = s
        .rotate_endpoint_secret(&alice.scope(), sealed(2), until)
        .await
        .unwrap();
    assert_eq!(ep.secret, sealed(2));
    assert_eq!(
        ep.previous_secret,
        Some((sealed(1), ownership_core::audit::truncate_to_micros(until)))
    );
    let id = DeliveryId::generate(&mut OsRandom);
    let d = s
        .enqueue_delivery(&sys, &oid("alice"), id.clone(), "token.issued", "{\"a\":1}")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((d.state, d.attempts), (DeliveryState::Pending, 0));
    let due = s.due_deliveries(&sys, 10, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].0.id, id);
    let later = cx.clock_now() + std::time::Duration::from_secs(60);
    s.record_attempt(&sys, &id, DeliveryState::Pending, later, "503")
        .await
        .unwrap();
    assert!(
        s.due_deliveries(&sys, 10, 10).await.unwrap().is_empty(),
        "not due until later"
    );
    cx.clock.advance(std::time::Duration::from_secs(61));
    assert_eq!(s.due_deliveries(&sys, 10, 10).await.unwrap().len(), 1);
    s.record_attempt(&sys, &id, DeliveryState::Delivered, later, "200")
        .await
        .unwrap();
    let log = s
        .list_deliveries(&alice.scope(), &PageRequest::default())
        .await
        .unwrap();
    assert_eq!(
        (
            log.items[0].state,
            log.items[0].attempts,
            log.items[0].last_result.as_deref()
        ),
        (DeliveryState::Delivered, 2, Some("200"))
    );
    assert!(
        s.list_deliveries(&root.scope(), &PageRequest::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert_not_found(s.delete_endpoint(&root.scope()).await);
    s.delete_endpoint(&alice.scope()).await.unwrap();
    assert!(s.get_endpoint(&alice.scope()).await.unwrap().is_none());
}

/// Deliveries are listed newest first, ties on the enqueue time by id (descending), and
/// paging visits each exactly once; a cursor no page returned is refused.
pub async fn deliveries_page_newest_first_ties_by_id<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    s.put_endpoint(&root.scope(), &hook_url(), sealed(1))
        .await
        .unwrap();
    let sys = SystemScope::background();
    let mut ids = Vec::new();
    for i in 0..7 {
        // The clock stands still between advances: several deliveries share a time.
        if i % 3 == 0 {
            cx.clock.advance(std::time::Duration::from_secs(1));
        }
        let id = DeliveryId::generate(&mut OsRandom);
        s.enqueue_delivery(&sys, root.id(), id.clone(), "token.revoked", "{}")
            .await
            .unwrap()
            .expect("an endpoint exists");
        ids.push(id);
    }
    let mut listed = Vec::new();
    let mut page = PageRequest {
        after: None,
        limit: 3,
    };
    loop {
        let got = s.list_deliveries(&root.scope(), &page).await.unwrap();
        assert!(got.items.len() <= 3);
        listed.extend(got.items.iter().map(|d| (d.created_at, d.id.clone())));
        match got.next {
            Some(next) => page.after = Some(next),
            None => break,
        }
    }
    let mut expected = listed.clone();
    expected.sort_by(|a, b| b.cmp(a));
    assert_eq!(listed, expected, "newest first, ties by id");
    let mut listed_ids: Vec<_> = listed.into_iter().map(|(_, id)| id).collect();
    listed_ids.sort();
    ids.sort();
    assert_eq!(listed_ids, ids, "each delivery exactly once");
    let garbage = PageRequest {
        after: Some("garbage".into()),
        limit: 3,
    };
    assert!(matches!(
        s.list_deliveries(&root.scope(), &garbage).await,
        Err(Error::Invalid {
            field: "cursor",
            ..
        })
    ));
}

/// Due deliveries are taken in turns between owners, at most `per_owner` of each, so one
/// owner's long queue does not hide another's; a deferred owner's deliveries wait until
/// the time given, no attempt counted, and a later next attempt is not brought forward.
pub async fn due_deliveries_are_taken_in_turns_and_can_be_held_back<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let alice = add_user(s, &root, "alice", UserRole::Member).await;
    let bob = add_user(s, &root, "bob", UserRole::Member).await;
    for who in [&alice, &bob] {
        s.put_endpoint(&who.scope(), &hook_url(), sealed(1))
            .await
            .unwrap();
    }
    let sys = SystemScope::background();
    let queued = |owner: &'static str| {
        let (s, sys, clock) = (s, sys.clone(), cx.clock.clone());
        async move {
            let id = DeliveryId::generate(&mut OsRandom);
            s.enqueue_delivery(&sys, &oid(owner), id.clone(), "token.issued", "{}")
                .await
                .unwrap()
                .unwrap();
            clock.advance(std::time::Duration::from_secs(1));
            id
        }
    };
    let mut a = Vec::new();
    for _ in 0..5 {
        a.push(queued("alice").await);
    }
    let b = vec![queued("bob").await, queued("bob").await];
    let due = async |limit: u32, per_owner: u32| -> Vec<DeliveryId> {
        s.due_deliveries(&sys, limit, per_owner)
            .await
            .unwrap()
            .into_iter()
            .map(|(d, _)| d.id)
            .collect()
    };
    let turns = vec![a[0].clone(), b[0].clone(), a[1].clone(), b[1].clone()];
    assert_eq!(due(50, 2).await, turns);
    assert_eq!(due(2, 2).await, turns[..2]);
    assert_eq!(due(50, 1).await, turns[..2]);
    assert_eq!(due(50, 9).await.len(), 7);

    let later = cx.clock_now() + std::time::Duration::from_secs(3600);
    s.record_attempt(&sys, &a[0], DeliveryState::Pending, later, "timeout")
        .await
        .unwrap();
    let until = cx.clock_now() + std::time::Duration::from_secs(60);
    assert_eq!(
        s.defer_deliveries(&sys, &oid("alice"), until)
            .await
            .unwrap(),
        4,
        "the delivery due in an hour is not brought forward"
    );
    assert_eq!(due(50, 2).await, b);
    cx.clock.advance(std::time::Duration::from_secs(60));
    assert_eq!(
        due(50, 2).await,
        vec![a[1].clone(), b[0].clone(), a[2].clone(), b[1].clone()]
    );
    let log = s
        .list_deliveries(&alice.scope(), &PageRequest::default())
        .await
        .unwrap();
    let attempts: Vec<u32> = log.items.iter().map(|d| d.attempts).collect();
    assert_eq!(attempts, [0, 0, 0, 0, 1], "holding back counts no attempt");
    let results: Vec<Option<&str>> = log.items.iter().map(|d| d.last_result.as_deref()).collect();
    assert_eq!(
        results,
        [
            Some(HELD_BACK),
            Some(HELD_BACK),
            Some(HELD_BACK),
            Some(HELD_BACK),
            Some("timeout")
        ]
    );
    assert!(log.items.iter().all(|d| d.state == DeliveryState::Pending));
    assert_eq!(
        s.defer_deliveries(&sys, &oid("nobody"), until)
            .await
            .unwrap(),
        0
    );
}

fn hook_url() -> EndpointUrl {
    EndpointUrl::parse("https://example.com/hook").expect("a well-formed endpoint URL")
}
