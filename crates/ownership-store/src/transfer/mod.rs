//! Moving a whole store: an online backup to a portable file, a restore from it, and a
//! copy between two stores of any backends (libSQL to PostgreSQL and back, or the same
//! backend twice).
//!
//! Every path uses one row stream:
//!
//! - a **source** reads one consistent snapshot (libSQL: one read transaction on its own
//!   connection; PostgreSQL: one `REPEATABLE READ READ ONLY` transaction) and sends a
//!   [`Event::Begin`] with the schema version, the audit chain head and the row count of
//!   every table, then every table in foreign-key order in pages of [`PAGE_ROWS`] rows
//!   read by keyset pagination on the primary key;
//! - a **sink** takes the stream: the backup file writer ([`mod@format`]), or a store, which
//!   writes everything in one transaction after checking, inside it, that it is empty.
//!
//! The channel between them holds at most [`CHANNEL_PAGES`] pages, so memory stays
//! bounded whatever the size of the store. The table list, the columns and how each
//! column's value is carried between the backends ([`Kind`]) are in this one file.

pub mod format;
pub(crate) mod rows;

use std::sync::Arc;

use serde::Serialize;
use tokio::sync::mpsc;

use crate::MigrationError;

/// Rows per page read from a source (and per batch written to a target).
pub const PAGE_ROWS: usize = 1000;

/// Pages in flight between a source and its sink.
pub const CHANNEL_PAGES: usize = 2;

/// How a column's value is carried. Times are unix microseconds everywhere (libSQL
/// stores them so; PostgreSQL's `TIMESTAMPTZ` keeps microseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Text.
    Text,
    /// A 32-bit integer on PostgreSQL (`INTEGER`), an integer on libSQL.
    Int,
    /// A 64-bit integer on PostgreSQL (`BIGINT`), an integer on libSQL.
    BigInt,
    /// Bytes (`BYTEA` / `BLOB`).
    Bytes,
    /// A point in time (`TIMESTAMPTZ` / `INTEGER` microseconds).
    Time,
}

/// One column of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    /// Its name (the same on both backends).
    pub name: &'static str,
    /// How its value is carried.
    pub kind: Kind,
    /// Whether it may be NULL.
    pub nullable: bool,
}

const fn col(name: &'static str, kind: Kind) -> Column {
    Column {
        name,
        kind,
        nullable: false,
    }
}

const fn opt(name: &'static str, kind: Kind) -> Column {
    Column {
        name,
        kind,
        nullable: true,
    }
}

/// One table of the store.
#[derive(Debug, PartialEq, Eq)]
pub struct Table {
    /// Its name.
    pub name: &'static str,
    /// Its columns, in the order rows carry them.
    pub columns: &'static [Column],
    /// How many leading columns form the primary key (the keyset of pagination).
    pub key_len: usize,
    /// The migration that created it.
    pub since: i64,
}

