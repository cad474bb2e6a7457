//! Users on PostgreSQL: the `users` rows ([`UserRows`]). The use cases are
//! `ownership_core::users`'.

use async_trait::async_trait;
use ownership_core::ports::User;
use ownership_core::users::UserRows;
use ownership_core::{OwnerId, Result, UserRole, UserStatus};
use sqlx::postgres::PgRow;
use time::OffsetDateTime;

use super::db::PgTx;
use super::support::{col, count_col, owner_col, parsed, unavailable, unique_or_unavailable};
use super::support::{query, query_scalar};

/// A `users` row (`id, role, status, created_at`).
fn user_from_row(row: &PgRow) -> Result<User> {
    Ok(User {
        id: owner_col(row, "id")?,
        role: parsed(row, "role", UserRole::parse)?,
        status: parsed(row, "status", UserStatus::parse)?,
        created_at: col(row, "created_at")?,
    })
}

#[async_trait]
impl UserRows for PgTx {
    async fn find_user(&mut self, id: &OwnerId) -> Result<Option<User>> {
        query("SELECT id, role, status, created_at FROM users WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(self.conn())
            .await
            .map_err(unavailable)?
            .as_ref()
            .map(user_from_row)
            .transpose()
    }

    async fn users_after(&mut self, after: Option<&str>, limit: u32) -> Result<Vec<User>> {
        query(
            "SELECT id, role, status, created_at FROM users
             WHERE $1::text IS NULL OR id COLLATE \"C\" > $1 COLLATE \"C\"
             ORDER BY id COLLATE \"C\"
             LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(self.conn())
        .await
        .map_err(unavailable)?
        .iter()
        .map(user_from_row)
        .collect()
    }

    async fn owner_exists(&mut self) -> Result<bool> {
        query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE role = 'owner')")
            .fetch_one(self.conn())
            .await
            .map_err(unavailable)
    }

    async fn active_owner_count(&mut self) -> Result<u64> {
        let row =
            query("SELECT count(*) AS n FROM users WHERE role = 'owner' AND status = 'active'")
                .fetch_one(self.conn())
                .await
                .map_err(unavailable)?;
        count_col(&row, "n")
    }

    async fn insert_user(
        &mut self,
        id: &OwnerId,
        role: UserRole,
        at: OffsetDateTime,
    ) -> Result<()> {
        query(
            "INSERT INTO users (id, role, status, created_at, updated_at) VALUES ($1, $2, 'active', $3, $3)",
        )
        .bind(id.as_str())
        .bind(role.as_str())
        .bind(at)
        .execute(self.conn())
        .await
        .map_err(|e| unique_or_unavailable(e, "a user with this id already exists"))
        .map(drop)
    }

    async fn update_role(
        &mut self,
        id: &OwnerId,
        from: UserRole,
        to: UserRole,
        at: OffsetDateTime,
    ) -> Result<bool> {
        let changed =
            query("UPDATE users SET role = $2, updated_at = $3 WHERE id = $1 AND role = $4")
                .bind(id.as_str())
                .bind(to.as_str())
                .bind(at)
                .bind(from.as_str())
                .execute(self.conn())
                .await
                .map_err(unavailable)?
                .rows_affected();
        Ok(changed == 1)
    }

    async fn update_status(
        &mut self,
        id: &OwnerId,
        status: UserStatus,
        at: OffsetDateTime,
    ) -> Result<()> {
        query("UPDATE users SET status = $2, updated_at = $3 WHERE id = $1")
            .bind(id.as_str())
            .bind(status.as_str())
            .bind(at)
            .execute(self.conn())
            .await
            .map_err(unavailable)
            .map(drop)
    }

    async fn delete_user_row(&mut self, id: &OwnerId) -> Result<bool> {
        let deleted = query("DELETE FROM users WHERE id = $1")
            .bind(id.as_str())
            .execute(self.conn())
            .await
            .map_err(unavailable)?
            .rows_affected();
        Ok(deleted == 1)
    }

    async fn identity_count(&mut self, owner: &OwnerId) -> Result<u64> {
        let row = query("SELECT count(*) AS n FROM channel_identities WHERE owner_id = $1")
            .bind(owner.as_str())
            .fetch_one(self.conn())
            .await
            .map_err(unavailable)?;
        count_col(&row, "n")
    }

    async fn revoke_live_legacy(&mut self, at: OffsetDateTime) -> Result<u64> {
        Ok(query(
            "UPDATE tokens SET revoked_at = $1
             WHERE origin = 'legacy'
               AND (revoked_at IS NULL OR revoked_at > $1)
               AND (expires_at IS NULL OR expires_at > $1)",
        )
        .bind(at)
        .execute(self.conn())
        .await
        .map_err(unavailable)?
        .rows_affected())
    }
}
