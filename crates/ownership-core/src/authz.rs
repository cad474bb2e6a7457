//! The authorization rules, as pure functions that yield proof values.
//!
//! * [`can_act_on`] is the only resource check: true exactly when the owner ids are equal.
//!   No role bypasses it.
//! * Owner-scoped port operations take an [`OwnerScope`], which only [`OwnerScope::authorize`]
//!   (which calls [`can_act_on`]) and [`OwnerScope::own`] make, so code that skips the check
//!   does not compile.
//! * User management takes an [`AdminScope`], which exists only for Admins and Owners (and
//!   for the operator at the command line, who holds the database itself). The role it was
//!   built with is the role the caller had when the request was authenticated; a store
//!   applies a change only under [`AdminScope::recheck`], with the acting user's account as
//!   read inside the transaction that applies it, so an Admin or Owner demoted, suspended or
//!   deleted meanwhile acts with what they have now, not what they had.
//! * Minting takes a [`MintPermit`]: only `manage` tokens mint, and only kinds they hold.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::identity::{Identity, UserRole, UserStatus};
use crate::ids::{ChannelName, OwnerId, TokenId};
use crate::kinds::{TokenKind, TokenKinds};

/// The only resource authorization check: may `actor` act on a resource owned by
/// `resource_owner`? True exactly when the owner ids are equal, whatever the role.
#[must_use]
pub fn can_act_on(actor: &Identity, resource_owner: &OwnerId) -> bool {
    actor.owner_id() == resource_owner
}

/// Who did something, as recorded in the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Actor {
    /// A signed-in user (by bearer token or console session).
    User(OwnerId),
    /// An operator at the command line, named by their OS user.
    Operator(String),
    /// The bootstrap secret or the configured legacy/provisioned tokens at start-up.
    Bootstrap,
    /// Background work of the service itself.
    System,
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::User(id) => write!(f, "user:{id}"),
            Self::Operator(name) => write!(f, "operator:{name}"),
            Self::Bootstrap => f.write_str("bootstrap"),
            Self::System => f.write_str("system"),
        }
    }
}

impl FromStr for Actor {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "bootstrap" => Ok(Self::Bootstrap),
            "system" => Ok(Self::System),
            _ => {
                if let Some(id) = s.strip_prefix("user:") {
                    OwnerId::parse(id).map(Self::User)
                } else if let Some(name) = s.strip_prefix("operator:") {
                    Ok(Self::Operator(sanitize_operator(name)))
                } else {
                    Err(Error::invalid("actor", "unknown actor form"))
                }
            }
        }
    }
}

impl TryFrom<String> for Actor {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}
impl From<Actor> for String {
    fn from(a: Actor) -> String {
        a.to_string()
    }
}

fn sanitize_operator(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .filter(|c| !c.is_control() && !c.is_whitespace())
        .take(64)
        .collect();
    if cleaned.is_empty() {
        "unknown".to_owned()
    } else {
        cleaned
    }
}

/// An authenticated bearer token: whose it is, what it may do. Produced only by a store's
/// token lookup after the digest matched and the token, its owner and its expiry checked out:
/// the fields are private and only core builds one (tests of other crates use
/// `Principal::for_tests`, behind the `testing` feature).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    identity: Identity,
    token_id: TokenId,
    kinds: TokenKinds,
    expires_at: Option<OffsetDateTime>,
}

impl Principal {
    /// A principal, from a token row core has just checked.
    pub(crate) fn new(
        identity: Identity,
        token_id: TokenId,
        kinds: TokenKinds,
        expires_at: Option<OffsetDateTime>,
    ) -> Self {
        Self {
            identity,
            token_id,
            kinds,
            expires_at,
        }
    }

    /// A principal for a test of another crate. Skips every check.
    #[cfg(feature = "testing")]
    pub fn for_tests(
        identity: Identity,
        token_id: TokenId,
        kinds: TokenKinds,
        expires_at: Option<OffsetDateTime>,
    ) -> Self {
        Self::new(identity, token_id, kinds, expires_at)
    }

