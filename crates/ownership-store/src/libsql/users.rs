//! Users: the first Owner, the legacy token, creation, roles, status and deletion, each
//! checked by the rules of `ownership_core::authz` inside the transaction that applies it.

use ::libsql::{Connection, Value};
use async_trait::async_trait;
use ownership_core::authz::{
    AdminScope, TargetState, check_create, check_delete, check_role_change, check_status_change,
};
use ownership_core::ports::{
    LegacyOutcome, NewToken, Page, PageRequest, TokenOrigin, User, UserStore,
};
use ownership_core::{Error, OwnerId, Result, UserRole, UserStatus};
use time::OffsetDateTime;

use super::LibsqlStore;
use super::audit::append_audit;
use super::conn::{
    args, exec, exists, micros, now_of, page_limit, parsed, query_all, query_i64, query_opt,
    time_at,
};
use super::recheck::current_scope;
use super::tokens::insert_first_token;
use ownership_core::events;

const USER_COLS: &str = "id, role, status, created_at";

fn user_from(row: &[Value]) -> Result<User> {
    Ok(User {
        id: parsed(row, 0, "user id", OwnerId::parse)?,
        role: parsed(row, 1, "user role", UserRole::parse)?,
        status: parsed(row, 2, "user status", UserStatus::parse)?,
        created_at: time_at(row, 3)?,
    })
}

/// One user by id.
pub(super) async fn user(conn: &Connection, id: &OwnerId) -> Result<Option<User>> {
    let sql = format!("SELECT {USER_COLS} FROM users WHERE id = ?1");
    query_opt(conn, &sql, args![id.as_str()])
        .await?
        .map(|row| user_from(&row))
        .transpose()
}

/// One user by id, only if active.
pub(super) async fn active_user(conn: &Connection, id: &OwnerId) -> Result<Option<User>> {
    Ok(user(conn, id)
        .await?
        .filter(|u| u.status == UserStatus::Active))
}

/// Inserts an active user; Conflict if the id is taken.
pub(super) async fn insert_user(
    conn: &Connection,
    id: &OwnerId,
    role: UserRole,
    now: OffsetDateTime,
) -> Result<User> {
    if user(conn, id).await?.is_some() {
        return Err(Error::Conflict(format!("user `{id}` already exists")));
    }
    let at = micros(now)?;
    exec(
        conn,
        "INSERT INTO users (id, role, status, created_at, updated_at) VALUES (?1, ?2, 'active', ?3, ?3)",
        args![id.as_str(), role.as_str(), at],
    )
    .await?;
    user(conn, id)
        .await?
        .ok_or_else(|| super::conn::integrity("inserted user"))
}

/// The target of a management rule and the count of active Owners, read in the transaction
/// that will apply the change. NotFound if the target is absent.
async fn target_state(conn: &Connection, id: &OwnerId) -> Result<(User, TargetState)> {
    let target = user(conn, id).await?.ok_or(Error::NotFound)?;
    let owners = query_i64(
        conn,
        "SELECT COUNT(*) FROM users WHERE role = 'owner' AND status = 'active'",
        Vec::new(),
    )
    .await?;
    let state = TargetState {
        role: target.role,
        status: target.status,
        active_owners: u64::try_from(owners).map_err(|_| super::conn::integrity("owner count"))?,
    };
    Ok((target, state))
}

#[async_trait]
impl UserStore for LibsqlStore {
    async fn bootstrap_owner(&self, owner: &OwnerId, token: NewToken) -> Result<User> {
        let owner = owner.clone();
        let clock = self.clock.clone();
        self.worker
            .write(async move |c: &Connection| {
                let now = now_of(clock.as_ref());
                if exists(
                    c,
                    "SELECT 1 FROM users WHERE role = 'owner' LIMIT 1",
                    Vec::new(),
                )
                .await?
                {
                    return Err(Error::Conflict("an Owner already exists".into()));
                }
                let user = insert_user(c, &owner, UserRole::Owner, now).await?;
                let record =
                    insert_first_token(c, &owner, &token, TokenOrigin::Issued, now).await?;
                append_audit(c, events::owner_bootstrapped(now, &owner, &record.id)).await?;
                Ok(user)
            })
            .await
    }

