//! The `ownership` binary.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use ownership_cli::backend::{Location, Opened};
use ownership_cli::server::{self, Secrets, ServerConfig};

/// Who owns what, and who is calling.
#[derive(Debug, Parser)]
#[command(name = "ownership", version, about)]
struct Cli {
    /// Where the data lives: a libSQL file path (default `./ownership.db`) or `postgres://…`.
    #[arg(
        long,
        env = "DATABASE_URL",
        global = true,
        default_value = "ownership.db",
        hide_env_values = true
    )]
    database_url: String,

    /// Log format.
    #[arg(long, value_enum, global = true, default_value_t = LogFormat::Human)]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the REST service.
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Refuse to start when the store needs migrations, instead of applying them.
        #[arg(long)]
        no_migrate: bool,
        /// The id of the Owner created on an empty store.
        #[arg(long, default_value = "owner")]
        first_owner: String,
    },
    /// Apply pending migrations.
    Migrate,
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[expect(
    clippy::print_stdout,
    reason = "the first Owner's token is shown once, on stdout"
)]
async fn run(cli: Cli) -> Result<(), String> {
    let location = Location::parse(&cli.database_url)?;
    match cli.command {
        Command::Serve {
            listen,
            no_migrate,
            first_owner,
        } => {
            let mut config = ServerConfig::new(location)?;
            config.migrate = !no_migrate;
            config.first_owner =
                ownership_core::OwnerId::parse(&first_owner).map_err(|e| e.to_string())?;
            config.secrets = Secrets::from_env()?;
            let prepared = server::prepare(&config).await?;
            if prepared.migrations_applied > 0 {
                tracing::info!(applied = prepared.migrations_applied, "migrations applied");
            }
            if let Some((owner, token)) = &prepared.first_owner_token {
                println!(
                    "==================== FIRST OWNER TOKEN (shown once) ===================="
                );
                println!("owner: {owner}");
                println!("token: {}", token.expose());
                println!("Keep it safe: it is stored only as a digest and cannot be shown again.");
                println!(
                    "========================================================================"
                );
            } else if config.secrets.bootstrap_token.is_some() {
                tracing::info!(
                    "bootstrap secret configured: create the first Owner with POST /v1/bootstrap"
                );
            }
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
            tracing::info!(address = %listen, store = %config.location.display(), "serving");
            server::serve(prepared, listener, server::shutdown_signal()).await
        }
        Command::Migrate => {
            let clock = std::sync::Arc::new(ownership_store::SystemClock);
            let opened = Opened::open(&location, clock, Default::default()).await?;
            let applied = opened
                .ensure_migrated(true)
                .await
                .map_err(|e| e.to_string())?;
            println!("{applied} migration(s) applied to {}", location.display());
            Ok(())
        }
    }
}
