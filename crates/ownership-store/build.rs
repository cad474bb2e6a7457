//! Embeds `migrations/{libsql,postgres}/NNNN_name.sql` (inside this crate) into the crate,
//! in order.
//!
//! The folder is found from `CARGO_MANIFEST_DIR` read when this script RUNS, not when it
//! is compiled: two checkouts sharing one target directory share the compiled script, and
//! a path baked in at compile time would point at whichever checkout built it first. The
//! generated code names each file relative to `CARGO_MANIFEST_DIR` as the crate itself is
//! compiled, so the SQL always comes from the checkout being built.
//!
//! A build never embeds zero migrations silently: a backend folder that is missing,
//! unreadable, or holds no `.sql` file fails the build, as does a badly named file or a
//! version used twice.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::{env, fs};

const BACKENDS: [&str; 2] = ["libsql", "postgres"];

fn main() -> ExitCode {
    match generate() {
        Ok(()) => ExitCode::SUCCESS,
        Err(errors) => {
            for error in &errors {
                println!("cargo::error={error}");
            }
            eprintln!("ownership-store build script failed:");
            for error in &errors {
                eprintln!("  {error}");
            }
            ExitCode::FAILURE
        }
    }
}

fn generate() -> Result<(), Vec<String>> {
    let manifest_dir = env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .ok_or_else(|| vec!["CARGO_MANIFEST_DIR is not set (run through cargo)".to_owned()])?;
    let out_dir = env::var_os("OUT_DIR")
        .map(PathBuf::from)
        .ok_or_else(|| vec!["OUT_DIR is not set (run through cargo)".to_owned()])?;

    let mut out = String::new();
    let mut errors = Vec::new();
    for backend in BACKENDS {
        match backend_files(&manifest_dir, backend) {
            Ok(files) => write_backend(&mut out, backend, &files),
            Err(mut found) => errors.append(&mut found),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let dest = out_dir.join("migrations.rs");
    fs::write(&dest, out).map_err(|e| vec![format!("cannot write {}: {e}", dest.display())])
}

/// One migration file: its version, name and file name.
struct File {
    version: i64,
    name: String,
    file_name: String,
}

/// The `.sql` files of one backend, sorted by version, or every reason they cannot be.
fn backend_files(manifest_dir: &Path, backend: &str) -> Result<Vec<File>, Vec<String>> {
    let dir = manifest_dir.join("migrations").join(backend);
    // Also reruns when a file is added to or removed from the folder.
    println!("cargo::rerun-if-changed={}", dir.display());
    let entries = fs::read_dir(&dir).map_err(|e| {
        vec![format!(
            "cannot read the {backend} migrations folder {}: {e}",
            dir.display()
        )]
    })?;
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for entry in entries {
        let path = match entry {
            Ok(entry) => entry.path(),
            Err(e) => {
                errors.push(format!("cannot list {}: {e}", dir.display()));
                continue;
            }
        };
        if path.extension().is_none_or(|ext| ext != "sql") {
            continue;
        }
        println!("cargo::rerun-if-changed={}", path.display());
        match parse_file_name(&path) {
            Ok(file) => files.push(file),
            Err(e) => errors.push(e),
        }
        if let Err(e) = fs::read_to_string(&path) {
            errors.push(format!("cannot read {} as UTF-8 text: {e}", path.display()));
        }
    }
    if files.is_empty() && errors.is_empty() {
        errors.push(format!(
            "no `.sql` file in {}: a build must embed the {backend} migrations",
            dir.display()
        ));
    }
    files.sort_by_key(|f| f.version);
    for pair in files.windows(2) {
        if let [a, b] = pair
            && a.version == b.version
        {
            errors.push(format!(
                "{backend} migrations `{}` and `{}` share version {}",
                a.file_name, b.file_name, a.version
            ));
        }
    }
    if errors.is_empty() {
        Ok(files)
    } else {
        Err(errors)
    }
}

/// `0003_audit.sql` → version 3, name `audit`.
fn parse_file_name(path: &Path) -> Result<File, String> {
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| format!("migration file name is not UTF-8: {}", path.display()))?;
    let stem = file_name.strip_suffix(".sql").unwrap_or(file_name);
    let (number, name) = stem.split_once('_').unwrap_or((stem, ""));
    let version = number
        .parse::<i64>()
        .ok()
        .filter(|v| *v > 0 && number.bytes().all(|b| b.is_ascii_digit()));
    match version {
        Some(version) if !name.is_empty() => Ok(File {
            version,
            name: name.to_owned(),
            file_name: file_name.to_owned(),
        }),
        _ => Err(format!(
            "migration file name must be NNNN_name.sql (a positive number, `_`, a name): {}",
            path.display()
        )),
    }
}

fn write_backend(out: &mut String, backend: &str, files: &[File]) {
    let _ = writeln!(out, "/// The {backend} migrations, in order.");
    let _ = writeln!(
        out,
        "pub const {}: &[Migration] = &[",
        backend.to_uppercase()
    );
    for file in files {
        let relative = format!("/migrations/{backend}/{}", file.file_name);
        let _ = writeln!(
            out,
            "    Migration {{ version: {}, name: {:?}, sql: include_str!(concat!(env!(\"CARGO_MANIFEST_DIR\"), {relative:?})) }},",
            file.version, file.name
        );
    }
    out.push_str("];\n");
}
