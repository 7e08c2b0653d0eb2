//! `attest-broker verify …`: offline verification with a stable output contract.

use std::io::Write;
use std::process::ExitCode;

use attest_verifiers::nitro::{self, NitroTrustAnchors, NitroVerifier};
use attest_verifiers::snp::{AmdTrustAnchors, SnpVerifier, VerifyOptions};
use attest_verifiers::tpm::{self, AttestationKey, EventLog, PcrValues, Signature};
use attest_verifiers::x509::{self, Certificate};
use attest_verifiers::{VerifiedEvidence, VerifyError};
use serde_json::json;

use crate::cli::{NitroArgs, SnpArgs, TpmArgs, VerifyCommand};
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
        VerifyCommand::Tpm(args) => verify_tpm(args),
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

fn verify_tpm(args: &TpmArgs) -> Verdict {
    let attest = input::read_file(&args.attest, "attest")?;
    let signature = input::read_file(&args.signature, "signature")?;
    let ak = input::read_file(&args.ak, "AK")?;
    let pcrs = args
        .pcrs
        .as_ref()
        .map(|p| input::read_file(p, "PCR values"))
        .transpose()?;
    let event_log = args
        .event_log
        .as_ref()
        .map(|p| input::read_file(p, "event log"))
        .transpose()?;
    let chain = args
        .ak_chain
        .iter()
        .map(|p| input::read_file(p, "AK chain"))
        .collect::<Result<Vec<_>, _>>()?;
    let mut anchors: Vec<Certificate> = Vec::new();
    for path in &args.roots {
        let roots = input::read_file(path, "roots")?;
        anchors.extend(
            x509::parse_bundle(&roots)
                .map_err(|e| UsageError(format!("--roots {}: {e}", path.display())))?,
        );
    }
    let at = input::verification_time(args.at.as_deref())?;
    let nonce = args
        .nonce
        .as_deref()
        .map(|t| tpm_hex("--nonce", t, 64))
        .transpose()?;
    let qualified_signer = args
        .qualified_signer
        .as_deref()
        .map(|t| tpm_hex("--qualified-signer", t, 66))
        .transpose()?;
    // Everything below came from the attester: a problem with it is a rejection (exit 1).
    let verdict = (|| {
        let signature = Signature::detect(&signature)?;
        let ak = AttestationKey::parse(&ak)?;
        let pcrs = pcrs.as_deref().map(PcrValues::from_json).transpose()?;
        let event_log = event_log.as_deref().map(EventLog::parse).transpose()?;
        let mut certs = Vec::new();
        for bundle in &chain {
            certs.extend(x509::parse_bundle(bundle)?);
        }
        let evidence = tpm::QuoteEvidence {
            attest: strip_tpm2b_attest(&attest),
            signature: &signature,
            ak: &ak,
            pcrs: pcrs.as_ref(),
            event_log: event_log.as_ref(),
        };
        let opts = tpm::QuoteOptions {
            at,
            expected_nonce: nonce.as_deref(),
            ak_chain: (!certs.is_empty()).then_some(tpm::CertChain {
                certs: &certs,
                anchors: &anchors,
            }),
            expected_qualified_signer: qualified_signer.as_deref(),
        };
        tpm::verify_quote(&evidence, &opts)
    })();
    Ok(verdict)
}

/// A TPM2B_ATTEST (u16 size of the rest, then a TPMS_ATTEST starting with its magic) without
/// its size; anything else unchanged.
fn strip_tpm2b_attest(data: &[u8]) -> &[u8] {
    match data {
        [hi, lo, rest @ ..]
            if usize::from(u16::from_be_bytes([*hi, *lo])) == rest.len()
                && rest.starts_with(&tpm::alg::TPM_GENERATED_VALUE.to_be_bytes()) =>
        {
            rest
        }
        _ => data,
    }
}

/// A hex argument of 1 to `max` bytes.
fn tpm_hex(flag: &str, text: &str, max: usize) -> Result<Vec<u8>, UsageError> {
    let bytes =
        hex::decode(text.trim()).map_err(|e| UsageError(format!("{flag} is not hex: {e}")))?;
    if bytes.is_empty() || bytes.len() > max {
        return Err(UsageError(format!(
            "{flag} must be 1 to {max} bytes, got {}",
            bytes.len()
        )));
    }
    Ok(bytes)
}
