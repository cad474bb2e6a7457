//! `cargo xtask package [--check]`: the Debian package, built with cargo-deb.
//!
//! Building: a release build of `ownership`, its man pages (`ownership manpages`) and
//! shell completions (`ownership completions`) written to `target/package-assets/`, then
//! `cargo deb -p ownership-cli --no-build --dbgsym` (the binary stripped, its debug
//! symbols in a separate `-dbgsym` package; cargo-deb is installed under
//! `target/tools/` when missing). The package lands in `target/package/ownership.deb`.
//!
//! `--check` (a step of `cargo xtask ci`) then installs it with `dpkg -i` and checks what
//! an operator relies on: `systemd-analyze verify` accepts the unit,
//! `systemd-analyze security` scores it at most [`MAX_EXPOSURE`] ("OK"), the installed
//! binary run as the packaged user with the packaged configuration serves `/healthz`, and
//! `dpkg -r` removes the binary and the unit (then `dpkg --purge` clears the state). It
//! needs root, and installs Debian's `systemd` when `systemd-analyze` is missing.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::cmd::{self, Result, cargo, run, say, stdout_of, workspace_root};

/// The highest `systemd-analyze security` exposure accepted (its "OK" band ends at 2.0).
pub const MAX_EXPOSURE: f64 = 2.0;

const UNIT: &str = "ownership.service";
const CONFIG: &str = "/etc/ownership/ownership.toml";

pub fn run_task(args: &[String]) -> Result {
    let check = match args {
        [] => false,
        [flag] if flag == "--check" => true,
        _ => {
            return Err(format!(
                "usage: cargo xtask package [--check], got {args:?}"
            ));
        }
    };
    let deb = build()?;
    if check { check_installed(&deb) } else { Ok(()) }
}

/// Builds the package; its path.
pub fn build() -> Result<PathBuf> {
    let root = workspace_root();
    run(cargo().args(["build", "--release", "--locked", "-p", "ownership-cli"]))?;
    let bin = cmd::target_dir().join("release").join("ownership");
    if !bin.is_file() {
        return Err(format!(
            "the release build left no binary at {}",
            bin.display()
        ));
    }
    let assets = root.join("target").join("package-assets");
    let _ = fs::remove_dir_all(&assets);
    let completions = assets.join("completions");
    fs::create_dir_all(&completions)
        .map_err(|e| format!("cannot create {}: {e}", completions.display()))?;
    run(Command::new(&bin).arg("manpages").arg(assets.join("man")))?;
    for (shell, file) in [
        ("bash", "ownership.bash"),
        ("zsh", "_ownership"),
        ("fish", "ownership.fish"),
    ] {
        let script = stdout_of(Command::new(&bin).args(["completions", shell]))?;
        fs::write(completions.join(file), script)
            .map_err(|e| format!("cannot write the {shell} completions: {e}"))?;
    }

    let tools = root.join("target").join("tools");
    let tools_bin = tools.join("bin");
    if !tools_bin.join("cargo-deb").is_file() {
        say("cargo-deb is not installed under target/tools; installing it (a few minutes)");
        run(cargo()
            .args(["install", "--locked", "cargo-deb", "--root"])
            .arg(&tools))?;
    }
    let out_dir = root.join("target").join("package");
    fs::create_dir_all(&out_dir)
        .map_err(|e| format!("cannot create {}: {e}", out_dir.display()))?;
    let deb = out_dir.join("ownership.deb");
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![tools_bin];
    paths.extend(std::env::split_paths(&path));
    let joined = std::env::join_paths(paths).map_err(|e| format!("PATH: {e}"))?;
    run(cargo()
        .args([
            "deb",
            "-p",
            "ownership-cli",
            "--no-build",
            "--locked",
            "--dbgsym",
            "--output",
        ])
        .arg(&deb)
        .env("PATH", joined))?;
    say(&format!("package: {}", deb.display()));
    Ok(deb)
}

