//! Every SEV-SNP vector in ../shared/vectors/snp verifies to the facts its README states, and
//! every natural negative there is rejected with the right code.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use attest_verifiers::snp::{
    self, AmdTrustAnchors, Generation, Signer, SnpClaims, SnpVerifier, VerifyOptions,
};
use attest_verifiers::x509::{self, Certificate};
use attest_verifiers::{Claims, Tee, VerifyError};
use common::{at, vector};

const JAN_2026: &str = "2026-01-15T00:00:00Z";

fn verify(dir: &str, cert: &str, time: &str) -> Result<SnpClaims, VerifyError> {
    let report = vector(&format!("snp/{dir}/report.bin"));
    let cert = vector(&format!("snp/{dir}/{cert}"));
    let verified = snp::verify(&report, &cert, &VerifyOptions::at(at(time)))?;
    assert_eq!(verified.claims().tee(), Tee::SevSnp);
    match verified.into_claims() {
        Claims::SevSnp(c) => Ok(c),
        other => panic!("unexpected claims {other:?}"),
    }
}

struct Expected {
    dir: &'static str,
    cert: &'static str,
    at: &'static str,
    version: u32,
    generation: Generation,
    signer: Signer,
    policy: u64,
    debug: bool,
    vmpl: u32,
    guest_svn: u32,
    measurement: &'static str,
    report_data: &'static str,
    chip_id: &'static str,
    /// bootloader, tee, snp, microcode
    reported_tcb: [u8; 4],
    firmware: &'static str,
    platform_info: u64,
}

const ZERO64: &str = "00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000";

