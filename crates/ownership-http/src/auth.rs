//! Extractors that authenticate a request, for our routes and for downstream apps' own
//! routes: [`Authenticated`], [`RequireKind`], [`RequireAdmin`].
//!
//! They need an [`AuthState`] reachable from the router's state (`FromRef`). A token is
//! read from `Authorization: Bearer …` only (the SSE route alone also accepts
//! `?access_token=`, through [`AuthenticatedSse`]). Every failure is the same 401 with
//! `WWW-Authenticate: Bearer`; a store outage is 503, never a pass.

use std::marker::PhantomData;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap};
use ownership_core::authz::{AdminScope, OwnerScope, Principal};
use ownership_core::ports::TokenStore;
use ownership_core::{Error, TokenKind};

use crate::error::ApiError;
use crate::limits::Limits;
use crate::proxy::TrustedProxies;

/// What the extractors need. Put it in your router state and implement
/// `FromRef<YourState> for AuthState`, or use it as the state itself.
///
/// Cheap to clone (one reference count): the extractors take it from the state on every
/// request.
#[derive(Clone)]
pub struct AuthState {
    inner: Arc<AuthInner>,
}

struct AuthInner {
    /// The tokens, as a trait object so the extractors need no store type parameter.
    tokens: Arc<dyn TokenStore>,
    /// Whether tokens without our prefix are looked up (the store holds provisioned or
    /// legacy tokens); otherwise they are refused without a store read.
    foreign_allowed: Arc<AtomicBool>,
    limits: Limits,
    proxies: TrustedProxies,
}

impl std::fmt::Debug for AuthState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthState")
            .field("trusted_proxies", &self.inner.proxies.nets())
            .finish_non_exhaustive()
    }
}

impl AuthState {
    /// Authentication against `tokens` (usually the cache decorator), limited by
    /// `limits`. Tokens without our prefix are looked up only while `foreign_allowed` is
    /// set. The client address the per-address limit counts is the TCP peer, or, when the
    /// peer is one of `proxies`, what its forwarding headers say (see [`crate::proxy`]).
    pub fn new(
        tokens: Arc<dyn TokenStore>,
        foreign_allowed: Arc<AtomicBool>,
        limits: Limits,
        proxies: TrustedProxies,
    ) -> Self {
        Self {
            inner: Arc::new(AuthInner {
                tokens,
                foreign_allowed,
                limits,
                proxies,
            }),
        }
    }

