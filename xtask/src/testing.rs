//! `cargo xtask test`: every test, on both backends, then the doc tests.
//!
//! The tests need a few programs from outside the workspace: the PostgreSQL server
//! binaries (each test binary starts a throwaway cluster, `tests/src/pg.rs`), headless
//! Chromium and chromedriver with axe-core (the console's browser tests), curl (the README
//! quickstart test), and nginx with `openssl` for its throwaway certificate (the
//! reverse-proxy test, `tests/tests/proxy.rs`), and the client generators with node and
//! python3 (the quickstart tests, [`crate::clients`]), and node with panva's oidc-provider
//! (the console's OpenID Connect sign-in tests). [`ensure_peers`] finds each or, as root,
//! installs it from Debian ([`crate::apt`]), and hands its path to the tests in the
//! variable they read.
//! `DATABASE_URL`, when set, is passed through and the tests use that server instead of
//! starting their own.

use std::env;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::apt;
use crate::cmd::{Result, cargo, say};
use crate::postgres::{self, BINDIR_VAR};

/// The variable `tests/tests/console_browser.rs` reads Chromium's path from.
pub const CHROMIUM_VAR: &str = "OWNERSHIP_CHROMIUM";
/// The variable `tests/tests/console_browser.rs` reads chromedriver's path from.
pub const CHROMEDRIVER_VAR: &str = "OWNERSHIP_CHROMEDRIVER";
/// The variable `tests/tests/console_browser.rs` reads axe-core's script from.
pub const AXE_VAR: &str = "OWNERSHIP_AXE";
/// The axe-core release the console's accessibility checks run.
pub const AXE_VERSION: &str = "4.14.1";
/// The variable `tests/src/oidc.rs` reads the folder holding oidc-provider's
/// `node_modules` from.
pub const OIDC_PROVIDER_VAR: &str = "OWNERSHIP_OIDC_PROVIDER";
/// The oidc-provider release the console's OpenID Connect sign-in is tested against.
pub const OIDC_PROVIDER_VERSION: &str = "9.13.3";
/// The variable `tests/src/nginx.rs` reads nginx's path from.
pub const NGINX_VAR: &str = "OWNERSHIP_NGINX";
/// The variable `tests/src/pgbouncer.rs` reads PgBouncer's path from.
pub const PGBOUNCER_VAR: &str = "OWNERSHIP_PGBOUNCER";
/// The variable `tests/tests/metrics_prometheus.rs` reads Prometheus' path from.
pub const PROMETHEUS_VAR: &str = "OWNERSHIP_PROMETHEUS";
/// The variable `tests/tests/metrics_prometheus.rs` reads promtool's path from.
pub const PROMTOOL_VAR: &str = "OWNERSHIP_PROMTOOL";

/// The programs the tests need, found or installed, as the variables that tell the tests
/// where each is.
#[derive(Debug, Default)]
pub struct Peers {
    vars: Vec<(&'static str, PathBuf)>,
}

impl Peers {
    /// Sets every variable on `command`.
    pub fn apply<'a>(&self, command: &'a mut Command) -> &'a mut Command {
        for (var, path) in &self.vars {
            command.env(var, path);
        }
        command
    }
}

/// Finds (or, as root, installs from Debian) everything the tests run besides our own
/// binaries, and prints where each is and its version. A new peer (a reverse proxy, a
/// metrics scraper) is one more line here: `apt::ensure_apt` or `apt::ensure_overridable`
/// with its binary and packages, and a variable its test reads.
pub fn ensure_peers() -> Result<Peers> {
    let mut peers = Peers::default();
    let bindir = postgres::ensure_bindir()?;
    say_version("PostgreSQL", &bindir.join("postgres"));
    peers.vars.push((BINDIR_VAR, bindir));
    peers.vars.extend(ensure_browser()?);
    peers.vars.push(ensure_oidc_provider()?);
    let curl = apt::ensure_apt(Path::new("curl"), &["curl", "ca-certificates"])?;
    say_version("curl", &curl);
    peers.vars.push(ensure_nginx()?);
    let openssl = apt::ensure_apt(Path::new("openssl"), &["openssl"])?;
    say(&format!("openssl: {}", openssl.display()));
    peers.vars.extend(ensure_prometheus()?);
    peers.vars.push(ensure_pgbouncer()?);
    peers.vars.extend(crate::clients::ensure_generators()?);
    Ok(peers)
}

