//! The migrations of both backends, embedded at build time from this crate's
//! `migrations/{libsql,postgres}/NNNN_name.sql` (see `build.rs`), and the
//! rules every runner applies: in order, each in its own transaction, recorded with a
//! checksum, refused when an applied file has changed.

use sha2::{Digest, Sha256};

/// One numbered migration file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    /// Its number (`0003_...` is 3).
    pub version: i64,
    /// The part of the file name after the number.
    pub name: &'static str,
    /// The SQL.
    pub sql: &'static str,
}

impl Migration {
    /// SHA-256 of the file, in hex: what the migrations table records.
    pub fn checksum(&self) -> String {
        hex::encode(Sha256::digest(self.sql.as_bytes()))
    }
}

include!(concat!(env!("OUT_DIR"), "/migrations.rs"));

/// A row of the migrations table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedMigration {
    /// The version applied.
    pub version: i64,
    /// The checksum recorded when it was applied.
    pub checksum: String,
}

/// What a runner must still apply, given what the store has recorded. Refuses when an
/// applied file changed, when the store knows a version this build lacks (it was
/// migrated by a newer build), or when `target` is past the last file.
pub fn plan<'a>(
    all: &'a [Migration],
    applied: &[AppliedMigration],
    target: Option<i64>,
) -> Result<Vec<&'a Migration>, MigrationError> {
    for a in applied {
        match all.iter().find(|m| m.version == a.version) {
            None => return Err(MigrationError::Unknown { version: a.version }),
            Some(m) if m.checksum() != a.checksum => {
                return Err(MigrationError::Changed {
                    version: m.version,
                    name: m.name,
                });
            }
            Some(_) => {}
        }
    }
    let head = all.last().map_or(0, |m| m.version);
    let target = target.unwrap_or(head);
    if target > head {
        return Err(MigrationError::Unknown { version: target });
    }
    Ok(all
        .iter()
        .filter(|m| m.version <= target && !applied.iter().any(|a| a.version == m.version))
        .collect())
}

/// Why migrations cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MigrationError {
    /// An applied migration's file is not what was applied.
    #[error(
        "migration {version:04} `{name}` was changed after it was applied; restore the file and add a new migration instead"
    )]
    Changed {
        /// Its version.
        version: i64,
        /// Its name.
        name: &'static str,
    },
    /// The store records a version this build does not have.
    #[error(
        "the store has migration {version:04}, which this build does not know; run a newer build"
    )]
    Unknown {
        /// The version.
        version: i64,
    },
    /// The store needs migrations and the caller said not to run them.
    #[error(
        "the store needs {pending} migration(s); run `ownership migrate` or start without `--no-migrate`"
    )]
    Pending {
        /// How many are pending.
        pending: usize,
    },
    /// A migration failed; its transaction was rolled back.
    #[error("migration {version:04} `{name}` failed: {reason}")]
    Failed {
        /// Its version.
        version: i64,
        /// Its name.
        name: &'static str,
        /// The database's message (for the operator, never for API clients).
        reason: String,
    },
    /// The store could not be reached.
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: &[Migration] = &[
        Migration {
            version: 1,
            name: "a",
            sql: "create table a(x int);",
        },
        Migration {
            version: 2,
            name: "b",
            sql: "create table b(x int);",
        },
    ];

    #[test]
    fn plans_what_is_missing_in_order() {
        let p = plan(ALL, &[], None).unwrap();
        assert_eq!(p.iter().map(|m| m.version).collect::<Vec<_>>(), vec![1, 2]);
        let applied = [AppliedMigration {
            version: 1,
            checksum: ALL[0].checksum(),
        }];
        assert_eq!(plan(ALL, &applied, None).unwrap().len(), 1);
        assert_eq!(plan(ALL, &[], Some(1)).unwrap().len(), 1);
    }

    #[test]
    fn refuses_a_changed_file() {
        let applied = [AppliedMigration {
            version: 1,
            checksum: "00".into(),
        }];
        assert!(matches!(
            plan(ALL, &applied, None),
            Err(MigrationError::Changed { version: 1, .. })
        ));
    }

    #[test]
    fn refuses_an_unknown_version() {
        let applied = [AppliedMigration {
            version: 9,
            checksum: "00".into(),
        }];
        assert!(matches!(
            plan(ALL, &applied, None),
            Err(MigrationError::Unknown { version: 9 })
        ));
    }

    /// The `.sql` files of one backend as they are on disk now, read at test time:
    /// (version, name, SQL), sorted by version.
    fn on_disk(backend: &str) -> Vec<(i64, String, String)> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(backend);
        let mut files: Vec<(i64, String, String)> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "sql"))
            .map(|path| {
                let stem = path.file_stem().unwrap().to_str().unwrap().to_owned();
                let (number, name) = stem.split_once('_').unwrap();
                let sql = std::fs::read_to_string(&path).unwrap();
                (number.parse().unwrap(), name.to_owned(), sql)
            })
            .collect();
        files.sort_by_key(|(version, _, _)| *version);
        files
    }

    #[test]
    fn embedded_migrations_are_exactly_the_files_on_disk() {
        for (backend, embedded) in [("libsql", LIBSQL), ("postgres", POSTGRES)] {
            let disk = on_disk(backend);
            assert!(!disk.is_empty(), "no {backend} migration files on disk");
            let embedded: Vec<(i64, String, String)> = embedded
                .iter()
                .map(|m| (m.version, m.name.to_owned(), m.sql.to_owned()))
                .collect();
            let versions = |list: &[(i64, String, String)]| {
                list.iter()
                    .map(|(v, n, _)| format!("{v:04}_{n}"))
                    .collect::<Vec<_>>()
            };
            assert_eq!(
                versions(&embedded),
                versions(&disk),
                "{backend}: the embedded migrations are not the files on disk"
            );
            for (e, d) in embedded.iter().zip(&disk) {
                assert!(
                    e.2 == d.2,
                    "{backend}: the embedded SQL of {:04}_{} differs from the file",
                    d.0,
                    d.1
                );
            }
        }
    }

    #[test]
    fn embedded_migrations_are_numbered_in_order_and_paired() {
        for set in [LIBSQL, POSTGRES] {
            for (i, m) in set.iter().enumerate() {
                assert_eq!(m.version, i as i64 + 1, "gap before {}", m.name);
            }
        }
        let names = |s: &[Migration]| s.iter().map(|m| (m.version, m.name)).collect::<Vec<_>>();
        assert_eq!(
            names(LIBSQL),
            names(POSTGRES),
            "each change needs a file per backend"
        );
    }
}
