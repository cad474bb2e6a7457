//! Finding (or, as root, installing) the PostgreSQL server binaries the tests need.
//!
//! Debian puts `initdb` and `pg_ctl` in a versioned directory off `PATH`
//! (`/usr/lib/postgresql/15/bin`); `pg_config --bindir` names it. The PostgreSQL half of
//! the tests is never skipped: no binaries means `cargo xtask test` fails.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::apt;
use crate::cmd::{Result, say};

/// The variable the test harness (`tests/src/pg.rs`) reads the directory from.
pub const BINDIR_VAR: &str = "OWNERSHIP_PG_BINDIR";

const DEBIAN_ROOT: &str = "/usr/lib/postgresql";

/// The PostgreSQL server binary directory; installs the `postgresql` package when it is
/// missing and we are root. (Not [`apt::ensure_apt`]: Debian's binaries live in a
/// versioned directory, so there is no one path to look for.)
pub fn ensure_bindir() -> Result<PathBuf> {
    if let Some(dir) = find_bindir() {
        return Ok(dir);
    }
    say("PostgreSQL server binaries not found; installing Debian's postgresql");
    apt::install(&["postgresql"]).map_err(|error| not_found(&format!("and {error}")))?;
    find_bindir().ok_or_else(|| not_found("even after `apt-get install postgresql`"))
}

fn not_found(why: &str) -> String {
    format!(
        "PostgreSQL server binaries (`initdb`) not found in ${BINDIR_VAR}, `pg_config --bindir` \
         or {DEBIAN_ROOT}/*/bin, {why}. Install PostgreSQL (Debian: `apt-get install \
         postgresql`) or set {BINDIR_VAR}; the PostgreSQL tests are never skipped"
    )
}

/// `$OWNERSHIP_PG_BINDIR`, else `pg_config --bindir`, else the newest
/// `/usr/lib/postgresql/<version>/bin`: the first that holds `initdb`.
pub fn find_bindir() -> Option<PathBuf> {
    let from_env = env::var_os(BINDIR_VAR).map(PathBuf::from);
    from_env
        .filter(|dir| has_server(dir))
        .or_else(|| pg_config_bindir().filter(|dir| has_server(dir)))
        .or_else(newest_debian_bindir)
}

fn has_server(dir: &Path) -> bool {
    dir.join("initdb").is_file() && dir.join("pg_ctl").is_file()
}

fn pg_config_bindir() -> Option<PathBuf> {
    let output = Command::new("pg_config").arg("--bindir").output().ok()?;
    if !output.status.success() {
        return None;
    }
    let dir = String::from_utf8(output.stdout).ok()?;
    Some(PathBuf::from(dir.trim()))
}

fn newest_debian_bindir() -> Option<PathBuf> {
    fs::read_dir(DEBIAN_ROOT)
        .ok()?
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| {
            let version = major_version(&entry.file_name().to_string_lossy())?;
            let bin = entry.path().join("bin");
            has_server(&bin).then_some((version, bin))
        })
        .max_by_key(|(version, _)| *version)
        .map(|(_, bin)| bin)
}

/// `15` → 15, `9.6` → 9; anything else is not a version directory.
fn major_version(dir_name: &str) -> Option<u32> {
    dir_name.split('.').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_directories_sort_by_major_version() {
        assert_eq!(major_version("15"), Some(15));
        assert_eq!(major_version("9.6"), Some(9));
        assert_eq!(major_version("common"), None);
    }
}
