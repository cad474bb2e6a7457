//! `cargo xtask test`: every test, on both backends, then the doc tests.
//!
//! The PostgreSQL tests start a throwaway cluster from the server binaries
//! (`tests/src/pg.rs`); this task finds or installs those binaries and hands their
//! directory to the tests as `OWNERSHIP_PG_BINDIR`. `DATABASE_URL`, when set, is passed
//! through and the tests use that server instead of starting their own.

use std::env;

use crate::cmd::{Result, cargo, run, say};
use crate::postgres::{self, BINDIR_VAR};

pub fn run_all() -> Result {
    let bindir = postgres::ensure_bindir()?;
    say(&format!("PostgreSQL binaries: {}", bindir.display()));
    if env::var_os("DATABASE_URL").is_some() {
        say("DATABASE_URL is set: the PostgreSQL tests use that server");
    }

    // `cargo test`, not nextest: nextest runs every test in its own process, and each
    // process would start its own PostgreSQL cluster. With `cargo test` each test binary
    // starts one cluster and shares it between its tests. Doc tests run below, once.
    let mut tests = cargo();
    tests.args([
        "test",
        "--workspace",
        "--all-features",
        "--no-fail-fast",
        "--lib",
        "--bins",
        "--tests",
        "--examples",
    ]);
    run(tests.env(BINDIR_VAR, &bindir))?;

    run(cargo()
        .args([
            "test",
            "--workspace",
            "--doc",
            "--all-features",
            "--no-fail-fast",
        ])
        .env(BINDIR_VAR, &bindir))
}
