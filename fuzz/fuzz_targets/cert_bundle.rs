//! Certificate bundles (PEM or DER): parsing, and checking each certificate against the next
//! and against itself, never panic.
#![no_main]

use attest_verifiers::x509;
use attest_verifiers::{Tee, UnixTime};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(certs) = x509::parse_bundle(data) {
        assert!(!certs.is_empty() && certs.len() <= x509::MAX_BUNDLE_CERTS);
        for pair in certs.windows(2) {
            if let [child, issuer] = pair {
                let _ = child.check_signed_by(issuer, Tee::SevSnp);
            }
        }
        for cert in &certs {
            let _ = cert.check_signed_by(cert, Tee::AwsNitro);
            let _ = cert.check_valid_at(UnixTime::from_secs(0), Tee::Tpm);
            let _ = cert.extension("1.3.6.1.4.1.3704.1.4");
        }
    }
});
