//! [`TokenStore`]: digest lookup, issue, rotation with grace, kind-verified revocation.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use ownership_core::authz::{MintPermit, OwnerScope, Principal, SystemScope};
use ownership_core::ids::TokenId;
use ownership_core::ports::{
    FreshToken, NewToken, TokenLookup, TokenOrigin, TokenRecord, TokenStore,
};
use ownership_core::token::TokenDigest;
use ownership_core::{
    Error, Identity, OwnerId, Result, TokenKind, TokenKinds, UserRole, UserStatus,
};
use sqlx::postgres::{PgConnection, PgRow};
use time::OffsetDateTime;

use super::PgStore;
use super::recheck::actor_state;
use super::support::{
    Write, add_duration, col, owner_col, parsed, unavailable, unique_or_unavailable,
};
use super::support::{query, query_scalar};
use crate::events;
use crate::metrics::Op;

/// A `tokens` row (all columns but `digest` and `replaced_by`).
pub(super) fn token_from_row(row: &PgRow) -> Result<TokenRecord> {
    Ok(TokenRecord {
        id: parsed(row, "id", TokenId::parse)?,
        owner_id: owner_col(row, "owner_id")?,
        kinds: parsed(row, "kinds", TokenKinds::parse_csv)?,
        label: col(row, "label")?,
        display_prefix: col(row, "display_prefix")?,
        origin: parsed(row, "origin", TokenOrigin::parse)?,
        created_at: col(row, "created_at")?,
        expires_at: col(row, "expires_at")?,
        revoked_at: col(row, "revoked_at")?,
        last_used_at: col(row, "last_used_at")?,
    })
}

