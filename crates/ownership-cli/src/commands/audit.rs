//! `ownership audit tail [--limit N]` and `ownership audit verify`.

use std::process::ExitCode;

use clap::Subcommand;
use ownership_core::audit::{AuditEvent, ChainVerdict};
use ownership_core::ports::{AuditFilter, PageRequest};
use ownership_http::wire::EventView;
use serde::Serialize;

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
    /// Check the whole hash chain: exits 0 when intact, 3 when an event was edited,
    /// deleted or reordered (naming the first broken event).
    Verify,
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
        AuditCommand::Verify => {
            let verdict = op.store.verify_chain().await.map_err(domain)?;
            out.show(&verdict, |o| {
                o.line(&match &verdict {
                    ChainVerdict::Intact { events } => {
                        format!("audit chain intact ({events} events)")
                    }
                    ChainVerdict::Broken { seq, reason } => {
                        format!("audit chain broken at event {seq}: {reason}")
                    }
                })
            })?;
            Ok(if verdict.is_intact() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_BROKEN_CHAIN)
            })
        }
    }
}
