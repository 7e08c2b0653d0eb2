//! AWS Nitro verification cost: a real document (evervault-beta-valid at its README time) with a
//! cold and a warm chain cache, beside one bare ECDSA P-384 verification of the same COSE
//! signature and the parse alone, in the same run.
//!
//! `cargo bench -p attest-verifiers --bench nitro`; results in docs/benchmarks.md.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use attest_verifiers::nitro::{document, NitroTrustAnchors, NitroVerifier, VerifyOptions};
use attest_verifiers::x509::Certificate;
use attest_verifiers::UnixTime;
use aws_lc_rs::signature::{ParsedPublicKey, UnparsedPublicKey, ECDSA_P384_SHA384_FIXED};
use criterion::{black_box, criterion_group, criterion_main, Criterion};

#[path = "../tests/common/mod.rs"]
mod common;
use common::vector;

fn bench(c: &mut Criterion) {
    let doc = vector("nitro/evervault-beta-valid/attestation_doc.cose");
    let opts = VerifyOptions::at(UnixTime::parse_rfc3339("2022-10-13T09:00:00Z").unwrap());
    let anchors = NitroTrustAnchors::builtin();

    // The bare operation: ES384 over the COSE Sig_structure with the enclave certificate's key.
    let parsed = document::parse(&doc).unwrap();
    let leaf = Certificate::from_der(&parsed.certificate).unwrap();
    let signed = parsed.to_be_signed().to_vec();
    let sig = parsed.signature().to_vec();
    let unparsed = UnparsedPublicKey::new(&ECDSA_P384_SHA384_FIXED, leaf.public_key());
    unparsed.verify(&signed, &sig).unwrap();
    let key = ParsedPublicKey::new(&ECDSA_P384_SHA384_FIXED, leaf.public_key()).unwrap();

    let mut group = c.benchmark_group("nitro");
    group.bench_function("p384_verify_bare", |b| {
        b.iter(|| {
            unparsed
                .verify(black_box(&signed), black_box(&sig))
                .unwrap()
        })
    });
    group.bench_function("p384_verify_bare_parsed_key", |b| {
        b.iter(|| key.verify_sig(black_box(&signed), black_box(&sig)).unwrap())
    });
    group.bench_function("parse_document", |b| {
        b.iter(|| document::parse(black_box(&doc)).unwrap())
    });
    group.bench_function("verify_document_cold_cache", |b| {
        b.iter(|| {
            let verifier = NitroVerifier::new(anchors.clone());
            verifier.verify(black_box(&doc), &opts).unwrap()
        })
    });
    let warm = NitroVerifier::new(anchors.clone());
    warm.verify(&doc, &opts).unwrap();
    group.bench_function("verify_document_warm_cache", |b| {
        b.iter(|| warm.verify(black_box(&doc), &opts).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
