//! Console sessions: the rows of [`SessionRows`].

use async_trait::async_trait;
use ownership_core::ids::TokenId;
use ownership_core::sessions::{
    SessionKey, SessionMethod, SessionRecord, SessionRows, SessionToken,
};
use ownership_core::token::TokenDigest;
use ownership_core::{OwnerId, Result};
use sqlx::postgres::PgRow;
use time::OffsetDateTime;

use super::db::PgTx;
use super::support::query;
use super::support::{
    bytes_col, col, integrity, owner_col, parsed, parsed_opt, unavailable, unique_or_unavailable,
};

fn session_from(row: &PgRow) -> Result<SessionRecord> {
    let id = parsed_opt(row, "token_id", TokenId::parse)?;
    let digest: Option<Vec<u8>> = col(row, "token_digest")?;
    let token = match (id, digest) {
        (Some(id), Some(d)) => Some(SessionToken {
            id,
            digest: TokenDigest::from_bytes(
                <[u8; 32]>::try_from(d.as_slice()).map_err(|_| integrity("token_digest"))?,
            ),
        }),
        _ => None,
    };
    Ok(SessionRecord {
        owner: owner_col(row, "owner_id")?,
        method: parsed(row, "method", SessionMethod::parse)?,
        token,
        created_at: col(row, "created_at")?,
        last_seen_at: col(row, "last_seen_at")?,
        expires_at: col(row, "expires_at")?,
    })
}

#[async_trait]
impl SessionRows for PgTx {
    async fn insert_session(&mut self, key: &SessionKey, row: &SessionRecord) -> Result<()> {
        query(
            "INSERT INTO console_sessions (session_key, owner_id, method, token_id, token_digest, created_at, last_seen_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(key.as_bytes().as_slice())
        .bind(row.owner.as_str())
        .bind(row.method.as_str())
        .bind(row.token.as_ref().map(|t| t.id.as_str().to_owned()))
        .bind(row.token.as_ref().map(|t| t.digest.as_bytes().to_vec()))
        .bind(row.created_at)
        .bind(row.last_seen_at)
        .bind(row.expires_at)
        .execute(self.conn())
        .await
        .map_err(|e| unique_or_unavailable(e, "a session with this key already exists"))
        .map(drop)
    }

    async fn session(&mut self, key: &SessionKey) -> Result<Option<SessionRecord>> {
        query(
            "SELECT owner_id, method, token_id, token_digest, created_at, last_seen_at, expires_at
             FROM console_sessions WHERE session_key = $1",
        )
        .bind(key.as_bytes().as_slice())
        .fetch_optional(self.conn())
        .await
        .map_err(unavailable)?
        .map(|row| session_from(&row))
        .transpose()
    }

    async fn session_keys_of(&mut self, owner: &OwnerId) -> Result<Vec<SessionKey>> {
        query(
            "SELECT session_key FROM console_sessions WHERE owner_id = $1
             ORDER BY created_at, session_key",
        )
        .bind(owner.as_str())
        .fetch_all(self.conn())
        .await
        .map_err(unavailable)?
        .iter()
        .map(|row| bytes_col::<32>(row, "session_key").map(SessionKey::from_bytes))
        .collect()
    }

    async fn delete_session(&mut self, key: &SessionKey) -> Result<bool> {
        query("DELETE FROM console_sessions WHERE session_key = $1")
            .bind(key.as_bytes().as_slice())
            .execute(self.conn())
            .await
            .map_err(unavailable)
            .map(|r| r.rows_affected() > 0)
    }

    async fn delete_sessions_of(
        &mut self,
        owner: &OwnerId,
        method: Option<SessionMethod>,
    ) -> Result<u64> {
        query(
            "DELETE FROM console_sessions WHERE owner_id = $1 AND ($2::text IS NULL OR method = $2)",
        )
        .bind(owner.as_str())
        .bind(method.map(SessionMethod::as_str))
        .execute(self.conn())
        .await
        .map_err(unavailable)
        .map(|r| r.rows_affected())
    }

    async fn touch_session(&mut self, key: &SessionKey, at: OffsetDateTime) -> Result<()> {
        query("UPDATE console_sessions SET last_seen_at = $1 WHERE session_key = $2")
            .bind(at)
            .bind(key.as_bytes().as_slice())
            .execute(self.conn())
            .await
            .map_err(unavailable)
            .map(drop)
    }

    async fn rebind_session(&mut self, key: &SessionKey, token: &SessionToken) -> Result<()> {
        query("UPDATE console_sessions SET token_id = $1, token_digest = $2 WHERE session_key = $3")
            .bind(token.id.as_str())
            .bind(token.digest.as_bytes().as_slice())
            .bind(key.as_bytes().as_slice())
            .execute(self.conn())
            .await
            .map_err(unavailable)
            .map(drop)
    }

    async fn delete_stale_sessions(
        &mut self,
        now: OffsetDateTime,
        idle_before: OffsetDateTime,
    ) -> Result<u64> {
        query("DELETE FROM console_sessions WHERE expires_at <= $1 OR last_seen_at <= $2")
            .bind(now)
            .bind(idle_before)
            .execute(self.conn())
            .await
            .map_err(unavailable)
            .map(|r| r.rows_affected())
    }
}
