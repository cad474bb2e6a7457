//! Pairing codes for channel identity pairing (docs/tokens.md#pairing-codes; format in `docs/tokens.md`).
//!
//! A code is 8 symbols from the 32-symbol [`PAIRING_ALPHABET`] (40 bits), shown as
//! `ABCD-EFGH` and normalized on input (case, spaces and dashes are ignored).
//!
//! The store never holds a code. It keeps, per pending request, a random
//! [`PairingSeed`] and the code's [`CodeHash`] (HMAC-SHA256 under the [`PairingKey`]):
//!
//! - issuing: `code = PairingCode::derive(&key, &seed)`, store `(seed, key.hash(&code))`;
//! - the same sender asks again: re-derive the code from the stored seed;
//! - redeeming: `PairingCode::parse(input)`, look up `key.hash(&code)`.
//!
//! Both steps need the key, so a database dump without it reveals no code and allows
//! no offline guessing. The key is derived from the master key with HKDF-SHA256
//! ([`PairingKey::derive_from_master`]) or, without a master key, generated and kept in
//! the store (`docs/security.md` says what that mode gives up).

use std::fmt;
use std::hash::Hash;
use std::time::Duration;

use async_trait::async_trait;
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use crate::RandomSource;
use crate::audit::truncate_to_micros;
use crate::authz::{Actor, AdminScope, ChannelScope, OwnerScope, SystemScope};
use crate::db::{self, Transactions, Tx};
use crate::error::{Error, Result};
use crate::events;
use crate::identity::{Identity, UserRole, UserStatus};
use crate::ids::{ChannelKey, ChannelName, ExternalId, OwnerId, PairingRequestId};
use crate::instants::add_duration;
use crate::quotas::PairingBudget;
use crate::token::{hmac_sha256, short_hex};

/// The 32 code symbols, in value order: upper-case letters and digits without the
/// look-alikes `0`, `O`, `1` and `I`. Each symbol carries 5 bits.
pub const PAIRING_ALPHABET: &str = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// Symbols in a code (8 × 5 = 40 bits).
pub const CODE_LEN: usize = 8;

/// Random bytes needed for one code (40 bits).
const CODE_BYTES: usize = 5;

/// Domain-separation label of [`PairingCode::derive`].
pub const DERIVE_LABEL: &[u8] = b"ownership/pairing-code/v1";

/// HKDF `info` of [`PairingKey::derive_from_master`].
pub const KEY_INFO: &[u8] = b"ownership/pairing-code-key/v1";

/// A normalized pairing code: exactly 8 symbols of [`PAIRING_ALPHABET`]. `Debug` is
/// redacted; equality is constant-time.
#[derive(Clone)]
pub struct PairingCode(String);

impl PairingCode {
    /// Parses user input: ASCII whitespace and `-` are removed and letters upper-cased,
    /// then exactly 8 symbols of [`PAIRING_ALPHABET`] must remain. Errors never echo the
    /// input.
    pub fn parse(input: &str) -> Result<Self> {
        if input.trim().is_empty() {
            return Err(blank());
        }
        let mut code = String::with_capacity(CODE_LEN);
        for c in input.chars() {
            if c.is_ascii_whitespace() || c == '-' {
                continue;
            }
            let upper = c.to_ascii_uppercase();
            if !upper.is_ascii() || !PAIRING_ALPHABET.contains(upper) {
                return Err(Error::invalid(
                    "code",
                    "contains a character outside the pairing alphabet",
                ));
            }
            if code.len() == CODE_LEN {
                return Err(wrong_length());
            }
            code.push(upper);
        }
        match code.len() {
            0 => Err(blank()),
            CODE_LEN => Ok(Self(code)),
            _ => Err(wrong_length()),
        }
    }

    /// A uniformly random code: 5 random bytes read as 8 groups of 5 bits, one symbol
    /// each (no modulo bias).
    pub fn generate(rng: &mut dyn RandomSource) -> Self {
        let mut bytes = [0_u8; CODE_BYTES];
        rng.fill(&mut bytes);
        Self::from_40_bits(bytes)
    }

    /// The code for `seed` under `key`: the first 40 bits of
    /// HMAC-SHA256(key, `ownership/pairing-code/v1` ‖ seed), 5 bits per symbol.
    pub fn derive(key: &PairingKey, seed: &PairingSeed) -> Self {
        let mac = hmac_sha256(&key.0, &[DERIVE_LABEL, &seed.0]);
        let [a, b, c, d, e, ..] = mac;
        Self::from_40_bits([a, b, c, d, e])
    }

    /// The display form, `ABCD-EFGH`.
    pub fn display(&self) -> String {
        match self.0.split_at_checked(CODE_LEN / 2) {
            Some((head, tail)) => format!("{head}-{tail}"),
            None => self.0.clone(),
        }
    }

    /// The normalized code (8 symbols, no dash).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn from_40_bits(bytes: [u8; CODE_BYTES]) -> Self {
        let bits = bytes
            .iter()
            .fold(0_u64, |acc, &b| (acc << 8) | u64::from(b));
        let code = (0..CODE_LEN)
            .rev()
            .map(|i| {
                let group = (bits >> (5 * i)) & 0x1f;
                char::from(symbol(u8::try_from(group).unwrap_or(0)))
            })
            .collect();
        Self(code)
    }
}

impl fmt::Debug for PairingCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PairingCode(****)")
    }
}

