//! The backup file: portable between the backends, one JSON document per line.
//!
//! ```text
//! {"format":"ownership-backup","format_version":1,"backend":"libsql","schema_version":4,
//!  "created_at":"…","audit_head":{"seq":812,"hash":"…"},"tables":[{"name":"users",
//!  "columns":["id",…],"rows":3},…]}                                 header (one line)
//! {"table":"users"}                                                  each table, in order,
//! ["alice","owner","active",1767268800000000,1767268800000000]         then its rows
//! …
//! {"end":"ownership-backup","rows":10412,"sha256":"…"}              trailer
//! ```
//!
//! A row is a JSON array in the header's column order: text as a string, integers and
//! times (unix microseconds) as numbers, bytes as lowercase hex, NULL as `null`. The
//! trailer's SHA-256 covers every byte before it. A file without its trailer, with a
//! wrong checksum, or with any line that does not parse is refused whole ([`verify`]).

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde_json::{Value as Json, json};
use sha2::{Digest, Sha256};

use super::{
    ChainHead, Event, EventSender, Events, Progress, Row, Snapshot, Summary, Table, Tally,
    TransferError, Value, check_known, check_value, tables_at,
};

/// The `format` of the header and the `end` of the trailer.
pub const MAGIC: &str = "ownership-backup";

/// The version of this layout.
pub const FORMAT_VERSION: i64 = 1;

/// The longest line a reader accepts (a row with a very large payload still fits).
const MAX_LINE: u64 = 64 * 1024 * 1024;

/// `FILE.partial`: where a backup is written until it is complete.
pub fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

fn io_err(what: &str, path: &Path, e: &std::io::Error) -> TransferError {
    TransferError::new(format!("cannot {what} {}: {e}", path.display()))
}

// ---- writing ----------------------------------------------------------------------------

/// A writer that hashes what it writes.
struct Hashing<W: Write> {
    inner: W,
    hash: Sha256,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(buf.get(..n).unwrap_or(buf));
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn header_json(s: &Snapshot) -> Json {
    let created = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    json!({
        "format": MAGIC,
        "format_version": FORMAT_VERSION,
        "backend": s.backend,
        "schema_version": s.schema_version,
        "created_at": created,
        "audit_head": {"seq": s.head.seq, "hash": s.head.hash},
        "tables": s.counts.iter().map(|(t, n)| json!({
            "name": t.name,
            "columns": t.columns.iter().map(|c| c.name).collect::<Vec<_>>(),
            "rows": n,
        })).collect::<Vec<_>>(),
    })
}

fn row_json(row: &Row) -> Json {
    Json::Array(
        row.iter()
            .map(|v| match v {
                Value::Null => Json::Null,
                Value::Int(n) | Value::Time(n) => json!(n),
                Value::Text(s) => Json::String(s.clone()),
                Value::Bytes(b) => Json::String(hex::encode(b)),
            })
            .collect(),
    )
}

fn line(out: &mut impl Write, value: &Json) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    out.write_all(b"\n")
}

/// Writes a whole stream to `path`: first to `path.partial` (mode 0600: it holds token
/// digests and sealed secrets), then flushed, synced, and renamed over `path`, and the
/// directory synced. On any failure the partial file is removed and `path` is untouched.
/// Blocking: run it off the async workers.
pub fn write_blocking(
    path: &Path,
    mut events: Events,
    progress: &Progress,
) -> Result<Summary, TransferError> {
    let partial = partial_path(path);
    let result = write_partial(&partial, &mut events, progress);
    match result {
        Ok(summary) => {
            if let Err(e) = std::fs::rename(&partial, path) {
                let _ = std::fs::remove_file(&partial);
                return Err(io_err("rename the finished backup to", path, &e));
            }
            if let Some(dir) = path.parent() {
                let dir = if dir.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    dir
                };
                if let Ok(d) = File::open(dir) {
                    let _ = d.sync_all();
                }
            }
            Ok(summary)
        }
        Err(e) => {
            // Stop the source, then leave nothing that looks like a backup.
            drop(events);
            let _ = std::fs::remove_file(&partial);
            Err(e)
        }
    }
}

