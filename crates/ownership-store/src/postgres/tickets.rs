//! Stream tickets: the rows of [`TicketRows`] (only their digests are kept).

use async_trait::async_trait;
use ownership_core::Result;
use ownership_core::tickets::{TicketRow, TicketRows};
use ownership_core::token::TokenDigest;
use time::OffsetDateTime;

use super::db::PgTx;
use super::support::{bytes_col, col, owner_col, query, unavailable};

#[async_trait]
impl TicketRows for PgTx {
    async fn insert_ticket(&mut self, row: &TicketRow) -> Result<()> {
        query(
            "INSERT INTO stream_tickets (digest, owner_id, token_digest, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(row.digest.as_bytes().as_slice())
        .bind(row.owner.as_str())
        .bind(row.token.as_bytes().as_slice())
        .bind(row.expires_at)
        .execute(self.conn())
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn take_ticket(&mut self, digest: &TokenDigest) -> Result<Option<TicketRow>> {
        query(
            "DELETE FROM stream_tickets WHERE digest = $1
             RETURNING digest, owner_id, token_digest, expires_at",
        )
        .bind(digest.as_bytes().as_slice())
        .fetch_optional(self.conn())
        .await
        .map_err(unavailable)?
        .map(|row| {
            Ok(TicketRow {
                digest: TokenDigest::from_bytes(bytes_col::<32>(&row, "digest")?),
                owner: owner_col(&row, "owner_id")?,
                token: TokenDigest::from_bytes(bytes_col::<32>(&row, "token_digest")?),
                expires_at: col(&row, "expires_at")?,
            })
        })
        .transpose()
    }

    async fn delete_expired_tickets(&mut self, at: OffsetDateTime) -> Result<u64> {
        Ok(query("DELETE FROM stream_tickets WHERE expires_at <= $1")
            .bind(at)
            .execute(self.conn())
            .await
            .map_err(unavailable)?
            .rows_affected())
    }
}
