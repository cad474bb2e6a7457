//! [`PairingStore`]: pairing requests (codes kept only as keyed hashes), redemption and
//! approval, channel identities, and the stored pairing-code key.

use std::time::Duration;

use async_trait::async_trait;
use ownership_core::authz::{Actor, AdminScope, ChannelScope, OwnerScope, SystemScope};
use ownership_core::ids::PairingRequestId;
use ownership_core::pairing::{CodeHash, PairingKey, PairingSeed};
use ownership_core::ports::{
    ChannelBinding, PairingCandidate, PairingIssue, PairingPolicy, PairingStore, PendingPairing,
};
use ownership_core::{
    ChannelKey, ChannelName, Error, ExternalId, Identity, OwnerId, Result, UserRole, UserStatus,
};
use sqlx::postgres::{PgConnection, PgRow};
use time::OffsetDateTime;

use super::PgStore;
use super::recheck::current_scope;
use super::support::{
    Write, add_duration, bytes_col, col, count_col, owner_col, parsed, unavailable,
};
use super::support::{query, query_scalar};
use crate::events;
use crate::metrics::Op;

/// The `settings` key of the generated pairing-code key.
const PAIRING_KEY_SETTING: &str = "pairing_code_key";

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

/// The binding of a chat account, if any.
async fn find_binding(conn: &mut PgConnection, key: &ChannelKey) -> Result<Option<ChannelBinding>> {
    let row = query(
        "SELECT channel, external_id, owner_id, created_at FROM channel_identities
         WHERE channel = $1 AND external_id = $2",
    )
    .bind(key.channel.as_str())
    .bind(key.external_id.as_str())
    .fetch_optional(conn)
    .await
    .map_err(unavailable)?;
    row.as_ref().map(binding_from_row).transpose()
}

/// Whether the user exists and is active.
async fn is_active(conn: &mut PgConnection, owner: &OwnerId) -> Result<bool> {
    let status: Option<String> = query_scalar("SELECT status FROM users WHERE id = $1")
        .bind(owner.as_str())
        .fetch_optional(conn)
        .await
        .map_err(unavailable)?;
    Ok(status.as_deref() == Some(UserStatus::Active.as_str()))
}

/// Whole seconds until `until` (at least one), for `Retry-After`.
fn retry_after(now: OffsetDateTime, until: OffsetDateTime) -> Duration {
    let micros = u128::try_from((until - now).whole_microseconds().max(0)).unwrap_or(0);
    let secs = u64::try_from(micros.div_ceil(1_000_000)).unwrap_or(u64::MAX);
    Duration::from_secs(secs.max(1))
}

