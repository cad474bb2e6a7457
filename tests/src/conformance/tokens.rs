use std::time::Duration;

use ownership_core::authz::{MintPermit, OwnerScope, SystemScope};
use ownership_core::ids::TokenId;
use ownership_core::ports::{NewToken, Store, TokenLookup};
use ownership_core::token::{TokenFamily, digest_of};
use ownership_core::{Error, TokenKind, TokenKinds, UserRole, UserStatus};

use super::Ctx;
use super::support::*;

pub async fn issued_tokens_are_listed_newest_first_without_values<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    cx.clock.advance(Duration::from_secs(1));
    let (secret, id) = issue(s, &root, "api").await;
    let list = s.list_tokens(&root.scope()).await.unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].id, id, "newest first");
    assert_eq!(list[0].kinds.to_csv(), "api");
    assert_eq!(list[0].display_prefix, secret.display_prefix());
    assert!(
        !format!("{list:?}").contains(secret.expose()),
        "no token value in a listing"
    );
    let got = s.get_token(&root.scope(), &id).await.unwrap();
    assert_eq!(got, list[0]);
    let p = s.authenticate(&secret.digest()).await.unwrap().unwrap();
    assert_eq!(*p.token_id(), id);
    assert!(p.has_kind(&TokenKind::Api) && !p.has_kind(&TokenKind::Manage));
}

pub async fn unknown_digest_is_not_authenticated<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    boot(s).await;
    assert!(
        s.authenticate(&digest_of("own_u_nope"))
            .await
            .unwrap()
            .is_none()
    );
}

pub async fn another_owners_token_is_not_found<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let alice = add_user(s, &root, "alice", UserRole::Member).await;
    let (_, id) = issue(s, &alice, "api").await;
    // The root Owner's scope does not reach alice's tokens: no role bypasses ownership.
    assert_not_found(s.get_token(&root.scope(), &id).await);
    assert_not_found(s.revoke_token(&root.scope(), &id, None).await);
    let (_, f) = fresh(TokenFamily::User);
    assert_not_found(s.rotate_token(&root.rotator(), &id, f, None).await);
    assert_not_found(
        s.get_token(
            &alice.scope(),
            &TokenId::generate(&mut ownership_store::OsRandom),
        )
        .await,
    );
    assert!(
        s.authenticate(&alice.secret.digest())
            .await
            .unwrap()
            .is_some(),
        "still alive"
    );
}

pub async fn expired_token_is_refused<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let permit =
        MintPermit::for_self(&root.principal, TokenKinds::parse_csv("api").unwrap()).unwrap();
    let (secret, mut token) = new_token(None);
    token.expires_at = Some(cx.clock_now() + Duration::from_secs(60));
    s.issue_token(&permit, token).await.unwrap();
    let p = s.authenticate(&secret.digest()).await.unwrap().unwrap();
    assert!(p.expires_at().is_some());
    cx.clock.advance(Duration::from_secs(61));
    assert!(s.authenticate(&secret.digest()).await.unwrap().is_none());
}

