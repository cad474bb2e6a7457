//! The OpenID Connect area: identity-provider accounts (`(issuer, sub)`) linked to users,
//! so a person signs in to the console with their provider.
//!
//! A subject is linked in one of two ways:
//! - an Admin links it ([`OidcStore::link_oidc`]) under the rule of
//!   [`check_link_sign_in`]: an Admin for Members and for themself, an Owner for anyone;
//! - at its first sign-in, when the ID token carries an email the provider says is
//!   *verified* and the operator's allow-list maps that email to a user
//!   ([`allow_listed`]); an unverified email never links anything.
//!
//! Every link and unlink is audited; unlinking ends the user's sessions started with a
//! provider. The protocol itself (discovery, PKCE, the ID token's signature, issuer,
//! audience, expiry and nonce) is the HTTP adapter's, on a relying-party library.

use std::collections::BTreeMap;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::authz::{AdminScope, OwnerScope, check_link_sign_in};
use crate::db::{self, Transactions, Tx};
use crate::error::{Error, Result};
use crate::events;
use crate::identity::UserStatus;
use crate::ids::OwnerId;
use crate::sessions::{SessionMethod, SessionRows, end_sessions_in};
use crate::users::UserRows;

/// Longest issuer URL or subject accepted, in bytes (OpenID Connect caps `sub` at 255
/// ASCII characters).
pub const OIDC_FIELD_MAX_BYTES: usize = 255;

/// An identity-provider account: the provider's issuer URL and the subject it names the
/// person by. Made only by [`OidcSubject::parse`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OidcSubject {
    issuer: String,
    subject: String,
}

fn visible(raw: &str) -> bool {
    raw.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

impl OidcSubject {
    /// An issuer (an `https://` URL, or `http://` on a loopback host) and a subject (1 to
    /// 255 visible ASCII characters).
    pub fn parse(issuer: &str, subject: &str) -> Result<Self> {
        let issuer = issuer.trim();
        if issuer.is_empty() || issuer.len() > OIDC_FIELD_MAX_BYTES || !visible(issuer) {
            return Err(Error::invalid(
                "issuer",
                format!("must be a URL of 1 to {OIDC_FIELD_MAX_BYTES} characters"),
            ));
        }
        let loopback = ["http://127.0.0.1", "http://[::1]", "http://localhost"]
            .iter()
            .any(|p| {
                issuer
                    .strip_prefix(p)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with([':', '/']))
            });
        if !issuer.starts_with("https://") && !loopback {
            return Err(Error::invalid(
                "issuer",
                "must be an https:// URL (plain http:// only on a loopback host)",
            ));
        }
        if subject.is_empty() || subject.len() > OIDC_FIELD_MAX_BYTES || !visible(subject) {
            return Err(Error::invalid(
                "subject",
                format!("must be 1 to {OIDC_FIELD_MAX_BYTES} visible ASCII characters"),
            ));
        }
        Ok(Self {
            issuer: issuer.to_owned(),
            subject: subject.to_owned(),
        })
    }

    /// The issuer URL.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The subject.
    pub fn subject(&self) -> &str {
        &self.subject
    }
}

/// A linked account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcLink {
    /// The provider account.
    pub subject: OidcSubject,
    /// The user it signs in as.
    pub owner: OwnerId,
    /// When it was linked.
    pub created_at: OffsetDateTime,
}

/// The operator's allow-list: verified email (compared in lower case) → user id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList(BTreeMap<String, OwnerId>);

impl AllowList {
    /// From `(email, user)` pairs; an entry that is not an email is refused, as is the
    /// same email twice.
    pub fn new<'a>(entries: impl IntoIterator<Item = (&'a str, OwnerId)>) -> Result<Self> {
        let mut map = BTreeMap::new();
        for (email, user) in entries {
            let key = email.trim().to_lowercase();
            let ok = key.len() <= 254
                && key
                    .split_once('@')
                    .is_some_and(|(l, d)| !l.is_empty() && !d.is_empty() && !d.contains('@'))
                && visible(&key);
            if !ok {
                return Err(Error::invalid(
                    "allowed_emails",
                    format!("`{email}` is not an email address"),
                ));
            }
            if map.insert(key, user).is_some() {
                return Err(Error::invalid(
                    "allowed_emails",
                    format!("`{email}` is listed twice"),
                ));
            }
        }
        Ok(Self(map))
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The user an ID token's email claim links to on first sign-in: only when the provider
/// says the email is verified (`email_verified` exactly `true`) and the allow-list names
/// it. An unverified or absent verification never links.
pub fn allow_listed<'a>(
    list: &'a AllowList,
    email: Option<&str>,
    email_verified: Option<bool>,
) -> Option<&'a OwnerId> {
    if email_verified != Some(true) {
        return None;
    }
    list.0.get(&email?.trim().to_lowercase())
}

