//! The row layer: every area's row trait (`TokenRows`, `SecretRows`, …) implemented once,
//! for [`SqlTx`] over any [`Driver`]. The SQL is written once, in PostgreSQL's dialect with
//! `$n` placeholders; the libSQL driver rewrites it ([`driver::sqlite_dialect`]). Where the
//! two schemas truly differ a statement is a pair ([`driver::pick`]). Rows are read by
//! index with the typed getters of [`driver`]. No decisions here: the use cases are
//! `ownership-core`'s.

pub mod driver;
mod tx;

mod audit;
mod chain;
mod oidc;
pub(crate) mod pairing;
mod passkeys;
mod provision;
pub(crate) mod resources;
mod secrets;
mod sessions;
mod tickets;
pub(crate) mod tokens;
mod users;
mod webhooks;

pub(crate) use audit::{EVENT_COLS, event_from};
pub(crate) use chain::{lock_lane, newest_seq};
pub use driver::{Driver, Fail, Param, Row, Val};
pub use tx::SqlTx;
pub(crate) use tx::head;
