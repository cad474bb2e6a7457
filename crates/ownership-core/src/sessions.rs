//! The console sessions area: signed-in browsers, kept in the store so every server
//! process sees the same ones.
//!
//! A session is a random 256-bit secret the browser keeps in a cookie. The store keeps
//! only its SHA-256 digest ([`SessionKey`]) with the signed-in user, how they signed in
//! ([`SessionMethod`]), the token they signed in with when that is how (its digest and
//! id, never its value), when it started, when it was last seen and when it ends at the
//! latest. Its CSRF token is derived from the secret ([`csrf_of`]), so nothing the store
//! holds lets anyone forge a request.
//!
//! The rules, in [`SessionStore`] over [`SessionRows`]:
//! - a session is live while its user exists and is active, it was seen within the idle
//!   timeout, and its absolute end has not passed ([`SessionState::decide`]);
//! - a user has at most [`SessionPolicy::per_user`] sessions: starting one more ends the
//!   oldest;
//! - its last-seen time is written at most once per [`SessionPolicy::touch_every`] (a
//!   request within that of the last write writes nothing), so the idle timeout is
//!   exact to within that interval;
//! - suspending a user ends their sessions in the same transaction, and deleting them
//!   removes the rows with the user; a session started with a token also ends when that
//!   token stops authenticating (the caller checks the token on every request through
//!   the token cache, which revocation invalidates in every process).

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::RandomSource;
use crate::authz::ActorState;
use crate::db::{self, Transactions, Tx};
use crate::error::{Error, Result};
use crate::events;
use crate::identity::{Identity, UserStatus};
use crate::ids::{OwnerId, TokenId};
use crate::token::TokenDigest;

crate::token::secret_digest!(
    /// The SHA-256 digest of a session secret: the only form in which the store keeps a
    /// session. Equality is constant-time; `Debug` shows the first 4 bytes in hex.
    SessionKey,
    "session_key"
);

/// Longest session secret accepted from a cookie (ours are 43 characters).
const SECRET_MAX_BYTES: usize = 64;

impl SessionKey {
    /// The key of the secret a cookie carried; `None` for a value that cannot be one of
    /// ours (empty or too long).
    pub fn of_secret(secret: &str) -> Option<Self> {
        if secret.is_empty() || secret.len() > SECRET_MAX_BYTES {
            return None;
        }
        Some(Self(Sha256::digest(secret.as_bytes()).into()))
    }
}

/// The CSRF token of the session whose secret is `secret`: SHA-256 over a fixed label and
/// the secret, base64url. Every process derives the same one; without the secret (which
/// only the browser holds) it cannot be computed, and it differs from the session's key.
pub fn csrf_of(secret: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"ownership console csrf\0");
    h.update(secret.as_bytes());
    URL_SAFE_NO_PAD.encode(h.finalize())
}

/// How a session was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionMethod {
    /// By pasting a `manage` token; the session lives only as long as that token.
    Token,
    /// With an OpenID Connect provider.
    Oidc,
    /// With a passkey.
    Passkey,
}

impl SessionMethod {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::Oidc => "oidc",
            Self::Passkey => "passkey",
        }
    }

    /// Parses a stored name.
    pub fn parse(raw: &str) -> Result<Self> {
        match raw {
            "token" => Ok(Self::Token),
            "oidc" => Ok(Self::Oidc),
            "passkey" => Ok(Self::Passkey),
            other => Err(Error::Integrity(format!(
                "unknown session method `{other}`"
            ))),
        }
    }
}

/// The token a session was started with: its digest and public id, never its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionToken {
    /// SHA-256 of the token.
    pub digest: TokenDigest,
    /// Its public id.
    pub id: TokenId,
}

/// A stored session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// The signed-in user.
    pub owner: OwnerId,
    /// How they signed in.
    pub method: SessionMethod,
    /// The token they signed in with ([`SessionMethod::Token`] only).
    pub token: Option<SessionToken>,
    /// When it started.
    pub created_at: OffsetDateTime,
    /// When a request last used it (written at most once per
    /// [`SessionPolicy::touch_every`]).
    pub last_seen_at: OffsetDateTime,
    /// When it ends, however active.
    pub expires_at: OffsetDateTime,
}

/// How long sessions live and how many a user keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    /// Ends after this long without a request.
    pub idle: Duration,
    /// Ends this long after sign-in, however active.
    pub lifetime: Duration,
    /// At most this many open sessions per user; starting another ends the oldest.
    pub per_user: u32,
    /// The last-seen time is written at most this often per session.
    pub touch_every: Duration,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(30 * 60),
            lifetime: Duration::from_secs(12 * 3600),
            per_user: 10,
            touch_every: Duration::from_secs(60),
        }
    }
}

