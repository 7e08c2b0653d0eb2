//! `attest-broker demo`: the whole verification path on simulated hardware, no TEE needed.
//!
//! Generates a simulated AMD Milan root set (ARK/ASK/ASVK, RSA-4096, as AMD's), issues a VCEK
//! for a simulated chip, has the "chip" sign a report whose REPORT_DATA commits to a fresh
//! challenge, writes the three files, and verifies them with exactly the code path of
//! `attest-broker verify snp`: once with the simulated roots passed explicitly (accepted) and
//! once without (rejected: fixture roots are never trusted by default).

use std::path::{Path, PathBuf};

use attest_fixtures::amd::{AmdRoots, Generation, TcbVersion};
use attest_fixtures::snp::{default_chip_id, ReportBuilder};

use crate::cli::{DemoArgs, SnpArgs, VerifyCommand};
use crate::input::UsageError;
use crate::verify_cmd::{self, Outcome};

/// Runs the demo; the final outcome is the verification with the simulated roots.
pub fn run(args: &DemoArgs) -> Outcome {
    match prepare(args) {
        Ok(files) => verify_both_ways(&files),
        Err(e) => Outcome::Usage(e),
    }
}

struct DemoFiles {
    report: PathBuf,
    vcek: PathBuf,
    roots: PathBuf,
    report_data: String,
}

fn prepare(args: &DemoArgs) -> Result<DemoFiles, UsageError> {
    let dir = match &args.out {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("attest-broker-demo-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir)
        .map_err(|e| UsageError(format!("cannot create {}: {e}", dir.display())))?;
    eprintln!("demo: generating a simulated AMD Milan root set (RSA-4096; a few seconds)…");
    let fixture = |e: attest_fixtures::FixtureError| UsageError(format!("fixture: {e}"));
    let roots = AmdRoots::generate(Generation::Milan).map_err(fixture)?;
    let tcb = TcbVersion::default_for(Generation::Milan);
    let chip_id = default_chip_id(Generation::Milan);
    let vcek = roots.issue_vcek(&chip_id, tcb).map_err(fixture)?;

    let mut report = ReportBuilder::new(Generation::Milan);
    report.chip_id = chip_id;
    report.set_all_tcbs(tcb, Generation::Milan);
    report.report_data = challenge_commitment();
    let signed = report.try_sign(&vcek).map_err(fixture)?;

    let files = DemoFiles {
        report: write(&dir, "report.bin", &signed)?,
        vcek: write(&dir, "vcek.pem", vcek.cert_pem().as_bytes())?,
        roots: write(&dir, "roots.pem", roots.roots_pem().as_bytes())?,
        report_data: hex::encode(report.report_data),
    };
    eprintln!(
        "demo: wrote {}, {}, {}",
        files.report.display(),
        files.vcek.display(),
        files.roots.display()
    );
    Ok(files)
}

fn verify_both_ways(files: &DemoFiles) -> Outcome {
    let args = |roots: Option<PathBuf>| SnpArgs {
        report: files.report.clone(),
        cert: files.vcek.clone(),
        at: None,
        report_data: Some(files.report_data.clone()),
        roots,
    };
    eprintln!(
        "demo: attest-broker verify snp --report {} --cert {} --report-data {}  (no --roots)",
        files.report.display(),
        files.vcek.display(),
        files.report_data
    );
    match verify_cmd::run(&VerifyCommand::Snp(args(None))) {
        Outcome::Rejected(e) => eprintln!(
            "demo:   rejected as it must be: {}",
            verify_cmd::error_json(&e)
        ),
        _ => {
            return Outcome::Usage(UsageError(
                "simulated hardware was accepted without --roots; refusing to continue".into(),
            ))
        }
    }
    eprintln!("demo: the same with --roots {}", files.roots.display());
    verify_cmd::run(&VerifyCommand::Snp(args(Some(files.roots.clone()))))
}

/// REPORT_DATA as DESIGN.md binds it: SHA-512("attest-broker/v1" ‖ nonce ‖ jkt). The demo
/// has no broker to issue a nonce or a binding key, so both are derived from the clock.
fn challenge_commitment() -> [u8; 64] {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let jkt = attest_proto::crypto::sha256(b"demo-binding-key");
    attest_proto::attestation_binding(&nanos.to_be_bytes(), &jkt)
}

fn write(dir: &Path, name: &str, data: &[u8]) -> Result<PathBuf, UsageError> {
    let path = dir.join(name);
    std::fs::write(&path, data)
        .map_err(|e| UsageError(format!("cannot write {}: {e}", path.display())))?;
    Ok(path)
}
