//! [`UserStore`]: the first Owner, the legacy token, and user management under the
//! last-Owner rules of `ownership_core::authz`.

use async_trait::async_trait;
use ownership_core::authz::{self, AdminScope, TargetState};
use ownership_core::ports::{
    LegacyOutcome, NewToken, Page, PageRequest, TokenOrigin, User, UserStore,
};
use ownership_core::{Error, OwnerId, Result, TokenKinds, UserRole, UserStatus};
use sqlx::postgres::{PgConnection, PgRow};
use time::OffsetDateTime;

use super::PgStore;
use super::recheck::current_scope;
use super::support::{
    Write, col, count_col, limit_plus_one, owner_col, parsed, take_page, unavailable,
    unique_or_unavailable,
};
use super::support::{query, query_scalar};
use super::tokens::insert_token;
use ownership_core::events;

/// A `users` row (`id, role, status, created_at`).
pub(super) fn user_from_row(row: &PgRow) -> Result<User> {
    Ok(User {
        id: owner_col(row, "id")?,
        role: parsed(row, "role", UserRole::parse)?,
        status: parsed(row, "status", UserStatus::parse)?,
        created_at: col(row, "created_at")?,
    })
}

/// One user by id.
async fn find_user(conn: &mut PgConnection, id: &OwnerId) -> Result<Option<User>> {
    let row = query("SELECT id, role, status, created_at FROM users WHERE id = $1")
        .bind(id.as_str())
        .fetch_optional(conn)
        .await
        .map_err(unavailable)?;
    row.as_ref().map(user_from_row).transpose()
}

/// Whether any Owner exists, active or not.
async fn any_owner(conn: &mut PgConnection) -> Result<bool> {
    query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE role = 'owner')")
        .fetch_one(conn)
        .await
        .map_err(unavailable)
}

/// How many Owners are active.
pub(super) async fn active_owners(conn: &mut PgConnection) -> Result<u64> {
    let row = query("SELECT count(*) AS n FROM users WHERE role = 'owner' AND status = 'active'")
        .fetch_one(conn)
        .await
        .map_err(unavailable)?;
    count_col(&row, "n")
}

/// Inserts an active user; Conflict if the id is taken.
pub(super) async fn insert_user(
    conn: &mut PgConnection,
    id: &OwnerId,
    role: UserRole,
    now: OffsetDateTime,
) -> Result<User> {
    query(
        "INSERT INTO users (id, role, status, created_at, updated_at) VALUES ($1, $2, 'active', $3, $3)",
    )
    .bind(id.as_str())
    .bind(role.as_str())
    .bind(now)
    .execute(conn)
    .await
    .map_err(|e| unique_or_unavailable(e, "a user with this id already exists"))?;
    Ok(User {
        id: id.clone(),
        role,
        status: UserStatus::Active,
        created_at: now,
    })
}

/// The target of a management rule and the state the rule needs, read under the lock.
async fn target_state(conn: &mut PgConnection, id: &OwnerId) -> Result<(User, TargetState)> {
    let user = find_user(&mut *conn, id).await?.ok_or(Error::NotFound)?;
    let state = TargetState {
        role: user.role,
        status: user.status,
        active_owners: active_owners(conn).await?,
    };
    Ok((user, state))
}

#[async_trait]
impl UserStore for PgStore {
    async fn bootstrap_owner(&self, owner: &OwnerId, token: NewToken) -> Result<User> {
        let mut w = Write::begin(&self.pool, self.clock.as_ref()).await?;
        let now = w.now();
        if any_owner(w.conn()).await? {
            return Err(Error::Conflict("an Owner already exists".into()));
        }
        let user = insert_user(w.conn(), owner, UserRole::Owner, now).await?;
        insert_token(
            w.conn(),
            owner,
            &token,
            &TokenKinds::manage_api(),
            TokenOrigin::Issued,
            now,
        )
        .await?;
        w.audit(events::owner_bootstrapped(now, owner, &token.fresh.id))
            .await?;
        w.commit().await?;
        Ok(user)
    }