impl SessionPolicy {
    /// Checks the operator's values: every duration positive, the touch interval shorter
    /// than the idle timeout, the idle timeout no longer than the lifetime, and at least
    /// one session per user.
    pub fn validate(&self) -> Result<()> {
        if self.idle.is_zero() || self.lifetime.is_zero() || self.touch_every.is_zero() {
            return Err(Error::invalid("sessions", "durations must be positive"));
        }
        if self.idle > self.lifetime {
            return Err(Error::invalid(
                "sessions",
                "the idle timeout must not exceed the lifetime",
            ));
        }
        if self.touch_every >= self.idle {
            return Err(Error::invalid(
                "sessions",
                "the last-seen write interval must be shorter than the idle timeout",
            ));
        }
        if self.per_user == 0 {
            return Err(Error::invalid("sessions", "per_user must be at least 1"));
        }
        Ok(())
    }
}

/// A session as read, with its user's account as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionState {
    /// The session.
    pub record: SessionRecord,
    /// Its user's role and status now (`None`: the user is gone).
    pub user: Option<ActorState>,
}

/// What [`SessionState::decide`] says about a session at a given time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionVerdict {
    /// Live; `touch` says whether its last-seen time is due to be written.
    Live {
        /// The signed-in user as they are now.
        identity: Identity,
        /// Whether to write the last-seen time.
        touch: bool,
    },
    /// Over (idle, expired, or its user suspended or gone): end it.
    Ended,
}

fn span(d: Duration) -> time::Duration {
    time::Duration::try_from(d).unwrap_or(time::Duration::MAX)
}

impl SessionState {
    /// The one rule of "is this session live at `now`".
    pub fn decide(&self, now: OffsetDateTime, policy: &SessionPolicy) -> SessionVerdict {
        let Some(user) = &self.user else {
            return SessionVerdict::Ended;
        };
        let r = &self.record;
        let idle_ok = now < r.last_seen_at + span(policy.idle);
        let life_ok = now < r.expires_at;
        if user.status != UserStatus::Active || !idle_ok || !life_ok {
            return SessionVerdict::Ended;
        }
        SessionVerdict::Live {
            identity: Identity::new(r.owner.clone(), user.role),
            touch: now >= r.last_seen_at + span(policy.touch_every),
        }
    }
}

/// A live session, as a request sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveSession {
    /// Its key.
    pub key: SessionKey,
    /// The stored row.
    pub record: SessionRecord,
    /// The signed-in user as they are now.
    pub identity: Identity,
}

/// A session just started: the secret for the cookie (shown to nobody else, kept
/// nowhere) and its key.
pub struct StartedSession {
    /// The cookie value.
    pub secret: String,
    /// Its key (the digest of the secret).
    pub key: SessionKey,
}

impl std::fmt::Debug for StartedSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StartedSession")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// The session rows a transaction reads and writes: SQL and row mapping, no decisions.
#[async_trait]
pub trait SessionRows: Tx {
    /// Inserts a session. A taken key is [`Error::Conflict`].
    async fn insert_session(&mut self, key: &SessionKey, row: &SessionRecord) -> Result<()>;
    /// The session with this key.
    async fn session(&mut self, key: &SessionKey) -> Result<Option<SessionRecord>>;
    /// The keys of the user's sessions, oldest first.
    async fn session_keys_of(&mut self, owner: &OwnerId) -> Result<Vec<SessionKey>>;
    /// Deletes one session; false if there was none.
    async fn delete_session(&mut self, key: &SessionKey) -> Result<bool>;
    /// Deletes the user's sessions (of one method, or all); how many.
    async fn delete_sessions_of(
        &mut self,
        owner: &OwnerId,
        method: Option<SessionMethod>,
    ) -> Result<u64>;
    /// Sets a session's last-seen time.
    async fn touch_session(&mut self, key: &SessionKey, at: OffsetDateTime) -> Result<()>;
    /// Binds a session to another token (the replacement of its own).
    async fn rebind_session(&mut self, key: &SessionKey, token: &SessionToken) -> Result<()>;
    /// Deletes every session whose end (absolute, or idle since `idle_before`) has passed;
    /// how many.
    async fn delete_stale_sessions(
        &mut self,
        now: OffsetDateTime,
        idle_before: OffsetDateTime,
    ) -> Result<u64>;
}

/// Ends every session of `owner` in this transaction (suspension, unlinking): a helper the
/// other areas' use cases call.
pub async fn end_sessions_in<T: SessionRows + ?Sized>(
    tx: &mut T,
    owner: &OwnerId,
    method: Option<SessionMethod>,
) -> Result<u64> {
    tx.delete_sessions_of(owner, method).await
}

