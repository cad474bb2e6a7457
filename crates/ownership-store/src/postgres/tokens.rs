//! [`TokenStore`]: digest lookup, issue, rotation with grace, kind-verified revocation.

use async_trait::async_trait;
use ownership_core::db::Tx;
use ownership_core::ids::TokenId;
use ownership_core::ports::{NewToken, TokenOrigin, TokenRecord};
use ownership_core::token::TokenDigest;
use ownership_core::tokens::{TokenAuth, TokenRow, TokenRows};
use ownership_core::{Error, OwnerId, Result, TokenKinds, UserRole, UserStatus};
use sqlx::PgPool;
use sqlx::postgres::{PgConnection, PgRow};
use time::OffsetDateTime;

use super::PgStore;
use super::db::PgTx;
use super::support::{col, count_col, owner_col, parsed, unavailable, unique_or_unavailable};
use super::support::{query, query_scalar};
use crate::metrics::Op;
use ownership_core::tokens::TokenDatabase;

/// A `tokens` row (all columns but `digest` and `replaced_by`).
pub(super) fn token_from_row(row: &PgRow) -> Result<TokenRecord> {
    Ok(TokenRecord {
        id: parsed(row, "id", TokenId::parse)?,
        owner_id: owner_col(row, "owner_id")?,
        kinds: parsed(row, "kinds", TokenKinds::parse_csv)?,
        label: col(row, "label")?,
        display_prefix: col(row, "display_prefix")?,
        origin: parsed(row, "origin", TokenOrigin::parse)?,
        created_at: col(row, "created_at")?,
        expires_at: col(row, "expires_at")?,
        revoked_at: col(row, "revoked_at")?,
        last_used_at: col(row, "last_used_at")?,
    })
}

