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
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::apt;
use crate::cmd::{Result, cargo, relative, run, say, stdout_of, target_dir, workspace_root};

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
    let dir = target_dir().join("tools/redocly");
    let binary = dir.join("node_modules/.bin/redocly");
    if installed_version(&dir).as_deref() != Some(REDOCLY_VERSION) || !binary.is_file() {
        apt::ensure_apt(Path::new("node"), &["nodejs"])?;
        let npm = apt::ensure_apt(Path::new("npm"), &["npm"])?;
        fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        run(Command::new(npm)
            .args([
                "install",
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                "--prefix",
            ])
            .arg(&dir)
            .arg(format!("@redocly/cli@{REDOCLY_VERSION}")))?;
    }
    if !binary.is_file() {
        return Err(format!(
            "{} is missing after `npm install @redocly/cli@{REDOCLY_VERSION}`",
            binary.display()
        ));
    }
    say(&format!(
        "redocly: {} ({REDOCLY_VERSION})",
        relative(&binary).display()
    ));
    Ok(binary)
}

/// The version of `@redocly/cli` installed in `dir`, read from its `package.json`.
fn installed_version(dir: &Path) -> Option<String> {
    let manifest = fs::read_to_string(dir.join("node_modules/@redocly/cli/package.json")).ok()?;
    let (_, after) = manifest.split_once("\"version\"")?;
    let value = after.trim_start().strip_prefix(':')?.trim_start();
    let value = value.strip_prefix('"')?;
    value.split_once('"').map(|(version, _)| version.to_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

    use super::*;

    #[test]
    fn the_installed_version_is_read_from_the_package_manifest() {
        let dir = std::env::temp_dir().join(format!("xtask-redocly-{}", std::process::id()));
        let manifest = dir.join("node_modules/@redocly/cli");
        fs::create_dir_all(&manifest).unwrap();
        assert_eq!(installed_version(&dir), None);
        fs::write(
            manifest.join("package.json"),
            "{\n  \"name\": \"@redocly/cli\",\n  \"version\": \"2.77.0\",\n  \"x\": 1\n}",
        )
        .unwrap();
        assert_eq!(installed_version(&dir).as_deref(), Some("2.77.0"));
        fs::remove_dir_all(&dir).unwrap();
    }
}
