//! Sign-in with an OpenID Connect provider (docs/security.md#console): the authorization
//! code flow with PKCE, `state` and `nonce`, on the `openidconnect` relying-party crate.
//!
//! - `GET /console/oidc/start` discovers the provider (its metadata and keys, kept for
//!   five minutes), draws a `state`, a `nonce` and a PKCE verifier, keeps the three in a
//!   short-lived `HttpOnly` cookie (`SameSite=Lax`, so it comes back with the provider's
//!   redirect, a cross-site navigation) and sends the browser to the provider.
//! - `GET /console/oidc/callback` takes the cookie (single use: it is dropped whatever
//!   happens), requires the returned `state` to equal the cookie's, redeems the code with
//!   the verifier and the client secret, and validates the ID token: signature (the
//!   provider's published keys, RS256/PS256/ES256 only), issuer, audience, expiry and
//!   nonce. The `(issuer, sub)` it names is then looked up among the links (or linked from
//!   an allow-listed *verified* email: `ownership_core::oidc`); a linked, active user gets a
//!   session, anyone else a page that says they are not linked.
//!
//! The callback answers with a small page that sends the browser on to the console
//! (`<meta http-equiv="refresh">` and a link): the session cookie is `SameSite=Strict`,
//! and a redirect chain that began at the provider is cross-site, so the browser would
//! not send it with a plain redirect.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreJwsSigningAlgorithm, CoreProviderMetadata,
};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use ownership_core::oidc::{OidcSubject, allow_listed};

use crate::state::OidcConfig;
use ownership_core::sessions::SessionMethod;
use ownership_core::token::digest_of;
use serde::Deserialize;
use tokio::sync::Mutex;

use super::ConsoleState;
use super::guard::{Refusal, render, request_is_secure};
use super::signin::signed_in;
use super::views::{Chrome, ContinuePage};

/// How long discovered metadata and keys are reused.
const METADATA_TTL: Duration = Duration::from_secs(300);
/// How long a started sign-in may take at the provider.
const FLOW_MAX_AGE: time::Duration = time::Duration::minutes(10);
/// The ID-token signature algorithms accepted (asymmetric only).
const ALGORITHMS: [CoreJwsSigningAlgorithm; 3] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
];

/// The provider as this process knows it: its configuration, an HTTP client that follows
/// no redirects, and the discovered metadata.
pub(crate) struct Oidc {
    config: OidcConfig,
    http: openidconnect::reqwest::Client,
    metadata: Mutex<Option<(Instant, CoreProviderMetadata)>>,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oidc")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Why a sign-in with the provider did not work: logged, and shown as a page.
fn refused(status: StatusCode, message: &str, detail: String) -> Response {
    tracing::info!(detail = %detail, "console OpenID Connect sign-in refused");
    Refusal::sign_in_refused(status, message, detail).into_response()
}

fn unavailable(detail: String) -> Response {
    refused(
        StatusCode::BAD_GATEWAY,
        "The identity provider could not be reached or answered wrongly; try again shortly.",
        detail,
    )
}

impl Oidc {
    /// The provider of `config`, or `None` when no issuer is configured.
    pub fn new(config: Option<&OidcConfig>) -> Option<Arc<Self>> {
        let config = config?.clone();
        let http = openidconnect::reqwest::Client::builder()
            .redirect(openidconnect::reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .ok()?;
        Some(Arc::new(Self {
            config,
            http,
            metadata: Mutex::new(None),
        }))
    }

    /// The provider's name, for the sign-in page.
    pub fn display_name(&self) -> &str {
        &self.config.display_name
    }

    async fn metadata(&self) -> Result<CoreProviderMetadata, String> {
        let mut cached = self.metadata.lock().await;
        if let Some((at, m)) = &*cached
            && at.elapsed() < METADATA_TTL
        {
            return Ok(m.clone());
        }
        let issuer =
            IssuerUrl::new(self.config.issuer.clone()).map_err(|e| format!("issuer URL: {e}"))?;
        let m = CoreProviderMetadata::discover_async(issuer, &self.http)
            .await
            .map_err(|e| format!("discovery: {e}"))?;
        *cached = Some((Instant::now(), m.clone()));
        Ok(m)
    }

    async fn forget_metadata(&self) {
        *self.metadata.lock().await = None;
    }

    async fn client(
        &self,
    ) -> Result<
        CoreClient<
            openidconnect::EndpointSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointMaybeSet,
            openidconnect::EndpointMaybeSet,
        >,
        String,
    > {
        let metadata = self.metadata().await?;
        let redirect = RedirectUrl::new(self.config.redirect_uri())
            .map_err(|e| format!("redirect URI: {e}"))?;
        Ok(CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.config.client_id.clone()),
            self.config.client_secret.clone().map(ClientSecret::new),
        )
        .set_redirect_uri(redirect))
    }
}

