//! TPMT_SIGNATURE parsing and bare-signature detection are total.
#![no_main]

use attest_verifiers::tpm::{Signature, BARE_RSA_SIGNATURE_LENGTHS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(sig) = Signature::parse(data) {
        let _ = (sig.hash(), sig.scheme_id(), sig.scheme_name());
        match sig {
            Signature::RsaSsa { sig, .. } | Signature::RsaPss { sig, .. } => {
                assert_eq!(sig.len() + 6, data.len())
            }
            Signature::Ecdsa { r, s, .. } => assert_eq!(r.len() + s.len() + 8, data.len()),
        }
    }
    match Signature::detect(data) {
        Ok(Signature::RsaSsa { sig, .. }) if BARE_RSA_SIGNATURE_LENGTHS.contains(&data.len()) => {
            assert_eq!(sig, data)
        }
        _ => {}
    }
});
