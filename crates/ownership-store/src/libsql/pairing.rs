//! Pairing chat accounts to owners: one live request per sender, a per-channel cap,
//! consumption on redeem or approval, rebinding refused, and the stored pairing-code key.

use ::libsql::{Connection, Value};
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
use time::OffsetDateTime;

use super::LibsqlStore;
use super::audit::append_audit;
use super::conn::{
    add, args, bytes, exec, exists, micros, now_of, opt_text, parsed, query_all, query_i64,
    query_opt, time_at,
};
use super::recheck::current_scope;
use super::users::active_user;
use crate::events;

/// The `settings` key of the generated pairing-code key.
const PAIRING_KEY_SETTING: &str = "pairing_code_key";

fn binding_from(row: &[Value]) -> Result<ChannelBinding> {
    Ok(ChannelBinding {
        key: ChannelKey::new(
            parsed(row, 0, "identity channel", ChannelName::parse)?,
            parsed(row, 1, "identity external id", ExternalId::parse)?,
        ),
        owner_id: parsed(row, 2, "identity owner", OwnerId::parse)?,
        created_at: time_at(row, 3)?,
    })
}

async fn binding(conn: &Connection, key: &ChannelKey) -> Result<Option<ChannelBinding>> {
    query_opt(
        conn,
        "SELECT channel, external_id, owner_id, created_at FROM channel_identities WHERE channel = ?1 AND external_id = ?2",
        args![key.channel.as_str(), key.external_id.as_str()],
    )
    .await?
    .map(|row| binding_from(&row))
    .transpose()
}

/// Consumes the request with this code hash on this channel and binds its sender to
/// `owner`. The outer error rolls back; the inner is committed (an expired request found
/// here is deleted and still answers NotFound).
async fn approve(
    conn: &Connection,
    now: OffsetDateTime,
    actor: &Actor,
    channel: &ChannelName,
    code_hash: &CodeHash,
    owner: &OwnerId,
) -> Result<Result<ChannelBinding>> {
    let request = query_opt(
        conn,
        "SELECT id, external_id, expires_at FROM pairing_requests WHERE channel = ?1 AND code_hash = ?2",
        args![channel.as_str(), code_hash.as_bytes().as_slice()],
    )
    .await?;
    let Some(request) = request else {
        return Ok(Err(Error::NotFound));
    };
    let request_id = super::conn::text(&request, 0)?;
    let external_id = parsed(&request, 1, "pairing external id", ExternalId::parse)?;
    if time_at(&request, 2)? <= now {
        exec(
            conn,
            "DELETE FROM pairing_requests WHERE id = ?1",
            args![request_id],
        )
        .await?;
        return Ok(Err(Error::NotFound));
    }
    if active_user(conn, owner).await?.is_none() {
        return Err(Error::NotFound);
    }
    let key = ChannelKey::new(channel.clone(), external_id);
    match binding(conn, &key).await? {
        Some(existing) if existing.owner_id != *owner => Err(Error::Conflict(
            "this chat account is bound to another owner; unlink it first".into(),
        )),
        Some(existing) => {
            exec(
                conn,
                "DELETE FROM pairing_requests WHERE id = ?1",
                args![request_id],
            )
            .await?;
            Ok(Ok(existing))
        }
        None => {
            exec(
                conn,
                "INSERT INTO channel_identities (channel, external_id, owner_id, created_at) VALUES (?1, ?2, ?3, ?4)",
                args![key.channel.as_str(), key.external_id.as_str(), owner.as_str(), micros(now)?],
            )
            .await?;
            exec(
                conn,
                "DELETE FROM pairing_requests WHERE id = ?1",
                args![request_id],
            )
            .await?;
            append_audit(conn, events::pairing_approved(now, actor, &key, owner)).await?;
            Ok(binding(conn, &key)
                .await?
                .ok_or_else(|| super::conn::integrity("inserted identity")))
        }
    }
}

fn retry_after(until: OffsetDateTime, now: OffsetDateTime) -> std::time::Duration {
    std::time::Duration::try_from(until - now).unwrap_or(std::time::Duration::ZERO)
}

