//! `cargo xtask clients`: the client generators the quickstart tests run
//! (`tests/tests/client_quickstarts.rs`, docs/clients.md), installed under
//! `<target>/clients/` when missing, at the versions the repository pins:
//!
//! - `node/`: `npm ci` of `clients/typescript/package.json` and its lock file
//!   (openapi-typescript, openapi-fetch, TypeScript, Node's types);
//! - `venv/`: a Python virtualenv with `clients/python/requirements.txt`
//!   (openapi-python-client and the generated package's run-time dependencies).
//!
//! Node and npm, and python3 with its `venv` module, come from Debian when missing. Each
//! folder is reinstalled only when its pin file changed (a copy of it is kept beside what
//! it installed). Nothing generated is written into the source tree.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::apt;
use crate::cmd::{Result, relative, run, say, target_dir, workspace_root};

/// The variable the quickstart tests read the generators' folder from.
pub const TOOLS_VAR: &str = "OWNERSHIP_CLIENT_TOOLS";
/// The variable the TypeScript quickstart test reads node's path from.
pub const NODE_VAR: &str = "OWNERSHIP_NODE";

/// Installs what is missing and returns the variables the tests read.
pub fn ensure_generators() -> Result<[(&'static str, PathBuf); 2]> {
    let root = workspace_root();
    let tools = target_dir().join("clients");
    let node = apt::ensure_apt(Path::new("node"), &["nodejs"])?;
    let npm = apt::ensure_apt(Path::new("npm"), &["npm"])?;
    let sources = root.join("clients/typescript");
    let node_dir = tools.join("node");
    if !current(&sources.join("package-lock.json"), &node_dir)? {
        fs::create_dir_all(&node_dir).map_err(|e| format!("{}: {e}", node_dir.display()))?;
        for file in ["package.json", "package-lock.json"] {
            copy(&sources.join(file), &node_dir.join(file))?;
        }
        run(Command::new(&npm)
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&node_dir))?;
        stamp(&sources.join("package-lock.json"), &node_dir)?;
    }
    say(&format!(
        "TypeScript client tools: {} (node {})",
        relative(&node_dir).display(),
        node.display()
    ));

    let requirements = root.join("clients/python/requirements.txt");
    let venv = tools.join("venv");
    if !current(&requirements, &venv)? {
        make_venv(&venv)?;
        run(Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(&requirements))?;
        stamp(&requirements, &venv)?;
    }
    say(&format!(
        "Python client tools: {}",
        relative(&venv).display()
    ));
    Ok([(TOOLS_VAR, tools), (NODE_VAR, node)])
}

/// A fresh Python virtualenv at `venv` (emptied if it existed), with python3 and its
/// `venv` module from Debian when missing.
pub fn make_venv(venv: &Path) -> Result {
    let python = apt::ensure_apt(Path::new("/usr/bin/python3"), &["python3"])?;
    let made = Command::new(&python)
        .args(["-m", "venv", "--clear"])
        .arg(venv)
        .status();
    if !made.is_ok_and(|s| s.success()) {
        say("python3 -m venv failed; installing Debian's python3-venv");
        apt::install(&["python3-venv"])?;
        run(Command::new(&python)
            .args(["-m", "venv", "--clear"])
            .arg(venv))?;
    }
    Ok(())
}

/// The copy of a pin file kept in the folder it installed.
fn stamp_path(pins: &Path, dir: &Path) -> PathBuf {
    let name = pins
        .file_name()
        .map_or_else(Default::default, |n| n.to_os_string());
    let mut stamp = std::ffi::OsString::from(".installed-");
    stamp.push(name);
    dir.join(stamp)
}

/// Whether `dir` was installed from `pins` as they are now.
fn current(pins: &Path, dir: &Path) -> Result<bool> {
    let wanted = fs::read(pins).map_err(|e| format!("{}: {e}", pins.display()))?;
    Ok(fs::read(stamp_path(pins, dir)).is_ok_and(|had| had == wanted))
}

fn stamp(pins: &Path, dir: &Path) -> Result {
    copy(pins, &stamp_path(pins, dir))
}

fn copy(from: &Path, to: &Path) -> Result {
    fs::copy(from, to)
        .map(drop)
        .map_err(|e| format!("copy {} to {}: {e}", from.display(), to.display()))
}
