//! The audit events of provisioning a user-token table.

use crate::audit::{AuditAction, NewAuditEvent};
use crate::authz::Actor;
use crate::provision::{
    PlannedRevocation, PlannedRoleChange, PlannedToken, PlannedTokenUpdate, PlannedUser,
    ProvisionPlan,
};
use serde_json::json;
use time::OffsetDateTime;

/// `user.created` for a user a static token table created (no first token: the table's
/// tokens follow as `token.provisioned`).
pub fn user_provisioned(at: OffsetDateTime, actor: &Actor, user: &PlannedUser) -> NewAuditEvent {
    NewAuditEvent::new(
        at,
        actor.clone(),
        Some(user.user_id.clone()),
        AuditAction::UserCreated,
        user.user_id.as_str(),
        &json!({"role": user.role.as_str(), "provisioned": true}),
    )
}

/// `user.role_changed` by a static token table.
pub fn role_provisioned(
    at: OffsetDateTime,
    actor: &Actor,
    change: &PlannedRoleChange,
) -> NewAuditEvent {
    NewAuditEvent::new(
        at,
        actor.clone(),
        Some(change.user_id.clone()),
        AuditAction::UserRoleChanged,
        change.user_id.as_str(),
        &json!({"from": change.from.as_str(), "to": change.to.as_str(), "provisioned": true}),
    )
}

/// `token.provisioned`: a token of a static table was added (never its value or digest).
pub fn token_provisioned(at: OffsetDateTime, actor: &Actor, token: &PlannedToken) -> NewAuditEvent {
    NewAuditEvent::new(
        at,
        actor.clone(),
        Some(token.user_id.clone()),
        AuditAction::TokenProvisioned,
        token.token_id.as_str(),
        &json!({"outcome": "added", "kinds": token.kinds.to_csv()}),
    )
}

/// `token.provisioned`: a provisioned token's kinds or label changed in place.
pub fn provisioned_token_updated(
    at: OffsetDateTime,
    actor: &Actor,
    update: &PlannedTokenUpdate,
) -> NewAuditEvent {
    NewAuditEvent::new(
        at,
        actor.clone(),
        Some(update.user_id.clone()),
        AuditAction::TokenProvisioned,
        update.token_id.as_str(),
        &json!({
            "outcome": "updated",
            "kinds": update.kinds.to_csv(),
            "previous_kinds": update.previous_kinds.to_csv(),
            "label_changed": update.label != update.previous_label,
        }),
    )
}

/// `token.revoked` of a provisioned token whose entry left the table.
pub fn provisioned_token_revoked(
    at: OffsetDateTime,
    actor: &Actor,
    revocation: &PlannedRevocation,
) -> NewAuditEvent {
    NewAuditEvent::new(
        at,
        actor.clone(),
        Some(revocation.user_id.clone()),
        AuditAction::TokenRevoked,
        revocation.token_id.as_str(),
        &json!({"provisioned": true}),
    )
}

/// Every event of an applied provisioning plan, in the order both backends append them:
/// users created, roles changed, tokens added, tokens updated, tokens revoked. Empty for
/// an empty plan (an unchanged table writes no event).
pub fn provisioned(at: OffsetDateTime, actor: &Actor, plan: &ProvisionPlan) -> Vec<NewAuditEvent> {
    plan.users_created
        .iter()
        .map(|u| user_provisioned(at, actor, u))
        .chain(
            plan.roles_changed
                .iter()
                .map(|c| role_provisioned(at, actor, c)),
        )
        .chain(
            plan.tokens_added
                .iter()
                .map(|t| token_provisioned(at, actor, t)),
        )
        .chain(
            plan.tokens_updated
                .iter()
                .map(|u| provisioned_token_updated(at, actor, u)),
        )
        .chain(
            plan.tokens_revoked
                .iter()
                .map(|r| provisioned_token_revoked(at, actor, r)),
        )
        .collect()
}
