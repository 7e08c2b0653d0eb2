//! `attest_sidecar::tpm` against a real TPM 2.0 implementation (swtpm/libtpms), checked with
//! `attest_verifiers::tpm` and, for quotes, with `tpm2_checkquote` from tpm2-tools. Every test
//! starts its own swtpm (own state, own local CA, own ports).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use attest_sidecar::tpm::{AkKind, EkKind, Tpm, TpmError, Tss2ResponseCodeKind};
use attest_verifiers::tpm::{
    self, AttestationKey, CertChain, CertifyEvidence, CertifyOptions, HashAlg, ObjectAttributes,
    PcrValues, Public, PublicKey, QuoteOptions, Signature,
};
use attest_verifiers::x509::{self, Certificate};
use support::{extended, nonce, now, start, QuoteInput, Verdict};

/// The PCRs the tests measure into (16 is the debug PCR, 23 the application PCR; both start
/// at zero and are resettable, so nothing else touches them).
const MEASURED: [u8; 2] = [16, 23];

/// Extends PCRs 16 and 23 in the SHA-1, SHA-256 and SHA-384 banks with digests of `label`
/// and returns the values they must now have (computed in software).
fn measure(t: &mut Tpm, label: &str) -> PcrValues {
    let banks = [HashAlg::Sha1, HashAlg::Sha256, HashAlg::Sha384];
    let mut expected = PcrValues::new();
    for index in MEASURED {
        let digests: Vec<(HashAlg, Vec<u8>)> = banks
            .iter()
            .map(|b| (*b, b.digest(format!("{label}/{index}").as_bytes())))
            .collect();
        let refs: Vec<(HashAlg, &[u8])> = digests.iter().map(|(b, d)| (*b, d.as_slice())).collect();
        t.pcr_extend(index, &refs).unwrap();
        for (bank, digest) in &digests {
            let zero = vec![0u8; bank.digest_len()];
            expected
                .insert(*bank, index, extended(*bank, &zero, digest))
                .unwrap();
        }
    }
    expected
}

fn selection() -> Vec<(HashAlg, Vec<u8>)> {
    vec![
        (HashAlg::Sha256, vec![0, 16, 23]),
        (HashAlg::Sha1, vec![16]),
        (HashAlg::Sha384, vec![16, 23]),
    ]
}

#[test]
fn quotes_by_rsa_and_ecc_aks_under_rsa_and_ecc_eks_verify_and_match_tpm2_checkquote() {
    let mut s = start();
    let expected = measure(&mut s.tpm, "boot");
    let dir = tempfile::tempdir().unwrap();
    for (ek_kind, ak_kind, scheme, key_type) in [
        (EkKind::Rsa2048, AkKind::Rsa2048, "rsassa", "rsa-2048"),
        (EkKind::Rsa2048, AkKind::EccP256, "ecdsa", "ecc-p256"),
        (EkKind::EccP256, AkKind::EccP256, "ecdsa", "ecc-p256"),
        (EkKind::EccP256, AkKind::Rsa2048, "rsassa", "rsa-2048"),
    ] {
        let ek = s.tpm.create_ek(ek_kind).unwrap();
        let ak = s.tpm.create_ak(&ek, ak_kind).unwrap();
        // Our Name computation over the exported TPMT_PUBLIC equals the TPM's.
        let ak_public = Public::parse(ak.public().tpmt_public()).unwrap();
        assert_eq!(ak_public.name(), ak.public().name());
        assert_eq!(
            Public::parse(ek.public().tpmt_public()).unwrap().name(),
            ek.public().name()
        );
        let n = nonce();
        let quote = s.tpm.quote(&ak, &n, &selection()).unwrap();
        let input = QuoteInput::new(&ak, &quote);
        // The AK is a child of the EK, a primary of the endorsement hierarchy.
        let ek_qn = tpm::qualified_name(&tpm::TPM_RH_ENDORSEMENT.to_be_bytes(), ek.public().name())
            .unwrap();
        let ak_qn = tpm::qualified_name(&ek_qn, ak.public().name()).unwrap();
        let claims = input
            .verify_with(&QuoteOptions {
                expected_nonce: Some(&n),
                expected_qualified_signer: Some(&ak_qn),
                ..QuoteOptions::at(now())
            })
            .unwrap();
        assert_eq!(claims.signature.scheme, scheme, "{ek_kind:?}/{ak_kind:?}");
        assert_eq!(claims.signature.hash, HashAlg::Sha256);
        assert_eq!(claims.ak.key_type, key_type);
        assert_eq!(
            claims.ak.name.as_ref().unwrap().as_slice(),
            ak.public().name()
        );
        assert_eq!(claims.nonce.as_slice(), n);
        assert_eq!(claims.pcr_select[&HashAlg::Sha256], [0, 16, 23]);
        assert_eq!(claims.pcr_select[&HashAlg::Sha1], [16]);
        assert_eq!(claims.pcr_select[&HashAlg::Sha384], [16, 23]);
        // The claims carry the values extended above, in every bank.
        for (bank, values) in expected.banks() {
            for (index, value) in values {
                if *bank == HashAlg::Sha1 && *index == 23 {
                    assert!(!claims.pcrs[bank].contains_key(index));
                    continue;
                }
                assert_eq!(claims.pcrs[bank][index].as_slice(), value.as_slice());
            }
        }
        assert_eq!(claims.pcrs[&HashAlg::Sha256][&0].as_slice(), [0; 32]);
        // The quote's PCR JSON is what the broker receives.
        assert_eq!(
            PcrValues::from_json(quote.pcrs_json().as_bytes()).unwrap(),
            quote.pcrs
        );
        // A TPM2B_PUBLIC and a TPMT_PUBLIC AK are the same key.
        let as_tpmt = QuoteInput {
            ak_public: ak.public().tpmt_public().to_vec(),
            ..input.clone()
        };
        as_tpmt.verify(&n).unwrap();
        assert_eq!(input.checkquote(&n, dir.path()), Verdict::Accepted);
        // A tampered one is refused by both.
        let mut tampered = input.clone();
        let last = tampered.signature.len() - 1;
        tampered.signature[last] ^= 1;
        assert_eq!(tampered.verify(&n).unwrap_err().code(), "tpm.signature");
        assert_eq!(tampered.checkquote(&n, dir.path()), Verdict::Signature);
    }
}

