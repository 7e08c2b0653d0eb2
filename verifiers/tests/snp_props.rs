//! Property tests: no mutation of a real report's signed region or signature verifies, and no
//! input — truncated, extended, random — panics the parser or the verifier.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use attest_verifiers::snp::report::{self, REPORT_LEN, SIGNED_LEN};
use attest_verifiers::snp::{SnpVerifier, VerifyOptions};
use common::{at, vector};
use proptest::prelude::*;

fn real() -> (Vec<u8>, Vec<u8>) {
    (
        vector("snp/trustee-genoa-v3-e2e/report.bin"),
        vector("snp/trustee-genoa-v3-e2e/vcek.der"),
    )
}

fn opts() -> VerifyOptions<'static> {
    VerifyOptions::at(at("2026-01-15T00:00:00Z"))
}

/// Every byte of the signed region and of the 512-byte signature field, flipped one bit at a
/// time (XOR 0x01, and XOR 0x80 for the high bit): every flip is rejected.
#[test]
fn every_single_byte_flip_is_rejected() {
    let (report, cert) = real();
    let verifier = SnpVerifier::default();
    verifier.verify(&report, &cert, &opts()).unwrap();
    let mut rejected = 0;
    for offset in 0..REPORT_LEN {
        for mask in [0x01u8, 0x80] {
            let mut bad = report.clone();
            bad[offset] ^= mask;
            let err = verifier
                .verify(&bad, &cert, &opts())
                .expect_err(&format!("flip {mask:#x} at {offset:#x} verified"));
            if offset < SIGNED_LEN {
                // Inside the signed region, most flips die on the signature; a few are caught
                // earlier by the parser (version, signature algorithm) or the signer check.
                assert!(
                    matches!(
                        err.code(),
                        "snp.signature" | "snp.version" | "snp.algorithm" | "snp.signer_mismatch"
                    ),
                    "{offset:#x}: {err}"
                );
            } else {
                assert!(
                    matches!(err.code(), "snp.signature" | "snp.reserved"),
                    "{offset:#x}: {err}"
                );
            }
            rejected += 1;
        }
    }
    assert_eq!(rejected, 2 * REPORT_LEN);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Any non-zero XOR mask over any set of bytes of a real report is rejected.
    #[test]
    fn random_mutations_are_rejected(
        edits in prop::collection::vec((0..REPORT_LEN, 1..=255u8), 1..8)
    ) {
        let (report, cert) = real();
        let mut bad = report.clone();
        for (offset, mask) in &edits {
            bad[*offset] ^= mask;
        }
        prop_assume!(bad != report);
        prop_assert!(SnpVerifier::default().verify(&bad, &cert, &opts()).is_err());
    }

    /// Truncated and extended reports are a length error, never a panic.
    #[test]
    fn wrong_lengths_are_length_errors(cut in 0..REPORT_LEN, extra in prop::collection::vec(any::<u8>(), 1..64)) {
        let (report, cert) = real();
        let verifier = SnpVerifier::default();
        let err = verifier.verify(&report[..cut], &cert, &opts()).unwrap_err();
        prop_assert_eq!(err.code(), "parse.length");
        let mut long = report.clone();
        long.extend(&extra);
        prop_assert_eq!(verifier.verify(&long, &cert, &opts()).unwrap_err().code(), "parse.length");
    }

    /// Random bytes of the right length, and random certificate inputs, give typed errors.
    #[test]
    fn random_inputs_never_panic(
        body in prop::collection::vec(any::<u8>(), REPORT_LEN),
        version in prop::sample::select(vec![2u32, 3, 5]),
        cert in prop::collection::vec(any::<u8>(), 0..2048),
    ) {
        let mut body = body;
        body[..4].copy_from_slice(&version.to_le_bytes());
        body[0x34..0x38].copy_from_slice(&1u32.to_le_bytes());
        let _ = report::parse(&body);
        let (real_report, real_cert) = real();
        let verifier = SnpVerifier::default();
        prop_assert!(verifier.verify(&body, &real_cert, &opts()).is_err());
        prop_assert!(verifier.verify(&real_report, &cert, &opts()).is_err());
    }

    /// Random mutations of a real VCEK never verify and never panic.
    #[test]
    fn mutated_certificates_are_rejected(
        edits in prop::collection::vec((0..1347usize, 1..=255u8), 1..4)
    ) {
        let (report, cert) = real();
        let mut bad = cert.clone();
        for (offset, mask) in &edits {
            if let Some(b) = bad.get_mut(*offset) {
                *b ^= mask;
            }
        }
        prop_assume!(bad != cert);
        prop_assert!(SnpVerifier::default().verify(&report, &bad, &opts()).is_err());
    }
}

/// Every single-bit flip (XOR 0x01 and 0x80) of a real VCEK is rejected: inside the signed
/// TBS by the ASK signature, outside it by the strict DER framing check (x509-parser alone
/// tolerates some re-encoded outer tags, which would change the certificate's fingerprint
/// without changing what was signed).
#[test]
fn every_single_byte_flip_of_the_vcek_is_rejected() {
    let (report, cert) = real();
    let verifier = SnpVerifier::default();
    for offset in 0..cert.len() {
        for mask in [0x01u8, 0x80] {
            let mut bad = cert.clone();
            bad[offset] ^= mask;
            let result = verifier.verify(&report, &bad, &opts());
            assert!(
                result.is_err(),
                "flip {mask:#x} at {offset} of the VCEK verified"
            );
        }
    }
    assert_eq!(verifier.cached_chains(), 0, "nothing tampered was cached");
}
