//! OpenID Connect links: the linking rule, one user per subject, sign-in by a link or by
//! an allow-listed verified email, and unlinking ending the user's provider sessions.

use ownership_core::oidc::OidcSubject;
use ownership_core::ports::{AuditFilter, PageRequest, Store};
use ownership_core::sessions::{SessionMethod, SessionPolicy};
use ownership_core::{Error, UserRole, UserStatus};
use ownership_store::OsRandom;

use super::Ctx;
use super::support::*;

fn sub(s: &str) -> OidcSubject {
    OidcSubject::parse("https://idp.example", s).unwrap()
}

pub async fn admins_link_members_and_themselves_owners_link_anyone<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let admin = add_user(s, &root, "ann", UserRole::Admin).await;
    let other = add_user(s, &root, "otto", UserRole::Admin).await;
    let member = add_user(s, &root, "mel", UserRole::Member).await;
    s.link_oidc(&admin.admin(), member.id(), &sub("m1"))
        .await
        .unwrap();
    s.link_oidc(&admin.admin(), admin.id(), &sub("a1"))
        .await
        .unwrap();
    assert!(matches!(
        s.link_oidc(&admin.admin(), other.id(), &sub("o1")).await,
        Err(Error::Forbidden(_))
    ));
    assert!(matches!(
        s.link_oidc(&admin.admin(), root.id(), &sub("r1")).await,
        Err(Error::Forbidden(_))
    ));
    s.link_oidc(&root.admin(), other.id(), &sub("o1"))
        .await
        .unwrap();
    assert!(
        matches!(
            s.link_oidc(&root.admin(), root.id(), &sub("m1")).await,
            Err(Error::Conflict(_))
        ),
        "a subject signs in as one user only"
    );
    assert!(matches!(
        s.link_oidc(&root.admin(), &oid("ghost"), &sub("g1")).await,
        Err(Error::NotFound)
    ));
    let links = s.oidc_links(&root.admin(), member.id()).await.unwrap();
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].subject, sub("m1"));
    assert_eq!(s.own_oidc_links(&admin.scope()).await.unwrap().len(), 1);
    assert!(matches!(
        s.oidc_links(&admin.admin(), other.id()).await,
        Err(Error::Forbidden(_))
    ));
    let events = s
        .list_events(AuditFilter::All(&root.admin()), &PageRequest::default())
        .await
        .unwrap();
    assert_eq!(
        events
            .items
            .iter()
            .filter(|e| e.action.as_str() == "oidc.linked")
            .count(),
        3
    );
}

pub async fn sign_in_follows_the_link_or_a_verified_allow_listed_email<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let bea = add_user(s, &root, "bea", UserRole::Member).await;
    s.link_oidc(&root.admin(), bea.id(), &sub("bea-sub"))
        .await
        .unwrap();
    assert_eq!(
        s.oidc_sign_in(&sub("bea-sub"), None)
            .await
            .unwrap()
            .as_ref(),
        Some(bea.id())
    );
    assert_eq!(
        s.oidc_sign_in(&sub("bea-sub"), Some(root.id()))
            .await
            .unwrap()
            .as_ref(),
        Some(bea.id()),
        "an existing link wins over the allow-list"
    );
    assert_eq!(s.oidc_sign_in(&sub("stranger"), None).await.unwrap(), None);
    // First sign-in of an allow-listed, verified email: linked, then found by its link.
    let cid = add_user(s, &root, "cid", UserRole::Member).await;
    assert_eq!(
        s.oidc_sign_in(&sub("cid-sub"), Some(cid.id()))
            .await
            .unwrap()
            .as_ref(),
        Some(cid.id())
    );
    assert_eq!(
        s.oidc_sign_in(&sub("cid-sub"), None)
            .await
            .unwrap()
            .as_ref(),
        Some(cid.id())
    );
    // Never to a suspended or missing user.
    let dee = add_user(s, &root, "dee", UserRole::Member).await;
    s.set_status(&root.admin(), dee.id(), UserStatus::Suspended)
        .await
        .unwrap();
    assert_eq!(
        s.oidc_sign_in(&sub("dee-sub"), Some(dee.id()))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        s.oidc_sign_in(&sub("x-sub"), Some(&oid("ghost")))
            .await
            .unwrap(),
        None
    );
    assert!(
        s.oidc_links(&root.admin(), dee.id())
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn unlinking_ends_the_users_provider_sessions_only<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let eve = add_user(s, &root, "eve", UserRole::Member).await;
    let p = SessionPolicy::default();
    s.link_oidc(&root.admin(), eve.id(), &sub("eve-sub"))
        .await
        .unwrap();
    let by_oidc = s
        .start_session(eve.id(), SessionMethod::Oidc, None, &p, &mut OsRandom)
        .await
        .unwrap()
        .key;
    let by_passkey = s
        .start_session(eve.id(), SessionMethod::Passkey, None, &p, &mut OsRandom)
        .await
        .unwrap()
        .key;
    assert!(
        matches!(
            s.unlink_oidc(&root.admin(), root.id(), &sub("eve-sub"))
                .await,
            Err(Error::NotFound)
        ),
        "a subject is unlinked only from its own user"
    );
    s.unlink_oidc(&root.admin(), eve.id(), &sub("eve-sub"))
        .await
        .unwrap();
    assert!(s.live_session(&by_oidc, &p).await.unwrap().is_none());
    assert!(s.live_session(&by_passkey, &p).await.unwrap().is_some());
    assert_eq!(s.oidc_sign_in(&sub("eve-sub"), None).await.unwrap(), None);
    assert!(matches!(
        s.unlink_oidc(&root.admin(), eve.id(), &sub("eve-sub"))
            .await,
        Err(Error::NotFound)
    ));
}
