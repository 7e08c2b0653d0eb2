//! `attest-broker`: the attestation broker's command line.
//!
//! Exit codes: 0 success; 1 evidence rejected (a JSON error object on stdout); 2 unusable
//! invocation or unreadable input (a message on stderr).

#![forbid(unsafe_code)]

mod cli;
mod demo;
mod input;
mod verify_cmd;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let outcome = match cli.command {
        cli::Command::Verify(cmd) => verify_cmd::run(&cmd),
        cli::Command::Demo(args) => demo::run(&args),
    };
    outcome.exit()
}
