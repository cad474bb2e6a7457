//! Use cases: the small orchestration every adapter needs around a port call — generate a
//! token and keep only its digest, derive and hash a pairing code, check the rule that
//! yields the proof, seal and open secrets ([`crate::crypto`]), turn audit events into
//! webhook deliveries — written once so the HTTP service, the console and the CLI take
//! the same path. Pure: randomness and time come in as parameters; the only effects are
//! the port calls.

use std::time::Duration;

use time::OffsetDateTime;

use crate::RandomSource;
use crate::audit::AuditEvent;
use crate::authz::{AdminScope, ChannelScope, MintPermit, OwnerScope, Principal, SystemScope};
use crate::crypto::{self, MasterKeys, SecretValue};
use crate::error::{Error, Result};
use crate::identity::{Identity, UserRole};
use crate::ids::{
    ChannelName, DeliveryId, ExternalId, OwnerId, PairingRequestId, ResourceId, SecretName, TokenId,
};
use crate::kinds::TokenKinds;
use crate::pairing::{PairingCode, PairingKey, PairingSeed};
use crate::ports::{
    ChannelBinding, FreshToken, NewResource, NewToken, PairingCandidate, PairingIssue,
    PairingPolicy, PairingStore, ResourceRecord, ResourceStore, Sealed, SecretMeta, SecretStore,
    TokenLookup, TokenRecord, TokenStore, User, UserStore, WebhookEndpoint, WebhookStore,
};
use crate::token::{PresentedToken, TokenFamily, TokenSecret, classify, digest_of, family_of};
use crate::webhook::WebhookSecret;

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

// ---------------------------------------------------------------------------------------
// Secrets (docs/secrets.md)

/// The owner's data key, unwrapped; `None` when the owner has none yet.
async fn owner_data_key<S: SecretStore + ?Sized>(
    store: &S,
    keys: &MasterKeys,
    scope: &OwnerScope,
) -> Result<Option<crypto::DataKey>> {
    match store.data_key(scope).await? {
        Some(wrapped) => crypto::unwrap_data_key(keys, scope.owner(), &wrapped).map(Some),
        None => Ok(None),
    }
}

/// Writes one of the owner's secrets, sealed under their data key.
///
/// The owner's first secret also creates the data key: a new random key is wrapped under
/// the current master key and handed to the store with the value, which installs both in
/// one transaction. If another writer installed a data key first, the store answers
/// [`Error::Conflict`]; the key is then read again and the write retried once.
pub async fn put_secret<S: SecretStore + ?Sized>(
    store: &S,
    keys: &MasterKeys,
    scope: &OwnerScope,
    name: &SecretName,
    value: &str,
    rng: &mut (dyn RandomSource + Send),
) -> Result<SecretMeta> {
    crypto::check_value(value)?;
    let owner = scope.owner();
    if let Some(key) = owner_data_key(store, keys, scope).await? {
        let sealed = crypto::seal_value(&key, owner, name, value, rng)?;
        return store.put_secret(scope, name, sealed, None).await;
    }
    let key = crypto::DataKey::generate(rng);
    let wrapped = crypto::wrap_data_key(keys.current(), owner, &key, rng)?;
    let sealed = crypto::seal_value(&key, owner, name, value, rng)?;
    match store.put_secret(scope, name, sealed, Some(wrapped)).await {
        Err(Error::Conflict(_)) => {
            let key = owner_data_key(store, keys, scope).await?.ok_or_else(|| {
                Error::Conflict("the data key changed during the write; retry".into())
            })?;
            let sealed = crypto::seal_value(&key, owner, name, value, rng)?;
            store.put_secret(scope, name, sealed, None).await
        }
        other => other,
    }
}

/// One of the owner's secret values, opened; `None` when the owner holds no secret of that
/// name. Only resource credentials read values: no route returns them to their owner.
pub async fn secret_value<S: SecretStore + ?Sized>(
    store: &S,
    keys: &MasterKeys,
    scope: &OwnerScope,
    name: &SecretName,
) -> Result<Option<SecretValue>> {
    let Some(sealed) = store.get_secret(scope, name).await? else {
        return Ok(None);
    };
    let key = owner_data_key(store, keys, scope)
        .await?
        .ok_or_else(|| Error::Integrity("a secret exists but its owner has no data key".into()))?;
    crypto::open_value(&key, scope.owner(), name, &sealed).map(Some)
}

