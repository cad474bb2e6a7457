//! The audit events of each use case, built once so both backends record exactly the same
//! thing. Details never carry secret values: ids, names, roles and counts only.

use std::time::Duration;

use crate::audit::{AuditAction, NewAuditEvent};
use crate::authz::Actor;
use crate::ids::{ChannelKey, ChannelName, PairingRequestId, ResourceId, SecretName, TokenId};
use crate::{OwnerId, TokenKinds, UserRole, UserStatus};
use serde_json::json;
use time::OffsetDateTime;

/// `channel/external_id`, the audit target of a chat account.
pub fn channel_target(key: &ChannelKey) -> String {
    format!("{}/{}", key.channel, key.external_id)
}

/// `owner.bootstrapped`.
pub fn owner_bootstrapped(at: OffsetDateTime, owner: &OwnerId, token: &TokenId) -> NewAuditEvent {
    NewAuditEvent::new(
        at,
        Actor::Bootstrap,
        Some(owner.clone()),
        AuditAction::OwnerBootstrapped,
        owner.as_str(),
        &json!({"token_id": token}),
    )
}

/// `token.legacy_installed`.
pub fn legacy_installed(
    at: OffsetDateTime,
    owner: &OwnerId,
    token: &TokenId,
    replaced: bool,
) -> NewAuditEvent {
    let how = if replaced { "replaced" } else { "installed" };
    NewAuditEvent::new(
        at,
        Actor::Bootstrap,
        Some(owner.clone()),
        AuditAction::LegacyTokenInstalled,
        token.as_str(),
        &json!({"outcome": how}),
    )
}

/// `user.created`.
pub fn user_created(
    at: OffsetDateTime,
    actor: &Actor,
    user: &OwnerId,
    role: UserRole,
    token: &TokenId,
) -> NewAuditEvent {
    NewAuditEvent::new(
        at,
        actor.clone(),
        Some(user.clone()),
        AuditAction::UserCreated,
        user.as_str(),
        &json!({"role": role.as_str(), "token_id": token}),
    )
}

/// `user.role_changed`.
pub fn user_role_changed(
    at: OffsetDateTime,
    actor: &Actor,
    user: &OwnerId,
    from: UserRole,
    to: UserRole,
) -> NewAuditEvent {
    NewAuditEvent::new(
        at,
        actor.clone(),
        Some(user.clone()),
        AuditAction::UserRoleChanged,
        user.as_str(),
        &json!({"from": from.as_str(), "to": to.as_str()}),
    )
}

/// `user.suspended` or `user.resumed`.
pub fn user_status_changed(
    at: OffsetDateTime,
    actor: &Actor,
    user: &OwnerId,
    to: UserStatus,
) -> NewAuditEvent {
    let action = match to {
        UserStatus::Suspended => AuditAction::UserSuspended,
        UserStatus::Active => AuditAction::UserResumed,
    };
    NewAuditEvent::new(
        at,
        actor.clone(),
        Some(user.clone()),
        action,
        user.as_str(),
        &json!({}),
    )
}

/// `user.deleted`, with what went with the user.
pub fn user_deleted(
    at: OffsetDateTime,
    actor: &Actor,
    user: &OwnerId,
    tokens: u64,
    identities: u64,
) -> NewAuditEvent {
    NewAuditEvent::new(
        at,
        actor.clone(),
        Some(user.clone()),
        AuditAction::UserDeleted,
        user.as_str(),
        &json!({"tokens_revoked": tokens, "identities_removed": identities}),
    )
}

/// `token.issued`.
pub fn token_issued(
    at: OffsetDateTime,
    actor: &Actor,
    owner: &OwnerId,
    token: &TokenId,
    kinds: &TokenKinds,
) -> NewAuditEvent {
    NewAuditEvent::new(
        at,
        actor.clone(),
        Some(owner.clone()),
        AuditAction::TokenIssued,
        token.as_str(),
        &json!({"kinds": kinds.to_csv()}),
    )
}

/// `token.rotated`.
pub fn token_rotated(
    at: OffsetDateTime,
    actor: &Actor,
    owner: &OwnerId,
    old: &TokenId,
    new: &TokenId,
    grace: Option<Duration>,
) -> NewAuditEvent {
    NewAuditEvent::new(
        at,
        actor.clone(),
        Some(owner.clone()),
        AuditAction::TokenRotated,
        old.as_str(),
        &json!({"new_token_id": new, "grace_seconds": grace.map_or(0, |g| g.as_secs())}),
    )
}

