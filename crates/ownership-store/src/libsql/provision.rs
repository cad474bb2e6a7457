//! Provisioned tokens on libSQL ([`ProvisionRows`]). Applying a user-token table is
//! `ownership_core::provision`'s.

use ::libsql::Value;
use async_trait::async_trait;
use ownership_core::ids::TokenId;
use ownership_core::provision::{ProvisionRows, StoredToken};
use ownership_core::token::TokenDigest;
use ownership_core::{OwnerId, Result, TokenKinds};
use time::OffsetDateTime;

use super::conn::{args, bytes, exec, micros, query_all};
use super::db::LibsqlTx;
use super::tokens::{TOKEN_COLS, token_from};

/// A `tokens` row selected with [`TOKEN_COLS`] and then `digest`.
fn stored_from(row: &[Value]) -> Result<StoredToken> {
    Ok(StoredToken {
        record: token_from(row)?,
        digest: TokenDigest::from_bytes(bytes::<32>(row, 10, "token digest")?),
    })
}

#[async_trait]
impl ProvisionRows for LibsqlTx {
    async fn live_provisioned_tokens(&mut self, at: OffsetDateTime) -> Result<Vec<StoredToken>> {
        let sql = format!(
            "SELECT {TOKEN_COLS}, digest FROM tokens WHERE origin = 'provisioned' \
             AND (revoked_at IS NULL OR revoked_at > ?1) AND (expires_at IS NULL OR expires_at > ?1)"
        );
        let rows = query_all(&self.conn, &sql, args![micros(at)?]).await?;
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
            &self.conn,
            "UPDATE tokens SET kinds = ?1, label = ?2 WHERE id = ?3 AND owner_id = ?4 AND origin = 'provisioned'",
            args![kinds.to_csv(), label, id.as_str(), owner.as_str()],
        )
        .await
        .map(drop)
    }
}
