//! The audit log's rows: the listings, and what the verification walks and compares with
//! the heads. The append every mutation makes, and an owner's chain lock, are
//! [`super::chain`]'s.

use async_trait::async_trait;
use ownership_core::audit::{AnchoredHead, AuditEvent, ChainHash, RecordedHead};
use ownership_core::audit_log::{AuditRows, ChainRow};
use ownership_core::authz::Actor;
use ownership_core::{OwnerId, Result};

use super::driver::*;
use super::tx::SqlTx;

pub(crate) const EVENT_COLS: &str = "seq, at, actor, owner_id, action, target, details, prev_hash, hash, owner_uid, key_version, chain";

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
        chain: opt_text(row, 11)?,
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

    async fn chain_heads(&mut self) -> Result<Vec<RecordedHead>> {
        let sql = "SELECT CAST(NULL AS TEXT), seq, hash, key_version, CAST(0 AS BIGINT) \
                   FROM audit_head WHERE id = 1 \
                   UNION ALL SELECT chain, seq, hash, key_version, anchored_seq FROM audit_chains";
        let rows = query_all(&mut self.d, sql, &[]).await?;
        rows.iter()
            .map(|row| {
                Ok(RecordedHead {
                    chain: opt_text(row, 0)?,
                    seq: int(row, 1)?,
                    hash: bytes::<32>(row, 2, "audit head hash")
                        .ok()
                        .map(ChainHash::from_bytes),
                    key_version: opt_u32(row, 3, "audit key version")?,
                    anchored: int(row, 4)?,
                })
            })
            .collect()
    }

    async fn mark_anchored(&mut self, heads: &[AnchoredHead]) -> Result<()> {
        for head in heads {
            let sql = "UPDATE audit_chains SET anchored_seq = $2 WHERE chain = $1";
            exec(&mut self.d, sql, args![head.chain.as_str(), head.seq]).await?;
        }
        Ok(())
    }
}