    /// The token's owner and their current role.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The token's public id.
    pub fn token_id(&self) -> &TokenId {
        &self.token_id
    }

    /// What the token may be used for.
    pub fn kinds(&self) -> &TokenKinds {
        &self.kinds
    }

    /// When the token stops working, if ever (the earlier of its expiry and the end of a
    /// rotation grace period).
    pub fn expires_at(&self) -> Option<OffsetDateTime> {
        self.expires_at
    }

    /// Whether the token holds `kind`.
    pub fn has_kind(&self, kind: &TokenKind) -> bool {
        self.kinds.contains(kind)
    }

    /// Whether the token has expired at `now`.
    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// The audit actor for this principal.
    pub fn actor(&self) -> Actor {
        Actor::User(self.identity.owner_id().clone())
    }
}

/// Proof that `actor` may act on the resources of `owner`. The only ways to get one go
/// through [`can_act_on`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerScope {
    owner: OwnerId,
    actor: Actor,
}

impl OwnerScope {
    /// Checks [`can_act_on`] and yields the scope, or [`Error::NotFound`] (never
    /// "forbidden": another owner's objects are indistinguishable from absent ones).
    pub fn authorize(actor: &Identity, resource_owner: &OwnerId) -> Result<Self> {
        if can_act_on(actor, resource_owner) {
            Ok(Self {
                owner: resource_owner.clone(),
                actor: Actor::User(actor.owner_id().clone()),
            })
        } else {
            Err(Error::NotFound)
        }
    }

    /// The actor's own scope (the check holds by construction).
    pub fn own(actor: &Identity) -> Self {
        Self {
            owner: actor.owner_id().clone(),
            actor: Actor::User(actor.owner_id().clone()),
        }
    }

    /// The scope of the command-line operator acting for `owner` (rotating or revoking
    /// a user's token on their behalf). Only the operator's [`AdminScope`] yields one; an
    /// Admin or Owner signed in over HTTP gets [`Error::Forbidden`]: no role reaches
    /// another owner's resources. Audited as the operator.
    pub fn for_operator(admin: &AdminScope, owner: OwnerId) -> Result<Self> {
        if admin.acting_user().is_some() {
            return Err(Error::Forbidden(
                "only the operator acts for another owner".into(),
            ));
        }
        Ok(Self {
            owner,
            actor: admin.actor().clone(),
        })
    }

    /// The scope a resource credential reaches: its creator's, for the grants the store
    /// resolved for a live credential. Only core's resource use case builds one.
    pub(crate) fn of_resource_credential(owner: OwnerId) -> Self {
        Self {
            actor: Actor::User(owner.clone()),
            owner,
        }
    }

    /// The owner whose resources this scope reaches.
    pub fn owner(&self) -> &OwnerId {
        &self.owner
    }

    /// Who acts, for the audit log.
    pub fn actor(&self) -> &Actor {
        &self.actor
    }
}

/// Proof that the holder may manage users. Exists only for Admins and Owners, and for the
/// command-line operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminScope {
    actor: Actor,
    acting_user: Option<OwnerId>,
    role: UserRole,
}

impl AdminScope {
    /// The scope of an Admin or Owner; `None` for a Member.
    pub fn new(identity: &Identity) -> Option<Self> {
        identity.role().is_admin().then(|| Self {
            actor: Actor::User(identity.owner_id().clone()),
            acting_user: Some(identity.owner_id().clone()),
            role: identity.role(),
        })
    }

    /// The scope of an operator working on the store directly from the command line, who
    /// acts with an Owner's powers and is audited under their name. The HTTP layer never
    /// builds one.
    pub fn operator(name: &str) -> Self {
        Self {
            actor: Actor::Operator(sanitize_operator(name)),
            acting_user: None,
            role: UserRole::Owner,
        }
    }

    /// The role the scope acts with.
    pub fn role(&self) -> UserRole {
        self.role
    }

    /// Who acts, for the audit log.
    pub fn actor(&self) -> &Actor {
        &self.actor
    }