fn write_partial(
    partial: &Path,
    events: &mut Events,
    progress: &Progress,
) -> Result<Summary, TransferError> {
    let snapshot = match events.blocking_recv() {
        Some(Ok(Event::Begin(s))) => s,
        Some(Ok(Event::Rows { .. })) => {
            return Err(TransferError::new(
                "a row stream began without its snapshot",
            ));
        }
        Some(Err(e)) => return Err(e),
        None => {
            return Err(TransferError::new(
                "the source stopped before its snapshot began",
            ));
        }
    };
    let file = {
        let mut options = OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        options
            .open(partial)
            .map_err(|e| io_err("create", partial, &e))?
    };
    let write_err = |e: std::io::Error| io_err("write", partial, &e);
    let mut out = Hashing {
        inner: BufWriter::with_capacity(256 * 1024, file),
        hash: Sha256::new(),
    };
    line(&mut out, &header_json(&snapshot)).map_err(write_err)?;
    let mut tally = Tally::new(&snapshot);
    let mut current: Option<&'static Table> = None;
    // Tables with no rows still get their marker line, in order.
    let mut marked = 0usize;
    let mark_until = |out: &mut Hashing<BufWriter<File>>,
                      marked: &mut usize,
                      upto: usize|
     -> Result<(), TransferError> {
        while *marked < upto {
            if let Some((t, _)) = snapshot.counts.get(*marked) {
                line(out, &json!({"table": t.name})).map_err(write_err)?;
            }
            *marked += 1;
        }
        Ok(())
    };
    while let Some(item) = events.blocking_recv() {
        let Event::Rows { table, rows } = item? else {
            return Err(TransferError::new("a second snapshot in one row stream"));
        };
        let (done, total) = tally.page(table, rows.len())?;
        if current.is_none_or(|c| !std::ptr::eq(c, table)) {
            let at = snapshot
                .counts
                .iter()
                .position(|(t, _)| std::ptr::eq(*t, table))
                .unwrap_or(0);
            mark_until(&mut out, &mut marked, at + 1)?;
            current = Some(table);
        }
        for row in &rows {
            line(&mut out, &row_json(row)).map_err(write_err)?;
        }
        progress(table, done, total);
    }
    tally.finish()?;
    mark_until(&mut out, &mut marked, snapshot.counts.len())?;
    let digest = hex::encode(out.hash.clone().finalize());
    let mut inner = out.inner;
    line(
        &mut inner,
        &json!({"end": MAGIC, "rows": snapshot.total_rows(), "sha256": digest}),
    )
    .map_err(write_err)?;
    let file = inner.into_inner().map_err(|e| write_err(e.into_error()))?;
    file.sync_all().map_err(write_err)?;
    Ok(Summary::of(&snapshot))
}

// ---- reading ----------------------------------------------------------------------------

fn bad(path: &Path, line: u64, what: impl std::fmt::Display) -> TransferError {
    TransferError::new(format!(
        "{} is not a valid backup (line {line}): {what}; nothing was written",
        path.display()
    ))
}

/// Reads lines, hashing each before it is returned.
struct Lines {
    path: PathBuf,
    reader: BufReader<File>,
    hash: Sha256,
    number: u64,
    buf: Vec<u8>,
}

impl Lines {
    fn open(path: &Path) -> Result<Self, TransferError> {
        let file = File::open(path).map_err(|e| io_err("open", path, &e))?;
        Ok(Self {
            path: path.to_path_buf(),
            reader: BufReader::with_capacity(256 * 1024, file),
            hash: Sha256::new(),
            number: 0,
            buf: Vec::new(),
        })
    }

    /// The next line's JSON, or `None` at the end of the file. It is hashed only once
    /// [`Lines::absorb`] is called (the trailer is not).
    fn next(&mut self) -> Result<Option<Json>, TransferError> {
        self.buf.clear();
        let n = (&mut self.reader)
            .take(MAX_LINE)
            .read_until(b'\n', &mut self.buf)
            .map_err(|e| io_err("read", &self.path, &e))?;
        if n == 0 {
            return Ok(None);
        }
        self.number += 1;
        if self.buf.last() != Some(&b'\n') {
            return Err(bad(
                &self.path,
                self.number,
                "the file is truncated (a line is cut short)",
            ));
        }
        let value: Json = serde_json::from_slice(&self.buf)
            .map_err(|e| bad(&self.path, self.number, format!("not JSON ({e})")))?;
        Ok(Some(value))
    }

