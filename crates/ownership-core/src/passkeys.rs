//! The passkeys area: WebAuthn credentials a user registered to sign in to the console,
//! the port that keeps them and the use cases around them.
//!
//! Core does not speak WebAuthn: the HTTP layer runs the ceremonies (challenges,
//! signatures) and hands over what it verified: the credential id, the serialized
//! credential (public key and the rest, opaque here) and the authenticator's signature
//! counter. The rules live here: a label is short, a user keeps at most
//! [`MAX_PER_USER`] passkeys, only an active user's passkey signs in, a counter that does
//! not advance is a cloned authenticator and is refused, and every change is audited.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::authz::OwnerScope;
use crate::db::{self, Transactions, Tx};
use crate::error::{Error, Result};
use crate::identity::{Identity, UserStatus};
use crate::ids::OwnerId;
use crate::secrets::active_owner;
use crate::sessions::{SessionMethod, SessionRows, end_sessions_in};

/// Most passkeys one user may keep.
pub const MAX_PER_USER: u64 = 20;

/// Longest label, in characters.
pub const LABEL_MAX_CHARS: usize = 64;

/// Longest credential id, in base64url characters (WebAuthn allows 1023 bytes).
pub const CREDENTIAL_ID_MAX_CHARS: usize = 1364;

/// Longest serialized credential, in bytes.
pub const CREDENTIAL_MAX_BYTES: usize = 16 * 1024;

/// A WebAuthn credential id, as unpadded base64url text (how browsers and the store show
/// it). Made only by [`CredentialId::parse`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CredentialId(String);

impl CredentialId {
    /// Parses 1 to [`CREDENTIAL_ID_MAX_CHARS`] unpadded base64url characters.
    pub fn parse(raw: &str) -> Result<Self> {
        let ok = !raw.is_empty()
            && raw.len() <= CREDENTIAL_ID_MAX_CHARS
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            // A length of 1 mod 4 is no whole number of bytes.
            && raw.len() % 4 != 1;
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(Error::invalid(
                "credential_id",
                "must be a WebAuthn credential id in unpadded base64url",
            ))
        }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for CredentialId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A passkey label: 1 to [`LABEL_MAX_CHARS`] characters, no control characters, trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyLabel(String);

impl PasskeyLabel {
    /// Parses a label (surrounding whitespace is dropped).
    pub fn parse(raw: &str) -> Result<Self> {
        let label = raw.trim();
        if label.is_empty()
            || label.chars().count() > LABEL_MAX_CHARS
            || label.chars().any(char::is_control)
        {
            return Err(Error::invalid(
                "label",
                format!("must be 1 to {LABEL_MAX_CHARS} characters without control characters"),
            ));
        }
        Ok(Self(label.to_owned()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A stored passkey.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyRecord {
    /// The credential id.
    pub credential_id: CredentialId,
    /// Whose.
    pub owner_id: OwnerId,
    /// The user's name for it.
    pub label: PasskeyLabel,
    /// The verified credential as the WebAuthn library serialized it (public key,
    /// algorithm, flags); opaque to core.
    pub credential: String,
    /// The authenticator's signature counter at the last sign-in (0 if it keeps none).
    pub sign_count: u32,
    /// When registered.
    pub created_at: OffsetDateTime,
    /// When it last signed in.
    pub last_used_at: Option<OffsetDateTime>,
}

/// A passkey to register, as the registration ceremony verified it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPasskey {
    /// The credential id.
    pub credential_id: CredentialId,
    /// Its label.
    pub label: PasskeyLabel,
    /// The serialized credential.
    pub credential: String,
    /// The counter the authenticator reported at registration.
    pub sign_count: u32,
}

/// A verified assertion: the credential that signed, and what to store after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyUse {
    /// The credential that signed.
    pub credential_id: CredentialId,
    /// The user the ceremony found it under (checked again when it is recorded).
    pub owner_id: OwnerId,
    /// The serialized credential, updated by the ceremony (counter, backup state).
    pub credential: String,
    /// The counter the authenticator reported.
    pub sign_count: u32,
}

/// Whether `reported` may follow `stored`: an authenticator that keeps a counter must
/// report a larger one each time (an equal or smaller one means a cloned credential); one
/// that keeps none reports 0 every time.
pub fn counter_advances(stored: u32, reported: u32) -> bool {
    reported > stored || (stored == 0 && reported == 0)
}

/// The passkeys a user keeps.
#[async_trait]
pub trait PasskeyStore: Send + Sync {
    /// Registers a passkey for the scope's owner (who must be active). A credential id
    /// registered before, by anyone, is [`Error::Conflict`]; more than [`MAX_PER_USER`]
    /// is [`Error::Conflict`] too.
    async fn register_passkey(&self, scope: &OwnerScope, new: NewPasskey) -> Result<PasskeyRecord>;
    /// The owner's passkeys, newest first.
    async fn list_passkeys(&self, scope: &OwnerScope) -> Result<Vec<PasskeyRecord>>;
    /// Removes one of the owner's passkeys ([`Error::NotFound`] if it is not theirs), and
    /// ends the owner's console sessions started with a passkey in the same transaction
    /// (a session does not record which passkey started it, so all of them end).
    async fn remove_passkey(&self, scope: &OwnerScope, id: &CredentialId) -> Result<()>;
    /// The passkey with this credential id, if its owner is active: what a sign-in
    /// verifies an assertion against. `None` for anything else.
    async fn passkey_for_sign_in(&self, id: &CredentialId) -> Result<Option<PasskeyRecord>>;
    /// Records a verified sign-in: the passkey must still exist under the same owner,
    /// who must still be active, and its counter must advance
    /// ([`Error::Unauthenticated`] otherwise). Returns who signed in.
    async fn record_passkey_sign_in(&self, used: PasskeyUse) -> Result<Identity>;
}

/// A passkey row to insert.
#[derive(Debug, Clone, Copy)]
pub struct PasskeyRow<'a> {
    /// Whose.
    pub owner: &'a OwnerId,
    /// What.
    pub new: &'a NewPasskey,
    /// When registered.
    pub created_at: OffsetDateTime,
}

/// The passkey rows a transaction reads and writes: SQL and row mapping, no decisions.
#[async_trait]
pub trait PasskeyRows: Tx {
    /// Inserts a passkey. A taken credential id is [`Error::Conflict`].
    async fn insert_passkey(&mut self, row: PasskeyRow<'_>) -> Result<()>;
    /// The passkey with this credential id, whoever owns it.
    async fn passkey(&mut self, id: &CredentialId) -> Result<Option<PasskeyRecord>>;
    /// The owner's passkeys, newest first.
    async fn passkeys_of(&mut self, owner: &OwnerId) -> Result<Vec<PasskeyRecord>>;
    /// How many passkeys the owner has.
    async fn passkey_count(&mut self, owner: &OwnerId) -> Result<u64>;
    /// Stores the credential and counter after a sign-in, and when it happened.
    async fn update_passkey_use(
        &mut self,
        id: &CredentialId,
        credential: &str,
        sign_count: u32,
        at: OffsetDateTime,
    ) -> Result<()>;
    /// Deletes the owner's passkey; false if they have none with this id.
    async fn delete_passkey(&mut self, owner: &OwnerId, id: &CredentialId) -> Result<bool>;
}

/// The owner's identity if they exist and are active, as read in `tx`.
async fn active_identity<T: Tx + ?Sized>(tx: &mut T, owner: &OwnerId) -> Result<Option<Identity>> {
    Ok(tx
        .actor_state(owner)
        .await?
        .filter(|s| s.status == UserStatus::Active)
        .map(|s| Identity::new(owner.clone(), s.role)))
}

/// The audit events of the passkey use cases (target: the credential id; details never
/// hold the credential).
pub mod events {
    use serde_json::json;
    use time::OffsetDateTime;

