//! TPM verification cost: a real GCE RSA-2048 quote (with and without its AK chain and event
//! log), a simulated P-256 ECDSA quote, and parsing plus replay of the real 23,970-byte GCE
//! event log.
//!
//! `cargo bench -p attest-verifiers --bench tpm`.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use attest_fixtures::crypto::Hash;
use attest_fixtures::tpm::{AkKind, SimTpm};
use attest_verifiers::tpm::{
    self, AttestationKey, CertChain, EventLog, PcrValues, QuoteEvidence, QuoteOptions, Signature,
};
use attest_verifiers::x509;
use attest_verifiers::UnixTime;
use criterion::{black_box, criterion_group, criterion_main, Criterion};

#[path = "../tests/common/mod.rs"]
mod common;
use common::vector;

fn bench(c: &mut Criterion) {
    let gce = |f: &str| vector(&format!("tpm/gce-cos85-nonce9009/{f}"));
    let at = UnixTime::parse_rfc3339("2026-01-15T00:00:00Z").unwrap();
    let attest = gce("quote1_attest.bin");
    let sig = Signature::detect(&gce("quote1_sig.bin")).unwrap();
    let ak = AttestationKey::parse(&gce("ak_pub_tpmt_public.bin")).unwrap();
    let pcrs = PcrValues::from_json(&gce("quote1_pcrs.json")).unwrap();
    let raw_log = gce("event_log.bin");
    let log = EventLog::parse(&raw_log).unwrap();
    let mut certs = x509::parse_bundle(&gce("ak_cert.der")).unwrap();
    certs.extend(x509::parse_bundle(&vector("roots/gce-vtpm/tpm_ek_intermediate_2.pem")).unwrap());
    let anchors = x509::parse_bundle(&vector("roots/gce-vtpm/tpm_ek_root_1.pem")).unwrap();
    let nonce = [0x90u8, 0x09];
    let opts = QuoteOptions {
        expected_nonce: Some(&nonce),
        ..QuoteOptions::at(at)
    };
    let quote = QuoteEvidence {
        attest: &attest,
        signature: &sig,
        ak: &ak,
        pcrs: Some(&pcrs),
        event_log: None,
    };
    tpm::verify_quote(&quote, &opts).unwrap();

    let mut sim = SimTpm::with_banks(&[Hash::Sha256]).unwrap();
    sim.measure_boot(true);
    let ecc_ak = sim.create_ak(AkKind::EccP256).unwrap();
    let q = sim
        .quote(&ecc_ak, &[(Hash::Sha256, (0..24).collect())], &nonce)
        .unwrap();
    let ecc_sig = Signature::detect(&q.signature).unwrap();
    let ecc_key = AttestationKey::parse(&ecc_ak.tpmt_public()).unwrap();
    let ecc_pcrs = PcrValues::from_json(sim.pcrs_json(&[Hash::Sha256]).as_bytes()).unwrap();
    let ecc_quote = QuoteEvidence {
        attest: &q.attest,
        signature: &ecc_sig,
        ak: &ecc_key,
        pcrs: Some(&ecc_pcrs),
        event_log: None,
    };
    tpm::verify_quote(&ecc_quote, &opts).unwrap();

    let mut group = c.benchmark_group("tpm");
    group.bench_function("gce_rsa2048_quote_verify", |b| {
        b.iter(|| tpm::verify_quote(black_box(&quote), &opts).unwrap())
    });
    group.bench_function("gce_rsa2048_quote_verify_chain_and_event_log", |b| {
        let full = QuoteEvidence {
            event_log: Some(&log),
            ..quote
        };
        let full_opts = QuoteOptions {
            ak_chain: Some(CertChain {
                certs: &certs,
                anchors: &anchors,
            }),
            ..opts
        };
        b.iter(|| tpm::verify_quote(black_box(&full), &full_opts).unwrap())
    });
    group.bench_function("sim_p256_quote_verify", |b| {
        b.iter(|| tpm::verify_quote(black_box(&ecc_quote), &opts).unwrap())
    });
    group.bench_function("gce_event_log_parse", |b| {
        b.iter(|| EventLog::parse(black_box(&raw_log)).unwrap())
    });
    group.bench_function("gce_event_log_parse_and_replay", |b| {
        b.iter(|| EventLog::parse(black_box(&raw_log)).unwrap().replay())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
