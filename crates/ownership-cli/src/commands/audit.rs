//! `ownership audit tail [--limit N]`, `ownership audit verify [--file EXPORT]`,
//! `ownership audit export [--owner ID] [--since SEQ]` and `ownership audit chain-key`.

use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use ownership_core::OwnerId;
use ownership_core::audit::{
    AuditEvent, ChainHash, ChainHead, ChainKeys, ChainVerdict, ExportScope, rfc3339, verify_export,
};
use ownership_core::authz::Actor;
use ownership_core::ports::{AuditFilter, PageRequest};
use ownership_http::wire::EventView;
use serde::Serialize;
use serde_json::{Value as Json, json};

use super::output::{Output, when};
use super::{CliError, EXIT_BROKEN_CHAIN, Operator, domain};

/// The audit log.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// The newest events of every owner, newest first.
    Tail {
        /// How many events.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
        limit: u32,
    },
    /// Check the whole hash chain (or, with `--file`, an export of it): exits 0 when
    /// intact, 3 when an event was edited, deleted or reordered (naming the first broken
    /// event).
    Verify {
        /// An export written by `ownership audit export`, checked instead of the store.
        #[arg(long, value_name = "EXPORT")]
        file: Option<PathBuf>,
    },
    /// Write the chain as JSON lines on standard output (a header line, then one event a
    /// line, oldest first), for `audit verify --file` or `docs/verify_audit.py`. Progress
    /// goes to standard error.
    Export {
        /// Only this owner id's events.
        #[arg(long, value_name = "ID")]
        owner: Option<OwnerId>,
        /// Only the events after this sequence number.
        #[arg(long, value_name = "SEQ", default_value_t = 0, value_parser = clap::value_parser!(i64).range(0..))]
        since: i64,
    },
    /// Print the audit chain keys derived from the configured master keys (JSON), for an
    /// independent verifier. They reveal nothing about the master key but let whoever
    /// holds them forge chain links: keep them as secret as the master key.
    ChainKey,
}

/// The first line of an export.
const EXPORT_FORMAT: &str = "ownership-audit-export/v1";

/// Events between progress lines on standard error.
const PROGRESS_EVERY: u64 = 10_000;

/// One exported event: everything the verifier recomputes the link from.
fn event_json(e: &AuditEvent) -> Json {
    json!({
        "seq": e.seq,
        "at": rfc3339(e.at),
        "at_micros": i64::try_from(e.at.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX),
        "actor": e.actor.to_string(),
        "owner_id": e.owner.as_ref().map(OwnerId::as_str),
        "owner_uid": e.owner_uid,
        "action": e.action.as_str(),
        "target": e.target,
        "details": e.details,
        "key_version": e.key_version,
        "prev_hash": e.prev_hash.to_hex(),
        "hash": e.hash.to_hex(),
    })
}

fn head_json(h: &ChainHead) -> Json {
    json!({"seq": h.seq, "hash": h.hash.to_hex(), "key_version": h.key_version})
}

fn field<'a>(v: &'a Json, key: &str) -> &'a Json {
    v.get(key).unwrap_or(&Json::Null)
}

fn text(v: &Json, key: &str) -> Result<String, String> {
    field(v, key)
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("`{key}` is missing or not a string"))
}

fn version(v: &Json, key: &str) -> Result<Option<u32>, String> {
    match field(v, key) {
        Json::Null => Ok(None),
        n => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| format!("`{key}` is not a key version")),
    }
}

fn hash(v: &Json, key: &str) -> Result<ChainHash, String> {
    ChainHash::from_hex(&text(v, key)?).map_err(|_| format!("`{key}` is not 64 hex digits"))
}

