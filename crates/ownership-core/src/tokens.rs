//! The tokens area: stored token records, the port that keeps them and the use cases
//! that issue, rotate and check them. The token format itself (prefix, checksum, digest)
//! is [`crate::token`].

use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::RandomSource;
use crate::authz::{AdminScope, MintPermit, OwnerScope, Principal, Rotator, SystemScope};
use crate::db::{self, Transactions, Tx};
use crate::error::{Error, Result};
use crate::events;
use crate::identity::UserStatus;
use crate::identity::{Identity, UserRole};
use crate::ids::{Label, OwnerId, TokenId};
use crate::kinds::{TokenKind, TokenKinds};
use crate::quotas;
use crate::token::{
    DisplayPrefix, TokenDigest, TokenFamily, TokenSecret, checksum_holds, digest_of, shape_of,
};

/// Where a stored token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenOrigin {
    /// Issued by us (prefixed, checksummed).
    Issued,
    /// From a static user-token table (may lack our prefix).
    Provisioned,
    /// The grandfathered `OWNERSHIP_LEGACY_TOKEN` (may lack our prefix).
    Legacy,
}

impl TokenOrigin {
    /// Storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Issued => "issued",
            Self::Provisioned => "provisioned",
            Self::Legacy => "legacy",
        }
    }

    /// Parses the storage name.
    pub fn parse(raw: &str) -> Result<Self> {
        match raw {
            "issued" => Ok(Self::Issued),
            "provisioned" => Ok(Self::Provisioned),
            "legacy" => Ok(Self::Legacy),
            _ => Err(crate::Error::Integrity("unknown token origin".into())),
        }
    }
}

/// The secret-free parts of a freshly generated token value: what a store keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreshToken {
    /// Its public id.
    pub id: TokenId,
    /// SHA-256 of the value.
    pub digest: TokenDigest,
    /// The first characters, to tell tokens apart in listings.
    pub display_prefix: DisplayPrefix,
}

/// A token to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewToken {
    /// Id, digest and display prefix.
    pub fresh: FreshToken,
    /// Free text the owner chose.
    pub label: Option<Label>,
    /// When it stops working, if ever.
    pub expires_at: Option<OffsetDateTime>,
}

/// A stored token, never its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// Public id.
    pub id: TokenId,
    /// Whose token it is.
    pub owner_id: OwnerId,
    /// What it may do.
    pub kinds: TokenKinds,
    /// Free text.
    pub label: Option<Label>,
    /// The first characters of the value.
    pub display_prefix: DisplayPrefix,
    /// Where it came from.
    pub origin: TokenOrigin,
    /// When it was made.
    pub created_at: OffsetDateTime,
    /// When it stops working, if ever.
    pub expires_at: Option<OffsetDateTime>,
    /// When it was (or will be, at the end of a rotation grace) revoked.
    pub revoked_at: Option<OffsetDateTime>,
    /// When it was last used (written behind, so a little behind).
    pub last_used_at: Option<OffsetDateTime>,
}

impl TokenRecord {
    /// Whether the token works at `now`.
    pub fn is_live(&self, now: OffsetDateTime) -> bool {
        self.revoked_at.is_none_or(|at| at > now) && self.expires_at.is_none_or(|at| at > now)
    }
}

/// What a store knows of a presented token digest ([`TokenStore::lookup`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenLookup {
    /// Live: the principal.
    Live(Principal),
    /// No token has this digest.
    Unknown,
    /// Revoked (and past any rotation grace).
    Revoked,
    /// Past its expiry.
    Expired,
    /// Its owner's account is not active (suspended).
    Inactive,
}

impl TokenLookup {
    /// The principal when live.
    pub fn live(self) -> Option<Principal> {
        match self {
            Self::Live(p) => Some(p),
            _ => None,
        }
    }
}

/// What a digest lookup reads: the token's row joined with its owner's account. The
/// point read [`TokenDatabase::token_auth`] answers it, and a
/// cache may keep it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenAuth {
    /// The token's id.
    pub id: TokenId,
    /// Whose token.
    pub owner: OwnerId,
    /// The owner's role now.
    pub role: UserRole,
    /// The owner's account status now.
    pub status: UserStatus,
    /// What it may do.
    pub kinds: TokenKinds,
    /// When it stops working, if ever.
    pub expires_at: Option<OffsetDateTime>,
    /// When it was (or will be, at the end of a rotation grace) revoked.
    pub revoked_at: Option<OffsetDateTime>,
}

