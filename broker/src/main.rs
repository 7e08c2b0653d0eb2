//! `attest-broker`: the attestation broker's command line.
//!
//! Exit codes: 0 success; 1 evidence rejected / request refused (a JSON error object on
//! stdout); 2 unusable invocation or unreadable input (a message on stderr).

#![forbid(unsafe_code)]

use std::process::ExitCode;

use attest_broker::cli::{self, Command};
use attest_broker::{admin_cli, demo, host, loadgen, serve, verify_cmd};
use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cli.command {
        Command::Verify(cmd) => verify_cmd::run(&cmd).exit(),
        Command::Demo(args) => demo::run(&args).exit(),
        Command::Serve(args) => serve_main(&args),
        Command::Admin(args) => admin_cli::run(&args),
        Command::SimHost(args) => host::run_cli(&args),
        Command::Bench(args) => loadgen::run(&args),
    }
}

fn serve_main(args: &cli::ServeArgs) -> ExitCode {
    init_logging(args.log_json);
    let config = match args.config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("attest-broker serve: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("attest-broker serve: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(serve::run(config, args.dev)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "attest-broker serve failed");
            eprintln!("attest-broker serve: {e}");
            ExitCode::from(1)
        }
    }
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
