//! `ownership backup FILE`, `ownership restore FILE` and `ownership store copy --from URL
//! --to URL`: a whole store to a portable file and back, or straight into another store
//! of either backend. The rows move in pages through `ownership_store::transfer`, so
//! memory stays bounded; progress goes to stderr (a bar on a terminal, plain lines
//! otherwise); the summary to stdout (`--json` for scripts).

use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use ownership_core::ports::Clock;
use ownership_store::SystemClock;
use ownership_store::libsql::LibsqlStore;
use ownership_store::postgres::PgStore;
use ownership_store::transfer::{self, Endpoint, Progress, Summary, Table, format};
use serde::Serialize;

use super::CliError;
use super::output::Output;
use crate::backend::{Location, redact};

/// Moving whole stores.
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Copy every row of one store into another, empty one (any backends, either
    /// direction). Stop the servers of the source first for a copy that misses nothing.
    Copy {
        /// The source: a libSQL file path or `postgres://…`.
        #[arg(long, value_name = "URL")]
        from: String,
        /// The target, which must be empty (new, or migrated with no rows).
        #[arg(long, value_name = "URL")]
        to: String,
    },
}

#[derive(Serialize)]
struct Report<'a> {
    command: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    to: Option<String>,
    #[serde(flatten)]
    summary: &'a Summary,
}

fn fail(e: impl std::fmt::Display) -> CliError {
    CliError::new(e.to_string())
}

/// Opens the store at `location` for a transfer, on its own connection, neither
/// creating a missing libSQL file (`create == false`) nor migrating anything.
async fn open(location: &Location, create: bool) -> Result<Endpoint, CliError> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    match location {
        Location::LibsqlFile(path) => {
            if !create && !path.exists() {
                return Err(CliError::new(format!(
                    "no database at `{}`",
                    path.display()
                )));
            }
            let store = LibsqlStore::open_file(path, clock)
                .await
                .map_err(|e| CliError::new(format!("cannot open {}: {e}", path.display())))?;
            Ok(Endpoint::Libsql(store))
        }
        Location::Postgres(url) => {
            let store = PgStore::connect(url, clock)
                .await
                .map_err(|e| CliError::new(format!("cannot connect to {}: {e}", redact(url))))?;
            Ok(Endpoint::Postgres(store))
        }
    }
}

/// A libSQL file this command created, removed (with its WAL and shared-memory files)
/// unless the command succeeds, so a refused restore or copy leaves nothing behind.
struct Created(Option<PathBuf>);

impl Created {
    fn new(location: &Location) -> Self {
        match location {
            Location::LibsqlFile(p) if !p.exists() => Self(Some(p.clone())),
            _ => Self(None),
        }
    }

    fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for Created {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            for suffix in ["", "-wal", "-shm"] {
                let mut name = path.as_os_str().to_owned();
                name.push(suffix);
                let _ = std::fs::remove_file(PathBuf::from(name));
            }
        }
    }
}

/// Progress on stderr: a bar per table on a terminal, else a line every 10 000 rows and
/// at the end of each table (`copied 10000/100000 rows of tokens`).
fn progress(verb: &'static str) -> (Progress, Option<ProgressBar>) {
    if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(0);
        let style = ProgressStyle::with_template(
            "{msg:>20} [{bar:40}] {pos}/{len} rows ({per_sec}, {eta} left)",
        )
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        let current: Mutex<Option<&'static str>> = Mutex::new(None);
        let shown = bar.clone();
        let report: Progress = Arc::new(move |table: &'static Table, done, total| {
            if let Ok(mut current) = current.lock()
                && *current != Some(table.name)
            {
                *current = Some(table.name);
                shown.set_length(total);
                shown.set_message(table.name);
            }
            shown.set_position(done);
        });
        (report, Some(bar))
    } else {
        let report: Progress = Arc::new(move |table: &'static Table, done, total| {
            if done.is_multiple_of(10_000) || done == total {
                let _ = writeln!(
                    std::io::stderr().lock(),
                    "{verb} {done}/{total} rows of {}",
                    table.name
                );
            }
        });
        (report, None)
    }
}