    use super::{CredentialId, PasskeyLabel};
    use crate::audit::{AuditAction, NewAuditEvent};
    use crate::authz::Actor;
    use crate::ids::OwnerId;

    fn event(
        at: OffsetDateTime,
        actor: &Actor,
        owner: &OwnerId,
        action: AuditAction,
        id: &CredentialId,
        details: &serde_json::Value,
    ) -> NewAuditEvent {
        NewAuditEvent::new(
            at,
            actor.clone(),
            Some(owner.clone()),
            action,
            id.as_str(),
            details,
        )
    }

    /// `passkey.registered` (details: the label).
    pub fn registered(
        at: OffsetDateTime,
        actor: &Actor,
        owner: &OwnerId,
        id: &CredentialId,
        label: &PasskeyLabel,
    ) -> NewAuditEvent {
        let details = json!({"label": label.as_str()});
        event(
            at,
            actor,
            owner,
            AuditAction::PasskeyRegistered,
            id,
            &details,
        )
    }

    /// `passkey.removed` (details: how many passkey sessions it ended).
    pub fn removed(
        at: OffsetDateTime,
        actor: &Actor,
        owner: &OwnerId,
        id: &CredentialId,
        sessions_ended: u64,
    ) -> NewAuditEvent {
        event(
            at,
            actor,
            owner,
            AuditAction::PasskeyRemoved,
            id,
            &json!({"sessions_ended": sessions_ended}),
        )
    }

