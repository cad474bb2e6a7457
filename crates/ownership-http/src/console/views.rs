//! The pages' templates (`templates/*.html`, compiled by askama, HTML-escaped by default)
//! and the plain view models they read. Nothing here decides anything: handlers fill
//! these from what the use cases returned.

use askama::Template;
use ownership_core::audit::AuditEvent;
use ownership_core::ports::{
    ChannelBinding, Delivery, DeliveryState, PendingPairing, ResourceRecord, SecretMeta,
    TokenRecord, User, WebhookEndpoint,
};
use ownership_core::{UserRole, UserStatus};
use time::OffsetDateTime;
use time::macros::format_description;

use super::session::Flash;

/// What every page's frame shows: the title, who is signed in, the sign-out form's CSRF
/// token, the one-time messages and which navigation link is the current page.
#[derive(Debug, Clone, Default)]
pub(crate) struct Chrome {
    pub title: &'static str,
    pub user: Option<Badge>,
    pub csrf: String,
    pub flashes: Vec<Flash>,
    pub current: &'static str,
}

/// The signed-in user, as the frame shows them.
#[derive(Debug, Clone)]
pub(crate) struct Badge {
    pub id: String,
    pub is_admin: bool,
}

/// A time, machine-readable (`datetime`) and for people (`text`, in two parts that a
/// narrow column may put on two lines: the date, and the time of day).
#[derive(Debug, Clone)]
pub(crate) struct When {
    pub iso: String,
    pub date: String,
    pub clock: String,
    pub text: String,
}

impl When {
    pub fn of(at: OffsetDateTime) -> Self {
        let utc = at.to_offset(time::UtcOffset::UTC);
        let iso = ownership_core::audit::rfc3339(utc);
        let date = utc
            .format(format_description!("[year]-[month]-[day]"))
            .unwrap_or_else(|_| iso.clone());
        let clock = utc
            .format(format_description!("[hour]:[minute] UTC"))
            .unwrap_or_default();
        Self {
            text: format!("{date} {clock}"),
            iso,
            date,
            clock,
        }
    }
}

/// A value shown once (a token, a signing secret), in the field labelled `label`
/// (**New token** for tokens).
#[derive(Debug, Clone)]
pub(crate) struct Reveal {
    pub heading: String,
    pub note: String,
    pub label: &'static str,
    pub value: String,
}

impl Reveal {
    /// A token shown once, in the field labelled **New token**.
    pub fn token(heading: impl Into<String>, note: String, value: &str) -> Self {
        Self {
            heading: heading.into(),
            note,
            label: "New token",
            value: value.to_owned(),
        }
    }
}

#[derive(Template)]
#[template(path = "login.html")]
pub(crate) struct LoginPage {
    pub chrome: Chrome,
    pub csrf: String,
    pub error: Option<String>,
    /// Whether the passkey button (and its script) is on the page.
    pub passkeys: bool,
    /// The OpenID Connect provider's name, when one is configured.
    pub provider: Option<String>,
}

/// The page an OpenID Connect sign-in lands on, which sends the browser on to the console.
#[derive(Template)]
#[template(path = "continue.html")]
pub(crate) struct ContinuePage {
    pub chrome: Chrome,
}

#[derive(Template)]
#[template(path = "home.html")]
pub(crate) struct HomePage {
    pub chrome: Chrome,
    pub user_id: String,
    pub role: &'static str,
    pub is_admin: bool,
    /// The token of a token sign-in.
    pub token_prefix: Option<String>,
    /// How the session was started, in words.
    pub method: &'static str,
    pub ends_at: String,
}

#[derive(Debug, Clone)]
pub(crate) struct IdentityRow {
    pub channel: String,
    pub external_id: String,
    pub linked: When,
}

impl From<&ChannelBinding> for IdentityRow {
    fn from(b: &ChannelBinding) -> Self {
        Self {
            channel: b.key.channel.to_string(),
            external_id: b.key.external_id.to_string(),
            linked: When::of(b.created_at),
        }
    }
}

