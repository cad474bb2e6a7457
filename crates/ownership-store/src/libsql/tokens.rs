//! Bearer tokens: authentication by digest, issue, rotation with grace, revocation with
//! kind verification, the write-behind of last use.

use ::libsql::{Connection, Value};
use async_trait::async_trait;
use ownership_core::db::Tx;
use ownership_core::ids::TokenId;
use ownership_core::ports::{TokenOrigin, TokenRecord};
use ownership_core::tokens::{TokenAuth, TokenRow, TokenRows};
use ownership_core::{Error, OwnerId, Result, TokenKinds, UserRole, UserStatus};
use time::OffsetDateTime;

use super::LibsqlStore;
use super::conn::{
    args, exec, exists, micros, opt_text, opt_time, parsed, query_all, query_count, query_opt,
    text, time_at,
};
use super::db::LibsqlTx;
use ownership_core::token::TokenDigest;
use ownership_core::tokens::TokenDatabase;

/// The columns [`token_from`] reads, in order.
pub(super) const TOKEN_COLS: &str = "id, owner_id, kinds, label, display_prefix, origin, created_at, expires_at, revoked_at, last_used_at";

/// A `tokens` row (selected with [`TOKEN_COLS`]).
pub(super) fn token_from(row: &[Value]) -> Result<TokenRecord> {
    Ok(TokenRecord {
        id: parsed(row, 0, "token id", TokenId::parse)?,
        owner_id: parsed(row, 1, "token owner", OwnerId::parse)?,
        kinds: parsed(row, 2, "token kinds", TokenKinds::parse_csv)?,
        label: opt_text(row, 3)?,
        display_prefix: text(row, 4)?,
        origin: parsed(row, 5, "token origin", TokenOrigin::parse)?,
        created_at: time_at(row, 6)?,
        expires_at: opt_time(row, 7)?,
        revoked_at: opt_time(row, 8)?,
        last_used_at: opt_time(row, 9)?,
    })
}

/// One token by id, scoped to its owner.
pub(super) async fn scoped_token(
    conn: &Connection,
    owner: &OwnerId,
    id: &TokenId,
) -> Result<Option<TokenRecord>> {
    let sql = format!("SELECT {TOKEN_COLS} FROM tokens WHERE id = ?1 AND owner_id = ?2");
    query_opt(conn, &sql, args![id.as_str(), owner.as_str()])
        .await?
        .map(|row| token_from(&row))
        .transpose()
}

/// Inserts a token and reads it back. A taken id or digest is a conflict (never expected
/// for random values; refused rather than overwritten).
pub(super) async fn insert_token(conn: &Connection, row: TokenRow<'_>) -> Result<TokenRecord> {
    let digest = row.fresh.digest.as_bytes().as_slice();
    if exists(
        conn,
        "SELECT 1 FROM tokens WHERE id = ?1 OR digest = ?2",
        args![row.fresh.id.as_str(), digest],
    )
    .await?
    {
        return Err(Error::Conflict("the token already exists".into()));
    }
    exec(
        conn,
        "INSERT INTO tokens (id, owner_id, digest, kinds, label, display_prefix, origin, created_at, expires_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        args![
            row.fresh.id.as_str(),
            row.owner.as_str(),
            digest,
            row.kinds.to_csv(),
            row.label,
            row.fresh.display_prefix.as_str(),
            row.origin.as_str(),
            micros(row.created_at)?,
            row.expires_at.map(micros).transpose()?,
        ],
    )
    .await?;
    scoped_token(conn, row.owner, &row.fresh.id)
        .await?
        .ok_or_else(|| super::conn::integrity("inserted token"))
}

/// The token with this digest joined with its owner's account.
pub(super) async fn token_auth(conn: &Connection, digest: Vec<u8>) -> Result<Option<TokenAuth>> {
    let row = query_opt(
        conn,
        "SELECT t.id, t.owner_id, t.kinds, t.expires_at, t.revoked_at, u.role, u.status \
         FROM tokens t JOIN users u ON u.id = t.owner_id WHERE t.digest = ?1",
        args![digest],
    )
    .await?;
    row.map(|row| {
        Ok(TokenAuth {
            id: parsed(&row, 0, "token id", TokenId::parse)?,
            owner: parsed(&row, 1, "token owner", OwnerId::parse)?,
            kinds: parsed(&row, 2, "token kinds", TokenKinds::parse_csv)?,
            expires_at: opt_time(&row, 3)?,
            revoked_at: opt_time(&row, 4)?,
            role: parsed(&row, 5, "user role", UserRole::parse)?,
            status: parsed(&row, 6, "user status", UserStatus::parse)?,
        })
    })
    .transpose()
}

