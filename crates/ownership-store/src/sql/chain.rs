//! An audit chain's append, inside the transaction of the mutation it records: into the
//! system chain or an owner's chain, with its head moved, and an owner's write's chain
//! lock (its lane). Used by the transaction ([`super::tx`]) and the adapters; the listings
//! and the verification's rows are [`super::audit`]'s.

use ownership_core::audit::{AuditEvent, ChainHash, ChainHead, ChainKeys, NewAuditEvent};
use ownership_core::{OwnerId, Result};

use super::driver::*;

/// The newest event's number as the heads record it: the largest head of any chain, the
/// system chain's (`audit_head`) or an owner's (`audit_chains`); 0 when there is none.
/// Every append moves exactly one head to its event, so in a consistent store this is the
/// newest event's number, and a head ahead of the events is a change the log does not
/// explain (libSQL's watcher then flushes its cache).
pub(crate) async fn newest_seq<D: Driver>(d: &mut D) -> Result<i64> {
    let sql = "SELECT COALESCE(MAX(seq), 0) FROM \
               (SELECT seq FROM audit_head UNION ALL SELECT seq FROM audit_chains) AS heads";
    int(&query_one(d, sql, &[], "newest audit head").await?, 0)
}

/// An owner's write ([`lock_lane`]): the owner, the account identity that names its chain,
/// and the chain's head as locked.
#[derive(Debug)]
pub(crate) struct Lane {
    owner: OwnerId,
    uid: String,
    head: ChainHead,
}

/// Locks the head of `owner`'s chain (`FOR UPDATE` on PostgreSQL: writes of the same owner
/// queue there, other owners' do not), creating the head row on the chain's first write.
/// `None` when there is no such owner.
pub(crate) async fn lock_lane<D: Driver>(d: &mut D, owner: &OwnerId) -> Result<Option<Lane>> {
    const LOCK: &str = "SELECT chain, seq, hash, key_version FROM audit_chains \
         WHERE chain = (SELECT uid FROM users WHERE id = $1) FOR UPDATE";
    let mut row = query_opt(d, LOCK, args![owner.as_str()]).await?;
    if row.is_none() {
        let sql = "INSERT INTO audit_chains (chain, seq, hash) \
                   SELECT uid, 0, $2 FROM users WHERE id = $1 ON CONFLICT (chain) DO NOTHING";
        let genesis = ChainHash::GENESIS;
        exec(d, sql, args![owner.as_str(), genesis.as_bytes().as_slice()]).await?;
        row = query_opt(d, LOCK, args![owner.as_str()]).await?;
    }
    row.map(|row| {
        Ok(Lane {
            owner: owner.clone(),
            uid: text(&row, 0)?,
            head: head_at(&row, 1)?,
        })
    })
    .transpose()
}

/// The chain head in columns `i..i + 3` (seq, hash, key version); NULLs: an empty chain.
fn head_at(row: &[Val], i: usize) -> Result<ChainHead> {
    if opt_int(row, i)?.is_none() {
        return Ok(ChainHead::EMPTY);
    }
    Ok(ChainHead {
        seq: int(row, i)?,
        hash: ChainHash::from_bytes(bytes::<32>(row, i + 1, "audit head hash")?),
        key_version: opt_u32(row, i + 2, "audit key version")?,
    })
}

/// The head a chain has once `event` is its newest.
fn head_of(event: &AuditEvent) -> ChainHead {
    ChainHead {
        seq: event.seq,
        hash: event.hash,
        key_version: event.key_version,
    }
}

/// How the write that appends runs beside others.
#[derive(Debug)]
pub(crate) enum Writing<'a> {
    /// Alone: libSQL's one writer, or PostgreSQL's exclusive writes lock.
    Alone,
    /// An owner's write, holding its lane: its events go into that owner's chain.
    Owner(&'a mut Lane),
    /// A write of no owner's rows beside owners' writes, holding the system chain's head:
    /// its events go into the system chain.
    Unowned,
}

/// The next event number, taken under a lock held until commit, so numbers commit in
/// order (whoever tails the log after a number never sees a smaller one commit later):
/// for a write that runs beside others.
async fn next_in_commit_order<D: Driver>(d: &mut D) -> Result<i64> {
    let sql = pick::<D>(
        "SELECT nextval('audit_events_seq') \
         FROM (SELECT pg_advisory_xact_lock(122511586554484)) AS in_commit_order",
        "SELECT COALESCE(MAX(seq), 0) + 1 FROM audit_events",
    );
    int(&query_one(d, sql, &[], "audit sequence").await?, 0)
}

