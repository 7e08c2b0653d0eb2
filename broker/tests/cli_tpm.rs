//! `attest-broker verify tpm` as a user runs it: the real binary, the real TPM vectors (GCE,
//! Azure, swtpm) and simulated-TPM evidence, and the exit-code / output contract (0 with
//! claims, 1 with a typed error, 2 for usage).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use attest_fixtures::crypto::Hash;
use attest_fixtures::tpm::{AkKind, SimTpm};
use serde_json::Value;

const JAN_2026: &str = "2026-01-15T00:00:00Z";

fn vectors() -> PathBuf {
    std::env::var_os("ATTEST_VECTORS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors"))
}

fn v(rel: &str) -> String {
    vectors().join(rel).to_str().unwrap().to_string()
}

fn gce(file: &str) -> String {
    v(&format!("tpm/gce-cos85-nonce9009/{file}"))
}

fn broker(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_attest-broker"))
        .args(args)
        .output()
        .unwrap()
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {} / stderr {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn ok(out: &Output) -> Value {
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout {} stderr {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout.iter().filter(|&&b| b == b'\n').count(), 1);
    json(out)
}

fn rejected(out: &Output, code: &str) {
    assert_eq!(
        out.status.code(),
        Some(1),
        "stderr {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j = json(out);
    assert_eq!(j["error"]["code"], code, "{j}");
    assert!(j["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
}

fn usage(out: &Output) {
    assert_eq!(
        out.status.code(),
        Some(2),
        "stdout {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(out.stdout.is_empty());
    assert!(!out.stderr.is_empty());
}

fn gce_args(n: usize) -> Vec<String> {
    [
        "verify",
        "tpm",
        "--attest",
        &gce(&format!("quote{n}_attest.bin")),
        "--signature",
        &gce(&format!("quote{n}_sig.bin")),
        "--ak",
        &gce("ak_pub_tpmt_public.bin"),
        "--pcrs",
        &gce(&format!("quote{n}_pcrs.json")),
        "--at",
        JAN_2026,
    ]
    .map(String::from)
    .to_vec()
}

fn run(args: &[String]) -> Output {
    broker(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

fn with(mut args: Vec<String>, extra: &[&str]) -> Vec<String> {
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

#[test]
fn gce_quotes_verify_with_chain_and_event_log() {
    let banks = ["sha1", "sha256", "sha384"];
    let digests = [
        "fda327d4ba5d5978fe3a23db1a47964050e872639ef5d6a99c123cca39e56d8b",
        "048937cbaaf28af85a5b0c0997e725097a0d94e05fcda104a82ee3fb6b2e1808",
        "6c250f48d304517716f4a5a9127bf8762a80b63df783cb724630b180a3a66bea",
    ];
    let pcr0 = [
        "c032c3b51dbb6f96b047421512fd4b4dfde496f3",
        "0f35c214608d93c7a6e68ae7359b4a8be5a0e99eea9107ece427c4dea4e439cf",
        "46ce251b0b5b3da7917c5eb7a72e6e88f8f830445b149937921b095c1fd628db691963861c1153aba9c7097ff1c747f9",
    ];
    for n in 0..3 {
        let args = with(
            gce_args(n),
            &[
                "--nonce",
                "9009",
                "--event-log",
                &gce("event_log.bin"),
                "--ak-chain",
                &gce("ak_cert.der"),
                &v("roots/gce-vtpm/tpm_ek_intermediate_2.pem"),
                "--roots",
                &v("roots/gce-vtpm/tpm_ek_root_1.pem"),
            ],
        );
        let j = ok(&run(&args));
        assert_eq!(j["tee"], "tpm");
        assert_eq!(j["nonce"], "9009");
        assert_eq!(j["pcr_digest"], digests[n]);
        assert_eq!(j["pcrs"][banks[n]]["0"], pcr0[n]);
        assert_eq!(j["pcrs"][banks[n]].as_object().unwrap().len(), 24);
        assert_eq!(j["firmware_version"], "0x2016051100162800");
        assert_eq!(j["clock"]["reset_count"], 10);
        assert_eq!(j["clock"]["restart_count"], 0);
        assert!(j["clock"]["clock"].as_u64().unwrap() > 8_219_000_000);
        assert_eq!(
            j["qualified_signer"],
            "000bde01fe4b4ade2f8b7ae19b8a8897e0cb77ae417731d8ce38697ec4f6c095030a"
        );
        assert_eq!(j["ak"]["key_type"], "rsa-2048");
        assert_eq!(j["ak"]["certificate"]["path_len"], 3);
        assert_eq!(j["event_log"]["secure_boot"], true);
        assert_eq!(j["event_log"]["verified_banks"][0], banks[n]);
        assert_eq!(j["event_log"]["events"].as_array().unwrap().len(), 44);
    }
}

#[test]
fn azure_quotes_verify_with_bare_signatures_and_pem_aks() {
    for (dir, digest) in [
        (
            "extracted-evidence-v0",
            "cfa3a9112493e8c8741c1d895ced6d05a9ea19a24a02a44a8b02eaf22a1b143f",
        ),
        (
            "extracted-hcl-report",
            "0daff74c2fca14910b1e9b54a384707434c3365db9f163cc73a39a9f7500833f",
        ),
    ] {
        let f = |name: &str| v(&format!("azure-snp-vtpm/{dir}/{name}"));
        let out = broker(&[
            "verify",
            "tpm",
            "--attest",
            &f("tpm_quote_attest.bin"),
            "--signature",
            &f("tpm_quote_signature.bin"),
            "--ak",
            &f("ak_pub_HCLAkPub.pem"),
            "--pcrs",
            &f("tpm_pcrs_sha256.json"),
            "--nonce",
            "6368616c6c656e6765",
            "--at",
            JAN_2026,
        ]);
        let j = ok(&out);
        assert_eq!(j["tee"], "tpm");
        assert_eq!(j["nonce"], "6368616c6c656e6765");
        assert_eq!(j["pcr_digest"], digest);
        assert_eq!(j["firmware_version"], "0x2020031200120003");
        assert_eq!(j["signature"]["scheme"], "rsassa");
        assert!(j.get("event_log").is_none());
        // Wrong nonce.
        let out = broker(&[
            "verify",
            "tpm",
            "--attest",
            &f("tpm_quote_attest.bin"),
            "--signature",
            &f("tpm_quote_signature.bin"),
            "--ak",
            &f("ak_pub_HCLAkPub.pem"),
            "--nonce",
            "6368616c6c656e6766",
            "--at",
            JAN_2026,
        ]);
        rejected(&out, "tpm.nonce");
    }
    // Foreign quote: extracted-hcl-report's quote under extracted-evidence-v0's AK.
    let out = broker(&[
        "verify",
        "tpm",
        "--attest",
        &v("azure-snp-vtpm/extracted-hcl-report/tpm_quote_attest.bin"),
        "--signature",
        &v("azure-snp-vtpm/extracted-hcl-report/tpm_quote_signature.bin"),
        "--ak",
        &v("azure-snp-vtpm/extracted-evidence-v0/ak_pub_HCLAkPub.pem"),
        "--nonce",
        "6368616c6c656e6765",
        "--at",
        JAN_2026,
    ]);
    rejected(&out, "tpm.signature");
}

#[test]
fn swtpm_format_vector_verifies_with_its_pinned_ak() {
    let dir = tempfile::tempdir().unwrap();
    let evidence: Value =
        serde_json::from_slice(&std::fs::read(v("tpm/trustee-tpm/tpm_evidence.json")).unwrap())
            .unwrap();
    let pcrs = dir.path().join("pcrs.json");
    std::fs::write(&pcrs, evidence["tpm_quote"]["pcrs"].to_string()).unwrap();
    let out = broker(&[
        "verify", "tpm",
        "--attest", &v("tpm/trustee-tpm/quote_attest.bin"),
        "--signature", &v("tpm/trustee-tpm/quote_sig.bin"),
        "--ak", &v("tpm/trustee-tpm/ak_public.pem"),
        "--pcrs", pcrs.to_str().unwrap(),
        "--nonce", "a04182b506878d4f29b91ee606a71a0d3361ccf1b22db20c98adcaa537bea393ef0e41a18b3569ab678f1497fbc5c12000000000000000000000000000000000",
    ]);
    let j = ok(&out);
    assert_eq!(
        j["pcr_digest"],
        "019de64c9318655e422c3d03831169896e31f02a1d74e4d8fef575bf4e0d75fa"
    );
    assert_eq!(j["pcrs"]["sha256"]["17"], "ff".repeat(32));
}

#[test]
fn gce_rejections_are_typed() {
    // Wrong nonce.
    rejected(&run(&with(gce_args(0), &["--nonce", "9008"])), "tpm.nonce");
    // A flipped hex digit of a PCR value.
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(gce("quote1_pcrs.json")).unwrap();
    let pos = text.find("\"7\": \"").unwrap() + 6;
    let mut bad = text.into_bytes();
    bad[pos] ^= 1;
    let pcrs = dir.path().join("pcrs.json");
    std::fs::write(&pcrs, &bad).unwrap();
    let mut args = gce_args(1);
    args[9] = pcrs.to_str().unwrap().to_string();
    rejected(&run(&with(args, &["--nonce", "9009"])), "tpm.pcr_digest");
    // The last byte of the attest.
    let mut attest = std::fs::read(gce("quote2_attest.bin")).unwrap();
    *attest.last_mut().unwrap() ^= 1;
    let path = dir.path().join("attest.bin");
    std::fs::write(&path, &attest).unwrap();
    let mut args = gce_args(2);
    args[3] = path.to_str().unwrap().to_string();
    rejected(&run(&args), "tpm.signature");
    // Garbage as the attest.
    std::fs::write(&path, b"not a TPMS_ATTEST").unwrap();
    let mut args = gce_args(2);
    args[3] = path.to_str().unwrap().to_string();
    rejected(&run(&args), "parse.malformed");
    // A chain to an anchor that is not its root.
    let args = with(
        gce_args(0),
        &[
            "--ak-chain",
            &gce("ak_cert.der"),
            &v("roots/gce-vtpm/tpm_ek_intermediate_2.pem"),
            "--roots",
            &v("roots/gce-vtpm/gcp_ek_ak_ca_root.crt"),
        ],
    );
    rejected(&run(&args), "tpm.chain");
    // The same chain, expired.
    let mut args = with(
        gce_args(0),
        &[
            "--ak-chain",
            &gce("ak_cert.der"),
            &v("roots/gce-vtpm/tpm_ek_intermediate_2.pem"),
            "--roots",
            &v("roots/gce-vtpm/tpm_ek_root_1.pem"),
        ],
    );
    args[11] = "2060-01-01T00:00:00Z".into();
    rejected(&run(&args), "tpm.cert_expired");
}

#[test]
fn tpm2b_attest_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let attest = std::fs::read(gce("quote0_attest.bin")).unwrap();
    let mut tpm2b = (attest.len() as u16).to_be_bytes().to_vec();
    tpm2b.extend(&attest);
    let path = dir.path().join("attest.tpm2b");
    std::fs::write(&path, &tpm2b).unwrap();
    let mut args = gce_args(0);
    args[3] = path.to_str().unwrap().to_string();
    let j = ok(&run(&with(args, &["--nonce", "9009"])));
    assert_eq!(j["nonce"], "9009");
}

#[test]
fn usage_errors_exit_2() {
    let base = gce_args(0);
    // Missing --ak.
    let without_ak: Vec<String> = base
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 6 && *i != 7)
        .map(|(_, a)| a.clone())
        .collect();
    usage(&run(&without_ak));
    // --ak-chain without --roots, --roots without --ak-chain, --event-log without --pcrs.
    usage(&run(&with(
        base.clone(),
        &["--ak-chain", &gce("ak_cert.der")],
    )));
    usage(&run(&with(
        base.clone(),
        &["--roots", &v("roots/gce-vtpm/tpm_ek_root_1.pem")],
    )));
    let no_pcrs: Vec<String> = base
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 8 && *i != 9)
        .map(|(_, a)| a.clone())
        .collect();
    usage(&run(&with(
        no_pcrs,
        &["--event-log", &gce("event_log.bin")],
    )));
    // Bad --nonce, bad --at, unreadable file, unusable --roots.
    usage(&run(&with(base.clone(), &["--nonce", "xyz"])));
    usage(&run(&with(base.clone(), &["--nonce", ""])));
    usage(&run(&with(base.clone(), &["--nonce", &"00".repeat(65)])));
    let mut bad_at = base.clone();
    bad_at[11] = "yesterday".into();
    usage(&run(&bad_at));
    let mut missing = base.clone();
    missing[3] = "/nonexistent/attest.bin".into();
    usage(&run(&missing));
    usage(&run(&with(
        base.clone(),
        &[
            "--ak-chain",
            &gce("ak_cert.der"),
            "--roots",
            &gce("quote0_pcrs.json"),
        ],
    )));
    // Help describes the trust model.
    let help = broker(&["verify", "tpm", "--help"]);
    assert_eq!(help.status.code(), Some(0));
    let text = String::from_utf8(help.stdout).unwrap();
    assert!(
        text.contains("--ak-chain") && text.contains("never trusted"),
        "{text}"
    );
}

fn write(dir: &Path, name: &str, data: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, data).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn simulated_tpm_ecc_quote_with_fixture_ca() {
    let dir = tempfile::tempdir().unwrap();
    let mut sim = SimTpm::with_banks(&[Hash::Sha256, Hash::Sha384]).unwrap();
    sim.measure_boot(true);
    let ak = sim.create_ak(AkKind::EccP256).unwrap();
    let nonce = [0xA5u8; 32];
    let q = sim
        .quote(
            &ak,
            &[
                (Hash::Sha384, (0..24).collect()),
                (Hash::Sha256, vec![0, 7]),
            ],
            &nonce,
        )
        .unwrap();
    let d = dir.path();
    let args = [
        "verify".to_string(),
        "tpm".into(),
        "--attest".into(),
        write(d, "attest.bin", &q.attest),
        "--signature".into(),
        write(d, "sig.bin", &q.signature),
        "--ak".into(),
        write(d, "ak.pub", &ak.public_area().marshal_tpm2b()),
        "--pcrs".into(),
        write(
            d,
            "pcrs.json",
            sim.pcrs_json(&[Hash::Sha256, Hash::Sha384]).as_bytes(),
        ),
        "--event-log".into(),
        write(d, "log.bin", sim.event_log()),
        "--nonce".into(),
        hex::encode(nonce),
        "--ak-chain".into(),
        write(d, "ak.der", &sim.ak_cert_der(&ak).unwrap()),
        "--roots".into(),
        write(d, "ca.der", sim.ca_cert_der()),
        "--at".into(),
        JAN_2026.into(),
    ];
    let j = ok(&run(&args));
    assert_eq!(j["signature"]["scheme"], "ecdsa");
    assert_eq!(j["ak"]["key_type"], "ecc-p256");
    assert_eq!(j["pcr_select"]["sha256"], serde_json::json!([0, 7]));
    assert_eq!(j["pcrs"]["sha384"].as_object().unwrap().len(), 24);
    assert_eq!(
        j["event_log"]["verified_banks"],
        serde_json::json!(["sha256", "sha384"])
    );
    assert_eq!(j["event_log"]["secure_boot"], true);
}
