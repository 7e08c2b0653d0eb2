//! Round trips through the simulated Nitro hierarchy of `attest-fixtures`: every field the
//! document builder sets comes back in the claims; fixture roots are trusted only when passed;
//! time, nonce, header, payload and chain faults are each rejected with their own code, on
//! documents that are otherwise correctly signed (so the check under test is what rejects them).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use attest_fixtures::nitro::{
    encode_cbor, encode_cose, sign_cose, DocumentBuilder, EnclaveKey, NitroHierarchy,
    PROTECTED_ES384,
};
use attest_verifiers::nitro::{
    self, document, NitroClaims, NitroTrustAnchors, NitroVerifier, VerifyOptions,
};
use attest_verifiers::{Claims, UnixTime, VerifyError};
use ciborium::value::Value;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const AT: OffsetDateTime = datetime!(2025-06-01 12:00:00 UTC);

fn unix(t: OffsetDateTime) -> UnixTime {
    UnixTime::from_secs(t.unix_timestamp())
}

struct Sim {
    hierarchy: NitroHierarchy,
    enclave: EnclaveKey,
    verifier: NitroVerifier,
}

impl Sim {
    fn new() -> Self {
        let hierarchy = NitroHierarchy::generate(AT).unwrap();
        let enclave = hierarchy.issue_enclave(AT).unwrap();
        let mut anchors = NitroTrustAnchors::builtin();
        anchors.add_roots(hierarchy.roots_pem().as_bytes()).unwrap();
        Sim {
            hierarchy,
            enclave,
            verifier: NitroVerifier::new(anchors),
        }
    }

    fn builder(&self) -> DocumentBuilder {
        DocumentBuilder::new(&self.hierarchy, &self.enclave)
    }

    fn verify(&self, doc: &[u8]) -> Result<NitroClaims, VerifyError> {
        self.verify_with(doc, &VerifyOptions::at(unix(AT)))
    }

    fn verify_with(
        &self,
        doc: &[u8],
        opts: &VerifyOptions<'_>,
    ) -> Result<NitroClaims, VerifyError> {
        match self.verifier.verify(doc, opts)?.into_claims() {
            Claims::AwsNitro(c) => Ok(c),
            other => panic!("unexpected claims {other:?}"),
        }
    }

    /// Signs an edited payload map with the enclave key.
    fn sign_map(&self, map: Vec<(Value, Value)>) -> Vec<u8> {
        let payload = encode_cbor(&Value::Map(map)).unwrap();
        sign_cose(&payload, self.enclave.key(), &PROTECTED_ES384, false).unwrap()
    }

    fn code_with(&self, edit: impl FnOnce(&mut Vec<(Value, Value)>)) -> &'static str {
        let mut map = self.builder().payload_value().into_map().unwrap();
        edit(&mut map);
        self.verify(&self.sign_map(map)).unwrap_err().code()
    }
}

/// An edit of the payload map.
type Edit<'a> = dyn Fn(&mut Vec<(Value, Value)>) + 'a;

fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

fn set(map: &mut [(Value, Value)], key: &str, value: Value) {
    let slot = map
        .iter_mut()
        .find(|(k, _)| *k == text(key))
        .unwrap_or_else(|| panic!("no key {key}"));
    slot.1 = value;
}

fn remove(map: &mut Vec<(Value, Value)>, key: &str) {
    map.retain(|(k, _)| *k != text(key));
}

