//! Full verification path with a fuzzed report and a fuzzed certificate input: the first two
//! bytes give the report's length, the rest is split into report and certificate bundle.
//! Nothing may panic; nothing fuzzed may verify under AMD's roots.
#![no_main]

use attest_verifiers::snp::{SnpVerifier, VerifyOptions};
use attest_verifiers::UnixTime;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((len, rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let split = usize::from(u16::from_le_bytes(*len)).min(rest.len());
    let (report, certs) = rest.split_at(split);
    let verifier = SnpVerifier::default();
    let at = UnixTime::from_secs(1_768_435_200);
    assert!(verifier.verify(report, certs, &VerifyOptions::at(at)).is_err());
});
