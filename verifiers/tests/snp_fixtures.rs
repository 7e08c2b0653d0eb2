//! Simulated AMD hardware from `attest-fixtures` round-trips through the verifier: every field
//! set by the report builder comes back in the claims, for every generation, signer and
//! version; and fixture roots are trusted only when passed explicitly.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use attest_fixtures::amd::{self as fx, AmdRoots, TcbVersion, VcekOptions};
use attest_fixtures::snp::ReportBuilder;
use attest_fixtures::tamper;
use attest_verifiers::snp::{
    AmdTrustAnchors, Generation, Signer, SnpClaims, SnpVerifier, VerifyOptions,
};
use attest_verifiers::{Claims, UnixTime, VerifyError};

const GENERATIONS: [(fx::Generation, Generation); 3] = [
    (fx::Generation::Milan, Generation::Milan),
    (fx::Generation::Genoa, Generation::Genoa),
    (fx::Generation::Turin, Generation::Turin),
];

fn now() -> UnixTime {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    UnixTime::from_secs(secs as i64)
}

fn verifier_trusting(roots: &AmdRoots) -> SnpVerifier {
    let mut anchors = AmdTrustAnchors::builtin();
    anchors.add_roots(roots.roots_pem().as_bytes()).unwrap();
    SnpVerifier::new(anchors)
}

fn claims(result: Result<attest_verifiers::VerifiedEvidence, VerifyError>) -> SnpClaims {
    match result.unwrap().into_claims() {
        Claims::SevSnp(c) => c,
        other => panic!("unexpected {other:?}"),
    }
}

/// A builder with every field set to a distinctive value.
fn distinctive(generation: fx::Generation, version: u32, tcb: TcbVersion) -> ReportBuilder {
    let mut b = ReportBuilder::new(generation);
    b.version = version;
    b.guest_svn = 0x0102_0304;
    b.policy = 0x0003_001f | (1 << 19) | (1 << 22);
    b.family_id = [0x11; 16];
    b.image_id = [0x22; 16];
    b.vmpl = 2;
    b.platform_info = 0b1010_0101;
    b.signer_info = 0b11; // author key enabled, chip key masked
    b.report_data = std::array::from_fn(|i| i as u8);
    b.measurement = std::array::from_fn(|i| 0x80 | i as u8);
    b.host_data = [0x33; 32];
    b.id_key_digest = [0x44; 48];
    b.author_key_digest = [0x55; 48];
    b.report_id = [0x66; 32];
    b.report_id_ma = [0x77; 32];
    b.set_all_tcbs(tcb, generation);
    b.current_tcb = tcb.to_u64(generation) ^ (1 << 56); // microcode + 1: current differs
    b.current_build = 7;
    b.current_minor = 8;
    b.current_major = 9;
    b.committed_build = 4;
    b.committed_minor = 5;
    b.committed_major = 6;
    b.launch_mit_vector = 0xAA;
    b.current_mit_vector = 0xBB;
    b
}

