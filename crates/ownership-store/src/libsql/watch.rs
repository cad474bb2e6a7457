//! Changes other processes commit to the same database file (the `ownership` CLI while
//! `ownership serve` runs), applied to the server's cache.
//!
//! SQLite's `PRAGMA data_version` changes only when another connection commits, so
//! polling it on the store's own connection is a cheap job on the database thread. When
//! it moved, the audit events after the last sequence seen are read and each is turned
//! into its invalidation ([`invalidation_of`]). When the watcher cannot tell what changed
//! (a read that failed, events missing between what it saw and the head, more events than
//! it reads at once, a head that went backwards) it flushes the whole cache.

use std::future::Future;
use std::time::Duration;

use ::libsql::Connection;
use ownership_core::Result;

use super::LibsqlStore;
use super::conn::Lite;
use crate::cache::{Cached, Invalidation};
use crate::invalidate::invalidation_of;
use crate::sql::driver::{args, int, query_all, query_one};
use crate::sql::{EVENT_COLS, event_from, head};

/// Most events read after one change; more than that flushes the cache instead.
const MOST_EVENTS: i64 = 1_000;

/// What the audit log holds after a sequence number.
#[derive(Debug)]
struct Since {
    /// The audit head's sequence.
    head: i64,
    /// Each event's sequence and what it invalidates ([`Invalidation::All`] for a row that
    /// does not parse).
    events: Vec<(i64, Option<Invalidation>)>,
}

impl LibsqlStore {
    /// `PRAGMA data_version` of the store's connection: it changes when, and only when,
    /// another connection commits to the database.
    pub async fn data_version(&self) -> Result<i64> {
        self.worker
            .run(move |conn| async move {
                int(
                    &query_one(
                        &mut Lite::new(conn),
                        "PRAGMA data_version",
                        &[],
                        "data version",
                    )
                    .await?,
                    0,
                )
            })
            .await
    }

    /// The audit head's sequence.
    pub async fn audit_head(&self) -> Result<i64> {
        self.worker
            .read(async move |c: &Connection| Ok(head(&mut Lite::new(c.clone()), false).await?.seq))
            .await
    }

    /// The head and up to `limit` events after `after`, from one snapshot.
    async fn audit_since(&self, after: i64, limit: i64) -> Result<Since> {
        self.worker
            .read(async move |c: &Connection| {
                let d = &mut Lite::new(c.clone());
                let head = head(d, false).await?.seq;
                let sql = format!(
                    "SELECT {EVENT_COLS} FROM audit_events WHERE seq > $1 ORDER BY seq ASC LIMIT $2"
                );
                let rows = query_all(d, &sql, args![after, limit]).await?;
                let events = rows
                    .iter()
                    .map(|row| {
                        let seq = int(row, 0)?;
                        Ok(match event_from(row) {
                            Ok(event) => (seq, invalidation_of(&event)),
                            Err(_) => (seq, Some(Invalidation::All)),
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(Since { head, events })
            })
            .await
    }
}

/// Where the watcher stands: the data version and audit sequence it has applied.
#[derive(Debug, Clone, Copy)]
struct Position {
    version: i64,
    seq: i64,
}

/// Polls `PRAGMA data_version` every `every` and applies to `cache` what other processes
/// committed, until `shutdown` resolves. The starting point is read at once, so call it
/// when the server starts.
pub async fn watch_external_changes(
    cache: Cached<LibsqlStore>,
    every: Duration,
    shutdown: impl Future<Output = ()> + Send,
) {
    let run = async {
        let mut at = start(&cache).await;
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            at = poll(&cache, at).await;
        }
    };
    tokio::select! {
        () = run => {}
        () = shutdown => {}
    }
}

/// The current position, or `None` when it cannot be read (the first poll that can
/// flushes then).
async fn start(cache: &Cached<LibsqlStore>) -> Option<Position> {
    let store = cache.inner();
    match (store.data_version().await, store.audit_head().await) {
        (Ok(version), Ok(seq)) => Some(Position { version, seq }),
        _ => {
            tracing::warn!("cannot read where the database stands; will flush the cache");
            None
        }
    }
}

fn flush(cache: &Cached<LibsqlStore>, why: &str) {
    tracing::warn!(
        why,
        "cannot tell what another process changed; flushing the cache"
    );
    crate::metrics::invalidation_received("all");
    cache.apply(&Invalidation::All);
}

/// One poll: unchanged, or the changes since `at` applied. Returns the new position.
async fn poll(cache: &Cached<LibsqlStore>, at: Option<Position>) -> Option<Position> {
    let store = cache.inner();
    let version = match store.data_version().await {
        Ok(v) => v,
        Err(_) => {
            flush(cache, "the data version cannot be read");
            return at;
        }
    };
    let Some(at) = at else {
        // Where it stood was never known: everything may be stale.
        let seq = store.audit_head().await.ok()?;
        flush(cache, "the starting position was unknown");
        return Some(Position { version, seq });
    };
    if version == at.version {
        return Some(at);
    }
    // Read after the version, so a commit between the two is in what is read (and moves
    // the version again, which only costs one more read).
    let since = match store.audit_since(at.seq, MOST_EVENTS).await {
        Ok(since) => since,
        Err(_) => {
            flush(cache, "the audit log cannot be read");
            // Skip past what cannot be read, or retry from the same place.
            let seq = store.audit_head().await.unwrap_or(at.seq);
            return Some(Position { version, seq });
        }
    };
    let expected = since.head.saturating_sub(at.seq);
    let contiguous = since
        .events
        .iter()
        .zip(at.seq.saturating_add(1)..)
        .all(|((seq, _), want)| *seq == want);
    let complete = usize::try_from(expected).is_ok_and(|n| n == since.events.len());
    if since.head < at.seq {
        flush(cache, "the audit head went backwards");
    } else if !complete || !contiguous {
        flush(cache, "audit events are missing or too many");
    } else {
        for (_, inv) in &since.events {
            if let Some(inv) = inv {
                crate::metrics::invalidation_received(inv.kind());
                cache.apply(inv);
            }
        }
    }
    Some(Position {
        version,
        seq: since.head,
    })
}
