//! The Admin and Owner pages: pairing approvals and user management. Every handler takes
//! the `AdminScope` proof through its extractor ([`AdminSigned`] for a page,
//! [`AdminPosted`] for a form: a Member gets 403 before the handler runs) and passes it to
//! the same use case or port the `/v1/admin` routes call; the rules of
//! docs/security.md#authorization are checked there.

use std::collections::BTreeSet;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ownership_core::authz::AdminScope;
use ownership_core::ids::Label;
use ownership_core::ids::TokenId;
use ownership_core::oidc::OidcSubject;
use ownership_core::ports::PageRequest;
use ownership_core::service;
use ownership_core::{ChannelName, Error, OwnerId, TokenKind, TokenKinds, UserRole, UserStatus};
use serde::Deserialize;

use super::ConsoleState;
use super::guard::{AdminPosted, AdminSigned, CsrfForm, Refusal, Signed, render};
use super::pages::{
    AfterQuery, alert, code_refusal, done, refused, resubmitted, sentence, too_many_codes,
};
use super::session::{Flash, random_text};
use super::views::{
    DeleteUserPage, OidcLinkRow, OidcLinksPage, PairingPage, PendingRow, Reveal, ServiceTokensPage,
    TokenRow, UserRow, UsersPage,
};

const PAIRING: &str = "/console/admin/pairing";
const USERS: &str = "/console/admin/users";

// ---- pairing ----

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ChannelQuery {
    channel: Option<String>,
}

/// `GET /console/admin/pairing`: the pending requests (never their codes) of every
/// channel, newest first, or of the one channel asked for.
pub(crate) async fn pairing_page(
    State(state): State<ConsoleState>,
    AdminSigned { user, admin }: AdminSigned,
    q: Result<Query<ChannelQuery>, QueryRejection>,
) -> Response {
    let asked = q
        .ok()
        .and_then(|Query(q)| q.channel)
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty());
    let mut chrome_alert = None;
    let mut shown = None;
    if let Some(raw) = &asked {
        match ChannelName::parse(raw) {
            Ok(c) => shown = Some(c),
            Err(e) => chrome_alert = super::pages::say(&e),
        }
    }
    let all = match state.app.store.list_all_pending(&admin).await {
        Ok(list) => list,
        Err(e) => return Refusal::from_error(e).into_response(),
    };
    let mut channels: BTreeSet<String> = all.iter().map(|p| p.key.channel.to_string()).collect();
    channels.extend(shown.as_ref().map(ToString::to_string));
    let requests = all
        .iter()
        .filter(|p| shown.as_ref().is_none_or(|c| p.key.channel == *c))
        .map(PendingRow::from)
        .collect();
    let users = match state
        .app
        .store
        .list_users(
            &admin,
            &PageRequest {
                after: None,
                limit: 500,
            },
        )
        .await
    {
        Ok(p) => p.items.iter().map(|u| u.id.to_string()).collect(),
        Err(e) => return Refusal::from_error(e).into_response(),
    };
    let mut chrome = user.chrome("Pairing requests", "pairing");
    if let Some(text) = chrome_alert {
        chrome.flashes.push(Flash::alert(text));
    }
    let shown_channel = shown.map(|c| c.to_string()).unwrap_or_default();
    let approve_channel = if shown_channel.is_empty() && channels.len() == 1 {
        channels.first().cloned().unwrap_or_default()
    } else {
        shown_channel.clone()
    };
    let page = PairingPage {
        chrome,
        approve_channel,
        shown_channel,
        channels: channels.into_iter().collect(),
        users,
        requests,
    };
    render(StatusCode::OK, &page)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ApproveForm {
    csrf: String,
    channel: String,
    code: String,
    user: String,
}

