//! Static user-token tables (docs/tokens.md, `OWNERSHIP_USER_TOKENS` / `ownership users import`):
//! parsed and validated by `ownership_core::provision`, applied by each backend in one
//! transaction through `ownership_core::service::provision`.

use ownership_core::audit::{AuditAction, AuditEvent};
use ownership_core::authz::{Actor, AdminScope};
use ownership_core::ports::{AuditFilter, PageRequest, Store, TokenOrigin};
use ownership_core::provision::ProvisionPlan;
use ownership_core::service;
use ownership_core::token::digest_of;
use ownership_core::{Error, TokenKinds, UserRole, UserStatus};
use serde_json::{Value, json};

use super::Ctx;
use super::support::*;

fn operator() -> AdminScope {
    AdminScope::operator("tester")
}

/// Applies a table as the operator.
async fn apply<S: Store>(s: &S, table: &Value) -> Result<ProvisionPlan, Error> {
    service::provision(s, &operator(), &table.to_string(), false).await
}

/// Every audit event, oldest first (the operator's view, page by page).
pub(super) async fn events<S: Store>(s: &S) -> Vec<AuditEvent> {
    let mut out = Vec::new();
    let mut page = PageRequest {
        after: None,
        limit: 500,
    };
    loop {
        let p = s
            .list_events(AuditFilter::All(&operator()), &page)
            .await
            .unwrap();
        out.extend(p.items);
        match p.next {
            Some(next) => page.after = Some(next),
            None => break,
        }
    }
    out.reverse();
    out
}

/// Every user id and role.
async fn users<S: Store>(s: &S) -> Vec<(String, UserRole)> {
    s.list_users(
        &operator(),
        &PageRequest {
            after: None,
            limit: 500,
        },
    )
    .await
    .unwrap()
    .items
    .into_iter()
    .map(|u| (u.id.to_string(), u.role))
    .collect()
}

/// The identity a raw token authenticates as (foreign tokens allowed), if any.
async fn who<S: Store>(s: &S, raw: &str) -> Option<(String, UserRole, String)> {
    match service::authenticate(s, raw, true).await {
        Ok(p) => Some((
            p.identity().owner_id().to_string(),
            p.identity().role(),
            p.kinds().to_csv(),
        )),
        Err(Error::Unauthenticated) => None,
        Err(e) => panic!("authenticate failed: {e}"),
    }
}

fn who_is(user: &str, role: UserRole, kinds: &str) -> Option<(String, UserRole, String)> {
    Some((user.to_owned(), role, kinds.to_owned()))
}

/// The source's table: one operator acting as several users by swapping the token.
fn source_table() -> Value {
    json!([
        {"token": "director-local-token-1", "user_id": "director@", "role": "admin"},
        {"token": "bob-local-token-000001", "user_id": "bob"},
        {"token": "carol-local-token-0001", "user_id": "carol", "role": "Member",
         "kinds": ["api"], "label": "carol's laptop"},
        {"token": "eng-local-token-000001", "user_id": "engineering@", "role": "member"},
        {"token": "root-local-token-00001", "user_id": "root", "role": "owner"},
    ])
}

