//! `attest-broker verify nitro` as a user runs it: the real binary, real vectors and simulated
//! documents, and the exit-code / output contract (0 + claims, 1 + error JSON, 2 + stderr).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use attest_fixtures::nitro::{DocumentBuilder, NitroHierarchy};
use attest_verifiers::UnixTime;
use base64::Engine;
use serde_json::Value;

fn vectors() -> PathBuf {
    std::env::var_os("ATTEST_VECTORS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors"))
}

fn doc_path(dir: &str) -> String {
    vectors()
        .join(format!("nitro/{dir}/attestation_doc.cose"))
        .to_str()
        .unwrap()
        .to_string()
}

fn broker(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_attest-broker"))
        .args(args)
        .output()
        .unwrap()
}

fn stdout_json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn assert_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Exit 1: one line of `{"error":{"code","message"}}` on stdout, nothing on stderr.
fn assert_rejected(out: &Output, code: &str) {
    assert_exit(out, 1);
    let json = stdout_json(out);
    assert_eq!(json["error"]["code"], code, "{json}");
    assert!(!json["error"]["message"].as_str().unwrap().is_empty());
    assert_eq!(json.as_object().unwrap().len(), 1);
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Exit 2: a message on stderr, nothing on stdout.
fn assert_usage(out: &Output, needle: &str) {
    assert_exit(out, 2);
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(needle), "{needle:?} not in {stderr}");
}

#[test]
fn verified_document_prints_claims_and_exits_0() {
    let out = broker(&[
        "verify",
        "nitro",
        "--doc",
        &doc_path("eternis-lib-test"),
        "--at",
        "2024-09-17T20:48:11Z",
        "--nonce",
        "0000000000000000000000000000000000000001",
    ]);
    assert_exit(&out, 0);
    assert!(out.stderr.is_empty());
    let json = stdout_json(&out);
    assert_eq!(json["tee"], "aws-nitro");
    assert_eq!(json["module_id"], "i-0bbf1bfe232b8c2ce-enc019201afdaee4f17");
    assert_eq!(json["timestamp"], "2024-09-17T20:47:10.288Z");
    assert_eq!(json["timestamp_ms"], 1_726_606_030_288u64);
    assert_eq!(json["digest"], "SHA384");
    assert_eq!(json["debug"], true);
    assert_eq!(json["nonce"], "0000000000000000000000000000000000000001");
    assert_eq!(json["public_key"], "64756d6d79");
    assert_eq!(json["vendor_root"], true);
    let pcrs = json["pcrs"].as_object().unwrap();
    assert_eq!(pcrs.len(), 16);
    assert_eq!(
        pcrs["3"],
        "671ca1e328f75015b2aeee60639cc5252bc835d8bb690444d1f8e2bf4260f73dc1b71e07a14a770c7d0becac6eb3b53f"
    );
    assert_eq!(pcrs["0"], "0".repeat(96));

    let out = broker(&[
        "verify",
        "nitro",
        "--doc",
        &doc_path("evervault-beta-valid"),
        "--at",
        "2022-10-13T09:00:00Z",
    ]);
    assert_exit(&out, 0);
    let json = stdout_json(&out);
    assert_eq!(json["debug"], false);
    assert_eq!(json["user_data"], Value::Null);
    assert_eq!(
        json["pcrs"]["0"],
        "f4d48b81a460c9916d1e685119074bf24660afd3e34fae9fca0a0d28d9d5599936332687e6f66fc890ac8cf150142d8b"
    );
    assert_eq!(json["nonce"].as_str().unwrap().len(), 512);
}