/// Inserts a token row. A taken id or digest is [`Error::Conflict`].
pub(super) async fn insert_token(
    conn: &mut PgConnection,
    owner: &OwnerId,
    token: &NewToken,
    kinds: &TokenKinds,
    origin: TokenOrigin,
    now: OffsetDateTime,
) -> Result<TokenRecord> {
    let expires_at = token
        .expires_at
        .map(ownership_core::audit::truncate_to_micros);
    query(
        "INSERT INTO tokens (id, owner_id, digest, kinds, label, display_prefix, origin, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(token.fresh.id.as_str())
    .bind(owner.as_str())
    .bind(token.fresh.digest.as_bytes().as_slice())
    .bind(kinds.to_csv())
    .bind(token.label.as_deref())
    .bind(&token.fresh.display_prefix)
    .bind(origin.as_str())
    .bind(now)
    .bind(expires_at)
    .execute(conn)
    .await
    .map_err(|e| unique_or_unavailable(e, "a token with this id or value already exists"))?;
    Ok(TokenRecord {
        id: token.fresh.id.clone(),
        owner_id: owner.clone(),
        kinds: kinds.clone(),
        label: token.label.clone(),
        display_prefix: token.fresh.display_prefix.clone(),
        origin,
        created_at: now,
        expires_at,
        revoked_at: None,
        last_used_at: None,
    })
}

/// One of the owner's tokens, or [`Error::NotFound`].
async fn scoped_token(
    conn: &mut PgConnection,
    owner: &OwnerId,
    id: &TokenId,
) -> Result<TokenRecord> {
    let row = query(
        "SELECT id, owner_id, kinds, label, display_prefix, origin, created_at, expires_at, revoked_at, last_used_at
         FROM tokens WHERE id = $1 AND owner_id = $2",
    )
    .bind(id.as_str())
    .bind(owner.as_str())
    .fetch_optional(conn)
    .await
    .map_err(unavailable)?
    .ok_or(Error::NotFound)?;
    token_from_row(&row)
}

/// The earlier of two optional instants.
fn earliest(a: Option<OffsetDateTime>, b: Option<OffsetDateTime>) -> Option<OffsetDateTime> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[async_trait]
impl TokenStore for PgStore {
    async fn authenticate(&self, digest: &TokenDigest) -> Result<Option<Principal>> {
        self.lookup(digest).await.map(TokenLookup::live)
    }

    async fn lookup(&self, digest: &TokenDigest) -> Result<TokenLookup> {
        crate::metrics::timed("postgres", Op::Read, async {
            let now = self.now();
            let row = query(
                "SELECT t.id, t.owner_id, t.kinds, t.expires_at, t.revoked_at, u.role, u.status
                 FROM tokens t JOIN users u ON u.id = t.owner_id
                 WHERE t.digest = $1",
            )
            .bind(digest.as_bytes().as_slice())
            .fetch_optional(self.reads())
            .await
            .map_err(unavailable)?;
            let Some(row) = row else {
                return Ok(TokenLookup::Unknown);
            };
            let expires_at: Option<OffsetDateTime> = col(&row, "expires_at")?;
            let revoked_at: Option<OffsetDateTime> = col(&row, "revoked_at")?;
            let status = parsed(&row, "status", UserStatus::parse)?;
            let principal = Principal {
                identity: Identity::new(
                    owner_col(&row, "owner_id")?,
                    parsed(&row, "role", UserRole::parse)?,
                ),
                token_id: parsed(&row, "id", TokenId::parse)?,
                kinds: parsed(&row, "kinds", TokenKinds::parse_csv)?,
                expires_at: earliest(expires_at, revoked_at),
            };
            Ok(TokenLookup::decide(
                now,
                revoked_at,
                expires_at,
                status,
                || principal,
            ))
        })
        .await
    }

    async fn issue_token(&self, permit: &MintPermit, token: NewToken) -> Result<TokenRecord> {
        let mut w = Write::begin(&self.pool, self.clock.as_ref()).await?;
        let now = w.now();
        // The owner as they are now, under the lock: active, and for a service token still
        // an Admin or Owner.
        permit.recheck(actor_state(w.conn(), permit.owner()).await?)?;
        let record = insert_token(
            w.conn(),
            permit.owner(),
            &token,
            permit.kinds(),
            TokenOrigin::Issued,
            now,
        )
        .await?;
        w.audit(events::token_issued(
            now,
            permit.actor(),
            permit.owner(),
            &record.id,
            &record.kinds,
        ))
        .await?;
        w.commit().await?;
        Ok(record)
    }

    async fn list_tokens(&self, scope: &OwnerScope) -> Result<Vec<TokenRecord>> {
        let rows = query(
            "SELECT id, owner_id, kinds, label, display_prefix, origin, created_at, expires_at, revoked_at, last_used_at
             FROM tokens WHERE owner_id = $1
             ORDER BY created_at DESC, id DESC",
        )
        .bind(scope.owner().as_str())
        .fetch_all(self.reads())
        .await
        .map_err(unavailable)?;
        rows.iter().map(token_from_row).collect()
    }

    async fn get_token(&self, scope: &OwnerScope, id: &TokenId) -> Result<TokenRecord> {
        let mut conn = self.reads().acquire().await.map_err(unavailable)?;
        scoped_token(&mut conn, scope.owner(), id).await
    }

    async fn rotate_token(
        &self,
        scope: &OwnerScope,
        id: &TokenId,
        new: FreshToken,
        grace: Option<Duration>,
    ) -> Result<TokenRecord> {
        let mut w = Write::begin(&self.pool, self.clock.as_ref()).await?;
        let now = w.now();
        let revoke_at = match grace {
            Some(grace) => add_duration(now, grace, "grace_seconds")?,
            None => now,
        };
        let old = scoped_token(w.conn(), scope.owner(), id).await?;
        // Live now, and not already replaced: a token inside its rotation grace still
        // authenticates but has had its one rotation, so of concurrent rotations exactly
        // one wins.
        let replaced: Option<String> =
            query_scalar("SELECT replaced_by FROM tokens WHERE id = $1 AND owner_id = $2")
                .bind(id.as_str())
                .bind(scope.owner().as_str())
                .fetch_one(w.conn())
                .await
                .map_err(unavailable)?;
        if !old.is_live(now) || replaced.is_some() {
            return Err(Error::NotFound);
        }
        let new_token = NewToken {
            fresh: new,
            label: old.label.clone(),
            expires_at: old.expires_at,
        };
        let record = insert_token(
            w.conn(),
            scope.owner(),
            &new_token,
            &old.kinds,
            TokenOrigin::Issued,
            now,
        )
        .await?;
        // Only a live, unreplaced row is rotated, and a revocation time already set is
        // never moved later (`LEAST` ignores a NULL): a rotation never revives a token.
        let changed = query(
            "UPDATE tokens SET revoked_at = LEAST(revoked_at, $3), replaced_by = $4
             WHERE id = $1 AND owner_id = $2 AND replaced_by IS NULL
               AND (revoked_at IS NULL OR revoked_at > $5)",
        )
        .bind(id.as_str())
        .bind(scope.owner().as_str())
        .bind(revoke_at)
        .bind(record.id.as_str())
        .bind(now)
        .execute(w.conn())
        .await
        .map_err(unavailable)?
        .rows_affected();
        if changed != 1 {
            return Err(Error::NotFound);
        }
        w.audit(events::token_rotated(
            now,
            scope.actor(),
            scope.owner(),
            id,
            &record.id,
            grace,
        ))
        .await?;
        w.commit().await?;
        Ok(record)
    }

    async fn revoke_token(
        &self,
        scope: &OwnerScope,
        id: &TokenId,
        expected_kind: Option<&TokenKind>,
    ) -> Result<TokenRecord> {
        let mut w = Write::begin(&self.pool, self.clock.as_ref()).await?;
        let now = w.now();
        let token = scoped_token(w.conn(), scope.owner(), id).await?;
        if let Some(kind) = expected_kind
            && !token.kinds.contains(kind)
        {
            return Err(Error::Conflict(format!(
                "the token does not hold kind `{kind}`"
            )));
        }
        if token.revoked_at.is_some_and(|at| at <= now) {
            return Ok(token);
        }
        query("UPDATE tokens SET revoked_at = $3 WHERE id = $1 AND owner_id = $2")
            .bind(id.as_str())
            .bind(scope.owner().as_str())
            .bind(now)
            .execute(w.conn())
            .await
            .map_err(unavailable)?;
        w.audit(events::token_revoked(now, scope.actor(), scope.owner(), id))
            .await?;
        w.commit().await?;
        Ok(TokenRecord {
            revoked_at: Some(now),
            ..token
        })
    }

    async fn record_last_used(
        &self,
        _scope: &SystemScope,
        uses: &[(TokenId, OffsetDateTime)],
    ) -> Result<()> {
        // The latest use per token, so one statement updates each row once.
        let mut latest: HashMap<&str, OffsetDateTime> = HashMap::new();
        for (id, at) in uses {
            let at = ownership_core::audit::truncate_to_micros(*at);
            latest
                .entry(id.as_str())
                .and_modify(|seen| *seen = (*seen).max(at))
                .or_insert(at);
        }
        if latest.is_empty() {
            return Ok(());
        }
        let (ids, ats): (Vec<String>, Vec<OffsetDateTime>) = latest
            .into_iter()
            .map(|(id, at)| (id.to_owned(), at))
            .unzip();
        let mut w = Write::begin(&self.pool, self.clock.as_ref()).await?;
        query(
            "UPDATE tokens AS t
             SET last_used_at = GREATEST(COALESCE(t.last_used_at, u.at), u.at)
             FROM unnest($1::text[], $2::timestamptz[]) AS u(id, at)
             WHERE t.id = u.id",
        )
        .bind(ids)
        .bind(ats)
        .execute(w.conn())
        .await
        .map_err(unavailable)?;
        w.commit().await
    }

    async fn has_foreign_tokens(&self) -> Result<bool> {
        let now = self.now();
        query_scalar(
            "SELECT EXISTS (
                 SELECT 1 FROM tokens
                 WHERE origin IN ('provisioned', 'legacy')
                   AND (revoked_at IS NULL OR revoked_at > $1)
                   AND (expires_at IS NULL OR expires_at > $1))",
        )
        .bind(now)
        .fetch_one(self.reads())
        .await
        .map_err(unavailable)
    }
}
