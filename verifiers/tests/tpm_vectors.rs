//! The TPM vectors in ../shared/vectors (README sections 7 to 10): Google Compute Engine vTPM
//! quotes with their AK certificate chain and event log, Azure CVM vTPM quotes with bare
//! signatures, the swtpm format vector, and every natural and byte-level negative listed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use attest_verifiers::tpm::{
    self, AttestationKey, CertChain, EventLog, HashAlg, PcrValues, Public, PublicKey,
    QuoteEvidence, QuoteOptions, Signature, TpmClaims,
};
use attest_verifiers::x509::{self, Certificate};
use attest_verifiers::{Claims, Tee, VerifyError};
use common::{at, vector};

const JAN_2026: &str = "2026-01-15T00:00:00Z";
const GCE: &str = "tpm/gce-cos85-nonce9009";
const GCE_NONCE: [u8; 2] = [0x90, 0x09];
const AZURE_NONCE: &[u8] = b"challenge";

struct Gce {
    attest: Vec<u8>,
    sig: Signature,
    ak: AttestationKey,
    pcrs: PcrValues,
}

fn gce(n: usize) -> Gce {
    Gce {
        attest: vector(&format!("{GCE}/quote{n}_attest.bin")),
        sig: Signature::detect(&vector(&format!("{GCE}/quote{n}_sig.bin"))).unwrap(),
        ak: AttestationKey::parse(&vector(&format!("{GCE}/ak_pub_tpmt_public.bin"))).unwrap(),
        pcrs: PcrValues::from_json(&vector(&format!("{GCE}/quote{n}_pcrs.json"))).unwrap(),
    }
}

fn gce_chain() -> (Vec<Certificate>, Vec<Certificate>) {
    let mut certs = x509::parse_bundle(&vector(&format!("{GCE}/ak_cert.der"))).unwrap();
    certs.extend(x509::parse_bundle(&vector("roots/gce-vtpm/tpm_ek_intermediate_2.pem")).unwrap());
    let anchors = x509::parse_bundle(&vector("roots/gce-vtpm/tpm_ek_root_1.pem")).unwrap();
    (certs, anchors)
}

fn verify(
    attest: &[u8],
    sig: &Signature,
    ak: &AttestationKey,
    pcrs: Option<&PcrValues>,
    log: Option<&EventLog>,
    opts: &QuoteOptions<'_>,
) -> Result<TpmClaims, VerifyError> {
    let evidence = QuoteEvidence {
        attest,
        signature: sig,
        ak,
        pcrs,
        event_log: log,
    };
    let verified = tpm::verify_quote(&evidence, opts)?;
    assert_eq!(verified.claims().tee(), Tee::Tpm);
    assert_eq!(verified.verified_at(), opts.at);
    match verified.into_claims() {
        Claims::Tpm(c) => Ok(c),
        other => panic!("unexpected claims {other:?}"),
    }
}

fn nonce_opts(nonce: &[u8]) -> QuoteOptions<'_> {
    QuoteOptions {
        expected_nonce: Some(nonce),
        ..QuoteOptions::at(at(JAN_2026))
    }
}

/// README section 7, GCE table: bank, pcrDigest, PCR0, clock / resetCount / restartCount.
const GCE_QUOTES: [(HashAlg, &str, &str, u64); 3] = [
    (
        HashAlg::Sha1,
        "fda327d4ba5d5978fe3a23db1a47964050e872639ef5d6a99c123cca39e56d8b",
        "c032c3b51dbb6f96b047421512fd4b4dfde496f3",
        8_219_159_479,
    ),
    (
        HashAlg::Sha256,
        "048937cbaaf28af85a5b0c0997e725097a0d94e05fcda104a82ee3fb6b2e1808",
        "0f35c214608d93c7a6e68ae7359b4a8be5a0e99eea9107ece427c4dea4e439cf",
        8_219_159_552,
    ),
    (
        HashAlg::Sha384,
        "6c250f48d304517716f4a5a9127bf8762a80b63df783cb724630b180a3a66bea",
        "46ce251b0b5b3da7917c5eb7a72e6e88f8f830445b149937921b095c1fd628db691963861c1153aba9c7097ff1c747f9",
        8_219_159_625,
    ),
];

