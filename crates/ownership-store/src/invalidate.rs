//! What a committed change invalidates, read from its audit event.
//!
//! Every mutation appends one audit event in its own transaction, so the audit log is a
//! complete record of what changed. [`invalidation_of`] is the one place that maps an
//! event to the cache entries it makes stale. The libSQL server uses it to apply the
//! changes another process (the `ownership` CLI) committed to the same file
//! (`libsql::watch_external_changes`); the PostgreSQL adapter uses it to choose the
//! `NOTIFY` payload of each event it appends.
//!
//! When an event cannot be read (an action this build does not map, a target that does
//! not parse, details it does not expect) the answer is [`Invalidation::All`]: a receiver
//! that cannot tell what changed flushes everything.

use ownership_core::OwnerId;
use ownership_core::audit::{AuditAction, AuditEvent};
use ownership_core::ids::{ChannelKey, ChannelName, ExternalId, ResourceId, TokenId};

/// What a mutation invalidates, here or (broadcast) in another process.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Invalidation {
    /// One token (revoked, rotated).
    Token(TokenId),
    /// Everything cached for an owner (deleted, suspended, resumed, role changed).
    Owner(OwnerId),
    /// One chat account (unlinked).
    Identity(ChannelKey),
    /// One resource (revoked).
    Resource(ResourceId),
    /// Everything (a lost notification channel, a replaced legacy token).
    All,
}

impl Invalidation {
    /// The kind of invalidation, a fixed word (`token`, `owner`, `identity`, `resource`,
    /// `all`) that names no id: the metrics label.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Token(_) => "token",
            Self::Owner(_) => "owner",
            Self::Identity(_) => "identity",
            Self::Resource(_) => "resource",
            Self::All => "all",
        }
    }

    /// A compact text form, for a `NOTIFY` payload: `token:<id>`, `owner:<id>`,
    /// `identity:<channel>/<external_id>`, `resource:<id>` or `all`.
    pub fn encode(&self) -> String {
        match self {
            Self::Token(id) => format!("token:{}", id.as_str()),
            Self::Owner(id) => format!("owner:{}", id.as_str()),
            Self::Identity(key) => format!(
                "identity:{}/{}",
                key.channel.as_str(),
                key.external_id.as_str()
            ),
            Self::Resource(id) => format!("resource:{}", id.as_str()),
            Self::All => "all".to_owned(),
        }
    }

    /// Reads [`Invalidation::encode`]'s form back; anything else is `None` (a receiver
    /// that cannot read a payload should flush everything).
    pub fn decode(raw: &str) -> Option<Self> {
        if raw == "all" {
            return Some(Self::All);
        }
        let (kind, rest) = raw.split_once(':')?;
        match kind {
            "token" => TokenId::parse(rest).ok().map(Self::Token),
            "owner" => OwnerId::parse(rest).ok().map(Self::Owner),
            "resource" => ResourceId::parse(rest).ok().map(Self::Resource),
            "identity" => channel_key(rest).map(Self::Identity),
            _ => None,
        }
    }
}

/// Reads `channel/external_id` (the audit target of a chat account) back; `None` when it
/// does not parse. A channel name holds no `/`; an external id may.
pub(crate) fn channel_key(raw: &str) -> Option<ChannelKey> {
    let (channel, external) = raw.split_once('/')?;
    Some(ChannelKey::new(
        ChannelName::parse(channel).ok()?,
        ExternalId::parse(external).ok()?,
    ))
}

/// How an action changes what a cache may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    /// Nothing cached can be stale: it creates something new (never cached, since misses
    /// are not cached) or changes what the cache does not hold (secrets, webhooks).
    Nothing,
    /// The token named by the target (revoked, rotated).
    Token,
    /// Everything of the user named by the target (role, status, deletion).
    Owner,
    /// The chat account named by the target (`channel/external_id`).
    Identity,
    /// The resource named by the target.
    Resource,
    /// A legacy token: replacing one changes a token the event does not name.
    Legacy,
    /// A token of a static table: added (nothing) or updated in place (that token).
    Provisioned,
}

