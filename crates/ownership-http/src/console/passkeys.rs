//! Passkeys (WebAuthn) for the console: the relying party's half of the two ceremonies,
//! on `webauthn-rs`, and the passkeys page.
//!
//! - **Register** (signed in): `POST /console/passkeys/register/options` with the label
//!   answers the creation options and a ceremony id; `POST /console/passkeys/register`
//!   with the ceremony id and the browser's answer verifies it and stores the passkey
//!   through `PasskeyStore::register_passkey`. Both are CSRF-checked session POSTs.
//! - **Sign in** (discoverable credentials, no user name): `POST
//!   /console/passkeys/login/options` answers request options with no allowed
//!   credentials (the authenticator offers the passkeys it holds for this site);
//!   `POST /console/passkeys/login` finds the passkey by the credential id the browser
//!   returns, verifies the assertion, checks the user handle names the passkey's owner,
//!   records the use (the counter must advance, the owner must be active) and starts a
//!   store-kept session (`SessionMethod::Passkey`, through `signin::session_cookies`). Both carry the sign-in form's double-submit CSRF
//!   value; a failure counts against the address's failed-authentication budget.
//! - **Remove**: a plain form on the passkeys page.
//!
//! Ceremony state (the challenge) stays on the server, in this process, under a random
//! id: single-use (taken out when the answer arrives) and dropped after
//! [`CEREMONY_TTL`] (the browser is told 2 minutes). A registration's state is bound to the session that asked for it.
//! The browser's half is `assets/passkey.js`, the only script the console serves.

use std::sync::Arc;
use std::time::Duration;

use askama::Template;
use axum::Json;
use axum::extract::{FromRequest, Request, State};
use axum::http::StatusCode;
use axum::http::header::{self, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::Form;
use axum_extra::extract::cookie::CookieJar;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use moka::sync::Cache;
use ownership_core::passkeys::{CredentialId, NewPasskey, PasskeyLabel, PasskeyRecord, PasskeyUse};
use ownership_core::sessions::{SessionKey, SessionMethod};
use ownership_core::token::digest_of;
use ownership_core::{Error, OwnerId};
use serde::Deserialize;
use serde_json::json;
use webauthn_rs::prelude::{
    DiscoverableAuthentication, DiscoverableKey, Passkey, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, Uuid, Webauthn,
};

use super::ConsoleState;
use super::guard::{
    CsrfForm, Posted, Refusal, Signed, form_refusal, login_cookie_name, render, request_is_secure,
    same_origin, wait_text,
};
use super::pages::{done, refused, say};
use super::session::random_text;
use super::signin::session_cookies;
use super::views::When;
use crate::error::LoggedError;
use crate::passkey_settings::PasskeySettings;

/// How long a ceremony's challenge is kept for its answer.
pub(crate) const CEREMONY_TTL: Duration = Duration::from_secs(180);

/// At most this many ceremonies wait for their answer, per kind (the oldest are dropped).
const CEREMONIES_KEPT: u64 = 10_000;

/// A registration waiting for the browser's answer.
struct Registration {
    session: SessionKey,
    owner: OwnerId,
    label: PasskeyLabel,
    state: PasskeyRegistration,
}

/// The console's passkey machinery: the relying party (`None` when passkeys are not
/// configured) and the ceremonies waiting for an answer.
pub(crate) struct Passkeys {
    webauthn: Option<Webauthn>,
    registrations: Cache<String, Arc<Registration>>,
    sign_ins: Cache<String, Arc<DiscoverableAuthentication>>,
}

impl std::fmt::Debug for Passkeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Passkeys")
            .field("enabled", &self.webauthn.is_some())
            .finish_non_exhaustive()
    }
}

impl Passkeys {
    /// From the service's settings.
    pub fn new(settings: Option<&PasskeySettings>) -> Self {
        let webauthn = settings.and_then(|s| {
            s.webauthn()
                .inspect_err(|e| tracing::warn!("passkeys disabled: {e}"))
                .ok()
        });
        Self {
            webauthn,
            registrations: ceremonies(),
            sign_ins: ceremonies(),
        }
    }