impl CsrfForm for ApproveForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// `POST /console/admin/pairing`: `service::approve_pairing` under the admin's scope,
/// limited like `POST /v1/admin/pairing/{channel}/approve`. A chat account bound to
/// another user is refused (the 409 of the API) with the store's message.
pub(crate) async fn approve(
    State(state): State<ConsoleState>,
    AdminPosted { user, admin, form }: AdminPosted<ApproveForm>,
) -> Response {
    let channel = match ChannelName::parse(form.channel.trim()) {
        Ok(c) => c,
        Err(e) => return refused(&user, e, PAIRING),
    };
    let here = format!("{PAIRING}?channel={channel}");
    let owner = match OwnerId::parse(form.user.trim()) {
        Ok(o) => o,
        Err(e) => return refused(&user, e, &here),
    };
    // Name the user's absence plainly rather than let it read as a wrong code.
    match state.app.store.get_user(&admin, &owner).await {
        Ok(_) => {}
        Err(Error::NotFound) => {
            return alert(&user, format!("There is no user {owner}."), &here);
        }
        Err(e) => return refused(&user, e, &here),
    }
    if form.code.trim().is_empty() {
        return alert(&user, "Enter the pairing code the person read out.", &here);
    }
    let mut gate = match state
        .app
        .auth
        .limits()
        .pairing_gate(user.identity.owner_id())
        .await
    {
        Ok(gate) => gate,
        Err(wait) => return alert(&user, too_many_codes(wait), &here),
    };
    let result = service::approve_pairing(
        &*state.app.store,
        &admin,
        &state.app.pairing_key,
        &channel,
        &form.code,
        &owner,
    )
    .await;
    gate.record(&result);
    match result {
        Ok(b) => {
            crate::metrics::pairing_redeemed();
            done(
                &user,
                format!(
                    "Linked the {} account {} to {}.",
                    b.key.channel, b.key.external_id, b.owner_id
                ),
                &here,
            )
        }
        Err(Error::Conflict(m)) => alert(&user, sentence(&m), &here),
        Err(e) => match code_refusal(&e) {
            Some(text) => alert(&user, text, &here),
            None => refused(&user, e, &here),
        },
    }
}

// ---- users ----

async fn users_view(
    state: &ConsoleState,
    user: &Signed,
    admin: &AdminScope,
    after: PageRequest,
    reveal: Option<Reveal>,
) -> Response {
    let page = match state.app.store.list_users(admin, &after).await {
        Ok(p) => p,
        Err(e) => return Refusal::from_error(e).into_response(),
    };
    let me = user.identity.owner_id();
    let view = UsersPage {
        chrome: user.chrome("Users", "users"),
        new_token: reveal,
        form_id: random_text::<16>(&mut state.app.rng()),
        users: page
            .items
            .iter()
            .map(|u| UserRow::new(u, &u.id == me))
            .collect(),
        next: page.next,
    };
    render(StatusCode::OK, &view)
}

