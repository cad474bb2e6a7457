//! `cargo xtask migrate` and `cargo xtask new-migration`.
//!
//! Migrations are numbered SQL files, one per change and per backend, inside the store
//! crate (so `cargo package` carries them and its build script embeds them):
//! `crates/ownership-store/migrations/libsql/0002_add_webhooks.sql` beside
//! `crates/ownership-store/migrations/postgres/0002_add_webhooks.sql`.
//! Both directories share one sequence so a change has the same number on each backend.

use std::env;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;

use crate::cmd::{Result, cargo, run, say, workspace_root};

/// The migrations folder, relative to the workspace root.
pub const MIGRATIONS_DIR: &str = "crates/ownership-store/migrations";

/// Backend directory under [`MIGRATIONS_DIR`] and the dialect named in the file header.
const BACKENDS: [(&str, &str); 2] = [
    ("libsql", "libSQL (SQLite dialect)"),
    ("postgres", "PostgreSQL"),
];

/// `cargo xtask migrate [--database-url URL]`: applies migrations through the real binary,
/// so there is one migration runner, not two.
pub fn migrate(args: &[String]) -> Result {
    let url = match parse_database_url(args)? {
        Some(url) => url,
        None => env::var("DATABASE_URL").map_err(|_| {
            "give the database as `--database-url URL` or set DATABASE_URL".to_owned()
        })?,
    };
    run(cargo().args([
        "run",
        "--quiet",
        "--package",
        "ownership-cli",
        "--",
        "migrate",
        "--database-url",
        &url,
    ]))
    .map_err(|error| format!("migrating with `ownership migrate` failed: {error}"))
}

fn parse_database_url(args: &[String]) -> Result<Option<String>> {
    match args {
        [] => Ok(None),
        [flag, url] if flag == "--database-url" => Ok(Some(url.clone())),
        [flag] if flag.starts_with("--database-url=") => {
            Ok(flag.strip_prefix("--database-url=").map(str::to_owned))
        }
        _ => Err(format!(
            "usage: cargo xtask migrate [--database-url URL], got `{}`",
            args.join(" ")
        )),
    }
}

/// `cargo xtask new-migration NAME`: the next number, one empty file per backend.
pub fn new_migration(args: &[String]) -> Result {
    let [name] = args else {
        return Err("usage: cargo xtask new-migration NAME   (NAME is [a-z0-9_]+)".to_owned());
    };
    validate_name(name)?;
    let root = workspace_root().join(MIGRATIONS_DIR);

    let mut existing = Vec::new();
    for (backend, _) in BACKENDS {
        existing.extend(file_names(&root.join(backend))?);
    }
    let number = next_number(existing.iter().map(String::as_str))?;
    let file_name = format!("{number:04}_{name}.sql");

    for (backend, dialect) in BACKENDS {
        let dir = root.join(backend);
        fs::create_dir_all(&dir)
            .map_err(|error| format!("cannot create {}: {error}", dir.display()))?;
        let path = dir.join(&file_name);
        let others: Vec<String> = BACKENDS
            .iter()
            .filter(|(other, _)| *other != backend)
            .map(|(other, _)| format!("{MIGRATIONS_DIR}/{other}/{file_name}"))
            .collect();
        let header = format!(
            "-- {number:04}_{name} ({dialect})\n\
             --\n\
             -- Applied once, in number order. Never edit a migration that has been released;\n\
             -- add a new one. Keep the same change in step with\n\
             -- {}.\n\n",
            others.join(", ")
        );
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|error| format!("cannot create {}: {error}", path.display()))?;
        file.write_all(header.as_bytes())
            .map_err(|error| format!("cannot write {}: {error}", path.display()))?;
        say(&format!("created {}", display_relative(&path)));
    }
    Ok(())
}

fn display_relative(path: &Path) -> String {
    let root = workspace_root();
    path.strip_prefix(&root)
        .unwrap_or(path)
        .display()
        .to_string()
}

fn file_names(dir: &Path) -> Result<Vec<String>> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let entries =
        fs::read_dir(dir).map_err(|error| format!("cannot read {}: {error}", dir.display()))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|error| format!("cannot read {}: {error}", dir.display()))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    Ok(names)
}

/// A migration name is `[a-z0-9_]+`: it becomes part of a file name on every platform.
pub fn validate_name(name: &str) -> Result {
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "migration name `{name}` must be non-empty and use only a-z, 0-9 and _"
        ))
    }
}

/// The number of a migration file name `NNNN_name.sql`; `None` for anything else.
pub fn migration_number(file_name: &str) -> Option<u32> {
    let stem = file_name.strip_suffix(".sql")?;
    let (digits, name) = stem.split_once('_')?;
    if digits.len() != 4 || !digits.bytes().all(|byte| byte.is_ascii_digit()) || name.is_empty() {
        return None;
    }
    digits.parse().ok()
}

/// One more than the highest number among `file_names` (1 when there is none).
pub fn next_number<'a>(file_names: impl IntoIterator<Item = &'a str>) -> Result<u32> {
    let highest = file_names
        .into_iter()
        .filter_map(migration_number)
        .max()
        .unwrap_or(0);
    match highest + 1 {
        next @ 1..=9999 => Ok(next),
        _ => Err("migration numbers are exhausted (9999)".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_lowercase_digits_and_underscores() {
        assert_eq!(validate_name("add_webhooks_2"), Ok(()));
        assert!(validate_name("").is_err());
        assert!(validate_name("AddWebhooks").is_err());
        assert!(validate_name("add-webhooks").is_err());
        assert!(validate_name("../escape").is_err());
    }

    #[test]
    fn numbers_come_from_well_formed_file_names_only() {
        assert_eq!(migration_number("0001_init.sql"), Some(1));
        assert_eq!(migration_number("0012_add_x.sql"), Some(12));
        assert_eq!(migration_number("001_short.sql"), None);
        assert_eq!(migration_number("0001_.sql"), None);
        assert_eq!(migration_number("0001_init.sql.bak"), None);
        assert_eq!(migration_number("README.md"), None);
    }

    #[test]
    fn the_next_number_follows_the_highest_in_either_directory() {
        assert_eq!(next_number([]), Ok(1));
        assert_eq!(
            next_number([
                "0001_init.sql",
                "0003_tokens.sql",
                "0002_x.sql",
                "notes.txt"
            ]),
            Ok(4)
        );
        assert!(next_number(["9999_last.sql"]).is_err());
    }

    #[test]
    fn the_database_url_is_a_flag_or_absent() {
        let args = |list: &[&str]| list.iter().map(|arg| (*arg).to_owned()).collect::<Vec<_>>();
        assert_eq!(parse_database_url(&args(&[])), Ok(None));
        assert_eq!(
            parse_database_url(&args(&["--database-url", "sqlite:x.db"])),
            Ok(Some("sqlite:x.db".to_owned()))
        );
        assert_eq!(
            parse_database_url(&args(&["--database-url=postgres://h/db"])),
            Ok(Some("postgres://h/db".to_owned()))
        );
        assert!(parse_database_url(&args(&["--url", "x"])).is_err());
    }
}