pub async fn tokens_map_to_users_and_roles<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let plan = apply(s, &source_table()).await.unwrap();
    assert_eq!(plan.users_created.len(), 5);
    assert_eq!(plan.tokens_added.len(), 5);
    assert_eq!(
        who(s, "director-local-token-1").await,
        who_is("director@", UserRole::Admin, "manage,api")
    );
    assert_eq!(
        who(s, "bob-local-token-000001").await,
        who_is("bob", UserRole::Member, "manage,api")
    );
    assert_eq!(
        who(s, "carol-local-token-0001").await,
        who_is("carol", UserRole::Member, "api")
    );
    assert_eq!(
        who(s, "root-local-token-00001").await,
        who_is("root", UserRole::Owner, "manage,api")
    );
    // Unknown, empty and near-miss tokens are refused.
    assert_eq!(who(s, "nobody-local-token-01").await, None);
    assert_eq!(who(s, "bob-local-token-00000").await, None);
    assert_eq!(who(s, "").await, None);
    assert_eq!(who(s, "bob-local-token-000001 ").await, None);

    // Stored as provisioned digests, listed like any token (never the value).
    let carol = sign_in(s, foreign("carol-local-token-0001")).await;
    let tokens = s.list_tokens(&carol.scope()).await.unwrap();
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0].origin, TokenOrigin::Provisioned);
    assert_eq!(tokens[0].label.as_deref(), Some("carol's laptop"));
    assert_eq!(tokens[0].display_prefix, "caro…");
    assert_eq!(tokens[0].id, plan.tokens_added[2].token_id);

    // Every change is audited under the operator, never with a token value.
    let events = events(s).await;
    assert_eq!(events.len(), 10);
    assert!(
        events
            .iter()
            .all(|e| e.actor == Actor::Operator("tester".into()))
    );
    let created = events
        .iter()
        .filter(|e| e.action == AuditAction::UserCreated)
        .count();
    let provisioned = events
        .iter()
        .filter(|e| e.action == AuditAction::TokenProvisioned)
        .count();
    assert_eq!((created, provisioned), (5, 5));
    for e in &events {
        assert!(!e.details.contains("local-token"), "{e:?}");
        assert!(!e.target.contains("local-token"), "{e:?}");
    }
}

/// A foreign token value as a `TokenSecret`.
fn foreign(raw: &str) -> ownership_core::token::TokenSecret {
    ownership_core::token::classify(raw)
        .expect("a valid foreign token")
        .into_secret()
}

pub async fn role_defaults_to_member<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    apply(
        s,
        &json!([{"token": "plain-user-token-0001-Kq7Zp2Xw9Rt4Vb8Lm", "user_id": "plain"}]),
    )
    .await
    .unwrap();
    assert_eq!(
        who(s, "plain-user-token-0001-Kq7Zp2Xw9Rt4Vb8Lm").await,
        who_is("plain", UserRole::Member, "manage,api")
    );
    assert_eq!(users(s).await, [("plain".to_owned(), UserRole::Member)]);
}

pub async fn refusals_name_the_entry_never_the_token_and_write_nothing<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let before = events(s).await.len();
    let secret = "Very-Secret-Token-Value-42";
    let ok = json!({"token": "fine-token-0000000001-Kq7Zp2Xw9Rt4Vb8Lm", "user_id": "fine"});
    let cases: Vec<(String, &str)> = vec![
        ("[]".into(), "the table is empty"),
        (
            json!([ok, {"token": "", "user_id": "a"}]).to_string(),
            "entry 1: empty token",
        ),
        (
            json!([ok, {"token": secret, "user_id": "a"}, {"token": secret, "user_id": "b"}])
                .to_string(),
            "entry 2: duplicate token (the same value as entry 1)",
        ),
        (
            json!([ok, {"token": secret, "user_id": "system"}]).to_string(),
            "entry 1: invalid `user_id`",
        ),
        (
            json!([ok, {"token": secret, "user_id": "x", "role": "superuser"}]).to_string(),
            "entry 1: unknown role",
        ),
        (
            json!([ok, {"token": secret, "user_id": "x", "kinds": ["api", "admin"]}]).to_string(),
            "entry 1: unknown kind at position 1",
        ),
        (
            json!([ok, {"token": secret, "user_id": "x", "extra": true}]).to_string(),
            "entry 1: unknown field",
        ),
        (
            json!([{"token": secret, "user_id": "x", "role": "admin"},
                   {"token": "x-second-token-01-Kq7Zp2Xw9Rt4Vb8Lm", "user_id": "x", "role": "owner"}])
            .to_string(),
            "entry 1: user `x` is given role `owner` here but `admin` in entry 0",
        ),
        (
            format!(r#"[{{"token": "{secret}", "user_id": 7 7}}]"#),
            "malformed JSON at line 1",
        ),
        (format!(r#"[{{"token": "{secret}"#), "the JSON ends early"),
        (json!(secret).to_string(), "must be a JSON array"),
    ];
    for (table, needle) in cases {
        let e = service::provision(s, &operator(), &table, false)
            .await
            .unwrap_err();
        let message = e.to_string();
        assert!(
            matches!(
                e,
                Error::Invalid {
                    field: "user_tokens",
                    ..
                }
            ),
            "{message}"
        );
        assert!(message.contains(needle), "{message} (wanted {needle})");
        assert!(
            !message.contains(secret),
            "the message quotes a token: {message}"
        );
        // A dry run refuses the same way.
        assert!(
            service::provision(s, &operator(), &table, true)
                .await
                .is_err()
        );
    }
    assert_eq!(
        events(s).await.len(),
        before,
        "a refused table wrote events"
    );
    assert_eq!(users(s).await, [("root".to_owned(), UserRole::Owner)]);
    assert!(!s.has_foreign_tokens().await.unwrap());

    // Only the operator provisions: an Owner's own scope is refused.
    let e = service::provision(s, &root.admin(), &source_table().to_string(), false)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Forbidden(_)), "{e:?}");
    assert_eq!(events(s).await.len(), before);
}

