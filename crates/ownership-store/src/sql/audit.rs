//! The audit chain: the append every mutation makes inside its own transaction, the
//! listings, and the verification that walks the chain and compares it with the head.

use async_trait::async_trait;
use ownership_core::audit::{AuditEvent, ChainHash};
use ownership_core::audit_log::{AuditRows, ChainRow};
use ownership_core::authz::Actor;
use ownership_core::{OwnerId, Result};

use super::driver::*;
use super::tx::SqlTx;

pub(crate) const EVENT_COLS: &str =
    "seq, at, actor, owner_id, action, target, details, prev_hash, hash, owner_uid, key_version";

/// The events of the account that holds `owner` now (by its immutable identity: an
/// earlier account under the same id is someone else).
const OWNER_IS: &str = "owner_uid = (SELECT uid FROM users WHERE id = $1)";

pub(crate) fn event_from(row: &[Val]) -> Result<AuditEvent> {
    Ok(AuditEvent {
        seq: int(row, 0)?,
        at: time_at(row, 1)?,
        actor: parsed(row, 2, "audit actor", |s| s.parse::<Actor>())?,
        owner: opt_text(row, 3)?
            .map(|o| OwnerId::parse(&o).map_err(|_| integrity("audit owner")))
            .transpose()?,
        action: parsed(row, 4, "audit action", |s| s.parse())?,
        target: text(row, 5)?,
        details: text(row, 6)?,
        prev_hash: ChainHash::from_bytes(bytes::<32>(row, 7, "audit prev_hash")?),
        hash: ChainHash::from_bytes(bytes::<32>(row, 8, "audit hash")?),
        owner_uid: opt_text(row, 9)?,
        key_version: opt_u32(row, 10, "audit key version")?,
    })
}

#[async_trait]
impl<D: Driver> AuditRows for SqlTx<D> {
    async fn events_before(
        &mut self,
        owner: Option<&OwnerId>,
        before: i64,
        limit: i64,
    ) -> Result<Vec<AuditEvent>> {
        let rows = match owner {
            Some(owner) => {
                let sql = format!(
                    "SELECT {EVENT_COLS} FROM audit_events WHERE {OWNER_IS} AND seq < $2 ORDER BY seq DESC LIMIT $3"
                );
                query_all(&mut self.d, &sql, args![owner.as_str(), before, limit]).await?
            }
            None => {
                let sql = format!(
                    "SELECT {EVENT_COLS} FROM audit_events WHERE seq < $1 ORDER BY seq DESC LIMIT $2"
                );
                query_all(&mut self.d, &sql, args![before, limit]).await?
            }
        };
        rows.iter().map(|r| event_from(r)).collect()
    }

    async fn owner_events_after(
        &mut self,
        owner: &OwnerId,
        after: i64,
        limit: i64,
    ) -> Result<Vec<AuditEvent>> {
        let sql = format!(
            "SELECT {EVENT_COLS} FROM audit_events WHERE {OWNER_IS} AND seq > $2 ORDER BY seq ASC LIMIT $3"
        );
        let rows = query_all(&mut self.d, &sql, args![owner.as_str(), after, limit]).await?;
        rows.iter().map(|r| event_from(r)).collect()
    }

    async fn chain_after(&mut self, after: i64, limit: i64) -> Result<Vec<ChainRow>> {
        let sql = format!(
            "SELECT {EVENT_COLS} FROM audit_events WHERE seq > $1 ORDER BY seq ASC LIMIT $2"
        );
        let rows = query_all(&mut self.d, &sql, args![after, limit]).await?;
        rows.iter()
            .map(|r| Ok(event_from(r).map_err(|_| int(r, 0).unwrap_or(after.saturating_add(1)))))
            .collect()
    }

    async fn chain_head(&mut self) -> Result<Option<(i64, Option<ChainHash>)>> {
        let row = query_opt(
            &mut self.d,
            "SELECT seq, hash FROM audit_head WHERE id = 1",
            &[],
        )
        .await?;
        row.map(|row| {
            let hash = bytes::<32>(&row, 1, "audit head hash")
                .ok()
                .map(ChainHash::from_bytes);
            Ok((int(&row, 0)?, hash))
        })
        .transpose()
    }

    async fn head_key_version(&mut self) -> Result<Option<u32>> {
        Ok(super::tx::head(&mut self.d, false).await?.key_version)
    }
}
