//! Opening the store a database URL names: a libSQL file (the default) or PostgreSQL, with
//! the cache in front ([`open`]). What the `ownership` binary and a downstream app that
//! runs its own server both need: the URL grammar, migrations, the invalidation listener
//! of each backend, and the write-behind flush.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::cache::{CacheConfig, Cached};
use crate::libsql::LibsqlStore;
use crate::postgres::{PgOptions, PgStore};
use crate::{MigrationError, Migrator};
use ownership_core::ports::{Clock, Store};
use ownership_core::quotas::Limits;

/// Where the data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A libSQL file.
    LibsqlFile(PathBuf),
    /// A PostgreSQL server.
    Postgres(String),
}

impl Location {
    /// Reads a database URL: `postgres://…`/`postgresql://…` selects PostgreSQL;
    /// `libsql:PATH`, `file:PATH`, `sqlite:PATH` or a bare path selects a libSQL file.
    pub fn parse(url: &str) -> Result<Self, String> {
        let url = url.trim();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres(url.to_owned()));
        }
        let path = [
            "libsql://",
            "libsql:",
            "file://",
            "file:",
            "sqlite://",
            "sqlite:",
        ]
        .iter()
        .find_map(|p| url.strip_prefix(p))
        .unwrap_or(url);
        if path.is_empty() {
            return Err("the database URL names no file".into());
        }
        if path.contains("://") {
            return Err(format!(
                "unsupported database URL scheme in `{}`",
                redact(url)
            ));
        }
        Ok(Self::LibsqlFile(PathBuf::from(path)))
    }

    /// A printable form with any password removed.
    pub fn display(&self) -> String {
        match self {
            Self::LibsqlFile(p) => format!("libSQL file {}", p.display()),
            Self::Postgres(url) => format!("PostgreSQL {}", redact(url)),
        }
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((creds, host)) => match creds.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// The running cache-invalidation listener (PostgreSQL); it stops when this is dropped.
#[derive(Debug, Default)]
pub struct InvalidationListener {
    healthy: Option<Arc<AtomicBool>>,
    _stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl InvalidationListener {
    /// `true` while the listener is connected; `None` when there is no listener (libSQL).
    pub fn healthy(&self) -> Option<Arc<AtomicBool>> {
        self.healthy.clone()
    }
}

/// How a PostgreSQL store connects; ignored on libSQL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PgSettings {
    /// The pool size and the pooler in front of PostgreSQL.
    pub options: PgOptions,
    /// A direct URL for the invalidation listener; `None`: the store's own URL.
    pub listen_url: Option<String>,
}

/// An open store: the raw backend (for migrations and the operator's direct work) and the
/// cached view the server uses.
#[derive(Clone)]
pub enum Opened {
    /// libSQL.
    Libsql(Arc<Cached<LibsqlStore>>),
    /// PostgreSQL.
    Postgres(Arc<Cached<PgStore>>),
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Libsql(_) => f.write_str("Opened(libsql)"),
            Self::Postgres(_) => f.write_str("Opened(postgres)"),
        }
    }
}

/// Opens the store `url` names (see [`Location::parse`]), with the cache in front, without
/// migrating it ([`Opened::ensure_migrated`]).
pub async fn open(
    url: &str,
    clock: Arc<dyn Clock>,
    cache: CacheConfig,
    pg: &PgSettings,
    limits: Limits,
) -> Result<Opened, String> {
    Opened::open(&Location::parse(url)?, clock, cache, pg, limits).await
}

impl Opened {
    /// Opens (without migrating), enforcing `limits` (the quotas and pairing budgets).
    pub async fn open(
        location: &Location,
        clock: Arc<dyn Clock>,
        cache: CacheConfig,
        pg: &PgSettings,
        limits: Limits,
    ) -> Result<Self, String> {
        match location {
            Location::LibsqlFile(path) => {
                let store = LibsqlStore::open_file(path, Arc::clone(&clock))
                    .await
                    .map_err(|e| format!("cannot open {}: {e}", path.display()))?
                    .with_limits(limits);
                Ok(Self::Libsql(Arc::new(Cached::new(store, clock, cache))))
            }
            Location::Postgres(url) => {
                let store = PgStore::connect_with(url, Arc::clone(&clock), pg.options)
                    .await
                    .map_err(|e| format!("cannot connect to {}: {e}", redact(url)))?
                    .with_limits(limits);
                Ok(Self::Postgres(Arc::new(Cached::new(store, clock, cache))))
            }
        }
    }

