//! Property tests for the authorization rules of docs/security.md#authorization, through the public API only.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::collections::BTreeMap;

use ownership_core::authz::{
    AdminScope, MintPermit, OwnerScope, Principal, TargetState, can_act_on, check_create,
    check_delete, check_role_change, check_status_change,
};
use ownership_core::ids::TokenId;
use ownership_core::{Error, Identity, OwnerId, TokenKind, TokenKinds, UserRole, UserStatus};
use proptest::prelude::*;

fn owner(i: u8) -> OwnerId {
    OwnerId::parse(&format!("user{i}")).unwrap()
}

fn role() -> impl Strategy<Value = UserRole> {
    prop_oneof![
        Just(UserRole::Member),
        Just(UserRole::Admin),
        Just(UserRole::Owner)
    ]
}

fn kind() -> impl Strategy<Value = TokenKind> {
    prop_oneof![
        Just(TokenKind::Manage),
        Just(TokenKind::Api),
        Just(TokenKind::Verify),
        Just(TokenKind::parse("channel:telegram").unwrap()),
        Just(TokenKind::parse("channel:slack").unwrap()),
    ]
}

fn kinds() -> impl Strategy<Value = TokenKinds> {
    prop::collection::btree_set(kind(), 1..5).prop_map(|s| TokenKinds::new(s).unwrap())
}

fn principal(owner_id: OwnerId, role: UserRole, kinds: TokenKinds) -> Principal {
    Principal::for_tests(
        Identity::for_tests(owner_id, role),
        TokenId::parse("tok_00000000000000000000").unwrap(),
        kinds,
        None,
    )
}

proptest! {
    #[test]
    fn can_act_on_is_owner_equality_for_every_role(a in 0u8..6, b in 0u8..6, r in role()) {
        let actor = Identity::for_tests(owner(a), r);
        prop_assert_eq!(can_act_on(&actor, &owner(b)), a == b);
        let scope = OwnerScope::authorize(&actor, &owner(b));
        if a == b {
            let scope = scope.unwrap();
            prop_assert_eq!(scope.owner(), &owner(b));
        } else {
            // Another owner's object looks exactly like an absent one.
            prop_assert_eq!(scope.unwrap_err(), Error::NotFound);
        }
    }

    #[test]
    fn admin_scope_exists_iff_admin_or_owner(a in 0u8..6, r in role()) {
        let scope = AdminScope::new(&Identity::for_tests(owner(a), r));
        prop_assert_eq!(scope.is_some(), matches!(r, UserRole::Admin | UserRole::Owner));
    }

    #[test]
    fn minting_never_escalates_kinds(own in kinds(), requested in kinds(), r in role()) {
        let minter = principal(owner(1), r, own.clone());
        match MintPermit::for_self(&minter, requested.clone()) {
            Ok(permit) => {
                prop_assert!(own.contains(&TokenKind::Manage));
                prop_assert!(permit.kinds().is_subset(&own));
                prop_assert_eq!(permit.owner(), &owner(1));
            }
            Err(_) => prop_assert!(!own.contains(&TokenKind::Manage) || !requested.is_subset(&own)),
        }
    }

    #[test]
    fn service_tokens_need_an_admin_and_only_service_kinds(own in kinds(), requested in kinds(), r in role()) {
        let minter = principal(owner(1), r, own.clone());
        let Some(admin) = AdminScope::new(minter.identity()) else {
            prop_assert!(!r.is_admin());
            return Ok(());
        };
        let permit = MintPermit::service(&minter, &admin, requested.clone());
        let allowed = own.contains(&TokenKind::Manage) && requested.iter().all(TokenKind::is_service);
        prop_assert_eq!(permit.is_ok(), allowed);
        // Another admin's scope never lends its power to this token.
        let other = AdminScope::new(&Identity::for_tests(owner(2), UserRole::Owner)).unwrap();
        prop_assert!(MintPermit::service(&minter, &other, requested).is_err());
    }
}

/// The reference model: the rules of docs/security.md#authorization written independently and plainly.
#[derive(Debug, Clone)]
struct Model {
    users: BTreeMap<u8, (UserRole, UserStatus)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ok,
    Forbidden,
    Conflict,
    NotFound,
}

