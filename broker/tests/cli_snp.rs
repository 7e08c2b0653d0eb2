//! `attest-broker verify snp` and `attest-broker demo` as a user runs them: the real binary,
//! real vectors, and the exit-code / output contract.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

fn vectors() -> PathBuf {
    std::env::var_os("ATTEST_VECTORS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors"))
}

fn broker(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_attest-broker"))
        .args(args)
        .output()
        .unwrap()
}

fn vector(rel: &str) -> String {
    vectors().join(rel).to_str().unwrap().to_string()
}

fn stdout_json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

#[test]
fn verified_report_prints_claims_and_exits_0() {
    let out = broker(&[
        "verify", "snp",
        "--report", &vector("snp/trustee-milan-vlek/report.bin"),
        "--cert", &vector("snp/trustee-milan-vlek/vlek.der"),
        "--at", "2025-06-01T00:00:00Z",
        "--report-data", "819770b7e6ea6df8dd8fd4dd146b073c0bf4f3ce5b0977ecac486e3a05ed1bd54e2a7ac1f5d1ca02e7d7d5ef9f73b8574fd9359e3a480d741a4478e8a7bc27ca",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = stdout_json(&out);
    assert_eq!(json["tee"], "sev-snp");
    assert_eq!(json["version"], 3);
    assert_eq!(json["generation"], "milan");
    assert_eq!(json["signer"], "vlek");
    assert_eq!(json["vmpl"], 1);
    assert_eq!(json["debug"], false);
    assert_eq!(json["measurement"], "8922ebbdd00ec2c541f36a6e7a82a8773a7accb451ed67bc94e740dbe92c93c4e8c9af857f5ceeb5a493df2a570d7bf0");
    assert_eq!(json["reported_tcb"]["microcode"], 217);
    for key in ["report_data", "host_data", "chip_id", "policy"] {
        assert!(json.get(key).is_some(), "missing {key}");
    }
    assert_eq!(
        out.stdout.iter().filter(|&&b| b == b'\n').count(),
        1,
        "one JSON object, one line"
    );
}

#[test]
fn pem_bundle_with_the_chain_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let vcek = std::fs::read(vectors().join("snp/virtee-sev-milan/vcek.der")).unwrap();
    // DER VCEK followed by DER ASK: a concatenated DER bundle.
    let chain =
        std::fs::read_to_string(vectors().join("snp/virtee-sev-milan/cert_chain_milan.pem"))
            .unwrap();
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    use base64::Engine;
    pem.push_str(&base64::engine::general_purpose::STANDARD.encode(&vcek));
    pem.push_str("\n-----END CERTIFICATE-----\n");
    pem.push_str(&chain);
    let bundle = dir.path().join("bundle.pem");
    std::fs::write(&bundle, pem).unwrap();
    let out = broker(&[
        "verify",
        "snp",
        "--report",
        &vector("snp/virtee-sev-milan/report.bin"),
        "--cert",
        bundle.to_str().unwrap(),
        "--at",
        "2026-01-15T00:00:00Z",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(stdout_json(&out)["debug"], false);
}

#[test]
fn rejected_evidence_exits_1_with_a_coded_error() {
    for (report, cert, at, code) in [
        (
            "snp/trustee-milan-vcek/report.bin",
            "snp/trustee-milan-vcek/vcek-invalid-new.der",
            "2026-01-15T00:00:00Z",
            "snp.chain",
        ),
        (
            "snp/trustee-milan-vlek/report.bin",
            "snp/trustee-milan-vlek/vlek.der",
            "2026-01-15T00:00:00Z",
            "snp.cert_expired",
        ),
        (
            "snp/virtee-sev-milan/report.bin",
            "snp/go-sev-guest-milan/vcek.der",
            "2026-01-15T00:00:00Z",
            "snp.signature",
        ),
        (
            "snp/virtee-sev-milan/vcek.der",
            "snp/virtee-sev-milan/vcek.der",
            "2026-01-15T00:00:00Z",
            "parse.length",
        ),
    ] {
        let out = broker(&[
            "verify",
            "snp",
            "--report",
            &vector(report),
            "--cert",
            &vector(cert),
            "--at",
            at,
        ]);
        assert_eq!(out.status.code(), Some(1), "{report} {cert}");
        let json = stdout_json(&out);
        assert_eq!(json["error"]["code"], code, "{json}");
        assert!(json["error"]["message"].as_str().unwrap().len() > 10);
    }
    // A report_data mismatch is a rejection too.
    let out = broker(&[
        "verify",
        "snp",
        "--report",
        &vector("snp/go-sev-guest-milan/report.bin"),
        "--cert",
        &vector("snp/go-sev-guest-milan/vcek.der"),
        "--at",
        "2026-01-15T00:00:00Z",
        "--report-data",
        &"00".repeat(64),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout_json(&out)["error"]["code"], "snp.report_data");
}

#[test]
fn unusable_invocations_exit_2_with_a_message_on_stderr() {
    let report = vector("snp/virtee-sev-milan/report.bin");
    let cert = vector("snp/virtee-sev-milan/vcek.der");
    for args in [
        vec![
            "verify",
            "snp",
            "--report",
            "/nonexistent/report.bin",
            "--cert",
            &cert,
        ],
        vec![
            "verify",
            "snp",
            "--report",
            &report,
            "--cert",
            &cert,
            "--at",
            "yesterday",
        ],
        vec![
            "verify",
            "snp",
            "--report",
            &report,
            "--cert",
            &cert,
            "--report-data",
            "zz",
        ],
        vec![
            "verify",
            "snp",
            "--report",
            &report,
            "--cert",
            &cert,
            "--report-data",
            "0102",
        ],
        vec![
            "verify", "snp", "--report", &report, "--cert", &cert, "--roots", &report,
        ],
        vec!["verify", "snp", "--report", &report],
        vec!["verify", "snp", "--report", &report, "--cert", "/"],
    ] {
        let out = broker(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}: nothing on stdout");
        assert!(!out.stderr.is_empty(), "{args:?}: a message on stderr");
    }
}

#[test]
fn simulated_hardware_needs_its_roots() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_attest-broker"))
        .args(["demo", "--out", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let claims = stdout_json(&out);
    assert_eq!(claims["tee"], "sev-snp");
    assert_eq!(claims["vendor_root"], false);
    let path = |f: &str| dir.path().join(f).to_str().unwrap().to_string();
    let without = broker(&[
        "verify",
        "snp",
        "--report",
        &path("report.bin"),
        "--cert",
        &path("vcek.pem"),
    ]);
    assert_eq!(without.status.code(), Some(1));
    assert_eq!(stdout_json(&without)["error"]["code"], "snp.chain");
    let with = broker(&[
        "verify",
        "snp",
        "--report",
        &path("report.bin"),
        "--cert",
        &path("vcek.pem"),
        "--roots",
        &path("roots.pem"),
    ]);
    assert_eq!(with.status.code(), Some(0));
    assert_eq!(stdout_json(&with)["measurement"], claims["measurement"]);
}