    async fn install_legacy_token(
        &self,
        owner: &OwnerId,
        token: NewToken,
    ) -> Result<LegacyOutcome> {
        let mut w = Write::begin(&self.pool, self.clock.as_ref()).await?;
        let now = w.now();
        let same =
            query("SELECT owner_id, origin, revoked_at, expires_at FROM tokens WHERE digest = $1")
                .bind(token.fresh.digest.as_bytes().as_slice())
                .fetch_optional(w.conn())
                .await
                .map_err(unavailable)?;
        if let Some(row) = same {
            let holder = owner_col(&row, "owner_id")?;
            let origin = parsed(&row, "origin", TokenOrigin::parse)?;
            let revoked_at: Option<OffsetDateTime> = col(&row, "revoked_at")?;
            let expires_at: Option<OffsetDateTime> = col(&row, "expires_at")?;
            let live = revoked_at.is_none_or(|at| at > now) && expires_at.is_none_or(|at| at > now);
            if holder == *owner && origin == TokenOrigin::Legacy && live {
                return Ok(LegacyOutcome::Unchanged);
            }
            // Stored already but revoked, expired or someone else's: a revoked credential
            // is never revived and a credential never moves to another owner.
            return Err(Error::Conflict(
                "the configured legacy token was revoked or is in use; configure a new value"
                    .into(),
            ));
        }
        if find_user(w.conn(), owner).await?.is_none() {
            insert_user(w.conn(), owner, UserRole::Owner, now).await?;
        }
        let revoked = query(
            "UPDATE tokens SET revoked_at = $1
             WHERE origin = 'legacy'
               AND (revoked_at IS NULL OR revoked_at > $1)
               AND (expires_at IS NULL OR expires_at > $1)",
        )
        .bind(now)
        .execute(w.conn())
        .await
        .map_err(unavailable)?
        .rows_affected();
        insert_token(
            w.conn(),
            owner,
            &token,
            &TokenKinds::manage_api(),
            TokenOrigin::Legacy,
            now,
        )
        .await?;
        let outcome = if revoked > 0 {
            LegacyOutcome::Replaced
        } else {
            LegacyOutcome::Installed
        };
        w.audit(events::legacy_installed(
            now,
            owner,
            &token.fresh.id,
            outcome,
        ))
        .await?;
        w.commit().await?;
        Ok(outcome)
    }

    async fn has_owner(&self) -> Result<bool> {
        let mut conn = self.reads().acquire().await.map_err(unavailable)?;
        any_owner(&mut conn).await
    }

    async fn create_user(
        &self,
        scope: &AdminScope,
        id: &OwnerId,
        role: UserRole,
        first_token: NewToken,
    ) -> Result<User> {
        let mut w = Write::begin(&self.pool, self.clock.as_ref()).await?;
        let now = w.now();
        let scope = &current_scope(w.conn(), scope).await?;
        authz::check_create(scope, role)?;
        if find_user(w.conn(), id).await?.is_some() {
            return Err(Error::Conflict("a user with this id already exists".into()));
        }
        let user = insert_user(w.conn(), id, role, now).await?;
        insert_token(
            w.conn(),
            id,
            &first_token,
            &TokenKinds::manage_api(),
            TokenOrigin::Issued,
            now,
        )
        .await?;
        w.audit(events::user_created(
            now,
            scope.actor(),
            id,
            role,
            &first_token.fresh.id,
        ))
        .await?;
        w.commit().await?;
        Ok(user)
    }

    async fn get_user(&self, _scope: &AdminScope, id: &OwnerId) -> Result<User> {
        let mut conn = self.reads().acquire().await.map_err(unavailable)?;
        find_user(&mut conn, id).await?.ok_or(Error::NotFound)
    }

