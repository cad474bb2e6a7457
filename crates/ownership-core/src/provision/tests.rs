use std::collections::BTreeSet;

use proptest::prelude::*;
use serde_json::json;
use time::macros::datetime;

use super::*;
use crate::identity::Identity;
use crate::ids::Label;
use crate::token::{DisplayPrefix, digest_of};

const NOW: OffsetDateTime = datetime!(2026-01-01 12:00:00 UTC);

fn oid(s: &str) -> OwnerId {
    OwnerId::parse(s).unwrap()
}

fn operator() -> AdminScope {
    AdminScope::operator("tester")
}

/// A deterministic source of distinct ids.
fn counter() -> impl FnMut(&mut [u8]) {
    let mut n: u64 = 0;
    move |buf: &mut [u8]| {
        n += 1;
        for (i, b) in buf.iter_mut().enumerate() {
            *b = n.to_be_bytes().get(i % 8).copied().unwrap_or(0) ^ (i as u8);
        }
    }
}

/// Parses a table that must be refused and returns the error.
fn refused(json: &str) -> TableError {
    match parse_table(json) {
        Ok(t) => panic!("accepted: {t:?}"),
        Err(e) => e,
    }
}

/// Asserts the table is refused with a problem for `entry` whose reason contains `needle`,
/// and that no message quotes any of `secrets`.
#[track_caller]
fn assert_refused(json: &str, entry: Option<usize>, needle: &str, secrets: &[&str]) {
    let e = refused(json);
    assert!(
        e.problems()
            .iter()
            .any(|p| p.entry == entry && p.reason.contains(needle)),
        "expected a problem for {entry:?} containing {needle:?}, got: {e}"
    );
    let message = e.to_string();
    let core = Error::from(e).to_string();
    for s in secrets {
        assert!(!message.contains(s), "message quotes a token: {message}");
        assert!(!core.contains(s), "message quotes a token: {core}");
    }
    if let Some(i) = entry {
        assert!(message.contains(&format!("entry {i}")), "{message}");
    }
}

#[test]
fn tokens_map_to_users_and_roles() {
    let table = parse_table(
        &json!([
            {"token": "director-token-0001-Kq7Zp2Xw9Rt4Vb8Lm", "user_id": "director@", "role": "Admin"},
            {"token": "bob-token-000000001-Kq7Zp2Xw9Rt4Vb8Lm", "user_id": "bob"},
            {"token": "carol-token-0000001-Kq7Zp2Xw9Rt4Vb8Lm", "user_id": "carol", "role": "member",
             "kinds": ["api"], "label": "laptop"},
            {"token": "root-token-00000001-Kq7Zp2Xw9Rt4Vb8Lm", "user_id": "root", "role": "OWNER"},
        ])
        .to_string(),
    )
    .unwrap();
    let e = table.entries();
    assert_eq!(e.len(), 4);
    assert_eq!(
        e[0].digest,
        digest_of("director-token-0001-Kq7Zp2Xw9Rt4Vb8Lm")
    );
    assert_eq!(e[0].user_id, oid("director@"));
    assert_eq!(e[0].role, UserRole::Admin);
    assert_eq!(e[0].kinds, TokenKinds::manage_api());
    assert_eq!(e[0].label, None);
    assert_eq!(e[0].display_prefix, "dire…");
    assert_eq!(e[1].role, UserRole::Member, "role defaults to member");
    assert_eq!(e[2].kinds.to_csv(), "api");
    assert_eq!(e[2].label.as_deref(), Some("laptop"));
    assert_eq!(e[3].role, UserRole::Owner);
    assert_eq!(
        table
            .users()
            .iter()
            .map(|(i, id, _)| (*i, id.as_str()))
            .collect::<Vec<_>>(),
        vec![(0, "director@"), (1, "bob"), (2, "carol"), (3, "root")]
    );
}

#[test]
fn nulls_mean_defaults_and_roles_are_inherited_per_user() {
    let table = parse_table(
        &json!([
            {"token": "alice-one-000000001-Kq7Zp2Xw9Rt4Vb8Lm", "user_id": "alice", "role": null, "kinds": null, "label": null},
            {"token": "alice-two-000000001-Kq7Zp2Xw9Rt4Vb8Lm", "user_id": "alice", "role": "admin"},
            {"token": "bob-one-00000000001-Kq7Zp2Xw9Rt4Vb8Lm", "user_id": "bob"},
        ])
        .to_string(),
    )
    .unwrap();
    let roles: Vec<UserRole> = table.entries().iter().map(|e| e.role).collect();
    assert_eq!(roles, [UserRole::Admin, UserRole::Admin, UserRole::Member]);
}

