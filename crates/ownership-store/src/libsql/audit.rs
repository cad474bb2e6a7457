//! The audit chain: the append every mutation makes inside its own transaction, the
//! listings, and the verification that walks the chain and compares it with the head.

use ::libsql::{Connection, Value};
use async_trait::async_trait;
use ownership_core::audit::{
    self, AuditEvent, ChainHash, ChainVerdict, ChainVerifier, NewAuditEvent,
};
use ownership_core::authz::Actor;
use ownership_core::ports::{AuditFilter, AuditLog, Page, PageRequest};
use ownership_core::{OwnerId, Result};

use super::LibsqlStore;
use super::conn::{
    args, bytes, exec, int, integrity, micros, opt_text, page_limit, parsed, query_all, query_opt,
    text, time_at,
};

pub(super) const EVENT_COLS: &str =
    "seq, at, actor, owner_id, action, target, details, prev_hash, hash";

/// How many events `verify_chain` reads at a time.
const VERIFY_PAGE: i64 = 500;

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
impl AuditLog for LibsqlStore {
    async fn list_events(
        &self,
        filter: AuditFilter<'_>,
        page: &PageRequest,
    ) -> Result<Page<AuditEvent>> {
        let before = audit::parse_cursor(page.after.as_deref())?.unwrap_or(i64::MAX);
        let limit = page_limit(page.limit);
        let owner = match filter {
            AuditFilter::Owner(scope) => Some(scope.owner().as_str().to_owned()),
            AuditFilter::All(_) => None,
        };
        let rows = self
            .worker
            .read(async move |c: &Connection| match owner {
                Some(owner) => {
                    let sql = format!(
                        "SELECT {EVENT_COLS} FROM audit_events WHERE owner_id = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3"
                    );
                    query_all(c, &sql, args![owner, before, limit]).await
                }
                None => {
                    let sql = format!("SELECT {EVENT_COLS} FROM audit_events WHERE seq < ?1 ORDER BY seq DESC LIMIT ?2");
                    query_all(c, &sql, args![before, limit]).await
                }
            })
            .await?;
        let mut items = rows
            .iter()
            .map(|r| event_from(r))
            .collect::<Result<Vec<_>>>()?;
        let wanted = usize::try_from(limit - 1).unwrap_or(usize::MAX);
        let next = if items.len() > wanted {
            items.truncate(wanted);
            items.last().map(|e| e.seq.to_string())
        } else {
            None
        };
        Ok(Page { items, next })
    }

    async fn events_after(
        &self,
        scope: &ownership_core::authz::OwnerScope,
        after: i64,
        limit: u32,
    ) -> Result<Vec<AuditEvent>> {
        let owner = scope.owner().as_str().to_owned();
        let limit = i64::from(limit.clamp(1, 500));
        let rows = self
            .worker
            .read(async move |c: &Connection| {
                let sql = format!("SELECT {EVENT_COLS} FROM audit_events WHERE owner_id = ?1 AND seq > ?2 ORDER BY seq ASC LIMIT ?3");
                query_all(c, &sql, args![owner, after, limit]).await
            })
            .await?;
        rows.iter().map(|r| event_from(r)).collect()
    }

    async fn verify_chain(&self) -> Result<ChainVerdict> {
        self.worker
            .read(async move |c: &Connection| {
                let mut verifier = ChainVerifier::default();
                let mut last: Option<(i64, ChainHash)> = None;
                loop {
                    let after = last.map_or(0, |(seq, _)| seq);
                    let sql = format!("SELECT {EVENT_COLS} FROM audit_events WHERE seq > ?1 ORDER BY seq ASC LIMIT ?2");
                    let rows = query_all(c, &sql, args![after, VERIFY_PAGE]).await?;
                    if rows.is_empty() {
                        break;
                    }
                    for row in &rows {
                        let event = match event_from(row) {
                            Ok(event) => event,
                            Err(_) => {
                                // A row edited into something that no longer parses: the
                                // chain is broken there (unless it already broke earlier).
                                return Ok(match verifier.finish() {
                                    broken @ ChainVerdict::Broken { .. } => broken,
                                    ChainVerdict::Intact { events } => ChainVerdict::Broken {
                                        seq: i64::try_from(events).unwrap_or(i64::MAX).saturating_add(1),
                                        reason: "event does not parse".to_owned(),
                                    },
                                });
                            }
                        };
                        verifier.push(&event);
                        last = Some((event.seq, event.hash));
                    }
                }
                let verdict = verifier.finish();
                let ChainVerdict::Intact { events } = verdict else {
                    return Ok(verdict);
                };
                // The rows form a valid chain; it must also end where the head says, or
                // the newest rows were deleted (or the head was moved).
                let (head_seq, head_hash) = head(c).await?;
                let (last_seq, last_hash) = last.unwrap_or((0, ChainHash::GENESIS));
                let verdict = if head_seq > last_seq {
                    ChainVerdict::Broken {
                        seq: last_seq.saturating_add(1),
                        reason: format!("the head records event {head_seq} but the chain ends at {last_seq}"),
                    }
                } else if head_seq < last_seq {
                    ChainVerdict::Broken {
                        seq: head_seq.saturating_add(1),
                        reason: format!("event {} is past the recorded head", head_seq.saturating_add(1)),
                    }
                } else if head_hash != last_hash {
                    ChainVerdict::Broken {
                        seq: head_seq,
                        reason: "the recorded head hash does not match the last event".to_owned(),
                    }
                } else {
                    ChainVerdict::Intact { events }
                };
                Ok(verdict)
            })
            .await
    }
}
