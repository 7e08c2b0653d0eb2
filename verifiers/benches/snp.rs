//! SEV-SNP verification cost: a real report with a cold and a warm chain cache, beside one bare
//! ECDSA P-384 verification of the same signature in the same run.
//!
//! `cargo bench -p attest-verifiers --bench snp`; results in docs/benchmarks.md.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use attest_verifiers::snp::{AmdTrustAnchors, SnpVerifier, VerifyOptions};
use attest_verifiers::x509::Certificate;
use attest_verifiers::UnixTime;
use aws_lc_rs::signature::{ParsedPublicKey, UnparsedPublicKey, ECDSA_P384_SHA384_FIXED};
use criterion::{black_box, criterion_group, criterion_main, Criterion};

#[path = "../tests/common/mod.rs"]
mod common;
use common::vector;

fn bench(c: &mut Criterion) {
    let report = vector("snp/virtee-sev-milan/report.bin");
    let cert = vector("snp/virtee-sev-milan/vcek.der");
    let opts = VerifyOptions::at(UnixTime::parse_rfc3339("2026-01-15T00:00:00Z").unwrap());
    let anchors = AmdTrustAnchors::builtin();

    // The bare operation: P-384 / SHA-384 over the signed region, r and s made big-endian.
    let vcek = Certificate::from_der(&cert).unwrap();
    let mut sig = Vec::with_capacity(96);
    for field in [0x2A0..0x2A0 + 48, 0x2E8..0x2E8 + 48] {
        sig.extend(report[field].iter().rev());
    }
    let signed = &report[..0x2A0];
    let unparsed = UnparsedPublicKey::new(&ECDSA_P384_SHA384_FIXED, vcek.public_key());
    unparsed.verify(signed, &sig).unwrap();
    let parsed = ParsedPublicKey::new(&ECDSA_P384_SHA384_FIXED, vcek.public_key()).unwrap();

    let mut group = c.benchmark_group("snp");
    group.bench_function("p384_verify_bare", |b| {
        b.iter(|| unparsed.verify(black_box(signed), black_box(&sig)).unwrap())
    });
    group.bench_function("p384_verify_bare_parsed_key", |b| {
        b.iter(|| {
            parsed
                .verify_sig(black_box(signed), black_box(&sig))
                .unwrap()
        })
    });
    group.bench_function("verify_report_cold_cache", |b| {
        b.iter(|| {
            let verifier = SnpVerifier::new(anchors.clone());
            verifier
                .verify(black_box(&report), black_box(&cert), &opts)
                .unwrap()
        })
    });
    let warm = SnpVerifier::new(anchors.clone());
    warm.verify(&report, &cert, &opts).unwrap();
    group.bench_function("verify_report_warm_cache", |b| {
        b.iter(|| {
            warm.verify(black_box(&report), black_box(&cert), &opts)
                .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