/// `token.revoked`.
pub fn token_revoked(
    at: OffsetDateTime,
    actor: &Actor,
    owner: &OwnerId,
    token: &TokenId,
) -> NewAuditEvent {
    NewAuditEvent::new(
        at,
        actor.clone(),
        Some(owner.clone()),
        AuditAction::TokenRevoked,
        token.as_str(),
        &json!({}),
    )
}

/// `token.revoked_as_leaked`: `source` says who reported it (`report`: anyone holding the
/// value, through the public endpoint; `github`: GitHub's secret scanning).
pub fn token_revoked_as_leaked(
    at: OffsetDateTime,
    owner: &OwnerId,
    token: &TokenId,
    source: &str,
) -> NewAuditEvent {
    NewAuditEvent::new(
        at,
        Actor::System,
        Some(owner.clone()),
        AuditAction::TokenRevokedAsLeaked,
        token.as_str(),
        &json!({"source": source}),
    )
}

/// `pairing.requested` (never the code).
pub fn pairing_requested(
    at: OffsetDateTime,
    actor: &Actor,
    key: &ChannelKey,
    request: &PairingRequestId,
) -> NewAuditEvent {
    NewAuditEvent::new(
        at,
        actor.clone(),
        None,
        AuditAction::PairingRequested,
        channel_target(key),
        &json!({"request_id": request}),
    )
}

/// `pairing.approved`: a chat account bound to `owner`.
pub fn pairing_approved(
    at: OffsetDateTime,
    actor: &Actor,
    key: &ChannelKey,
    owner: &OwnerId,
) -> NewAuditEvent {
    NewAuditEvent::new(
        at,
        actor.clone(),
        Some(owner.clone()),
        AuditAction::PairingApproved,
        channel_target(key),
        &json!({}),
    )
}

/// `pairing.burned`.
pub fn pairing_burned(at: OffsetDateTime, channel: &ChannelName, count: u64) -> NewAuditEvent {
    NewAuditEvent::new(
        at,
        Actor::System,
        None,
        AuditAction::PairingBurned,
        channel.as_str(),
        &json!({"burned": count}),
    )
}

/// `identity.unlinked`.
pub fn identity_unlinked(
    at: OffsetDateTime,
    actor: &Actor,
    owner: &OwnerId,
    key: &ChannelKey,
) -> NewAuditEvent {
    NewAuditEvent::new(
        at,
        actor.clone(),
        Some(owner.clone()),
        AuditAction::IdentityUnlinked,
        channel_target(key),
        &json!({}),
    )
}

/// `secret.put` (the name only).
pub fn secret_put(
    at: OffsetDateTime,
    actor: &Actor,
    owner: &OwnerId,
    name: &SecretName,
) -> NewAuditEvent {
    NewAuditEvent::new(
        at,
        actor.clone(),
        Some(owner.clone()),
        AuditAction::SecretPut,
        name.as_str(),
        &json!({}),
    )
}

/// `secret.deleted`.
pub fn secret_deleted(
    at: OffsetDateTime,
    actor: &Actor,
    owner: &OwnerId,
    name: &SecretName,
) -> NewAuditEvent {
    NewAuditEvent::new(
        at,
        actor.clone(),
        Some(owner.clone()),
        AuditAction::SecretDeleted,
        name.as_str(),
        &json!({}),
    )
}

/// `audit.chain_keyed`: from here on every link is keyed under the chain key of master
/// key `version`.
pub fn audit_chain_keyed(at: OffsetDateTime, version: u32) -> NewAuditEvent {
    NewAuditEvent::new(
        at,
        Actor::System,
        None,
        AuditAction::AuditChainKeyed,
        "audit_chain",
        &json!({"master_key_version": version}),
    )
}

/// `secrets.rewrapped`.
pub fn secrets_rewrapped(at: OffsetDateTime, count: u64) -> NewAuditEvent {
    NewAuditEvent::new(
        at,
        Actor::System,
        None,
        AuditAction::SecretsRewrapped,
        "data_keys",
        &json!({"rewrapped": count}),
    )
}

/// `resource.created`.
pub fn resource_created(
    at: OffsetDateTime,
    actor: &Actor,
    owner: &OwnerId,
    id: &ResourceId,
    grants: &[SecretName],
) -> NewAuditEvent {
    NewAuditEvent::new(
        at,
        actor.clone(),
        Some(owner.clone()),
        AuditAction::ResourceCreated,
        id.as_str(),
        &json!({"grants": grants}),
    )
}

