//! Pairing rows: requests (codes kept only as keyed hashes), channel
//! identities and the stored pairing-code key. The use cases are core's
//! ([`ownership_core::pairing`]).

use async_trait::async_trait;
use ownership_core::ids::PairingRequestId;
use ownership_core::pairing::{
    ChannelAuth, ChannelPending, CodeHash, Expiry, FailureKey, NewPairingRow, PairingKey,
    PairingRequestRow, PairingRows, PairingSeed,
};
use ownership_core::ports::{ChannelBinding, PendingPairing};
use ownership_core::{ChannelKey, ChannelName, ExternalId, OwnerId, Result, UserRole, UserStatus};
use time::OffsetDateTime;

use super::driver::*;
use super::tx::SqlTx;

/// The `settings` key of the generated pairing-code key.
const PAIRING_KEY_SETTING: &str = "pairing_code_key";

fn request_from(row: &[Val]) -> Result<PairingRequestRow> {
    Ok(PairingRequestRow {
        id: parsed(row, 0, "pairing request id", PairingRequestId::parse)?,
        external_id: parsed(row, 1, "pairing external id", ExternalId::parse)?,
        seed: PairingSeed::from_bytes(bytes::<16>(row, 2, "pairing seed")?),
        expires_at: time_at(row, 3)?,
    })
}

/// The columns [`binding_from`] reads, in order.
const BINDING_COLS: &str = "channel, external_id, owner_id, created_at";

fn binding_from(row: &[Val]) -> Result<ChannelBinding> {
    Ok(ChannelBinding {
        key: ChannelKey::new(
            parsed(row, 0, "identity channel", ChannelName::parse)?,
            parsed(row, 1, "identity external id", ExternalId::parse)?,
        ),
        owner_id: parsed(row, 2, "identity owner", OwnerId::parse)?,
        created_at: time_at(row, 3)?,
    })
}

/// The owner a chat account is bound to, with their account.
pub(crate) async fn identity_of<D: Driver>(
    d: &mut D,
    key: &ChannelKey,
) -> Result<Option<ChannelAuth>> {
    let row = query_opt(
        d,
        "SELECT u.id, u.role, u.status FROM channel_identities ci JOIN users u ON u.id = ci.owner_id \
         WHERE ci.channel = $1 AND ci.external_id = $2",
        args![key.channel.as_str(), key.external_id.as_str()],
    )
    .await?;
    row.map(|row| {
        Ok(ChannelAuth {
            owner: parsed(&row, 0, "user id", OwnerId::parse)?,
            role: parsed(&row, 1, "user role", UserRole::parse)?,
            status: parsed(&row, 2, "user status", UserStatus::parse)?,
        })
    })
    .transpose()
}

#[async_trait]
impl<D: Driver> PairingRows for SqlTx<D> {
    async fn delete_pairings(&mut self, channel: &ChannelName, which: Expiry) -> Result<u64> {
        let sql = match which {
            Expiry::Expired => {
                "DELETE FROM pairing_requests WHERE channel = $1 AND expires_at <= $2"
            }
            Expiry::Live => "DELETE FROM pairing_requests WHERE channel = $1 AND expires_at > $2",
        };
        let now = self.now;
        exec(&mut self.d, sql, args![channel.as_str(), now]).await
    }

    async fn find_pairing(
        &mut self,
        channel: &ChannelName,
        code_hash: &CodeHash,
    ) -> Result<Option<PairingRequestRow>> {
        let sql = "SELECT id, external_id, seed, expires_at FROM pairing_requests \
                   WHERE channel = $1 AND code_hash = $2";
        let params = args![channel.as_str(), code_hash.as_bytes().as_slice()];
        query_opt(&mut self.d, sql, params)
            .await?
            .map(|row| request_from(&row))
            .transpose()
    }

    async fn channel_pending(&mut self, key: &ChannelKey) -> Result<ChannelPending> {
        let sql = "SELECT c.n, c.oldest, r.id, r.external_id, r.seed, r.expires_at FROM \
             (SELECT COUNT(*) AS n, MIN(expires_at) AS oldest FROM pairing_requests \
              WHERE channel = $1) AS c \
             LEFT JOIN pairing_requests r ON r.channel = $1 AND r.external_id = $2";
        let params = args![key.channel.as_str(), key.external_id.as_str()];
        let row = query_one(&mut self.d, sql, params, "pending pairings").await?;
        let sender = match opt_text(&row, 2)? {
            Some(_) => Some(request_from(row.get(2..).unwrap_or_default())?),
            None => None,
        };
        Ok(ChannelPending {
            sender,
            count: count_at(&row, 0, "pairing count")?,
            oldest: opt_time(&row, 1)?,
        })
    }

    async fn insert_pairing(&mut self, row: NewPairingRow<'_>) -> Result<bool> {
        exec(
            &mut self.d,
            "INSERT INTO pairing_requests (id, channel, external_id, seed, code_hash, meta, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
            args![
                row.candidate.id.as_str(),
                row.key.channel.as_str(),
                row.key.external_id.as_str(),
                row.candidate.seed.as_bytes().as_slice(),
                row.candidate.code_hash.as_bytes().as_slice(),
                row.meta,
                row.created_at,
                row.expires_at,
            ],
        )
        .await
        .map(|inserted| inserted > 0)
    }

