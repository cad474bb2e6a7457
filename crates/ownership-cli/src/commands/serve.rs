//! `ownership serve` and `ownership migrate`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use ownership_store::SystemClock;
use ownership_store::cache::CacheConfig;
use serde::Serialize;

use super::CliError;
use super::output::Output;
use crate::backend::{Location, Opened};
use crate::server::{self, Secrets, ServerConfig};
use crate::tls::TlsFiles;

/// Options of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Refuse to start when the store needs migrations, instead of applying them.
    #[arg(long)]
    pub no_migrate: bool,
    /// The id of the Owner created on an empty store.
    #[arg(long, default_value = "owner")]
    pub first_owner: String,
    /// Allow webhook endpoints on loopback and private addresses, over plain HTTP too
    /// (local development and tests only).
    #[arg(long)]
    pub allow_private_webhooks: bool,
    /// Do not run the webhook delivery worker in this process (when several processes
    /// share one PostgreSQL, run it in one of them).
    #[arg(long)]
    pub no_webhook_worker: bool,
    /// Serve HTTPS with this PEM certificate chain (`[tls] cert_file`); needs
    /// `--tls-key-file`.
    #[arg(long, hide = true, requires = "tls_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    /// The PEM private key of `--tls-cert-file` (`[tls] key_file`).
    #[arg(long, hide = true, requires = "tls_cert_file")]
    pub tls_key_file: Option<PathBuf>,
}

/// The banner around the first Owner's token, which `serve` shows once.
pub const FIRST_TOKEN_BANNER: &str =
    "==================== FIRST OWNER TOKEN (shown once) ====================";

/// Runs the server until SIGINT or SIGTERM.
pub async fn serve(args: ServeArgs, location: Location) -> Result<ExitCode, CliError> {
    if let Location::LibsqlFile(path) = &location
        && args.no_migrate
        && !path.exists()
    {
        return Err(CliError::new(format!(
            "no database at `{}`: run `ownership migrate` first, or start without `--no-migrate`",
            path.display()
        )));
    }
    let mut config = ServerConfig::new(location)?;
    config.migrate = !args.no_migrate;
    config.first_owner = super::user_id(&args.first_owner)?;
    config.secrets = Secrets::from_env()?;
    config.service.allow_private_webhooks = args.allow_private_webhooks;
    if args.no_webhook_worker {
        config.service.webhooks.worker = false;
    }
    if let (Some(cert_file), Some(key_file)) = (args.tls_cert_file, args.tls_key_file) {
        config.tls = Some(TlsFiles {
            cert_file,
            key_file,
        });
    }
    let prepared = server::prepare(&config).await?;
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
    } else if config.secrets.bootstrap_token.is_some() {
        tracing::info!(
            "bootstrap secret configured: create the first Owner with POST /v1/bootstrap"
        );
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| CliError::new(format!("cannot listen on {}: {e}", args.listen)))?;
    // The bound address, not the asked one: `--listen 127.0.0.1:0` picks a free port.
    let address = listener.local_addr().unwrap_or(args.listen);
    let tls = config.tls.is_some();
    let url = format!("{}://{address}", if tls { "https" } else { "http" });
    tracing::info!(%address, %url, tls, store = %config.location.display(), "serving");
    server::serve(prepared, listener, server::shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Serialize)]
struct Migrated {
    applied: usize,
    store: String,
}

/// Applies pending migrations (creating a libSQL file that does not exist yet).
pub async fn migrate(location: &Location, out: Output) -> Result<ExitCode, CliError> {
    let opened = Opened::open(location, Arc::new(SystemClock), CacheConfig::default()).await?;
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