/// `lookup` tells the refusals apart (for the authentication metrics) and agrees with
/// `authenticate`, which refuses them all alike.
pub async fn lookup_tells_refusals_apart<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let alice = add_user(s, &root, "alice", UserRole::Member).await;
    let unknown = digest_of("own_u_nope");
    assert_eq!(s.lookup(&unknown).await.unwrap(), TokenLookup::Unknown);

    let (live, live_id) = issue(s, &root, "api").await;
    match s.lookup(&live.digest()).await.unwrap() {
        TokenLookup::Live(p) => assert_eq!(*p.token_id(), live_id),
        other => panic!("live token: {other:?}"),
    }

    let (revoked, id) = issue(s, &root, "api").await;
    s.revoke_token(&root.scope(), &id, None).await.unwrap();
    assert_eq!(
        s.lookup(&revoked.digest()).await.unwrap(),
        TokenLookup::Revoked
    );

    let permit =
        MintPermit::for_self(&root.principal, TokenKinds::parse_csv("api").unwrap()).unwrap();
    let (expiring, mut token) = new_token(None);
    token.expires_at = Some(cx.clock_now() + Duration::from_secs(60));
    s.issue_token(&permit, token).await.unwrap();
    cx.clock.advance(Duration::from_secs(61));
    assert_eq!(
        s.lookup(&expiring.digest()).await.unwrap(),
        TokenLookup::Expired
    );

    s.set_status(&root.admin(), &oid("alice"), UserStatus::Suspended)
        .await
        .unwrap();
    assert_eq!(
        s.lookup(&alice.secret.digest()).await.unwrap(),
        TokenLookup::Inactive
    );

    for refused in [
        unknown,
        revoked.digest(),
        expiring.digest(),
        alice.secret.digest(),
    ] {
        assert!(s.authenticate(&refused).await.unwrap().is_none());
    }
    assert!(s.authenticate(&live.digest()).await.unwrap().is_some());
}

pub async fn rotation_without_grace_revokes_the_old_token_now<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let (old, id) = issue(s, &root, "api").await;
    let (new_secret, f) = fresh(TokenFamily::User);
    let rec = s.rotate_token(&root.rotator(), &id, f, None).await.unwrap();
    assert_eq!(rec.kinds.to_csv(), "api", "same kinds");
    assert_eq!(rec.label.as_deref(), Some("issued"), "same label");
    assert!(s.authenticate(&old.digest()).await.unwrap().is_none());
    assert_eq!(
        s.authenticate(&new_secret.digest())
            .await
            .unwrap()
            .unwrap()
            .token_id(),
        &rec.id
    );
}

pub async fn rotation_with_grace_keeps_the_old_token_until_it_ends<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let (old, id) = issue(s, &root, "api").await;
    let (new_secret, f) = fresh(TokenFamily::User);
    s.rotate_token(&root.rotator(), &id, f, Some(Duration::from_secs(300)))
        .await
        .unwrap();
    let p = s
        .authenticate(&old.digest())
        .await
        .unwrap()
        .expect("old token works during grace");
    assert!(
        p.expires_at().is_some(),
        "the grace end is the old token's expiry"
    );
    assert!(
        s.authenticate(&new_secret.digest())
            .await
            .unwrap()
            .is_some()
    );
    cx.clock.advance(Duration::from_secs(301));
    assert!(s.authenticate(&old.digest()).await.unwrap().is_none());
    // A token inside its grace period is no longer live for another rotation.
    let (_, f) = fresh(TokenFamily::User);
    assert_not_found(s.rotate_token(&root.rotator(), &id, f, None).await);
}

/// Drift fix: a grace period past the cap was refused as `grace` on libSQL and as
/// `grace_seconds` on PostgreSQL, and only the HTTP route capped it; the one rule now lives
/// in core (`tokens::MAX_ROTATION_GRACE`), refused as `grace_seconds` everywhere, with
/// nothing written.
pub async fn a_grace_past_the_cap_is_refused_alike<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let (old, id) = issue(s, &root, "api").await;
    let (new_secret, f) = fresh(TokenFamily::User);
    let too_long = ownership_core::tokens::MAX_ROTATION_GRACE + Duration::from_secs(1);
    let refused = s
        .rotate_token(&root.rotator(), &id, f, Some(too_long))
        .await;
    assert!(
        matches!(
            refused,
            Err(Error::Invalid {
                field: "grace_seconds",
                ..
            })
        ),
        "{refused:?}"
    );
    assert!(s.authenticate(&old.digest()).await.unwrap().is_some());
    assert!(
        s.authenticate(&new_secret.digest())
            .await
            .unwrap()
            .is_none()
    );
}

