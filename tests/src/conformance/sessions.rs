//! Console sessions kept in the store: started, read back, ended, bounded per user, timed
//! out, and ended with their user.

use std::time::Duration;

use ownership_core::UserRole;
use ownership_core::UserStatus;
use ownership_core::ports::Store;
use ownership_core::sessions::{SessionKey, SessionMethod, SessionPolicy, SessionToken};
use ownership_store::OsRandom;

use super::Ctx;
use super::support::*;

fn policy() -> SessionPolicy {
    SessionPolicy::default()
}

async fn start<S: Store>(s: &S, who: &Signed, method: SessionMethod) -> SessionKey {
    let token = (method == SessionMethod::Token).then(|| SessionToken {
        digest: who.secret.digest(),
        id: who.principal.token_id().clone(),
    });
    let started = s
        .start_session(who.id(), method, token, &policy(), &mut OsRandom)
        .await
        .unwrap();
    assert_eq!(SessionKey::of_secret(&started.secret), Some(started.key));
    started.key
}

pub async fn a_session_reads_back_with_its_user_and_ends_at_sign_out<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let alice = add_user(s, &root, "alice", UserRole::Member).await;
    let key = start(s, &alice, SessionMethod::Token).await;
    let live = s.live_session(&key, &policy()).await.unwrap().unwrap();
    assert_eq!(live.identity.owner_id(), alice.id());
    assert_eq!(live.identity.role(), UserRole::Member);
    assert_eq!(live.record.method, SessionMethod::Token);
    assert_eq!(
        live.record.token.as_ref().map(|t| &t.id),
        Some(alice.principal.token_id())
    );
    assert_eq!(
        live.record.expires_at,
        live.record.created_at + time::Duration::hours(12)
    );
    let oidc = start(s, &alice, SessionMethod::Oidc).await;
    assert!(
        s.live_session(&oidc, &policy())
            .await
            .unwrap()
            .unwrap()
            .record
            .token
            .is_none()
    );
    s.end_session(&key).await.unwrap();
    assert!(s.live_session(&key, &policy()).await.unwrap().is_none());
    assert!(s.live_session(&oidc, &policy()).await.unwrap().is_some());
    let unknown = SessionKey::of_secret("never-issued").unwrap();
    assert!(s.live_session(&unknown, &policy()).await.unwrap().is_none());
}

pub async fn a_token_sign_in_names_its_token_and_others_do_not<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    assert!(
        s.start_session(
            root.id(),
            SessionMethod::Token,
            None,
            &policy(),
            &mut OsRandom
        )
        .await
        .is_err()
    );
    let token = SessionToken {
        digest: root.secret.digest(),
        id: root.principal.token_id().clone(),
    };
    assert!(
        s.start_session(
            root.id(),
            SessionMethod::Passkey,
            Some(token),
            &policy(),
            &mut OsRandom
        )
        .await
        .is_err()
    );
    assert!(
        s.start_session(
            &oid("ghost"),
            SessionMethod::Oidc,
            None,
            &policy(),
            &mut OsRandom
        )
        .await
        .is_err(),
        "no session for a user who does not exist"
    );
}

pub async fn idle_and_absolute_timeouts_end_sessions<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let p = policy();
    let key = start(s, &root, SessionMethod::Oidc).await;
    // Active every 20 minutes: the idle timeout never bites, the 12 h lifetime does.
    let mut elapsed = Duration::ZERO;
    while elapsed + Duration::from_secs(20 * 60) < p.lifetime {
        cx.clock.advance(Duration::from_secs(20 * 60));
        elapsed += Duration::from_secs(20 * 60);
        assert!(
            s.live_session(&key, &p).await.unwrap().is_some(),
            "alive after {elapsed:?}"
        );
    }
    cx.clock.advance(p.lifetime - elapsed);
    assert!(
        s.live_session(&key, &p).await.unwrap().is_none(),
        "lifetime"
    );

    let key = start(s, &root, SessionMethod::Oidc).await;
    cx.clock.advance(p.idle - Duration::from_secs(1));
    assert!(s.live_session(&key, &p).await.unwrap().is_some());
    cx.clock.advance(p.idle);
    assert!(
        s.live_session(&key, &p).await.unwrap().is_none(),
        "idle, counted from the last request"
    );
    // An ended session stays ended.
    assert!(s.live_session(&key, &p).await.unwrap().is_none());
}