#[test]
fn base64_documents_are_accepted() {
    let raw = std::fs::read(doc_path("evervault-beta-debug")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let padded = base64::engine::general_purpose::STANDARD.encode(&raw);
    let unpadded = base64::engine::general_purpose::STANDARD_NO_PAD.encode(&raw);
    let wrapped: String = unpadded
        .as_bytes()
        .chunks(64)
        .map(|c| format!("{}\r\n", std::str::from_utf8(c).unwrap()))
        .collect();
    for (name, text) in [("padded.b64", padded), ("wrapped.b64", wrapped)] {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let out = broker(&[
            "verify",
            "nitro",
            "--doc",
            path.to_str().unwrap(),
            "--at",
            "2022-10-12T14:00:00Z",
        ]);
        assert_exit(&out, 0);
        let json = stdout_json(&out);
        assert_eq!(json["module_id"], "i-03ad7cdb817437eeb-enc0183cc7569b3f6e1");
        assert_eq!(json["debug"], true);
        assert_eq!(json["nonce"], Value::Null);
        assert_eq!(json["user_data"], "68656c6c6f2c20776f726c6421");
    }
    // Base64 alphabet that does not decode: a rejected document, not a usage error.
    let path = dir.path().join("bad.b64");
    std::fs::write(&path, "hEShATgioFkR=A").unwrap();
    let out = broker(&[
        "verify",
        "nitro",
        "--doc",
        path.to_str().unwrap(),
        "--at",
        "2022-10-12T14:00:00Z",
    ]);
    assert_rejected(&out, "parse.malformed");
}

#[test]
fn rejected_documents_exit_1_with_the_error_code() {
    // README section 10: a broken COSE signature, an expired leaf.
    let out = broker(&[
        "verify",
        "nitro",
        "--doc",
        &doc_path("eternis-fixture-invalid"),
        "--at",
        "2024-07-23T21:30:00Z",
    ]);
    assert_rejected(&out, "nitro.signature");
    let out = broker(&[
        "verify",
        "nitro",
        "--doc",
        &doc_path("evervault-beta-valid"),
        "--at",
        "2022-10-13T12:00:00Z",
    ]);
    assert_rejected(&out, "nitro.cert_expired");
    // A wrong nonce, and a nonce one byte too long.
    for nonce in [
        "0000000000000000000000000000000000000002",
        "000000000000000000000000000000000000000100",
    ] {
        let out = broker(&[
            "verify",
            "nitro",
            "--doc",
            &doc_path("eternis-lib-test"),
            "--at",
            "2024-09-17T20:48:11Z",
            "--nonce",
            nonce,
        ]);
        assert_rejected(&out, "nitro.nonce");
    }
    // Not a document at all (an SNP report).
    let out = broker(&[
        "verify",
        "nitro",
        "--doc",
        vectors()
            .join("snp/virtee-sev-milan/report.bin")
            .to_str()
            .unwrap(),
        "--at",
        "2024-09-17T20:48:11Z",
    ]);
    assert_exit(&out, 1);
    assert!(stdout_json(&out)["error"]["code"]
        .as_str()
        .unwrap()
        .starts_with("parse."));
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn simulated_documents_need_their_roots() {
    // Now, from the fixtures' clock (one day before now, plus a day).
    let at = attest_fixtures::amd::default_not_before() + std::time::Duration::from_secs(86_400);
    let hierarchy = NitroHierarchy::generate(at).unwrap();
    let enclave = hierarchy.issue_enclave(at).unwrap();
    let mut builder = DocumentBuilder::new(&hierarchy, &enclave);
    builder.nonce = Some(vec![0xAB; 32]);
    builder.tagged = true;
    let dir = tempfile::tempdir().unwrap();
    let doc = write(
        dir.path(),
        "doc.cose",
        &builder.sign(enclave.key()).unwrap(),
    );
    let roots = write(dir.path(), "roots.pem", hierarchy.roots_pem().as_bytes());

    // Default time (now) and no roots: the fixture root is not AWS's.
    let out = broker(&["verify", "nitro", "--doc", &doc]);
    assert_rejected(&out, "nitro.chain");
    let nonce = "ab".repeat(32);
    let out = broker(&[
        "verify", "nitro", "--doc", &doc, "--roots", &roots, "--nonce", &nonce,
    ]);
    assert_exit(&out, 0);
    let json = stdout_json(&out);
    assert_eq!(json["tee"], "aws-nitro");
    assert_eq!(json["vendor_root"], false);
    assert_eq!(json["module_id"], enclave.module_id());
    assert_eq!(json["nonce"], nonce);
    assert_eq!(json["debug"], false);
    // An hour after the enclave certificate expired.
    let later = UnixTime::from_secs(enclave.not_after().unix_timestamp() + 3600).to_string();
    let out = broker(&[
        "verify", "nitro", "--doc", &doc, "--roots", &roots, "--at", &later,
    ]);
    assert_rejected(&out, "nitro.cert_expired");
    // Unusable roots are a usage error.
    let bad_roots = write(
        dir.path(),
        "bad.pem",
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    );
    let out = broker(&["verify", "nitro", "--doc", &doc, "--roots", &bad_roots]);
    assert_usage(&out, "--roots");
}

#[test]
fn usage_errors_exit_2() {
    let doc = doc_path("eternis-lib-test");
    // Missing file.
    let out = broker(&[
        "verify",
        "nitro",
        "--doc",
        "/nonexistent/doc.cose",
        "--at",
        "2024-09-17T20:48:11Z",
    ]);
    assert_usage(&out, "/nonexistent/doc.cose");
    // Bad --at.
    let out = broker(&["verify", "nitro", "--doc", &doc, "--at", "yesterday"]);
    assert_usage(&out, "--at");
    // Bad hex, odd length, and too long a nonce.
    let long = "00".repeat(513);
    for nonce in ["zz", "abc", long.as_str()] {
        let out = broker(&[
            "verify",
            "nitro",
            "--doc",
            &doc,
            "--at",
            "2024-09-17T20:48:11Z",
            "--nonce",
            nonce,
        ]);
        assert_usage(&out, "--nonce");
    }
    // Missing --doc, and an unknown flag: clap's own usage errors.
    let out = broker(&["verify", "nitro"]);
    assert_exit(&out, 2);
    assert!(out.stdout.is_empty());
    let out = broker(&["verify", "nitro", "--doc", &doc, "--report-data", "00"]);
    assert_exit(&out, 2);
    // A missing --roots file.
    let out = broker(&[
        "verify",
        "nitro",
        "--doc",
        &doc,
        "--roots",
        "/nonexistent/roots.pem",
    ]);
    assert_usage(&out, "/nonexistent/roots.pem");
}