/// What a master-key rewrap did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RewrapReport {
    /// Data keys read.
    pub examined: u64,
    /// Data keys already under the current master key version (left alone).
    pub already_current: u64,
    /// Data keys rewrapped under the current version.
    pub rewrapped: u64,
    /// Data keys that changed (or went with their owner) between the read and the write:
    /// left as they were; run the rewrap again.
    pub changed_meanwhile: u64,
    /// Owners whose data key could not be unwrapped (a version this process does not
    /// hold, or damaged bytes): left as they were.
    pub failed: Vec<OwnerId>,
}

/// How many rewrapped keys go to the store per write.
pub const REWRAP_BATCH: usize = 500;

/// Rewraps every owner's data key under the current master key (`ownership secrets
/// rewrap`). Keys wrapped under any version `keys` holds are opened and wrapped again;
/// keys already under the current version are skipped; each replacement is written only
/// if the stored key is still the one read. Values are not touched: they stay sealed
/// under the same data keys. Safe to run while servers are serving, and to run again.
pub async fn rewrap_data_keys<S: SecretStore + ?Sized>(
    store: &S,
    scope: &SystemScope,
    keys: &MasterKeys,
    rng: &mut (dyn RandomSource + Send),
) -> Result<RewrapReport> {
    let all = store.all_data_keys(scope).await?;
    let current = keys.current().version();
    let mut report = RewrapReport {
        examined: all.len() as u64,
        ..RewrapReport::default()
    };
    let mut pending: Vec<(OwnerId, Sealed, Sealed)> = Vec::new();
    for (owner, wrapped) in all {
        if wrapped.key_version == current {
            report.already_current += 1;
            continue;
        }
        match crypto::rewrap_data_key(keys, &owner, &wrapped, rng) {
            Ok(new) => pending.push((owner, wrapped, new)),
            Err(_) => report.failed.push(owner),
        }
    }
    for batch in pending.chunks(REWRAP_BATCH) {
        let replaced = store.replace_data_keys(scope, batch).await?;
        report.rewrapped += replaced;
        report.changed_meanwhile += (batch.len() as u64).saturating_sub(replaced);
    }
    Ok(report)
}

