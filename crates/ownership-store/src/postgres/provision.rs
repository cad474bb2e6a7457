//! Provisioned tokens on PostgreSQL ([`ProvisionRows`]). Applying a user-token table is
//! `ownership_core::provision`'s.

use async_trait::async_trait;
use ownership_core::ids::TokenId;
use ownership_core::provision::{ProvisionRows, StoredToken};
use ownership_core::token::TokenDigest;
use ownership_core::{OwnerId, Result, TokenKinds};
use sqlx::postgres::PgRow;
use time::OffsetDateTime;

use super::db::PgTx;
use super::support::{bytes_col, query, unavailable};
use super::tokens::token_from_row;

fn stored_from(row: &PgRow) -> Result<StoredToken> {
    Ok(StoredToken {
        record: token_from_row(row)?,
        digest: TokenDigest::from_bytes(bytes_col::<32>(row, "digest")?),
    })
}

#[async_trait]
impl ProvisionRows for PgTx {
    async fn live_provisioned_tokens(&mut self, at: OffsetDateTime) -> Result<Vec<StoredToken>> {
        query(
            "SELECT id, owner_id, kinds, label, display_prefix, origin, created_at, expires_at,
                    revoked_at, last_used_at, digest
             FROM tokens
             WHERE origin = 'provisioned'
               AND (revoked_at IS NULL OR revoked_at > $1)
               AND (expires_at IS NULL OR expires_at > $1)",
        )
        .bind(at)
        .fetch_all(self.conn())
        .await
        .map_err(unavailable)?
        .iter()
        .map(stored_from)
        .collect()
    }

    async fn update_provisioned_token(
        &mut self,
        owner: &OwnerId,
        id: &TokenId,
        kinds: &TokenKinds,
        label: Option<&str>,
    ) -> Result<()> {
        query(
            "UPDATE tokens SET kinds = $3, label = $4
             WHERE id = $1 AND owner_id = $2 AND origin = 'provisioned'",
        )
        .bind(id.as_str())
        .bind(owner.as_str())
        .bind(kinds.to_csv())
        .bind(label)
        .execute(self.conn())
        .await
        .map_err(unavailable)
        .map(drop)
    }
}