    /// The signed-in user acting, if any (the operator is none).
    pub fn acting_user(&self) -> Option<&OwnerId> {
        self.acting_user.as_ref()
    }

    fn is_self(&self, target: &OwnerId) -> bool {
        self.acting_user.as_ref() == Some(target)
    }

    /// The scope as it stands when a change is applied: `current` is the acting user's
    /// account as read inside the transaction that applies the change, once it holds the
    /// store's write lock (`None` when the account no longer exists). The role the scope
    /// was built with is the one the request was authenticated with, which a change
    /// committed meanwhile (or a cached principal) may have outdated.
    ///
    /// The operator has no account: their scope is returned as it is and `current` is not
    /// looked at. A signed-in user who no longer exists, is suspended or is no longer an
    /// Admin or Owner gets the same [`Error::Forbidden`] a Member gets; otherwise the scope
    /// is returned with the role they hold now (an Owner demoted to Admin acts as an Admin).
    pub fn recheck(&self, current: Option<ActorState>) -> Result<Self> {
        if self.acting_user.is_none() {
            return Ok(self.clone());
        }
        match current {
            Some(state) if state.status == UserStatus::Active && state.role.is_admin() => {
                Ok(Self {
                    role: state.role,
                    ..self.clone()
                })
            }
            _ => Err(Error::Forbidden(
                "an Admin or Owner role is required".into(),
            )),
        }
    }
}

/// The acting user's account, as read inside the transaction that applies a change made
/// under an [`AdminScope`] or a service [`MintPermit`] (see [`AdminScope::recheck`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActorState {
    /// Their role now.
    pub role: UserRole,
    /// Their status now.
    pub status: UserStatus,
}

/// Proof for background work of the service itself (webhook delivery, write-behind,
/// purges). Request handlers have no reason to build one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemScope(());

impl SystemScope {
    /// The scope of the service's own background work.
    pub fn background() -> Self {
        Self(())
    }

    /// Who acts, for the audit log.
    pub fn actor(&self) -> Actor {
        Actor::System
    }

    /// Background work reaching one owner's resources (the webhook worker reading that
    /// owner's endpoint): audited as the system, never as the owner.
    pub fn owner_scope(&self, owner: &OwnerId) -> OwnerScope {
        OwnerScope {
            owner: owner.clone(),
            actor: Actor::System,
        }
    }
}

/// Proof that the caller holds a `channel:<name>` token for this channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelScope {
    channel: ChannelName,
    token_id: TokenId,
    actor: Actor,
}

impl ChannelScope {
    /// Yields the scope when the principal's token holds `channel:<channel>`, else
    /// [`Error::Forbidden`].
    pub fn authorize(principal: &Principal, channel: &ChannelName) -> Result<Self> {
        if principal.has_kind(&TokenKind::Channel(channel.clone())) {
            Ok(Self {
                channel: channel.clone(),
                token_id: principal.token_id.clone(),
                actor: principal.actor(),
            })
        } else {
            Err(Error::Forbidden(format!(
                "token kind `channel:{channel}` required"
            )))
        }
    }

    /// The channel this scope reaches.
    pub fn channel(&self) -> &ChannelName {
        &self.channel
    }

    /// The service token that proved it.
    pub fn token_id(&self) -> &TokenId {
        &self.token_id
    }

    /// Who acts, for the audit log.
    pub fn actor(&self) -> &Actor {
        &self.actor
    }
}

/// Proof that a token may be minted for an owner with these kinds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MintPermit {
    owner: OwnerId,
    kinds: TokenKinds,
    actor: Actor,
    needs_admin: bool,
    /// The token that mints (re-checked live inside the transaction); `None` for the
    /// operator.
    minting_token: Option<TokenId>,
    /// The minting token's end (its expiry or pending revocation): no minted token
    /// outlives it.
    not_after: Option<OffsetDateTime>,
}

