//! `attest-sidecar`: the attester next to an agent. A thin shell over the library.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use attest_sidecar::agent::AgentClient;
use attest_sidecar::config::Config;
use clap::{Parser, Subcommand};

/// Proves this host's hardware to attest-broker and serves short-lived, hardware-bound tokens
/// to local agents over a unix socket.
#[derive(Debug, Parser)]
#[command(name = "attest-sidecar", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the sidecar (docs/sidecar.md describes the configuration).
    Run {
        /// The TOML configuration.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Allow `evidence.backend = "fixture"` (simulated hardware, CI and drills only).
        #[arg(long)]
        allow_simulated_hardware: bool,
    },
    /// Check a configuration file and exit.
    CheckConfig {
        /// The TOML configuration.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Ask a running sidecar for its token (as an agent would) and print the JSON answer.
    Token {
        /// The sidecar's socket.
        #[arg(long, value_name = "PATH")]
        socket: PathBuf,
        /// The audience (default: the sidecar's first).
        #[arg(long)]
        aud: Option<String>,
    },
    /// Ask a running sidecar for a token and a DPoP proof for one request.
    Proof {
        /// The sidecar's socket.
        #[arg(long, value_name = "PATH")]
        socket: PathBuf,
        /// The request's HTTP method.
        #[arg(long, default_value = "GET")]
        method: String,
        /// The request's URL.
        #[arg(long)]
        url: String,
        /// The audience (default: the sidecar's first).
        #[arg(long)]
        aud: Option<String>,
    },
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    // HTTP client internals stay at warn whatever RUST_LOG says: their debug output would
    // include request headers, and one of those carries the bootstrap secret.
    let user = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
    let filter = EnvFilter::try_new(format!("{user},ureq=warn,ureq_proto=warn,rustls=warn"))
        .unwrap_or_else(|_| EnvFilter::new("info,ureq=warn,ureq_proto=warn,rustls=warn"));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            config,
            allow_simulated_hardware,
        } => {
            init_logging();
            let config = match Config::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!("{e}");
                    return ExitCode::from(2);
                }
            };
            match attest_sidecar::run::run(&config, allow_simulated_hardware) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::CheckConfig { config } => match Config::load(&config) {
            Ok(_) => {
                println!("{}: ok", config.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        },
        Command::Token { socket, aud } => match AgentClient::new(&socket).token(aud.as_deref()) {
            Ok(token) => {
                println!(
                    "{}",
                    serde_json::json!({"access_token": token.access_token.as_str(), "expires_in": token.expires_in})
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("attest-sidecar token: {e}");
                ExitCode::from(1)
            }
        },
        Command::Proof {
            socket,
            method,
            url,
            aud,
        } => match AgentClient::new(&socket).proof(&method, &url, aud.as_deref()) {
            Ok(p) => {
                println!(
                    "{}",
                    serde_json::json!({"access_token": p.token.access_token.as_str(), "dpop": p.dpop, "expires_in": p.token.expires_in})
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("attest-sidecar proof: {e}");
                ExitCode::from(1)
            }
        },
    }
}
