//! The database thread and the small vocabulary every area uses: transactions, statements,
//! row parsing and error mapping.
//!
//! libSQL's "async" calls on a local database are synchronous underneath and would block
//! whichever tokio worker polls them. So one dedicated OS thread owns the
//! [`::libsql::Connection`] and a current-thread runtime; the store sends it jobs over a
//! channel and awaits each reply on a oneshot. Every transaction is serialized there
//! (SQLite has one writer anyway). The point reads behind every request are the exception:
//! on a file they run on the calling thread with reader connections of their own
//! ([`Readers`]). When the last handle to the store is dropped the channel closes and the
//! thread ends, closing the database.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::{Duration, Instant};

use std::collections::HashMap;

use ::libsql::{Builder, Connection, Statement, Value};
use async_trait::async_trait;
use ownership_core::{Error, Result};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

use crate::metrics::Op;
use crate::sql::driver::{
    Driver, Fail, Param, Row, Val, integrity, micros, query_opt, sqlite_dialect,
};

/// A unit of work for the database thread. It gets its own handle to the connection (a
/// cheap clone) so its future borrows nothing from the thread.
type Task = Box<dyn FnOnce(Connection) -> Pin<Box<dyn Future<Output = ()>>> + Send>;

/// A write for the group commit ([`commit_group`]): given the connection, it runs inside
/// the group's transaction and says whether it succeeded, and how to answer its caller
/// once the group's commit is known; given none (its transaction could not begin), it
/// runs nothing and answers `Unavailable`.
type WriteTask =
    Box<dyn FnOnce(Option<Connection>) -> Pin<Box<dyn Future<Output = Written>>> + Send>;

/// What a [`WriteTask`] left: whether its body succeeded (else its statements are undone),
/// and its answer, to send with whether the group committed.
struct Written {
    ok: bool,
    answer: Box<dyn FnOnce(bool)>,
}

/// What the database thread is asked to do.
enum Job {
    /// Anything run alone on the connection (a read transaction, a migration, a backup).
    Run(Task),
    /// A write transaction's body, committed with the writes queued beside it.
    Write(WriteTask),
}

/// Most writes committed together. Each caller still hears back only once its write is
/// durable; a group only spares each of them its own commit (and fsync).
const MAX_GROUP: usize = 64;

/// Where the database lives.
#[derive(Debug, Clone)]
pub(super) enum Target {
    /// A fresh, private in-memory database.
    Memory,
    /// A file, opened in WAL mode with a busy timeout.
    File(PathBuf),
}

/// How long a writer waits for another process's lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_millis(5_000);

/// The handle the store keeps: the sending side of the database thread's job queue, and
/// for a file, the reader connections of the point reads.
#[derive(Debug, Clone)]
pub(super) struct Worker {
    jobs: mpsc::UnboundedSender<Job>,
    readers: Option<std::sync::Arc<Readers>>,
    /// The statements the database thread's connection prepared (its transactions use
    /// them: they are the same few dozen statements over and over).
    statements: Prepared,
}

/// Most statements a connection keeps prepared (the row layer's SQL is a fixed set; a
/// statement built at run time beyond this is prepared each time).
const PREPARED_MAX: usize = 512;

/// Statements one connection prepared, by SQL text, for as long as it lives. Only that
/// connection's drivers use them, on one thread at a time and one statement at a time
/// (each is run to its end and reset before the next), so a statement is shared, not
/// taken out: a hit is one lookup, with no allocation.
#[derive(Clone, Default)]
pub(super) struct Prepared(
    std::sync::Arc<std::sync::Mutex<HashMap<String, std::sync::Arc<Statement>>>>,
);

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared").finish_non_exhaustive()
    }
}

impl Prepared {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, std::sync::Arc<Statement>>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The statement kept for `sql` (reset), if any.
    fn get(&self, sql: &str) -> Option<std::sync::Arc<Statement>> {
        self.map().get(sql).cloned()
    }

    /// Keeps `stmt` for the next use of `sql`.
    fn keep(&self, sql: &str, stmt: &std::sync::Arc<Statement>) {
        let mut map = self.map();
        if map.len() < PREPARED_MAX {
            map.insert(sql.to_owned(), std::sync::Arc::clone(stmt));
        }
    }

    /// Drops the statement of `sql` after it failed: whatever went wrong is not kept.
    fn forget(&self, sql: &str) {
        self.map().remove(sql);
    }
}