    async fn delete_pairing(&mut self, id: &PairingRequestId) -> Result<bool> {
        let sql = "DELETE FROM pairing_requests WHERE id = $1";
        exec(&mut self.d, sql, args![id.as_str()])
            .await
            .map(|deleted| deleted > 0)
    }

    async fn live_pairings(
        &mut self,
        channel: Option<&ChannelName>,
    ) -> Result<Vec<PendingPairing>> {
        let now = self.now;
        let cols =
            "SELECT id, channel, external_id, meta, created_at, expires_at FROM pairing_requests";
        let rows = match channel {
            Some(channel) => {
                let sql = format!(
                    "{cols} WHERE channel = $1 AND expires_at > $2 ORDER BY created_at, {}",
                    pick::<D>("id", "rowid")
                );
                query_all(&mut self.d, &sql, args![channel.as_str(), now]).await?
            }
            None => {
                let sql = format!(
                    "{cols} WHERE expires_at > $1 ORDER BY created_at, {}",
                    pick::<D>("id", "rowid")
                );
                query_all(&mut self.d, &sql, args![now]).await?
            }
        };
        rows.iter()
            .map(|row| {
                Ok(PendingPairing {
                    id: parsed(row, 0, "pairing request id", PairingRequestId::parse)?,
                    key: ChannelKey::new(
                        parsed(row, 1, "pairing channel", ChannelName::parse)?,
                        parsed(row, 2, "pairing external id", ExternalId::parse)?,
                    ),
                    meta: opt_text(row, 3)?,
                    created_at: time_at(row, 4)?,
                    expires_at: time_at(row, 5)?,
                })
            })
            .collect()
    }

    async fn binding(&mut self, key: &ChannelKey) -> Result<Option<ChannelBinding>> {
        let sql = format!(
            "SELECT {BINDING_COLS} FROM channel_identities WHERE channel = $1 AND external_id = $2"
        );
        let args = args![key.channel.as_str(), key.external_id.as_str()];
        query_opt(&mut self.d, &sql, args)
            .await?
            .map(|row| binding_from(&row))
            .transpose()
    }

    async fn insert_binding(&mut self, binding: &ChannelBinding) -> Result<bool> {
        exec(
            &mut self.d,
            "INSERT INTO channel_identities (channel, external_id, owner_id, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (channel, external_id) DO NOTHING",
            args![
                binding.key.channel.as_str(),
                binding.key.external_id.as_str(),
                binding.owner_id.as_str(),
                binding.created_at,
            ],
        )
        .await
        .map(|inserted| inserted > 0)
    }

    async fn bindings_of(&mut self, owner: &OwnerId) -> Result<Vec<ChannelBinding>> {
        let sql = format!(
            "SELECT {BINDING_COLS} FROM channel_identities WHERE owner_id = $1 \
             ORDER BY created_at, channel, external_id"
        );
        let rows = query_all(&mut self.d, &sql, args![owner.as_str()]).await?;
        rows.iter().map(|row| binding_from(row)).collect()
    }

    async fn delete_binding(&mut self, key: &ChannelKey, owner: &OwnerId) -> Result<u64> {
        exec(
            &mut self.d,
            "DELETE FROM channel_identities WHERE channel = $1 AND external_id = $2 AND owner_id = $3",
            args![key.channel.as_str(), key.external_id.as_str(), owner.as_str()],
        )
        .await
    }

    async fn keep_pairing_key(&mut self, candidate: &PairingKey) -> Result<Option<PairingKey>> {
        exec(
            &mut self.d,
            "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
            args![PAIRING_KEY_SETTING, candidate.as_bytes().as_slice()],
        )
        .await?;
        let sql = "SELECT value FROM settings WHERE key = $1";
        query_opt(&mut self.d, sql, args![PAIRING_KEY_SETTING])
            .await?
            .map(|row| Ok(PairingKey::from_bytes(bytes::<32>(&row, 0, "pairing key")?)))
            .transpose()
    }

    async fn budget_spent_until(&mut self, key: FailureKey<'_>) -> Result<Option<OffsetDateTime>> {
        query_opt(
            &mut self.d,
            "SELECT spent_until FROM pairing_failures WHERE scope = $1 AND key = $2",
            args![key.scope(), key.key()],
        )
        .await?
        .map(|row| time_at(&row, 0))
        .transpose()
    }

    async fn set_budget_spent_until(
        &mut self,
        key: FailureKey<'_>,
        at: OffsetDateTime,
    ) -> Result<()> {
        exec(
            &mut self.d,
            "INSERT INTO pairing_failures (scope, key, spent_until) VALUES ($1, $2, $3) \
             ON CONFLICT (scope, key) DO UPDATE SET spent_until = excluded.spent_until",
            args![key.scope(), key.key(), at],
        )
        .await?;
        Ok(())
    }
}