    /// Keys the audit chain with `keys` (derived from the master keys): every event
    /// appended from now on is linked with an HMAC under the current chain key. Set once.
    pub fn set_chain_keys(&self, keys: ownership_core::audit::ChainKeys) {
        match self {
            Self::Libsql(s) => s.inner().set_chain_keys(keys),
            Self::Postgres(s) => s.inner().set_chain_keys(keys),
        };
    }

    /// The cached store, as every port.
    pub fn store(&self) -> Arc<dyn Store> {
        match self {
            Self::Libsql(s) => Arc::clone(s) as Arc<dyn Store>,
            Self::Postgres(s) => Arc::clone(s) as Arc<dyn Store>,
        }
    }

    /// The migrations of the backend.
    pub fn migrator(&self) -> &dyn Migrator {
        match self {
            Self::Libsql(s) => s.inner(),
            Self::Postgres(s) => s.inner(),
        }
    }

    /// Applies pending migrations, or with `apply == false` refuses to go on when any are
    /// pending.
    pub async fn ensure_migrated(&self, apply: bool) -> Result<usize, MigrationError> {
        if apply {
            self.migrator().migrate_to(None).await
        } else {
            match self.migrator().pending_migrations().await? {
                0 => Ok(0),
                pending => Err(MigrationError::Pending { pending }),
            }
        }
    }

    /// On libSQL, fails unless the database file can be written (a server on a read-only
    /// file would start and then fail every write); PostgreSQL reports its own errors.
    pub async fn check_writable(&self) -> ownership_core::Result<()> {
        match self {
            Self::Libsql(s) => s.inner().check_writable().await,
            Self::Postgres(_) => Ok(()),
        }
    }

    /// Starts applying the cache invalidations of changes other processes commit, until
    /// the returned guard is dropped: on PostgreSQL their notifications
    /// ([`crate::postgres::listen_invalidations`]), on libSQL what the CLI
    /// commits to the same file, checked every `cache.external_poll`
    /// ([`crate::libsql::watch_external_changes`]).
    pub fn listen_for_invalidations(
        &self,
        location: &Location,
        cache: &CacheConfig,
        pg: &PgSettings,
    ) -> InvalidationListener {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let stopped = async move {
            let _ = stopped.await;
        };
        match (self, location) {
            (Self::Postgres(cached), Location::Postgres(url)) => {
                let healthy = Arc::new(AtomicBool::new(false));
                tokio::spawn(crate::postgres::listen_invalidations(
                    pg.listen_url.clone().unwrap_or_else(|| url.clone()),
                    Cached::clone(cached),
                    Arc::clone(&healthy),
                    stopped,
                ));
                InvalidationListener {
                    healthy: Some(healthy),
                    _stop: Some(stop),
                }
            }
            (Self::Libsql(cached), _) => {
                tokio::spawn(crate::libsql::watch_external_changes(
                    Cached::clone(cached),
                    cache.external_poll,
                    stopped,
                ));
                InvalidationListener {
                    healthy: None,
                    _stop: Some(stop),
                }
            }
            (Self::Postgres(_), Location::LibsqlFile(_)) => InvalidationListener::default(),
        }
    }

    /// Writes what the cache holds back (`last_used_at`); returns how many tokens' times
    /// were written.
    pub async fn flush(&self) -> ownership_core::Result<usize> {
        match self {
            Self::Libsql(s) => s.flush().await,
            Self::Postgres(s) => s.flush().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_select_backends() {
        assert_eq!(
            Location::parse("ownership.db").unwrap(),
            Location::LibsqlFile("ownership.db".into())
        );
        assert_eq!(
            Location::parse("file:./x.db").unwrap(),
            Location::LibsqlFile("./x.db".into())
        );
        assert!(matches!(
            Location::parse("postgres://u:p@h/db").unwrap(),
            Location::Postgres(_)
        ));
        assert!(Location::parse("mysql://h/db").is_err());
        assert!(Location::parse("").is_err());
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert!(
            !Location::parse("postgres://u:secret@h/db")
                .unwrap()
                .display()
                .contains("secret")
        );
    }
}
