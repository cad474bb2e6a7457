//! The server's hold on a libSQL file; opening stores is [`ownership_store::open`].

use std::path::{Path, PathBuf};

pub use ownership_store::open::{InvalidationListener, Location, Opened, PgSettings, redact};

/// The sidecar lock file of a libSQL database: `<db>.lock`.
pub fn libsql_lock_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Takes the exclusive advisory lock that makes one `ownership serve` the only server on a
/// libSQL file; it is held until the returned file is dropped. A second server is refused
/// with a message that says why. (Operator commands do not take it: they may run while the
/// server does.)
pub fn lock_libsql_for_serving(db: &Path) -> Result<std::fs::File, String> {
    let lock_path = libsql_lock_path(db);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&lock_path)
        .map_err(|e| format!("cannot open the lock file {}: {e}", lock_path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(format!(
            "another `ownership serve` is already using {}; libSQL is single-process: use \
             PostgreSQL to run several",
            db.display()
        )),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(format!("cannot lock {}: {e}", lock_path.display()))
        }
    }
}
