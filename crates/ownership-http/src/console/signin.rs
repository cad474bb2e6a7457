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

/// Starts a console session for `owner`, who has just proved who they are by `method`
/// (an OpenID Connect or passkey sign-in: not bound to a token). Returns the secret for
/// the session cookie; [`signed_in`] does this and answers the browser.
#[allow(dead_code, reason = "the passkey sign-in calls it")]
pub(crate) async fn start_session(
    state: &ConsoleState,
    owner: &OwnerId,
    method: SessionMethod,
) -> Result<String, Error> {
    start(state, owner, method, None).await
}

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

/// Completes a sign-in: ends the session this browser's cookie names (if any), starts a
/// new one for `owner` by `method` (`token` for a token sign-in), sets its cookie, drops
/// the sign-in form's cookie and sends the browser to the console's home page.
pub(crate) async fn signed_in(
    state: &ConsoleState,
    headers: &HeaderMap,
    secure: bool,
    owner: &OwnerId,
    method: SessionMethod,
    token: Option<SessionToken>,
) -> Response {
    let name = session_cookie_name(secure);
    let jar = CookieJar::from_headers(headers);
    if let Some(old) = jar.get(name).and_then(|c| SessionKey::of_secret(c.value()))
        && let Err(e) = state.sessions.end(&*state.app.store, &old).await
    {
        return Refusal::from_error(e).into_response();
    }
    let secret = match start(state, owner, method, token).await {
        Ok(s) => s,
        Err(e) => return Refusal::from_error(e).into_response(),
    };
    tracing::info!(owner = %owner, method = method.as_str(), "console session started");
    let jar = CookieJar::new()
        .add(cookie(name, secret, secure))
        .add(expired_cookie(login_cookie_name(secure), secure));
    (jar, Redirect::to("/console")).into_response()
}