impl TokenAuth {
    /// The one rule of "is this token live": refused when revoked (at or before `now`),
    /// expired (at or before `now`) or its owner inactive, in that order; else live, with
    /// a principal that expires at the earlier of its expiry and a pending revocation.
    pub fn decide(self, now: OffsetDateTime) -> TokenLookup {
        if self.revoked_at.is_some_and(|at| at <= now) {
            TokenLookup::Revoked
        } else if self.expires_at.is_some_and(|at| at <= now) {
            TokenLookup::Expired
        } else if self.status != UserStatus::Active {
            TokenLookup::Inactive
        } else {
            TokenLookup::Live(Principal::new(
                Identity::new(self.owner, self.role),
                self.id,
                self.kinds,
                earlier(self.expires_at, self.revoked_at),
            ))
        }
    }
}

pub use crate::instants::{add_duration, earlier};

/// A token row to insert.
#[derive(Debug, Clone, Copy)]
pub struct TokenRow<'a> {
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

/// The token rows a transaction reads and writes: SQL and row mapping, no decisions.
#[async_trait]
pub trait TokenRows: Tx {
    /// How many of the user's tokens are live at `at`.
    async fn live_token_count(&mut self, owner: &OwnerId, at: OffsetDateTime) -> Result<u64>;

    /// One of `owner`'s tokens.
    async fn token(&mut self, owner: &OwnerId, id: &TokenId) -> Result<Option<TokenRecord>>;
    /// `owner`'s tokens, newest first.
    async fn tokens_of(&mut self, owner: &OwnerId) -> Result<Vec<TokenRecord>>;
    /// The token with this digest, whoever holds it.
    async fn token_by_digest(&mut self, digest: &TokenDigest) -> Result<Option<TokenRecord>>;
    /// Whether the token was already replaced by a rotation.
    async fn is_replaced(&mut self, id: &TokenId) -> Result<bool>;
    /// Inserts a token and returns it as stored. A taken id or digest is
    /// [`Error::Conflict`].
    async fn insert_token(&mut self, row: TokenRow<'_>) -> Result<TokenRecord>;
    /// Sets the token's revocation time.
    async fn set_revoked(
        &mut self,
        owner: &OwnerId,
        id: &TokenId,
        at: OffsetDateTime,
    ) -> Result<()>;
    /// Marks the token replaced by `by`, revoked at `ends` (never later than a revocation
    /// already set), when it is unreplaced and not revoked at [`Tx::now`]. Whether a row
    /// changed.
    async fn set_replaced(
        &mut self,
        owner: &OwnerId,
        id: &TokenId,
        by: &TokenId,
        ends: OffsetDateTime,
    ) -> Result<bool>;
    /// Moves `last_used_at` forward to each use (never back).
    async fn record_uses(&mut self, uses: &[(TokenId, OffsetDateTime)]) -> Result<()>;
    /// Whether a provisioned or legacy token is live at [`Tx::now`].
    async fn any_live_foreign_token(&mut self) -> Result<bool>;
}

/// Bearer tokens.
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// The principal for a token digest: found by digest (an index lookup, never a scan),
    /// not revoked (or inside its rotation grace), not expired, owner active. `None` for
    /// anything else, whatever the reason.
    async fn authenticate(&self, digest: &TokenDigest) -> Result<Option<Principal>>;

    /// The warm path: the live principal of this digest when a cache in front of the store
    /// holds it, without a store read or an `await`; `None` means "ask
    /// [`TokenStore::lookup`]". The default has no cache.
    fn warm(&self, digest: &TokenDigest) -> Option<Principal> {
        let _ = digest;
        None
    }

    /// [`TokenStore::authenticate`] with the reason of a refusal, for counting outcomes
    /// (metrics). Callers must refuse every non-[`TokenLookup::Live`] answer alike: the
    /// reason is never shown to the client. The default knows no reasons (every refusal is
    /// [`TokenLookup::Unknown`]); the stores override it.
    async fn lookup(&self, digest: &TokenDigest) -> Result<TokenLookup> {
        Ok(self
            .authenticate(digest)
            .await?
            .map_or(TokenLookup::Unknown, TokenLookup::Live))
    }

