//! The tickets area: short-lived, single-use stream tickets. A browser's `EventSource`
//! cannot send an `Authorization` header, so instead of putting a token in the event
//! stream's URL (where proxies log it) the client trades its token for a ticket that
//! opens the stream once, within a minute. The store keeps only the ticket's digest, so
//! any process of a deployment sharing the store can take it.

use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::RandomSource;
use crate::authz::Principal;
use crate::db::{self, Transactions, Tx};
use crate::error::{Error, Result};
use crate::ids::OwnerId;
use crate::instants::add_duration;
use crate::token::{TokenDigest, digest_of};

/// How long a stream ticket lives by default.
pub const TICKET_TTL: Duration = Duration::from_secs(60);

/// Every ticket starts with this, so a ticket is never mistaken for a token.
pub const TICKET_PREFIX: &str = "ticket_";

/// A stream ticket as stored: its digest, whose stream it opens, and the token it stands
/// for (by digest: the stream lives as long as that token does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketRow {
    /// SHA-256 of the ticket.
    pub digest: TokenDigest,
    /// The user whose stream it opens.
    pub owner: OwnerId,
    /// The digest of the token that minted it.
    pub token: TokenDigest,
    /// When it stops working.
    pub expires_at: OffsetDateTime,
}

/// The ticket rows a transaction reads and writes: SQL and row mapping, no decisions.
#[async_trait]
pub trait TicketRows: Tx {
    /// Inserts a ticket.
    async fn insert_ticket(&mut self, row: &TicketRow) -> Result<()>;
    /// Deletes the ticket with this digest and returns it, if there was one.
    async fn take_ticket(&mut self, digest: &TokenDigest) -> Result<Option<TicketRow>>;
    /// Deletes the tickets that expired at or before `at`; how many.
    async fn delete_expired_tickets(&mut self, at: OffsetDateTime) -> Result<u64>;
}

/// A freshly minted ticket: its value (shown once) and when it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTicket {
    /// The ticket, for `GET /v1/me/events?ticket=…`.
    pub value: String,
    /// When it stops working.
    pub expires_at: OffsetDateTime,
}

/// Stream tickets.
#[async_trait]
pub trait TicketStore: Send + Sync {
    /// Stores a ticket for `principal`, who authenticated with the token of `token`
    /// digest, expiring `ttl` from now (never after that token). Expired tickets are
    /// purged first.
    async fn store_ticket(
        &self,
        principal: &Principal,
        token: TokenDigest,
        digest: TokenDigest,
        ttl: Duration,
    ) -> Result<OffsetDateTime>;

    /// Takes the ticket with this digest: it works once. `None` when there is none, or it
    /// expired (taken either way).
    async fn take_ticket(&self, digest: &TokenDigest) -> Result<Option<TicketRow>>;
}

/// Every database whose transactions have [`TicketRows`] keeps tickets.
#[async_trait]
impl<D> TicketStore for D
where
    D: Transactions,
    D::Tx: TicketRows,
{
    async fn store_ticket(
        &self,
        principal: &Principal,
        token: TokenDigest,
        digest: TokenDigest,
        ttl: Duration,
    ) -> Result<OffsetDateTime> {
        let owner = principal.identity().owner_id().clone();
        // A ticket never outlives the token it stands for.
        let token_ends = principal.expires_at();
        db::write(self, move |tx| {
            Box::pin(async move {
                let now = tx.now();
                tx.delete_expired_tickets(now).await?;
                let mut expires_at = add_duration(now, ttl, "ticket")?;
                if let Some(end) = token_ends {
                    expires_at = expires_at.min(end);
                }
                tx.insert_ticket(&TicketRow {
                    digest,
                    owner,
                    token,
                    expires_at,
                })
                .await?;
                Ok(expires_at)
            })
        })
        .await
    }

    async fn take_ticket(&self, digest: &TokenDigest) -> Result<Option<TicketRow>> {
        let digest = *digest;
        db::write(self, move |tx| {
            Box::pin(async move {
                let now = tx.now();
                Ok(tx
                    .take_ticket(&digest)
                    .await?
                    .filter(|t| t.expires_at > now))
            })
        })
        .await
    }
}

/// Mints a stream ticket for `principal`, who presented the token whose digest is
/// `token`, living `ttl`: 32 random bytes, hex, after [`TICKET_PREFIX`]; only its digest
/// is stored.
pub async fn mint_ticket<S: TicketStore + ?Sized>(
    store: &S,
    principal: &Principal,
    token: TokenDigest,
    ttl: Duration,
    rng: &mut (dyn RandomSource + Send),
) -> Result<NewTicket> {
    let mut bytes = [0_u8; 32];
    rng.fill(&mut bytes);
    let value = format!("{TICKET_PREFIX}{}", hex::encode(bytes));
    let expires_at = store
        .store_ticket(principal, token, digest_of(&value), ttl)
        .await?;
    Ok(NewTicket { value, expires_at })
}

/// Redeems a presented ticket: its row, once, while it lives. Anything else (not a
/// ticket, unknown, used, expired) is [`Error::Unauthenticated`].
pub async fn redeem_ticket<S: TicketStore + ?Sized>(store: &S, raw: &str) -> Result<TicketRow> {
    if !raw.starts_with(TICKET_PREFIX) || raw.len() != TICKET_PREFIX.len() + 64 {
        return Err(Error::Unauthenticated);
    }
    store
        .take_ticket(&digest_of(raw))
        .await?
        .ok_or(Error::Unauthenticated)
}