#[test]
fn every_builder_field_comes_back_in_the_claims() {
    let sim = Sim::new();
    let mut b = sim.builder();
    b.timestamp_ms = unix(AT).as_secs() as u64 * 1000 + 123;
    b.public_key = Some(vec![0x04; 97]);
    b.user_data = Some(b"hello, world!".to_vec());
    b.nonce = Some((0..32).collect());
    b.pcrs.insert(31, vec![0xEE; 48]);
    b.pcrs.insert(16, vec![0x16; 48]);
    for tagged in [false, true] {
        b.tagged = tagged;
        let doc = b.sign(sim.enclave.key()).unwrap();
        assert_eq!(document::parse(&doc).unwrap().tagged, tagged);
        let c = sim.verify(&doc).unwrap();
        assert_eq!(c.module_id, b.module_id);
        assert_eq!(c.module_id, sim.enclave.module_id());
        assert_eq!(c.timestamp_ms, b.timestamp_ms);
        assert_eq!(c.timestamp, "2025-06-01T12:00:00.123Z");
        assert_eq!(c.digest, "SHA384");
        assert_eq!(c.pcrs.len(), 18);
        for (i, v) in &b.pcrs {
            assert_eq!(c.pcr(u8::try_from(*i).unwrap()).unwrap(), &v[..], "PCR{i}");
        }
        assert!(!c.debug);
        assert_eq!(c.public_key.as_ref().unwrap().as_slice(), &[0x04; 97]);
        assert_eq!(c.user_data.as_ref().unwrap().as_slice(), b"hello, world!");
        assert_eq!(
            c.nonce.as_ref().unwrap().as_slice(),
            &(0..32).collect::<Vec<u8>>()[..]
        );
        assert!(!c.vendor_root);
        let leaf = attest_verifiers::x509::Certificate::from_der(sim.enclave.cert_der()).unwrap();
        assert_eq!(c.certificate_sha256.as_slice(), leaf.fingerprint());
    }
    // Both documents share one chain.
    assert_eq!(sim.verifier.cached_chains(), 1);

    // Nulls come back as nulls; debug is PCR0-2 all zero.
    let mut b = sim.builder();
    b.set_debug();
    let c = sim.verify(&b.sign(sim.enclave.key()).unwrap()).unwrap();
    assert!(c.debug);
    assert!(c.public_key.is_none() && c.user_data.is_none() && c.nonce.is_none());
    let json = serde_json::to_value(Claims::AwsNitro(c)).unwrap();
    assert_eq!(json["tee"], "aws-nitro");
    assert_eq!(json["nonce"], serde_json::Value::Null);
    assert_eq!(json["debug"], true);

    // Any one of PCR0-2 non-zero: not debug.
    for i in 0..3 {
        let mut b = sim.builder();
        b.set_debug();
        b.pcrs.insert(i, vec![1; 48]);
        assert!(
            !sim.verify(&b.sign(sim.enclave.key()).unwrap())
                .unwrap()
                .debug
        );
    }
    // A missing PCR among 0-2 counts as zero: with the others zero the document cannot show
    // it is a production enclave; with one of them non-zero it can.
    let mut b = sim.builder();
    b.set_debug();
    b.pcrs.remove(&0);
    let doc = b.sign(sim.enclave.key()).unwrap();
    assert!(sim.verify(&doc).unwrap().debug);
    let mut b = sim.builder();
    b.pcrs.remove(&0);
    let doc = b.sign(sim.enclave.key()).unwrap();
    assert!(!sim.verify(&doc).unwrap().debug);
}

#[test]
fn fixture_roots_are_trusted_only_when_passed() {
    let sim = Sim::new();
    let doc = sim.builder().sign(sim.enclave.key()).unwrap();
    sim.verify(&doc).unwrap();
    let opts = VerifyOptions::at(unix(AT));
    // The default verifier (pinned AWS root only) and the free function refuse it: the fixture
    // root is named like AWS's but is not AWS's certificate.
    let err = NitroVerifier::default().verify(&doc, &opts).unwrap_err();
    assert_eq!(err.code(), "nitro.chain", "{err}");
    assert_eq!(
        nitro::verify(&doc, &opts).unwrap_err().code(),
        "nitro.chain"
    );
    // Another hierarchy's root does not help either.
    let other = NitroHierarchy::generate(AT).unwrap();
    let mut anchors = NitroTrustAnchors::empty();
    anchors.add_roots(other.roots_pem().as_bytes()).unwrap();
    assert_eq!(
        NitroVerifier::new(anchors)
            .verify(&doc, &opts)
            .unwrap_err()
            .code(),
        "nitro.chain"
    );
    // The AWS root cannot be smuggled in: a document whose cabundle[0] is the fixture root
    // stays untrusted even if the rest of the chain is swapped around.
    let mut b = sim.builder();
    b.cabundle.reverse();
    assert_eq!(
        sim.verify(&b.sign(sim.enclave.key()).unwrap())
            .unwrap_err()
            .code(),
        "nitro.chain"
    );
}

