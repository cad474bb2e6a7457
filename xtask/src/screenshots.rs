//! `cargo xtask screenshots`: refreshes the console screenshots in `docs/img/` on purpose.
//!
//! The browser test that takes them (`narrow_screens_and_screenshots`, libSQL run, in
//! `tests/tests/console_browser.rs`) writes into `<target>/screenshots/` in an ordinary
//! test run, so tests never rewrite tracked files. Here it runs alone with
//! `OWNERSHIP_SCREENSHOT_DIR` pointing at a fresh scratch folder under the target
//! directory; only when it passes are the pictures copied into `docs/img/`.

use std::fs;
use std::path::Path;

use crate::cmd::{Result, cargo, relative, run, say, target_dir, workspace_root};
use crate::testing;

/// The variable the browser test reads its screenshot folder from.
pub const DIR_VAR: &str = "OWNERSHIP_SCREENSHOT_DIR";

/// The test that takes the screenshots (its libSQL run; the PostgreSQL run takes none).
const TEST: &str = "narrow_screens_and_screenshots::libsql";

pub fn run_all() -> Result {
    let browser = testing::ensure_browser()?;
    let scratch = target_dir().join("screenshots-for-docs");
    if scratch.exists() {
        fs::remove_dir_all(&scratch)
            .map_err(|e| format!("could not clear {}: {e}", scratch.display()))?;
    }
    fs::create_dir_all(&scratch)
        .map_err(|e| format!("could not create {}: {e}", scratch.display()))?;

    let mut command = cargo();
    command
        .args([
            "test",
            "-p",
            "ownership-tests",
            "--test",
            "console_browser",
            "--",
            "--exact",
            TEST,
        ])
        .env(DIR_VAR, &scratch);
    for (var, path) in &browser {
        command.env(var, path);
    }
    run(&mut command)?;

    let pictures = pngs(&scratch)?;
    if pictures.is_empty() {
        return Err(format!(
            "`{TEST}` passed but wrote no screenshot into {} (does it still read {DIR_VAR}?)",
            scratch.display()
        ));
    }
    let docs_img = workspace_root().join("docs/img");
    fs::create_dir_all(&docs_img)
        .map_err(|e| format!("could not create {}: {e}", docs_img.display()))?;
    for name in &pictures {
        let to = docs_img.join(name);
        fs::copy(scratch.join(name), &to)
            .map_err(|e| format!("could not copy {name} to {}: {e}", to.display()))?;
        say(&format!("wrote {}", relative(&to).display()));
    }
    say(&format!(
        "{} screenshots refreshed; review them (git diff --stat docs/img) before committing",
        pictures.len()
    ));
    Ok(())
}

/// The `.png` file names in `dir`, sorted.
fn pngs(dir: &Path) -> Result<Vec<String>> {
    let entries =
        fs::read_dir(dir).map_err(|e| format!("could not read {}: {e}", dir.display()))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("could not read {}: {e}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".png") {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}