/// panva's oidc-provider (the identity provider of the console's OpenID Connect tests,
/// run with node by `tests/src/oidc.rs`), with npm under `<target>/tools/oidc-provider/`
/// at [`OIDC_PROVIDER_VERSION`]; node comes from Debian when missing.
pub fn ensure_oidc_provider() -> Result<(&'static str, PathBuf)> {
    let manifest = crate::npm::ensure_package(
        "oidc-provider",
        "oidc-provider",
        OIDC_PROVIDER_VERSION,
        "node_modules/oidc-provider/package.json",
    )?;
    let modules = manifest
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| format!("{}: no node_modules folder", manifest.display()))?
        .to_path_buf();
    Ok((OIDC_PROVIDER_VAR, modules))
}

/// PgBouncer for the pooling tests: `$OWNERSHIP_PGBOUNCER` when set, else
/// `/usr/sbin/pgbouncer`, installed from Debian's `pgbouncer` when missing.
pub fn ensure_pgbouncer() -> Result<(&'static str, PathBuf)> {
    let pgbouncer = apt::ensure_overridable(
        PGBOUNCER_VAR,
        Path::new("/usr/sbin/pgbouncer"),
        &["pgbouncer"],
    )?;
    say_version("PgBouncer", &pgbouncer);
    Ok((PGBOUNCER_VAR, pgbouncer))
}

/// nginx for the reverse-proxy test: `$OWNERSHIP_NGINX` when set, else `/usr/sbin/nginx`,
/// installed from Debian's `nginx-light` (SSL and proxy modules, nothing more) when
/// missing, or from `nginx` on releases that no longer split it.
pub fn ensure_nginx() -> Result<(&'static str, PathBuf)> {
    let default = Path::new("/usr/sbin/nginx");
    let nginx = apt::ensure_overridable(NGINX_VAR, default, &["nginx-light"]).or_else(|light| {
        apt::ensure_overridable(NGINX_VAR, default, &["nginx"])
            .map_err(|full| format!("{light}; and {full}"))
    })?;
    say(&format!("nginx: {}", nginx.display()));
    Ok((NGINX_VAR, nginx))
}