#[test]
fn validity_is_checked_at_the_verification_time() {
    let sim = Sim::new();
    let doc = sim.builder().sign(sim.enclave.key()).unwrap();
    let at = |t: OffsetDateTime| VerifyOptions::at(unix(t));
    sim.verify_with(&doc, &at(sim.enclave.not_after())).unwrap();
    let err = sim
        .verify_with(&doc, &at(sim.enclave.not_after() + Duration::seconds(1)))
        .unwrap_err();
    assert_eq!(err.code(), "nitro.cert_expired");
    let err = sim
        .verify_with(&doc, &at(sim.enclave.not_after() + Duration::hours(1)))
        .unwrap_err();
    assert_eq!(err.code(), "nitro.cert_expired");
    let err = sim
        .verify_with(&doc, &at(sim.enclave.not_before() - Duration::seconds(1)))
        .unwrap_err();
    assert_eq!(err.code(), "nitro.cert_not_yet_valid");

    // An enclave certificate that expired before the verification time.
    let expired = sim
        .hierarchy
        .issue_enclave_with(None, AT - Duration::hours(4), AT - Duration::hours(1))
        .unwrap();
    let doc = DocumentBuilder::new(&sim.hierarchy, &expired)
        .sign(expired.key())
        .unwrap();
    let err = sim.verify(&doc).unwrap_err();
    assert_eq!(err.code(), "nitro.cert_expired");
    assert!(err.to_string().contains(expired.module_id()), "{err}");

    // An intermediate that expired while the leaf is still valid: the instance CA lives 3 hours.
    let late = sim.hierarchy.instance().not_after() + Duration::minutes(1);
    let long_leaf = sim
        .hierarchy
        .issue_enclave_with(None, AT, late + Duration::hours(1))
        .unwrap();
    let doc = DocumentBuilder::new(&sim.hierarchy, &long_leaf)
        .sign(long_leaf.key())
        .unwrap();
    let err = sim.verify_with(&doc, &at(late)).unwrap_err();
    assert_eq!(err.code(), "nitro.cert_expired");
    assert!(
        err.to_string().contains(sim.hierarchy.instance_id()),
        "{err}"
    );
}

#[test]
fn wrong_nonce_is_rejected() {
    let sim = Sim::new();
    let mut b = sim.builder();
    let nonce = [0x5a; 32];
    b.nonce = Some(nonce.to_vec());
    let doc = b.sign(sim.enclave.key()).unwrap();
    let opts = |n: &'static [u8]| VerifyOptions {
        expected_nonce: Some(n),
        ..VerifyOptions::at(unix(AT))
    };
    sim.verify_with(&doc, &opts(&[0x5a; 32])).unwrap();
    for bad in [&[0x5a; 31][..], &[0x5a; 33][..], &[0x5b; 32][..], &[][..]] {
        let err = sim.verify_with(&doc, &opts(bad)).unwrap_err();
        assert_eq!(err.code(), "nitro.nonce");
    }
    // An empty nonce is not null.
    b.nonce = Some(Vec::new());
    let doc = b.sign(sim.enclave.key()).unwrap();
    sim.verify_with(&doc, &opts(&[])).unwrap();
    b.nonce = None;
    let doc = b.sign(sim.enclave.key()).unwrap();
    assert_eq!(
        sim.verify_with(&doc, &opts(&[])).unwrap_err().code(),
        "nitro.nonce"
    );
}