/// `resource.revoked`.
pub fn resource_revoked(
    at: OffsetDateTime,
    actor: &Actor,
    owner: &OwnerId,
    id: &ResourceId,
) -> NewAuditEvent {
    NewAuditEvent::new(
        at,
        actor.clone(),
        Some(owner.clone()),
        AuditAction::ResourceRevoked,
        id.as_str(),
        &json!({}),
    )
}

/// `resource.revoked_as_leaked`: the resource credential's value was reported leaked;
/// `source` as for [`token_revoked_as_leaked`].
pub fn resource_revoked_as_leaked(
    at: OffsetDateTime,
    owner: &OwnerId,
    id: &ResourceId,
    source: &str,
) -> NewAuditEvent {
    NewAuditEvent::new(
        at,
        Actor::System,
        Some(owner.clone()),
        AuditAction::ResourceRevokedAsLeaked,
        id.as_str(),
        &json!({"source": source}),
    )
}

/// `webhook.set`. The URL is recorded without user information, query or fragment
/// ([`crate::ids::redacted_url`]): the audit trail is read by Admins, streamed and
/// delivered, and a receiver's secret often rides in the query.
pub fn webhook_set(at: OffsetDateTime, actor: &Actor, owner: &OwnerId, url: &str) -> NewAuditEvent {
    NewAuditEvent::new(
        at,
        actor.clone(),
        Some(owner.clone()),
        AuditAction::WebhookSet,
        owner.as_str(),
        &json!({"url": crate::ids::redacted_url(url)}),
    )
}

/// `webhook.deleted`.
pub fn webhook_deleted(at: OffsetDateTime, actor: &Actor, owner: &OwnerId) -> NewAuditEvent {
    NewAuditEvent::new(
        at,
        actor.clone(),
        Some(owner.clone()),
        AuditAction::WebhookDeleted,
        owner.as_str(),
        &json!({}),
    )
}

/// `webhook.secret_rotated`.
pub fn webhook_secret_rotated(
    at: OffsetDateTime,
    actor: &Actor,
    owner: &OwnerId,
    grace_until: OffsetDateTime,
) -> NewAuditEvent {
    NewAuditEvent::new(
        at,
        actor.clone(),
        Some(owner.clone()),
        AuditAction::WebhookSecretRotated,
        owner.as_str(),
        &json!({"previous_valid_until": crate::audit::rfc3339(grace_until)}),
    )
}

/// `session.started`: a console sign-in, with how (`token`, `oidc`, `passkey`), the token
/// it was made with (a token sign-in) and how many older sessions it ended.
pub fn session_started(
    at: OffsetDateTime,
    owner: &OwnerId,
    method: &str,
    token: Option<&TokenId>,
    evicted: u64,
) -> NewAuditEvent {
    NewAuditEvent::new(
        at,
        Actor::User(owner.clone()),
        Some(owner.clone()),
        AuditAction::SessionStarted,
        owner.as_str(),
        &json!({"method": method, "token_id": token, "evicted": evicted}),
    )
}

/// `oidc.linked`: an identity-provider account linked to a user, by an Admin (`admin`)
/// or at its first sign-in from an allow-listed verified email (`verified_email`).
pub fn oidc_linked(
    at: OffsetDateTime,
    actor: &Actor,
    user: &OwnerId,
    (issuer, subject): (&str, &str),
    via: &str,
) -> NewAuditEvent {
    NewAuditEvent::new(
        at,
        actor.clone(),
        Some(user.clone()),
        AuditAction::OidcLinked,
        user.as_str(),
        &json!({"issuer": issuer, "subject": subject, "via": via}),
    )
}

/// `oidc.unlinked`, with how many of the user's provider sessions it ended.
pub fn oidc_unlinked(
    at: OffsetDateTime,
    actor: &Actor,
    user: &OwnerId,
    (issuer, subject): (&str, &str),
    sessions_ended: u64,
) -> NewAuditEvent {
    NewAuditEvent::new(
        at,
        actor.clone(),
        Some(user.clone()),
        AuditAction::OidcUnlinked,
        user.as_str(),
        &json!({"issuer": issuer, "subject": subject, "sessions_ended": sessions_ended}),
    )
}
