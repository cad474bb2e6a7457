//! The bounds a store enforces inside its write transactions: per-owner quotas and the
//! wrong-pairing-code budgets. A store is built with them (as with its clock); the use
//! cases read them from [`crate::db::Transactions::limits`] and decide, inside the
//! transaction that writes, so concurrent writers cannot exceed them.

use std::time::Duration;

use crate::error::{Error, Result};

/// How much one owner may keep. Every bound is at least 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    /// Secrets one owner may hold.
    pub secrets: u64,
    /// Total bytes of one owner's secret values (the values as written, before sealing).
    pub secret_bytes: u64,
    /// Live (unrevoked) resource credentials one owner may hold.
    pub resources: u64,
    /// Live (unrevoked, unexpired) tokens one owner may hold: user tokens, service tokens
    /// minted for them, provisioned and legacy ones alike.
    pub tokens: u64,
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            secrets: 1_000,
            secret_bytes: 16 * 1024 * 1024,
            resources: 1_000,
            tokens: 1_000,
        }
    }
}

/// The failure budgets of wrong pairing codes: each user, and each channel, may submit so
/// many codes that do not redeem per window. Past the user's budget their next code is
/// refused unevaluated ([`Error::RateLimited`]); the failure that spends a channel's
/// budget burns the channel's pending codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PairingBudget {
    /// Wrong codes a user may submit per `user_window`.
    pub per_user: u32,
    /// The window of `per_user`.
    pub user_window: Duration,
    /// Wrong codes a channel absorbs per `channel_window` before its pending codes are
    /// burned.
    pub per_channel: u32,
    /// The window of `per_channel`.
    pub channel_window: Duration,
}

impl Default for PairingBudget {
    fn default() -> Self {
        Self {
            per_user: 5,
            user_window: Duration::from_secs(15 * 60),
            per_channel: 100,
            channel_window: Duration::from_secs(10 * 60),
        }
    }
}

/// Everything a store enforces inside its transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    /// Per-owner quotas.
    pub quotas: Quotas,
    /// Wrong pairing-code budgets.
    pub pairing: PairingBudget,
}

impl Limits {
    /// `self` when every bound and window is positive; [`Error::Invalid`] naming the first
    /// that is not by its configuration key.
    pub fn checked(self) -> Result<Self> {
        let q = self.quotas;
        let p = self.pairing;
        let positive = [
            ("quotas.secrets_per_owner", q.secrets > 0),
            ("quotas.secret_bytes_per_owner", q.secret_bytes > 0),
            ("quotas.resources_per_owner", q.resources > 0),
            ("quotas.tokens_per_owner", q.tokens > 0),
            ("limits.redeem_failures_per_user", p.per_user > 0),
            ("limits.redeem_window_seconds", !p.user_window.is_zero()),
            ("limits.channel_failure_budget", p.per_channel > 0),
            ("limits.channel_window_seconds", !p.channel_window.is_zero()),
        ];
        match positive.iter().find(|(_, ok)| !ok) {
            Some((field, _)) => Err(Error::invalid(field, "must be positive")),
            None => Ok(self),
        }
    }
}

/// [`Error::QuotaExceeded`] unless `current + adding` stays within `limit`.
pub(crate) fn within(what: &'static str, current: u64, adding: u64, limit: u64) -> Result<()> {
    if current.saturating_add(adding) > limit {
        return Err(Error::QuotaExceeded { what, limit });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quota_admits_up_to_its_limit() {
        assert!(within("tokens", 9, 1, 10).is_ok());
        assert_eq!(
            within("tokens", 10, 1, 10),
            Err(Error::QuotaExceeded {
                what: "tokens",
                limit: 10
            })
        );
        assert!(within("secret bytes", u64::MAX, 1, u64::MAX).is_ok());
    }

    #[test]
    fn zero_bounds_are_refused_by_name() {
        assert!(Limits::default().checked().is_ok());
        let mut limits = Limits::default();
        limits.quotas.tokens = 0;
        let err = limits.checked().unwrap_err();
        assert!(err.to_string().contains("quotas.tokens_per_owner"), "{err}");
    }
}
