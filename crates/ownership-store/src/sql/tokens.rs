//! Bearer tokens: authentication by digest, issue, rotation with grace, revocation with
//! kind verification, the write-behind of last use.

use async_trait::async_trait;
use ownership_core::ids::{Label, TokenId};
use ownership_core::ports::{TokenOrigin, TokenRecord};
use ownership_core::tokens::{TokenAuth, TokenRow, TokenRows};
use ownership_core::{OwnerId, Result, TokenKinds, UserRole, UserStatus};
use time::OffsetDateTime;

use super::driver::*;
use super::tx::SqlTx;
use ownership_core::token::{DisplayPrefix, TokenDigest};

/// The columns [`token_from`] reads, in order.
pub(super) const TOKEN_COLS: &str = "id, owner_id, kinds, label, display_prefix, origin, created_at, expires_at, revoked_at, last_used_at";

/// A `tokens` row (selected with [`TOKEN_COLS`]).
pub(super) fn token_from(row: &[Val]) -> Result<TokenRecord> {
    Ok(TokenRecord {
        id: parsed(row, 0, "token id", TokenId::parse)?,
        owner_id: parsed(row, 1, "token owner", OwnerId::parse)?,
        kinds: parsed(row, 2, "token kinds", TokenKinds::parse_csv)?,
        label: opt_parsed(row, 3, "label", Label::parse)?,
        display_prefix: parsed(row, 4, "display prefix", DisplayPrefix::parse)?,
        origin: parsed(row, 5, "token origin", TokenOrigin::parse)?,
        created_at: time_at(row, 6)?,
        expires_at: opt_time(row, 7)?,
        revoked_at: opt_time(row, 8)?,
        last_used_at: opt_time(row, 9)?,
    })
}

/// One token by id, scoped to its owner.
pub(super) async fn scoped_token<D: Driver>(
    d: &mut D,
    owner: &OwnerId,
    id: &TokenId,
) -> Result<Option<TokenRecord>> {
    let sql = format!("SELECT {TOKEN_COLS} FROM tokens WHERE id = $1 AND owner_id = $2");
    query_opt(d, &sql, args![id.as_str(), owner.as_str()])
        .await?
        .map(|row| token_from(&row))
        .transpose()
}

/// Inserts a token and reads it back. A taken id or digest is a conflict (never expected
/// for random values; refused rather than overwritten).
pub(super) async fn insert_token<D: Driver>(d: &mut D, row: TokenRow<'_>) -> Result<TokenRecord> {
    let digest = row.fresh.digest.as_bytes().as_slice();
    d.execute(
        "INSERT INTO tokens (id, owner_id, digest, kinds, label, display_prefix, origin, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        args![
            row.fresh.id.as_str(),
            row.owner.as_str(),
            digest,
            row.kinds.to_csv(),
            row.label,
            row.fresh.display_prefix.as_str(),
            row.origin.as_str(),
            row.created_at,
            row.expires_at,
        ],
    )
    .await
    .map_err(conflict("a token with this id or value already exists"))?;
    scoped_token(d, row.owner, &row.fresh.id)
        .await?
        .ok_or_else(|| super::driver::integrity("inserted token"))
}

/// The token with this digest joined with its owner's account.
pub(crate) async fn token_auth<D: Driver>(d: &mut D, digest: &[u8]) -> Result<Option<TokenAuth>> {
    let row = query_opt(
        d,
        "SELECT t.id, t.owner_id, t.kinds, t.expires_at, t.revoked_at, u.role, u.status \
         FROM tokens t JOIN users u ON u.id = t.owner_id WHERE t.digest = $1",
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
impl<D: Driver> TokenRows for SqlTx<D> {
    async fn live_token_count(&mut self, owner: &OwnerId, at: OffsetDateTime) -> Result<u64> {
        // Three ranges of `tokens_owner_live` (owner, revoked_at, expires_at), each holding
        // live tokens only: never revoked and never expiring; never revoked and expiring
        // later; revoked later (a rotation's grace). Revoked and expired tokens are
        // skipped by the index, not read and filtered.
        let sql = "SELECT \
                   (SELECT COUNT(*) FROM tokens WHERE owner_id = $1 AND revoked_at IS NULL AND expires_at IS NULL) \
                   + (SELECT COUNT(*) FROM tokens WHERE owner_id = $1 AND revoked_at IS NULL AND expires_at > $2) \
                   + (SELECT COUNT(*) FROM tokens WHERE owner_id = $1 AND revoked_at > $2 \
                   AND (expires_at IS NULL OR expires_at > $2))";
        query_count(&mut self.d, sql, args![owner.as_str(), at], "token count").await
    }

    async fn token(&mut self, owner: &OwnerId, id: &TokenId) -> Result<Option<TokenRecord>> {
        scoped_token(&mut self.d, owner, id).await
    }

    async fn tokens_of(&mut self, owner: &OwnerId) -> Result<Vec<TokenRecord>> {
        let sql = format!(
            "SELECT {TOKEN_COLS} FROM tokens WHERE owner_id = $1 ORDER BY created_at DESC, {}",
            pick::<D>("id DESC", "rowid DESC")
        );
        let rows = query_all(&mut self.d, &sql, args![owner.as_str()]).await?;
        rows.iter().map(|r| token_from(r)).collect()
    }

    async fn token_by_digest(&mut self, digest: &TokenDigest) -> Result<Option<TokenRecord>> {
        let sql = format!("SELECT {TOKEN_COLS} FROM tokens WHERE digest = $1");
        query_opt(&mut self.d, &sql, args![digest.as_bytes().as_slice()])
            .await?
            .map(|row| token_from(&row))
            .transpose()
    }

    async fn is_replaced(&mut self, id: &TokenId) -> Result<bool> {
        exists(
            &mut self.d,
            "SELECT 1 FROM tokens WHERE id = $1 AND replaced_by IS NOT NULL",
            args![id.as_str()],
        )
        .await
    }

    async fn insert_token(&mut self, row: TokenRow<'_>) -> Result<TokenRecord> {
        insert_token(&mut self.d, row).await
    }

    async fn set_revoked(
        &mut self,
        owner: &OwnerId,
        id: &TokenId,
        at: OffsetDateTime,
    ) -> Result<()> {
        exec(
            &mut self.d,
            "UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND owner_id = $3",
            args![at, id.as_str(), owner.as_str()],
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
            &mut self.d,
            "UPDATE tokens SET revoked_at = CASE WHEN revoked_at < $1 THEN revoked_at ELSE $1 END, replaced_by = $2 \
             WHERE id = $3 AND owner_id = $4 AND replaced_by IS NULL \
               AND (revoked_at IS NULL OR revoked_at > $5)",
            args![
                ends,
                by.as_str(),
                id.as_str(),
                owner.as_str(),
                self.now
            ],
        )
        .await?;
        Ok(changed == 1)
    }

    async fn record_uses(&mut self, uses: &[(TokenId, OffsetDateTime)]) -> Result<()> {
        for (id, at) in uses {
            exec(
                &mut self.d,
                "UPDATE tokens SET last_used_at = $1 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $1)",
                args![*at, id.as_str()],
            )
            .await?;
        }
        Ok(())
    }

    async fn any_live_foreign_token(&mut self) -> Result<bool> {
        exists(
            &mut self.d,
            "SELECT 1 FROM tokens WHERE origin IN ('provisioned', 'legacy') \
             AND (revoked_at IS NULL OR revoked_at > $1) AND (expires_at IS NULL OR expires_at > $1) LIMIT 1",
            args![self.now],
        )
        .await
    }
}
