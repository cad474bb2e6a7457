//! The re-reads every mutation under an `AdminScope` or a `MintPermit` makes inside its
//! write transaction ([`AdminScope::recheck`](ownership_core::authz::AdminScope::recheck), `MintPermit::recheck`): who acts, as their
//! account is now, read under the audit-head lock. A leaf module, so that users, tokens,
//! pairing and provisioning can all use it without depending on each other.

use ownership_core::authz::ActorState;
use ownership_core::{OwnerId, Result, UserRole, UserStatus};
use sqlx::postgres::PgConnection;

use super::support::{parsed, query, unavailable};

/// A user's role and status, as [`AdminScope::recheck`](ownership_core::authz::AdminScope::recheck) and
/// [`ownership_core::authz::MintPermit::recheck`] read them; `None` when there is no such
/// user.
pub(super) async fn actor_state(
    conn: &mut PgConnection,
    id: &OwnerId,
) -> Result<Option<ActorState>> {
    query("SELECT role, status FROM users WHERE id = $1")
        .bind(id.as_str())
        .fetch_optional(conn)
        .await
        .map_err(unavailable)?
        .map(|row| {
            Ok(ActorState {
                role: parsed(&row, "role", UserRole::parse)?,
                status: parsed(&row, "status", UserStatus::parse)?,
            })
        })
        .transpose()
}