/// Prometheus and promtool (`tests/tests/metrics_prometheus.rs`): `$OWNERSHIP_PROMETHEUS` /
/// `$OWNERSHIP_PROMTOOL` when set, else `/usr/bin/prometheus` and `/usr/bin/promtool`,
/// installed from Debian's `prometheus` when missing.
pub fn ensure_prometheus() -> Result<[(&'static str, PathBuf); 2]> {
    let prometheus = apt::ensure_overridable(
        PROMETHEUS_VAR,
        Path::new("/usr/bin/prometheus"),
        &["prometheus"],
    )?;
    let promtool = apt::ensure_overridable(
        PROMTOOL_VAR,
        Path::new("/usr/bin/promtool"),
        &["prometheus"],
    )?;
    say_version("Prometheus", &prometheus);
    say_version("promtool", &promtool);
    Ok([(PROMETHEUS_VAR, prometheus), (PROMTOOL_VAR, promtool)])
}

/// Headless Chromium and chromedriver: `$OWNERSHIP_CHROMIUM` / `$OWNERSHIP_CHROMEDRIVER`
/// when set (used as given), else `/usr/bin/chromium` and `/usr/bin/chromedriver`,
/// installed from Debian's `chromium` and `chromium-driver` when missing; and axe-core
/// (the accessibility checks the browser tests inject into every console page), with npm
/// under `<target>/tools/axe-core/` at [`AXE_VERSION`].
pub fn ensure_browser() -> Result<[(&'static str, PathBuf); 3]> {
    const PACKAGES: [&str; 2] = ["chromium", "chromium-driver"];
    let chromium =
        apt::ensure_overridable(CHROMIUM_VAR, Path::new("/usr/bin/chromium"), &PACKAGES)?;
    let chromedriver = apt::ensure_overridable(
        CHROMEDRIVER_VAR,
        Path::new("/usr/bin/chromedriver"),
        &PACKAGES,
    )?;
    say_version("Chromium", &chromium);
    say_version("chromedriver", &chromedriver);
    let axe = crate::npm::ensure_package(
        "axe-core",
        "axe-core",
        AXE_VERSION,
        "node_modules/axe-core/axe.min.js",
    )?;
    Ok([
        (CHROMIUM_VAR, chromium),
        (CHROMEDRIVER_VAR, chromedriver),
        (AXE_VAR, axe),
    ])
}

/// `what: <path> (<first line of path --version>)`; the version is informative only.
fn say_version(what: &str, path: &Path) {
    let version = Command::new(path)
        .arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|output| output.status.success())
        .and_then(|output| {
            String::from_utf8_lossy(&output.stdout)
                .lines()
                .next()
                .map(|line| line.trim().to_owned())
        })
        .unwrap_or_else(|| "version unknown".to_owned());
    say(&format!("{what}: {} ({version})", path.display()));
}

pub fn run_all() -> Result {
    apt::ensure_build_deps()?;
    let peers = ensure_peers()?;
    if env::var_os("DATABASE_URL").is_some() {
        say("DATABASE_URL is set: the PostgreSQL tests use that server");
    }

    // `cargo test`, not nextest: nextest runs every test in its own process, and each
    // process would start its own PostgreSQL cluster. With `cargo test` each test binary
    // starts one cluster and shares it between its tests. Doc tests run below, once.
    let mut tests = cargo();
    tests.args([
        "test",
        "--workspace",
        "--all-features",
        "--no-fail-fast",
        "--lib",
        "--bins",
        "--tests",
        "--examples",
    ]);
    run_counted(peers.apply(&mut tests))?;

    run_counted(peers.apply(cargo().args([
        "test",
        "--workspace",
        "--doc",
        "--all-features",
        "--no-fail-fast",
    ])))?;
    say_totals();
    Ok(())
}

static PASSED: AtomicU64 = AtomicU64::new(0);
static FAILED: AtomicU64 = AtomicU64::new(0);

/// The totals of every test run so far, as the plain closing line CI reads:
/// `N passed, M failed`.
pub fn totals_line() -> String {
    format!(
        "{} passed, {} failed",
        PASSED.load(Ordering::SeqCst),
        FAILED.load(Ordering::SeqCst)
    )
}

/// Prints [`totals_line`] alone on a line of stdout.
pub fn say_totals() {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", totals_line());
    let _ = out.flush();
}

/// The counts of a libtest summary line (`test result: ok. 12 passed; 0 failed; …`).
fn parse_result(line: &str) -> Option<(u64, u64)> {
    let rest = line.trim().strip_prefix("test result: ")?;
    let (_, counts) = rest.split_once(". ")?;
    let mut passed = None;
    let mut failed = None;
    for part in counts.split(';') {
        let mut words = part.split_whitespace();
        match (
            words.next().and_then(|n| n.parse::<u64>().ok()),
            words.next(),
        ) {
            (Some(n), Some("passed")) => passed = Some(n),
            (Some(n), Some("failed")) => failed = Some(n),
            _ => {}
        }
    }
    Some((passed?, failed?))
}

/// Runs a test command, passing its output through and adding up its summary lines.
fn run_counted(command: &mut Command) -> Result {
    say(&format!("$ {command:?}"));
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("could not start the tests: {e}"))?;
    if let Some(stdout) = child.stdout.take() {
        let mut out = std::io::stdout().lock();
        for line in BufReader::new(stdout)
            .lines()
            .map_while(std::result::Result::ok)
        {
            if let Some((p, f)) = parse_result(&line) {
                PASSED.fetch_add(p, Ordering::SeqCst);
                FAILED.fetch_add(f, Ordering::SeqCst);
            }
            let _ = writeln!(out, "{line}");
        }
    }
    let status = child
        .wait()
        .map_err(|e| format!("waiting for the tests: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("the tests failed ({status}); {}", totals_line()))
    }
}

#[cfg(test)]
mod tests {
    use super::parse_result;

    #[test]
    fn summary_lines_are_counted() {
        assert_eq!(
            parse_result(
                "test result: ok. 186 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 10.55s"
            ),
            Some((186, 0))
        );
        assert_eq!(
            parse_result("test result: FAILED. 3 passed; 2 failed; 0 ignored"),
            Some((3, 2))
        );
        assert_eq!(parse_result("running 3 tests"), None);
    }
}
