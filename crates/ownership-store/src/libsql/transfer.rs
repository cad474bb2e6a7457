//! The libSQL side of [`crate::transfer`]: a snapshot read in one read transaction on
//! this store's own connection (WAL mode gives it a stable view while a server keeps
//! writing through another), and an import in one `BEGIN IMMEDIATE` transaction.

use ::libsql::{Connection, Value as Lv};

use super::LibsqlStore;
use super::conn::{db_err, rollback};
use ownership_core::Result as CoreResult;

async fn exec(conn: &Connection, sql: &str, params: Vec<Lv>) -> CoreResult<u64> {
    conn.execute(sql, params).await.map_err(db_err)
}

async fn query_all(conn: &Connection, sql: &str, params: Vec<Lv>) -> CoreResult<Vec<Vec<Lv>>> {
    let mut rows = conn.query(sql, params).await.map_err(db_err)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().await.map_err(db_err)? {
        let mut values = Vec::new();
        for i in 0..rows.column_count() {
            values.push(row.get_value(i).map_err(db_err)?);
        }
        out.push(values);
    }
    Ok(out)
}

async fn query_opt(conn: &Connection, sql: &str, params: Vec<Lv>) -> CoreResult<Option<Vec<Lv>>> {
    Ok(query_all(conn, sql, params).await?.into_iter().next())
}
use crate::transfer::{
    AfterPage, ChainHead, Event, EventSender, Events, Kind, PAGE_ROWS, Progress, Snapshot, Summary,
    Table, Tally, TransferError, Value, check_value, forward_page, is_checked_empty, is_replaced,
    page_sql, refuse_rows, send, tables_at,
};

fn failed(what: &str, e: &::libsql::Error) -> TransferError {
    tracing::error!(error = %e, what, "libsql transfer statement failed");
    TransferError::new(format!("libSQL: {what} failed: {e}"))
}

fn placeholder(i: usize) -> String {
    format!("?{i}")
}

fn to_libsql(v: &Value) -> Lv {
    match v {
        Value::Null => Lv::Null,
        Value::Int(n) | Value::Time(n) => Lv::Integer(*n),
        Value::Text(s) => Lv::Text(s.clone()),
        Value::Bytes(b) => Lv::Blob(b.clone()),
    }
}

fn from_libsql(t: &Table, raw: Vec<Lv>) -> Result<Vec<Value>, TransferError> {
    let mut row = Vec::with_capacity(raw.len());
    for (v, c) in raw.into_iter().zip(t.columns) {
        let value = match (v, c.kind) {
            (Lv::Null, _) => Value::Null,
            (Lv::Integer(n), Kind::Time) => Value::Time(n),
            (Lv::Integer(n), _) => Value::Int(n),
            (Lv::Text(s), _) => Value::Text(s),
            (Lv::Blob(b), _) => Value::Bytes(b),
            (Lv::Real(_), _) => {
                return Err(TransferError::new(format!(
                    "a value of {}.{} has the wrong type",
                    t.name, c.name
                )));
            }
        };
        check_value(t, c, &value)?;
        row.push(value);
    }
    if row.len() != t.columns.len() {
        return Err(TransferError::new(format!("a row of {} is short", t.name)));
    }
    Ok(row)
}

async fn rows(
    conn: &Connection,
    sql: &str,
    params: Vec<Lv>,
) -> Result<Vec<Vec<Lv>>, TransferError> {
    query_all(conn, sql, params)
        .await
        .map_err(TransferError::from)
}

async fn count(conn: &Connection, t: &Table) -> Result<u64, TransferError> {
    let row = query_opt(
        conn,
        &format!("SELECT COUNT(*) FROM {}", t.name),
        Vec::new(),
    )
    .await?;
    match row.as_deref() {
        Some([Lv::Integer(n)]) => Ok(u64::try_from(*n).unwrap_or(0)),
        _ => Err(TransferError::new(format!(
            "cannot count the rows of {}",
            t.name
        ))),
    }
}

/// The highest applied migration (0 when the store was never migrated).
async fn schema_version(conn: &Connection) -> Result<i64, TransferError> {
    let has = rows(
        conn,
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'",
        Vec::new(),
    )
    .await?;
    if has.is_empty() {
        return Ok(0);
    }
    match query_opt(
        conn,
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        Vec::new(),
    )
    .await?
    .as_deref()
    {
        Some([Lv::Integer(n)]) => Ok(*n),
        _ => Err(TransferError::new("cannot read the schema version")),
    }
}

async fn head(conn: &Connection, version: i64) -> Result<ChainHead, TransferError> {
    if version < 3 {
        return Ok(ChainHead {
            seq: 0,
            hash: hex::encode([0u8; 32]),
        });
    }
    match query_opt(
        conn,
        "SELECT seq, hash FROM audit_head WHERE id = 1",
        Vec::new(),
    )
    .await?
    .as_deref()
    {
        Some([Lv::Integer(seq), Lv::Blob(hash)]) => Ok(ChainHead {
            seq: *seq,
            hash: hex::encode(hash),
        }),
        _ => Err(TransferError::new("the store has no audit head row")),
    }
}

