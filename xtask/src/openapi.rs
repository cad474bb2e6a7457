//! The checked-in OpenAPI document, `docs/openapi.json`.
//!
//! - `cargo xtask openapi` regenerates it from the code: it runs the `openapi` example of
//!   `ownership-http`, which prints exactly what `GET /v1/openapi.json` serves, and writes
//!   the file only when that differs. Only this task writes it; the test
//!   `tests/tests/openapi.rs` fails while the file and the served document differ.
//! - `cargo xtask ci` lints it with Redocly CLI (`redocly lint`, rules in `redocly.yaml`
//!   at the root), installed with npm under `<target>/tools/redocly/` at the pinned
//!   version when missing; node and npm come from Debian when missing.

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use crate::cmd::{Result, cargo, relative, run, say, stdout_of, workspace_root};
use crate::npm;

/// The Redocly CLI release `cargo xtask ci` lints with.
pub const REDOCLY_VERSION: &str = "2.77.0";

/// The checked-in document.
pub fn document() -> PathBuf {
    workspace_root().join("docs/openapi.json")
}

/// `cargo xtask openapi`: rewrites `docs/openapi.json` from the code when it changed.
pub fn regenerate() -> Result {
    let text = stdout_of(cargo().args([
        "run",
        "--quiet",
        "--locked",
        "-p",
        "ownership-http",
        "--example",
        "openapi",
    ]))?;
    if !text.trim_start().starts_with('{') {
        return Err(format!(
            "the `openapi` example printed no JSON document: {}",
            text.chars().take(200).collect::<String>()
        ));
    }
    let path = document();
    if fs::read_to_string(&path).is_ok_and(|old| old == text) {
        say(&format!("{} is up to date", relative(&path).display()));
        return Ok(());
    }
    fs::write(&path, &text).map_err(|e| format!("{}: {e}", path.display()))?;
    say(&format!(
        "wrote {}; review it with `git diff {}` and commit it with the code",
        relative(&path).display(),
        relative(&path).display()
    ));
    Ok(())
}

/// The ci step: `redocly lint` of the checked-in document with `redocly.yaml`; any
/// problem it reports fails the step (the configuration makes warnings errors).
pub fn lint() -> Result {
    let redocly = ensure_redocly()?;
    let root = workspace_root();
    run(Command::new(&redocly)
        .args(["lint", "--config", "redocly.yaml", "--format", "stylish"])
        .arg(relative(&document()))
        .current_dir(&root)
        // No telemetry and no update check: the linter talks to nobody.
        .env("REDOCLY_TELEMETRY", "off")
        .env("REDOCLY_SUPPRESS_UPDATE_NOTICE", "true"))
}

/// The `redocly` binary of the pinned release under `<target>/tools/redocly/`,
/// installed with npm when missing or of another version.
fn ensure_redocly() -> Result<PathBuf> {
    npm::ensure_package(
        "redocly",
        "@redocly/cli",
        REDOCLY_VERSION,
        "node_modules/.bin/redocly",
    )
}
