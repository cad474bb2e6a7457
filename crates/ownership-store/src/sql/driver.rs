//! The driver port of the row layer: one SQL text per statement (PostgreSQL's dialect,
//! `$n` placeholders), parameters of one enum, rows read by index. Each backend implements
//! [`Driver`] once: how it binds a [`Param`], how it reads a column into a [`Val`] (times
//! included: libSQL keeps unix microseconds, PostgreSQL `timestamptz`), how it rewrites the
//! SQL text ([`sqlite_dialect`]) and which errors are unique violations ([`Fail::Unique`]).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use ownership_core::audit::AuditEvent;
use ownership_core::{Error, Result};
use time::OffsetDateTime;

/// One statement parameter (`None`: a NULL of that type).
#[derive(Debug, Clone)]
pub enum Param<'a> {
    /// TEXT.
    Text(Option<Cow<'a, str>>),
    /// INTEGER / BIGINT.
    Int(Option<i64>),
    /// BLOB / BYTEA.
    Bytes(Option<Cow<'a, [u8]>>),
    /// A time (microseconds on libSQL, `timestamptz` on PostgreSQL).
    Time(Option<OffsetDateTime>),
}

macro_rules! param_from {
    ($($t:ty => |$v:ident| $e:expr),* $(,)?) => {
        $(impl<'a> From<$t> for Param<'a> {
            fn from($v: $t) -> Self {
                $e
            }
        })*
    };
}

param_from! {
    &'a str => |v| Self::Text(Some(Cow::Borrowed(v))),
    String => |v| Self::Text(Some(Cow::Owned(v))),
    &'a String => |v| Self::Text(Some(Cow::Borrowed(v.as_str()))),
    Option<&'a str> => |v| Self::Text(v.map(Cow::Borrowed)),
    Option<String> => |v| Self::Text(v.map(Cow::Owned)),
    i64 => |v| Self::Int(Some(v)),
    u32 => |v| Self::Int(Some(i64::from(v))),
    Option<i64> => |v| Self::Int(v),
    Option<u32> => |v| Self::Int(v.map(i64::from)),
    &'a [u8] => |v| Self::Bytes(Some(Cow::Borrowed(v))),
    Vec<u8> => |v| Self::Bytes(Some(Cow::Owned(v))),
    Option<&'a [u8]> => |v| Self::Bytes(v.map(Cow::Borrowed)),
    Option<Vec<u8>> => |v| Self::Bytes(v.map(Cow::Owned)),
    OffsetDateTime => |v| Self::Time(Some(v)),
    Option<OffsetDateTime> => |v| Self::Time(v),
}

/// Positional parameters: `args![a, b]` is `&[Param::from(a), Param::from(b)]`.
macro_rules! args {
    ($($v:expr),* $(,)?) => {
        &[$($crate::sql::driver::Param::from($v)),*]
    };
}
pub(crate) use args;

/// One column value as the driver read it.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    /// NULL.
    Null,
    /// An integer.
    Int(i64),
    /// Text.
    Text(String),
    /// Bytes.
    Bytes(Vec<u8>),
    /// A time (PostgreSQL; libSQL's times arrive as [`Val::Int`] microseconds).
    Time(OffsetDateTime),
}

/// A row: its columns in `SELECT` order.
pub type Row = Vec<Val>;

/// How a statement failed.
#[derive(Debug)]
pub enum Fail {
    /// A unique constraint refused the row (the caller may expect it: [`conflict`]).
    Unique(String),
    /// Anything else, already logged and mapped.
    Other(Error),
}

impl From<Fail> for Error {
    fn from(f: Fail) -> Self {
        match f {
            Fail::Unique(e) => {
                tracing::error!(error = %e, "unexpected unique violation");
                Error::Unavailable("store unavailable".into())
            }
            Fail::Other(e) => e,
        }
    }
}

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        Self::Other(e)
    }
}

/// A unique violation as the [`Error::Conflict`] a use case documents; any other failure
/// as usual.
pub fn conflict(message: &str) -> impl FnOnce(Fail) -> Error + '_ {
    move |f| match f {
        Fail::Unique(_) => Error::Conflict(message.to_owned()),
        Fail::Other(e) => e,
    }
}

/// A database connection or transaction the row layer runs statements on.
#[async_trait]
pub trait Driver: Send {
    /// `true` on PostgreSQL: picks the PostgreSQL text of a per-dialect pair ([`pick`]).
    const POSTGRES: bool;

    /// Runs a statement; the rows it changed.
    async fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64, Fail>;

