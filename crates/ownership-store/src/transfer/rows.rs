//! The one reader and writer of rows for [`crate::transfer`], over the row layer's
//! [`Driver`]: the table list is [`tables_at`]'s, values cross as [`Value`]s. Each adapter
//! only opens the transaction (a snapshot to read, the write lock to import) and hands
//! its driver here.

use ownership_core::Error;

use super::{
    AfterPage, ChainHead, Event, EventSender, Events, Kind, PAGE_ROWS, Progress, Snapshot, Summary,
    Table, Tally, TransferError, Value, check_value, forward_page, is_checked_empty, is_replaced,
    page_sql, refuse_rows, send, tables_at,
};
use crate::sql::driver::{
    Driver, Param, Val, blob, count_at, exec, from_micros, int, micros, pick, query_all, query_one,
    query_opt,
};

/// Most parameters in one multi-row `INSERT` (well within both databases' limits).
const MAX_PARAMS: usize = 900;

/// `e`, said as what failed.
fn failed(what: &str) -> impl FnOnce(Error) -> TransferError + '_ {
    move |e| TransferError::new(format!("{what} failed: {}", TransferError::from(e)))
}

/// The highest applied migration (0 when the store was never migrated).
async fn schema_version<D: Driver>(d: &mut D) -> Result<i64, TransferError> {
    let has = pick::<D>(
        "SELECT 1 WHERE to_regclass('schema_migrations') IS NOT NULL",
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'",
    );
    let reading = failed("reading the schema version");
    if query_opt(d, has, &[]).await.map_err(reading)?.is_none() {
        return Ok(0);
    }
    let sql = "SELECT CAST(COALESCE(MAX(version), 0) AS BIGINT) FROM schema_migrations";
    let row = query_one(d, sql, &[], "schema version").await?;
    Ok(int(&row, 0)?)
}

/// The audit head (locked `FOR UPDATE` when `lock`: PostgreSQL's writers wait on it).
async fn head<D: Driver>(d: &mut D, version: i64, lock: bool) -> Result<ChainHead, TransferError> {
    if version < 3 {
        return Ok(ChainHead {
            seq: 0,
            hash: hex::encode([0u8; 32]),
        });
    }
    let sql = if lock {
        "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE"
    } else {
        "SELECT seq, hash FROM audit_head WHERE id = 1"
    };
    let row = query_opt(d, sql, &[])
        .await
        .map_err(failed("reading the audit head"))?
        .ok_or_else(|| TransferError::new("the store has no audit head row"))?;
    Ok(ChainHead {
        seq: int(&row, 0)?,
        hash: hex::encode(blob(&row, 1)?),
    })
}

async fn count<D: Driver>(d: &mut D, t: &Table) -> Result<u64, TransferError> {
    let row = query_one(d, &format!("SELECT COUNT(*) FROM {}", t.name), &[], t.name)
        .await
        .map_err(failed(&format!("counting {}", t.name)))?;
    Ok(count_at(&row, 0, t.name)?)
}

/// A column value as carried ([`Value::Time`] is microseconds on both sides).
fn value_of(kind: Kind, v: Val) -> Result<Value, TransferError> {
    Ok(match (v, kind) {
        (Val::Null, _) => Value::Null,
        (Val::Int(n), Kind::Time) => Value::Time(n),
        (Val::Time(at), _) => Value::Time(micros(at)?),
        (Val::Int(n), _) => Value::Int(n),
        (Val::Text(s), _) => Value::Text(s),
        (Val::Bytes(b), _) => Value::Bytes(b),
    })
}

/// A carried value as a parameter of a column of `kind` (typed, even when NULL).
fn param_of(kind: Kind, v: &Value) -> Result<Param<'_>, TransferError> {
    let wrong = || TransferError::new("a value has the wrong type");
    Ok(match (kind, v) {
        (Kind::Text, Value::Text(s)) => Param::from(s.as_str()),
        (Kind::Int | Kind::BigInt, Value::Int(n)) => Param::from(*n),
        (Kind::Bytes, Value::Bytes(b)) => Param::from(b.as_slice()),
        (Kind::Time, Value::Time(us)) => Param::from(from_micros(*us)?),
        (Kind::Text, Value::Null) => Param::Text(None),
        (Kind::Int | Kind::BigInt, Value::Null) => Param::Int(None),
        (Kind::Bytes, Value::Null) => Param::Bytes(None),
        (Kind::Time, Value::Null) => Param::Time(None),
        _ => return Err(wrong()),
    })
}

fn placeholder(i: usize) -> String {
    format!("${i}")
}