impl PartialEq for PairingCode {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl Eq for PairingCode {}

fn blank() -> Error {
    Error::invalid("code", "must not be blank")
}

fn wrong_length() -> Error {
    Error::invalid("code", "must be 8 characters from the pairing alphabet")
}

/// The symbol for a 5-bit value (the value's position in [`PAIRING_ALPHABET`]).
fn symbol(value: u8) -> u8 {
    let value = value & 0x1f;
    match value {
        0..=7 => b'A' + value,          // A-H
        8..=12 => b'J' + (value - 8),   // J-N
        13..=23 => b'P' + (value - 13), // P-Z
        _ => b'2' + (value - 24),       // 2-9
    }
}

/// The random seed a pending pairing request keeps; with the [`PairingKey`] it
/// re-derives the request's code. Not secret on its own.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PairingSeed([u8; 16]);

impl PairingSeed {
    /// 16 random bytes from `rng`.
    pub fn generate(rng: &mut dyn RandomSource) -> Self {
        let mut bytes = [0_u8; 16];
        rng.fill(&mut bytes);
        Self(bytes)
    }

    /// Wraps a seed read back from the store.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// The seed's bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// The seed as 32 lower-case hex characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 32 hex characters.
    pub fn from_hex(text: &str) -> Result<Self> {
        let mut bytes = [0_u8; 16];
        hex::decode_to_slice(text, &mut bytes)
            .map_err(|_| Error::invalid("pairing_seed", "must be 32 hexadecimal characters"))?;
        Ok(Self(bytes))
    }
}

impl fmt::Debug for PairingSeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PairingSeed({}…)", short_hex(&self.0))
    }
}

/// The 256-bit key that derives codes from seeds and hashes codes for storage. Secret:
/// `Debug` is redacted and it is never stored beside the rows it protects when a master
/// key is configured.
#[derive(Clone)]
pub struct PairingKey([u8; 32]);

impl PairingKey {
    /// Wraps key bytes (for example a generated key read back from the store).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A random key from `rng`, for deployments without a master key.
    pub fn generate(rng: &mut dyn RandomSource) -> Self {
        let mut bytes = [0_u8; 32];
        rng.fill(&mut bytes);
        Self(bytes)
    }

    /// The key derived from the master key: HKDF-SHA256 (RFC 5869) with an empty salt,
    /// info `ownership/pairing-code-key/v1`, 32 bytes of output.
    pub fn derive_from_master(master_key: &[u8; 32]) -> Self {
        let hkdf = hkdf::Hkdf::<sha2::Sha256>::new(Some(&[]), master_key);
        let mut okm = [0_u8; 32];
        #[expect(
            clippy::expect_used,
            reason = "HKDF-SHA256 only fails for outputs over 255 × 32 bytes; this one is 32"
        )]
        hkdf.expand(KEY_INFO, &mut okm)
            .expect("32 bytes is a valid HKDF-SHA256 length");
        Self(okm)
    }

    /// The stored form of `code`: HMAC-SHA256(key, normalized code).
    pub fn hash(&self, code: &PairingCode) -> CodeHash {
        CodeHash(hmac_sha256(&self.0, &[code.0.as_bytes()]))
    }
}

impl fmt::Debug for PairingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PairingKey(****)")
    }
}

crate::token::secret_digest!(
    /// A pairing code's keyed hash, the only form of a code the store keeps. Equality is
    /// constant-time; `Debug` shows the first 4 bytes in hex.
    CodeHash,
    "code_hash"
);

/// A candidate for a new pairing request: the code is derived from `seed` under the
/// pairing key, and only its keyed hash is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairingCandidate {
    /// The request's public id.
    pub id: PairingRequestId,
    /// The seed the code is derived from.
    pub seed: PairingSeed,
    /// The keyed hash of the derived code.
    pub code_hash: CodeHash,
}

/// Limits on pending pairing requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PairingPolicy {
    /// How long a code lives (default 10 minutes).
    pub ttl: Duration,
    /// At most this many live requests per channel.
    pub max_pending_per_channel: u32,
}

impl Default for PairingPolicy {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(600),
            max_pending_per_channel: 1_000,
        }
    }
}

/// The live request a sender holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairingIssue {
    /// Its public id.
    pub id: PairingRequestId,
    /// The seed to re-derive the code from.
    pub seed: PairingSeed,
    /// When the code expires.
    pub expires_at: OffsetDateTime,
    /// True when made by this call, false when an earlier live request was returned.
    pub created: bool,
}

/// A pending request as admins see it: never its code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingPairing {
    /// Public id.
    pub id: PairingRequestId,
    /// The sender.
    pub key: ChannelKey,
    /// Adapter-supplied JSON (a display name, say).
    pub meta: Option<String>,
    /// When asked.
    pub created_at: OffsetDateTime,
    /// When the code expires.
    pub expires_at: OffsetDateTime,
}

/// A chat account bound to an owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelBinding {
    /// The chat account.
    pub key: ChannelKey,
    /// Its owner.
    pub owner_id: OwnerId,
    /// When it was bound.
    pub created_at: OffsetDateTime,
}

/// Pairing chat accounts to owners.
#[async_trait]
pub trait PairingStore: Send + Sync {
    /// The sender's live request, or a new one from the first candidate whose code hash is
    /// free. One live request per sender, however many concurrent calls. Expired requests
    /// of the channel are purged first; past the per-channel cap,
    /// [`crate::Error::RateLimited`]. A sender already bound may ask (to move the chat
    /// account); approving that for another owner is refused until the binding is removed.
    async fn request_pairing(
        &self,
        scope: &ChannelScope,
        external_id: &ExternalId,
        meta: Option<&str>,
        candidates: &[PairingCandidate],
        policy: &PairingPolicy,
    ) -> Result<PairingIssue>;

    /// Live requests of a channel, oldest first, for admins.
    async fn list_pending(
        &self,
        scope: &AdminScope,
        channel: &ChannelName,
    ) -> Result<Vec<PendingPairing>>;

    /// Live requests of every channel, newest first, for admins (the console's default
    /// view of what is waiting).
    async fn list_all_pending(&self, scope: &AdminScope) -> Result<Vec<PendingPairing>>;

