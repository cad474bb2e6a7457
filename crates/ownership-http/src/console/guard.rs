//! What stands in front of every console handler: the session extractor ([`Signed`]),
//! the state-changing form extractor ([`Posted`]: same-origin check, session, CSRF token),
//! the session cookie, and the HTML refusals ([`Refusal`]).

use std::net::SocketAddr;
use std::time::Duration;

use askama::Template;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::request::Parts;
use axum::http::{Extensions, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use axum_extra::extract::{Form, FormRejection};
use ownership_core::authz::{AdminScope, OwnerScope, Principal};
use ownership_core::{Error, Identity, TokenKind};
use serde::de::DeserializeOwned;

use super::ConsoleState;
use super::session::Session;
use super::views::{Badge, Chrome, ErrorPage};
use crate::auth::peer_of;
use crate::error::LoggedError;
use crate::proxy::TrustedProxies;
use crate::state::ServiceConfig;
use ownership_core::sessions::SessionKey;

/// Where the sign-in page is.
pub(crate) const LOGIN: &str = "/console/login";

/// Whether this request reached us over HTTPS: the operator said so
/// (`console_secure_cookies`), or the TCP peer is a trusted proxy (`trusted_proxies`)
/// that says so in `X-Forwarded-Proto`.
pub(crate) fn is_secure(
    config: &ServiceConfig,
    proxies: &TrustedProxies,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
) -> bool {
    config.console_secure_cookies || proxies.forwarded_https(headers, peer.map(|p| p.ip()))
}

/// [`is_secure`] for a console request, from its headers and extensions (the peer).
pub(crate) fn request_is_secure(
    state: &ConsoleState,
    headers: &HeaderMap,
    extensions: &Extensions,
) -> bool {
    is_secure(
        &state.app.config,
        state.app.auth.proxies(),
        headers,
        peer_of(extensions),
    )
}

/// The session cookie's name: `__Host-` prefixed over HTTPS (the browser then insists on
/// `Secure`, `Path=/` and no `Domain`).
pub(crate) fn session_cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-ownership_session"
    } else {
        "ownership_session"
    }
}

/// The sign-in form's CSRF cookie (double submit: the form carries the same value).
pub(crate) fn login_cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-ownership_login"
    } else {
        "ownership_login"
    }
}

