//! `ownership secrets rewrap`: moves every owner's data key to the current master key
//! version, without downtime (servers hold both keys while it runs; see docs/secrets.md).

use std::process::ExitCode;

use clap::Subcommand;
use ownership_core::authz::SystemScope;
use ownership_core::service;
use ownership_store::OsRandom;
use serde::Serialize;

use super::output::Output;
use super::{CliError, Operator, domain};

/// `secrets` subcommands.
#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Rewrap every data key under the current master key (`OWNERSHIP_MASTER_KEY`, with
    /// `OWNERSHIP_PREVIOUS_MASTER_KEY` set to the key they are wrapped under now).
    Rewrap,
}

#[derive(Serialize)]
struct RewrapView {
    examined: u64,
    already_current: u64,
    rewrapped: u64,
    changed_meanwhile: u64,
    failed: Vec<String>,
    webhook_secrets_on_old_key: Vec<String>,
}

/// Runs a `secrets` command.
pub async fn run(cmd: SecretsCommand, op: &Operator, out: Output) -> Result<ExitCode, CliError> {
    match cmd {
        SecretsCommand::Rewrap => {
            let keys = op
                .secrets
                .clone()
                .map_err(CliError::new)?
                .master_keys()
                .map_err(CliError::new)?
                .ok_or_else(|| {
                    CliError::new("a master key is required: set `keys.master_key_file` (or OWNERSHIP_MASTER_KEY_FILE) as the server has it")
                })?;
            let report = service::rewrap_data_keys(
                &*op.store,
                &SystemScope::background(),
                &keys,
                &mut OsRandom,
            )
            .await
            .map_err(domain)?;
            let stale =
                service::stale_webhook_secrets(&*op.store, &op.scope, keys.current().version())
                    .await
                    .map_err(domain)?;
            let view = RewrapView {
                examined: report.examined,
                already_current: report.already_current,
                rewrapped: report.rewrapped,
                changed_meanwhile: report.changed_meanwhile,
                failed: report.failed.iter().map(ToString::to_string).collect(),
                webhook_secrets_on_old_key: stale.iter().map(|(o, _)| o.to_string()).collect(),
            };
            out.show(&view, |o| {
                o.line(&format!(
                    "data keys: {} examined, {} already current, {} rewrapped, {} changed meanwhile, {} failed",
                    view.examined,
                    view.already_current,
                    view.rewrapped,
                    view.changed_meanwhile,
                    view.failed.len()
                ))?;
                if view.changed_meanwhile > 0 {
                    o.note("some keys changed while rewrapping: run `ownership secrets rewrap` again")?;
                }
                if !view.webhook_secrets_on_old_key.is_empty() {
                    o.note(&format!(
                        "webhook signing secrets still under an older master key (keep it configured until their owners rotate them): {}",
                        view.webhook_secrets_on_old_key.join(", ")
                    ))?;
                }
                Ok(())
            })?;
            if view.failed.is_empty() {
                Ok(ExitCode::SUCCESS)
            } else {
                Err(CliError::new(format!(
                    "could not unwrap the data keys of: {} (is the right previous master key configured?)",
                    view.failed.join(", ")
                )))
            }
        }
    }
}