#[test]
fn gce_quotes_verify_with_chain_nonce_pcrs_and_event_log() {
    let (certs, anchors) = gce_chain();
    let log = EventLog::parse(&vector(&format!("{GCE}/event_log.bin"))).unwrap();
    let ak_name =
        hex::decode("000bf175bdb57297b2b289973f819863d6c9d09c236725676914f4248c9a2404c2a4")
            .unwrap();
    let qualified = tpm::qualified_name(&tpm::TPM_RH_ENDORSEMENT.to_be_bytes(), &ak_name).unwrap();
    for (n, (bank, digest, pcr0, clock)) in GCE_QUOTES.into_iter().enumerate() {
        let q = gce(n);
        let opts = QuoteOptions {
            ak_chain: Some(CertChain {
                certs: &certs,
                anchors: &anchors,
            }),
            expected_qualified_signer: Some(&qualified),
            ..nonce_opts(&GCE_NONCE)
        };
        let c = verify(&q.attest, &q.sig, &q.ak, Some(&q.pcrs), Some(&log), &opts).unwrap();
        assert_eq!(c.attest_type, "quote");
        assert_eq!(c.nonce.to_string(), "9009");
        assert_eq!(c.pcr_digest.to_string(), digest);
        assert_eq!(c.pcr_select[&bank], (0..24).collect::<Vec<u8>>());
        assert_eq!(c.pcrs.len(), 1);
        assert_eq!(c.pcrs[&bank].len(), 24);
        assert_eq!(c.pcrs[&bank][&0].to_string(), pcr0);
        assert_eq!(c.firmware_version, 0x2016_0511_0016_2800);
        assert_eq!(c.clock.clock, clock);
        assert_eq!((c.clock.reset_count, c.clock.restart_count), (10, 0));
        assert_eq!(c.signature.scheme, "rsassa");
        assert_eq!(c.signature.hash, HashAlg::Sha256);
        assert_eq!(c.qualified_signer.as_slice(), qualified);
        assert_ne!(c.qualified_signer.as_slice(), ak_name);
        assert_eq!(c.ak.key_type, "rsa-2048");
        assert_eq!(
            c.ak.spki_sha256.to_string(),
            "6a114d75ad6e7b75f7da33dead50f2e29bf509108646ced2e588bebc35f0d5b6"
        );
        assert_eq!(c.ak.name.as_ref().unwrap().as_slice(), ak_name);
        let cert = c.ak.certificate.as_ref().unwrap();
        assert_eq!(cert.path_len, 3);
        // README section 3: the SHA-256 fingerprint of roots/gce-vtpm/tpm_ek_root_1.pem.
        assert_eq!(
            cert.anchor_sha256.to_string(),
            "9bd5285f8fb18502a7947e621ffd470266f49fcd3b73e19a190f690ad32a7caf"
        );
        assert_eq!(cert.not_after.to_string(), "2051-08-24T23:16:05Z");
        let events = c.event_log.as_ref().unwrap();
        assert_eq!(events.verified_banks, [bank]);
        assert_eq!(events.verified_pcrs, (0..10).collect::<Vec<u8>>());
        assert_eq!(events.secure_boot, Some(true));
        assert_eq!(events.unverified_events, 0);
        assert_eq!(events.events.len(), 44);
        assert!(events.events.iter().all(|e| e.digests.keys().eq([&bank])));
    }
}

#[test]
fn gce_event_log_replays_every_bank_to_its_quote() {
    let log = EventLog::parse(&vector(&format!("{GCE}/event_log.bin"))).unwrap();
    assert_eq!(log.events().len(), 44);
    assert_eq!(log.algorithms().len(), 3);
    let replayed = log.replay();
    for (n, (bank, _, _, _)) in GCE_QUOTES.into_iter().enumerate() {
        let quoted = gce(n).pcrs;
        let bank_values = &replayed[&bank];
        assert_eq!(
            bank_values.keys().copied().collect::<Vec<u8>>(),
            (0..10).collect::<Vec<u8>>()
        );
        for (pcr, value) in bank_values {
            assert_eq!(
                Some(value.as_slice()),
                quoted.get(bank, *pcr),
                "{bank} PCR {pcr}"
            );
        }
    }
}