    /// Self-claim: binds the sender of the live request with this code hash to the caller.
    /// One transaction; of concurrent redemptions exactly one succeeds. Unknown, expired
    /// or used codes are all [`crate::Error::NotFound`]; a sender bound to another owner is
    /// [`crate::Error::Conflict`] and consumes nothing. Each `NotFound` spends one from the
    /// caller's and the channel's wrong-code budgets ([`PairingBudget`], the store's
    /// [`crate::db::Transactions::limits`]) in the same transaction; a caller whose budget
    /// is spent gets [`crate::Error::RateLimited`] and the code is not looked at. The
    /// failure that spends the channel's budget burns its pending requests.
    async fn redeem_pairing(
        &self,
        scope: &OwnerScope,
        channel: &ChannelName,
        code_hash: &CodeHash,
    ) -> Result<ChannelBinding>;

    /// Admin approval for a named active owner; otherwise as [`Self::redeem_pairing`] (the
    /// approving admin's budget is spent; the operator has none, only the channel's).
    async fn approve_pairing(
        &self,
        scope: &AdminScope,
        channel: &ChannelName,
        code_hash: &CodeHash,
        owner: &OwnerId,
    ) -> Result<ChannelBinding>;

    /// Burns every live request of a channel (its failure budget ran out). Returns how many.
    async fn burn_pending(&self, scope: &SystemScope, channel: &ChannelName) -> Result<u64>;

    /// The identity bound to a chat account, if its owner is active.
    async fn resolve_identity(
        &self,
        scope: &ChannelScope,
        external_id: &ExternalId,
    ) -> Result<Option<Identity>>;

    /// The pairing-code key kept in the store (used when no master key is configured):
    /// stores `candidate` if none is kept yet, and returns the kept one either way.
    async fn stored_pairing_key(
        &self,
        scope: &SystemScope,
        candidate: &PairingKey,
    ) -> Result<PairingKey>;

    /// The owner's bound chat accounts.
    async fn list_identities(&self, scope: &OwnerScope) -> Result<Vec<ChannelBinding>>;

    /// Unbinds one of the owner's chat accounts. [`crate::Error::NotFound`] if not theirs.
    async fn unlink_identity(&self, scope: &OwnerScope, key: &ChannelKey) -> Result<()>;
}

/// What resolving a chat account reads: the owner it is bound to, with their account as
/// it is now. The point read [`PairingDatabase::identity_of`] answers it, and a cache may keep
/// it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelAuth {
    /// The owner the chat account is bound to.
    pub owner: OwnerId,
    /// Their role now.
    pub role: UserRole,
    /// Their status now.
    pub status: UserStatus,
}

impl ChannelAuth {
    /// The one rule of "who is this chat account": its owner's identity while that owner
    /// is active, else nobody.
    pub fn identity(&self) -> Option<Identity> {
        (self.status == UserStatus::Active).then(|| Identity::new(self.owner.clone(), self.role))
    }
}

/// A pairing request as a transaction reads it (never its code hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairingRequestRow {
    /// Its public id.
    pub id: PairingRequestId,
    /// The sender.
    pub external_id: ExternalId,
    /// The seed its code is derived from.
    pub seed: PairingSeed,
    /// When its code expires.
    pub expires_at: OffsetDateTime,
}

/// A pairing request row to insert.
#[derive(Debug, Clone, Copy)]
pub struct NewPairingRow<'a> {
    /// The sender.
    pub key: &'a ChannelKey,
    /// Id, seed and code hash.
    pub candidate: &'a PairingCandidate,
    /// Adapter-supplied JSON.
    pub meta: Option<&'a str>,
    /// When asked.
    pub created_at: OffsetDateTime,
    /// When the code expires.
    pub expires_at: OffsetDateTime,
}

/// Which of a channel's requests, by their expiry against the transaction's time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Expired at or before it.
    Expired,
    /// Expiring after it.
    Live,
}

/// A channel's pending requests as a new request meets them
/// ([`PairingRows::channel_pending`]).
#[derive(Debug, Clone)]
pub struct ChannelPending {
    /// The sender's request, live or not.
    pub sender: Option<PairingRequestRow>,
    /// How many requests the channel holds.
    pub count: u64,
    /// The earliest expiry among them.
    pub oldest: Option<OffsetDateTime>,
}

