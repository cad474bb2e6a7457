//! Embeds `migrations/{libsql,postgres}/NNNN_name.sql` into the crate, in order.

use std::fmt::Write as _;
use std::path::Path;
use std::{env, fs};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations");
    let mut out = String::new();
    for backend in ["libsql", "postgres"] {
        let dir = root.join(backend);
        println!("cargo:rerun-if-changed={}", dir.display());
        let mut files: Vec<_> = fs::read_dir(&dir)
            .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        files.retain(|p| p.extension().is_some_and(|e| e == "sql"));
        files.sort();
        let _ = writeln!(out, "/// The {backend} migrations, in order.");
        let _ = writeln!(
            out,
            "pub const {}: &[Migration] = &[",
            backend.to_uppercase()
        );
        for path in files {
            println!("cargo:rerun-if-changed={}", path.display());
            let stem = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default();
            let (num, name) = stem.split_once('_').unwrap_or((stem, ""));
            let Ok(version) = num.parse::<i64>() else {
                println!("cargo::error=migration file name must start with a number: {stem}");
                continue;
            };
            let _ = writeln!(
                out,
                "    Migration {{ version: {version}, name: {name:?}, sql: include_str!({:?}) }},",
                path.display().to_string()
            );
        }
        out.push_str("];\n");
    }
    let dest = Path::new(&env::var("OUT_DIR").unwrap_or_default()).join("migrations.rs");
    if let Err(e) = fs::write(&dest, out) {
        println!("cargo::error=cannot write {}: {e}", dest.display());
    }
}