#[test]
fn every_refusal_names_its_entry_and_never_the_token() {
    let s = "SuperSecretValue-0123456789";
    let cases: Vec<(String, Option<usize>, &str)> = vec![
        ("[]".into(), None, "the table is empty"),
        (
            json!([{"token": "", "user_id": "a"}]).to_string(),
            Some(0),
            "empty token",
        ),
        (
            json!([{"token": s, "user_id": "a"}, {"token": "   ", "user_id": "b"}]).to_string(),
            Some(1),
            "empty token",
        ),
        (
            json!([{"token": format!("{s} x"), "user_id": "a"}]).to_string(),
            Some(0),
            "visible ASCII",
        ),
        (
            json!([{"token": format!("{s}é"), "user_id": "a"}]).to_string(),
            Some(0),
            "visible ASCII",
        ),
        (
            json!([{"token": format!("{s}{}", "x".repeat(600)), "user_id": "a"}]).to_string(),
            Some(0),
            "longer than 512 bytes",
        ),
        (
            json!([{"token": s, "user_id": "a"}, {"token": "other-0000000-Kq7Zp2Xw9Rt4Vb8Lm", "user_id": "b"},
                   {"token": s, "user_id": "c"}])
            .to_string(),
            Some(2),
            "duplicate token (the same value as entry 0)",
        ),
        (
            json!([{"token": s, "user_id": "default"}]).to_string(),
            Some(0),
            "reserved",
        ),
        (
            json!([{"token": s, "user_id": ""}]).to_string(),
            Some(0),
            "invalid `user_id`",
        ),
        (
            json!([{"token": s, "user_id": "has space"}]).to_string(),
            Some(0),
            "invalid `user_id`",
        ),
        (
            json!([{"token": s, "user_id": "a", "role": "root"}]).to_string(),
            Some(0),
            "unknown role",
        ),
        (
            json!([{"token": s, "user_id": "a", "kinds": ["manage", "superuser"]}]).to_string(),
            Some(0),
            "unknown kind at position 1",
        ),
        (
            json!([{"token": s, "user_id": "a", "kinds": []}]).to_string(),
            Some(0),
            "must not be empty",
        ),
        (
            json!([{"token": s, "user_id": "a", "kinds": "manage,api"}]).to_string(),
            Some(0),
            "array of strings",
        ),
        (
            json!([{"token": s, "user_id": "a", "label": "x".repeat(101)}]).to_string(),
            Some(0),
            "invalid `label`",
        ),
        (
            json!([{"token": s, "user_id": "a"}, {"token": "b-000000000-Kq7Zp2Xw9Rt4Vb8Lm", "user_id": "a", "role": "admin"},
                   {"token": "c-000000000-Kq7Zp2Xw9Rt4Vb8Lm", "user_id": "a", "role": "member"}])
            .to_string(),
            Some(2),
            "role `member` here but `admin` in entry 1",
        ),
        (
            json!([{"token": s, "user_id": "a", "extra": 1}]).to_string(),
            Some(0),
            "unknown field",
        ),
        (
            json!([{"user_id": "a", "token": "x-000000000-Kq7Zp2Xw9Rt4Vb8Lm"}, {s: "a", "user_id": "b"}]).to_string(),
            Some(1),
            "unknown field",
        ),
        (
            format!(r#"[{{"token": "{s}", "token": "{s}2", "user_id": "a"}}]"#),
            Some(0),
            "field `token` is given twice",
        ),
        (
            json!([{"user_id": "a"}]).to_string(),
            Some(0),
            "missing `token`",
        ),
        (
            json!([{"token": s}]).to_string(),
            Some(0),
            "missing `user_id`",
        ),
        (
            json!([{"token": 12345, "user_id": "a"}]).to_string(),
            Some(0),
            "`token` must be a string",
        ),
        (
            json!([{"token": s, "user_id": "a"}, s]).to_string(),
            Some(1),
            "must be a JSON object",
        ),
        (
            json!([{"token": s, "user_id": "a"}, [s]]).to_string(),
            Some(1),
            "must be a JSON object",
        ),
        (json!(s).to_string(), None, "must be a JSON array"),
        (
            json!({"token": s, "user_id": "a"}).to_string(),
            None,
            "must be a JSON array",
        ),
        (
            format!(r#"[{{"token": "{s}", "user_id": }}]"#),
            None,
            "malformed JSON at line 1, column",
        ),
        (
            format!("[{{\"token\": \"{s}\n\", \"user_id\": \"a\"}}]"),
            None,
            "malformed JSON at line 2, column 0",
        ),
        (
            format!(r#"[{{"token": "{s}"#),
            None,
            "the JSON ends early",
        ),
        (
            format!(r#"[{{"token": "{s}", "user_id": "a"}}] {s}"#),
            None,
            "malformed JSON",
        ),
        (
            json!([{"token": "own_u_notAValidChecksum", "user_id": "a"}]).to_string(),
            Some(0),
            "not a well-formed ownership token",
        ),
        (
            json!([{"token": "own_r_003aUlTJC7tjlCTQj2uNU3MFagCXG9LRKRcwGkBIDlf4eA7G4", "user_id": "a"}])
                .to_string(),
            Some(0),
            "not a well-formed ownership token",
        ),
    ];
    for (json, entry, needle) in cases {
        assert_refused(&json, entry, needle, &[s, "SuperSecret", "own_u_notAValid"]);
    }
}

#[test]
fn our_own_tokens_can_be_provisioned_but_resource_tokens_cannot() {
    let mut rng = counter();
    let user = crate::token::TokenSecret::generate(TokenFamily::User, &mut rng);
    let resource = crate::token::TokenSecret::generate(TokenFamily::Resource, &mut rng);
    let table =
        parse_table(&json!([{"token": user.expose(), "user_id": "a"}]).to_string()).unwrap();
    assert_eq!(table.entries()[0].digest, user.digest());
    assert_eq!(table.entries()[0].display_prefix, user.display_prefix());
    assert_refused(
        &json!([{"token": resource.expose(), "user_id": "a"}]).to_string(),
        Some(0),
        "resource token",
        &[resource.expose()],
    );
}

#[test]
fn every_problem_is_reported_at_once_in_entry_order() {
    let e = refused(
        &json!([
            {"token": "fine-000000000001-Kq7Zp2Xw9Rt4Vb8Lm", "user_id": "a"},
            {"token": "", "user_id": "b"},
            {"token": "fine-000000000002-Kq7Zp2Xw9Rt4Vb8Lm", "user_id": "system"},
            {"token": "fine-000000000001-Kq7Zp2Xw9Rt4Vb8Lm", "user_id": "c"},
        ])
        .to_string(),
    );
    let entries: Vec<Option<usize>> = e.problems().iter().map(|p| p.entry).collect();
    assert_eq!(entries, [Some(1), Some(2), Some(3)]);
    let core = Error::from(e);
    assert!(matches!(
        &core,
        Error::Invalid {
            field: "user_tokens",
            ..
        }
    ));
    assert!(
        core.to_string()
            .starts_with("invalid user_tokens: entry 1: empty token; entry 2:")
    );
}

#[test]
fn long_problem_lists_are_cut_in_the_message() {
    let entries: Vec<Value> = (0..30)
        .map(|_| json!({"token": "", "user_id": "a"}))
        .collect();
    let e = refused(&Value::Array(entries).to_string());
    assert_eq!(e.problems().len(), 30);
    assert!(e.to_string().ends_with("; and 10 more"), "{e}");
}

#[test]
fn oversized_tables_are_refused() {
    let entries: Vec<Value> = (0..=MAX_ENTRIES)
        .map(|i| json!({"token": format!("t{i:08}"), "user_id": "a"}))
        .collect();
    let e = refused(&Value::Array(entries).to_string());
    assert!(e.to_string().contains("more than the 10000 entries"), "{e}");
    let big = " ".repeat(MAX_TABLE_BYTES + 1);
    assert!(refused(&big).to_string().contains("larger than 16 MiB"));
}

#[test]
fn table_new_checks_cross_entry_rules() {
    let entry = |token: &str, user: &str, role| ProvisionEntry {
        digest: digest_of(token),
        display_prefix: DisplayPrefix::parse("…").unwrap(),
        user_id: oid(user),
        role,
        kinds: TokenKinds::manage_api(),
        label: None,
    };
    assert!(ProvisionTable::new(vec![]).is_err());
    let e = ProvisionTable::new(vec![
        entry("a", "x", UserRole::Member),
        entry("a", "y", UserRole::Member),
        entry("b", "x", UserRole::Admin),
    ])
    .unwrap_err();
    let entries: Vec<Option<usize>> = e.problems().iter().map(|p| p.entry).collect();
    assert_eq!(entries, [Some(1), Some(2)]);
    assert!(ProvisionTable::new(vec![entry("a", "x", UserRole::Owner)]).is_ok());
}

#[test]
fn a_byte_order_mark_is_ignored() {
    let table = parse_table(
        "\u{feff}[{\"token\": \"bom-token-0001-Kq7Zp2Xw9Rt4Vb8Lm\", \"user_id\": \"a\"}]",
    )
    .unwrap();
    assert_eq!(
        table.entries()[0].digest,
        digest_of("bom-token-0001-Kq7Zp2Xw9Rt4Vb8Lm")
    );
}

// ---- planning ---------------------------------------------------------------------------

fn user(id: &str, role: UserRole, status: UserStatus) -> User {
    User {
        id: oid(id),
        role,
        status,
        created_at: NOW,
    }
}

fn stored(
    raw: &str,
    id_byte: u8,
    owner: &str,
    origin: TokenOrigin,
    kinds: &str,
    revoked: bool,
) -> StoredToken {
    StoredToken {
        digest: digest_of(raw),
        record: TokenRecord {
            id: TokenId::parse(&format!("tok_{}", hex::encode([id_byte; 10]))).unwrap(),
            owner_id: oid(owner),
            kinds: TokenKinds::parse_csv(kinds).unwrap(),
            label: None,
            display_prefix: DisplayPrefix::parse("…").unwrap(),
            origin,
            created_at: NOW,
            expires_at: None,
            revoked_at: revoked.then_some(NOW),
            last_used_at: None,
        },
    }
}

fn state(users: Vec<User>, tokens: Vec<StoredToken>) -> ProvisionState {
    let active_owners = users
        .iter()
        .filter(|u| u.role == UserRole::Owner && u.status == UserStatus::Active)
        .count() as u64;
    ProvisionState {
        users,
        active_owners,
        tokens,
    }
}

fn table(v: Value) -> ProvisionTable {
    parse_table(&v.to_string()).unwrap()
}

fn plan_of(t: &ProvisionTable, s: &ProvisionState) -> Result<ProvisionPlan> {
    plan(&operator(), t, s, NOW, &mut counter())
}

#[test]
fn only_the_operator_provisions() {
    let t = table(json!([{"token": "a-0000000000-Kq7Zp2Xw9Rt4Vb8Lm", "user_id": "a"}]));
    let owner = AdminScope::new(&Identity::new(oid("root"), UserRole::Owner)).unwrap();
    let r = plan(&owner, &t, &ProvisionState::default(), NOW, &mut counter());
    assert!(matches!(r, Err(Error::Forbidden(_))), "{r:?}");
}

#[test]
fn an_empty_store_gets_every_user_and_token() {
    let t = table(json!([
        {"token": "root-0000000000-Kq7Zp2Xw9Rt4Vb8Lm", "user_id": "root", "role": "owner"},
        {"token": "bob-00000000000-Kq7Zp2Xw9Rt4Vb8Lm", "user_id": "bob"},
        {"token": "bob-00000000002-Kq7Zp2Xw9Rt4Vb8Lm", "user_id": "bob", "kinds": ["api"]},
    ]));
    let p = plan_of(&t, &ProvisionState::default()).unwrap();
    assert_eq!(
        p.users_created
            .iter()
            .map(|u| (u.user_id.as_str(), u.role))
            .collect::<Vec<_>>(),
        [("root", UserRole::Owner), ("bob", UserRole::Member)]
    );
    assert_eq!(p.tokens_added.len(), 3);
    assert_eq!(p.tokens_added[2].kinds.to_csv(), "api");
    let ids: BTreeSet<_> = p.tokens_added.iter().map(|t| &t.token_id).collect();
    assert_eq!(ids.len(), 3, "fresh ids are distinct");
    assert!(p.roles_changed.is_empty() && p.tokens_revoked.is_empty());
    assert!(!p.is_empty());
}

#[test]
fn the_plan_never_serializes_digests() {
    let t = table(json!([{"token": "root-0000000000-Kq7Zp2Xw9Rt4Vb8Lm", "user_id": "root"}]));
    let p = plan_of(&t, &ProvisionState::default()).unwrap();
    let text = serde_json::to_string(&p).unwrap();
    assert!(!text.contains(&digest_of("root-0000000000-Kq7Zp2Xw9Rt4Vb8Lm").to_hex()));
    assert!(!text.contains("root-0000000000-Kq7Zp2Xw9Rt4Vb8Lm"));
    assert!(!text.contains("digest"));
    assert!(text.contains(p.tokens_added[0].token_id.as_str()));
}

#[test]
fn stored_tokens_that_were_not_provisioned_or_are_someone_elses_are_conflicts() {
    let users = vec![
        user("root", UserRole::Owner, UserStatus::Active),
        user("alice", UserRole::Member, UserStatus::Active),
    ];
    let tokens = vec![
        stored(
            "issued-0000000-Kq7Zp2Xw9Rt4Vb8Lm",
            1,
            "alice",
            TokenOrigin::Issued,
            "manage,api",
            false,
        ),
        stored(
            "legacy-0000000-Kq7Zp2Xw9Rt4Vb8Lm",
            2,
            "root",
            TokenOrigin::Legacy,
            "manage,api",
            false,
        ),
        stored(
            "alices-0000000-Kq7Zp2Xw9Rt4Vb8Lm",
            3,
            "alice",
            TokenOrigin::Provisioned,
            "manage,api",
            false,
        ),
        stored(
            "revoked-000000-Kq7Zp2Xw9Rt4Vb8Lm",
            4,
            "alice",
            TokenOrigin::Provisioned,
            "manage,api",
            true,
        ),
    ];
    let s = state(users, tokens);
    for (raw, user_id, needle) in [
        (
            "issued-0000000-Kq7Zp2Xw9Rt4Vb8Lm",
            "alice",
            "was not provisioned",
        ),
        (
            "legacy-0000000-Kq7Zp2Xw9Rt4Vb8Lm",
            "root",
            "was not provisioned",
        ),
        ("alices-0000000-Kq7Zp2Xw9Rt4Vb8Lm", "bob", "another user"),
    ] {
        let t = table(json!([
            {"token": "fresh-00000000-Kq7Zp2Xw9Rt4Vb8Lm", "user_id": "carol"},
            {"token": raw, "user_id": user_id},
        ]));
        match plan_of(&t, &s) {
            Err(Error::Conflict(m)) => {
                assert!(m.contains("entry 1: ") && m.contains(needle), "{m}");
                assert!(!m.contains(raw), "{m}");
            }
            other => panic!("expected a conflict for {raw}, got {other:?}"),
        }
    }
    // A revoked provisioned token (its user revoked it) is kept revoked and reported,
    // never refused: a user's action never stops a start.
    let t = table(json!([
        {"token": "fresh-00000000-Kq7Zp2Xw9Rt4Vb8Lm", "user_id": "carol"},
        {"token": "revoked-000000-Kq7Zp2Xw9Rt4Vb8Lm", "user_id": "alice"},
    ]));
    let p = plan_of(&t, &s).unwrap();
    assert_eq!(p.tokens_kept_revoked.len(), 1);
    assert_eq!(p.tokens_kept_revoked[0].entry, 1);
    assert!(!format!("{p:?}").contains("revoked-000000"));
}

#[test]
fn changes_are_planned_and_a_second_plan_is_empty() {
    let users = vec![
        user("root", UserRole::Owner, UserStatus::Active),
        user("alice", UserRole::Member, UserStatus::Active),
    ];
    let tokens = vec![
        stored(
            "keep-000000000-Kq7Zp2Xw9Rt4Vb8Lm",
            1,
            "alice",
            TokenOrigin::Provisioned,
            "manage,api",
            false,
        ),
        stored(
            "change-0000000-Kq7Zp2Xw9Rt4Vb8Lm",
            2,
            "alice",
            TokenOrigin::Provisioned,
            "manage,api",
            false,
        ),
        stored(
            "gone-000000000-Kq7Zp2Xw9Rt4Vb8Lm",
            3,
            "alice",
            TokenOrigin::Provisioned,
            "api",
            false,
        ),
        stored(
            "issued-0000000-Kq7Zp2Xw9Rt4Vb8Lm",
            4,
            "alice",
            TokenOrigin::Issued,
            "api",
            false,
        ),
    ];
    let s = state(users, tokens);
    let t = table(json!([
        {"token": "keep-000000000-Kq7Zp2Xw9Rt4Vb8Lm", "user_id": "alice", "role": "admin"},
        {"token": "change-0000000-Kq7Zp2Xw9Rt4Vb8Lm", "user_id": "alice", "kinds": ["api"], "label": "ci"},
    ]));
    let p = plan_of(&t, &s).unwrap();
    assert!(p.users_created.is_empty() && p.tokens_added.is_empty());
    assert_eq!(p.tokens_unchanged, 1);
    assert_eq!(p.roles_changed.len(), 1);
    assert_eq!(
        (p.roles_changed[0].from, p.roles_changed[0].to),
        (UserRole::Member, UserRole::Admin)
    );
    assert_eq!(p.tokens_updated.len(), 1);
    assert_eq!(p.tokens_updated[0].kinds.to_csv(), "api");
    assert_eq!(p.tokens_updated[0].label.as_deref(), Some("ci"));
    assert_eq!(p.tokens_revoked.len(), 1);
    assert_eq!(p.tokens_revoked[0].token_id, s.tokens[2].record.id);

    let after = apply(&s, &t, &p, NOW);
    let again = plan_of(&t, &after).unwrap();
    assert!(again.is_empty(), "{again:?}");
    assert_eq!(again.tokens_unchanged, 2);
}

#[test]
fn the_last_owner_is_never_demoted_but_ownership_can_be_handed_over() {
    let s = state(
        vec![
            user("root", UserRole::Owner, UserStatus::Active),
            user("heir", UserRole::Admin, UserStatus::Active),
        ],
        vec![],
    );
    let demote = table(
        json!([{"token": "root-0000000000-Kq7Zp2Xw9Rt4Vb8Lm", "user_id": "root", "role": "member"}]),
    );
    match plan_of(&demote, &s) {
        Err(Error::Conflict(m)) => {
            assert!(
                m.contains("entry 0 (user `root`)") && m.contains("last Owner"),
                "{m}"
            );
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    // Listed demotion first, promotion second: promotions still apply first.
    let hand_over = table(json!([
        {"token": "root-0000000000-Kq7Zp2Xw9Rt4Vb8Lm", "user_id": "root", "role": "admin"},
        {"token": "heir-0000000000-Kq7Zp2Xw9Rt4Vb8Lm", "user_id": "heir", "role": "owner"},
    ]));
    let p = plan_of(&hand_over, &s).unwrap();
    let order: Vec<&str> = p.roles_changed.iter().map(|c| c.user_id.as_str()).collect();
    assert_eq!(order, ["heir", "root"]);
    // A suspended Owner does not count: promoting a suspended user does not help either.
    let s = state(
        vec![
            user("root", UserRole::Owner, UserStatus::Active),
            user("sleepy", UserRole::Member, UserStatus::Suspended),
        ],
        vec![],
    );
    let t = table(json!([
        {"token": "root-0000000000-Kq7Zp2Xw9Rt4Vb8Lm", "user_id": "root", "role": "member"},
        {"token": "slp-0000000000-Kq7Zp2Xw9Rt4Vb8Lm", "user_id": "sleepy", "role": "owner"},
    ]));
    assert!(matches!(plan_of(&t, &s), Err(Error::Conflict(_))));
}

#[test]
fn a_token_in_a_rotation_grace_period_is_still_live() {
    let mut t = stored(
        "grace-00000000-Kq7Zp2Xw9Rt4Vb8Lm",
        1,
        "alice",
        TokenOrigin::Provisioned,
        "manage,api",
        false,
    );
    t.record.revoked_at = Some(NOW + time::Duration::hours(1));
    let s = state(
        vec![user("alice", UserRole::Member, UserStatus::Active)],
        vec![t],
    );
    let p = plan_of(
        &table(json!([{"token": "grace-00000000-Kq7Zp2Xw9Rt4Vb8Lm", "user_id": "alice"}])),
        &s,
    )
    .unwrap();
    assert!(p.is_empty());
}

// ---- the reference model and properties -------------------------------------------------

/// Applies a plan to a state the way the adapters do.
fn apply(
    state: &ProvisionState,
    table: &ProvisionTable,
    plan: &ProvisionPlan,
    now: OffsetDateTime,
) -> ProvisionState {
    let mut users = state.users.clone();
    for u in &plan.users_created {
        users.push(User {
            id: u.user_id.clone(),
            role: u.role,
            status: UserStatus::Active,
            created_at: now,
        });
    }
    for c in &plan.roles_changed {
        let u = users.iter_mut().find(|u| u.id == c.user_id).unwrap();
        assert_eq!(u.role, c.from);
        u.role = c.to;
    }
    let mut tokens = state.tokens.clone();
    for t in &plan.tokens_added {
        assert!(
            !tokens
                .iter()
                .any(|s| s.digest == t.digest || s.record.id == t.token_id)
        );
        assert!(
            users.iter().any(|u| u.id == t.user_id),
            "token for a missing user"
        );
        assert_eq!(table.entries()[t.entry].digest, t.digest);
        tokens.push(StoredToken {
            digest: t.digest,
            record: TokenRecord {
                id: t.token_id.clone(),
                owner_id: t.user_id.clone(),
                kinds: t.kinds.clone(),
                label: t.label.clone(),
                display_prefix: t.display_prefix.clone(),
                origin: TokenOrigin::Provisioned,
                created_at: now,
                expires_at: None,
                revoked_at: None,
                last_used_at: None,
            },
        });
    }
    for u in &plan.tokens_updated {
        let t = tokens
            .iter_mut()
            .find(|t| t.record.id == u.token_id)
            .unwrap();
        t.record.kinds = u.kinds.clone();
        t.record.label = u.label.clone();
    }
    for r in &plan.tokens_revoked {
        let t = tokens
            .iter_mut()
            .find(|t| t.record.id == r.token_id)
            .unwrap();
        assert_eq!(t.record.origin, TokenOrigin::Provisioned);
        t.record.revoked_at = Some(now);
    }
    state_from(users, tokens)
}

fn state_from(users: Vec<User>, tokens: Vec<StoredToken>) -> ProvisionState {
    state(users, tokens)
}

const USERS: [&str; 4] = ["root", "alice", "bob", "carol"];

fn token_value(i: usize) -> String {
    format!("Pool{i}-SeCrEt-value-Kq7Zp2Xw-{}", "x".repeat(i))
}

fn role_strategy() -> impl Strategy<Value = UserRole> {
    prop::sample::select(UserRole::ALL.to_vec())
}

fn kinds_strategy() -> impl Strategy<Value = TokenKinds> {
    prop::sample::select(vec![
        "manage,api",
        "api",
        "manage",
        "api,verify",
        "channel:slack",
    ])
    .prop_map(|k| TokenKinds::parse_csv(k).unwrap())
}

fn origin_strategy() -> impl Strategy<Value = TokenOrigin> {
    prop_oneof![
        6 => Just(TokenOrigin::Provisioned),
        1 => Just(TokenOrigin::Issued),
        1 => Just(TokenOrigin::Legacy),
    ]
}

/// A stored state over the user and token pools (tokens only for existing users).
fn state_strategy() -> impl Strategy<Value = ProvisionState> {
    (
        prop::collection::vec(
            prop::option::weighted(0.7, (role_strategy(), prop::bool::weighted(0.85))),
            USERS.len(),
        ),
        prop::collection::vec(
            prop::option::of((
                origin_strategy(),
                0..USERS.len(),
                prop::bool::weighted(0.1),
                kinds_strategy(),
                prop::option::of("[a-z]{1,5}"),
            )),
            8,
        ),
    )
        .prop_map(|(users, tokens)| {
            let users: Vec<User> = users
                .into_iter()
                .zip(USERS)
                .filter_map(|(u, id)| {
                    u.map(|(role, active)| {
                        let status = if active {
                            UserStatus::Active
                        } else {
                            UserStatus::Suspended
                        };
                        user(id, role, status)
                    })
                })
                .collect();
            let tokens = tokens
                .into_iter()
                .enumerate()
                .filter_map(|(i, t)| {
                    let (origin, owner, revoked, kinds, label) = t?;
                    let owner = USERS[owner];
                    users.iter().any(|u| u.id.as_str() == owner).then(|| {
                        let mut s =
                            stored(&token_value(i), i as u8 + 1, owner, origin, "api", revoked);
                        s.record.kinds = kinds;
                        s.record.label = label.map(|l| Label::parse(&l).unwrap());
                        s
                    })
                })
                .collect();
            state(users, tokens)
        })
}

/// An entry as written: token index in the pool, user index, whether the role is given,
/// kinds and label (None = the default).
type RawEntry = (usize, usize, bool, Option<TokenKinds>, Option<String>);

/// An entry for the round trip: user index, whether the role is given, kinds, label.
type EntrySpec = (usize, bool, Option<TokenKinds>, Option<String>);

/// A non-empty table over the pools, as JSON, with one role per user.
fn table_strategy() -> impl Strategy<Value = Value> {
    (
        prop::collection::btree_map(
            0..8_usize,
            (
                0..USERS.len(),
                any::<bool>(),
                prop::option::of(kinds_strategy()),
                prop::option::of("[a-z]{1,5}"),
            ),
            1..6,
        ),
        prop::collection::vec(role_strategy(), USERS.len()),
    )
        .prop_map(|(entries, roles)| {
            let entries: Vec<RawEntry> = entries
                .into_iter()
                .map(|(t, (u, r, k, l))| (t, u, r, k, l))
                .collect();
            to_json(&entries, &roles)
        })
}

fn to_json(entries: &[RawEntry], roles: &[UserRole]) -> Value {
    Value::Array(
        entries
            .iter()
            .map(|(t, u, with_role, kinds, label)| {
                let mut o = serde_json::Map::new();
                o.insert("token".into(), json!(token_value(*t)));
                o.insert("user_id".into(), json!(USERS[*u]));
                if *with_role {
                    o.insert("role".into(), json!(roles[*u].as_str()));
                }
                if let Some(k) = kinds {
                    o.insert("kinds".into(), serde_json::to_value(k).unwrap());
                }
                if let Some(l) = label {
                    o.insert("label".into(), json!(l));
                }
                Value::Object(o)
            })
            .collect(),
    )
}

fn live_provisioned(
    s: &ProvisionState,
    now: OffsetDateTime,
) -> BTreeSet<(String, String, String, Option<Label>)> {
    s.tokens
        .iter()
        .filter(|t| t.record.origin == TokenOrigin::Provisioned && t.record.is_live(now))
        .map(|t| {
            (
                t.digest.to_hex(),
                t.record.owner_id.to_string(),
                t.record.kinds.to_csv(),
                t.record.label.clone(),
            )
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// parse(serialize(table)) gives back exactly what was written: digests of the tokens,
    /// users, the roles (given or inherited, member by default), kinds and labels.
    #[test]
    fn parse_of_serialize_round_trips(
        entries in prop::collection::btree_map(
            "[!-~]{22,40}",
            (0..USERS.len(), any::<bool>(), prop::option::of(kinds_strategy()),
             prop::option::of("[ -~]{0,20}")),
            1..8,
        ),
        roles in prop::collection::vec(role_strategy(), USERS.len()),
    ) {
        let entries: Vec<(String, EntrySpec)> = entries
            .into_iter()
            .filter(|(t, _)| !t.starts_with(PRODUCT_PREFIX) && check_static_strength(t).is_ok())
            .collect();
        prop_assume!(!entries.is_empty());
        let json = Value::Array(entries.iter().map(|(t, (u, with_role, k, l))| {
            let mut o = serde_json::Map::new();
            o.insert("token".into(), json!(t));
            o.insert("user_id".into(), json!(USERS[*u]));
            if *with_role { o.insert("role".into(), json!(roles[*u])); }
            if let Some(k) = k { o.insert("kinds".into(), serde_json::to_value(k).unwrap()); }
            if let Some(l) = l { o.insert("label".into(), json!(l)); }
            Value::Object(o)
        }).collect());
        let table = parse_table(&serde_json::to_string_pretty(&json).unwrap()).unwrap();
        prop_assert_eq!(table.len(), entries.len());
        for (e, (t, (u, _, k, l))) in table.entries().iter().zip(&entries) {
            let any_role = entries.iter().any(|(_, (u2, r2, _, _))| u2 == u && *r2);
            let role = if any_role { roles[*u] } else { UserRole::Member };
            prop_assert_eq!(e.digest, digest_of(t));
            prop_assert_eq!(&e.display_prefix, &classify(t).unwrap().secret().display_prefix());
            prop_assert_eq!(e.user_id.as_str(), USERS[*u]);
            prop_assert_eq!(e.role, role);
            prop_assert_eq!(&e.kinds, &k.clone().unwrap_or_else(TokenKinds::manage_api));
            prop_assert_eq!(e.label.as_deref(), l.as_deref());
        }
    }

    /// A table with a token twice is refused, naming the later entry, never the token.
    #[test]
    fn a_duplicate_token_is_refused_with_its_index(
        json in table_strategy(),
        pick in any::<prop::sample::Index>(),
        at in any::<prop::sample::Index>(),
    ) {
        let Value::Array(mut entries) = json else { unreachable!() };
        let original = pick.get(&entries).clone();
        let token = original["token"].as_str().unwrap().to_owned();
        let mut copy = original.clone();
        copy.as_object_mut().unwrap().remove("role");
        let position = at.index(entries.len() + 1);
        entries.insert(position, copy);
        let first = entries.iter().position(|e| e["token"] == original["token"]).unwrap();
        let later = entries.iter().rposition(|e| e["token"] == original["token"]).unwrap();
        prop_assert!(first < later);
        let err = parse_table(&Value::Array(entries).to_string()).unwrap_err();
        let expected = format!("duplicate token (the same value as entry {first})");
        prop_assert!(
            err.problems().iter().any(|p| p.entry == Some(later) && p.reason == expected),
            "{}", err
        );
        prop_assert!(!err.to_string().contains(&token));
    }

    /// Whatever is wrong with a table, no message quotes one of its tokens.
    #[test]
    fn no_refusal_quotes_a_token(json in table_strategy(), cut in any::<prop::sample::Index>(), how in 0..6_u8) {
        let Value::Array(mut entries) = json else { unreachable!() };
        let text = match how {
            0 => { let t = Value::Array(entries).to_string(); t[..cut.index(t.len())].to_owned() }
            1 => { entries.push(json!(token_value(7))); Value::Array(entries).to_string() }
            2 => { entries[0]["user_id"] = json!(format!("{} x", token_value(6))); Value::Array(entries).to_string() }
            3 => { entries[0]["role"] = json!(token_value(5)); Value::Array(entries).to_string() }
            4 => { entries[0]["kinds"] = json!([token_value(4)]); Value::Array(entries).to_string() }
            _ => { entries[0][token_value(3)] = json!(token_value(2)); Value::Array(entries).to_string() }
        };
        if let Err(e) = parse_table(&text) {
            let message = Error::from(e).to_string();
            for i in 0..8 {
                prop_assert!(!message.contains(&token_value(i)), "{}", message);
            }
            prop_assert!(!message.contains("SeCrEt"), "{}", message);
        }
    }

    /// Applying a plan and planning again changes nothing; after it the live provisioned
    /// tokens are exactly the table, every user of the table has the table's role, and a
    /// store that had an active Owner still has one. A refusal is a Conflict.
    #[test]
    fn apply_twice_is_apply_once(s in state_strategy(), json in table_strategy()) {
        let t = parse_table(&json.to_string()).unwrap();
        let mut rng = counter();
        match plan(&operator(), &t, &s, NOW, &mut rng) {
            Err(Error::Conflict(m)) => {
                for i in 0..8 { prop_assert!(!m.contains(&token_value(i))); }
            }
            Err(other) => prop_assert!(false, "unexpected refusal {:?}", other),
            Ok(p) => {
                let later = NOW + time::Duration::seconds(1);
                let once = apply(&s, &t, &p, NOW);
                let again = plan(&operator(), &t, &once, later, &mut rng).unwrap();
                prop_assert!(again.is_empty(), "{:?}", again);
                prop_assert_eq!(
                    again.tokens_unchanged + again.tokens_kept_revoked.len(),
                    t.len()
                );
                let twice = apply(&once, &t, &again, later);
                prop_assert_eq!(&twice, &once);

                // Every entry is live after, but those whose token was revoked: they stay so.
                let kept: BTreeSet<usize> = p.tokens_kept_revoked.iter().map(|k| k.entry).collect();
                let want: BTreeSet<_> = t.entries().iter().enumerate()
                    .filter(|(i, _)| !kept.contains(i))
                    .map(|(_, e)| (
                        e.digest.to_hex(), e.user_id.to_string(), e.kinds.to_csv(), e.label.clone(),
                    )).collect();
                prop_assert_eq!(live_provisioned(&once, later), want);
                for (_, id, role) in t.users() {
                    let u = once.users.iter().find(|u| &u.id == id).unwrap();
                    prop_assert_eq!(u.role, role);
                }
                if s.active_owners > 0 {
                    prop_assert!(once.active_owners > 0, "the last Owner was demoted");
                }
                // Nothing outside the table's reach changed.
                for before in &s.tokens {
                    let after = once.tokens.iter().find(|t| t.record.id == before.record.id).unwrap();
                    if before.record.origin != TokenOrigin::Provisioned {
                        prop_assert_eq!(after, before);
                    }
                }
            }
        }
    }
}

#[test]
fn weak_static_tokens_are_refused_by_index_without_their_value() {
    let strong = [
        "Kq7Zp2Xw9Rt4Vb8LmN3c5d",           // 22 base64 characters
        "ghp_Kq7Zp2Xw9Rt4Vb8LmN3c5d",       // a prefix, then 22
        "sk_live_Kq7Zp2Xw9Rt4Vb8LmN3c5d",   // two prefix segments, then 22
        "0123456789abcdef0123456789abcdef", // 32 hexadecimal digits
        "S2s3ZHB6eDl0NGJvOGxtbjNjNWQ=",     // base64 with padding
    ];
    for token in strong {
        assert!(check_static_strength(token).is_ok(), "{token} refused");
    }
    let weak = [
        "a",
        "hunter2",
        "Kq7Zp2Xw9Rt4Vb8LmN3c5",              // 21
        "ghp_Kq7Zp2Xw9Rt4Vb8LmN3c",           // 20 after the prefix
        "0123456789abcdef0123456789abcde",    // 31 hexadecimal digits
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", // one character over and over
        "abababababababababababababab",       // two
        "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",  // nothing of the alphabet
    ];
    for token in weak {
        assert!(check_static_strength(token).is_err(), "{token} accepted");
        let table = json!([
            {"token": "Kq7Zp2Xw9Rt4Vb8LmN3c5d", "user_id": "fine"},
            {"token": token, "user_id": "weak"},
        ]);
        let e = parse_table(&table.to_string()).unwrap_err();
        let entries: Vec<Option<usize>> = e.problems().iter().map(|p| p.entry).collect();
        assert_eq!(entries, [Some(1)], "{token}");
        let message = e.to_string();
        assert!(
            message.contains("entry 1: the token is too weak"),
            "{message}"
        );
        if token.len() > 3 {
            assert!(!message.contains(token), "{message} quotes the token");
        }
    }
    // A token of ours is strong whatever its look.
    let mut counter = 0u8;
    let mut rng = |buf: &mut [u8]| {
        for b in buf {
            counter = counter.wrapping_add(1);
            *b = counter;
        }
    };
    let ours = crate::token::TokenSecret::generate(crate::token::TokenFamily::User, &mut rng);
    assert!(check_static_strength(ours.expose()).is_ok());
}