impl Table {
    /// The primary key's columns.
    pub fn key(&self) -> &'static [Column] {
        self.columns.get(..self.key_len).unwrap_or(self.columns)
    }

    /// `a, b, c`.
    pub fn column_list(&self) -> String {
        self.columns
            .iter()
            .map(|c| c.name)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `a, b` of the key.
    pub fn key_list(&self) -> String {
        self.key()
            .iter()
            .map(|c| c.name)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

use Kind::{BigInt, Bytes, Int, Text, Time};

/// Every table, parents before children (the order rows are written in). A table's
/// primary key columns come first.
pub static TABLES: &[Table] = &[
    Table {
        name: "users",
        columns: &[
            col("id", Text),
            col("role", Text),
            col("status", Text),
            col("created_at", Time),
            col("updated_at", Time),
            opt("uid", Text),
        ],
        key_len: 1,
        since: 1,
    },
    Table {
        name: "tokens",
        columns: &[
            col("id", Text),
            col("owner_id", Text),
            col("digest", Bytes),
            col("kinds", Text),
            opt("label", Text),
            col("display_prefix", Text),
            col("origin", Text),
            col("created_at", Time),
            opt("expires_at", Time),
            opt("revoked_at", Time),
            opt("last_used_at", Time),
            opt("replaced_by", Text),
        ],
        key_len: 1,
        since: 1,
    },
    Table {
        name: "settings",
        columns: &[col("key", Text), col("value", Bytes)],
        key_len: 1,
        since: 1,
    },
    Table {
        name: "channel_identities",
        columns: &[
            col("channel", Text),
            col("external_id", Text),
            col("owner_id", Text),
            col("created_at", Time),
        ],
        key_len: 2,
        since: 2,
    },
    Table {
        name: "pairing_requests",
        columns: &[
            col("id", Text),
            col("channel", Text),
            col("external_id", Text),
            col("seed", Bytes),
            col("code_hash", Bytes),
            opt("meta", Text),
            col("created_at", Time),
            col("expires_at", Time),
        ],
        key_len: 1,
        since: 2,
    },
    Table {
        name: "audit_events",
        columns: &[
            col("seq", BigInt),
            col("at", Time),
            col("actor", Text),
            opt("owner_id", Text),
            col("action", Text),
            col("target", Text),
            col("details", Text),
            col("prev_hash", Bytes),
            col("hash", Bytes),
            opt("owner_uid", Text),
            opt("key_version", Int),
            opt("chain", Text),
        ],
        key_len: 1,
        since: 3,
    },
    Table {
        name: "audit_chains",
        columns: &[
            col("chain", Text),
            col("seq", BigInt),
            col("hash", Bytes),
            opt("key_version", Int),
            col("anchored_seq", BigInt),
        ],
        key_len: 1,
        since: 9,
    },
    Table {
        name: "audit_head",
        columns: &[
            col("id", Int),
            col("seq", BigInt),
            col("hash", Bytes),
            opt("key_version", Int),
        ],
        key_len: 1,
        since: 3,
    },
    Table {
        name: "owner_keys",
        columns: &[
            col("owner_id", Text),
            col("nonce", Bytes),
            col("wrapped", Bytes),
            col("key_version", Int),
            col("created_at", Time),
        ],
        key_len: 1,
        since: 4,
    },
    Table {
        name: "secrets",
        columns: &[
            col("owner_id", Text),
            col("name", Text),
            col("nonce", Bytes),
            col("ciphertext", Bytes),
            col("key_version", Int),
            col("created_at", Time),
            col("updated_at", Time),
        ],
        key_len: 2,
        since: 4,
    },
    Table {
        name: "resources",
        columns: &[
            col("id", Text),
            col("owner_id", Text),
            col("kind", Text),
            opt("external_ref", Text),
            col("token_digest", Bytes),
            col("created_at", Time),
            opt("revoked_at", Time),
        ],
        key_len: 1,
        since: 4,
    },
    Table {
        name: "resource_grants",
        columns: &[col("resource_id", Text), col("secret_name", Text)],
        key_len: 2,
        since: 4,
    },
    Table {
        name: "webhook_endpoints",
        columns: &[
            col("owner_id", Text),
            col("url", Text),
            col("secret_nonce", Bytes),
            col("secret_ct", Bytes),
            col("secret_version", Int),
            opt("prev_nonce", Bytes),
            opt("prev_ct", Bytes),
            opt("prev_version", Int),
            opt("prev_until", Time),
            col("created_at", Time),
            col("updated_at", Time),
        ],
        key_len: 1,
        since: 4,
    },
    Table {
        name: "webhook_deliveries",
        columns: &[
            col("id", Text),
            col("owner_id", Text),
            col("event_type", Text),
            col("payload", Text),
            col("state", Text),
            col("attempts", Int),
            col("next_attempt_at", Time),
            opt("last_result", Text),
            col("created_at", Time),
        ],
        key_len: 1,
        since: 4,
    },
    // `console_sessions` (since 7) is left out on purpose: a session is a sign-in on one
    // deployment, not data; a restored or copied store starts with none.
    Table {
        name: "oidc_links",
        columns: &[
            col("issuer", Text),
            col("subject", Text),
            col("owner_id", Text),
            col("created_at", Time),
        ],
        key_len: 2,
        since: 7,
    },
    Table {
        name: "passkeys",
        columns: &[
            col("credential_id", Text),
            col("owner_id", Text),
            col("label", Text),
            col("credential", Text),
            col("sign_count", BigInt),
            col("created_at", Time),
            opt("last_used_at", Time),
        ],
        key_len: 1,
        since: 8,
    },
];

/// Earlier shapes of tables a later migration added columns to: `(v, table)` is the
/// table as it was before schema version `v` (new columns are always added last, and
/// rows of an older snapshot carry the older shape; the migrations fill the new columns
/// in when the restored store is migrated on).
pub static EARLIER: &[(i64, Table)] = &[
    (
        9,
        Table {
            name: "audit_events",
            columns: &[
                col("seq", BigInt),
                col("at", Time),
                col("actor", Text),
                opt("owner_id", Text),
                col("action", Text),
                col("target", Text),
                col("details", Text),
                col("prev_hash", Bytes),
                col("hash", Bytes),
                opt("owner_uid", Text),
                opt("key_version", Int),
            ],
            key_len: 1,
            since: 3,
        },
    ),
    (
        5,
        Table {
            name: "users",
            columns: &[
                col("id", Text),
                col("role", Text),
                col("status", Text),
                col("created_at", Time),
                col("updated_at", Time),
            ],
            key_len: 1,
            since: 1,
        },
    ),
    (
        5,
        Table {
            name: "audit_events",
            columns: &[
                col("seq", BigInt),
                col("at", Time),
                col("actor", Text),
                opt("owner_id", Text),
                col("action", Text),
                col("target", Text),
                col("details", Text),
                col("prev_hash", Bytes),
                col("hash", Bytes),
            ],
            key_len: 1,
            since: 3,
        },
    ),
    (
        5,
        Table {
            name: "audit_head",
            columns: &[col("id", Int), col("seq", BigInt), col("hash", Bytes)],
            key_len: 1,
            since: 3,
        },
    ),
];

/// The tables that exist at schema version `version`, each in its shape at that version.
pub fn tables_at(version: i64) -> impl Iterator<Item = &'static Table> {
    TABLES
        .iter()
        .filter(move |t| t.since <= version)
        .map(move |t| {
            EARLIER
                .iter()
                .filter(|(until, old)| old.name == t.name && version < *until)
                .min_by_key(|(until, _)| *until)
                .map_or(t, |(_, old)| old)
        })
}

/// A table by name.
pub fn table(name: &str) -> Option<&'static Table> {
    TABLES.iter().find(|t| t.name == name)
}