fn outcome<T>(r: &Result<T, Error>) -> Outcome {
    match r {
        Ok(_) => Outcome::Ok,
        Err(Error::Forbidden(_)) => Outcome::Forbidden,
        Err(Error::Conflict(_)) => Outcome::Conflict,
        Err(Error::NotFound) => Outcome::NotFound,
        Err(e) => panic!("unexpected error {e:?}"),
    }
}

#[derive(Debug, Clone)]
enum Op {
    Create {
        actor: u8,
        target: u8,
        role: UserRole,
    },
    SetRole {
        actor: u8,
        target: u8,
        role: UserRole,
    },
    SetStatus {
        actor: u8,
        target: u8,
        status: UserStatus,
    },
    Delete {
        actor: u8,
        target: u8,
    },
    Touch {
        actor: u8,
        resource_owner: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let id = 0u8..6;
    let status = prop_oneof![Just(UserStatus::Active), Just(UserStatus::Suspended)];
    prop_oneof![
        (id.clone(), id.clone(), role()).prop_map(|(actor, target, role)| Op::Create {
            actor,
            target,
            role
        }),
        (id.clone(), id.clone(), role()).prop_map(|(actor, target, role)| Op::SetRole {
            actor,
            target,
            role
        }),
        (id.clone(), id.clone(), status).prop_map(|(actor, target, status)| Op::SetStatus {
            actor,
            target,
            status
        }),
        (id.clone(), id.clone()).prop_map(|(actor, target)| Op::Delete { actor, target }),
        (id.clone(), id).prop_map(|(actor, resource_owner)| Op::Touch {
            actor,
            resource_owner
        }),
    ]
}

impl Model {
    fn active_owners(&self) -> u64 {
        self.users
            .values()
            .filter(|(r, s)| *r == UserRole::Owner && *s == UserStatus::Active)
            .count() as u64
    }

    fn is_last_owner(&self, target: u8) -> bool {
        self.users.get(&target) == Some(&(UserRole::Owner, UserStatus::Active))
            && self.active_owners() == 1
    }