    async fn install_legacy_token(
        &self,
        owner: &OwnerId,
        token: NewToken,
    ) -> Result<LegacyOutcome> {
        let owner = owner.clone();
        let clock = self.clock.clone();
        self.worker
            .write(async move |c: &Connection| {
                let now = now_of(clock.as_ref());
                let at = micros(now)?;
                let digest = token.fresh.digest.as_bytes().as_slice();
                let same = query_opt(
                    c,
                    "SELECT owner_id, origin, revoked_at, expires_at FROM tokens WHERE digest = ?1",
                    args![digest],
                )
                .await?;
                if let Some(row) = same {
                    let holder = parsed(&row, 0, "token owner", OwnerId::parse)?;
                    let origin = parsed(&row, 1, "token origin", TokenOrigin::parse)?;
                    let revoked = super::conn::opt_time(&row, 2)?;
                    let expires = super::conn::opt_time(&row, 3)?;
                    let live = revoked.is_none_or(|t| t > now) && expires.is_none_or(|t| t > now);
                    if holder == owner && origin == TokenOrigin::Legacy && live {
                        return Ok(LegacyOutcome::Unchanged);
                    }
                    // The value is stored already but revoked, expired or someone else's:
                    // never revive a revoked credential or move one to another owner.
                    return Err(Error::Conflict(
                        "the configured legacy token was revoked or is in use; configure a new value".into(),
                    ));
                }
                if user(c, &owner).await?.is_none() {
                    insert_user(c, &owner, UserRole::Owner, now).await?;
                }
                let revoked = exec(
                    c,
                    "UPDATE tokens SET revoked_at = ?1 WHERE origin = 'legacy' \
                     AND (revoked_at IS NULL OR revoked_at > ?1) AND (expires_at IS NULL OR expires_at > ?1)",
                    args![at],
                )
                .await?;
                let outcome = if revoked > 0 { LegacyOutcome::Replaced } else { LegacyOutcome::Installed };
                let record = insert_first_token(c, &owner, &token, TokenOrigin::Legacy, now).await?;
                append_audit(c, events::legacy_installed(now, &owner, &record.id, outcome)).await?;
                Ok(outcome)
            })
            .await
    }

    async fn has_owner(&self) -> Result<bool> {
        self.worker
            .read(async move |c: &Connection| {
                exists(
                    c,
                    "SELECT 1 FROM users WHERE role = 'owner' LIMIT 1",
                    Vec::new(),
                )
                .await
            })
            .await
    }

    async fn create_user(
        &self,
        scope: &AdminScope,
        id: &OwnerId,
        role: UserRole,
        first_token: NewToken,
    ) -> Result<User> {
        let scope = scope.clone();
        let id = id.clone();
        let clock = self.clock.clone();
        self.worker
            .write(async move |c: &Connection| {
                let now = now_of(clock.as_ref());
                let scope = current_scope(c, &scope).await?;
                check_create(&scope, role)?;
                let user = insert_user(c, &id, role, now).await?;
                let record =
                    insert_first_token(c, &id, &first_token, TokenOrigin::Issued, now).await?;
                append_audit(
                    c,
                    events::user_created(now, scope.actor(), &id, role, &record.id),
                )
                .await?;
                Ok(user)
            })
            .await
    }

    async fn get_user(&self, _scope: &AdminScope, id: &OwnerId) -> Result<User> {
        let id = id.clone();
        self.worker
            .read(async move |c: &Connection| user(c, &id).await?.ok_or(Error::NotFound))
            .await
    }

