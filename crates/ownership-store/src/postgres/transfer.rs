//! The PostgreSQL side of [`crate::transfer`]: a snapshot read in one `REPEATABLE READ
//! READ ONLY` transaction, and an import in one transaction that first locks the audit
//! head (as every mutation does), so no writer can interleave with it.

use sqlx::postgres::{PgConnection, PgRow};
use sqlx::{AssertSqlSafe, Row};
use time::OffsetDateTime;

use super::PgStore;
use super::support::{query, query_scalar};
use crate::transfer::{
    AfterPage, ChainHead, Event, EventSender, Events, Kind, PAGE_ROWS, Progress, Snapshot, Summary,
    Table, Tally, TransferError, Value, check_value, forward_page, is_checked_empty, is_replaced,
    page_sql, refuse_rows, send, tables_at,
};

/// Statement and idle limits are lifted for a transfer's transaction: one page never
/// takes long, but the other side (a slow disk, a migration of the target) may keep
/// this transaction waiting between statements.
const NO_LIMITS: [&str; 2] = [
    "SET LOCAL statement_timeout = 0",
    "SET LOCAL idle_in_transaction_session_timeout = 0",
];

fn failed(what: &str, e: &sqlx::Error) -> TransferError {
    tracing::error!(error = %e, what, "postgres transfer statement failed");
    let reason = match e.as_database_error() {
        Some(db) => db.message().to_owned(),
        None => "the database connection failed".to_owned(),
    };
    TransferError::new(format!("PostgreSQL: {what} failed: {reason}"))
}

fn placeholder(i: usize) -> String {
    format!("${i}")
}

fn micros(at: OffsetDateTime) -> Result<i64, TransferError> {
    i64::try_from(at.unix_timestamp_nanos().div_euclid(1_000))
        .map_err(|_| TransferError::new("a stored time is out of range"))
}

fn time_of(us: i64) -> Result<OffsetDateTime, TransferError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1_000)
        .map_err(|_| TransferError::new("a time is out of range"))
}

fn decode_err(t: &Table, c: &str, e: &sqlx::Error) -> TransferError {
    tracing::error!(error = %e, table = t.name, column = c, "a stored value does not decode");
    TransferError::new(format!("a stored value of {}.{c} does not decode", t.name))
}

fn row_of(t: &Table, row: &PgRow) -> Result<Vec<Value>, TransferError> {
    let mut out = Vec::with_capacity(t.columns.len());
    for (i, c) in t.columns.iter().enumerate() {
        let err = |e: sqlx::Error| decode_err(t, c.name, &e);
        let value = match c.kind {
            Kind::Text => row
                .try_get::<Option<String>, _>(i)
                .map_err(err)?
                .map_or(Value::Null, Value::Text),
            Kind::Int => row
                .try_get::<Option<i32>, _>(i)
                .map_err(err)?
                .map_or(Value::Null, |n| Value::Int(i64::from(n))),
            Kind::BigInt => row
                .try_get::<Option<i64>, _>(i)
                .map_err(err)?
                .map_or(Value::Null, Value::Int),
            Kind::Bytes => row
                .try_get::<Option<Vec<u8>>, _>(i)
                .map_err(err)?
                .map_or(Value::Null, Value::Bytes),
            Kind::Time => match row.try_get::<Option<OffsetDateTime>, _>(i).map_err(err)? {
                Some(at) => Value::Time(micros(at)?),
                None => Value::Null,
            },
        };
        check_value(t, c, &value)?;
        out.push(value);
    }
    Ok(out)
}

async fn schema_version(conn: &mut PgConnection) -> Result<i64, TransferError> {
    let exists: bool = query_scalar("SELECT to_regclass('schema_migrations') IS NOT NULL")
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| failed("reading the schema version", &e))?;
    if !exists {
        return Ok(0);
    }
    query_scalar("SELECT COALESCE(MAX(version), 0)::BIGINT FROM schema_migrations")
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| failed("reading the schema version", &e))
}

async fn head(
    conn: &mut PgConnection,
    version: i64,
    lock: bool,
) -> Result<ChainHead, TransferError> {
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
    let row = query(sql)
        .fetch_optional(&mut *conn)
        .await
        .map_err(|e| failed("reading the audit head", &e))?
        .ok_or_else(|| TransferError::new("the store has no audit head row"))?;
    let seq: i64 = row
        .try_get("seq")
        .map_err(|e| failed("reading the audit head", &e))?;
    let hash: Vec<u8> = row
        .try_get("hash")
        .map_err(|e| failed("reading the audit head", &e))?;
    Ok(ChainHead {
        seq,
        hash: hex::encode(hash),
    })
}

