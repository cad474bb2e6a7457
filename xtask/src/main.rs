//! `cargo xtask <task>`: the project's automation, in Rust so it runs wherever cargo does.
//!
//! A thin dispatcher: each task lives in its own module. Checks that CI runs (core purity,
//! migration naming) are plain functions with `#[test]`s, so `cargo test` catches what
//! `cargo xtask ci` catches. Standard library only, except `plotters` (SVG backend) for the
//! benchmark and soak charts.

mod apt;
mod bench;
mod chart;
mod ci;
mod clean_tree;
mod clients;
mod cmd;
mod cycles;
mod fuzz;
mod migrations;
mod npm;
mod openapi;
mod package;
mod postgres;
mod purity;
mod schemathesis;
mod screenshots;
mod soak;
mod testing;
mod timing;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <task> [args]

tasks:
  ci                          fmt check, clippy (-D warnings), core purity, all tests,
                              redocly lint of docs/openapi.json, schemathesis, cargo-deny (licenses, bans, sources; offline), docs (-D warnings),
                              then fails if the run changed or created a file git tracks
                              or would track
  test                        all tests and doc tests (cargo test); first finds, or as root
                              installs from Debian, PostgreSQL, Chromium + chromedriver, curl,
                              node and python3 (and the client generators, as `clients`)
  clients                     install the client generators the quickstart tests run
                              (openapi-typescript + openapi-fetch with npm, openapi-python-
                              client in a virtualenv) under target/clients/ when missing
  purity                      fail if ownership-core depends on an IO crate
  cycles                      fail if any crate has a module import cycle
  openapi                     regenerate docs/openapi.json from the code (what
                              GET /v1/openapi.json serves); review the diff and commit it
  openapi-lint                redocly lint of docs/openapi.json with redocly.yaml (installs
                              @redocly/cli with npm under target/tools/redocly/ when missing)
  schemathesis                the API against its OpenAPI document: Schemathesis (pinned, in a
                              virtualenv under target/tools/schemathesis/) on a fresh server per
                              store (libSQL, PostgreSQL) as the Owner and as a Member, every
                              check and phase including stateful; fails on any failure
  migrate --database-url URL  apply migrations (runs `ownership migrate`); URL defaults to
                              $DATABASE_URL
  new-migration NAME          create crates/ownership-store/migrations/{libsql,postgres}/
                              NNNN_NAME.sql ([a-z0-9_]+)
  bench [--quick]             benches (ratios against same-run baselines); writes
                              docs/benchmarks.md and docs/img/verify-growth.svg (--quick:
                              target/bench/ only)
  soak [--minutes N] [--store libsql|postgres|both] [--rate OPS] [--report-only]
                              mixed load on the real server (release build) per store
                              (default 10 min, both stores, ~400 ops/s); per minute RSS, fds,
                              p50/p99 per operation, errors; then verifies the audit chain
                              and every acknowledged mutation. Writes target/soak/; runs of
                              10 min or more also docs/img/soak-<store>.svg and the soak
                              section of docs/benchmarks.md (--report-only: redraw them
                              from the rows of an earlier run)
  screenshots                 runs the browser test that takes the console screenshots and
                              copies them into docs/img/ (tests alone write target/screenshots/)
  package [--check]           the Debian package (cargo-deb; target/package/ownership.deb);
                              --check installs it with dpkg (root), verifies the systemd
                              unit and its security score, serves /healthz as the packaged
                              user, and removes it
  fuzz [--seconds N] [--target T]
                              build the libFuzzer targets in fuzz/ (stable Rust) and run each
                              (or T) for N seconds (default 60) on a scratch copy of its seed
                              corpus; fails on any crash and names the reproducer
  timing [--samples N]        dudect-style timing test of token verification (Welch's t per
                              test; |t| < 4.5 = no evidence of a leak); prints, judges nothing
  help                        this text
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((task, rest)) = args.split_first() else {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    };
    let result = match task.as_str() {
        "ci" => no_args(task, rest).and_then(|()| ci::run_all()),
        "test" => no_args(task, rest).and_then(|()| testing::run_all()),
        "clients" => no_args(task, rest).and_then(|()| clients::ensure_generators().map(drop)),
        "purity" => no_args(task, rest).and_then(|()| purity::run()),
        "cycles" => no_args(task, rest).and_then(|()| cycles::run()),
        "openapi" => no_args(task, rest).and_then(|()| openapi::regenerate()),
        "openapi-lint" => no_args(task, rest).and_then(|()| openapi::lint()),
        "schemathesis" => no_args(task, rest).and_then(|()| schemathesis::run_all()),
        "migrate" => migrations::migrate(rest),
        "new-migration" => migrations::new_migration(rest),
        "bench" => bench::run(rest),
        "soak" => soak::run(rest),
        "package" => package::run_task(rest),
        "screenshots" => no_args(task, rest).and_then(|()| screenshots::run_all()),
        "fuzz" => fuzz::run(rest),
        "timing" => timing::run(rest),
        "help" | "-h" | "--help" => {
            cmd::say(USAGE.trim_end());
            Ok(())
        }
        unknown => {
            eprint!("xtask: unknown task `{unknown}`\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask {task}: error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn no_args(task: &str, rest: &[String]) -> cmd::Result {
    match rest.first() {
        None => Ok(()),
        Some(extra) => Err(format!("`{task}` takes no arguments, got `{extra}`")),
    }
}