/// The tables of ../shared/vectors/README.md section 4, field by field.
const EXPECTED: &[Expected] = &[
    Expected {
        dir: "virtee-sev-milan",
        cert: "vcek.der",
        at: JAN_2026,
        version: 2,
        generation: Generation::Milan,
        signer: Signer::Vcek,
        policy: 0x30000,
        debug: false,
        vmpl: 0,
        guest_svn: 0,
        measurement: "7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d3e1a0dc39b2c60bd95b9c480cd81841f",
        report_data: "d447b55d197491bfe15cf298f9de9986b7a7c4be2468b4f6e2d53b71d7c645810b0f2cdfca0040433be063fc1a8293f0f3f8dae7b79fecb3d1cd82bd6a93ebfd",
        chip_id: "d49554ec717f4e5b0fe6b143bcf0405bd7ae304727edf46603f2a76aef6a3abc15d7af38db757039029f0efacfd08e244324884738c72b082e2f87a44d541eb6",
        reported_tcb: [3, 0, 8, 115],
        firmware: "1.52.4",
        platform_info: 0x1,
    },
    Expected {
        dir: "go-sev-guest-milan",
        cert: "vcek.der",
        at: JAN_2026,
        version: 2,
        generation: Generation::Milan,
        signer: Signer::Vcek,
        policy: 0xb0000,
        debug: true,
        vmpl: 0,
        guest_svn: 0,
        measurement: "b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b6bdf8a9ece31a5a608eb0cf2e4872b01",
        report_data: "01020304050000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        chip_id: "3ac3fe21e13fb0990eb28a802e3fb6a29483a6b0753590c951bdd3b8e53786184ca39e359669a2b76a1936776b564ea464cdce40c05f63c9b610c5068b006b5d",
        reported_tcb: [2, 0, 5, 68],
        firmware: "1.49.3",
        platform_info: 0x1,
    },
    Expected {
        dir: "trustee-milan-vcek",
        cert: "vcek.der",
        at: JAN_2026,
        version: 2,
        generation: Generation::Milan,
        signer: Signer::Vcek,
        policy: 0x3001f,
        debug: false,
        vmpl: 0,
        guest_svn: 4,
        measurement: "a1f3930413247bb38cfc171579ea3c12d5fe4901f0c792f63fd75d98f1ef827c23500644e0e692e6be917f9050d3d38c",
        report_data: "ec6c52d7533cc2c4f45be7849cf112ab82b2009fe7bd43e71ed08c14400ad7e20000000000000000000000000000000000000000000000000000000000000000",
        chip_id: "c38427a30d4c7af9d96f7a15b97269825a64cb76a2352ffd5d18115d89ad473f8e8c0bcd9a5d9286612bad4aadfb4426205a3b9e4fea82301135a170e477524e",
        reported_tcb: [3, 0, 8, 115],
        firmware: "1.52.4",
        platform_info: 0x1,
    },
    Expected {
        dir: "trustee-milan-vlek",
        cert: "vlek.der",
        at: "2025-06-01T00:00:00Z",
        version: 3,
        generation: Generation::Milan,
        signer: Signer::Vlek,
        policy: 0x30000,
        debug: false,
        vmpl: 1,
        guest_svn: 0,
        measurement: "8922ebbdd00ec2c541f36a6e7a82a8773a7accb451ed67bc94e740dbe92c93c4e8c9af857f5ceeb5a493df2a570d7bf0",
        report_data: "819770b7e6ea6df8dd8fd4dd146b073c0bf4f3ce5b0977ecac486e3a05ed1bd54e2a7ac1f5d1ca02e7d7d5ef9f73b8574fd9359e3a480d741a4478e8a7bc27ca",
        chip_id: ZERO64,
        reported_tcb: [4, 0, 24, 217],
        firmware: "1.55.29",
        platform_info: 0x27,
    },
    Expected {
        dir: "trustee-genoa-v3-e2e",
        cert: "vcek.der",
        at: JAN_2026,
        version: 3,
        generation: Generation::Genoa,
        signer: Signer::Vcek,
        policy: 0x30000,
        debug: false,
        vmpl: 0,
        guest_svn: 0,
        measurement: "6a6519d757e68c2e939c9dbbbc1828498e8de35d2766dd05f1a2cca5059d0cf4ae62a36d75c837974dd50b315506e73e",
        report_data: "7e7320889600c7ac133aea7b896c51f41026002982292a7369559796999c1bf929eef3ff23c46e858f0b1982f9a92b17c51b578d958cde6b0c92978f150cf9b0",
        chip_id: "371c55d6d15cb50f16dc31d39a24e300caaabff4431e841111429b73ec45ad67ea6e687ffae7bf84b54a5d0e6d79b3ef6ff0bd8b4cff94c2163af5c5de8718e8",
        reported_tcb: [10, 0, 23, 25],
        firmware: "1.55.40",
        platform_info: 0x25,
    },
    Expected {
        dir: "oak-genoa-oc",
        cert: "vcek.der",
        at: JAN_2026,
        version: 5,
        generation: Generation::Genoa,
        signer: Signer::Vcek,
        policy: 0x30000,
        debug: false,
        vmpl: 0,
        guest_svn: 0,
        measurement: "c57729018b0a6fb90dc17bb138b0aa35e4401004283ff4a2c24d3739ff3750f52384370e77b7032862a08c440a9bc4dc",
        report_data: "8100555af0ad8e7525be6dffeed0af83e30bbacbf03b76e175e6894d1ed057ce0000000000000000000000000000000000000000000000000000000000000000",
        chip_id: "d2421d976f95ce0ba849b7cc5c789122f1e59c77a037272c137ae4d188bb102adbc7c53d0302bff82a432c94a305dec7a7a270ceb19a10f04a83316c6486968d",
        reported_tcb: [10, 0, 25, 84],
        firmware: "1.55.43",
        platform_info: 0x25,
    },
];

#[test]
fn every_vector_verifies_to_its_stated_facts() {
    for e in EXPECTED {
        let c = verify(e.dir, e.cert, e.at).unwrap_or_else(|err| panic!("{}: {err}", e.dir));
        assert_eq!(c.version, e.version, "{}", e.dir);
        assert_eq!(c.generation, e.generation, "{}", e.dir);
        assert_eq!(c.signer, e.signer, "{}", e.dir);
        assert_eq!(c.policy.raw, e.policy, "{}", e.dir);
        assert_eq!(c.debug, e.debug, "{}", e.dir);
        assert_eq!(c.vmpl, e.vmpl, "{}", e.dir);
        assert_eq!(c.guest_svn, e.guest_svn, "{}", e.dir);
        assert_eq!(c.measurement.to_string(), e.measurement, "{}", e.dir);
        assert_eq!(c.report_data.to_string(), e.report_data, "{}", e.dir);
        assert_eq!(c.chip_id.to_string(), e.chip_id, "{}", e.dir);
        assert_eq!(c.host_data.as_slice(), &[0u8; 32], "{}", e.dir);
        let t = c.reported_tcb;
        assert_eq!(
            [t.bootloader, t.tee, t.snp, t.microcode],
            e.reported_tcb,
            "{}",
            e.dir
        );
        assert_eq!(c.current_version, e.firmware, "{}", e.dir);
        assert_eq!(c.platform_info.raw, e.platform_info, "{}", e.dir);
        assert!(c.vendor_root, "{}: chains to a built-in AMD root", e.dir);
    }
}

