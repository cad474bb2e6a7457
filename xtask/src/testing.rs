//! `cargo xtask test`: every test, on both backends, then the doc tests.
//!
//! The PostgreSQL tests start a throwaway cluster from the server binaries
//! (`tests/src/pg.rs`); this task finds or installs those binaries and hands their
//! directory to the tests as `OWNERSHIP_PG_BINDIR`. `DATABASE_URL`, when set, is passed
//! through and the tests use that server instead of starting their own.

use std::env;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::cmd::{Result, cargo, say};
use crate::postgres::{self, BINDIR_VAR};

pub fn run_all() -> Result {
    let bindir = postgres::ensure_bindir()?;
    say(&format!("PostgreSQL binaries: {}", bindir.display()));
    crate::prometheus::ensure_installed()?;
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
    run_counted(tests.env(BINDIR_VAR, &bindir))?;

    run_counted(
        cargo()
            .args([
                "test",
                "--workspace",
                "--doc",
                "--all-features",
                "--no-fail-fast",
            ])
            .env(BINDIR_VAR, &bindir),
    )?;
    say_totals();
    Ok(())
}

static PASSED: AtomicU64 = AtomicU64::new(0);
static FAILED: AtomicU64 = AtomicU64::new(0);

/// The totals of every test run so far, as the plain closing line CI reads:
/// `N passed, M failed`.
pub fn totals_line() -> String {
    format!(
        "{} passed, {} failed",
        PASSED.load(Ordering::SeqCst),
        FAILED.load(Ordering::SeqCst)
    )
}

/// Prints [`totals_line`] alone on a line of stdout.
pub fn say_totals() {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", totals_line());
    let _ = out.flush();
}

/// The counts of a libtest summary line (`test result: ok. 12 passed; 0 failed; …`).
fn parse_result(line: &str) -> Option<(u64, u64)> {
    let rest = line.trim().strip_prefix("test result: ")?;
    let (_, counts) = rest.split_once(". ")?;
    let mut passed = None;
    let mut failed = None;
    for part in counts.split(';') {
        let mut words = part.split_whitespace();
        match (
            words.next().and_then(|n| n.parse::<u64>().ok()),
            words.next(),
        ) {
            (Some(n), Some("passed")) => passed = Some(n),
            (Some(n), Some("failed")) => failed = Some(n),
            _ => {}
        }
    }
    Some((passed?, failed?))
}

/// Runs a test command, passing its output through and adding up its summary lines.
fn run_counted(command: &mut Command) -> Result {
    say(&format!("$ {command:?}"));
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("could not start the tests: {e}"))?;
    if let Some(stdout) = child.stdout.take() {
        let mut out = std::io::stdout().lock();
        for line in BufReader::new(stdout)
            .lines()
            .map_while(std::result::Result::ok)
        {
            if let Some((p, f)) = parse_result(&line) {
                PASSED.fetch_add(p, Ordering::SeqCst);
                FAILED.fetch_add(f, Ordering::SeqCst);
            }
            let _ = writeln!(out, "{line}");
        }
    }
    let status = child
        .wait()
        .map_err(|e| format!("waiting for the tests: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("the tests failed ({status}); {}", totals_line()))
    }
}

#[cfg(test)]
mod tests {
    use super::parse_result;

    #[test]
    fn summary_lines_are_counted() {
        assert_eq!(
            parse_result(
                "test result: ok. 186 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 10.55s"
            ),
            Some((186, 0))
        );
        assert_eq!(
            parse_result("test result: FAILED. 3 passed; 2 failed; 0 ignored"),
            Some((3, 2))
        );
        assert_eq!(parse_result("running 3 tests"), None);
    }
}
