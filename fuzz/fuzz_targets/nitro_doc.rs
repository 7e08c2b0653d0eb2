//! AWS Nitro attestation documents: parsing and the full verification path never panic, and
//! whatever verifies agrees with what parsed.
//!
//! Each input is tried twice: as raw bytes, and through `decode_input` (base64 detection).
//! Verification runs at the document's own timestamp when it parses, so mutations of the real
//! documents in the seed corpus reach the chain and signature checks instead of stopping at
//! certificate expiry; the chain cache is shared across runs, as in the broker.
#![no_main]

use std::sync::OnceLock;

use attest_verifiers::nitro::{document, NitroVerifier, VerifyOptions};
use attest_verifiers::{Claims, UnixTime};
use libfuzzer_sys::fuzz_target;

fn verifier() -> &'static NitroVerifier {
    static VERIFIER: OnceLock<NitroVerifier> = OnceLock::new();
    VERIFIER.get_or_init(NitroVerifier::default)
}

fn check(data: &[u8]) {
    let Ok(doc) = document::parse(data) else {
        // Not a document: verification must fail the same way, at any time.
        let at = UnixTime::from_secs(1_700_000_000);
        assert!(verifier().verify(data, &VerifyOptions::at(at)).is_err());
        return;
    };
    assert!(data.len() <= document::MAX_DOCUMENT_BYTES);
    assert!(!doc.module_id.is_empty() && doc.digest == "SHA384");
    assert!(!doc.cabundle.is_empty() && doc.cabundle.len() <= document::MAX_CABUNDLE);
    assert!(doc.pcrs.values().all(|v| v.len() == document::PCR_LEN));
    let secs = i64::try_from(doc.timestamp_ms / 1000).unwrap_or(i64::MAX);
    let nonce = doc.nonce.clone();
    let opts = VerifyOptions {
        expected_nonce: nonce.as_deref(),
        ..VerifyOptions::at(UnixTime::from_secs(secs))
    };
    if let Ok(verified) = verifier().verify(data, &opts) {
        let Claims::AwsNitro(claims) = verified.into_claims() else {
            panic!("Nitro verification returned other claims");
        };
        assert_eq!(claims.module_id, doc.module_id);
        assert_eq!(claims.timestamp_ms, doc.timestamp_ms);
        assert_eq!(claims.pcrs.len(), doc.pcrs.len());
        assert_eq!(claims.nonce.as_ref().map(|n| n.as_slice()), doc.nonce.as_deref());
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    if let Ok(decoded) = attest_verifiers::nitro::decode_input(data) {
        if decoded.as_ref() != data {
            check(&decoded);
        }
    }
});