/// Console sessions kept in the store.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Starts a session for `owner`, who has just proved who they are by `method`
    /// (`token` is the token they signed in with, for [`SessionMethod::Token`]). The
    /// user must exist and be active. Ends the user's oldest sessions beyond
    /// [`SessionPolicy::per_user`] and audits the sign-in. The secret is drawn from `rng`.
    async fn start_session(
        &self,
        owner: &OwnerId,
        method: SessionMethod,
        token: Option<SessionToken>,
        policy: &SessionPolicy,
        rng: &mut (dyn RandomSource + Send),
    ) -> Result<StartedSession>;

    /// The live session with this key, writing its last-seen time when due; a session
    /// that is over is deleted and `None` comes back.
    async fn live_session(
        &self,
        key: &SessionKey,
        policy: &SessionPolicy,
    ) -> Result<Option<LiveSession>>;

    /// Ends a session (sign-out, or its token stopped authenticating).
    async fn end_session(&self, key: &SessionKey) -> Result<()>;

    /// Binds a session to the replacement of its own token (the user rotated it).
    async fn rebind_session(&self, key: &SessionKey, token: SessionToken) -> Result<()>;

    /// Deletes the sessions that are over; how many.
    async fn purge_sessions(&self, policy: &SessionPolicy) -> Result<u64>;
}

/// A database that keeps console sessions.
pub trait SessionDatabase: Transactions<Tx: SessionRows> {}

impl<D: Transactions<Tx: SessionRows>> SessionDatabase for D {}

fn validate_start(method: SessionMethod, token: Option<&SessionToken>) -> Result<()> {
    match (method, token) {
        (SessionMethod::Token, None) => Err(Error::invalid(
            "token",
            "a token sign-in names the token it was made with",
        )),
        (SessionMethod::Oidc | SessionMethod::Passkey, Some(_)) => Err(Error::invalid(
            "token",
            "only a token sign-in is bound to a token",
        )),
        _ => Ok(()),
    }
}

/// Every [`SessionDatabase`] keeps sessions: each use case once, over [`SessionRows`].
#[async_trait]
impl<D: SessionDatabase> SessionStore for D {
    async fn start_session(
        &self,
        owner: &OwnerId,
        method: SessionMethod,
        token: Option<SessionToken>,
        policy: &SessionPolicy,
        rng: &mut (dyn RandomSource + Send),
    ) -> Result<StartedSession> {
        validate_start(method, token.as_ref())?;
        let mut bytes = [0u8; 32];
        rng.fill(&mut bytes);
        let secret = URL_SAFE_NO_PAD.encode(bytes);
        let key = SessionKey::of_secret(&secret)
            .ok_or_else(|| Error::Integrity("session secret".into()))?;
        let (owner, policy) = (owner.clone(), *policy);
        db::write(self, move |tx| {
            Box::pin(async move {
                let now = tx.now();
                match tx.actor_state(&owner).await? {
                    Some(s) if s.status == UserStatus::Active => {}
                    _ => return Err(Error::NotFound),
                }
                // Sessions that are over go at every sign-in, so abandoned ones do not pile
                // up; then the user's oldest beyond the bound.
                tx.delete_stale_sessions(now, now - span(policy.idle))
                    .await?;
                let keep = usize::try_from(policy.per_user.saturating_sub(1)).unwrap_or(0);
                let existing = tx.session_keys_of(&owner).await?;
                let evict = existing.len().saturating_sub(keep);
                for old in existing.iter().take(evict) {
                    tx.delete_session(old).await?;
                }
                let row = SessionRecord {
                    owner: owner.clone(),
                    method,
                    token,
                    created_at: now,
                    last_seen_at: now,
                    expires_at: now + span(policy.lifetime),
                };
                tx.insert_session(&key, &row).await?;
                tx.append(events::session_started(
                    now,
                    &owner,
                    method.as_str(),
                    row.token.as_ref().map(|t| &t.id),
                    u64::try_from(evict).unwrap_or(u64::MAX),
                ))
                .await?;
                Ok(StartedSession { secret, key })
            })
        })
        .await
    }

    async fn live_session(
        &self,
        key: &SessionKey,
        policy: &SessionPolicy,
    ) -> Result<Option<LiveSession>> {
        let read_key = *key;
        let state = self
            .read(move |tx| {
                Box::pin(async move {
                    let Some(record) = tx.session(&read_key).await? else {
                        return Ok(None);
                    };
                    let user = tx.actor_state(&record.owner).await?;
                    Ok(Some(SessionState { record, user }))
                })
            })
            .await?;
        let Some(state) = state else {
            return Ok(None);
        };
        let now = self.now();
        match state.decide(now, policy) {
            SessionVerdict::Ended => {
                self.end_session(key).await?;
                Ok(None)
            }
            SessionVerdict::Live { identity, touch } => {
                if touch {
                    let k = *key;
                    db::write(self, move |tx| {
                        Box::pin(async move {
                            let at = tx.now();
                            tx.touch_session(&k, at).await
                        })
                    })
                    .await?;
                }
                Ok(Some(LiveSession {
                    key: *key,
                    record: state.record,
                    identity,
                }))
            }
        }
    }