#[derive(Template)]
#[template(path = "link.html")]
pub(crate) struct LinkPage {
    pub chrome: Chrome,
    pub channel: String,
    pub identities: Vec<IdentityRow>,
}

#[derive(Debug, Clone)]
pub(crate) struct TokenRow {
    pub id: String,
    pub prefix: String,
    pub label: String,
    pub kinds: String,
    pub created: When,
    pub last_used: Option<When>,
    pub expires: Option<When>,
    pub live: bool,
    pub state: Option<&'static str>,
    pub current: bool,
}

impl TokenRow {
    pub fn new(t: &TokenRecord, now: OffsetDateTime, current: bool) -> Self {
        let live = t.is_live(now);
        let state = if live {
            t.revoked_at.map(|_| "in its rotation grace period")
        } else if t.revoked_at.is_some_and(|at| at <= now) {
            Some("revoked")
        } else {
            Some("expired")
        };
        Self {
            id: t.id.to_string(),
            prefix: t.display_prefix.to_string(),
            label: t.label.as_deref().unwrap_or_default().to_owned(),
            kinds: t
                .kinds
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            created: When::of(t.created_at),
            last_used: t.last_used_at.map(When::of),
            expires: t.expires_at.map(When::of),
            live,
            state,
            current,
        }
    }
}

#[derive(Template)]
#[template(path = "tokens.html")]
pub(crate) struct TokensPage {
    pub chrome: Chrome,
    pub new_token: Option<Reveal>,
    pub form_id: String,
    pub kinds: Vec<String>,
    pub tokens: Vec<TokenRow>,
}

#[derive(Debug, Clone)]
pub(crate) struct PendingRow {
    pub channel: String,
    pub external_id: String,
    pub meta: Vec<Detail>,
    pub created: When,
    pub expires: When,
}

impl From<&PendingPairing> for PendingRow {
    fn from(p: &PendingPairing) -> Self {
        Self {
            channel: p.key.channel.to_string(),
            external_id: p.key.external_id.to_string(),
            meta: p.meta.as_deref().map(details).unwrap_or_default(),
            created: When::of(p.created_at),
            expires: When::of(p.expires_at),
        }
    }
}

#[derive(Template)]
#[template(path = "pairing.html")]
pub(crate) struct PairingPage {
    pub chrome: Chrome,
    pub approve_channel: String,
    pub shown_channel: String,
    pub channels: Vec<String>,
    pub users: Vec<String>,
    pub requests: Vec<PendingRow>,
}

