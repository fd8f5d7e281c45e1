//! `server`: parses the config and runs the library.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use server::config::Config;

#[actix_web::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,actix_server=warn".into()),
        )
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let config = Config::parse();
    let bind = config.bind;
    match server::run(config)
        .await
        .with_context(|| format!("server on {bind}"))
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("server: error: {}", common::error_chain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}