/// The highest schema version this build knows.
pub fn latest_schema_version() -> i64 {
    crate::migrations::LIBSQL.last().map_or(0, |m| m.version)
}

/// The tables a target must have no row in (the rest, the store's settings and the
/// audit head, are seeded by migrations or at start, and are replaced).
fn must_be_empty(t: &Table) -> bool {
    !matches!(t.name, "settings" | "audit_head")
}

/// The tables an import clears before writing (their seeded rows are replaced).
fn replaced(t: &Table) -> bool {
    !must_be_empty(t)
}

/// One value, as carried between backends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// NULL.
    Null,
    /// An integer (any [`Kind::Int`] / [`Kind::BigInt`] column).
    Int(i64),
    /// Text.
    Text(String),
    /// Bytes.
    Bytes(Vec<u8>),
    /// Unix microseconds.
    Time(i64),
}

/// One row: its values in the table's column order.
pub type Row = Vec<Value>;

/// The audit chain's recorded head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainHead {
    /// The last event's number (0 for an empty log).
    pub seq: i64,
    /// Its hash, hex.
    pub hash: String,
}

/// What a source saw when its snapshot began.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// `libsql` or `postgres`.
    pub backend: String,
    /// The highest migration applied.
    pub schema_version: i64,
    /// The audit chain head, read in the snapshot.
    pub head: ChainHead,
    /// Rows per table, in [`TABLES`] order, for the tables at `schema_version`.
    pub counts: Vec<(&'static Table, u64)>,
}

