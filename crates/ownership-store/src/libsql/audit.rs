//! The audit chain: the append every mutation makes inside its own transaction, the
//! listings, and the verification that walks the chain and compares it with the head.

use ::libsql::Value;
use async_trait::async_trait;
use ownership_core::audit::{
    AnchoredHead, AuditEvent, ChainHash, ChainHead, ChainKeys, NewAuditEvent, RecordedHead,
};
use ownership_core::audit_log::{AuditRows, ChainRow};
use ownership_core::authz::Actor;
use ownership_core::{OwnerId, Result};

use ::libsql::Connection;

use super::conn::{
    args, bytes, exec, int, integrity, micros, opt_text, parsed, query_all, query_opt, text,
    time_at,
};
use super::db::{LibsqlTx, key_version};

pub(super) const EVENT_COLS: &str = "seq, at, actor, owner_id, action, target, details, prev_hash, hash, owner_uid, key_version, chain";

/// The events of the account that holds `owner` now (by its immutable identity: an
/// earlier account under the same id is someone else).
const OWNER_IS: &str = "owner_uid = (SELECT uid FROM users WHERE id = ?1)";

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
        owner_uid: opt_text(row, 9)?,
        key_version: key_version(row, 10)?,
        chain: opt_text(row, 11)?,
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
                    "SELECT {EVENT_COLS} FROM audit_events WHERE {OWNER_IS} AND seq < ?2 ORDER BY seq DESC LIMIT ?3"
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
            "SELECT {EVENT_COLS} FROM audit_events WHERE {OWNER_IS} AND seq > ?2 ORDER BY seq ASC LIMIT ?3"
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

    async fn chain_heads(&mut self) -> Result<Vec<RecordedHead>> {
        let rows = query_all(
            &self.conn,
            "SELECT NULL, seq, hash, key_version, 0 FROM audit_head WHERE id = 1 \
             UNION ALL SELECT chain, seq, hash, key_version, anchored_seq FROM audit_chains",
            Vec::new(),
        )
        .await?;
        rows.iter()
            .map(|row| {
                Ok(RecordedHead {
                    chain: opt_text(row, 0)?,
                    seq: int(row, 1)?,
                    hash: bytes::<32>(row, 2, "audit head hash")
                        .ok()
                        .map(ChainHash::from_bytes),
                    key_version: key_version(row, 3)?,
                    anchored: int(row, 4)?,
                })
            })
            .collect()
    }

    async fn mark_anchored(&mut self, heads: &[AnchoredHead]) -> Result<()> {
        for head in heads {
            exec(
                &self.conn,
                "UPDATE audit_chains SET anchored_seq = ?2 WHERE chain = ?1",
                args![head.chain.as_str(), head.seq],
            )
            .await?;
        }
        Ok(())
    }
}

/// The newest event's number, of any chain (0: none).
pub(super) async fn newest_seq(conn: &Connection) -> Result<i64> {
    super::conn::query_i64(
        conn,
        "SELECT COALESCE(MAX(seq), 0) FROM audit_events",
        Vec::new(),
    )
    .await
}

/// The immutable identity of `owner`'s account as it is in this transaction.
async fn owner_uid(conn: &Connection, owner: Option<&OwnerId>) -> Result<Option<String>> {
    let Some(owner) = owner else {
        return Ok(None);
    };
    let row = query_opt(
        conn,
        "SELECT uid FROM users WHERE id = ?1",
        args![owner.as_str()],
    )
    .await?;
    match row {
        Some(row) => opt_text(&row, 0),
        None => Ok(None),
    }
}

/// Appends `event` to its chain (core's [`NewAuditEvent::chain`]): reads the chain's head
/// and the next number, links the event (keyed under `keys` when held: core decides),
/// inserts it and moves the head. Call only inside a write transaction (which holds the
/// database lock).
pub(super) async fn append_audit(
    conn: &Connection,
    event: NewAuditEvent,
    keys: Option<&ChainKeys>,
) -> Result<AuditEvent> {
    let event = match event.owner_uid {
        Some(_) => event,
        None => {
            let uid = owner_uid(conn, event.owner.as_ref()).await?;
            event.with_owner_uid(uid)
        }
    };
    let chain = event.chain();
    const NEXT: &str = "(SELECT COALESCE(MAX(seq), 0) + 1 FROM audit_events)";
    let row = match &chain {
        None => {
            let sql = format!("SELECT {NEXT}, seq, hash, key_version FROM audit_head WHERE id = 1");
            query_opt(conn, &sql, Vec::new()).await?
        }
        Some(chain) => {
            let sql = format!(
                "SELECT {NEXT}, h.seq, h.hash, h.key_version FROM (SELECT 1) \
                 LEFT JOIN audit_chains h ON h.chain = ?1"
            );
            query_opt(conn, &sql, args![chain.as_str()]).await?
        }
    }
    .ok_or_else(|| integrity("audit head"))?;
    let seq = int(&row, 0)?;
    let head = match row.get(1) {
        Some(::libsql::Value::Null) => ChainHead::EMPTY,
        _ => ChainHead {
            seq: int(&row, 1)?,
            hash: ChainHash::from_bytes(bytes::<32>(&row, 2, "audit head hash")?),
            key_version: key_version(&row, 3)?,
        },
    };
    let linked = head.link_next(seq, event, keys)?;
    exec(
        conn,
        "INSERT INTO audit_events (seq, at, actor, owner_id, action, target, details, prev_hash, hash, owner_uid, key_version, chain) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
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
            linked.owner_uid.clone(),
            linked.key_version.map(i64::from),
            linked.chain.clone(),
        ],
    )
    .await?;
    let moved = match &linked.chain {
        None => exec(
            conn,
            "UPDATE audit_head SET seq = ?1, hash = ?2, key_version = ?3 WHERE id = 1 AND seq = ?4",
            args![
                linked.seq,
                linked.hash.as_bytes().as_slice(),
                linked.key_version.map(i64::from),
                head.seq
            ],
        )
        .await?,
        Some(chain) => {
            exec(
                conn,
                "INSERT INTO audit_chains (chain, seq, hash, key_version) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (chain) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, \
                 key_version = excluded.key_version WHERE audit_chains.seq = ?5",
                args![
                    chain.as_str(),
                    linked.seq,
                    linked.hash.as_bytes().as_slice(),
                    linked.key_version.map(i64::from),
                    head.seq
                ],
            )
            .await?
        }
    };
    if moved != 1 {
        return Err(integrity("audit head"));
    }
    Ok(linked)
}