#[async_trait]
impl PairingStore for LibsqlStore {
    async fn request_pairing(
        &self,
        scope: &ChannelScope,
        external_id: &ExternalId,
        meta: Option<&str>,
        candidates: &[PairingCandidate],
        policy: &PairingPolicy,
    ) -> Result<PairingIssue> {
        let scope = scope.clone();
        let key = ChannelKey::new(scope.channel().clone(), external_id.clone());
        let meta = meta.map(str::to_owned);
        let candidates = candidates.to_vec();
        let policy = *policy;
        let clock = self.clock.clone();
        self.worker
            .write(async move |c: &Connection| {
                let now = now_of(clock.as_ref());
                let at = micros(now)?;
                let channel = key.channel.as_str();
                let sender = key.external_id.as_str();
                // A sender already bound may ask too: that is how a chat account moves to
                // another owner. Redeeming or approving it for a different owner stays a
                // conflict (consuming nothing) until the old binding is removed.
                exec(c, "DELETE FROM pairing_requests WHERE channel = ?1 AND expires_at <= ?2", args![channel, at]).await?;
                let live = query_opt(
                    c,
                    "SELECT id, seed, expires_at FROM pairing_requests WHERE channel = ?1 AND external_id = ?2",
                    args![channel, sender],
                )
                .await?;
                if let Some(row) = live {
                    return Ok(PairingIssue {
                        id: parsed(&row, 0, "pairing request id", PairingRequestId::parse)?,
                        seed: PairingSeed::from_bytes(bytes::<16>(&row, 1, "pairing seed")?),
                        expires_at: time_at(&row, 2)?,
                        created: false,
                    });
                }
                let pending = query_i64(c, "SELECT COUNT(*) FROM pairing_requests WHERE channel = ?1", args![channel]).await?;
                if pending >= i64::from(policy.max_pending_per_channel) {
                    let oldest = query_opt(
                        c,
                        "SELECT MIN(expires_at) FROM pairing_requests WHERE channel = ?1",
                        args![channel],
                    )
                    .await?
                    .and_then(|row| super::conn::opt_time(&row, 0).transpose())
                    .transpose()?;
                    let wait = oldest.map_or(policy.ttl, |until| retry_after(until, now));
                    return Err(Error::RateLimited { retry_after: wait });
                }
                let expires_at = add(now, policy.ttl, "ttl")?;
                for candidate in &candidates {
                    let taken = exists(
                        c,
                        "SELECT 1 FROM pairing_requests WHERE code_hash = ?1 OR id = ?2",
                        args![candidate.code_hash.as_bytes().as_slice(), candidate.id.as_str()],
                    )
                    .await?;
                    if taken {
                        continue;
                    }
                    exec(
                        c,
                        "INSERT INTO pairing_requests (id, channel, external_id, seed, code_hash, meta, created_at, expires_at) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                        args![
                            candidate.id.as_str(),
                            channel,
                            sender,
                            candidate.seed.as_bytes().as_slice(),
                            candidate.code_hash.as_bytes().as_slice(),
                            meta.clone(),
                            at,
                            micros(expires_at)?,
                        ],
                    )
                    .await?;
                    append_audit(c, events::pairing_requested(now, scope.actor(), &key, &candidate.id)).await?;
                    let expires_at = super::conn::from_micros(micros(expires_at)?)?;
                    return Ok(PairingIssue {
                        id: candidate.id.clone(),
                        seed: candidate.seed,
                        expires_at,
                        created: true,
                    });
                }
                tracing::error!(candidates = candidates.len(), "every pairing candidate collided");
                Err(Error::Unavailable("no free pairing code".into()))
            })
            .await
    }

    async fn list_pending(
        &self,
        _scope: &AdminScope,
        channel: &ChannelName,
    ) -> Result<Vec<PendingPairing>> {
        let now = micros(self.now())?;
        self.pending(
            "WHERE channel = ?1 AND expires_at > ?2 ORDER BY created_at, rowid",
            args![channel.as_str().to_owned(), now],
        )
        .await
    }

    async fn list_all_pending(&self, _scope: &AdminScope) -> Result<Vec<PendingPairing>> {
        let now = micros(self.now())?;
        self.pending(
            "WHERE expires_at > ?1 ORDER BY created_at DESC, rowid DESC",
            args![now],
        )
        .await
    }

    async fn redeem_pairing(
        &self,
        scope: &OwnerScope,
        channel: &ChannelName,
        code_hash: &CodeHash,
    ) -> Result<ChannelBinding> {
        let scope = scope.clone();
        let channel = channel.clone();
        let code_hash = *code_hash;
        let clock = self.clock.clone();
        self.worker
            .write(async move |c: &Connection| {
                let now = now_of(clock.as_ref());
                approve(c, now, scope.actor(), &channel, &code_hash, scope.owner()).await
            })
            .await?
    }

    async fn approve_pairing(
        &self,
        scope: &AdminScope,
        channel: &ChannelName,
        code_hash: &CodeHash,
        owner: &OwnerId,
    ) -> Result<ChannelBinding> {
        let scope = scope.clone();
        let channel = channel.clone();
        let code_hash = *code_hash;
        let owner = owner.clone();
        let clock = self.clock.clone();
        self.worker
            .write(async move |c: &Connection| {
                let now = now_of(clock.as_ref());
                // The approver as they are now: still an active Admin or Owner.
                current_scope(c, &scope).await?;
                approve(c, now, scope.actor(), &channel, &code_hash, &owner).await
            })
            .await?
    }

    async fn burn_pending(&self, _scope: &SystemScope, channel: &ChannelName) -> Result<u64> {
        let channel = channel.clone();
        let clock = self.clock.clone();
        self.worker
            .write(async move |c: &Connection| {
                let now = now_of(clock.as_ref());
                let at = micros(now)?;
                let burned = exec(
                    c,
                    "DELETE FROM pairing_requests WHERE channel = ?1 AND expires_at > ?2",
                    args![channel.as_str(), at],
                )
                .await?;
                exec(
                    c,
                    "DELETE FROM pairing_requests WHERE channel = ?1",
                    args![channel.as_str()],
                )
                .await?;
                if burned > 0 {
                    append_audit(c, events::pairing_burned(now, &channel, burned)).await?;
                }
                Ok(burned)
            })
            .await
    }

    async fn resolve_identity(
        &self,
        scope: &ChannelScope,
        external_id: &ExternalId,
    ) -> Result<Option<Identity>> {
        let channel = scope.channel().as_str().to_owned();
        let external_id = external_id.as_str().to_owned();
        let row = self
            .worker
            .read(async move |c: &Connection| {
                query_opt(
                    c,
                    "SELECT u.id, u.role, u.status FROM channel_identities ci JOIN users u ON u.id = ci.owner_id \
                     WHERE ci.channel = ?1 AND ci.external_id = ?2",
                    args![channel, external_id],
                )
                .await
            })
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let owner = parsed(&row, 0, "user id", OwnerId::parse)?;
        let role = parsed(&row, 1, "user role", UserRole::parse)?;
        let status = parsed(&row, 2, "user status", UserStatus::parse)?;
        Ok((status == UserStatus::Active).then(|| Identity::new(owner, role)))
    }

    async fn stored_pairing_key(
        &self,
        _scope: &SystemScope,
        candidate: &PairingKey,
    ) -> Result<PairingKey> {
        let candidate = candidate.as_bytes().to_vec();
        self.worker
            .write(async move |c: &Connection| {
                exec(
                    c,
                    "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
                    args![PAIRING_KEY_SETTING, candidate],
                )
                .await?;
                let row = query_opt(c, "SELECT value FROM settings WHERE key = ?1", args![PAIRING_KEY_SETTING])
                    .await?
                    .ok_or_else(|| super::conn::integrity("pairing key"))?;
                Ok(PairingKey::from_bytes(bytes::<32>(&row, 0, "pairing key")?))
            })
            .await
    }

    async fn list_identities(&self, scope: &OwnerScope) -> Result<Vec<ChannelBinding>> {
        let owner = scope.owner().as_str().to_owned();
        let rows = self
            .worker
            .read(async move |c: &Connection| {
                query_all(
                    c,
                    "SELECT channel, external_id, owner_id, created_at FROM channel_identities \
                     WHERE owner_id = ?1 ORDER BY created_at, channel, external_id",
                    args![owner],
                )
                .await
            })
            .await?;
        rows.iter().map(|r| binding_from(r)).collect()
    }

    async fn unlink_identity(&self, scope: &OwnerScope, key: &ChannelKey) -> Result<()> {
        let scope = scope.clone();
        let key = key.clone();
        let clock = self.clock.clone();
        self.worker
            .write(async move |c: &Connection| {
                let now = now_of(clock.as_ref());
                let owner = scope.owner();
                let deleted = exec(
                    c,
                    "DELETE FROM channel_identities WHERE channel = ?1 AND external_id = ?2 AND owner_id = ?3",
                    args![key.channel.as_str(), key.external_id.as_str(), owner.as_str()],
                )
                .await?;
                if deleted == 0 {
                    return Err(Error::NotFound);
                }
                append_audit(c, events::identity_unlinked(now, scope.actor(), owner, &key)).await?;
                Ok(())
            })
            .await
    }
}

impl LibsqlStore {
    /// The pending requests `filter` (a `WHERE … ORDER BY …` over `pairing_requests`)
    /// selects.
    async fn pending(
        &self,
        filter: &'static str,
        params: Vec<Value>,
    ) -> Result<Vec<PendingPairing>> {
        let rows = self
            .worker
            .read(async move |c: &Connection| {
                let sql = format!(
                    "SELECT id, channel, external_id, meta, created_at, expires_at \
                     FROM pairing_requests {filter}"
                );
                query_all(c, &sql, params).await
            })
            .await?;
        rows.iter().map(|r| pending_row(r)).collect()
    }
}

/// A `pairing_requests` row (id, channel, external_id, meta, created_at, expires_at).
fn pending_row(row: &[Value]) -> Result<PendingPairing> {
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
}
