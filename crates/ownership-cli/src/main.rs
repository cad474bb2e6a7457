//! The `ownership` binary: parses the command line, sets up logging, runs the command
//! ([`ownership_cli::commands`]) and turns a failure into one `error: …` line on stderr and
//! a non-zero exit code.

use std::process::ExitCode;

use clap::Parser;
use ownership_cli::commands::{self, Cli, LogFormat};

fn init_logging(format: LogFormat, default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
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
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => match commands::usage_error(&e) {
            Some(error) => {
                eprintln!("error: {error}");
                return error.exit_code();
            }
            None => e.exit(),
        },
    };
    init_logging(cli.log_format, cli.default_log_filter());
    match commands::run(cli).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error}");
            error.exit_code()
        }
    }
}
