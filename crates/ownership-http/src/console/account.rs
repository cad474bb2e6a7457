//! The account pages of every signed-in user beyond tokens: secrets, resource credentials
//! and the webhook endpoint with its delivery log. Each action calls the use case or port
//! its `/v1/me` twin calls, in the user's own scope; values that are shown once (a
//! resource token, a signing secret) are rendered by the POST's response only.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ownership_core::crypto::MasterKeys;
use ownership_core::ids::{ResourceId, SecretName};
use ownership_core::service::{self, ResourceRequest};
use ownership_core::{Error, ports::PageRequest};
use serde::Deserialize;

use super::ConsoleState;
use super::guard::{CsrfForm, Posted, Refusal, Signed, render};
use super::pages::{AfterQuery, alert, done, refused, resubmitted};
use super::session::random_text;
use super::views::{
    DeliveryRow, EndpointView, ResourceRow, ResourcesPage, Reveal, SecretRow, SecretsPage,
    WebhookPage,
};

const SECRETS: &str = "/console/secrets";
const RESOURCES: &str = "/console/resources";
const WEBHOOK: &str = "/console/webhook";

/// The master keys; `None` when the server has none (secrets and webhooks are off).
fn master_keys(state: &ConsoleState) -> Option<Arc<MasterKeys>> {
    state.app.master_keys.clone()
}

/// The page saying `what` is switched off (no master key configured).
fn disabled(what: &'static str) -> Response {
    Refusal::from_error(Error::Disabled(what)).into_response()
}

// ---- secrets ----

/// `GET /console/secrets`: names and times, never values.
pub(crate) async fn secrets_page(State(state): State<ConsoleState>, user: Signed) -> Response {
    if master_keys(&state).is_none() {
        return disabled("Secrets");
    }
    let secrets = match state.app.store.list_secrets(&user.scope()).await {
        Ok(list) => list,
        Err(e) => return Refusal::from_error(e).into_response(),
    };
    let page = SecretsPage {
        chrome: user.chrome("Secrets", "secrets"),
        secrets: secrets.iter().map(SecretRow::from).collect(),
    };
    render(StatusCode::OK, &page)
}

#[derive(Default, Deserialize)]
#[serde(default)]
pub(crate) struct SecretForm {
    csrf: String,
    name: String,
    value: String,
}

