//! The command line: its grammar and every command.
//!
//! `serve` and `migrate` run the service and its schema. The operator commands (`users`,
//! `tokens`, `pairing`, `audit`) work on the store directly, as whoever holds the database
//! does: they act with an Owner's powers through [`AdminScope::operator`], named by the OS
//! user (`$USER`, else `operator`), and every change they make is audited like any other
//! (docs/security.md#audit, docs/operations.md). They never migrate: a store with pending migrations is refused with a
//! message that says to run `ownership migrate`.
//!
//! Output is JSON with `--json` and aligned tables otherwise ([`output`]). A failure is one
//! line on stderr, `error: …`, and a non-zero exit code ([`CliError`]). No secret is ever
//! printed, except a new token's value, once, by the command that made it.

pub mod audit;
pub mod config;
pub mod data;
pub mod output;
pub mod pairing;
pub mod secrets;
pub mod serve;
pub mod tokens;
pub mod users;

use std::fmt;
use std::process::ExitCode;
use std::sync::Arc;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use ownership_core::authz::{AdminScope, OwnerScope};
use ownership_core::ports::{Clock, Store, User};
use ownership_core::{Error, OwnerId, UserRole};
use ownership_store::{MigrationError, SystemClock};

use crate::backend::{Location, Opened};
use output::Output;

/// Exit code: the command failed (not found, refused by a rule, store unreachable, …).
pub const EXIT_FAILURE: u8 = 1;
/// Exit code: the command line itself was wrong (unknown command, missing or bad argument).
pub const EXIT_USAGE: u8 = 2;
/// Exit code of `audit verify` when the chain is broken.
pub const EXIT_BROKEN_CHAIN: u8 = 3;

/// Who owns what, and who is calling.
#[derive(Debug, Parser)]
#[command(name = "ownership", version, about, propagate_version = true)]
pub struct Cli {
    /// The configuration file (default: `./ownership.toml` when it exists). See
    /// `ownership config show` for the effective settings and where each came from.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,

    /// Where the data lives: a libSQL file path (default `./ownership.db`) or
    /// `postgres://…` (`database_url`; also `DATABASE_URL`).
    #[arg(long, global = true)]
    pub database_url: Option<String>,

    /// Print machine-readable JSON on stdout instead of tables.
    #[arg(long, global = true)]
    pub json: bool,

    /// Log format (logs go to stderr; `log.format`, default human).
    #[arg(long, value_enum, global = true)]
    pub log_format: Option<LogFormat>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    Human,
    /// One JSON object per line, for log collectors.
    Json,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the REST service (migrating the store first unless `--no-migrate`).
    Serve(serve::ServeArgs),
    /// Apply pending migrations.
    Migrate,
    /// Manage users.
    #[command(subcommand)]
    Users(users::UsersCommand),
    /// Issue, list, rotate and revoke a user's tokens.
    #[command(subcommand)]
    Tokens(tokens::TokensCommand),
    /// Pending channel pairing requests.
    #[command(subcommand)]
    Pairing(pairing::PairingCommand),
    /// Read and verify the audit log.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Encrypted secrets: move every data key to the current master key.
    #[command(subcommand)]
    Secrets(secrets::SecretsCommand),
    /// Write a consistent backup of the store to FILE while it keeps serving (written to
    /// `FILE.partial`, then renamed).
    Backup {
        /// The backup file.
        file: std::path::PathBuf,
    },
    /// Restore a backup FILE into the store named by `--database-url`, which must be
    /// empty (nothing is written unless the whole file checks out).
    Restore {
        /// The backup file.
        file: std::path::PathBuf,
    },
    /// Move a whole store between backends.
    #[command(subcommand)]
    Store(data::StoreCommand),
    /// Check or show the configuration.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Generate keys.
    #[command(subcommand)]
    Keys(config::KeysCommand),
    /// Write the man pages (`ownership.1`, `ownership-serve.1`, …) into a directory, for
    /// packagers.
    #[command(hide = true)]
    Manpages {
        /// The directory (created if missing).
        dir: std::path::PathBuf,
    },
    /// Print a shell completion script (`ownership completions bash > /etc/bash_completion.d/ownership`).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

impl Cli {
    /// The configuration this command line names: its file, the environment, and its
    /// flags on top.
    pub fn load_config(&self) -> Result<crate::config::Loaded, CliError> {
        let mut flags = crate::config::Flags {
            database_url: self.database_url.clone(),
            log_format: self.log_format.map(|f| match f {
                LogFormat::Human => crate::config::LogFormatSetting::Human,
                LogFormat::Json => crate::config::LogFormatSetting::Json,
            }),
            ..crate::config::Flags::default()
        };
        if let Command::Serve(args) = &self.command {
            flags = args.flags(flags);
        }
        crate::config::load(self.config.as_deref(), &flags).map_err(CliError::new)
    }

