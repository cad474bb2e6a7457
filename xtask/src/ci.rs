//! `cargo xtask ci`: every check, in order, stopping at the first failure.
//!
//! `.ci/run` ends in exactly this command, so what passes here passes in CI. The last
//! step checks that the run left the work tree as it found it ([`clean_tree`]).

use std::time::Instant;

use crate::cmd::{self, Result, cargo, run, say};
use crate::{clean_tree, openapi, purity, schemathesis, testing};

type Step = (&'static str, fn() -> Result);

const STEPS: [Step; 9] = [
    ("fmt", fmt),
    ("clippy", clippy),
    ("purity", purity::run),
    ("test", testing::run_all),
    ("openapi lint", openapi::lint),
    ("schemathesis", schemathesis::run_all),
    ("deny", deny),
    ("doc", doc),
    ("package", package_check),
];

pub fn run_all() -> Result {
    let started = Instant::now();
    // What the work tree looks like before the run, for the last step's comparison.
    let before = clean_tree::snapshot()?;
    let total = STEPS.len() + 1;
    for (index, (name, step)) in STEPS.iter().enumerate() {
        run_step(index + 1, total, name, *step)?;
    }
    run_step(total, total, "clean tree", || match &before {
        Some(before) => clean_tree::check(before),
        None => Ok(()),
    })?;
    say(&format!(
        "\n==> ci: all {total} steps passed ({:.1} s)",
        started.elapsed().as_secs_f64()
    ));
    // The plain closing line CI reads: every test counted, alone on the last line.
    testing::say_totals();
    Ok(())
}

fn run_step(number: usize, total: usize, name: &str, step: impl FnOnce() -> Result) -> Result {
    say(&format!("\n==> ci step {number}/{total}: {name}"));
    let step_started = Instant::now();
    let outcome = step();
    let seconds = step_started.elapsed().as_secs_f64();
    match outcome {
        Ok(()) => {
            say(&format!("==> {name}: ok ({seconds:.1} s)"));
            Ok(())
        }
        Err(error) => Err(format!(
            "ci step `{name}` failed after {seconds:.1} s: {error}"
        )),
    }
}

fn fmt() -> Result {
    run(cargo().args(["fmt", "--all", "--check"]))
}

fn clippy() -> Result {
    // The first step that builds the workspace.
    crate::apt::ensure_build_deps()?;
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--all-features",
        "--",
        "-D",
        "warnings",
    ]))
}

/// Licences, bans and sources. The advisory database lives on a host this network cannot
/// reach, so `advisories` is not checked and cargo-deny runs offline. Offline, its
/// `cargo metadata` needs every crate in the lock file on disk, including those only
/// other platforms build (a build here never downloads them), so `cargo fetch` (from the
/// package registry, which is reachable) runs first.
fn deny() -> Result {
    if cmd::cargo_subcommand("cargo-deny").is_none() {
        say("cargo-deny is not installed; installing it (takes a few minutes)");
        run(cargo().args(["install", "--locked", "cargo-deny"]))?;
    }
    run(cargo().args(["fetch", "--locked"]))?;
    run(cargo().args(["deny", "--offline", "check", "licenses", "bans", "sources"]))
}

/// The Debian package, built, installed, checked and removed (`cargo xtask package --check`).
fn package_check() -> Result {
    crate::package::run_task(&["--check".to_owned()])
}

fn doc() -> Result {
    run(cargo()
        .args(["doc", "--workspace", "--no-deps"])
        .env("RUSTDOCFLAGS", "-D warnings"))
}
