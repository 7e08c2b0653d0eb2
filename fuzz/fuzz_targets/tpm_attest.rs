//! The TPMS_ATTEST parser is total, and a parsed quote's selection stays within its bounds.
#![no_main]

use attest_verifiers::tpm::{self, Attest, Attested};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(attest) = Attest::parse(data) {
        assert!(attest.qualified_signer.len() <= 66 && attest.extra_data.len() <= 66);
        match &attest.attested {
            Attested::Quote(q) => {
                assert!(q.pcr_select.len() <= tpm::MAX_PCR_BANKS);
                for s in &q.pcr_select {
                    assert!(s.pcrs.iter().all(|&p| usize::from(p) < tpm::MAX_PCRS));
                    assert!(s.pcrs.windows(2).all(|w| w[0] < w[1]));
                }
                assert!(q.pcr_digest.len() <= 64);
            }
            Attested::Certify(c) => assert!(c.name.len() <= 66 && c.qualified_name.len() <= 66),
        }
    }
});