#[test]
fn signature_faults() {
    let sim = Sim::new();
    let b = sim.builder();
    // Signed by a key that is not the enclave certificate's.
    let other = sim.hierarchy.issue_enclave(AT).unwrap();
    let doc = b.sign(other.key()).unwrap();
    assert_eq!(sim.verify(&doc).unwrap_err().code(), "nitro.signature");
    // A signature over a different protected header than the one sent.
    let payload = b.payload().unwrap();
    let sig = other
        .key()
        .sign_sha384_fixed(b"not the sig structure")
        .unwrap();
    let doc = encode_cose(&PROTECTED_ES384, &payload, &sig, false).unwrap();
    assert_eq!(sim.verify(&doc).unwrap_err().code(), "nitro.signature");
    // Wrong signature lengths, and a DER-encoded ECDSA signature, are refused.
    for len in [0, 95, 97, 104] {
        let doc = encode_cose(&PROTECTED_ES384, &payload, &vec![1; len], false).unwrap();
        assert_eq!(
            sim.verify(&doc).unwrap_err().code(),
            "parse.length",
            "{len}"
        );
    }
    // All-zero r and s.
    let doc = encode_cose(&PROTECTED_ES384, &payload, &[0; 96], false).unwrap();
    assert_eq!(sim.verify(&doc).unwrap_err().code(), "nitro.signature");
}

#[test]
fn header_faults() {
    let sim = Sim::new();
    let payload = sim.builder().payload().unwrap();
    let key = sim.enclave.key();
    let signed = |protected: &[u8]| sign_cose(&payload, key, protected, false).unwrap();
    // ES256 (-7), ES512 (-36), EdDSA (-8), no alg, an empty protected header: all refused as
    // an algorithm, even though each is correctly signed with the P-384 key.
    for protected in [
        &[0xa1, 0x01, 0x26][..],
        &[0xa1, 0x01, 0x38, 0x23][..],
        &[0xa1, 0x01, 0x27][..],
        &[0xa1, 0x04, 0x41, 0x00][..],
        &[][..],
        &[0xa0][..],
    ] {
        let err = sim.verify(&signed(protected)).unwrap_err();
        assert_eq!(err.code(), "nitro.algorithm", "{}", hex::encode(protected));
    }
    // ES384 plus another parameter (a key id; crit), or a duplicate alg.
    for protected in [
        &[0xa2, 0x01, 0x38, 0x22, 0x04, 0x41, 0x00][..],
        &[0xa2, 0x01, 0x38, 0x22, 0x02, 0x81, 0x01][..],
        &[0xa2, 0x01, 0x38, 0x22, 0x01, 0x38, 0x22][..],
        // Not a map, or trailing bytes inside the bstr.
        &[0x81, 0x01][..],
        &[0xa1, 0x01, 0x38, 0x22, 0x00][..],
    ] {
        let err = sim.verify(&signed(protected)).unwrap_err();
        assert!(
            err.code().starts_with("parse."),
            "{}: {err}",
            hex::encode(protected)
        );
    }
    // A non-empty unprotected header.
    let good = signed(&PROTECTED_ES384);
    let value: Value = ciborium::de::from_reader(&good[..]).unwrap();
    let mut items = value.into_array().unwrap();
    items[1] = Value::Map(vec![(Value::Integer(4.into()), Value::Bytes(vec![1]))]);
    let doc = encode_cbor(&Value::Array(items.clone())).unwrap();
    assert_eq!(sim.verify(&doc).unwrap_err().code(), "parse.malformed");
    // A detached (nil) payload.
    items[1] = Value::Map(vec![]);
    items[2] = Value::Null;
    let doc = encode_cbor(&Value::Array(items)).unwrap();
    assert_eq!(sim.verify(&doc).unwrap_err().code(), "parse.malformed");
    // Not an array of four.
    let doc = encode_cbor(&Value::Array(vec![Value::Bytes(PROTECTED_ES384.to_vec())])).unwrap();
    assert_eq!(sim.verify(&doc).unwrap_err().code(), "parse.malformed");
}