#[test]
fn every_builder_field_comes_back_in_the_claims() {
    for (fx_gen, generation) in GENERATIONS {
        let roots = AmdRoots::shared(fx_gen);
        let verifier = verifier_trusting(roots);
        let tcb = TcbVersion::default_for(fx_gen);
        let mut cases = 0;
        for signer in [Signer::Vcek, Signer::Vlek] {
            let builder = distinctive(fx_gen, 3, tcb);
            let key = match signer {
                Signer::Vcek => roots.issue_vcek(&builder.chip_id, tcb).unwrap(),
                Signer::Vlek => roots.issue_vlek(tcb).unwrap(),
            };
            for version in [2u32, 3, 5] {
                let mut b = builder.clone();
                b.version = version;
                if version == 2 {
                    (b.cpuid_fam_id, b.cpuid_mod_id, b.cpuid_step) = (0, 0, 0);
                }
                let report = b.try_sign(&key).unwrap();
                let opts = VerifyOptions {
                    at: now(),
                    expected_report_data: Some(&b.report_data),
                };
                let c = claims(verifier.verify(&report, key.cert_pem().as_bytes(), &opts));
                let ctx = format!("{generation} {signer:?} v{version}");
                assert_eq!(c.version, version, "{ctx}");
                assert_eq!(c.generation, generation, "{ctx}");
                assert_eq!(c.signer, signer, "{ctx}");
                assert!(!c.vendor_root, "{ctx}: fixture roots are not AMD's");
                assert_eq!(c.guest_svn, b.guest_svn, "{ctx}");
                assert_eq!(c.policy.raw, b.policy, "{ctx}");
                assert!(
                    c.debug && c.policy.debug_allowed && c.policy.mem_aes_256_xts,
                    "{ctx}"
                );
                assert!(c.policy.smt_allowed && !c.policy.single_socket, "{ctx}");
                assert_eq!(c.family_id.as_slice(), b.family_id, "{ctx}");
                assert_eq!(c.image_id.as_slice(), b.image_id, "{ctx}");
                assert_eq!(c.vmpl, 2, "{ctx}");
                assert_eq!(c.platform_info.raw, b.platform_info, "{ctx}");
                assert!(
                    c.platform_info.smt_enabled && c.platform_info.tio_enabled,
                    "{ctx}"
                );
                assert!(
                    c.platform_info.ecc_enabled && !c.platform_info.tsme_enabled,
                    "{ctx}"
                );
                assert!(c.author_key_en && c.mask_chip_key, "{ctx}");
                assert_eq!(c.report_data.as_slice(), b.report_data, "{ctx}");
                assert_eq!(c.measurement.as_slice(), b.measurement, "{ctx}");
                assert_eq!(c.host_data.as_slice(), b.host_data, "{ctx}");
                assert_eq!(c.id_key_digest.as_slice(), b.id_key_digest, "{ctx}");
                assert_eq!(c.author_key_digest.as_slice(), b.author_key_digest, "{ctx}");
                assert_eq!(c.report_id.as_slice(), b.report_id, "{ctx}");
                assert_eq!(c.report_id_ma.as_slice(), b.report_id_ma, "{ctx}");
                assert_eq!(c.chip_id.as_slice(), b.chip_id, "{ctx}");
                assert_eq!(c.reported_tcb.raw, b.reported_tcb, "{ctx}");
                assert_eq!(c.committed_tcb.raw, b.committed_tcb, "{ctx}");
                assert_eq!(c.launch_tcb.raw, b.launch_tcb, "{ctx}");
                assert_eq!(c.current_tcb.raw, b.current_tcb, "{ctx}");
                let t = c.reported_tcb;
                assert_eq!(
                    (t.bootloader, t.tee, t.snp, t.microcode),
                    (tcb.bootloader, tcb.tee, tcb.snp, tcb.microcode),
                    "{ctx}"
                );
                assert_eq!(c.current_tcb.microcode, tcb.microcode ^ 1, "{ctx}");
                assert_eq!(
                    t.fmc,
                    (generation == Generation::Turin).then_some(tcb.fmc),
                    "{ctx}"
                );
                assert_eq!(c.current_version, "9.8.7", "{ctx}");
                assert_eq!(c.committed_version, "6.5.4", "{ctx}");
                if version >= 3 {
                    let cpuid = c.cpuid.unwrap();
                    assert_eq!(
                        (cpuid.family, cpuid.model, cpuid.stepping),
                        fx_gen.cpuid(),
                        "{ctx}"
                    );
                } else {
                    assert_eq!(c.cpuid, None, "{ctx}");
                }
                let mit = (version >= 5).then_some((0xAA, 0xBB));
                assert_eq!(c.launch_mit_vector.zip(c.current_mit_vector), mit, "{ctx}");
                cases += 1;
            }
        }
        assert_eq!(cases, 6);
    }
}

#[test]
fn fixture_reports_are_rejected_unless_their_roots_are_passed() {
    for (fx_gen, _) in GENERATIONS {
        let roots = AmdRoots::shared(fx_gen);
        let b = ReportBuilder::new(fx_gen);
        let tcb = TcbVersion::default_for(fx_gen);
        let vcek = roots.issue_vcek(&b.chip_id, tcb).unwrap();
        let report = b.try_sign(&vcek).unwrap();
        let cert = vcek.cert_der();
        let opts = VerifyOptions::at(now());
        let err = SnpVerifier::default()
            .verify(&report, cert, &opts)
            .unwrap_err();
        assert_eq!(err.code(), "snp.chain", "{fx_gen:?}: {err}");
        verifier_trusting(roots)
            .verify(&report, cert, &opts)
            .unwrap();
        // Another simulated hierarchy's roots do not help either.
        let other = AmdRoots::shared(match fx_gen {
            fx::Generation::Milan => fx::Generation::Genoa,
            _ => fx::Generation::Milan,
        });
        let err = verifier_trusting(other)
            .verify(&report, cert, &opts)
            .unwrap_err();
        assert_eq!(err.code(), "snp.chain", "{fx_gen:?}: {err}");
    }
}