pub async fn rotating_a_revoked_token_is_not_found<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let (_, id) = issue(s, &root, "api").await;
    s.revoke_token(&root.scope(), &id, None).await.unwrap();
    let (_, f) = fresh(TokenFamily::User);
    assert_not_found(s.rotate_token(&root.rotator(), &id, f, None).await);
}

pub async fn revoke_with_the_wrong_kind_changes_nothing<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let (secret, id) = issue(s, &root, "manage").await;
    assert_conflict(
        s.revoke_token(&root.scope(), &id, Some(&TokenKind::Api))
            .await,
    );
    assert!(s.authenticate(&secret.digest()).await.unwrap().is_some());
    let rec = s
        .revoke_token(&root.scope(), &id, Some(&TokenKind::Manage))
        .await
        .unwrap();
    assert!(rec.revoked_at.is_some());
    assert!(s.authenticate(&secret.digest()).await.unwrap().is_none());
}

pub async fn revoke_twice_is_harmless_and_audited_once<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let (_, id) = issue(s, &root, "api").await;
    s.revoke_token(&root.scope(), &id, None).await.unwrap();
    cx.clock.advance(Duration::from_secs(1));
    let again = s.revoke_token(&root.scope(), &id, None).await.unwrap();
    assert!(again.revoked_at.is_some());
    let events = s
        .list_events(
            ownership_core::ports::AuditFilter::Owner(&root.scope()),
            &Default::default(),
        )
        .await
        .unwrap();
    let revokes = events
        .items
        .iter()
        .filter(|e| e.action == ownership_core::audit::AuditAction::TokenRevoked)
        .count();
    assert_eq!(revokes, 1);
}

pub async fn last_used_is_recorded_in_batches<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let (_, id) = issue(s, &root, "api").await;
    assert!(
        s.get_token(&root.scope(), &id)
            .await
            .unwrap()
            .last_used_at
            .is_none()
    );
    let at = cx.clock_now();
    s.record_last_used(
        &SystemScope::background(),
        &[(id.clone(), at), (root.principal.token_id().clone(), at)],
    )
    .await
    .unwrap();
    assert_eq!(
        s.get_token(&root.scope(), &id).await.unwrap().last_used_at,
        Some(at)
    );
    // Unknown ids in a batch are ignored.
    s.record_last_used(
        &SystemScope::background(),
        &[(TokenId::generate(&mut ownership_store::OsRandom), at)],
    )
    .await
    .unwrap();
}

pub async fn foreign_tokens_are_reported<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    boot(s).await;
    assert!(!s.has_foreign_tokens().await.unwrap());
    let (_, mut t) = new_token(None);
    t.fresh.digest = digest_of("plain-legacy-value");
    s.install_legacy_token(&oid("root"), t).await.unwrap();
    assert!(s.has_foreign_tokens().await.unwrap());
}

pub async fn tokens_for_a_suspended_owner_are_not_issued<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let alice = add_user(s, &root, "alice", UserRole::Member).await;
    s.set_status(&root.admin(), &oid("alice"), UserStatus::Suspended)
        .await
        .unwrap();
    let permit =
        MintPermit::for_self(&alice.principal, TokenKinds::parse_csv("api").unwrap()).unwrap();
    let (_, t): (_, NewToken) = new_token(None);
    assert_not_found(s.issue_token(&permit, t).await);
    let _ = OwnerScope::own(alice.principal.identity());
}