impl Snapshot {
    /// Every row of every table.
    pub fn total_rows(&self) -> u64 {
        self.counts.iter().map(|(_, n)| n).sum()
    }
}

/// One item of a row stream.
#[derive(Debug)]
pub enum Event {
    /// The snapshot began (always first).
    Begin(Snapshot),
    /// A page of one table's rows (tables in [`TABLES`] order, each table's pages in key
    /// order).
    Rows {
        /// The table.
        table: &'static Table,
        /// Its rows.
        rows: Vec<Row>,
    },
}

/// A transfer failure, said in one sentence meant for an operator. Never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TransferError(pub String);

impl TransferError {
    /// A failure with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

impl From<ownership_core::Error> for TransferError {
    fn from(e: ownership_core::Error) -> Self {
        Self(match e {
            ownership_core::Error::Unavailable(m) => {
                format!("{m} (run with RUST_LOG=error to see why)")
            }
            other => other.to_string(),
        })
    }
}

impl From<MigrationError> for TransferError {
    fn from(e: MigrationError) -> Self {
        Self(e.to_string())
    }
}

/// The receiving end of a row stream. The sender stops at the first error, which it
/// sends as the last item.
pub type Events = mpsc::Receiver<Result<Event, TransferError>>;

/// The sending end of a row stream.
pub type EventSender = mpsc::Sender<Result<Event, TransferError>>;

/// A new bounded row stream.
pub fn channel() -> (EventSender, Events) {
    mpsc::channel(CHANNEL_PAGES)
}

/// Told after every page written: the table, its rows written so far, its rows in all.
pub type Progress = Arc<dyn Fn(&'static Table, u64, u64) + Send + Sync>;

/// What a transfer wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// The source's backend.
    pub source_backend: String,
    /// The schema version of the rows.
    pub schema_version: i64,
    /// The audit chain head the rows end at.
    pub audit_head: ChainHead,
    /// Rows per table.
    pub tables: Vec<TableCount>,
    /// Every row.
    pub total_rows: u64,
}

/// One table's row count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableCount {
    /// The table.
    pub table: &'static str,
    /// Its rows.
    pub rows: u64,
}

impl Summary {
    /// The summary of a complete stream that began with `snapshot`.
    pub fn of(snapshot: &Snapshot) -> Self {
        Self {
            source_backend: snapshot.backend.clone(),
            schema_version: snapshot.schema_version,
            audit_head: snapshot.head.clone(),
            tables: snapshot
                .counts
                .iter()
                .map(|(t, n)| TableCount {
                    table: t.name,
                    rows: *n,
                })
                .collect(),
            total_rows: snapshot.total_rows(),
        }
    }
}

/// Checks a stream's pages against its snapshot as a sink takes them: tables in order,
/// no table with more or fewer rows than the snapshot counted.
#[derive(Debug)]
pub struct Tally {
    counts: Vec<(&'static Table, u64)>,
    seen: Vec<u64>,
    current: usize,
}

impl Tally {
    /// A tally for `snapshot`.
    pub fn new(snapshot: &Snapshot) -> Self {
        Self {
            counts: snapshot.counts.clone(),
            seen: vec![0; snapshot.counts.len()],
            current: 0,
        }
    }

