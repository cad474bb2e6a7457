//! Bearer tokens: authentication by digest, issue, rotation with grace, revocation with
//! kind verification, the write-behind of last use.

use std::time::Duration;

use ::libsql::{Connection, Value};
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
use time::OffsetDateTime;

use super::LibsqlStore;
use super::audit::append_audit;
use super::conn::{
    add, args, exec, exists, micros, opt_text, opt_time, parsed, query_all, query_opt, text,
    time_at,
};
use super::recheck::actor_state;
use crate::events;

/// The columns [`token_from`] reads, in order.
pub(super) const TOKEN_COLS: &str = "id, owner_id, kinds, label, display_prefix, origin, created_at, expires_at, revoked_at, last_used_at";

/// A `tokens` row (selected with [`TOKEN_COLS`]).
pub(super) fn token_from(row: &[Value]) -> Result<TokenRecord> {
    Ok(TokenRecord {
        id: parsed(row, 0, "token id", TokenId::parse)?,
        owner_id: parsed(row, 1, "token owner", OwnerId::parse)?,
        kinds: parsed(row, 2, "token kinds", TokenKinds::parse_csv)?,
        label: opt_text(row, 3)?,
        display_prefix: text(row, 4)?,
        origin: parsed(row, 5, "token origin", TokenOrigin::parse)?,
        created_at: time_at(row, 6)?,
        expires_at: opt_time(row, 7)?,
        revoked_at: opt_time(row, 8)?,
        last_used_at: opt_time(row, 9)?,
    })
}

/// One token by id, scoped to its owner.
pub(super) async fn scoped_token(
    conn: &Connection,
    owner: &OwnerId,
    id: &TokenId,
) -> Result<Option<TokenRecord>> {
    let sql = format!("SELECT {TOKEN_COLS} FROM tokens WHERE id = ?1 AND owner_id = ?2");
    query_opt(conn, &sql, args![id.as_str(), owner.as_str()])
        .await?
        .map(|row| token_from(&row))
        .transpose()
}

/// What a new token row holds beyond its id, digest and display prefix.
#[derive(Debug)]
pub(super) struct TokenRow<'a> {
    /// Whose.
    pub owner: &'a OwnerId,
    /// Id, digest, display prefix.
    pub fresh: &'a FreshToken,
    /// Kinds.
    pub kinds: &'a TokenKinds,
    /// Free text.
    pub label: Option<&'a str>,
    /// Where it came from.
    pub origin: TokenOrigin,
    /// When made.
    pub created_at: OffsetDateTime,
    /// When it stops working.
    pub expires_at: Option<OffsetDateTime>,
}

/// Inserts a token and reads it back. A taken id or digest is a conflict (never expected
/// for random values; refused rather than overwritten).
pub(super) async fn insert_token(conn: &Connection, row: TokenRow<'_>) -> Result<TokenRecord> {
    let digest = row.fresh.digest.as_bytes().as_slice();
    if exists(
        conn,
        "SELECT 1 FROM tokens WHERE id = ?1 OR digest = ?2",
        args![row.fresh.id.as_str(), digest],
    )
    .await?
    {
        return Err(Error::Conflict("the token already exists".into()));
    }
    exec(
        conn,
        "INSERT INTO tokens (id, owner_id, digest, kinds, label, display_prefix, origin, created_at, expires_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        args![
            row.fresh.id.as_str(),
            row.owner.as_str(),
            digest,
            row.kinds.to_csv(),
            row.label,
            row.fresh.display_prefix.as_str(),
            row.origin.as_str(),
            micros(row.created_at)?,
            row.expires_at.map(micros).transpose()?,
        ],
    )
    .await?;
    scoped_token(conn, row.owner, &row.fresh.id)
        .await?
        .ok_or_else(|| super::conn::integrity("inserted token"))
}

/// A user's first token (`manage`+`api`, issued) from a [`NewToken`].
pub(super) async fn insert_first_token(
    conn: &Connection,
    owner: &OwnerId,
    token: &NewToken,
    origin: TokenOrigin,
    now: OffsetDateTime,
) -> Result<TokenRecord> {
    insert_token(
        conn,
        TokenRow {
            owner,
            fresh: &token.fresh,
            kinds: &TokenKinds::manage_api(),
            label: token.label.as_deref(),
            origin,
            created_at: now,
            expires_at: token.expires_at,
        },
    )
    .await
}

