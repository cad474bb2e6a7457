//! [`AuditLog`]: reading the chain, and verifying it against the recorded head.

use async_trait::async_trait;
use ownership_core::audit::{
    AnchoredHead, AuditAction, AuditEvent, ChainHash, ChainHead, ChainKeys, NewAuditEvent,
    RecordedHead,
};
use ownership_core::audit_log::{AuditRows, ChainRow};
use ownership_core::authz::Actor;
use ownership_core::{OwnerId, Result};
use sqlx::AssertSqlSafe;
use sqlx::postgres::PgRow;

use super::db::PgTx;
use sqlx::postgres::PgConnection;

use super::support::{bytes_col, col, opt_u32_col, parsed, parsed_opt, unavailable};
use super::support::{integrity, query, query_scalar, version_param};

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
        chain: col(row, "chain")?,
    })
}

const EVENT_COLS: &str = "seq, at, actor, owner_id, action, target, details, prev_hash, hash, owner_uid, key_version, chain";

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

    async fn chain_heads(&mut self) -> Result<Vec<RecordedHead>> {
        let rows = query(
            "SELECT NULL::text AS chain, seq, hash, key_version, 0::bigint AS anchored_seq \
             FROM audit_head WHERE id = 1 \
             UNION ALL SELECT chain, seq, hash, key_version, anchored_seq FROM audit_chains",
        )
        .fetch_all(self.conn())
        .await
        .map_err(unavailable)?;
        rows.iter()
            .map(|row| {
                Ok(RecordedHead {
                    chain: col(row, "chain")?,
                    seq: col(row, "seq")?,
                    hash: bytes_col::<32>(row, "hash").ok().map(ChainHash::from_bytes),
                    key_version: opt_u32_col(row, "key_version")?,
                    anchored: col(row, "anchored_seq")?,
                })
            })
            .collect()
    }

    async fn mark_anchored(&mut self, heads: &[AnchoredHead]) -> Result<()> {
        for head in heads {
            query("UPDATE audit_chains SET anchored_seq = $2 WHERE chain = $1")
                .bind(head.chain.as_str())
                .bind(head.seq)
                .execute(self.conn())
                .await
                .map_err(unavailable)?;
        }
        Ok(())
    }
}

/// An owner's write ([`super::support::Write::begin_owner`]): the owner, the identity
/// that names its chain, and the chain's head as locked.
#[derive(Debug)]
pub(super) struct Lane {
    owner: OwnerId,
    uid: String,
    head: ChainHead,
}

/// Locks the head of `owner`'s chain (`FOR UPDATE`), creating the head row on the
/// chain's first write. `None` when there is no such owner.
pub(super) async fn lock_lane(conn: &mut PgConnection, owner: &OwnerId) -> Result<Option<Lane>> {
    const LOCK: &str = "SELECT u.uid, c.seq, c.hash, c.key_version FROM users u \
         JOIN audit_chains c ON c.chain = u.uid WHERE u.id = $1 FOR UPDATE OF c";
    let mut row = query(LOCK)
        .bind(owner.as_str())
        .fetch_optional(&mut *conn)
        .await
        .map_err(unavailable)?;
    if row.is_none() {
        query(
            "INSERT INTO audit_chains (chain, seq, hash) SELECT uid, 0, $2 FROM users WHERE id = $1 \
             ON CONFLICT (chain) DO NOTHING",
        )
        .bind(owner.as_str())
        .bind(ChainHash::GENESIS.as_bytes().as_slice())
        .execute(&mut *conn)
        .await
        .map_err(unavailable)?;
        row = query(LOCK)
            .bind(owner.as_str())
            .fetch_optional(&mut *conn)
            .await
            .map_err(unavailable)?;
    }
    row.map(|row| {
        Ok(Lane {
            owner: owner.clone(),
            uid: col(&row, "uid")?,
            head: ChainHead {
                seq: col(&row, "seq")?,
                hash: ChainHash::from_bytes(bytes_col::<32>(&row, "hash")?),
                key_version: opt_u32_col(&row, "key_version")?,
            },
        })
    })
    .transpose()
}

/// The next global event number.
async fn next_seq(conn: &mut PgConnection) -> Result<i64> {
    query_scalar("SELECT nextval('audit_events_seq')")
        .fetch_one(&mut *conn)
        .await
        .map_err(unavailable)
}