/// The link rows a transaction reads and writes: SQL and row mapping, no decisions.
#[async_trait]
pub trait OidcRows: Tx {
    /// Inserts a link. A subject linked already is [`Error::Conflict`].
    async fn insert_oidc_link(&mut self, link: &OidcLink) -> Result<()>;
    /// The link of a subject.
    async fn oidc_link(&mut self, subject: &OidcSubject) -> Result<Option<OidcLink>>;
    /// A user's links, oldest first.
    async fn oidc_links_of(&mut self, owner: &OwnerId) -> Result<Vec<OidcLink>>;
    /// Deletes a subject's link; false if there was none.
    async fn delete_oidc_link(&mut self, subject: &OidcSubject) -> Result<bool>;
}

/// Identity-provider accounts linked to users.
#[async_trait]
pub trait OidcStore: Send + Sync {
    /// Links `subject` to `user` ([`check_link_sign_in`]); audited. A subject linked
    /// already (to anyone) is [`Error::Conflict`]; a missing user [`Error::NotFound`].
    async fn link_oidc(
        &self,
        scope: &AdminScope,
        user: &OwnerId,
        subject: &OidcSubject,
    ) -> Result<OidcLink>;

    /// Unlinks `subject` from `user` ([`check_link_sign_in`]) and ends the user's
    /// sessions started with a provider; audited. A subject not linked to that user is
    /// [`Error::NotFound`].
    async fn unlink_oidc(
        &self,
        scope: &AdminScope,
        user: &OwnerId,
        subject: &OidcSubject,
    ) -> Result<()>;

    /// The links of a user the scope manages ([`check_link_sign_in`]).
    async fn oidc_links(&self, scope: &AdminScope, user: &OwnerId) -> Result<Vec<OidcLink>>;

    /// The caller's own links.
    async fn own_oidc_links(&self, scope: &OwnerScope) -> Result<Vec<OidcLink>>;

    /// The user a signing-in subject is linked to. When it is linked to nobody and
    /// `allowed` names a user (see [`allow_listed`]), links it to that user first
    /// (audited), provided the user exists and is active. `None`: not linked, and not
    /// linkable.
    async fn oidc_sign_in(
        &self,
        subject: &OidcSubject,
        allowed: Option<&OwnerId>,
    ) -> Result<Option<OwnerId>>;
}

/// A database that keeps OpenID Connect links.
pub trait OidcDatabase: Transactions<Tx: OidcRows + UserRows + SessionRows> {}

impl<D: Transactions<Tx: OidcRows + UserRows + SessionRows>> OidcDatabase for D {}

/// The target user's role, for the linking rule; [`Error::NotFound`] when absent.
async fn target_role<T: UserRows + ?Sized>(
    tx: &mut T,
    user: &OwnerId,
) -> Result<crate::identity::UserRole> {
    tx.find_user(user)
        .await?
        .map(|u| u.role)
        .ok_or(Error::NotFound)
}

/// Every [`OidcDatabase`] keeps links: each use case once, over [`OidcRows`].
#[async_trait]
impl<D: OidcDatabase> OidcStore for D {
    async fn link_oidc(
        &self,
        scope: &AdminScope,
        user: &OwnerId,
        subject: &OidcSubject,
    ) -> Result<OidcLink> {
        let (scope, user, subject) = (scope.clone(), user.clone(), subject.clone());
        db::write(self, move |tx| {
            Box::pin(async move {
                let scope = db::current_scope(tx, &scope).await?;
                let role = target_role(tx, &user).await?;
                check_link_sign_in(&scope, &user, role)?;
                if tx.oidc_link(&subject).await?.is_some() {
                    return Err(Error::Conflict(
                        "this identity-provider account is linked already".into(),
                    ));
                }
                let now = tx.now();
                let link = OidcLink {
                    subject,
                    owner: user,
                    created_at: now,
                };
                tx.insert_oidc_link(&link).await?;
                tx.append(events::oidc_linked(
                    now,
                    scope.actor(),
                    &link.owner,
                    (link.subject.issuer(), link.subject.subject()),
                    "admin",
                ))
                .await?;
                Ok(link)
            })
        })
        .await
    }

