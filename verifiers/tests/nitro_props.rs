//! Property tests: no byte flip in a Nitro document's signature or payload verifies, and no
//! malformed CBOR — deep nesting, huge declared lengths, wrong types, duplicate keys,
//! indefinite lengths, trailing bytes, random bytes — panics the parser or makes it allocate
//! for a length the input does not carry (a 2^63-byte declared length returns a typed error at
//! once instead of aborting on allocation).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::sync::OnceLock;

use attest_fixtures::nitro::{
    cose_layout, encode_cbor, sign_cose, DocumentBuilder, EnclaveKey, NitroHierarchy,
    PROTECTED_ES384,
};
use attest_verifiers::nitro::{document, NitroTrustAnchors, NitroVerifier, VerifyOptions};
use attest_verifiers::UnixTime;
use ciborium::value::Value;
use common::{at, vector};
use proptest::prelude::*;
use time::macros::datetime;

fn real() -> Vec<u8> {
    vector("nitro/evervault-beta-valid/attestation_doc.cose")
}

fn real_opts() -> VerifyOptions<'static> {
    VerifyOptions::at(at("2022-10-13T09:00:00Z"))
}

/// One simulated enclave for all property cases (P-384 key generation is cheap, but the
/// verifier's cache is what makes thousands of cases fast).
struct Sim {
    hierarchy: NitroHierarchy,
    enclave: EnclaveKey,
    verifier: NitroVerifier,
    doc: Vec<u8>,
}

fn sim() -> &'static Sim {
    static SIM: OnceLock<Sim> = OnceLock::new();
    SIM.get_or_init(|| {
        let hierarchy = NitroHierarchy::generate(datetime!(2025-06-01 12:00:00 UTC)).unwrap();
        let enclave = hierarchy
            .issue_enclave(datetime!(2025-06-01 12:00:00 UTC))
            .unwrap();
        let mut anchors = NitroTrustAnchors::empty();
        anchors.add_roots(hierarchy.roots_pem().as_bytes()).unwrap();
        let mut b = DocumentBuilder::new(&hierarchy, &enclave);
        b.nonce = Some(vec![9; 32]);
        b.user_data = Some(vec![8; 64]);
        b.public_key = Some(vec![7; 97]);
        let doc = b.sign(enclave.key()).unwrap();
        Sim {
            hierarchy,
            enclave,
            verifier: NitroVerifier::new(anchors),
            doc,
        }
    })
}

fn sim_opts() -> VerifyOptions<'static> {
    VerifyOptions::at(UnixTime::parse_rfc3339("2025-06-01T12:00:00Z").unwrap())
}

impl Sim {
    fn sign(&self, payload: &[u8]) -> Vec<u8> {
        sign_cose(payload, self.enclave.key(), &PROTECTED_ES384, false).unwrap()
    }

    fn payload_map(&self) -> Vec<(Value, Value)> {
        DocumentBuilder::new(&self.hierarchy, &self.enclave)
            .payload_value()
            .into_map()
            .unwrap()
    }
}

/// Every byte of a real document, flipped one bit at a time (XOR 0x01 and XOR 0x80): every
/// flip is rejected, and every flip inside the signature is a signature failure.
#[test]
fn every_single_byte_flip_of_a_real_document_is_rejected() {
    let doc = real();
    let verifier = NitroVerifier::default();
    verifier.verify(&doc, &real_opts()).unwrap();
    let layout = cose_layout(&doc).unwrap();
    assert_eq!(layout.signature.len(), 96);
    let mut codes = std::collections::BTreeMap::<&str, usize>::new();
    for offset in 0..doc.len() {
        for mask in [0x01u8, 0x80] {
            let mut bad = doc.clone();
            bad[offset] ^= mask;
            let err = verifier
                .verify(&bad, &real_opts())
                .expect_err(&format!("flip {mask:#x} at {offset} verified"));
            if layout.signature.contains(&offset) {
                assert_eq!(err.code(), "nitro.signature", "{offset}: {err}");
            }
            *codes.entry(err.code()).or_default() += 1;
        }
    }
    assert_eq!(codes.values().sum::<usize>(), 2 * doc.len());
    // Flips land on the signature, the chain and the parser; all three are exercised.
    for code in ["nitro.signature", "nitro.chain", "parse.malformed"] {
        assert!(codes.contains_key(code), "{codes:?}");
    }
    // Only the first chain stayed cached: a broken chain is never cached.
    assert_eq!(verifier.cached_chains(), 1);
}