    /// Whether passkeys are on.
    pub fn enabled(&self) -> bool {
        self.webauthn.is_some()
    }
}

/// A store of ceremonies waiting for their answer: bounded, each kept [`CEREMONY_TTL`].
fn ceremonies<V: Clone + Send + Sync + 'static>() -> Cache<String, V> {
    Cache::builder()
        .max_capacity(CEREMONIES_KEPT)
        .time_to_live(CEREMONY_TTL)
        .build()
}

/// The WebAuthn user handle of `owner`: 16 bytes of SHA-256 of its id, the same every
/// time (so nothing more is stored), and compared at sign-in with the passkey's owner.
fn user_handle(owner: &OwnerId) -> Uuid {
    let digest = digest_of(&format!("ownership passkey user handle\0{owner}"));
    let mut bytes = [0u8; 16];
    for (b, d) in bytes.iter_mut().zip(digest.as_bytes()) {
        *b = *d;
    }
    Uuid::from_bytes(bytes)
}

/// A credential id from raw bytes.
fn credential_id(raw: &[u8]) -> Result<CredentialId, Error> {
    CredentialId::parse(&URL_SAFE_NO_PAD.encode(raw))
}

// ---- JSON answers of the ceremony endpoints ----

/// A JSON refusal the script shows (`{"error": "…"}`), marked as already answered so the
/// service's error middleware leaves it alone.
fn json_error(status: StatusCode, code: &'static str, text: impl Into<String>) -> Response {
    let mut res = (status, Json(json!({ "error": text.into() }))).into_response();
    res.extensions_mut().insert(LoggedError {
        status,
        code,
        detail: None,
    });
    res
}

/// The JSON refusal for a use case's error: what a person can act on is said; the rest
/// (store outages, integrity failures) is logged and said generically.
fn json_refusal(e: Error) -> Response {
    match (&e, say(&e)) {
        (Error::Conflict(_), Some(text)) => json_error(StatusCode::CONFLICT, "conflict", text),
        (Error::Invalid { .. }, Some(text)) => {
            json_error(StatusCode::BAD_REQUEST, "invalid_request", text)
        }
        (Error::NotFound, Some(text)) => json_error(StatusCode::NOT_FOUND, "not_found", text),
        (Error::Unavailable(detail), _) => {
            tracing::warn!(detail = %detail, "passkey ceremony: store unavailable");
            json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "The service cannot reach its store right now; try again shortly.",
            )
        }
        _ => {
            tracing::error!(error = %e, "passkey ceremony failed");
            json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "An internal error occurred; it has been logged.",
            )
        }
    }
}

fn disabled() -> Response {
    json_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "disabled",
        "Passkeys are not set up on this server.",
    )
}

fn redirect_json(to: &str) -> Response {
    Json(json!({ "redirect": to })).into_response()
}

// ---- the passkeys page ----

#[derive(Debug, Clone)]
pub(crate) struct PasskeyRow {
    pub credential_id: String,
    pub label: String,
    pub created: When,
    pub last_used: Option<When>,
}

impl From<&PasskeyRecord> for PasskeyRow {
    fn from(p: &PasskeyRecord) -> Self {
        Self {
            credential_id: p.credential_id.to_string(),
            label: p.label.as_str().to_owned(),
            created: When::of(p.created_at),
            last_used: p.last_used_at.map(When::of),
        }
    }
}

#[derive(Template)]
#[template(path = "passkeys.html")]
pub(crate) struct PasskeysPage {
    pub chrome: super::views::Chrome,
    pub enabled: bool,
    pub passkeys: Vec<PasskeyRow>,
}

const HERE: &str = "/console/passkeys";

