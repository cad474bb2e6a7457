//! The README's client quickstarts, run as they stand against the real server on both
//! stores: the Rust one (`crates/ownership-client/examples/quickstart.rs`), the TypeScript
//! one (`clients/typescript/quickstart.ts`, on a client generated from
//! `docs/openapi.json` by openapi-typescript, compiled with `tsc --strict`, run with node)
//! and the Python one (`clients/python/quickstart.py`, importing the package
//! openapi-python-client generates from the same document, run with python3). Each
//! creates a user, mints a channel token, requests and redeems a pairing code, resolves
//! the identity, pages through the audit log and through more than one page of users;
//! the test checks its exit status, every line it printed, and the audit count against
//! the server's own log. The generators are installed under the target directory by
//! `cargo xtask clients` (also part of `cargo xtask test` and `ci`); the clients are
//! generated once per test process. A last test checks that the README shows exactly
//! these three programs.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use futures_util::TryStreamExt;
use ownership_client::Client;
use ownership_tests::app::{Backend, TestApp, spawn_app};

ownership_tests::on_both_backends!(rust_quickstart, typescript_quickstart, python_quickstart);

/// The variable that names the generators' folder (`cargo xtask clients` sets it).
const TOOLS_VAR: &str = "OWNERSHIP_CLIENT_TOOLS";

fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

/// The target directory this test was built in (cargo marks it with CACHEDIR.TAG).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors()
        .find(|dir| dir.join("CACHEDIR.TAG").is_file())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| workspace().join("target"))
}

/// Where `cargo xtask clients` installed the generators: `$OWNERSHIP_CLIENT_TOOLS`, else
/// `<target>/clients`.
fn tools() -> PathBuf {
    std::env::var_os(TOOLS_VAR)
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("clients"))
}

