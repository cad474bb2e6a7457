//! The pages every signed-in user has: sign in and out, home, linking chat accounts,
//! tokens and audit. Each action calls the use case or port its `/v1` twin calls, with
//! the same proof value, and turns the answer into a page or a one-time message.

use std::time::{Duration, Instant};

use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::Form;
use axum_extra::extract::cookie::CookieJar;
use ownership_core::authz::{AdminScope, Rotator};
use ownership_core::ids::Label;
use ownership_core::ids::TokenId;
use ownership_core::ports::{AuditFilter, PageRequest};
use ownership_core::service::{self, TokenRequest};
use ownership_core::token::digest_of;
use ownership_core::{ChannelKey, ChannelName, Error, ExternalId, TokenKind, TokenKinds};
use serde::Deserialize;

use super::ConsoleState;
use super::guard::{
    CsrfForm, LOGIN, Posted, Refusal, Signed, cookie, expired_cookie, form_refusal, is_secure,
    login_cookie_name, render, request_is_secure, same_origin, session_cookie_name, wait_text,
};
use super::session::{Flash, random_text};
use super::signin::signed_in;
use super::views::{
    AuditPage, Chrome, EventRow, HomePage, IdentityRow, LinkPage, LoginPage, Reveal, TokenRow,
    TokensPage, When,
};
use crate::auth::Peer;
use ownership_core::sessions::{SessionMethod, SessionToken};

/// What a wrong, expired or used pairing code shows, whichever it was.
pub(crate) const INVALID_CODE: &str = "That code is not valid or has expired";

/// A redirect after an action (303: the browser follows with a GET).
pub(crate) fn back(to: &str) -> Response {
    Redirect::to(to).into_response()
}

pub(crate) use super::views::sentence;

/// What a refused action tells the person, for the errors a person can act on; `None`
/// for the rest (store outages, integrity failures), which become an error page.
pub(crate) fn say(e: &Error) -> Option<String> {
    match e {
        Error::Invalid { field, reason } => Some(sentence(&format!("invalid {field}: {reason}"))),
        Error::NotFound => Some("Not found.".to_owned()),
        Error::Conflict(m) | Error::Forbidden(m) => Some(sentence(m)),
        Error::RateLimited { retry_after } => Some(format!(
            "Too many attempts; try again in {}.",
            wait_text(*retry_after)
        )),
        _ => None,
    }
}

/// Queues the message for `e` and redirects to `to`, or renders the error page.
pub(crate) fn refused(user: &Signed, e: Error, to: &str) -> Response {
    match say(&e) {
        Some(text) => {
            user.session.flash(Flash::alert(text));
            back(to)
        }
        None => Refusal::from_error(e).into_response(),
    }
}

/// Queues an alert and redirects.
pub(crate) fn alert(user: &Signed, text: impl Into<String>, to: &str) -> Response {
    user.session.flash(Flash::alert(text));
    back(to)
}

/// Queues a success message and redirects.
pub(crate) fn done(user: &Signed, text: impl Into<String>, to: &str) -> Response {
    user.session.flash(Flash::status(text));
    back(to)
}

/// The answer to a pairing code that did not redeem: `invalid` for a wrong or expired
/// code (the store counted it against the user's and the channel's budgets, as for
/// `POST /v1/pairing/{channel}/redeem`), the wait when the user's budget is spent.
pub(crate) fn code_refusal(e: &Error) -> Option<String> {
    match e {
        Error::Invalid { .. } => Some(INVALID_CODE.to_owned()),
        Error::NotFound => {
            crate::metrics::pairing_failed();
            Some(INVALID_CODE.to_owned())
        }
        Error::RateLimited { retry_after } => Some(too_many_codes(*retry_after)),
        _ => None,
    }
}

/// The answer to a user whose wrong-code budget is spent.
pub(crate) fn too_many_codes(wait: Duration) -> String {
    format!("Too many wrong codes: try again in {}.", wait_text(wait))
}

/// A form with nothing but the CSRF token.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct CsrfOnly {
    csrf: String,
}

