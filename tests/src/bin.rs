//! The `ownership` binary for tests that run it as a process.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use serde_json::Value;

/// The `ownership` binary, built now (a no-op when it is up to date): `cargo test` builds
/// only the binaries of the package under test, and this crate is not `ownership-cli`.
pub fn ownership_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| built("--bin", "ownership"))
}

/// The executable of a workspace binary or example (`target` is `--bin` or `--example`),
/// built now. Cargo reports where the executable is, whatever the target directory.
pub fn built(target: &str, name: &str) -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let mut cmd = Command::new(cargo);
    // `--workspace --all-features`, as `cargo xtask test` builds the tests: the same
    // feature unification, so the dependencies already built for the tests are reused.
    cmd.current_dir(workspace).args([
        "build",
        "--quiet",
        "--workspace",
        "--all-features",
        target,
        name,
        "--message-format=json-render-diagnostics",
    ]);
    if !cfg!(debug_assertions) {
        cmd.arg("--release");
    }
    let out = cmd.stderr(Stdio::inherit()).output().expect("cargo runs");
    assert!(out.status.success(), "building {name} failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == name)
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| panic!("cargo reported no {name} executable"))
}
