//! The last check of `cargo xtask ci`: the run left the work tree as it found it.
//!
//! Tests and tools write under the target directory or a temporary one, never into
//! tracked files or new files git would pick up. The check compares `git status` (with
//! the content hash of every file it lists) taken before the run with the one after, so
//! a developer's own uncommitted work does not fail it: only paths the run itself
//! created, changed or removed do. Ignored paths (`.gitignore`: `target/`, `*.db`, …) are
//! not listed by git and so never count.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::cmd::{Result, say, target_dir, workspace_root};

/// One path `git status` lists: its two-letter status and the hash of its content on
/// disk (`None` when the file is gone).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    status: String,
    hash: Option<String>,
}

/// What `git status` said, path by path, at one moment.
#[derive(Debug, Default)]
pub struct Snapshot(BTreeMap<String, Entry>);

/// The work tree's status now; `None` (after saying why) outside a git work tree, where
/// there is nothing to compare.
pub fn snapshot() -> Result<Option<Snapshot>> {
    let inside = git()
        .args(["rev-parse", "--is-inside-work-tree"])
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|output| output.status.success() && output.stdout.trim_ascii() == b"true");
    if !inside {
        say("not a git work tree (or git is missing): the clean-tree check is skipped");
        return Ok(None);
    }
    let output = git()
        .args([
            "status",
            "--porcelain=v1",
            "-z",
            "--untracked-files=all",
            "--ignore-submodules=none",
        ])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("could not run `git status`: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "`git status --porcelain` failed ({})",
            output.status
        ));
    }
    let statuses = parse_porcelain(&String::from_utf8_lossy(&output.stdout));
    let target = target_prefix();
    let statuses: Vec<(String, String)> = statuses
        .into_iter()
        .filter(|(path, _)| {
            target
                .as_ref()
                .is_none_or(|t| !path.starts_with(t.as_str()))
        })
        .collect();
    let hashes = hashes(statuses.iter().map(|(path, _)| path.as_str()))?;
    Ok(Some(Snapshot(
        statuses
            .into_iter()
            .map(|(path, status)| {
                let hash = hashes.get(&path).cloned();
                (path, Entry { status, hash })
            })
            .collect(),
    )))
}

/// Fails, listing them, when a path's status or content differs between `before` and now.
pub fn check(before: &Snapshot) -> Result {
    let Some(after) = snapshot()? else {
        return Ok(());
    };
    let changed = differences(before, &after);
    if changed.is_empty() {
        say("the work tree is as the run found it");
        return Ok(());
    }
    let list: Vec<String> = changed.iter().map(|line| format!("  {line}")).collect();
    Err(format!(
        "the run changed {} path(s) outside the target directory; tests and tools must \
         write under target/ or a temporary directory (`git status` shows them):\n{}",
        changed.len(),
        list.join("\n")
    ))
}

/// `XY path` for every path whose status or content is not what it was, plus
/// `(was XY) path` for a path the run made clean or removed.
fn differences(before: &Snapshot, after: &Snapshot) -> Vec<String> {
    let mut lines = Vec::new();
    for (path, entry) in &after.0 {
        if before.0.get(path) != Some(entry) {
            lines.push(format!("{} {path}", entry.status));
        }
    }
    for (path, entry) in &before.0 {
        if !after.0.contains_key(path) {
            lines.push(format!("(was {}) {path}", entry.status));
        }
    }
    lines
}

/// `git status --porcelain=v1 -z` → (path, status). A rename or copy names its new path
/// first and its old one in the next field, which is skipped.
fn parse_porcelain(out: &str) -> Vec<(String, String)> {
    let mut entries = Vec::new();
    let mut fields = out.split('\0').filter(|field| !field.is_empty());
    while let Some(field) = fields.next() {
        let (Some(status), Some(path)) = (field.get(..2), field.get(3..)) else {
            continue;
        };
        if status.contains(['R', 'C']) {
            fields.next();
        }
        entries.push((path.to_owned(), status.to_owned()));
    }
    entries
}