/// Most idle reader connections kept (a busy process opens more and closes the extras).
const IDLE_READERS: usize = 8;

/// Reader connections to a file database in WAL mode, used on the calling thread for the
/// point reads behind every request (token, chat identity, resource credential): no hop to
/// the database thread. A point read is one indexed `SELECT` that SQLite answers from
/// memory in microseconds, synchronously (libSQL's local calls never wait on IO events),
/// so it runs in place, like any short computation. WAL gives each reader the last
/// committed state without blocking the writer. An in-memory database has no readers (a
/// second connection would be a different database): its point reads go to the thread.
pub(super) struct Readers {
    db: ::libsql::Database,
    idle: std::sync::Mutex<Vec<Lite>>,
}

impl std::fmt::Debug for Readers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readers").finish_non_exhaustive()
    }
}

impl Readers {
    async fn open(path: &std::path::Path) -> Result<Self> {
        let db = Builder::new_local(path).build().await.map_err(db_err)?;
        Ok(Self {
            db,
            idle: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// An idle reader, or a new one (read-only, with the busy timeout), with the
    /// statements it prepared so far.
    fn take(&self) -> Result<Lite> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop();
        if let Some(reader) = idle {
            return Ok(reader);
        }
        let conn = self.db.connect().map_err(db_err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(db_err)?;
        futures_executor::block_on(pragma(&conn, "PRAGMA query_only = 1"))?;
        Ok(Lite::keeping(conn, Prepared::default()))
    }

    fn put(&self, reader: Lite) {
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if idle.len() < IDLE_READERS && reader.conn.is_autocommit() {
            idle.push(reader);
        }
    }
}

/// The generic answer for anything the database did wrong. The cause goes to the log only.
pub(super) fn unavailable() -> Error {
    Error::Unavailable("store unavailable".into())
}

/// Logs a driver error and hides it behind [`unavailable`].
pub(super) fn db_err(e: ::libsql::Error) -> Error {
    tracing::error!(error = %e, "libsql statement failed");
    unavailable()
}

impl Worker {
    /// Starts the database thread, opens the database on it and waits until it is ready.
    pub(super) async fn start(target: Target) -> Result<Self> {
        crate::metrics::backend_opened("libsql");
        let target_path = match &target {
            Target::File(path) => Some(path.clone()),
            Target::Memory => None,
        };
        let (jobs, mut queue) = mpsc::unbounded_channel::<Job>();
        let (ready_tx, ready_rx) = oneshot::channel::<Result<()>>();
        // Held by the database thread: the checkpointer stops when it ends.
        let (alive, stopped) = std::sync::mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("ownership-libsql".into())
            .spawn(move || {
                let _alive = alive;
                let runtime = match tokio::runtime::Builder::new_current_thread().build() {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot start the libsql runtime");
                        let _ = ready_tx.send(Err(unavailable()));
                        return;
                    }
                };
                let (_db, conn) = match runtime.block_on(open(&target)) {
                    Ok(opened) => opened,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                if ready_tx.send(Ok(())).is_err() {
                    return;
                }
                let mut next = None;
                loop {
                    let Some(job) = next.take().or_else(|| queue.blocking_recv()) else {
                        break;
                    };
                    let ran = std::panic::catch_unwind(AssertUnwindSafe(|| match job {
                        Job::Run(task) => runtime.block_on(task(conn.clone())),
                        Job::Write(first) => {
                            // The writes already queued join this one's transaction; the
                            // first job of another kind waits for the group's commit.
                            let mut group = vec![first];
                            while group.len() < MAX_GROUP {
                                match queue.try_recv() {
                                    Ok(Job::Write(w)) => group.push(w),
                                    Ok(other) => {
                                        next = Some(other);
                                        break;
                                    }
                                    Err(_) => break,
                                }
                            }
                            runtime.block_on(commit_group(&conn, group));
                        }
                    }));
                    if ran.is_err() {
                        // The callers see their reply channels closed (Unavailable); make
                        // sure no half-done transaction survives into the next job.
                        tracing::error!("a libsql job panicked; rolling back");
                        if !conn.is_autocommit() {
                            let _ = runtime.block_on(conn.execute("ROLLBACK", ()));
                        }
                    }
                }
            })
            .map_err(|e| {
                tracing::error!(error = %e, "cannot spawn the libsql thread");
                unavailable()
            })?;
        ready_rx.await.map_err(|_| unavailable())??;
        if let Some(path) = &target_path {
            start_checkpointer(path, stopped).await?;
        }
        // Opened after the thread set WAL mode on the file.
        let readers = match &target_path {
            Some(path) => Some(std::sync::Arc::new(Readers::open(path).await?)),
            None => None,
        };
        Ok(Self {
            jobs,
            readers,
            statements: Prepared::default(),
        })
    }

    /// A driver on the database thread's connection `conn` (the one every job is given),
    /// with the statements it prepared before.
    pub(super) fn on_thread(&self, conn: Connection) -> Lite {
        Lite::keeping(conn, self.statements.clone())
    }

    /// Runs the point read `f` (one statement outside any transaction) on the calling
    /// thread with a reader connection when the database is a file ([`Readers`]), else on
    /// the database thread.
    pub(super) async fn point<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: AsyncFnOnce(&mut Lite) -> Result<T> + Send + 'static,
    {
        let Some(readers) = &self.readers else {
            let statements = self.statements.clone();
            let on_thread =
                move |conn| async move { f(&mut Lite::keeping(conn, statements)).await };
            return self.timed(Op::Read, on_thread).await;
        };
        let started = Instant::now();
        let result = readers.take().and_then(|mut reader| {
            let result = futures_executor::block_on(f(&mut reader));
            readers.put(reader);
            result
        });
        crate::metrics::store_call("libsql", Op::Read, started, &result);
        result
    }

    /// Runs `f` on the database thread with the connection and returns its result.
    pub(super) async fn run<T, F, Fut>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(Connection) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T>> + 'static,
    {
        self.timed(Op::Statement, f).await
    }

    /// [`Worker::run`], recorded as a store call of kind `op` (latency, including the wait
    /// for the database thread, and errors).
    async fn timed<T, F, Fut>(&self, op: Op, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(Connection) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T>> + 'static,
    {
        let started = Instant::now();
        let result = self.job(f).await;
        crate::metrics::store_call("libsql", op, started, &result);
        result
    }

    async fn job<T, F, Fut>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(Connection) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T>> + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let task: Task = Box::new(move |conn| {
            Box::pin(async move {
                let _ = reply.send(f(conn).await);
            })
        });
        self.send(Job::Run(task), answer).await
    }

    /// Queues `job` and waits for the answer it sends on `answer`.
    async fn send<T>(&self, job: Job, answer: oneshot::Receiver<Result<T>>) -> Result<T> {
        self.jobs.send(job).map_err(|_| {
            tracing::error!("the libsql thread has stopped");
            unavailable()
        })?;
        answer.await.map_err(|_| {
            tracing::error!("the libsql thread dropped a job without answering");
            unavailable()
        })?
    }

    /// Runs `f` in a `BEGIN IMMEDIATE` transaction: committed when `f` returns `Ok`, undone
    /// on any error. Every mutation goes through here. Writes queued at the same time share
    /// one transaction and one commit ([`commit_group`]), each inside a savepoint of its
    /// own; each caller is answered once the commit is done (or failed).
    pub(super) async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: AsyncFnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let started = Instant::now();
        let (reply, answer) = oneshot::channel::<Result<T>>();
        let task: WriteTask = Box::new(move |conn| {
            Box::pin(async move {
                let result = match conn {
                    Some(conn) => f(&conn).await,
                    None => Err(unavailable()),
                };
                Written {
                    ok: result.is_ok(),
                    answer: Box::new(move |committed| {
                        let _ = reply.send(match result {
                            Ok(_) if !committed => Err(unavailable()),
                            other => other,
                        });
                    }),
                }
            })
        });
        let result = self.send(Job::Write(task), answer).await;
        crate::metrics::store_call("libsql", Op::Write, started, &result);
        result
    }

    /// Runs `f` in a read transaction (one consistent snapshot for all its statements).
    pub(super) async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: AsyncFnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.timed(Op::Read, move |conn| async move {
            transaction(&conn, "BEGIN DEFERRED", f).await
        })
        .await
    }
}

/// `begin`, `f`, then COMMIT on success or ROLLBACK on any error.
pub(super) async fn transaction<T, F>(conn: &Connection, begin: &str, f: F) -> Result<T>
where
    F: AsyncFnOnce(&Connection) -> Result<T>,
{
    conn.execute(begin, ()).await.map_err(db_err)?;
    match f(conn).await {
        Ok(value) => match conn.execute("COMMIT", ()).await {
            Ok(_) => Ok(value),
            Err(e) => {
                let err = db_err(e);
                rollback(conn).await;
                Err(err)
            }
        },
        Err(e) => {
            rollback(conn).await;
            Err(e)
        }
    }
}

/// Runs a group of writes in one `BEGIN IMMEDIATE` transaction (the group commit): each
/// body in a savepoint of its own, undone alone when it fails, then one `COMMIT` for all.
/// A body sees the writes before it in the group as committed, as it would have one by
/// one. Each caller is answered after the commit: with its own error, with its value once
/// committed, or with `Unavailable` when the commit failed (then nothing was written).
async fn commit_group(conn: &Connection, group: Vec<WriteTask>) {
    let mut done: Vec<Box<dyn FnOnce(bool)>> = Vec::with_capacity(group.len());
    let alone = group.len() == 1;
    let mut open = false;
    for task in group {
        if !open {
            if let Err(e) = conn.execute("BEGIN IMMEDIATE", ()).await {
                // Another process held the write lock past the busy timeout: this one fails
                // unrun, the rest of the group tries again.
                let _ = db_err(e);
                (task(None).await.answer)(false);
                continue;
            }
            open = true;
        }
        if !alone && !control(conn, "SAVEPOINT grouped").await {
            written_failed(conn, &mut done).await;
            open = false;
            (task(None).await.answer)(false);
            continue;
        }
        let written = task(Some(conn.clone())).await;
        if written.ok {
            if !alone && !control(conn, "RELEASE grouped").await {
                written_failed(conn, &mut done).await;
                open = false;
                (written.answer)(false);
                continue;
            }
            done.push(written.answer);
        } else {
            if alone {
                rollback(conn).await;
                open = false;
            } else if conn.is_autocommit()
                || !control(conn, "ROLLBACK TO grouped").await
                || !control(conn, "RELEASE grouped").await
            {
                // SQLite ended the whole transaction (some errors do): what the group wrote
                // before is gone too.
                written_failed(conn, &mut done).await;
                open = false;
            }
            (written.answer)(false);
        }
    }
    if !open {
        return;
    }
    let committed = match conn.execute("COMMIT", ()).await {
        Ok(_) => true,
        Err(e) => {
            let _ = db_err(e);
            rollback(conn).await;
            false
        }
    };
    for answer in done {
        answer(committed);
    }
}

/// Ends the group's transaction (rolled back) and answers the writes it held: not written.
async fn written_failed(conn: &Connection, done: &mut Vec<Box<dyn FnOnce(bool)>>) {
    rollback(conn).await;
    for answer in done.drain(..) {
        answer(false);
    }
}

/// A statement that steers the group's transaction; `false` (logged) when it failed.
async fn control(conn: &Connection, sql: &str) -> bool {
    match conn.execute(sql, ()).await {
        Ok(_) => true,
        Err(e) => {
            let _ = db_err(e);
            false
        }
    }
}

/// Rolls back the open transaction, if any (logged, never fails).
pub(super) async fn rollback(conn: &Connection) {
    if !conn.is_autocommit()
        && let Err(e) = conn.execute("ROLLBACK", ()).await
    {
        tracing::error!(error = %e, "libsql rollback failed");
    }
}

/// How often the checkpointer copies the write-ahead log back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// Starts the checkpointer of a file database: a thread with a connection of its own that
/// runs a passive checkpoint every [`CHECKPOINT_EVERY`], so the database thread seldom
/// pays for one at commit (its automatic checkpoint stays, at [`WAL_PAGES`], as a
/// backstop). A passive checkpoint waits for no one and blocks no one: it copies what no
/// reader still needs. Ends when the database thread does (`stopped` disconnects).
async fn start_checkpointer(
    path: &std::path::Path,
    stopped: std::sync::mpsc::Receiver<()>,
) -> Result<()> {
    let db = Builder::new_local(path).build().await.map_err(db_err)?;
    let conn = db.connect().map_err(db_err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(db_err)?;
    std::thread::Builder::new()
        .name("ownership-libsql-checkpoint".into())
        .spawn(move || {
            let _db = db;
            // A failure is logged once, not ten times a second (a read-only file fails
            // every time; the database thread's own checkpoint is still there).
            let mut failing = false;
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                stopped.recv_timeout(CHECKPOINT_EVERY)
            {
                let done = futures_executor::block_on(async {
                    let mut rows = conn.query("PRAGMA wal_checkpoint(PASSIVE)", ()).await?;
                    rows.next().await.map(drop)
                });
                match done {
                    Err(e) if !failing => {
                        tracing::warn!(error = %e, "libsql checkpoint failed; will retry");
                        failing = true;
                    }
                    Err(_) => {}
                    Ok(_) => failing = false,
                }
            }
        })
        .map_err(|e| {
            tracing::error!(error = %e, "cannot spawn the libsql checkpoint thread");
            unavailable()
        })?;
    Ok(())
}

/// The database thread's page cache, in KiB.
const WRITER_CACHE_KIB: u32 = 32 * 1024;

/// Pages the write-ahead log may hold before the database thread checkpoints it itself.
const WAL_PAGES: u32 = 10_000;

/// Opens the database and sets the connection up: foreign keys on (verified), a busy
/// timeout, and WAL for files.
async fn open(target: &Target) -> Result<(::libsql::Database, Connection)> {
    let db = match target {
        Target::Memory => Builder::new_local(":memory:").build().await,
        Target::File(path) => {
            create_private(path);
            Builder::new_local(path).build().await
        }
    }
    .map_err(db_err)?;
    let conn = db.connect().map_err(db_err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(db_err)?;
    pragma(&conn, "PRAGMA busy_timeout = 5000").await?;
    if matches!(target, Target::File(_)) {
        let mode = pragma(&conn, "PRAGMA journal_mode = WAL").await?;
        if !matches!(mode.first(), Some(Val::Text(m)) if m.eq_ignore_ascii_case("wal")) {
            tracing::error!("libsql refused WAL journal mode");
            return Err(unavailable());
        }
        // Every commit on disk before it is answered (SQLite's default, stated here: a
        // revocation must survive a power cut).
        pragma(&conn, "PRAGMA synchronous = FULL").await?;
    }
    pragma(&conn, "PRAGMA foreign_keys = ON").await?;
    // The database thread's page cache: 32 MiB instead of SQLite's 2 MiB, so a write finds
    // the index pages it touches in memory (docs/storage.md, "libSQL connections").
    pragma(&conn, &format!("PRAGMA cache_size = -{WRITER_CACHE_KIB}")).await?;
    pragma(&conn, &format!("PRAGMA wal_autocheckpoint = {WAL_PAGES}")).await?;
    let fk = pragma(&conn, "PRAGMA foreign_keys").await?;
    if !matches!(fk.first(), Some(Val::Int(1))) {
        // Deleting a user relies on ON DELETE CASCADE: without foreign keys it would leave
        // their tokens behind. Fail closed.
        tracing::error!("libsql foreign keys could not be enabled");
        return Err(unavailable());
    }
    Ok((db, conn))
}

/// Creates the database file, if it does not exist yet, readable and writable by its owner
/// only (0600): it holds token digests, sealed secrets and the pairing tables. SQLite gives
/// the `-wal` and `-shm` files it creates beside it the same mode. Best effort: when this
/// fails, opening the database fails too (or succeeds with SQLite's default mode on a
/// file someone else created meanwhile), with SQLite's own error.
fn create_private(path: &std::path::Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        let _created = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path);
    }
}

/// Runs a PRAGMA with `query()` (some return a row, which `execute()` refuses) and returns
/// its first row, if any.
async fn pragma(conn: &Connection, sql: &str) -> Result<Row> {
    Ok(query_opt(&mut Lite::new(conn.clone()), sql, &[])
        .await?
        .unwrap_or_default())
}

/// The row layer's [`Driver`] on a libSQL connection: times are unix microseconds, the
/// SQL is rewritten to SQLite's dialect ([`sqlite_dialect`], cached). The drivers of a
/// reader connection ([`Readers`]) and of the database thread's keep the statements they
/// prepared, by SQL text, for as long as the connection lives ([`Prepared`]); others
/// (migrations, transfers) prepare each statement.
pub struct Lite {
    conn: Connection,
    prepared: Option<Prepared>,
}

impl std::fmt::Debug for Lite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lite").finish_non_exhaustive()
    }
}