/// A console cookie: `HttpOnly; SameSite=Strict; Path=/`, and `Secure` over HTTPS. No
/// `Max-Age`: it goes when the browser closes; the server ends the session anyway.
pub(crate) fn cookie(name: &'static str, value: String, secure: bool) -> Cookie<'static> {
    Cookie::build((name, value))
        .http_only(true)
        .same_site(SameSite::Strict)
        .path("/")
        .secure(secure)
        .build()
}

/// The same cookie, expired: the browser drops it.
pub(crate) fn expired_cookie(name: &'static str, secure: bool) -> Cookie<'static> {
    let mut c = cookie(name, String::new(), secure);
    c.set_max_age(time::Duration::ZERO);
    c
}

/// The request's own origin, `scheme://host[:port]`, from `Host` (or the URI's authority),
/// `https` when `secure` ([`is_secure`]).
fn own_origin(secure: bool, headers: &HeaderMap, uri: &Uri) -> Option<String> {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| uri.authority().map(ToString::to_string))?;
    let scheme = if secure { "https" } else { "http" };
    Some(format!("{scheme}://{host}"))
}

/// Refuses (403) a state-changing request that a browser says came from elsewhere:
/// `Sec-Fetch-Site` other than `same-origin` (or `none`, a user's own navigation), or an
/// `Origin` other than the request's own. Requests without either header (old browsers,
/// scripts) still need the CSRF token.
///
/// `Origin: null` says nothing either way and is treated as absent: under the console's
/// own `Referrer-Policy: no-referrer`, browsers send exactly that on the console's own
/// form posts (Fetch, "append a request `Origin` header"). A forged post from an opaque
/// origin (a sandboxed frame, say) still fails on `Sec-Fetch-Site`, on the
/// `SameSite=Strict` cookie it does not carry, and on the CSRF token it cannot know.
pub(crate) fn same_origin(secure: bool, headers: &HeaderMap, uri: &Uri) -> Result<(), Refusal> {
    if let Some(site) = headers.get("sec-fetch-site")
        && !matches!(site.as_bytes(), b"same-origin" | b"none")
    {
        return Err(Refusal::cross_site());
    }
    if let Some(origin) = headers
        .get(header::ORIGIN)
        .filter(|o| o.as_bytes() != b"null")
    {
        let ok = own_origin(secure, headers, uri)
            .is_some_and(|own| origin.as_bytes().eq_ignore_ascii_case(own.as_bytes()));
        if !ok {
            return Err(Refusal::cross_site());
        }
    }
    Ok(())
}

/// Why a console request was not served, rendered as a page (or a redirect to sign in).
#[derive(Debug)]
pub(crate) enum Refusal {
    /// No live session: to the sign-in page, dropping a stale cookie.
    SignIn {
        /// The cookie to expire, if the request carried one.
        clear: Option<&'static str>,
        /// Whether cookies are `Secure`.
        secure: bool,
    },
    /// An error page.
    Page {
        status: StatusCode,
        code: &'static str,
        heading: &'static str,
        message: String,
        retry_after: Option<Duration>,
        detail: Option<String>,
    },
}

impl Refusal {
    fn page(
        status: StatusCode,
        code: &'static str,
        heading: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self::Page {
            status,
            code,
            heading,
            message: message.into(),
            retry_after: None,
            detail: None,
        }
    }

    /// What to log (never shown).
    fn with_detail(mut self, what: String) -> Self {
        if let Self::Page { detail, .. } = &mut self {
            *detail = Some(what);
        }
        self
    }

    /// 403: the request came from another site, or without this session's CSRF token.
    pub fn cross_site() -> Self {
        Self::page(
            StatusCode::FORBIDDEN,
            "csrf",
            "Request refused",
            "This request did not come from a page of this console, so nothing was changed. \
             Go back, reload the page and try again.",
        )
    }

    /// A sign-in with an identity provider that did not work: `message` is shown, `detail`
    /// only logged.
    pub fn sign_in_refused(status: StatusCode, message: &str, detail: String) -> Self {
        Self::page(status, "sign_in_refused", "Sign-in refused", message).with_detail(detail)
    }

    /// 403: the role does not allow the page.
    pub fn admins_only() -> Self {
        Self::page(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Not allowed",
            "Only Admins and Owners may use this page.",
        )
    }

    /// 404.
    pub fn not_found() -> Self {
        Self::page(
            StatusCode::NOT_FOUND,
            "not_found",
            "Not found",
            "There is no such page.",
        )
    }

    /// 405.
    pub fn method_not_allowed() -> Self {
        Self::page(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "Not allowed",
            "This page does not accept that kind of request.",
        )
    }

    /// 429 with `Retry-After`.
    pub fn rate_limited(wait: Duration) -> Self {
        Self::Page {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: "rate_limited",
            heading: "Too many requests",
            message: format!("Too many requests; try again in {}.", wait_text(wait)),
            retry_after: Some(wait),
            detail: None,
        }
    }

    /// An error a use case returned that has no better place on the page: the store is
    /// unreachable (503, fail closed), an integrity failure (500), and so on. The detail
    /// is logged, never shown.
    pub fn from_error(e: Error) -> Self {
        match e {
            Error::RateLimited { retry_after } => Self::rate_limited(retry_after),
            Error::NotFound => Self::not_found(),
            Error::Forbidden(rule) => Self::page(
                StatusCode::FORBIDDEN,
                "forbidden",
                "Not allowed",
                super::views::sentence(&rule),
            ),
            Error::Unavailable(detail) => Self::page(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Unavailable",
                "The service cannot reach its store right now; try again shortly.",
            )
            .with_detail(detail),
            Error::Disabled(what) => Self::page(
                StatusCode::SERVICE_UNAVAILABLE,
                "disabled",
                "Unavailable",
                format!("{what} are disabled on this server."),
            ),
            other => Self::page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Something went wrong",
                "An internal error occurred; it has been logged.",
            )
            .with_detail(other.to_string()),
        }
    }
}

