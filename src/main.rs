//! The `isr-edge` binary: parse flags, start logging, bind, serve until SIGINT/SIGTERM.

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::Parser;
use isr_edge::config::{Cli, Config};
use tokio::signal::unix::{signal, SignalKind};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("isr-edge: {} (see --help)", one_line(&e.to_string()));
            return ExitCode::from(2);
        }
    };
    if let Err(e) = isr_edge::logging::init(cli.log_format) {
        eprintln!("isr-edge: cannot start logging: {e}");
    }
    let config = match Config::from_cli(cli, std::env::var("REVALIDATE_SECRET").ok()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("isr-edge: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("isr-edge: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(config.listen).await {
            Ok(listener) => listener,
            Err(e) => {
                eprintln!("isr-edge: --listen {}: {e}", config.listen);
                return ExitCode::FAILURE;
            }
        };
        let admin = match config.admin_listen {
            Some(addr) => match tokio::net::TcpListener::bind(addr).await {
                Ok(admin) => Some(admin),
                Err(e) => {
                    eprintln!("isr-edge: --admin-listen {addr}: {e} (use --admin-listen off to disable)");
                    return ExitCode::FAILURE;
                }
            },
            None => None,
        };
        match isr_edge::serve_with_admin(config, listener, admin, shutdown_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("isr-edge: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Folds clap's multi-line error into one line: the message and the flags it names, without
/// the usage block.
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .take_while(|line| !line.starts_with("Usage:") && !line.starts_with("For more information"))
        .filter(|line| !line.is_empty() && !line.starts_with("tip:"))
        .collect::<Vec<_>>()
        .join(" ")
        .trim_start_matches("error: ")
        .to_string()
}

/// Completes on the first SIGINT or SIGTERM; a second one exits at once.
async fn shutdown_signal() {
    let (Ok(mut terminate), Ok(mut interrupt)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot listen for signals; shut down by killing the process");
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    tracing::info!("shutdown signal received; send it again to exit at once");
    tokio::spawn(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
        tracing::warn!("second signal: exiting now");
        std::process::exit(130);
    });
}