    fn absorb(&mut self) {
        self.hash.update(&self.buf);
    }

    fn expect(&mut self, what: &str) -> Result<Json, TransferError> {
        match self.next()? {
            Some(v) => Ok(v),
            None => Err(bad(
                &self.path,
                self.number + 1,
                format!("the file is truncated (expected {what})"),
            )),
        }
    }
}

/// A field of a JSON object, `null` when absent (or not an object).
fn field<'a>(v: &'a Json, key: &str) -> &'a Json {
    v.get(key).unwrap_or(&Json::Null)
}

fn header_of(path: &Path, v: &Json) -> Result<Snapshot, TransferError> {
    let fail = |what: &str| bad(path, 1, what);
    if field(v, "format") != MAGIC {
        return Err(fail("not an ownership backup (no header)"));
    }
    if field(v, "format_version") != FORMAT_VERSION {
        return Err(fail(&format!(
            "format version {} is not one this build reads ({FORMAT_VERSION})",
            field(v, "format_version")
        )));
    }
    let schema_version = field(v, "schema_version")
        .as_i64()
        .ok_or_else(|| fail("no schema version"))?;
    check_known(schema_version)?;
    let head = ChainHead {
        seq: field(field(v, "audit_head"), "seq")
            .as_i64()
            .ok_or_else(|| fail("no audit head"))?,
        hash: field(field(v, "audit_head"), "hash")
            .as_str()
            .filter(|h| h.len() == 64 && hex::decode(h).is_ok())
            .ok_or_else(|| fail("no audit head hash"))?
            .to_owned(),
    };
    let listed = field(v, "tables")
        .as_array()
        .ok_or_else(|| fail("no table list"))?;
    let expected: Vec<&'static Table> = tables_at(schema_version).collect();
    if listed.len() != expected.len() {
        return Err(fail("the table list does not match its schema version"));
    }
    let mut counts = Vec::new();
    for (entry, t) in listed.iter().zip(expected) {
        let columns: Vec<&str> = field(entry, "columns")
            .as_array()
            .map(|cs| cs.iter().filter_map(Json::as_str).collect())
            .unwrap_or_default();
        let want: Vec<&str> = t.columns.iter().map(|c| c.name).collect();
        if field(entry, "name") != t.name || columns != want {
            return Err(fail(&format!(
                "table {} does not match its schema version",
                t.name
            )));
        }
        let rows = field(entry, "rows")
            .as_u64()
            .ok_or_else(|| fail(&format!("no row count for {}", t.name)))?;
        counts.push((t, rows));
    }
    Ok(Snapshot {
        backend: field(v, "backend").as_str().unwrap_or("unknown").to_owned(),
        schema_version,
        head,
        counts,
    })
}

fn row_of(t: &Table, v: &Json) -> Result<Row, String> {
    let cells = v.as_array().ok_or("a row is not an array")?;
    if cells.len() != t.columns.len() {
        return Err(format!(
            "a row of {} has {} values, not {}",
            t.name,
            cells.len(),
            t.columns.len()
        ));
    }
    let mut row = Vec::with_capacity(cells.len());
    for (cell, c) in cells.iter().zip(t.columns) {
        let value = match (cell, c.kind) {
            (Json::Null, _) => Value::Null,
            (Json::String(s), super::Kind::Text) => Value::Text(s.clone()),
            (Json::String(s), super::Kind::Bytes) => Value::Bytes(
                hex::decode(s).map_err(|_| format!("{}.{} is not hex", t.name, c.name))?,
            ),
            (Json::Number(n), super::Kind::Int | super::Kind::BigInt) => {
                let n = n
                    .as_i64()
                    .ok_or_else(|| format!("{}.{} is not an integer", t.name, c.name))?;
                if c.kind == super::Kind::Int && i32::try_from(n).is_err() {
                    return Err(format!("{}.{} is out of range", t.name, c.name));
                }
                Value::Int(n)
            }
            (Json::Number(n), super::Kind::Time) => Value::Time(
                n.as_i64()
                    .filter(|us| {
                        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(*us) * 1000)
                            .is_ok()
                    })
                    .ok_or_else(|| format!("{}.{} is not a time", t.name, c.name))?,
            ),
            _ => return Err(format!("{}.{} has the wrong type", t.name, c.name)),
        };
        check_value(t, c, &value).map_err(|e| e.0)?;
        row.push(value);
    }
    Ok(row)
}