    /// Records a page of `table`; returns (rows of it so far, rows of it in all).
    pub fn page(
        &mut self,
        table: &'static Table,
        rows: usize,
    ) -> Result<(u64, u64), TransferError> {
        let at = self
            .counts
            .iter()
            .position(|(t, _)| std::ptr::eq(*t, table))
            .ok_or_else(|| {
                TransferError::new(format!("unexpected rows of table {}", table.name))
            })?;
        if at < self.current {
            return Err(TransferError::new(format!(
                "rows of table {} arrived out of order",
                table.name
            )));
        }
        // Every table between the last one and this one must be complete.
        self.check_complete(self.current, at)?;
        self.current = at;
        let total = self.counts.get(at).map_or(0, |(_, n)| *n);
        let seen = self
            .seen
            .get_mut(at)
            .ok_or_else(|| TransferError::new("row tally out of range"))?;
        *seen = seen.saturating_add(u64::try_from(rows).unwrap_or(u64::MAX));
        if *seen > total {
            return Err(TransferError::new(format!(
                "table {} has more rows than its snapshot counted ({total})",
                table.name
            )));
        }
        Ok((*seen, total))
    }

    /// At the end: every table complete.
    pub fn finish(&self) -> Result<(), TransferError> {
        self.check_complete(0, self.counts.len())
    }

    fn check_complete(&self, from: usize, to: usize) -> Result<(), TransferError> {
        for i in from..to {
            let (Some((t, total)), Some(seen)) = (self.counts.get(i), self.seen.get(i)) else {
                continue;
            };
            if seen != total {
                return Err(TransferError::new(format!(
                    "table {} ended after {seen} of its {total} rows",
                    t.name
                )));
            }
        }
        Ok(())
    }
}

/// A store rows are read from or written to.
#[derive(Debug, Clone)]
pub enum Endpoint {
    /// libSQL.
    #[cfg(feature = "libsql")]
    Libsql(crate::libsql::LibsqlStore),
    /// PostgreSQL.
    #[cfg(feature = "postgres")]
    Postgres(crate::postgres::PgStore),
}

impl Endpoint {
    /// `libsql` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match self {
            #[cfg(feature = "libsql")]
            Self::Libsql(_) => "libsql",
            #[cfg(feature = "postgres")]
            Self::Postgres(_) => "postgres",
        }
    }

    /// Starts reading one consistent snapshot of the whole store, page by page.
    pub fn export(&self) -> Events {
        let (tx, rx) = channel();
        let source = self.clone();
        tokio::spawn(async move {
            let result = match &source {
                #[cfg(feature = "libsql")]
                Self::Libsql(s) => s.export(&tx).await,
                #[cfg(feature = "postgres")]
                Self::Postgres(s) => s.export(&tx).await,
            };
            if let Err(e) = result {
                let _ = send(&tx, Err(e)).await;
            }
        });
        rx
    }

    async fn applied_version(&self) -> Result<i64, TransferError> {
        let applied = match self {
            #[cfg(feature = "libsql")]
            Self::Libsql(s) => crate::Migrator::applied_migrations(s).await?,
            #[cfg(feature = "postgres")]
            Self::Postgres(s) => crate::Migrator::applied_migrations(s).await?,
        };
        Ok(applied.iter().map(|a| a.version).max().unwrap_or(0))
    }

    async fn migrate_to(&self, version: i64) -> Result<(), TransferError> {
        match self {
            #[cfg(feature = "libsql")]
            Self::Libsql(s) => crate::Migrator::migrate_to(s, Some(version)).await?,
            #[cfg(feature = "postgres")]
            Self::Postgres(s) => crate::Migrator::migrate_to(s, Some(version)).await?,
        };
        Ok(())
    }

    /// Tables of the store (at its applied schema version) that hold rows, with their
    /// counts; empty for a new store. Only reads.
    pub async fn occupied(&self) -> Result<Vec<(&'static str, u64)>, TransferError> {
        let version = self.applied_version().await?;
        let tables: Vec<&'static Table> = tables_at(version).filter(|t| must_be_empty(t)).collect();
        match self {
            #[cfg(feature = "libsql")]
            Self::Libsql(s) => s.occupied(tables).await,
            #[cfg(feature = "postgres")]
            Self::Postgres(s) => s.occupied(tables).await,
        }
    }

    /// Makes this store ready for rows of `snapshot`: refuses a schema version this build
    /// does not know, a store already past it, and a store with rows; then migrates it
    /// to exactly that version.
    pub async fn prepare(&self, snapshot: &Snapshot) -> Result<(), TransferError> {
        check_known(snapshot.schema_version)?;
        let applied = self.applied_version().await?;
        if applied > snapshot.schema_version {
            return Err(TransferError::new(format!(
                "the target store is at schema version {applied}, newer than the rows' version {}: use a new, empty store",
                snapshot.schema_version
            )));
        }
        refuse_occupied(&self.occupied().await?)?;
        self.migrate_to(snapshot.schema_version).await
    }

    /// Writes a stream (whose [`Event::Begin`] was `snapshot`, already taken off
    /// `events`) in one transaction, after checking inside it that the store is still
    /// empty. On any failure nothing is written.
    pub async fn import(
        &self,
        snapshot: Snapshot,
        events: Events,
        progress: Progress,
    ) -> Result<Summary, TransferError> {
        match self {
            #[cfg(feature = "libsql")]
            Self::Libsql(s) => s.import(rows::Incoming(snapshot, events, progress)).await,
            #[cfg(feature = "postgres")]
            Self::Postgres(s) => s.import(rows::Incoming(snapshot, events, progress)).await,
        }
    }
}