#[test]
fn quote_rejections_agree_with_tpm2_checkquote() {
    let mut s = start();
    measure(&mut s.tpm, "rejections");
    let dir = tempfile::tempdir().unwrap();
    let ek = s.tpm.create_ek(EkKind::EccP256).unwrap();
    for ak_kind in [AkKind::EccP256, AkKind::Rsa2048] {
        let ak = s.tpm.create_ak(&ek, ak_kind).unwrap();
        let n = nonce();
        let quote = s.tpm.quote(&ak, &n, &selection()).unwrap();
        let good = QuoteInput::new(&ak, &quote);
        good.verify(&n).unwrap();
        assert_eq!(good.checkquote(&n, dir.path()), Verdict::Accepted);

        // Each case: (what, input, nonce, our code, tpm2_checkquote's verdict).
        let mut cases: Vec<(&str, QuoteInput, Vec<u8>, &str, Verdict)> = Vec::new();
        // A bit of the attest flipped: in the clock (offset past magic, type, qualifiedSigner
        // and extraData would be fragile; flip the last byte, inside pcrDigest).
        let mut i = good.clone();
        let last = i.attest.len() - 1;
        i.attest[last] ^= 0x01;
        cases.push((
            "attest pcrDigest",
            i,
            n.clone(),
            "tpm.signature",
            Verdict::Signature,
        ));
        // The nonce inside the attest changed (the signature no longer covers it).
        let mut i = good.clone();
        let pos = i.attest.windows(n.len()).position(|w| w == n).unwrap();
        i.attest[pos] ^= 0x80;
        cases.push((
            "attest extraData",
            i,
            n.clone(),
            "tpm.signature",
            Verdict::Signature,
        ));
        // The signature.
        let mut i = good.clone();
        let mid = i.signature.len() / 2;
        i.signature[mid] ^= 0x04;
        cases.push((
            "signature",
            i,
            n.clone(),
            "tpm.signature",
            Verdict::Signature,
        ));
        // Another nonce expected than the one quoted.
        cases.push(("nonce", good.clone(), nonce(), "tpm.nonce", Verdict::Nonce));
        // A PCR value other than the quoted one.
        let mut i = good.clone();
        let mut changed = PcrValues::new();
        for (bank, values) in good.pcrs.banks() {
            for (index, value) in values {
                let mut value = value.clone();
                if *bank == HashAlg::Sha384 && *index == 23 {
                    value[0] ^= 1;
                }
                changed.insert(*bank, *index, value).unwrap();
            }
        }
        i.pcrs = changed;
        cases.push((
            "PCR value",
            i,
            n.clone(),
            "tpm.pcr_digest",
            Verdict::PcrDigest,
        ));
        // Values of the right bank but swapped between PCRs 16 and 23.
        let mut i = good.clone();
        let mut swapped = PcrValues::new();
        for (bank, values) in good.pcrs.banks() {
            let both = values.contains_key(&16) && values.contains_key(&23);
            for (index, value) in values {
                let index = match index {
                    16 if both => 23,
                    23 if both => 16,
                    other => *other,
                };
                swapped.insert(*bank, index, value.clone()).unwrap();
            }
        }
        i.pcrs = swapped;
        cases.push((
            "PCRs swapped",
            i,
            n.clone(),
            "tpm.pcr_digest",
            Verdict::PcrDigest,
        ));
        for (what, input, expected_nonce, code, verdict) in cases {
            assert_eq!(
                input.verify(&expected_nonce).unwrap_err().code(),
                code,
                "{ak_kind:?}: {what}"
            );
            assert_eq!(
                input.checkquote(&expected_nonce, dir.path()),
                verdict,
                "tpm2_checkquote ({ak_kind:?}: {what})"
            );
        }

        // PCR values from another bank: a SHA-256 quote cannot be checked with the SHA-1 and
        // SHA-384 values of the same PCRs, nor with SHA-384 values relabelled as SHA-256
        // (they are the wrong length for the bank).
        let sha256_only = s
            .tpm
            .quote(&ak, &n, &[(HashAlg::Sha256, vec![16, 23])])
            .unwrap();
        let mut i = QuoteInput::new(&ak, &sha256_only);
        i.verify(&n).unwrap();
        assert_eq!(i.checkquote(&n, dir.path()), Verdict::Accepted);
        let mut other_banks = PcrValues::new();
        for bank in [HashAlg::Sha1, HashAlg::Sha384] {
            for index in MEASURED {
                let v = good.pcrs.get(bank, index);
                if let Some(v) = v {
                    other_banks.insert(bank, index, v.to_vec()).unwrap();
                }
            }
        }
        i.pcrs = other_banks;
        assert_eq!(i.verify(&n).unwrap_err().code(), "parse.malformed");
        assert_eq!(i.checkquote(&n, dir.path()), Verdict::PcrDigest);
        let sha384_16 = good.pcrs.get(HashAlg::Sha384, 16).unwrap();
        assert_eq!(
            PcrValues::new()
                .insert(HashAlg::Sha256, 16, sha384_16.to_vec())
                .unwrap_err()
                .code(),
            "parse.malformed"
        );
        // The SHA-1 bank's values, hashed up to SHA-256 length, do not stand in either.
        let mut fake = PcrValues::new();
        for index in MEASURED {
            let v = good.pcrs.get(HashAlg::Sha1, index).unwrap_or(&[0; 20]);
            fake.insert(HashAlg::Sha256, index, HashAlg::Sha256.digest(v))
                .unwrap();
        }
        i.pcrs = fake;
        assert_eq!(i.verify(&n).unwrap_err().code(), "tpm.pcr_digest");
        assert_eq!(i.checkquote(&n, dir.path()), Verdict::PcrDigest);
    }
    // Another AK's key.
    let ak1 = s.tpm.create_ak(&ek, AkKind::EccP256).unwrap();
    let ak2 = s.tpm.create_ak(&ek, AkKind::EccP256).unwrap();
    let n = nonce();
    let q = s.tpm.quote(&ak1, &n, &selection()).unwrap();
    let mut i = QuoteInput::new(&ak1, &q);
    i.verify(&n).unwrap();
    assert_eq!(i.checkquote(&n, dir.path()), Verdict::Accepted);
    i.ak_public = ak2.public().tpm2b_public();
    assert_eq!(i.verify(&n).unwrap_err().code(), "tpm.signature");
    assert_eq!(i.checkquote(&n, dir.path()), Verdict::Signature);
}

