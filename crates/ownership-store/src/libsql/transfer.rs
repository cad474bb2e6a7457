//! The libSQL side of [`crate::transfer`]: a snapshot read in one read transaction on
//! this store's own connection (WAL mode gives it a stable view while a server keeps
//! writing through another), and an import in one `BEGIN IMMEDIATE` transaction. The rows
//! are read and written by [`crate::transfer::rows`].

use super::LibsqlStore;
use super::conn::{Lite, db_err, rollback, transaction};
use crate::transfer::rows::{self, Incoming};
use crate::transfer::{EventSender, Summary, Table, TransferError};

impl LibsqlStore {
    /// Reads one snapshot of the store into `tx` (see [`crate::transfer`]), in a read
    /// transaction on the database thread.
    pub(crate) async fn export(&self, tx: &EventSender) -> Result<(), TransferError> {
        let tx = tx.clone();
        self.worker
            .run(move |conn| async move {
                conn.execute("BEGIN DEFERRED", ()).await.map_err(db_err)?;
                let result = rows::export(&mut Lite::new(conn.clone()), "libsql", &tx).await;
                rollback(&conn).await;
                Ok(result)
            })
            .await?
    }

    /// The tables among `tables` that hold rows (counted on the database thread).
    pub(crate) async fn occupied(
        &self,
        tables: Vec<&'static Table>,
    ) -> Result<Vec<(&'static str, u64)>, TransferError> {
        self.worker
            .run(move |conn| async move { Ok(rows::occupied(&mut Lite::new(conn), &tables).await) })
            .await?
    }

    /// Writes a stream in one `BEGIN IMMEDIATE` transaction on the database thread.
    pub(crate) async fn import(&self, mut incoming: Incoming) -> Result<Summary, TransferError> {
        self.worker
            .run(move |conn| async move {
                let mut failure = None;
                let body = async |c: &::libsql::Connection| {
                    rows::import(&mut Lite::new(c.clone()), &mut incoming)
                        .await
                        .map_err(|e| {
                            failure = Some(e);
                            ownership_core::Error::Unavailable("import".into())
                        })
                };
                let done = transaction(&conn, "BEGIN IMMEDIATE", body).await;
                Ok(match failure {
                    Some(e) => Err(e),
                    None => done.map_err(TransferError::from),
                })
            })
            .await?
    }
}