/// Appends `event` to its chain (core's [`NewAuditEvent::chain`]): in a system write,
/// which holds the system chain's head (`system`, as locked) and runs alone; or in an
/// owner's write (`lane`), whose events must go into that owner's chain. Takes the next
/// number, links the event after its chain's head (keyed under `keys` when held: core
/// decides), inserts it and moves the head.
pub(super) async fn append(
    conn: &mut PgConnection,
    system: &mut ChainHead,
    lane: Option<&mut Lane>,
    event: NewAuditEvent,
    keys: Option<&ChainKeys>,
) -> Result<AuditEvent> {
    if let Some(lane) = lane {
        let event = event.with_owner_uid(Some(lane.uid.clone()));
        if event.owner.as_ref() != Some(&lane.owner) || event.chain().is_none() {
            return Err(integrity("an owner's write appended to another chain"));
        }
        // Owners' writes run side by side, so their numbers are taken in order of commit:
        // under a lock held until this transaction ends, whoever reads the log after a
        // number never sees a smaller one commit later (the webhook worker tails it so).
        let seq: i64 = query_scalar(
            "SELECT nextval('audit_events_seq') \
             FROM (SELECT pg_advisory_xact_lock(122511586554484)) AS in_commit_order",
        )
        .fetch_one(&mut *conn)
        .await
        .map_err(unavailable)?;
        let event = insert_linked(conn, &lane.head, seq, event, keys).await?;
        lane.head = head_of(&event);
        return Ok(event);
    }
    // The immutable identity of the owner's account as it is in this transaction.
    let event = match (&event.owner_uid, &event.owner) {
        (None, Some(owner)) => {
            let uid: Option<String> = query_scalar("SELECT uid FROM users WHERE id = $1")
                .bind(owner.as_str())
                .fetch_optional(&mut *conn)
                .await
                .map_err(unavailable)?;
            event.with_owner_uid(uid)
        }
        _ => event,
    };
    let (seq, head) = match event.chain() {
        None => (next_seq(conn).await?, *system),
        // No owner's write runs beside a system write: the head needs no lock.
        Some(chain) => {
            let row = query(
                "SELECT nextval('audit_events_seq') AS next, h.seq, h.hash, h.key_version \
                 FROM (SELECT 1) AS one LEFT JOIN audit_chains h ON h.chain = $1",
            )
            .bind(chain.as_str())
            .fetch_one(&mut *conn)
            .await
            .map_err(unavailable)?;
            let head = match col::<Option<i64>>(&row, "seq")? {
                None => ChainHead::EMPTY,
                Some(seq) => ChainHead {
                    seq,
                    hash: ChainHash::from_bytes(bytes_col::<32>(&row, "hash")?),
                    key_version: opt_u32_col(&row, "key_version")?,
                },
            };
            (col(&row, "next")?, head)
        }
    };
    let event = insert_linked(conn, &head, seq, event, keys).await?;
    if event.chain.is_none() {
        *system = head_of(&event);
    }
    Ok(event)
}

/// The head a chain has once `event` is its newest.
fn head_of(event: &AuditEvent) -> ChainHead {
    ChainHead {
        seq: event.seq,
        hash: event.hash,
        key_version: event.key_version,
    }
}

/// Links `event` after `head` as number `seq`, inserts it and moves its chain's head.
async fn insert_linked(
    conn: &mut PgConnection,
    head: &ChainHead,
    seq: i64,
    event: NewAuditEvent,
    keys: Option<&ChainKeys>,
) -> Result<AuditEvent> {
    let event = head.link_next(seq, event, keys)?;
    let key_version = event.key_version.map(version_param).transpose()?;
    query(
        "INSERT INTO audit_events (seq, at, actor, owner_id, action, target, details, prev_hash, hash, owner_uid, key_version, chain)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(event.seq)
    .bind(event.at)
    .bind(event.actor.to_string())
    .bind(event.owner.as_ref().map(OwnerId::as_str))
    .bind(event.action.as_str())
    .bind(&event.target)
    .bind(&event.details)
    .bind(event.prev_hash.as_bytes().as_slice())
    .bind(event.hash.as_bytes().as_slice())
    .bind(event.owner_uid.as_deref())
    .bind(key_version)
    .bind(event.chain.as_deref())
    .execute(&mut *conn)
    .await
    .map_err(unavailable)?;
    let moved = match &event.chain {
        None => query(
            "UPDATE audit_head SET seq = $1, hash = $2, key_version = $3 WHERE id = 1 AND $4::text IS NULL",
        ),
        Some(_) => query(
            "INSERT INTO audit_chains (chain, seq, hash, key_version) VALUES ($4, $1, $2, $3) \
             ON CONFLICT (chain) DO UPDATE SET seq = EXCLUDED.seq, hash = EXCLUDED.hash, \
             key_version = EXCLUDED.key_version",
        ),
    }
    .bind(event.seq)
    .bind(event.hash.as_bytes().as_slice())
    .bind(key_version)
    .bind(event.chain.as_deref())
    .execute(&mut *conn)
    .await
    .map_err(unavailable)?
    .rows_affected();
    if moved != 1 {
        return Err(integrity("audit head"));
    }
    Ok(event)
}