fn event_of(v: &Json) -> Result<AuditEvent, String> {
    let micros = field(v, "at_micros")
        .as_i64()
        .ok_or("`at_micros` is missing")?;
    Ok(AuditEvent {
        seq: field(v, "seq").as_i64().ok_or("`seq` is missing")?,
        at: time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
            .map_err(|_| "`at_micros` is out of range")?,
        actor: text(v, "actor")?
            .parse::<Actor>()
            .map_err(|_| "`actor` is not an actor")?,
        owner: match field(v, "owner_id") {
            Json::Null => None,
            o => Some(
                OwnerId::parse(o.as_str().ok_or("`owner_id` is not a string")?)
                    .map_err(|_| "`owner_id` is not a user id")?,
            ),
        },
        owner_uid: field(v, "owner_uid").as_str().map(str::to_owned),
        action: text(v, "action")?
            .parse()
            .map_err(|_| "`action` is not an audit action")?,
        target: text(v, "target")?,
        details: text(v, "details")?,
        prev_hash: hash(v, "prev_hash")?,
        hash: hash(v, "hash")?,
        key_version: version(v, "key_version")?,
    })
}

/// Reads an export: its scope (header line) and its events.
fn read_export(path: &Path) -> Result<(ExportScope, Vec<AuditEvent>), CliError> {
    let file = std::fs::File::open(path)
        .map_err(|e| CliError::new(format!("cannot read {}: {e}", path.display())))?;
    let mut lines = std::io::BufReader::new(file).lines();
    let bad = |n: usize, what: &str| CliError::new(format!("{} line {n}: {what}", path.display()));
    let header: Json = match lines.next() {
        Some(Ok(line)) => serde_json::from_str(&line).map_err(|_| bad(1, "not JSON"))?,
        _ => return Err(bad(1, "empty: not an audit export")),
    };
    if field(&header, "format") != EXPORT_FORMAT {
        return Err(bad(1, "not an audit export (no header)"));
    }
    let head = field(&header, "head");
    let scope = ExportScope {
        since: field(&header, "since")
            .as_i64()
            .ok_or_else(|| bad(1, "no `since`"))?,
        owner: match field(&header, "owner") {
            Json::Null => None,
            o => Some(
                o.as_str()
                    .and_then(|o| OwnerId::parse(o).ok())
                    .ok_or_else(|| bad(1, "`owner` is not a user id"))?,
            ),
        },
        head: ChainHead {
            seq: field(head, "seq")
                .as_i64()
                .ok_or_else(|| bad(1, "no head"))?,
            hash: hash(head, "hash").map_err(|e| bad(1, &e))?,
            key_version: version(head, "key_version").map_err(|e| bad(1, &e))?,
        },
    };
    let mut events = Vec::new();
    for (i, line) in lines.enumerate() {
        let n = i + 2;
        let line = line.map_err(|e| bad(n, &e.to_string()))?;
        if line.trim().is_empty() {
            continue;
        }
        let v: Json = serde_json::from_str(&line).map_err(|_| bad(n, "not JSON"))?;
        events.push(event_of(&v).map_err(|e| bad(n, &e))?);
    }
    Ok((scope, events))
}

/// The chain keys of the configured master keys, if any.
fn chain_keys(op: &Operator) -> Result<Option<ChainKeys>, CliError> {
    let secrets = op.secrets.as_ref().map_err(|e| CliError::new(e.clone()))?;
    Ok(secrets
        .master_keys()?
        .map(|keys| ChainKeys::from_master(&keys)))
}

fn show_verdict(verdict: &ChainVerdict, what: &str, out: Output) -> Result<ExitCode, CliError> {
    out.show(verdict, |o| {
        o.line(&match verdict {
            ChainVerdict::Intact { events } => format!("{what} intact ({events} events)"),
            ChainVerdict::Broken { seq, reason } => {
                format!("{what} broken at event {seq}: {reason}")
            }
        })
    })?;
    Ok(if verdict.is_intact() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_BROKEN_CHAIN)
    })
}