#[test]
fn gce_event_log_decodes_what_policies_use() {
    let q = gce(1);
    let log = EventLog::parse(&vector(&format!("{GCE}/event_log.bin"))).unwrap();
    let c = verify(
        &q.attest,
        &q.sig,
        &q.ak,
        Some(&q.pcrs),
        Some(&log),
        &nonce_opts(&GCE_NONCE),
    )
    .unwrap();
    let json = serde_json::to_value(c.event_log.as_ref().unwrap()).unwrap();
    let events = json["events"].as_array().unwrap();
    let first = &events[0];
    assert_eq!(first["index"], 1);
    assert_eq!(first["pcr"], 0);
    assert_eq!(first["event_type"], "EV_S_CRTM_VERSION");
    assert_eq!(first["data"]["text"], "GCE Virtual Firmware v1");
    assert_eq!(first["data_verified"], true);
    let secure_boot = &events[2];
    assert_eq!(secure_boot["event_type"], "EV_EFI_VARIABLE_DRIVER_CONFIG");
    assert_eq!(secure_boot["data"]["kind"], "efi_variable");
    assert_eq!(secure_boot["data"]["name"], "SecureBoot");
    assert_eq!(secure_boot["data"]["guid"], tpm::EFI_GLOBAL_VARIABLE);
    assert_eq!(secure_boot["data"]["value"], "01");
    let separators = events
        .iter()
        .filter(|e| e["event_type"] == "EV_SEPARATOR")
        .count();
    assert_eq!(separators, 8);
    let boot_app = events
        .iter()
        .find(|e| e["event_type"] == "EV_EFI_BOOT_SERVICES_APPLICATION")
        .unwrap();
    let path = boot_app["data"]["device_path"].as_str().unwrap();
    assert!(path.starts_with("PciRoot(0x0)/Pci("), "{path}");
    assert!(
        path.contains("HD(") && path.ends_with("\\EFI\\BOOT\\BOOTX64.EFI"),
        "{path}"
    );
    assert_eq!(boot_app["data_verified"], false);
    let cmdline = events
        .iter()
        .filter_map(|e| e["data"]["text"].as_str())
        .find(|t| t.starts_with("kernel_cmdline: "))
        .unwrap();
    assert!(cmdline.contains("/syslinux/vmlinuz.A"));
}

#[test]
fn gce_quote_verifies_with_the_pem_ak_too() {
    let q = gce(2);
    let pem = AttestationKey::parse(&vector(&format!("{GCE}/ak_pub.pem"))).unwrap();
    assert_eq!(pem.public_key(), q.ak.public_key());
    assert!(pem.tpm_public().is_none());
    let c = verify(
        &q.attest,
        &q.sig,
        &pem,
        Some(&q.pcrs),
        None,
        &nonce_opts(&GCE_NONCE),
    )
    .unwrap();
    assert_eq!(c.ak.name, None);
    assert_eq!(c.event_log, None);
    let der = pem.public_key().spki_der();
    let pem_text = String::from_utf8(vector(&format!("{GCE}/ak_pub.pem"))).unwrap();
    assert!(pem_text.contains("PUBLIC KEY"));
    assert_eq!(PublicKey::from_spki(&der).unwrap(), *q.ak.public_key());
}

#[test]
fn gce_ak_public_area_parses() {
    let raw = vector(&format!("{GCE}/ak_pub_tpmt_public.bin"));
    let public = Public::parse(&raw).unwrap();
    assert_eq!(raw.len(), 280);
    assert_eq!(public.marshalled(), raw.as_slice());
    assert_eq!(public.attributes.0, 0x0005_0072);
    assert_eq!(public.name_alg, HashAlg::Sha256);
    let tpm::Parameters::Rsa {
        exponent,
        key_bits,
        scheme,
        ..
    } = public.parameters
    else {
        panic!("not RSA")
    };
    assert_eq!((exponent, key_bits), (0, 2048));
    assert_eq!(scheme.unwrap().scheme, 0x0014);
    let PublicKey::Rsa { exponent, .. } = public.public_key().unwrap() else {
        panic!("not RSA")
    };
    assert_eq!(exponent, 65537);
    let mut tpm2b = (raw.len() as u16).to_be_bytes().to_vec();
    tpm2b.extend(&raw);
    assert_eq!(Public::parse_tpm2b(&tpm2b).unwrap(), public);
    assert_eq!(
        AttestationKey::parse(&tpm2b).unwrap(),
        AttestationKey::parse(&raw).unwrap()
    );
}