pub async fn reapplying_the_same_table_writes_nothing<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let first = apply(s, &source_table()).await.unwrap();
    assert!(!first.is_empty());
    let after_first = events(s).await;
    for _ in 0..2 {
        let again = apply(s, &source_table()).await.unwrap();
        assert!(again.is_empty(), "{again:?}");
        assert_eq!(again.tokens_unchanged, 5);
        assert_eq!(
            events(s).await,
            after_first,
            "an unchanged table wrote events"
        );
    }
    // Key order, whitespace and the case of roles do not matter.
    let reordered = json!([
        {"user_id": "director@", "token": "director-local-token-1", "role": "ADMIN"},
        {"user_id": "bob", "token": "bob-local-token-000001", "role": null},
        {"label": "carol's laptop", "kinds": ["api"], "user_id": "carol",
         "token": "carol-local-token-0001"},
        {"token": "eng-local-token-000001", "user_id": "engineering@"},
        {"token": "root-local-token-00001", "user_id": "root", "role": "Owner"},
    ]);
    assert!(apply(s, &reordered).await.unwrap().is_empty());
    assert_eq!(events(s).await, after_first);
}

pub async fn a_removed_entry_is_refused_right_after_apply<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    apply(s, &source_table()).await.unwrap();
    assert!(who(s, "bob-local-token-000001").await.is_some());
    let bob_token = sign_in(s, foreign("bob-local-token-000001"))
        .await
        .principal;

    let without_bob = json!([
        {"token": "director-local-token-1", "user_id": "director@", "role": "admin"},
        {"token": "carol-local-token-0001", "user_id": "carol", "kinds": ["api"],
         "label": "carol's laptop"},
        {"token": "eng-local-token-000001", "user_id": "engineering@"},
        {"token": "root-local-token-00001", "user_id": "root", "role": "owner"},
    ]);
    let plan = apply(s, &without_bob).await.unwrap();
    assert_eq!(plan.tokens_revoked.len(), 1);
    assert_eq!(plan.tokens_revoked[0].token_id, *bob_token.token_id());
    assert_eq!(plan.tokens_revoked[0].user_id, oid("bob"));
    assert!(plan.users_created.is_empty() && plan.tokens_added.is_empty());
    assert_eq!(plan.tokens_unchanged, 4);

    assert_eq!(who(s, "bob-local-token-000001").await, None);
    assert!(who(s, "carol-local-token-0001").await.is_some());
    // The user stays (a table manages tokens and roles, it does not delete accounts).
    assert!(users(s).await.iter().any(|(id, _)| id == "bob"));
    let last = events(s).await.pop().unwrap();
    assert_eq!(last.action, AuditAction::TokenRevoked);
    assert_eq!(last.target, bob_token.token_id().as_str());
    assert_eq!(last.details, r#"{"provisioned":true}"#);
    assert!(apply(s, &without_bob).await.unwrap().is_empty());

    // A revoked credential is never revived: putting it back keeps it revoked, reports the
    // entry, and applies the rest (a revocation never stops a start).
    let plan = apply(s, &source_table()).await.unwrap();
    assert_eq!(plan.tokens_kept_revoked.len(), 1);
    assert_eq!(plan.tokens_kept_revoked[0].entry, 1);
    assert_eq!(plan.tokens_kept_revoked[0].token_id, *bob_token.token_id());
    assert!(plan.is_empty(), "nothing written for it");
    assert!(!format!("{plan:?}").contains("bob-local-token"));
    assert_eq!(who(s, "bob-local-token-000001").await, None);
}

