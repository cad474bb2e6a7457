//! Console sessions: kept in the store, so every server process sees the same ones.
//!
//! A session is a random 256-bit secret sent to the browser in a cookie. The store keeps
//! only its SHA-256 digest ([`SessionKey`]) with the signed-in user, how they signed in,
//! the token they signed in with when that is how (its digest, never the token) and its
//! times; the rules (idle timeout, absolute lifetime, at most so many per user, throttled
//! last-seen writes, suspension ending them) are `ownership_core::sessions`'. The CSRF
//! token is derived from the secret ([`csrf_of`]), so every process computes the same one.
//!
//! What stays in this process's memory: the one-time messages waiting for the next page
//! and the single-use ids of the minting forms a session rendered. Behind a load balancer
//! a message may be shown by the process that set it only (a redirect served by another
//! process shows none), and a form id is refused twice only by one process; the
//! session itself, its CSRF token and its end are the same everywhere.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use moka::sync::Cache;
use ownership_core::ports::Store;
use ownership_core::sessions::{
    SessionKey, SessionMethod, SessionPolicy, SessionRecord, SessionToken, csrf_of,
};
use ownership_core::token::digest_of;
use ownership_core::{Error, Identity, OwnerId, RandomSource};
use time::OffsetDateTime;

/// How a one-time message is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FlashKind {
    /// Something worked (`role="status"`).
    Status,
    /// Something was refused or failed (`role="alert"`).
    Alert,
}

/// A message for the next page the session shows, then gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Flash {
    /// Status or alert.
    pub kind: FlashKind,
    /// The text (escaped when rendered, like everything else).
    pub text: String,
}

impl Flash {
    /// A success message.
    pub fn status(text: impl Into<String>) -> Self {
        Self {
            kind: FlashKind::Status,
            text: text.into(),
        }
    }

    /// A refusal or failure.
    pub fn alert(text: impl Into<String>) -> Self {
        Self {
            kind: FlashKind::Alert,
            text: text.into(),
        }
    }

    /// The ARIA role it is rendered with.
    pub fn role(&self) -> &'static str {
        match self.kind {
            FlashKind::Status => "status",
            FlashKind::Alert => "alert",
        }
    }
}

/// How many minting-form ids a session remembers as used.
const USED_FORMS_KEPT: usize = 64;

/// What this process keeps beside a stored session: its one-time messages and used
/// form ids.
#[derive(Debug, Default)]
pub(crate) struct Extras {
    flashes: Mutex<Vec<Flash>>,
    used_forms: Mutex<VecDeque<String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One signed-in browser, as this request sees it.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    key: SessionKey,
    record: SessionRecord,
    csrf: String,
    extras: Arc<Extras>,
}

impl Session {
    /// The session's key (the digest of its secret).
    pub fn key(&self) -> &SessionKey {
        &self.key
    }

    /// The signed-in user.
    pub fn owner(&self) -> &OwnerId {
        &self.record.owner
    }

    /// How they signed in.
    pub fn method(&self) -> SessionMethod {
        self.record.method
    }

    /// The token the session was started with (a token sign-in).
    pub fn token(&self) -> Option<&SessionToken> {
        self.record.token.as_ref()
    }

    /// The CSRF token every form of this session carries.
    pub fn csrf(&self) -> &str {
        &self.csrf
    }

    /// Whether `presented` is this session's CSRF token (compared as SHA-256 digests, in
    /// constant time).
    pub fn csrf_matches(&self, presented: &str) -> bool {
        !presented.is_empty() && digest_of(presented) == digest_of(&self.csrf)
    }

    /// When the session ends at the latest.
    pub fn ends_at(&self) -> OffsetDateTime {
        self.record.expires_at
    }

    /// Queues a message for the next page.
    pub fn flash(&self, flash: Flash) {
        let mut flashes = lock(&self.extras.flashes);
        if flashes.len() < 8 {
            flashes.push(flash);
        }
    }