/// The pairing rows a transaction reads and writes: SQL and row mapping, no decisions.
#[async_trait]
pub trait PairingRows: Tx {
    /// Deletes the channel's requests that are `which` at [`Tx::now`]; how many.
    async fn delete_pairings(&mut self, channel: &ChannelName, which: Expiry) -> Result<u64>;
    /// The channel's request with this code hash, live or not.
    async fn find_pairing(
        &mut self,
        channel: &ChannelName,
        code_hash: &CodeHash,
    ) -> Result<Option<PairingRequestRow>>;
    /// The requests of `key`'s channel: the sender's (live or not), how many the channel
    /// holds and the earliest expiry among them, in one read.
    async fn channel_pending(&mut self, key: &ChannelKey) -> Result<ChannelPending>;
    /// Inserts a request; `false` when a request (of any channel) has the candidate's
    /// code hash or id already, and nothing was inserted.
    async fn insert_pairing(&mut self, row: NewPairingRow<'_>) -> Result<bool>;
    /// Deletes one request; whether it was there to delete (a write beside this one may
    /// have consumed it first).
    async fn delete_pairing(&mut self, id: &PairingRequestId) -> Result<bool>;
    /// The requests live at [`Tx::now`], oldest first: the channel's, or with `None`
    /// every channel's.
    async fn live_pairings(&mut self, channel: Option<&ChannelName>)
    -> Result<Vec<PendingPairing>>;
    /// The binding of a chat account, if any.
    async fn binding(&mut self, key: &ChannelKey) -> Result<Option<ChannelBinding>>;
    /// Inserts a binding; `false` when the chat account is bound already (perhaps by a
    /// write beside this one, committed meanwhile), and nothing was inserted.
    async fn insert_binding(&mut self, binding: &ChannelBinding) -> Result<bool>;
    /// The owner's bindings, oldest first.
    async fn bindings_of(&mut self, owner: &OwnerId) -> Result<Vec<ChannelBinding>>;
    /// Deletes the binding of `key` when it is `owner`'s; how many rows (0 or 1).
    async fn delete_binding(&mut self, key: &ChannelKey, owner: &OwnerId) -> Result<u64>;
    /// Keeps `candidate` as the pairing-code key unless one is kept already, and reads
    /// the kept one back.
    async fn keep_pairing_key(&mut self, candidate: &PairingKey) -> Result<Option<PairingKey>>;
    /// When the wrong-code budget of a user or a channel is whole again, if stored.
    async fn budget_spent_until(&mut self, key: FailureKey<'_>) -> Result<Option<OffsetDateTime>>;
    /// Stores (inserts or replaces) when the budget of a user or a channel is whole again.
    async fn set_budget_spent_until(
        &mut self,
        key: FailureKey<'_>,
        at: OffsetDateTime,
    ) -> Result<()>;
}

/// Whose wrong pairing codes a budget counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKey<'a> {
    /// The user who submitted them (the redeemer, or the approving admin).
    User(&'a OwnerId),
    /// The channel they were submitted for.
    Channel(&'a ChannelName),
}

impl FailureKey<'_> {
    /// The stored scope name: `user` or `channel`.
    pub fn scope(&self) -> &'static str {
        match self {
            Self::User(_) => "user",
            Self::Channel(_) => "channel",
        }
    }

    /// The stored key: the user id or the channel name.
    pub fn key(&self) -> &str {
        match self {
            Self::User(id) => id.as_str(),
            Self::Channel(channel) => channel.as_str(),
        }
    }
}

/// A budget of `size` failures per `window` as a generic cell rate (GCRA): all of it
/// available at once, one failure back every `window / size`. Its whole state is one
/// instant, when the budget is whole again (`spent_until`).
#[derive(Debug, Clone, Copy)]
struct Gcra {
    /// How long one failure takes to come back.
    period: time::Duration,
    /// The failures the budget holds when whole.
    size: u32,
}

impl Gcra {
    fn new(size: u32, window: Duration) -> Result<Self> {
        let size = size.max(1);
        let period = time::Duration::try_from(window / size)
            .map_err(|_| Error::invalid("window", "too large"))?;
        Ok(Self { period, size })
    }

    /// When the budget is whole again as it stands at `now`.
    fn base(stored: Option<OffsetDateTime>, now: OffsetDateTime) -> OffsetDateTime {
        stored.map_or(now, |at| at.max(now))
    }

    /// How long until one more failure may be spent, when none may now.
    fn wait(&self, stored: Option<OffsetDateTime>, now: OffsetDateTime) -> Option<Duration> {
        let pending = Self::base(stored, now) - now;
        let allowance = self.period * (self.size - 1);
        (pending > allowance).then(|| retry_after(now, now + (pending - allowance)))
    }

