//! # ownership-core
//!
//! The pure domain of `ownership`: typed identities ([`OwnerId`], [`Identity`],
//! [`UserRole`]), the one resource rule ([`authz::can_act_on`]) and the proof values that
//! make it impossible to skip, token and pairing-code formats, webhook signatures, the
//! envelope encryption of secrets ([`crypto`]), the audit hash chain, and the port traits
//! the stores implement.
//!
//! Architecture invariant: this crate does no IO. It has no async runtime, no database
//! driver and no HTTP types; time and randomness are parameters ([`ports::Clock`],
//! [`RandomSource`]).

pub mod audit;
pub mod audit_log;
pub mod authz;
pub mod crypto;
pub mod db;
pub mod error;
pub mod events;
pub mod identity;
pub mod ids;
pub mod instants;
pub mod kinds;
pub mod leaks;
pub mod oidc;
pub mod paging;
pub mod pairing;
pub mod passkeys;
pub mod ports;
pub mod provision;
pub mod quotas;
pub mod resources;
pub mod secrets;
pub mod service;
pub mod sessions;
pub mod tickets;
pub mod token;
pub mod tokens;
pub mod users;
pub mod webhook;

pub use error::{Error, Result};
pub use identity::{Identity, UserRole, UserStatus};
pub use ids::{ChannelKey, ChannelName, ExternalId, OwnerId};
pub use kinds::{TokenKind, TokenKinds};

/// A source of cryptographically secure random bytes, supplied by the caller (the store,
/// the HTTP layer or the CLI wire it to the operating system's generator; tests pass a
/// seeded one).
pub trait RandomSource {
    /// Fills `buf` with random bytes.
    fn fill(&mut self, buf: &mut [u8]);
}

impl<F: FnMut(&mut [u8])> RandomSource for F {
    fn fill(&mut self, buf: &mut [u8]) {
        self(buf);
    }
}