    /// Stores a new token under a [`MintPermit`], re-checked ([`MintPermit::recheck`])
    /// against its owner's account inside the transaction: [`crate::Error::NotFound`] when
    /// the owner is gone or suspended, [`crate::Error::Forbidden`] for a service token
    /// whose minter is no longer an Admin or Owner, [`crate::Error::Unauthenticated`] when
    /// the minting token was revoked or expired meanwhile. The new token expires no later
    /// than the minting token ([`MintPermit::cap_expiry`]).
    async fn issue_token(&self, permit: &MintPermit, token: NewToken) -> Result<TokenRecord>;

    /// The owner's tokens, newest first, revoked ones included.
    async fn list_tokens(&self, scope: &OwnerScope) -> Result<Vec<TokenRecord>>;

    /// One of the owner's tokens. [`crate::Error::NotFound`] when absent or another owner's.
    async fn get_token(&self, scope: &OwnerScope, id: &TokenId) -> Result<TokenRecord>;

    /// Replaces a live token with `new` (same kinds, label and expiry); the old one is
    /// revoked now, or at the end of `grace`. Exactly one of many concurrent rotations of a
    /// token succeeds; the others get [`crate::Error::NotFound`] (the token they named is
    /// no longer live).
    /// Rotation mints the successor, so it follows minting's rules
    /// ([`Rotator::permit`], re-checked inside the transaction like
    /// [`TokenStore::issue_token`]): [`crate::Error::Forbidden`] when the rotator could
    /// not mint a token of the old one's kinds.
    async fn rotate_token(
        &self,
        rotator: &Rotator,
        id: &TokenId,
        new: FreshToken,
        grace: Option<Duration>,
    ) -> Result<TokenRecord>;

    /// Revokes a token now. With `expected_kind`, the token must hold that kind or the call
    /// fails with [`crate::Error::Conflict`] and changes nothing.
    async fn revoke_token(
        &self,
        scope: &OwnerScope,
        id: &TokenId,
        expected_kind: Option<&TokenKind>,
    ) -> Result<TokenRecord>;

    /// Records uses batched by the write-behind (never on a request's path).
    async fn record_last_used(
        &self,
        scope: &SystemScope,
        uses: &[(TokenId, OffsetDateTime)],
    ) -> Result<()>;

    /// Whether any live token lacks our prefix (provisioned or legacy). When false, an
    /// unprefixed token is refused without a store read.
    async fn has_foreign_tokens(&self) -> Result<bool>;
}

/// A token value together with what the store keeps of it.
pub fn fresh_token(family: TokenFamily, rng: &mut dyn RandomSource) -> (TokenSecret, FreshToken) {
    let secret = TokenSecret::generate(family, rng);
    let fresh = FreshToken {
        id: TokenId::generate(rng),
        digest: secret.digest(),
        display_prefix: secret.display_prefix(),
    };
    (secret, fresh)
}

/// Resolves a presented bearer token to its principal.
///
/// Our tokens are checked offline first (prefix, shape, checksum): a malformed one never
/// reaches the store. Tokens without our prefix are looked up only when `foreign_allowed`
/// (the store holds provisioned or legacy tokens); otherwise they are refused offline too.
/// Resource tokens are not accepted here. Every refusal is the same
/// [`Error::Unauthenticated`], whatever the reason.
pub async fn authenticate<S: TokenStore + ?Sized>(
    store: &S,
    raw: &str,
    foreign_allowed: bool,
) -> Result<Principal> {
    check_token(store, raw, foreign_allowed)
        .await?
        .map_err(|_| Error::Unauthenticated)
}

/// Why [`check_token`] refused a token. For counting only: every refusal must reach the
/// client as the same [`Error::Unauthenticated`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Refused offline: not a well-formed token of ours (prefix, shape, checksum), a
    /// resource token, or a foreign token while none is stored.
    Malformed,
    /// Well-formed, but no token has its digest.
    Unknown,
    /// Revoked.
    Revoked,
    /// Expired.
    Expired,
    /// Its owner's account is suspended.
    Inactive,
}

/// [`authenticate`], telling the refusals apart (for metrics): the same checks, the same
/// single store read through [`TokenStore::lookup`].
pub async fn check_token<S: TokenStore + ?Sized>(
    store: &S,
    raw: &str,
    foreign_allowed: bool,
) -> Result<std::result::Result<Principal, Refusal>> {
    // Shape, then digest, then the cache; the checksum only on a miss, before the store is
    // asked (a hit has matched a stored token's digest: its checksum held at issue).
    let ours = match shape_of(raw) {
        Ok(Some(TokenFamily::User | TokenFamily::Service)) => true,
        Ok(None) if foreign_allowed => false,
        Ok(Some(TokenFamily::Resource) | None) | Err(_) => return Ok(Err(Refusal::Malformed)),
    };
    let digest = digest_of(raw);
    if let Some(principal) = store.warm(&digest) {
        return Ok(Ok(principal));
    }
    if ours && !checksum_holds(raw) {
        return Ok(Err(Refusal::Malformed));
    }
    Ok(match store.lookup(&digest).await? {
        TokenLookup::Live(p) => Ok(p),
        TokenLookup::Unknown => Err(Refusal::Unknown),
        TokenLookup::Revoked => Err(Refusal::Revoked),
        TokenLookup::Expired => Err(Refusal::Expired),
        TokenLookup::Inactive => Err(Refusal::Inactive),
    })
}