/// Owners whose webhook signing secret (or, during a rotation's grace, previous secret) is
/// still sealed under a master key version other than `current_version`, with that
/// version. Signing secrets are sealed under the master key itself, and the ports offer no
/// way for the operator to re-seal them in place: the previous master key must stay
/// configured until this list is empty (an owner re-seals by rotating the secret or
/// setting the webhook again). `ownership secrets rewrap` reports it.
pub async fn stale_webhook_secrets<S: UserStore + WebhookStore + ?Sized>(
    store: &S,
    admin: &AdminScope,
    current_version: u32,
) -> Result<Vec<(OwnerId, u32)>> {
    let mut stale = Vec::new();
    let mut page = crate::ports::PageRequest {
        after: None,
        limit: 500,
    };
    loop {
        let users = store.list_users(admin, &page).await?;
        for user in &users.items {
            let scope = OwnerScope::own(&user.identity());
            let Some(endpoint) = store.get_endpoint(&scope).await? else {
                continue;
            };
            let versions = std::iter::once(endpoint.secret.key_version)
                .chain(endpoint.previous_secret.iter().map(|(s, _)| s.key_version));
            if let Some(old) = versions.into_iter().find(|v| *v != current_version) {
                stale.push((user.id.clone(), old));
            }
        }
        match users.next {
            Some(next) => page.after = Some(next),
            None => return Ok(stale),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Resources (docs/secrets.md)

/// Longest accepted `external_ref`, in bytes.
pub const EXTERNAL_REF_MAX_BYTES: usize = 256;

/// What an owner asks of a new resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceRequest {
    /// What it is (`job`, say): 1–64 bytes, no control characters.
    pub kind: String,
    /// The caller's own id for it: at most 256 bytes, no control characters.
    pub external_ref: Option<String>,
    /// Secret names it may fetch (each must exist in the owner's scope).
    pub grants: Vec<SecretName>,
}

/// Registers a resource with grants to some of the owner's secrets, and returns its
/// resource token (family `resource`), to show once.
pub async fn create_resource<S: ResourceStore + ?Sized>(
    store: &S,
    scope: &OwnerScope,
    request: ResourceRequest,
    rng: &mut (dyn RandomSource + Send),
) -> Result<(ResourceRecord, TokenSecret)> {
    if request.kind.chars().any(char::is_control) {
        return Err(Error::invalid(
            "kind",
            "must not contain control characters",
        ));
    }
    if let Some(r) = &request.external_ref
        && (r.len() > EXTERNAL_REF_MAX_BYTES || r.chars().any(char::is_control))
    {
        return Err(Error::invalid(
            "external_ref",
            format!("must be at most {EXTERNAL_REF_MAX_BYTES} bytes without control characters"),
        ));
    }
    let (secret, fresh) = fresh_token(TokenFamily::Resource, rng);
    let record = store
        .create_resource(
            scope,
            NewResource {
                id: ResourceId::generate(rng),
                kind: request.kind,
                external_ref: request.external_ref,
                grants: request.grants,
                token: fresh,
            },
        )
        .await?;
    Ok((record, secret))
}

/// The granted secrets of the resource a resource token names, read from its creator's
/// scope and nowhere else.
///
/// The token must be one of ours of family `resource` (checked offline first); the
/// resource must be live and its creator active ([`ResourceStore::resolve_resource`]);
/// the scope read is the creator's, built from the resolved record. Every granted secret
/// must exist and open. There is no fallback: any failure is an error, and callers answer
/// every error the same way so that the answer is no oracle.
pub async fn resource_credentials<S: ResourceStore + SecretStore + ?Sized>(
    store: &S,
    keys: &MasterKeys,
    raw_token: &str,
) -> Result<(ResourceRecord, Vec<(SecretName, SecretValue)>)> {
    let presented = classify(raw_token).map_err(|_| Error::Unauthenticated)?;
    if !matches!(presented, PresentedToken::Ours(_, TokenFamily::Resource)) {
        return Err(Error::Unauthenticated);
    }
    let record = store
        .resolve_resource(&presented.secret().digest())
        .await?
        .filter(|r| r.revoked_at.is_none())
        .ok_or(Error::Unauthenticated)?;
    // The creator's own scope: `can_act_on` holds by construction, and the role plays no
    // part in it, so the least one is named.
    let scope = OwnerScope::own(&Identity::new(record.owner_id.clone(), UserRole::Member));
    let mut values = Vec::with_capacity(record.grants.len());
    if !record.grants.is_empty() {
        let key = owner_data_key(store, keys, &scope)
            .await?
            .ok_or(Error::NotFound)?;
        for name in &record.grants {
            let sealed = store
                .get_secret(&scope, name)
                .await?
                .ok_or(Error::NotFound)?;
            values.push((
                name.clone(),
                crypto::open_value(&key, scope.owner(), name, &sealed)?,
            ));
        }
    }
    Ok((record, values))
}

// ---------------------------------------------------------------------------------------
// Webhooks (docs/webhooks.md)

/// Sets (or replaces) the owner's webhook endpoint with a new signing secret, sealed under
/// the current master key; returns the endpoint and the secret, to show once. The URL must
/// have been validated by the caller (scheme, host, destination).
pub async fn set_webhook<S: WebhookStore + ?Sized>(
    store: &S,
    keys: &MasterKeys,
    scope: &OwnerScope,
    url: &str,
    rng: &mut (dyn RandomSource + Send),
) -> Result<(WebhookEndpoint, WebhookSecret)> {
    let secret = WebhookSecret::generate(rng);
    let sealed = crypto::seal_webhook_secret(keys.current(), scope.owner(), &secret, rng)?;
    let endpoint = store.put_endpoint(scope, url, sealed).await?;
    Ok((endpoint, secret))
}

/// Longest accepted rotation grace period, for tokens and webhook secrets alike: 30 days.
pub const MAX_ROTATION_GRACE: Duration = Duration::from_secs(30 * 24 * 3600);

/// `grace` when it is at most [`MAX_ROTATION_GRACE`]; refused as `grace_seconds` otherwise.
fn check_grace(grace: Duration) -> Result<Duration> {
    if grace > MAX_ROTATION_GRACE {
        return Err(Error::invalid("grace_seconds", "at most 30 days"));
    }
    Ok(grace)
}

/// Gives the owner's endpoint a new signing secret; the old one keeps signing until
/// `now + grace` (both sign meanwhile). Returns the endpoint and the new secret, to show
/// once. [`Error::NotFound`] when the owner has no endpoint.
pub async fn rotate_webhook_secret<S: WebhookStore + ?Sized>(
    store: &S,
    keys: &MasterKeys,
    scope: &OwnerScope,
    grace: Duration,
    now: OffsetDateTime,
    rng: &mut (dyn RandomSource + Send),
) -> Result<(WebhookEndpoint, WebhookSecret)> {
    let grace = check_grace(grace)?;
    let until = now
        .checked_add(
            time::Duration::try_from(grace)
                .map_err(|_| Error::invalid("grace_seconds", "too large"))?,
        )
        .ok_or_else(|| Error::invalid("grace_seconds", "too large"))?;
    let secret = WebhookSecret::generate(rng);
    let sealed = crypto::seal_webhook_secret(keys.current(), scope.owner(), &secret, rng)?;
    let endpoint = store.rotate_endpoint_secret(scope, sealed, until).await?;
    Ok((endpoint, secret))
}

/// The secrets that sign a delivery to `endpoint` at `now`: the current one, and the
/// previous one while its grace lasts.
pub fn signing_secrets(
    keys: &MasterKeys,
    endpoint: &WebhookEndpoint,
    now: OffsetDateTime,
) -> Result<Vec<WebhookSecret>> {
    let mut secrets = vec![crypto::open_webhook_secret(
        keys,
        &endpoint.owner_id,
        &endpoint.secret,
    )?];
    if let Some((sealed, until)) = &endpoint.previous_secret
        && *until > now
    {
        secrets.push(crypto::open_webhook_secret(
            keys,
            &endpoint.owner_id,
            sealed,
        )?);
    }
    Ok(secrets)
}

/// The delivery id of the webhook message for audit event `seq`: `msg_` and the sequence
/// number as 20 hex digits. Deriving it makes enqueueing idempotent (a second enqueue of
/// the same event is a conflict, not a second message) and lets a restarted worker tell
/// how far it got from the delivery log alone.
pub fn event_delivery_id(seq: i64) -> Result<DeliveryId> {
    let seq = u64::try_from(seq).map_err(|_| Error::invalid("seq", "must not be negative"))?;
    DeliveryId::parse(&format!("{}{seq:020x}", DeliveryId::PREFIX))
}

/// The audit sequence number a delivery id was derived from ([`event_delivery_id`]).
pub fn delivery_event_seq(id: &DeliveryId) -> Option<i64> {
    let hex = id.as_str().strip_prefix(DeliveryId::PREFIX)?;
    u64::from_str_radix(hex, 16)
        .ok()
        .and_then(|v| i64::try_from(v).ok())
}

/// Whether `event` goes to `endpoint`: it is the endpoint owner's and happened while the
/// endpoint existed (setting an endpoint again starts it anew).
pub fn event_is_for(event: &AuditEvent, endpoint: &WebhookEndpoint) -> bool {
    event.owner.as_ref() == Some(&endpoint.owner_id) && event.at >= endpoint.created_at
}

/// The JSON body of the webhook message for an audit event, in the Standard Webhooks
/// shape: `{"type", "timestamp", "data"}`, where `data` is the event as `GET
/// /v1/me/audit` shows it (details never hold secret values).
pub fn event_payload(event: &AuditEvent) -> String {
    let details: serde_json::Value =
        serde_json::from_str(&event.details).unwrap_or(serde_json::Value::Null);
    serde_json::json!({
        "type": event.action.as_str(),
        "timestamp": crate::audit::rfc3339(event.at),
        "data": {
            "seq": event.seq,
            "at": crate::audit::rfc3339(event.at),
            "actor": event.actor.to_string(),
            "owner_id": event.owner.as_ref().map(OwnerId::as_str),
            "action": event.action.as_str(),
            "target": event.target,
            "details": details,
        }
    })
    .to_string()
}

/// Retry schedule of webhook deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts before a delivery is marked failed (at least 1).
    pub max_attempts: u32,
    /// Wait after the first failed attempt; it doubles after each further one.
    pub base: Duration,
    /// The longest wait between two attempts.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 10,
            base: Duration::from_secs(30),
            max_delay: Duration::from_secs(6 * 3600),
        }
    }
}