#[test]
fn version_specific_fields() {
    let trustee = verify("trustee-milan-vcek", "vcek.der", JAN_2026).unwrap();
    assert_eq!(
        trustee.family_id.to_string(),
        "01000000000000000000000000000000"
    );
    assert_eq!(
        trustee.image_id.to_string(),
        "02000000000000000000000000000000"
    );
    assert_eq!(
        trustee.id_key_digest.to_string(),
        "0356215882a825279a85b300b0b742931d113bf7e32dde2e50ffde7ec743ca491ecdd7f336dc28a6e0b2bb57af7a44a3"
    );
    assert_eq!(trustee.current_tcb.microcode, 206);
    assert_eq!(trustee.cpuid, None, "v2 has no CPUID fields");

    let vlek = verify("trustee-milan-vlek", "vlek.der", "2025-06-01T00:00:00Z").unwrap();
    let cpuid = vlek.cpuid.unwrap();
    assert_eq!(
        (cpuid.family, cpuid.model, cpuid.stepping),
        (0x19, 0x01, 0x01)
    );
    assert_eq!(vlek.committed_tcb.microcode, 219);
    assert_eq!(vlek.launch_tcb.microcode, 219);
    assert_eq!(vlek.current_tcb.microcode, 220);

    let oak = verify("oak-genoa-oc", "vcek.der", JAN_2026).unwrap();
    assert_eq!(oak.launch_mit_vector, Some(1));
    assert_eq!(oak.current_mit_vector, Some(1));
    assert_eq!(
        verify("trustee-genoa-v3-e2e", "vcek.der", JAN_2026)
            .unwrap()
            .launch_mit_vector,
        None
    );
}

#[test]
fn claims_serialise_with_the_cli_fields() {
    let report = vector("snp/virtee-sev-milan/report.bin");
    let cert = vector("snp/virtee-sev-milan/vcek.der");
    let verified = snp::verify(&report, &cert, &VerifyOptions::at(at(JAN_2026))).unwrap();
    let json = serde_json::to_value(verified.claims()).unwrap();
    for key in [
        "tee",
        "version",
        "generation",
        "signer",
        "measurement",
        "report_data",
        "host_data",
        "vmpl",
        "debug",
        "chip_id",
        "reported_tcb",
        "policy",
    ] {
        assert!(json.get(key).is_some(), "missing {key} in {json}");
    }
    assert_eq!(json["tee"], "sev-snp");
    assert_eq!(json["generation"], "milan");
    assert_eq!(json["signer"], "vcek");
    assert_eq!(json["policy"]["raw"], "0x0000000000030000");
    assert_eq!(json["reported_tcb"]["microcode"], 115);
}

#[test]
fn expected_report_data_must_match_exactly() {
    let report = vector("snp/go-sev-guest-milan/report.bin");
    let cert = vector("snp/go-sev-guest-milan/vcek.der");
    let mut expected = [0u8; 64];
    expected[..5].copy_from_slice(&[1, 2, 3, 4, 5]);
    fn opts(data: &[u8]) -> VerifyOptions<'_> {
        VerifyOptions {
            at: at(JAN_2026),
            expected_report_data: Some(data),
        }
    }
    snp::verify(&report, &cert, &opts(&expected)).unwrap();
    let err = snp::verify(&report, &cert, &opts(&expected[..5])).unwrap_err();
    assert_eq!(err.code(), "snp.report_data", "a prefix is not a match");
    expected[63] = 1;
    let err = snp::verify(&report, &cert, &opts(&expected)).unwrap_err();
    assert_eq!(err.code(), "snp.report_data");
}

#[test]
fn tampered_vceks_fail_the_ask_signature() {
    for bad in ["vcek-invalid-legacy.der", "vcek-invalid-new.der"] {
        let err = verify("trustee-milan-vcek", bad, JAN_2026).unwrap_err();
        assert_eq!(err.code(), "snp.chain", "{bad}: {err}");
        assert!(err.to_string().contains("does not verify"), "{bad}: {err}");
    }
}

#[test]
fn expired_vlek_is_rejected_after_2025_12_10() {
    verify("trustee-milan-vlek", "vlek.der", "2025-12-10T22:14:21Z").unwrap();
    let err = verify("trustee-milan-vlek", "vlek.der", "2025-12-10T22:14:22Z").unwrap_err();
    assert_eq!(err.code(), "snp.cert_expired", "{err}");
    let err = verify("trustee-milan-vlek", "vlek.der", JAN_2026).unwrap_err();
    assert!(matches!(err, VerifyError::CertExpired { ref subject, .. } if subject == "SEV-VLEK"));
    let err = verify("trustee-milan-vlek", "vlek.der", "2024-12-10T22:14:20Z").unwrap_err();
    assert_eq!(err.code(), "snp.cert_not_yet_valid", "{err}");
}

