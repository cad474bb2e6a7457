//! The audit chain: the append every mutation makes inside its own transaction, the
//! listings, and the verification that walks the chain and compares it with the head.

use ::libsql::{Connection, Value};
use async_trait::async_trait;
use ownership_core::audit::{AuditEvent, AuditRows, ChainHash, ChainRow, NewAuditEvent};
use ownership_core::authz::Actor;
use ownership_core::{OwnerId, Result};

use super::conn::{
    args, bytes, exec, int, integrity, micros, opt_text, parsed, query_all, query_opt, text,
    time_at,
};
use super::db::LibsqlTx;

pub(super) const EVENT_COLS: &str =
    "seq, at, actor, owner_id, action, target, details, prev_hash, hash";

/// The recorded head: the last event's number and hash.
pub(super) async fn head(conn: &Connection) -> Result<(i64, ChainHash)> {
    let row = query_opt(
        conn,
        "SELECT seq, hash FROM audit_head WHERE id = 1",
        Vec::new(),
    )
    .await?
    .ok_or_else(|| integrity("audit head"))?;
    Ok((
        int(&row, 0)?,
        ChainHash::from_bytes(bytes::<32>(&row, 1, "audit head hash")?),
    ))
}

/// Appends `event` to the chain: reads the head, links the event after it, inserts it and
/// moves the head. Call only inside a write transaction (which holds the database lock).
pub(super) async fn append_audit(conn: &Connection, event: NewAuditEvent) -> Result<AuditEvent> {
    let (seq, prev) = head(conn).await?;
    let next = seq
        .checked_add(1)
        .ok_or_else(|| integrity("audit sequence"))?;
    let linked = event.link(next, prev);
    exec(
        conn,
        "INSERT INTO audit_events (seq, at, actor, owner_id, action, target, details, prev_hash, hash) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        args![
            linked.seq,
            micros(linked.at)?,
            linked.actor.to_string(),
            linked.owner.as_ref().map(|o| o.as_str().to_owned()),
            linked.action.as_str(),
            linked.target.as_str(),
            linked.details.as_str(),
            linked.prev_hash.as_bytes().as_slice(),
            linked.hash.as_bytes().as_slice(),
        ],
    )
    .await?;
    let moved = exec(
        conn,
        "UPDATE audit_head SET seq = ?1, hash = ?2 WHERE id = 1 AND seq = ?3",
        args![linked.seq, linked.hash.as_bytes().as_slice(), seq],
    )
    .await?;
    if moved != 1 {
        return Err(integrity("audit head"));
    }
    Ok(linked)
}

pub(super) fn event_from(row: &[Value]) -> Result<AuditEvent> {
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
    })
}

#[async_trait]
impl AuditRows for LibsqlTx {
    async fn events_before(
        &mut self,
        owner: Option<&OwnerId>,
        before: i64,
        limit: i64,
    ) -> Result<Vec<AuditEvent>> {
        let rows = match owner {
            Some(owner) => {
                let sql = format!(
                    "SELECT {EVENT_COLS} FROM audit_events WHERE owner_id = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3"
                );
                query_all(&self.conn, &sql, args![owner.as_str(), before, limit]).await?
            }
            None => {
                let sql = format!(
                    "SELECT {EVENT_COLS} FROM audit_events WHERE seq < ?1 ORDER BY seq DESC LIMIT ?2"
                );
                query_all(&self.conn, &sql, args![before, limit]).await?
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
            "SELECT {EVENT_COLS} FROM audit_events WHERE owner_id = ?1 AND seq > ?2 ORDER BY seq ASC LIMIT ?3"
        );
        let rows = query_all(&self.conn, &sql, args![owner.as_str(), after, limit]).await?;
        rows.iter().map(|r| event_from(r)).collect()
    }

    async fn chain_after(&mut self, after: i64, limit: i64) -> Result<Vec<ChainRow>> {
        let sql = format!(
            "SELECT {EVENT_COLS} FROM audit_events WHERE seq > ?1 ORDER BY seq ASC LIMIT ?2"
        );
        let rows = query_all(&self.conn, &sql, args![after, limit]).await?;
        rows.iter()
            .map(|r| Ok(event_from(r).map_err(|_| int(r, 0).unwrap_or(after.saturating_add(1)))))
            .collect()
    }

    async fn chain_head(&mut self) -> Result<Option<(i64, Option<ChainHash>)>> {
        let row = query_opt(
            &self.conn,
            "SELECT seq, hash FROM audit_head WHERE id = 1",
            Vec::new(),
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
}