fn azure(dir: &str) -> (Vec<u8>, Signature, AttestationKey, PcrValues) {
    let base = format!("azure-snp-vtpm/{dir}");
    (
        vector(&format!("{base}/tpm_quote_attest.bin")),
        Signature::detect(&vector(&format!("{base}/tpm_quote_signature.bin"))).unwrap(),
        AttestationKey::parse(&vector(&format!("{base}/ak_pub_HCLAkPub.pem"))).unwrap(),
        PcrValues::from_json(&vector(&format!("{base}/tpm_pcrs_sha256.json"))).unwrap(),
    )
}

#[test]
fn azure_quotes_verify_with_bare_signatures() {
    for (dir, digest, pcr0, spki) in [
        (
            "extracted-evidence-v0",
            "cfa3a9112493e8c8741c1d895ced6d05a9ea19a24a02a44a8b02eaf22a1b143f",
            "e15c44796beabf46abcec7c57e590942041e47497e4ec27571c8b7664f48dced",
            "18363b87a4b74a15492d8a8c2d71295d7a63652d244dd059847aa3d35edc6f62",
        ),
        (
            "extracted-hcl-report",
            "0daff74c2fca14910b1e9b54a384707434c3365db9f163cc73a39a9f7500833f",
            "f3a7e99a5f819a034386bce753a48a73cfdaa0bea0ecfc124bedbf5a8c4799be",
            "d47d5d33abcef6082883a1b3c54b80bc6be7606c6f822eae23822b42edbc8f5f",
        ),
    ] {
        let (attest, sig, ak, pcrs) = azure(dir);
        assert!(matches!(
            sig,
            Signature::RsaSsa {
                hash: HashAlg::Sha256,
                ..
            }
        ));
        let c = verify(
            &attest,
            &sig,
            &ak,
            Some(&pcrs),
            None,
            &nonce_opts(AZURE_NONCE),
        )
        .unwrap();
        assert_eq!(c.nonce.to_string(), "6368616c6c656e6765");
        assert_eq!(c.pcr_digest.to_string(), digest);
        assert_eq!(c.pcrs[&HashAlg::Sha256][&0].to_string(), pcr0);
        assert_eq!(c.pcrs[&HashAlg::Sha256].len(), 24);
        assert_eq!(c.firmware_version, 0x2020_0312_0012_0003);
        assert_eq!(c.ak.spki_sha256.to_string(), spki);
    }
}

#[test]
fn trustee_swtpm_vector_verifies_with_its_pinned_ak() {
    let json: serde_json::Value =
        serde_json::from_slice(&vector("tpm/trustee-tpm/tpm_evidence.json")).unwrap();
    let pcrs = serde_json::to_vec(&json["tpm_quote"]["pcrs"]).unwrap();
    let pcrs = PcrValues::from_json(&pcrs).unwrap();
    let attest = vector("tpm/trustee-tpm/quote_attest.bin");
    let sig = Signature::detect(&vector("tpm/trustee-tpm/quote_sig.bin")).unwrap();
    let ak = AttestationKey::parse(&vector("tpm/trustee-tpm/ak_public.pem")).unwrap();
    let nonce = hex::decode("a04182b506878d4f29b91ee606a71a0d3361ccf1b22db20c98adcaa537bea393ef0e41a18b3569ab678f1497fbc5c12000000000000000000000000000000000").unwrap();
    let c = verify(&attest, &sig, &ak, Some(&pcrs), None, &nonce_opts(&nonce)).unwrap();
    assert_eq!(
        c.pcr_digest.to_string(),
        "019de64c9318655e422c3d03831169896e31f02a1d74e4d8fef575bf4e0d75fa"
    );
    assert_eq!(c.firmware_version, 0x2019_1023_0016_3636);
    let bank = &c.pcrs[&HashAlg::Sha256];
    assert_eq!(bank[&0].as_slice(), [0; 32]);
    assert_eq!(bank[&17].as_slice(), [0xff; 32]);
    // The same quote under the GCE AK: not pinned, rejected.
    let other = AttestationKey::parse(&vector(&format!("{GCE}/ak_pub.pem"))).unwrap();
    let err = verify(
        &attest,
        &sig,
        &other,
        Some(&pcrs),
        None,
        &nonce_opts(&nonce),
    )
    .unwrap_err();
    assert_eq!(err.code(), "tpm.signature");
}

