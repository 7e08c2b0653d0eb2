//! TPMT_PUBLIC / TPM2B_PUBLIC / SubjectPublicKeyInfo parsing is total; a usable key survives a
//! round trip through its DER SubjectPublicKeyInfo.
#![no_main]

use attest_verifiers::tpm::{AttestationKey, Public, PublicKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(public) = Public::parse(data) {
        assert_eq!(public.marshalled(), data);
        let name = public.name();
        assert_eq!(name.len(), 2 + public.name_alg.digest_len());
        if let Ok(key) = public.public_key() {
            assert_eq!(PublicKey::from_spki(&key.spki_der()).ok(), Some(key));
        }
    }
    let _ = Public::parse_tpm2b(data);
    if let Ok(ak) = AttestationKey::parse(data) {
        let key = ak.public_key();
        assert_eq!(PublicKey::from_spki(&key.spki_der()).as_ref(), Ok(key));
    }
});