/// Writes the export on standard output.
async fn export(op: &Operator, owner: Option<OwnerId>, since: i64) -> Result<(), CliError> {
    let head = op.store.recorded_head(&op.scope).await.map_err(domain)?;
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::new(stdout.lock());
    let write_err = |e: std::io::Error| CliError::new(format!("writing the export failed: {e}"));
    let header = json!({
        "format": EXPORT_FORMAT,
        "since": since,
        "owner": owner.as_ref().map(OwnerId::as_str),
        "head": head_json(&head),
    });
    writeln!(w, "{header}").map_err(write_err)?;
    let (mut after, mut written, mut read) = (since, 0_u64, 0_u64);
    while after < head.seq {
        let rows = op
            .store
            .chain_page(&op.scope, after, 500)
            .await
            .map_err(domain)?;
        if rows.is_empty() {
            break;
        }
        for row in rows {
            let event = row.map_err(|seq| {
                CliError::new(format!(
                    "audit event {seq} does not parse: run `ownership audit verify`"
                ))
            })?;
            after = event.seq;
            if event.seq > head.seq {
                break;
            }
            read += 1;
            if read % PROGRESS_EVERY == 0 {
                eprintln!(
                    "exported {written} events, read up to {} of {}",
                    event.seq, head.seq
                );
            }
            if owner
                .as_ref()
                .is_some_and(|o| event.owner.as_ref() != Some(o))
            {
                continue;
            }
            writeln!(w, "{}", event_json(&event)).map_err(write_err)?;
            written += 1;
        }
    }
    w.flush().map_err(write_err)?;
    eprintln!("exported {written} events (head: event {})", head.seq);
    Ok(())
}

#[derive(Serialize)]
struct EventList {
    events: Vec<EventView>,
}

fn rows(events: &[AuditEvent]) -> Vec<Vec<String>> {
    events
        .iter()
        .map(|e| {
            vec![
                e.seq.to_string(),
                when(e.at),
                e.actor.to_string(),
                e.owner
                    .as_ref()
                    .map_or_else(|| "-".to_owned(), ToString::to_string),
                e.action.to_string(),
                e.target.clone(),
                e.details.clone(),
            ]
        })
        .collect()
}

/// Runs an `audit` command.
pub async fn run(cmd: AuditCommand, op: &Operator, out: Output) -> Result<ExitCode, CliError> {
    match cmd {
        AuditCommand::Tail { limit } => {
            let mut events: Vec<AuditEvent> = Vec::new();
            let mut after = None;
            while let Some(remaining) = limit
                .checked_sub(u32::try_from(events.len()).unwrap_or(u32::MAX))
                .filter(|r| *r > 0)
            {
                let page = PageRequest {
                    after: after.take(),
                    limit: remaining.min(500),
                };
                let p = op
                    .store
                    .list_events(AuditFilter::All(&op.scope), &page)
                    .await
                    .map_err(domain)?;
                let got = p.items.len();
                events.extend(p.items);
                match p.next {
                    Some(next) if got > 0 => after = Some(next),
                    _ => break,
                }
            }
            let list = EventList {
                events: events.iter().map(EventView::from).collect(),
            };
            out.show(&list, |o| {
                o.table(
                    &["SEQ", "AT", "ACTOR", "OWNER", "ACTION", "TARGET", "DETAILS"],
                    &rows(&events),
                    "no audit events",
                )
            })?;
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Verify { file: None } => {
            let verdict = op.store.verify_chain().await.map_err(domain)?;
            show_verdict(&verdict, "audit chain", out)
        }
        AuditCommand::Verify { file: Some(path) } => {
            let (scope, events) = read_export(&path)?;
            let keys = chain_keys(op)?;
            let verdict = verify_export(&scope, &events, keys.as_ref());
            show_verdict(&verdict, "audit export", out)
        }
        AuditCommand::Export { owner, since } => {
            export(op, owner, since).await?;
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::ChainKey => {
            let keys = chain_keys(op)?.ok_or_else(|| {
                CliError::new(
                    "no master key is configured, so the audit chain is not keyed: \
                     its links are plain SHA-256 and need no key to verify",
                )
            })?;
            let list = json!({
                "keys": keys
                    .all()
                    .map(|k| json!({"version": k.version(), "key": k.to_hex()}))
                    .collect::<Vec<_>>(),
            });
            out.json_value(&list)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