async fn count(conn: &mut PgConnection, t: &Table) -> Result<u64, TransferError> {
    let n: i64 = query_scalar(AssertSqlSafe(format!("SELECT COUNT(*) FROM {}", t.name)))
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| failed(&format!("counting {}", t.name), &e))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

async fn no_limits(conn: &mut PgConnection) -> Result<(), TransferError> {
    for sql in NO_LIMITS {
        query(sql)
            .execute(&mut *conn)
            .await
            .map_err(|e| failed("setting up the transaction", &e))?;
    }
    Ok(())
}

async fn export_in(store: &PgStore, tx: &EventSender) -> Result<(), TransferError> {
    let mut db = store
        .pool
        .begin()
        .await
        .map_err(|e| failed("starting the snapshot", &e))?;
    query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *db)
        .await
        .map_err(|e| failed("starting the snapshot", &e))?;
    no_limits(&mut db).await?;
    let version = schema_version(&mut db).await?;
    crate::transfer::check_known(version)?;
    let head = head(&mut db, version, false).await?;
    let mut counts = Vec::new();
    for t in tables_at(version) {
        counts.push((t, count(&mut db, t).await?));
    }
    let snapshot = Snapshot {
        backend: "postgres".into(),
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
            let mut q = match &after {
                None => query(AssertSqlSafe(first_sql.clone())),
                Some(key) => {
                    let mut q = query(AssertSqlSafe(next_sql.clone()));
                    for (v, c) in key.iter().zip(t.key()) {
                        q = match (v, c.kind) {
                            (Value::Int(n), Kind::Int) => {
                                q.bind(i32::try_from(*n).unwrap_or(i32::MAX))
                            }
                            (Value::Int(n), _) => q.bind(*n),
                            (Value::Text(s), _) => q.bind(s.clone()),
                            (Value::Bytes(b), _) => q.bind(b.clone()),
                            (Value::Time(us), _) => q.bind(time_of(*us)?),
                            (Value::Null, _) => q.bind(None::<String>),
                        };
                    }
                    q
                }
            };
            q = q.bind(limit);
            let page = q
                .fetch_all(&mut *db)
                .await
                .map_err(|e| failed(&format!("reading {}", t.name), &e))?
                .iter()
                .map(|r| row_of(t, r))
                .collect::<Result<Vec<_>, _>>()?;
            match forward_page(tx, t, page).await {
                AfterPage::Next(key) => after = Some(key),
                AfterPage::TableDone => break,
                AfterPage::Stop => return Ok(()),
            }
        }
    }
    db.rollback()
        .await
        .map_err(|e| failed("ending the snapshot", &e))
}

fn array_type(kind: Kind) -> &'static str {
    match kind {
        Kind::Text => "text[]",
        Kind::Int => "int4[]",
        Kind::BigInt => "int8[]",
        Kind::Bytes => "bytea[]",
        Kind::Time => "timestamptz[]",
    }
}

/// `INSERT INTO t (cols) SELECT * FROM UNNEST($1::text[], …)`: a page in one statement,
/// one array parameter per column.
fn insert_sql(t: &Table) -> String {
    let arrays = t
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| format!("${}::{}", i + 1, array_type(c.kind)))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "INSERT INTO {} ({}) SELECT * FROM UNNEST({arrays})",
        t.name,
        t.column_list()
    )
}

async fn insert_page(
    conn: &mut PgConnection,
    t: &Table,
    rows: &[Vec<Value>],
) -> Result<(), TransferError> {
    let sql = insert_sql(t);
    let mut q = super::support::query(AssertSqlSafe(sql));
    for (i, c) in t.columns.iter().enumerate() {
        let cells = rows.iter().map(|r| r.get(i).unwrap_or(&Value::Null));
        let wrong = || {
            TransferError::new(format!(
                "a value of {}.{} has the wrong type",
                t.name, c.name
            ))
        };
        q = match c.kind {
            Kind::Text => q.bind(
                cells
                    .map(|v| match v {
                        Value::Text(s) => Ok(Some(s.clone())),
                        Value::Null => Ok(None),
                        _ => Err(wrong()),
                    })
                    .collect::<Result<Vec<Option<String>>, _>>()?,
            ),
            Kind::Int => q.bind(
                cells
                    .map(|v| match v {
                        Value::Int(n) => i32::try_from(*n).map(Some).map_err(|_| wrong()),
                        Value::Null => Ok(None),
                        _ => Err(wrong()),
                    })
                    .collect::<Result<Vec<Option<i32>>, _>>()?,
            ),
            Kind::BigInt => q.bind(
                cells
                    .map(|v| match v {
                        Value::Int(n) => Ok(Some(*n)),
                        Value::Null => Ok(None),
                        _ => Err(wrong()),
                    })
                    .collect::<Result<Vec<Option<i64>>, _>>()?,
            ),
            Kind::Bytes => q.bind(
                cells
                    .map(|v| match v {
                        Value::Bytes(b) => Ok(Some(b.clone())),
                        Value::Null => Ok(None),
                        _ => Err(wrong()),
                    })
                    .collect::<Result<Vec<Option<Vec<u8>>>, _>>()?,
            ),
            Kind::Time => q.bind(
                cells
                    .map(|v| match v {
                        Value::Time(us) => time_of(*us).map(Some),
                        Value::Null => Ok(None),
                        _ => Err(wrong()),
                    })
                    .collect::<Result<Vec<Option<OffsetDateTime>>, _>>()?,
            ),
        };
    }
    q.execute(&mut *conn)
        .await
        .map_err(|e| failed(&format!("writing {}", t.name), &e))?;
    Ok(())
}