impl CsrfForm for CsrfOnly {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

// ---- sign in and out ----

#[derive(Default, Deserialize)]
#[serde(default)]
pub(crate) struct LoginForm {
    csrf: String,
    access_token: String,
}

impl std::fmt::Debug for LoginForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginForm").finish_non_exhaustive()
    }
}

/// The sign-in page, with a fresh double-submit CSRF value in its cookie and form.
fn login_form(
    state: &ConsoleState,
    secure: bool,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let csrf = random_text::<32>(&mut state.app.rng());
    let jar = CookieJar::new().add(cookie(login_cookie_name(secure), csrf.clone(), secure));
    let page = LoginPage {
        chrome: Chrome {
            title: "Sign in",
            ..Chrome::default()
        },
        csrf,
        error,
        passkeys: state.passkeys.enabled(),
        provider: state.oidc.as_ref().map(|o| o.display_name().to_owned()),
    };
    (jar, render(status, &page)).into_response()
}

/// `GET /console/login`: the form, or home for a live session.
pub(crate) async fn login_page(
    State(state): State<ConsoleState>,
    signed: Result<Signed, Refusal>,
    headers: axum::http::HeaderMap,
    Peer(peer): Peer,
) -> Response {
    if signed.is_ok() {
        return back("/console");
    }
    let secure = is_secure(&state.app.config, state.app.auth.proxies(), &headers, peer);
    login_form(&state, secure, None, StatusCode::OK)
}

/// `POST /console/login`: a valid `manage` token starts a new session, from any address.
/// A token that does not authenticate says only **Invalid token** and counts against the
/// address's failed-authentication budget (through the same `AuthState::authenticate_raw`
/// the bearer extractors use); once that is spent, such sign-ins are told to wait.
pub(crate) async fn login(State(state): State<ConsoleState>, req: Request) -> Response {
    let secure = request_is_secure(&state, req.headers(), req.extensions());
    if let Err(r) = same_origin(secure, req.headers(), req.uri()) {
        tracing::info!("console sign-in refused: sent from another site");
        return r.into_response();
    }
    let (parts, body) = req.into_parts();
    let jar = CookieJar::from_headers(&parts.headers);
    let form =
        match Form::<LoginForm>::from_request(Request::from_parts(parts.clone(), body), &state)
            .await
        {
            Ok(Form(f)) => f,
            Err(r) => return form_refusal(r).into_response(),
        };
    let expected = jar
        .get(login_cookie_name(secure))
        .map(|c| c.value().to_owned())
        .unwrap_or_default();
    if expected.is_empty() || digest_of(&expected) != digest_of(&form.csrf) {
        tracing::info!("console sign-in refused: missing or wrong CSRF value");
        return Refusal::cross_site().into_response();
    }
    let raw = form.access_token.trim();
    let invalid = || {
        login_form(
            &state,
            secure,
            Some("Invalid token".to_owned()),
            StatusCode::UNAUTHORIZED,
        )
    };
    let principal = match state.app.auth.authenticate_raw(&parts, Some(raw)).await {
        Ok(p) if p.has_kind(&TokenKind::Manage) => p,
        Ok(p) => {
            tracing::info!(owner = %p.identity().owner_id(), token_id = %p.token_id(), "console sign-in refused: the token lacks `manage`");
            return invalid();
        }
        Err(e) if e.status() == StatusCode::UNAUTHORIZED => return invalid(),
        Err(e) if e.status() == StatusCode::TOO_MANY_REQUESTS => {
            let wait = state
                .app
                .auth
                .client_ip(&parts)
                .and_then(|ip| state.app.auth.limits().address_blocked(ip))
                .unwrap_or(Duration::from_secs(60));
            let mut res = login_form(
                &state,
                secure,
                Some(format!(
                    "Too many failed sign-ins from your address; try again in {}.",
                    wait_text(wait)
                )),
                StatusCode::TOO_MANY_REQUESTS,
            );
            if let Ok(v) = axum::http::HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
                res.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
            }
            return res;
        }
        Err(e) => {
            return Refusal::from_error(Error::Unavailable(format!(
                "console sign-in: {}",
                e.code()
            )))
            .into_response();
        }
    };
    let token = SessionToken {
        digest: digest_of(raw),
        id: principal.token_id().clone(),
    };
    signed_in(
        &state,
        &parts.headers,
        secure,
        principal.identity().owner_id(),
        SessionMethod::Token,
        Some(token),
    )
    .await
}

