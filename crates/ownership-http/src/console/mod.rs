//! The web console (docs/security.md#console): server-rendered pages under `/console` for people who
//! would rather click than `curl`.
//!
//! It is an adapter like the REST routes and holds no rule of its own: every action calls
//! the same use case (`ownership_core::service`) or port with the same proof value
//! (`OwnerScope`, `AdminScope`, the session's `Principal`) as its `/v1` twin, and shows
//! what comes back. No SQL, no authorization decision and no business rule lives here.
//!
//! - **Pages**: askama templates (`templates/*.html`, compiled into the binary and
//!   HTML-escaped by default), one small stylesheet embedded with `include_str!`, and
//!   one script (`assets/passkey.js`, the browser's half of the passkey ceremonies),
//!   loaded only by the passkeys page and the sign-in page. Actions are plain POST forms
//!   answered by a redirect (POST-redirect-GET) with
//!   one-time messages kept in the session. The one exception: a newly minted token
//!   (a user's, a service token, a resource credential) or webhook signing secret is
//!   rendered directly by the POST's response (`Cache-Control: no-store`) so that its
//!   value is never kept on the server, not even until the next page; every minting form
//!   carries a single-use id, so a browser that resubmits it mints nothing twice. A
//!   secret's value is never rendered at all.
//! - **Sessions** (`session.rs`, `signin.rs`): a random 256-bit secret in an `HttpOnly`,
//!   `SameSite=Strict`, `Path=/` cookie (`__Host-` and `Secure` over HTTPS); the store
//!   keeps its SHA-256 digest (`ownership_core::sessions`), so every process sees the
//!   same sessions, with idle and absolute timeouts and a bound per user. A session is
//!   started by a `manage` token (bound to it: every request re-authenticates its digest,
//!   so revoking it ends the session), an OpenID Connect provider (unlinking ends it) or
//!   a passkey (removing a passkey ends its owner's passkey sessions); suspending or
//!   deleting the user ends every session (`guard::Signed`).
//! - **CSRF**: every state-changing request is a POST from this origin (`Origin` and
//!   `Sec-Fetch-Site` checked when present) carrying the session's CSRF token
//!   (`guard::Posted`); the sign-in form uses a double-submit cookie.
//! - **Headers**: every console response sends a strict `Content-Security-Policy`,
//!   `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`,
//!   `X-Frame-Options: DENY` and `Cache-Control: no-store`.
//!
//! The session cookie authenticates console routes only: `/v1` reads bearer tokens and
//! never cookies, so no cross-site request can ride a console session into the API.

mod account;
mod admin;
mod guard;
mod oidc;
mod pages;
mod passkeys;
mod session;
mod signin;
mod views;

use std::sync::Arc;

use axum::Router;
use axum::http::header::{self, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use tokio::sync::Mutex;

pub use crate::passkey_settings::PasskeySettings;
use crate::state::AppState;
pub use crate::state::OidcConfig;
use guard::Refusal;
use session::Sessions;

/// `Content-Security-Policy` of every console response: nothing but our own origin, no
/// framing, forms post only to us, no `<base>`, no plugins.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; frame-ancestors 'none'; \
     form-action 'self'; base-uri 'none'; object-src 'none'";

/// The stylesheet, from the binary.
const CSS: &str = include_str!("assets/console.css");

/// The console's state: the service's, the sessions of this process, and its check of the
/// audit chain (`pages::ChainCheck`: a verdict reused for a few seconds, then a check of
/// what was appended since; the lock makes concurrent page views share one check).
#[derive(Clone)]
pub(crate) struct ConsoleState {
    app: AppState,
    sessions: Arc<Sessions>,
    oidc: Option<Arc<oidc::Oidc>>,
    chain: Arc<Mutex<pages::ChainCheck>>,
    passkeys: Arc<passkeys::Passkeys>,
}

impl std::fmt::Debug for ConsoleState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleState")
            .field("sessions", &self.sessions)
            .finish_non_exhaustive()
    }
}

