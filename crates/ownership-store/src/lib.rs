//! # ownership-store
//!
//! The ports of `ownership-core` on real databases: libSQL embedded (feature `libsql`, the
//! default: a file or in memory) and PostgreSQL (feature `postgres`, for more than one
//! process), both passing one conformance suite; the migration runner; and [`cache`], a
//! decorator that serves warm lookups from memory.
//!
//! Architecture invariant: this crate knows nothing of HTTP. It speaks the domain types of
//! `ownership-core`; SQL text and driver errors never leave it except as
//! [`ownership_core::Error::Unavailable`] (logged here, generic to clients).

#![cfg_attr(
    not(all(feature = "libsql", feature = "postgres")),
    allow(
        dead_code,
        unused_imports,
        reason = "the SQL layer and the metrics serve both backends; a build with one \
                  leaves the other's helpers unused (CI lints with every feature on, \
                  where nothing is allowed)"
    )
)]

pub mod cache;
pub mod clock;
pub mod invalidate;
#[cfg(feature = "libsql")]
pub mod libsql;
mod metrics;
pub mod migrations;
#[cfg(all(feature = "libsql", feature = "postgres"))]
pub mod open;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod random;
pub mod sql;
pub mod transfer;
mod ttl_map;

use async_trait::async_trait;

pub use clock::{ManualClock, SystemClock};
pub use migrations::{AppliedMigration, MigrationError};
pub use random::OsRandom;

/// A store that can report and apply its schema migrations.
#[async_trait]
pub trait Migrator: Send + Sync {
    /// What the migrations table records, by version.
    async fn applied_migrations(&self) -> Result<Vec<AppliedMigration>, MigrationError>;

    /// Applies pending migrations up to `target` (all when `None`), each in its own
    /// transaction. Returns how many were applied.
    async fn migrate_to(&self, target: Option<i64>) -> Result<usize, MigrationError>;

    /// How many migrations are pending (an error if an applied file changed).
    async fn pending_migrations(&self) -> Result<usize, MigrationError>;
}