#[test]
fn pcr_extend_and_read_across_banks() {
    let mut s = start();
    let expected = measure(&mut s.tpm, "pcrs");
    let all: Vec<(HashAlg, Vec<u8>)> = [HashAlg::Sha384, HashAlg::Sha1, HashAlg::Sha256]
        .into_iter()
        .map(|b| (b, (0..24).collect()))
        .collect();
    // 72 values: nine TPM2_PCR_Read calls of at most eight.
    let values = s.tpm.pcr_read(&all).unwrap();
    for bank in [HashAlg::Sha1, HashAlg::Sha256, HashAlg::Sha384] {
        assert_eq!(values.banks()[&bank].len(), 24);
        for index in MEASURED {
            assert_eq!(values.get(bank, index), expected.get(bank, index));
        }
        assert_eq!(values.get(bank, 0).unwrap(), vec![0; bank.digest_len()]);
    }
    // A second extension chains on the first.
    let d = HashAlg::Sha256.digest(b"second");
    s.tpm.pcr_extend(16, &[(HashAlg::Sha256, &d)]).unwrap();
    let after = s.tpm.pcr_read(&[(HashAlg::Sha256, vec![16])]).unwrap();
    assert_eq!(
        after.get(HashAlg::Sha256, 16).unwrap(),
        extended(
            HashAlg::Sha256,
            expected.get(HashAlg::Sha256, 16).unwrap(),
            &d
        )
    );
    // The other banks did not move.
    let sha1 = s.tpm.pcr_read(&[(HashAlg::Sha1, vec![16])]).unwrap();
    assert_eq!(sha1.get(HashAlg::Sha1, 16), expected.get(HashAlg::Sha1, 16));
    // Refused before reaching the TPM, or by it.
    assert!(matches!(
        s.tpm.pcr_extend(24, &[(HashAlg::Sha256, &d)]),
        Err(TpmError::InvalidInput { .. })
    ));
    assert!(matches!(
        s.tpm.pcr_extend(16, &[(HashAlg::Sha1, &d)]),
        Err(TpmError::InvalidInput { .. })
    ));
    assert!(matches!(
        s.tpm.pcr_read(&[(HashAlg::Sha256, vec![24])]),
        Err(TpmError::InvalidInput { .. })
    ));
    // The SHA-512 bank exists in libtpms but is not allocated here.
    let err = s.tpm.pcr_read(&[(HashAlg::Sha512, vec![16])]).unwrap_err();
    assert!(matches!(err, TpmError::Unexpected { .. }), "{err}");
    let ek = s.tpm.create_ek(EkKind::EccP256).unwrap();
    let ak = s.tpm.create_ak(&ek, AkKind::EccP256).unwrap();
    assert!(matches!(
        s.tpm.quote(&ak, &[0; 65], &selection()),
        Err(TpmError::InvalidInput { .. })
    ));
    assert!(matches!(
        s.tpm.quote(&ak, &nonce(), &[(HashAlg::Sha256, vec![])]),
        Err(TpmError::InvalidInput { .. })
    ));
}