/// "3 minutes", "40 seconds".
pub(crate) fn wait_text(wait: Duration) -> String {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    match secs {
        0..=1 => "1 second".to_owned(),
        2..=90 => format!("{secs} seconds"),
        _ => format!("{} minutes", secs.div_ceil(60)),
    }
}

/// An HTML response. Refusals carry the [`LoggedError`] marker, so the service's error
/// middleware logs them and leaves the page alone (it turns bare errors into JSON).
pub(crate) fn html(status: StatusCode, body: String, logged: Option<LoggedError>) -> Response {
    let mut res = (status, Html(body)).into_response();
    if let Some(l) = logged {
        res.extensions_mut().insert(l);
    }
    res
}

/// Renders a template; a template that fails to render is a logged 500.
pub(crate) fn render<T: Template>(status: StatusCode, page: &T) -> Response {
    match page.render() {
        Ok(body) => {
            let logged =
                (status.is_client_error() || status.is_server_error()).then_some(LoggedError {
                    status,
                    code: "console",
                    detail: None,
                });
            html(status, body, logged)
        }
        Err(e) => html(
            StatusCode::INTERNAL_SERVER_ERROR,
            "<!doctype html><title>Error</title><p role=\"alert\">Internal error.</p>".into(),
            Some(LoggedError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                code: "internal",
                detail: Some(format!("console template: {e}")),
            }),
        ),
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Self::SignIn { clear, secure } => {
                let jar = match clear {
                    Some(name) => CookieJar::new().add(expired_cookie(name, secure)),
                    None => CookieJar::new(),
                };
                (jar, Redirect::to(LOGIN)).into_response()
            }
            Self::Page {
                status,
                code,
                heading,
                message,
                retry_after,
                detail,
            } => {
                let page = ErrorPage {
                    chrome: Chrome {
                        title: heading,
                        ..Chrome::default()
                    },
                    heading,
                    message,
                    back_href: "/console",
                    back_text: "Back to the console",
                };
                let mut res = render(status, &page);
                res.extensions_mut().insert(LoggedError {
                    status,
                    code,
                    detail,
                });
                if let Some(wait) = retry_after {
                    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                    if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
                        res.headers_mut().insert(header::RETRY_AFTER, v);
                    }
                }
                res
            }
        }
    }
}

/// A request from a live session (in the store, within its timeouts, its user active)
/// whose token, for a token sign-in, still authenticates as its user.
///
/// On every request the session is read from the store, so a sign-out, suspension or
/// deletion in any process ends it; a token sign-in's token digest is looked up too (the
/// cache decorator answers warm lookups from memory, and revocation evicts it in every
/// process): if the token no longer authenticates, or now belongs to someone else, or
/// lost `manage`, the session ends and the browser goes to the sign-in page.
#[derive(Debug, Clone)]
pub(crate) struct Signed {
    /// The signed-in user, as the store sees them now.
    pub identity: Identity,
    /// The session's token, as the store sees it now (a token sign-in only).
    pub principal: Option<Principal>,
    /// The session.
    pub session: Session,
    /// Whether the request came over HTTPS (the cookie's name and `Secure`).
    pub secure: bool,
}

impl Signed {
    /// The user's own scope.
    pub fn scope(&self) -> OwnerScope {
        OwnerScope::own(&self.identity)
    }

    /// The session's key, to end it.
    pub fn key(&self) -> &SessionKey {
        self.session.key()
    }

    /// The user's admin scope, or 403 for a Member (logged: a refused authorization).
    pub fn admin(&self) -> Result<AdminScope, Refusal> {
        AdminScope::new(&self.identity).ok_or_else(|| {
            tracing::info!(owner = %self.identity.owner_id(), "console admin page refused: the role is not Admin or Owner");
            Refusal::admins_only()
        })
    }

    /// The token of a token sign-in, which minting needs (a token mints at most what it
    /// holds); an error for a session started another way.
    pub fn minting_token(&self) -> Result<&Principal, Error> {
        self.principal.as_ref().ok_or_else(|| {
            Error::Forbidden(
                "minting tokens needs a session started with a `manage` token; sign in with a token to mint".into(),
            )
        })
    }