/// A deeply nested or huge-length payload, correctly signed, is a typed parse error.
#[test]
fn hostile_cbor_inside_a_signed_payload_is_a_parse_error() {
    let s = sim();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "array nesting 9",
            [vec![0x81; 9], vec![0x00]].concat(),
            "parse.malformed",
        ),
        ("array nesting 10000", vec![0x81; 10_000], "parse.malformed"),
        (
            "map nesting 5000",
            [0xa1u8, 0x00].repeat(5000),
            "parse.malformed",
        ),
        ("tag nesting 20000", vec![0xc6; 20_000], "parse.malformed"),
        (
            "bstr of 2^63 bytes",
            vec![0x5b, 0x80, 0, 0, 0, 0, 0, 0, 0, 0xAB],
            "parse.truncated",
        ),
        (
            "text of 2^64-1 bytes",
            vec![0x7b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            "parse.truncated",
        ),
        (
            "array of 2^32 items",
            vec![0x9b, 0, 0, 0, 1, 0, 0, 0, 0, 0x00],
            "parse.truncated",
        ),
        (
            "map of 2^40 pairs",
            vec![0xbb, 0, 0, 1, 0, 0, 0, 0, 0, 0x00, 0x00],
            "parse.truncated",
        ),
        (
            "map of 2^63 pairs",
            vec![0xbb, 0x80, 0, 0, 0, 0, 0, 0, 0],
            "parse.truncated",
        ),
        ("indefinite map", vec![0xbf, 0xff], "parse.malformed"),
        (
            "indefinite text",
            vec![0x7f, 0x61, b'a', 0xff],
            "parse.malformed",
        ),
        ("reserved info 28", vec![0x1c], "parse.malformed"),
        ("lone break", vec![0xff], "parse.malformed"),
        ("empty", vec![], "parse.truncated"),
        ("truncated map", vec![0xa9, 0x69], "parse.truncated"),
        (
            "invalid UTF-8 key",
            vec![0xa1, 0x61, 0xff, 0x00],
            "parse.malformed",
        ),
        ("not a map", vec![0x00], "parse.malformed"),
        (
            "float",
            vec![0xfb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0],
            "parse.malformed",
        ),
    ];
    for (name, payload, code) in cases {
        let err = s
            .verifier
            .verify(&s.sign(&payload), &sim_opts())
            .unwrap_err();
        assert_eq!(err.code(), code, "{name}: {err}");
    }
    // The same hostile items in the place of a field value.
    let map = s.payload_map();
    let good = encode_cbor(&Value::Map(map.clone())).unwrap();
    let nonce_at = good.windows(6).position(|w| w == b"\x65nonce").unwrap();
    // The nonce value is the last item of the payload: replace it.
    let prefix = &good[..nonce_at + 6];
    for (value, code) in [
        (
            vec![0x5b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            "parse.truncated",
        ),
        (
            vec![0x9b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            "parse.truncated",
        ),
        ([vec![0x81; 20], vec![0x40]].concat(), "parse.malformed"),
        (vec![0x5f, 0x41, 0x00, 0xff], "parse.malformed"),
    ] {
        let payload = [prefix, &value].concat();
        let err = s
            .verifier
            .verify(&s.sign(&payload), &sim_opts())
            .unwrap_err();
        assert_eq!(err.code(), code, "{}", hex::encode(&value));
    }
    // Documents over the size limit are refused before decoding.
    let huge = vec![0u8; document::MAX_DOCUMENT_BYTES + 1];
    assert_eq!(
        document::parse(&huge).unwrap_err().code(),
        "parse.malformed"
    );
}

/// An arbitrary CBOR value tree (bounded), for payloads and envelopes.
fn cbor_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(|i| Value::Integer(i.into())),
        any::<u64>().prop_map(|i| Value::Integer(i.into())),
        prop::collection::vec(any::<u8>(), 0..64).prop_map(Value::Bytes),
        "[a-z_]{0,12}".prop_map(Value::Text),
        prop::sample::select(vec![
            "module_id",
            "digest",
            "timestamp",
            "pcrs",
            "certificate",
            "cabundle",
            "public_key",
            "user_data",
            "nonce",
            "SHA384",
        ])
        .prop_map(|s| Value::Text(s.to_owned())),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Null),
        any::<f64>().prop_map(Value::Float),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((inner.clone(), inner.clone()), 0..10).prop_map(Value::Map),
            (0u64..64, inner).prop_map(|(t, v)| Value::Tag(t, Box::new(v))),
        ]
    })
}

