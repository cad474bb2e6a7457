//! The tokens area: stored token records, the port that keeps them and the use cases
//! that issue, rotate and check them. The token format itself (prefix, checksum, digest)
//! is [`crate::token`].

use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::RandomSource;
use crate::authz::{AdminScope, MintPermit, OwnerScope, Principal, SystemScope};
use crate::error::{Error, Result};
use crate::identity::UserStatus;
use crate::ids::{OwnerId, TokenId};
use crate::kinds::{TokenKind, TokenKinds};
use crate::token::{TokenDigest, TokenFamily, TokenSecret, digest_of, family_of};

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
    pub display_prefix: String,
}

/// A token to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewToken {
    /// Id, digest and display prefix.
    pub fresh: FreshToken,
    /// Free text the owner chose.
    pub label: Option<String>,
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
    pub label: Option<String>,
    /// The first characters of the value.
    pub display_prefix: String,
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

    /// Decides a token row the way every store does: refused when revoked (at or before
    /// `now`), expired (at or before `now`) or its owner inactive, in that order; else
    /// live with `principal`.
    pub fn decide(
        now: OffsetDateTime,
        revoked_at: Option<OffsetDateTime>,
        expires_at: Option<OffsetDateTime>,
        owner_status: UserStatus,
        principal: impl FnOnce() -> Principal,
    ) -> Self {
        if revoked_at.is_some_and(|at| at <= now) {
            Self::Revoked
        } else if expires_at.is_some_and(|at| at <= now) {
            Self::Expired
        } else if owner_status != UserStatus::Active {
            Self::Inactive
        } else {
            Self::Live(principal())
        }
    }
}

/// Bearer tokens.
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// The principal for a token digest: found by digest (an index lookup, never a scan),
    /// not revoked (or inside its rotation grace), not expired, owner active. `None` for
    /// anything else, whatever the reason.
    async fn authenticate(&self, digest: &TokenDigest) -> Result<Option<Principal>>;

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
    /// whose minter is no longer an Admin or Owner.
    async fn issue_token(&self, permit: &MintPermit, token: NewToken) -> Result<TokenRecord>;

    /// The owner's tokens, newest first, revoked ones included.
    async fn list_tokens(&self, scope: &OwnerScope) -> Result<Vec<TokenRecord>>;

    /// One of the owner's tokens. [`crate::Error::NotFound`] when absent or another owner's.
    async fn get_token(&self, scope: &OwnerScope, id: &TokenId) -> Result<TokenRecord>;

    /// Replaces a live token with `new` (same kinds, label and expiry); the old one is
    /// revoked now, or at the end of `grace`. Exactly one of many concurrent rotations of a
    /// token succeeds; the others get [`crate::Error::NotFound`] (the token they named is
    /// no longer live).
    async fn rotate_token(
        &self,
        scope: &OwnerScope,
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

/// Longest accepted token label, in characters.
pub const LABEL_MAX_CHARS: usize = 100;

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

/// Validates a label: at most 100 characters, no control characters.
pub fn parse_label(label: Option<&str>) -> Result<Option<String>> {
    let Some(label) = label else { return Ok(None) };
    if label.chars().count() > LABEL_MAX_CHARS {
        return Err(Error::invalid(
            "label",
            format!("must be at most {LABEL_MAX_CHARS} characters"),
        ));
    }
    if label.chars().any(char::is_control) {
        return Err(Error::invalid(
            "label",
            "must not contain control characters",
        ));
    }
    Ok(Some(label.to_owned()))
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
    match family_of(raw) {
        Ok(Some(TokenFamily::User | TokenFamily::Service)) => {}
        Ok(None) if foreign_allowed => {}
        Ok(Some(TokenFamily::Resource) | None) | Err(_) => return Ok(Err(Refusal::Malformed)),
    }
    Ok(match store.lookup(&digest_of(raw)).await? {
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
    pub label: Option<String>,
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
    label: Option<String>,
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
    label: Option<String>,
    expires_at: Option<OffsetDateTime>,
    rng: &mut (dyn RandomSource + Send),
) -> Result<(TokenRecord, TokenSecret)> {
    let label = parse_label(label.as_deref())?;
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
    scope: &OwnerScope,
    id: &TokenId,
    grace: Option<Duration>,
    rng: &mut (dyn RandomSource + Send),
) -> Result<(TokenRecord, TokenSecret)> {
    let grace = check_grace(grace.unwrap_or_default())?;
    let grace = (!grace.is_zero()).then_some(grace);
    let family = TokenFamily::of_display_prefix(&store.get_token(scope, id).await?.display_prefix)
        .unwrap_or(TokenFamily::User);
    let (secret, fresh) = fresh_token(family, rng);
    let record = store.rotate_token(scope, id, fresh, grace).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_bounded() {
        assert_eq!(parse_label(None).unwrap(), None);
        assert_eq!(parse_label(Some("ci")).unwrap().as_deref(), Some("ci"));
        assert!(parse_label(Some(&"x".repeat(101))).is_err());
        assert!(parse_label(Some("a\nb")).is_err());
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