impl Lite {
    /// A driver on `conn` that prepares each statement.
    pub(super) fn new(conn: Connection) -> Self {
        Self {
            conn,
            prepared: None,
        }
    }

    /// A driver on `conn` that keeps the statements it prepares in `prepared` (the
    /// connection's own).
    pub(super) fn keeping(conn: Connection, prepared: Prepared) -> Self {
        Self {
            conn,
            prepared: Some(prepared),
        }
    }

    /// The statement for `sql` kept in `prepared`, or a new one, kept.
    async fn statement(
        &self,
        prepared: &Prepared,
        sql: &str,
    ) -> Result<std::sync::Arc<Statement>, Fail> {
        if let Some(stmt) = prepared.get(sql) {
            return Ok(stmt);
        }
        let stmt = std::sync::Arc::new(
            self.conn
                .prepare(&sqlite_dialect(sql))
                .await
                .map_err(fail)?,
        );
        prepared.keep(sql, &stmt);
        Ok(stmt)
    }
}

/// Every row of `rows`, read fully.
async fn read_all(mut rows: ::libsql::Rows) -> Result<Vec<Row>, Fail> {
    let columns = rows.column_count();
    let mut out = Vec::new();
    while let Some(row) = rows.next().await.map_err(fail)? {
        let mut vals = Vec::with_capacity(usize::try_from(columns).unwrap_or(0));
        for i in 0..columns {
            vals.push(match row.get_value(i).map_err(fail)? {
                Value::Null => Val::Null,
                Value::Integer(n) => Val::Int(n),
                Value::Text(s) => Val::Text(s),
                Value::Blob(b) => Val::Bytes(b),
                Value::Real(_) => return Err(Fail::Other(integrity("real column"))),
            });
        }
        out.push(vals);
    }
    Ok(out)
}