    async fn end_session(&self, key: &SessionKey) -> Result<()> {
        let k = *key;
        db::write(self, move |tx| {
            Box::pin(async move { tx.delete_session(&k).await.map(|_| ()) })
        })
        .await
    }

    async fn rebind_session(&self, key: &SessionKey, token: SessionToken) -> Result<()> {
        let k = *key;
        db::write(self, move |tx| {
            Box::pin(async move {
                match tx.session(&k).await? {
                    Some(s) if s.method == SessionMethod::Token => {
                        tx.rebind_session(&k, &token).await
                    }
                    _ => Err(Error::NotFound),
                }
            })
        })
        .await
    }

    async fn purge_sessions(&self, policy: &SessionPolicy) -> Result<u64> {
        let idle = span(policy.idle);
        db::write(self, move |tx| {
            Box::pin(async move {
                let now = tx.now();
                tx.delete_stale_sessions(now, now - idle).await
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;
    use crate::UserRole;

    fn state(
        status: UserStatus,
        age_secs: i64,
        seen_secs_ago: i64,
    ) -> (SessionState, OffsetDateTime) {
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::days(10_000);
        let created = now - time::Duration::seconds(age_secs);
        let record = SessionRecord {
            owner: OwnerId::parse("alice").unwrap(),
            method: SessionMethod::Oidc,
            token: None,
            created_at: created,
            last_seen_at: now - time::Duration::seconds(seen_secs_ago),
            expires_at: created + time::Duration::hours(12),
        };
        let user = Some(ActorState {
            role: UserRole::Member,
            status,
        });
        (SessionState { record, user }, now)
    }

    #[test]
    fn live_within_idle_and_lifetime_and_touched_at_most_once_a_minute() {
        let p = SessionPolicy::default();
        let (s, now) = state(UserStatus::Active, 600, 10);
        assert!(matches!(
            s.decide(now, &p),
            SessionVerdict::Live { touch: false, .. }
        ));
        let (s, now) = state(UserStatus::Active, 600, 61);
        assert!(matches!(
            s.decide(now, &p),
            SessionVerdict::Live { touch: true, .. }
        ));
    }

    #[test]
    fn idle_expired_suspended_or_deleted_users_end_it() {
        let p = SessionPolicy::default();
        let (s, now) = state(UserStatus::Active, 3600, 30 * 60);
        assert_eq!(s.decide(now, &p), SessionVerdict::Ended, "idle");
        let (s, now) = state(UserStatus::Active, 12 * 3600, 1);
        assert_eq!(s.decide(now, &p), SessionVerdict::Ended, "lifetime");
        let (s, now) = state(UserStatus::Suspended, 60, 1);
        assert_eq!(s.decide(now, &p), SessionVerdict::Ended, "suspended");
        let (mut s, now) = state(UserStatus::Active, 60, 1);
        s.user = None;
        assert_eq!(s.decide(now, &p), SessionVerdict::Ended, "deleted");
    }

    #[test]
    fn keys_and_csrf_tokens_derive_from_the_secret_and_differ() {
        let k = SessionKey::of_secret("abc").unwrap();
        assert_eq!(k, SessionKey::of_secret("abc").unwrap());
        assert_ne!(k, SessionKey::of_secret("abd").unwrap());
        assert!(SessionKey::of_secret("").is_none());
        assert!(SessionKey::of_secret(&"x".repeat(65)).is_none());
        assert_ne!(csrf_of("abc"), URL_SAFE_NO_PAD.encode(k.as_bytes()));
        assert_eq!(csrf_of("abc"), csrf_of("abc"));
    }

    #[test]
    fn policies_are_checked_and_methods_bind_tokens_only_for_token_sign_ins() {
        assert!(SessionPolicy::default().validate().is_ok());
        let bad = SessionPolicy {
            per_user: 0,
            ..SessionPolicy::default()
        };
        assert!(bad.validate().is_err());
        let bad = SessionPolicy {
            touch_every: Duration::from_secs(3600),
            ..SessionPolicy::default()
        };
        assert!(bad.validate().is_err());
        for m in [
            SessionMethod::Token,
            SessionMethod::Oidc,
            SessionMethod::Passkey,
        ] {
            assert_eq!(SessionMethod::parse(m.as_str()).unwrap(), m);
        }
        assert!(validate_start(SessionMethod::Token, None).is_err());
        assert!(validate_start(SessionMethod::Oidc, None).is_ok());
    }
}
