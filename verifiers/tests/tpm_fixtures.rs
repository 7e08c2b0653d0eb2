//! Round trips with the simulated TPM in attest-fixtures: quotes by RSA (RSASSA, RSAPSS) and
//! ECC AKs over several banks with an event log, AK and EK certificates from the simulated CA,
//! TPM2_Certify of a binding key; and the ways each is rejected when something is off.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::OnceLock;

use attest_fixtures::crypto::Hash;
use attest_fixtures::tpm::marshal::attr;
use attest_fixtures::tpm::{AkKind, Attestation, EkKind, SimTpm, TpmKey};
use attest_verifiers::tpm::{
    self, AttestationKey, CertChain, CertifyEvidence, CertifyOptions, EventLog, HashAlg, PcrValues,
    Public, PublicKey, QuoteEvidence, QuoteOptions, Signature, TpmClaims,
};
use attest_verifiers::x509::Certificate;
use attest_verifiers::{Claims, UnixTime, VerifyError};

const NONCE: &[u8] = b"0123456789abcdef0123456789abcdef";

fn at() -> UnixTime {
    UnixTime::parse_rfc3339("2026-01-15T00:00:00Z").unwrap()
}

/// One booted simulated TPM shared by the tests (key generation is the slow part).
fn booted() -> &'static SimTpm {
    static SIM: OnceLock<SimTpm> = OnceLock::new();
    SIM.get_or_init(|| {
        let mut sim = SimTpm::new().unwrap();
        sim.measure_boot(true);
        sim
    })
}

fn all_banks() -> Vec<(Hash, Vec<u8>)> {
    vec![
        (Hash::Sha256, (0..24).collect()),
        (Hash::Sha1, (0..10).collect()),
        (Hash::Sha384, vec![0, 7]),
    ]
}

struct Input {
    attest: Vec<u8>,
    sig: Signature,
    ak: AttestationKey,
    pcrs: PcrValues,
    log: EventLog,
}

fn input(sim: &SimTpm, ak: &TpmKey, q: &Attestation) -> Input {
    Input {
        attest: q.attest.clone(),
        sig: Signature::detect(&q.signature).unwrap(),
        ak: AttestationKey::parse(&ak.tpmt_public()).unwrap(),
        pcrs: PcrValues::from_json(
            sim.pcrs_json(&[Hash::Sha1, Hash::Sha256, Hash::Sha384])
                .as_bytes(),
        )
        .unwrap(),
        log: EventLog::parse(sim.event_log()).unwrap(),
    }
}

fn verify(i: &Input, opts: &QuoteOptions<'_>) -> Result<TpmClaims, VerifyError> {
    let evidence = QuoteEvidence {
        attest: &i.attest,
        signature: &i.sig,
        ak: &i.ak,
        pcrs: Some(&i.pcrs),
        event_log: Some(&i.log),
    };
    match tpm::verify_quote(&evidence, opts)?.into_claims() {
        Claims::Tpm(c) => Ok(c),
        other => panic!("{other:?}"),
    }
}

fn nonce_opts() -> QuoteOptions<'static> {
    QuoteOptions {
        expected_nonce: Some(NONCE),
        ..QuoteOptions::at(at())
    }
}

#[test]
fn quotes_by_every_ak_kind_verify_over_several_banks() {
    let sim = booted();
    for (kind, scheme, key_type) in [
        (AkKind::Rsa2048, "rsassa", "rsa-2048"),
        (AkKind::Rsa2048Pss, "rsapss", "rsa-2048"),
        (AkKind::EccP256, "ecdsa", "ecc-p256"),
    ] {
        let ak = sim.create_ak(kind).unwrap();
        let q = sim.quote(&ak, &all_banks(), NONCE).unwrap();
        let i = input(sim, &ak, &q);
        let expected_qn =
            tpm::qualified_name(&tpm::TPM_RH_ENDORSEMENT.to_be_bytes(), &ak.name()).unwrap();
        let opts = QuoteOptions {
            expected_qualified_signer: Some(&expected_qn),
            ..nonce_opts()
        };
        let c = verify(&i, &opts).unwrap();
        assert_eq!(c.signature.scheme, scheme);
        assert_eq!(c.ak.key_type, key_type);
        assert_eq!(c.ak.name.as_ref().unwrap().as_slice(), ak.name());
        assert_eq!(c.nonce.as_slice(), NONCE);
        assert_eq!(c.pcr_select[&HashAlg::Sha384], [0, 7]);
        assert_eq!(c.pcrs[&HashAlg::Sha1].len(), 10);
        assert_eq!(c.pcrs[&HashAlg::Sha256].len(), 24);
        assert_eq!(
            c.pcrs[&HashAlg::Sha256][&7].as_slice(),
            sim.pcr(Hash::Sha256, 7).unwrap()
        );
        assert_eq!(c.firmware_version, sim.firmware_version);
        assert_eq!(c.clock.reset_count, sim.reset_count);
        let log = c.event_log.unwrap();
        assert_eq!(
            log.verified_banks,
            [HashAlg::Sha1, HashAlg::Sha256, HashAlg::Sha384]
        );
        assert_eq!(log.verified_pcrs, (0..10).collect::<Vec<u8>>());
        assert_eq!(log.secure_boot, Some(true));
        // PCR 4 is verified in SHA-1 and SHA-256 but not SHA-384 (not selected there).
        let pcr4 = log.events.iter().find(|e| e.pcr == 4).unwrap();
        assert_eq!(
            pcr4.digests.keys().copied().collect::<Vec<_>>(),
            [HashAlg::Sha1, HashAlg::Sha256]
        );
        let pcr7 = log.events.iter().find(|e| e.pcr == 7).unwrap();
        assert_eq!(pcr7.digests.len(), 3);
        // The same quote verifies with the AK as a PEM-less DER SPKI.
        let spki = AttestationKey::parse(&ak.spki_der().unwrap()).unwrap();
        assert_eq!(spki.public_key(), i.ak.public_key());
    }
}

