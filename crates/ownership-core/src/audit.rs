//! The audit vocabulary and its hash chain.
//!
//! Every mutation appends an event in the same transaction as the change. Each event
//! stores the hash of the one before it:
//! `hash = SHA-256(prev_hash ‖ canonical bytes of the event)`, so editing or deleting any
//! row breaks every hash after it and [`verify_chain`] finds the first broken row.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::authz::Actor;
use crate::authz::{AdminScope, OwnerScope};
use crate::error::{Error, Result};
use crate::ids::OwnerId;

macro_rules! actions {
    ($($(#[$doc:meta])* $variant:ident => $name:literal,)*) => {
        /// What happened. The wire and storage name is the dotted string.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "&'static str")]
        #[non_exhaustive]
        pub enum AuditAction {
            $($(#[$doc])* $variant,)*
        }

        impl AuditAction {
            /// Every action.
            pub const ALL: &'static [AuditAction] = &[$(AuditAction::$variant,)*];

            /// The dotted name (`token.revoked`).
            pub fn as_str(self) -> &'static str {
                match self {
                    $(AuditAction::$variant => $name,)*
                }
            }
        }

        impl FromStr for AuditAction {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                match s {
                    $($name => Ok(AuditAction::$variant),)*
                    _ => Err(Error::invalid("action", "unknown audit action")),
                }
            }
        }
    };
}

actions! {
    /// The first Owner was created with the bootstrap secret or at first start.
    OwnerBootstrapped => "owner.bootstrapped",
    /// A user was created.
    UserCreated => "user.created",
    /// A user's role changed.
    UserRoleChanged => "user.role_changed",
    /// A user was suspended.
    UserSuspended => "user.suspended",
    /// A suspended user was resumed.
    UserResumed => "user.resumed",
    /// A user was deleted (tokens revoked, identities removed, data key destroyed).
    UserDeleted => "user.deleted",
    /// A token was issued.
    TokenIssued => "token.issued",
    /// A token was rotated.
    TokenRotated => "token.rotated",
    /// A token was revoked.
    TokenRevoked => "token.revoked",
    /// A token was revoked because its value was reported leaked (by whoever held it, or
    /// by a secret scanner).
    TokenRevokedAsLeaked => "token.revoked_as_leaked",
    /// A legacy token was installed or replaced.
    LegacyTokenInstalled => "token.legacy_installed",
    /// A token was provisioned from a static table.
    TokenProvisioned => "token.provisioned",
    /// A pairing code was issued to a channel sender.
    PairingRequested => "pairing.requested",
    /// A pairing code was redeemed or approved, binding a chat account.
    PairingApproved => "pairing.approved",
    /// Every pending code of a channel was burned after its failure budget ran out.
    PairingBurned => "pairing.burned",
    /// A chat account was unlinked.
    IdentityUnlinked => "identity.unlinked",
    /// A secret was written.
    SecretPut => "secret.put",
    /// A secret was deleted.
    SecretDeleted => "secret.deleted",
    /// Data keys were rewrapped under a new master key version.
    SecretsRewrapped => "secrets.rewrapped",
    /// A resource was registered.
    ResourceCreated => "resource.created",
    /// A resource was revoked.
    ResourceRevoked => "resource.revoked",
    /// A webhook endpoint was set.
    WebhookSet => "webhook.set",
    /// A webhook endpoint was removed.
    WebhookDeleted => "webhook.deleted",
    /// A webhook signing secret was rotated.
    WebhookSecretRotated => "webhook.secret_rotated",
    /// A user registered a passkey for console sign-in.
    PasskeyRegistered => "passkey.registered",
    /// A user removed one of their passkeys.
    PasskeyRemoved => "passkey.removed",
    /// A user signed in to the console with a passkey.
    PasskeySignedIn => "passkey.signed_in",
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
impl TryFrom<String> for AuditAction {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}
impl From<AuditAction> for &'static str {
    fn from(a: AuditAction) -> Self {
        a.as_str()
    }
}

/// A SHA-256 link of the chain.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChainHash([u8; 32]);

impl ChainHash {
    /// The `prev_hash` of the first event.
    pub const GENESIS: ChainHash = ChainHash([0; 32]);

    /// Wraps raw bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex digits.
    pub fn from_hex(raw: &str) -> Result<Self> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(raw, &mut out)
            .map_err(|_| Error::Integrity("audit hash is not 64 hex digits".into()))?;
        Ok(Self(out))
    }
}

impl fmt::Debug for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChainHash({})", self.to_hex())
    }
}