    /// What the rules of docs/security.md#authorization say, written as a table rather than as code paths.
    fn expected(&self, actor_role: UserRole, op: &Op) -> Outcome {
        let is_owner = actor_role == UserRole::Owner;
        let manages = |target_role: UserRole| is_owner || target_role == UserRole::Member;
        match *op {
            Op::Create { role, .. } => {
                if role == UserRole::Member || is_owner {
                    Outcome::Ok
                } else {
                    Outcome::Forbidden
                }
            }
            Op::SetRole {
                actor,
                target,
                role,
            } => {
                let (cur, _) = self.users[&target];
                if actor == target || !manages(cur) || (role != UserRole::Member && !is_owner) {
                    Outcome::Forbidden
                } else if role != UserRole::Owner && self.is_last_owner(target) {
                    Outcome::Conflict
                } else {
                    Outcome::Ok
                }
            }
            Op::SetStatus {
                actor,
                target,
                status,
            } => {
                let (cur, _) = self.users[&target];
                if actor == target || !manages(cur) {
                    Outcome::Forbidden
                } else if status == UserStatus::Suspended && self.is_last_owner(target) {
                    Outcome::Conflict
                } else {
                    Outcome::Ok
                }
            }
            Op::Delete { actor, target } => {
                let (cur, _) = self.users[&target];
                if actor == target || !manages(cur) {
                    Outcome::Forbidden
                } else if self.is_last_owner(target) {
                    Outcome::Conflict
                } else {
                    Outcome::Ok
                }
            }
            Op::Touch {
                actor,
                resource_owner,
            } => {
                if actor == resource_owner {
                    Outcome::Ok
                } else {
                    Outcome::NotFound
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Random user-management sequences: the core's rule functions agree with the reference
    /// model at every step, at least one active Owner always remains, and no actor ever
    /// gets a successful operation on another owner's resource.
    #[test]
    fn user_management_matches_the_model(ops in prop::collection::vec(op(), 1..60)) {
        let mut model = Model { users: BTreeMap::from([(0, (UserRole::Owner, UserStatus::Active))]) };
        for op in ops {
            let actor = match op {
                Op::Create { actor, .. } | Op::SetRole { actor, .. } | Op::SetStatus { actor, .. }
                | Op::Delete { actor, .. } | Op::Touch { actor, .. } => actor,
            };
            // Only existing, active users act; the store refuses the rest before any rule.
            let Some(&(actor_role, UserStatus::Active)) = model.users.get(&actor) else { continue };
            let identity = Identity::for_tests(owner(actor), actor_role);
            if let Op::Touch { resource_owner, .. } = op {
                let got = outcome(&OwnerScope::authorize(&identity, &owner(resource_owner)));
                prop_assert_eq!(got, model.expected(actor_role, &op));
                prop_assert_eq!(got == Outcome::Ok, actor == resource_owner);
                continue;
            }
            let Some(scope) = AdminScope::new(&identity) else {
                prop_assert_eq!(actor_role, UserRole::Member);
                continue;
            };
            let target = match op {
                Op::Create { target, .. } | Op::SetRole { target, .. } | Op::SetStatus { target, .. }
                | Op::Delete { target, .. } => target,
                Op::Touch { .. } => unreachable!(),
            };
            let exists = model.users.contains_key(&target);
            if matches!(op, Op::Create { .. }) == exists {
                continue; // create of an existing id or change of a missing one: a store-level 409/404
            }
            let state = model.users.get(&target).map(|&(role, status)| TargetState {
                role, status, active_owners: model.active_owners(),
            });
            let got = match (&op, state) {
                (Op::Create { role, .. }, _) => outcome(&check_create(&scope, *role)),
                (Op::SetRole { role, .. }, Some(s)) => outcome(&check_role_change(&scope, &owner(target), &s, *role)),
                (Op::SetStatus { status, .. }, Some(s)) => outcome(&check_status_change(&scope, &owner(target), &s, *status)),
                (Op::Delete { .. }, Some(s)) => outcome(&check_delete(&scope, &owner(target), &s)),
                _ => unreachable!(),
            };
            prop_assert_eq!(got, model.expected(actor_role, &op), "op {:?} by {:?}", op, actor_role);
            if got == Outcome::Ok {
                match op {
                    Op::Create { role, .. } => { model.users.insert(target, (role, UserStatus::Active)); }
                    Op::SetRole { role, .. } => { if let Some(u) = model.users.get_mut(&target) { u.0 = role; } }
                    Op::SetStatus { status, .. } => { if let Some(u) = model.users.get_mut(&target) { u.1 = status; } }
                    Op::Delete { .. } => { model.users.remove(&target); }
                    Op::Touch { .. } => {}
                }
            }
            prop_assert!(model.active_owners() >= 1, "the last Owner was lost");
        }
    }
}

#[test]
fn admins_manage_members_only() {
    let admin = AdminScope::new(&Identity::for_tests(owner(1), UserRole::Admin)).unwrap();
    let member = TargetState {
        role: UserRole::Member,
        status: UserStatus::Active,
        active_owners: 1,
    };
    let an_owner = TargetState {
        role: UserRole::Owner,
        status: UserStatus::Active,
        active_owners: 2,
    };
    assert!(check_status_change(&admin, &owner(2), &member, UserStatus::Suspended).is_ok());
    assert!(check_status_change(&admin, &owner(3), &an_owner, UserStatus::Suspended).is_err());
    assert!(check_role_change(&admin, &owner(2), &member, UserRole::Admin).is_err());
    assert!(check_create(&admin, UserRole::Admin).is_err());
    assert!(check_create(&admin, UserRole::Member).is_ok());
}

#[test]
fn the_operator_acts_as_an_owner_but_keeps_the_last_owner() {
    let op = AdminScope::operator("root");
    let last = TargetState {
        role: UserRole::Owner,
        status: UserStatus::Active,
        active_owners: 1,
    };
    assert_eq!(
        outcome(&check_delete(&op, &owner(0), &last)),
        Outcome::Conflict
    );
    assert_eq!(
        outcome(&check_role_change(&op, &owner(0), &last, UserRole::Admin)),
        Outcome::Conflict
    );
    assert!(check_create(&op, UserRole::Owner).is_ok());
}
