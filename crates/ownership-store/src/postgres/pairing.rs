//! Pairing rows on PostgreSQL: requests (codes kept only as keyed hashes), channel
//! identities and the stored pairing-code key. The use cases are core's
//! ([`ownership_core::pairing`]).

use async_trait::async_trait;
use ownership_core::db::Tx;
use ownership_core::ids::PairingRequestId;
use ownership_core::pairing::{
    ChannelAuth, Expiry, FailureKey, NewPairingRow, PairingBy, PairingKey, PairingRequestRow,
    PairingRows, PairingSeed,
};
use ownership_core::ports::{ChannelBinding, PairingCandidate, PendingPairing};
use ownership_core::{ChannelKey, ChannelName, ExternalId, OwnerId, Result, UserRole, UserStatus};
use sqlx::PgPool;
use sqlx::postgres::PgRow;
use time::OffsetDateTime;

use super::PgStore;
use super::db::PgTx;
use super::support::{bytes_col, col, count_col, owner_col, parsed, unavailable};
use super::support::{query, query_scalar};
use crate::metrics::Op;
use ownership_core::pairing::PairingDatabase;

/// The `settings` key of the generated pairing-code key.
const PAIRING_KEY_SETTING: &str = "pairing_code_key";

fn request_from_row(row: &PgRow) -> Result<PairingRequestRow> {
    Ok(PairingRequestRow {
        id: parsed(row, "id", PairingRequestId::parse)?,
        external_id: parsed(row, "external_id", ExternalId::parse)?,
        seed: PairingSeed::from_bytes(bytes_col::<16>(row, "seed")?),
        expires_at: col(row, "expires_at")?,
    })
}

fn binding_from_row(row: &PgRow) -> Result<ChannelBinding> {
    Ok(ChannelBinding {
        key: ChannelKey::new(
            parsed(row, "channel", ChannelName::parse)?,
            parsed(row, "external_id", ExternalId::parse)?,
        ),
        owner_id: owner_col(row, "owner_id")?,
        created_at: col(row, "created_at")?,
    })
}

/// The owner a chat account is bound to, with their account.
pub(super) async fn identity_of(reads: &PgPool, key: &ChannelKey) -> Result<Option<ChannelAuth>> {
    let row = query(
        "SELECT i.owner_id, u.role, u.status FROM channel_identities i JOIN users u ON u.id = i.owner_id
         WHERE i.channel = $1 AND i.external_id = $2",
    )
    .bind(key.channel.as_str())
    .bind(key.external_id.as_str())
    .fetch_optional(reads)
    .await
    .map_err(unavailable)?;
    row.map(|row| {
        Ok(ChannelAuth {
            owner: owner_col(&row, "owner_id")?,
            role: parsed(&row, "role", UserRole::parse)?,
            status: parsed(&row, "status", UserStatus::parse)?,
        })
    })
    .transpose()
}

#[async_trait]
impl PairingRows for PgTx {
    async fn delete_pairings(&mut self, channel: &ChannelName, which: Expiry) -> Result<u64> {
        let sql = match which {
            Expiry::Expired => {
                "DELETE FROM pairing_requests WHERE channel = $1 AND expires_at <= $2"
            }
            Expiry::Live => "DELETE FROM pairing_requests WHERE channel = $1 AND expires_at > $2",
        };
        let now = self.now();
        let done = query(sql)
            .bind(channel.as_str())
            .bind(now)
            .execute(self.conn())
            .await
            .map_err(unavailable)?;
        Ok(done.rows_affected())
    }

    async fn find_pairing(
        &mut self,
        channel: &ChannelName,
        by: PairingBy<'_>,
    ) -> Result<Option<PairingRequestRow>> {
        let select = query(match by {
            PairingBy::Sender(_) => {
                "SELECT id, external_id, seed, expires_at FROM pairing_requests
                 WHERE channel = $1 AND external_id = $2"
            }
            PairingBy::Code(_) => {
                "SELECT id, external_id, seed, expires_at FROM pairing_requests
                 WHERE channel = $1 AND code_hash = $2"
            }
        })
        .bind(channel.as_str());
        let select = match by {
            PairingBy::Sender(sender) => select.bind(sender.as_str()),
            PairingBy::Code(hash) => select.bind(hash.as_bytes().as_slice()),
        };
        let row = select
            .fetch_optional(self.conn())
            .await
            .map_err(unavailable)?;
        row.as_ref().map(request_from_row).transpose()
    }

    async fn pairing_count(
        &mut self,
        channel: &ChannelName,
    ) -> Result<(u64, Option<OffsetDateTime>)> {
        let row = query(
            "SELECT count(*) AS n, min(expires_at) AS oldest FROM pairing_requests WHERE channel = $1",
        )
        .bind(channel.as_str())
        .fetch_one(self.conn())
        .await
        .map_err(unavailable)?;
        Ok((count_col(&row, "n")?, col(&row, "oldest")?))
    }