#[test]
fn binding_key_is_certified_non_exportable_and_signs_es256() {
    let mut s = start();
    let dir = tempfile::tempdir().unwrap();
    let ek = s.tpm.create_ek(EkKind::Rsa2048).unwrap();
    let key = s.tpm.create_binding_key().unwrap();
    let public = Public::parse(key.public().tpmt_public()).unwrap();
    assert_eq!(public.name(), key.public().name());

    // Non-exportable: the attributes of the key the TPM holds (its Name, which TPM2_Certify
    // below signs, commits to them) make it a key that never left the TPM and never can.
    let a = public.attributes;
    for (bit, name) in [
        (ObjectAttributes::FIXED_TPM, "fixedTPM"),
        (ObjectAttributes::FIXED_PARENT, "fixedParent"),
        (
            ObjectAttributes::SENSITIVE_DATA_ORIGIN,
            "sensitiveDataOrigin",
        ),
        (ObjectAttributes::USER_WITH_AUTH, "userWithAuth"),
        (ObjectAttributes::SIGN_ENCRYPT, "sign"),
    ] {
        assert!(a.contains(bit), "{name} not set: {:?}", a.names());
    }
    for bit in [
        ObjectAttributes::RESTRICTED,
        ObjectAttributes::DECRYPT,
        ObjectAttributes::ENCRYPTED_DUPLICATION,
    ] {
        assert!(!a.contains(bit), "{:?}", a.names());
    }
    // The export path itself: TPM2_Duplicate, authorized the only way the TPM allows
    // (a policy session), hands out the private part of a duplicable twin of the key…
    let twin = s.tpm.create_exportable_key().unwrap();
    let twin_public = Public::parse(twin.public().tpmt_public()).unwrap();
    assert!(!twin_public.attributes.contains(ObjectAttributes::FIXED_TPM));
    let exported = s.tpm.try_export(&twin).unwrap();
    assert!(
        exported.len() > 32,
        "a duplicate blob: {} bytes",
        exported.len()
    );
    // …and is refused for the binding key.
    let refused = s.tpm.try_export(&key).unwrap_err();
    assert!(matches!(refused, TpmError::Tss { .. }), "{refused}");
    assert!(refused.to_string().contains("TPM2_Duplicate"), "{refused}");
    eprintln!("binding key export refused: {refused}");

    // tpm2-tools decodes the same public area the same way.
    let printed = support::tpm2_print_public(&key.public().tpm2b_public(), dir.path());
    assert!(
        printed.contains("value: fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign\n"),
        "{printed}"
    );
    assert!(printed.contains("NIST p256"), "{printed}");

    // The exported point is the public area's key.
    let point = key.public_point();
    match public.public_key().unwrap() {
        PublicKey::Ecc { x, y, .. } => {
            assert_eq!(point[0], 4);
            assert_eq!(&point[1..33], x.as_slice());
            assert_eq!(&point[33..], y.as_slice());
        }
        other => panic!("{other:?}"),
    }

    for ak_kind in [AkKind::Rsa2048, AkKind::EccP256] {
        let ak = s.tpm.create_ak(&ek, ak_kind).unwrap();
        let ak_key = AttestationKey::parse(&ak.public().tpm2b_public()).unwrap();
        let qualifying = nonce();
        let c = s.tpm.certify(&ak, &key, &qualifying).unwrap();
        let sig = Signature::parse(&c.signature).unwrap();
        let evidence = CertifyEvidence {
            attest: &c.attest,
            signature: &sig,
            ak: &ak_key,
            certified: &public,
        };
        fn opts(q: &[u8]) -> CertifyOptions<'_> {
            CertifyOptions {
                expected_qualifying_data: Some(q),
                ..CertifyOptions::at(now())
            }
        }
        let certified = tpm::verify_certify(&evidence, &opts(&qualifying)).unwrap();
        assert_eq!(certified.name(), key.public().name());
        assert_eq!(certified.public_key(), &public.public_key().unwrap());
        assert_eq!(certified.ak(), ak_key.public_key());
        // The certified qualified name: binding key under the SRK of the owner hierarchy.
        assert_eq!(certified.qualified_name().len(), 34);
        assert_eq!(
            tpm::verify_certify(&evidence, &opts(&nonce()))
                .unwrap_err()
                .code(),
            "tpm.nonce"
        );
        let mut tampered = c.attest.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        let bad = CertifyEvidence {
            attest: &tampered,
            ..evidence
        };
        assert!(tpm::verify_certify(&bad, &opts(&qualifying)).is_err());
        // Another key presented in place of the certified one.
        let other = s.tpm.create_binding_key().unwrap();
        let other_public = Public::parse(other.public().tpmt_public()).unwrap();
        let swapped = CertifyEvidence {
            certified: &other_public,
            ..evidence
        };
        assert_eq!(
            tpm::verify_certify(&swapped, &opts(&qualifying))
                .unwrap_err()
                .code(),
            "tpm.certified_name"
        );
    }

    // ES256: the TPM signs SHA-256(message); an independent ECDSA implementation verifies
    // r ‖ s under the exported point.
    let message = b"eyJhbGciOiJFUzI1NiIsInR5cCI6ImRwb3Arand0In0.eyJodG0iOiJQT1NUIn0";
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, message);
    let sig = s.tpm.sign_digest(&key, digest.as_ref()).unwrap();
    let verifier = aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED,
        point,
    );
    verifier.verify(message, &sig).unwrap();
    assert!(verifier.verify(b"another message", &sig).is_err());
    let mut bad = sig;
    bad[63] ^= 1;
    assert!(verifier.verify(message, &bad).is_err());
    // ECDSA is randomised: a second signature differs and verifies too.
    let sig2 = s.tpm.sign_digest(&key, digest.as_ref()).unwrap();
    assert_ne!(sig, sig2);
    verifier.verify(message, &sig2).unwrap();
    // Another binding key's signature does not verify under this key.
    let other = s.tpm.create_binding_key().unwrap();
    let other_sig = s.tpm.sign_digest(&other, digest.as_ref()).unwrap();
    assert!(verifier.verify(message, &other_sig).is_err());
    assert!(matches!(
        s.tpm.sign_digest(&key, &[0; 48]),
        Err(TpmError::InvalidInput { .. })
    ));
}

