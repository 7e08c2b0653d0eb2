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
    /// Run the broker service.
    Serve(ServeArgs),
    /// Administer a running broker (tenants, policies, agents, secrets, revocations, audit).
    Admin(crate::admin_cli::AdminArgs),
    /// Act as a simulated SEV-SNP host: challenge, attest, refresh (for --dev and drills).
    SimHost(crate::host::SimHostArgs),
    /// Load-test a broker with simulated hosts (starts its own --dev broker by default).
    Bench(crate::loadgen::BenchArgs),
}

/// `serve` arguments.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Configuration file (TOML; see docs/configuration.md).
    #[arg(long, value_name = "FILE", conflicts_with = "dev")]
    pub config: Option<PathBuf>,
    /// Development mode: embedded SQLite under --data-dir, generated keys, simulated AMD roots
    /// trusted (with a loud warning), an admin credential written to <data-dir>/admin-credential.
    #[arg(long)]
    pub dev: bool,
    /// Data directory for --dev.
    #[arg(
        long,
        value_name = "DIR",
        default_value = "attest-broker-dev",
        requires = "dev"
    )]
    pub data_dir: PathBuf,
    /// Listen address for --dev (default 127.0.0.1:8080).
    #[arg(long, value_name = "ADDR", requires = "dev")]
    pub listen: Option<std::net::SocketAddr>,
    /// Log as JSON lines instead of text.
    #[arg(long)]
    pub log_json: bool,
}

impl ServeArgs {
    /// The configuration these arguments select.
    pub fn config(&self) -> Result<crate::config::Config, String> {
        match (&self.config, self.dev) {
            (Some(path), _) => crate::config::Config::load(path),
            (None, true) => Ok(crate::config::Config::dev(
                self.data_dir.clone(),
                self.listen,
            )),
            (None, false) => {
                Err("give --config FILE, or --dev for a local development broker".into())
            }
        }
    }
}

/// Evidence kinds `verify` understands.
#[derive(Debug, Subcommand)]
pub enum VerifyCommand {
    /// An AMD SEV-SNP attestation report and its VCEK or VLEK.
    Snp(SnpArgs),
    /// An AWS Nitro Enclaves attestation document (COSE_Sign1).
    Nitro(NitroArgs),
    /// A TPM 2.0 quote (TPMS_ATTEST) with its signature, attestation key, PCR values and
    /// event log.
    Tpm(TpmArgs),
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

/// `verify nitro` arguments.
#[derive(Debug, Args)]
pub struct NitroArgs {
    /// The attestation document: raw COSE_Sign1 bytes, or the same as base64 text (standard
    /// alphabet; padding, spaces and line breaks optional).
    #[arg(long, value_name = "FILE")]
    pub doc: PathBuf,
    /// Verification time, RFC 3339 (default: now).
    #[arg(long, value_name = "RFC3339")]
    pub at: Option<String>,
    /// Expected nonce as hex (0 to 512 bytes), compared at exact length.
    #[arg(long, value_name = "HEX")]
    pub nonce: Option<String>,
    /// Extra trust anchors (PEM or DER bundle of self-signed P-384 roots), e.g. simulated
    /// hardware. The pinned AWS Nitro root is always trusted; these are added to it.
    #[arg(long, value_name = "FILE")]
    pub roots: Option<PathBuf>,
}

/// `verify tpm` arguments.
#[derive(Debug, Args)]
#[command(after_long_help = "\
Checks, in order: the attest is a quote; an AK given as a TPM public area is a restricted, \
fixedTPM, fixedParent signing key whose scheme is the signature's; the AK certificate chain \
(with --ak-chain); the signature over the raw TPMS_ATTEST; extraData against --nonce; \
qualifiedSigner against --qualified-signer; pcrDigest against --pcrs over the quote's own PCR \
selection; the event log replayed against the quoted PCRs.

Trust: no TPM vendor root is built in. --ak-chain holds what the attester sent (the AK \
certificate first, then intermediates); --roots holds what you trust. A root that appears \
only in --ak-chain is never trusted.

Example (Google Compute Engine vTPM):
  attest-broker verify tpm --attest quote1_attest.bin --signature quote1_sig.bin \\
    --ak ak_pub_tpmt_public.bin --pcrs quote1_pcrs.json --nonce 9009 \\
    --event-log event_log.bin --ak-chain ak_cert.der tpm_ek_intermediate_2.pem \\
    --roots tpm_ek_root_1.pem --at 2026-01-15T00:00:00Z")]
pub struct TpmArgs {
    /// The quote: a marshalled TPMS_ATTEST (a TPM2B_ATTEST with its size prefix is accepted).
    #[arg(long, value_name = "FILE")]
    pub attest: PathBuf,
    /// The signature: a marshalled TPMT_SIGNATURE (RSASSA, RSAPSS, ECDSA), or a bare
    /// RSASSA-PKCS1-v1_5 / SHA-256 signature of exactly 256, 384 or 512 bytes (Azure).
    #[arg(long, value_name = "FILE")]
    pub signature: PathBuf,
    /// The attestation key: PEM or DER SubjectPublicKeyInfo (only the key is checked), or a
    /// marshalled TPMT_PUBLIC / TPM2B_PUBLIC (its attributes and scheme are checked too).
    #[arg(long, value_name = "FILE")]
    pub ak: PathBuf,
    /// PCR values as JSON: {"0": "<hex>", …}, an array indexed from PCR 0, or either keyed by
    /// bank ({"sha256": {…}, "sha1": […]}); unkeyed values get their bank from their length.
    /// Without --pcrs only the quote's pcrDigest is attested.
    #[arg(long, value_name = "FILE")]
    pub pcrs: Option<PathBuf>,
    /// Expected extraData (the nonce) as hex, 1 to 64 bytes, compared at exact length.
    #[arg(long, value_name = "HEX")]
    pub nonce: Option<String>,
    /// TCG PC Client crypto-agile event log (e.g. binary_bios_measurements), replayed and
    /// compared with the quoted PCR values. Needs --pcrs.
    #[arg(long, value_name = "FILE", requires = "pcrs")]
    pub event_log: Option<PathBuf>,
    /// AK certificate chain as sent by the attester: the AK certificate first, then
    /// intermediates; DER or PEM files, one or more. Needs --roots.
    #[arg(long, value_name = "FILE", num_args = 1.., requires = "roots")]
    pub ak_chain: Vec<PathBuf>,
    /// Trust anchors for --ak-chain (roots or pinned intermediates, DER or PEM files).
    #[arg(long, value_name = "FILE", num_args = 1.., requires = "ak_chain")]
    pub roots: Vec<PathBuf>,
    /// Expected qualifiedSigner (the AK's qualified name) as hex.
    #[arg(long, value_name = "HEX")]
    pub qualified_signer: Option<String>,
    /// Verification time, RFC 3339 (default: now).
    #[arg(long, value_name = "RFC3339")]
    pub at: Option<String>,
}

/// `demo` arguments.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Directory to write the simulated report, VCEK and roots into (default: a fresh
    /// temporary directory).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}