    /// `passkey.signed_in`, by the owner themself.
    pub fn signed_in(at: OffsetDateTime, owner: &OwnerId, id: &CredentialId) -> NewAuditEvent {
        let actor = Actor::User(owner.clone());
        event(
            at,
            &actor,
            owner,
            AuditAction::PasskeySignedIn,
            id,
            &json!({}),
        )
    }
}

/// Every database whose transactions have [`PasskeyRows`] keeps passkeys: each use case
/// once.
#[async_trait]
impl<D> PasskeyStore for D
where
    D: Transactions,
    D::Tx: PasskeyRows + SessionRows,
{
    async fn register_passkey(&self, scope: &OwnerScope, new: NewPasskey) -> Result<PasskeyRecord> {
        if new.credential.is_empty() || new.credential.len() > CREDENTIAL_MAX_BYTES {
            return Err(Error::invalid(
                "credential",
                format!("must be 1 to {CREDENTIAL_MAX_BYTES} bytes"),
            ));
        }
        let scope = scope.clone();
        db::write(self, move |tx| {
            Box::pin(async move {
                let now = tx.now();
                let owner = active_owner(tx, &scope).await?;
                if tx.passkey_count(owner).await? >= MAX_PER_USER {
                    return Err(Error::Conflict(format!(
                        "a user keeps at most {MAX_PER_USER} passkeys; remove one first"
                    )));
                }
                if tx.passkey(&new.credential_id).await?.is_some() {
                    return Err(Error::Conflict("this passkey is already registered".into()));
                }
                tx.insert_passkey(PasskeyRow {
                    owner,
                    new: &new,
                    created_at: now,
                })
                .await?;
                tx.append(events::registered(
                    now,
                    scope.actor(),
                    owner,
                    &new.credential_id,
                    &new.label,
                ))
                .await?;
                Ok(PasskeyRecord {
                    credential_id: new.credential_id,
                    owner_id: owner.clone(),
                    label: new.label,
                    credential: new.credential,
                    sign_count: new.sign_count,
                    created_at: now,
                    last_used_at: None,
                })
            })
        })
        .await
    }

    async fn list_passkeys(&self, scope: &OwnerScope) -> Result<Vec<PasskeyRecord>> {
        let owner = scope.owner().clone();
        self.read(move |tx| Box::pin(async move { tx.passkeys_of(&owner).await }))
            .await
    }

    async fn remove_passkey(&self, scope: &OwnerScope, id: &CredentialId) -> Result<()> {
        let (scope, id) = (scope.clone(), id.clone());
        db::write(self, move |tx| {
            Box::pin(async move {
                let now = tx.now();
                let owner = scope.owner();
                if !tx.delete_passkey(owner, &id).await? {
                    return Err(Error::NotFound);
                }
                let ended = end_sessions_in(tx, owner, Some(SessionMethod::Passkey)).await?;
                tx.append(events::removed(now, scope.actor(), owner, &id, ended))
                    .await
            })
        })
        .await
    }

    async fn passkey_for_sign_in(&self, id: &CredentialId) -> Result<Option<PasskeyRecord>> {
        let id = id.clone();
        self.read(move |tx| {
            Box::pin(async move {
                let Some(record) = tx.passkey(&id).await? else {
                    return Ok(None);
                };
                Ok(active_identity(tx, &record.owner_id).await?.map(|_| record))
            })
        })
        .await
    }

    async fn record_passkey_sign_in(&self, used: PasskeyUse) -> Result<Identity> {
        if used.credential.is_empty() || used.credential.len() > CREDENTIAL_MAX_BYTES {
            return Err(Error::Unauthenticated);
        }
        db::write(self, move |tx| {
            Box::pin(async move {
                let now = tx.now();
                let stored = tx
                    .passkey(&used.credential_id)
                    .await?
                    .filter(|p| p.owner_id == used.owner_id)
                    .ok_or(Error::Unauthenticated)?;
                let identity = active_identity(tx, &stored.owner_id)
                    .await?
                    .ok_or(Error::Unauthenticated)?;
                if !counter_advances(stored.sign_count, used.sign_count) {
                    return Err(Error::Unauthenticated);
                }
                tx.update_passkey_use(&used.credential_id, &used.credential, used.sign_count, now)
                    .await?;
                tx.append(events::signed_in(
                    now,
                    identity.owner_id(),
                    &used.credential_id,
                ))
                .await?;
                Ok(identity)
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_ids_are_unpadded_base64url() {
        assert!(CredentialId::parse("AAAA").is_ok());
        assert!(CredentialId::parse("q83vEjRWeJA-_w").is_ok());
        for bad in ["", "AAAA=", "a b", "A", "AAAAA", "ü"] {
            assert!(CredentialId::parse(bad).is_err(), "{bad:?}");
        }
        assert!(CredentialId::parse(&"A".repeat(CREDENTIAL_ID_MAX_CHARS + 1)).is_err());
    }

    #[test]
    fn labels_are_short_printable_and_trimmed() {
        assert_eq!(PasskeyLabel::parse("  laptop ").unwrap().as_str(), "laptop");
        assert!(PasskeyLabel::parse("   ").is_err());
        assert!(PasskeyLabel::parse("a\u{7}b").is_err());
        assert!(PasskeyLabel::parse(&"é".repeat(LABEL_MAX_CHARS)).is_ok());
        assert!(PasskeyLabel::parse(&"é".repeat(LABEL_MAX_CHARS + 1)).is_err());
    }

    #[test]
    fn counters_must_advance_unless_never_kept() {
        assert!(counter_advances(0, 0));
        assert!(counter_advances(0, 1));
        assert!(counter_advances(5, 6));
        assert!(!counter_advances(5, 5));
        assert!(!counter_advances(5, 4));
        assert!(!counter_advances(1, 0));
    }
}