#[test]
fn ak_enrollment_by_activate_credential() {
    let mut s = start();
    for ek_kind in [EkKind::Rsa2048, EkKind::EccP256, EkKind::EccP384] {
        let ek = s.tpm.create_ek(ek_kind).unwrap();
        let ek_public = Public::parse(ek.public().tpmt_public()).unwrap();
        let ak = s.tpm.create_ak(&ek, AkKind::EccP256).unwrap();
        let secret = nonce();
        let credential = tpm::make_credential(&ek_public, ak.public().name(), &secret).unwrap();
        let returned = s
            .tpm
            .activate_credential(
                &ek,
                &ak,
                credential.id_object(),
                credential.encrypted_secret(),
            )
            .unwrap();
        assert_eq!(returned.as_slice(), secret, "{ek_kind:?}");
        tpm::check_activated_secret(&secret, &returned).unwrap();
        assert_eq!(
            tpm::check_activated_secret(&nonce(), &returned)
                .unwrap_err()
                .code(),
            "tpm.credential"
        );

        // A credential made for another AK's Name does not activate with this AK.
        let other = s.tpm.create_ak(&ek, AkKind::Rsa2048).unwrap();
        let for_other = tpm::make_credential(&ek_public, other.public().name(), &secret).unwrap();
        let err = s
            .tpm
            .activate_credential(
                &ek,
                &ak,
                for_other.id_object(),
                for_other.encrypted_secret(),
            )
            .unwrap_err();
        assert_eq!(
            err.response_kind(),
            Some(Tss2ResponseCodeKind::Integrity),
            "{ek_kind:?}: {err}"
        );
        // … but does with the AK it names.
        let ok = s
            .tpm
            .activate_credential(
                &ek,
                &other,
                for_other.id_object(),
                for_other.encrypted_secret(),
            )
            .unwrap();
        assert_eq!(ok.as_slice(), secret);
        // Malformed wire forms are refused before the TPM sees them.
        let mut short = credential.id_object().to_vec();
        short.pop();
        assert!(matches!(
            s.tpm
                .activate_credential(&ek, &ak, &short, credential.encrypted_secret()),
            Err(TpmError::InvalidInput { .. })
        ));
    }
    // A credential sealed to another EK of the same TPM does not open with this one.
    let rsa = s.tpm.create_ek(EkKind::Rsa2048).unwrap();
    let ecc = s.tpm.create_ek(EkKind::EccP256).unwrap();
    let ak = s.tpm.create_ak(&rsa, AkKind::EccP256).unwrap();
    let ecc_public = Public::parse(ecc.public().tpmt_public()).unwrap();
    let c = tpm::make_credential(&ecc_public, ak.public().name(), b"sealed to the ECC EK").unwrap();
    let err = s
        .tpm
        .activate_credential(&rsa, &ak, c.id_object(), c.encrypted_secret())
        .unwrap_err();
    assert!(
        err.response_kind().is_some(),
        "not refused by the TPM: {err}"
    );
}