fn earlier(a: Option<OffsetDateTime>, b: Option<OffsetDateTime>) -> Option<OffsetDateTime> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

#[async_trait]
impl TokenStore for LibsqlStore {
    async fn authenticate(&self, digest: &TokenDigest) -> Result<Option<Principal>> {
        self.lookup(digest).await.map(TokenLookup::live)
    }

    async fn lookup(&self, digest: &TokenDigest) -> Result<TokenLookup> {
        let digest = digest.as_bytes().to_vec();
        let now = self.now();
        let row = self
            .worker
            .run(move |c| async move {
                query_opt(
                    &c,
                    "SELECT t.id, t.owner_id, t.kinds, t.expires_at, t.revoked_at, u.role, u.status \
                     FROM tokens t JOIN users u ON u.id = t.owner_id WHERE t.digest = ?1",
                    args![digest],
                )
                .await
            })
            .await?;
        let Some(row) = row else {
            return Ok(TokenLookup::Unknown);
        };
        let token_id = parsed(&row, 0, "token id", TokenId::parse)?;
        let owner = parsed(&row, 1, "token owner", OwnerId::parse)?;
        let kinds = parsed(&row, 2, "token kinds", TokenKinds::parse_csv)?;
        let expires_at = opt_time(&row, 3)?;
        let revoked_at = opt_time(&row, 4)?;
        let role = parsed(&row, 5, "user role", UserRole::parse)?;
        let status = parsed(&row, 6, "user status", UserStatus::parse)?;
        Ok(TokenLookup::decide(
            now,
            revoked_at,
            expires_at,
            status,
            || Principal {
                identity: Identity::new(owner, role),
                token_id,
                kinds,
                expires_at: earlier(expires_at, revoked_at),
            },
        ))
    }

    async fn issue_token(&self, permit: &MintPermit, token: NewToken) -> Result<TokenRecord> {
        let permit = permit.clone();
        let clock = self.clock.clone();
        self.worker
            .write(async move |c: &Connection| {
                let now = super::conn::now_of(clock.as_ref());
                let owner = permit.owner();
                // The owner as they are now: active, and for a service token still an
                // Admin or Owner.
                permit.recheck(actor_state(c, owner).await?)?;
                let record = insert_token(
                    c,
                    TokenRow {
                        owner,
                        fresh: &token.fresh,
                        kinds: permit.kinds(),
                        label: token.label.as_deref(),
                        origin: TokenOrigin::Issued,
                        created_at: now,
                        expires_at: token.expires_at,
                    },
                )
                .await?;
                append_audit(
                    c,
                    events::token_issued(now, permit.actor(), owner, &record.id, &record.kinds),
                )
                .await?;
                Ok(record)
            })
            .await
    }

    async fn list_tokens(&self, scope: &OwnerScope) -> Result<Vec<TokenRecord>> {
        let owner = scope.owner().as_str().to_owned();
        let rows = self
            .worker
            .read(async move |c: &Connection| {
                let sql = format!(
                    "SELECT {TOKEN_COLS} FROM tokens WHERE owner_id = ?1 ORDER BY created_at DESC, rowid DESC"
                );
                query_all(c, &sql, args![owner]).await
            })
            .await?;
        rows.iter().map(|r| token_from(r)).collect()
    }

    async fn get_token(&self, scope: &OwnerScope, id: &TokenId) -> Result<TokenRecord> {
        let owner = scope.owner().clone();
        let id = id.clone();
        self.worker
            .read(async move |c: &Connection| {
                scoped_token(c, &owner, &id).await?.ok_or(Error::NotFound)
            })
            .await
    }

