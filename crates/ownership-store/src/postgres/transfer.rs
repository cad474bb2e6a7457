//! The PostgreSQL side of [`crate::transfer`]: a snapshot read in one `REPEATABLE READ
//! READ ONLY` transaction, and an import in one transaction that first locks the audit
//! head (as every mutation does), so no writer can interleave with it. The rows are read
//! and written by [`crate::transfer::rows`].

use sqlx::{Postgres, Transaction};

use super::PgStore;
use super::support::{Pg, query};
use crate::transfer::rows::{self, Incoming};
use crate::transfer::{EventSender, Summary, Table, TransferError};

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

    /// Reads one snapshot of the store into `tx` (see [`crate::transfer`]), in a
    /// repeatable-read, read-only transaction.
    pub(crate) async fn export(&self, tx: &EventSender) -> Result<(), TransferError> {
        let snapshot = ["SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"];
        let t = self.transfer_tx(&snapshot).await?;
        rows::export(&mut Pg::Tx(t), "postgres", tx).await
    }

    /// The tables among `tables` that hold rows (counted on the pool).
    pub(crate) async fn occupied(
        &self,
        tables: Vec<&'static Table>,
    ) -> Result<Vec<(&'static str, u64)>, TransferError> {
        rows::occupied(&mut Pg::Pool(self.pool.clone()), &tables).await
    }

    /// Writes a stream in one transaction (see [`crate::transfer::Endpoint::import`]).
    pub(crate) async fn import(&self, mut incoming: Incoming) -> Result<Summary, TransferError> {
        let mut d = Pg::Tx(self.transfer_tx(&[]).await?);
        let summary = rows::import(&mut d, &mut incoming).await?;
        if let Pg::Tx(t) = d {
            t.commit()
                .await
                .map_err(|e| failed("committing the import", &e))?;
        }
        Ok(summary)
    }
}