/// The git blob hash of each path that is a file now (`git hash-object --stdin-paths`).
fn hashes<'a>(paths: impl Iterator<Item = &'a str>) -> Result<BTreeMap<String, String>> {
    let root = workspace_root();
    let files: Vec<&str> = paths.filter(|path| root.join(path).is_file()).collect();
    if files.is_empty() {
        return Ok(BTreeMap::new());
    }
    let mut child = git()
        .args(["hash-object", "--stdin-paths"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("could not run `git hash-object`: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        let input: String = files.iter().map(|path| format!("{path}\n")).collect();
        stdin
            .write_all(input.as_bytes())
            .map_err(|e| format!("could not write to `git hash-object`: {e}"))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| format!("`git hash-object` failed: {e}"))?;
    if !output.status.success() {
        return Err(format!("`git hash-object` failed ({})", output.status));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let hashes: Vec<&str> = stdout.lines().collect();
    if hashes.len() != files.len() {
        return Err(format!(
            "`git hash-object` gave {} hashes for {} files",
            hashes.len(),
            files.len()
        ));
    }
    Ok(files
        .into_iter()
        .map(str::to_owned)
        .zip(hashes.into_iter().map(str::to_owned))
        .collect())
}

/// The target directory relative to the workspace root, with a trailing `/`, when it is
/// inside the workspace (its files never count, even if `.gitignore` forgot it).
fn target_prefix() -> Option<String> {
    let root = workspace_root();
    let target = target_dir();
    let relative: PathBuf = target.strip_prefix(&root).ok()?.to_path_buf();
    let relative = relative.to_str()?.trim_end_matches('/');
    (!relative.is_empty()).then(|| format!("{relative}/"))
}

/// `git`, run in the workspace root, paths printed relative to it, no pager, no prompts.
fn git() -> Command {
    let mut command = Command::new("git");
    command
        .current_dir(workspace_root())
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_OPTIONAL_LOCKS", "0")
        .args(["-c", "core.quotePath=false"]);
    command
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(entries: &[(&str, &str, Option<&str>)]) -> Snapshot {
        Snapshot(
            entries
                .iter()
                .map(|(path, status, hash)| {
                    (
                        (*path).to_owned(),
                        Entry {
                            status: (*status).to_owned(),
                            hash: hash.map(str::to_owned),
                        },
                    )
                })
                .collect(),
        )
    }

    #[test]
    fn porcelain_records_are_split_and_renames_skip_their_old_path() {
        let out = " M docs/img/a.png\0?? new file.txt\0R  moved.rs\0old.rs\0 D gone.md\0";
        assert_eq!(
            parse_porcelain(out),
            vec![
                ("docs/img/a.png".to_owned(), " M".to_owned()),
                ("new file.txt".to_owned(), "??".to_owned()),
                ("moved.rs".to_owned(), "R ".to_owned()),
                ("gone.md".to_owned(), " D".to_owned()),
            ]
        );
        assert!(parse_porcelain("").is_empty());
    }

    #[test]
    fn only_what_the_run_changed_counts() {
        // A developer's edit, left alone by the run, does not count.
        let before = snap(&[("src/mine.rs", " M", Some("aa"))]);
        let same = snap(&[("src/mine.rs", " M", Some("aa"))]);
        assert!(differences(&before, &same).is_empty());

        // A file the run rewrote, one it created, one it changed again, one it reverted.
        let before = snap(&[
            ("src/mine.rs", " M", Some("aa")),
            ("notes.txt", "??", Some("bb")),
        ]);
        let after = snap(&[
            ("src/mine.rs", " M", Some("cc")),
            ("docs/img/console-home.png", " M", Some("dd")),
            ("target2/out.txt", "??", Some("ee")),
        ]);
        assert_eq!(
            differences(&before, &after),
            vec![
                " M docs/img/console-home.png".to_owned(),
                " M src/mine.rs".to_owned(),
                "?? target2/out.txt".to_owned(),
                "(was ??) notes.txt".to_owned(),
            ]
        );
    }

    #[test]
    fn the_work_tree_can_be_read() {
        // This checkout is a git work tree in development and CI; elsewhere, skipped.
        let snapshot = snapshot();
        assert!(snapshot.is_ok(), "{snapshot:?}");
    }
}