async fn export_in(conn: &Connection, tx: &EventSender) -> Result<(), TransferError> {
    let version = schema_version(conn).await?;
    crate::transfer::check_known(version)?;
    let head = head(conn, version).await?;
    let mut counts = Vec::new();
    for t in tables_at(version) {
        counts.push((t, count(conn, t).await?));
    }
    let snapshot = Snapshot {
        backend: "libsql".into(),
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
                Some(key) => (&next_sql, key.iter().map(to_libsql).collect::<Vec<_>>()),
            };
            params.push(Lv::Integer(limit));
            let page = rows(conn, sql, params)
                .await?
                .into_iter()
                .map(|r| from_libsql(t, r))
                .collect::<Result<Vec<_>, _>>()?;
            match forward_page(tx, t, page).await {
                AfterPage::Next(key) => after = Some(key),
                AfterPage::TableDone => break,
                AfterPage::Stop => return Ok(()),
            }
        }
    }
    Ok(())
}

async fn occupied_in(
    conn: &Connection,
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
    conn: &Connection,
    snapshot: &Snapshot,
    events: &mut Events,
    progress: &Progress,
) -> Result<(), TransferError> {
    let version = schema_version(conn).await?;
    if version != snapshot.schema_version {
        return Err(TransferError::new(format!(
            "the target store is at schema version {version}, not the rows' {}",
            snapshot.schema_version
        )));
    }
    let checked: Vec<&'static Table> = tables_at(version).filter(|t| is_checked_empty(t)).collect();
    refuse_rows(&occupied_in(conn, &checked).await?)?;
    for t in tables_at(version).filter(|t| is_replaced(t)) {
        conn.execute(&format!("DELETE FROM {}", t.name), ())
            .await
            .map_err(|e| failed(&format!("clearing {}", t.name), &e))?;
    }
    let mut tally = Tally::new(snapshot);
    while let Some(item) = events.recv().await {
        let Event::Rows { table, rows } = item? else {
            return Err(TransferError::new("a second snapshot in one row stream"));
        };
        let (done, total) = tally.page(table, rows.len())?;
        let sql = crate::transfer::insert_sql(table, placeholder);
        let stmt = conn
            .prepare(&sql)
            .await
            .map_err(|e| failed(&format!("writing {}", table.name), &e))?;
        for row in &rows {
            stmt.execute(row.iter().map(to_libsql).collect::<Vec<_>>())
                .await
                .map_err(|e| failed(&format!("writing {}", table.name), &e))?;
            stmt.reset();
        }
        progress(table, done, total);
    }
    tally.finish()?;
    let written = head(conn, version).await?;
    if written != snapshot.head {
        return Err(TransferError::new(
            "the audit head written differs from the source's",
        ));
    }
    Ok(())
}

impl LibsqlStore {
    /// Starts reading one snapshot of the store into `tx` (see [`crate::transfer`]).
    pub(crate) fn export(&self, tx: EventSender) {
        let worker = self.worker.clone();
        tokio::spawn(async move {
            let inner = tx.clone();
            let result = worker
                .run(move |conn| async move {
                    if let Err(e) = exec(&conn, "BEGIN DEFERRED", Vec::new()).await {
                        return Ok(Err(TransferError::from(e)));
                    }
                    let result = export_in(&conn, &inner).await;
                    rollback(&conn).await;
                    Ok(result)
                })
                .await;
            let failure = match result {
                Ok(Ok(())) => return,
                Ok(Err(e)) => e,
                Err(e) => TransferError::from(e),
            };
            let _ = send(&tx, Err(failure)).await;
        });
    }

    /// The tables among `tables` that hold rows.
    pub(crate) async fn occupied(
        &self,
        tables: Vec<&'static Table>,
    ) -> Result<Vec<(&'static str, u64)>, TransferError> {
        self.worker
            .run(move |conn| async move { Ok(occupied_in(&conn, &tables).await) })
            .await?
    }

    /// Writes a stream in one transaction (see [`crate::transfer::Endpoint::import`]).
    pub(crate) async fn import(
        &self,
        snapshot: Snapshot,
        mut events: Events,
        progress: Progress,
    ) -> Result<Summary, TransferError> {
        self.worker
            .run(move |conn| async move {
                if let Err(e) = exec(&conn, "BEGIN IMMEDIATE", Vec::new()).await {
                    return Ok(Err(TransferError::from(e)));
                }
                match import_body(&conn, &snapshot, &mut events, &progress).await {
                    Ok(()) => match conn.execute("COMMIT", ()).await {
                        Ok(_) => Ok(Ok(Summary::of(&snapshot))),
                        Err(e) => {
                            rollback(&conn).await;
                            Ok(Err(failed("commit", &e)))
                        }
                    },
                    Err(e) => {
                        rollback(&conn).await;
                        Ok(Err(e))
                    }
                }
            })
            .await?
    }
}
