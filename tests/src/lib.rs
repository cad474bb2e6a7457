//! Test support for the workspace: the harness the end-to-end tests and the backend
//! conformance suite share.
//!
//! - [`pg`]: a throwaway PostgreSQL cluster per test process (or the server named by
//!   `DATABASE_URL`), handing out a fresh database per test.
//! - [`conformance`]: the backend conformance suite, written once against the ports.
//! - [`backends`]: fresh, migrated stores of every backend.
//! - [`nginx`]: a throwaway nginx terminating TLS in front of a server.
//! - [`oidc`]: a real OpenID Connect provider (oidc-provider on node).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_debug_implementations,
    reason = "test support: a failed unwrap is a failed test"
)]

pub mod app;
pub mod backends;
pub mod bin;
pub mod conformance;
pub mod counting;
pub mod exposition;
pub mod http;
pub mod logcheck;
pub mod nginx;
pub mod oidc;
pub mod pg;
pub mod pgbouncer;
pub mod serve;
