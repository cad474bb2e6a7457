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
        .owner_id()
        .clone();
    assert_eq!(owner, wins[0]);
    let mut rows = 0;
    for i in 0..32 {
        let who = oid(&format!("u{i}"));
        rows += s
            .list_identities(&ownership_core::authz::OwnerScope::own(
                &ownership_core::Identity::for_tests(who, UserRole::Member),
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
        let scope = root.rotator();
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

/// Eight rounds of one revocation racing sixteen rotations with a one-hour grace of the
/// same token, while a task keeps the clock moving (a microsecond a step). Whatever the
/// interleaving: once the revocation returned the token never authenticates again, no
/// rotation of it is audited after its revocation, it is audited as revoked once, at most
/// one rotation wins, and times never go backwards along the audit chain. A store that
/// read its clock before taking its write lock could apply a rotation that waited on
/// the lock after the revocation, with an earlier time that still saw the token live,
/// and move its revocation an hour into the future.
pub async fn revocation_racing_rotations_with_a_moving_clock_is_final<S: Store + 'static>(
    cx: Ctx<S>,
) {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use ownership_core::audit::AuditAction;
    use ownership_core::authz::AdminScope;
    use ownership_core::ports::{AuditFilter, PageRequest};

    let s = Arc::clone(&cx.store);
    let root = boot(&*s).await;
    let stop = Arc::new(AtomicBool::new(false));
    let ticker = {
        let clock = Arc::clone(&cx.clock);
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                clock.advance(Duration::from_micros(1));
                // On a timer, not in a spin: four of these spinning (one per backend, the
                // backends run in parallel) starved a 2-core machine until a write gave up
                // waiting for a pooled connection (`PoolTimedOut`), a flaky failure.
                tokio::time::sleep(Duration::from_micros(100)).await;
            }
        })
    };
    for _ in 0..8 {
        let (old, id) = issue(&*s, &root, "api").await;
        let mut set = JoinSet::new();
        for _ in 0..16 {
            let s = Arc::clone(&s);
            let scope = root.rotator();
            let id = id.clone();
            set.spawn(async move {
                let (_, f) = fresh(TokenFamily::User);
                match s
                    .rotate_token(&scope, &id, f, Some(Duration::from_secs(3600)))
                    .await
                {
                    Ok(_) => true,
                    Err(Error::NotFound) => false,
                    Err(e) => panic!("unexpected {e:?}"),
                }
            });
        }
        let revoker = {
            let s = Arc::clone(&s);
            let scope = root.scope();
            let id = id.clone();
            let old = old.clone();
            tokio::spawn(async move {
                s.revoke_token(&scope, &id, None).await.unwrap();
                // From here on the token is dead, while the rotations still run.
                for _ in 0..16 {
                    assert!(
                        s.authenticate(&old.digest()).await.unwrap().is_none(),
                        "a revoked token authenticated again"
                    );
                    tokio::task::yield_now().await;
                }
            })
        };
        let mut wins = 0;
        while let Some(r) = set.join_next().await {
            wins += usize::from(r.unwrap());
        }
        revoker.await.unwrap();
        assert!(wins <= 1, "at most one rotation wins, got {wins}");
        assert!(s.authenticate(&old.digest()).await.unwrap().is_none());
        let rec = s.get_token(&root.scope(), &id).await.unwrap();
        assert!(
            rec.revoked_at.is_some_and(|at| at <= cx.clock_now()),
            "the revocation is in the past: {:?}",
            rec.revoked_at
        );
    }
    stop.store(true, Ordering::SeqCst);
    ticker.await.unwrap();

    let op = AdminScope::operator("t");
    let mut events = Vec::new();
    let mut page = PageRequest {
        after: None,
        limit: 500,
    };
    loop {
        let p = s.list_events(AuditFilter::All(&op), &page).await.unwrap();
        events.extend(p.items);
        match p.next {
            Some(next) => page.after = Some(next),
            None => break,
        }
    }
    events.reverse();
    let mut revoked = std::collections::HashSet::new();
    for pair in events.windows(2) {
        assert!(
            pair[1].at >= pair[0].at,
            "audit times go backwards: event {} at {} after event {} at {}",
            pair[1].seq,
            pair[1].at,
            pair[0].seq,
            pair[0].at
        );
    }
    for e in &events {
        match e.action {
            AuditAction::TokenRevoked => {
                assert!(
                    revoked.insert(e.target.clone()),
                    "event {}: token {} revoked twice",
                    e.seq,
                    e.target
                );
            }
            AuditAction::TokenRotated => assert!(
                !revoked.contains(&e.target),
                "event {}: token {} rotated after its revocation",
                e.seq,
                e.target
            ),
            _ => {}
        }
    }
}

