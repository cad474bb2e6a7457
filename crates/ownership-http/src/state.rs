//! The REST service's state: the store behind every port, the clock, the pairing key, the
//! limits and the settings.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::FromRef;
use ownership_core::crypto::MasterKeys;
use ownership_core::pairing::PairingKey;
use ownership_core::ports::{Clock, PairingPolicy, Store};
use ownership_core::token::TokenDigest;

use crate::auth::AuthState;
use crate::limits::{Limits, LimitsConfig};
use crate::proxy::TrustedProxies;

/// Settings of the REST service.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Pairing-code lifetime and per-channel cap.
    pub pairing: PairingPolicy,
    /// Rate limits.
    pub limits: LimitsConfig,
    /// Largest accepted request body, in bytes.
    pub body_limit: usize,
    /// Longest a request may take (SSE streams excepted).
    pub request_timeout: Duration,
    /// The reverse proxies (CIDRs) whose `X-Forwarded-For`, `Forwarded` and
    /// `X-Forwarded-Proto` are believed, and only when the TCP peer is one of them; the
    /// client is the first address from the right that is not one of them (see
    /// [`crate::proxy`]). Empty by default: the TCP peer is the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// How often the event stream polls for new events.
    pub events_poll: Duration,
    /// How long a stream ticket (`POST /v1/me/events/ticket`) lives.
    pub stream_ticket_ttl: Duration,
    /// The web console is served over HTTPS (set it behind a TLS-terminating proxy): its
    /// cookies get the `__Host-` prefix and `Secure`, and its same-origin check expects
    /// `https://`. Without it, `X-Forwarded-Proto: https` means the same, but only from
    /// a TCP peer in `trusted_proxies`.
    pub console_secure_cookies: bool,
    /// Let webhook endpoints resolve to loopback, private, link-local and other
    /// non-public addresses, and let them use plain `http://` to loopback (for tests and
    /// single-machine setups). Off by default: endpoints must be public HTTPS (SSRF
    /// defence, see `docs/webhooks.md`).
    pub allow_private_webhooks: bool,
    /// The webhook delivery worker's settings.
    pub webhooks: ownership_webhooks::WebhookSettings,
    /// At shutdown, how long in-flight requests (and the webhook worker's round) may take
    /// to finish before they are cut off.
    pub drain_timeout: Duration,
    /// GitHub's secret-scanning public keys, by key identifier. Empty: the partner
    /// endpoint answers 404.
    pub github_keys: crate::github::GitHubKeys,
    /// Passkey sign-in to the console: the relying-party id and origin. `None`: passkeys
    /// are off (the passkeys page says so).
    pub passkeys: Option<crate::passkey_settings::PasskeySettings>,
    /// Console sessions: idle timeout, lifetime, how many per user, how often their
    /// last-seen time is written.
    pub console_sessions: ownership_core::sessions::SessionPolicy,
    /// The console's OpenID Connect provider, if any.
    pub oidc: Option<OidcConfig>,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            pairing: PairingPolicy::default(),
            limits: LimitsConfig::default(),
            body_limit: 64 * 1024,
            request_timeout: Duration::from_secs(30),
            trusted_proxies: Vec::new(),
            events_poll: Duration::from_secs(1),
            stream_ticket_ttl: ownership_core::tickets::TICKET_TTL,
            console_secure_cookies: false,
            allow_private_webhooks: false,
            webhooks: ownership_webhooks::WebhookSettings::default(),
            drain_timeout: Duration::from_secs(10),
            github_keys: crate::github::GitHubKeys::default(),
            passkeys: None,
            console_sessions: ownership_core::sessions::SessionPolicy::default(),
            oidc: None,
        }
    }
}

/// The operator's provider (`[oidc]` in the configuration).
#[derive(Clone, PartialEq, Eq)]
pub struct OidcConfig {
    /// The issuer URL (discovery is at `<issuer>/.well-known/openid-configuration`).
    pub issuer: String,
    /// Our client id at the provider.
    pub client_id: String,
    /// Our client secret (never logged or shown).
    pub client_secret: Option<String>,
    /// The provider's name on the sign-in page.
    pub display_name: String,
    /// The console's public base URL; the redirect URI is
    /// `<redirect_base>/console/oidc/callback`.
    pub redirect_base: String,
    /// Verified email → user, for linking on first sign-in.
    pub allowed_emails: ownership_core::oidc::AllowList,
}

impl std::fmt::Debug for OidcConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcConfig")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("display_name", &self.display_name)
            .field("redirect_base", &self.redirect_base)
            .field("allowed_emails", &self.allowed_emails.len())
            .finish()
    }
}

impl OidcConfig {
    /// The redirect URI registered at the provider.
    pub fn redirect_uri(&self) -> String {
        format!(
            "{}/console/oidc/callback",
            self.redirect_base.trim_end_matches('/')
        )
    }
}

/// A source of cryptographically secure random bytes (the CLI passes the operating
/// system's; tests may pass a seeded one).
pub type RandomFn = Arc<dyn Fn(&mut [u8]) + Send + Sync>;