impl Serialize for ChainHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

/// An event about to be appended. Its time is truncated to microseconds (what both stores
/// keep) so the hash is computed over exactly what is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditEvent {
    at: OffsetDateTime,
    /// Who acted.
    pub actor: Actor,
    /// Whose object it was, when it belongs to one owner.
    pub owner: Option<OwnerId>,
    /// What happened.
    pub action: AuditAction,
    /// Which object (a token id, `telegram/12345`, a user id), never a secret.
    pub target: String,
    /// Compact JSON with further detail (never a secret value).
    pub details: String,
}

impl NewAuditEvent {
    /// A new event. `details` is serialized to compact JSON once, here; the chain hashes
    /// that exact text.
    pub fn new(
        at: OffsetDateTime,
        actor: Actor,
        owner: Option<OwnerId>,
        action: AuditAction,
        target: impl Into<String>,
        details: &serde_json::Value,
    ) -> Self {
        Self {
            at: truncate_to_micros(at),
            actor,
            owner,
            action,
            target: target.into(),
            details: details.to_string(),
        }
    }

    /// When it happened (UTC, microsecond precision).
    pub fn at(&self) -> OffsetDateTime {
        self.at
    }

    /// Links the event into the chain after `prev`, as number `seq`.
    pub fn link(self, seq: i64, prev: ChainHash) -> AuditEvent {
        let hash = chain_hash(&prev, seq, &self);
        AuditEvent {
            seq,
            at: self.at,
            actor: self.actor,
            owner: self.owner,
            action: self.action,
            target: self.target,
            details: self.details,
            prev_hash: prev,
            hash,
        }
    }
}

/// A stored audit event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEvent {
    /// Position in the chain, from 1.
    pub seq: i64,
    /// When it happened.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Who acted.
    pub actor: Actor,
    /// Whose object it was.
    pub owner: Option<OwnerId>,
    /// What happened.
    pub action: AuditAction,
    /// Which object.
    pub target: String,
    /// Compact JSON detail.
    pub details: String,
    /// The hash of the event before (genesis for the first).
    pub prev_hash: ChainHash,
    /// This event's hash.
    pub hash: ChainHash,
}

impl AuditEvent {
    /// The event's content without its links, to recompute its hash.
    pub fn content(&self) -> NewAuditEvent {
        NewAuditEvent {
            at: self.at,
            actor: self.actor.clone(),
            owner: self.owner.clone(),
            action: self.action,
            target: self.target.clone(),
            details: self.details.clone(),
        }
    }
}

/// Drops sub-microsecond precision and normalizes to UTC.
pub fn truncate_to_micros(at: OffsetDateTime) -> OffsetDateTime {
    let at = at.to_offset(time::UtcOffset::UTC);
    let nanos = at.nanosecond();
    at.replace_nanosecond(nanos - nanos % 1_000).unwrap_or(at)
}

fn push_field(out: &mut Vec<u8>, field: &[u8]) {
    out.extend_from_slice(&(field.len() as u64).to_be_bytes());
    out.extend_from_slice(field);
}