    /// Spends one failure: the new `spent_until`, and whether that emptied the budget.
    fn spend(&self, stored: Option<OffsetDateTime>, now: OffsetDateTime) -> (OffsetDateTime, bool) {
        let until = Self::base(stored, now) + self.period;
        (until, until - now >= self.period * self.size)
    }
}

/// Deletes every request of the channel (live ones are burned) and audits the burn; how
/// many live requests went.
async fn burn_channel<T: PairingRows + ?Sized>(tx: &mut T, channel: &ChannelName) -> Result<u64> {
    let now = tx.now();
    let burned = tx.delete_pairings(channel, Expiry::Live).await?;
    tx.delete_pairings(channel, Expiry::Expired).await?;
    if burned > 0 {
        tx.append(events::pairing_burned(now, channel, burned))
            .await?;
    }
    Ok(burned)
}

/// [`consume`] within the wrong-code budgets, all in the one transaction that evaluates
/// the code, so concurrent attempts cannot overspend them: a submitter (`who`; `None`
/// for the operator, who has no budget of their own) whose budget is spent is refused
/// with [`Error::RateLimited`] before the code is looked at; a code that does not redeem
/// spends one from the submitter's and the channel's budgets, and the failure that
/// empties the channel's burns its pending requests (its budget is then whole again).
async fn consume_within_budget<T: PairingRows + ?Sized>(
    tx: &mut T,
    budget: &PairingBudget,
    who: Option<&OwnerId>,
    actor: &Actor,
    channel: &ChannelName,
    code_hash: &CodeHash,
    owner: &OwnerId,
) -> Result<Result<ChannelBinding>> {
    let now = tx.now();
    let per_user = Gcra::new(budget.per_user, budget.user_window)?;
    let mut user = None;
    if let Some(who) = who {
        user = Some((who, user_budget(tx, &per_user, who).await?));
    }
    let outcome = consume(tx, actor, channel, code_hash, owner).await?;
    if !matches!(outcome, Err(Error::NotFound)) {
        return Ok(outcome);
    }
    if let Some((who, stored)) = user {
        let (until, _) = per_user.spend(stored, now);
        tx.set_budget_spent_until(FailureKey::User(who), until)
            .await?;
    }
    let per_channel = Gcra::new(budget.per_channel, budget.channel_window)?;
    let key = FailureKey::Channel(channel);
    let stored = tx.budget_spent_until(key).await?;
    let (until, emptied) = per_channel.spend(stored, now);
    if emptied {
        // The codes are gone; a whole budget applies to the new ones.
        burn_channel(tx, channel).await?;
        tx.set_budget_spent_until(key, now).await?;
    } else {
        tx.set_budget_spent_until(key, until).await?;
    }
    Ok(outcome)
}

/// What `who` spent of their wrong-code budget, as stored; refused with
/// [`Error::RateLimited`] when none is left.
async fn user_budget<T: PairingRows + ?Sized>(
    tx: &mut T,
    per_user: &Gcra,
    who: &OwnerId,
) -> Result<Option<OffsetDateTime>> {
    let stored = tx.budget_spent_until(FailureKey::User(who)).await?;
    match per_user.wait(stored, tx.now()) {
        Some(retry_after) => Err(Error::RateLimited { retry_after }),
        None => Ok(stored),
    }
}

/// `until - now` rounded up to whole seconds and at least one: a `Retry-After`.
fn retry_after(now: OffsetDateTime, until: OffsetDateTime) -> Duration {
    let micros = u128::try_from((until - now).whole_microseconds().max(0)).unwrap_or(0);
    let secs = u64::try_from(micros.div_ceil(1_000_000)).unwrap_or(u64::MAX);
    Duration::from_secs(secs.max(1))
}

/// Redemption and approval, inside one write transaction: find the live request by code
/// hash, bind its sender to `owner` (or find it bound to them already), consume it and
/// audit. The outer error rolls back; the inner one is committed (an expired request met
/// here is deleted, and a later wrong-code count belongs there too).
async fn consume<T: PairingRows + ?Sized>(
    tx: &mut T,
    actor: &Actor,
    channel: &ChannelName,
    code_hash: &CodeHash,
    owner: &OwnerId,
) -> Result<Result<ChannelBinding>> {
    let now = tx.now();
    let Some(request) = tx.find_pairing(channel, code_hash).await? else {
        return Ok(Err(Error::NotFound));
    };
    if request.expires_at <= now {
        tx.delete_pairing(&request.id).await?;
        return Ok(Err(Error::NotFound));
    }
    let owner_state = tx.actor_state(owner).await?;
    if owner_state.is_none_or(|state| state.status != UserStatus::Active) {
        return Err(Error::NotFound);
    }
    // Claimed first: a redemption of the same request beside this one (another owner's)
    // either consumed it already, or waits for this one.
    if !tx.delete_pairing(&request.id).await? {
        return Err(Error::NotFound);
    }
    let key = ChannelKey::new(channel.clone(), request.external_id);
    // Never moved silently: the old binding must be removed first, and nothing is
    // consumed (the transaction rolls back).
    let bound_elsewhere = || {
        Error::Conflict(
            "this chat account is bound to another owner; it must be unlinked first".into(),
        )
    };
    let binding = ChannelBinding {
        key,
        owner_id: owner.clone(),
        created_at: now,
    };
    if tx.insert_binding(&binding).await? {
        tx.append(events::pairing_approved(now, actor, &binding.key, owner))
            .await?;
        return Ok(Ok(binding));
    }
    // Bound already (or meanwhile, by another owner's redemption of another request of
    // the same sender beside this one: as if this one came second).
    match tx.binding(&binding.key).await? {
        Some(existing) if existing.owner_id == *owner => Ok(Ok(existing)),
        _ => Err(bound_elsewhere()),
    }
}

/// A database that pairs chat accounts: transactions with [`PairingRows`], and the point
/// read behind every message a channel adapter resolves (which a cache may answer).
pub trait PairingDatabase: Transactions<Tx: PairingRows> {
    /// The owner a chat account is bound to, with their account, outside any
    /// transaction.
    fn identity_of(
        &self,
        key: &ChannelKey,
    ) -> impl std::future::Future<Output = Result<Option<ChannelAuth>>> + Send;
}

/// Every [`PairingDatabase`] pairs chat accounts: each use case once, over [`PairingRows`].
#[async_trait]
impl<D: PairingDatabase> PairingStore for D {
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
        // A channel's requests are no owner's rows: beside owners' writes.
        db::write_unowned(self, move |tx| {
            Box::pin(async move {
                let now = tx.now();
                // A sender already bound may ask too: that is how a chat account moves to
                // another owner. Redeeming or approving it for a different owner stays a
                // conflict (consuming nothing) until the old binding is removed.
                tx.delete_pairings(&key.channel, Expiry::Expired).await?;
                let pending = tx.channel_pending(&key).await?;
                if let Some(live) = pending.sender {
                    return Ok(PairingIssue {
                        id: live.id,
                        seed: live.seed,
                        expires_at: live.expires_at,
                        created: false,
                    });
                }
                let expires_at = truncate_to_micros(add_duration(now, policy.ttl, "ttl")?);
                if pending.count >= u64::from(policy.max_pending_per_channel) {
                    return Err(Error::RateLimited {
                        retry_after: retry_after(now, pending.oldest.unwrap_or(expires_at)),
                    });
                }
                for candidate in &candidates {
                    let row = NewPairingRow {
                        key: &key,
                        candidate,
                        meta: meta.as_deref(),
                        created_at: now,
                        expires_at,
                    };
                    if !tx.insert_pairing(row).await? {
                        // Its code hash or id is taken: the next candidate.
                        continue;
                    }
                    tx.append(events::pairing_requested(
                        now,
                        scope.actor(),
                        &key,
                        &candidate.id,
                    ))
                    .await?;
                    return Ok(PairingIssue {
                        id: candidate.id.clone(),
                        seed: candidate.seed,
                        expires_at,
                        created: true,
                    });
                }
                // Three random 40-bit codes all taken: never expected, not retried here.
                Err(Error::Unavailable("no free pairing code; try again".into()))
            })
        })
        .await
    }

    async fn list_pending(
        &self,
        _scope: &AdminScope,
        channel: &ChannelName,
    ) -> Result<Vec<PendingPairing>> {
        let channel = channel.clone();
        self.read(move |tx| Box::pin(async move { tx.live_pairings(Some(&channel)).await }))
            .await
    }

    async fn list_all_pending(&self, _scope: &AdminScope) -> Result<Vec<PendingPairing>> {
        let mut all = self
            .read(|tx| Box::pin(async move { tx.live_pairings(None).await }))
            .await?;
        // Newest first: what an admin looks for is what just arrived.
        all.reverse();
        Ok(all)
    }