/// `POST /console/logout`: ends the session on the server and drops the cookie.
pub(crate) async fn logout(
    State(state): State<ConsoleState>,
    Posted { user, .. }: Posted<CsrfOnly>,
) -> Response {
    if let Err(e) = state.sessions.end(&*state.app.store, user.key()).await {
        return Refusal::from_error(e).into_response();
    }
    tracing::info!(owner = %user.identity.owner_id(), "console session ended: signed out");
    let jar = CookieJar::new().add(expired_cookie(
        session_cookie_name(user.secure),
        user.secure,
    ));
    (jar, Redirect::to(LOGIN)).into_response()
}

// ---- home ----

/// `GET /console`.
pub(crate) async fn home(State(state): State<ConsoleState>, user: Signed) -> Response {
    let identity = &user.identity;
    let token_prefix = match user.session.token() {
        None => None,
        Some(bound) => Some(
            match state.app.store.get_token(&user.scope(), &bound.id).await {
                Ok(t) => format!("{}…", t.display_prefix),
                Err(_) => bound.id.to_string(),
            },
        ),
    };
    let ends_at = When::of(user.session.ends_at()).text;
    let page = HomePage {
        chrome: user.chrome("Home", "home"),
        user_id: identity.owner_id().to_string(),
        role: identity.role().as_str(),
        is_admin: identity.role().is_admin(),
        token_prefix,
        method: method_name(user.session.method()),
        ends_at,
    };
    render(StatusCode::OK, &page)
}

// ---- chat accounts ----

