//! The audit log as a port: listing events and verifying the chain, written once over
//! [`AuditRows`]. The chain itself (events, hashes, the verifier) is [`crate::audit`].

use async_trait::async_trait;

use crate::audit::ChainHead;
use crate::audit::{
    AuditEvent, AuditFilter, ChainCheckpoint, ChainHash, ChainVerdict, ChainVerifier, parse_cursor,
};
use crate::authz::{AdminScope, OwnerScope};
use crate::db::{Transactions, Tx};
use crate::error::Result;
use crate::ids::OwnerId;
use crate::paging::{Page, PageRequest};

/// The audit log. Appends happen inside each mutation's own transaction.
#[async_trait]
pub trait AuditLog: Send + Sync {
    /// Events newest first. Cursor: the `seq` of the last item.
    async fn list_events(
        &self,
        filter: AuditFilter<'_>,
        page: &PageRequest,
    ) -> Result<Page<AuditEvent>>;

    /// The owner's events with `seq > after`, oldest first (for the event stream).
    async fn events_after(
        &self,
        scope: &OwnerScope,
        after: i64,
        limit: u32,
    ) -> Result<Vec<AuditEvent>>;

    /// Checks the whole chain, and that its head matches the recorded head.
    async fn verify_chain(&self) -> Result<ChainVerdict>;

    /// Checks the events after `from` (a checkpoint an earlier check returned; `None`: the
    /// whole chain) and the recorded head, trusting what `from` covers. Returns the
    /// verdict and, when intact, the checkpoint to resume from next time. A caller that
    /// checks often (the console) resumes, and walks the whole chain again now and then,
    /// since an edit below the checkpoint is seen only by a whole walk.
    async fn verify_chain_from(
        &self,
        from: Option<ChainCheckpoint>,
    ) -> Result<(ChainVerdict, Option<ChainCheckpoint>)>;

    /// Keys the chain: when this store holds chain keys and the newest event is unkeyed
    /// (a chain written before the keyed chain, or without a master key), appends
    /// `audit.chain_keyed`, linked under the current chain key. From then on the newest
    /// event is keyed, which the verifier requires of a store that holds the keys. Returns
    /// whether it appended.
    async fn key_chain(&self) -> Result<bool>;

    /// For an admin's export: every event with `seq > after`, oldest first, at most
    /// `limit` (1 to 500), each row as the verifier reads it.
    async fn chain_page(&self, scope: &AdminScope, after: i64, limit: u32)
    -> Result<Vec<ChainRow>>;

    /// For an admin's export: the recorded head of the chain.
    async fn recorded_head(&self, scope: &AdminScope) -> Result<ChainHead>;
}

/// One row of the chain as a verifier reads it: the event, or the `seq` of a row that no
/// longer parses (edited into something invalid).
pub type ChainRow = std::result::Result<AuditEvent, i64>;

/// The audit rows a transaction reads (the append is [`Tx::append`]).
#[async_trait]
pub trait AuditRows: Tx {
    /// Events with `seq < before`, newest first, at most `limit`; one owner's or all.
    async fn events_before(
        &mut self,
        owner: Option<&OwnerId>,
        before: i64,
        limit: i64,
    ) -> Result<Vec<AuditEvent>>;
    /// The owner's events with `seq > after`, oldest first, at most `limit`.
    async fn owner_events_after(
        &mut self,
        owner: &OwnerId,
        after: i64,
        limit: i64,
    ) -> Result<Vec<AuditEvent>>;
    /// Every event with `seq > after`, oldest first, at most `limit`.
    async fn chain_after(&mut self, after: i64, limit: i64) -> Result<Vec<ChainRow>>;
    /// The recorded head: `None` when missing, a hash of `None` when it does not parse.
    async fn chain_head(&mut self) -> Result<Option<(i64, Option<ChainHash>)>>;
    /// The master key version the recorded head's link is keyed under (`None`: unkeyed).
    async fn head_key_version(&mut self) -> Result<Option<u32>>;
}

/// How many events [`AuditLog::verify_chain`] reads at a time.
const VERIFY_PAGE: i64 = 500;