/// What a caller asks of a new token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// Its kinds.
    pub kinds: TokenKinds,
    /// An optional label.
    pub label: Option<Label>,
    /// An optional lifetime.
    pub expires_in: Option<Duration>,
}

fn expiry(now: OffsetDateTime, expires_in: Option<Duration>) -> Result<Option<OffsetDateTime>> {
    match expires_in {
        None => Ok(None),
        Some(d) if d.is_zero() => Err(Error::invalid("expires_in_seconds", "must be positive")),
        Some(d) => now
            .checked_add(
                time::Duration::try_from(d)
                    .map_err(|_| Error::invalid("expires_in_seconds", "too large"))?,
            )
            .filter(|t| t.year() <= 9999)
            .map(Some)
            .ok_or_else(|| Error::invalid("expires_in_seconds", "too large")),
    }
}

/// Mints a token for the minter's own owner (kinds ⊆ the minter's, `manage` only).
pub async fn issue_token<S: TokenStore + ?Sized>(
    store: &S,
    minter: &Principal,
    request: TokenRequest,
    now: OffsetDateTime,
    rng: &mut (dyn RandomSource + Send),
) -> Result<(TokenRecord, TokenSecret)> {
    let permit = MintPermit::for_self(minter, request.kinds)?;
    issue_with(
        store,
        &permit,
        TokenFamily::User,
        request.label,
        expiry(now, request.expires_in)?,
        rng,
    )
    .await
}

/// Mints a service token (`channel:*`, `verify`) for an Admin or Owner.
pub async fn issue_service_token<S: TokenStore + ?Sized>(
    store: &S,
    minter: &Principal,
    admin: &AdminScope,
    kinds: TokenKinds,
    label: Option<Label>,
    rng: &mut (dyn RandomSource + Send),
) -> Result<(TokenRecord, TokenSecret)> {
    let permit = MintPermit::service(minter, admin, kinds)?;
    issue_with(store, &permit, TokenFamily::Service, label, None, rng).await
}

/// Mints a token under any permit (the operator's, for instance).
pub async fn issue_with<S: TokenStore + ?Sized>(
    store: &S,
    permit: &MintPermit,
    family: TokenFamily,
    label: Option<Label>,
    expires_at: Option<OffsetDateTime>,
    rng: &mut (dyn RandomSource + Send),
) -> Result<(TokenRecord, TokenSecret)> {
    let (secret, fresh) = fresh_token(family, rng);
    let record = store
        .issue_token(
            permit,
            NewToken {
                fresh,
                label,
                expires_at,
            },
        )
        .await?;
    Ok((record, secret))
}

/// Rotates one of the owner's tokens; the old one is revoked now or after `grace` (at
/// most [`MAX_ROTATION_GRACE`]; zero means now). The new token is of the old one's family;
/// a provisioned or legacy token (no family prefix) is replaced by a user token.
pub async fn rotate_token<S: TokenStore + ?Sized>(
    store: &S,
    rotator: &Rotator,
    id: &TokenId,
    grace: Option<Duration>,
    rng: &mut (dyn RandomSource + Send),
) -> Result<(TokenRecord, TokenSecret)> {
    let grace = check_grace(grace.unwrap_or_default())?;
    let grace = (!grace.is_zero()).then_some(grace);
    let old = store.get_token(&rotator.scope()?, id).await?;
    let family = old.display_prefix.family().unwrap_or(TokenFamily::User);
    let (secret, fresh) = fresh_token(family, rng);
    let record = store.rotate_token(rotator, id, fresh, grace).await?;
    Ok((record, secret))
}

/// Longest accepted rotation grace period, for tokens and webhook secrets alike: 30 days.
pub const MAX_ROTATION_GRACE: Duration = Duration::from_secs(30 * 24 * 3600);