/// A rotation (with a one-hour grace) that had to wait for the store's write lock while
/// a revocation of the same token committed must see that revocation: it is NotFound and
/// the token stays revoked. On PostgreSQL this is forced deterministically: the case holds
/// the audit-head lock every mutation takes, starts the rotation, waits until PostgreSQL
/// reports it waiting for that lock, moves the clock on, revokes the token at the new time
/// in the lock-holding transaction and commits. A store that read its clock before taking
/// the lock would find the revocation still in its future, rotate, and push the
/// revocation an hour on, so the revoked token would authenticate again. On libSQL, whose
/// writes run one after the other on one thread (the clock read inside), the same
/// history is run in order.
pub async fn a_rotation_that_waited_for_the_lock_sees_the_revocation<S: Store + 'static>(
    cx: Ctx<S>,
) {
    use std::time::Duration;

    use ownership_store::postgres::PgStore;

    let s = Arc::clone(&cx.store);
    let root = boot(&*s).await;
    let (old, id) = issue(&*s, &root, "api").await;
    let grace = Some(Duration::from_secs(3600));
    let any: &dyn std::any::Any = &*s;
    let Some(pg) = any.downcast_ref::<PgStore>() else {
        cx.clock.advance(Duration::from_secs(1));
        s.revoke_token(&root.scope(), &id, None).await.unwrap();
        let (_, f) = fresh(TokenFamily::User);
        assert!(matches!(
            s.rotate_token(&root.rotator(), &id, f, grace).await,
            Err(Error::NotFound)
        ));
        assert!(s.authenticate(&old.digest()).await.unwrap().is_none());
        return;
    };
    let mut tx = pg.pool().begin().await.unwrap();
    // Fixture SQL outside the adapter: unnamed, so it also works behind PgBouncer.
    #[allow(clippy::disallowed_methods, reason = "fixture SQL, sent unnamed")]
    sqlx::query("SELECT seq FROM audit_head WHERE id = 1 FOR UPDATE")
        .persistent(false)
        .execute(&mut *tx)
        .await
        .unwrap();
    let rotation = {
        let s = Arc::clone(&s);
        let scope = root.rotator();
        let id = id.clone();
        tokio::spawn(async move {
            let (_, f) = fresh(TokenFamily::User);
            s.rotate_token(&scope, &id, f, grace).await
        })
    };
    // Until the rotation waits for the lock (a generous bound: the machine may be loaded).
    let waiting = "SELECT count(*) FROM pg_stat_activity \
                   WHERE datname = current_database() AND wait_event_type = 'Lock'";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while pg.query_count_for_tests(waiting).await.unwrap() < 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the rotation never waited for the lock"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cx.clock.advance(Duration::from_secs(1));
    let revoked_at = cx.clock_now();
    #[allow(clippy::disallowed_methods, reason = "fixture SQL, sent unnamed")]
    sqlx::query("UPDATE tokens SET revoked_at = $1 WHERE id = $2")
        .persistent(false)
        .bind(revoked_at)
        .bind(id.as_str())
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let rotated = rotation.await.unwrap();
    assert!(
        matches!(rotated, Err(Error::NotFound)),
        "a rotation applied after the revocation must not find the token live: {rotated:?}"
    );
    assert!(
        s.authenticate(&old.digest()).await.unwrap().is_none(),
        "the revoked token authenticates again"
    );
    assert_eq!(
        s.get_token(&root.scope(), &id).await.unwrap().revoked_at,
        Some(revoked_at)
    );
}

/// Owners' writes (token mints and revocations) and writes of no owner's rows (pairing
/// requests) run at once, some beside each other, while a reader tails every event after
/// the last number it saw, as the webhook worker does. Event numbers commit in order: no
/// event with a number the tail has passed commits after it passed, so the tail misses
/// none. A store that numbered a write beside others outside the commit-order lock would
/// let a smaller number commit late, and the tail would skip it for good.
pub async fn a_tail_of_every_event_misses_none<S: Store + 'static>(cx: Ctx<S>) {
    use std::collections::BTreeSet;
    use std::sync::atomic::{AtomicBool, Ordering};

    use ownership_core::authz::AdminScope;

    let s = Arc::clone(&cx.store);
    let root = boot(&*s).await;
    let tg = channel_scope(&*s, &root, "telegram").await;
    let mut users = Vec::new();
    for i in 0..8 {
        users.push(add_user(&*s, &root, &format!("t{i}"), UserRole::Member).await);
    }
    let operator = AdminScope::operator("conformance");
    let stop = Arc::new(AtomicBool::new(false));
    let tail = {
        let (s, stop, operator) = (Arc::clone(&s), Arc::clone(&stop), operator.clone());
        tokio::spawn(async move {
            let (mut seen, mut after) = (BTreeSet::new(), 0_i64);
            loop {
                let done = stop.load(Ordering::SeqCst);
                for row in s.chain_page(&operator, after, 500).await.unwrap() {
                    let seq = row.map_or_else(|seq| seq, |event| event.seq);
                    assert!(seq > after, "the tail moves forward");
                    seen.insert(seq);
                    after = seq;
                }
                if done {
                    return (seen, after);
                }
                tokio::task::yield_now().await;
            }
        })
    };
    let mut set = JoinSet::new();
    for (i, u) in users.into_iter().enumerate() {
        let s = Arc::clone(&s);
        let tg = tg.clone();
        set.spawn(async move {
            for round in 0..6 {
                let (_, id) = issue(&*s, &u, "api").await;
                request(&*s, &tg, &format!("{i}-{round}")).await;
                s.revoke_token(&u.scope(), &id, None).await.unwrap();
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    let (seen, after) = tail.await.unwrap();
    let mut all = BTreeSet::new();
    let mut cursor = 0;
    loop {
        let page = s.chain_page(&operator, cursor, 500).await.unwrap();
        let Some(last) = page.last() else { break };
        cursor = last.as_ref().map_or_else(|seq| *seq, |event| event.seq);
        all.extend(
            page.iter()
                .map(|row| row.as_ref().map_or_else(|seq| *seq, |e| e.seq)),
        );
    }
    let missed: Vec<_> = all
        .iter()
        .filter(|seq| **seq <= after && !seen.contains(seq))
        .collect();
    assert!(
        missed.is_empty(),
        "the tail passed these before they committed: {missed:?}"
    );
    assert_eq!(seen, all, "the tail saw every event");
    assert!(matches!(
        s.verify_chain().await.unwrap(),
        ChainVerdict::Intact { .. }
    ));
}
