//! The PostgreSQL side of [`crate::transfer`]: a snapshot read in one `REPEATABLE READ
//! READ ONLY` transaction, and an import in one transaction that first locks the audit
//! head (as every mutation does), so no writer can interleave with it. The rows are read
//! and written by [`crate::transfer::rows`].

use sqlx::{Postgres, Transaction};

use super::PgStore;
use super::support::{Pg, query};
use crate::transfer::rows;
use crate::transfer::{
    EventSender, Events, Progress, Snapshot, Summary, Table, TransferError, send,
};

/// Statement and idle limits are lifted for a transfer's transaction: one page never
/// takes long, but the other side (a slow disk, a migration of the target) may keep
/// this transaction waiting between statements.
const NO_LIMITS: [&str; 2] = [
    "SET LOCAL statement_timeout = 0",
    "SET LOCAL idle_in_transaction_session_timeout = 0",
];

fn failed(what: &str, e: &sqlx::Error) -> TransferError {
    tracing::error!(error = %e, what, "postgres transfer statement failed");
    TransferError::new(format!("PostgreSQL: {what} failed"))
}

impl PgStore {
    /// A transaction without the session limits, after `setup`.
    async fn transfer_tx(
        &self,
        setup: &[&'static str],
    ) -> Result<Transaction<'static, Postgres>, TransferError> {
        let mut t = self
            .pool
            .begin()
            .await
            .map_err(|e| failed("starting", &e))?;
        for sql in setup.iter().chain(&NO_LIMITS) {
            query(*sql)
                .execute(&mut *t)
                .await
                .map_err(|e| failed("setting up the transaction", &e))?;
        }
        Ok(t)
    }

    /// Starts reading one snapshot of the store into `tx` (see [`crate::transfer`]).
    pub(crate) fn export(&self, tx: EventSender) {
        let store = self.clone();
        tokio::spawn(async move {
            let snapshot = ["SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"];
            let result = match store.transfer_tx(&snapshot).await {
                Ok(t) => rows::export(&mut Pg::Tx(t), "postgres", &tx).await,
                Err(e) => Err(e),
            };
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
        rows::occupied(&mut Pg::Pool(self.pool.clone()), &tables).await
    }

    /// Writes a stream in one transaction (see [`crate::transfer::Endpoint::import`]).
    pub(crate) async fn import(
        &self,
        snapshot: Snapshot,
        mut events: Events,
        progress: Progress,
    ) -> Result<Summary, TransferError> {
        let mut d = Pg::Tx(self.transfer_tx(&[]).await?);
        rows::import(&mut d, &snapshot, &mut events, &progress).await?;
        if let Pg::Tx(t) = d {
            t.commit()
                .await
                .map_err(|e| failed("committing the import", &e))?;
        }
        Ok(Summary::of(&snapshot))
    }
}