    async fn redeem_pairing(
        &self,
        scope: &OwnerScope,
        channel: &ChannelName,
        code_hash: &CodeHash,
    ) -> Result<ChannelBinding> {
        let (scope, channel, code_hash) = (scope.clone(), channel.clone(), *code_hash);
        let budget = self.limits().pairing;
        // A code that redeems binds a chat account to the caller and appends to the
        // caller's chain: the caller's write, beside other owners'. `None`: the code did
        // not redeem (at most an expired request was deleted, and that is committed).
        let redeemed = {
            let (caller, channel) = (scope.clone(), channel.clone());
            db::write_owner(self, scope.owner(), move |tx| {
                Box::pin(async move {
                    let (scope, owner) = (&caller, caller.owner());
                    let per_user = Gcra::new(budget.per_user, budget.user_window)?;
                    user_budget(tx, &per_user, owner).await?;
                    Ok(
                        match consume(tx, scope.actor(), &channel, &code_hash, owner).await? {
                            Err(Error::NotFound) => None,
                            outcome => Some(outcome),
                        },
                    )
                })
            })
            .await?
        };
        if let Some(outcome) = redeemed {
            return outcome;
        }
        // A wrong code spends from the channel's budget too, which every owner's attempts
        // share, and may burn the channel's codes: that write runs alone.
        db::write(self, move |tx| {
            Box::pin(async move {
                let owner = scope.owner();
                consume_within_budget(
                    tx,
                    &budget,
                    Some(owner),
                    scope.actor(),
                    &channel,
                    &code_hash,
                    owner,
                )
                .await
            })
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
        let (scope, channel, code_hash, owner) =
            (scope.clone(), channel.clone(), *code_hash, owner.clone());
        let budget = self.limits().pairing;
        db::write(self, move |tx| {
            Box::pin(async move {
                // The approver as they are now: still an active Admin or Owner, and allowed
                // to manage the user the account will act as (an Admin may not bind a
                // chat account to an Admin or the Owner).
                let scope = db::current_scope(tx, &scope).await?;
                if let Some(target) = tx.actor_state(&owner).await? {
                    crate::authz::check_bind_for(&scope, &owner, target.role)?;
                }
                let who = scope.acting_user().cloned();
                consume_within_budget(
                    tx,
                    &budget,
                    who.as_ref(),
                    scope.actor(),
                    &channel,
                    &code_hash,
                    &owner,
                )
                .await
            })
        })
        .await?
    }

    async fn burn_pending(&self, _scope: &SystemScope, channel: &ChannelName) -> Result<u64> {
        let channel = channel.clone();
        db::write(self, move |tx| {
            Box::pin(async move { burn_channel(tx, &channel).await })
        })
        .await
    }

    async fn resolve_identity(
        &self,
        scope: &ChannelScope,
        external_id: &ExternalId,
    ) -> Result<Option<Identity>> {
        let key = ChannelKey::new(scope.channel().clone(), external_id.clone());
        Ok(self
            .identity_of(&key)
            .await?
            .and_then(|auth| auth.identity()))
    }

    async fn stored_pairing_key(
        &self,
        _scope: &SystemScope,
        candidate: &PairingKey,
    ) -> Result<PairingKey> {
        let candidate = candidate.clone();
        db::write(self, move |tx| {
            Box::pin(async move {
                tx.keep_pairing_key(&candidate)
                    .await?
                    .ok_or_else(|| Error::Integrity("the pairing key was not kept".into()))
            })
        })
        .await
    }

    async fn list_identities(&self, scope: &OwnerScope) -> Result<Vec<ChannelBinding>> {
        let owner = scope.owner().clone();
        self.read(move |tx| Box::pin(async move { tx.bindings_of(&owner).await }))
            .await
    }

    async fn unlink_identity(&self, scope: &OwnerScope, key: &ChannelKey) -> Result<()> {
        let (scope, key) = (scope.clone(), key.clone());
        db::write(self, move |tx| {
            Box::pin(async move {
                let owner = scope.owner();
                if tx.delete_binding(&key, owner).await? == 0 {
                    return Err(Error::NotFound);
                }
                let now = tx.now();
                tx.append(events::identity_unlinked(now, scope.actor(), owner, &key))
                    .await
            })
        })
        .await
    }
}

/// How many candidate codes a pairing request carries (a collision among live codes of
/// 40 bits is already rare; three in a row is negligible).
pub const PAIRING_CANDIDATES: usize = 3;

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
    use proptest::prelude::*;

    use super::*;

    /// A deterministic source that repeats `bytes`.
    fn repeating(bytes: Vec<u8>) -> impl FnMut(&mut [u8]) {
        let mut i = 0;
        move |buf: &mut [u8]| {
            for b in buf.iter_mut() {
                *b = bytes[i % bytes.len()];
                i += 1;
            }
        }
    }

    fn code_from(bytes: [u8; 5]) -> PairingCode {
        PairingCode::generate(&mut repeating(bytes.to_vec()))
    }

    fn invalid_reason(result: Result<PairingCode>) -> String {
        match result {
            Err(Error::Invalid {
                field: "code",
                reason,
            }) => reason,
            other => panic!("expected an invalid code, got {other:?}"),
        }
    }

    #[test]
    fn alphabet_has_32_distinct_symbols_without_look_alikes() {
        let symbols: std::collections::BTreeSet<char> = PAIRING_ALPHABET.chars().collect();
        assert_eq!(symbols.len(), 32);
        assert_eq!(PAIRING_ALPHABET.len(), 32);
        for c in ['0', 'O', '1', 'I'] {
            assert!(!PAIRING_ALPHABET.contains(c));
        }
        assert!(
            PAIRING_ALPHABET
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        );
        for (value, expected) in PAIRING_ALPHABET.bytes().enumerate() {
            assert_eq!(symbol(u8::try_from(value).unwrap()), expected);
        }
    }

    #[test]
    fn generate_reads_5_bits_per_symbol() {
        assert_eq!(code_from([0; 5]).as_str(), "AAAAAAAA");
        assert_eq!(code_from([0xff; 5]).as_str(), "99999999");
        // 00000 00001 00010 ... : 0x00 0x44 0x32 0x14 0xc7 encodes 0,1,2,3,4,5,6,7.
        assert_eq!(
            code_from([0x00, 0x44, 0x32, 0x14, 0xc7]).as_str(),
            "ABCDEFGH"
        );
    }

    #[test]
    fn parse_normalizes_case_spaces_and_dashes() {
        let code = PairingCode::parse("abcd-efgh").unwrap();
        assert_eq!(code.as_str(), "ABCDEFGH");
        assert_eq!(code.display(), "ABCD-EFGH");
        assert_eq!(PairingCode::parse("  ab cd\t-ef-gh\n").unwrap(), code);
        assert_eq!(PairingCode::parse("ABCDEFGH").unwrap(), code);
    }

    #[test]
    fn parse_refuses_blank_input_with_a_precise_error() {
        for input in ["", "   ", "\t\n", "--", " - "] {
            assert_eq!(
                PairingCode::parse(input).err(),
                Some(Error::invalid("code", "must not be blank"))
            );
        }
    }

    #[test]
    fn parse_refuses_wrong_lengths_and_foreign_symbols_without_echoing_input() {
        for input in ["ABCDEFG", "ABCDEFGHJ", "ABCD-EFGH-J", "A"] {
            let reason = invalid_reason(PairingCode::parse(input));
            assert!(reason.contains("8 characters"), "{reason}");
            assert!(!reason.contains(input));
        }
        for input in [
            "ABCD-EFG0",
            "OBCDEFGH",
            "ABCDEFG1",
            "IBCDEFGH",
            "ABCD_EFGH",
            "ABCDÉFGH",
            "ABCD.EFGH",
        ] {
            let reason = invalid_reason(PairingCode::parse(input));
            assert!(reason.contains("alphabet"), "{reason}");
            assert!(!reason.contains(input));
        }
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let code = PairingCode::parse("ABCD-EFGH").unwrap();
        assert_eq!(format!("{code:?}"), "PairingCode(****)");
        let key = PairingKey::from_bytes([0x42; 32]);
        assert_eq!(format!("{key:?}"), "PairingKey(****)");
        let hash = key.hash(&code);
        assert_eq!(
            format!("{hash:?}"),
            format!("CodeHash({}…)", &hash.to_hex()[..8])
        );
    }

    #[test]
    fn hkdf_matches_rfc_5869() {
        // RFC 5869 test case 1 and test case 3 (empty salt and info), run through the same
        // crate and hash as `derive_from_master`.
        let hk = hkdf::Hkdf::<sha2::Sha256>::new(
            Some(&hex::decode("000102030405060708090a0b0c").unwrap()),
            &[0x0b; 22],
        );
        let mut okm = [0; 42];
        hk.expand(&hex::decode("f0f1f2f3f4f5f6f7f8f9").unwrap(), &mut okm)
            .unwrap();
        assert_eq!(
            hex::encode(okm),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
        );
        let hk = hkdf::Hkdf::<sha2::Sha256>::new(Some(&[]), &[0x0b; 22]);
        hk.expand(&[], &mut okm).unwrap();
        assert_eq!(
            hex::encode(okm),
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"
        );
    }

    #[test]
    fn key_derivation_and_code_derivation_match_independent_vectors() {
        // Python 3:
        //   prk = hmac.new(b"", bytes(range(32)), sha256).digest()
        //   key = hmac.new(prk, b"ownership/pairing-code-key/v1\x01", sha256).digest()
        let master: [u8; 32] = core::array::from_fn(|i| i as u8);
        let key = PairingKey::derive_from_master(&master);
        assert_eq!(
            hex::encode(key.as_bytes()),
            "f4778cbd05663e9c3a5c92b8605c3f376b7e6f2e121e8bb7b7f036cc79d27044"
        );
        //   mac = hmac.new(key, b"ownership/pairing-code/v1" + bytes(16), sha256).digest()
        //   n = int.from_bytes(mac[:5], "big"); symbols = 5-bit groups, high first
        //   hash = hmac.new(key, code.encode(), sha256).hexdigest()
        let seed = PairingSeed::from_bytes([0; 16]);
        let code = PairingCode::derive(&key, &seed);
        assert_eq!(code.as_str(), KNOWN_CODE);
        assert_eq!(key.hash(&code).to_hex(), KNOWN_CODE_HASH);
    }

    const KNOWN_CODE: &str = "H9CPDVCN";
    const KNOWN_CODE_HASH: &str =
        "98df8a6e9c8bafd5e27ef541a0ba0e74ba4722ebfdbf712b945ebd8afe192c61";

    #[test]
    fn a_budget_admits_its_size_at_once_then_one_per_period() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let user = Gcra::new(5, Duration::from_secs(900)).unwrap();
        let mut stored = None;
        for _ in 0..5 {
            assert_eq!(user.wait(stored, now), None);
            stored = Some(user.spend(stored, now).0);
        }
        assert_eq!(user.wait(stored, now), Some(Duration::from_secs(180)));
        let later = now + time::Duration::seconds(180);
        assert_eq!(user.wait(stored, later), None, "one back after a period");
        stored = Some(user.spend(stored, later).0);
        assert!(user.wait(stored, later).is_some());
    }

