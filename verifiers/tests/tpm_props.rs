//! Property tests: no single-byte change to a real quote or its signature verifies, and no
//! input — random, truncated, mutated — panics a TPM parser or the event log parser.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use attest_verifiers::tpm::{
    self, Attest, AttestationKey, EventLog, PcrValues, Public, QuoteEvidence, QuoteOptions,
    Signature,
};
use common::{at, vector};
use proptest::prelude::*;

const GCE: &str = "tpm/gce-cos85-nonce9009";

struct Real {
    attest: Vec<u8>,
    sig: Vec<u8>,
    ak: AttestationKey,
    pcrs: PcrValues,
}

fn real(n: usize) -> Real {
    Real {
        attest: vector(&format!("{GCE}/quote{n}_attest.bin")),
        sig: vector(&format!("{GCE}/quote{n}_sig.bin")),
        ak: AttestationKey::parse(&vector(&format!("{GCE}/ak_pub_tpmt_public.bin"))).unwrap(),
        pcrs: PcrValues::from_json(&vector(&format!("{GCE}/quote{n}_pcrs.json"))).unwrap(),
    }
}

fn check(attest: &[u8], sig: &[u8], r: &Real) -> Result<(), attest_verifiers::VerifyError> {
    let sig = Signature::detect(sig)?;
    let evidence = QuoteEvidence {
        attest,
        signature: &sig,
        ak: &r.ak,
        pcrs: Some(&r.pcrs),
        event_log: None,
    };
    let opts = QuoteOptions {
        expected_nonce: Some(&[0x90, 0x09]),
        ..QuoteOptions::at(at("2026-01-15T00:00:00Z"))
    };
    tpm::verify_quote(&evidence, &opts).map(|_| ())
}

#[test]
fn every_byte_flip_of_every_gce_attest_and_signature_is_rejected() {
    for n in 0..3 {
        let r = real(n);
        check(&r.attest, &r.sig, &r).unwrap();
        for offset in 0..r.attest.len() {
            for mask in [0x01u8, 0x80] {
                let mut bad = r.attest.clone();
                bad[offset] ^= mask;
                let err = check(&bad, &r.sig, &r)
                    .expect_err(&format!("attest flip {mask:#x} at {offset} verified"));
                assert!(
                    matches!(
                        err.code(),
                        "tpm.signature"
                            | "tpm.algorithm"
                            | "tpm.attest_type"
                            | "parse.malformed"
                            | "parse.truncated"
                            | "parse.trailing"
                    ),
                    "attest {offset}: {err}"
                );
            }
        }
        for offset in 0..r.sig.len() {
            for mask in [0x01u8, 0x80] {
                let mut bad = r.sig.clone();
                bad[offset] ^= mask;
                let err = check(&r.attest, &bad, &r)
                    .expect_err(&format!("signature flip {mask:#x} at {offset} verified"));
                assert!(
                    matches!(
                        err.code(),
                        "tpm.signature"
                            | "tpm.algorithm"
                            | "parse.malformed"
                            | "parse.truncated"
                            | "parse.trailing"
                    ),
                    "signature {offset}: {err}"
                );
            }
        }
    }
}

#[test]
fn every_byte_flip_of_an_azure_bare_signature_is_rejected() {
    let dir = "azure-snp-vtpm/extracted-evidence-v0";
    let attest = vector(&format!("{dir}/tpm_quote_attest.bin"));
    let sig = vector(&format!("{dir}/tpm_quote_signature.bin"));
    let ak = AttestationKey::parse(&vector(&format!("{dir}/ak_pub_HCLAkPub.pem"))).unwrap();
    let verify = |attest: &[u8], sig: &[u8]| {
        let sig = Signature::detect(sig).unwrap();
        let evidence = QuoteEvidence {
            attest,
            signature: &sig,
            ak: &ak,
            pcrs: None,
            event_log: None,
        };
        tpm::verify_quote(&evidence, &QuoteOptions::at(at("2026-01-15T00:00:00Z")))
    };
    verify(&attest, &sig).unwrap();
    for offset in 0..sig.len() {
        let mut bad = sig.clone();
        bad[offset] ^= 0x01;
        assert_eq!(verify(&attest, &bad).unwrap_err().code(), "tpm.signature");
    }
}

fn parse_everything(data: &[u8]) {
    if let Ok(a) = Attest::parse(data) {
        assert!(a.extra_data.len() <= 66 && a.qualified_signer.len() <= 66);
    }
    let _ = Signature::parse(data);
    let _ = Signature::detect(data);
    if let Ok(p) = Public::parse(data) {
        assert_eq!(p.marshalled(), data);
        let _ = p.name();
        let _ = p.public_key();
    }
    let _ = Public::parse_tpm2b(data);
    let _ = AttestationKey::parse(data);
    if let Ok(log) = EventLog::parse(data) {
        let _ = log.replay();
    }
    let _ = PcrValues::from_json(data);
}

fn seeds() -> Vec<Vec<u8>> {
    vec![
        vector(&format!("{GCE}/quote0_attest.bin")),
        vector(&format!("{GCE}/quote1_sig.bin")),
        vector(&format!("{GCE}/ak_pub_tpmt_public.bin")),
        vector(&format!("{GCE}/event_log.bin")),
        vector(&format!("{GCE}/quote2_pcrs.json")),
        vector("tpm/trustee-tpm/quote_attest.bin"),
        vector("azure-snp-vtpm/extracted-hcl-report/tpm_quote_attest.bin"),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Random bytes never panic any parser.
    #[test]
    fn random_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..1024)) {
        parse_everything(&data);
    }

    /// Truncations and mutations of real structures are typed errors or parses, never panics.
    #[test]
    fn mutated_real_inputs_never_panic(
        which in 0usize..7,
        cut in any::<prop::sample::Index>(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
    ) {
        let seeds = seeds();
        let mut data = seeds[which].clone();
        for (index, value) in &edits {
            let i = index.index(data.len());
            data[i] = *value;
        }
        parse_everything(&data);
        let end = cut.index(data.len() + 1);
        parse_everything(&data[..end]);
    }

    /// Any truncation of the real event log is an error, never a panic or a silent success
    /// unless it cuts exactly between events.
    #[test]
    fn truncated_event_logs(cut in 0usize..23970) {
        let log = vector(&format!("{GCE}/event_log.bin"));
        if let Ok(parsed) = EventLog::parse(&log[..cut]) {
            prop_assert!(parsed.events().len() < 44);
        }
    }
}
