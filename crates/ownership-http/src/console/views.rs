//! The pages' templates (`templates/*.html`, compiled by askama, HTML-escaped by default)
//! and the plain view models they read. Nothing here decides anything: handlers fill
//! these from what the use cases returned.

use askama::Template;
use ownership_core::audit::AuditEvent;
use ownership_core::ports::{ChannelBinding, PendingPairing, TokenRecord, User};
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

/// A token value shown once, in the field labelled **New token**.
#[derive(Debug, Clone)]
pub(crate) struct Reveal {
    pub heading: String,
    pub note: String,
    pub value: String,
}

#[derive(Template)]
#[template(path = "login.html")]
pub(crate) struct LoginPage {
    pub chrome: Chrome,
    pub csrf: String,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "home.html")]
pub(crate) struct HomePage {
    pub chrome: Chrome,
    pub user_id: String,
    pub role: &'static str,
    pub is_admin: bool,
    pub token_prefix: String,
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
            prefix: t.display_prefix.clone(),
            label: t.label.clone().unwrap_or_default(),
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
    pub external_id: String,
    pub meta: String,
    pub created: When,
    pub expires: When,
}

impl From<&PendingPairing> for PendingRow {
    fn from(p: &PendingPairing) -> Self {
        Self {
            external_id: p.key.external_id.to_string(),
            meta: p.meta.clone().unwrap_or_default(),
            created: When::of(p.created_at),
            expires: When::of(p.expires_at),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct PendingGroup {
    pub channel: String,
    pub requests: Vec<PendingRow>,
}

#[derive(Template)]
#[template(path = "pairing.html")]
pub(crate) struct PairingPage {
    pub chrome: Chrome,
    pub approve_channel: String,
    pub shown_channel: String,
    pub users: Vec<String>,
    pub groups: Vec<PendingGroup>,
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

#[derive(Debug, Clone)]
pub(crate) struct EventRow {
    pub seq: i64,
    pub at: When,
    pub actor: String,
    pub owner: String,
    pub action: &'static str,
    pub target: String,
    pub details: String,
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
            details: e.details.clone(),
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