/// A service token is minted from the minter's role: an Admin demoted to Member after
/// their request was authenticated gets Forbidden and no token is stored; their own
/// tokens (a subset of their kinds) they still mint.
pub async fn service_tokens_need_the_role_at_mint_time<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let adm = add_user(s, &root, "adm", UserRole::Admin).await;
    let permit = MintPermit::service(
        &adm.principal,
        &adm.admin(),
        TokenKinds::parse_csv("verify").unwrap(),
    )
    .unwrap();
    s.set_role(&root.admin(), &oid("adm"), UserRole::Member)
        .await
        .unwrap();
    let (_, fresh_service) = fresh(TokenFamily::Service);
    assert_forbidden(
        s.issue_token(
            &permit,
            NewToken {
                fresh: fresh_service,
                label: None,
                expires_at: None,
            },
        )
        .await,
    );
    let tokens = s.list_tokens(&adm.scope()).await.unwrap();
    assert_eq!(tokens.len(), 1, "no service token was stored");
    issue(s, &adm, "api").await;
    // Suspended, nothing is minted at all.
    s.set_status(&root.admin(), &oid("adm"), UserStatus::Suspended)
        .await
        .unwrap();
    let own = MintPermit::for_self(&adm.principal, TokenKinds::parse_csv("api").unwrap()).unwrap();
    let (_, t) = new_token(None);
    assert_not_found(s.issue_token(&own, t).await);
}

/// Rotation with grace, then revocation, then another rotation with grace: the second
/// rotation is NotFound and leaves the revocation where it was; the token never
/// authenticates again; the token was revoked (and audited as revoked) once; and times
/// never go backwards along the audit chain.
pub async fn a_rotation_never_revives_a_revoked_token<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let (old, id) = issue(s, &root, "api").await;
    let hour = Duration::from_secs(3600);
    let (next, f) = fresh(TokenFamily::User);
    s.rotate_token(&root.rotator(), &id, f, Some(hour))
        .await
        .unwrap();
    assert!(s.authenticate(&old.digest()).await.unwrap().is_some());
    cx.clock.advance(Duration::from_secs(1));
    let revoked = s.revoke_token(&root.scope(), &id, None).await.unwrap();
    let revoked_at = revoked.revoked_at.expect("revoked");
    assert!(revoked_at <= cx.clock_now());
    assert!(s.authenticate(&old.digest()).await.unwrap().is_none());
    cx.clock.advance(Duration::from_secs(1));
    let (_, f) = fresh(TokenFamily::User);
    assert_not_found(s.rotate_token(&root.rotator(), &id, f, Some(hour)).await);
    let (_, f) = fresh(TokenFamily::User);
    assert_not_found(s.rotate_token(&root.rotator(), &id, f, None).await);
    assert!(s.authenticate(&old.digest()).await.unwrap().is_none());
    assert_eq!(
        s.get_token(&root.scope(), &id).await.unwrap().revoked_at,
        Some(revoked_at),
        "the revocation stays where it was"
    );
    s.revoke_token(&root.scope(), &id, None).await.unwrap();
    assert!(
        s.authenticate(&next.digest()).await.unwrap().is_some(),
        "the successor is untouched"
    );
    let events = s
        .list_events(
            ownership_core::ports::AuditFilter::Owner(&root.scope()),
            &ownership_core::ports::PageRequest {
                after: None,
                limit: 500,
            },
        )
        .await
        .unwrap()
        .items;
    let of_id = |action| {
        events
            .iter()
            .filter(|e| e.action == action && e.target == id.as_str())
            .count()
    };
    assert_eq!(of_id(ownership_core::audit::AuditAction::TokenRotated), 1);
    assert_eq!(of_id(ownership_core::audit::AuditAction::TokenRevoked), 1);
    // Newest first: each event's time is at or after the next (older) one's.
    for pair in events.windows(2) {
        assert!(
            pair[0].seq > pair[1].seq && pair[0].at >= pair[1].at,
            "audit times go backwards: {} at {} after {} at {}",
            pair[0].seq,
            pair[0].at,
            pair[1].seq,
            pair[1].at
        );
    }
}

