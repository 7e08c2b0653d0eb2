//! The broker's attacker-facing JOSE parsing: DPoP proofs, presented access tokens and the
//! binding-key JWKs of attestation requests never panic.
#![no_main]

use attest_broker::jose::{self, EcJwk, UnverifiedJws};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = jose::verify_dpop_proof(text);
    let _ = attest_broker::tokens::decode_unverified(text);
    if let Ok(jws) = UnverifiedJws::parse(text) {
        let _ = jws.verify::<serde_json::Value>(&[4; 65]);
    }
    if let Ok(jwk) = serde_json::from_str::<EcJwk>(text) {
        let _ = jwk.thumbprint();
    }
});