impl std::fmt::Debug for SecretForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretForm")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl CsrfForm for SecretForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// `POST /console/secrets`: `service::put_secret` in the user's scope (set or replace);
/// the answer is a redirect that names the secret, never its value.
pub(crate) async fn set_secret(
    State(state): State<ConsoleState>,
    Posted { user, form }: Posted<SecretForm>,
) -> Response {
    let Some(keys) = master_keys(&state) else {
        return disabled("Secrets");
    };
    let name = match SecretName::parse(form.name.trim()) {
        Ok(n) => n,
        Err(e) => return refused(&user, e, SECRETS),
    };
    if form.value.is_empty() {
        return alert(&user, "Enter the secret's value.", SECRETS);
    }
    match service::put_secret(
        &*state.app.store,
        &keys,
        &user.scope(),
        &name,
        &form.value,
        &mut state.app.rng(),
    )
    .await
    {
        Ok(meta) if meta.created_at == meta.updated_at => done(
            &user,
            format!(
                "Stored the secret {}. Its value is not shown again.",
                meta.name
            ),
            SECRETS,
        ),
        Ok(meta) => done(
            &user,
            format!(
                "Replaced the value of {}. It is not shown again.",
                meta.name
            ),
            SECRETS,
        ),
        Err(e) => refused(&user, e, SECRETS),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct NameForm {
    csrf: String,
    name: String,
}

impl CsrfForm for NameForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// `POST /console/secrets/delete`: resources granted it can no longer fetch it.
pub(crate) async fn delete_secret(
    State(state): State<ConsoleState>,
    Posted { user, form }: Posted<NameForm>,
) -> Response {
    if master_keys(&state).is_none() {
        return disabled("Secrets");
    }
    // A malformed name cannot name a secret: not found, like an absent one.
    let Ok(name) = SecretName::parse(&form.name) else {
        return refused(&user, Error::NotFound, SECRETS);
    };
    match state.app.store.delete_secret(&user.scope(), &name).await {
        Ok(()) => done(&user, format!("Deleted the secret {name}."), SECRETS),
        Err(e) => refused(&user, e, SECRETS),
    }
}

// ---- resource credentials ----

async fn resources_view(state: &ConsoleState, user: &Signed, reveal: Option<Reveal>) -> Response {
    if master_keys(state).is_none() {
        return disabled("Secrets");
    }
    let scope = user.scope();
    let (resources, secrets) = match (
        state.app.store.list_resources(&scope).await,
        state.app.store.list_secrets(&scope).await,
    ) {
        (Ok(r), Ok(s)) => (r, s),
        (Err(e), _) | (_, Err(e)) => return Refusal::from_error(e).into_response(),
    };
    let page = ResourcesPage {
        chrome: user.chrome("Resource credentials", "resources"),
        new_token: reveal,
        form_id: random_text::<16>(&mut state.app.rng()),
        secrets: secrets.iter().map(|s| s.name.to_string()).collect(),
        resources: resources.iter().map(ResourceRow::from).collect(),
    };
    render(StatusCode::OK, &page)
}

/// `GET /console/resources`.
pub(crate) async fn resources_page(State(state): State<ConsoleState>, user: Signed) -> Response {
    resources_view(&state, &user, None).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ResourceForm {
    csrf: String,
    form_id: String,
    kind: String,
    external_ref: String,
    grant: Vec<String>,
}

impl CsrfForm for ResourceForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// `POST /console/resources`: `service::create_resource` in the user's scope; the
/// resource token is rendered once, by this response.
pub(crate) async fn create_resource(
    State(state): State<ConsoleState>,
    Posted { user, form }: Posted<ResourceForm>,
) -> Response {
    if master_keys(&state).is_none() {
        return disabled("Secrets");
    }
    if !user.session.use_form(&form.form_id) {
        return resubmitted(&user, RESOURCES);
    }
    let grants = match form
        .grant
        .iter()
        .map(|g| SecretName::parse(g))
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(g) => g,
        Err(_) => {
            return refused(
                &user,
                Error::invalid("grants", "each grant must be a valid secret name"),
                RESOURCES,
            );
        }
    };
    let request = ResourceRequest {
        kind: form.kind.trim().to_owned(),
        external_ref: Some(form.external_ref.trim().to_owned()).filter(|r| !r.is_empty()),
        grants,
    };
    match service::create_resource(
        &*state.app.store,
        &user.scope(),
        request,
        &mut state.app.rng(),
    )
    .await
    {
        Ok((record, secret)) => {
            let reveal = Reveal::token(
                "Your new resource token",
                format!(
                    "Created the resource {} ({}). Give this token to the resource: it fetches its granted secrets with it.",
                    record.id, record.kind
                ),
                secret.expose(),
            );
            resources_view(&state, &user, Some(reveal)).await
        }
        Err(e) => refused(&user, e, RESOURCES),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct IdForm {
    csrf: String,
    id: String,
}

impl CsrfForm for IdForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// `POST /console/resources/revoke`: the resource token stops working at once.
pub(crate) async fn revoke_resource(
    State(state): State<ConsoleState>,
    Posted { user, form }: Posted<IdForm>,
) -> Response {
    if master_keys(&state).is_none() {
        return disabled("Secrets");
    }
    let Ok(id) = ResourceId::parse(&form.id) else {
        return refused(&user, Error::NotFound, RESOURCES);
    };
    match state.app.store.revoke_resource(&user.scope(), &id).await {
        Ok(()) => done(
            &user,
            format!("Revoked the resource {id}: its token stopped working."),
            RESOURCES,
        ),
        Err(e) => refused(&user, e, RESOURCES),
    }
}

// ---- webhook ----

async fn webhook_view(
    state: &ConsoleState,
    user: &Signed,
    after: &PageRequest,
    reveal: Option<Reveal>,
) -> Response {
    if master_keys(state).is_none() {
        return disabled("Webhooks");
    }
    let scope = user.scope();
    let (endpoint, deliveries) = match (
        state.app.store.get_endpoint(&scope).await,
        state.app.store.list_deliveries(&scope, after).await,
    ) {
        (Ok(e), Ok(d)) => (e, d),
        (Err(e), _) | (_, Err(e)) => return Refusal::from_error(e).into_response(),
    };
    let now = state.app.clock.now();
    let page = WebhookPage {
        chrome: user.chrome("Webhook", "webhook"),
        new_token: reveal,
        form_id: random_text::<16>(&mut state.app.rng()),
        endpoint: endpoint.as_ref().map(|e| EndpointView::new(e, now)),
        deliveries: deliveries.items.iter().map(DeliveryRow::from).collect(),
        next: deliveries.next,
    };
    render(StatusCode::OK, &page)
}

/// `GET /console/webhook`: the endpoint (never its secrets) and the delivery log.
pub(crate) async fn webhook_page(
    State(state): State<ConsoleState>,
    user: Signed,
    q: Result<Query<AfterQuery>, QueryRejection>,
) -> Response {
    let q = AfterQuery::or_default(q);
    webhook_view(&state, &user, &q.page(), None).await
}

/// A signing secret shown once.
fn signing_secret(heading: &str, note: String, value: &str) -> Reveal {
    Reveal {
        heading: heading.to_owned(),
        note,
        label: "New signing secret",
        value: value.to_owned(),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct EndpointForm {
    csrf: String,
    form_id: String,
    url: String,
}

impl CsrfForm for EndpointForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// `POST /console/webhook`: checks the URL as `PUT /v1/me/webhook` does, then
/// `service::set_webhook`; the new signing secret is rendered once, by this response.
pub(crate) async fn set_webhook(
    State(state): State<ConsoleState>,
    Posted { user, form }: Posted<EndpointForm>,
) -> Response {
    let Some(keys) = master_keys(&state) else {
        return disabled("Webhooks");
    };
    if !user.session.use_form(&form.form_id) {
        return resubmitted(&user, WEBHOOK);
    }
    let url = match ownership_webhooks::check_endpoint_url(
        form.url.trim(),
        state.app.config.allow_private_webhooks,
    )
    .await
    {
        Ok(u) => u,
        Err(e) => return refused(&user, e, WEBHOOK),
    };
    match service::set_webhook(
        &*state.app.store,
        &keys,
        &user.scope(),
        &url,
        &mut state.app.rng(),
    )
    .await
    {
        Ok((endpoint, secret)) => {
            let reveal = signing_secret(
                "Your endpoint's signing secret",
                format!(
                    "Events are now sent to {}, signed with this secret.",
                    endpoint.url.as_str()
                ),
                secret.expose(),
            );
            webhook_view(&state, &user, &PageRequest::default(), Some(reveal)).await
        }
        Err(e) => refused(&user, e, WEBHOOK),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RotateForm {
    csrf: String,
    form_id: String,
    grace: String,
}

impl CsrfForm for RotateForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// `POST /console/webhook/rotate`: `service::rotate_webhook_secret` with the chosen grace
/// (at most 30 days, as the API); the new secret is rendered once, by this response.
pub(crate) async fn rotate_webhook(
    State(state): State<ConsoleState>,
    Posted { user, form }: Posted<RotateForm>,
) -> Response {
    let Some(keys) = master_keys(&state) else {
        return disabled("Webhooks");
    };
    if !user.session.use_form(&form.form_id) {
        return resubmitted(&user, WEBHOOK);
    }
    let Ok(secs) = form.grace.trim().parse::<u64>() else {
        return alert(
            &user,
            "Choose how long the old secret keeps signing.",
            WEBHOOK,
        );
    };
    let now = state.app.clock.now();
    match service::rotate_webhook_secret(
        &*state.app.store,
        &keys,
        &user.scope(),
        Duration::from_secs(secs),
        now,
        &mut state.app.rng(),
    )
    .await
    {
        Ok((endpoint, secret)) => {
            let note = match EndpointView::new(&endpoint, now).previous_until {
                Some(until) => format!(
                    "Rotated: the old secret keeps signing beside this one until {}.",
                    until.text
                ),
                None => "Rotated: the old secret stopped signing.".to_owned(),
            };
            let reveal = signing_secret("Your new signing secret", note, secret.expose());
            webhook_view(&state, &user, &PageRequest::default(), Some(reveal)).await
        }
        Err(e) => refused(&user, e, WEBHOOK),
    }
}

/// `POST /console/webhook/delete`: nothing more is sent.
pub(crate) async fn delete_webhook(
    State(state): State<ConsoleState>,
    Posted { user, .. }: Posted<super::pages::CsrfOnly>,
) -> Response {
    if master_keys(&state).is_none() {
        return disabled("Webhooks");
    }
    match state.app.store.delete_endpoint(&user.scope()).await {
        Ok(()) => done(&user, "Removed the webhook endpoint.", WEBHOOK),
        Err(e) => refused(&user, e, WEBHOOK),
    }
}