/// Rotation is minting: a token that may not mint a kind may not rotate a token holding
/// it (issue: a `manage`-only token rotated an `api` token), and rotating a service token
/// needs the Admin or Owner role now (a demoted Admin rotated service tokens).
pub async fn rotation_follows_the_minting_rules<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let alice = add_user(s, &root, "alice", UserRole::Admin).await;
    // alice's manage-only token may not mint `api`, so it may not rotate an `api` token.
    let (manage_only, _) = issue(s, &alice, "manage").await;
    let manage_only = sign_in(s, manage_only).await;
    let (_, api_id) = issue(s, &alice, "api").await;
    let (_, f) = fresh(TokenFamily::User);
    assert!(matches!(
        s.rotate_token(
            &manage_only.rotator(),
            &api_id,
            f,
            Some(Duration::from_secs(60))
        )
        .await,
        Err(ownership_core::Error::Forbidden(_))
    ));
    // The full token may.
    let (_, f) = fresh(TokenFamily::User);
    s.rotate_token(&alice.rotator(), &api_id, f, None)
        .await
        .unwrap();
    // A service token alice minted as an Admin: once demoted, she may not rotate it.
    let kinds = TokenKinds::parse_csv("channel:telegram").unwrap();
    let permit = MintPermit::service(&alice.principal, &alice.admin(), kinds).unwrap();
    let (_, f) = fresh(TokenFamily::Service);
    let service = s
        .issue_token(
            &permit,
            NewToken {
                fresh: f,
                label: None,
                expires_at: None,
            },
        )
        .await
        .unwrap();
    s.set_role(&root.admin(), &oid("alice"), UserRole::Member)
        .await
        .unwrap();
    let (_, f) = fresh(TokenFamily::Service);
    assert!(matches!(
        s.rotate_token(&alice.rotator(), &service.id, f, None).await,
        Err(ownership_core::Error::Forbidden(_))
    ));
    let still = s.get_token(&alice.scope(), &service.id).await.unwrap();
    assert!(
        still.revoked_at.is_none(),
        "a refused rotation changes nothing"
    );
}

/// A minted token never outlives the token that minted it, and a mint or rotation whose
/// minting token was revoked meanwhile fails inside the transaction.
pub async fn what_a_token_mints_is_bound_by_its_expiry_and_revocation<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    // A token that expires in 60 s mints one asking for no expiry: it ends with its minter.
    let permit = MintPermit::for_self(
        &root.principal,
        TokenKinds::parse_csv("manage,api").unwrap(),
    )
    .unwrap();
    let (short, mut token) = new_token(None);
    let ends = cx.clock_now() + Duration::from_secs(60);
    token.expires_at = Some(ends);
    s.issue_token(&permit, token).await.unwrap();
    let short = sign_in(s, short).await;
    let (child, _) = issue(s, &short, "api").await;
    let child = s.authenticate(&child.digest()).await.unwrap().unwrap();
    assert_eq!(child.expires_at(), Some(ends));
    // Its rotation successor too.
    let (_, api_id) = issue(s, &short, "api").await;
    let (_, f) = fresh(TokenFamily::User);
    let rotated = s
        .rotate_token(&short.rotator(), &api_id, f, None)
        .await
        .unwrap();
    assert_eq!(rotated.expires_at, Some(ends));
    // Revoked after it authenticated (its principal still in hand): minting and rotating
    // with it fail, and nothing is written.
    let before = s.list_tokens(&root.scope()).await.unwrap().len();
    s.revoke_token(&root.scope(), short.principal.token_id(), None)
        .await
        .unwrap();
    let permit =
        MintPermit::for_self(&short.principal, TokenKinds::parse_csv("api").unwrap()).unwrap();
    let (_, token) = new_token(None);
    assert!(matches!(
        s.issue_token(&permit, token).await,
        Err(ownership_core::Error::Unauthenticated)
    ));
    let (_, f) = fresh(TokenFamily::User);
    assert!(matches!(
        s.rotate_token(&short.rotator(), &rotated.id, f, None).await,
        Err(ownership_core::Error::Unauthenticated)
    ));
    assert_eq!(s.list_tokens(&root.scope()).await.unwrap().len(), before);
}
