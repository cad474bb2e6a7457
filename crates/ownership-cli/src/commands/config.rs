//! `ownership config check|show` and `ownership keys generate`.

use std::process::ExitCode;

use clap::Subcommand;
use serde::Serialize;

use super::CliError;
use super::output::Output;
use crate::config::{self, Loaded};

/// `ownership config …`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration (file, environment, flags) without starting anything.
    Check,
    /// Print the effective configuration, secrets hidden, and where each value came from.
    Show,
}

/// `ownership keys …`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Print a fresh master key (the base64 of 32 random bytes) for `keys.master_key_file`.
    Generate,
}

#[derive(Serialize)]
struct Checked {
    ok: bool,
    file: Option<String>,
    store: String,
}

/// Runs a `config` command.
pub fn run(cmd: &ConfigCommand, loaded: &Loaded, out: Output) -> Result<ExitCode, CliError> {
    match cmd {
        ConfigCommand::Check => {
            let c = &loaded.config;
            let location = c.location()?;
            c.service()?;
            c.cache()?;
            c.postgres()?;
            c.tls_files()?;
            super::user_id(&c.first_owner)?;
            // Reads every `_file` key and decodes every key, generating nothing.
            crate::server::Secrets::resolve(&c.keys, &location, &|k| loaded.describe(k))?
                .0
                .master_keys()?;
            let report = Checked {
                ok: true,
                file: loaded.file.as_ref().map(|p| p.display().to_string()),
                store: location.display(),
            };
            out.show(&report, |o| {
                o.line(&format!(
                    "configuration OK ({}; store: {})",
                    report
                        .file
                        .as_deref()
                        .map_or_else(|| "no file".to_owned(), |f| format!("file {f}")),
                    report.store
                ))
            })?;
            Ok(ExitCode::SUCCESS)
        }
        ConfigCommand::Show => {
            let rows = loaded.show();
            out.show(&rows, |o| {
                let cells: Vec<Vec<String>> = rows
                    .iter()
                    .map(|r| vec![r.key.clone(), r.value.clone(), r.source.to_string()])
                    .collect();
                o.table(&["KEY", "VALUE", "SOURCE"], &cells, "no settings")
            })?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Runs a `keys` command.
pub fn keys(cmd: &KeysCommand, out: Output) -> Result<ExitCode, CliError> {
    match cmd {
        KeysCommand::Generate => {
            let key = config::generate_key();
            #[derive(Serialize)]
            struct Key<'a> {
                key: &'a str,
            }
            out.show(&Key { key: &key }, |o| o.line(&key))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