/// Reads the whole file once and checks everything: header, every table marker and
/// row, the row counts, the trailer and its SHA-256. Returns the snapshot the file
/// holds. Blocking.
pub fn verify(path: &Path) -> Result<Snapshot, TransferError> {
    read_pages(path, &mut |_, _| Ok(true))
}

/// Reads the file, giving every table's rows in pages to `page` (which returns `false`
/// to stop early). Checks as it goes; the checksum is only known at the end, so call
/// [`verify`] before writing anything.
fn read_pages(
    path: &Path,
    page: &mut dyn FnMut(&'static Table, Vec<Row>) -> Result<bool, TransferError>,
) -> Result<Snapshot, TransferError> {
    let mut lines = Lines::open(path)?;
    let header = lines.expect("the header")?;
    let snapshot = header_of(path, &header)?;
    lines.absorb();
    for (t, count) in &snapshot.counts {
        let marker = lines.expect(&format!("table {}", t.name))?;
        if marker.get("end").is_some() {
            return Err(bad(
                path,
                lines.number,
                format!("the file is truncated (table {} missing)", t.name),
            ));
        }
        if marker != json!({"table": t.name}) {
            return Err(bad(
                path,
                lines.number,
                format!("expected the start of table {}", t.name),
            ));
        }
        lines.absorb();
        let mut rows = Vec::with_capacity(super::PAGE_ROWS);
        for _ in 0..*count {
            let v = lines.expect(&format!("a row of {}", t.name))?;
            if v.is_object() {
                return Err(bad(
                    path,
                    lines.number,
                    format!("the file is truncated (table {} ends early)", t.name),
                ));
            }
            let row = row_of(t, &v).map_err(|e| bad(path, lines.number, e))?;
            lines.absorb();
            rows.push(row);
            if rows.len() >= super::PAGE_ROWS && !page(t, std::mem::take(&mut rows))? {
                return Ok(snapshot);
            }
        }
        if !rows.is_empty() && !page(t, rows)? {
            return Ok(snapshot);
        }
    }
    let trailer = lines.expect("the trailer")?;
    let digest = hex::encode(lines.hash.clone().finalize());
    if field(&trailer, "end") != MAGIC {
        return Err(bad(
            path,
            lines.number,
            "expected the trailer (more rows than the header counts)",
        ));
    }
    if field(&trailer, "rows").as_u64() != Some(snapshot.total_rows()) {
        return Err(bad(
            path,
            lines.number,
            "the trailer's row count does not match",
        ));
    }
    if field(&trailer, "sha256").as_str() != Some(digest.as_str()) {
        return Err(bad(
            path,
            lines.number,
            "the SHA-256 checksum does not match (the file was altered or damaged)",
        ));
    }
    if lines.next()?.is_some() {
        return Err(bad(path, lines.number, "there is data after the trailer"));
    }
    Ok(snapshot)
}

/// Streams the pages of a file that [`verify`] accepted (no [`Event::Begin`]: see
/// [`open_stream`]). Runs on a blocking thread.
fn stream(path: &Path) -> Events {
    let (tx, rx) = super::channel();
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || stream_blocking(&path, &tx));
    rx
}

fn stream_blocking(path: &Path, tx: &EventSender) {
    let result = read_pages(path, &mut |table, rows| {
        Ok(tx.blocking_send(Ok(Event::Rows { table, rows })).is_ok())
    });
    if let Err(e) = result {
        let _ = tx.blocking_send(Err(e));
    }
}

/// Opens a file that [`verify`] accepted: its snapshot (read from the header), and a
/// stream of its pages read on a blocking thread.
pub fn open_stream(path: &Path) -> Result<(Snapshot, Events), TransferError> {
    let snapshot = {
        let mut lines = Lines::open(path)?;
        let header = lines.expect("the header")?;
        header_of(path, &header)?
    };
    Ok((snapshot, stream(path)))
}