#[test]
fn certificate_and_report_must_agree() {
    let fx_gen = fx::Generation::Milan;
    let roots = AmdRoots::shared(fx_gen);
    let verifier = verifier_trusting(roots);
    let opts = VerifyOptions::at(now());
    let tcb = TcbVersion::default_for(fx_gen);
    let b = ReportBuilder::new(fx_gen);

    // hwID for another chip.
    let other_chip = roots.issue_vcek(&[9; 64], tcb).unwrap();
    let err = verifier
        .verify(
            &b.try_sign(&other_chip).unwrap(),
            other_chip.cert_der(),
            &opts,
        )
        .unwrap_err();
    assert_eq!(err.code(), "snp.hwid_mismatch", "{err}");

    // VCEK derived from a lower microcode SPL than the report says.
    let old = TcbVersion {
        microcode: tcb.microcode - 1,
        ..tcb
    };
    let old_vcek = roots.issue_vcek(&b.chip_id, old).unwrap();
    let err = verifier
        .verify(&b.try_sign(&old_vcek).unwrap(), old_vcek.cert_der(), &opts)
        .unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::SnpTcbMismatch {
                component: "microcode",
                ..
            }
        ),
        "{err}"
    );

    // A report whose CPUID says Genoa, signed by a Milan VCEK.
    let vcek = roots.issue_vcek(&b.chip_id, tcb).unwrap();
    let mut genoa_cpuid = b.clone();
    (genoa_cpuid.cpuid_fam_id, genoa_cpuid.cpuid_mod_id) = (0x19, 0x11);
    let err = verifier
        .verify(
            &genoa_cpuid.try_sign(&vcek).unwrap(),
            vcek.cert_der(),
            &opts,
        )
        .unwrap_err();
    assert_eq!(err.code(), "snp.generation_mismatch", "{err}");

    // Unsupported versions, even when validly signed.
    let mut v4 = b.clone();
    v4.version = 4;
    let err = verifier
        .verify(&v4.try_sign(&vcek).unwrap(), vcek.cert_der(), &opts)
        .unwrap_err();
    assert_eq!(err.code(), "snp.version", "{err}");
}

#[test]
fn turin_uses_an_eight_byte_hw_id_and_its_own_tcb_layout() {
    let fx_gen = fx::Generation::Turin;
    let roots = AmdRoots::shared(fx_gen);
    let b = ReportBuilder::new(fx_gen);
    let tcb = TcbVersion::default_for(fx_gen);
    let vcek = roots.issue_vcek(&b.chip_id, tcb).unwrap();
    let c = claims(verifier_trusting(roots).verify(
        &b.try_sign(&vcek).unwrap(),
        vcek.cert_der(),
        &VerifyOptions::at(now()),
    ));
    assert_eq!(c.reported_tcb.fmc, Some(tcb.fmc));
    assert_eq!(c.reported_tcb.snp, tcb.snp);
    let tampered = tamper::tamper_extension(vcek.cert_der(), "1.3.6.1.4.1.3704.1.4").unwrap();
    let err = verifier_trusting(roots)
        .verify(
            &b.try_sign(&vcek).unwrap(),
            &tampered,
            &VerifyOptions::at(now()),
        )
        .unwrap_err();
    assert_eq!(err.code(), "snp.chain", "{err}");
}

#[test]
fn expired_and_future_fixture_vceks_are_rejected() {
    let fx_gen = fx::Generation::Genoa;
    let roots = AmdRoots::shared(fx_gen);
    let b = ReportBuilder::new(fx_gen);
    let tcb = TcbVersion::default_for(fx_gen);
    let mut opts = VcekOptions::new(&b.chip_id, tcb).unwrap();
    let start = opts.not_before;
    opts.not_after = start + time::Duration::hours(1);
    let vcek = roots.issue_vcek_with(&opts).unwrap();
    let report = b.try_sign(&vcek).unwrap();
    let verifier = verifier_trusting(roots);
    let inside = UnixTime::from_secs(start.unix_timestamp() + 60);
    verifier
        .verify(&report, vcek.cert_der(), &VerifyOptions::at(inside))
        .unwrap();
    let after = UnixTime::from_secs(start.unix_timestamp() + 7200);
    let err = verifier
        .verify(&report, vcek.cert_der(), &VerifyOptions::at(after))
        .unwrap_err();
    assert_eq!(err.code(), "snp.cert_expired", "{err}");
    let before = UnixTime::from_secs(start.unix_timestamp() - 1);
    let err = verifier
        .verify(&report, vcek.cert_der(), &VerifyOptions::at(before))
        .unwrap_err();
    assert_eq!(err.code(), "snp.cert_not_yet_valid", "{err}");
}