pub async fn a_role_change_and_a_kinds_change_apply<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    apply(s, &source_table()).await.unwrap();
    let carol_before = sign_in(s, foreign("carol-local-token-0001"))
        .await
        .principal;
    let mut table = source_table();
    table[1]["role"] = json!("admin");
    table[2]["kinds"] = json!(["api", "verify"]);
    table[2]["label"] = json!("renamed");
    let plan = apply(s, &table).await.unwrap();
    assert_eq!(plan.roles_changed.len(), 1);
    assert_eq!(
        (
            plan.roles_changed[0].user_id.as_str(),
            plan.roles_changed[0].from,
            plan.roles_changed[0].to
        ),
        ("bob", UserRole::Member, UserRole::Admin)
    );
    assert_eq!(plan.tokens_updated.len(), 1);
    assert_eq!(plan.tokens_updated[0].token_id, *carol_before.token_id());
    assert!(plan.tokens_added.is_empty() && plan.tokens_revoked.is_empty());

    assert_eq!(
        who(s, "bob-local-token-000001").await,
        who_is("bob", UserRole::Admin, "manage,api")
    );
    assert_eq!(
        who(s, "carol-local-token-0001").await,
        who_is("carol", UserRole::Member, "api,verify")
    );
    let carol = sign_in(s, foreign("carol-local-token-0001")).await;
    assert_eq!(
        carol.principal.token_id(),
        carol_before.token_id(),
        "updated in place"
    );
    let listed = s.list_tokens(&carol.scope()).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].label.as_deref(), Some("renamed"));

    let tail: Vec<(AuditAction, String)> = events(s)
        .await
        .into_iter()
        .rev()
        .take(2)
        .map(|e| (e.action, e.details))
        .collect();
    assert_eq!(tail[1].0, AuditAction::UserRoleChanged);
    assert!(tail[1].1.contains(r#""provisioned":true"#), "{}", tail[1].1);
    assert_eq!(tail[0].0, AuditAction::TokenProvisioned);
    assert!(
        tail[0].1.contains(r#""outcome":"updated""#),
        "{}",
        tail[0].1
    );
    assert!(apply(s, &table).await.unwrap().is_empty());
}

pub async fn the_last_owner_is_never_demoted_by_a_table<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    apply(
        s,
        &json!([{"token": "root-local-token-00001", "user_id": "root", "role": "owner"}]),
    )
    .await
    .unwrap();
    let before = events(s).await;
    let demote = json!([
        {"token": "root-local-token-00001", "user_id": "root", "role": "admin"},
        {"token": "new-user-local-token1-Kq7Zp2Xw9Rt4Vb8Lm", "user_id": "newcomer"},
    ]);
    let e = apply(s, &demote).await.unwrap_err();
    assert!(
        matches!(&e, Error::Conflict(m) if m.contains("entry 0 (user `root`)") && m.contains("last Owner")),
        "{e:?}"
    );
    assert_eq!(events(s).await, before, "nothing is written");
    assert_eq!(users(s).await, [("root".to_owned(), UserRole::Owner)]);
    assert_eq!(
        who(s, "new-user-local-token1-Kq7Zp2Xw9Rt4Vb8Lm").await,
        None
    );

    // Handing ownership over in one table works: the promotion applies first.
    let hand_over = json!([
        {"token": "root-local-token-00001", "user_id": "root", "role": "member"},
        {"token": "heir-local-token-00001", "user_id": "heir", "role": "owner"},
    ]);
    apply(s, &hand_over).await.unwrap();
    assert_eq!(
        who(s, "root-local-token-00001").await,
        who_is("root", UserRole::Member, "manage,api")
    );
    assert_eq!(
        who(s, "heir-local-token-00001").await,
        who_is("heir", UserRole::Owner, "manage,api")
    );

    // An Owner who is suspended does not count as the remaining Owner.
    let table = json!([
        {"token": "root-local-token-00001", "user_id": "root", "role": "owner"},
        {"token": "heir-local-token-00001", "user_id": "heir", "role": "owner"},
    ]);
    apply(s, &table).await.unwrap();
    s.set_status(&operator(), &oid("root"), UserStatus::Suspended)
        .await
        .unwrap();
    let before = events(s).await;
    let demote_heir = json!([
        {"token": "root-local-token-00001", "user_id": "root", "role": "owner"},
        {"token": "heir-local-token-00001", "user_id": "heir", "role": "member"},
    ]);
    assert!(matches!(
        apply(s, &demote_heir).await,
        Err(Error::Conflict(_))
    ));
    assert_eq!(events(s).await, before);
}

pub async fn a_token_colliding_with_a_stored_token_is_refused<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let root = boot(s).await;
    let alice = add_user(s, &root, "alice", UserRole::Member).await;
    let legacy = "legacy-token-value-0001";
    let (_, mut t) = new_token(None);
    t.fresh.digest = digest_of(legacy);
    s.install_legacy_token(&oid("root"), t).await.unwrap();
    apply(
        s,
        &json!([{"token": "bob-local-token-000001", "user_id": "bob"}]),
    )
    .await
    .unwrap();
    let before_events = events(s).await;
    let before_users = users(s).await;

    for (table, needle) in [
        // Alice's issued token provisioned for bob (or for alice herself).
        (
            json!([{"token": "carol-local-token-0001", "user_id": "carol"},
                   {"token": alice.secret.expose(), "user_id": "bob"}]),
            "entry 1: the token is already stored and was not provisioned",
        ),
        (
            json!([{"token": alice.secret.expose(), "user_id": "alice"}]),
            "entry 0: the token is already stored and was not provisioned",
        ),
        // The legacy token.
        (
            json!([{"token": legacy, "user_id": "root", "role": "owner"}]),
            "entry 0: the token is already stored and was not provisioned",
        ),
        // Bob's provisioned token moved to carol.
        (
            json!([{"token": "carol-local-token-0001", "user_id": "carol"},
                   {"token": "bob-local-token-000001", "user_id": "carol"}]),
            "entry 1: the token is already provisioned for another user",
        ),
    ] {
        let e = apply(s, &table).await.unwrap_err();
        let message = e.to_string();
        assert!(matches!(e, Error::Conflict(_)), "{message}");
        assert!(message.contains(needle), "{message}");
        assert!(!message.contains(alice.secret.expose()) && !message.contains(legacy));
        assert_eq!(events(s).await, before_events, "nothing is written");
        assert_eq!(users(s).await, before_users, "nothing is written");
    }
    assert_eq!(who(s, "carol-local-token-0001").await, None);
    assert_eq!(
        who(s, alice.secret.expose()).await,
        who_is("alice", UserRole::Member, "manage,api")
    );
    assert_eq!(
        who(s, "bob-local-token-000001").await,
        who_is("bob", UserRole::Member, "manage,api")
    );
}