/// Inserts a token row. A taken id or digest is [`Error::Conflict`].
pub(super) async fn insert_token(
    conn: &mut PgConnection,
    owner: &OwnerId,
    token: &NewToken,
    kinds: &TokenKinds,
    origin: TokenOrigin,
    now: OffsetDateTime,
) -> Result<TokenRecord> {
    let expires_at = token
        .expires_at
        .map(ownership_core::audit::truncate_to_micros);
    query(
        "INSERT INTO tokens (id, owner_id, digest, kinds, label, display_prefix, origin, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(token.fresh.id.as_str())
    .bind(owner.as_str())
    .bind(token.fresh.digest.as_bytes().as_slice())
    .bind(kinds.to_csv())
    .bind(token.label.as_deref())
    .bind(&token.fresh.display_prefix)
    .bind(origin.as_str())
    .bind(now)
    .bind(expires_at)
    .execute(conn)
    .await
    .map_err(|e| unique_or_unavailable(e, "a token with this id or value already exists"))?;
    Ok(TokenRecord {
        id: token.fresh.id.clone(),
        owner_id: owner.clone(),
        kinds: kinds.clone(),
        label: token.label.clone(),
        display_prefix: token.fresh.display_prefix.clone(),
        origin,
        created_at: now,
        expires_at,
        revoked_at: None,
        last_used_at: None,
    })
}

/// One of the owner's tokens, or [`Error::NotFound`].
async fn scoped_token(
    conn: &mut PgConnection,
    owner: &OwnerId,
    id: &TokenId,
) -> Result<TokenRecord> {
    let row = query(
        "SELECT id, owner_id, kinds, label, display_prefix, origin, created_at, expires_at, revoked_at, last_used_at
         FROM tokens WHERE id = $1 AND owner_id = $2",
    )
    .bind(id.as_str())
    .bind(owner.as_str())
    .fetch_optional(conn)
    .await
    .map_err(unavailable)?
    .ok_or(Error::NotFound)?;
    token_from_row(&row)
}

/// The token with this digest joined with its owner's account.
pub(super) async fn token_auth(reads: &PgPool, digest: &TokenDigest) -> Result<Option<TokenAuth>> {
    let row = query(
        "SELECT t.id, t.owner_id, t.kinds, t.expires_at, t.revoked_at, u.role, u.status
         FROM tokens t JOIN users u ON u.id = t.owner_id
         WHERE t.digest = $1",
    )
    .bind(digest.as_bytes().as_slice())
    .fetch_optional(reads)
    .await
    .map_err(unavailable)?;
    row.map(|row| {
        Ok(TokenAuth {
            id: parsed(&row, "id", TokenId::parse)?,
            owner: owner_col(&row, "owner_id")?,
            kinds: parsed(&row, "kinds", TokenKinds::parse_csv)?,
            expires_at: col(&row, "expires_at")?,
            revoked_at: col(&row, "revoked_at")?,
            role: parsed(&row, "role", UserRole::parse)?,
            status: parsed(&row, "status", UserStatus::parse)?,
        })
    })
    .transpose()
}

#[async_trait]
impl TokenRows for PgTx {
    async fn live_token_count(&mut self, owner: &OwnerId, at: OffsetDateTime) -> Result<u64> {
        let row = query(
            "SELECT count(*) AS n FROM tokens
             WHERE owner_id = $1
               AND (revoked_at IS NULL OR revoked_at > $2)
               AND (expires_at IS NULL OR expires_at > $2)",
        )
        .bind(owner.as_str())
        .bind(at)
        .fetch_one(self.conn())
        .await
        .map_err(unavailable)?;
        count_col(&row, "n")
    }

    async fn token(&mut self, owner: &OwnerId, id: &TokenId) -> Result<Option<TokenRecord>> {
        match scoped_token(self.conn(), owner, id).await {
            Err(Error::NotFound) => Ok(None),
            other => other.map(Some),
        }
    }

    async fn tokens_of(&mut self, owner: &OwnerId) -> Result<Vec<TokenRecord>> {
        let rows = query(
            "SELECT id, owner_id, kinds, label, display_prefix, origin, created_at, expires_at, revoked_at, last_used_at
             FROM tokens WHERE owner_id = $1
             ORDER BY created_at DESC, id DESC",
        )
        .bind(owner.as_str())
        .fetch_all(self.conn())
        .await
        .map_err(unavailable)?;
        rows.iter().map(token_from_row).collect()
    }

    async fn token_by_digest(&mut self, digest: &TokenDigest) -> Result<Option<TokenRecord>> {
        query(
            "SELECT id, owner_id, kinds, label, display_prefix, origin, created_at, expires_at,
                    revoked_at, last_used_at
             FROM tokens WHERE digest = $1",
        )
        .bind(digest.as_bytes().as_slice())
        .fetch_optional(self.conn())
        .await
        .map_err(unavailable)?
        .as_ref()
        .map(token_from_row)
        .transpose()
    }

    async fn is_replaced(&mut self, id: &TokenId) -> Result<bool> {
        query_scalar(
            "SELECT EXISTS (SELECT 1 FROM tokens WHERE id = $1 AND replaced_by IS NOT NULL)",
        )
        .bind(id.as_str())
        .fetch_one(self.conn())
        .await
        .map_err(unavailable)
    }

    async fn insert_token(&mut self, row: TokenRow<'_>) -> Result<TokenRecord> {
        let token = NewToken {
            fresh: row.fresh.clone(),
            label: row.label.map(str::to_owned),
            expires_at: row.expires_at,
        };
        insert_token(
            self.conn(),
            row.owner,
            &token,
            row.kinds,
            row.origin,
            row.created_at,
        )
        .await
    }

    async fn set_revoked(
        &mut self,
        owner: &OwnerId,
        id: &TokenId,
        at: OffsetDateTime,
    ) -> Result<()> {
        query("UPDATE tokens SET revoked_at = $3 WHERE id = $1 AND owner_id = $2")
            .bind(id.as_str())
            .bind(owner.as_str())
            .bind(at)
            .execute(self.conn())
            .await
            .map_err(unavailable)
            .map(drop)
    }

    async fn set_replaced(
        &mut self,
        owner: &OwnerId,
        id: &TokenId,
        by: &TokenId,
        ends: OffsetDateTime,
    ) -> Result<bool> {
        // `LEAST` ignores a NULL.
        let now = self.now();
        let changed = query(
            "UPDATE tokens SET revoked_at = LEAST(revoked_at, $3), replaced_by = $4
             WHERE id = $1 AND owner_id = $2 AND replaced_by IS NULL
               AND (revoked_at IS NULL OR revoked_at > $5)",
        )
        .bind(id.as_str())
        .bind(owner.as_str())
        .bind(ends)
        .bind(by.as_str())
        .bind(now)
        .execute(self.conn())
        .await
        .map_err(unavailable)?
        .rows_affected();
        Ok(changed == 1)
    }

    async fn record_uses(&mut self, uses: &[(TokenId, OffsetDateTime)]) -> Result<()> {
        let (ids, ats): (Vec<String>, Vec<OffsetDateTime>) = uses
            .iter()
            .map(|(id, at)| (id.as_str().to_owned(), *at))
            .unzip();
        query(
            "UPDATE tokens AS t
             SET last_used_at = GREATEST(COALESCE(t.last_used_at, u.at), u.at)
             FROM unnest($1::text[], $2::timestamptz[]) AS u(id, at)
             WHERE t.id = u.id",
        )
        .bind(ids)
        .bind(ats)
        .execute(self.conn())
        .await
        .map_err(unavailable)
        .map(drop)
    }

    async fn any_live_foreign_token(&mut self) -> Result<bool> {
        let now = self.now();
        query_scalar(
            "SELECT EXISTS (
                 SELECT 1 FROM tokens
                 WHERE origin IN ('provisioned', 'legacy')
                   AND (revoked_at IS NULL OR revoked_at > $1)
                   AND (expires_at IS NULL OR expires_at > $1))",
        )
        .bind(now)
        .fetch_one(self.conn())
        .await
        .map_err(unavailable)
    }
}

impl TokenDatabase for PgStore {
    async fn token_auth(&self, digest: &TokenDigest) -> Result<Option<TokenAuth>> {
        crate::metrics::timed("postgres", Op::Read, token_auth(self.reads(), digest)).await
    }
}