/// Reads one snapshot (the transaction `d` is in) into `tx`, page by page.
pub(crate) async fn export<D: Driver>(
    d: &mut D,
    backend: &str,
    tx: &EventSender,
) -> Result<(), TransferError> {
    let version = schema_version(d).await?;
    super::check_known(version)?;
    let head = head(d, version, false).await?;
    let mut counts = Vec::new();
    for t in tables_at(version) {
        counts.push((t, count(d, t).await?));
    }
    let snapshot = Snapshot {
        backend: backend.into(),
        schema_version: version,
        head,
        counts,
    };
    if !send(tx, Ok(Event::Begin(snapshot))).await {
        return Ok(());
    }
    let limit = i64::try_from(PAGE_ROWS).unwrap_or(1000);
    for t in tables_at(version) {
        let first_sql = page_sql(t, true, placeholder);
        let next_sql = page_sql(t, false, placeholder);
        let mut after: Option<Vec<Value>> = None;
        loop {
            let (sql, mut params) = match &after {
                None => (&first_sql, Vec::new()),
                Some(key) => (
                    &next_sql,
                    key.iter()
                        .zip(t.key())
                        .map(|(v, c)| param_of(c.kind, v))
                        .collect::<Result<Vec<_>, _>>()?,
                ),
            };
            params.push(Param::from(limit));
            let mut page = Vec::new();
            let what = format!("reading {}", t.name);
            for raw in query_all(d, sql, &params).await.map_err(failed(&what))? {
                if raw.len() != t.columns.len() {
                    return Err(TransferError::new(format!("a row of {} is short", t.name)));
                }
                let mut row = Vec::with_capacity(raw.len());
                for (v, c) in raw.into_iter().zip(t.columns) {
                    let value = value_of(c.kind, v)?;
                    check_value(t, c, &value)?;
                    row.push(value);
                }
                page.push(row);
            }
            match forward_page(tx, t, page).await {
                AfterPage::Next(key) => after = Some(key),
                AfterPage::TableDone => break,
                AfterPage::Stop => return Ok(()),
            }
        }
    }
    Ok(())
}

/// The tables among `tables` that hold rows, with their counts.
pub(crate) async fn occupied<D: Driver>(
    d: &mut D,
    tables: &[&'static Table],
) -> Result<Vec<(&'static str, u64)>, TransferError> {
    let mut out = Vec::new();
    for t in tables {
        let n = count(d, t).await?;
        if n > 0 {
            out.push((t.name, n));
        }
    }
    Ok(out)
}

/// `rows` of `t` in multi-row `INSERT`s.
async fn insert_page<D: Driver>(
    d: &mut D,
    t: &Table,
    rows: &[Vec<Value>],
) -> Result<(), TransferError> {
    let width = t.columns.len().max(1);
    for chunk in rows.chunks((MAX_PARAMS / width).max(1)) {
        let tuples = (0..chunk.len())
            .map(|r| {
                let cells = (1..=width).map(|c| placeholder(r * width + c));
                format!("({})", cells.collect::<Vec<_>>().join(", "))
            })
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "INSERT INTO {} ({}) VALUES {tuples}",
            t.name,
            t.column_list()
        );
        let mut params = Vec::with_capacity(chunk.len() * width);
        for row in chunk {
            for (c, v) in t.columns.iter().zip(row) {
                params.push(param_of(c.kind, v)?);
            }
        }
        exec(d, &sql, &params)
            .await
            .map_err(failed(&format!("writing {}", t.name)))?;
    }
    Ok(())
}

/// A stream to import: its snapshot (already taken off the events), the rest of it, and
/// what to tell as pages are written.
pub(crate) struct Incoming(pub Snapshot, pub Events, pub Progress);

/// Writes a stream into the store `d` holds the write lock of, after checking the store
/// is at the stream's version and empty; the summary to report once committed.
pub(crate) async fn import<D: Driver>(
    d: &mut D,
    incoming: &mut Incoming,
) -> Result<Summary, TransferError> {
    let Incoming(snapshot, events, progress) = incoming;
    let version = schema_version(d).await?;
    if version != snapshot.schema_version {
        return Err(TransferError::new(format!(
            "the target store is at schema version {version}, not the rows' {}",
            snapshot.schema_version
        )));
    }
    // Every mutation locks the audit head first: holding it, no server can write here
    // until this transaction ends.
    head(d, version, true).await?;
    let checked: Vec<&'static Table> = tables_at(version).filter(|t| is_checked_empty(t)).collect();
    refuse_rows(&occupied(d, &checked).await?)?;
    for t in tables_at(version).filter(|t| is_replaced(t)) {
        exec(d, &format!("DELETE FROM {}", t.name), &[])
            .await
            .map_err(failed(&format!("clearing {}", t.name)))?;
    }
    let mut tally = Tally::new(snapshot);
    while let Some(item) = events.recv().await {
        let Event::Rows { table, rows } = item? else {
            return Err(TransferError::new("a second snapshot in one row stream"));
        };
        let (done, total) = tally.page(table, rows.len())?;
        insert_page(d, table, &rows).await?;
        progress(table, done, total);
    }
    tally.finish()?;
    // The audit sequence is not a serial column (each event's number is the head's plus
    // one), so there is no sequence to move; the head itself was copied.
    if head(d, version, false).await? != snapshot.head {
        return Err(TransferError::new(
            "the audit head written differs from the source's",
        ));
    }
    Ok(Summary::of(snapshot))
}
