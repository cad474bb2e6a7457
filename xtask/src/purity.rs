//! The layering checks: `ownership-core` depends on no IO crate, and no crate has a module
//! import cycle ([`crate::cycles`]). Run in `cargo xtask ci` and, through the tests, in
//! `cargo test`.

use crate::cmd::{Result, cargo, say, stdout_of};

/// The core crate whose dependency tree is checked.
const CORE: &str = "ownership-core";

/// Crates that mean IO or an async runtime. A crate is forbidden if its name is one of
/// these or starts with one followed by `-` (`sqlx-core`, `tokio-util`, `hyper-util`).
const FORBIDDEN: [&str; 9] = [
    "tokio", "sqlx", "libsql", "axum", "moka", "reqwest", "hyper", "tower", "mio",
];

pub fn run() -> Result {
    let tree = stdout_of(cargo().args([
        "tree",
        "--package",
        CORE,
        "--edges",
        "normal",
        "--prefix",
        "none",
        "--all-features",
    ]))?;
    check(&tree)?;
    say(&format!(
        "{CORE} depends on no IO crate ({} crates checked)",
        tree.lines().filter(|line| !line.trim().is_empty()).count()
    ));
    crate::cycles::run()
}

/// Checks a `cargo tree --prefix none` listing (one `name vX.Y.Z …` per line).
pub fn check(tree: &str) -> Result {
    let mut saw_core = false;
    let mut offenders: Vec<&str> = Vec::new();
    for line in tree.lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        saw_core |= name == CORE;
        if is_forbidden(name) && !offenders.contains(&line.trim()) {
            offenders.push(line.trim());
        }
    }
    if !saw_core {
        return Err(format!(
            "the dependency listing does not mention `{CORE}`; nothing was checked"
        ));
    }
    if offenders.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "`{CORE}` must do no IO, but its normal dependencies include: {}. \
             Move the code that needs them to an adapter crate \
             (see `cargo tree -p {CORE} -e normal -i <crate>`)",
            offenders.join(", ")
        ))
    }
}

fn is_forbidden(name: &str) -> bool {
    FORBIDDEN.iter().any(|forbidden| {
        name.strip_prefix(forbidden)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('-'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PURE: &str = "\
ownership-core v0.1.0 (/work/ownership/crates/ownership-core)
serde v1.0.228
serde_derive v1.0.228 (proc-macro)
proc-macro2 v1.0.103
sha2 v0.11.0
thiserror v2.0.17
serde v1.0.228 (*)
";

    #[test]
    fn a_tree_without_io_crates_passes() {
        assert_eq!(check(PURE), Ok(()));
    }

    #[test]
    fn a_tree_with_tokio_fails_and_names_it() {
        let tree = format!("{PURE}tokio v1.0.0\n");
        let error = check(&tree).unwrap_err();
        assert!(error.contains("tokio v1.0.0"), "{error}");
    }

    #[test]
    fn a_tree_with_a_member_of_a_forbidden_family_fails() {
        let tree = format!("{PURE}sqlx-core v0.9.0\n");
        assert!(check(&tree).is_err());
    }

    #[test]
    fn names_that_merely_start_alike_pass() {
        // `mio` is forbidden, `miow`/`minimal-lexical` are not; `towers` is not `tower`.
        let tree = format!("{PURE}miow v0.6.0\nminimal-lexical v0.2.1\ntowers v1.0.0\n");
        assert_eq!(check(&tree), Ok(()));
    }

    #[test]
    fn an_empty_listing_fails_rather_than_passing_vacuously() {
        assert!(check("").is_err());
    }

    /// The real check against the real workspace, so `cargo test` catches what ci does.
    #[test]
    fn ownership_core_depends_on_no_io_crate() {
        run().unwrap();
    }
}