/// The sign-in in progress, kept in the browser between start and callback.
struct Flow {
    state: String,
    nonce: String,
    verifier: String,
}

impl Flow {
    fn encode(&self) -> String {
        format!("{}.{}.{}", self.state, self.nonce, self.verifier)
    }

    fn decode(raw: &str) -> Option<Self> {
        let mut parts = raw.split('.');
        let (state, nonce, verifier) = (parts.next()?, parts.next()?, parts.next()?);
        let ok = |p: &str| !p.is_empty() && p.len() <= 128;
        (parts.next().is_none() && ok(state) && ok(nonce) && ok(verifier)).then(|| Self {
            state: state.to_owned(),
            nonce: nonce.to_owned(),
            verifier: verifier.to_owned(),
        })
    }
}

fn flow_cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-ownership_oidc"
    } else {
        "ownership_oidc"
    }
}

fn flow_cookie(value: String, secure: bool, max_age: time::Duration) -> Cookie<'static> {
    let mut c = Cookie::build((flow_cookie_name(secure), value))
        .http_only(true)
        .same_site(SameSite::Lax)
        .path("/")
        .secure(secure)
        .build();
    c.set_max_age(max_age);
    c
}

fn provider(state: &ConsoleState) -> Result<&Arc<Oidc>, Refusal> {
    state.oidc.as_ref().ok_or_else(Refusal::not_found)
}

/// `GET /console/oidc/start`: off to the provider.
pub(crate) async fn start(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    req: axum::extract::Request,
) -> Response {
    let oidc = match provider(&state) {
        Ok(o) => Arc::clone(o),
        Err(r) => return r.into_response(),
    };
    let secure = request_is_secure(&state, &headers, req.extensions());
    let client = match oidc.client().await {
        Ok(c) => c,
        Err(e) => return unavailable(e),
    };
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, csrf, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".to_owned()))
        .set_pkce_challenge(challenge)
        .url();
    let flow = Flow {
        state: csrf.secret().clone(),
        nonce: nonce.secret().clone(),
        verifier: verifier.secret().clone(),
    };
    let jar = CookieJar::new().add(flow_cookie(flow.encode(), secure, FLOW_MAX_AGE));
    (jar, Redirect::to(url.as_str())).into_response()
}

/// What the provider sends back.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /console/oidc/callback`: the provider's answer.
pub(crate) async fn callback(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    query: Result<Query<Callback>, axum::extract::rejection::QueryRejection>,
    req: axum::extract::Request,
) -> Response {
    let oidc = match provider(&state) {
        Ok(o) => Arc::clone(o),
        Err(r) => return r.into_response(),
    };
    let secure = request_is_secure(&state, &headers, req.extensions());
    // The flow cookie is single use: dropped whatever the outcome.
    let drop_flow = CookieJar::new().add(flow_cookie(String::new(), secure, time::Duration::ZERO));
    let answer = sign_in(&state, &oidc, &headers, secure, query).await;
    (drop_flow, answer).into_response()
}

const NOT_STARTED: &str = "This sign-in was not started from this browser, or took too long. \
     Go back to the sign-in page and start again.";
const FAILED: &str = "The identity provider's answer could not be verified, so nobody was \
     signed in. Go back to the sign-in page and start again.";