/// Walks the whole chain in `tx` and compares its end with the recorded head.
async fn verify<T: AuditRows + ?Sized>(
    tx: &mut T,
    from: Option<ChainCheckpoint>,
) -> Result<(ChainVerdict, Option<ChainCheckpoint>)> {
    let mut verifier = ChainVerifier::starting(from, tx.chain_keys().cloned());
    let mut last: Option<(i64, ChainHash)> = from.map(|c| (c.seq, c.hash));
    loop {
        let after = last.map_or(i64::MIN, |(seq, _)| seq);
        let rows = tx.chain_after(after, VERIFY_PAGE).await?;
        if rows.is_empty() {
            break;
        }
        for row in rows {
            match row {
                Ok(event) => {
                    verifier.push(&event);
                    last = Some((event.seq, event.hash));
                }
                // A row edited into something that no longer parses is a break in the
                // chain at that row (unless the chain broke earlier).
                Err(seq) => {
                    let verdict =
                        verifier
                            .broken_so_far()
                            .unwrap_or_else(|| ChainVerdict::Broken {
                                seq,
                                reason: "the row does not parse".to_owned(),
                            });
                    return Ok((verdict, None));
                }
            }
        }
        if let Some(verdict) = verifier.broken_so_far() {
            return Ok((verdict, None));
        }
    }
    let keyed = verifier.keyed_seen();
    let events = match verifier.finish() {
        ChainVerdict::Intact { events } => events,
        broken => return Ok((broken, None)),
    };
    let verdict = match tx.chain_head().await? {
        None => ChainVerdict::Broken {
            seq: last.map_or(1, |(seq, _)| seq + 1),
            reason: "the recorded head is missing".to_owned(),
        },
        Some((seq, None)) => ChainVerdict::Broken {
            seq,
            reason: "the recorded head does not parse".to_owned(),
        },
        Some((head_seq, Some(head_hash))) => compare_with_head(events, last, head_seq, head_hash),
    };
    let checkpoint = match (&verdict, last) {
        (ChainVerdict::Intact { events }, Some((seq, hash))) => Some(ChainCheckpoint {
            seq,
            hash,
            events: *events,
            keyed,
        }),
        _ => None,
    };
    Ok((verdict, checkpoint))
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

/// Every database keeps the audit log: listing and verification once, over
/// [`AuditRows`].
#[async_trait]
impl<D> AuditLog for D
where
    D: Transactions,
    D::Tx: AuditRows,
{
    async fn list_events(
        &self,
        filter: AuditFilter<'_>,
        page: &PageRequest,
    ) -> Result<Page<AuditEvent>> {
        let before = parse_cursor(page.after.as_deref())?.unwrap_or(i64::MAX);
        let owner = match filter {
            AuditFilter::Owner(scope) => Some(scope.owner().clone()),
            AuditFilter::All(_) => None,
        };
        let limit = i64::from(page.fetch_limit());
        let fetched = self
            .read(move |tx| {
                Box::pin(async move { tx.events_before(owner.as_ref(), before, limit).await })
            })
            .await?;
        Ok(Page::of_fetched(fetched, page, |e| e.seq.to_string()))
    }

    async fn events_after(
        &self,
        scope: &OwnerScope,
        after: i64,
        limit: u32,
    ) -> Result<Vec<AuditEvent>> {
        let owner = scope.owner().clone();
        let limit = i64::from(limit.clamp(1, 500));
        self.read(move |tx| {
            Box::pin(async move { tx.owner_events_after(&owner, after, limit).await })
        })
        .await
    }

    async fn verify_chain(&self) -> Result<ChainVerdict> {
        // One snapshot for every page and the head, so concurrent appends neither show up
        // half-way nor make the head look ahead of the chain.
        self.verify_chain_from(None)
            .await
            .map(|(verdict, _)| verdict)
    }

    async fn verify_chain_from(
        &self,
        from: Option<ChainCheckpoint>,
    ) -> Result<(ChainVerdict, Option<ChainCheckpoint>)> {
        self.snapshot(move |tx| Box::pin(async move { verify(tx, from).await }))
            .await
    }

    async fn chain_page(
        &self,
        _scope: &AdminScope,
        after: i64,
        limit: u32,
    ) -> Result<Vec<ChainRow>> {
        let limit = i64::from(limit.clamp(1, 500));
        self.read(move |tx| Box::pin(async move { tx.chain_after(after, limit).await }))
            .await
    }

    async fn recorded_head(&self, _scope: &AdminScope) -> Result<ChainHead> {
        self.snapshot(move |tx| {
            Box::pin(async move {
                let Some((seq, Some(hash))) = tx.chain_head().await? else {
                    return Err(crate::error::Error::Integrity(
                        "the recorded audit head is missing or does not parse".into(),
                    ));
                };
                let key_version = tx.head_key_version().await?;
                Ok(ChainHead {
                    seq,
                    hash,
                    key_version,
                })
            })
        })
        .await
    }

    async fn key_chain(&self) -> Result<bool> {
        crate::db::write(self, |tx| {
            Box::pin(async move {
                let Some(version) = tx.chain_keys().map(|k| k.current().version()) else {
                    return Ok(false);
                };
                let empty = tx.chain_head().await?.is_none_or(|(seq, _)| seq == 0);
                if empty || tx.head_key_version().await?.is_some() {
                    return Ok(false);
                }
                let now = tx.now();
                tx.append(crate::events::audit_chain_keyed(now, version))
                    .await?;
                Ok(true)
            })
        })
        .await
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
        for (events, last, head_seq, head_hash, broken_at) in [
            (2, Some((2, h)), 3, h, 3),
            (0, None, 1, h, 1),
            (3, Some((3, h)), 2, h, 3),
            (3, Some((3, h)), 3, ChainHash::GENESIS, 3),
        ] {
            assert!(matches!(
                compare_with_head(events, last, head_seq, head_hash),
                ChainVerdict::Broken { seq, .. } if seq == broken_at
            ));
        }
    }
}