    #[test]
    fn the_failure_that_empties_a_budget_says_so() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let channel = Gcra::new(3, Duration::from_secs(600)).unwrap();
        let mut stored = None;
        let mut emptied = Vec::new();
        for _ in 0..6 {
            let (until, empty) = channel.spend(stored, now);
            emptied.push(empty);
            // A burn makes the budget whole again, as the use case does.
            stored = Some(if empty { now } else { until });
        }
        assert_eq!(emptied, vec![false, false, true, false, false, true]);
    }

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

    #[test]
    fn a_bound_account_resolves_only_while_its_owner_is_active() {
        let owner = OwnerId::parse("alice").unwrap();
        let mut auth = ChannelAuth {
            owner: owner.clone(),
            role: UserRole::Admin,
            status: UserStatus::Active,
        };
        assert_eq!(auth.identity(), Some(Identity::new(owner, UserRole::Admin)));
        auth.status = UserStatus::Suspended;
        assert_eq!(auth.identity(), None);
    }

    #[test]
    fn hex_forms_round_trip() {
        let seed = PairingSeed::from_bytes([9; 16]);
        assert_eq!(PairingSeed::from_hex(&seed.to_hex()).unwrap(), seed);
        assert!(PairingSeed::from_hex("zz").is_err());
        let hash = CodeHash::from_bytes([7; 32]);
        assert_eq!(CodeHash::from_hex(&hash.to_hex()).unwrap(), hash);
        assert_eq!(CodeHash::from_bytes(*hash.as_bytes()), hash);
        assert!(CodeHash::from_hex(&"0".repeat(63)).is_err());
    }

    fn noisy_display() -> impl Strategy<Value = ([u8; 5], Vec<(bool, u8)>)> {
        (
            any::<[u8; 5]>(),
            prop::collection::vec((any::<bool>(), 0_u8..6), 9),
        )
    }

    proptest! {
        #[test]
        fn generated_codes_use_only_the_alphabet(bytes in any::<[u8; 5]>()) {
            let code = code_from(bytes);
            prop_assert_eq!(code.as_str().len(), CODE_LEN);
            prop_assert!(code.as_str().chars().all(|c| PAIRING_ALPHABET.contains(c)));
        }

        #[test]
        fn normalization_is_idempotent(bytes in any::<[u8; 5]>()) {
            let code = code_from(bytes);
            prop_assert_eq!(&PairingCode::parse(&code.display()).unwrap(), &code);
            prop_assert_eq!(&PairingCode::parse(code.as_str()).unwrap(), &code);
            let again = PairingCode::parse(&code.display()).unwrap();
            prop_assert_eq!(PairingCode::parse(again.as_str()).unwrap(), again);
        }

        /// The display form with random case and random spaces and dashes inserted
        /// between (and around) symbols parses to the same code.
        #[test]
        fn case_spaces_and_dashes_do_not_matter((bytes, noise) in noisy_display()) {
            let code = code_from(bytes);
            let mut input = String::new();
            for (i, (lower, gap)) in noise.iter().enumerate() {
                input.push_str(match gap {
                    0 => "",
                    1 => " ",
                    2 => "-",
                    3 => " - ",
                    4 => "\t",
                    _ => "--",
                });
                if let Some(c) = code.as_str().chars().nth(i) {
                    input.push(if *lower { c.to_ascii_lowercase() } else { c });
                }
            }
            prop_assert_eq!(PairingCode::parse(&input).unwrap(), code);
        }

        #[test]
        fn any_symbol_outside_the_alphabet_is_refused(
            bytes in any::<[u8; 5]>(),
            position in 0..CODE_LEN,
            bad in any::<char>(),
        ) {
            let upper = bad.to_ascii_uppercase();
            prop_assume!(!(upper.is_ascii() && PAIRING_ALPHABET.contains(upper)));
            prop_assume!(!bad.is_ascii_whitespace() && bad != '-');
            let mut chars: Vec<char> = code_from(bytes).as_str().chars().collect();
            chars[position] = bad;
            let input: String = chars.into_iter().collect();
            prop_assert!(PairingCode::parse(&input).is_err());
        }

        #[test]
        fn derive_is_deterministic_and_seed_dependent(
            key in any::<[u8; 32]>(),
            a in any::<[u8; 16]>(),
            b in any::<[u8; 16]>(),
        ) {
            prop_assume!(a != b);
            let key = PairingKey::from_bytes(key);
            let (a, b) = (PairingSeed::from_bytes(a), PairingSeed::from_bytes(b));
            prop_assert_eq!(PairingCode::derive(&key, &a), PairingCode::derive(&key, &a));
            // 40-bit codes: a collision has probability 2^-40 per pair.
            prop_assert_ne!(PairingCode::derive(&key, &a), PairingCode::derive(&key, &b));
        }

        #[test]
        fn derive_depends_on_the_key(
            k1 in any::<[u8; 32]>(),
            k2 in any::<[u8; 32]>(),
            seed in any::<[u8; 16]>(),
        ) {
            prop_assume!(k1 != k2);
            let seed = PairingSeed::from_bytes(seed);
            prop_assert_ne!(
                PairingCode::derive(&PairingKey::from_bytes(k1), &seed),
                PairingCode::derive(&PairingKey::from_bytes(k2), &seed)
            );
        }

        #[test]
        fn hash_differs_under_a_different_key(
            k1 in any::<[u8; 32]>(),
            k2 in any::<[u8; 32]>(),
            bytes in any::<[u8; 5]>(),
        ) {
            prop_assume!(k1 != k2);
            let code = code_from(bytes);
            let (k1, k2) = (PairingKey::from_bytes(k1), PairingKey::from_bytes(k2));
            prop_assert_eq!(k1.hash(&code), k1.hash(&code));
            prop_assert_ne!(k1.hash(&code), k2.hash(&code));
        }

        #[test]
        fn hash_is_of_the_normalized_code(bytes in any::<[u8; 5]>(), key in any::<[u8; 32]>()) {
            let key = PairingKey::from_bytes(key);
            let code = code_from(bytes);
            let lower = code.display().to_lowercase();
            prop_assert_eq!(key.hash(&PairingCode::parse(&lower).unwrap()), key.hash(&code));
        }
    }
}
