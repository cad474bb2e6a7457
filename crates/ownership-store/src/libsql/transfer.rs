//! The libSQL side of [`crate::transfer`]: a snapshot read in one read transaction on
//! this store's own connection (WAL mode gives it a stable view while a server keeps
//! writing through another), and an import in one `BEGIN IMMEDIATE` transaction. The rows
//! are read and written by [`crate::transfer::rows`].

use super::LibsqlStore;
use super::conn::{Lite, rollback, transaction};
use crate::transfer::rows;
use crate::transfer::{
    EventSender, Events, Progress, Snapshot, Summary, Table, TransferError, send,
};

impl LibsqlStore {
    /// Starts reading one snapshot of the store into `tx` (see [`crate::transfer`]).
    pub(crate) fn export(&self, tx: EventSender) {
        let worker = self.worker.clone();
        tokio::spawn(async move {
            let inner = tx.clone();
            let result = worker
                .run(move |conn| async move {
                    conn.execute("BEGIN DEFERRED", ())
                        .await
                        .map_err(super::conn::db_err)?;
                    let result = rows::export(&mut Lite(conn.clone()), "libsql", &inner).await;
                    rollback(&conn).await;
                    Ok(result)
                })
                .await
                .unwrap_or_else(|e| Err(e.into()));
            if let Err(e) = result {
                let _ = send(&tx, Err(e)).await;
            }
        });
    }

    /// The tables among `tables` that hold rows.
    pub(crate) async fn occupied(
        &self,
        tables: Vec<&'static Table>,
    ) -> Result<Vec<(&'static str, u64)>, TransferError> {
        self.worker
            .run(move |conn| async move { Ok(rows::occupied(&mut Lite(conn), &tables).await) })
            .await?
    }

    /// Writes a stream in one transaction (see [`crate::transfer::Endpoint::import`]).
    pub(crate) async fn import(
        &self,
        snapshot: Snapshot,
        mut events: Events,
        progress: Progress,
    ) -> Result<Summary, TransferError> {
        self.worker
            .run(move |conn| async move {
                let mut failure = None;
                let body = async |c: &::libsql::Connection| match rows::import(
                    &mut Lite(c.clone()),
                    &snapshot,
                    &mut events,
                    &progress,
                )
                .await
                {
                    Ok(()) => Ok(()),
                    Err(e) => {
                        failure = Some(e);
                        Err(ownership_core::Error::Unavailable("import".into()))
                    }
                };
                let done = transaction(&conn, "BEGIN IMMEDIATE", body).await;
                Ok(match (done, failure) {
                    (_, Some(e)) => Err(e),
                    (Err(e), None) => Err(TransferError::from(e)),
                    (Ok(()), None) => Ok(Summary::of(&snapshot)),
                })
            })
            .await?
    }
}
