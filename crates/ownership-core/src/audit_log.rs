//! The audit log as a port: listing events and verifying the chain, written once over
//! [`AuditRows`]. The chain itself (events, hashes, the verifier) is [`crate::audit`].

use async_trait::async_trait;

use crate::audit::{
    AnchorDetails, AnchoredHead, AuditEvent, AuditFilter, ChainCheckpoint, ChainVerdict,
    ChainsVerifier, RecordedHead, parse_cursor,
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

    /// Checks every chain, every anchor, and that each chain ends at its recorded head.
    async fn verify_chain(&self) -> Result<ChainVerdict>;

    /// Checks the events after `from` (a checkpoint an earlier check returned; `None`: the
    /// whole log) and the recorded heads, trusting what `from` covers. Returns the
    /// verdict and, when intact, the checkpoint to resume from next time. A caller that
    /// checks often (the console) resumes, and walks the whole chain again now and then,
    /// since an edit below the checkpoint is seen only by a whole walk.
    async fn verify_chain_from(
        &self,
        from: Option<ChainCheckpoint>,
    ) -> Result<(ChainVerdict, Option<ChainCheckpoint>)>;

    /// Keys the chains: when this store holds chain keys, appends `audit.chain_keyed`,
    /// linked under the current chain key, to every chain whose newest event is unkeyed
    /// (written before the keyed chain, or without a master key). From then on each
    /// chain's newest event is keyed, which the verifier requires of a store that holds
    /// the keys. Returns whether it appended.
    async fn key_chain(&self) -> Result<bool>;

    /// Anchors the owner chains: appends `audit.anchored` to the system chain, naming the
    /// newest event and hash of every owner chain that grew since the last anchor.
    /// Returns how many chains it named (0: nothing changed, nothing appended).
    async fn anchor_chains(&self) -> Result<u64>;

    /// For an admin's export: every event with `seq > after`, oldest first, at most
    /// `limit` (1 to 500), each row as the verifier reads it.
    async fn chain_page(&self, scope: &AdminScope, after: i64, limit: u32)
    -> Result<Vec<ChainRow>>;

    /// For an admin's export: every chain's recorded head, from one snapshot.
    async fn recorded_heads(&self, scope: &AdminScope) -> Result<Vec<RecordedHead>>;
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
    /// Every chain's recorded head: the system chain's (always there) and each owner
    /// chain's.
    async fn chain_heads(&mut self) -> Result<Vec<RecordedHead>>;
    /// Records that an anchor committed these owner chains' heads.
    async fn mark_anchored(&mut self, heads: &[AnchoredHead]) -> Result<()>;
}

/// How many events [`AuditLog::verify_chain`] reads at a time.
const VERIFY_PAGE: i64 = 500;

/// Walks every chain in `tx` (after `from`, when given) and compares each end with its
/// recorded head.
async fn verify<T: AuditRows + ?Sized>(
    tx: &mut T,
    from: Option<ChainCheckpoint>,
) -> Result<(ChainVerdict, Option<ChainCheckpoint>)> {
    let mut verifier = ChainsVerifier::starting(from, tx.chain_keys().cloned());
    loop {
        let rows = tx.chain_after(verifier.last_seq(), VERIFY_PAGE).await?;
        if rows.is_empty() {
            break;
        }
        for row in rows {
            match row {
                Ok(event) => verifier.push(&event),
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
    let heads = tx.chain_heads().await?;
    let verdict = verifier.finish(&heads, 0);
    let checkpoint = verdict.is_intact().then(|| verifier.checkpoint());
    Ok((verdict, checkpoint))
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

    async fn recorded_heads(&self, _scope: &AdminScope) -> Result<Vec<RecordedHead>> {
        self.snapshot(move |tx| Box::pin(async move { tx.chain_heads().await }))
            .await
    }

    async fn key_chain(&self) -> Result<bool> {
        crate::db::write(self, |tx| {
            Box::pin(async move {
                let Some(version) = tx.chain_keys().map(|k| k.current().version()) else {
                    return Ok(false);
                };
                let unkeyed: Vec<RecordedHead> = tx
                    .chain_heads()
                    .await?
                    .into_iter()
                    .filter(|h| h.seq > 0 && h.key_version.is_none())
                    .collect();
                let now = tx.now();
                for head in &unkeyed {
                    // An owner chain's event names the chain by its account identity.
                    let event = crate::events::audit_chain_keyed(now, version)
                        .with_owner_uid(head.chain.clone());
                    tx.append(event).await?;
                }
                Ok(!unkeyed.is_empty())
            })
        })
        .await
    }

    async fn anchor_chains(&self) -> Result<u64> {
        crate::db::write(self, |tx| {
            Box::pin(async move {
                let heads: Vec<AnchoredHead> = tx
                    .chain_heads()
                    .await?
                    .into_iter()
                    .filter(|h| h.seq > h.anchored)
                    .filter_map(|h| {
                        Some(AnchoredHead {
                            chain: h.chain?,
                            seq: h.seq,
                            hash: h.hash?.to_hex(),
                        })
                    })
                    .collect();
                if heads.is_empty() {
                    return Ok(0);
                }
                let now = tx.now();
                let details = AnchorDetails { heads };
                tx.append(crate::events::audit_anchored(now, &details)?)
                    .await?;
                tx.mark_anchored(&details.heads).await?;
                Ok(u64::try_from(details.heads.len()).unwrap_or(u64::MAX))
            })
        })
        .await
    }
}