    async fn list_users(&self, _scope: &AdminScope, page: &PageRequest) -> Result<Page<User>> {
        let rows = query(
            "SELECT id, role, status, created_at FROM users
             WHERE $1::text IS NULL OR id COLLATE \"C\" > $1 COLLATE \"C\"
             ORDER BY id COLLATE \"C\"
             LIMIT $2",
        )
        .bind(page.after.as_deref())
        .bind(limit_plus_one(page))
        .fetch_all(self.reads())
        .await
        .map_err(unavailable)?;
        let users = rows.iter().map(user_from_row).collect::<Result<Vec<_>>>()?;
        let (items, more) = take_page(users, page);
        let next = more
            .then(|| items.last().map(|u| u.id.as_str().to_owned()))
            .flatten();
        Ok(Page { items, next })
    }

    async fn set_role(&self, scope: &AdminScope, id: &OwnerId, role: UserRole) -> Result<User> {
        let mut w = Write::begin(&self.pool, self.clock.as_ref()).await?;
        let now = w.now();
        let scope = &current_scope(w.conn(), scope).await?;
        let (user, state) = target_state(w.conn(), id).await?;
        authz::check_role_change(scope, id, &state, role)?;
        query("UPDATE users SET role = $2, updated_at = $3 WHERE id = $1")
            .bind(id.as_str())
            .bind(role.as_str())
            .bind(now)
            .execute(w.conn())
            .await
            .map_err(unavailable)?;
        w.audit(events::user_role_changed(
            now,
            scope.actor(),
            id,
            user.role,
            role,
        ))
        .await?;
        w.commit().await?;
        Ok(User { role, ..user })
    }

    async fn set_status(
        &self,
        scope: &AdminScope,
        id: &OwnerId,
        status: UserStatus,
    ) -> Result<User> {
        let mut w = Write::begin(&self.pool, self.clock.as_ref()).await?;
        let now = w.now();
        let scope = &current_scope(w.conn(), scope).await?;
        let (user, state) = target_state(w.conn(), id).await?;
        authz::check_status_change(scope, id, &state, status)?;
        query("UPDATE users SET status = $2, updated_at = $3 WHERE id = $1")
            .bind(id.as_str())
            .bind(status.as_str())
            .bind(now)
            .execute(w.conn())
            .await
            .map_err(unavailable)?;
        w.audit(events::user_status_changed(now, scope.actor(), id, status))
            .await?;
        w.commit().await?;
        Ok(User { status, ..user })
    }

    async fn delete_user(&self, scope: &AdminScope, id: &OwnerId) -> Result<()> {
        let mut w = Write::begin(&self.pool, self.clock.as_ref()).await?;
        let now = w.now();
        let scope = &current_scope(w.conn(), scope).await?;
        let (_, state) = target_state(w.conn(), id).await?;
        authz::check_delete(scope, id, &state)?;
        let row = query(
            "SELECT
                 (SELECT count(*) FROM tokens
                  WHERE owner_id = $1
                    AND (revoked_at IS NULL OR revoked_at > $2)
                    AND (expires_at IS NULL OR expires_at > $2)) AS tokens,
                 (SELECT count(*) FROM channel_identities WHERE owner_id = $1) AS identities",
        )
        .bind(id.as_str())
        .bind(now)
        .fetch_one(w.conn())
        .await
        .map_err(unavailable)?;
        let tokens = count_col(&row, "tokens")?;
        let identities = count_col(&row, "identities")?;
        // Cascades to tokens, identities, the data key, secrets, resources (and their
        // grants), the webhook endpoint and deliveries. Pairing requests belong to no
        // owner; audit events keep the owner id as text.
        query("DELETE FROM users WHERE id = $1")
            .bind(id.as_str())
            .execute(w.conn())
            .await
            .map_err(unavailable)?;
        w.audit(events::user_deleted(
            now,
            scope.actor(),
            id,
            tokens,
            identities,
        ))
        .await?;
        w.commit().await
    }
}