/// `grace` when it is at most [`MAX_ROTATION_GRACE`]; refused as `grace_seconds` otherwise.
pub(crate) fn check_grace(grace: Duration) -> Result<Duration> {
    if grace > MAX_ROTATION_GRACE {
        return Err(Error::invalid("grace_seconds", "at most 30 days"));
    }
    Ok(grace)
}

/// The re-checks of a permit inside the transaction that mints: its owner as they are now
/// (active, and for a service token still an Admin or Owner), and the minting token still
/// live (a mint in flight when that token is revoked fails).
async fn recheck_permit<T: TokenRows + ?Sized>(tx: &mut T, permit: &MintPermit) -> Result<()> {
    permit.recheck(tx.actor_state(permit.owner()).await?)?;
    if let Some(minter) = permit.minting_token() {
        let now = tx.now();
        let live = tx
            .token(permit.owner(), minter)
            .await?
            .is_some_and(|t| t.is_live(now));
        if !live {
            return Err(Error::Unauthenticated);
        }
    }
    Ok(())
}

/// A database that keeps tokens: transactions with [`TokenRows`], and the point read
/// behind every authenticated request (which a cache may answer).
pub trait TokenDatabase: Transactions<Tx: TokenRows> {
    /// The token with this digest joined with its owner's account, outside any
    /// transaction.
    fn token_auth(
        &self,
        digest: &TokenDigest,
    ) -> impl std::future::Future<Output = Result<Option<TokenAuth>>> + Send;

    /// The live principal of this digest if a cache holds one, synchronously and without
    /// a store read; `None` otherwise (a database without a cache always answers `None`).
    /// A cache serves an entry only while its token is live.
    fn cached_principal(&self, digest: &TokenDigest) -> Option<Principal> {
        let _ = digest;
        None
    }
}

/// Every [`TokenDatabase`] keeps tokens: each use case once, over [`TokenRows`].
#[async_trait]
impl<D: TokenDatabase> TokenStore for D {
    fn warm(&self, digest: &TokenDigest) -> Option<Principal> {
        self.cached_principal(digest)
    }

    async fn authenticate(&self, digest: &TokenDigest) -> Result<Option<Principal>> {
        self.lookup(digest).await.map(TokenLookup::live)
    }

    async fn lookup(&self, digest: &TokenDigest) -> Result<TokenLookup> {
        let now = self.now();
        Ok(self
            .token_auth(digest)
            .await?
            .map_or(TokenLookup::Unknown, |auth| auth.decide(now)))
    }

    async fn issue_token(&self, permit: &MintPermit, token: NewToken) -> Result<TokenRecord> {
        let permit = permit.clone();
        let limit = self.limits().quotas.tokens;
        let owner = permit.owner().clone();
        db::write_owner(self, &owner, move |tx| {
            Box::pin(async move {
                let now = tx.now();
                let owner = permit.owner();
                recheck_permit(tx, &permit).await?;
                // Minting counts against the owner's live tokens; a rotation does not (it
                // replaces one), nor does the start's user-token table.
                let live = tx.live_token_count(owner, now).await?;
                quotas::within("tokens", live, 1, limit)?;
                let record = tx
                    .insert_token(TokenRow {
                        owner,
                        fresh: &token.fresh,
                        kinds: permit.kinds(),
                        label: token.label.as_deref(),
                        origin: TokenOrigin::Issued,
                        created_at: now,
                        expires_at: permit.cap_expiry(token.expires_at),
                    })
                    .await?;
                tx.append(events::token_issued(
                    now,
                    permit.actor(),
                    owner,
                    &record.id,
                    &record.kinds,
                ))
                .await?;
                Ok(record)
            })
        })
        .await
    }

    async fn list_tokens(&self, scope: &OwnerScope) -> Result<Vec<TokenRecord>> {
        let owner = scope.owner().clone();
        self.read(move |tx| Box::pin(async move { tx.tokens_of(&owner).await }))
            .await
    }

    async fn get_token(&self, scope: &OwnerScope, id: &TokenId) -> Result<TokenRecord> {
        let (owner, id) = (scope.owner().clone(), id.clone());
        self.read(move |tx| {
            Box::pin(async move { tx.token(&owner, &id).await?.ok_or(Error::NotFound) })
        })
        .await
    }

