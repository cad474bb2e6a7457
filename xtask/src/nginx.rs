//! Finding (or, as root, installing) what the reverse-proxy test needs: Debian's nginx
//! (`nginx-light`, which has the SSL and proxy modules) and the `openssl` command that
//! makes its throwaway certificate. `tests/tests/proxy.rs` fails, never skips, when they
//! are missing.

use std::path::Path;
use std::process::Command;

use crate::cmd::{Result, is_root, run, say};

/// Where Debian installs nginx; the test reads `OWNERSHIP_NGINX` first.
pub const NGINX: &str = "/usr/sbin/nginx";

/// Installs `nginx-light` when `/usr/sbin/nginx` is absent and `openssl` when it is not on
/// `PATH`, as root; otherwise says what is missing.
pub fn ensure() -> Result {
    let mut packages = Vec::new();
    if !Path::new(NGINX).exists() {
        packages.push("nginx-light");
    }
    if !on_path("openssl") {
        packages.push("openssl");
    }
    if packages.is_empty() {
        return Ok(());
    }
    if !is_root() {
        return Err(format!(
            "the reverse-proxy test needs {} (Debian: `apt-get install {}`), and this is \
             not root, so they cannot be installed here",
            packages.join(" and "),
            packages.join(" ")
        ));
    }
    say(&format!(
        "installing {} for the reverse-proxy test",
        packages.join(" ")
    ));
    run(Command::new("apt-get")
        .arg("update")
        .env("DEBIAN_FRONTEND", "noninteractive"))?;
    let mut install = Command::new("apt-get");
    install
        .args(["install", "-y", "--no-install-recommends"])
        .args(&packages)
        .env("DEBIAN_FRONTEND", "noninteractive");
    if run(&mut install).is_err() && packages.contains(&"nginx-light") {
        // Newer Debian releases ship one `nginx` package instead of the light/full split.
        let rest = packages
            .iter()
            .map(|p| if *p == "nginx-light" { "nginx" } else { p });
        run(Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends"])
            .args(rest)
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
    }
    if !Path::new(NGINX).exists() {
        return Err(format!("{NGINX} is still missing after installing nginx"));
    }
    Ok(())
}

/// Whether `program` is found on `PATH`.
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}