    async fn pairing_taken(&mut self, candidate: &PairingCandidate) -> Result<bool> {
        query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pairing_requests WHERE code_hash = $1 OR id = $2)",
        )
        .bind(candidate.code_hash.as_bytes().as_slice())
        .bind(candidate.id.as_str())
        .fetch_one(self.conn())
        .await
        .map_err(unavailable)
    }

    async fn insert_pairing(&mut self, row: NewPairingRow<'_>) -> Result<()> {
        query(
            "INSERT INTO pairing_requests (id, channel, external_id, seed, code_hash, meta, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(row.candidate.id.as_str())
        .bind(row.key.channel.as_str())
        .bind(row.key.external_id.as_str())
        .bind(row.candidate.seed.as_bytes().as_slice())
        .bind(row.candidate.code_hash.as_bytes().as_slice())
        .bind(row.meta)
        .bind(row.created_at)
        .bind(row.expires_at)
        .execute(self.conn())
        .await
        .map_err(unavailable)
        .map(drop)
    }

    async fn delete_pairing(&mut self, id: &PairingRequestId) -> Result<()> {
        query("DELETE FROM pairing_requests WHERE id = $1")
            .bind(id.as_str())
            .execute(self.conn())
            .await
            .map_err(unavailable)
            .map(drop)
    }

    async fn live_pairings(
        &mut self,
        channel: Option<&ChannelName>,
    ) -> Result<Vec<PendingPairing>> {
        let now = self.now();
        let rows = match channel {
            Some(channel) => query(
                "SELECT id, channel, external_id, meta, created_at, expires_at FROM pairing_requests
                 WHERE channel = $1 AND expires_at > $2 ORDER BY created_at, id",
            )
            .bind(channel.as_str()),
            None => query(
                "SELECT id, channel, external_id, meta, created_at, expires_at FROM pairing_requests
                 WHERE expires_at > $1 ORDER BY created_at, id",
            ),
        }
        .bind(now)
        .fetch_all(self.conn())
        .await
        .map_err(unavailable)?;
        rows.iter()
            .map(|row| {
                Ok(PendingPairing {
                    id: parsed(row, "id", PairingRequestId::parse)?,
                    key: ChannelKey::new(
                        parsed(row, "channel", ChannelName::parse)?,
                        parsed(row, "external_id", ExternalId::parse)?,
                    ),
                    meta: col(row, "meta")?,
                    created_at: col(row, "created_at")?,
                    expires_at: col(row, "expires_at")?,
                })
            })
            .collect()
    }

    async fn binding(&mut self, key: &ChannelKey) -> Result<Option<ChannelBinding>> {
        let row = query(
            "SELECT channel, external_id, owner_id, created_at FROM channel_identities
             WHERE channel = $1 AND external_id = $2",
        )
        .bind(key.channel.as_str())
        .bind(key.external_id.as_str())
        .fetch_optional(self.conn())
        .await
        .map_err(unavailable)?;
        row.as_ref().map(binding_from_row).transpose()
    }

    async fn insert_binding(&mut self, binding: &ChannelBinding) -> Result<()> {
        query(
            "INSERT INTO channel_identities (channel, external_id, owner_id, created_at)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(binding.key.channel.as_str())
        .bind(binding.key.external_id.as_str())
        .bind(binding.owner_id.as_str())
        .bind(binding.created_at)
        .execute(self.conn())
        .await
        .map_err(unavailable)
        .map(drop)
    }

    async fn bindings_of(&mut self, owner: &OwnerId) -> Result<Vec<ChannelBinding>> {
        let rows = query(
            "SELECT channel, external_id, owner_id, created_at FROM channel_identities
             WHERE owner_id = $1
             ORDER BY created_at, channel, external_id",
        )
        .bind(owner.as_str())
        .fetch_all(self.conn())
        .await
        .map_err(unavailable)?;
        rows.iter().map(binding_from_row).collect()
    }

    async fn delete_binding(&mut self, key: &ChannelKey, owner: &OwnerId) -> Result<u64> {
        let done = query(
            "DELETE FROM channel_identities WHERE channel = $1 AND external_id = $2 AND owner_id = $3",
        )
        .bind(key.channel.as_str())
        .bind(key.external_id.as_str())
        .bind(owner.as_str())
        .execute(self.conn())
        .await
        .map_err(unavailable)?;
        Ok(done.rows_affected())
    }

    async fn keep_pairing_key(&mut self, candidate: &PairingKey) -> Result<Option<PairingKey>> {
        query("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
            .bind(PAIRING_KEY_SETTING)
            .bind(candidate.as_bytes().as_slice())
            .execute(self.conn())
            .await
            .map_err(unavailable)?;
        let row = query("SELECT value FROM settings WHERE key = $1")
            .bind(PAIRING_KEY_SETTING)
            .fetch_optional(self.conn())
            .await
            .map_err(unavailable)?;
        row.map(|row| Ok(PairingKey::from_bytes(bytes_col::<32>(&row, "value")?)))
            .transpose()
    }

    async fn budget_spent_until(&mut self, key: FailureKey<'_>) -> Result<Option<OffsetDateTime>> {
        query_scalar("SELECT spent_until FROM pairing_failures WHERE scope = $1 AND key = $2")
            .bind(key.scope())
            .bind(key.key())
            .fetch_optional(self.conn())
            .await
            .map_err(unavailable)
    }

    async fn set_budget_spent_until(
        &mut self,
        key: FailureKey<'_>,
        at: OffsetDateTime,
    ) -> Result<()> {
        query(
            "INSERT INTO pairing_failures (scope, key, spent_until) VALUES ($1, $2, $3)
             ON CONFLICT (scope, key) DO UPDATE SET spent_until = excluded.spent_until",
        )
        .bind(key.scope())
        .bind(key.key())
        .bind(at)
        .execute(self.conn())
        .await
        .map_err(unavailable)?;
        Ok(())
    }
}

impl PairingDatabase for PgStore {
    async fn identity_of(&self, key: &ChannelKey) -> Result<Option<ChannelAuth>> {
        crate::metrics::timed("postgres", Op::Read, identity_of(self.reads(), key)).await
    }
}