/// The effect of each action; `None` for an action this build does not know (the
/// vocabulary is non-exhaustive), which callers treat as "flush everything".
fn effect(action: AuditAction) -> Option<Effect> {
    use AuditAction as A;
    Some(match action {
        A::OwnerBootstrapped
        | A::UserCreated
        | A::TokenIssued
        | A::PairingRequested
        | A::PairingBurned
        | A::SecretPut
        | A::SecretDeleted
        | A::SecretsRewrapped
        | A::ResourceCreated
        | A::WebhookSet
        | A::WebhookDeleted
        | A::WebhookSecretRotated
        | A::AuditChainKeyed
        | A::AuditAnchored
        | A::SessionStarted
        | A::OidcLinked
        | A::OidcUnlinked
        | A::PasskeyRegistered
        | A::PasskeyRemoved
        | A::PasskeySignedIn => Effect::Nothing,
        A::UserRoleChanged | A::UserSuspended | A::UserResumed | A::UserDeleted => Effect::Owner,
        A::TokenRotated | A::TokenRevoked | A::TokenRevokedAsLeaked => Effect::Token,
        A::PairingApproved | A::IdentityUnlinked => Effect::Identity,
        A::ResourceRevoked | A::ResourceRevokedAsLeaked => Effect::Resource,
        A::LegacyTokenInstalled => Effect::Legacy,
        A::TokenProvisioned => Effect::Provisioned,
        _ => return None,
    })
}

/// The `outcome` field of an event's details, if it has one.
fn outcome(event: &AuditEvent) -> Option<String> {
    let details: serde_json::Value = serde_json::from_str(&event.details).ok()?;
    details.get("outcome")?.as_str().map(str::to_owned)
}