#[test]
fn wrong_nonces_are_rejected() {
    for n in 0..3 {
        let q = gce(n);
        for nonce in [
            &b""[..],
            &[0x90],
            &[0x90, 0x08],
            &[0x90, 0x09, 0x00],
            b"challenge",
        ] {
            let err = verify(
                &q.attest,
                &q.sig,
                &q.ak,
                Some(&q.pcrs),
                None,
                &nonce_opts(nonce),
            )
            .unwrap_err();
            assert_eq!(err.code(), "tpm.nonce");
        }
    }
    for dir in ["extracted-evidence-v0", "extracted-hcl-report"] {
        let (attest, sig, ak, pcrs) = azure(dir);
        let err = verify(
            &attest,
            &sig,
            &ak,
            Some(&pcrs),
            None,
            &nonce_opts(b"challengf"),
        )
        .unwrap_err();
        assert_eq!(err.code(), "tpm.nonce");
    }
}

#[test]
fn foreign_azure_quote_is_a_signature_failure() {
    let (_, _, ak_v0, _) = azure("extracted-evidence-v0");
    let (attest, sig, _, pcrs) = azure("extracted-hcl-report");
    let err = verify(
        &attest,
        &sig,
        &ak_v0,
        Some(&pcrs),
        None,
        &nonce_opts(AZURE_NONCE),
    )
    .unwrap_err();
    assert_eq!(err.code(), "tpm.signature");
}

#[test]
fn readme_byte_mutations_are_rejected() {
    for n in 0..3 {
        let q = gce(n);
        // Last byte of the attest (pcrDigest).
        let mut attest = q.attest.clone();
        *attest.last_mut().unwrap() ^= 1;
        let err = verify(
            &attest,
            &q.sig,
            &q.ak,
            Some(&q.pcrs),
            None,
            &nonce_opts(&GCE_NONCE),
        )
        .unwrap_err();
        assert_eq!(err.code(), "tpm.signature");
        // Byte 106 of the TPMT_SIGNATURE.
        let mut raw = vector(&format!("{GCE}/quote{n}_sig.bin"));
        raw[106] ^= 1;
        let sig = Signature::detect(&raw).unwrap();
        let err = verify(
            &q.attest,
            &sig,
            &q.ak,
            Some(&q.pcrs),
            None,
            &nonce_opts(&GCE_NONCE),
        )
        .unwrap_err();
        assert_eq!(err.code(), "tpm.signature");
        // A hex digit of a PCR value, XOR 0x01 (keeps it a digit).
        let json = vector(&format!("{GCE}/quote{n}_pcrs.json"));
        let text = String::from_utf8(json.clone()).unwrap();
        let pos = text.find("\"5\": \"").unwrap() + 6;
        let mut bad = json.clone();
        bad[pos] ^= 1;
        assert!(bad[pos].is_ascii_hexdigit());
        let pcrs = PcrValues::from_json(&bad).unwrap();
        let err = verify(
            &q.attest,
            &q.sig,
            &q.ak,
            Some(&pcrs),
            None,
            &nonce_opts(&GCE_NONCE),
        )
        .unwrap_err();
        assert_eq!(err.code(), "tpm.pcr_digest");
        assert!(matches!(err, VerifyError::TpmPcrDigest { .. }));
    }
    // Azure: byte 100 of the bare RSA signature.
    let (attest, _, ak, pcrs) = azure("extracted-evidence-v0");
    let mut raw = vector("azure-snp-vtpm/extracted-evidence-v0/tpm_quote_signature.bin");
    raw[100] ^= 1;
    let sig = Signature::detect(&raw).unwrap();
    let err = verify(
        &attest,
        &sig,
        &ak,
        Some(&pcrs),
        None,
        &nonce_opts(AZURE_NONCE),
    )
    .unwrap_err();
    assert_eq!(err.code(), "tpm.signature");
}