    /// Every row a query returns (read fully).
    async fn query(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, Fail>;

    /// Called after an audit event was stored in this (write) transaction: PostgreSQL
    /// publishes what it invalidates to the other processes.
    async fn appended(&mut self, _event: &AuditEvent) -> Result<()> {
        Ok(())
    }
}

/// The text of a per-dialect pair for driver `D`.
pub fn pick<D: Driver>(postgres: &'static str, sqlite: &'static str) -> &'static str {
    if D::POSTGRES { postgres } else { sqlite }
}

/// Runs a statement; the rows it changed.
pub async fn exec<D: Driver>(d: &mut D, sql: &str, params: &[Param<'_>]) -> Result<u64> {
    Ok(d.execute(sql, params).await?)
}

/// Every row of a query.
pub async fn query_all<D: Driver>(d: &mut D, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>> {
    Ok(d.query(sql, params).await?)
}

/// The first row of a query, if any.
pub async fn query_opt<D: Driver>(
    d: &mut D,
    sql: &str,
    params: &[Param<'_>],
) -> Result<Option<Row>> {
    Ok(d.query(sql, params).await?.into_iter().next())
}

/// The one row a query must return.
pub async fn query_one<D: Driver>(
    d: &mut D,
    sql: &str,
    params: &[Param<'_>],
    what: &str,
) -> Result<Row> {
    query_opt(d, sql, params)
        .await?
        .ok_or_else(|| integrity(what))
}

/// Whether a query returns any row.
pub async fn exists<D: Driver>(d: &mut D, sql: &str, params: &[Param<'_>]) -> Result<bool> {
    Ok(query_opt(d, sql, params).await?.is_some())
}

/// The non-negative count in the first column of the one row a query returns.
pub async fn query_count<D: Driver>(
    d: &mut D,
    sql: &str,
    params: &[Param<'_>],
    what: &str,
) -> Result<u64> {
    count_at(&query_one(d, sql, params, what).await?, 0, what)
}

/// A row that does not parse back into domain types.
pub fn integrity(what: &str) -> Error {
    tracing::error!(what, "stored row failed to parse");
    Error::Integrity(format!("stored {what} does not parse"))
}

// ---- values out -------------------------------------------------------------------------

fn value(row: &[Val], i: usize) -> Result<&Val> {
    row.get(i).ok_or_else(|| integrity("row (missing column)"))
}

/// A TEXT column.
pub fn text(row: &[Val], i: usize) -> Result<String> {
    opt_text(row, i)?.ok_or_else(|| integrity("text column"))
}

/// A nullable TEXT column.
pub fn opt_text(row: &[Val], i: usize) -> Result<Option<String>> {
    match value(row, i)? {
        Val::Null => Ok(None),
        Val::Text(s) => Ok(Some(s.clone())),
        _ => Err(integrity("text column")),
    }
}

/// An integer column.
pub fn int(row: &[Val], i: usize) -> Result<i64> {
    opt_int(row, i)?.ok_or_else(|| integrity("integer column"))
}

/// A nullable integer column.
pub fn opt_int(row: &[Val], i: usize) -> Result<Option<i64>> {
    match value(row, i)? {
        Val::Null => Ok(None),
        Val::Int(n) => Ok(Some(*n)),
        _ => Err(integrity("integer column")),
    }
}

/// A non-negative integer column (a count or a sum) as `u64`.
pub fn count_at(row: &[Val], i: usize, what: &str) -> Result<u64> {
    u64::try_from(int(row, i)?).map_err(|_| integrity(what))
}

/// A non-negative integer column that fits a `u32`.
pub fn u32_at(row: &[Val], i: usize, what: &str) -> Result<u32> {
    u32::try_from(int(row, i)?).map_err(|_| integrity(what))
}

/// A nullable integer column that fits a `u32`.
pub fn opt_u32(row: &[Val], i: usize, what: &str) -> Result<Option<u32>> {
    opt_int(row, i)?
        .map(|n| u32::try_from(n).map_err(|_| integrity(what)))
        .transpose()
}

/// A bytes column.
pub fn blob(row: &[Val], i: usize) -> Result<Vec<u8>> {
    opt_blob(row, i)?.ok_or_else(|| integrity("blob column"))
}

/// A nullable bytes column.
pub fn opt_blob(row: &[Val], i: usize) -> Result<Option<Vec<u8>>> {
    match value(row, i)? {
        Val::Null => Ok(None),
        Val::Bytes(b) => Ok(Some(b.clone())),
        _ => Err(integrity("blob column")),
    }
}

/// A bytes column of exactly `N` bytes.
pub fn bytes<const N: usize>(row: &[Val], i: usize, what: &str) -> Result<[u8; N]> {
    <[u8; N]>::try_from(blob(row, i)?.as_slice()).map_err(|_| integrity(what))
}

/// A TEXT column parsed by `parse` (an id newtype, say); a failure is an integrity error.
pub fn parsed<T>(
    row: &[Val],
    i: usize,
    what: &str,
    parse: impl FnOnce(&str) -> Result<T>,
) -> Result<T> {
    parse(&text(row, i)?).map_err(|_| integrity(what))
}

/// A nullable TEXT column parsed by `parse`.
pub fn opt_parsed<T>(
    row: &[Val],
    i: usize,
    what: &str,
    parse: impl FnOnce(&str) -> Result<T>,
) -> Result<Option<T>> {
    opt_text(row, i)?
        .map(|s| parse(&s).map_err(|_| integrity(what)))
        .transpose()
}

/// A time column.
pub fn time_at(row: &[Val], i: usize) -> Result<OffsetDateTime> {
    opt_time(row, i)?.ok_or_else(|| integrity("time column"))
}

/// A nullable time column (a `timestamptz`, or unix microseconds).
pub fn opt_time(row: &[Val], i: usize) -> Result<Option<OffsetDateTime>> {
    match value(row, i)? {
        Val::Null => Ok(None),
        Val::Time(t) => Ok(Some(*t)),
        Val::Int(us) => from_micros(*us).map(Some),
        _ => Err(integrity("time column")),
    }
}

// ---- times as unix microseconds (libSQL) ---------------------------------------------------

/// A time as libSQL stores it: unix microseconds, truncated.
pub fn micros(at: OffsetDateTime) -> Result<i64> {
    i64::try_from(at.unix_timestamp_nanos().div_euclid(1_000))
        .map_err(|_| Error::invalid("time", "out of range"))
}

/// A stored time back.
pub fn from_micros(us: i64) -> Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1_000).map_err(|_| integrity("time"))
}

// ---- the SQLite dialect ----------------------------------------------------------------

/// Rewritten texts, by original text. The row layer's statements are fixed; a transfer's
/// are made per table, so the cache stops growing at [`REWRITTEN_MAX`].
const REWRITTEN_MAX: usize = 4096;

static REWRITTEN: Mutex<Option<HashMap<String, Arc<str>>>> = Mutex::new(None);

/// `sql` in SQLite's dialect, rewritten once and cached: `$n` becomes `?n`, and
/// `FOR UPDATE` and `COLLATE "C"` go (SQLite's one writer already holds the lock, and its
/// default collation compares bytes).
pub fn sqlite_dialect(sql: &str) -> Arc<str> {
    let mut cache = REWRITTEN.lock().unwrap_or_else(PoisonError::into_inner);
    let cache = cache.get_or_insert_with(HashMap::new);
    if let Some(done) = cache.get(sql) {
        return Arc::clone(done);
    }
    let done: Arc<str> = rewrite(sql).into();
    if cache.len() < REWRITTEN_MAX {
        cache.insert(sql.to_owned(), Arc::clone(&done));
    }
    done
}

fn rewrite(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quoted = false;
    for c in sql.chars() {
        if c == '\'' {
            quoted = !quoted;
        }
        out.push(if c == '$' && !quoted { '?' } else { c });
    }
    out.replace(" FOR UPDATE", "").replace(" COLLATE \"C\"", "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_rewrite() {
        assert_eq!(
            rewrite(
                "SELECT a FROM t WHERE b = $1 AND c = '$2' ORDER BY d COLLATE \"C\" FOR UPDATE"
            ),
            "SELECT a FROM t WHERE b = ?1 AND c = '$2' ORDER BY d"
        );
        let first = sqlite_dialect("SELECT $12");
        assert_eq!(&*first, "SELECT ?12");
        assert!(Arc::ptr_eq(&first, &sqlite_dialect("SELECT $12")));
    }

    #[test]
    fn micros_roundtrip() {
        let at = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_789).unwrap();
        let us = micros(at).unwrap();
        assert_eq!(us, 1_700_000_000_123_456);
        assert_eq!(
            from_micros(us).unwrap(),
            ownership_core::audit::truncate_to_micros(at)
        );
        let before = OffsetDateTime::from_unix_timestamp_nanos(-1_500).unwrap();
        assert_eq!(
            from_micros(micros(before).unwrap())
                .unwrap()
                .unix_timestamp_nanos(),
            -2_000
        );
    }

    #[test]
    fn getters_refuse_wrong_types() {
        let row = vec![Val::Int(3), Val::Null, Val::Text("x".into())];
        assert_eq!(int(&row, 0).unwrap(), 3);
        assert_eq!(opt_text(&row, 1).unwrap(), None);
        assert!(text(&row, 0).is_err());
        assert!(int(&row, 5).is_err());
        assert_eq!(
            time_at(&row, 0).unwrap(),
            OffsetDateTime::from_unix_timestamp_nanos(3_000).unwrap()
        );
    }
}
