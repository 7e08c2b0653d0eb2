//! Every AWS Nitro Enclaves document in ../shared/vectors/nitro verifies to the facts its README
//! (section 5) states, and every natural negative and byte mutation listed there (section 10)
//! is rejected with the right code.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use attest_verifiers::nitro::{
    self, document, NitroClaims, NitroTrustAnchors, NitroVerifier, VerifyOptions,
    AWS_NITRO_ROOT_SHA256,
};
use attest_verifiers::x509::{self, Certificate};
use attest_verifiers::{Claims, Tee, UnixTime, VerifyError};
use aws_lc_rs::digest::{digest, SHA256};
use common::{at, vector};

fn doc(dir: &str) -> Vec<u8> {
    vector(&format!("nitro/{dir}/attestation_doc.cose"))
}

fn claims(result: Result<attest_verifiers::VerifiedEvidence, VerifyError>) -> NitroClaims {
    let verified = result.unwrap();
    assert_eq!(verified.claims().tee(), Tee::AwsNitro);
    match verified.into_claims() {
        Claims::AwsNitro(c) => c,
        other => panic!("unexpected claims {other:?}"),
    }
}

const ZERO48: &str = "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000";

struct Expected {
    dir: &'static str,
    /// The README's "verify at".
    at: &'static str,
    module_id: &'static str,
    timestamp_ms: u64,
    timestamp: &'static str,
    /// The README's leaf validity.
    leaf_not_before: &'static str,
    leaf_not_after: &'static str,
    /// PCR0, 1, 2, 3, 4 and 8; the others are zero.
    pcrs: [&'static str; 6],
    debug: bool,
    public_key: Option<&'static str>,
    user_data: Option<&'static str>,
    /// Hex of the nonce, or (for the 256-byte one) its SHA-256 as the README gives it.
    nonce: Option<&'static str>,
    nonce_sha256: Option<&'static str>,
}

/// README section 5, table by table.
const VALID: &[Expected] = &[
    Expected {
        dir: "evervault-beta-debug",
        at: "2022-10-12T14:00:00Z",
        module_id: "i-03ad7cdb817437eeb-enc0183cc7569b3f6e1",
        timestamp_ms: 1_665_582_606_081,
        timestamp: "2022-10-12T13:50:06.081Z",
        leaf_not_before: "2022-10-12T13:49:51Z",
        leaf_not_after: "2022-10-12T16:49:54Z",
        pcrs: [
            ZERO48,
            ZERO48,
            ZERO48,
            "4a9329d69c836267b18abbf9f4a38889124490453419e426818626348d21f989dc930b1562682a9082887454e53425aa",
            "615fa5b1a8838d392d8e54aacc3d9ac0db87d63cb826516c4cc94307c986fe465b29f3f54a55a2f121265528ae0aa6a7",
            ZERO48,
        ],
        debug: true,
        public_key: Some("6d7920737570657220736563726574206b6579"),
        user_data: Some("68656c6c6f2c20776f726c6421"),
        nonce: None,
        nonce_sha256: None,
    },
    Expected {
        dir: "evervault-beta-valid",
        at: "2022-10-13T09:00:00Z",
        module_id: "i-020b6af9246d90e92-enc0183d09086c24190",
        timestamp_ms: 1_665_651_482_136,
        timestamp: "2022-10-13T08:58:02.136Z",
        leaf_not_before: "2022-10-13T08:57:59Z",
        leaf_not_after: "2022-10-13T11:58:02Z",
        pcrs: [
            "f4d48b81a460c9916d1e685119074bf24660afd3e34fae9fca0a0d28d9d5599936332687e6f66fc890ac8cf150142d8b",
            "bcdf05fefccaa8e55bf2c8d6dee9e79bbff31e34bf28a99aa19e6b29c37ee80b214a414b7607236edf26fcb78654e63f",
            "d8f114da658de5481f8d9ec73907feb553560787522f705c92d7d96beed8e15e2aa611984e098c576832c292e8dc469a",
            "4a9329d69c836267b18abbf9f4a38889124490453419e426818626348d21f989dc930b1562682a9082887454e53425aa",
            "1f442c86d494a88185642086d904ed89f62fb66ee9997d7b1a4f040faab3bba4244c768a584e5778195b3afc715637c6",
            "8790eb3cce6c83d07e84b126dc61ca923333d6f66615c4a79157de48c5ab2418bdc60746ea7b7afbff03a1c6210201cb",
        ],
        debug: false,
        public_key: None,
        user_data: None,
        nonce: None,
        nonce_sha256: Some("6eea661682aa9b36a03f0db5c150a1596687cade6765849b5b74fbbef205a3f8"),
    },
    Expected {
        dir: "eternis-lib-test",
        at: "2024-09-17T20:48:11Z",
        module_id: "i-0bbf1bfe232b8c2ce-enc019201afdaee4f17",
        timestamp_ms: 1_726_606_030_288,
        timestamp: "2024-09-17T20:47:10.288Z",
        leaf_not_before: "2024-09-17T20:42:48Z",
        leaf_not_after: "2024-09-17T23:42:51Z",
        pcrs: [
            ZERO48,
            ZERO48,
            ZERO48,
            "671ca1e328f75015b2aeee60639cc5252bc835d8bb690444d1f8e2bf4260f73dc1b71e07a14a770c7d0becac6eb3b53f",
            "d352cfa31b8dc5f4856c9fa8181b19ed12f5da23883ac4ec729530f50dc1d37f1ac3876a7af39bd4de7a2aead14d14cb",
            ZERO48,
        ],
        debug: true,
        public_key: Some("64756d6d79"),
        user_data: Some("122026da09b4e909bf7d40f208e4862218f8837f7369f9bbbd1a057a69b4146ffe2812200000000000000000000000000000000000000000000000000000000000000000"),
        nonce: Some("0000000000000000000000000000000000000001"),
        nonce_sha256: None,
    },
];

#[test]
fn every_valid_document_verifies_to_the_readme_facts() {
    for e in VALID {
        let raw = doc(e.dir);
        let verifier = NitroVerifier::default();
        let c = claims(verifier.verify(&raw, &VerifyOptions::at(at(e.at))));
        assert_eq!(c.module_id, e.module_id, "{}", e.dir);
        assert_eq!(c.timestamp_ms, e.timestamp_ms, "{}", e.dir);
        assert_eq!(c.timestamp, e.timestamp, "{}", e.dir);
        assert_eq!(c.digest, "SHA384", "{}", e.dir);
        assert_eq!(c.debug, e.debug, "{}", e.dir);
        assert!(c.vendor_root, "{}", e.dir);
        assert_eq!(c.pcrs.len(), 16, "{}", e.dir);
        for (i, value) in &c.pcrs {
            let want = match i {
                0..=4 => e.pcrs[usize::from(*i)],
                8 => e.pcrs[5],
                _ => ZERO48,
            };
            assert_eq!(value.to_string(), want, "{} PCR{i}", e.dir);
        }
        let hex = |v: &Option<attest_verifiers::HexBytes>| v.as_ref().map(ToString::to_string);
        assert_eq!(hex(&c.public_key).as_deref(), e.public_key, "{}", e.dir);
        assert_eq!(hex(&c.user_data).as_deref(), e.user_data, "{}", e.dir);
        match e.nonce_sha256 {
            Some(sha) => {
                let nonce = c.nonce.as_ref().unwrap();
                assert_eq!(nonce.as_slice().len(), 256);
                assert_eq!(hex::encode(digest(&SHA256, nonce.as_slice())), sha);
            }
            None => assert_eq!(hex(&c.nonce).as_deref(), e.nonce, "{}", e.dir),
        }
        assert_eq!(verifier.cached_chains(), 1);

        // The leaf certificate's validity is what the README says, and its fingerprint is
        // the claims' certificate_sha256.
        let parsed = document::parse(&raw).unwrap();
        assert!(!parsed.tagged);
        let leaf = Certificate::from_der(&parsed.certificate).unwrap();
        assert_eq!(leaf.not_before(), at(e.leaf_not_before), "{}", e.dir);
        assert_eq!(leaf.not_after(), at(e.leaf_not_after), "{}", e.dir);
        assert_eq!(c.certificate_sha256.as_slice(), leaf.fingerprint());
        assert_eq!(parsed.cabundle.len(), 4);
    }
}

#[test]
fn claims_serialise_with_the_tee_tag_and_string_pcr_keys() {
    let raw = doc("eternis-lib-test");
    let verified = nitro::verify(&raw, &VerifyOptions::at(at("2024-09-17T20:48:11Z"))).unwrap();
    assert!(verified.claims().debug());
    assert_eq!(
        hex::encode(verified.claims().report_data()),
        "0000000000000000000000000000000000000001"
    );
    let json = serde_json::to_value(verified.claims()).unwrap();
    assert_eq!(json["tee"], "aws-nitro");
    assert_eq!(json["module_id"], "i-0bbf1bfe232b8c2ce-enc019201afdaee4f17");
    assert_eq!(json["timestamp"], "2024-09-17T20:47:10.288Z");
    assert_eq!(json["timestamp_ms"], 1_726_606_030_288u64);
    assert_eq!(json["debug"], true);
    assert_eq!(json["vendor_root"], true);
    assert_eq!(json["nonce"], "0000000000000000000000000000000000000001");
    let pcrs = json["pcrs"].as_object().unwrap();
    let keys: Vec<&str> = pcrs.keys().map(String::as_str).collect();
    let mut want: Vec<String> = (0..16).map(|i| i.to_string()).collect();
    want.sort();
    let mut got: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    got.sort();
    assert_eq!(got, want);
    assert_eq!(
        pcrs["4"],
        "d352cfa31b8dc5f4856c9fa8181b19ed12f5da23883ac4ec729530f50dc1d37f1ac3876a7af39bd4de7a2aead14d14cb"
    );

    let valid = nitro::verify(
        &doc("evervault-beta-valid"),
        &VerifyOptions::at(at("2022-10-13T09:00:00Z")),
    )
    .unwrap();
    let json = serde_json::to_value(valid.claims()).unwrap();
    assert_eq!(json["public_key"], serde_json::Value::Null);
    assert_eq!(json["user_data"], serde_json::Value::Null);
    assert_eq!(json["debug"], false);
}

/// Every document, including the one with a broken signature, fails on time one hour after its
/// leaf certificate expired — and also one second before it became valid.
#[test]
fn every_document_is_rejected_after_its_leaf_expires() {
    for dir in [
        "evervault-beta-debug",
        "evervault-beta-valid",
        "eternis-lib-test",
        "eternis-fixture-invalid",
    ] {
        let raw = doc(dir);
        let leaf = Certificate::from_der(&document::parse(&raw).unwrap().certificate).unwrap();
        let late = UnixTime::from_secs(leaf.not_after().as_secs() + 3600);
        let err = nitro::verify(&raw, &VerifyOptions::at(late)).unwrap_err();
        assert_eq!(err.code(), "nitro.cert_expired", "{dir}: {err}");
        assert!(
            matches!(err, VerifyError::CertExpired { ref subject, .. } if subject == leaf.subject_cn())
        );
        let early = UnixTime::from_secs(leaf.not_before().as_secs() - 1);
        let err = nitro::verify(&raw, &VerifyOptions::at(early)).unwrap_err();
        assert_eq!(err.code(), "nitro.cert_not_yet_valid", "{dir}: {err}");
    }
    // The README's own negative time: evervault-beta-valid at 12:00 (leaf expired 11:58:02).
    let err = nitro::verify(
        &doc("evervault-beta-valid"),
        &VerifyOptions::at(at("2022-10-13T12:00:00Z")),
    )
    .unwrap_err();
    assert_eq!(err.code(), "nitro.cert_expired");
    // At the present date every vector fails on time alone.
    let err = nitro::verify(
        &doc("evervault-beta-valid"),
        &VerifyOptions::at(at("2026-01-15T00:00:00Z")),
    )
    .unwrap_err();
    assert_eq!(err.code(), "nitro.cert_expired");
}

#[test]
fn broken_cose_signature_is_a_signature_error_with_a_valid_chain() {
    let raw = doc("eternis-fixture-invalid");
    let opts = VerifyOptions::at(at("2024-07-23T21:30:00Z"));
    let verifier = NitroVerifier::default();
    let err = verifier.verify(&raw, &opts).unwrap_err();
    assert_eq!(err.code(), "nitro.signature", "{err}");
    // The chain check runs first and passes with the AWS root (without it, the same document
    // fails on the chain); a chain is cached only under a document that verified.
    assert_eq!(verifier.cached_chains(), 0);
    let err = NitroVerifier::new(NitroTrustAnchors::empty())
        .verify(&raw, &opts)
        .unwrap_err();
    assert_eq!(err.code(), "nitro.chain");
    let parsed = document::parse(&raw).unwrap();
    assert_eq!(parsed.module_id, "i-0809070ca8037095f-enc0190e0c0368d490d");
    assert_eq!(parsed.timestamp_ms, 1_721_770_180_771);
    assert_eq!(
        hex::encode(parsed.nonce.unwrap()),
        "0000000000000000000000000000000000000000"
    );
}

#[test]
fn expected_nonce_is_compared_at_exact_length() {
    let raw = doc("eternis-lib-test");
    let time = at("2024-09-17T20:48:11Z");
    let good = hex::decode("0000000000000000000000000000000000000001").unwrap();
    let opts = VerifyOptions {
        expected_nonce: Some(&good),
        ..VerifyOptions::at(time)
    };
    nitro::verify(&raw, &opts).unwrap();
    let mut padded = good.clone();
    padded.push(0);
    let mut wrong = good.clone();
    wrong[19] = 2;
    for bad in [&good[..19], &padded[..], &wrong[..], &[][..]] {
        let opts = VerifyOptions {
            expected_nonce: Some(bad),
            ..VerifyOptions::at(time)
        };
        let err = nitro::verify(&raw, &opts).unwrap_err();
        assert_eq!(err.code(), "nitro.nonce", "{}", hex::encode(bad));
    }
    // A document without a nonce never matches an expected one.
    let opts = VerifyOptions {
        expected_nonce: Some(&good),
        ..VerifyOptions::at(at("2022-10-12T14:00:00Z"))
    };
    let err = nitro::verify(&doc("evervault-beta-debug"), &opts).unwrap_err();
    assert_eq!(err.code(), "nitro.nonce");
    // Expected user_data works the same way.
    let user_data = b"hello, world!";
    let opts = VerifyOptions {
        expected_user_data: Some(user_data),
        ..VerifyOptions::at(at("2022-10-12T14:00:00Z"))
    };
    nitro::verify(&doc("evervault-beta-debug"), &opts).unwrap();
    let opts = VerifyOptions {
        expected_user_data: Some(b"hello, world"),
        ..VerifyOptions::at(at("2022-10-12T14:00:00Z"))
    };
    let err = nitro::verify(&doc("evervault-beta-debug"), &opts).unwrap_err();
    assert_eq!(err.code(), "nitro.user_data");
}

/// README section 10, "Byte mutations that must be rejected", Nitro rows.
#[test]
fn readme_byte_mutations_are_rejected() {
    let raw = doc("evervault-beta-valid");
    let opts = VerifyOptions::at(at("2022-10-13T09:00:00Z"));
    nitro::verify(&raw, &opts).unwrap();
    // PCR0 of evervault-beta-valid starts at offset 104.
    let pcr0 = hex::decode("f4d48b81a460c9916d1e685119074bf24660afd3e34fae9fca0a0d28d9d5599936332687e6f66fc890ac8cf150142d8b").unwrap();
    assert_eq!(&raw[104..152], &pcr0[..]);
    for offset in [raw.len() - 1, 104] {
        let mut bad = raw.clone();
        bad[offset] ^= 0x01;
        let err = nitro::verify(&bad, &opts).unwrap_err();
        assert_eq!(err.code(), "nitro.signature", "offset {offset}: {err}");
    }
    // The same on every document that verifies (last byte: the signature's s).
    for e in VALID {
        let mut bad = doc(e.dir);
        let last = bad.len() - 1;
        bad[last] ^= 0x01;
        let err = nitro::verify(&bad, &VerifyOptions::at(at(e.at))).unwrap_err();
        assert_eq!(err.code(), "nitro.signature", "{}", e.dir);
    }
}

#[test]
fn tagged_documents_are_accepted_and_other_tags_refused() {
    let raw = doc("evervault-beta-valid");
    let opts = VerifyOptions::at(at("2022-10-13T09:00:00Z"));
    let tagged = [&[0xd2][..], &raw].concat();
    let c = claims(nitro::verify(&tagged, &opts));
    assert_eq!(c.module_id, "i-020b6af9246d90e92-enc0183d09086c24190");
    assert!(document::parse(&tagged).unwrap().tagged);
    // Tag 17 (COSE_Mac0) and tag 98 (COSE_Sign) are not COSE_Sign1.
    for tag in [&[0xd1][..], &[0xd8, 0x62][..]] {
        let other = [tag, &raw].concat();
        assert_eq!(
            nitro::verify(&other, &opts).unwrap_err().code(),
            "parse.malformed"
        );
    }
    // Trailing bytes after the document.
    let trailing = [&raw[..], &[0x00]].concat();
    assert_eq!(
        nitro::verify(&trailing, &opts).unwrap_err().code(),
        "parse.trailing"
    );
    // Base64 transport encoding decodes to the same bytes.
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&raw);
    assert_eq!(nitro::decode_input(b64.as_bytes()).unwrap(), &raw[..]);
    let unpadded = base64::engine::general_purpose::STANDARD_NO_PAD.encode(&raw);
    let wrapped: String = unpadded
        .as_bytes()
        .chunks(76)
        .map(|c| format!("{}\n", std::str::from_utf8(c).unwrap()))
        .collect();
    assert_eq!(nitro::decode_input(wrapped.as_bytes()).unwrap(), &raw[..]);
    assert_eq!(nitro::decode_input(&raw).unwrap(), &raw[..]);
}