#[test]
fn payload_fields_are_checked_for_type_and_size() {
    let sim = Sim::new();
    let int = |n: i64| Value::Integer(n.into());
    let bytes = |n: usize| Value::Bytes(vec![0xAB; n]);
    let cases: Vec<(&str, Box<Edit<'static>>, &str)> = vec![
        (
            "module_id empty",
            Box::new(|m| set(m, "module_id", text(""))),
            "parse.malformed",
        ),
        (
            "module_id bytes",
            Box::new(move |m| set(m, "module_id", bytes(4))),
            "parse.malformed",
        ),
        (
            "digest SHA256",
            Box::new(|m| set(m, "digest", text("SHA256"))),
            "nitro.algorithm",
        ),
        (
            "digest sha384",
            Box::new(|m| set(m, "digest", text("sha384"))),
            "nitro.algorithm",
        ),
        (
            "digest int",
            Box::new(move |m| set(m, "digest", int(384))),
            "parse.malformed",
        ),
        (
            "timestamp negative",
            Box::new(move |m| set(m, "timestamp", int(-1))),
            "parse.malformed",
        ),
        (
            "timestamp text",
            Box::new(|m| set(m, "timestamp", text("now"))),
            "parse.malformed",
        ),
        (
            "timestamp float",
            Box::new(|m| set(m, "timestamp", Value::Float(1.5))),
            "parse.malformed",
        ),
        (
            "timestamp year 10000",
            Box::new(move |m| set(m, "timestamp", int(253_402_300_800_000))),
            "parse.malformed",
        ),
        (
            "pcrs array",
            Box::new(|m| set(m, "pcrs", Value::Array(vec![]))),
            "parse.malformed",
        ),
        (
            "pcrs empty",
            Box::new(|m| set(m, "pcrs", Value::Map(vec![]))),
            "parse.malformed",
        ),
        (
            "pcr 32 bytes",
            Box::new(move |m| set(m, "pcrs", Value::Map(vec![(int(0), bytes(32))]))),
            "parse.malformed",
        ),
        (
            "pcr 64 bytes",
            Box::new(move |m| set(m, "pcrs", Value::Map(vec![(int(0), bytes(64))]))),
            "parse.malformed",
        ),
        (
            "pcr lengths mixed",
            Box::new(move |m| {
                set(
                    m,
                    "pcrs",
                    Value::Map(vec![(int(0), bytes(48)), (int(1), bytes(32))]),
                )
            }),
            "parse.malformed",
        ),
        (
            "pcr index 32",
            Box::new(move |m| set(m, "pcrs", Value::Map(vec![(int(32), bytes(48))]))),
            "parse.malformed",
        ),
        (
            "pcr index -1",
            Box::new(move |m| set(m, "pcrs", Value::Map(vec![(int(-1), bytes(48))]))),
            "parse.malformed",
        ),
        (
            "pcr index text",
            Box::new(move |m| set(m, "pcrs", Value::Map(vec![(text("0"), bytes(48))]))),
            "parse.malformed",
        ),
        (
            "pcr duplicate index",
            Box::new(move |m| {
                set(
                    m,
                    "pcrs",
                    Value::Map(vec![(int(3), bytes(48)), (int(3), bytes(48))]),
                )
            }),
            "parse.malformed",
        ),
        (
            "33 pcrs",
            Box::new(move |m| {
                set(
                    m,
                    "pcrs",
                    Value::Map((0..33).map(|i| (int(i), bytes(48))).collect()),
                )
            }),
            "parse.malformed",
        ),
        (
            "certificate text",
            Box::new(|m| set(m, "certificate", text("x"))),
            "parse.malformed",
        ),
        (
            "certificate empty",
            Box::new(move |m| set(m, "certificate", bytes(0))),
            "parse.malformed",
        ),
        (
            "certificate 1025",
            Box::new(move |m| set(m, "certificate", bytes(1025))),
            "parse.malformed",
        ),
        (
            "certificate garbage",
            Box::new(move |m| set(m, "certificate", bytes(100))),
            "parse.malformed",
        ),
        (
            "cabundle empty",
            Box::new(|m| set(m, "cabundle", Value::Array(vec![]))),
            "parse.malformed",
        ),
        (
            "cabundle bytes",
            Box::new(move |m| set(m, "cabundle", bytes(10))),
            "parse.malformed",
        ),
        (
            "cabundle of 9",
            Box::new(move |m| set(m, "cabundle", Value::Array(vec![bytes(10); 9]))),
            "parse.malformed",
        ),
        (
            "cabundle entry int",
            Box::new(move |m| set(m, "cabundle", Value::Array(vec![int(1)]))),
            "parse.malformed",
        ),
        (
            "public_key empty",
            Box::new(move |m| set(m, "public_key", bytes(0))),
            "parse.malformed",
        ),
        (
            "public_key 1025",
            Box::new(move |m| set(m, "public_key", bytes(1025))),
            "parse.malformed",
        ),
        (
            "public_key text",
            Box::new(|m| set(m, "public_key", text("k"))),
            "parse.malformed",
        ),
        (
            "user_data 513",
            Box::new(move |m| set(m, "user_data", bytes(513))),
            "parse.malformed",
        ),
        (
            "user_data false",
            Box::new(|m| set(m, "user_data", Value::Bool(false))),
            "parse.malformed",
        ),
        (
            "nonce 513",
            Box::new(move |m| set(m, "nonce", bytes(513))),
            "parse.malformed",
        ),
        (
            "nonce tagged",
            Box::new(move |m| set(m, "nonce", Value::Tag(24, Box::new(bytes(4))))),
            "parse.malformed",
        ),
        (
            "missing module_id",
            Box::new(|m| remove(m, "module_id")),
            "parse.malformed",
        ),
        (
            "missing digest",
            Box::new(|m| remove(m, "digest")),
            "parse.malformed",
        ),
        (
            "missing timestamp",
            Box::new(|m| remove(m, "timestamp")),
            "parse.malformed",
        ),
        (
            "missing pcrs",
            Box::new(|m| remove(m, "pcrs")),
            "parse.malformed",
        ),
        (
            "missing certificate",
            Box::new(|m| remove(m, "certificate")),
            "parse.malformed",
        ),
        (
            "missing cabundle",
            Box::new(|m| remove(m, "cabundle")),
            "parse.malformed",
        ),
        (
            "unknown key",
            Box::new(|m| m.push((text("debug"), Value::Bool(false)))),
            "parse.malformed",
        ),
        (
            "integer key",
            Box::new(move |m| m.push((int(1), Value::Null))),
            "parse.malformed",
        ),
        (
            "duplicate nonce",
            Box::new(move |m| m.push((text("nonce"), bytes(4)))),
            "parse.malformed",
        ),
        (
            "duplicate module_id",
            Box::new(|m| m.insert(0, (text("module_id"), text("i-0-enc0")))),
            "parse.malformed",
        ),
    ];
    for (name, edit, code) in cases {
        assert_eq!(sim.code_with(|m| edit(m)), code, "{name}");
    }
    // The payload must be one CBOR map, with nothing after it.
    let key = sim.enclave.key();
    for payload in [
        encode_cbor(&Value::Array(vec![])).unwrap(),
        [sim.builder().payload().unwrap(), vec![0x00]].concat(),
        Vec::new(),
    ] {
        let doc = sign_cose(&payload, key, &PROTECTED_ES384, false).unwrap();
        assert!(sim.verify(&doc).unwrap_err().code().starts_with("parse."));
    }

    // Limits are inclusive, optional fields may be absent, and field order does not matter.
    let doc = |edit: &Edit<'_>| {
        let mut map = sim.builder().payload_value().into_map().unwrap();
        edit(&mut map);
        sim.sign_map(map)
    };
    let c = sim
        .verify(&doc(&|m| {
            set(m, "public_key", bytes(1024));
            set(m, "user_data", bytes(512));
            set(m, "nonce", bytes(512));
        }))
        .unwrap();
    assert_eq!(c.public_key.unwrap().as_slice().len(), 1024);
    let c = sim
        .verify(&doc(&|m| {
            remove(m, "public_key");
            remove(m, "user_data");
            remove(m, "nonce");
            m.reverse();
        }))
        .unwrap();
    assert!(c.nonce.is_none());
    let c = sim
        .verify(&doc(&|m| {
            set(m, "pcrs", Value::Map(vec![(int(31), bytes(48))]))
        }))
        .unwrap();
    assert_eq!(c.pcrs.len(), 1);
    assert!(c.debug, "no PCR0-2: cannot prove a production enclave");
}

