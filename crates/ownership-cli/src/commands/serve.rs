//! `ownership serve` and `ownership migrate`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use ownership_store::SystemClock;
use serde::Serialize;

use super::CliError;
use super::output::Output;
use crate::backend::{Location, Opened};
use crate::config::{Config, Flags, Loaded};
use crate::server::{self, Secrets, ServerConfig};
use crate::tls::TlsFiles;

/// Options of `serve`. Each overrides the configuration file and the environment.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (`listen`; default 127.0.0.1:8080).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Refuse to start when the store needs migrations, instead of applying them
    /// (`migrate = false`).
    #[arg(long)]
    pub no_migrate: bool,
    /// The id of the Owner created on an empty store (`first_owner`; default `owner`).
    #[arg(long)]
    pub first_owner: Option<String>,
    /// Allow webhook endpoints on loopback and private addresses, over plain HTTP too
    /// (local development and tests only; `http.allow_private_webhooks`).
    #[arg(long)]
    pub allow_private_webhooks: bool,
    /// Do not run the webhook delivery worker in this process (when several processes
    /// share one PostgreSQL, run it in one of them; `webhooks.worker = false`).
    #[arg(long)]
    pub no_webhook_worker: bool,
    /// Serve Prometheus metrics on this address (`metrics.listen`).
    #[arg(long)]
    pub metrics_listen: Option<SocketAddr>,
    /// PEM certificate chain for native TLS (`tls.cert_file`).
    #[arg(long)]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key for native TLS (`tls.key_file`).
    #[arg(long)]
    pub tls_key_file: Option<PathBuf>,
}

impl ServeArgs {
    /// These options as the flag layer of the configuration.
    pub fn flags(&self, mut flags: Flags) -> Flags {
        flags.listen = self.listen;
        flags.first_owner.clone_from(&self.first_owner);
        flags.no_migrate = self.no_migrate;
        flags.allow_private_webhooks = self.allow_private_webhooks;
        flags.no_webhook_worker = self.no_webhook_worker;
        flags.metrics_listen = self.metrics_listen;
        flags.tls_cert_file.clone_from(&self.tls_cert_file);
        flags.tls_key_file.clone_from(&self.tls_key_file);
        flags
    }
}

/// The banner around the first Owner's token, which `serve` shows once.
pub const FIRST_TOKEN_BANNER: &str =
    "==================== FIRST OWNER TOKEN (shown once) ====================";

/// The server's settings from the configuration: everything but the listener. On the
/// embedded store without a master key, names where `serve` generates one (see
/// [`Secrets::resolve`]).
pub fn server_config(loaded: &Loaded) -> Result<ServerConfig, CliError> {
    let config = &loaded.config;
    let location = config.location()?;
    let mut server = ServerConfig::new(location.clone())?;
    server.migrate = config.migrate;
    server.first_owner = super::user_id(&config.first_owner)?;
    server.cache = config.cache()?;
    server.postgres = config.postgres()?;
    server.limits = config.store_limits()?;
    server.service = config.service()?;
    server.metrics_listen = config.metrics.listen;
    server.tls = config.tls_files()?.map(|(cert_file, key_file)| TlsFiles {
        cert_file,
        key_file,
    });
    let (secrets, generate) = Secrets::resolve(&config.keys, &location, &|k| loaded.describe(k))?;
    secrets.master_keys()?;
    server.secrets = secrets;
    server.generate_master_key = generate;
    Ok(server)
}

/// Runs the server until SIGINT or SIGTERM.
pub async fn serve(loaded: &Loaded) -> Result<ExitCode, CliError> {
    let config = &loaded.config;
    let location = config.location()?;
    if let Location::LibsqlFile(path) = &location
        && !config.migrate
        && !path.exists()
    {
        return Err(CliError::new(format!(
            "no database at `{}`: run `ownership migrate` first, or start without `--no-migrate`",
            path.display()
        )));
    }
    let server_config = server_config(loaded)?;
    let prepared = server::prepare(&server_config).await?;
    if prepared.migrations_applied > 0 {
        tracing::info!(applied = prepared.migrations_applied, "migrations applied");
    }
    let out = Output::new(false);
    if let Some((owner, token)) = &prepared.first_owner_token {
        out.line(FIRST_TOKEN_BANNER)?;
        out.line(&format!("owner: {owner}"))?;
        out.line(&format!("token: {}", token.expose()))?;
        out.line("Keep it safe: it is stored only as a digest and cannot be shown again.")?;
        out.line(&"=".repeat(FIRST_TOKEN_BANNER.len()))?;
    } else if server_config.secrets.bootstrap_token.is_some() {
        tracing::info!(
            "bootstrap secret configured: create the first Owner with POST /v1/bootstrap"
        );
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| CliError::new(format!("cannot listen on {}: {e}", config.listen)))?;
    // The bound address, not the asked one: `--listen 127.0.0.1:0` picks a free port.
    let address = listener.local_addr().unwrap_or(config.listen);
    let tls = server_config.tls.is_some();
    let url = format!("{}://{address}", if tls { "https" } else { "http" });
    tracing::info!(%address, %url, tls, store = %server_config.location.display(), "serving");
    server::serve(prepared, listener, server::shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Serialize)]
struct Migrated {
    applied: usize,
    store: String,
}

/// Applies pending migrations (creating a libSQL file that does not exist yet).
pub async fn migrate(config: &Config, out: Output) -> Result<ExitCode, CliError> {
    let location = config.location()?;
    let opened = Opened::open(
        &location,
        Arc::new(SystemClock),
        config.cache()?,
        &config.postgres()?,
        config.store_limits()?,
    )
    .await?;
    let applied = opened
        .ensure_migrated(true)
        .await
        .map_err(|e| CliError::new(e.to_string()))?;
    let report = Migrated {
        applied,
        store: location.display(),
    };
    out.show(&report, |o| {
        o.line(&format!(
            "{applied} migration(s) applied to {}",
            report.store
        ))
    })?;
    Ok(ExitCode::SUCCESS)
}
