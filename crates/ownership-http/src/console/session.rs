//! Console sessions: in memory, per process, bounded.
//!
//! A session is a random 256-bit secret sent to the browser in a cookie. The server keeps
//! only its SHA-256 digest (the cache key), the signed-in user, the digest of the token
//! the session was started with (never the token), a CSRF token, the one-time messages
//! waiting for the next page, and the single-use ids of the minting forms it rendered.
//!
//! A session ends after [`SessionPolicy::idle`] without a request, after
//! [`SessionPolicy::lifetime`] whatever happens, at sign-out, and — checked by the caller
//! on every request — as soon as its token no longer authenticates as its user. Sessions
//! live in this process's memory: they do not survive a restart and are not shared
//! between processes (a sign-in again is needed), and when more than
//! [`SessionPolicy::capacity`] are open the least useful are dropped.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use moka::sync::Cache;
use ownership_core::OwnerId;
use ownership_core::ids::TokenId;
use ownership_core::passkeys::CredentialId;
use ownership_core::token::{TokenDigest, digest_of};

/// How long sessions live and how many are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SessionPolicy {
    /// Ends after this long without a request.
    pub idle: Duration,
    /// Ends this long after sign-in, however active.
    pub lifetime: Duration,
    /// At most this many open sessions per process.
    pub capacity: u64,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(30 * 60),
            lifetime: Duration::from_secs(12 * 3600),
            capacity: 10_000,
        }
    }
}

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

/// The token a session is bound to: its digest and public id, never its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BoundToken {
    /// SHA-256 of the token.
    pub digest: TokenDigest,
    /// Its public id (to recognise it in the token list).
    pub id: TokenId,
}

/// How many minting-form ids a session remembers as used.
const USED_FORMS_KEPT: usize = 64;

