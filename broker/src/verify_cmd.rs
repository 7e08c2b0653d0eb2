//! `attest-broker verify …`: offline verification with a stable output contract.

use std::io::Write;
use std::process::ExitCode;

use attest_verifiers::nitro::{self, NitroTrustAnchors, NitroVerifier};
use attest_verifiers::snp::{AmdTrustAnchors, SnpVerifier, VerifyOptions};
use attest_verifiers::{VerifiedEvidence, VerifyError};
use serde_json::json;

use crate::cli::{NitroArgs, SnpArgs, VerifyCommand};
use crate::input::{self, UsageError};

/// The result of a verify command, mapped to the output contract.
pub enum Outcome {
    /// Verified: claims JSON on stdout, exit 0.
    Verified(Box<VerifiedEvidence>),
    /// Rejected: error JSON on stdout, exit 1.
    Rejected(VerifyError),
    /// Unusable invocation or input: message on stderr, exit 2.
    Usage(UsageError),
}

impl Outcome {
    /// Prints the outcome and returns the process exit code.
    pub fn exit(self) -> ExitCode {
        let (stdout, code) = match self {
            Outcome::Verified(evidence) => match serde_json::to_string(evidence.claims()) {
                Ok(text) => (text, 0),
                Err(e) => {
                    eprintln!("attest-broker: cannot serialise claims: {e}");
                    return ExitCode::from(2);
                }
            },
            Outcome::Rejected(err) => (error_json(&err), 1),
            Outcome::Usage(err) => {
                eprintln!("attest-broker: {err}");
                return ExitCode::from(2);
            }
        };
        let mut out = std::io::stdout().lock();
        if writeln!(out, "{stdout}")
            .and_then(|()| out.flush())
            .is_err()
        {
            return ExitCode::from(2);
        }
        ExitCode::from(code)
    }
}

/// `{"error":{"code":…,"message":…}}` for a rejection.
pub fn error_json(err: &VerifyError) -> String {
    json!({"error": {"code": err.code(), "message": err.to_string()}}).to_string()
}

/// Runs a `verify` subcommand.
pub fn run(cmd: &VerifyCommand) -> Outcome {
    let result = match cmd {
        VerifyCommand::Snp(args) => verify_snp(args),
        VerifyCommand::Nitro(args) => verify_nitro(args),
    };
    match result {
        Ok(Ok(evidence)) => Outcome::Verified(Box::new(evidence)),
        Ok(Err(rejected)) => Outcome::Rejected(rejected),
        Err(usage) => Outcome::Usage(usage),
    }
}

type Verdict = Result<Result<VerifiedEvidence, VerifyError>, UsageError>;

fn verify_snp(args: &SnpArgs) -> Verdict {
    let report = input::read_file(&args.report, "report")?;
    let certs = input::read_file(&args.cert, "certificate")?;
    let at = input::verification_time(args.at.as_deref())?;
    let report_data = args
        .report_data
        .as_deref()
        .map(|hex| input::hex_exact("--report-data", hex, 64))
        .transpose()?;
    let mut anchors = AmdTrustAnchors::builtin();
    if let Some(path) = &args.roots {
        let roots = input::read_file(path, "roots")?;
        anchors
            .add_roots(&roots)
            .map_err(|e| UsageError(format!("--roots {}: {e}", path.display())))?;
    }
    let opts = VerifyOptions {
        at,
        expected_report_data: report_data.as_deref(),
    };
    Ok(SnpVerifier::new(anchors).verify(&report, &certs, &opts))
}

fn verify_nitro(args: &NitroArgs) -> Verdict {
    let raw = input::read_file(&args.doc, "document")?;
    let at = input::verification_time(args.at.as_deref())?;
    let nonce = args.nonce.as_deref().map(nonce_hex).transpose()?;
    let mut anchors = NitroTrustAnchors::builtin();
    if let Some(path) = &args.roots {
        let roots = input::read_file(path, "roots")?;
        anchors
            .add_roots(&roots)
            .map_err(|e| UsageError(format!("--roots {}: {e}", path.display())))?;
    }
    // Raw COSE or base64 text; text that does not decode is a rejected document (exit 1).
    let doc = match nitro::decode_input(&raw) {
        Ok(doc) => doc,
        Err(rejected) => return Ok(Err(rejected)),
    };
    let opts = nitro::VerifyOptions {
        expected_nonce: nonce.as_deref(),
        ..nitro::VerifyOptions::at(at)
    };
    Ok(NitroVerifier::new(anchors).verify(&doc, &opts))
}

/// `--nonce`: hex of at most the 512 bytes a document's nonce can hold.
fn nonce_hex(text: &str) -> Result<Vec<u8>, UsageError> {
    let bytes =
        hex::decode(text.trim()).map_err(|e| UsageError(format!("--nonce is not hex: {e}")))?;
    if bytes.len() > nitro::document::MAX_NONCE_BYTES {
        return Err(UsageError(format!(
            "--nonce is {} bytes; a Nitro nonce holds at most {}",
            bytes.len(),
            nitro::document::MAX_NONCE_BYTES
        )));
    }
    Ok(bytes)
}