    async fn rotate_token(
        &self,
        scope: &OwnerScope,
        id: &TokenId,
        new: FreshToken,
        grace: Option<Duration>,
    ) -> Result<TokenRecord> {
        let scope = scope.clone();
        let id = id.clone();
        let clock = self.clock.clone();
        self.worker
            .write(async move |c: &Connection| {
                let now = super::conn::now_of(clock.as_ref());
                let owner = scope.owner();
                let old = scoped_token(c, owner, &id).await?.ok_or(Error::NotFound)?;
                // A token already replaced (still inside its grace period) is not rotated
                // again: of concurrent rotations exactly one wins.
                let replaced = exists(
                    c,
                    "SELECT 1 FROM tokens WHERE id = ?1 AND replaced_by IS NOT NULL",
                    args![id.as_str()],
                )
                .await?;
                if !old.is_live(now) || replaced {
                    return Err(Error::NotFound);
                }
                let ends = match grace {
                    Some(g) if !g.is_zero() => add(now, g, "grace_seconds")?,
                    _ => now,
                };
                let record = insert_token(
                    c,
                    TokenRow {
                        owner,
                        fresh: &new,
                        kinds: &old.kinds,
                        label: old.label.as_deref(),
                        origin: TokenOrigin::Issued,
                        created_at: now,
                        expires_at: old.expires_at,
                    },
                )
                .await?;
                // Only a live, unreplaced row is rotated, and a revocation time already set
                // is never moved later: a rotation never revives a token.
                let changed = exec(
                    c,
                    "UPDATE tokens SET revoked_at = MIN(COALESCE(revoked_at, ?1), ?1), replaced_by = ?2 \
                     WHERE id = ?3 AND owner_id = ?4 AND replaced_by IS NULL \
                       AND (revoked_at IS NULL OR revoked_at > ?5)",
                    args![micros(ends)?, record.id.as_str(), id.as_str(), owner.as_str(), micros(now)?],
                )
                .await?;
                if changed != 1 {
                    return Err(Error::NotFound);
                }
                append_audit(c, events::token_rotated(now, scope.actor(), owner, &id, &record.id, grace)).await?;
                Ok(record)
            })
            .await
    }

    async fn revoke_token(
        &self,
        scope: &OwnerScope,
        id: &TokenId,
        expected_kind: Option<&TokenKind>,
    ) -> Result<TokenRecord> {
        let scope = scope.clone();
        let id = id.clone();
        let expected_kind = expected_kind.cloned();
        let clock = self.clock.clone();
        self.worker
            .write(async move |c: &Connection| {
                let now = super::conn::now_of(clock.as_ref());
                let owner = scope.owner();
                let token = scoped_token(c, owner, &id).await?.ok_or(Error::NotFound)?;
                if let Some(kind) = &expected_kind
                    && !token.kinds.contains(kind)
                {
                    return Err(Error::Conflict(format!(
                        "the token does not hold kind `{kind}`"
                    )));
                }
                if token.revoked_at.is_some_and(|at| at <= now) {
                    return Ok(token);
                }
                exec(
                    c,
                    "UPDATE tokens SET revoked_at = ?1 WHERE id = ?2 AND owner_id = ?3",
                    args![micros(now)?, id.as_str(), owner.as_str()],
                )
                .await?;
                append_audit(c, events::token_revoked(now, scope.actor(), owner, &id)).await?;
                scoped_token(c, owner, &id).await?.ok_or(Error::NotFound)
            })
            .await
    }

    async fn record_last_used(
        &self,
        _scope: &SystemScope,
        uses: &[(TokenId, OffsetDateTime)],
    ) -> Result<()> {
        if uses.is_empty() {
            return Ok(());
        }
        let uses = uses
            .iter()
            .map(|(id, at)| Ok((id.as_str().to_owned(), micros(*at)?)))
            .collect::<Result<Vec<_>>>()?;
        self.worker
            .write(async move |c: &Connection| {
                for (id, at) in uses {
                    exec(
                        c,
                        "UPDATE tokens SET last_used_at = ?1 WHERE id = ?2 AND (last_used_at IS NULL OR last_used_at < ?1)",
                        args![at, id],
                    )
                    .await?;
                }
                Ok(())
            })
            .await
    }

    async fn has_foreign_tokens(&self) -> Result<bool> {
        let now = micros(self.now())?;
        self.worker
            .read(async move |c: &Connection| {
                exists(
                    c,
                    "SELECT 1 FROM tokens WHERE origin IN ('provisioned', 'legacy') \
                     AND (revoked_at IS NULL OR revoked_at > ?1) AND (expires_at IS NULL OR expires_at > ?1) LIMIT 1",
                    args![now],
                )
                .await
            })
            .await
    }
}