pub async fn last_seen_is_written_at_most_once_per_interval<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let p = policy();
    let key = start(s, &root, SessionMethod::Passkey).await;
    let first = s.live_session(&key, &p).await.unwrap().unwrap();
    cx.clock.advance(Duration::from_secs(30));
    let again = s.live_session(&key, &p).await.unwrap().unwrap();
    assert_eq!(
        again.record.last_seen_at, first.record.last_seen_at,
        "throttled"
    );
    cx.clock.advance(Duration::from_secs(31));
    s.live_session(&key, &p).await.unwrap().unwrap();
    let after = s.live_session(&key, &p).await.unwrap().unwrap();
    assert!(
        after.record.last_seen_at > first.record.last_seen_at,
        "written once due"
    );
}

pub async fn sessions_are_bounded_per_user_oldest_first<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let bob = add_user(s, &root, "bob", UserRole::Member).await;
    let p = SessionPolicy {
        per_user: 3,
        ..policy()
    };
    let mut keys = Vec::new();
    for _ in 0..5 {
        cx.clock.advance(Duration::from_secs(1));
        let started = s
            .start_session(root.id(), SessionMethod::Oidc, None, &p, &mut OsRandom)
            .await
            .unwrap();
        keys.push(started.key);
    }
    let bobs = start(s, &bob, SessionMethod::Oidc).await;
    let mut live = Vec::new();
    for k in &keys {
        live.push(s.live_session(k, &p).await.unwrap().is_some());
    }
    assert_eq!(live, vec![false, false, true, true, true]);
    assert!(
        s.live_session(&bobs, &p).await.unwrap().is_some(),
        "another user's sessions are not counted"
    );
}

pub async fn suspension_and_deletion_end_a_users_sessions<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let carol = add_user(s, &root, "carol", UserRole::Member).await;
    let dave = add_user(s, &root, "dave", UserRole::Member).await;
    let key = start(s, &carol, SessionMethod::Oidc).await;
    s.set_status(&root.admin(), carol.id(), UserStatus::Suspended)
        .await
        .unwrap();
    assert!(s.live_session(&key, &policy()).await.unwrap().is_none());
    s.set_status(&root.admin(), carol.id(), UserStatus::Active)
        .await
        .unwrap();
    assert!(
        s.live_session(&key, &policy()).await.unwrap().is_none(),
        "resuming the user does not revive the session"
    );
    assert!(
        s.start_session(
            carol.id(),
            SessionMethod::Oidc,
            None,
            &policy(),
            &mut OsRandom
        )
        .await
        .is_ok()
    );
    let key = start(s, &dave, SessionMethod::Passkey).await;
    s.delete_user(&root.admin(), dave.id()).await.unwrap();
    assert!(s.live_session(&key, &policy()).await.unwrap().is_none());
}

pub async fn a_rotated_token_moves_its_session<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let key = start(s, &root, SessionMethod::Token).await;
    let moved = SessionToken {
        digest: ownership_core::token::digest_of("own_u_elsewhere"),
        id: ownership_core::ids::TokenId::parse("tok_0123456789abcdef0123").unwrap(),
    };
    s.rebind_session(&key, moved.clone()).await.unwrap();
    let live = s.live_session(&key, &policy()).await.unwrap().unwrap();
    assert_eq!(live.record.token, Some(moved.clone()));
    let oidc = start(s, &root, SessionMethod::Oidc).await;
    assert!(
        s.rebind_session(&oidc, moved).await.is_err(),
        "a session not started with a token is never bound to one"
    );
}

pub async fn purging_deletes_only_sessions_that_are_over<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let p = policy();
    let old = start(s, &root, SessionMethod::Oidc).await;
    cx.clock.advance(p.idle + Duration::from_secs(1));
    let other = start(s, &root, SessionMethod::Oidc).await;
    assert!(
        s.live_session(&old, &p).await.unwrap().is_none(),
        "a sign-in deletes the sessions that are over"
    );
    cx.clock.advance(p.idle + Duration::from_secs(1));
    let fresh = s
        .start_session(
            root.id(),
            SessionMethod::Passkey,
            None,
            &SessionPolicy {
                idle: p.idle * 4,
                ..p
            },
            &mut OsRandom,
        )
        .await
        .unwrap()
        .key;
    assert_eq!(
        s.purge_sessions(&p).await.unwrap(),
        1,
        "the other one, idle"
    );
    assert!(s.live_session(&other, &p).await.unwrap().is_none());
    assert!(s.live_session(&old, &p).await.unwrap().is_none());
    assert!(s.live_session(&fresh, &p).await.unwrap().is_some());
}