fn show(out: Output, report: &Report<'_>, headline: &str) -> Result<(), CliError> {
    out.show(report, |out| {
        out.line(headline)?;
        let s = report.summary;
        out.line(&format!(
            "schema version {}, audit head {} ({})",
            s.schema_version, s.audit_head.seq, s.audit_head.hash
        ))?;
        let width = s.tables.iter().map(|t| t.table.len()).max().unwrap_or(0);
        for t in &s.tables {
            out.line(&format!("  {:<width$}  {}", t.table, t.rows))?;
        }
        Ok(())
    })
}

/// `ownership backup FILE`: one consistent snapshot of the configured store, written to
/// `FILE.partial`, synced, then renamed to `FILE`.
pub async fn backup(location: &Location, file: &Path, out: Output) -> Result<ExitCode, CliError> {
    if file.is_dir() {
        return Err(CliError::new(format!("{} is a directory", file.display())));
    }
    let source = open(location, false).await?;
    let events = source.export();
    let (report, bar) = progress("backed up");
    let path = file.to_path_buf();
    let summary =
        tokio::task::spawn_blocking(move || format::write_blocking(&path, events, &report))
            .await
            .map_err(|e| CliError::new(format!("the backup writer stopped: {e}")))?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let summary = summary.map_err(fail)?;
    show(
        out,
        &Report {
            command: "backup",
            file: Some(file.display().to_string()),
            from: Some(location.display()),
            to: None,
            summary: &summary,
        },
        &format!(
            "backed up {} rows of {} to {}",
            summary.total_rows,
            location.display(),
            file.display()
        ),
    )?;
    Ok(ExitCode::SUCCESS)
}

/// `ownership restore FILE`: the whole file is checked first (checksum, every row); then
/// the configured store, which must be empty, is migrated to the backup's schema version
/// and written in one transaction.
pub async fn restore(location: &Location, file: &Path, out: Output) -> Result<ExitCode, CliError> {
    let path = file.to_path_buf();
    tokio::task::spawn_blocking(move || format::verify(&path))
        .await
        .map_err(|e| CliError::new(format!("the backup reader stopped: {e}")))?
        .map_err(fail)?;
    let created = Created::new(location);
    let target = open(location, true).await?;
    let (snapshot, events) = format::open_stream(file).map_err(fail)?;
    target.prepare(&snapshot).await.map_err(fail)?;
    let (report, bar) = progress("restored");
    let result = target.import(snapshot, events, report).await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let summary = result.map_err(fail)?;
    created.keep();
    show(
        out,
        &Report {
            command: "restore",
            file: Some(file.display().to_string()),
            from: None,
            to: Some(location.display()),
            summary: &summary,
        },
        &format!(
            "restored {} rows from {} into {}",
            summary.total_rows,
            file.display(),
            location.display()
        ),
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Runs a `store` command.
pub async fn store(cmd: StoreCommand, out: Output) -> Result<ExitCode, CliError> {
    match cmd {
        StoreCommand::Copy { from, to } => {
            let from = Location::parse(&from).map_err(|e| CliError::new(format!("--from: {e}")))?;
            let to = Location::parse(&to).map_err(|e| CliError::new(format!("--to: {e}")))?;
            if from == to {
                return Err(CliError::new("--from and --to name the same store"));
            }
            let source = open(&from, false).await?;
            let created = Created::new(&to);
            let target = open(&to, true).await?;
            let (report, bar) = progress("copied");
            let result = transfer::copy(&source, &target, report).await;
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            let summary = result.map_err(fail)?;
            created.keep();
            show(
                out,
                &Report {
                    command: "store copy",
                    file: None,
                    from: Some(from.display()),
                    to: Some(to.display()),
                    summary: &summary,
                },
                &format!(
                    "copied {} rows from {} to {}",
                    summary.total_rows,
                    from.display(),
                    to.display()
                ),
            )?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