/// The canonical bytes of an event: a version tag and each field length-prefixed (so no
/// two different events share an encoding).
pub fn canonical_bytes(seq: i64, event: &NewAuditEvent) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + event.details.len());
    push_field(&mut out, b"ownership-audit-v1");
    push_field(&mut out, &seq.to_be_bytes());
    let at = event.at.unix_timestamp_nanos() / 1_000;
    push_field(&mut out, &at.to_be_bytes());
    push_field(&mut out, event.actor.to_string().as_bytes());
    push_field(
        &mut out,
        event.owner.as_ref().map_or("", |o| o.as_str()).as_bytes(),
    );
    push_field(&mut out, event.action.as_str().as_bytes());
    push_field(&mut out, event.target.as_bytes());
    push_field(&mut out, event.details.as_bytes());
    out
}

/// `SHA-256(prev_hash ‖ canonical bytes of the event)`.
pub fn chain_hash(prev: &ChainHash, seq: i64, event: &NewAuditEvent) -> ChainHash {
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(canonical_bytes(seq, event));
    ChainHash(h.finalize().into())
}

/// The result of checking a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ChainVerdict {
    /// Every link holds.
    Intact {
        /// How many events were checked.
        events: u64,
    },
    /// The first event whose link does not hold.
    Broken {
        /// Its sequence number (or the number expected where a row is missing).
        seq: i64,
        /// What is wrong.
        reason: String,
    },
}

impl ChainVerdict {
    /// Whether the chain is intact.
    pub fn is_intact(&self) -> bool {
        matches!(self, Self::Intact { .. })
    }
}

/// Incremental verifier: feed events in sequence order, then [`ChainVerifier::finish`].
/// Lets a store check a long chain page by page.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    prev: ChainHash,
    next_seq: i64,
    broken: Option<(i64, String)>,
    count: u64,
}

/// Where a verified chain ended: its last event and how many events it holds. A later
/// check can resume from it ([`ChainVerifier::resume`]) instead of walking everything
/// again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainCheckpoint {
    /// The last verified event's `seq`.
    pub seq: i64,
    /// Its hash.
    pub hash: ChainHash,
    /// How many events the verified chain holds.
    pub events: u64,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self {
            prev: ChainHash::GENESIS,
            next_seq: 1,
            broken: None,
            count: 0,
        }
    }
}

impl ChainVerifier {
    /// A verifier that continues after `checkpoint`, trusting what it covers.
    pub fn resume(checkpoint: ChainCheckpoint) -> Self {
        Self {
            prev: checkpoint.hash,
            next_seq: checkpoint.seq.saturating_add(1),
            broken: None,
            count: checkpoint.events,
        }
    }

    /// Checks the next event.
    pub fn push(&mut self, event: &AuditEvent) {
        if self.broken.is_some() {
            return;
        }
        let problem = if event.seq != self.next_seq {
            Some(format!(
                "expected event {}, found {}",
                self.next_seq, event.seq
            ))
        } else if event.prev_hash != self.prev {
            Some("previous-hash link does not match".to_owned())
        } else if chain_hash(&self.prev, event.seq, &event.content()) != event.hash {
            Some("content does not match its hash".to_owned())
        } else {
            None
        };
        match problem {
            Some(reason) => self.broken = Some((self.next_seq, reason)),
            None => {
                self.prev = event.hash;
                self.next_seq += 1;
                self.count += 1;
            }
        }
    }

    /// The verdict over everything pushed.
    pub fn finish(self) -> ChainVerdict {
        match self.broken {
            Some((seq, reason)) => ChainVerdict::Broken { seq, reason },
            None => ChainVerdict::Intact { events: self.count },
        }
    }
}

/// Verifies a whole chain, in sequence order.
pub fn verify_chain<'a>(events: impl IntoIterator<Item = &'a AuditEvent>) -> ChainVerdict {
    let mut v = ChainVerifier::default();
    for e in events {
        v.push(e);
    }
    v.finish()
}

/// The cursor of a page of audit events: the `seq` of the last event of the previous page
/// (sequences start at 1). `None` when there is no cursor (the newest page); anything that
/// is not a positive integer is refused, on every store alike.
pub fn parse_cursor(after: Option<&str>) -> Result<Option<i64>> {
    after
        .map(|raw| {
            raw.parse::<i64>()
                .ok()
                .filter(|seq| *seq > 0)
                .ok_or_else(|| Error::invalid("cursor", "not a cursor from a previous page"))
        })
        .transpose()
}