    async fn unlink_oidc(
        &self,
        scope: &AdminScope,
        user: &OwnerId,
        subject: &OidcSubject,
    ) -> Result<()> {
        let (scope, user, subject) = (scope.clone(), user.clone(), subject.clone());
        db::write(self, move |tx| {
            Box::pin(async move {
                let scope = db::current_scope(tx, &scope).await?;
                let role = target_role(tx, &user).await?;
                check_link_sign_in(&scope, &user, role)?;
                match tx.oidc_link(&subject).await? {
                    Some(link) if link.owner == user => {}
                    _ => return Err(Error::NotFound),
                }
                tx.delete_oidc_link(&subject).await?;
                let ended = end_sessions_in(tx, &user, Some(SessionMethod::Oidc)).await?;
                let now = tx.now();
                tx.append(events::oidc_unlinked(
                    now,
                    scope.actor(),
                    &user,
                    (subject.issuer(), subject.subject()),
                    ended,
                ))
                .await
            })
        })
        .await
    }

    async fn oidc_links(&self, scope: &AdminScope, user: &OwnerId) -> Result<Vec<OidcLink>> {
        let (scope, user) = (scope.clone(), user.clone());
        self.read(move |tx| {
            Box::pin(async move {
                let scope = db::current_scope(tx, &scope).await?;
                let role = target_role(tx, &user).await?;
                check_link_sign_in(&scope, &user, role)?;
                tx.oidc_links_of(&user).await
            })
        })
        .await
    }

    async fn own_oidc_links(&self, scope: &OwnerScope) -> Result<Vec<OidcLink>> {
        let owner = scope.owner().clone();
        self.read(move |tx| Box::pin(async move { tx.oidc_links_of(&owner).await }))
            .await
    }

    async fn oidc_sign_in(
        &self,
        subject: &OidcSubject,
        allowed: Option<&OwnerId>,
    ) -> Result<Option<OwnerId>> {
        let read = subject.clone();
        let linked = self
            .read(move |tx| Box::pin(async move { tx.oidc_link(&read).await }))
            .await?;
        if let Some(link) = linked {
            return Ok(Some(link.owner));
        }
        let Some(user) = allowed.cloned() else {
            return Ok(None);
        };
        let subject = subject.clone();
        db::write(self, move |tx| {
            Box::pin(async move {
                // Linked meanwhile (a second tab): that link stands.
                if let Some(link) = tx.oidc_link(&subject).await? {
                    return Ok(Some(link.owner));
                }
                match tx.find_user(&user).await? {
                    Some(u) if u.status == UserStatus::Active => {}
                    _ => return Ok(None),
                }
                let now = tx.now();
                let link = OidcLink {
                    subject,
                    owner: user,
                    created_at: now,
                };
                tx.insert_oidc_link(&link).await?;
                let actor = crate::authz::Actor::User(link.owner.clone());
                tx.append(events::oidc_linked(
                    now,
                    &actor,
                    &link.owner,
                    (link.subject.issuer(), link.subject.subject()),
                    "verified_email",
                ))
                .await?;
                Ok(Some(link.owner))
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn subjects_need_a_safe_issuer_and_a_short_visible_sub() {
        assert!(OidcSubject::parse("https://idp.example", "248289761001").is_ok());
        assert!(OidcSubject::parse("http://127.0.0.1:3000", "a").is_ok());
        assert!(OidcSubject::parse("http://localhost/oidc", "a").is_ok());
        assert!(OidcSubject::parse("http://idp.example", "a").is_err());
        assert!(OidcSubject::parse("http://localhost.evil.example", "a").is_err());
        assert!(OidcSubject::parse("https://idp.example", "").is_err());
        assert!(OidcSubject::parse("https://idp.example", "a b").is_err());
        assert!(OidcSubject::parse("https://idp.example", &"a".repeat(256)).is_err());
        assert!(OidcSubject::parse("", "a").is_err());
    }

    #[test]
    fn only_a_verified_allow_listed_email_links() {
        let alice = OwnerId::parse("alice").unwrap();
        let list = AllowList::new([("Alice@Example.com", alice.clone())]).unwrap();
        assert_eq!(
            allow_listed(&list, Some("alice@example.COM"), Some(true)),
            Some(&alice)
        );
        assert_eq!(
            allow_listed(&list, Some("alice@example.com"), Some(false)),
            None
        );
        assert_eq!(allow_listed(&list, Some("alice@example.com"), None), None);
        assert_eq!(
            allow_listed(&list, Some("bob@example.com"), Some(true)),
            None
        );
        assert_eq!(allow_listed(&list, None, Some(true)), None);
        assert!(AllowList::new([("not-an-email", alice.clone())]).is_err());
        assert!(AllowList::new([("a@b.c", alice.clone()), ("A@B.C", alice)]).is_err());
    }
}
