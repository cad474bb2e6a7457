//! Use cases: the small orchestration every adapter needs around a port call — generate a
//! token and keep only its digest, derive and hash a pairing code, check the rule that
//! yields the proof — written once so the HTTP service, the console and the CLI take the
//! same path. Pure: randomness and time come in as parameters; the only effects are the
//! port calls.

use std::time::Duration;

use time::OffsetDateTime;

use crate::RandomSource;
use crate::authz::{AdminScope, ChannelScope, MintPermit, OwnerScope, Principal};
use crate::error::{Error, Result};
use crate::identity::UserRole;
use crate::ids::{ChannelName, ExternalId, OwnerId, PairingRequestId, TokenId};
use crate::kinds::TokenKinds;
use crate::pairing::{PairingCode, PairingKey, PairingSeed};
use crate::ports::{
    ChannelBinding, FreshToken, NewToken, PairingCandidate, PairingIssue, PairingPolicy,
    PairingStore, TokenRecord, TokenStore, User, UserStore,
};
use crate::token::{PresentedToken, TokenFamily, TokenSecret, classify};

/// How many candidate codes a pairing request carries (a collision among live codes of
/// 40 bits is already rare; three in a row is negligible).
pub const PAIRING_CANDIDATES: usize = 3;

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
    let presented = classify(raw).map_err(|_| Error::Unauthenticated)?;
    match &presented {
        PresentedToken::Ours(_, TokenFamily::User | TokenFamily::Service) => {}
        PresentedToken::Ours(_, TokenFamily::Resource) => return Err(Error::Unauthenticated),
        PresentedToken::Foreign(_) if foreign_allowed => {}
        PresentedToken::Foreign(_) => return Err(Error::Unauthenticated),
    }
    store
        .authenticate(&presented.secret().digest())
        .await?
        .ok_or(Error::Unauthenticated)
}

/// Creates the first Owner with a `manage`+`api` token.
pub async fn bootstrap_owner<S: UserStore + ?Sized>(
    store: &S,
    owner: &OwnerId,
    rng: &mut (dyn RandomSource + Send),
) -> Result<(User, TokenSecret)> {
    let (secret, fresh) = fresh_token(TokenFamily::User, rng);
    let user = store
        .bootstrap_owner(
            owner,
            NewToken {
                fresh,
                label: Some("bootstrap".into()),
                expires_at: None,
            },
        )
        .await?;
    Ok((user, secret))
}

/// Creates a user with their first `manage`+`api` token.
pub async fn create_user<S: UserStore + ?Sized>(
    store: &S,
    admin: &AdminScope,
    id: &OwnerId,
    role: UserRole,
    rng: &mut (dyn RandomSource + Send),
) -> Result<(User, TokenSecret)> {
    crate::authz::check_create(admin, role)?;
    let (secret, fresh) = fresh_token(TokenFamily::User, rng);
    let user = store
        .create_user(
            admin,
            id,
            role,
            NewToken {
                fresh,
                label: Some("first token".into()),
                expires_at: None,
            },
        )
        .await?;
    Ok((user, secret))
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

/// Rotates one of the owner's tokens; the old one is revoked now or after `grace`.
pub async fn rotate_token<S: TokenStore + ?Sized>(
    store: &S,
    scope: &OwnerScope,
    id: &TokenId,
    grace: Option<Duration>,
    rng: &mut (dyn RandomSource + Send),
) -> Result<(TokenRecord, TokenSecret)> {
    let family = match store.get_token(scope, id).await?.display_prefix.get(..6) {
        Some(p) if p == TokenFamily::Service.prefix() => TokenFamily::Service,
        _ => TokenFamily::User,
    };
    let (secret, fresh) = fresh_token(family, rng);
    let record = store.rotate_token(scope, id, fresh, grace).await?;
    Ok((record, secret))
}

/// Candidates for a new pairing request under `key`.
pub fn pairing_candidates(key: &PairingKey, rng: &mut dyn RandomSource) -> Vec<PairingCandidate> {
    (0..PAIRING_CANDIDATES)
        .map(|_| {
            let seed = PairingSeed::generate(rng);
            let code = PairingCode::derive(key, &seed);
            PairingCandidate {
                id: PairingRequestId::generate(rng),
                seed,
                code_hash: key.hash(&code),
            }
        })
        .collect()
}

/// Asks for a pairing code for a sender: the live one, or a new one.
pub async fn request_pairing<S: PairingStore + ?Sized>(
    store: &S,
    scope: &ChannelScope,
    key: &PairingKey,
    external_id: &ExternalId,
    meta: Option<&str>,
    policy: &PairingPolicy,
    rng: &mut (dyn RandomSource + Send),
) -> Result<(PairingIssue, PairingCode)> {
    let candidates = pairing_candidates(key, rng);
    let issue = store
        .request_pairing(scope, external_id, meta, &candidates, policy)
        .await?;
    let code = PairingCode::derive(key, &issue.seed);
    Ok((issue, code))
}

/// Self-claim: the caller redeems a code for themselves. Blank or malformed codes are
/// refused before any store read.
pub async fn redeem_pairing<S: PairingStore + ?Sized>(
    store: &S,
    scope: &OwnerScope,
    key: &PairingKey,
    channel: &ChannelName,
    code: &str,
) -> Result<ChannelBinding> {
    let code = PairingCode::parse(code)?;
    store.redeem_pairing(scope, channel, &key.hash(&code)).await
}

/// Admin approval of a code for a named owner.
pub async fn approve_pairing<S: PairingStore + ?Sized>(
    store: &S,
    admin: &AdminScope,
    key: &PairingKey,
    channel: &ChannelName,
    code: &str,
    owner: &OwnerId,
) -> Result<ChannelBinding> {
    let code = PairingCode::parse(code)?;
    store
        .approve_pairing(admin, channel, &key.hash(&code), owner)
        .await
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
