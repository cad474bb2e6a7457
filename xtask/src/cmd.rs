//! Running commands and the few helpers every task shares.

use std::env;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Every task reports failure as a message for the person at the terminal.
pub type Result<T = ()> = std::result::Result<T, String>;

/// Prints a progress line. xtask talks to a person, so stdout is its interface.
#[expect(clippy::print_stdout, reason = "xtask reports progress on stdout")]
pub fn say(line: &str) {
    println!("{line}");
}

/// The workspace root: xtask lives in `<root>/xtask`.
pub fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map_or_else(|| manifest_dir.to_path_buf(), Path::to_path_buf)
}

/// The cargo target directory: the one this xtask binary was built in (`cargo xtask`
/// builds it in the workspace's), else `$CARGO_TARGET_DIR`, else `<root>/target`.
pub fn target_dir() -> PathBuf {
    // `<target>/debug/xtask`, or `<target>/debug/deps/xtask-<hash>` for its unit tests;
    // cargo marks the target directory itself with CACHEDIR.TAG.
    let from_exe = env::current_exe().ok().and_then(|exe| {
        exe.ancestors()
            .skip(1)
            .take(3)
            .find(|dir| dir.join("CACHEDIR.TAG").is_file())
            .map(Path::to_path_buf)
    });
    from_exe
        .or_else(|| {
            env::var_os("CARGO_TARGET_DIR")
                .filter(|dir| !dir.is_empty())
                .map(|dir| workspace_root().join(dir))
        })
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// `path` relative to the workspace root when it is inside it (for messages).
pub fn relative(path: &Path) -> PathBuf {
    path.strip_prefix(workspace_root())
        .map_or_else(|_| path.to_path_buf(), Path::to_path_buf)
}

/// `cargo` (the one that runs us, when known), started in the workspace root.
pub fn cargo() -> Command {
    let program = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(program);
    command.current_dir(workspace_root());
    command
}

/// Runs `command` with the terminal attached; fails unless it exits successfully.
pub fn run(command: &mut Command) -> Result {
    say(&format!("$ {}", display(command)));
    let status = command
        .status()
        .map_err(|error| format!("could not start `{}`: {error}", display(command)))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{}` failed ({status})", display(command)))
    }
}

/// Runs `command` and returns its stdout; stderr goes to the terminal.
pub fn stdout_of(command: &mut Command) -> Result<String> {
    let output = command
        .stderr(Stdio::inherit())
        .output()
        .map_err(|error| format!("could not start `{}`: {error}", display(command)))?;
    if output.status.success() {
        String::from_utf8(output.stdout)
            .map_err(|_| format!("`{}` printed invalid UTF-8", display(command)))
    } else {
        Err(format!("`{}` failed ({})", display(command), output.status))
    }
}

/// `program args…` as a person would type it (lossy, for messages only).
pub fn display(command: &Command) -> String {
    let program = short_program(command.get_program());
    command
        .get_args()
        .map(|arg| redact_password(&arg.to_string_lossy()))
        .fold(program, |line, arg| format!("{line} {arg}"))
}

/// `scheme://user:secret@host/…` → `scheme://user:***@host/…`, so logs keep no passwords.
fn redact_password(arg: &str) -> String {
    let Some((scheme, rest)) = arg.split_once("://") else {
        return arg.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{path}"),
            None => arg.to_owned(),
        },
        None => arg.to_owned(),
    }
}

/// `/root/.cargo/bin/cargo` reads better as `cargo`.
fn short_program(program: &OsStr) -> String {
    let path = Path::new(program);
    match (path.file_name(), path.parent()) {
        (Some(name), Some(_)) if name == "cargo" => "cargo".to_owned(),
        _ => program.to_string_lossy().into_owned(),
    }
}

/// An executable named `name` on `PATH`.
pub fn on_path(name: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// A cargo subcommand binary (`cargo-deny`, `cargo-nextest`) where cargo would find it:
/// on `PATH` or in `$CARGO_HOME/bin`.
pub fn cargo_subcommand(binary: &str) -> Option<PathBuf> {
    on_path(binary).or_else(|| {
        let cargo_home = env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")))?;
        let candidate = cargo_home.join("bin").join(binary);
        candidate.is_file().then_some(candidate)
    })
}

/// Whether we run as root (uid 0), asked of `id -u` to stay free of libc.
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| output.status.success() && output.stdout.trim_ascii() == b"0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_directory_is_cargos() {
        let target = target_dir();
        assert!(
            target.join("CACHEDIR.TAG").is_file(),
            "{} is not a cargo target directory",
            target.display()
        );
        assert!(!target.starts_with(workspace_root().join("docs")));
    }

    #[test]
    fn passwords_in_urls_are_not_echoed() {
        assert_eq!(
            redact_password("postgres://app:s3cret@db:5432/app?sslmode=require"),
            "postgres://app:***@db:5432/app?sslmode=require"
        );
        assert_eq!(
            redact_password("postgres://app@db/app"),
            "postgres://app@db/app"
        );
        assert_eq!(redact_password("--all-features"), "--all-features");
        assert_eq!(
            redact_password("sqlite:ownership.db"),
            "sqlite:ownership.db"
        );
    }
}