/// What `event`, once committed, makes stale in a cache: `None` when nothing,
/// [`Invalidation::All`] when it cannot tell.
pub fn invalidation_of(event: &AuditEvent) -> Option<Invalidation> {
    let target = event.target.as_str();
    let token = || TokenId::parse(target).ok().map(Invalidation::Token);
    let Some(effect) = effect(event.action) else {
        return Some(Invalidation::All);
    };
    let found = match effect {
        Effect::Nothing => return None,
        Effect::Token => token(),
        Effect::Owner => OwnerId::parse(target).ok().map(Invalidation::Owner),
        Effect::Identity => channel_key(target).map(Invalidation::Identity),
        Effect::Resource => ResourceId::parse(target).ok().map(Invalidation::Resource),
        Effect::Legacy => match outcome(event).as_deref() {
            Some("installed") => return None,
            _ => Some(Invalidation::All),
        },
        Effect::Provisioned => match outcome(event).as_deref() {
            Some("added") => return None,
            Some("updated") => token(),
            _ => Some(Invalidation::All),
        },
    };
    Some(found.unwrap_or(Invalidation::All))
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        reason = "tests"
    )]

    use std::collections::HashSet;
    use std::time::Duration;

    use ownership_core::audit::{ChainHash, NewAuditEvent};
    use ownership_core::authz::Actor;
    use ownership_core::ids::{
        ChannelKey, ChannelName, ExternalId, Label, PairingRequestId, SecretName,
    };
    use ownership_core::passkeys::{CredentialId, PasskeyLabel};
    use ownership_core::provision::{
        PlannedRevocation, PlannedRoleChange, PlannedToken, PlannedTokenUpdate, PlannedUser,
    };
    use ownership_core::token::{DisplayPrefix, TokenDigest};
    use ownership_core::{TokenKinds, UserRole, UserStatus};
    use time::OffsetDateTime;

    use super::*;
    use ownership_core::events;

    #[test]
    fn invalidations_round_trip_through_text() {
        let all = [
            Invalidation::Token(TokenId::parse("tok_0123456789abcdef0123").unwrap()),
            Invalidation::Owner(OwnerId::parse("alice").unwrap()),
            Invalidation::Identity(ChannelKey::new(
                ChannelName::parse("telegram").unwrap(),
                ExternalId::parse("a/b:c 1").unwrap(),
            )),
            Invalidation::Resource(ResourceId::parse("res_0123456789abcdef0123").unwrap()),
            Invalidation::All,
        ];
        for inv in all {
            assert_eq!(Invalidation::decode(&inv.encode()), Some(inv.clone()));
        }
        for bad in [
            "",
            "tok",
            "token:nope",
            "identity:telegram",
            "what:x",
            "ALL",
        ] {
            assert_eq!(Invalidation::decode(bad), None, "{bad}");
        }
    }

    fn linked(event: NewAuditEvent) -> AuditEvent {
        event.link(7, ChainHash::GENESIS)
    }

    /// Every event the stores write, built by the same builders, with what it must
    /// invalidate. A new action fails `every_action_is_covered` until it is added here.
    fn every_event() -> Vec<(AuditEvent, Option<Invalidation>)> {
        let at = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let actor = Actor::Operator("root".into());
        let carol = OwnerId::parse("carol").unwrap();
        let tok = TokenId::parse("tok_0123456789abcdef0123").unwrap();
        let new_tok = TokenId::parse("tok_aaaaaaaaaaaaaaaaaaaa").unwrap();
        let res = ResourceId::parse("res_0123456789abcdef0123").unwrap();
        let passkey = CredentialId::parse("q83vEjRWeJA").unwrap();
        let key = ChannelKey::new(
            ChannelName::parse("telegram").unwrap(),
            ExternalId::parse("12/34").unwrap(),
        );
        let kinds = TokenKinds::manage_api();
        let secret = SecretName::parse("api_key").unwrap();
        let owner = || Some(Invalidation::Owner(carol.clone()));
        let token = || Some(Invalidation::Token(tok.clone()));
        let planned_update = PlannedTokenUpdate {
            token_id: tok.clone(),
            user_id: carol.clone(),
            previous_kinds: kinds.clone(),
            kinds: kinds.clone(),
            previous_label: None,
            label: Label::parse("x").ok(),
            entry: 0,
        };
        vec![
            (events::owner_bootstrapped(at, &carol, &tok), None),
            (events::legacy_installed(at, &carol, &tok, false), None),
            (
                events::legacy_installed(at, &carol, &tok, true),
                Some(Invalidation::All),
            ),
            (
                events::user_created(at, &actor, &carol, UserRole::Member, &tok),
                None,
            ),
            (
                events::user_role_changed(at, &actor, &carol, UserRole::Member, UserRole::Admin),
                owner(),
            ),
            (
                events::user_status_changed(at, &actor, &carol, UserStatus::Suspended),
                owner(),
            ),
            (
                events::user_status_changed(at, &actor, &carol, UserStatus::Active),
                owner(),
            ),
            (events::user_deleted(at, &actor, &carol, 2, 1), owner()),
            (events::token_issued(at, &actor, &carol, &tok, &kinds), None),
            (
                events::token_rotated(
                    at,
                    &actor,
                    &carol,
                    &tok,
                    &new_tok,
                    Some(Duration::from_secs(5)),
                ),
                token(),
            ),
            (events::token_revoked(at, &actor, &carol, &tok), token()),
            (
                events::token_revoked_as_leaked(at, &carol, &tok, "report"),
                token(),
            ),
            (
                events::pairing_requested(
                    at,
                    &actor,
                    &key,
                    &PairingRequestId::parse("pair_0123456789abcdef0123").unwrap(),
                ),
                None,
            ),
            (
                events::pairing_approved(at, &actor, &key, &carol),
                Some(Invalidation::Identity(key.clone())),
            ),
            (events::pairing_burned(at, &key.channel, 3), None),
            (
                events::identity_unlinked(at, &actor, &carol, &key),
                Some(Invalidation::Identity(key.clone())),
            ),
            (events::secret_put(at, &actor, &carol, &secret), None),
            (events::secret_deleted(at, &actor, &carol, &secret), None),
            (events::secrets_rewrapped(at, 4), None),
            (
                events::audit_anchored(at, &ownership_core::audit::AnchorDetails { heads: vec![] })
                    .unwrap(),
                None,
            ),
            (events::audit_chain_keyed(at, 1), None),
            (events::session_started(at, &carol, "oidc", None, 0), None),
            (
                events::oidc_linked(at, &actor, &carol, ("https://id.test", "sub-1"), "admin"),
                None,
            ),
            (
                events::oidc_unlinked(at, &actor, &carol, ("https://id.test", "sub-1"), 1),
                None,
            ),
            (
                events::resource_created(at, &actor, &carol, &res, std::slice::from_ref(&secret)),
                None,
            ),
            (
                events::resource_revoked(at, &actor, &carol, &res),
                Some(Invalidation::Resource(res.clone())),
            ),
            (
                events::resource_revoked_as_leaked(at, &carol, &res, "github"),
                Some(Invalidation::Resource(res.clone())),
            ),
            (
                events::webhook_set(at, &actor, &carol, "https://x.test/h"),
                None,
            ),
            (events::webhook_deleted(at, &actor, &carol), None),
            (events::webhook_secret_rotated(at, &actor, &carol, at), None),
            (
                ownership_core::provision::events::user_provisioned(
                    at,
                    &actor,
                    &PlannedUser {
                        user_id: carol.clone(),
                        role: UserRole::Member,
                        entry: 0,
                    },
                ),
                None,
            ),
            (
                ownership_core::provision::events::role_provisioned(
                    at,
                    &actor,
                    &PlannedRoleChange {
                        user_id: carol.clone(),
                        from: UserRole::Member,
                        to: UserRole::Admin,
                        entry: 0,
                    },
                ),
                owner(),
            ),
            (
                ownership_core::provision::events::token_provisioned(
                    at,
                    &actor,
                    &PlannedToken {
                        token_id: tok.clone(),
                        user_id: carol.clone(),
                        kinds: kinds.clone(),
                        label: None,
                        display_prefix: DisplayPrefix::parse("own_").unwrap(),
                        digest: TokenDigest::from_bytes([1; 32]),
                        entry: 0,
                    },
                ),
                None,
            ),
            (
                ownership_core::provision::events::provisioned_token_updated(
                    at,
                    &actor,
                    &planned_update,
                ),
                token(),
            ),
            (
                ownership_core::provision::events::provisioned_token_revoked(
                    at,
                    &actor,
                    &PlannedRevocation {
                        token_id: tok.clone(),
                        user_id: carol.clone(),
                    },
                ),
                token(),
            ),
            (
                ownership_core::passkeys::events::registered(
                    at,
                    &actor,
                    &carol,
                    &passkey,
                    &PasskeyLabel::parse("laptop").unwrap(),
                ),
                None,
            ),
            (
                ownership_core::passkeys::events::removed(at, &actor, &carol, &passkey, 1),
                None,
            ),
            (
                ownership_core::passkeys::events::signed_in(at, &carol, &passkey),
                None,
            ),
        ]
        .into_iter()
        .map(|(e, inv)| (linked(e), inv))
        .collect()
    }

    #[test]
    fn every_event_maps_to_what_it_invalidates() {
        for (event, expected) in every_event() {
            assert_eq!(invalidation_of(&event), expected, "{}", event.action);
        }
    }

    #[test]
    fn every_action_is_covered() {
        let covered: HashSet<AuditAction> = every_event().iter().map(|(e, _)| e.action).collect();
        for action in AuditAction::ALL {
            assert!(
                covered.contains(action),
                "no event of {action} in `every_event`: add one with what it invalidates"
            );
        }
    }

    #[test]
    fn an_unreadable_event_flushes_everything() {
        for (mut event, expected) in every_event() {
            if expected.is_none() || expected == Some(Invalidation::All) {
                continue;
            }
            event.target = "not an id/".into();
            assert_eq!(
                invalidation_of(&event),
                Some(Invalidation::All),
                "{}",
                event.action
            );
        }
        let (mut provisioned, _) = every_event()
            .into_iter()
            .find(|(e, _)| e.action == AuditAction::TokenProvisioned)
            .unwrap();
        provisioned.details = "{\"outcome\":\"something new\"}".into();
        assert_eq!(invalidation_of(&provisioned), Some(Invalidation::All));
    }

    #[test]
    fn every_action_has_an_effect() {
        for action in AuditAction::ALL {
            assert!(
                effect(*action).is_some(),
                "{action} has no cache effect: add it to `effect`"
            );
        }
    }
}