impl MintPermit {
    /// A user token minted by `minter` for its own owner: the minter must hold `manage`,
    /// and `requested` must be a subset of the minter's kinds.
    pub fn for_self(minter: &Principal, requested: TokenKinds) -> Result<Self> {
        if !minter.has_kind(&TokenKind::Manage) {
            return Err(Error::Forbidden("only `manage` tokens mint tokens".into()));
        }
        if !requested.is_subset(&minter.kinds) {
            return Err(Error::Forbidden(
                "a token may only mint kinds it holds itself".into(),
            ));
        }
        Ok(Self {
            owner: minter.identity.owner_id().clone(),
            kinds: requested,
            actor: minter.actor(),
            needs_admin: false,
            minting_token: Some(minter.token_id.clone()),
            not_after: minter.expires_at,
        })
    }

    /// A service token (`channel:<name>`, `verify`) minted by an Admin or Owner holding a
    /// `manage` token, owned by that Admin or Owner. Service kinds are the one place the
    /// subset rule does not apply: no person's token holds them, so an Admin mints them
    /// from their role, and only service kinds may be minted this way.
    pub fn service(minter: &Principal, admin: &AdminScope, requested: TokenKinds) -> Result<Self> {
        if !minter.has_kind(&TokenKind::Manage) {
            return Err(Error::Forbidden("only `manage` tokens mint tokens".into()));
        }
        if admin.acting_user() != Some(minter.identity.owner_id()) {
            return Err(Error::Forbidden(
                "admin scope does not match the token".into(),
            ));
        }
        if !requested.iter().all(TokenKind::is_service) {
            return Err(Error::invalid(
                "kinds",
                "service tokens hold only `channel:<name>` and `verify` kinds",
            ));
        }
        Ok(Self {
            owner: minter.identity.owner_id().clone(),
            kinds: requested,
            actor: minter.actor(),
            needs_admin: true,
            minting_token: Some(minter.token_id.clone()),
            not_after: minter.expires_at,
        })
    }

    /// A token minted by the operator at the command line for any user, with any kinds.
    pub fn by_operator(admin: &AdminScope, owner: OwnerId, kinds: TokenKinds) -> Result<Self> {
        if admin.acting_user().is_some() {
            return Err(Error::Forbidden(
                "only the operator mints for other users".into(),
            ));
        }
        Ok(Self {
            owner,
            kinds,
            actor: admin.actor().clone(),
            needs_admin: false,
            minting_token: None,
            not_after: None,
        })
    }

    /// Checks the permit against its owner's account as read inside the transaction that
    /// stores the token (`None` when the account no longer exists): the owner must exist
    /// and be active ([`Error::NotFound`] otherwise), and a service permit, which an Admin
    /// or Owner got from their role, needs that role still
    /// ([`Error::Forbidden`] for an owner demoted to Member meanwhile).
    pub fn recheck(&self, owner: Option<ActorState>) -> Result<()> {
        let Some(state) = owner.filter(|s| s.status == UserStatus::Active) else {
            return Err(Error::NotFound);
        };
        if self.needs_admin && !state.role.is_admin() {
            return Err(Error::Forbidden(
                "an Admin or Owner role is required".into(),
            ));
        }
        Ok(())
    }

    /// The owner the token will belong to.
    pub fn owner(&self) -> &OwnerId {
        &self.owner
    }

    /// The kinds the token will hold.
    pub fn kinds(&self) -> &TokenKinds {
        &self.kinds
    }

    /// Who mints, for the audit log.
    pub fn actor(&self) -> &Actor {
        &self.actor
    }

    /// The token that mints, which must still be live inside the minting transaction
    /// (`None` for the operator).
    pub fn minting_token(&self) -> Option<&TokenId> {
        self.minting_token.as_ref()
    }

    /// The expiry a minted token gets when `requested`: never later than the minting
    /// token's own end, so a token that expires in a minute cannot mint one that never
    /// does.
    pub fn cap_expiry(&self, requested: Option<OffsetDateTime>) -> Option<OffsetDateTime> {
        crate::instants::earlier(requested, self.not_after)
    }
}

/// Who rotates a token. Rotation mints the successor, so it follows minting's rules
/// ([`Rotator::permit`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotator {
    /// A token holder rotating one of their own tokens.
    Holder(Principal),
    /// The operator at the command line, for `owner`.
    Operator(AdminScope, OwnerId),
}

