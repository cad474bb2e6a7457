//! Starting a console session, whatever proved who the person is: a pasted token
//! (`pages::login`), an OpenID Connect provider or a passkey. Each sign-in ends the
//! session the browser carried (no fixation), starts a new one in the store (audited,
//! bounded per user) and sets its cookie.

use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use ownership_core::sessions::{SessionKey, SessionMethod, SessionToken};
use ownership_core::{Error, OwnerId};

use super::ConsoleState;
use super::guard::{Refusal, cookie, expired_cookie, login_cookie_name, session_cookie_name};

async fn start(
    state: &ConsoleState,
    owner: &OwnerId,
    method: SessionMethod,
    token: Option<SessionToken>,
) -> Result<String, Error> {
    state
        .sessions
        .start(
            &*state.app.store,
            owner,
            method,
            token,
            &mut state.app.rng(),
        )
        .await
}

/// Starts a session for `owner`, who has just proved who they are by `method` (`token`
/// for a token sign-in), after ending the session this browser's `jar` names (if any):
/// the cookies to send, the new session's set and the sign-in form's dropped.
pub(crate) async fn session_cookies(
    state: &ConsoleState,
    jar: &CookieJar,
    secure: bool,
    owner: &OwnerId,
    method: SessionMethod,
    token: Option<SessionToken>,
) -> Result<CookieJar, Error> {
    let name = session_cookie_name(secure);
    if let Some(old) = jar.get(name).and_then(|c| SessionKey::of_secret(c.value())) {
        state.sessions.end(&*state.app.store, &old).await?;
    }
    let secret = start(state, owner, method, token).await?;
    tracing::info!(owner = %owner, method = method.as_str(), "console session started");
    Ok(CookieJar::new()
        .add(cookie(name, secret, secure))
        .add(expired_cookie(login_cookie_name(secure), secure)))
}

/// Completes a sign-in: [`session_cookies`], and the browser goes to the console's home
/// page.
pub(crate) async fn signed_in(
    state: &ConsoleState,
    headers: &HeaderMap,
    secure: bool,
    owner: &OwnerId,
    method: SessionMethod,
    token: Option<SessionToken>,
) -> Response {
    let jar = CookieJar::from_headers(headers);
    match session_cookies(state, &jar, secure, owner, method, token).await {
        Ok(jar) => (jar, Redirect::to("/console")).into_response(),
        Err(e) => Refusal::from_error(e).into_response(),
    }
}