/// One signed-in browser.
#[derive(Debug)]
pub(crate) struct Session {
    owner: OwnerId,
    token: Mutex<Option<BoundToken>>,
    passkey: Option<CredentialId>,
    standin: TokenId,
    csrf: String,
    created: Instant,
    last_seen: Mutex<Instant>,
    flashes: Mutex<Vec<Flash>>,
    used_forms: Mutex<VecDeque<String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Session {
    /// The signed-in user.
    pub fn owner(&self) -> &OwnerId {
        &self.owner
    }

    /// The token the session is bound to (`None`: it was started without one).
    pub fn token(&self) -> Option<BoundToken> {
        lock(&self.token).clone()
    }

    /// The passkey a session started without a token stands on.
    pub fn passkey(&self) -> Option<&CredentialId> {
        self.passkey.as_ref()
    }

    /// A token id of this session's own, naming no stored token: what a session started
    /// without a token presents where a token id is asked for.
    pub fn standin_token_id(&self) -> TokenId {
        self.standin.clone()
    }

    /// Binds the session to the replacement of its own token (the user rotated the token
    /// they signed in with, from this session).
    pub fn rebind(&self, token: BoundToken) {
        *lock(&self.token) = Some(token);
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
    pub fn ends_at(&self, policy: &SessionPolicy) -> Instant {
        self.created + policy.lifetime
    }

    /// Queues a message for the next page.
    pub fn flash(&self, flash: Flash) {
        let mut flashes = lock(&self.flashes);
        if flashes.len() < 8 {
            flashes.push(flash);
        }
    }

    /// Takes the queued messages (each is shown once).
    pub fn take_flashes(&self) -> Vec<Flash> {
        std::mem::take(&mut *lock(&self.flashes))
    }

    /// Marks a minting form's id as used; false if it was used before (a resubmission).
    pub fn use_form(&self, form_id: &str) -> bool {
        let mut used = lock(&self.used_forms);
        if form_id.is_empty() || used.iter().any(|f| f == form_id) {
            return false;
        }
        if used.len() >= USED_FORMS_KEPT {
            used.pop_front();
        }
        used.push_back(form_id.to_owned());
        true
    }

    /// Whether the session is still within its idle timeout and lifetime at `now`; if so,
    /// `now` counts as activity.
    fn touch(&self, policy: &SessionPolicy, now: Instant) -> bool {
        let mut last = lock(&self.last_seen);
        let idle_ok = now.saturating_duration_since(*last) < policy.idle;
        let life_ok = now.saturating_duration_since(self.created) < policy.lifetime;
        if idle_ok && life_ok {
            *last = now;
            true
        } else {
            false
        }
    }
}

/// A random value of `N` bytes, base64url without padding.
pub(crate) fn random_text<const N: usize>(rng: &mut dyn FnMut(&mut [u8])) -> String {
    let mut bytes = [0u8; N];
    rng(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The open sessions of this process, keyed by the digest of their secret.
pub(crate) struct Sessions {
    cache: Cache<TokenDigest, Arc<Session>>,
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
    /// An empty store under `policy`.
    pub fn new(policy: SessionPolicy) -> Self {
        Self {
            // The cache's own idle and lifetime bounds drop abandoned sessions; `get`
            // checks both again, exactly, before a session is used.
            cache: Cache::builder()
                .max_capacity(policy.capacity)
                .time_to_idle(policy.idle)
                .time_to_live(policy.lifetime)
                .build(),
            policy,
        }
    }

    /// The policy.
    pub fn policy(&self) -> &SessionPolicy {
        &self.policy
    }

    /// Starts a session for `owner` bound to `token`: returns the secret for the cookie
    /// (shown to nobody else, kept nowhere) and the session.
    pub fn start(
        &self,
        owner: OwnerId,
        token: BoundToken,
        rng: &mut dyn FnMut(&mut [u8]),
    ) -> (String, Arc<Session>) {
        self.open(owner, Some(token), None, rng)
    }

    /// Starts a session for `owner` without a token, standing on the passkey they signed
    /// in with (re-checked on every request, like a token).
    pub fn start_without_token(
        &self,
        owner: OwnerId,
        passkey: CredentialId,
        rng: &mut dyn FnMut(&mut [u8]),
    ) -> (String, Arc<Session>) {
        self.open(owner, None, Some(passkey), rng)
    }

    fn open(
        &self,
        owner: OwnerId,
        token: Option<BoundToken>,
        passkey: Option<CredentialId>,
        rng: &mut dyn FnMut(&mut [u8]),
    ) -> (String, Arc<Session>) {
        let secret = random_text::<32>(rng);
        let now = Instant::now();
        let session = Arc::new(Session {
            owner,
            token: Mutex::new(token),
            passkey,
            standin: TokenId::generate(&mut |b: &mut [u8]| rng(b)),
            csrf: random_text::<32>(rng),
            created: now,
            last_seen: Mutex::new(now),
            flashes: Mutex::new(Vec::new()),
            used_forms: Mutex::new(VecDeque::new()),
        });
        self.cache.insert(digest_of(&secret), Arc::clone(&session));
        (secret, session)
    }

    /// The live session whose secret is `secret`, counting this as activity.
    pub fn get(&self, secret: &str) -> Option<(TokenDigest, Arc<Session>)> {
        self.get_at(secret, Instant::now())
    }

    fn get_at(&self, secret: &str, now: Instant) -> Option<(TokenDigest, Arc<Session>)> {
        if secret.is_empty() || secret.len() > 64 {
            return None;
        }
        let key = digest_of(secret);
        let session = self.cache.get(&key)?;
        if session.touch(&self.policy, now) {
            Some((key, session))
        } else {
            self.cache.invalidate(&key);
            None
        }
    }

    /// Ends the session with this key (sign-out, or its token stopped working).
    pub fn end(&self, key: &TokenDigest) {
        self.cache.invalidate(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rng() -> impl FnMut(&mut [u8]) {
        let mut n = 0u8;
        move |buf: &mut [u8]| {
            for b in buf.iter_mut() {
                n = n.wrapping_add(37);
                *b = n;
            }
        }
    }

    fn bound() -> BoundToken {
        BoundToken {
            digest: digest_of("own_u_x"),
            id: TokenId::generate(&mut rng()),
        }
    }

    fn sessions() -> Sessions {
        Sessions::new(SessionPolicy::default())
    }

    #[test]
    fn secrets_are_256_bits_and_only_their_digest_is_a_key() {
        let s = sessions();
        let (secret, _) = s.start(OwnerId::parse("alice").unwrap(), bound(), &mut rng());
        assert_eq!(URL_SAFE_NO_PAD.decode(&secret).unwrap().len(), 32);
        assert!(s.get(&secret).is_some());
        assert!(s.cache.contains_key(&digest_of(&secret)));
        assert!(s.get("").is_none());
        assert!(s.get(&format!("{secret}x")).is_none());
    }

    #[test]
    fn idle_timeout_and_absolute_lifetime_end_a_session() {
        let s = sessions();
        let policy = *s.policy();
        let (secret, _) = s.start(OwnerId::parse("alice").unwrap(), bound(), &mut rng());
        let start = Instant::now();
        // Active every 20 minutes: idle never bites, the 12 h lifetime does.
        let mut t = start;
        while t + Duration::from_secs(20 * 60) < start + policy.lifetime {
            t += Duration::from_secs(20 * 60);
            assert!(s.get_at(&secret, t).is_some(), "alive at {:?}", t - start);
        }
        assert!(
            s.get_at(&secret, start + policy.lifetime + Duration::from_secs(1))
                .is_none()
        );
        assert!(s.get_at(&secret, t).is_none(), "gone for good");

        let (secret, _) = s.start(OwnerId::parse("bob").unwrap(), bound(), &mut rng());
        let now = Instant::now();
        assert!(
            s.get_at(&secret, now + policy.idle - Duration::from_secs(1))
                .is_some()
        );
        let later = now + policy.idle - Duration::from_secs(1) + policy.idle;
        assert!(s.get_at(&secret, later).is_none(), "30 idle minutes end it");
    }

    #[test]
    fn sign_out_ends_it() {
        let s = sessions();
        let (secret, _) = s.start(OwnerId::parse("alice").unwrap(), bound(), &mut rng());
        let (key, _) = s.get(&secret).unwrap();
        s.end(&key);
        assert!(s.get(&secret).is_none());
    }

    #[test]
    fn csrf_tokens_and_form_ids() {
        let s = sessions();
        let (_, session) = s.start(OwnerId::parse("alice").unwrap(), bound(), &mut rng());
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
        let s = sessions();
        let (_, session) = s.start(OwnerId::parse("alice").unwrap(), bound(), &mut rng());
        session.flash(Flash::status("done"));
        session.flash(Flash::alert("no"));
        let shown = session.take_flashes();
        assert_eq!(shown.len(), 2);
        assert_eq!(shown[1].role(), "alert");
        assert!(session.take_flashes().is_empty());
    }
}
