//! The one error type of the domain.
//!
//! Messages are lower case without a final period; user input appears in backticks.
//! The mapping to HTTP status codes lives in `ownership-http` only.

use std::time::Duration;

/// What went wrong, in domain words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Input failed validation. `field` names what was wrong, never a secret value.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// Which input was invalid (`owner_id`, `channel`, `token`, ...).
        field: &'static str,
        /// Why, in words safe to show a client.
        reason: String,
    },
    /// The object does not exist, or it is not the caller's (the two are never told apart).
    #[error("not found")]
    NotFound,
    /// The request conflicts with the current state.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The caller's role or token kinds do not allow the operation.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// No valid credential was presented. Deliberately says nothing about why.
    #[error("unauthenticated")]
    Unauthenticated,
    /// Too many attempts; try again after the given delay.
    #[error("rate limited")]
    RateLimited {
        /// How long until a retry may succeed.
        retry_after: Duration,
    },
    /// The owner already holds as much as their quota allows ([`crate::quotas::Quotas`]);
    /// nothing was written.
    #[error("quota exceeded: at most {limit} {what} per owner")]
    QuotaExceeded {
        /// What is counted (`secrets`, `secret bytes`, `resource credentials`, `tokens`).
        what: &'static str,
        /// The quota.
        limit: u64,
    },
    /// The backing store or another dependency could not be reached. Fail closed.
    #[error("service unavailable")]
    Unavailable(String),
    /// A configured feature is switched off (for example secrets without a master key).
    #[error("{0} disabled")]
    Disabled(&'static str),
    /// Stored data failed an integrity check (a broken audit chain, a ciphertext that
    /// does not decrypt, a row that no longer parses).
    #[error("integrity: {0}")]
    Integrity(String),
}

impl Error {
    /// Shorthand for [`Error::Invalid`].
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            reason: reason.into(),
        }
    }
}

/// Result with the domain [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