pub async fn provisioned_tokens_are_foreign_tokens<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    boot(s).await;
    assert!(!s.has_foreign_tokens().await.unwrap());
    // Without foreign lookups, an unprefixed token is refused before the store.
    assert!(matches!(
        service::authenticate(s, "bob-local-token-000001", false).await,
        Err(Error::Unauthenticated)
    ));
    apply(
        s,
        &json!([{"token": "bob-local-token-000001", "user_id": "bob"}]),
    )
    .await
    .unwrap();
    assert!(s.has_foreign_tokens().await.unwrap());
    assert_eq!(
        who(s, "bob-local-token-000001").await,
        who_is("bob", UserRole::Member, "manage,api")
    );
    // A token of our own format can be provisioned too, and is no foreign token.
    let (ours, _) = new_token(None);
    apply(
        s,
        &json!([{"token": "bob-local-token-000001", "user_id": "bob"},
                {"token": ours.expose(), "user_id": "dave"}]),
    )
    .await
    .unwrap();
    assert!(matches!(
        service::authenticate(s, ours.expose(), false).await,
        Ok(p) if *p.identity().owner_id() == oid("dave")
    ));
    // Once the unprefixed token leaves the table it is refused; the store still reports
    // foreign tokens while any provisioned token is live (the check goes by origin).
    apply(s, &json!([{"token": ours.expose(), "user_id": "dave"}]))
        .await
        .unwrap();
    assert_eq!(who(s, "bob-local-token-000001").await, None);
    assert!(s.has_foreign_tokens().await.unwrap());
}

