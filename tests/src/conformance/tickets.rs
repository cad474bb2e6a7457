//! Stream tickets: single-use, expiring, bound to the token that minted them.

use std::time::Duration;

use ownership_core::Error;
use ownership_core::authz::Principal;
use ownership_core::ports::Store;
use ownership_core::tickets::{TICKET_TTL, mint_ticket, redeem_ticket};
use ownership_core::{UserRole, token::digest_of};
use ownership_store::OsRandom;

use super::Ctx;
use super::support::*;

fn refused<T: std::fmt::Debug>(r: Result<T, Error>) {
    assert!(matches!(r, Err(Error::Unauthenticated)), "{r:?}");
}

/// A ticket is taken once; a second take, an expired one, a look-alike and garbage are
/// refused alike. It names its minter and the token it stands for.
pub async fn a_ticket_works_once_and_expires<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let alice = add_user(s, &root, "alice", UserRole::Member).await;
    let token = alice.secret.digest();
    let ticket = mint_ticket(s, &alice.principal, token, TICKET_TTL, &mut OsRandom)
        .await
        .unwrap();
    assert_eq!(ticket.expires_at, cx.clock_now() + TICKET_TTL);
    let row = redeem_ticket(s, &ticket.value).await.unwrap();
    assert_eq!((&row.owner, row.token), (alice.id(), token));
    assert_eq!(row.digest, digest_of(&ticket.value));
    refused(redeem_ticket(s, &ticket.value).await);

    let late = mint_ticket(s, &alice.principal, token, TICKET_TTL, &mut OsRandom)
        .await
        .unwrap();
    cx.clock.advance(TICKET_TTL);
    refused(redeem_ticket(s, &late.value).await);
    refused(redeem_ticket(s, "ticket_garbage").await);
    refused(redeem_ticket(s, alice.secret.expose()).await);
}

/// A ticket never outlives the token that minted it.
pub async fn a_ticket_ends_with_its_token<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let soon = cx.clock_now() + Duration::from_secs(10);
    let p = &root.principal;
    let principal = Principal::for_tests(
        p.identity().clone(),
        p.token_id().clone(),
        p.kinds().clone(),
        Some(soon),
    );
    let ticket = mint_ticket(
        s,
        &principal,
        root.secret.digest(),
        TICKET_TTL,
        &mut OsRandom,
    )
    .await
    .unwrap();
    assert_eq!(ticket.expires_at, soon);
    cx.clock.advance(Duration::from_secs(10));
    refused(redeem_ticket(s, &ticket.value).await);
}