    /// Authentication against a token store with default limits and no trusted proxy:
    /// the one-liner for downstream apps.
    pub fn for_store<S: TokenStore + 'static>(store: Arc<S>) -> Self {
        Self::new(
            store,
            Arc::new(AtomicBool::new(false)),
            Limits::new(&crate::limits::LimitsConfig::default()),
            TrustedProxies::none(),
        )
    }

    /// The limits.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// The trusted proxies.
    pub fn proxies(&self) -> &TrustedProxies {
        &self.inner.proxies
    }

    /// The client address of a request, as the limits see it.
    pub fn client_ip(&self, parts: &Parts) -> Option<IpAddr> {
        self.client_ip_from(&parts.headers, peer_of(&parts.extensions))
    }

    /// The client address from the headers and the TCP peer: the peer, unless it is a
    /// trusted proxy (then the forwarding headers name the client).
    pub fn client_ip_from(&self, headers: &HeaderMap, peer: Option<SocketAddr>) -> Option<IpAddr> {
        self.inner
            .proxies
            .client_address(headers, peer.map(|p| p.ip()))
    }

    /// Counts a failed authentication (a token, secret or credential that did not check
    /// out) against `ip`. The refusal to answer: 429 once the address's failure budget is
    /// spent, else `otherwise`.
    pub fn failure(&self, ip: Option<IpAddr>, otherwise: ApiError) -> ApiError {
        match ip.and_then(|ip| self.inner.limits.address_failed(ip)) {
            Some(wait) => {
                tracing::info!(client = ?ip, wait_secs = wait.as_secs(), "failed authentication refused: the address is over its failure budget");
                ApiError::rate_limited(wait)
            }
            None => otherwise,
        }
    }

    /// Authenticates a raw token presented by the request in `parts`. A valid token
    /// authenticates wherever it comes from (then the per-identity rate applies); a
    /// failure is counted against the client address, and answered 429 instead of 401
    /// once the address has failed too often. A malformed token fails offline, so a
    /// blocked address's garbage costs no store read.
    pub async fn authenticate_raw(
        &self,
        parts: &Parts,
        raw: Option<&str>,
    ) -> Result<Principal, ApiError> {
        // The client address matters only to a refusal: worked out there, not on the
        // warm path.
        let Some(raw) = raw.filter(|r| !r.is_empty()) else {
            // No token is no guess: not counted, but a blocked address hears it is blocked.
            let ip = self.client_ip(parts);
            return Err(
                match ip.and_then(|ip| self.inner.limits.address_blocked(ip)) {
                    Some(wait) => {
                        crate::metrics::auth(crate::metrics::AuthOutcome::RateLimited);
                        ApiError::rate_limited(wait)
                    }
                    None => {
                        crate::metrics::auth(crate::metrics::AuthOutcome::Missing);
                        ApiError::unauthenticated()
                    }
                },
            );
        };
        let foreign_allowed = self.inner.foreign_allowed.load(Ordering::Relaxed);
        match crate::metrics::counted_authenticate(&*self.inner.tokens, raw, foreign_allowed).await
        {
            Ok(p) => {
                self.inner
                    .limits
                    .identity_request(p.identity().owner_id())
                    .inspect_err(|_| crate::metrics::auth(crate::metrics::AuthOutcome::RateLimited))
                    .map_err(ApiError::rate_limited)?;
                crate::metrics::auth(crate::metrics::AuthOutcome::Ok);
                tracing::debug!(owner = %p.identity().owner_id(), token_id = %p.token_id(), "authenticated");
                Ok(p)
            }
            Err(Error::Unauthenticated) => {
                let ip = self.client_ip(parts);
                tracing::info!(client = ?ip, "authentication failed");
                let refusal = self.failure(ip, ApiError::unauthenticated());
                if refusal.status() == axum::http::StatusCode::TOO_MANY_REQUESTS {
                    // The authenticator counted the reason; this counts the 429 it became.
                    crate::metrics::auth(crate::metrics::AuthOutcome::RateLimited);
                }
                Err(refusal)
            }
            Err(e) => Err(ApiError::from(e)),
        }
    }
}

/// The TCP peer of a request, when the server was started with connect info.
pub fn peer_of(extensions: &Extensions) -> Option<SocketAddr> {
    extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0)
}

/// The token of `Authorization: Bearer <token>` (scheme case-insensitive).
pub fn bearer(parts: &Parts) -> Option<&str> {
    bearer_from(&parts.headers)
}

/// [`bearer`] from a header map.
pub fn bearer_from(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// An authenticated caller: identity, the token's kinds and its id.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Principal);

impl Authenticated {
    /// The caller's own scope (for owner-scoped operations on their own objects).
    pub fn scope(&self) -> OwnerScope {
        OwnerScope::own(self.0.identity())
    }
}

impl<T> FromRequestParts<T> for Authenticated
where
    T: Send + Sync,
    AuthState: FromRef<T>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &T) -> Result<Self, Self::Rejection> {
        let auth = AuthState::from_ref(state);
        let parts = &*parts;
        auth.authenticate_raw(parts, bearer(parts)).await.map(Self)
    }
}

/// Like [`Authenticated`], also accepting `?access_token=` (only the SSE route uses it:
/// `EventSource` cannot set headers). Carries the token's digest so a long-lived stream
/// can check that its token still works.
///
/// The query is parsed with axum's `Query` (percent-decoded, as a browser encodes it). A
/// token sent in the URL must not hold the `manage` kind: URLs end up in proxy and
/// browser logs, so a token that can mint and revoke is refused there (403); send it in
/// the `Authorization` header, or give the stream an `api` token.
#[derive(Debug, Clone)]
pub struct AuthenticatedSse(pub Principal, pub ownership_core::token::TokenDigest);

/// The query string of the event stream.
#[derive(Debug, serde::Deserialize)]
struct StreamQuery {
    access_token: Option<String>,
}

