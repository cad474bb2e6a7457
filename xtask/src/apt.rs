//! Installing the Debian packages the tests need (PostgreSQL, Chromium, curl, …) when
//! their binaries are missing, so `cargo xtask test` sets up a fresh machine by itself.
//!
//! Installing needs root; without it the error names the packages to install by hand.
//! `apt-get update` runs at most once per xtask run, before the first install.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::cmd::{Result, is_root, on_path, run, say};

/// Whether this run has already refreshed the package lists.
static UPDATED: AtomicBool = AtomicBool::new(false);

/// How long apt waits for another apt or dpkg (another agent, unattended upgrades) to
/// release its lock before giving up, in seconds.
const LOCK_TIMEOUT_SECONDS: u32 = 300;

/// The binary `binary` names: itself when it holds a `/` (`/usr/bin/chromium`), else the
/// executable of that name on `PATH` (`curl`). When it is missing, installs `packages`
/// with apt-get (as root) and looks again. Fails, naming the binary and the packages,
/// when it cannot be installed or is still missing afterwards.
pub fn ensure_apt(binary: &Path, packages: &[&str]) -> Result<PathBuf> {
    if let Some(found) = find(binary) {
        return Ok(found);
    }
    let list = packages.join(" ");
    say(&format!(
        "{} not found; installing Debian's {list}",
        binary.display()
    ));
    install(packages).map_err(|error| format!("{} not found, and {error}", binary.display()))?;
    find(binary).ok_or_else(|| {
        format!(
            "{} still not found after `apt-get install {list}`",
            binary.display()
        )
    })
}

/// Installs `packages` with `apt-get install --no-install-recommends` (after one
/// `apt-get update` per run). Needs root.
pub fn install(packages: &[&str]) -> Result {
    let list = packages.join(" ");
    if !is_root() {
        return Err(format!(
            "installing Debian's {list} needs root: run \
             `apt-get install -y --no-install-recommends {list}` as root, then rerun"
        ));
    }
    if !UPDATED.load(Ordering::SeqCst) {
        run(apt_get().arg("update"))
            .map_err(|error| format!("installing Debian's {list} failed: {error}"))?;
        UPDATED.store(true, Ordering::SeqCst);
    }
    run(apt_get()
        .args(["install", "-y", "--no-install-recommends"])
        .args(packages))
    .map_err(|error| format!("installing Debian's {list} failed: {error}"))
}

/// What building the workspace needs besides Rust and a C compiler: OpenSSL's headers,
/// found through `pkg-config` (webauthn-rs, behind the console's passkeys, links OpenSSL).
/// Installs Debian's `libssl-dev` and `pkg-config` when `pkg-config --exists openssl`
/// fails, so `cargo xtask ci` and `cargo xtask test` build on a fresh machine by themselves.
pub fn ensure_build_deps() -> Result {
    let found = Command::new("pkg-config")
        .args(["--exists", "openssl"])
        .status()
        .is_ok_and(|status| status.success());
    if found {
        return Ok(());
    }
    say(
        "OpenSSL's headers (pkg-config openssl) not found; installing Debian's libssl-dev pkg-config",
    );
    install(&["libssl-dev", "pkg-config"])
}

/// `apt-get -q`, non-interactive, waiting for a held dpkg lock instead of failing at once.
fn apt_get() -> Command {
    let mut command = Command::new("apt-get");
    command
        .arg("-q")
        .arg("-o")
        .arg(format!("DPkg::Lock::Timeout={LOCK_TIMEOUT_SECONDS}"))
        .env("DEBIAN_FRONTEND", "noninteractive");
    command
}

/// `binary` if it is an executable file (a bare name is looked up on `PATH`).
fn find(binary: &Path) -> Option<PathBuf> {
    if binary.components().count() == 1 && !binary.has_root() {
        return on_path(&binary.to_string_lossy()).filter(|path| is_executable(path));
    }
    is_executable(binary).then(|| binary.to_path_buf())
}

/// A regular file with an execute bit (any file, off Unix).
pub fn is_executable(path: &Path) -> bool {
    let Ok(metadata) = path.metadata() else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        metadata.is_file() && metadata.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    {
        metadata.is_file()
    }
}

/// The path in `var` when it is set (an override: used as given, never installed), else
/// `default` installed from `packages` when missing. An override that names no
/// executable is an error: installing Debian's package would not put anything there.
pub fn ensure_overridable(var: &str, default: &Path, packages: &[&str]) -> Result<PathBuf> {
    match env::var_os(var).filter(|value| !value.is_empty()) {
        Some(value) => check_override(var, Path::new(&value), default, packages),
        None => ensure_apt(default, packages),
    }
}

/// `path` (the value of `var`) when it is an executable file, else an error saying so.
fn check_override(var: &str, path: &Path, default: &Path, packages: &[&str]) -> Result<PathBuf> {
    if is_executable(path) {
        Ok(path.to_path_buf())
    } else {
        Err(format!(
            "{var}={} is not an executable file (unset it to use {} from Debian's {})",
            path.display(),
            default.display(),
            packages.join(" ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_present_binary_is_found_without_installing() {
        // `sh` is on every machine that runs these tests; nothing is installed for it.
        let sh = ensure_apt(Path::new("sh"), &["dash"]);
        assert!(sh.is_ok_and(|path| path.is_absolute()));
        assert_eq!(
            ensure_apt(Path::new("/bin/sh"), &["dash"]),
            Ok(PathBuf::from("/bin/sh"))
        );
    }

    #[test]
    fn an_override_is_used_as_given_and_never_installed() {
        let default = Path::new("/usr/bin/chromium");
        let packages = ["chromium"];
        assert_eq!(
            check_override(
                "OWNERSHIP_CHROMIUM",
                Path::new("/bin/sh"),
                default,
                &packages
            ),
            Ok(PathBuf::from("/bin/sh"))
        );
        let missing = check_override(
            "OWNERSHIP_CHROMIUM",
            Path::new("/no/such/chromium"),
            default,
            &packages,
        );
        assert!(
            missing
                .as_ref()
                .is_err_and(|e| e.contains("OWNERSHIP_CHROMIUM=/no/such/chromium")),
            "{missing:?}"
        );
    }

    #[test]
    fn directories_and_missing_paths_are_not_executables() {
        assert!(!is_executable(Path::new("/")));
        assert!(!is_executable(Path::new("/no/such/binary")));
        assert!(find(Path::new("/no/such/binary")).is_none());
        assert!(find(Path::new("no-such-binary-on-path-xtask")).is_none());
    }
}
