//! Finding (or, as root, installing) Debian's `prometheus` package, whose server and
//! `promtool` the metrics test runs against the real binary (`tests/tests/metrics_prometheus.rs`).
//! Like PostgreSQL, that test is never skipped: no binaries means it fails and says why.

use std::path::Path;
use std::process::Command;

use crate::cmd::{Result, is_root, run, say};

/// Where Debian installs the server and the tool.
pub const PROMETHEUS: &str = "/usr/bin/prometheus";
/// See [`PROMETHEUS`].
pub const PROMTOOL: &str = "/usr/bin/promtool";

fn present() -> bool {
    Path::new(PROMETHEUS).is_file() && Path::new(PROMTOOL).is_file()
}

/// Makes sure `prometheus` and `promtool` are installed: installs the `prometheus`
/// package when they are missing and we are root.
pub fn ensure_installed() -> Result {
    if present() {
        return Ok(());
    }
    if !is_root() {
        return Err(format!(
            "{PROMETHEUS} and {PROMTOOL} are needed by the metrics test and not running as \
             root, so they cannot be installed here: `apt-get install prometheus`"
        ));
    }
    say("prometheus not found; installing the `prometheus` package");
    run(Command::new("apt-get")
        .arg("update")
        .env("DEBIAN_FRONTEND", "noninteractive"))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "--no-install-recommends", "prometheus"])
        .env("DEBIAN_FRONTEND", "noninteractive"))?;
    if present() {
        Ok(())
    } else {
        Err(format!(
            "{PROMETHEUS} or {PROMTOOL} still missing after `apt-get install prometheus`"
        ))
    }
}