impl Rotator {
    /// Whose tokens it rotates.
    pub fn owner(&self) -> &OwnerId {
        match self {
            Self::Holder(p) => p.identity.owner_id(),
            Self::Operator(_, owner) => owner,
        }
    }

    /// The scope whose tokens it rotates (audited as the rotator).
    pub fn scope(&self) -> Result<OwnerScope> {
        match self {
            Self::Holder(p) => Ok(OwnerScope::own(&p.identity)),
            Self::Operator(admin, owner) => OwnerScope::for_operator(admin, owner.clone()),
        }
    }

    /// The permit to mint a successor holding `kinds`: for a holder, the rules of
    /// [`MintPermit::service`] when every kind is a service kind (an Admin or Owner, role
    /// re-checked when it is stored) and of [`MintPermit::for_self`] otherwise (`manage`,
    /// and kinds the rotating token holds itself); the operator may rotate any token.
    pub fn permit(&self, kinds: &TokenKinds) -> Result<MintPermit> {
        match self {
            Self::Holder(p)
                if kinds.iter().next().is_some() && kinds.iter().all(TokenKind::is_service) =>
            {
                let admin = AdminScope::new(&p.identity)
                    .ok_or_else(|| Error::Forbidden("an Admin or Owner role is required".into()))?;
                MintPermit::service(p, &admin, kinds.clone())
            }
            Self::Holder(p) => MintPermit::for_self(p, kinds.clone()),
            Self::Operator(admin, owner) => {
                MintPermit::by_operator(admin, owner.clone(), kinds.clone())
            }
        }
    }
}

/// The state of a user that a management rule needs, as read inside the transaction that
/// will apply the change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TargetState {
    /// The target's current role.
    pub role: UserRole,
    /// The target's current status.
    pub status: UserStatus,
    /// How many Owners are active right now (including the target if it is one).
    pub active_owners: u64,
}

impl TargetState {
    fn is_last_active_owner(&self) -> bool {
        self.role == UserRole::Owner && self.status == UserStatus::Active && self.active_owners <= 1
    }
}

/// Only an Owner creates Admins and Owners; an Admin creates Members.
pub fn check_create(scope: &AdminScope, role: UserRole) -> Result<()> {
    if role.is_admin() && scope.role() != UserRole::Owner {
        return Err(Error::Forbidden(
            "only an Owner may create Admins and Owners".into(),
        ));
    }
    Ok(())
}

/// May the scope manage this target at all? Admins manage Members; Owners manage everyone.
fn check_manages(scope: &AdminScope, target_role: UserRole) -> Result<()> {
    if target_role.is_admin() && scope.role() != UserRole::Owner {
        return Err(Error::Forbidden(
            "only an Owner may manage Admins and Owners".into(),
        ));
    }
    Ok(())
}

/// Binding a chat account to a user (approving their pairing code): an Admin for Members
/// and for themself, an Owner for anyone. A chat account bound to a user acts as that
/// user, so binding one is managing them.
pub fn check_bind_for(scope: &AdminScope, target: &OwnerId, target_role: UserRole) -> Result<()> {
    if scope.acting_user() == Some(target) {
        return Ok(());
    }
    check_manages(scope, target_role)
}

/// Linking or unlinking an identity-provider account (an OpenID Connect subject) to a
/// user: the same rule as binding a chat account, since the account then signs in as
/// that user. An Admin for Members and for themself, an Owner for anyone.
pub fn check_link_sign_in(
    scope: &AdminScope,
    target: &OwnerId,
    target_role: UserRole,
) -> Result<()> {
    check_bind_for(scope, target, target_role)
}