#[test]
fn ek_certificates_chain_to_the_local_ca() {
    let mut s = start();
    let root = x509::parse_bundle(&s.swtpm.ca_root_pem().unwrap()).unwrap();
    let issuer = x509::parse_bundle(&s.swtpm.ca_issuer_pem().unwrap()).unwrap();
    assert_eq!(root[0].subject_cn(), "swtpm-localca-rootca");
    let files = s.swtpm.ek_cert_files().unwrap();
    assert_eq!(
        files.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        ["rsa2048", "secp384r1"]
    );
    let mut eks = Vec::new();
    for (kind, file, persistent) in [
        (EkKind::Rsa2048, "rsa2048", "0x81010001"),
        (EkKind::EccP384, "secp384r1", "0x81010016"),
    ] {
        let ek = s.tpm.create_ek(kind).unwrap();
        let public = Public::parse(ek.public().tpmt_public()).unwrap();
        let der = s
            .tpm
            .ek_certificate(kind)
            .unwrap()
            .expect("EK certificate in NV");
        // NV holds what swtpm_setup wrote out.
        assert_eq!(der, files.iter().find(|(n, _)| n == file).unwrap().1);
        let cert = Certificate::from_der(&der).unwrap();
        assert!(public.matches_certificate(&cert).unwrap(), "{kind:?}");
        let certs = [cert, issuer[0].clone()];
        let chain = CertChain {
            certs: &certs,
            anchors: &root,
        };
        let claims = tpm::verify_chain(&chain, &public.public_key().unwrap(), now()).unwrap();
        assert_eq!(claims.path_len, 3);
        assert_eq!(claims.issuer, "swtpm-localca");
        // Without the intermediate, or with only the intermediate trusted by mistake for a
        // root the chain does not reach, it fails.
        let leaf_only = CertChain {
            certs: &certs[..1],
            anchors: &root,
        };
        assert_eq!(
            tpm::verify_chain(&leaf_only, &public.public_key().unwrap(), now())
                .unwrap_err()
                .code(),
            "tpm.chain"
        );
        // Before the CA existed.
        assert_eq!(
            tpm::verify_chain(
                &chain,
                &public.public_key().unwrap(),
                attest_verifiers::UnixTime::from_secs(now().as_secs() - 86_400)
            )
            .unwrap_err()
            .code(),
            "tpm.cert_not_yet_valid"
        );
        // The template EK is the very key swtpm_setup made persistent (read by tpm2-tools).
        let out = std::process::Command::new("tpm2_readpublic")
            .env("TPM2TOOLS_TCTI", s.swtpm.tcti())
            .args(["-c", persistent, "-o"])
            .arg(s.swtpm.dir().join(format!("{file}.pub")))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let persisted = std::fs::read(s.swtpm.dir().join(format!("{file}.pub"))).unwrap();
        assert_eq!(persisted, ek.public().tpm2b_public(), "{kind:?}");
        eks.push((public, certs));
    }
    // An EK certificate does not certify the other EK.
    let (rsa_public, rsa_certs) = &eks[0];
    let (ecc_public, _) = &eks[1];
    let chain = CertChain {
        certs: rsa_certs,
        anchors: &root,
    };
    tpm::verify_chain(&chain, &rsa_public.public_key().unwrap(), now()).unwrap();
    assert_eq!(
        tpm::verify_chain(&chain, &ecc_public.public_key().unwrap(), now())
            .unwrap_err()
            .code(),
        "tpm.chain"
    );
    // swtpm 0.7 provisions no P-256 EK certificate (its ECC EK is P-384).
    assert_eq!(s.tpm.ek_certificate(EkKind::EccP256).unwrap(), None);
    // Another swtpm's CA is not this one's.
    let other = attest_sidecar::swtpm_harness::Swtpm::start().unwrap();
    let other_root = x509::parse_bundle(&other.ca_root_pem().unwrap()).unwrap();
    let chain = CertChain {
        certs: rsa_certs,
        anchors: &other_root,
    };
    assert_eq!(
        tpm::verify_chain(&chain, &rsa_public.public_key().unwrap(), now())
            .unwrap_err()
            .code(),
        "tpm.chain"
    );
}

#[test]
fn tcti_failures_are_typed() {
    // Nothing listens on port 1 (privileged, so no test's swtpm can be there either).
    let err = Tpm::open("swtpm:host=127.0.0.1,port=1").unwrap_err();
    assert!(matches!(err, TpmError::Tcti { .. }), "{err}");
    // tss-esapi 7 would read this as localhost:2321; we refuse it.
    let err = Tpm::open("swtpm:path=/tmp/swtpm.sock").unwrap_err();
    assert!(matches!(err, TpmError::Tcti { .. }), "{err}");
    assert!(err.to_string().contains("path"), "{err}");
    // Two connections to one swtpm work one after the other.
    let s = start();
    let tcti = s.swtpm.tcti();
    drop(s.tpm);
    let mut again = Tpm::open(&tcti).unwrap();
    assert_eq!(again.tcti().to_string(), tcti);
    again
        .pcr_read(&[(HashAlg::Sha256, vec![0])])
        .expect("read after reconnecting");
}
