//! # ownership-cli
//!
//! The `ownership` binary: `serve` (the REST service on an embedded libSQL file by default,
//! or PostgreSQL), `migrate`, and the operator commands that work on the store directly.
//! The server is a library too ([`server::prepare`], [`server::serve`]) so tests run
//! exactly what operators run; the command line and its commands are in [`commands`].

pub mod backend;
pub mod commands;
pub mod config;
pub mod server;
pub mod tls;