/// `GET /console/admin/users`.
pub(crate) async fn users_page(
    State(state): State<ConsoleState>,
    AdminSigned { user, admin }: AdminSigned,
    q: Result<Query<AfterQuery>, QueryRejection>,
) -> Response {
    let q = AfterQuery::or_default(q);
    users_view(&state, &user, &admin, q.page(), None).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct CreateUserForm {
    csrf: String,
    form_id: String,
    user_id: String,
    role: String,
}

impl CsrfForm for CreateUserForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// `POST /console/admin/users`: `service::create_user` under the admin's scope; the new
/// user's first token is rendered once, by this response.
pub(crate) async fn create_user(
    State(state): State<ConsoleState>,
    AdminPosted { user, admin, form }: AdminPosted<CreateUserForm>,
) -> Response {
    if !user.session.use_form(&form.form_id) {
        return alert(
            &user,
            "That form was already submitted, so nothing new was made. The user's token was \
             shown once, on the page that answered it.",
            USERS,
        );
    }
    let id = match OwnerId::parse(form.user_id.trim()) {
        Ok(id) => id,
        Err(e) => return refused(&user, e, USERS),
    };
    let role = match UserRole::parse(&form.role) {
        Ok(r) => r,
        Err(e) => return refused(&user, e, USERS),
    };
    match service::create_user(&*state.app.store, &admin, &id, role, &mut state.app.rng()).await {
        Ok((created, secret)) => {
            let reveal = Reveal::token(
                format!("Token for {}", created.id),
                format!(
                    "Created the {} {}. Give them this token (kinds manage and api) over a safe channel.",
                    created.role, created.id
                ),
                secret.expose(),
            );
            users_view(&state, &user, &admin, PageRequest::default(), Some(reveal)).await
        }
        Err(e) => refused(&user, e, USERS),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RoleForm {
    csrf: String,
    user: String,
    role: String,
}

impl CsrfForm for RoleForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// A user id from a form: one that cannot name a user is simply not found.
fn target(raw: &str) -> Result<OwnerId, Error> {
    OwnerId::parse(raw).map_err(|_| Error::NotFound)
}

/// `POST /console/admin/users/role`.
pub(crate) async fn set_role(
    State(state): State<ConsoleState>,
    AdminPosted { user, admin, form }: AdminPosted<RoleForm>,
) -> Response {
    let (id, role) = match (target(&form.user), UserRole::parse(&form.role)) {
        (Ok(id), Ok(role)) => (id, role),
        (Err(e), _) | (_, Err(e)) => return refused(&user, e, USERS),
    };
    match state.app.store.set_role(&admin, &id, role).await {
        Ok(u) => done(&user, format!("{} is now {}.", u.id, u.role), USERS),
        Err(e) => refused(&user, e, USERS),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct StatusForm {
    csrf: String,
    user: String,
    status: String,
}

impl CsrfForm for StatusForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// `POST /console/admin/users/status`: suspend or resume. A suspended user's tokens stop
/// working at once, and with them their console sessions.
pub(crate) async fn set_status(
    State(state): State<ConsoleState>,
    AdminPosted { user, admin, form }: AdminPosted<StatusForm>,
) -> Response {
    let (id, status) = match (target(&form.user), UserStatus::parse(&form.status)) {
        (Ok(id), Ok(s)) => (id, s),
        (Err(e), _) | (_, Err(e)) => return refused(&user, e, USERS),
    };
    match state.app.store.set_status(&admin, &id, status).await {
        Ok(u) if u.status == UserStatus::Suspended => done(
            &user,
            format!("{} is suspended: their tokens stopped working.", u.id),
            USERS,
        ),
        Ok(u) => done(&user, format!("{} is active again.", u.id), USERS),
        Err(e) => refused(&user, e, USERS),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct UserQuery {
    user: String,
}

/// `GET /console/admin/users/delete?user=…`: the confirmation page.
pub(crate) async fn delete_page(
    State(state): State<ConsoleState>,
    AdminSigned { user, admin }: AdminSigned,
    q: Result<Query<UserQuery>, QueryRejection>,
) -> Response {
    let q = q.map(|Query(q)| q).unwrap_or_default();
    let found = match target(&q.user) {
        Ok(id) => state.app.store.get_user(&admin, &id).await,
        Err(e) => Err(e),
    };
    match found {
        Ok(u) => render(
            StatusCode::OK,
            &DeleteUserPage {
                chrome: user.chrome("Delete a user", "users"),
                user_id: u.id.to_string(),
            },
        ),
        Err(e) => Refusal::from_error(e).into_response(),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct DeleteForm {
    csrf: String,
    user: String,
}

impl CsrfForm for DeleteForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// `POST /console/admin/users/delete`: the user, their tokens, chat accounts, secrets and
/// data key go (the rules of docs/security.md#authorization apply in the store's transaction).
pub(crate) async fn delete_user(
    State(state): State<ConsoleState>,
    AdminPosted { user, admin, form }: AdminPosted<DeleteForm>,
) -> Response {
    let id = match target(&form.user) {
        Ok(id) => id,
        Err(e) => return refused(&user, e, USERS),
    };
    match state.app.store.delete_user(&admin, &id).await {
        Ok(()) => done(&user, format!("Deleted {id}."), USERS),
        Err(e) => refused(&user, e, USERS),
    }
}

// ---- identity-provider accounts of a user ----

const OIDC: &str = "/console/admin/users/oidc";

/// The page of `user`'s identity-provider accounts.
fn oidc_here(user: &OwnerId) -> String {
    let id: String = url::form_urlencoded::byte_serialize(user.as_str().as_bytes()).collect();
    format!("{OIDC}?user={id}")
}

/// `GET /console/admin/users/oidc?user=…`: the user's linked `(issuer, subject)` pairs and
/// the form that links one, under the linking rule the use case checks (an Admin for
/// Members and themself, an Owner for anyone; anything else is the 403 page).
pub(crate) async fn oidc_page(
    State(state): State<ConsoleState>,
    AdminSigned { user, admin }: AdminSigned,
    q: Result<Query<UserQuery>, QueryRejection>,
) -> Response {
    let q = q.map(|Query(q)| q).unwrap_or_default();
    let id = match target(&q.user) {
        Ok(id) => id,
        Err(e) => return Refusal::from_error(e).into_response(),
    };
    match state.app.store.oidc_links(&admin, &id).await {
        Ok(links) => render(
            StatusCode::OK,
            &OidcLinksPage {
                chrome: user.chrome("Identity-provider accounts", "users"),
                user_id: id.to_string(),
                links: links.iter().map(OidcLinkRow::new).collect(),
            },
        ),
        Err(e) => Refusal::from_error(e).into_response(),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct OidcForm {
    csrf: String,
    user: String,
    issuer: String,
    subject: String,
}

impl CsrfForm for OidcForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// The target and the subject of a link form; a refusal (a flashed message, or the
/// not-found page for a user id that cannot name anyone) otherwise.
fn oidc_target(
    user: &Signed,
    form: &OidcForm,
) -> Result<(OwnerId, OidcSubject, String), Box<Response>> {
    let id =
        target(form.user.trim()).map_err(|e| Box::new(Refusal::from_error(e).into_response()))?;
    let here = oidc_here(&id);
    match OidcSubject::parse(&form.issuer, form.subject.trim()) {
        Ok(subject) => Ok((id, subject, here)),
        Err(e) => Err(Box::new(refused(user, e, &here))),
    }
}

/// `POST /console/admin/users/oidc`: `link_oidc` under the admin's scope, as
/// `ownership users link-oidc`; audited (`oidc.linked`) by the use case.
pub(crate) async fn link_oidc(
    State(state): State<ConsoleState>,
    AdminPosted { user, admin, form }: AdminPosted<OidcForm>,
) -> Response {
    let (id, subject, here) = match oidc_target(&user, &form) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    match state.app.store.link_oidc(&admin, &id, &subject).await {
        Ok(_) => done(
            &user,
            format!(
                "Linked the subject {} of {} to {id}.",
                subject.subject(),
                subject.issuer()
            ),
            &here,
        ),
        Err(e) => refused(&user, e, &here),
    }
}

/// `POST /console/admin/users/oidc/unlink`: `unlink_oidc`, which also ends the user's
/// sessions started with a provider; audited (`oidc.unlinked`) by the use case.
pub(crate) async fn unlink_oidc(
    State(state): State<ConsoleState>,
    AdminPosted { user, admin, form }: AdminPosted<OidcForm>,
) -> Response {
    let (id, subject, here) = match oidc_target(&user, &form) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    match state.app.store.unlink_oidc(&admin, &id, &subject).await {
        Ok(()) => done(
            &user,
            format!(
                "Unlinked the subject {} of {} from {id}; their provider sessions ended.",
                subject.subject(),
                subject.issuer()
            ),
            &here,
        ),
        Err(e) => refused(&user, e, &here),
    }
}

// ---- service tokens ----

const SERVICE_TOKENS: &str = "/console/admin/service-tokens";

/// The Admin's own service tokens (`_admin`: only an Admin or Owner sees this page).
async fn service_tokens_view(
    state: &ConsoleState,
    user: &Signed,
    _admin: &AdminScope,
    reveal: Option<Reveal>,
) -> Response {
    let tokens = match state.app.store.list_tokens(&user.scope()).await {
        Ok(t) => t,
        Err(e) => return Refusal::from_error(e).into_response(),
    };
    let now = state.app.clock.now();
    let page = ServiceTokensPage {
        chrome: user.chrome("Service tokens", "service-tokens"),
        new_token: reveal,
        form_id: random_text::<16>(&mut state.app.rng()),
        tokens: tokens
            .iter()
            .filter(|t| t.kinds.has_service_kind())
            .map(|t| TokenRow::new(t, now, false))
            .collect(),
    };
    render(StatusCode::OK, &page)
}

/// `GET /console/admin/service-tokens`: the Admin's own service tokens.
pub(crate) async fn service_tokens_page(
    State(state): State<ConsoleState>,
    AdminSigned { user, admin }: AdminSigned,
) -> Response {
    service_tokens_view(&state, &user, &admin, None).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ServiceTokenForm {
    csrf: String,
    form_id: String,
    label: String,
    channels: String,
    verify: String,
}

impl CsrfForm for ServiceTokenForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// The kinds a service-token form asks for: `channel:<name>` for each channel named
/// (separated by commas or spaces) and `verify` when ticked.
fn service_kinds(form: &ServiceTokenForm) -> Result<TokenKinds, Error> {
    let mut kinds = form
        .channels
        .split([',', ' ', '\t', '\n', '\r'])
        .filter(|c| !c.is_empty())
        .map(|c| ChannelName::parse(c).map(TokenKind::Channel))
        .collect::<Result<Vec<_>, _>>()?;
    if !form.verify.is_empty() {
        kinds.push(TokenKind::Verify);
    }
    if kinds.is_empty() {
        return Err(Error::invalid(
            "kinds",
            "name at least one channel or tick verify",
        ));
    }
    TokenKinds::new(kinds)
}

/// `POST /console/admin/service-tokens`: `service::issue_service_token` with the session's
/// principal and admin scope, as `POST /v1/admin/service-tokens`; the value is rendered
/// once, by this response.
pub(crate) async fn mint_service_token(
    State(state): State<ConsoleState>,
    AdminPosted { user, admin, form }: AdminPosted<ServiceTokenForm>,
) -> Response {
    if !user.session.use_form(&form.form_id) {
        return resubmitted(&user, SERVICE_TOKENS);
    }
    let kinds = match service_kinds(&form) {
        Ok(k) => k,
        Err(e) => return refused(&user, e, SERVICE_TOKENS),
    };
    let label = match Label::parse_optional(Some(form.label.trim()).filter(|l| !l.is_empty())) {
        Ok(l) => l,
        Err(e) => return refused(&user, e, SERVICE_TOKENS),
    };
    let minter = match user.minting_token() {
        Ok(p) => p,
        Err(e) => return refused(&user, e, SERVICE_TOKENS),
    };
    match service::issue_service_token(
        &*state.app.store,
        minter,
        &admin,
        kinds,
        label,
        &mut state.app.rng(),
    )
    .await
    {
        Ok((record, secret)) => {
            let kinds: Vec<String> = record.kinds.iter().map(ToString::to_string).collect();
            let reveal = Reveal::token(
                "Your new service token",
                format!(
                    "Created service token {}… with the kinds {}.",
                    record.display_prefix,
                    kinds.join(", ")
                ),
                secret.expose(),
            );
            service_tokens_view(&state, &user, &admin, Some(reveal)).await
        }
        Err(e) => refused(&user, e, SERVICE_TOKENS),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RevokeForm {
    csrf: String,
    id: String,
}

impl CsrfForm for RevokeForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// `POST /console/admin/service-tokens/revoke`: one of the Admin's service tokens stops
/// working at once (a token of another kind is not found here).
pub(crate) async fn revoke_service_token(
    State(state): State<ConsoleState>,
    AdminPosted { user, form, .. }: AdminPosted<RevokeForm>,
) -> Response {
    let Ok(id) = TokenId::parse(&form.id) else {
        return refused(&user, Error::NotFound, SERVICE_TOKENS);
    };
    let scope = user.scope();
    match state.app.store.get_token(&scope, &id).await {
        Ok(t) if t.kinds.has_service_kind() => {}
        Ok(_) => return refused(&user, Error::NotFound, SERVICE_TOKENS),
        Err(e) => return refused(&user, e, SERVICE_TOKENS),
    }
    match state.app.store.revoke_token(&scope, &id, None).await {
        Ok(t) => done(
            &user,
            format!(
                "Revoked service token {}…: it stopped working.",
                t.display_prefix
            ),
            SERVICE_TOKENS,
        ),
        Err(e) => refused(&user, e, SERVICE_TOKENS),
    }
}