#[test]
fn ak_chain_time_and_anchor_rules() {
    let q = gce(1);
    let (certs, anchors) = gce_chain();
    let check =
        |time: &str, certs: &[Certificate], anchors: &[Certificate], ak: &AttestationKey| {
            let opts = QuoteOptions {
                ak_chain: Some(CertChain { certs, anchors }),
                ..QuoteOptions::at(at(time))
            };
            verify(&q.attest, &q.sig, ak, Some(&q.pcrs), None, &opts).map(|_| ())
        };
    check(JAN_2026, &certs, &anchors, &q.ak).unwrap();
    assert_eq!(
        check("2051-08-25T00:00:00Z", &certs, &anchors, &q.ak)
            .unwrap_err()
            .code(),
        "tpm.cert_expired"
    );
    assert_eq!(
        check("2021-08-31T23:00:00Z", &certs, &anchors, &q.ak)
            .unwrap_err()
            .code(),
        "tpm.cert_not_yet_valid"
    );
    // Another Google root is not this chain's anchor.
    let wrong = x509::parse_bundle(&vector("roots/gce-vtpm/gcp_ek_ak_ca_root.crt")).unwrap();
    assert_eq!(
        check(JAN_2026, &certs, &wrong, &q.ak).unwrap_err().code(),
        "tpm.chain"
    );
    // No anchors at all, or no intermediate.
    assert_eq!(
        check(JAN_2026, &certs, &[], &q.ak).unwrap_err().code(),
        "tpm.chain"
    );
    assert_eq!(
        check(JAN_2026, &certs[..1], &anchors, &q.ak)
            .unwrap_err()
            .code(),
        "tpm.chain"
    );
    // The intermediate pinned as anchor works; a root inside the chain is not trusted by itself.
    check(JAN_2026, &certs, &certs[1..], &q.ak).unwrap();
    let mut with_root = certs.clone();
    with_root.extend(anchors.clone());
    assert_eq!(
        check(JAN_2026, &with_root, &wrong, &q.ak)
            .unwrap_err()
            .code(),
        "tpm.chain"
    );
    check(JAN_2026, &with_root, &anchors, &q.ak).unwrap();
    // The certificate must be for this AK.
    let (_, _, azure_ak, _) = azure("extracted-evidence-v0");
    assert_eq!(
        check(JAN_2026, &certs, &anchors, &azure_ak)
            .unwrap_err()
            .code(),
        "tpm.chain"
    );
}

#[test]
fn ak_attributes_and_scheme_are_checked_for_tpm_public_areas() {
    let q = gce(1);
    let raw = vector(&format!("{GCE}/ak_pub_tpmt_public.bin"));
    // objectAttributes is bytes 4..8: 0x00050072.
    for (byte, mask, what) in [
        (5, 0x01, "restricted"),
        (5, 0x04, "sign"),
        (7, 0x02, "fixedTPM"),
        (7, 0x10, "fixedParent"),
        (5, 0x02, "decrypt"),
    ] {
        let mut bad = raw.clone();
        bad[byte] ^= mask;
        let ak = AttestationKey::parse(&bad).unwrap();
        let err = verify(
            &q.attest,
            &q.sig,
            &ak,
            Some(&q.pcrs),
            None,
            &nonce_opts(&GCE_NONCE),
        )
        .unwrap_err();
        assert_eq!(err.code(), "tpm.ak_attributes", "{what}");
        assert!(err.to_string().contains(what), "{err}");
    }
    // The AK's scheme is RSASSA/SHA-256: a signature claiming RSAPSS cannot be from it.
    let Signature::RsaSsa { sig, .. } = &q.sig else {
        panic!()
    };
    let pss = Signature::RsaPss {
        hash: HashAlg::Sha256,
        sig: sig.clone(),
    };
    let err = verify(
        &q.attest,
        &pss,
        &q.ak,
        Some(&q.pcrs),
        None,
        &nonce_opts(&GCE_NONCE),
    )
    .unwrap_err();
    assert_eq!(err.code(), "tpm.signature");
    let sha1 = Signature::RsaSsa {
        hash: HashAlg::Sha1,
        sig: sig.clone(),
    };
    let pem = AttestationKey::Spki(q.ak.public_key().clone());
    let err = verify(
        &q.attest,
        &sha1,
        &pem,
        Some(&q.pcrs),
        None,
        &nonce_opts(&GCE_NONCE),
    )
    .unwrap_err();
    assert_eq!(err.code(), "tpm.algorithm");
}