/// Formats a time the way the wire and the stores write it: RFC 3339, UTC.
pub fn rfc3339(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_else(|_| at.unix_timestamp().to_string())
}

/// Which events to read.
#[derive(Debug, Clone)]
pub enum AuditFilter<'a> {
    /// One owner's events.
    Owner(&'a OwnerScope),
    /// Everyone's, for admins.
    All(&'a AdminScope),
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn cursors_are_positive_sequence_numbers() {
        assert_eq!(parse_cursor(None).ok(), Some(None));
        assert_eq!(parse_cursor(Some("42")).ok(), Some(Some(42)));
        for bad in ["x", "0", "-1", "", " 1", "1.5"] {
            assert!(
                matches!(
                    parse_cursor(Some(bad)),
                    Err(Error::Invalid {
                        field: "cursor",
                        ..
                    })
                ),
                "{bad:?}"
            );
        }
    }

    fn event(i: u32) -> NewAuditEvent {
        NewAuditEvent::new(
            OffsetDateTime::from_unix_timestamp(1_700_000_000 + i64::from(i)).unwrap(),
            Actor::User(OwnerId::parse("alice").unwrap()),
            Some(OwnerId::parse("alice").unwrap()),
            AuditAction::TokenIssued,
            format!("tok_{i}"),
            &serde_json::json!({"i": i}),
        )
    }

    fn chain(n: u32) -> Vec<AuditEvent> {
        let mut prev = ChainHash::GENESIS;
        (1..=n)
            .map(|i| {
                let e = event(i).link(i64::from(i), prev);
                prev = e.hash;
                e
            })
            .collect()
    }

    #[test]
    fn actions_roundtrip() {
        for a in AuditAction::ALL {
            assert_eq!(a.as_str().parse::<AuditAction>().unwrap(), *a);
        }
    }

    #[test]
    fn actor_roundtrip() {
        for a in [
            Actor::User(OwnerId::parse("bob").unwrap()),
            Actor::Operator("root".into()),
            Actor::System,
            Actor::Bootstrap,
        ] {
            assert_eq!(a.to_string().parse::<Actor>().unwrap(), a);
        }
    }

    #[test]
    fn an_empty_chain_is_intact() {
        assert_eq!(verify_chain(&[]), ChainVerdict::Intact { events: 0 });
    }

    proptest! {
        #[test]
        fn an_untouched_chain_verifies(n in 1u32..40) {
            prop_assert_eq!(verify_chain(&chain(n)), ChainVerdict::Intact { events: u64::from(n) });
        }

        #[test]
        fn any_edit_is_found_at_its_row(n in 2u32..30, pick in any::<prop::sample::Index>(), what in 0u8..4) {
            let mut c = chain(n);
            let i = pick.index(c.len());
            match what {
                0 => c[i].target.push('x'),
                1 => c[i].details = "{}".into(),
                2 => c[i].owner = None,
                _ => c[i].at += time::Duration::seconds(1),
            }
            let seq = c[i].seq;
            let verdict = verify_chain(&c);
            prop_assert!(matches!(verdict, ChainVerdict::Broken { seq: s, .. } if s == seq), "{:?}", verdict);
        }

        #[test]
        fn a_deleted_row_is_found(n in 2u32..30, pick in any::<prop::sample::Index>()) {
            let mut c = chain(n);
            let i = pick.index(c.len());
            c.remove(i);
            let expected = i64::try_from(i).unwrap() + 1;
            if usize::try_from(n).unwrap() - 1 == i {
                // Dropping the newest row leaves a valid shorter chain; stores guard the
                // head separately by comparing with the recorded head.
                prop_assert!(verify_chain(&c).is_intact());
            } else {
                let verdict = verify_chain(&c);
                prop_assert!(matches!(verdict, ChainVerdict::Broken { seq, .. } if seq == expected), "{:?}", verdict);
            }
        }
    }
}