    /// The log filter used when `RUST_LOG` is not set: `log.level` for the server, nothing
    /// for the one-shot commands (whose one-line errors say what went wrong).
    pub fn default_log_filter(&self, config: &crate::config::Config) -> String {
        match self.command {
            Command::Serve(_) => config.log.level.clone(),
            _ => "off".to_owned(),
        }
    }
}

/// A failure: the one line printed after `error: `, and the exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError {
    message: String,
    code: u8,
}

impl CliError {
    /// A failure with [`EXIT_FAILURE`].
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: one_line(&message.into()),
            code: EXIT_FAILURE,
        }
    }

    /// A failure with a chosen exit code.
    pub fn with_code(message: impl Into<String>, code: u8) -> Self {
        Self {
            message: one_line(&message.into()),
            code,
        }
    }

    /// The message, one line.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The process exit code.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.code)
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<String> for CliError {
    fn from(message: String) -> Self {
        Self::new(message)
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A domain error as a one-line message. `NotFound` is given context by the caller.
pub fn domain(e: Error) -> CliError {
    CliError::new(match e {
        Error::Conflict(m) | Error::Forbidden(m) => m,
        Error::NotFound => "not found".to_owned(),
        Error::Unavailable(_) => {
            "the store is unavailable (run with RUST_LOG=error to see why)".to_owned()
        }
        Error::Integrity(m) => format!("stored data failed an integrity check: {m}"),
        Error::RateLimited { .. } => "too many attempts; try again later".to_owned(),
        other => other.to_string(),
    })
}

/// A clap error as one line (`--help` and `--version` print as usual): clap's message up
/// to its usage block, lines joined.
pub fn usage_error(e: &clap::Error) -> Option<CliError> {
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        return None;
    }
    let rendered = e.render().to_string();
    let parts: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .filter(|l| !l.is_empty())
        .collect();
    let text = parts.join(" ");
    let text = text.strip_prefix("error: ").unwrap_or(&text);
    let text = if text.is_empty() {
        "invalid command line"
    } else {
        text
    };
    Some(CliError::with_code(
        format!("{text} (see `--help`)"),
        EXIT_USAGE,
    ))
}

/// Runs a parsed command line; the exit code on success is 0 except for `audit verify`
/// on a broken chain.
pub async fn run(cli: Cli, loaded: &crate::config::Loaded) -> Result<ExitCode, CliError> {
    let out = Output::new(cli.json);
    let config = &loaded.config;
    match cli.command {
        Command::Serve(_) => serve::serve(loaded).await,
        Command::Migrate => serve::migrate(config, out).await,
        Command::Config(cmd) => config::run(&cmd, loaded, out),
        Command::Backup { file } => data::backup(&config.location()?, &file, out).await,
        Command::Restore { file } => data::restore(&config.location()?, &file, out).await,
        Command::Store(cmd) => data::store(cmd, out).await,
        Command::Keys(cmd) => config::keys(&cmd, out),
        Command::Users(cmd) => users::run(cmd, &Operator::open(loaded).await?, out).await,
        Command::Tokens(cmd) => tokens::run(cmd, &Operator::open(loaded).await?, out).await,
        Command::Pairing(cmd) => pairing::run(cmd, &Operator::open(loaded).await?, out).await,
        Command::Audit(cmd) => audit::run(cmd, &Operator::open(loaded).await?, out).await,
        Command::Secrets(cmd) => secrets::run(cmd, &Operator::open(loaded).await?, out).await,
        Command::Manpages { dir } => {
            write_manpages(&dir)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Completions { shell } => {
            let mut stdout = std::io::stdout().lock();
            clap_complete::generate(shell, &mut Cli::command(), "ownership", &mut stdout);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Writes a man page for the command and one for each subcommand, recursively
/// (`ownership-users-add.1`).
fn write_manpages(dir: &std::path::Path) -> Result<(), CliError> {
    fn one(dir: &std::path::Path, cmd: clap::Command, name: &str) -> Result<(), CliError> {
        let path = dir.join(format!("{name}.1"));
        let mut out = Vec::new();
        let page = cmd
            .clone()
            .display_name(name.to_owned())
            .bin_name(name.replace('-', " "));
        clap_mangen::Man::new(page)
            .render(&mut out)
            .and_then(|()| std::fs::write(&path, &out))
            .map_err(|e| CliError::new(format!("cannot write {}: {e}", path.display())))?;
        for sub in cmd
            .get_subcommands()
            .filter(|s| !s.is_hide_set() && s.get_name() != "help")
        {
            one(dir, sub.clone(), &format!("{name}-{}", sub.get_name()))?;
        }
        Ok(())
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| CliError::new(format!("cannot create {}: {e}", dir.display())))?;
    let mut cli = Cli::command();
    cli.build();
    one(dir, cli, "ownership")
}

/// The operator's name for the audit log: `$USER`, else `operator`.
pub fn operator_name() -> String {
    std::env::var("USER")
        .ok()
        .map(|u| u.trim().to_owned())
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "operator".to_owned())
}

/// An open, migrated store and the operator's scope over it.
pub struct Operator {
    /// Every port (through the cache, as the server uses it).
    pub store: Arc<dyn Store>,
    /// The operator's scope: an Owner's powers, audited as `operator:<name>`.
    pub scope: AdminScope,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// The keys the server uses, as the operator commands that need them share them.
    pub secrets: Result<crate::server::Secrets, String>,
    _opened: Opened,
}

impl fmt::Debug for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Operator")
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl Operator {
    /// Opens the store without creating or migrating it: a missing libSQL file and pending
    /// migrations are refused.
    pub async fn open(loaded: &crate::config::Loaded) -> Result<Self, CliError> {
        let config = &loaded.config;
        let location = &config.location()?;
        if let Location::LibsqlFile(path) = location
            && !path.exists()
        {
            return Err(CliError::new(format!(
                "no database at `{}`: start `ownership serve` or run `ownership migrate` to create one, or set --database-url / DATABASE_URL",
                path.display()
            )));
        }
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let opened = Opened::open(
            location,
            Arc::clone(&clock),
            config.cache()?,
            &config.postgres()?,
            config.store_limits()?,
        )
        .await?;
        match opened.ensure_migrated(false).await {
            Ok(_) => {}
            Err(MigrationError::Pending { pending }) => {
                return Err(CliError::new(format!(
                    "the store ({}) needs {pending} migration(s): run `ownership migrate` first",
                    location.display()
                )));
            }
            Err(e) => return Err(CliError::new(e.to_string())),
        }
        let secrets =
            crate::server::Secrets::resolve(&config.keys, location, &|k| loaded.describe(k))
                .map(|(secrets, _)| secrets);
        // The operator's writes are linked like the server's: keyed under the chain key
        // when a master key is configured.
        if let Ok(Ok(Some(keys))) = secrets.as_ref().map(crate::server::Secrets::master_keys) {
            opened.set_chain_keys(ownership_core::audit::ChainKeys::from_master(&keys));
        }
        Ok(Self {
            store: opened.store(),
            scope: AdminScope::operator(&operator_name()),
            clock,
            secrets,
            _opened: opened,
        })
    }

    /// A user, or `user `ID` not found`.
    pub async fn user(&self, id: &OwnerId) -> Result<User, CliError> {
        self.store
            .get_user(&self.scope, id)
            .await
            .map_err(|e| match e {
                Error::NotFound => CliError::new(format!("user `{id}` not found")),
                e => domain(e),
            })
    }

    /// The scope in which the operator acts on `user`'s own resources (their tokens),
    /// after reading the user with the operator's [`AdminScope`]. Changes made in it are
    /// audited with the operator as the actor.
    pub fn for_owner(&self, user: &User) -> Result<OwnerScope, CliError> {
        OwnerScope::for_operator(&self.scope, user.id.clone()).map_err(domain)
    }
}

/// Parses a user id (never a secret, so it may be echoed).
pub fn user_id(raw: &str) -> Result<OwnerId, CliError> {
    OwnerId::parse(raw).map_err(|e| match e {
        Error::Invalid { reason, .. } => {
            CliError::new(format!("invalid user id `{raw}`: {reason}"))
        }
        e => domain(e),
    })
}

/// The role argument (case-insensitive on the command line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    /// Manages everyone, including Admins and other Owners.
    Owner,
    /// Manages Members.
    Admin,
    /// An ordinary user.
    Member,
}

impl From<RoleArg> for UserRole {
    fn from(r: RoleArg) -> Self {
        match r {
            RoleArg::Owner => UserRole::Owner,
            RoleArg::Admin => UserRole::Admin,
            RoleArg::Member => UserRole::Member,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grammar_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn usage_errors_are_one_line() {
        let e = Cli::try_parse_from(["ownership", "users", "role", "bob", "boss"]).unwrap_err();
        let line = usage_error(&e).unwrap();
        assert!(!line.message().contains('\n'), "{line}");
        assert!(line.message().contains("boss"), "{line}");
        assert!(line.message().contains("owner, admin, member"), "{line}");
        let e = Cli::try_parse_from(["ownership", "--help"]).unwrap_err();
        assert!(usage_error(&e).is_none());
    }

    #[test]
    fn messages_are_one_line() {
        assert_eq!(CliError::new("a\n  b").message(), "a b");
    }
}
