//! The port traits the stores implement, in domain types only.
//!
//! They are coarse where atomicity matters: "approve this pairing code for this owner" is
//! one call that an adapter makes one transaction (consume the request, write the identity,
//! append the audit event), not three calls a caller must sequence. Every mutation appends
//! its audit event inside its own transaction.
//!
//! Owner-scoped operations take an [`OwnerScope`](crate::authz::OwnerScope), user management an [`AdminScope`](crate::authz::AdminScope),
//! channel adapters a [`ChannelScope`](crate::authz::ChannelScope) and background work a [`SystemScope`](crate::authz::SystemScope): the proof
//! values of [`crate::authz`]. A store is built with a [`Clock`]; callers pass no times
//! except where the time is the request itself.
//!
//! Two rules every adapter keeps inside each mutating transaction, once it holds the lock
//! that serializes mutations: it reads its clock there (never before waiting for the
//! lock, so no change is stamped earlier than one committed before it), and it re-reads
//! the acting user of an [`AdminScope`](crate::authz::AdminScope) ([`AdminScope::recheck`](crate::authz::AdminScope::recheck)) and the owner of a
//! [`MintPermit`](crate::authz::MintPermit) ([`MintPermit::recheck`](crate::authz::MintPermit::recheck)), so a user demoted, suspended or deleted after
//! their request was authenticated acts with what they have now.
//!
//! The types, port slices and use cases of each area live in that area's module
//! ([`crate::users`], [`crate::tokens`], [`crate::pairing`], [`crate::audit`],
//! [`crate::secrets`], [`crate::resources`], [`crate::webhook`], [`crate::provision`],
//! [`crate::passkeys`]);
//! this module holds the clock, the health check and [`Store`], every port at once, and
//! re-exports the areas' port types under their former paths.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::error::Result;

pub use crate::audit::AuditFilter;
pub use crate::audit_log::AuditLog;
pub use crate::crypto::Sealed;
pub use crate::leaks::LeakStore;
pub use crate::oidc::OidcStore;
pub use crate::paging::{Page, PageRequest};
pub use crate::pairing::{
    ChannelBinding, PairingCandidate, PairingIssue, PairingPolicy, PairingStore, PendingPairing,
};
pub use crate::passkeys::PasskeyStore;
pub use crate::provision::ProvisionStore;
pub use crate::resources::{NewResource, ResourceRecord, ResourceStore};
pub use crate::secrets::{SecretMeta, SecretStore};
pub use crate::sessions::SessionStore;
pub use crate::tickets::TicketStore;
pub use crate::tokens::{FreshToken, NewToken, TokenLookup, TokenOrigin, TokenRecord, TokenStore};
pub use crate::users::{LegacyOutcome, User, UserStore};
pub use crate::webhook::{Delivery, DeliveryState, WebhookEndpoint, WebhookStore};

/// A whole database: transactions with every area's rows ([`Rows`]) and every point read.
/// The adapters, the cache and anything that wraps them are one; every port ([`Store`])
/// follows.
pub trait Database:
    crate::tokens::TokenDatabase
    + crate::pairing::PairingDatabase
    + crate::resources::ResourceDatabase
    + crate::db::Transactions<Tx: Rows>
{
}

impl<T> Database for T where
    T: crate::tokens::TokenDatabase
        + crate::pairing::PairingDatabase
        + crate::resources::ResourceDatabase
        + crate::db::Transactions<Tx: Rows>
{
}

/// Every area's rows: what a [`Database`] transaction implements.
pub trait Rows:
    crate::db::Tx
    + crate::tokens::TokenRows
    + crate::audit_log::AuditRows
    + crate::users::UserRows
    + crate::provision::ProvisionRows
    + crate::pairing::PairingRows
    + crate::secrets::SecretRows
    + crate::resources::ResourceRows
    + crate::webhook::WebhookRows
    + crate::tickets::TicketRows
    + crate::sessions::SessionRows
    + crate::oidc::OidcRows
    + crate::passkeys::PasskeyRows
{
}

impl<T> Rows for T where
    T: crate::db::Tx
        + crate::tokens::TokenRows
        + crate::audit_log::AuditRows
        + crate::users::UserRows
        + crate::provision::ProvisionRows
        + crate::pairing::PairingRows
        + crate::secrets::SecretRows
        + crate::resources::ResourceRows
        + crate::webhook::WebhookRows
        + crate::tickets::TicketRows
        + crate::sessions::SessionRows
        + crate::oidc::OidcRows
        + crate::passkeys::PasskeyRows
{
}

/// The current time, supplied to stores so tests control it.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now, in UTC.
    fn now(&self) -> OffsetDateTime;
}

/// Health of the backing store.
#[async_trait]
pub trait Health: Send + Sync {
    /// Ok when the store answers a trivial query.
    async fn ping(&self) -> Result<()>;
}

/// Every port at once: what the HTTP layer and the CLI are generic over.
pub trait Store:
    UserStore
    + ProvisionStore
    + TokenStore
    + PairingStore
    + AuditLog
    + SecretStore
    + ResourceStore
    + LeakStore
    + WebhookStore
    + TicketStore
    + SessionStore
    + OidcStore
    + PasskeyStore
    + Health
{
}

impl<T> Store for T where
    T: UserStore
        + ProvisionStore
        + TokenStore
        + PairingStore
        + AuditLog
        + SecretStore
        + ResourceStore
        + LeakStore
        + WebhookStore
        + TicketStore
        + SessionStore
        + OidcStore
        + PasskeyStore
        + Health
{
}