/// The state every route shares. Cheap to clone: one reference count (axum clones the
/// state into every request's handler, so a field-by-field clone would cost a dozen
/// atomic operations per request, on a cache line every core shares).
#[derive(Clone)]
pub struct AppState {
    shared: Arc<Shared>,
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.shared
    }
}

/// What every clone of an [`AppState`] shares (its accessors are [`AppState`]'s).
#[derive(Clone)]
pub struct Shared {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) pairing_key: PairingKey,
    pub(crate) config: Arc<ServiceConfig>,
    pub(crate) auth: AuthState,
    pub(crate) foreign_allowed: Arc<AtomicBool>,
    pub(crate) bootstrap: Option<TokenDigest>,
    pub(crate) random: RandomFn,
    /// The master keys; `None` switches secrets, resources and webhooks off.
    pub(crate) master_keys: Option<Arc<MasterKeys>>,
    /// Another readiness condition besides the store's ping (the cache-invalidation
    /// listener on PostgreSQL): `false` makes `/readyz` answer 503.
    pub(crate) ready: Option<Arc<AtomicBool>>,
    /// The shutdown signal the event streams watch, and the in-flight counts.
    pub(crate) drain: crate::drain::Drain,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.shared.fmt(f)
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// What the webhook delivery worker ([`ownership_webhooks::run_worker`]) needs from
    /// this service: the same store, clock, master keys and webhook settings, so the
    /// worker delivers exactly what the routes accepted.
    pub fn webhook_worker_deps(&self) -> ownership_webhooks::WorkerDeps {
        ownership_webhooks::WorkerDeps {
            store: Arc::clone(&self.store),
            clock: Arc::clone(&self.clock),
            master_keys: self.master_keys.clone(),
            settings: self.config.webhooks.clone(),
            allow_private: self.config.allow_private_webhooks,
        }
    }

    /// The state for `store` (usually the cache decorator around a backend).
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        random: RandomFn,
        pairing_key: PairingKey,
        config: ServiceConfig,
    ) -> Self {
        let foreign_allowed = Arc::new(AtomicBool::new(false));
        let limits = Limits::new(&config.limits);
        let proxies = TrustedProxies::new(config.trusted_proxies.iter().copied());
        let auth = AuthState::new(
            Arc::clone(&store) as Arc<dyn ownership_core::ports::TokenStore>,
            Arc::clone(&foreign_allowed),
            limits,
            proxies,
        );
        Self {
            shared: Arc::new(Shared {
                store,
                clock,
                pairing_key,
                config: Arc::new(config),
                auth,
                foreign_allowed,
                bootstrap: None,
                random,
                master_keys: None,
                ready: None,
                drain: crate::drain::Drain::default(),
            }),
        }
    }

    /// Makes `/readyz` also require `ready` to be `true` (for example "the
    /// cache-invalidation listener is connected").
    pub fn with_readiness(mut self, ready: Arc<AtomicBool>) -> Self {
        Arc::make_mut(&mut self.shared).ready = Some(ready);
        self
    }

    /// Whether the extra readiness condition, if any, holds.
    pub fn extra_ready(&self) -> bool {
        self.ready.as_ref().is_none_or(|r| r.load(Ordering::SeqCst))
    }

    /// Enables secrets, resource credentials and webhooks with these master keys (the
    /// current one, and the previous one while a rotation runs). Without them those routes
    /// answer 503 `secrets_disabled` / `webhooks_disabled`.
    pub fn with_master_keys(mut self, keys: MasterKeys) -> Self {
        Arc::make_mut(&mut self.shared).master_keys = Some(Arc::new(keys));
        self
    }

    /// The master keys, when configured.
    pub fn master_keys(&self) -> Option<&MasterKeys> {
        self.master_keys.as_deref()
    }

    /// Enables `POST /v1/bootstrap` with this secret (its digest is kept, not the value).
    pub fn with_bootstrap_secret(mut self, secret: &str) -> Self {
        Arc::make_mut(&mut self.shared).bootstrap = Some(ownership_core::token::digest_of(secret));
        self
    }

    /// Whether tokens without our prefix may be looked up (the store holds provisioned
    /// or legacy tokens). Set at start from `TokenStore::has_foreign_tokens`.
    pub fn set_foreign_tokens_allowed(&self, allowed: bool) {
        self.foreign_allowed.store(allowed, Ordering::Relaxed);
    }

    /// A random source for one use case.
    pub fn rng(&self) -> impl FnMut(&mut [u8]) + '_ {
        |buf: &mut [u8]| (self.random)(buf)
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The pairing key.
    pub fn pairing_key(&self) -> &PairingKey {
        &self.pairing_key
    }

    /// The settings.
    pub fn config(&self) -> &ServiceConfig {
        &self.config
    }

    /// The shutdown signal and in-flight counts ([`Drain::begin`](crate::drain::Drain::begin)
    /// ends the event streams).
    pub fn drain(&self) -> &crate::drain::Drain {
        &self.drain
    }
}

impl FromRef<AppState> for AuthState {
    fn from_ref(state: &AppState) -> Self {
        state.auth.clone()
    }
}