#[test]
fn vlek_under_the_ask_is_rejected() {
    let vlek = Certificate::from_der(&vector("snp/trustee-milan-vlek/vlek.der")).unwrap();
    let ask = x509::parse_bundle(&vector("roots/amd-milan/ask.pem"))
        .unwrap()
        .remove(0);
    let asvk = x509::parse_bundle(&vector("roots/amd-milan/asvk.pem"))
        .unwrap()
        .remove(0);
    assert_eq!(
        vlek.check_signed_by(&ask, Tee::SevSnp).unwrap_err().code(),
        "snp.chain"
    );
    vlek.check_signed_by(&asvk, Tee::SevSnp).unwrap();

    // Trust anchors holding only ARK-Milan and its ASK: the VLEK has nowhere to chain.
    let mut roots = vector("roots/amd-milan/ark.pem");
    roots.extend(vector("roots/amd-milan/ask.pem"));
    let mut anchors = AmdTrustAnchors::empty();
    anchors.add_roots(&roots).unwrap();
    let verifier = SnpVerifier::new(anchors);
    let err = verifier
        .verify(
            &vector("snp/trustee-milan-vlek/report.bin"),
            &vector("snp/trustee-milan-vlek/vlek.der"),
            &VerifyOptions::at(at("2025-06-01T00:00:00Z")),
        )
        .unwrap_err();
    assert_eq!(err.code(), "snp.chain", "{err}");
}

#[test]
fn another_chips_vcek_fails_the_report_signature() {
    let report = vector("snp/virtee-sev-milan/report.bin");
    let other = vector("snp/go-sev-guest-milan/vcek.der");
    let err = snp::verify(&report, &other, &VerifyOptions::at(at(JAN_2026))).unwrap_err();
    assert_eq!(err.code(), "snp.signature", "{err}");
}

#[test]
fn another_generations_vcek_is_rejected() {
    let report = vector("snp/trustee-milan-vcek/report.bin");
    let genoa = vector("snp/oak-genoa-oc/vcek.der");
    let err = snp::verify(&report, &genoa, &VerifyOptions::at(at(JAN_2026))).unwrap_err();
    assert_eq!(err.code(), "snp.signature", "{err}");
}

#[test]
fn vcek_named_as_vlek_is_a_signer_mismatch() {
    // The VLEK report names signing key 1 (VLEK); offering a VCEK instead is caught before the
    // signature check.
    let report = vector("snp/trustee-milan-vlek/report.bin");
    let vcek = vector("snp/trustee-milan-vcek/vcek.der");
    let err = snp::verify(
        &report,
        &vcek,
        &VerifyOptions::at(at("2025-06-01T00:00:00Z")),
    )
    .unwrap_err();
    assert_eq!(err.code(), "snp.signer_mismatch", "{err}");
}

#[test]
fn bundle_with_pinned_extras_is_accepted_and_foreign_extras_are_not() {
    let report = vector("snp/virtee-sev-milan/report.bin");
    let mut bundle = pem("CERTIFICATE", &vector("snp/virtee-sev-milan/vcek.der"));
    bundle.extend(vector("snp/virtee-sev-milan/cert_chain_milan.pem"));
    let opts = VerifyOptions::at(at(JAN_2026));
    snp::verify(&report, &bundle, &opts).unwrap();

    // DER concatenation works too.
    let mut der = vector("snp/virtee-sev-milan/vcek.der");
    der.extend(x509::parse_bundle(&vector("roots/amd-milan/ask.pem")).unwrap()[0].der());
    snp::verify(&report, &der, &opts).unwrap();

    // The Genoa ASK is pinned, but an unknown intermediate is refused.
    let mut foreign = pem("CERTIFICATE", &vector("snp/virtee-sev-milan/vcek.der"));
    foreign.extend(vector("roots/amd-genoa/ask.pem"));
    snp::verify(&report, &foreign, &opts).unwrap();
    let fixture_ask =
        attest_fixtures::amd::AmdRoots::shared(attest_fixtures::amd::Generation::Milan);
    let mut stranger = pem("CERTIFICATE", &vector("snp/virtee-sev-milan/vcek.der"));
    stranger.extend(pem("CERTIFICATE", fixture_ask.ask_der()));
    let err = snp::verify(&report, &stranger, &opts).unwrap_err();
    assert_eq!(err.code(), "snp.chain", "{err}");
    assert!(err.to_string().contains("not a pinned"), "{err}");
}

