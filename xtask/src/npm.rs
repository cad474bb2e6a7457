//! npm packages the tasks need, each installed at a pinned version under
//! `<target>/tools/<name>/` (never into the source tree); node and npm come from Debian
//! when missing.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::apt;
use crate::cmd::{Result, relative, run, say, target_dir};

/// `package` at exactly `version`, installed with npm under `<target>/tools/<tool>/` when
/// missing or of another version. Returns the path of `wanted`, a file the task needs
/// (relative to that folder: `node_modules/.bin/<binary>`, a script of the package).
pub fn ensure_package(tool: &str, package: &str, version: &str, wanted: &str) -> Result<PathBuf> {
    let dir = target_dir().join("tools").join(tool);
    let package_dir = dir.join("node_modules").join(package);
    let file = dir.join(wanted);
    if installed_version(&package_dir).as_deref() != Some(version) || !file.is_file() {
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
            .arg(format!("{package}@{version}")))?;
    }
    if !file.is_file() {
        return Err(format!(
            "{} is missing after `npm install {package}@{version}`",
            file.display()
        ));
    }
    say(&format!(
        "{package}: {} ({version})",
        relative(&file).display()
    ));
    Ok(file)
}

/// The version of the package installed in `package_dir`, read from its `package.json`.
fn installed_version(package_dir: &Path) -> Option<String> {
    let manifest = fs::read_to_string(package_dir.join("package.json")).ok()?;
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
        let dir = std::env::temp_dir().join(format!("xtask-npm-{}", std::process::id()));
        let package = dir.join("node_modules/@redocly/cli");
        fs::create_dir_all(&package).unwrap();
        assert_eq!(installed_version(&package), None);
        fs::write(
            package.join("package.json"),
            "{\n  \"name\": \"@redocly/cli\",\n  \"version\": \"2.77.0\",\n  \"x\": 1\n}",
        )
        .unwrap();
        assert_eq!(installed_version(&package).as_deref(), Some("2.77.0"));
        fs::remove_dir_all(&dir).unwrap();
    }
}