#[test]
fn rejections() {
    let sim = booted();
    let ak = sim.create_ak(AkKind::EccP256).unwrap();
    let q = sim.quote(&ak, &all_banks(), NONCE).unwrap();
    let good = input(sim, &ak, &q);
    verify(&good, &nonce_opts()).unwrap();
    let code = |i: &Input, o: &QuoteOptions<'_>| verify(i, o).unwrap_err().code();

    // Wrong nonce.
    let other = QuoteOptions {
        expected_nonce: Some(b"another nonce"),
        ..QuoteOptions::at(at())
    };
    assert_eq!(code(&good, &other), "tpm.nonce");
    // Another AK.
    let other_ak = sim.create_ak(AkKind::EccP256).unwrap();
    let mut i = input(sim, &ak, &q);
    i.ak = AttestationKey::parse(&other_ak.tpmt_public()).unwrap();
    assert_eq!(code(&i, &nonce_opts()), "tpm.signature");
    // A changed PCR value.
    let mut i = input(sim, &ak, &q);
    let mut changed = PcrValues::new();
    for (bank, values) in good.pcrs.banks() {
        for (index, value) in values {
            let mut value = value.clone();
            if *bank == HashAlg::Sha384 && *index == 7 {
                value[0] ^= 1;
            }
            changed.insert(*bank, *index, value).unwrap();
        }
    }
    i.pcrs = changed;
    assert_eq!(code(&i, &nonce_opts()), "tpm.pcr_digest");
    // A tampered attest (clock) or signature.
    let mut i = input(sim, &ak, &q);
    i.attest[60] ^= 0x80;
    assert!(verify(&i, &nonce_opts()).is_err());
    let mut sig = q.signature.clone();
    let last = sig.len() - 1;
    sig[last] ^= 1;
    let mut i = input(sim, &ak, &q);
    i.sig = Signature::detect(&sig).unwrap();
    assert_eq!(code(&i, &nonce_opts()), "tpm.signature");
    // The event log of another boot.
    let mut other_sim = SimTpm::new().unwrap();
    other_sim.measure_boot(false);
    let mut i = input(sim, &ak, &q);
    i.log = EventLog::parse(other_sim.event_log()).unwrap();
    assert_eq!(code(&i, &nonce_opts()), "tpm.event_log");
    // A quote of PCRs the log never extends cannot vouch for the log.
    let q_high = sim
        .quote(&ak, &[(Hash::Sha256, (10..24).collect())], NONCE)
        .unwrap();
    assert_eq!(
        code(&input(sim, &ak, &q_high), &nonce_opts()),
        "tpm.event_log"
    );
    // A log whose only bank the quote does not have.
    let mut sha384_sim = SimTpm::with_banks(&[Hash::Sha384]).unwrap();
    sha384_sim.measure_boot(true);
    let mut i = input(
        sim,
        &ak,
        &sim.quote(&ak, &[(Hash::Sha256, (0..24).collect())], NONCE)
            .unwrap(),
    );
    i.log = EventLog::parse(sha384_sim.event_log()).unwrap();
    assert_eq!(code(&i, &nonce_opts()), "tpm.event_log");
    // An AK without restricted: it could sign anything, so its quotes prove nothing.
    let loose = sim
        .create_key_with_attributes(AkKind::EccP256, attr::SIGNING_KEY)
        .unwrap();
    let q = sim.quote(&loose, &all_banks(), NONCE).unwrap();
    assert_eq!(
        code(&input(sim, &loose, &q), &nonce_opts()),
        "tpm.ak_attributes"
    );
}

