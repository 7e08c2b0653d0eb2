//! Command-line definitions (clap derive).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Attestation broker for AI-agent fleets: verifies hardware evidence (AMD SEV-SNP, TPM 2.0,
/// AWS Nitro Enclaves) against pinned vendor roots.
#[derive(Debug, Parser)]
#[command(name = "attest-broker", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Verify evidence offline and print its claims as JSON.
    ///
    /// Exit 0 with the claims on stdout; exit 1 with {"error":{"code","message"}} on stdout
    /// when the evidence is rejected; exit 2 with a message on stderr when the invocation or
    /// an input file is unusable.
    #[command(subcommand)]
    Verify(VerifyCommand),
    /// Generate simulated SEV-SNP hardware, a signed report, and verify it end to end.
    Demo(DemoArgs),
}

/// Evidence kinds `verify` understands.
#[derive(Debug, Subcommand)]
pub enum VerifyCommand {
    /// An AMD SEV-SNP attestation report and its VCEK or VLEK.
    Snp(SnpArgs),
}

/// `verify snp` arguments.
#[derive(Debug, Args)]
pub struct SnpArgs {
    /// The attestation report: 1184 raw bytes.
    #[arg(long, value_name = "FILE")]
    pub report: PathBuf,
    /// The VCEK or VLEK, DER or PEM; may be a bundle that also holds the ASK/ASVK and ARK.
    #[arg(long, value_name = "FILE")]
    pub cert: PathBuf,
    /// Verification time, RFC 3339 (default: now).
    #[arg(long, value_name = "RFC3339")]
    pub at: Option<String>,
    /// Expected REPORT_DATA: exactly 64 bytes as 128 hex digits.
    #[arg(long, value_name = "HEX")]
    pub report_data: Option<String>,
    /// Extra trust anchors (PEM or DER bundle of ARK + ASK/ASVK), e.g. simulated hardware.
    /// AMD's pinned roots are always trusted; these are added to them.
    #[arg(long, value_name = "FILE")]
    pub roots: Option<PathBuf>,
}

/// `demo` arguments.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Directory to write the simulated report, VCEK and roots into (default: a fresh
    /// temporary directory).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}