#[test]
fn a_cached_chain_is_rechecked_for_time_and_signature() {
    let raw = doc("evervault-beta-valid");
    let verifier = NitroVerifier::default();
    let opts = VerifyOptions::at(at("2022-10-13T09:00:00Z"));
    verifier.verify(&raw, &opts).unwrap();
    verifier.verify(&raw, &opts).unwrap();
    assert_eq!(verifier.cached_chains(), 1);
    let err = verifier
        .verify(&raw, &VerifyOptions::at(at("2022-10-13T12:00:00Z")))
        .unwrap_err();
    assert_eq!(err.code(), "nitro.cert_expired");
    let mut bad = raw.clone();
    bad[104] ^= 1;
    assert_eq!(
        verifier.verify(&bad, &opts).unwrap_err().code(),
        "nitro.signature"
    );
    // Another enclave's document is another chain.
    verifier
        .verify(
            &doc("evervault-beta-debug"),
            &VerifyOptions::at(at("2022-10-12T14:00:00Z")),
        )
        .unwrap();
    assert_eq!(verifier.cached_chains(), 2);
}

#[test]
fn no_roots_means_no_trust() {
    let raw = doc("evervault-beta-valid");
    let verifier = NitroVerifier::new(NitroTrustAnchors::empty());
    let err = verifier
        .verify(&raw, &VerifyOptions::at(at("2022-10-13T09:00:00Z")))
        .unwrap_err();
    assert_eq!(err.code(), "nitro.chain", "{err}");
    // The AWS root passed as an extra root verifies, but is not reported as the vendor root.
    let mut anchors = NitroTrustAnchors::empty();
    anchors
        .add_roots(&vector("roots/aws-nitro/root.pem"))
        .unwrap();
    let c = claims(
        NitroVerifier::new(anchors).verify(&raw, &VerifyOptions::at(at("2022-10-13T09:00:00Z"))),
    );
    assert!(!c.vendor_root);
}