/// Refuses rows of a schema version this build does not have.
pub fn check_known(version: i64) -> Result<(), TransferError> {
    let latest = latest_schema_version();
    if version < 1 || version > latest {
        return Err(TransferError::new(format!(
            "schema version {version} is not one this build knows (1 to {latest}): use the ownership release that wrote it, or a newer one"
        )));
    }
    Ok(())
}

fn refuse_occupied(occupied: &[(&'static str, u64)]) -> Result<(), TransferError> {
    if occupied.is_empty() {
        return Ok(());
    }
    let list = occupied
        .iter()
        .map(|(t, n)| format!("{t}: {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    Err(TransferError::new(format!(
        "the target store is not empty ({list} rows); nothing was written: use a new, empty store"
    )))
}

/// The first item of a stream, which must be its snapshot.
pub async fn begin(events: &mut Events) -> Result<Snapshot, TransferError> {
    match events.recv().await {
        Some(Ok(Event::Begin(s))) => Ok(s),
        Some(Ok(Event::Rows { .. })) => Err(TransferError::new(
            "a row stream began without its snapshot",
        )),
        Some(Err(e)) => Err(e),
        None => Err(TransferError::new(
            "the source stopped before its snapshot began",
        )),
    }
}

/// Copies every row of `from` into `to` (which must be empty): one snapshot of the
/// source, one transaction on the target.
pub async fn copy(
    from: &Endpoint,
    to: &Endpoint,
    progress: Progress,
) -> Result<Summary, TransferError> {
    let mut events = from.export();
    let snapshot = begin(&mut events).await?;
    to.prepare(&snapshot).await?;
    to.import(snapshot, events, progress).await
}

/// Sends `item` on `tx`; `false` when the sink has gone (it stopped on an error of its
/// own, which it reports).
pub(crate) async fn send(tx: &EventSender, item: Result<Event, TransferError>) -> bool {
    tx.send(item).await.is_ok()
}

/// The SQL of a keyset page of `t`: every column, rows after the key given as
/// parameters (none for the first page), in key order, `LIMIT` as the last parameter.
/// `placeholder(i)` writes parameter `i` (1-based) in the backend's syntax.
pub(crate) fn page_sql(t: &Table, first: bool, placeholder: impl Fn(usize) -> String) -> String {
    let key = t.key_list();
    let mut sql = format!("SELECT {} FROM {}", t.column_list(), t.name);
    let mut next = 1;
    if !first {
        let params = (1..=t.key_len)
            .map(&placeholder)
            .collect::<Vec<_>>()
            .join(", ");
        sql.push_str(&format!(" WHERE ({key}) > ({params})"));
        next = t.key_len + 1;
    }
    sql.push_str(&format!(" ORDER BY {key} LIMIT {}", placeholder(next)));
    sql
}

/// What a reader does after reading a page of a table.
pub(crate) enum AfterPage {
    /// Read the page after this key.
    Next(Vec<Value>),
    /// The table is done (this page was short).
    TableDone,
    /// The sink has gone: stop reading.
    Stop,
}

/// Sends a page of `t`'s rows (nothing when it is empty) and says what comes next: the
/// one place both readers decide it.
pub(crate) async fn forward_page(tx: &EventSender, t: &'static Table, page: Vec<Row>) -> AfterPage {
    let full = page.len() >= PAGE_ROWS;
    let after = page.last().map(|r| key_of(t, r));
    if !page.is_empty()
        && !send(
            tx,
            Ok(Event::Rows {
                table: t,
                rows: page,
            }),
        )
        .await
    {
        return AfterPage::Stop;
    }
    match after {
        Some(key) if full => AfterPage::Next(key),
        _ => AfterPage::TableDone,
    }
}

/// The key values of a row (its leading columns).
pub(crate) fn key_of(t: &Table, row: &[Value]) -> Vec<Value> {
    row.iter().take(t.key_len).cloned().collect()
}

/// The check every reader applies to a value of column `c` before it goes anywhere.
pub(crate) fn check_value(t: &Table, c: &Column, v: &Value) -> Result<(), TransferError> {
    let ok = match (v, c.kind) {
        (Value::Null, _) => c.nullable,
        (Value::Int(_), Kind::Int | Kind::BigInt)
        | (Value::Text(_), Kind::Text)
        | (Value::Bytes(_), Kind::Bytes)
        | (Value::Time(_), Kind::Time) => true,
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(TransferError::new(format!(
            "a value of {}.{} has the wrong type",
            t.name, c.name
        )))
    }
}

/// `replaced` tables, for the import sides.
pub(crate) fn is_replaced(t: &Table) -> bool {
    replaced(t)
}

/// `must_be_empty`, for the import sides.
pub(crate) fn is_checked_empty(t: &Table) -> bool {
    must_be_empty(t)
}

/// Refusal of a non-empty store, for the import sides.
pub(crate) fn refuse_rows(occupied: &[(&'static str, u64)]) -> Result<(), TransferError> {
    refuse_occupied(occupied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_of_the_latest_schema_is_listed_once_with_its_key_first() {
        let names: Vec<&str> = TABLES.iter().map(|t| t.name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len());
        for m in crate::migrations::LIBSQL {
            for t in TABLES.iter().filter(|t| t.since == m.version) {
                assert!(
                    m.sql.contains(&format!("CREATE TABLE {} (", t.name)),
                    "{} not created by {}",
                    t.name,
                    m.version
                );
                for c in t.columns {
                    assert!(
                        crate::migrations::LIBSQL
                            .iter()
                            .any(|later| later.version >= m.version && later.sql.contains(c.name)),
                        "{}.{}",
                        t.name,
                        c.name
                    );
                }
            }
        }
        assert!(
            TABLES
                .iter()
                .all(|t| t.key_len >= 1 && t.key_len <= t.columns.len())
        );
    }

    #[test]
    fn page_sql_is_keyset() {
        let t = table("secrets").unwrap();
        assert_eq!(
            page_sql(t, false, |i| format!("${i}")),
            "SELECT owner_id, name, nonce, ciphertext, key_version, created_at, updated_at FROM secrets WHERE (owner_id, name) > ($1, $2) ORDER BY owner_id, name LIMIT $3"
        );
        assert_eq!(
            page_sql(t, true, |i| format!("?{i}")),
            "SELECT owner_id, name, nonce, ciphertext, key_version, created_at, updated_at FROM secrets ORDER BY owner_id, name LIMIT ?1"
        );
    }
}
