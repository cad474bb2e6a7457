//! Users on libSQL: the `users` rows ([`UserRows`]) and the user reads other areas make.
//! The use cases are `ownership_core::users`'.

use async_trait::async_trait;
use ownership_core::ports::User;
use ownership_core::users::UserRows;
use ownership_core::{OwnerId, Result, UserRole, UserStatus};
use time::OffsetDateTime;

use super::driver::*;
use super::tx::SqlTx;

const USER_COLS: &str = "id, role, status, created_at";

fn user_from(row: &[Val]) -> Result<User> {
    Ok(User {
        id: parsed(row, 0, "user id", OwnerId::parse)?,
        role: parsed(row, 1, "user role", UserRole::parse)?,
        status: parsed(row, 2, "user status", UserStatus::parse)?,
        created_at: time_at(row, 3)?,
    })
}

/// One user by id.
pub(super) async fn user<D: Driver>(d: &mut D, id: &OwnerId) -> Result<Option<User>> {
    let sql = format!("SELECT {USER_COLS} FROM users WHERE id = $1");
    query_opt(d, &sql, args![id.as_str()])
        .await?
        .map(|row| user_from(&row))
        .transpose()
}

#[async_trait]
impl<D: Driver> UserRows for SqlTx<D> {
    async fn find_user(&mut self, id: &OwnerId) -> Result<Option<User>> {
        user(&mut self.d, id).await
    }

    async fn users_after(&mut self, after: Option<&str>, limit: u32) -> Result<Vec<User>> {
        let sql = format!(
            "SELECT {USER_COLS} FROM users WHERE $1 IS NULL OR id COLLATE \"C\" > $1 COLLATE \"C\" \
             ORDER BY id COLLATE \"C\" LIMIT $2"
        );
        let rows = query_all(&mut self.d, &sql, args![after, i64::from(limit)]).await?;
        rows.iter().map(|r| user_from(r)).collect()
    }

    async fn owner_exists(&mut self) -> Result<bool> {
        let sql = "SELECT 1 FROM users WHERE role = 'owner' LIMIT 1";
        exists(&mut self.d, sql, &[]).await
    }

    async fn active_owner_count(&mut self) -> Result<u64> {
        let sql = "SELECT COUNT(*) FROM users WHERE role = 'owner' AND status = 'active'";
        query_count(&mut self.d, sql, &[], "owner count").await
    }

    async fn insert_user(
        &mut self,
        id: &OwnerId,
        role: UserRole,
        at: OffsetDateTime,
    ) -> Result<()> {
        // PostgreSQL's column default draws the immutable identity; SQLite's cannot.
        let sql = pick::<D>(
            "INSERT INTO users (id, role, status, created_at, updated_at) \
             VALUES ($1, $2, 'active', $3, $3)",
            "INSERT INTO users (id, role, status, created_at, updated_at, uid) \
             VALUES ($1, $2, 'active', $3, $3, lower(hex(randomblob(16))))",
        );
        self.d
            .execute(sql, args![id.as_str(), role.as_str(), at])
            .await
            .map_err(conflict("a user with this id already exists"))
            .map(drop)
    }

    async fn update_role(
        &mut self,
        id: &OwnerId,
        from: UserRole,
        to: UserRole,
        at: OffsetDateTime,
    ) -> Result<bool> {
        let changed = exec(
            &mut self.d,
            "UPDATE users SET role = $1, updated_at = $2 WHERE id = $3 AND role = $4",
            args![to.as_str(), at, id.as_str(), from.as_str()],
        )
        .await?;
        Ok(changed == 1)
    }

    async fn update_status(
        &mut self,
        id: &OwnerId,
        status: UserStatus,
        at: OffsetDateTime,
    ) -> Result<()> {
        exec(
            &mut self.d,
            "UPDATE users SET status = $1, updated_at = $2 WHERE id = $3",
            args![status.as_str(), at, id.as_str()],
        )
        .await
        .map(drop)
    }

    async fn delete_user_row(&mut self, id: &OwnerId) -> Result<bool> {
        let sql = "DELETE FROM users WHERE id = $1";
        Ok(exec(&mut self.d, sql, args![id.as_str()]).await? == 1)
    }

    async fn identity_count(&mut self, owner: &OwnerId) -> Result<u64> {
        let sql = "SELECT COUNT(*) FROM channel_identities WHERE owner_id = $1";
        query_count(&mut self.d, sql, args![owner.as_str()], "identity count").await
    }

    async fn revoke_live_legacy(&mut self, at: OffsetDateTime) -> Result<u64> {
        exec(
            &mut self.d,
            "UPDATE tokens SET revoked_at = $1 WHERE origin = 'legacy' \
             AND (revoked_at IS NULL OR revoked_at > $1) AND (expires_at IS NULL OR expires_at > $1)",
            args![at],
        )
        .await
    }
}
