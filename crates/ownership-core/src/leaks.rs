//! Leaked credentials revoked by value: holding a credential is the proof, as a
//! credential-revocation API treats it.
//!
//! A reported value is whatever a reporter (anyone, through the public endpoint) or a
//! secret scanner (GitHub's partner program) found: a user or service token, a resource
//! credential, or nothing of ours. Every live one is revoked at once and audited for its
//! owner (`token.revoked_as_leaked` or `resource.revoked_as_leaked`, with the source), so
//! the owner hears of it through their event stream and webhook. The use case spans two
//! areas (tokens and resources), hence an area of its own.

use async_trait::async_trait;

use crate::authz::SystemScope;
use crate::db::{self, Transactions, Tx};
use crate::error::Result;
use crate::events;
use crate::resources::ResourceRows;
use crate::token::TokenDigest;
use crate::tokens::TokenRows;

/// Most values one leak report may carry.
pub const LEAK_REPORT_MAX: usize = 1_000;

/// Who reported a leaked value ([`LeakStore::revoke_leaked`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeakSource {
    /// Anyone holding the value, through `POST /v1/tokens/revoke-leaked`.
    Report,
    /// GitHub's secret scanning, through its partner endpoint.
    GitHub,
}

impl LeakSource {
    /// The audit name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Report => "report",
            Self::GitHub => "github",
        }
    }
}

/// What a reported value was ([`LeakStore::revoke_leaked`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeakOutcome {
    /// No stored credential has this value.
    Unknown,
    /// A live token or resource credential, now revoked.
    Revoked,
    /// A stored credential that had already stopped working (revoked or expired).
    AlreadyEnded,
}

impl LeakOutcome {
    /// Whether the value is one of our credentials (live or not).
    pub fn is_ours(self) -> bool {
        self != Self::Unknown
    }
}

/// Revokes leaked credentials by value.
#[async_trait]
pub trait LeakStore: Send + Sync {
    /// Revokes every live token (user or service, any owner) and every live resource
    /// credential whose digest is in `digests`, in one transaction. Each is audited with
    /// `source`. Returns what each digest was, in order; callers that answer an anonymous
    /// reporter must not reveal it.
    async fn revoke_leaked(
        &self,
        scope: &SystemScope,
        digests: &[TokenDigest],
        source: LeakSource,
    ) -> Result<Vec<LeakOutcome>>;
}

/// Every database with token and resource rows revokes leaks: the use case once.
#[async_trait]
impl<D> LeakStore for D
where
    D: Transactions<Tx: TokenRows + ResourceRows> + Send + Sync,
{
    async fn revoke_leaked(
        &self,
        _scope: &SystemScope,
        digests: &[TokenDigest],
        source: LeakSource,
    ) -> Result<Vec<LeakOutcome>> {
        if digests.is_empty() {
            return Ok(Vec::new());
        }
        let digests = digests.to_vec();
        db::write(self, move |tx| {
            Box::pin(async move {
                let now = tx.now();
                let mut outcomes = Vec::with_capacity(digests.len());
                for digest in &digests {
                    if let Some(token) = tx.token_by_digest(digest).await? {
                        if !token.is_live(now) {
                            outcomes.push(LeakOutcome::AlreadyEnded);
                            continue;
                        }
                        tx.set_revoked(&token.owner_id, &token.id, now).await?;
                        tx.append(events::token_revoked_as_leaked(
                            now,
                            &token.owner_id,
                            &token.id,
                            source.as_str(),
                        ))
                        .await?;
                        outcomes.push(LeakOutcome::Revoked);
                    } else if let Some(found) = tx.resource_by_token(digest).await? {
                        let resource = found.record;
                        if resource.revoked_at.is_some() {
                            outcomes.push(LeakOutcome::AlreadyEnded);
                            continue;
                        }
                        tx.set_resource_revoked(&resource.owner_id, &resource.id, now)
                            .await?;
                        tx.append(events::resource_revoked_as_leaked(
                            now,
                            &resource.owner_id,
                            &resource.id,
                            source.as_str(),
                        ))
                        .await?;
                        outcomes.push(LeakOutcome::Revoked);
                    } else {
                        outcomes.push(LeakOutcome::Unknown);
                    }
                }
                Ok(outcomes)
            })
        })
        .await
    }
}