    /// The page frame for this user, with the session's queued messages.
    pub fn chrome(&self, title: &'static str, current: &'static str) -> Chrome {
        Chrome {
            title,
            user: Some(Badge {
                id: self.identity.owner_id().to_string(),
                is_admin: self.identity.role().is_admin(),
            }),
            csrf: self.session.csrf().to_owned(),
            flashes: self.session.take_flashes(),
            current,
        }
    }
}

impl FromRequestParts<ConsoleState> for Signed {
    type Rejection = Refusal;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ConsoleState,
    ) -> Result<Self, Self::Rejection> {
        let secure = request_is_secure(state, &parts.headers, &parts.extensions);
        let name = session_cookie_name(secure);
        let jar = CookieJar::from_headers(&parts.headers);
        let Some(secret) = jar.get(name).map(|c| c.value().to_owned()) else {
            return Err(Refusal::SignIn {
                clear: None,
                secure,
            });
        };
        let ended = Refusal::SignIn {
            clear: Some(name),
            secure,
        };
        let store = &*state.app.store;
        let Some((session, identity)) = state
            .sessions
            .get(store, &secret)
            .await
            .map_err(Refusal::from_error)?
        else {
            return Err(ended);
        };
        let principal = match session.token() {
            None => None,
            Some(bound) => match store.authenticate(&bound.digest).await {
                Ok(Some(principal))
                    if principal.identity().owner_id() == session.owner()
                        && principal.token_id() == &bound.id
                        && principal.has_kind(&TokenKind::Manage) =>
                {
                    Some(principal)
                }
                Ok(_) => {
                    tracing::info!(owner = %session.owner(), token_id = %bound.id, "console session ended: its token no longer authenticates");
                    state
                        .sessions
                        .end(store, session.key())
                        .await
                        .map_err(Refusal::from_error)?;
                    return Err(ended);
                }
                Err(e) => return Err(Refusal::from_error(e)),
            },
        };
        state
            .app
            .auth
            .limits()
            .identity_request(identity.owner_id())
            .map_err(Refusal::rate_limited)?;
        Ok(Self {
            identity,
            principal,
            session,
            secure,
        })
    }
}

/// A form whose CSRF field can be checked.
pub(crate) trait CsrfForm {
    /// The `csrf` field as submitted (empty when missing).
    fn csrf(&self) -> &str;
}

/// A state-changing request: a POST from this console's own origin, by a live session,
/// carrying that session's CSRF token; otherwise 403 and nothing happens.
#[derive(Debug)]
pub(crate) struct Posted<T> {
    /// Who.
    pub user: Signed,
    /// The form.
    pub form: T,
}

impl<T> FromRequest<ConsoleState> for Posted<T>
where
    T: DeserializeOwned + CsrfForm + Send,
{
    type Rejection = Refusal;

    async fn from_request(req: Request, state: &ConsoleState) -> Result<Self, Self::Rejection> {
        let secure = request_is_secure(state, req.headers(), req.extensions());
        same_origin(secure, req.headers(), req.uri()).inspect_err(|_| {
            tracing::info!(path = %req.uri().path(), "console form refused: sent from another site");
        })?;
        let (mut parts, body) = req.into_parts();
        let user = Signed::from_request_parts(&mut parts, state).await?;
        let req = Request::from_parts(parts, body);
        let Form(form) = Form::<T>::from_request(req, state)
            .await
            .map_err(form_refusal)?;
        if !user.session.csrf_matches(form.csrf()) {
            tracing::info!(owner = %user.identity.owner_id(), "console form refused: missing or wrong CSRF token");
            return Err(Refusal::cross_site());
        }
        Ok(Self { user, form })
    }
}

/// A signed-in Admin or Owner and their admin scope: a Member is refused (403, logged)
/// before the handler runs. What every admin page takes.
pub(crate) struct AdminSigned {
    /// Who.
    pub user: Signed,
    /// Their admin scope.
    pub admin: AdminScope,
}

impl FromRequestParts<ConsoleState> for AdminSigned {
    type Rejection = Refusal;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ConsoleState,
    ) -> Result<Self, Self::Rejection> {
        let user = Signed::from_request_parts(parts, state).await?;
        let admin = user.admin()?;
        Ok(Self { user, admin })
    }
}