impl RetryPolicy {
    /// What follows the failure of attempt number `attempt` (1 for the first): `None` when
    /// it was the last, else the wait before the next (`base · 2^(attempt-1)`, capped).
    pub fn after_failure(&self, attempt: u32) -> Option<Duration> {
        if attempt >= self.max_attempts.max(1) {
            return None;
        }
        let factor = 2_u32.saturating_pow(attempt.saturating_sub(1).min(30));
        Some(self.base.saturating_mul(factor).min(self.max_delay))
    }
}

/// Provisions a static user-token table (docs/tokens.md; `OWNERSHIP_USER_TOKENS` at start, and
/// `ownership users import FILE`): the whole table is validated first
/// ([`crate::provision::parse_table`]: every refusal names the entry's index, never its
/// token), then applied by the store in one transaction, idempotently
/// ([`crate::ports::UserStore::provision`]). With `dry_run` the plan is computed and
/// nothing is written. `scope` must be the operator's ([`AdminScope::operator`]).
pub async fn provision<S: crate::ports::UserStore + ?Sized>(
    store: &S,
    scope: &AdminScope,
    json_text: &str,
    dry_run: bool,
) -> Result<crate::provision::ProvisionPlan> {
    let table = crate::provision::parse_table(json_text)?;
    store.provision(scope, &table, dry_run).await
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

    #[test]
    fn delivery_ids_carry_their_event() {
        let id = event_delivery_id(42).unwrap();
        assert_eq!(id.as_str(), "msg_0000000000000000002a");
        assert_eq!(delivery_event_seq(&id), Some(42));
        assert_eq!(
            delivery_event_seq(&event_delivery_id(i64::MAX).unwrap()),
            Some(i64::MAX)
        );
        assert!(event_delivery_id(-1).is_err());
        // Ids from elsewhere that exceed i64 are not mistaken for events.
        let foreign = DeliveryId::parse("msg_ffffffffffffffffffff").unwrap();
        assert_eq!(delivery_event_seq(&foreign), None);
    }

    #[test]
    fn retries_back_off_exponentially_up_to_a_cap() {
        let p = RetryPolicy {
            max_attempts: 5,
            base: Duration::from_secs(10),
            max_delay: Duration::from_secs(60),
        };
        let waits: Vec<_> = (1..=5).map(|a| p.after_failure(a)).collect();
        assert_eq!(
            waits,
            vec![
                Some(Duration::from_secs(10)),
                Some(Duration::from_secs(20)),
                Some(Duration::from_secs(40)),
                Some(Duration::from_secs(60)),
                None
            ]
        );
        let huge = RetryPolicy {
            max_attempts: u32::MAX,
            ..p
        };
        assert_eq!(huge.after_failure(200), Some(Duration::from_secs(60)));
    }

    #[test]
    fn payloads_follow_the_standard_webhooks_shape() {
        let alice = OwnerId::parse("alice").unwrap();
        let event = crate::audit::NewAuditEvent::new(
            OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap(),
            crate::authz::Actor::User(alice.clone()),
            Some(alice),
            crate::audit::AuditAction::SecretPut,
            "API_KEY",
            &serde_json::json!({"name": "API_KEY"}),
        )
        .link(7, crate::audit::ChainHash::GENESIS);
        let body: serde_json::Value = serde_json::from_str(&event_payload(&event)).unwrap();
        assert_eq!(body["type"], "secret.put");
        assert_eq!(body["timestamp"], "2023-11-14T22:13:20Z");
        assert_eq!(body["data"]["seq"], 7);
        assert_eq!(body["data"]["owner_id"], "alice");
        assert_eq!(body["data"]["details"]["name"], "API_KEY");
    }

    /// Runs a future whose awaits all complete at once (the fake store below never waits).
    fn block_on<F: std::future::Future>(fut: F) -> F::Output {
        let mut fut = std::pin::pin!(fut);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        loop {
            if let std::task::Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
                return out;
            }
        }
    }

    /// A secret store in memory whose first key installation loses a race to another
    /// writer: it answers Conflict and installs the other writer's key instead.
    #[derive(Default)]
    struct RacingSecrets {
        other_writers_key: std::sync::Mutex<Option<Sealed>>,
        key: std::sync::Mutex<Option<Sealed>>,
        values: std::sync::Mutex<Vec<(SecretName, Sealed)>>,
    }

    #[async_trait::async_trait]
    impl SecretStore for RacingSecrets {
        async fn data_key(&self, _: &OwnerScope) -> Result<Option<Sealed>> {
            Ok(self.key.lock().unwrap().clone())
        }
        async fn put_secret(
            &self,
            _: &OwnerScope,
            name: &SecretName,
            value: Sealed,
            new_data_key: Option<Sealed>,
        ) -> Result<SecretMeta> {
            let mut key = self.key.lock().unwrap();
            match (new_data_key, key.is_some()) {
                (Some(_), false) => {
                    *key = self.other_writers_key.lock().unwrap().take();
                    return Err(Error::Conflict("raced".into()));
                }
                (Some(_), true) | (None, false) => return Err(Error::Conflict("bad".into())),
                (None, true) => {}
            }
            self.values.lock().unwrap().push((name.clone(), value));
            Ok(SecretMeta {
                name: name.clone(),
                created_at: OffsetDateTime::UNIX_EPOCH,
                updated_at: OffsetDateTime::UNIX_EPOCH,
            })
        }
        async fn get_secret(&self, _: &OwnerScope, name: &SecretName) -> Result<Option<Sealed>> {
            Ok(self
                .values
                .lock()
                .unwrap()
                .iter()
                .rev()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone()))
        }
        async fn list_secrets(&self, _: &OwnerScope) -> Result<Vec<SecretMeta>> {
            Ok(Vec::new())
        }
        async fn delete_secret(&self, _: &OwnerScope, _: &SecretName) -> Result<()> {
            Ok(())
        }
        async fn all_data_keys(&self, _: &SystemScope) -> Result<Vec<(OwnerId, Sealed)>> {
            Ok(Vec::new())
        }
        async fn replace_data_keys(
            &self,
            _: &SystemScope,
            _: &[(OwnerId, Sealed, Sealed)],
        ) -> Result<u64> {
            Ok(0)
        }
    }

    #[test]
    fn a_lost_data_key_race_reseals_under_the_winners_key() {
        let mut n = 0_u8;
        let mut rng = move |buf: &mut [u8]| {
            for b in buf.iter_mut() {
                n = n.wrapping_add(13);
                *b = n;
            }
        };
        let keys = MasterKeys::single(crypto::MasterKey::new(1, [5; 32]).unwrap());
        let alice = OwnerId::parse("alice").unwrap();
        let scope = OwnerScope::own(&Identity::new(alice.clone(), UserRole::Member));
        let winners_key = crypto::DataKey::generate(&mut rng);
        let store = RacingSecrets::default();
        *store.other_writers_key.lock().unwrap() =
            Some(crypto::wrap_data_key(keys.current(), &alice, &winners_key, &mut rng).unwrap());
        let name = SecretName::parse("TOKEN").unwrap();
        block_on(put_secret(&store, &keys, &scope, &name, "v1", &mut rng)).unwrap();
        let value = block_on(secret_value(&store, &keys, &scope, &name))
            .unwrap()
            .unwrap();
        assert_eq!(value.expose(), "v1");
        let sealed = store.values.lock().unwrap()[0].1.clone();
        assert_eq!(
            crypto::open_value(&winners_key, &alice, &name, &sealed)
                .unwrap()
                .expose(),
            "v1"
        );
    }
}