    async fn list_users(&self, _scope: &AdminScope, page: &PageRequest) -> Result<Page<User>> {
        let after = page.after.clone();
        let limit = page_limit(page.limit);
        let rows = self
            .worker
            .read(async move |c: &Connection| match after {
                Some(after) => {
                    let sql =
                        format!("SELECT {USER_COLS} FROM users WHERE id > ?1 ORDER BY id LIMIT ?2");
                    query_all(c, &sql, args![after, limit]).await
                }
                None => {
                    let sql = format!("SELECT {USER_COLS} FROM users ORDER BY id LIMIT ?1");
                    query_all(c, &sql, args![limit]).await
                }
            })
            .await?;
        let mut items = rows
            .iter()
            .map(|r| user_from(r))
            .collect::<Result<Vec<_>>>()?;
        let wanted = usize::try_from(limit - 1).unwrap_or(usize::MAX);
        let next = if items.len() > wanted {
            items.truncate(wanted);
            items.last().map(|u| u.id.as_str().to_owned())
        } else {
            None
        };
        Ok(Page { items, next })
    }

    async fn set_role(&self, scope: &AdminScope, id: &OwnerId, role: UserRole) -> Result<User> {
        let scope = scope.clone();
        let id = id.clone();
        let clock = self.clock.clone();
        self.worker
            .write(async move |c: &Connection| {
                let now = now_of(clock.as_ref());
                let scope = current_scope(c, &scope).await?;
                let (target, state) = target_state(c, &id).await?;
                check_role_change(&scope, &id, &state, role)?;
                exec(
                    c,
                    "UPDATE users SET role = ?1, updated_at = ?2 WHERE id = ?3",
                    args![role.as_str(), micros(now)?, id.as_str()],
                )
                .await?;
                append_audit(
                    c,
                    events::user_role_changed(now, scope.actor(), &id, target.role, role),
                )
                .await?;
                user(c, &id).await?.ok_or(Error::NotFound)
            })
            .await
    }

    async fn set_status(
        &self,
        scope: &AdminScope,
        id: &OwnerId,
        status: UserStatus,
    ) -> Result<User> {
        let scope = scope.clone();
        let id = id.clone();
        let clock = self.clock.clone();
        self.worker
            .write(async move |c: &Connection| {
                let now = now_of(clock.as_ref());
                let scope = current_scope(c, &scope).await?;
                let (_, state) = target_state(c, &id).await?;
                check_status_change(&scope, &id, &state, status)?;
                exec(
                    c,
                    "UPDATE users SET status = ?1, updated_at = ?2 WHERE id = ?3",
                    args![status.as_str(), micros(now)?, id.as_str()],
                )
                .await?;
                append_audit(
                    c,
                    events::user_status_changed(now, scope.actor(), &id, status),
                )
                .await?;
                user(c, &id).await?.ok_or(Error::NotFound)
            })
            .await
    }

    async fn delete_user(&self, scope: &AdminScope, id: &OwnerId) -> Result<()> {
        let scope = scope.clone();
        let id = id.clone();
        let clock = self.clock.clone();
        self.worker
            .write(async move |c: &Connection| {
                let now = now_of(clock.as_ref());
                let at = micros(now)?;
                let scope = current_scope(c, &scope).await?;
                let (_, state) = target_state(c, &id).await?;
                check_delete(&scope, &id, &state)?;
                let tokens = query_i64(
                    c,
                    "SELECT COUNT(*) FROM tokens WHERE owner_id = ?1 \
                     AND (revoked_at IS NULL OR revoked_at > ?2) AND (expires_at IS NULL OR expires_at > ?2)",
                    args![id.as_str(), at],
                )
                .await?;
                let identities = query_i64(
                    c,
                    "SELECT COUNT(*) FROM channel_identities WHERE owner_id = ?1",
                    args![id.as_str()],
                )
                .await?;
                // ON DELETE CASCADE removes tokens, identities, the data key, secrets,
                // resources and their grants, the webhook endpoint and deliveries.
                let deleted = exec(c, "DELETE FROM users WHERE id = ?1", args![id.as_str()]).await?;
                if deleted != 1 {
                    return Err(Error::NotFound);
                }
                let count = |n: i64| u64::try_from(n).unwrap_or(0);
                append_audit(c, events::user_deleted(now, scope.actor(), &id, count(tokens), count(identities))).await?;
                Ok(())
            })
            .await
    }
}
