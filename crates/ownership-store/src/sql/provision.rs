//! Provisioned tokens ([`ProvisionRows`]). Applying a user-token table is
//! `ownership_core::provision`'s.

use async_trait::async_trait;
use ownership_core::ids::TokenId;
use ownership_core::provision::{ProvisionRows, StoredToken};
use ownership_core::token::TokenDigest;
use ownership_core::{OwnerId, Result, TokenKinds};
use time::OffsetDateTime;

use super::driver::*;
use super::tokens::{TOKEN_COLS, token_from};
use super::tx::SqlTx;

/// A `tokens` row selected with [`TOKEN_COLS`] and then `digest`.
fn stored_from(row: &[Val]) -> Result<StoredToken> {
    Ok(StoredToken {
        record: token_from(row)?,
        digest: TokenDigest::from_bytes(bytes::<32>(row, 10, "token digest")?),
    })
}

#[async_trait]
impl<D: Driver> ProvisionRows for SqlTx<D> {
    async fn live_provisioned_tokens(&mut self, at: OffsetDateTime) -> Result<Vec<StoredToken>> {
        let sql = format!(
            "SELECT {TOKEN_COLS}, digest FROM tokens WHERE origin = 'provisioned' \
             AND (revoked_at IS NULL OR revoked_at > $1) AND (expires_at IS NULL OR expires_at > $1)"
        );
        let rows = query_all(&mut self.d, &sql, args![at]).await?;
        rows.iter().map(|r| stored_from(r)).collect()
    }

    async fn update_provisioned_token(
        &mut self,
        owner: &OwnerId,
        id: &TokenId,
        kinds: &TokenKinds,
        label: Option<&str>,
    ) -> Result<()> {
        exec(
            &mut self.d,
            "UPDATE tokens SET kinds = $1, label = $2 WHERE id = $3 AND owner_id = $4 AND origin = 'provisioned'",
            args![kinds.to_csv(), label, id.as_str(), owner.as_str()],
        )
        .await
        .map(drop)
    }
}