#[test]
fn secure_boot_off_is_claimed_as_off() {
    let mut sim = SimTpm::with_banks(&[Hash::Sha256]).unwrap();
    sim.measure_boot(false);
    let ak = sim.create_ak(AkKind::Rsa2048).unwrap();
    let q = sim
        .quote(&ak, &[(Hash::Sha256, (0..24).collect())], NONCE)
        .unwrap();
    let c = verify(&input(&sim, &ak, &q), &nonce_opts()).unwrap();
    assert_eq!(c.event_log.unwrap().secure_boot, Some(false));
}

#[test]
fn ak_and_ek_certificates_chain_to_the_simulated_ca() {
    let sim = booted();
    let ak = sim.create_ak(AkKind::Rsa2048).unwrap();
    let q = sim.quote(&ak, &all_banks(), NONCE).unwrap();
    let i = input(sim, &ak, &q);
    let ca = [Certificate::from_der(sim.ca_cert_der()).unwrap()];
    let ak_cert = [Certificate::from_der(&sim.ak_cert_der(&ak).unwrap()).unwrap()];
    let opts = QuoteOptions {
        ak_chain: Some(CertChain {
            certs: &ak_cert,
            anchors: &ca,
        }),
        ..nonce_opts()
    };
    let c = verify(&i, &opts).unwrap();
    let cert = c.ak.certificate.unwrap();
    assert_eq!(cert.path_len, 2);
    assert_eq!(cert.subject, "Simulated TPM AK");
    assert_eq!(cert.issuer, "Simulated TPM Root CA");
    // Another TPM's CA is not this one's.
    let other = SimTpm::new().unwrap();
    let wrong = [Certificate::from_der(other.ca_cert_der()).unwrap()];
    let opts = QuoteOptions {
        ak_chain: Some(CertChain {
            certs: &ak_cert,
            anchors: &wrong,
        }),
        ..nonce_opts()
    };
    assert_eq!(verify(&i, &opts).unwrap_err().code(), "tpm.chain");
    // EK certificates certify the EK public areas.
    for kind in [EkKind::Rsa2048, EkKind::EccP256] {
        let ek = Public::parse(&sim.ek_public(kind).unwrap().marshal()).unwrap();
        let cert = [Certificate::from_der(sim.ek_cert_der(kind)).unwrap()];
        assert!(ek.matches_certificate(&cert[0]).unwrap());
        let chain = CertChain {
            certs: &cert,
            anchors: &ca,
        };
        let claims = tpm::verify_chain(&chain, &ek.public_key().unwrap(), at()).unwrap();
        assert_eq!(claims.path_len, 2);
        let other_ek = Public::parse(&other.ek_public(kind).unwrap().marshal()).unwrap();
        assert_eq!(
            tpm::verify_chain(&chain, &other_ek.public_key().unwrap(), at())
                .unwrap_err()
                .code(),
            "tpm.chain"
        );
        // Before the CA's validity.
        let early = UnixTime::parse_rfc3339("2023-06-01T00:00:00Z").unwrap();
        assert_eq!(
            tpm::verify_chain(&chain, &ek.public_key().unwrap(), early)
                .unwrap_err()
                .code(),
            "tpm.cert_not_yet_valid"
        );
    }
}

fn certify_opts(qualifying: &[u8]) -> CertifyOptions<'_> {
    CertifyOptions {
        expected_qualifying_data: Some(qualifying),
        ..CertifyOptions::at(at())
    }
}

