//! Stream tickets: the rows of [`TicketRows`] (only their digests are kept).

use async_trait::async_trait;
use ownership_core::tickets::{TicketRow, TicketRows};
use ownership_core::token::TokenDigest;
use ownership_core::{OwnerId, Result};
use time::OffsetDateTime;

use super::driver::*;
use super::tx::SqlTx;

fn ticket_from(row: &[Val]) -> Result<TicketRow> {
    Ok(TicketRow {
        digest: TokenDigest::from_bytes(bytes::<32>(row, 0, "ticket digest")?),
        owner: parsed(row, 1, "ticket owner", OwnerId::parse)?,
        token: TokenDigest::from_bytes(bytes::<32>(row, 2, "ticket token")?),
        expires_at: time_at(row, 3)?,
    })
}

#[async_trait]
impl<D: Driver> TicketRows for SqlTx<D> {
    async fn insert_ticket(&mut self, row: &TicketRow) -> Result<()> {
        exec(
            &mut self.d,
            "INSERT INTO stream_tickets (digest, owner_id, token_digest, expires_at) VALUES ($1, $2, $3, $4)",
            args![
                row.digest.as_bytes().as_slice(),
                row.owner.as_str(),
                row.token.as_bytes().as_slice(),
                row.expires_at
            ],
        )
        .await?;
        Ok(())
    }

    async fn take_ticket(&mut self, digest: &TokenDigest) -> Result<Option<TicketRow>> {
        query_opt(
            &mut self.d,
            "DELETE FROM stream_tickets WHERE digest = $1 \
             RETURNING digest, owner_id, token_digest, expires_at",
            args![digest.as_bytes().as_slice()],
        )
        .await?
        .map(|row| ticket_from(&row))
        .transpose()
    }

    async fn delete_expired_tickets(&mut self, at: OffsetDateTime) -> Result<u64> {
        exec(
            &mut self.d,
            "DELETE FROM stream_tickets WHERE expires_at <= $1",
            args![at],
        )
        .await
    }
}
