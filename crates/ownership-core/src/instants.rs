//! Arithmetic on instants that every area shares.

use std::time::Duration;

use time::OffsetDateTime;

use crate::error::{Error, Result};

/// The earlier of two optional instants (`None` is "never").
pub fn earlier(a: Option<OffsetDateTime>, b: Option<OffsetDateTime>) -> Option<OffsetDateTime> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// `at + by`, refused as an invalid `field` when it does not fit.
pub fn add_duration(
    at: OffsetDateTime,
    by: Duration,
    field: &'static str,
) -> Result<OffsetDateTime> {
    time::Duration::try_from(by)
        .ok()
        .and_then(|d| at.checked_add(d))
        .ok_or_else(|| Error::invalid(field, "is too long"))
}