#[test]
fn indefinite_lengths_are_rejected_even_when_signed() {
    let sim = Sim::new();
    let payload = sim.builder().payload().unwrap();
    // Re-encode the payload map (first byte 0xa9, a map of 9) with indefinite length.
    assert_eq!(payload[0], 0xa9);
    let indefinite = [&[0xbf][..], &payload[1..], &[0xff]].concat();
    let doc = sign_cose(&indefinite, sim.enclave.key(), &PROTECTED_ES384, false).unwrap();
    let err = sim.verify(&doc).unwrap_err();
    assert_eq!(err.code(), "parse.malformed");
    assert!(err.to_string().contains("indefinite"), "{err}");
    // And in the envelope: an indefinite-length array of four.
    let good = sim.builder().sign(sim.enclave.key()).unwrap();
    assert_eq!(good[0], 0x84);
    let envelope = [&[0x9f][..], &good[1..], &[0xff]].concat();
    assert_eq!(sim.verify(&envelope).unwrap_err().code(), "parse.malformed");
}

#[test]
fn chain_faults() {
    let sim = Sim::new();
    let other = NitroHierarchy::generate(AT).unwrap();
    let other_enclave = other.issue_enclave(AT).unwrap();
    let bundle = sim.hierarchy.cabundle();
    let check =
        |certificate: &[u8], cabundle: Vec<Vec<u8>>, key: &attest_fixtures::crypto::P384Key| {
            let mut b = sim.builder();
            b.certificate = certificate.to_vec();
            b.cabundle = cabundle;
            sim.verify(&b.sign(key).unwrap()).unwrap_err().code()
        };
    let leaf = sim.enclave.cert_der();
    let key = sim.enclave.key();
    // A missing intermediate.
    let mut missing = bundle.clone();
    missing.remove(2);
    assert_eq!(check(leaf, missing, key), "nitro.chain");
    // Only the root.
    assert_eq!(check(leaf, bundle[..1].to_vec(), key), "nitro.chain");
    // Another instance's CA in place of ours.
    let mut foreign = bundle.clone();
    foreign[3] = other.cabundle()[3].clone();
    assert_eq!(check(leaf, foreign, key), "nitro.chain");
    // Another hierarchy's enclave certificate (and key) under our bundle.
    assert_eq!(
        check(
            other_enclave.cert_der(),
            bundle.clone(),
            other_enclave.key()
        ),
        "nitro.chain"
    );
    // The instance CA presented as the enclave certificate (a CA as leaf).
    assert_eq!(check(&bundle[3], bundle[..3].to_vec(), key), "nitro.chain");
    // The enclave certificate listed inside the bundle as an issuer (not a CA).
    let mut with_leaf = bundle.clone();
    with_leaf.push(leaf.to_vec());
    assert_eq!(check(leaf, with_leaf, key), "nitro.chain");
    // A tampered intermediate (one byte of its TBS).
    let mut tampered = bundle.clone();
    tampered[2][40] ^= 1;
    let code = check(leaf, tampered, key);
    assert!(
        code == "nitro.chain" || code.starts_with("parse."),
        "{code}"
    );
}

#[test]
fn the_leaf_of_a_real_document_cannot_be_reused_with_fixture_roots() {
    // A real AWS enclave certificate and bundle, but the document signed by a fixture key:
    // the chain verifies (it is AWS's) and the signature fails.
    let sim = Sim::new();
    let real = document::parse(&common::vector(
        "nitro/evervault-beta-valid/attestation_doc.cose",
    ))
    .unwrap();
    let mut b = sim.builder();
    b.certificate = real.certificate.clone();
    b.cabundle = real.cabundle.clone();
    b.module_id = real.module_id.clone();
    let doc = b.sign(sim.enclave.key()).unwrap();
    let err = NitroVerifier::default()
        .verify(
            &doc,
            &VerifyOptions::at(UnixTime::parse_rfc3339("2022-10-13T09:00:00Z").unwrap()),
        )
        .unwrap_err();
    assert_eq!(err.code(), "nitro.signature");
}
