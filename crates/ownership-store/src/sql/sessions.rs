//! Console sessions: the rows of [`SessionRows`].

use async_trait::async_trait;
use ownership_core::ids::TokenId;
use ownership_core::sessions::{
    SessionKey, SessionMethod, SessionRecord, SessionRows, SessionToken,
};
use ownership_core::token::TokenDigest;
use ownership_core::{OwnerId, Result};
use time::OffsetDateTime;

use super::driver::*;
use super::tx::SqlTx;

const SESSION_COLS: &str =
    "owner_id, method, token_id, token_digest, created_at, last_seen_at, expires_at";

fn session_from(row: &[Val]) -> Result<SessionRecord> {
    let token = match (opt_text(row, 2)?, opt_blob(row, 3)?) {
        (Some(id), Some(digest)) => Some(SessionToken {
            id: TokenId::parse(&id).map_err(|_| super::driver::integrity("session token id"))?,
            digest: TokenDigest::from_bytes(
                <[u8; 32]>::try_from(digest.as_slice())
                    .map_err(|_| super::driver::integrity("session token digest"))?,
            ),
        }),
        _ => None,
    };
    Ok(SessionRecord {
        owner: parsed(row, 0, "session owner", OwnerId::parse)?,
        method: parsed(row, 1, "session method", SessionMethod::parse)?,
        token,
        created_at: time_at(row, 4)?,
        last_seen_at: time_at(row, 5)?,
        expires_at: time_at(row, 6)?,
    })
}

#[async_trait]
impl<D: Driver> SessionRows for SqlTx<D> {
    async fn insert_session(&mut self, key: &SessionKey, row: &SessionRecord) -> Result<()> {
        let k = key.as_bytes().as_slice();
        let token_id = row.token.as_ref().map(|t| t.id.to_string());
        let token_digest = row.token.as_ref().map(|t| t.digest.as_bytes().to_vec());
        self.d.execute(
            "INSERT INTO console_sessions (session_key, owner_id, method, token_id, token_digest, created_at, last_seen_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            args![k, row.owner.as_str(), row.method.as_str(), token_id, token_digest, row.created_at, row.last_seen_at, row.expires_at],
        )
        .await
        .map_err(conflict("a session with this key already exists"))
        .map(drop)
    }

    async fn session(&mut self, key: &SessionKey) -> Result<Option<SessionRecord>> {
        let sql = format!("SELECT {SESSION_COLS} FROM console_sessions WHERE session_key = $1");
        query_opt(&mut self.d, &sql, args![key.as_bytes().as_slice()])
            .await?
            .map(|row| session_from(&row))
            .transpose()
    }

    async fn session_keys_of(&mut self, owner: &OwnerId) -> Result<Vec<SessionKey>> {
        query_all(
            &mut self.d,
            pick::<D>(
                "SELECT session_key FROM console_sessions WHERE owner_id = $1 ORDER BY created_at, session_key",
                "SELECT session_key FROM console_sessions WHERE owner_id = $1 ORDER BY created_at, rowid",
            ),
            args![owner.as_str()],
        )
        .await?
        .iter()
        .map(|row| bytes::<32>(row, 0, "session key").map(SessionKey::from_bytes))
        .collect()
    }

    async fn delete_session(&mut self, key: &SessionKey) -> Result<bool> {
        exec(
            &mut self.d,
            "DELETE FROM console_sessions WHERE session_key = $1",
            args![key.as_bytes().as_slice()],
        )
        .await
        .map(|n| n > 0)
    }

    async fn delete_sessions_of(
        &mut self,
        owner: &OwnerId,
        method: Option<SessionMethod>,
    ) -> Result<u64> {
        exec(
            &mut self.d,
            "DELETE FROM console_sessions WHERE owner_id = $1 AND ($2 IS NULL OR method = $2)",
            args![owner.as_str(), method.map(SessionMethod::as_str)],
        )
        .await
    }

    async fn touch_session(&mut self, key: &SessionKey, at: OffsetDateTime) -> Result<()> {
        exec(
            &mut self.d,
            "UPDATE console_sessions SET last_seen_at = $1 WHERE session_key = $2",
            args![at, key.as_bytes().as_slice()],
        )
        .await
        .map(drop)
    }

    async fn rebind_session(&mut self, key: &SessionKey, token: &SessionToken) -> Result<()> {
        exec(
            &mut self.d,
            "UPDATE console_sessions SET token_id = $1, token_digest = $2 WHERE session_key = $3",
            args![
                token.id.as_str(),
                token.digest.as_bytes().as_slice(),
                key.as_bytes().as_slice()
            ],
        )
        .await
        .map(drop)
    }

    async fn delete_stale_sessions(
        &mut self,
        now: OffsetDateTime,
        idle_before: OffsetDateTime,
    ) -> Result<u64> {
        exec(
            &mut self.d,
            "DELETE FROM console_sessions WHERE expires_at <= $1 OR last_seen_at <= $2",
            args![now, idle_before],
        )
        .await
    }
}
