//! Console sessions: the rows of [`SessionRows`].

use ::libsql::Value;
use async_trait::async_trait;
use ownership_core::ids::TokenId;
use ownership_core::sessions::{
    SessionKey, SessionMethod, SessionRecord, SessionRows, SessionToken,
};
use ownership_core::token::TokenDigest;
use ownership_core::{Error, OwnerId, Result};
use time::OffsetDateTime;

use super::conn::{
    args, bytes, exec, exists, micros, opt_blob, opt_text, parsed, query_all, query_opt, time_at,
};
use super::db::LibsqlTx;

const SESSION_COLS: &str =
    "owner_id, method, token_id, token_digest, created_at, last_seen_at, expires_at";

fn session_from(row: &[Value]) -> Result<SessionRecord> {
    let token = match (opt_text(row, 2)?, opt_blob(row, 3)?) {
        (Some(id), Some(digest)) => Some(SessionToken {
            id: TokenId::parse(&id).map_err(|_| super::conn::integrity("session token id"))?,
            digest: TokenDigest::from_bytes(
                <[u8; 32]>::try_from(digest.as_slice())
                    .map_err(|_| super::conn::integrity("session token digest"))?,
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
impl SessionRows for LibsqlTx {
    async fn insert_session(&mut self, key: &SessionKey, row: &SessionRecord) -> Result<()> {
        let k = key.as_bytes().as_slice();
        if exists(
            &self.conn,
            "SELECT 1 FROM console_sessions WHERE session_key = ?1",
            args![k],
        )
        .await?
        {
            return Err(Error::Conflict(
                "a session with this key already exists".into(),
            ));
        }
        let token_id = row.token.as_ref().map(|t| t.id.to_string());
        let token_digest = row.token.as_ref().map(|t| t.digest.as_bytes().to_vec());
        exec(
            &self.conn,
            "INSERT INTO console_sessions (session_key, owner_id, method, token_id, token_digest, created_at, last_seen_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            args![k, row.owner.as_str(), row.method.as_str(), token_id, token_digest, micros(row.created_at)?, micros(row.last_seen_at)?, micros(row.expires_at)?],
        )
        .await
        .map(drop)
    }

    async fn session(&mut self, key: &SessionKey) -> Result<Option<SessionRecord>> {
        let sql = format!("SELECT {SESSION_COLS} FROM console_sessions WHERE session_key = ?1");
        query_opt(&self.conn, &sql, args![key.as_bytes().as_slice()])
            .await?
            .map(|row| session_from(&row))
            .transpose()
    }

    async fn session_keys_of(&mut self, owner: &OwnerId) -> Result<Vec<SessionKey>> {
        query_all(
            &self.conn,
            "SELECT session_key FROM console_sessions WHERE owner_id = ?1 ORDER BY created_at, rowid",
            args![owner.as_str()],
        )
        .await?
        .iter()
        .map(|row| bytes::<32>(row, 0, "session key").map(SessionKey::from_bytes))
        .collect()
    }

    async fn delete_session(&mut self, key: &SessionKey) -> Result<bool> {
        exec(
            &self.conn,
            "DELETE FROM console_sessions WHERE session_key = ?1",
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
        match method {
            None => {
                exec(
                    &self.conn,
                    "DELETE FROM console_sessions WHERE owner_id = ?1",
                    args![owner.as_str()],
                )
                .await
            }
            Some(m) => {
                exec(
                    &self.conn,
                    "DELETE FROM console_sessions WHERE owner_id = ?1 AND method = ?2",
                    args![owner.as_str(), m.as_str()],
                )
                .await
            }
        }
    }

    async fn touch_session(&mut self, key: &SessionKey, at: OffsetDateTime) -> Result<()> {
        exec(
            &self.conn,
            "UPDATE console_sessions SET last_seen_at = ?1 WHERE session_key = ?2",
            args![micros(at)?, key.as_bytes().as_slice()],
        )
        .await
        .map(drop)
    }

    async fn rebind_session(&mut self, key: &SessionKey, token: &SessionToken) -> Result<()> {
        exec(
            &self.conn,
            "UPDATE console_sessions SET token_id = ?1, token_digest = ?2 WHERE session_key = ?3",
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
            &self.conn,
            "DELETE FROM console_sessions WHERE expires_at <= ?1 OR last_seen_at <= ?2",
            args![micros(now)?, micros(idle_before)?],
        )
        .await
    }
}