/// Role change: nobody changes their own role; only an Owner promotes to or demotes from
/// Admin/Owner; the last active Owner is never demoted.
pub fn check_role_change(
    scope: &AdminScope,
    target: &OwnerId,
    state: &TargetState,
    new_role: UserRole,
) -> Result<()> {
    if scope.is_self(target) {
        return Err(Error::Forbidden("nobody changes their own role".into()));
    }
    check_manages(scope, state.role)?;
    if new_role.is_admin() && scope.role() != UserRole::Owner {
        return Err(Error::Forbidden(
            "only an Owner may promote to Admin or Owner".into(),
        ));
    }
    if new_role != UserRole::Owner && state.is_last_active_owner() {
        return Err(Error::Conflict("the last Owner cannot be demoted".into()));
    }
    Ok(())
}

/// Suspend or resume: Admins for Members, Owners for anyone; nobody suspends themselves;
/// the last active Owner is never suspended.
pub fn check_status_change(
    scope: &AdminScope,
    target: &OwnerId,
    state: &TargetState,
    new_status: UserStatus,
) -> Result<()> {
    if scope.is_self(target) {
        return Err(Error::Forbidden("nobody changes their own status".into()));
    }
    check_manages(scope, state.role)?;
    if new_status == UserStatus::Suspended && state.is_last_active_owner() {
        return Err(Error::Conflict("the last Owner cannot be suspended".into()));
    }
    Ok(())
}

/// Delete: Admins delete Members, Owners anyone; nobody deletes themselves; the last
/// active Owner is never deleted.
pub fn check_delete(scope: &AdminScope, target: &OwnerId, state: &TargetState) -> Result<()> {
    if scope.is_self(target) {
        return Err(Error::Forbidden("nobody deletes themselves".into()));
    }
    check_manages(scope, state.role)?;
    if state.is_last_active_owner() {
        return Err(Error::Conflict("the last Owner cannot be deleted".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

    use super::*;

    fn oid(s: &str) -> OwnerId {
        OwnerId::parse(s).unwrap()
    }

    fn state(role: UserRole, status: UserStatus) -> Option<ActorState> {
        Some(ActorState { role, status })
    }

    #[test]
    fn recheck_uses_the_role_held_now() {
        let owner = AdminScope::new(&Identity::new(oid("o"), UserRole::Owner)).unwrap();
        let now = owner
            .recheck(state(UserRole::Admin, UserStatus::Active))
            .unwrap();
        assert_eq!(now.role(), UserRole::Admin);
        assert_eq!(now.acting_user(), Some(&oid("o")));
        assert!(check_create(&now, UserRole::Admin).is_err());
        for gone in [
            None,
            state(UserRole::Member, UserStatus::Active),
            state(UserRole::Owner, UserStatus::Suspended),
            state(UserRole::Admin, UserStatus::Suspended),
        ] {
            assert!(matches!(owner.recheck(gone), Err(Error::Forbidden(_))));
        }
    }

    #[test]
    fn the_operator_has_no_account_to_recheck() {
        let op = AdminScope::operator("root");
        assert_eq!(op.recheck(None).unwrap(), op);
    }

    #[test]
    fn service_permits_need_the_role_at_write_time() {
        let minter = Principal::new(
            Identity::new(oid("a"), UserRole::Admin),
            TokenId::parse("tok_0123456789abcdef0123").unwrap(),
            TokenKinds::manage_api(),
            None,
        );
        let admin = AdminScope::new(&minter.identity).unwrap();
        let service = MintPermit::service(
            &minter,
            &admin,
            TokenKinds::new([TokenKind::Verify]).unwrap(),
        )
        .unwrap();
        assert!(
            service
                .recheck(state(UserRole::Admin, UserStatus::Active))
                .is_ok()
        );
        assert!(matches!(
            service.recheck(state(UserRole::Member, UserStatus::Active)),
            Err(Error::Forbidden(_))
        ));
        assert!(matches!(service.recheck(None), Err(Error::NotFound)));
        let own =
            MintPermit::for_self(&minter, TokenKinds::new([TokenKind::Api]).unwrap()).unwrap();
        assert!(
            own.recheck(state(UserRole::Member, UserStatus::Active))
                .is_ok()
        );
        assert!(matches!(
            own.recheck(state(UserRole::Member, UserStatus::Suspended)),
            Err(Error::NotFound)
        ));
    }
}
