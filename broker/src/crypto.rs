//! The broker's crypto backend: the only module in this crate that calls `aws-lc-rs`.

use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, KeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED,
    ECDSA_P256_SHA256_FIXED_SIGNING,
};
use zeroize::Zeroizing;

// Randomness and digests are the protocol crate's (one implementation for both sides).
pub use attest_proto::crypto::{random, sha256, sha512_parts, CryptoError};

/// HMAC-SHA-256 with a server key: how bootstrap secrets and admin tokens are stored.
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut out = [0u8; 32];
    out.copy_from_slice(hmac::sign(&key, data).as_ref());
    out
}

/// Constant-time equality of two byte strings (lengths are not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// An ES256 (ECDSA P-256, SHA-256) signing key.
pub struct SigningKey {
    pair: EcdsaKeyPair,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(ES256)")
    }
}

impl SigningKey {
    /// A fresh key and its PKCS#8 encoding (to be written to a file with owner-only access).
    pub fn generate() -> Result<(Self, Zeroizing<Vec<u8>>), CryptoError> {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .map_err(|_| CryptoError("P-256 key generation failed"))?;
        let pkcs8 = pair
            .to_pkcs8v1()
            .map_err(|_| CryptoError("P-256 key encoding failed"))?;
        Ok((SigningKey { pair }, Zeroizing::new(pkcs8.as_ref().to_vec())))
    }

    /// Loads a PKCS#8 P-256 key.
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, CryptoError> {
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8)
            .map(|pair| SigningKey { pair })
            .map_err(|_| CryptoError("not a PKCS#8 P-256 private key"))
    }

    /// The public key as an uncompressed SEC1 point (0x04 ‖ x ‖ y).
    pub fn public_point(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }

    /// Signs `message`: fixed-width `r ‖ s` (64 bytes), as JWS ES256 wants.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.pair
            .sign(&SystemRandom::new(), message)
            .map(|sig| sig.as_ref().to_vec())
            .map_err(|_| CryptoError("ES256 signing failed"))
    }
}

/// Verifies an ECDSA P-384/SHA-384 signature (`r ‖ s`): the cost of one SEV-SNP or Nitro
/// evidence check, used by the load generator as its baseline.
pub fn verify_p384_sha384(public_point: &[u8], message: &[u8], signature: &[u8]) -> bool {
    UnparsedPublicKey::new(&aws_lc_rs::signature::ECDSA_P384_SHA384_FIXED, public_point)
        .verify(message, signature)
        .is_ok()
}

/// Verifies an ES256 signature (`r ‖ s`) with an uncompressed P-256 point.
pub fn verify_es256(public_point: &[u8], message: &[u8], signature: &[u8]) -> bool {
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, public_point)
        .verify(message, signature)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_round_trip_and_reload() {
        let (key, pkcs8) = SigningKey::generate().unwrap();
        let sig = key.sign(b"hello").unwrap();
        assert_eq!(sig.len(), 64);
        assert!(verify_es256(key.public_point(), b"hello", &sig));
        assert!(!verify_es256(key.public_point(), b"hellO", &sig));
        let again = SigningKey::from_pkcs8(&pkcs8).unwrap();
        assert_eq!(again.public_point(), key.public_point());
        assert!(SigningKey::from_pkcs8(b"junk").is_err());
    }

    #[test]
    fn constant_time_compare_and_hmac() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
        // RFC 4231 test case 2.
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