/// A backup's header, read without checking the rest (for `--json` summaries of a file).
pub fn peek(path: &Path) -> Result<Snapshot, TransferError> {
    let mut lines = Lines::open(path)?;
    let header = lines.expect("the header")?;
    header_of(path, &header)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::transfer::{Kind, Progress, TABLES, table};

    fn sample_row(t: &Table, i: usize) -> Row {
        t.columns
            .iter()
            .map(|c| match (c.kind, c.nullable) {
                (_, true) if i.is_multiple_of(2) => Value::Null,
                (Kind::Text, _) => Value::Text(format!("{}-{i:05} \"quoted\" ✓", c.name)),
                (Kind::Int | Kind::BigInt, _) => Value::Int(i64::try_from(i).unwrap()),
                (Kind::Bytes, _) => Value::Bytes(vec![u8::try_from(i % 256).unwrap(); 32]),
                (Kind::Time, _) => Value::Time(1_767_268_800_000_000 + i64::try_from(i).unwrap()),
            })
            .collect()
    }

    /// A snapshot with 2500 users (three pages) and one row elsewhere, except an empty
    /// settings table.
    fn snapshot() -> Snapshot {
        Snapshot {
            backend: "libsql".into(),
            schema_version: crate::transfer::latest_schema_version(),
            head: ChainHead {
                seq: 1,
                hash: hex::encode([7u8; 32]),
            },
            counts: TABLES
                .iter()
                .map(|t| {
                    let n = match t.name {
                        "users" => 2500,
                        "settings" => 0,
                        _ => 1,
                    };
                    (t, n)
                })
                .collect(),
        }
    }

    fn write(path: &Path) -> Summary {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (tx, rx) = crate::transfer::channel();
        let s = snapshot();
        let producer = std::thread::spawn(move || {
            tx.blocking_send(Ok(Event::Begin(s.clone()))).unwrap();
            for (t, n) in &s.counts {
                let rows: Vec<Row> = (0..usize::try_from(*n).unwrap())
                    .map(|i| sample_row(t, i))
                    .collect();
                for page in rows.chunks(crate::transfer::PAGE_ROWS) {
                    tx.blocking_send(Ok(Event::Rows {
                        table: t,
                        rows: page.to_vec(),
                    }))
                    .unwrap();
                }
            }
        });
        let progress: Progress = Arc::new(|_, _, _| {});
        let summary = rt.block_on(async {
            let path = path.to_path_buf();
            tokio::task::spawn_blocking(move || write_blocking(&path, rx, &progress))
                .await
                .unwrap()
        });
        producer.join().unwrap();
        summary.unwrap()
    }

    #[test]
    fn a_written_file_reads_back_row_for_row_and_any_change_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.backup");
        let summary = write(&path);
        assert_eq!(
            summary.total_rows,
            2500 + u64::try_from(TABLES.len()).unwrap() - 2
        );
        assert!(!partial_path(&path).exists());
        let read = verify(&path).unwrap();
        assert_eq!(read, snapshot());
        let users = table("users").unwrap();
        let mut seen = Vec::new();
        read_pages(&path, &mut |t, rows| {
            if std::ptr::eq(t, users) {
                seen.extend(rows);
            }
            Ok(true)
        })
        .unwrap();
        assert_eq!(seen.len(), 2500);
        assert_eq!(seen.get(1234), Some(&sample_row(users, 1234)));

        let text = std::fs::read_to_string(&path).unwrap();
        // Cut at a character boundary: the sample rows hold non-ASCII text.
        let half = (0..=text.len() / 2)
            .rev()
            .find(|&i| text.is_char_boundary(i))
            .unwrap();
        let cases = [
            ("truncated", text.get(..half).unwrap().to_owned()),
            ("altered", text.replacen("\"id-00007", "\"id-00008", 1)),
            ("extra", format!("{text}{{}}\n")),
            ("empty", String::new()),
        ];
        for (name, bad) in cases {
            std::fs::write(&path, bad).unwrap();
            let e = verify(&path).unwrap_err();
            assert!(e.0.contains("nothing was written"), "{name}: {e}");
        }
    }
}
