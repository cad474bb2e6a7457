//! The re-reads every mutation under an `AdminScope` or a `MintPermit` makes inside its
//! write transaction ([`AdminScope::recheck`](ownership_core::authz::AdminScope::recheck), `MintPermit::recheck`): who acts, as their
//! account is now. A leaf module, so that users, tokens, pairing and provisioning can all
//! use it without depending on each other.

use ::libsql::Connection;
use ownership_core::authz::ActorState;
use ownership_core::{OwnerId, Result, UserRole, UserStatus};

use super::conn::{args, parsed, query_opt};

/// A user's role and status, as [`AdminScope::recheck`](ownership_core::authz::AdminScope::recheck) and
/// [`ownership_core::authz::MintPermit::recheck`] read them; `None` when there is no such
/// user.
pub(super) async fn actor_state(conn: &Connection, id: &OwnerId) -> Result<Option<ActorState>> {
    query_opt(
        conn,
        "SELECT role, status FROM users WHERE id = ?1",
        args![id.as_str()],
    )
    .await?
    .map(|row| {
        Ok(ActorState {
            role: parsed(&row, 0, "user role", UserRole::parse)?,
            status: parsed(&row, 1, "user status", UserStatus::parse)?,
        })
    })
    .transpose()
}