/// The console's routes, `GET /` (a redirect to `/console`) and the stylesheet, ready to
/// merge into a router of [`AppState`] ([`crate::router`] does). Mount it once per
/// process (one-time messages, used form ids and passkey ceremonies live in it).
pub fn router(state: &AppState) -> Router<AppState> {
    let console = ConsoleState {
        app: state.clone(),
        sessions: Arc::new(Sessions::new(state.config.console_sessions)),
        oidc: oidc::Oidc::new(state.config.oidc.as_ref()),
        chain: Arc::new(Mutex::new(pages::ChainCheck::default())),
        passkeys: Arc::new(passkeys::Passkeys::new(state.config.passkeys.as_ref())),
    };
    let refuse = || async { Refusal::method_not_allowed() };
    Router::new()
        .route("/", get(|| async { Redirect::to("/console") }))
        .route("/console", get(pages::home).fallback(refuse))
        .route("/console/", get(|| async { Redirect::to("/console") }))
        .route(
            "/console/assets/console.css",
            get(stylesheet).fallback(refuse),
        )
        .route(
            "/console/assets/passkey.js",
            get(passkeys::script).fallback(refuse),
        )
        .route(
            "/console/passkeys",
            get(passkeys::passkeys_page).fallback(refuse),
        )
        .route(
            "/console/passkeys/register/options",
            post(passkeys::register_options).fallback(refuse),
        )
        .route(
            "/console/passkeys/register",
            post(passkeys::register).fallback(refuse),
        )
        .route(
            "/console/passkeys/remove",
            post(passkeys::remove).fallback(refuse),
        )
        .route(
            "/console/passkeys/login/options",
            post(passkeys::login_options).fallback(refuse),
        )
        .route(
            "/console/passkeys/login",
            post(passkeys::login).fallback(refuse),
        )
        .route(
            "/console/login",
            get(pages::login_page).post(pages::login).fallback(refuse),
        )
        .route("/console/logout", post(pages::logout).fallback(refuse))
        .route("/console/oidc/start", get(oidc::start).fallback(refuse))
        .route(
            "/console/oidc/callback",
            get(oidc::callback).fallback(refuse),
        )
        .route(
            "/console/link",
            get(pages::link_page).post(pages::link).fallback(refuse),
        )
        .route("/console/link/unlink", post(pages::unlink).fallback(refuse))
        .route(
            "/console/tokens",
            get(pages::tokens_page)
                .post(pages::create_token)
                .fallback(refuse),
        )
        .route(
            "/console/tokens/rotate",
            post(pages::rotate_token).fallback(refuse),
        )
        .route(
            "/console/tokens/revoke",
            post(pages::revoke_token).fallback(refuse),
        )
        .route(
            "/console/secrets",
            get(account::secrets_page)
                .post(account::set_secret)
                .fallback(refuse),
        )
        .route(
            "/console/secrets/delete",
            post(account::delete_secret).fallback(refuse),
        )
        .route(
            "/console/resources",
            get(account::resources_page)
                .post(account::create_resource)
                .fallback(refuse),
        )
        .route(
            "/console/resources/revoke",
            post(account::revoke_resource).fallback(refuse),
        )
        .route(
            "/console/webhook",
            get(account::webhook_page)
                .post(account::set_webhook)
                .fallback(refuse),
        )
        .route(
            "/console/webhook/rotate",
            post(account::rotate_webhook).fallback(refuse),
        )
        .route(
            "/console/webhook/delete",
            post(account::delete_webhook).fallback(refuse),
        )
        .route("/console/audit", get(pages::audit_page).fallback(refuse))
        .route(
            "/console/admin/service-tokens",
            get(admin::service_tokens_page)
                .post(admin::mint_service_token)
                .fallback(refuse),
        )
        .route(
            "/console/admin/service-tokens/revoke",
            post(admin::revoke_service_token).fallback(refuse),
        )
        .route(
            "/console/admin/pairing",
            get(admin::pairing_page)
                .post(admin::approve)
                .fallback(refuse),
        )
        .route(
            "/console/admin/users",
            get(admin::users_page)
                .post(admin::create_user)
                .fallback(refuse),
        )
        .route(
            "/console/admin/users/role",
            post(admin::set_role).fallback(refuse),
        )
        .route(
            "/console/admin/users/status",
            post(admin::set_status).fallback(refuse),
        )
        .route(
            "/console/admin/users/delete",
            get(admin::delete_page)
                .post(admin::delete_user)
                .fallback(refuse),
        )
        .route(
            "/console/admin/users/oidc",
            get(admin::oidc_page)
                .post(admin::link_oidc)
                .fallback(refuse),
        )
        .route(
            "/console/admin/users/oidc/unlink",
            post(admin::unlink_oidc).fallback(refuse),
        )
        .route(
            "/console/{*rest}",
            axum::routing::any(|| async { Refusal::not_found() }),
        )
        .layer(axum::middleware::map_response(security_headers))
        .with_state(console)
}

async fn stylesheet() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/css; charset=utf-8"),
        )],
        CSS,
    )
        .into_response()
}

/// The headers every console response carries (docs/security.md#console). `no-store` everywhere: some
/// pages show a token once, and none is worth caching.
async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}