async fn sign_in(
    state: &ConsoleState,
    oidc: &Oidc,
    headers: &HeaderMap,
    secure: bool,
    query: Result<Query<Callback>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(cb)) = query else {
        return refused(StatusCode::BAD_REQUEST, FAILED, "malformed callback".into());
    };
    let jar = CookieJar::from_headers(headers);
    let Some(flow) = jar
        .get(flow_cookie_name(secure))
        .and_then(|c| Flow::decode(c.value()))
    else {
        return refused(
            StatusCode::BAD_REQUEST,
            NOT_STARTED,
            "no sign-in in progress in this browser".into(),
        );
    };
    let returned = cb.state.unwrap_or_default();
    if returned.is_empty() || digest_of(&returned) != digest_of(&flow.state) {
        return refused(
            StatusCode::BAD_REQUEST,
            NOT_STARTED,
            "the returned state does not match this browser's".into(),
        );
    }
    if let Some(error) = cb.error {
        let mut shown: String = error.chars().filter(char::is_ascii_alphanumeric).collect();
        shown.truncate(64);
        return refused(
            StatusCode::FORBIDDEN,
            "The identity provider did not sign you in. Go back to the sign-in page to try again.",
            format!("the provider answered `{shown}`"),
        );
    }
    let Some(code) = cb.code.filter(|c| !c.is_empty() && c.len() <= 2048) else {
        return refused(
            StatusCode::BAD_REQUEST,
            FAILED,
            "no code in the callback".into(),
        );
    };
    let client = match oidc.client().await {
        Ok(c) => c,
        Err(e) => return unavailable(e),
    };
    let request = match client.exchange_code(AuthorizationCode::new(code)) {
        Ok(r) => r,
        Err(e) => return unavailable(format!("the provider has no token endpoint: {e}")),
    };
    let tokens = match request
        .set_pkce_verifier(PkceCodeVerifier::new(flow.verifier))
        .request_async(&oidc.http)
        .await
    {
        Ok(t) => t,
        Err(e) => {
            return refused(
                StatusCode::FORBIDDEN,
                FAILED,
                format!("the code was not redeemed: {e}"),
            );
        }
    };
    let Some(id_token) = tokens.id_token() else {
        return refused(
            StatusCode::FORBIDDEN,
            FAILED,
            "no ID token in the answer".into(),
        );
    };
    let verifier = client.id_token_verifier().set_allowed_algs(ALGORITHMS);
    let nonce = Nonce::new(flow.nonce);
    let claims = match id_token.claims(&verifier, &nonce) {
        Ok(c) => c,
        Err(e) => {
            // A key the provider rotated in since discovery: fetch the keys again next time.
            oidc.forget_metadata().await;
            return refused(
                StatusCode::FORBIDDEN,
                FAILED,
                format!("the ID token is not valid: {e}"),
            );
        }
    };
    let subject = match OidcSubject::parse(claims.issuer().as_str(), claims.subject().as_str()) {
        Ok(s) => s,
        Err(e) => return refused(StatusCode::FORBIDDEN, FAILED, format!("ID token: {e}")),
    };
    let allowed = allow_listed(
        &oidc.config.allowed_emails,
        claims.email().map(|e| e.as_str()),
        claims.email_verified(),
    );
    let owner = match state.app.store.oidc_sign_in(&subject, allowed).await {
        Ok(Some(owner)) => owner,
        Ok(None) => {
            return refused(
                StatusCode::FORBIDDEN,
                "This identity-provider account is not linked to a user here. Ask an \
                 administrator to link it, then sign in again.",
                format!(
                    "subject `{}` of {} is not linked",
                    subject.subject(),
                    subject.issuer()
                ),
            );
        }
        Err(e) => return Refusal::from_error(e).into_response(),
    };
    let res = signed_in(state, headers, secure, &owner, SessionMethod::Oidc, None).await;
    if !res.status().is_redirection() {
        return res;
    }
    // On to the console from a page of ours (see the module's documentation).
    let (mut parts, _) = res.into_parts();
    let page = ContinuePage {
        chrome: Chrome {
            title: "Signed in",
            ..Chrome::default()
        },
    };
    let mut page = render(StatusCode::OK, &page);
    for cookie in parts.headers.get_all(axum::http::header::SET_COOKIE) {
        page.headers_mut()
            .append(axum::http::header::SET_COOKIE, cookie.clone());
    }
    parts.headers.clear();
    page
}

#[cfg(test)]
mod tests {
    use super::*;
    use ownership_core::oidc::AllowList;

    #[test]
    fn flows_round_trip_and_junk_is_refused() {
        let f = Flow {
            state: "s".into(),
            nonce: "n".into(),
            verifier: "v".into(),
        };
        let back = Flow::decode(&f.encode()).unwrap();
        assert_eq!(
            (back.state, back.nonce, back.verifier),
            ("s".into(), "n".into(), "v".into())
        );
        assert!(Flow::decode("a.b").is_none());
        assert!(Flow::decode("a.b.c.d").is_none());
        assert!(Flow::decode("a..c").is_none());
        assert!(Flow::decode(&format!("{}.b.c", "x".repeat(129))).is_none());
    }

    #[test]
    fn the_client_secret_is_never_in_debug_output() {
        let c = OidcConfig {
            issuer: "https://idp.example".into(),
            client_id: "ownership".into(),
            client_secret: Some("hunter2-secret".into()),
            display_name: "Example".into(),
            redirect_base: "https://console.example/".into(),
            allowed_emails: AllowList::default(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(
            c.redirect_uri(),
            "https://console.example/console/oidc/callback"
        );
    }
}