impl PgStore {
    /// Redemption and approval, one transaction: find the live request by code hash,
    /// bind its sender to `owner` (or find it already bound to them), consume it, audit.
    /// An approval passes the approver's `admin` scope, re-checked under the lock.
    async fn consume_pairing(
        &self,
        admin: Option<&AdminScope>,
        actor: &Actor,
        channel: &ChannelName,
        code_hash: &CodeHash,
        owner: &OwnerId,
    ) -> Result<ChannelBinding> {
        let mut w = Write::begin(&self.pool, self.clock.as_ref()).await?;
        let now = w.now();
        if let Some(admin) = admin {
            current_scope(w.conn(), admin).await?;
        }
        let row = query(
            "SELECT id, external_id, expires_at FROM pairing_requests WHERE channel = $1 AND code_hash = $2",
        )
        .bind(channel.as_str())
        .bind(code_hash.as_bytes().as_slice())
        .fetch_optional(w.conn())
        .await
        .map_err(unavailable)?
        .ok_or(Error::NotFound)?;
        let request_id: String = col(&row, "id")?;
        let expires_at: OffsetDateTime = col(&row, "expires_at")?;
        if expires_at <= now {
            query("DELETE FROM pairing_requests WHERE id = $1")
                .bind(&request_id)
                .execute(w.conn())
                .await
                .map_err(unavailable)?;
            w.commit().await?;
            return Err(Error::NotFound);
        }
        let key = ChannelKey::new(
            channel.clone(),
            parsed(&row, "external_id", ExternalId::parse)?,
        );
        if !is_active(w.conn(), owner).await? {
            return Err(Error::NotFound);
        }
        let existing = find_binding(w.conn(), &key).await?;
        if existing.as_ref().is_some_and(|b| b.owner_id != *owner) {
            // Never moved silently: the old binding must be removed first. Nothing is
            // consumed (the transaction rolls back).
            return Err(Error::Conflict(
                "this chat account is linked to another user; it must be unlinked first".into(),
            ));
        }
        query("DELETE FROM pairing_requests WHERE id = $1")
            .bind(&request_id)
            .execute(w.conn())
            .await
            .map_err(unavailable)?;
        let binding = match existing {
            Some(binding) => binding,
            None => {
                query(
                    "INSERT INTO channel_identities (channel, external_id, owner_id, created_at)
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(key.channel.as_str())
                .bind(key.external_id.as_str())
                .bind(owner.as_str())
                .bind(now)
                .execute(w.conn())
                .await
                .map_err(unavailable)?;
                w.audit(events::pairing_approved(now, actor, &key, owner))
                    .await?;
                ChannelBinding {
                    key,
                    owner_id: owner.clone(),
                    created_at: now,
                }
            }
        };
        w.commit().await?;
        Ok(binding)
    }
}

#[async_trait]
impl PairingStore for PgStore {
    async fn request_pairing(
        &self,
        scope: &ChannelScope,
        external_id: &ExternalId,
        meta: Option<&str>,
        candidates: &[PairingCandidate],
        policy: &PairingPolicy,
    ) -> Result<PairingIssue> {
        let key = ChannelKey::new(scope.channel().clone(), external_id.clone());
        // A sender already bound may ask too: that is how a chat account moves to another
        // owner (redeeming or approving it for a different owner stays a conflict until
        // the old binding is removed).
        let mut w = Write::begin(&self.pool, self.clock.as_ref()).await?;
        let now = w.now();
        let expires_at = add_duration(now, policy.ttl, "ttl")?;
        query("DELETE FROM pairing_requests WHERE channel = $1 AND expires_at <= $2")
            .bind(key.channel.as_str())
            .bind(now)
            .execute(w.conn())
            .await
            .map_err(unavailable)?;
        let live = query(
            "SELECT id, seed, expires_at FROM pairing_requests WHERE channel = $1 AND external_id = $2",
        )
        .bind(key.channel.as_str())
        .bind(key.external_id.as_str())
        .fetch_optional(w.conn())
        .await
        .map_err(unavailable)?;
        if let Some(row) = live {
            let issue = PairingIssue {
                id: parsed(&row, "id", PairingRequestId::parse)?,
                seed: PairingSeed::from_bytes(bytes_col::<16>(&row, "seed")?),
                expires_at: col(&row, "expires_at")?,
                created: false,
            };
            w.commit().await?;
            return Ok(issue);
        }
        let row = query(
            "SELECT count(*) AS n, min(expires_at) AS oldest FROM pairing_requests WHERE channel = $1",
        )
        .bind(key.channel.as_str())
        .fetch_one(w.conn())
        .await
        .map_err(unavailable)?;
        let pending = count_col(&row, "n")?;
        if pending >= u64::from(policy.max_pending_per_channel) {
            let oldest: Option<OffsetDateTime> = col(&row, "oldest")?;
            w.commit().await?;
            return Err(Error::RateLimited {
                retry_after: retry_after(now, oldest.unwrap_or(expires_at)),
            });
        }
        let mut chosen = None;
        for candidate in candidates {
            let taken: bool =
                query_scalar("SELECT EXISTS (SELECT 1 FROM pairing_requests WHERE code_hash = $1)")
                    .bind(candidate.code_hash.as_bytes().as_slice())
                    .fetch_one(w.conn())
                    .await
                    .map_err(unavailable)?;
            if !taken {
                chosen = Some(candidate);
                break;
            }
        }
        let Some(candidate) = chosen else {
            tracing::error!(channel = %key.channel, "every pairing-code candidate collided");
            return Err(Error::Unavailable("no free pairing code; try again".into()));
        };
        query(
            "INSERT INTO pairing_requests (id, channel, external_id, seed, code_hash, meta, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(candidate.id.as_str())
        .bind(key.channel.as_str())
        .bind(key.external_id.as_str())
        .bind(candidate.seed.as_bytes().as_slice())
        .bind(candidate.code_hash.as_bytes().as_slice())
        .bind(meta)
        .bind(now)
        .bind(expires_at)
        .execute(w.conn())
        .await
        .map_err(unavailable)?;
        w.audit(events::pairing_requested(
            now,
            scope.actor(),
            &key,
            &candidate.id,
        ))
        .await?;
        w.commit().await?;
        Ok(PairingIssue {
            id: candidate.id.clone(),
            seed: candidate.seed,
            expires_at,
            created: true,
        })
    }

    async fn list_pending(
        &self,
        _scope: &AdminScope,
        channel: &ChannelName,
    ) -> Result<Vec<PendingPairing>> {
        let now = self.now();
        let rows = query(
            "SELECT id, channel, external_id, meta, created_at, expires_at FROM pairing_requests
             WHERE channel = $1 AND expires_at > $2
             ORDER BY created_at, id",
        )
        .bind(channel.as_str())
        .bind(now)
        .fetch_all(self.reads())
        .await
        .map_err(unavailable)?;
        rows.iter().map(pending_row).collect()
    }

    async fn list_all_pending(&self, _scope: &AdminScope) -> Result<Vec<PendingPairing>> {
        let now = self.now();
        let rows = query(
            "SELECT id, channel, external_id, meta, created_at, expires_at FROM pairing_requests
             WHERE expires_at > $1
             ORDER BY created_at DESC, id DESC",
        )
        .bind(now)
        .fetch_all(self.reads())
        .await
        .map_err(unavailable)?;
        rows.iter().map(pending_row).collect()
    }

    async fn redeem_pairing(
        &self,
        scope: &OwnerScope,
        channel: &ChannelName,
        code_hash: &CodeHash,
    ) -> Result<ChannelBinding> {
        self.consume_pairing(None, scope.actor(), channel, code_hash, scope.owner())
            .await
    }

    async fn approve_pairing(
        &self,
        scope: &AdminScope,
        channel: &ChannelName,
        code_hash: &CodeHash,
        owner: &OwnerId,
    ) -> Result<ChannelBinding> {
        self.consume_pairing(Some(scope), scope.actor(), channel, code_hash, owner)
            .await
    }

    async fn burn_pending(&self, _scope: &SystemScope, channel: &ChannelName) -> Result<u64> {
        let mut w = Write::begin(&self.pool, self.clock.as_ref()).await?;
        let now = w.now();
        let burned = query("DELETE FROM pairing_requests WHERE channel = $1 AND expires_at > $2")
            .bind(channel.as_str())
            .bind(now)
            .execute(w.conn())
            .await
            .map_err(unavailable)?
            .rows_affected();
        if burned > 0 {
            w.audit(events::pairing_burned(now, channel, burned))
                .await?;
        }
        w.commit().await?;
        Ok(burned)
    }

    async fn resolve_identity(
        &self,
        scope: &ChannelScope,
        external_id: &ExternalId,
    ) -> Result<Option<Identity>> {
        crate::metrics::timed("postgres", Op::Read, async {
            let row = query(
                "SELECT i.owner_id, u.role FROM channel_identities i JOIN users u ON u.id = i.owner_id
                 WHERE i.channel = $1 AND i.external_id = $2 AND u.status = 'active'",
            )
            .bind(scope.channel().as_str())
            .bind(external_id.as_str())
            .fetch_optional(self.reads())
            .await
            .map_err(unavailable)?;
            row.map(|row| {
                Ok(Identity::new(
                    owner_col(&row, "owner_id")?,
                    parsed(&row, "role", UserRole::parse)?,
                ))
            })
            .transpose()
        })
        .await
    }

    async fn stored_pairing_key(
        &self,
        _scope: &SystemScope,
        candidate: &PairingKey,
    ) -> Result<PairingKey> {
        let mut w = Write::begin(&self.pool, self.clock.as_ref()).await?;
        query("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
            .bind(PAIRING_KEY_SETTING)
            .bind(candidate.as_bytes().as_slice())
            .execute(w.conn())
            .await
            .map_err(unavailable)?;
        let row = query("SELECT value FROM settings WHERE key = $1")
            .bind(PAIRING_KEY_SETTING)
            .fetch_one(w.conn())
            .await
            .map_err(unavailable)?;
        let kept = PairingKey::from_bytes(bytes_col::<32>(&row, "value")?);
        w.commit().await?;
        Ok(kept)
    }

    async fn list_identities(&self, scope: &OwnerScope) -> Result<Vec<ChannelBinding>> {
        let rows = query(
            "SELECT channel, external_id, owner_id, created_at FROM channel_identities
             WHERE owner_id = $1
             ORDER BY created_at, channel, external_id",
        )
        .bind(scope.owner().as_str())
        .fetch_all(self.reads())
        .await
        .map_err(unavailable)?;
        rows.iter().map(binding_from_row).collect()
    }

    async fn unlink_identity(&self, scope: &OwnerScope, key: &ChannelKey) -> Result<()> {
        let mut w = Write::begin(&self.pool, self.clock.as_ref()).await?;
        let now = w.now();
        let removed = query(
            "DELETE FROM channel_identities WHERE channel = $1 AND external_id = $2 AND owner_id = $3",
        )
        .bind(key.channel.as_str())
        .bind(key.external_id.as_str())
        .bind(scope.owner().as_str())
        .execute(w.conn())
        .await
        .map_err(unavailable)?
        .rows_affected();
        if removed == 0 {
            return Err(Error::NotFound);
        }
        w.audit(events::identity_unlinked(
            now,
            scope.actor(),
            scope.owner(),
            key,
        ))
        .await?;
        w.commit().await
    }
}

/// A `pairing_requests` row as a pending request.
fn pending_row(row: &PgRow) -> Result<PendingPairing> {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds_and_is_never_zero() {
        let now = OffsetDateTime::UNIX_EPOCH;
        assert_eq!(retry_after(now, now), Duration::from_secs(1));
        assert_eq!(
            retry_after(now, now - time::Duration::seconds(5)),
            Duration::from_secs(1)
        );
        assert_eq!(
            retry_after(now, now + time::Duration::milliseconds(1_500)),
            Duration::from_secs(2)
        );
        assert_eq!(
            retry_after(now, now + time::Duration::seconds(600)),
            Duration::from_secs(600)
        );
    }
}