#[test]
fn certified_binding_keys_verify() {
    let sim = booted();
    let binding = sim.create_signing_key(AkKind::EccP256).unwrap();
    let binding_public = Public::parse(&binding.tpmt_public()).unwrap();
    for kind in [AkKind::Rsa2048, AkKind::EccP256] {
        let ak = sim.create_ak(kind).unwrap();
        let ak_key = AttestationKey::parse(&ak.tpmt_public()).unwrap();
        let c = sim.certify(&ak, &binding, NONCE).unwrap();
        let sig = Signature::detect(&c.signature).unwrap();
        let evidence = CertifyEvidence {
            attest: &c.attest,
            signature: &sig,
            ak: &ak_key,
            certified: &binding_public,
        };
        let certified = tpm::verify_certify(&evidence, &certify_opts(NONCE)).unwrap();
        assert_eq!(certified.name(), binding.name());
        assert_eq!(certified.public_key().key_type(), "ecc-p256");
        assert!(matches!(certified.public_key(), PublicKey::Ecc { .. }));
        assert_eq!(certified.ak(), ak_key.public_key());
        assert_eq!(certified.verified_at(), at());
        assert_eq!(
            tpm::verify_certify(&evidence, &certify_opts(b"other"))
                .unwrap_err()
                .code(),
            "tpm.nonce"
        );
        // Another key presented than the one certified.
        let other = sim.create_signing_key(AkKind::EccP256).unwrap();
        let other_public = Public::parse(&other.tpmt_public()).unwrap();
        let swapped = CertifyEvidence {
            certified: &other_public,
            ..evidence
        };
        assert_eq!(
            tpm::verify_certify(&swapped, &certify_opts(NONCE))
                .unwrap_err()
                .code(),
            "tpm.certified_name"
        );
        // A certify attest is not a quote, and a quote not a certification.
        let quote_evidence = QuoteEvidence {
            attest: &c.attest,
            signature: &sig,
            ak: &ak_key,
            pcrs: None,
            event_log: None,
        };
        assert_eq!(
            tpm::verify_quote(&quote_evidence, &QuoteOptions::at(at()))
                .unwrap_err()
                .code(),
            "tpm.attest_type"
        );
        let q = sim.quote(&ak, &all_banks(), NONCE).unwrap();
        let qsig = Signature::detect(&q.signature).unwrap();
        let as_certify = CertifyEvidence {
            attest: &q.attest,
            signature: &qsig,
            ..evidence
        };
        assert_eq!(
            tpm::verify_certify(&as_certify, &certify_opts(NONCE))
                .unwrap_err()
                .code(),
            "tpm.attest_type"
        );
    }
    // A key the TPM would let leave (no fixedTPM) is not a binding key.
    let ak = sim.create_ak(AkKind::Rsa2048).unwrap();
    let ak_key = AttestationKey::parse(&ak.tpmt_public()).unwrap();
    let exportable = sim
        .create_key_with_attributes(AkKind::EccP256, attr::SIGNING_KEY & !attr::FIXED_TPM)
        .unwrap();
    let exportable_public = Public::parse(&exportable.tpmt_public()).unwrap();
    let c = sim.certify(&ak, &exportable, NONCE).unwrap();
    let sig = Signature::detect(&c.signature).unwrap();
    let evidence = CertifyEvidence {
        attest: &c.attest,
        signature: &sig,
        ak: &ak_key,
        certified: &exportable_public,
    };
    assert_eq!(
        tpm::verify_certify(&evidence, &certify_opts(NONCE))
            .unwrap_err()
            .code(),
        "tpm.key_attributes"
    );
}

#[test]
fn bare_rsassa_signatures_from_the_simulator_verify() {
    let sim = booted();
    let ak = sim.create_ak(AkKind::Rsa2048).unwrap();
    let q = sim.quote(&ak, &all_banks(), NONCE).unwrap();
    let bare = ak.sign_bare_rsassa(&q.attest).unwrap();
    assert_eq!(bare.len(), 256);
    let mut i = input(sim, &ak, &q);
    i.sig = Signature::detect(&bare).unwrap();
    i.ak = AttestationKey::parse(&ak.spki_der().unwrap()).unwrap();
    verify(&i, &nonce_opts()).unwrap();
}

#[test]
fn quotes_over_chosen_pcr_values() {
    let mut sim = SimTpm::with_banks(&[Hash::Sha256, Hash::Sha384]).unwrap();
    sim.set_pcr(Hash::Sha256, 16, &[0x42; 32]).unwrap();
    sim.set_pcr(Hash::Sha384, 23, &[0x17; 48]).unwrap();
    assert!(sim.set_pcr(Hash::Sha1, 0, &[0; 20]).is_err());
    assert!(sim.set_pcr(Hash::Sha256, 24, &[0; 32]).is_err());
    assert!(sim.set_pcr(Hash::Sha256, 0, &[0; 20]).is_err());
    let ak = sim.create_ak(AkKind::Rsa2048).unwrap();
    let q = sim
        .quote(
            &ak,
            &[(Hash::Sha384, vec![23]), (Hash::Sha256, vec![16, 0])],
            NONCE,
        )
        .unwrap();
    let mut i = input(&sim, &ak, &q);
    i.pcrs = PcrValues::from_json(sim.pcrs_json(&[Hash::Sha256, Hash::Sha384]).as_bytes()).unwrap();
    let evidence = QuoteEvidence {
        attest: &i.attest,
        signature: &i.sig,
        ak: &i.ak,
        pcrs: Some(&i.pcrs),
        event_log: None,
    };
    let Claims::Tpm(c) = tpm::verify_quote(&evidence, &nonce_opts())
        .unwrap()
        .into_claims()
    else {
        panic!()
    };
    assert_eq!(c.pcrs[&HashAlg::Sha256][&16].as_slice(), [0x42; 32]);
    assert_eq!(c.pcrs[&HashAlg::Sha256][&0].as_slice(), [0; 32]);
    assert_eq!(c.pcrs[&HashAlg::Sha384][&23].as_slice(), [0x17; 48]);
    assert_eq!(c.pcrs[&HashAlg::Sha384].len(), 1);
    assert_eq!(c.pcr_select[&HashAlg::Sha256], [0, 16]);
}