    async fn rotate_token(
        &self,
        rotator: &Rotator,
        id: &TokenId,
        new: FreshToken,
        grace: Option<Duration>,
    ) -> Result<TokenRecord> {
        let grace = grace.map(check_grace).transpose()?;
        let (rotator, id) = (rotator.clone(), id.clone());
        db::write(self, move |tx| {
            Box::pin(async move {
                let now = tx.now();
                let owner = rotator.owner();
                let old = tx.token(owner, &id).await?.ok_or(Error::NotFound)?;
                // A token already replaced (still inside its grace period) is not rotated
                // again: of concurrent rotations exactly one wins.
                if !old.is_live(now) || tx.is_replaced(&id).await? {
                    return Err(Error::NotFound);
                }
                // Rotation mints the successor: minting's rules, re-checked here.
                let permit = rotator.permit(&old.kinds)?;
                recheck_permit(tx, &permit).await?;
                let ends = match grace {
                    Some(g) if !g.is_zero() => add_duration(now, g, "grace_seconds")?,
                    _ => now,
                };
                let record = tx
                    .insert_token(TokenRow {
                        owner,
                        fresh: &new,
                        kinds: &old.kinds,
                        label: old.label.as_deref(),
                        origin: TokenOrigin::Issued,
                        created_at: now,
                        expires_at: permit.cap_expiry(old.expires_at),
                    })
                    .await?;
                // Only a live, unreplaced row is rotated, and a revocation time already
                // set is never moved later: a rotation never revives a token.
                if !tx.set_replaced(owner, &id, &record.id, ends).await? {
                    return Err(Error::NotFound);
                }
                tx.append(events::token_rotated(
                    now,
                    permit.actor(),
                    owner,
                    &id,
                    &record.id,
                    grace,
                ))
                .await?;
                Ok(record)
            })
        })
        .await
    }

    async fn revoke_token(
        &self,
        scope: &OwnerScope,
        id: &TokenId,
        expected_kind: Option<&TokenKind>,
    ) -> Result<TokenRecord> {
        let (scope, id, expected_kind) = (scope.clone(), id.clone(), expected_kind.cloned());
        let owner = scope.owner().clone();
        db::write_owner(self, &owner, move |tx| {
            Box::pin(async move {
                let now = tx.now();
                let owner = scope.owner();
                let token = tx.token(owner, &id).await?.ok_or(Error::NotFound)?;
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
                tx.set_revoked(owner, &id, now).await?;
                tx.append(events::token_revoked(now, scope.actor(), owner, &id))
                    .await?;
                Ok(TokenRecord {
                    revoked_at: Some(now),
                    ..token
                })
            })
        })
        .await
    }

    async fn record_last_used(
        &self,
        _scope: &SystemScope,
        uses: &[(TokenId, OffsetDateTime)],
    ) -> Result<()> {
        // The latest use per token, so each row is updated once.
        let mut latest: std::collections::HashMap<&TokenId, OffsetDateTime> =
            std::collections::HashMap::new();
        for (id, at) in uses {
            let at = crate::audit::truncate_to_micros(*at);
            latest
                .entry(id)
                .and_modify(|seen| *seen = (*seen).max(at))
                .or_insert(at);
        }
        if latest.is_empty() {
            return Ok(());
        }
        let uses: Vec<(TokenId, OffsetDateTime)> = latest
            .into_iter()
            .map(|(id, at)| (id.clone(), at))
            .collect();
        db::write(self, move |tx| {
            Box::pin(async move { tx.record_uses(&uses).await })
        })
        .await
    }

    async fn has_foreign_tokens(&self) -> Result<bool> {
        self.read(|tx| Box::pin(async move { tx.any_live_foreign_token().await }))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_bounded() {
        use crate::ids::Label;
        assert_eq!(Label::parse_optional(None).unwrap(), None);
        assert_eq!(
            Label::parse_optional(Some("ci")).unwrap().as_deref(),
            Some("ci")
        );
        assert!(Label::parse(&"x".repeat(100)).is_ok());
        assert!(Label::parse(&"x".repeat(101)).is_err());
        assert!(Label::parse("a\nb").is_err());
    }

    #[test]
    fn expiry_is_positive_and_bounded() {
        let now = OffsetDateTime::UNIX_EPOCH;
        assert_eq!(expiry(now, None).unwrap(), None);
        assert!(expiry(now, Some(Duration::ZERO)).is_err());
        assert!(expiry(now, Some(Duration::from_secs(u64::MAX))).is_err());
        assert_eq!(
            expiry(now, Some(Duration::from_secs(60))).unwrap(),
            Some(now + Duration::from_secs(60))
        );
    }
}
