//! [`AuditLog`]: reading the chain, and verifying it against the recorded head.

use async_trait::async_trait;
use ownership_core::audit::{AuditAction, AuditEvent, ChainHash};
use ownership_core::audit_log::{AuditRows, ChainRow};
use ownership_core::authz::Actor;
use ownership_core::{OwnerId, Result};
use sqlx::AssertSqlSafe;
use sqlx::postgres::PgRow;

use super::db::PgTx;
use super::support::query;
use super::support::{bytes_col, col, opt_u32_col, parsed, parsed_opt, unavailable};

fn event_from_row(row: &PgRow) -> Result<AuditEvent> {
    Ok(AuditEvent {
        seq: col(row, "seq")?,
        at: col(row, "at")?,
        actor: parsed(row, "actor", str::parse::<Actor>)?,
        owner: parsed_opt(row, "owner_id", OwnerId::parse)?,
        action: parsed(row, "action", str::parse::<AuditAction>)?,
        target: col(row, "target")?,
        details: col(row, "details")?,
        prev_hash: ChainHash::from_bytes(bytes_col::<32>(row, "prev_hash")?),
        hash: ChainHash::from_bytes(bytes_col::<32>(row, "hash")?),
        owner_uid: col(row, "owner_uid")?,
        key_version: opt_u32_col(row, "key_version")?,
    })
}

const EVENT_COLS: &str =
    "seq, at, actor, owner_id, action, target, details, prev_hash, hash, owner_uid, key_version";

/// The events of the account that holds `owner` now (by its immutable identity: an
/// earlier account under the same id is someone else).
const OWNER_IS: &str = "owner_uid = (SELECT uid FROM users WHERE id = $1)";

#[async_trait]
impl AuditRows for PgTx {
    async fn events_before(
        &mut self,
        owner: Option<&OwnerId>,
        before: i64,
        limit: i64,
    ) -> Result<Vec<AuditEvent>> {
        // Two statements, so each keeps a plan that uses its index.
        let rows = match owner {
            Some(owner) => query(AssertSqlSafe(format!(
                "SELECT {EVENT_COLS} FROM audit_events WHERE {OWNER_IS} AND seq < $2 ORDER BY seq DESC LIMIT $3"
            )))
            .bind(owner.as_str()),
            None => query(AssertSqlSafe(format!(
                "SELECT {EVENT_COLS} FROM audit_events WHERE seq < $1 ORDER BY seq DESC LIMIT $2"
            ))),
        }
        .bind(before)
        .bind(limit)
        .fetch_all(self.conn())
        .await
        .map_err(unavailable)?;
        rows.iter().map(event_from_row).collect()
    }

    async fn owner_events_after(
        &mut self,
        owner: &OwnerId,
        after: i64,
        limit: i64,
    ) -> Result<Vec<AuditEvent>> {
        let rows = query(AssertSqlSafe(format!(
            "SELECT {EVENT_COLS} FROM audit_events WHERE {OWNER_IS} AND seq > $2 ORDER BY seq LIMIT $3"
        )))
        .bind(owner.as_str())
        .bind(after)
        .bind(limit)
        .fetch_all(self.conn())
        .await
        .map_err(unavailable)?;
        rows.iter().map(event_from_row).collect()
    }

    async fn chain_after(&mut self, after: i64, limit: i64) -> Result<Vec<ChainRow>> {
        let rows = query(AssertSqlSafe(format!(
            "SELECT {EVENT_COLS} FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2"
        )))
        .bind(after)
        .bind(limit)
        .fetch_all(self.conn())
        .await
        .map_err(unavailable)?;
        rows.iter()
            .map(|row| {
                let seq: i64 = col(row, "seq")?;
                Ok(event_from_row(row).map_err(|_| seq))
            })
            .collect()
    }

    async fn chain_head(&mut self) -> Result<Option<(i64, Option<ChainHash>)>> {
        let head = query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_optional(self.conn())
            .await
            .map_err(unavailable)?;
        head.map(|row| {
            let hash = bytes_col::<32>(&row, "hash")
                .ok()
                .map(ChainHash::from_bytes);
            Ok((col(&row, "seq")?, hash))
        })
        .transpose()
    }

    async fn head_key_version(&mut self) -> Result<Option<u32>> {
        let version: Option<Option<i32>> =
            super::support::query_scalar("SELECT key_version FROM audit_head WHERE id = 1")
                .fetch_optional(self.conn())
                .await
                .map_err(unavailable)?;
        version
            .flatten()
            .map(|v| u32::try_from(v).map_err(|_| super::support::integrity("key_version")))
            .transpose()
    }
}