/// A parameter as libSQL binds it.
fn bind(p: &Param<'_>) -> Result<Value> {
    Ok(match p {
        Param::Text(Some(s)) => Value::Text(s.to_string()),
        Param::Int(Some(n)) => Value::Integer(*n),
        Param::Bytes(Some(b)) => Value::Blob(b.to_vec()),
        Param::Time(Some(t)) => Value::Integer(micros(*t)?),
        Param::Text(None) | Param::Int(None) | Param::Bytes(None) | Param::Time(None) => {
            Value::Null
        }
    })
}

/// A driver error: a unique violation (SQLite's extended codes 2067 and 1555), or logged
/// and hidden behind [`unavailable`].
fn fail(e: ::libsql::Error) -> Fail {
    match e {
        ::libsql::Error::SqliteFailure(2067 | 1555, msg) => Fail::Unique(msg),
        other => Fail::Other(db_err(other)),
    }
}

#[async_trait]
impl Driver for Lite {
    const POSTGRES: bool = false;

    async fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64, Fail> {
        let values = params.iter().map(bind).collect::<Result<Vec<_>>>()?;
        let Some(prepared) = &self.prepared else {
            let sql = sqlite_dialect(sql);
            return self.conn.execute(&sql, values).await.map_err(fail);
        };
        let stmt = self.statement(prepared, sql).await?;
        let changed = stmt.execute(values).await;
        stmt.reset();
        let changed = changed.map_err(|e| {
            prepared.forget(sql);
            fail(e)
        })?;
        u64::try_from(changed).map_err(|_| Fail::Other(integrity("changed row count")))
    }

    async fn query(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, Fail> {
        let values = params.iter().map(bind).collect::<Result<Vec<_>>>()?;
        let Some(prepared) = &self.prepared else {
            let sql = sqlite_dialect(sql);
            return read_all(self.conn.query(&sql, values).await.map_err(fail)?).await;
        };
        let stmt = self.statement(prepared, sql).await?;
        let rows = match stmt.query(values).await {
            Ok(rows) => read_all(rows).await,
            Err(e) => Err(fail(e)),
        };
        // Reset at once: a statement left stepping would hold its read snapshot.
        stmt.reset();
        rows.inspect_err(|_| prepared.forget(sql))
    }
}

/// Now from the store's clock, truncated to what is stored.
pub(super) fn now_of(clock: &dyn ownership_core::ports::Clock) -> OffsetDateTime {
    ownership_core::audit::truncate_to_micros(clock.now())
}
