//! The `ownership` binary: parses the command line, sets up logging, runs the command
//! ([`ownership_cli::commands`]) and turns a failure into one `error: …` line on stderr and
//! a non-zero exit code.

use std::process::ExitCode;

use clap::Parser;
use ownership_cli::commands::{self, Cli};
use ownership_cli::config::LogFormatSetting;

fn init_logging(format: LogFormatSetting, default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormatSetting::Human => builder.init(),
        LogFormatSetting::Json => builder.json().init(),
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
    let loaded = match cli.load_config() {
        Ok(loaded) => loaded,
        Err(error) => {
            eprintln!("error: {error}");
            return error.exit_code();
        }
    };
    init_logging(
        loaded.config.log.format,
        &cli.default_log_filter(&loaded.config),
    );
    match commands::run(cli, &loaded).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error}");
            error.exit_code()
        }
    }
}