/// cabundle[0] of every document is the pinned root, byte for byte; and the pin in code is the
/// fingerprint both READMEs list for `aws-nitro/root.pem`.
#[test]
fn the_pinned_root_matches_the_readmes_and_the_documents() {
    let anchors = NitroTrustAnchors::builtin();
    let [root] = anchors.roots() else {
        panic!("one built-in root");
    };
    let fingerprint = hex::encode(root.certificate().fingerprint());
    assert_eq!(fingerprint, AWS_NITRO_ROOT_SHA256);

    let readme = String::from_utf8(vector("README.md")).unwrap();
    let row = readme
        .lines()
        .find(|l| l.starts_with("| `aws-nitro/root.pem`"))
        .expect("README row for aws-nitro/root.pem");
    let colon_hex: String = root
        .certificate()
        .fingerprint()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    assert!(row.contains(&colon_hex), "{colon_hex} not in {row}");

    let ours = include_str!("../roots/README.md");
    let row = ours
        .lines()
        .find(|l| l.starts_with("| `aws-nitro/root.pem`"))
        .expect("verifiers/roots/README.md row");
    assert!(row.contains(AWS_NITRO_ROOT_SHA256), "{row}");

    let der = vector("roots/aws-nitro/root.der");
    assert_eq!(root.certificate().der(), &der[..]);
    assert_eq!(
        x509::parse_bundle(&vector("roots/aws-nitro/root.pem")).unwrap()[0].der(),
        &der[..]
    );
    for dir in [
        "evervault-beta-debug",
        "evervault-beta-valid",
        "eternis-lib-test",
        "eternis-fixture-invalid",
    ] {
        let parsed = document::parse(&doc(dir)).unwrap();
        assert_eq!(parsed.cabundle[0], der, "{dir}");
    }
}