pub async fn a_dry_run_writes_nothing<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    let table = source_table().to_string();
    let dry = service::provision(s, &operator(), &table, true)
        .await
        .unwrap();
    assert_eq!(dry.users_created.len(), 5);
    assert_eq!(dry.tokens_added.len(), 5);
    assert!(events(s).await.is_empty());
    assert!(users(s).await.is_empty());
    assert_eq!(who(s, "bob-local-token-000001").await, None);
    assert!(!s.has_foreign_tokens().await.unwrap());
    assert!(!s.has_owner().await.unwrap());

    let real = service::provision(s, &operator(), &table, false)
        .await
        .unwrap();
    let shape = |p: &ProvisionPlan| {
        (
            p.users_created.clone(),
            p.roles_changed.clone(),
            p.tokens_added
                .iter()
                .map(|t| (t.user_id.clone(), t.kinds.clone(), t.entry))
                .collect::<Vec<_>>(),
            p.tokens_revoked.len(),
        )
    };
    assert_eq!(
        shape(&dry),
        shape(&real),
        "the dry run plans what applying does"
    );

    // A dry run of a change plans it and leaves the store as it was.
    let before = events(s).await;
    let mut changed = source_table();
    changed[0]["role"] = json!("member");
    let plan = service::provision(s, &operator(), &changed.to_string(), true)
        .await
        .unwrap();
    assert_eq!(plan.roles_changed.len(), 1);
    assert_eq!(events(s).await, before);
    assert_eq!(
        who(s, "director-local-token-1").await,
        who_is("director@", UserRole::Admin, "manage,api")
    );
}

/// A small deterministic generator (no extra dependency for a handful of rounds).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        usize::try_from((self.0 >> 33) % n as u64).unwrap()
    }
}

/// Random small tables over a pool of tokens and users (each token always for the same
/// user, so none collides): after each apply, re-applying plans nothing, every token of
/// the table authenticates as its user with the table's role and kinds, and every other
/// pool token is refused.
pub async fn random_tables_converge<S: Store>(cx: Ctx<S>) {
    let s = &*cx.store;
    const USERS: [&str; 4] = ["root", "ann", "ben", "cat"];
    const KINDS: [&[&str]; 3] = [&["manage", "api"], &["api"], &["api", "verify"]];
    let token = |i: usize| format!("pool-token-{i:02}-local-value");
    let mut rng = Lcg(0x5eed);
    let mut ever: Vec<usize> = Vec::new();
    for round in 0..16 {
        // root stays an Owner so the last-Owner rule never refuses a round.
        let mut roles = [UserRole::Owner; 4];
        for r in roles.iter_mut().skip(1) {
            *r = UserRole::ALL[rng.below(3)];
        }
        let picked: Vec<usize> = (0..10).filter(|_| rng.below(3) > 0).collect();
        let mut entries = vec![json!({"token": token(99), "user_id": "root", "role": "owner"})];
        let mut want = Vec::new();
        for i in picked {
            // A token revoked in an earlier round can never come back.
            if ever.contains(&i) && !want_live(s, &token(i)).await {
                continue;
            }
            let user = i % USERS.len();
            let kinds = KINDS[rng.below(KINDS.len())];
            entries.push(json!({
                "token": token(i), "user_id": USERS[user],
                "role": roles[user].as_str(), "kinds": kinds,
            }));
            want.push((i, user, TokenKinds::parse_csv(&kinds.join(",")).unwrap()));
        }
        let table = Value::Array(entries);
        apply(s, &table)
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        let again = apply(s, &table).await.unwrap();
        assert!(again.is_empty(), "round {round}: {again:?}");
        for i in 0..10 {
            let expected = want
                .iter()
                .find(|(w, _, _)| *w == i)
                .map(|(_, u, k)| (USERS[*u].to_owned(), roles[*u], k.to_csv()));
            assert_eq!(
                who(s, &token(i)).await,
                expected,
                "round {round}, token {i}"
            );
        }
        for (i, _, _) in &want {
            if !ever.contains(i) {
                ever.push(*i);
            }
        }
    }
}

/// Whether a raw token authenticates now.
async fn want_live<S: Store>(s: &S, raw: &str) -> bool {
    who(s, raw).await.is_some()
}