/// `path`, which must exist: else the test fails saying how to install it.
fn installed(path: PathBuf) -> PathBuf {
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask clients` (it installs the client generators under \
         the target directory), or set {TOOLS_VAR}",
        path.display()
    );
    path
}

/// Runs `cmd` to completion; fails with its output unless it succeeds. Returns stdout.
fn run(cmd: &mut Command) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A fresh folder for this process's generated clients, under the target directory.
fn build_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let parent = target_dir().join("clients").join("generated");
        // What earlier test processes generated, unless they are still running.
        for old in std::fs::read_dir(&parent).into_iter().flatten().flatten() {
            let pid = old.file_name();
            if !Path::new("/proc").join(&pid).exists() {
                let _ = std::fs::remove_dir_all(old.path());
            }
        }
        let dir = parent.join(std::process::id().to_string());
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    })
}

fn document() -> PathBuf {
    installed(workspace().join("docs/openapi.json"))
}

/// The TypeScript quickstart beside a client generated from the document, compiled with
/// `tsc --strict`: the path of the JavaScript to run.
fn typescript_built() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let tools = tools().join("node");
        let modules = installed(tools.join("node_modules"));
        let dir = build_dir().join("typescript");
        std::fs::create_dir_all(&dir).unwrap();
        let sources = workspace().join("clients/typescript");
        for file in ["quickstart.ts", "tsconfig.json", "package.json"] {
            std::fs::copy(sources.join(file), dir.join(file)).unwrap();
        }
        std::os::unix::fs::symlink(&modules, dir.join("node_modules")).unwrap();
        let bin = modules.join(".bin");
        run(Command::new(installed(bin.join("openapi-typescript")))
            .arg(document())
            .arg("-o")
            .arg(dir.join("schema.d.ts")));
        run(Command::new(installed(bin.join("tsc")))
            .args(["--strict", "-p"])
            .arg(dir.join("tsconfig.json")));
        installed(dir.join("dist/quickstart.js"))
    })
}

/// The package openapi-python-client generates from the document: the folder to put on
/// `PYTHONPATH`, and the virtualenv's python3 (which has the package's dependencies).
fn python_built() -> &'static (PathBuf, PathBuf) {
    static BUILT: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    BUILT.get_or_init(|| {
        let venv = tools().join("venv/bin");
        let generator = installed(venv.join("openapi-python-client"));
        let out = build_dir().join("python");
        // The generator runs its formatter (ruff, installed beside it) from PATH.
        let path = std::env::join_paths(std::iter::once(venv.clone()).chain(
            std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
        ))
        .unwrap();
        run(Command::new(generator)
            .arg("generate")
            .arg("--path")
            .arg(document())
            .arg("--config")
            .arg(workspace().join("clients/python/openapi-python-client.yaml"))
            .arg("--output-path")
            .arg(&out)
            .arg("--overwrite")
            .env("PATH", path));
        installed(out.join("ownership_api/__init__.py"));
        (out, installed(venv.join("python3")))
    })
}

/// The Rust quickstart example, built now (a no-op when it is up to date).
fn rust_built() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| ownership_tests::bin::built("--example", "quickstart"))
}

/// Runs a quickstart against a fresh server on `backend` and checks what it printed.
async fn check(backend: Backend, mut cmd: Command) {
    let app = spawn_app(backend).await;
    cmd.env("OWNERSHIP_URL", &app.base)
        .env("OWNERSHIP_TOKEN", &app.owner_token)
        .stdin(Stdio::null());
    let program = cmd.get_program().to_owned();
    let child = tokio::process::Command::from(cmd)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), child)
        .await
        .expect("the quickstart ends within 2 minutes")
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (`cargo xtask clients` installs node and python3 when missing)",
                program.display()
            )
        });
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the quickstart failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_printed(&app, &stdout).await;
    app.stop().await;
}

/// Every quickstart prints the same lines; the audit count is what the server's log held
/// before the last two users were made.
async fn assert_printed(app: &TestApp, stdout: &str) {
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 7, "{stdout}");
    assert_eq!(
        lines[..5],
        [
            "created user alice (member)",
            "minted a channel token (channel:telegram)",
            "pairing code issued (new: true)",
            "redeemed: telegram/42 -> alice",
            "resolved telegram/42: alice (member)",
        ]
    );
    assert_eq!(lines[6], "users: alice, bob, carol, owner (2 a page)");
    let owner = Client::new(&app.base).unwrap().with_token(&app.owner_token);
    let all: Vec<_> = owner.all_audit_events(100).try_collect().await.unwrap();
    // The two users made after the audit was read are the two newest events.
    assert!(all[..2].iter().all(|e| e.action == "user.created"));
    let before = all.len() - 2;
    let pages = before.div_ceil(2);
    assert_eq!(lines[5], format!("audit: {before} events in {pages} pages"));
    assert!(pages > 1, "{stdout}");
}

async fn rust_quickstart(backend: Backend) {
    check(backend, Command::new(rust_built())).await;
}

async fn typescript_quickstart(backend: Backend) {
    let js = typescript_built();
    let node = std::env::var_os("OWNERSHIP_NODE").unwrap_or_else(|| "node".into());
    let mut cmd = Command::new(node);
    cmd.arg(js);
    check(backend, cmd).await;
}

async fn python_quickstart(backend: Backend) {
    let (package, python) = python_built();
    let mut cmd = Command::new(python);
    cmd.arg(workspace().join("clients/python/quickstart.py"))
        .env("PYTHONPATH", package);
    check(backend, cmd).await;
}

/// The part of `file` between its `README: begin` and `README: end` lines, dedented.
fn marked(file: &str) -> String {
    let text = std::fs::read_to_string(workspace().join(file)).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let begin = lines
        .iter()
        .position(|l| l.trim_end().ends_with("README: begin"))
        .unwrap_or_else(|| panic!("{file}: no `README: begin` line"));
    let end = lines
        .iter()
        .position(|l| l.trim_end().ends_with("README: end"))
        .unwrap_or_else(|| panic!("{file}: no `README: end` line"));
    let body = &lines[begin + 1..end];
    let indent = body
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    body.iter()
        .map(|l| l.get(indent..).unwrap_or("").trim_end())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The ```<lang> block of the README's `## Clients` section.
fn readme_block(lang: &str) -> String {
    let readme = std::fs::read_to_string(workspace().join("README.md")).unwrap();
    let section = readme
        .split("\n## ")
        .find(|s| s.starts_with("Clients\n"))
        .expect("README.md has a `## Clients` section");
    let fence = format!("```{lang}\n");
    let start = section
        .find(&fence)
        .unwrap_or_else(|| panic!("no ```{lang} block under `## Clients`"))
        + fence.len();
    let len = section[start..].find("\n```").unwrap();
    section[start..start + len]
        .lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
}

/// The README shows exactly the programs these tests run.
#[test]
fn the_readme_shows_the_quickstarts_that_run() {
    for (lang, file) in [
        ("rust", "crates/ownership-client/examples/quickstart.rs"),
        ("ts", "clients/typescript/quickstart.ts"),
        ("python", "clients/python/quickstart.py"),
    ] {
        assert_eq!(
            readme_block(lang),
            marked(file),
            "README.md's ```{lang} block under `## Clients` differs from {file}"
        );
    }
}