/// Whether `value` is a valid value for payload field number `field` (in the NSM's key order)
/// of the simulated document, by the specification's rules — written out independently of
/// the parser.
fn valid_field(field: usize, value: &Value) -> bool {
    let int = |v: &Value| v.as_integer().and_then(|i| u64::try_from(i).ok());
    match (field, value) {
        (0, Value::Text(t)) => !t.is_empty(),
        (1, Value::Text(t)) => t == "SHA384",
        (2, v) => int(v).is_some_and(|ms| ms <= 253_402_300_799_999),
        (3, Value::Map(entries)) => {
            let mut seen = std::collections::BTreeSet::new();
            !entries.is_empty()
                && entries.iter().all(|(k, v)| {
                    int(k).is_some_and(|i| i <= 31 && seen.insert(i))
                        && matches!(v, Value::Bytes(b) if b.len() == 48)
                })
        }
        // Only the enclave's own certificate and bundle verify.
        (4 | 5, _) => false,
        (6, Value::Bytes(b)) => !b.is_empty() && b.len() <= 1024,
        (7 | 8, Value::Bytes(b)) => b.len() <= 512,
        (6..=8, Value::Null) => true,
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Any non-zero XOR mask over any bytes of the signature or the payload of a simulated
    /// document is rejected; inside the signature, always as a signature failure.
    #[test]
    fn random_flips_in_signature_or_payload_are_rejected(
        in_signature in any::<bool>(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), 1..=255u8), 1..6),
    ) {
        let s = sim();
        let layout = cose_layout(&s.doc).unwrap();
        let range = if in_signature { layout.signature } else { layout.payload };
        let mut bad = s.doc.clone();
        for (index, mask) in &edits {
            bad[range.start + index.index(range.len())] ^= mask;
        }
        prop_assume!(bad != s.doc);
        let err = s.verifier.verify(&bad, &sim_opts()).unwrap_err();
        if in_signature {
            prop_assert_eq!(err.code(), "nitro.signature");
        }
    }

    /// Random bytes, and random bytes behind a plausible COSE prefix, never panic and never
    /// verify.
    #[test]
    fn random_bytes_never_panic(
        body in prop::collection::vec(any::<u8>(), 0..2048),
        prefix in prop::sample::select(vec![&[][..], &[0x84][..], &[0xd2, 0x84][..], &[0x84, 0x44, 0xa1, 0x01, 0x38, 0x22, 0xa0][..]]),
    ) {
        let input = [prefix, &body].concat();
        let _ = document::parse(&input);
        prop_assert!(sim().verifier.verify(&input, &sim_opts()).is_err());
        prop_assert!(NitroVerifier::default().verify(&input, &real_opts()).is_err());
    }

    /// Every truncation of a real document is rejected; every extension is trailing data.
    #[test]
    fn truncations_and_extensions_are_rejected(
        cut in any::<prop::sample::Index>(),
        extra in prop::collection::vec(any::<u8>(), 1..32),
    ) {
        let doc = real();
        let cut = cut.index(doc.len());
        prop_assert!(document::parse(&doc[..cut]).unwrap_err().code().starts_with("parse."));
        let long = [&doc[..], &extra].concat();
        prop_assert_eq!(document::parse(&long).unwrap_err().code(), "parse.trailing");
    }

    /// Arbitrary CBOR value trees as the (correctly signed) payload, and as the whole
    /// document, are typed errors.
    #[test]
    fn arbitrary_cbor_is_rejected_without_panic(value in cbor_value()) {
        let s = sim();
        let bytes = encode_cbor(&value).unwrap();
        let err = s.verifier.verify(&s.sign(&bytes), &sim_opts()).unwrap_err();
        prop_assert!(err.code().starts_with("parse.") || err.code() == "nitro.algorithm", "{}", err);
        prop_assert!(document::parse(&bytes).is_err());
    }

    /// Replacing one payload field with an arbitrary value of another shape is rejected
    /// (unless the value happens to be the same), and an arbitrary extra entry is rejected.
    #[test]
    fn wrong_types_and_extra_entries_are_rejected(
        field in 0usize..9,
        value in cbor_value(),
        key in cbor_value(),
    ) {
        let s = sim();
        let mut map = s.payload_map();
        let original = map[field].1.clone();
        prop_assume!(value != original);
        map[field].1 = value.clone();
        let result = s.verifier.verify(&s.sign(&encode_cbor(&Value::Map(map)).unwrap()), &sim_opts());
        if !valid_field(field, &value) {
            prop_assert!(result.is_err(), "field {} accepted {:?}", field, value);
        }
        let mut map = s.payload_map();
        map.push((key, value));
        prop_assert!(s.verifier.verify(&s.sign(&encode_cbor(&Value::Map(map)).unwrap()), &sim_opts()).is_err());
    }

    /// Any payload key repeated, anywhere in the map, with any value: rejected.
    #[test]
    fn duplicate_keys_are_rejected(field in 0usize..9, position in any::<prop::sample::Index>()) {
        let s = sim();
        let mut map = s.payload_map();
        let dup = map[field].clone();
        let at = position.index(map.len() + 1);
        map.insert(at, dup);
        let err = s.verifier.verify(&s.sign(&encode_cbor(&Value::Map(map)).unwrap()), &sim_opts()).unwrap_err();
        prop_assert_eq!(err.code(), "parse.malformed");
        prop_assert!(err.to_string().contains("duplicate"), "{}", err);
    }
}