/// `GET /console/passkeys`.
pub(crate) async fn passkeys_page(State(state): State<ConsoleState>, user: Signed) -> Response {
    let passkeys = match state.app.store.list_passkeys(&user.scope()).await {
        Ok(p) => p,
        Err(e) => return Refusal::from_error(e).into_response(),
    };
    let page = PasskeysPage {
        chrome: user.chrome("Passkeys", "passkeys"),
        enabled: state.passkeys.enabled(),
        passkeys: passkeys.iter().map(PasskeyRow::from).collect(),
    };
    render(StatusCode::OK, &page)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct LabelForm {
    csrf: String,
    label: String,
}

impl CsrfForm for LabelForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct AnswerForm {
    csrf: String,
    ceremony: String,
    credential: String,
}

impl CsrfForm for AnswerForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RemoveForm {
    csrf: String,
    credential_id: String,
}

impl CsrfForm for RemoveForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// `POST /console/passkeys/register/options`: the creation options for a new passkey.
pub(crate) async fn register_options(
    State(state): State<ConsoleState>,
    Posted { user, form }: Posted<LabelForm>,
) -> Response {
    let Some(webauthn) = &state.passkeys.webauthn else {
        return disabled();
    };
    let label = match PasskeyLabel::parse(&form.label) {
        Ok(l) => l,
        Err(e) => return json_refusal(e),
    };
    let owner = user.identity.owner_id().clone();
    let existing = match state.app.store.list_passkeys(&user.scope()).await {
        Ok(list) => list,
        Err(e) => return json_refusal(e),
    };
    let exclude = existing
        .iter()
        .filter_map(|p| URL_SAFE_NO_PAD.decode(p.credential_id.as_str()).ok())
        .map(Into::into)
        .collect();
    let (options, registration) = match webauthn.start_passkey_registration(
        user_handle(&owner),
        owner.as_str(),
        owner.as_str(),
        Some(exclude),
    ) {
        Ok(started) => started,
        Err(e) => return json_refusal(Error::Integrity(format!("passkey registration: {e}"))),
    };
    // Sign-in is by discoverable credential: ask the authenticator to keep this one.
    let mut options = match serde_json::to_value(&options) {
        Ok(v) => v,
        Err(e) => return json_refusal(Error::Integrity(format!("passkey options: {e}"))),
    };
    if let Some(selection) = options
        .get_mut("publicKey")
        .and_then(|p| p.get_mut("authenticatorSelection"))
        .and_then(serde_json::Value::as_object_mut)
    {
        selection.insert("residentKey".into(), json!("required"));
        selection.insert("requireResidentKey".into(), json!(true));
    }
    let ceremony = random_text::<16>(&mut state.app.rng());
    state.passkeys.registrations.insert(
        ceremony.clone(),
        Arc::new(Registration {
            session: *user.key(),
            owner,
            label,
            state: registration,
        }),
    );
    Json(json!({ "ceremony": ceremony, "options": options })).into_response()
}

/// `POST /console/passkeys/register`: verifies the new credential and keeps it.
pub(crate) async fn register(
    State(state): State<ConsoleState>,
    Posted { user, form }: Posted<AnswerForm>,
) -> Response {
    let Some(webauthn) = &state.passkeys.webauthn else {
        return disabled();
    };
    let expired = || {
        json_error(
            StatusCode::BAD_REQUEST,
            "ceremony_expired",
            "This passkey request expired or was already used; try again.",
        )
    };
    let Some(pending) = state.passkeys.registrations.remove(&form.ceremony) else {
        return expired();
    };
    if pending.session != *user.key() || pending.owner != *user.identity.owner_id() {
        return expired();
    }
    let refused_answer = |why: String| {
        tracing::info!(owner = %pending.owner, "passkey registration refused: {why}");
        json_error(
            StatusCode::BAD_REQUEST,
            "invalid_credential",
            "The browser's answer could not be verified, so no passkey was added.",
        )
    };
    let answer: RegisterPublicKeyCredential = match serde_json::from_str(&form.credential) {
        Ok(a) => a,
        Err(e) => return refused_answer(format!("unreadable answer: {e}")),
    };
    let passkey = match webauthn.finish_passkey_registration(&answer, &pending.state) {
        Ok(p) => p,
        Err(e) => return refused_answer(e.to_string()),
    };
    let credential_id = match credential_id(passkey.cred_id().as_ref()) {
        Ok(id) => id,
        Err(e) => return refused_answer(e.to_string()),
    };
    let credential = match serde_json::to_string(&passkey) {
        Ok(c) => c,
        Err(e) => return json_refusal(Error::Integrity(format!("passkey serialization: {e}"))),
    };
    let new = NewPasskey {
        credential_id,
        label: pending.label.clone(),
        credential,
        // Learnt at the first sign-in: the library keeps the registration's counter
        // inside the credential, and checks it there too.
        sign_count: 0,
    };
    match state.app.store.register_passkey(&user.scope(), new).await {
        Ok(record) => {
            tracing::info!(owner = %record.owner_id, "passkey registered");
            user.session.flash(super::session::Flash::status(format!(
                "Added the passkey “{}”.",
                record.label.as_str()
            )));
            redirect_json(HERE)
        }
        Err(e) => json_refusal(e),
    }
}

/// `POST /console/passkeys/remove`.
pub(crate) async fn remove(
    State(state): State<ConsoleState>,
    Posted { user, form }: Posted<RemoveForm>,
) -> Response {
    let id = match CredentialId::parse(&form.credential_id) {
        Ok(id) => id,
        Err(e) => return refused(&user, e, HERE),
    };
    match state.app.store.remove_passkey(&user.scope(), &id).await {
        Ok(()) => done(
            &user,
            "Removed the passkey; it no longer signs in, and sessions it started have ended.",
            HERE,
        ),
        Err(e) => refused(&user, e, HERE),
    }
}

// ---- sign-in ----

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct SignInForm {
    csrf: String,
    ceremony: String,
    credential: String,
}

/// What a sign-in request carries, once its origin and double-submit CSRF value passed.
struct SignInRequest {
    form: SignInForm,
    jar: CookieJar,
    secure: bool,
    ip: Option<std::net::IpAddr>,
}

/// Reads a sign-in POST: same origin, the sign-in page's CSRF cookie and field equal, and
/// the address not blocked by its failed-authentication budget.
async fn sign_in_request(state: &ConsoleState, req: Request) -> Result<SignInRequest, Response> {
    let secure = request_is_secure(state, req.headers(), req.extensions());
    if let Err(r) = same_origin(secure, req.headers(), req.uri()) {
        tracing::info!("passkey sign-in refused: sent from another site");
        return Err(r.into_response());
    }
    let (parts, body) = req.into_parts();
    let jar = CookieJar::from_headers(&parts.headers);
    let ip = state.app.auth.client_ip(&parts);
    let form = match Form::<SignInForm>::from_request(Request::from_parts(parts, body), state).await
    {
        Ok(Form(f)) => f,
        Err(r) => return Err(form_refusal(r).into_response()),
    };
    let expected = jar
        .get(login_cookie_name(secure))
        .map(|c| c.value().to_owned())
        .unwrap_or_default();
    if expected.is_empty() || digest_of(&expected) != digest_of(&form.csrf) {
        tracing::info!("passkey sign-in refused: missing or wrong CSRF value");
        return Err(Refusal::cross_site().into_response());
    }
    if let Some(wait) = ip.and_then(|ip| state.app.auth.limits().address_blocked(ip)) {
        return Err(too_many(wait));
    }
    Ok(SignInRequest {
        form,
        jar,
        secure,
        ip,
    })
}

fn too_many(wait: Duration) -> Response {
    let mut res = json_error(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!(
            "Too many failed sign-ins from your address; try again in {}.",
            wait_text(wait)
        ),
    );
    if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    res
}

/// `POST /console/passkeys/login/options`: request options for a discoverable passkey.
pub(crate) async fn login_options(State(state): State<ConsoleState>, req: Request) -> Response {
    let Some(webauthn) = &state.passkeys.webauthn else {
        return disabled();
    };
    if let Err(res) = sign_in_request(&state, req).await {
        return res;
    }
    let (mut options, authentication) = match webauthn.start_discoverable_authentication() {
        Ok(started) => started,
        Err(e) => return json_refusal(Error::Integrity(format!("passkey sign-in: {e}"))),
    };
    // A button asks for the passkey (a modal request), not an autofill field.
    options.mediation = None;
    let ceremony = random_text::<16>(&mut state.app.rng());
    state
        .passkeys
        .sign_ins
        .insert(ceremony.clone(), Arc::new(authentication));
    Json(json!({ "ceremony": ceremony, "options": options })).into_response()
}

/// `POST /console/passkeys/login`: verifies the assertion and starts a session.
pub(crate) async fn login(State(state): State<ConsoleState>, req: Request) -> Response {
    let Some(webauthn) = &state.passkeys.webauthn else {
        return disabled();
    };
    let request = match sign_in_request(&state, req).await {
        Ok(r) => r,
        Err(res) => return res,
    };
    let failed = |why: &str| {
        tracing::info!(client = ?request.ip, "passkey sign-in refused: {why}");
        if let Some(wait) = request
            .ip
            .and_then(|ip| state.app.auth.limits().address_failed(ip))
        {
            return too_many(wait);
        }
        json_error(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "That passkey did not sign you in.",
        )
    };
    let Some(pending) = state.passkeys.sign_ins.remove(&request.form.ceremony) else {
        return failed("unknown, used or expired ceremony");
    };
    let Ok(answer) = serde_json::from_str::<PublicKeyCredential>(&request.form.credential) else {
        return failed("unreadable answer");
    };
    let Ok((handle, raw_id)) = webauthn.identify_discoverable_authentication(&answer) else {
        return failed("no user handle");
    };
    let Ok(id) = credential_id(raw_id) else {
        return failed("malformed credential id");
    };
    let record = match state.app.store.passkey_for_sign_in(&id).await {
        Ok(Some(r)) => r,
        Ok(None) => return failed("no such passkey, or its owner is not active"),
        Err(e) => return json_refusal(e),
    };
    if handle != user_handle(&record.owner_id) {
        return failed("the user handle names someone else");
    }
    let Ok(mut passkey) = serde_json::from_str::<Passkey>(&record.credential) else {
        return json_refusal(Error::Integrity(
            "a stored passkey does not read back".into(),
        ));
    };
    let result = match webauthn.finish_discoverable_authentication(
        &answer,
        (*pending).clone(),
        &[DiscoverableKey::from(&passkey)],
    ) {
        Ok(r) => r,
        Err(e) => return failed(&format!("assertion not verified: {e}")),
    };
    passkey.update_credential(&result);
    let Ok(credential) = serde_json::to_string(&passkey) else {
        return json_refusal(Error::Integrity("passkey serialization".into()));
    };
    let used = PasskeyUse {
        credential_id: id.clone(),
        owner_id: record.owner_id.clone(),
        credential,
        sign_count: result.counter(),
    };
    let identity = match state.app.store.record_passkey_sign_in(used).await {
        Ok(i) => i,
        Err(Error::Unauthenticated) => {
            return failed("the counter did not advance, or the passkey or user went away");
        }
        Err(e) => return json_refusal(e),
    };
    // A new session at every sign-in (no fixation): any session this browser carried ends.
    let jar = match session_cookies(
        &state,
        &request.jar,
        request.secure,
        identity.owner_id(),
        SessionMethod::Passkey,
        None,
    )
    .await
    {
        Ok(jar) => jar,
        Err(e) => return json_refusal(e),
    };
    (jar, redirect_json("/console")).into_response()
}

/// `GET /console/assets/passkey.js`.
pub(crate) async fn script() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/javascript; charset=utf-8"),
        )],
        SCRIPT,
    )
        .into_response()
}

/// The script, from the binary.
const SCRIPT: &str = include_str!("assets/passkey.js");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_handles_are_stable_and_distinct() {
        let alice = OwnerId::parse("alice").unwrap();
        let bob = OwnerId::parse("bob").unwrap();
        assert_eq!(user_handle(&alice), user_handle(&alice));
        assert_ne!(user_handle(&alice), user_handle(&bob));
    }
}