/// [`Posted`] by an Admin or Owner, with their admin scope (a Member: 403, after the
/// form's own checks). What every admin form takes.
pub(crate) struct AdminPosted<T> {
    /// Who.
    pub user: Signed,
    /// Their admin scope.
    pub admin: AdminScope,
    /// The form.
    pub form: T,
}

impl<T> FromRequest<ConsoleState> for AdminPosted<T>
where
    T: DeserializeOwned + CsrfForm + Send,
{
    type Rejection = Refusal;

    async fn from_request(req: Request, state: &ConsoleState) -> Result<Self, Self::Rejection> {
        let Posted { user, form } = Posted::from_request(req, state).await?;
        let admin = user.admin()?;
        Ok(Self { user, admin, form })
    }
}

/// A form that cannot be read: too large (413), or not one of ours (403: our forms are
/// always URL-encoded with every field).
pub(crate) fn form_refusal(r: FormRejection) -> Refusal {
    if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Refusal::page(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "Too large",
            "The form was too large.",
        )
    } else {
        Refusal::cross_site()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn uri() -> Uri {
        Uri::from_static("/console/tokens")
    }

    #[test]
    fn same_origin_posts_pass_and_others_are_refused() {
        let ok = |h: &[(&'static str, &str)]| same_origin(false, &headers(h), &uri()).is_ok();
        assert!(ok(&[("host", "127.0.0.1:8080")]), "no browser headers");
        assert!(ok(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
            ("sec-fetch-site", "same-origin"),
        ]));
        assert!(!ok(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "https://evil.example")
        ]));
        assert!(
            ok(&[("host", "127.0.0.1:8080"), ("origin", "null")]),
            "what browsers send under Referrer-Policy: no-referrer"
        );
        assert!(!ok(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "null"),
            ("sec-fetch-site", "cross-site")
        ]));
        assert!(!ok(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "https://127.0.0.1:8080")
        ]));
        assert!(!ok(&[
            ("host", "127.0.0.1:8080"),
            ("sec-fetch-site", "cross-site")
        ]));
        assert!(!ok(&[
            ("host", "127.0.0.1:8080"),
            ("sec-fetch-site", "same-site")
        ]));
    }

    #[test]
    fn https_is_the_operators_word_or_a_trusted_proxys() {
        let plain = ServiceConfig::default();
        let xfp = headers(&[("x-forwarded-proto", "https")]);
        let proxy: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let stranger: SocketAddr = "127.0.0.4:40000".parse().unwrap();
        let trusted = TrustedProxies::new(["127.0.0.1/32".parse().unwrap()]);
        assert!(
            !is_secure(&plain, &TrustedProxies::none(), &xfp, Some(proxy)),
            "X-Forwarded-Proto is ignored without trusted proxies"
        );
        assert!(is_secure(&plain, &trusted, &xfp, Some(proxy)));
        assert!(
            !is_secure(&plain, &trusted, &xfp, Some(stranger)),
            "X-Forwarded-Proto from a peer that is not a trusted proxy is ignored"
        );
        assert!(!is_secure(&plain, &trusted, &xfp, None));
        assert!(!is_secure(&plain, &trusted, &HeaderMap::new(), Some(proxy)));
        let tls = ServiceConfig {
            console_secure_cookies: true,
            ..ServiceConfig::default()
        };
        assert!(is_secure(
            &tls,
            &TrustedProxies::none(),
            &HeaderMap::new(),
            None
        ));
        assert_eq!(session_cookie_name(true), "__Host-ownership_session");
        let c = cookie(session_cookie_name(true), "v".into(), true).to_string();
        for part in ["HttpOnly", "SameSite=Strict", "Path=/", "Secure"] {
            assert!(c.contains(part), "{c}");
        }
        let c = cookie(session_cookie_name(false), "v".into(), false).to_string();
        assert!(!c.contains("Secure"), "{c}");
        let ok = same_origin(
            true,
            &headers(&[
                ("host", "console.example"),
                ("origin", "https://console.example"),
            ]),
            &uri(),
        );
        assert!(ok.is_ok());
    }

    #[test]
    fn waits_read_well() {
        assert_eq!(wait_text(Duration::from_millis(300)), "1 second");
        assert_eq!(wait_text(Duration::from_secs(40)), "40 seconds");
        assert_eq!(wait_text(Duration::from_secs(170)), "3 minutes");
    }
}
