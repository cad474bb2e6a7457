//! End-to-end tests of the REST service: the real server (`ownership_cli::server`, what
//! `ownership serve` runs) on an ephemeral loopback port, talked to over HTTP.
//!
//! Every scenario is an `async fn(Backend)` run twice by [`on_both_backends!`]: once on a
//! fresh libSQL file and once on a fresh PostgreSQL database (one throwaway cluster for
//! this whole test binary), so a test reads
//! `pairing::twelve_users_redeeming_one_code_get_exactly_one_success::postgres`.
//!
//! One test binary on purpose (link time); the scenarios live in `http_e2e/`:
//!
//! - `routes`: every route's success path and its documented error statuses;
//! - `protocol`: the 401 challenge, error bodies, unknown routes, bad JSON, body limit,
//!   where a token may be presented;
//! - `cross_owner`: another user's objects are 404, byte for byte like absent ones;
//! - `pairing`: codes, redemption, approval, the guessing limits, concurrency;
//! - `lifecycle`: deletion and suspension, rotation, verification, bootstrap, outages;
//! - `events`: the SSE stream delivers the caller's own events only;
//! - `secrets`: secrets, resources and the webhook endpoint;
//! - `proxies`: client addresses behind trusted proxies, and failure limits that never
//!   refuse a valid credential.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

/// Declares each named `async fn scenario(backend: Backend)` of the current module as two
/// tests, `scenario::libsql` and `scenario::postgres`.
macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn libsql() {
                super::$scenario(ownership_tests::app::Backend::Libsql).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$scenario(ownership_tests::app::Backend::Postgres).await;
            }
        }
    )*};
}

#[path = "http_e2e/support.rs"]
mod support;

#[path = "http_e2e/cross_owner.rs"]
mod cross_owner;
#[path = "http_e2e/events.rs"]
mod events;
#[path = "http_e2e/leaks.rs"]
mod leaks;
#[path = "http_e2e/lifecycle.rs"]
mod lifecycle;
#[path = "http_e2e/pairing.rs"]
mod pairing;
#[path = "http_e2e/protocol.rs"]
mod protocol;
#[path = "http_e2e/proxies.rs"]
mod proxies;
#[path = "http_e2e/routes.rs"]
mod routes;
#[path = "http_e2e/secrets.rs"]
mod secrets;
