//! [`AuditLog`]: reading the chain, and verifying it against the recorded head.

use async_trait::async_trait;
use ownership_core::audit::{
    self, AuditAction, AuditEvent, ChainHash, ChainVerdict, ChainVerifier,
};
use ownership_core::authz::{Actor, OwnerScope};
use ownership_core::ports::{AuditFilter, AuditLog, Page, PageRequest};
use ownership_core::{OwnerId, Result};
use sqlx::postgres::PgRow;

use super::PgStore;
use super::support::query;
use super::support::{bytes_col, col, limit_plus_one, parsed, parsed_opt, take_page, unavailable};

/// Events read per query while verifying.
const VERIFY_PAGE: i64 = 500;

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
    })
}

/// The verdict when the walk itself found nothing wrong: the last event read must be
/// the recorded head.
fn compare_with_head(
    events: u64,
    last: Option<(i64, ChainHash)>,
    head_seq: i64,
    head_hash: ChainHash,
) -> ChainVerdict {
    let (last_seq, last_hash) = last.unwrap_or((0, ChainHash::GENESIS));
    if head_seq > last_seq {
        ChainVerdict::Broken {
            seq: last_seq + 1,
            reason: format!(
                "events after {last_seq} are missing (the recorded head is {head_seq})"
            ),
        }
    } else if head_seq < last_seq {
        ChainVerdict::Broken {
            seq: head_seq + 1,
            reason: format!(
                "events after the recorded head {head_seq} were added outside the chain"
            ),
        }
    } else if head_hash != last_hash {
        ChainVerdict::Broken {
            seq: last_seq,
            reason: "the last event does not match the recorded head".to_owned(),
        }
    } else {
        ChainVerdict::Intact { events }
    }
}

#[async_trait]
impl AuditLog for PgStore {
    async fn list_events(
        &self,
        filter: AuditFilter<'_>,
        page: &PageRequest,
    ) -> Result<Page<AuditEvent>> {
        let before = audit::parse_cursor(page.after.as_deref())?;
        let limit = limit_plus_one(page);
        let rows = match filter {
            AuditFilter::Owner(scope) => query(
                "SELECT seq, at, actor, owner_id, action, target, details, prev_hash, hash
                 FROM audit_events
                 WHERE owner_id = $1 AND ($2::bigint IS NULL OR seq < $2)
                 ORDER BY seq DESC LIMIT $3",
            )
            .bind(scope.owner().as_str())
            .bind(before)
            .bind(limit)
            .fetch_all(self.reads())
            .await
            .map_err(unavailable)?,
            AuditFilter::All(_) => query(
                "SELECT seq, at, actor, owner_id, action, target, details, prev_hash, hash
                 FROM audit_events
                 WHERE $1::bigint IS NULL OR seq < $1
                 ORDER BY seq DESC LIMIT $2",
            )
            .bind(before)
            .bind(limit)
            .fetch_all(self.reads())
            .await
            .map_err(unavailable)?,
        };
        let events = rows
            .iter()
            .map(event_from_row)
            .collect::<Result<Vec<_>>>()?;
        let (items, more) = take_page(events, page);
        let next = more
            .then(|| items.last().map(|e| e.seq.to_string()))
            .flatten();
        Ok(Page { items, next })
    }

    async fn events_after(
        &self,
        scope: &OwnerScope,
        after: i64,
        limit: u32,
    ) -> Result<Vec<AuditEvent>> {
        let rows = query(
            "SELECT seq, at, actor, owner_id, action, target, details, prev_hash, hash
             FROM audit_events
             WHERE owner_id = $1 AND seq > $2
             ORDER BY seq LIMIT $3",
        )
        .bind(scope.owner().as_str())
        .bind(after)
        .bind(i64::from(limit.clamp(1, 500)))
        .fetch_all(self.reads())
        .await
        .map_err(unavailable)?;
        rows.iter().map(event_from_row).collect()
    }

    async fn verify_chain(&self) -> Result<ChainVerdict> {
        // One snapshot for every page and the head, so concurrent appends neither show
        // up half-way nor make the head look ahead of the chain.
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        let mut verifier = ChainVerifier::default();
        let mut last: Option<(i64, ChainHash)> = None;
        loop {
            let after = last.map_or(i64::MIN, |(seq, _)| seq);
            let rows = query(
                "SELECT seq, at, actor, owner_id, action, target, details, prev_hash, hash
                 FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2",
            )
            .bind(after)
            .bind(VERIFY_PAGE)
            .fetch_all(&mut *tx)
            .await
            .map_err(unavailable)?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                let seq: i64 = col(row, "seq")?;
                let event = match event_from_row(row) {
                    Ok(event) => event,
                    // A row edited into something that no longer parses is a break in
                    // the chain at that row (unless the chain broke earlier).
                    Err(_) => {
                        return Ok(match verifier.finish() {
                            broken @ ChainVerdict::Broken { .. } => broken,
                            ChainVerdict::Intact { .. } => ChainVerdict::Broken {
                                seq,
                                reason: "the row does not parse".to_owned(),
                            },
                        });
                    }
                };
                verifier.push(&event);
                last = Some((event.seq, event.hash));
            }
            if let verdict @ ChainVerdict::Broken { .. } = verifier.clone().finish() {
                return Ok(verdict);
            }
        }
        let head = query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_optional(&mut *tx)
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        let Some(head) = head else {
            return Ok(ChainVerdict::Broken {
                seq: last.map_or(1, |(seq, _)| seq + 1),
                reason: "the recorded head is missing".to_owned(),
            });
        };
        let head_seq: i64 = col(&head, "seq")?;
        let head_hash = match bytes_col::<32>(&head, "hash") {
            Ok(bytes) => ChainHash::from_bytes(bytes),
            Err(_) => {
                return Ok(ChainVerdict::Broken {
                    seq: head_seq,
                    reason: "the recorded head does not parse".to_owned(),
                });
            }
        };
        Ok(match verifier.finish() {
            ChainVerdict::Intact { events } => compare_with_head(events, last, head_seq, head_hash),
            broken @ ChainVerdict::Broken { .. } => broken,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_head_must_be_the_last_event() {
        let h = ChainHash::from_bytes([7; 32]);
        assert_eq!(
            compare_with_head(0, None, 0, ChainHash::GENESIS),
            ChainVerdict::Intact { events: 0 }
        );
        assert_eq!(
            compare_with_head(3, Some((3, h)), 3, h),
            ChainVerdict::Intact { events: 3 }
        );
        assert!(matches!(
            compare_with_head(2, Some((2, h)), 3, h),
            ChainVerdict::Broken { seq: 3, .. }
        ));
        assert!(matches!(
            compare_with_head(0, None, 1, h),
            ChainVerdict::Broken { seq: 1, .. }
        ));
        assert!(matches!(
            compare_with_head(3, Some((3, h)), 2, h),
            ChainVerdict::Broken { seq: 3, .. }
        ));
        assert!(matches!(
            compare_with_head(3, Some((3, h)), 3, ChainHash::GENESIS),
            ChainVerdict::Broken { seq: 3, .. }
        ));
    }
}