/// Appends `event` to its chain (core's [`NewAuditEvent::chain`]) and returns it linked.
/// A write beside others (`writing`) appends only to the chain it holds, with a number in
/// commit order ([`next_in_commit_order`]). A write alone may append to any chain:
/// `system` is the system chain's head when already read, and an owner chain's head needs
/// no lock.
pub(crate) async fn append<D: Driver>(
    d: &mut D,
    system: &mut Option<ChainHead>,
    writing: Writing<'_>,
    event: NewAuditEvent,
    keys: Option<&ChainKeys>,
) -> Result<AuditEvent> {
    match writing {
        Writing::Owner(lane) => {
            let event = event.with_owner_uid(Some(lane.uid.clone()));
            if event.owner.as_ref() != Some(&lane.owner) || event.chain().is_none() {
                return Err(integrity("an owner's write appended to another chain"));
            }
            let seq = next_in_commit_order(d).await?;
            let linked = insert_linked(d, &lane.head, seq, event, keys).await?;
            lane.head = head_of(&linked);
            return Ok(linked);
        }
        Writing::Unowned => {
            let (Some(head), None) = (*system, event.owner.as_ref()) else {
                return Err(integrity(
                    "an unowned write appended an event naming an owner",
                ));
            };
            let seq = next_in_commit_order(d).await?;
            let linked = insert_linked(d, &head, seq, event, keys).await?;
            *system = Some(head_of(&linked));
            return Ok(linked);
        }
        Writing::Alone => {}
    }
    // The immutable identity of the owner's account as it is in this transaction.
    let event = match (&event.owner_uid, &event.owner) {
        (None, Some(owner)) => {
            let sql = "SELECT uid FROM users WHERE id = $1";
            let uid = match query_opt(d, sql, args![owner.as_str()]).await? {
                Some(row) => opt_text(&row, 0)?,
                None => None,
            };
            event.with_owner_uid(uid)
        }
        _ => event,
    };
    let next = pick::<D>(
        "nextval('audit_events_seq')",
        "(SELECT COALESCE(MAX(seq), 0) + 1 FROM audit_events)",
    );
    let (row, head) = match (event.chain(), *system) {
        (None, Some(head)) => {
            let row = query_one(d, &format!("SELECT {next}"), &[], "audit sequence").await?;
            (row, Some(head))
        }
        (None, None) => {
            let sql = format!("SELECT {next}, seq, hash, key_version FROM audit_head WHERE id = 1");
            (query_one(d, &sql, &[], "audit head").await?, None)
        }
        (Some(chain), _) => {
            let sql = format!(
                "SELECT {next}, h.seq, h.hash, h.key_version FROM (SELECT 1) AS one \
                 LEFT JOIN audit_chains h ON h.chain = $1"
            );
            (query_one(d, &sql, args![chain], "audit head").await?, None)
        }
    };
    let head = match head {
        Some(head) => head,
        None => head_at(&row, 1)?,
    };
    let linked = insert_linked(d, &head, int(&row, 0)?, event, keys).await?;
    if linked.chain.is_none() {
        *system = Some(head_of(&linked));
    }
    Ok(linked)
}

/// The columns of an event row, as [`insert_linked`] binds them (`$1`..`$12`).
const EVENT_COLUMNS: &str = "seq, at, actor, owner_id, action, target, details, prev_hash, \
     hash, owner_uid, key_version, chain";

/// Moves the system chain's head to the event just inserted (`$1` its number, `$9` its
/// hash, `$11` its key version), if it is still at `$13`.
const MOVE_SYSTEM_HEAD: &str = "UPDATE audit_head SET seq = $1, hash = $9, key_version = $11 \
     WHERE id = 1 AND seq = $13";

/// Moves an owner chain's head (`$12`) to the event just inserted, if it is still at `$13`
/// (created at the chain's first event).
const MOVE_CHAIN_HEAD: &str = "INSERT INTO audit_chains (chain, seq, hash, key_version) \
     SELECT $12, $1, $9, $11 {FROM} ON CONFLICT (chain) DO UPDATE SET \
     seq = excluded.seq, hash = excluded.hash, key_version = excluded.key_version \
     WHERE audit_chains.seq = $13";

/// Links `event` after `head` as number `seq`, inserts it and moves its chain's head: on
/// PostgreSQL in one statement (the insert a data-modifying `WITH`, so a write beside
/// others holds the commit-order lock one round trip less), on SQLite in two.
async fn insert_linked<D: Driver>(
    d: &mut D,
    head: &ChainHead,
    seq: i64,
    event: NewAuditEvent,
    keys: Option<&ChainKeys>,
) -> Result<AuditEvent> {
    let linked = head.link_next(seq, event, keys)?;
    let params = args![
        linked.seq,
        linked.at,
        linked.actor.to_string(),
        linked.owner.as_ref().map(OwnerId::as_str),
        linked.action.as_str(),
        linked.target.as_str(),
        linked.details.as_str(),
        linked.prev_hash.as_bytes().as_slice(),
        linked.hash.as_bytes().as_slice(),
        linked.owner_uid.as_deref(),
        linked.key_version,
        linked.chain.as_deref(),
        head.seq,
    ];
    let insert = format!(
        "INSERT INTO audit_events ({EVENT_COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
    );
    let move_head = match linked.chain {
        None => MOVE_SYSTEM_HEAD.to_owned(),
        Some(_) if D::POSTGRES => MOVE_CHAIN_HEAD.replace("{FROM}", "FROM inserted"),
        Some(_) => MOVE_CHAIN_HEAD.replace("{FROM}", "WHERE true"),
    };
    let moved = if D::POSTGRES {
        let both = match linked.chain {
            None => format!(
                "WITH inserted AS ({insert} RETURNING seq) {move_head} \
                 AND EXISTS (SELECT 1 FROM inserted)"
            ),
            Some(_) => format!("WITH inserted AS ({insert} RETURNING seq) {move_head}"),
        };
        exec(d, &both, params).await?
    } else {
        exec(d, &insert, &params[..12]).await?;
        exec(d, &move_head, params).await?
    };
    if moved != 1 {
        return Err(integrity("audit head"));
    }
    Ok(linked)
}