#[test]
fn qualified_signer_and_pcr_completeness() {
    let q = gce(0);
    let wrong = [0u8; 34];
    let opts = QuoteOptions {
        expected_qualified_signer: Some(&wrong),
        ..nonce_opts(&GCE_NONCE)
    };
    let err = verify(&q.attest, &q.sig, &q.ak, Some(&q.pcrs), None, &opts).unwrap_err();
    assert_eq!(err.code(), "tpm.qualified_signer");
    // PCR values of another bank than the quote selects: a PCR is missing.
    let sha256 = gce(1).pcrs;
    let err = verify(
        &q.attest,
        &q.sig,
        &q.ak,
        Some(&sha256),
        None,
        &nonce_opts(&GCE_NONCE),
    )
    .unwrap_err();
    assert_eq!(err.code(), "parse.malformed");
    // Without PCR values only the digest is attested, and an event log cannot be checked.
    let c = verify(
        &q.attest,
        &q.sig,
        &q.ak,
        None,
        None,
        &nonce_opts(&GCE_NONCE),
    )
    .unwrap();
    assert!(c.pcrs.is_empty());
    assert_eq!(c.pcr_digest.to_string(), GCE_QUOTES[0].1);
    let log = EventLog::parse(&vector(&format!("{GCE}/event_log.bin"))).unwrap();
    let err = verify(
        &q.attest,
        &q.sig,
        &q.ak,
        None,
        Some(&log),
        &nonce_opts(&GCE_NONCE),
    )
    .unwrap_err();
    assert_eq!(err.code(), "tpm.event_log");
}

#[test]
fn tampered_event_logs_are_rejected() {
    let q = gce(1);
    let raw = vector(&format!("{GCE}/event_log.bin"));
    // A flipped bit in the SecureBoot event's SHA-256 digest changes PCR 7's replay.
    let log = EventLog::parse(&raw).unwrap();
    let secure_boot = &log.events()[2];
    let digest = secure_boot.digest(HashAlg::Sha256).unwrap().to_vec();
    let pos = raw
        .windows(32)
        .position(|w| w == digest.as_slice())
        .unwrap();
    let mut bad = raw.clone();
    bad[pos] ^= 1;
    let bad_log = EventLog::parse(&bad).unwrap();
    let err = verify(
        &q.attest,
        &q.sig,
        &q.ak,
        Some(&q.pcrs),
        Some(&bad_log),
        &nonce_opts(&GCE_NONCE),
    )
    .unwrap_err();
    assert_eq!(err.code(), "tpm.event_log");
    assert!(err.to_string().contains("sha256 PCR 7"), "{err}");
    // Changing the SecureBoot value in the data keeps the replay but breaks data_verified,
    // so secure_boot is no longer claimed.
    let value_pos = raw
        .windows(21)
        .position(|w| w == b"S\0e\0c\0u\0r\0e\0B\0o\0o\0t\0\x01")
        .unwrap()
        + 20;
    let mut off = raw.clone();
    off[value_pos] = 0;
    let off_log = EventLog::parse(&off).unwrap();
    let c = verify(
        &q.attest,
        &q.sig,
        &q.ak,
        Some(&q.pcrs),
        Some(&off_log),
        &nonce_opts(&GCE_NONCE),
    )
    .unwrap();
    let events = c.event_log.unwrap();
    assert_eq!(events.secure_boot, None);
    assert!(!events.events[2].data_verified);
    // Every event's SHA-256 digest, flipped in its first byte: always rejected.
    for event in log.events() {
        let digest = event.digest(HashAlg::Sha256).unwrap();
        let pos = raw.windows(32).position(|w| w == digest).unwrap();
        let mut bad = raw.clone();
        bad[pos] ^= 0x80;
        let bad_log = EventLog::parse(&bad).unwrap();
        let err = verify(
            &q.attest,
            &q.sig,
            &q.ak,
            Some(&q.pcrs),
            Some(&bad_log),
            &nonce_opts(&GCE_NONCE),
        )
        .unwrap_err();
        assert_eq!(err.code(), "tpm.event_log", "event {}", event.sequence);
    }
}