impl<T> FromRequestParts<T> for AuthenticatedSse
where
    T: Send + Sync,
    AuthState: FromRef<T>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &T) -> Result<Self, Self::Rejection> {
        let auth = AuthState::from_ref(state);
        let (raw, in_url) = match bearer(parts) {
            Some(b) => (Some(b.to_owned()), false),
            None => {
                let query = axum::extract::Query::<StreamQuery>::try_from_uri(&parts.uri)
                    .map_err(|_| ApiError::bad_request("the query string is malformed"))?;
                (query.0.access_token, true)
            }
        };
        let principal = auth.authenticate_raw(parts, raw.as_deref()).await?;
        if in_url && principal.has_kind(&TokenKind::Manage) {
            return Err(ApiError::forbidden(
                "a token with the `manage` kind is not accepted in the URL; send it in the \
                 Authorization header, or use an `api` token for the stream",
            ));
        }
        let digest = ownership_core::token::digest_of(raw.as_deref().unwrap_or_default());
        Ok(Self(principal, digest))
    }
}

/// A token kind a route requires.
pub trait KindMarker: Send + Sync {
    /// The kind.
    fn kind() -> TokenKind;
}

/// Marker: `manage`.
#[derive(Debug, Clone, Copy)]
pub struct Manage;
/// Marker: `api`.
#[derive(Debug, Clone, Copy)]
pub struct Api;
/// Marker: `verify`.
#[derive(Debug, Clone, Copy)]
pub struct Verify;

impl KindMarker for Manage {
    fn kind() -> TokenKind {
        TokenKind::Manage
    }
}
impl KindMarker for Api {
    fn kind() -> TokenKind {
        TokenKind::Api
    }
}
impl KindMarker for Verify {
    fn kind() -> TokenKind {
        TokenKind::Verify
    }
}

/// An authenticated caller whose token holds kind `K` (else 403).
#[derive(Debug, Clone)]
pub struct RequireKind<K>(pub Principal, PhantomData<K>);

impl<K> RequireKind<K> {
    /// The caller's own scope.
    pub fn scope(&self) -> OwnerScope {
        OwnerScope::own(self.0.identity())
    }
}

impl<T, K> FromRequestParts<T> for RequireKind<K>
where
    T: Send + Sync,
    AuthState: FromRef<T>,
    K: KindMarker,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &T) -> Result<Self, Self::Rejection> {
        let Authenticated(p) = Authenticated::from_request_parts(parts, state).await?;
        if !p.has_kind(&K::kind()) {
            return Err(ApiError::forbidden(format!(
                "token kind `{}` required",
                K::kind()
            )));
        }
        Ok(Self(p, PhantomData))
    }
}

/// An Admin or Owner calling with a `manage` token (else 403): the proof user-management
/// operations take.
#[derive(Debug, Clone)]
pub struct RequireAdmin {
    /// The caller.
    pub principal: Principal,
    /// Their admin scope.
    pub scope: AdminScope,
}

impl<T> FromRequestParts<T> for RequireAdmin
where
    T: Send + Sync,
    AuthState: FromRef<T>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &T) -> Result<Self, Self::Rejection> {
        let RequireKind(principal, _) =
            RequireKind::<Manage>::from_request_parts(parts, state).await?;
        let scope = AdminScope::new(principal.identity())
            .ok_or_else(|| ApiError::forbidden("an Admin or Owner role is required"))?;
        Ok(Self { principal, scope })
    }
}

/// The TCP peer address, when the server was started with connect info.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub Option<SocketAddr>);

impl<T: Send + Sync> FromRequestParts<T> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &T) -> Result<Self, Self::Rejection> {
        Ok(Self(peer_of(&parts.extensions)))
    }
}

/// The client address as the limits see it ([`AuthState::client_ip`]): the TCP peer, or
/// what a trusted proxy says; `None` without connect info.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<IpAddr>);

impl<T> FromRequestParts<T> for ClientAddr
where
    T: Send + Sync,
    AuthState: FromRef<T>,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &T) -> Result<Self, Self::Rejection> {
        Ok(Self(AuthState::from_ref(state).client_ip(parts)))
    }
}