/// `GET /console/link`.
pub(crate) async fn link_page(State(state): State<ConsoleState>, user: Signed) -> Response {
    let identities = match state.app.store.list_identities(&user.scope()).await {
        Ok(list) => list,
        Err(e) => return Refusal::from_error(e).into_response(),
    };
    let page = LinkPage {
        chrome: user.chrome("Link a chat account", "link"),
        channel: identities
            .first()
            .map(|b| b.key.channel.to_string())
            .unwrap_or_default(),
        identities: identities.iter().map(IdentityRow::from).collect(),
    };
    render(StatusCode::OK, &page)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct LinkForm {
    csrf: String,
    channel: String,
    code: String,
}

impl CsrfForm for LinkForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// `POST /console/link`: self-claim (`service::redeem_pairing` with the user's own scope),
/// limited like `POST /v1/pairing/{channel}/redeem`.
pub(crate) async fn link(
    State(state): State<ConsoleState>,
    Posted { user, form }: Posted<LinkForm>,
) -> Response {
    const HERE: &str = "/console/link";
    let channel = match ChannelName::parse(form.channel.trim()) {
        Ok(c) => c,
        Err(e) => return refused(&user, e, HERE),
    };
    if form.code.trim().is_empty() {
        return alert(
            &user,
            "Enter the pairing code your chat bot showed you.",
            HERE,
        );
    }
    let mut gate = match state
        .app
        .auth
        .limits()
        .pairing_gate(user.identity.owner_id())
        .await
    {
        Ok(gate) => gate,
        Err(wait) => return alert(&user, too_many_codes(wait), HERE),
    };
    let result = service::redeem_pairing(
        &*state.app.store,
        &user.scope(),
        &state.app.pairing_key,
        &channel,
        &form.code,
    )
    .await;
    gate.record(&result);
    match result {
        Ok(b) => {
            crate::metrics::pairing_redeemed();
            done(
                &user,
                format!(
                    "Linked your {} account {}.",
                    b.key.channel, b.key.external_id
                ),
                HERE,
            )
        }
        // A malformed code is refused before any store read and costs no attempt.
        Err(e) => match code_refusal(&e) {
            Some(text) => alert(&user, text, HERE),
            None => refused(&user, e, HERE),
        },
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct UnlinkForm {
    csrf: String,
    channel: String,
    external_id: String,
}

impl CsrfForm for UnlinkForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// `POST /console/link/unlink`.
pub(crate) async fn unlink(
    State(state): State<ConsoleState>,
    Posted { user, form }: Posted<UnlinkForm>,
) -> Response {
    const HERE: &str = "/console/link";
    let key = match (
        ChannelName::parse(&form.channel),
        ExternalId::parse(&form.external_id),
    ) {
        (Ok(c), Ok(e)) => ChannelKey::new(c, e),
        _ => return refused(&user, Error::NotFound, HERE),
    };
    match state.app.store.unlink_identity(&user.scope(), &key).await {
        Ok(()) => done(
            &user,
            format!("Unlinked your {} account {}.", key.channel, key.external_id),
            HERE,
        ),
        Err(e) => refused(&user, e, HERE),
    }
}

// ---- tokens ----

/// The tokens page; `reveal` shows a just-minted value once.
async fn tokens_view(state: &ConsoleState, user: &Signed, reveal: Option<Reveal>) -> Response {
    let tokens = match state.app.store.list_tokens(&user.scope()).await {
        Ok(t) => t,
        Err(e) => return Refusal::from_error(e).into_response(),
    };
    let now = state.app.clock.now();
    let current = user.session.token().map(|t| t.id.clone());
    let page = TokensPage {
        chrome: user.chrome("Tokens", "tokens"),
        new_token: reveal,
        form_id: random_text::<16>(&mut state.app.rng()),
        kinds: user
            .principal
            .iter()
            .flat_map(|p| p.kinds().iter())
            .map(ToString::to_string)
            .collect(),
        tokens: tokens
            .iter()
            .map(|t| TokenRow::new(t, now, current.as_ref() == Some(&t.id)))
            .collect(),
    };
    render(StatusCode::OK, &page)
}

/// `GET /console/tokens`.
pub(crate) async fn tokens_page(State(state): State<ConsoleState>, user: Signed) -> Response {
    tokens_view(&state, &user, None).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct CreateTokenForm {
    csrf: String,
    form_id: String,
    label: String,
    kind: Vec<String>,
    expires: String,
}

impl CsrfForm for CreateTokenForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// A minting form submitted a second time (a refresh, a double click) mints nothing.
pub(crate) fn resubmitted(user: &Signed, to: &str) -> Response {
    alert(
        user,
        "That form was already submitted, so nothing new was made. Its token was shown once, \
         on the page that answered it.",
        to,
    )
}

/// `POST /console/tokens`: `service::issue_token` with the session's principal as the
/// minter (kinds ⊆ its own); the value is rendered once, by this response.
pub(crate) async fn create_token(
    State(state): State<ConsoleState>,
    Posted { user, form }: Posted<CreateTokenForm>,
) -> Response {
    const HERE: &str = "/console/tokens";
    if !user.session.use_form(&form.form_id) {
        return resubmitted(&user, HERE);
    }
    let minter = match user.minting_token() {
        Ok(p) => p,
        Err(e) => return refused(&user, e, HERE),
    };
    if form.kind.is_empty() {
        return alert(&user, "Choose at least one kind.", HERE);
    }
    let kinds = match form
        .kind
        .iter()
        .map(|k| TokenKind::parse(k))
        .collect::<Result<Vec<_>, _>>()
        .and_then(TokenKinds::new)
    {
        Ok(k) => k,
        Err(e) => return refused(&user, e, HERE),
    };
    let expires_in = match form.expires.trim() {
        "" => None,
        s => match s.parse::<u64>() {
            Ok(secs) => Some(Duration::from_secs(secs)),
            Err(_) => return alert(&user, "Choose when the token expires.", HERE),
        },
    };
    let label = match Label::parse_optional(Some(form.label.trim()).filter(|l| !l.is_empty())) {
        Ok(l) => l,
        Err(e) => return refused(&user, e, HERE),
    };
    let request = TokenRequest {
        kinds,
        label,
        expires_in,
    };
    let now = state.app.clock.now();
    match service::issue_token(
        &*state.app.store,
        minter,
        request,
        now,
        &mut state.app.rng(),
    )
    .await
    {
        Ok((record, secret)) => {
            let kinds: Vec<String> = record.kinds.iter().map(ToString::to_string).collect();
            let reveal = Reveal::token(
                "Your new token",
                format!(
                    "Created token {}… with the kinds {}.",
                    record.display_prefix,
                    kinds.join(", ")
                ),
                secret.expose(),
            );
            tokens_view(&state, &user, Some(reveal)).await
        }
        Err(e) => refused(&user, e, HERE),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct TokenForm {
    csrf: String,
    form_id: String,
    id: String,
}

impl CsrfForm for TokenForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// `POST /console/tokens/rotate`: `service::rotate_token` in the user's own scope; the old
/// token stops working at once. Rotating the token this session uses moves the session
/// to the new one.
pub(crate) async fn rotate_token(
    State(state): State<ConsoleState>,
    Posted { user, form }: Posted<TokenForm>,
) -> Response {
    const HERE: &str = "/console/tokens";
    if !user.session.use_form(&form.form_id) {
        return resubmitted(&user, HERE);
    }
    let Ok(id) = TokenId::parse(&form.id) else {
        return refused(&user, Error::NotFound, HERE);
    };
    let holder = match user.minting_token() {
        Ok(p) => p.clone(),
        Err(e) => return refused(&user, e, HERE),
    };
    match service::rotate_token(
        &*state.app.store,
        &Rotator::Holder(holder),
        &id,
        None,
        &mut state.app.rng(),
    )
    .await
    {
        Ok((record, secret)) => {
            let own = user.session.token().is_some_and(|t| t.id == id);
            if own {
                let bound = SessionToken {
                    digest: secret.digest(),
                    id: record.id.clone(),
                };
                if let Err(e) = state.app.store.rebind_session(user.key(), bound).await {
                    return Refusal::from_error(e).into_response();
                }
            }
            let note = if own {
                format!(
                    "Rotated the token this session signed in with: the old one stopped working, and this session now uses {}….",
                    record.display_prefix
                )
            } else {
                format!(
                    "Rotated: the old token stopped working; its replacement is {}….",
                    record.display_prefix
                )
            };
            let reveal = Reveal::token("Your rotated token", note, secret.expose());
            tokens_view(&state, &user, Some(reveal)).await
        }
        Err(e) => refused(&user, e, HERE),
    }
}

/// `POST /console/tokens/revoke`: the token stops working at once. Revoking the token this
/// session uses ends the session.
pub(crate) async fn revoke_token(
    State(state): State<ConsoleState>,
    Posted { user, form }: Posted<TokenForm>,
) -> Response {
    const HERE: &str = "/console/tokens";
    let Ok(id) = TokenId::parse(&form.id) else {
        return refused(&user, Error::NotFound, HERE);
    };
    match state.app.store.revoke_token(&user.scope(), &id, None).await {
        Ok(_) if user.session.token().is_some_and(|t| t.id == id) => {
            if let Err(e) = state.sessions.end(&*state.app.store, user.key()).await {
                return Refusal::from_error(e).into_response();
            }
            tracing::info!(owner = %user.identity.owner_id(), "console session ended: its token was revoked");
            let jar = CookieJar::new().add(expired_cookie(
                session_cookie_name(user.secure),
                user.secure,
            ));
            (jar, Redirect::to(LOGIN)).into_response()
        }
        Ok(t) => done(
            &user,
            format!("Revoked token {}…: it stopped working.", t.display_prefix),
            HERE,
        ),
        Err(e) => refused(&user, e, HERE),
    }
}

// ---- audit ----

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct AfterQuery {
    after: Option<String>,
}

impl AfterQuery {
    /// The query, or none when it cannot be read.
    pub fn or_default(q: Result<Query<Self>, QueryRejection>) -> Self {
        q.map(|Query(q)| q).unwrap_or_default()
    }

    /// A page of 100 after the cursor.
    pub fn page(&self) -> PageRequest {
        PageRequest {
            after: self.after.clone().filter(|a| !a.is_empty()),
            limit: 100,
        }
    }
}

/// How long a verdict on the chain is reused.
const CHAIN_VERDICT_TTL: Duration = Duration::from_secs(5);

/// How often the console walks the whole chain; in between it checks only what was
/// appended since the last intact check (an edit below that is seen at the next walk).
const CHAIN_FULL_WALK: Duration = Duration::from_secs(15 * 60);

/// The console's view of the chain: the last verdict (served for
/// [`CHAIN_VERDICT_TTL`]), where the last intact check ended, and when the whole chain
/// was last walked. A page view costs at most the events appended since the last check,
/// not the whole chain.
#[derive(Debug, Default)]
pub(crate) struct ChainCheck {
    last: Option<(Instant, ownership_core::audit::ChainVerdict)>,
    checkpoint: Option<ownership_core::audit::ChainCheckpoint>,
    full_walk_at: Option<Instant>,
}

impl ChainCheck {
    /// The verdict to show, and when it was reached.
    async fn current<S: ownership_core::audit_log::AuditLog + ?Sized>(
        &mut self,
        store: &S,
    ) -> ownership_core::Result<(Instant, ownership_core::audit::ChainVerdict)> {
        if let Some((at, verdict)) = &self.last
            && at.elapsed() < CHAIN_VERDICT_TTL
        {
            return Ok((*at, verdict.clone()));
        }
        let whole = self
            .full_walk_at
            .is_none_or(|at| at.elapsed() >= CHAIN_FULL_WALK);
        let from = if whole { None } else { self.checkpoint.take() };
        let (verdict, checkpoint) = store.verify_chain_from(from).await?;
        let now = Instant::now();
        if whole {
            self.full_walk_at = Some(now);
        }
        // A broken chain is walked whole next time, so a repair shows at once.
        if checkpoint.is_none() {
            self.full_walk_at = None;
        }
        self.checkpoint = checkpoint;
        self.last = Some((now, verdict.clone()));
        Ok((now, verdict))
    }
}

/// `GET /console/audit`: the user's events (an Admin's or Owner's: everyone's), newest
/// first, and the state of the whole chain.
pub(crate) async fn audit_page(
    State(state): State<ConsoleState>,
    user: Signed,
    q: Result<Query<AfterQuery>, QueryRejection>,
) -> Response {
    let q = AfterQuery::or_default(q);
    let own = user.scope();
    let admin = AdminScope::new(&user.identity);
    let filter = match &admin {
        Some(a) => AuditFilter::All(a),
        None => AuditFilter::Owner(&own),
    };
    let events = match state.app.store.list_events(filter, &q.page()).await {
        Ok(p) => p,
        Err(e) => return Refusal::from_error(e).into_response(),
    };
    let (checked, verdict) = match state.chain.lock().await.current(&*state.app.store).await {
        Ok(checked) => checked,
        Err(e) => return Refusal::from_error(e).into_response(),
    };
    let checked_at = When::of(state.app.clock.now() - checked.elapsed()).text;
    let (chain_intact, chain_text, chain_detail) = match verdict {
        ownership_core::audit::ChainVerdict::Intact { events } => (
            true,
            "Audit chain intact".to_owned(),
            format!("All {events} events of the hash chain checked at {checked_at}."),
        ),
        ownership_core::audit::ChainVerdict::Broken { seq, reason } => (
            false,
            format!("Audit chain broken at event {seq}: {reason}"),
            format!(
                "Checked at {checked_at}. Events from {seq} on cannot be trusted; run `ownership audit verify` and restore from a backup."
            ),
        ),
    };
    let page = AuditPage {
        chrome: user.chrome("Audit", "audit"),
        chain_intact,
        chain_text,
        chain_detail,
        everyone: admin.is_some(),
        events: events.items.iter().map(EventRow::from).collect(),
        next: events.next,
    };
    render(StatusCode::OK, &page)
}

/// How a session was started, in words.
fn method_name(method: SessionMethod) -> &'static str {
    match method {
        SessionMethod::Token => "a token",
        SessionMethod::Oidc => "your identity provider",
        SessionMethod::Passkey => "a passkey",
    }
}