#[derive(Debug, Clone)]
pub(crate) struct RoleOption {
    pub value: &'static str,
    pub selected: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct UserRow {
    pub id: String,
    pub role: &'static str,
    pub status: &'static str,
    pub suspended: bool,
    pub created: When,
    pub is_you: bool,
    pub roles: Vec<RoleOption>,
}

impl UserRow {
    pub fn new(u: &User, you: bool) -> Self {
        Self {
            id: u.id.to_string(),
            role: u.role.as_str(),
            status: u.status.as_str(),
            suspended: u.status == UserStatus::Suspended,
            created: When::of(u.created_at),
            is_you: you,
            roles: [UserRole::Member, UserRole::Admin, UserRole::Owner]
                .into_iter()
                .map(|r| RoleOption {
                    value: r.as_str(),
                    selected: r == u.role,
                })
                .collect(),
        }
    }
}

#[derive(Template)]
#[template(path = "users.html")]
pub(crate) struct UsersPage {
    pub chrome: Chrome,
    pub new_token: Option<Reveal>,
    pub form_id: String,
    pub users: Vec<UserRow>,
    pub next: Option<String>,
}

#[derive(Template)]
#[template(path = "delete_user.html")]
pub(crate) struct DeleteUserPage {
    pub chrome: Chrome,
    pub user_id: String,
}

/// A user's identity-provider accounts, and the form that links one.
#[derive(Template)]
#[template(path = "oidc_links.html")]
pub(crate) struct OidcLinksPage {
    pub chrome: Chrome,
    pub user_id: String,
    pub links: Vec<OidcLinkRow>,
}

#[derive(Debug, Clone)]
pub(crate) struct OidcLinkRow {
    pub issuer: String,
    pub subject: String,
    pub linked: When,
}

impl OidcLinkRow {
    pub fn new(l: &ownership_core::oidc::OidcLink) -> Self {
        Self {
            issuer: l.subject.issuer().to_owned(),
            subject: l.subject.subject().to_owned(),
            linked: When::of(l.created_at),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct EventRow {
    pub seq: i64,
    pub at: When,
    pub actor: String,
    pub owner: String,
    pub action: &'static str,
    pub target: String,
    pub details: Vec<Detail>,
}

/// One entry of an event's details, for people: `key` and its value as text.
#[derive(Debug, Clone)]
pub(crate) struct Detail {
    pub key: String,
    pub value: String,
}

/// A detail's value as text: a string as itself, a list as its items separated by
/// commas (`none` when empty), anything else (a number, a nested object) as compact JSON.
fn detail_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(items) if items.is_empty() => "none".to_owned(),
        serde_json::Value::Array(items) => {
            items.iter().map(detail_text).collect::<Vec<_>>().join(", ")
        }
        other => other.to_string(),
    }
}

/// An event's details (a JSON object) as key/value pairs, by key; details
/// that are not an object are one pair under `details`, and empty ones none.
pub(crate) fn details(raw: &str) -> Vec<Detail> {
    let text = detail_text;
    match serde_json::from_str::<serde_json::Value>(raw) {
        Ok(serde_json::Value::Object(map)) => map
            .iter()
            .map(|(k, v)| Detail {
                key: k.clone(),
                value: text(v),
            })
            .collect(),
        Ok(serde_json::Value::Null) => Vec::new(),
        Ok(other) => vec![Detail {
            key: "details".to_owned(),
            value: text(&other),
        }],
        Err(_) if raw.trim().is_empty() => Vec::new(),
        Err(_) => vec![Detail {
            key: "details".to_owned(),
            value: raw.to_owned(),
        }],
    }
}

impl From<&AuditEvent> for EventRow {
    fn from(e: &AuditEvent) -> Self {
        Self {
            seq: e.seq,
            at: When::of(e.at),
            actor: e.actor.to_string(),
            owner: e
                .owner
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            action: e.action.as_str(),
            target: e.target.clone(),
            details: details(&e.details),
        }
    }
}

#[derive(Template)]
#[template(path = "audit.html")]
pub(crate) struct AuditPage {
    pub chrome: Chrome,
    pub chain_intact: bool,
    pub chain_text: String,
    pub chain_detail: String,
    pub everyone: bool,
    pub events: Vec<EventRow>,
    pub next: Option<String>,
}

#[derive(Template)]
#[template(path = "error.html")]
pub(crate) struct ErrorPage {
    pub chrome: Chrome,
    pub heading: &'static str,
    pub message: String,
    pub back_href: &'static str,
    pub back_text: &'static str,
}

#[derive(Debug, Clone)]
pub(crate) struct SecretRow {
    pub name: String,
    pub created: When,
    pub updated: When,
}

impl From<&SecretMeta> for SecretRow {
    fn from(m: &SecretMeta) -> Self {
        Self {
            name: m.name.to_string(),
            created: When::of(m.created_at),
            updated: When::of(m.updated_at),
        }
    }
}

#[derive(Template)]
#[template(path = "secrets.html")]
pub(crate) struct SecretsPage {
    pub chrome: Chrome,
    pub secrets: Vec<SecretRow>,
}

#[derive(Debug, Clone)]
pub(crate) struct ResourceRow {
    pub id: String,
    pub kind: String,
    pub external_ref: String,
    pub grants: String,
    pub created: When,
    pub revoked: Option<When>,
}

impl From<&ResourceRecord> for ResourceRow {
    fn from(r: &ResourceRecord) -> Self {
        Self {
            id: r.id.to_string(),
            kind: r.kind.clone(),
            external_ref: r.external_ref.clone().unwrap_or_default(),
            grants: r
                .grants
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            created: When::of(r.created_at),
            revoked: r.revoked_at.map(When::of),
        }
    }
}

#[derive(Template)]
#[template(path = "resources.html")]
pub(crate) struct ResourcesPage {
    pub chrome: Chrome,
    pub new_token: Option<Reveal>,
    pub form_id: String,
    pub secrets: Vec<String>,
    pub resources: Vec<ResourceRow>,
}

/// The endpoint as the webhook page shows it (never its secrets).
#[derive(Debug, Clone)]
pub(crate) struct EndpointView {
    pub url: String,
    pub created: When,
    pub previous_until: Option<When>,
}

impl EndpointView {
    pub fn new(e: &WebhookEndpoint, now: OffsetDateTime) -> Self {
        Self {
            url: e.url.as_str().to_owned(),
            created: When::of(e.created_at),
            previous_until: e
                .previous_secret
                .as_ref()
                .map(|(_, until)| *until)
                .filter(|until| *until > now)
                .map(When::of),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct DeliveryRow {
    pub id: String,
    pub event_type: String,
    pub state: &'static str,
    pub failed: bool,
    pub attempts: u32,
    pub last_result: String,
    pub created: When,
    pub next_attempt: Option<When>,
}

impl From<&Delivery> for DeliveryRow {
    fn from(d: &Delivery) -> Self {
        Self {
            id: d.id.to_string(),
            event_type: d.event_type.clone(),
            state: d.state.as_str(),
            failed: d.state == DeliveryState::Failed,
            attempts: d.attempts,
            last_result: d.last_result.clone().unwrap_or_default(),
            created: When::of(d.created_at),
            next_attempt: (d.state == DeliveryState::Pending).then(|| When::of(d.next_attempt_at)),
        }
    }
}

#[derive(Template)]
#[template(path = "webhook.html")]
pub(crate) struct WebhookPage {
    pub chrome: Chrome,
    pub new_token: Option<Reveal>,
    pub form_id: String,
    pub endpoint: Option<EndpointView>,
    pub deliveries: Vec<DeliveryRow>,
    pub next: Option<String>,
}

#[derive(Template)]
#[template(path = "service_tokens.html")]
pub(crate) struct ServiceTokensPage {
    pub chrome: Chrome,
    pub new_token: Option<Reveal>,
    pub form_id: String,
    pub tokens: Vec<TokenRow>,
}

/// A domain message as a sentence: capitalized, with a final period.
pub(crate) fn sentence(m: &str) -> String {
    let mut chars = m.chars();
    let mut out: String = match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => return String::new(),
    };
    if !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::details;

    fn pairs(raw: &str) -> Vec<(String, String)> {
        details(raw).into_iter().map(|d| (d.key, d.value)).collect()
    }

    fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn audit_details_read_as_key_value_pairs() {
        assert_eq!(
            pairs(r#"{"role":"member","token_id":"tok_1"}"#),
            owned(&[("role", "member"), ("token_id", "tok_1")])
        );
        assert_eq!(
            pairs(r#"{"grants":["db","smtp"],"none":[],"grace_seconds":0,"nested":{"a":1}}"#),
            owned(&[
                ("grace_seconds", "0"),
                ("grants", "db, smtp"),
                ("nested", r#"{"a":1}"#),
                ("none", "none"),
            ])
        );
        assert!(pairs("{}").is_empty());
        assert!(pairs("").is_empty());
        assert!(pairs("null").is_empty());
        assert_eq!(pairs("\"text\""), owned(&[("details", "text")]));
        assert_eq!(pairs("not json"), owned(&[("details", "not json")]));
    }
}
