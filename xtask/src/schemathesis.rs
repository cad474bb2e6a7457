//! `cargo xtask schemathesis` (and a step of `cargo xtask ci`): the API against its
//! OpenAPI document.
//!
//! Installs Schemathesis (PyPI, pinned below) into a virtualenv under
//! `<target>/tools/schemathesis/` when missing or of another version (python3 and its
//! `venv` module come from Debian when missing), finds or installs the PostgreSQL server
//! binaries, then runs the `schemathesis` example of `ownership-tests`
//! (`tests/examples/schemathesis.rs`): a fresh real server per store (libSQL file,
//! throwaway PostgreSQL) and per caller (Owner, Member), every check and every phase
//! including stateful, each run's summary printed. Any failure fails the task.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cmd::{Result, cargo, display, relative, run, say, stdout_of, target_dir};
use crate::{clients, postgres, soak};

/// The Schemathesis release the API is checked with.
pub const SCHEMATHESIS_VERSION: &str = "4.32.5";

/// The variable the runner reads the `st` program from.
const ST_VAR: &str = "OWNERSHIP_SCHEMATHESIS";

pub fn run_all() -> Result {
    let st = ensure_schemathesis()?;
    let bindir = postgres::ensure_bindir()?;
    // Built as the tests are (`--workspace --all-features`, the same feature unification,
    // so nothing is rebuilt), then run directly: `cargo run` would hold the build lock
    // that the runner's own build of the `ownership` binary waits for.
    let mut build = cargo();
    build.args([
        "build",
        "--locked",
        "--workspace",
        "--all-features",
        "--example",
        "schemathesis",
        "--message-format=json-render-diagnostics",
    ]);
    say(&format!("$ {}", display(&build)));
    let messages = stdout_of(&mut build)?;
    let runner = soak::executable_of(&messages, "schemathesis")
        .ok_or("cargo reported no executable for the `schemathesis` example")?;
    run(Command::new(runner)
        .env(ST_VAR, &st)
        .env(postgres::BINDIR_VAR, bindir)
        .env(
            "OWNERSHIP_SCHEMATHESIS_DIR",
            target_dir().join("schemathesis"),
        ))
}

/// The `st` program of the pinned release, installed in a virtualenv when missing.
fn ensure_schemathesis() -> Result<PathBuf> {
    let venv = target_dir().join("tools/schemathesis");
    let st = venv.join("bin/st");
    if installed_version(&venv).as_deref() != Some(SCHEMATHESIS_VERSION) || !st.is_file() {
        clients::make_venv(&venv)?;
        run(Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .arg(format!("schemathesis=={SCHEMATHESIS_VERSION}")))?;
    }
    if !st.is_file() {
        return Err(format!(
            "{} is missing after `pip install schemathesis=={SCHEMATHESIS_VERSION}`",
            st.display()
        ));
    }
    say(&format!(
        "schemathesis: {} ({SCHEMATHESIS_VERSION})",
        relative(&st).display()
    ));
    Ok(st)
}

/// The Schemathesis version installed in `venv`, from the package's metadata folder name
/// (`schemathesis-4.32.5.dist-info`).
fn installed_version(venv: &Path) -> Option<String> {
    let lib = fs::read_dir(venv.join("lib")).ok()?;
    lib.filter_map(|entry| entry.ok())
        .filter_map(|python| fs::read_dir(python.path().join("site-packages")).ok())
        .flatten()
        .filter_map(|entry| entry.ok())
        .find_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            name.strip_prefix("schemathesis-")?
                .strip_suffix(".dist-info")
                .map(str::to_owned)
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn the_installed_version_is_read_from_the_metadata_folder() {
        let venv = std::env::temp_dir().join(format!("xtask-st-{}", std::process::id()));
        let site = venv.join("lib/python3.11/site-packages");
        fs::create_dir_all(site.join("schemathesis-4.32.5.dist-info")).unwrap();
        fs::create_dir_all(site.join("hypothesis-6.0.0.dist-info")).unwrap();
        assert_eq!(installed_version(&venv).as_deref(), Some("4.32.5"));
        fs::remove_dir_all(&venv).unwrap();
    }
}