#[async_trait]
impl TokenRows for LibsqlTx {
    async fn live_token_count(&mut self, owner: &OwnerId, at: OffsetDateTime) -> Result<u64> {
        let sql = "SELECT COUNT(*) FROM tokens WHERE owner_id = ?1 \
                   AND (revoked_at IS NULL OR revoked_at > ?2) AND (expires_at IS NULL OR expires_at > ?2)";
        query_count(
            &self.conn,
            sql,
            args![owner.as_str(), micros(at)?],
            "token count",
        )
        .await
    }

    async fn token(&mut self, owner: &OwnerId, id: &TokenId) -> Result<Option<TokenRecord>> {
        scoped_token(&self.conn, owner, id).await
    }

    async fn tokens_of(&mut self, owner: &OwnerId) -> Result<Vec<TokenRecord>> {
        let sql = format!(
            "SELECT {TOKEN_COLS} FROM tokens WHERE owner_id = ?1 ORDER BY created_at DESC, rowid DESC"
        );
        let rows = query_all(&self.conn, &sql, args![owner.as_str()]).await?;
        rows.iter().map(|r| token_from(r)).collect()
    }

    async fn token_by_digest(&mut self, digest: &TokenDigest) -> Result<Option<TokenRecord>> {
        let sql = format!("SELECT {TOKEN_COLS} FROM tokens WHERE digest = ?1");
        query_opt(&self.conn, &sql, args![digest.as_bytes().as_slice()])
            .await?
            .map(|row| token_from(&row))
            .transpose()
    }

    async fn is_replaced(&mut self, id: &TokenId) -> Result<bool> {
        exists(
            &self.conn,
            "SELECT 1 FROM tokens WHERE id = ?1 AND replaced_by IS NOT NULL",
            args![id.as_str()],
        )
        .await
    }

    async fn insert_token(&mut self, row: TokenRow<'_>) -> Result<TokenRecord> {
        insert_token(&self.conn, row).await
    }

    async fn set_revoked(
        &mut self,
        owner: &OwnerId,
        id: &TokenId,
        at: OffsetDateTime,
    ) -> Result<()> {
        exec(
            &self.conn,
            "UPDATE tokens SET revoked_at = ?1 WHERE id = ?2 AND owner_id = ?3",
            args![micros(at)?, id.as_str(), owner.as_str()],
        )
        .await
        .map(drop)
    }

    async fn set_replaced(
        &mut self,
        owner: &OwnerId,
        id: &TokenId,
        by: &TokenId,
        ends: OffsetDateTime,
    ) -> Result<bool> {
        let changed = exec(
            &self.conn,
            "UPDATE tokens SET revoked_at = MIN(COALESCE(revoked_at, ?1), ?1), replaced_by = ?2 \
             WHERE id = ?3 AND owner_id = ?4 AND replaced_by IS NULL \
               AND (revoked_at IS NULL OR revoked_at > ?5)",
            args![
                micros(ends)?,
                by.as_str(),
                id.as_str(),
                owner.as_str(),
                micros(self.now())?
            ],
        )
        .await?;
        Ok(changed == 1)
    }

    async fn record_uses(&mut self, uses: &[(TokenId, OffsetDateTime)]) -> Result<()> {
        for (id, at) in uses {
            exec(
                &self.conn,
                "UPDATE tokens SET last_used_at = ?1 WHERE id = ?2 AND (last_used_at IS NULL OR last_used_at < ?1)",
                args![micros(*at)?, id.as_str()],
            )
            .await?;
        }
        Ok(())
    }

    async fn any_live_foreign_token(&mut self) -> Result<bool> {
        exists(
            &self.conn,
            "SELECT 1 FROM tokens WHERE origin IN ('provisioned', 'legacy') \
             AND (revoked_at IS NULL OR revoked_at > ?1) AND (expires_at IS NULL OR expires_at > ?1) LIMIT 1",
            args![micros(self.now())?],
        )
        .await
    }
}

impl TokenDatabase for LibsqlStore {
    async fn token_auth(&self, digest: &TokenDigest) -> Result<Option<TokenAuth>> {
        let digest = digest.as_bytes().to_vec();
        self.worker
            .point(move |c| async move { token_auth(&c, digest).await })
            .await
    }
}