/// Installs `deb` and checks the installed service, then removes it.
fn check_installed(deb: &Path) -> Result {
    if !cmd::is_root() {
        return Err("checking the package installs it with dpkg: run as root".into());
    }
    if cmd::on_path("systemd-analyze").is_none() {
        crate::apt::install(&["systemd"])?;
    }
    run(Command::new("dpkg").arg("-i").arg(deb))?;
    let outcome = installed_checks();
    // Removed whatever happened, so a failed check leaves no service behind.
    let removed = run(Command::new("dpkg").args(["-r", "ownership"])).and_then(|()| {
        let leftovers: Vec<&str> = [
            "/usr/bin/ownership",
            "/lib/systemd/system/ownership.service",
        ]
        .into_iter()
        .filter(|p| Path::new(p).exists())
        .collect();
        if leftovers.is_empty() {
            run(Command::new("dpkg").args(["--purge", "ownership"]))
        } else {
            Err(format!("`dpkg -r ownership` left {leftovers:?}"))
        }
    });
    outcome.and(removed)?;
    say("package: installed, verified, served /healthz as the packaged user, removed cleanly");
    Ok(())
}

fn unit_path() -> Result<PathBuf> {
    ["/lib/systemd/system", "/usr/lib/systemd/system"]
        .iter()
        .map(|dir| Path::new(dir).join(UNIT))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("the package installed no {UNIT}"))
}

fn installed_checks() -> Result {
    let unit = unit_path()?;
    for path in [
        CONFIG,
        "/usr/bin/ownership",
        "/usr/share/man/man1/ownership.1.gz",
    ] {
        if !Path::new(path).exists() {
            return Err(format!("the package did not install {path}"));
        }
    }
    run(Command::new("systemd-analyze").arg("verify").arg(&unit))?;
    let report = stdout_of(
        Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--no-pager"])
            .arg(&unit),
    )?;
    let exposure =
        exposure_of(&report).ok_or_else(|| format!("no overall exposure level in:\n{report}"))?;
    say(&format!(
        "systemd-analyze security: {exposure:.1} (at most {MAX_EXPOSURE:.1})"
    ));
    if exposure > MAX_EXPOSURE {
        return Err(format!(
            "{UNIT} scores {exposure:.1}, more than {MAX_EXPOSURE:.1}:\n{report}"
        ));
    }
    serves_as_packaged_user()
}

/// "→ Overall exposure level for ownership.service: 1.9 OK 🙂" → 1.9.
fn exposure_of(report: &str) -> Option<f64> {
    report
        .lines()
        .find(|l| l.contains("Overall exposure level"))?
        .rsplit_once(": ")?
        .1
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `ownership serve` as the `ownership` user with the packaged configuration (on a free
/// port), until `/healthz` answers 200.
fn serves_as_packaged_user() -> Result {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port: {e}"))?
        .port();
    // `setpriv` executes the server in its own process (`runuser` would fork and wait), so
    // killing the child stops the server itself.
    let child = Command::new("setpriv")
        .args([
            "--reuid=ownership",
            "--regid=ownership",
            "--init-groups",
            "--",
            "/usr/bin/ownership",
            "serve",
            "--config",
            CONFIG,
        ])
        .env("OWNERSHIP_LISTEN", format!("127.0.0.1:{port}"))
        .current_dir("/var/lib/ownership")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("could not start the packaged server: {e}"))?;
    let mut child = Killed(child);
    let started = Instant::now();
    loop {
        if let Some(status) = child.0.try_wait().map_err(|e| e.to_string())? {
            return Err(format!("the packaged server exited: {status}"));
        }
        if healthz(port) {
            say(&format!(
                "packaged server, as user `ownership`: GET /healthz 200 on port {port}"
            ));
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(60) {
            return Err("the packaged server did not answer /healthz within 60 s".into());
        }
        sleep(Duration::from_millis(200));
    }
}

fn healthz(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    let mut answer = String::new();
    stream.write_all(request.as_bytes()).is_ok()
        && stream.read_to_string(&mut answer).is_ok()
        && answer.starts_with("HTTP/1.1 200")
}

#[cfg(test)]
mod tests {
    use super::exposure_of;

    #[test]
    fn the_overall_exposure_is_read() {
        let report = "  ✓ PrivateTmp=  Service has no access to other software's temporary files\n\
                      → Overall exposure level for ownership.service: 1.9 OK 🙂\n";
        assert_eq!(exposure_of(report), Some(1.9));
        assert_eq!(exposure_of("nothing"), None);
    }
}