#[test]
fn warm_chain_cache_gives_the_same_answers() {
    let verifier = SnpVerifier::default();
    let report = vector("snp/virtee-sev-milan/report.bin");
    let cert = vector("snp/virtee-sev-milan/vcek.der");
    let opts = VerifyOptions::at(at(JAN_2026));
    let first = verifier.verify(&report, &cert, &opts).unwrap();
    assert_eq!(verifier.cached_chains(), 1);
    let second = verifier.verify(&report, &cert, &opts).unwrap();
    assert_eq!(first, second);
    assert_eq!(verifier.cached_chains(), 1);
    // A cached chain is still checked for validity at each verification time.
    let err = verifier
        .verify(
            &report,
            &cert,
            &VerifyOptions::at(at("2031-01-01T00:00:00Z")),
        )
        .unwrap_err();
    assert_eq!(err.code(), "snp.cert_expired");
    // And a tampered report behind a warm cache still fails.
    let mut bad = report.clone();
    bad[0x90] ^= 1;
    assert_eq!(
        verifier.verify(&bad, &cert, &opts).unwrap_err().code(),
        "snp.signature"
    );
}

/// README section 10, "Byte mutations that must be rejected", SNP rows.
#[test]
fn readme_byte_mutations_are_rejected() {
    let report = vector("snp/virtee-sev-milan/report.bin");
    let cert = vector("snp/virtee-sev-milan/vcek.der");
    let opts = VerifyOptions::at(at(JAN_2026));
    for (offset, mask, code) in [
        (0x90, 0x01, "snp.signature"),
        (0x50, 0x01, "snp.signature"),
        (0x30, 0x01, "snp.signature"),
        (0x0A, 0x08, "snp.signature"),
        (0x2A0, 0x01, "snp.signature"),
        (0x2E8, 0x01, "snp.signature"),
    ] {
        let mut bad = report.clone();
        bad[offset] ^= mask;
        let err = snp::verify(&bad, &cert, &opts).unwrap_err();
        assert_eq!(err.code(), code, "offset {offset:#x}: {err}");
    }
    // A byte inside the VCEK's hwID value (the last bytes of the TBS extensions).
    let vcek = Certificate::from_der(&cert).unwrap();
    let hw_id = vcek.extension("1.3.6.1.4.1.3704.1.4").unwrap().to_vec();
    let pos = cert.windows(hw_id.len()).position(|w| w == hw_id).unwrap();
    let mut bad_cert = cert.clone();
    bad_cert[pos + 3] ^= 1;
    let err = snp::verify(&report, &bad_cert, &opts).unwrap_err();
    assert_eq!(err.code(), "snp.chain", "{err}");
}

/// The pinned roots are the ones whose fingerprints ../shared/vectors/README.md lists.
#[test]
fn builtin_roots_match_the_readme_fingerprints() {
    let readme = String::from_utf8(vector("README.md")).unwrap();
    let anchors = AmdTrustAnchors::builtin();
    assert_eq!(anchors.sets().len(), 3);
    let mut checked = 0;
    for set in anchors.sets() {
        let dir = format!("amd-{}", set.generation().amd_name().to_lowercase());
        for (file, cert) in [
            ("ark.pem", set.ark()),
            ("ask.pem", set.ask().unwrap()),
            ("asvk.pem", set.asvk().unwrap()),
        ] {
            let row = readme
                .lines()
                .find(|l| l.starts_with(&format!("| `{dir}/{file}`")))
                .unwrap_or_else(|| panic!("no README row for {dir}/{file}"));
            let colon_hex: String = cert
                .fingerprint()
                .iter()
                .map(|b| format!("{b:02X}"))
                .collect::<Vec<_>>()
                .join(":");
            assert!(
                row.contains(&colon_hex),
                "{dir}/{file}: {colon_hex} not in {row}"
            );
            assert_eq!(
                cert.der(),
                x509::parse_bundle(&vector(&format!("roots/{dir}/{file}"))).unwrap()[0].der()
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 9);
}

fn pem(label: &str, der: &[u8]) -> Vec<u8> {
    use base64::Engine;
    use std::fmt::Write;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        writeln!(out, "{}", std::str::from_utf8(chunk).unwrap()).unwrap();
    }
    writeln!(out, "-----END {label}-----").unwrap();
    out.into_bytes()
}