async fn occupied_in(
    conn: &mut PgConnection,
    tables: &[&'static Table],
) -> Result<Vec<(&'static str, u64)>, TransferError> {
    let mut out = Vec::new();
    for t in tables {
        let n = count(conn, t).await?;
        if n > 0 {
            out.push((t.name, n));
        }
    }
    Ok(out)
}

async fn import_body(
    conn: &mut PgConnection,
    snapshot: &Snapshot,
    events: &mut Events,
    progress: &Progress,
) -> Result<(), TransferError> {
    no_limits(conn).await?;
    let version = schema_version(conn).await?;
    if version != snapshot.schema_version {
        return Err(TransferError::new(format!(
            "the target store is at schema version {version}, not the rows' {}",
            snapshot.schema_version
        )));
    }
    // Every mutation locks the audit head first: holding it, no server can write here
    // until this transaction ends.
    head(conn, version, true).await?;
    let checked: Vec<&'static Table> = tables_at(version).filter(|t| is_checked_empty(t)).collect();
    refuse_rows(&occupied_in(conn, &checked).await?)?;
    for t in tables_at(version).filter(|t| is_replaced(t)) {
        query(AssertSqlSafe(format!("DELETE FROM {}", t.name)))
            .execute(&mut *conn)
            .await
            .map_err(|e| failed(&format!("clearing {}", t.name), &e))?;
    }
    let mut tally = Tally::new(snapshot);
    while let Some(item) = events.recv().await {
        let Event::Rows { table, rows } = item? else {
            return Err(TransferError::new("a second snapshot in one row stream"));
        };
        let (done, total) = tally.page(table, rows.len())?;
        insert_page(conn, table, &rows).await?;
        progress(table, done, total);
    }
    tally.finish()?;
    // From schema version 9 event numbers come from a sequence: moved past the copied
    // events, so the next one follows them. The heads themselves were copied.
    if version >= 9 {
        query("SELECT setval('audit_events_seq', (SELECT COALESCE(MAX(seq), 0) + 1 FROM audit_events), false)")
            .execute(&mut *conn)
            .await
            .map_err(|e| failed("moving the audit sequence", &e))?;
    }
    let written = head(conn, version, false).await?;
    if written != snapshot.head {
        return Err(TransferError::new(
            "the audit head written differs from the source's",
        ));
    }
    Ok(())
}

impl PgStore {
    /// Starts reading one snapshot of the store into `tx` (see [`crate::transfer`]).
    pub(crate) fn export(&self, tx: EventSender) {
        let store = self.clone();
        tokio::spawn(async move {
            if let Err(e) = export_in(&store, &tx).await {
                let _ = send(&tx, Err(e)).await;
            }
        });
    }

    /// The tables among `tables` that hold rows.
    pub(crate) async fn occupied(
        &self,
        tables: Vec<&'static Table>,
    ) -> Result<Vec<(&'static str, u64)>, TransferError> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|e| failed("connecting", &e))?;
        occupied_in(&mut conn, &tables).await
    }

    /// Writes a stream in one transaction (see [`crate::transfer::Endpoint::import`]).
    pub(crate) async fn import(
        &self,
        snapshot: Snapshot,
        mut events: Events,
        progress: Progress,
    ) -> Result<Summary, TransferError> {
        let mut db = self
            .pool
            .begin()
            .await
            .map_err(|e| failed("starting the import", &e))?;
        match import_body(&mut db, &snapshot, &mut events, &progress).await {
            Ok(()) => {
                db.commit()
                    .await
                    .map_err(|e| failed("committing the import", &e))?;
                Ok(Summary::of(&snapshot))
            }
            Err(e) => {
                let _ = db.rollback().await;
                Err(e)
            }
        }
    }
}