    /// Takes the queued messages (each is shown once).
    pub fn take_flashes(&self) -> Vec<Flash> {
        std::mem::take(&mut *lock(&self.extras.flashes))
    }

    /// Marks a minting form's id as used; false if it was used before (a resubmission).
    pub fn use_form(&self, form_id: &str) -> bool {
        let mut used = lock(&self.extras.used_forms);
        if form_id.is_empty() || used.iter().any(|f| f == form_id) {
            return false;
        }
        if used.len() >= USED_FORMS_KEPT {
            used.pop_front();
        }
        used.push_back(form_id.to_owned());
        true
    }
}

/// A random value of `N` bytes, base64url without padding.
pub(crate) fn random_text<const N: usize>(rng: &mut dyn FnMut(&mut [u8])) -> String {
    let mut bytes = [0u8; N];
    rng(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The console's sessions: the store's, under this server's policy, with this process's
/// [`Extras`] beside them.
pub(crate) struct Sessions {
    extras: Cache<SessionKey, Arc<Extras>>,
    policy: SessionPolicy,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Sessions {
    /// Sessions under `policy`.
    pub fn new(policy: SessionPolicy) -> Self {
        Self {
            extras: Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(policy.idle)
                .time_to_live(policy.lifetime)
                .build(),
            policy,
        }
    }

    /// Starts a session for `owner` (already authenticated by `method`; `token` for a
    /// token sign-in): returns the secret for the cookie.
    pub async fn start(
        &self,
        store: &dyn Store,
        owner: &OwnerId,
        method: SessionMethod,
        token: Option<SessionToken>,
        rng: &mut (dyn RandomSource + Send),
    ) -> Result<String, Error> {
        let started = store
            .start_session(owner, method, token, &self.policy, rng)
            .await?;
        Ok(started.secret)
    }

    /// The live session whose secret is `secret`, with its user as they are now.
    pub async fn get(
        &self,
        store: &dyn Store,
        secret: &str,
    ) -> Result<Option<(Session, Identity)>, Error> {
        let Some(key) = SessionKey::of_secret(secret) else {
            return Ok(None);
        };
        let Some(live) = store.live_session(&key, &self.policy).await? else {
            self.extras.invalidate(&key);
            return Ok(None);
        };
        let extras = self.extras.get_with(key, || Arc::new(Extras::default()));
        let session = Session {
            key,
            record: live.record,
            csrf: csrf_of(secret),
            extras,
        };
        Ok(Some((session, live.identity)))
    }

    /// Ends the session with this key (sign-out, or its token stopped working).
    pub async fn end(&self, store: &dyn Store, key: &SessionKey) -> Result<(), Error> {
        self.extras.invalidate(key);
        store.end_session(key).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Session {
        let now = OffsetDateTime::UNIX_EPOCH;
        Session {
            key: SessionKey::of_secret("secret").unwrap(),
            record: SessionRecord {
                owner: OwnerId::parse("alice").unwrap(),
                method: SessionMethod::Oidc,
                token: None,
                created_at: now,
                last_seen_at: now,
                expires_at: now,
            },
            csrf: csrf_of("secret"),
            extras: Arc::new(Extras::default()),
        }
    }

    #[test]
    fn csrf_tokens_and_form_ids() {
        let session = session();
        let csrf = session.csrf().to_owned();
        assert!(session.csrf_matches(&csrf));
        assert!(!session.csrf_matches(""));
        assert!(!session.csrf_matches("nope"));
        assert!(session.use_form("f1"));
        assert!(!session.use_form("f1"), "a resubmission is refused");
        assert!(!session.use_form(""));
        for i in 0..USED_FORMS_KEPT {
            assert!(session.use_form(&format!("g{i}")));
        }
    }

    #[test]
    fn flashes_are_shown_once() {
        let session = session();
        session.flash(Flash::status("done"));
        session.flash(Flash::alert("no"));
        let shown = session.take_flashes();
        assert_eq!(shown.len(), 2);
        assert_eq!(shown[1].role(), "alert");
        assert!(session.take_flashes().is_empty());
    }
}
